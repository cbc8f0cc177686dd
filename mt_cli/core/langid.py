"""Which language a line is in: py3langid (langid.py's naive Bayes over byte n-grams, 97
languages, its model inside the wheel), restricted to a few candidates and answering only
when sure.

Why py3langid: on Multi30k's short sentences, restricted to the pair plus the common
languages, it named 100 % of whole lines and 97.5 % of 3-word prefixes at about 30,000 lines/s
on one core, with a calibrated confidence; lingua was 6x slower and less accurate on short
lines, fastText's lid.176 as accurate but brought a downloader and its dependencies along
(scripts/langid_eval.py; the figures are in docs/data.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from mt_cli.core.errors import ConfigError

UNSURE = ""  # what `identify` answers when not confident enough
MAX_CHARS = 400  # characters of a line looked at: the language shows long before, and time grows with length


@lru_cache(maxsize=1)
def _full_model() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def supported() -> list[str]:
    """The ISO 639-1 codes the identifier knows, sorted."""
    return sorted(_full_model().labels)


def check_codes(codes: Iterable[tuple[str, str]]) -> None:
    """Each (flag, code) must be a language the identifier knows: fail naming the flag, the
    code and the supported codes."""
    known = set(supported())
    _full_model.cache_clear()  # the main process of a pooled run needs it no more (~80 MB)
    for flag, code in codes:
        if code not in known:
            raise ConfigError(f"{flag}: unknown language code {code!r}; language ID knows "
                              f"{', '.join(sorted(known))} (or turn it off with --no-lang-id)", flag)


class Identifier:
    """Language ID over `candidates` (all known languages when None); `identify` answers
    (code, confidence), the code UNSURE below `min_confidence` or for lines under `min_chars`."""

    def __init__(self, candidates: Iterable[str] | None, min_confidence: float, min_chars: int) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self._model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if candidates is not None:
            known = set(self._model.labels)
            self._model.set_languages(sorted({c for c in candidates if c in known}))
        self.min_confidence = min_confidence
        self.min_chars = min_chars

    def identify(self, text: str) -> tuple[str, float]:
        text = text.strip()
        if len(text) < max(1, self.min_chars):
            return UNSURE, 0.0
        code, confidence = self._model.classify(text[:MAX_CHARS])
        return (code if confidence >= self.min_confidence else UNSURE), confidence

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every candidate with its probability, most likely first (serve's /detect)."""
        return [(code, float(p)) for code, p in self._model.rank(text.strip()[:MAX_CHARS])]


def version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("py3langid")
    except metadata.PackageNotFoundError:
        return None
