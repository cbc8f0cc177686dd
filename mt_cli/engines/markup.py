"""Any engine translating HTML lines: each line parsed (core/markup.py), the text segments of
all lines decoded in one call (the engine's usual length-sorted batches), each segment's
inline tags placed in its translation (core/tag_placement.py, by word alignments when the
engine returns them), and the line put back together around its raw slices. `translate
--markup html` wraps its engine in `MarkupTranslator`; `serve` calls `translate_markup` per batch."""

from __future__ import annotations

import math
from collections.abc import Callable

from mt_cli.core.config import DecodeConfig
from mt_cli.core.errors import ConfigError
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.markup import Part, Segment, parse_line
from mt_cli.core.tag_placement import place_tags
from mt_cli.engines.protocol import WrappedTranslator

__all__ = ["MARKUPS", "MarkupTranslator", "translate_markup"]

MARKUPS = ("none", "html")
Decode = Callable[[list[str]], list[list[Hypothesis]]]


def _line(parts: list[Part], found: list[list[Hypothesis]], rank: int) -> Hypothesis:
    """One line's `rank`-th hypothesis: each segment's hypothesis of that rank (its last if it
    has fewer) with its tags placed; the score is the mean of the segments' (0 without any)."""
    texts: list[str] = []
    hyps: list[Hypothesis] = []
    segments = iter(found)
    for part in parts:
        if isinstance(part, Segment):
            nbest = next(segments)
            hyp = nbest[min(rank, len(nbest) - 1)]
            hyps.append(hyp)
            texts += [part.lead, place_tags(part, hyp.text, hyp.alignment), part.trail]
        else:
            texts.append(part)
    score = math.fsum(h.score for h in hyps) / len(hyps) if hyps else 0.0
    return Hypothesis(ids=[i for h in hyps for i in h.ids], score=score, text="".join(texts),
                      token_logprobs=[p for h in hyps for p in h.token_logprobs],
                      pieces=[p for h in hyps for p in h.pieces])


def translate_markup(decode: Decode, lines: list[str]) -> list[list[Hypothesis]]:
    """`lines` of HTML translated by `decode` (plain lines in, n-best lists out), as many
    hypotheses per line as its segments' longest n-best list (one for a line without text)."""
    parsed = [parse_line(line) for line in lines]
    texts = [part.text for parts in parsed for part in parts if isinstance(part, Segment)]
    found = decode(texts) if texts else []
    out, start = [], 0
    for parts in parsed:
        count = sum(isinstance(part, Segment) for part in parts)
        own = found[start:start + count]
        start += count
        ranks = max((len(nbest) for nbest in own), default=1)
        out.append([_line(parts, own, rank) for rank in range(ranks)])
    return out


class MarkupTranslator(WrappedTranslator):
    """An engine whose every line is a line of HTML (`translate --markup html`)."""

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None, first_line: int = 1,
                        constraints: list[str] | None = None,
                        decode: DecodeConfig | None = None) -> list[list[Hypothesis]]:
        if prefixes is not None or constraints is not None:
            raise ConfigError("target prefixes and constraints are per line, not per text segment: "
                              "not with --markup html")
        per_call = {} if decode is None else {"decode": decode}
        return translate_markup(lambda texts: self.inner.translate_nbest(texts, first_line=first_line, **per_call),
                                lines)
