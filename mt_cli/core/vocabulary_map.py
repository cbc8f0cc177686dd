"""A CTranslate2 vocabulary map (`vmap.txt`) built from a training corpus: for each source
piece, the target pieces a translation of it is likely to use.

CTranslate2 reads `vmap.txt` from a model directory; with `use_vmap=True` it scores only the
union of the candidates of a batch's source pieces, of the always-included pieces (the line
whose source side is empty) and of the target prefixes. Each line is
`src_piece<TAB>tgt_1 tgt_2 ...`, pieces as they are in the vocabularies.

How the candidates are chosen, from sentence-level co-occurrence (no word alignment):
- for each source piece, the `CANDIDATES` target pieces with the highest Dice coefficient
  2·c(s,t) / (c(s) + c(t)), c counting sentence pairs, among those not always included
  (listing those would spend its slots on what every batch has anyway);
- the identical piece where the target vocabulary has it (names, numbers, symbols are
  copied even when the corpus never showed them);
- always: the `FREQUENT` most frequent target pieces (function words, punctuation, common
  endings: needed in almost every output, and co-occurring with no source piece in
  particular) and the special pieces unk, bos and eos.

Bounded whatever the corpus: at most `MAX_PAIRS` sentence pairs are read, a seeded sample
spread over all corpora (one pair from each of MAX_PAIRS equal slices), fewer when their
summed |source| x |target| pieces pass `MAX_COOCCURRENCES` (the counting's work); counting
is numpy over unique pieces per sentence and dense blocks of source pieces, never a Python
object per pair. Pure numpy: no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mt_cli.core.tokenizer import BOS_ID, EOS_ID, UNK_ID

# Per source piece: its translations spread over inflections, casing and their subword splits,
# and sentence co-occurrence is a noisy stand-in for alignment (a true translation is not
# always among the first few). Measured on Multi30k en-de (8k joint vocabulary, test2016): of
# the reference's target pieces, 96.4% are candidates of their own source line with K=20,
# 97.6% with 50, 98.4% with 100, while a 32-line batch's candidates grow from 2.8k to 4.0k and
# 4.8k pieces: 50, where the gain flattens and a batch still leaves half the vocabulary out.
CANDIDATES = 50
# Always candidates: no source piece predicts function words, punctuation and common endings,
# and nearly every output needs some. On Multi30k de the 500 most frequent pieces of the 8k
# are 81% of the target tokens (200: 71%, 1000: 88%); 1000 would add ~600 pieces to every
# batch for +1 point of per-line coverage above (98.5%).
FREQUENT = 500
MAX_PAIRS = 500_000  # sentence pairs counted: enough for the candidates of all but rare pieces
# Summed |source| x |target| of the pairs read: the counting's work. Its memory is the sample's
# unique pieces per sentence and their inverted index (~10 bytes a piece: a few hundred MB at
# most) plus fixed-size blocks (BLOCK_CELLS, GATHER).
MAX_COOCCURRENCES = 300_000_000
SAMPLE_SEED = 0  # the same corpus gives the same map
FIRST_PIECE = 4  # ids below are pad, unk, bos, eos: never keys nor counted candidates
SPECIAL = (UNK_ID, BOS_ID, EOS_ID)  # always candidates (CTranslate2 adds them too)
READ_CHUNK = 16_384  # sentence pairs read and made unique per numpy step
BLOCK_CELLS = 1 << 21  # source pieces x target vocabulary counted at once (int64: 16 MiB)
GATHER = 1 << 20  # (source, target) piece pairs materialised at once (a few int64 arrays: 8 MiB each)
_BREAKS_FORMAT = ("\t", " ", "\n", "\r")  # CTranslate2 splits a line on these


class ParallelIds(Protocol):
    """Token ids of one parallel corpus, as training's encoded corpus holds them: flat id
    arrays and the offsets of each sentence (read by fancy indexing only)."""

    src: np.ndarray
    tgt: np.ndarray
    src_offsets: np.ndarray
    tgt_offsets: np.ndarray

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Limits:
    """The builder's constants, as one value (tests shrink them)."""

    candidates: int = CANDIDATES
    frequent: int = FREQUENT
    max_pairs: int = MAX_PAIRS
    max_cooccurrences: int = MAX_COOCCURRENCES
    seed: int = SAMPLE_SEED


