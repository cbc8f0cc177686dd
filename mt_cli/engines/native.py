"""Translate lines with an in-memory model: batching by length, order restored, no line lost.

N lines in give N results out: an empty line gives an empty translation without touching
the model, an over-long line is truncated to the model's limit with a warning naming it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import replace

import numpy as np
import tensorflow as tf

from mt_cli.core.alignment import hard_alignment, layer_index
from mt_cli.core.batching import longest_first_batches, truncated
from mt_cli.core.config import DecodeConfig, decode_flag
from mt_cli.core.constraints import distinct_pieces, parse_constraint_line
from mt_cli.core.errors import ConfigError, ConstraintError
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.languages import Languages
from mt_cli.core.runtime import Choice
from mt_cli.core.tokenizer import BOS_ID, EOS_ID, UNK_ID, Tokenizers, cut_lines, line_char_limit
from mt_cli.model.search import SearchModel, constrained_search, search

log = logging.getLogger("mt_cli")


def _padded(rows: list[list[int]], min_width: int = 0) -> np.ndarray:
    """Rows of ids as one 0-padded int32 matrix."""
    array = np.zeros((len(rows), max([min_width, *map(len, rows)])), np.int32)
    for row, ids in enumerate(rows):
        array[row, :len(ids)] = ids
    return array


def batch_shortlist(frequent: np.ndarray, sources: list[list[int]], prefixes: list[list[int]]) -> np.ndarray:
    """Sorted target ids a batch may produce: the special ids 0-3 (so they keep their values
    as shortlist positions), the frequent pieces, the pieces of `sources` (given only for a
    joint vocabulary: names and numbers are copied) and of `prefixes` (forced)."""
    parts = [np.arange(EOS_ID + 1, dtype=np.int32), np.asarray(frequent, np.int32)]
    parts += [np.asarray(row, np.int32) for row in [*sources, *prefixes]]
    return np.unique(np.concatenate(parts))


def _alignment_layer(layer: int, layers: int) -> int:
    """The decoder layer alignments come from; the default (-2, the one before last) means the
    only layer of a one-layer decoder, any other value out of range is an error."""
    default = next(f.default for f in dataclasses.fields(DecodeConfig) if f.name == "alignment_layer")
    if layer == default and layers == 1:
        return 0
    return layer_index(layer, layers, decode_flag("alignment_layer"))


class Translator:
    """A model, its tokenizers and decoding options, ready to translate batches of lines."""

    def __init__(self, model: SearchModel, tokenizers: Tokenizers, decode: DecodeConfig,
                 precision: Choice | None = None, languages: Languages | None = None) -> None:
        self.model = model
        # a model given without its languages (tests, tools): one untagged pair, any target name
        self.languages = languages
        self.precision = precision  # the dtype the model computes in and why (said with the engine)
        self.tokenizers = tokenizers
        self.decode = decode
        self.max_source_tokens = model.max_length
        self._frequent: dict[int, np.ndarray] = {}  # shortlist size -> its most frequent pieces
        for note in decode.ignored_options():
            log.warning(note)

    def _shortlist(self, size: int, sources: list[list[int]],
                   prefixes: list[list[int]] | None) -> np.ndarray | None:
        """The batch's output vocabulary under a shortlist of `size` (0, None: all of it); the
        frequent pieces are cached by size, so calls with other options never see a stale one."""
        if not size:
            return None
        if size not in self._frequent:
            ranking = self.tokenizers.target.frequency_ranking()
            self._frequent[size] = np.array(ranking[:size], np.int32)
        return batch_shortlist(self._frequent[size], sources if self.tokenizers.joint else [], prefixes or [])

    def _tags(self, d: DecodeConfig) -> list[int]:
        """The tag ids before each source for `d.target_lang` (checked against the model's)."""
        if self.languages is None:
            return []
        return [self.tokenizers.source.piece_id(tag) for tag in self.languages.source_tags(d.target_lang)]

    def _encode(self, lines: list[str], first_line: int, tags: list[int]) -> list[list[int]]:
        """Source ids + eos (empty stays empty), after the target-language tag, cut to the
        model's position limit."""
        ids = truncated(self.tokenizers.source.encode_ids(lines), self.max_source_tokens - 1 - len(tags), first_line)
        return [tags + row + [EOS_ID] if row else [] for row in ids]

    def _encode_prefixes(self, prefixes: list[str], first_line: int) -> list[list[int]]:
        """Target prefixes, cut to leave room for at least one generated token."""
        return truncated(self.tokenizers.target.encode_ids(prefixes), self.max_source_tokens - 2,
                         first_line, "prefix of line")

    def _encode_constraints(self, lines: list[str], first_line: int) -> list[list[list[int]]]:
        """Each line's distinct constraint phrases as target piece ids; one that cannot fit the
        model's output limit is an error (it could not be met)."""
        target, limit = self.tokenizers.target, self.max_source_tokens - 1
        encoded = []
        for number, line in enumerate(lines, first_line):
            phrases = parse_constraint_line(line)
            ids = distinct_pieces(target.encode_ids(phrases) if phrases else [])
            if sum(map(len, ids)) > limit:
                raise ConstraintError(f"constraints of line {number} take {sum(map(len, ids))} pieces, more than "
                                f"the model's output limit of {limit}; shorten or split them")
            for phrase, row in zip(phrases, ids):
                if UNK_ID in row:
                    log.warning(f"line {number}: constraint {phrase!r} has characters the target vocabulary "
                                "lacks; they come out as unknown pieces")
            encoded.append(ids)
        return encoded

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None,
                        first_line: int = 1, constraints: list[str] | None = None,
                        decode: DecodeConfig | None = None) -> list[list[Hypothesis]]:
        """n-best hypotheses for each line, in input order (`first_line` numbers warnings).
        Lines with constraints (tab-separated target phrases) go through constrained search.
        `decode` replaces the engine's own options for this call only (its dtype excepted: the
        weights are loaded in one), so concurrent callers never change each other's options."""
        d = self.decode if decode is None else decode
        bound = line_char_limit(self.max_source_tokens)  # before SentencePiece, whose memory grows with a line
        lines = cut_lines(lines, bound, first_line)
        prefixes = cut_lines(prefixes, bound, first_line, "prefix of line") if prefixes else prefixes
        constraints = cut_lines(constraints, bound, first_line, "constraints of line") if constraints else constraints
        tags = self._tags(d)
        sources = self._encode(lines, first_line, tags)
        prefix_ids = self._encode_prefixes(prefixes, first_line) if prefixes else None
        phrases = self._encode_constraints(constraints, first_line) if constraints else [[] for _ in lines]
        if any(phrases):
            self._check_constrainable(d, prefix_ids is not None)
        for i in range(len(lines)):
            if phrases[i] and not sources[i]:
                log.warning(f"line {first_line + i}: empty input, its constraints are not applied "
                            "(the output stays empty)")
        results: list[list[Hypothesis]] = [[Hypothesis()] for _ in lines]
        free = [i for i in range(len(lines)) if not phrases[i]]
        for batch in self._batches(d, sources, free):
            prefix = _padded([prefix_ids[i] for i in batch], 1) if prefix_ids is not None else None
            shortlist = self._shortlist(d.shortlist, [sources[i] for i in batch],
                                        [prefix_ids[i] for i in batch] if prefix_ids is not None else None)
            found = search(self.model, _padded([sources[i] for i in batch]), d, target_prefix=prefix,
                           shortlist=shortlist)
            self._store(results, batch, found.hypotheses)
        for batch in self._batches(d, sources, [i for i in range(len(lines)) if phrases[i]]):
            found = constrained_search(self.model, _padded([sources[i] for i in batch]),
                                       [phrases[i] for i in batch], d)
            self._store(results, batch, found)
        if d.alignments:
            results = self._aligned(d, lines, sources, results, len(tags))
        return results

    def _check_constrainable(self, d: DecodeConfig, with_prefixes: bool) -> None:
        """Constrained search is a beam search without prefixes or coverage penalty."""
        if with_prefixes:
            raise ConfigError("target prefixes and constraints cannot be combined (yet); give one of them")
        if d.sampling:
            raise ConfigError("constraints need beam search or greedy decoding, not sampling; "
                              "drop --sampling-topk/--sampling-topp")
        if d.coverage_penalty:
            log.warning("coverage_penalty is not applied to lines with constraints")
        if d.shortlist:
            raise ConfigError("--shortlist (decode.shortlist) and constraints cannot be combined; "
                              "drop one of them")

    def _batches(self, d: DecodeConfig, sources: list[list[int]], indices: list[int]) -> list[list[int]]:
        """`indices` (into sources) grouped into length-sorted batches."""
        batches = longest_first_batches([len(sources[i]) for i in indices], d.batch_tokens, d.batch_size)
        return [[indices[j] for j in batch] for batch in batches]

    def _store(self, results: list[list[Hypothesis]], batch: list[int], found: list[list[Hypothesis]]) -> None:
        for row, i in enumerate(batch):
            hyps = [self._with_text(h) for h in found[row]]
            results[i] = hyps or [Hypothesis(score=float("-inf"))]  # never lose a line

    def _aligned(self, d: DecodeConfig, lines: list[str], sources: list[list[int]],
                 results: list[list[Hypothesis]], tags: int) -> list[list[Hypothesis]]:
        """Each hypothesis with its word alignment (teacher-forced pass over its own output);
        the `tags` leading source positions (target-language tags) are no word of the line."""
        pieces = self.tokenizers.source.encode_pieces(lines)
        rows = [(i, k) for i, nbest in enumerate(results) for k, h in enumerate(nbest) if sources[i] and h.ids]
        aligned = [[replace(h, alignment=[]) for h in nbest] for nbest in results]
        for start in range(0, len(rows), d.batch_size):
            chunk = rows[start:start + d.batch_size]
            record = self.model.attention(_padded([sources[i] for i, _ in chunk]),
                                          _padded([[BOS_ID, *results[i][k].ids] for i, k in chunk]))
            layer = _alignment_layer(d.alignment_layer, len(record.cross))
            cross = tf.reduce_mean(record.cross[layer], axis=1).numpy()  # heads averaged: [N, T, S]
            for n, (i, k) in enumerate(chunk):
                hyp = results[i][k]
                links = hard_alignment(cross[n][:, tags:], pieces[i][:len(sources[i]) - 1 - tags], hyp.pieces)
                aligned[i][k] = replace(hyp, alignment=links)
        return aligned

    def _with_text(self, hyp: Hypothesis) -> Hypothesis:
        target = self.tokenizers.target
        return Hypothesis(ids=hyp.ids, score=hyp.score, token_logprobs=hyp.token_logprobs,
                          text=target.decode_ids([hyp.ids])[0],
                          pieces=target.processor.IdToPiece(hyp.ids) if hyp.ids else [])

    def translate(self, lines: list[str], first_line: int = 1) -> list[str]:
        """Best translation per line, in input order."""
        return [nbest[0].text for nbest in self.translate_nbest(lines, first_line=first_line)]
