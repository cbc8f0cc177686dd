"""What `mt-cli data clean` and `data check` drop, and with which thresholds: the rules in the
order they are tried, and their settings as one frozen dataclass of `_opt` fields (default,
rule, doc, CLI flag), so a `data.clean:` config section can embed it as it is.

A pair is counted under the first rule that drops it, so the counts add up to the pairs
dropped. docs/data.md explains each rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mt_cli.core.fields import rule_field as _opt

# The rules in the order they are tried; the report counts each (a pair under the first that fires).
RULES = (
    "empty",               # a side empty or whitespace only
    "invalid_utf8",        # bytes that are not UTF-8, or U+FFFD left by an earlier lossy decode
    "control_chars",       # C0/C1 control characters other than tab
    "duplicate",           # the same (source, target) bytes as an earlier pair
    "identical",           # source equal to target (whitespace-normalised)
    "too_short",           # fewer characters or words than the minimum, either side
    "too_long",            # more characters or words than the maximum, either side
    "ratio_chars",         # longer / shorter side in characters above the maximum
    "ratio_words",         # the same in words (not for languages written without spaces)
    "mostly_urls",         # a side whose letters are under min_letter_share; named by what dominates
    "mostly_markup",
    "mostly_numbers",
    "mostly_punctuation",
    "overlap",             # source or target found in an --against file
    "wrong_language",      # a side confidently identified as another language
)
# Kept pairs get 0; rule i (0-based in RULES) is code i + 1.
RULE_CODE = {name: index + 1 for index, name in enumerate(RULES)}
FORMAT_RULES = ("empty", "invalid_utf8", "control_chars")  # tried before duplicates: such a pair is not hashed

# Other languages the identifier may answer besides the pair's two: the common ones, in several
# scripts (restricting the candidates makes short lines much more accurate; keeping other
# scripts lets a Russian or Chinese line be named rather than forced onto a Latin-script one).
COMMON_LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "zh", "ja", "ar")
# Written without spaces between words: word counts mean nothing there.
UNSPACED_LANGUAGES = ("zh", "ja", "th", "lo", "km", "my", "bo")


@dataclass(frozen=True)
class CleanConfig:
    """The thresholds of every rule; 0 turns a bound off."""

    drop_control_chars: bool = _opt(True, flag="--keep-control-chars", negate=True,
        doc="drop pairs with control characters (C0/C1 other than tab)")
    dedup: bool = _opt(True, flag="--keep-duplicates", negate=True,
        doc="drop exact duplicate pairs, keeping the first")
    drop_identical: bool = _opt(True, flag="--keep-identical", negate=True,
        doc="drop pairs whose source equals the target (after whitespace normalisation)")
    min_chars: int = _opt(1, ge=0, flag="--min-chars", doc="fewest characters a side may have")
    max_chars: int = _opt(1500, ge=0, flag="--max-chars", doc="most characters a side may have (0 = no limit)")
    min_words: int = _opt(1, ge=0, flag="--min-words", doc="fewest words a side may have")
    max_words: int = _opt(250, ge=0, flag="--max-words", doc="most words a side may have (0 = no limit)")
    max_ratio_chars: float = _opt(3.0, ge=0, flag="--max-ratio-chars",
        doc="most characters of the longer side per character of the shorter (0 = off)")
    max_ratio_words: float = _opt(3.0, ge=0, flag="--max-ratio-words",
        doc="most words of the longer side per word of the shorter (0 = off)")
    ratio_min_chars: int = _opt(20, ge=0, flag="--ratio-min-chars",
        doc="the ratio rules apply only when the longer side has at least this many characters")
    min_letter_share: float = _opt(0.5, ge=0, le=1, flag="--min-letter-share",
        doc="least share of a side's non-space characters that are letters outside URLs and markup (0 = off)")
    lang_id: bool = _opt(True, flag="--no-lang-id", negate=True,
        doc="drop pairs whose source or target is identified as another language")
    lang_min_confidence: float = _opt(0.9, ge=0, le=1, flag="--lang-min-confidence",
        doc="a side is judged only when the identifier is at least this sure")
    lang_min_chars: int = _opt(10, ge=0, flag="--lang-min-chars", doc="shorter sides are never judged")
    lang_candidates: tuple[str, ...] = _opt(COMMON_LANGUAGES, flag="--lang-candidates",
        doc="languages the identifier may answer besides the pair's two")


def field_flag(name: str) -> str:
    """The CLI flag of a CleanConfig field."""
    return next(f.metadata["flag"] for f in dataclasses.fields(CleanConfig) if f.name == name)


def settings_record(settings: CleanConfig) -> dict[str, Any]:
    """The settings as plain JSON (tuples as lists), for the report."""
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(settings).items()}


def uses_words(lang: str | None) -> bool:
    """Whether words (split on spaces) are a meaningful length for `lang`."""
    return lang not in UNSPACED_LANGUAGES
