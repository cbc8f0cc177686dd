"""Parallel corpora: validated, encoded once into a memory-mapped id cache, then batched.

Why a cache of flat id arrays: SentencePiece runs once per (data, tokenizer) pair, memory
stays flat however large the corpus (the arrays are memory-mapped), and batches can be
planned deterministically from (seed, epoch), which makes resume exact: the data position
is just (epoch, batch index).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from mt_cli.core.batching import cut_batches, round_up
from mt_cli.core.clean_settings import RULES, CleanConfig, settings_record
from mt_cli.core.errors import DataError
from mt_cli.core.pair_filter import PairFilter
from mt_cli.core.textio import check_same_length, chunked, iter_lines
from mt_cli.core.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizers

log = logging.getLogger("mt_cli")
CACHE_FORMAT = 1
XLA_PAD_MULTIPLE = 8
ENCODE_CHUNK = 8192


@dataclass(frozen=True)
class CorpusStats:
    lines: int
    kept: int
    empty: int
    too_long: int
    truncated: int = 0
    cleaned: dict[str, int] = field(default_factory=dict)  # pairs dropped by data.clean, per rule


@dataclass(frozen=True)
class Cleaning:
    """`data.clean` for one corpus: the rules' settings, the pair's languages and the --against
    hashes (dev and test sets)."""

    settings: CleanConfig
    langs: tuple[str, str]
    against: np.ndarray

    def pair_filter(self) -> PairFilter:
        """A fresh filter applying these rules (its duplicate set starts empty)."""
        return PairFilter(self.settings, self.langs, self.against)

    def key(self) -> str:
        """What the cache key must change with."""
        record = json.dumps([settings_record(self.settings), self.langs], sort_keys=True)
        return record + hashlib.sha256(self.against.tobytes()).hexdigest()


class EncodedCorpus:
    """Token ids of one parallel corpus; sources end with EOS, targets are bare ids."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.src = np.load(directory / "src.npy", mmap_mode="r")
        self.tgt = np.load(directory / "tgt.npy", mmap_mode="r")
        self.src_offsets = np.load(directory / "src_offsets.npy")
        self.tgt_offsets = np.load(directory / "tgt_offsets.npy")
        self.stats = CorpusStats(**json.loads((directory / "stats.json").read_text())["stats"])

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    def source_lengths(self) -> np.ndarray:
        return np.diff(self.src_offsets).astype(np.int32)

    def target_lengths(self) -> np.ndarray:
        """Length of target_in / target_out (ids + BOS or EOS)."""
        return np.diff(self.tgt_offsets).astype(np.int32) + 1

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s0, s1 = self.src_offsets[index], self.src_offsets[index + 1]
        t0, t1 = self.tgt_offsets[index], self.tgt_offsets[index + 1]
        return self.src[s0:s1], self.tgt[t0:t1]


def _hash_files(paths: list[Path], extra: str) -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(str(os.path.getsize(path)).encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:24]


def encode_corpus(
    source: str | Path,
    target: str | Path,
    tokenizers: Tokenizers,
    cache_dir: str | Path,
    max_source_tokens: int,
    max_target_tokens: int,
    lenient_utf8: bool = False,
    truncate: bool = False,
    source_tags: tuple[int, ...] = (),
    cleaning: Cleaning | None = None,
) -> EncodedCorpus:
    """Encode a parallel corpus into the cache (or reuse it); skip and count bad pairs.

    Over-long pairs are skipped, or with `truncate` (dev sets) cut to the limits and
    counted; `source_tags` (tag piece ids: the target language, `<bt>`) go before each
    source and count in its length. The cache key hashes both files, both tokenizer models,
    the length limits and the tags, so a changed file or tokenizer is always noticed.
    """
    source, target = Path(source), Path(target)
    lines = check_same_length(source, target)
    key = _hash_files(
        [source, target],
        f"{CACHE_FORMAT}|{tokenizers.source.sha256()}|{tokenizers.target.sha256()}|"
        f"{max_source_tokens}|{max_target_tokens}|{lenient_utf8}" + ("|truncate" if truncate else "")
        + (f"|tags={','.join(map(str, source_tags))}" if source_tags else "")
        + (f"|clean={cleaning.key()}" if cleaning is not None else ""),
    )
    final = Path(cache_dir) / f"{source.name}-{target.name}-{key}"
    if (final / "stats.json").is_file():
        return EncodedCorpus(final)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".encoding-", dir=cache_dir))
    try:
        stats = _encode_into(tmp, source, target, tokenizers, (max_source_tokens, max_target_tokens),
                             lenient_utf8, lines, truncate, list(source_tags),
                             cleaning.pair_filter() if cleaning else None)
        (tmp / "stats.json").write_text(json.dumps(
            {"source": str(source), "target": str(target), "stats": stats.__dict__}))
        if not (final / "stats.json").is_file():  # another process may have won the race
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    corpus = EncodedCorpus(final)
    s = corpus.stats
    cut = f", truncated {s.truncated} over-long" if truncate else f" and {s.too_long} over-long"
    cleaned = (f"; data.clean dropped {sum(s.cleaned.values())} ("
               + ", ".join(f"{rule} {n}" for rule, n in s.cleaned.items()) + ")") if cleaning is not None else ""
    log.info(f"{source.name}/{target.name}: {s.lines} pairs, kept {s.kept}, skipped {s.empty} "
             f"empty{cut} (limits {max_source_tokens}/{max_target_tokens} tokens){cleaned}")
    if s.kept == 0:
        raise DataError(
            f"{source} / {target}: no usable sentence pairs ({s.empty} empty, "
            + (f"{sum(s.cleaned.values())} dropped by data.clean, " if cleaning is not None else "")
            + f"{s.too_long} over "
            f"the length limits data.max_source_tokens={max_source_tokens} / "
            f"data.max_target_tokens={max_target_tokens})")
    return corpus


