"""Translate lines with a loaded model: batching by length, order restored, no line lost.

N lines in give N results out: an empty line gives an empty translation without touching
the model, an over-long line is truncated to the model's limit with a warning naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_cli.config import DecodeConfig
from mt_cli.tokenizer import EOS_ID, Tokenizers

log = logging.getLogger("mt_cli")


@dataclass
class Hypothesis:
    text: str
    score: float
    tokens: list[str] = field(default_factory=list)


def search_options(decode: DecodeConfig):
    from mt_cli.search import SearchOptions

    return SearchOptions(
        beam_size=decode.beam_size, length_penalty=decode.length_penalty,
        coverage_penalty=decode.coverage_penalty, max_length_a=decode.max_length_a,
        max_length_b=decode.max_length_b, n_best=decode.n_best,
        sampling_topk=decode.sampling_topk, sampling_topp=decode.sampling_topp,
        sampling_temperature=decode.sampling_temperature, seed=decode.seed)


class Translator:
    """A model, its tokenizers and decoding options, ready to translate batches of lines."""

    def __init__(self, model: Any, tokenizers: Tokenizers, decode: DecodeConfig,
                 max_source_tokens: int | None = None) -> None:
        """`max_source_tokens`: the model's position limit (model.max_length)."""
        self.model = model
        self.tokenizers = tokenizers
        self.decode = decode
        self.max_source_tokens = max_source_tokens or 512
        self.options = search_options(decode)

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
        batch: list[int] = []
        for i in order:
            longest = lengths[batch[0]] if batch else lengths[i]
            full = (len(batch) >= self.decode.batch_size if not self.decode.batch_tokens
                    else (len(batch) + 1) * longest > self.decode.batch_tokens)
            if batch and full:
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None,
                        first_line: int = 1) -> list[list[Hypothesis]]:
        """n-best hypotheses for each line, in input order."""
        import numpy as np

        from mt_cli.search import search

        sources = self._encode(lines, first_line)
        prefix_ids = self._encode_prefixes(prefixes, first_line) if prefixes else None
        results: list[list[Hypothesis]] = [[Hypothesis("", 0.0)] for _ in lines]
        for batch in self._batches([len(s) for s in sources]):
            width = max(len(sources[i]) for i in batch)
            array = np.zeros((len(batch), width), np.int32)
            for row, i in enumerate(batch):
                array[row, :len(sources[i])] = sources[i]
            prefix_array = None
            if prefix_ids is not None:
                pwidth = max(1, max(len(prefix_ids[i]) for i in batch))
                prefix_array = np.zeros((len(batch), pwidth), np.int32)
                for row, i in enumerate(batch):
                    prefix_array[row, :len(prefix_ids[i])] = prefix_ids[i]
            found = search(self.model, array, self.options, target_prefix=prefix_array)
            for row, i in enumerate(batch):
                hyps = [self._hypothesis(h.tokens, h.score) for h in found.hypotheses[row]]
                results[i] = hyps or [Hypothesis("", float("-inf"))]  # never lose a line
        return results

    def _hypothesis(self, ids: list[int], score: float) -> Hypothesis:
        target = self.tokenizers.target
        return Hypothesis(target.decode_ids([ids])[0], float(score),
                          target.processor.IdToPiece(ids) if ids else [])

    def translate(self, lines: list[str], first_line: int = 1) -> list[str]:
        """Best translation per line, in input order."""
        return [nbest[0].text for nbest in self.translate_nbest(lines, first_line=first_line)]


def set_threads(threads: int) -> None:
    """Limit TensorFlow's CPU threads (must run before the first op)."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))


def load_translator(model: str | Path, overrides: list[str] | None = None) -> Translator:
    """Load a model directory with `--set` style decode overrides applied."""
    from mt_cli.checkpoint import load_export

    loaded = load_export(model, overrides)
    return Translator(loaded.model, loaded.tokenizers, loaded.config.decode,
                      loaded.config.model.max_length)


def chunked(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def translate_file_lines(model: str | Path, lines: list[str], overrides: list[str] | None = None) -> list[str]:
    """Translate a list of lines with a model directory (used by `evaluate -m`)."""
    return load_translator(model, overrides).translate(lines)
