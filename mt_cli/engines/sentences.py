"""Any engine translating paragraphs: lines split into sentences (core/sentences.py), the
sentences of all lines decoded in one call (the engine's usual length-sorted batches), each
line's translations joined back into one hypothesis. `translate --split-sentences` wraps its
engine in `SentenceTranslator`; `serve` calls `translate_split` per batch."""

from __future__ import annotations

import math
from typing import Any

from mt_cli.core.config import DecodeConfig
from mt_cli.core.errors import ConfigError
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.sentences import Split, TokenCounter, split_lines
from mt_cli.engines.protocol import LineTranslator, WrappedTranslator

__all__ = ["SentenceTranslator", "check_split_options", "joined", "source_token_counter", "translate_split"]


def source_token_counter(translator: Any) -> TokenCounter:
    """How many source pieces each line takes, by the engine's own SentencePiece model."""
    source = translator.tokenizers.source
    return lambda lines: [len(row) for row in source.encode_ids(lines)]


def check_split_options(decode: DecodeConfig, names: dict[str, str]) -> None:
    """What a joined paragraph cannot carry: several hypotheses, word alignments; `names`
    says how the caller spells the options ({"n_best": "--n-best", ...})."""
    if decode.n_best > 1:
        raise ConfigError(f"{names['n_best']} {decode.n_best}: sentence splitting gives one translation "
                          "per line; use n-best 1", "n_best")
    if decode.alignments:
        raise ConfigError(f"{names['alignments']}: not with sentence splitting (alignments are per sentence)",
                          "alignments")


def joined(split: Split, found: list[list[Hypothesis]]) -> list[list[Hypothesis]]:
    """One hypothesis per line: its sentences' texts joined with the line's separators, their
    pieces and ids in order, and the mean of their scores (0 for a line without sentences)."""
    texts = split.join([nbest[0].text for nbest in found])
    out = []
    for text, parts in zip(texts, split.per_line([nbest[0] for nbest in found])):
        hyps: list[Hypothesis] = parts  # type: ignore[assignment]
        score = math.fsum(h.score for h in hyps) / len(hyps) if hyps else 0.0
        out.append([Hypothesis(ids=[i for h in hyps for i in h.ids], score=score,
                               token_logprobs=[p for h in hyps for p in h.token_logprobs], text=text,
                               pieces=[p for h in hyps for p in h.pieces])])
    return out


def translate_split(translator: LineTranslator, lines: list[str], language: str, first_line: int = 1,
                    decode: DecodeConfig | None = None) -> list[list[Hypothesis]]:
    """`lines` translated sentence by sentence (segmented as `language`), one joined
    hypothesis per line; sentences over the model's limit are cut, with a warning."""
    split = split_lines(lines, language, translator.max_source_tokens - 1, source_token_counter(translator),
                        first_line)
    per_call = {} if decode is None else {"decode": decode}
    found = translator.translate_nbest(split.sentences, **per_call) if split.sentences else []
    return joined(split, found)


class SentenceTranslator(WrappedTranslator):
    """An engine whose every line is a paragraph (`translate --split-sentences`)."""

    def __init__(self, inner: LineTranslator, language: str) -> None:
        super().__init__(inner)
        self.language = language

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None, first_line: int = 1,
                        constraints: list[str] | None = None,
                        decode: DecodeConfig | None = None) -> list[list[Hypothesis]]:
        if prefixes is not None or constraints is not None:
            raise ConfigError("target prefixes and constraints are per line, not per sentence: "
                              "not with sentence splitting")
        return translate_split(self.inner, lines, self.language, first_line, decode)
