"""What every engine offers the use cases (translate, evaluate, serve): n-best hypotheses per
line, in input order. Defined once, here; the native and CTranslate2 engines both fit it."""

from __future__ import annotations

from typing import Protocol

from mt_cli.core.config import DecodeConfig
from mt_cli.core.hypothesis import Hypothesis


class LineTranslator(Protocol):
    """What both engines offer: n-best hypotheses per line, in input order. `decode` is the
    engine's own options; a call may pass other ones (`decode=`), which apply to that call
    only, so one engine can serve callers with different options at once."""

    decode: DecodeConfig
    max_source_tokens: int  # positions of the model: what bounds a line worth reading

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None,
                        first_line: int = 1, constraints: list[str] | None = None,
                        decode: DecodeConfig | None = None) -> list[list[Hypothesis]]: ...

    def translate(self, lines: list[str], first_line: int = 1) -> list[str]: ...


class WrappedTranslator:
    """An engine over another that reshapes each line before and after it (paragraphs split
    into sentences, HTML into text segments): the same contract, the inner engine's options
    and limit; a subclass gives `translate_nbest`."""

    def __init__(self, inner: LineTranslator) -> None:
        self.inner = inner
        self.decode = inner.decode
        self.max_source_tokens = inner.max_source_tokens

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None, first_line: int = 1,
                        constraints: list[str] | None = None,
                        decode: DecodeConfig | None = None) -> list[list[Hypothesis]]:
        raise NotImplementedError

    def translate(self, lines: list[str], first_line: int = 1) -> list[str]:
        """Best translation per line, in input order."""
        return [nbest[0].text for nbest in self.translate_nbest(lines, first_line=first_line)]