def _encode_into(directory: Path, source: Path, target: Path, tokenizers: Tokenizers,
                 limits: tuple[int, int], lenient: bool, lines: int, truncate: bool,
                 source_tags: list[int], cleaner: PairFilter | None) -> CorpusStats:
    """Stream both files in lockstep, chunk by chunk, appending ids to flat files."""
    max_src, max_tgt = limits
    dtype = np.uint16 if max(tokenizers.source.vocab_size, tokenizers.target.vocab_size) < 65536 else np.int32
    src_raw, tgt_raw = directory / "src.bin", directory / "tgt.bin"
    src_lens: list[np.ndarray] = []
    tgt_lens: list[np.ndarray] = []
    empty = too_long = truncated = 0
    with open(src_raw, "wb") as src_out, open(tgt_raw, "wb") as tgt_out:
        pairs = zip(iter_lines(source, lenient), iter_lines(target, lenient))
        for chunk in chunked(pairs, ENCODE_CHUNK):
            if cleaner is not None:
                chunk = [pair for pair, keep in zip(chunk, cleaner.keep(*zip(*chunk))) if keep]
            src_chunk, tgt_chunk = [s for s, _ in chunk], [t for _, t in chunk]
            src_ids = tokenizers.source.encode_ids(src_chunk)
            tgt_ids = tokenizers.target.encode_ids(tgt_chunk)
            kept_src, kept_tgt = [], []
            for s_ids, t_ids in zip(src_ids, tgt_ids):
                if not s_ids or not t_ids:
                    empty += 1
                    continue
                s_ids = source_tags + s_ids
                if (len(s_ids) + 1 > max_src or len(t_ids) + 1 > max_tgt) and not truncate:
                    too_long += 1
                else:
                    if len(s_ids) + 1 > max_src or len(t_ids) + 1 > max_tgt:
                        truncated += 1
                        s_ids, t_ids = s_ids[:max_src - 1], t_ids[:max_tgt - 1]
                    kept_src.append(s_ids + [EOS_ID])
                    kept_tgt.append(t_ids)
            if kept_src:
                src_out.write(np.fromiter((i for row in kept_src for i in row), dtype).tobytes())
                tgt_out.write(np.fromiter((i for row in kept_tgt for i in row), dtype).tobytes())
                src_lens.append(np.fromiter(map(len, kept_src), np.int64))
                tgt_lens.append(np.fromiter(map(len, kept_tgt), np.int64))
    kept = sum(len(x) for x in src_lens)
    for name, raw, lens in (("src", src_raw, src_lens), ("tgt", tgt_raw, tgt_lens)):
        offsets = np.zeros(kept + 1, np.int64)
        if lens:
            np.cumsum(np.concatenate(lens), out=offsets[1:])
        np.save(directory / f"{name}_offsets.npy", offsets)
        flat = np.memmap(raw, dtype=dtype, mode="r") if raw.stat().st_size else np.zeros(0, dtype)
        np.save(directory / f"{name}.npy", flat)
        del flat
        raw.unlink()
    cleaned = {rule: cleaner.dropped[rule] for rule in RULES if cleaner.dropped[rule]} if cleaner else {}
    return CorpusStats(lines=lines, kept=kept, empty=empty, too_long=too_long, truncated=truncated, cleaned=cleaned)


# ---------------------------------------------------------------- batching