@dataclass(frozen=True)
class Incidence:
    """Unique piece ids of each sentence (CSR: sentence i's are pieces[starts[i]:starts[i+1]])."""

    pieces: np.ndarray
    starts: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)


@dataclass(frozen=True)
class Sample:
    """What counting needs of the pairs read: unique pieces per sentence, target token counts."""

    source: Incidence
    target: Incidence
    target_tokens: np.ndarray  # [target vocabulary] occurrences

    @property
    def pairs(self) -> int:
        return len(self.source.starts) - 1


@dataclass(frozen=True)
class VocabularyMap:
    """The map as pieces: always-included target pieces and each source piece's candidates."""

    always: tuple[str, ...]
    entries: dict[str, tuple[str, ...]]
    pairs: int  # sentence pairs counted
    skipped: int  # pieces left out because they would break the line format

    def text(self) -> str:
        """vmap.txt: the empty-key line first, then one line per source piece."""
        lines = ["\t" + " ".join(self.always)]
        lines += [f"{source}\t{' '.join(targets)}" for source, targets in self.entries.items()]
        return "\n".join(lines) + "\n"


def build_vocabulary_map(corpora: Sequence[ParallelIds], source_pieces: Sequence[str],
                         target_pieces: Sequence[str], limits: Limits = Limits()) -> VocabularyMap:
    """The vocabulary map of `corpora` (ids of `source_pieces` / `target_pieces`, id order)."""
    chosen = choose_pairs(corpora, limits)
    sample = read_pairs(corpora, chosen, len(source_pieces), len(target_pieces))
    always = [*SPECIAL, *frequent_ids(sample.target_tokens, limits.frequent)]
    ranked = cooccurring(sample, len(source_pieces), len(target_pieces), limits.candidates, always)
    identity = identical_ids(source_pieces, target_pieces)
    return _as_pieces(always, ranked, identity, source_pieces, target_pieces, sample.pairs)


# ---------------------------------------------------------------- which pairs are read

def choose_pairs(corpora: Sequence[ParallelIds], limits: Limits) -> list[np.ndarray]:
    """Per corpus, the sorted indices of the pairs to read: every pair of a small corpus, else
    a stratified sample (one pair drawn from each of `max_pairs` equal slices of all corpora:
    spread over all of them, with no periodic pattern to fall in step with), cut, in a seeded
    random order, where the pairs' |source| x |target| would pass `max_cooccurrences`."""
    sizes = np.array([len(c) for c in corpora], np.int64)
    total = int(sizes.sum())
    rng = np.random.default_rng(limits.seed)
    count = min(total, limits.max_pairs)
    if count == total:
        picked = np.arange(total, dtype=np.int64)
    else:
        picked = ((np.arange(count) + rng.random(count)) * (total / count)).astype(np.int64)
        picked = np.minimum(picked, total - 1)  # float rounding at the very end
    starts = np.concatenate([[0], np.cumsum(sizes)])
    owner = np.searchsorted(starts, picked, side="right") - 1
    local = picked - starts[owner]
    work = np.zeros(count, np.float64)
    for k, corpus in enumerate(corpora):
        mine = owner == k
        work[mine] = _lengths(corpus.src_offsets, local[mine]) * _lengths(corpus.tgt_offsets, local[mine])
    order = rng.permutation(count)
    kept = order[np.cumsum(work[order]) <= limits.max_cooccurrences]
    return [np.sort(local[kept][owner[kept] == k]) for k in range(len(corpora))]


