"""The one hypothesis type every decoding engine returns and every output format reads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hypothesis:
    """One translation of one input line.

    `ids` are target vocabulary ids without bos/eos; `pieces` the same tokens as
    SentencePiece pieces; `text` their detokenized string. `score` is the length-
    normalised log-probability; `token_logprobs` has one entry per id plus a final one
    for eos (empty when the engine does not report them); `alignment` the word links.
    """

    ids: list[int] = field(default_factory=list)
    score: float = 0.0
    token_logprobs: list[float] = field(default_factory=list)
    text: str = ""
    pieces: list[str] = field(default_factory=list)
    alignment: list[tuple[int, int]] | None = None  # (source word, target word), when asked for