def plan_epoch(corpora: list[EncodedCorpus], weights: list[float], epoch: int, seed: int,
               batch_tokens: int, shuffle_buffer: int, pad_multiple: int = 1) -> list[np.ndarray]:
    """Deterministic batches for one epoch: a list of int64 arrays of global example ids.

    Weights up- or down-sample each corpus; within windows of `shuffle_buffer` examples,
    pairs are sorted by length (bucketing, little padding) and cut into batches holding at
    most `batch_tokens` padded tokens on the longer side; batch order is shuffled.
    """
    rng = np.random.default_rng([seed, epoch])
    chosen: list[np.ndarray] = []
    base = 0
    for corpus, weight in zip(corpora, weights):
        n = len(corpus)
        whole, frac = divmod(weight, 1.0)
        parts = [np.arange(n)] * int(whole)
        extra = int(round(frac * n))
        if extra:
            parts.append(rng.choice(n, size=extra, replace=False))
        if parts:
            chosen.append(np.concatenate(parts) + base)
        base += n
    order = rng.permutation(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    lengths = np.maximum(
        np.concatenate([c.source_lengths() for c in corpora]),
        np.concatenate([c.target_lengths() for c in corpora]),
    )
    batches: list[np.ndarray] = []
    for start in range(0, len(order), shuffle_buffer):
        window = order[start:start + shuffle_buffer]
        window = window[np.argsort(lengths[window], kind="stable")]
        padded = [round_up(int(n), pad_multiple) for n in lengths[window]]  # ascending
        window_batches = [window[group] for group in cut_batches(range(len(window)), padded, batch_tokens)]
        for j in rng.permutation(len(window_batches)):
            batches.append(window_batches[j])
    return batches


def collate(corpora: list[EncodedCorpus], ids: np.ndarray, pad_multiple: int = 1) -> dict[str, np.ndarray]:
    """Padded int32 arrays source [B,S], target_in [B,T] (BOS + y), target_out [B,T] (y + EOS)."""
    starts = np.cumsum([0] + [len(c) for c in corpora])
    pairs = []
    for gid in ids:
        k = int(np.searchsorted(starts, gid, side="right") - 1)
        pairs.append(corpora[k].pair(int(gid - starts[k])))
    src_len = round_up(max(len(s) for s, _ in pairs), pad_multiple)
    tgt_len = round_up(max(len(t) + 1 for _, t in pairs), pad_multiple)
    source = np.full((len(pairs), src_len), PAD_ID, np.int32)
    target_in = np.full((len(pairs), tgt_len), PAD_ID, np.int32)
    target_out = np.full((len(pairs), tgt_len), PAD_ID, np.int32)
    for row, (s, t) in enumerate(pairs):
        source[row, :len(s)] = s
        target_in[row, 0] = BOS_ID
        target_in[row, 1:len(t) + 1] = t
        target_out[row, :len(t)] = t
        target_out[row, len(t)] = EOS_ID
    return {"source": source, "target_in": target_in, "target_out": target_out}


@dataclass(frozen=True)
class DataPosition:
    """Where training stands in the data stream: the next batch to feed."""

    epoch: int = 0
    batch: int = 0


def iterate_batches(corpora: list[EncodedCorpus], weights: list[float], seed: int,
                    batch_tokens: int, shuffle_buffer: int, start: DataPosition = DataPosition(),
                    pad_multiple: int = 1) -> Iterator[tuple[DataPosition, dict[str, np.ndarray]]]:
    """Endless stream of (position after this batch, batch), resumable at any position.

    `pad_multiple` > 1 rounds lengths up (fewer distinct shapes for XLA; wasted otherwise).
    """
    epoch, skip = start.epoch, start.batch
    while True:
        plan = plan_epoch(corpora, weights, epoch, seed, batch_tokens, shuffle_buffer, pad_multiple)
        if not plan:
            raise DataError("the training data yields no batches")
        for index in range(skip, len(plan)):
            nxt = DataPosition(epoch, index + 1) if index + 1 < len(plan) else DataPosition(epoch + 1, 0)
            yield nxt, collate(corpora, plan[index], pad_multiple)
        epoch, skip = epoch + 1, 0


def sequential_batches(corpus: EncodedCorpus, batch_tokens: int,
                       pad_multiple: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """Batches of a dev corpus in file order (for the dev loss)."""
    lengths = np.maximum(corpus.source_lengths(), corpus.target_lengths())
    padded = [round_up(int(n), pad_multiple) for n in lengths]
    for group in cut_batches(range(len(corpus)), padded, batch_tokens):
        yield collate([corpus], np.asarray(group), pad_multiple)


def prefetched(stream: Iterator[tuple[DataPosition, dict[str, np.ndarray]]],
               buffer: int = 2) -> Iterator[tuple[DataPosition, dict]]:
    """Run `stream` on a tf.data thread so the next batch is built while a step computes.

    Order is unchanged and each batch carries its position, so a stop after any step
    records exactly what was consumed (prefetched batches are simply rebuilt on resume).
    """
    keys = ("source", "target_in", "target_out")
    signature = ({k: tf.TensorSpec([None, None], tf.int32) for k in keys},
                 tf.TensorSpec([2], tf.int64))

    def generate() -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        for position, batch in stream:
            yield batch, np.array([position.epoch, position.batch], np.int64)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(buffer)
    for batch, position in dataset:
        epoch, index = position.numpy().tolist()
        yield DataPosition(epoch, index), batch