def _lengths(offsets: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.asarray(offsets[index + 1], np.int64) - np.asarray(offsets[index], np.int64)


# ---------------------------------------------------------------- reading them

def read_pairs(corpora: Sequence[ParallelIds], chosen: Sequence[np.ndarray], source_vocab: int,
               target_vocab: int) -> Sample:
    """The chosen pairs' unique pieces per sentence (specials dropped) and target token counts,
    read `READ_CHUNK` pairs at a time."""
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"src": [], "tgt": []}
    tokens = np.zeros(target_vocab, np.int64)
    for corpus, index in zip(corpora, chosen):
        for begin in range(0, len(index), READ_CHUNK):
            rows = index[begin:begin + READ_CHUNK]
            source = _read_side(corpus.src, corpus.src_offsets, rows)
            target = _read_side(corpus.tgt, corpus.tgt_offsets, rows)
            tokens += np.bincount(target[1], minlength=target_vocab)[:target_vocab]
            parts["src"].append(_unique_per_row(*source, len(rows), source_vocab))
            parts["tgt"].append(_unique_per_row(*target, len(rows), target_vocab))
    tokens[:FIRST_PIECE] = 0
    return Sample(_joined(parts["src"]), _joined(parts["tgt"]), tokens)


def _read_side(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of each id, id) of the sentences `rows`, specials dropped."""
    begin = np.asarray(offsets[rows], np.int64)
    lengths = np.asarray(offsets[rows + 1], np.int64) - begin
    values = np.asarray(ids[ragged_ranges(begin, lengths)], np.int64)
    row = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    keep = values >= FIRST_PIECE
    return row[keep], values[keep]


def ragged_ranges(begin: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices of the ranges [begin[i], begin[i] + lengths[i]), concatenated."""
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(begin - before, lengths)


def _unique_per_row(row: np.ndarray, values: np.ndarray, rows: int, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's distinct values (sorted) and how many each row has (sort-based: numpy 2's
    hash-based np.unique measured 10x slower on these codes)."""
    codes = np.sort(row * vocab + values)
    codes = codes[np.concatenate([[True], codes[1:] != codes[:-1]])] if len(codes) else codes
    return (codes % vocab).astype(np.int32), np.bincount(codes // vocab, minlength=rows)


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> Incidence:
    pieces = np.concatenate([p for p, _ in parts]) if parts else np.zeros(0, np.int32)
    counts = np.concatenate([c for _, c in parts]) if parts else np.zeros(0, np.int64)
    return Incidence(pieces, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


# ---------------------------------------------------------------- counting

def cooccurring(sample: Sample, source_vocab: int, target_vocab: int, candidates: int,
                always: Sequence[int] = ()) -> list[np.ndarray]:
    """Per source piece, up to `candidates` target ids outside `always` by Dice coefficient (best
    first, ties by id), counted in dense blocks of source pieces from an inverted index (piece
    -> sentences)."""
    source, target = sample.source, sample.target
    order = np.argsort(source.pieces, kind="stable")
    by_piece = source.pieces[order]
    sentences = np.repeat(np.arange(sample.pairs, dtype=np.int32), source.lengths)[order]
    del order
    bounds = np.searchsorted(by_piece, np.arange(source_vocab + 1))
    source_df = np.diff(bounds)
    target_df = np.bincount(target.pieces, minlength=target_vocab)[:target_vocab]
    excluded = np.zeros(target_vocab, bool)
    excluded[list(always)] = True
    rows_per_block = max(1, BLOCK_CELLS // target_vocab)
    ranked: list[np.ndarray] = []
    for first in range(0, source_vocab, rows_per_block):
        last = min(first + rows_per_block, source_vocab)
        span = (int(bounds[first]), int(bounds[last]))
        counts = _block_counts(by_piece[span[0]:span[1]] - first, sentences[span[0]:span[1]], target,
                               last - first, target_vocab)
        counts[:, excluded] = 0
        ranked += _best(counts, source_df[first:last], target_df, candidates)
    return ranked


def _block_counts(rows: np.ndarray, sentences: np.ndarray, target: Incidence, height: int,
                  target_vocab: int) -> np.ndarray:
    """[height, target vocabulary] sentence co-occurrence counts of a block of source pieces,
    its (row, sentence) incidences expanded `GATHER` piece pairs at a time."""
    counts = np.zeros(height * target_vocab, np.int64)
    lengths = target.lengths[sentences]
    ends = np.cumsum(lengths)
    begin = 0
    while begin < len(rows):
        done = ends[begin - 1] if begin else 0
        end = max(begin + 1, int(np.searchsorted(ends, done + GATHER, side="right")))
        piece = target.pieces[ragged_ranges(target.starts[sentences[begin:end]], lengths[begin:end])]
        codes = np.repeat(rows[begin:end].astype(np.int64), lengths[begin:end]) * target_vocab + piece
        counts += np.bincount(codes, minlength=height * target_vocab)
        begin = end
    return counts.reshape(height, target_vocab)


def _best(counts: np.ndarray, source_df: np.ndarray, target_df: np.ndarray, candidates: int) -> list[np.ndarray]:
    """Each row's target ids with a count, by Dice coefficient (at most `candidates`)."""
    denominator = np.maximum(source_df[:, None] + target_df[None, :], 1)
    dice = 2.0 * counts / denominator
    k = min(candidates, dice.shape[1])
    if k < dice.shape[1]:
        top = np.argpartition(-dice, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(k), dice.shape)
    scores = np.take_along_axis(dice, top, axis=1)
    order = np.lexsort((top, -scores), axis=-1)
    top, scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(scores, order, axis=1)
    return [row[kept] for row, kept in zip(top, scores > 0)]


