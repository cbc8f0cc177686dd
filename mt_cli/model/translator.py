"""Translate lines with an in-memory model: batching by length, order restored, no line lost.

N lines in give N results out: an empty line gives an empty translation without touching
the model, an over-long line is truncated to the model's limit with a warning naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from mt_cli.batching import cut_batches
from mt_cli.config import DecodeConfig
from mt_cli.hypothesis import Hypothesis
from mt_cli.model.search import search
from mt_cli.model.transformer import Transformer
from mt_cli.tokenizer import EOS_ID, Tokenizers

log = logging.getLogger("mt_cli")


def _padded(rows: list[list[int]], min_width: int = 0) -> np.ndarray:
    """Rows of ids as one 0-padded int32 matrix."""
    array = np.zeros((len(rows), max([min_width, *map(len, rows)])), np.int32)
    for row, ids in enumerate(rows):
        array[row, :len(ids)] = ids
    return array


class Translator:
    """A model, its tokenizers and decoding options, ready to translate batches of lines."""

    def __init__(self, model: Transformer, tokenizers: Tokenizers, decode: DecodeConfig) -> None:
        self.model = model
        self.tokenizers = tokenizers
        self.decode = decode
        self.max_source_tokens = model.max_length
        for note in decode.ignored_options():
            log.warning(note)

    def _encode(self, lines: list[str], first_line: int) -> list[list[int]]:
        encoded = self.tokenizers.source.encode_ids(lines)
        out = []
        for offset, ids in enumerate(encoded):
            if not ids:
                out.append([])
                continue
            if len(ids) + 1 > self.max_source_tokens:
                log.warning(f"line {first_line + offset}: {len(ids)} source tokens, truncated to "
                            f"{self.max_source_tokens - 1} (the model's limit)")
                ids = ids[:self.max_source_tokens - 1]
            out.append(ids + [EOS_ID])
        return out

    def _encode_prefixes(self, prefixes: list[str], first_line: int) -> list[list[int]]:
        """Target prefixes, cut to leave room for at least one generated token."""
        limit = self.max_source_tokens - 2
        encoded = self.tokenizers.target.encode_ids(prefixes)
        for offset, ids in enumerate(encoded):
            if len(ids) > limit:
                log.warning(f"prefix of line {first_line + offset}: {len(ids)} tokens, truncated to {limit}")
                encoded[offset] = ids[:limit]
        return encoded

    def _batches(self, lengths: list[int]) -> Iterator[list[int]]:
        """Indices of non-empty inputs grouped by similar length (longest first)."""
        order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: -lengths[i])
        if self.decode.batch_tokens:
            return cut_batches(order, lengths, max_tokens=self.decode.batch_tokens)
        return cut_batches(order, lengths, max_sentences=self.decode.batch_size)

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None,
                        first_line: int = 1) -> list[list[Hypothesis]]:
        """n-best hypotheses for each line, in input order (`first_line` numbers warnings)."""
        sources = self._encode(lines, first_line)
        prefix_ids = self._encode_prefixes(prefixes, first_line) if prefixes else None
        results: list[list[Hypothesis]] = [[Hypothesis()] for _ in lines]
        for batch in self._batches([len(s) for s in sources]):
            prefix = _padded([prefix_ids[i] for i in batch], 1) if prefix_ids is not None else None
            found = search(self.model, _padded([sources[i] for i in batch]), self.decode, target_prefix=prefix)
            for row, i in enumerate(batch):
                hyps = [self._with_text(h) for h in found.hypotheses[row]]
                results[i] = hyps or [Hypothesis(score=float("-inf"))]  # never lose a line
        return results

    def _with_text(self, hyp: Hypothesis) -> Hypothesis:
        target = self.tokenizers.target
        return Hypothesis(ids=hyp.ids, score=hyp.score, token_logprobs=hyp.token_logprobs,
                          text=target.decode_ids([hyp.ids])[0],
                          pieces=target.processor.IdToPiece(hyp.ids) if hyp.ids else [])

    def translate(self, lines: list[str], first_line: int = 1) -> list[str]:
        """Best translation per line, in input order."""
        return [nbest[0].text for nbest in self.translate_nbest(lines, first_line=first_line)]