def frequent_ids(tokens: np.ndarray, count: int) -> list[int]:
    """The `count` most frequent target ids seen (ties by id)."""
    order = np.lexsort((np.arange(len(tokens)), -tokens))[:count]
    return [int(i) for i in order if tokens[i] > 0]


def identical_ids(source_pieces: Sequence[str], target_pieces: Sequence[str]) -> np.ndarray:
    """Per source id, the target id of the same piece (-1: none, or a special)."""
    target = {piece: i for i, piece in enumerate(target_pieces) if i >= FIRST_PIECE}
    return np.array([target.get(piece, -1) if i >= FIRST_PIECE else -1 for i, piece in enumerate(source_pieces)],
                    np.int64)


# ---------------------------------------------------------------- as text

def _as_pieces(always: list[int], ranked: list[np.ndarray], identity: np.ndarray, source_pieces: Sequence[str],
               target_pieces: Sequence[str], pairs: int) -> VocabularyMap:
    """Ids as pieces; a piece that would break the line format is left out (counted)."""
    broken = {i for i, piece in enumerate(target_pieces) if not _fits(piece)}
    skipped = len(broken) + sum(1 for piece in source_pieces[FIRST_PIECE:] if not _fits(piece))
    entries: dict[str, tuple[str, ...]] = {}
    for source_id in range(FIRST_PIECE, len(source_pieces)):
        ids = [int(identity[source_id])] if identity[source_id] >= 0 else []
        ids += [int(i) for i in ranked[source_id] if i != identity[source_id]]
        targets = tuple(target_pieces[i] for i in ids if i not in broken)
        if targets and _fits(source_pieces[source_id]):
            entries[source_pieces[source_id]] = targets
    kept = tuple(target_pieces[i] for i in dict.fromkeys(always) if i not in broken)
    return VocabularyMap(kept, entries, pairs, skipped)


def _fits(piece: str) -> bool:
    """A piece CTranslate2 reads back as itself from a vmap.txt line."""
    return bool(piece) and not any(c in piece for c in _BREAKS_FORMAT)
