"""The verdict on each pair of a chunk of raw lines: the first rule (core/clean_settings.py's
RULES) that drops it, with what the summary needs (lengths, languages, overlaps) and a hash
for the duplicate check, which needs every earlier pair and so is made by the caller.

Pure functions of the lines and the settings, so chunks can be judged in any process; the
caller keeps the order and the hashes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mt_cli.core.clean_settings import RULE_CODE, CleanConfig, uses_words
from mt_cli.core.hashset import HashSet
from mt_cli.core.langid import UNSURE, Identifier

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 controls but tab
URL = re.compile(r"(?:https?://|ftp://|www\.)\S+|[\w.+-]+@[\w-]+\.[\w.-]+")
MARKUP = re.compile(r"<[^<>\n]{1,200}>|&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]{2,10});")
MAY_HOLD_URL_OR_MARKUP = re.compile(r"[:@<&]|www\.")
NOT_LETTER = re.compile(r"[\W\d_]+")
NOT_DIGIT = re.compile(r"\D+")
UNSURE_LANG = -1  # a side's language: looked at, not sure
NOT_LOOKED = -2  # not looked at (the pair was dropped before the language rule)


def pair_hash(source: bytes, target: bytes) -> int:
    """8 bytes of blake2b over a pair's exact bytes, never 0 (0 marks "no hash")."""
    digest = hashlib.blake2b(source + b"\n" + target, digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1


def normalized_hash(text: str) -> int:
    """8 bytes of blake2b over a line with whitespace collapsed and case folded (the overlap rule)."""
    folded = " ".join(text.split()).casefold()
    return int.from_bytes(hashlib.blake2b(folded.encode("utf-8"), digest_size=8).digest(), "little")


def _nonspace(text: str) -> int:
    return len("".join(text.split()))


def nontext_rule(text: str, min_letter_share: float) -> str | None:
    """"mostly_urls", "mostly_markup", "mostly_numbers" or "mostly_punctuation" when fewer than
    `min_letter_share` of a side's non-space characters are letters outside URLs and markup
    (named by the largest of the rest), else None."""
    nonspace = _nonspace(text)
    if not nonspace or not min_letter_share:
        return None
    shares = {"mostly_urls": 0, "mostly_markup": 0}
    rest = text
    if MAY_HOLD_URL_OR_MARKUP.search(text):
        for name, pattern in (("mostly_urls", URL), ("mostly_markup", MARKUP)):
            found = pattern.findall(rest)
            shares[name] = sum(_nonspace(part) for part in found)
            if found:
                rest = pattern.sub(" ", rest)
    letters = len(NOT_LETTER.sub("", rest))
    if letters >= min_letter_share * nonspace:
        return None
    shares["mostly_numbers"] = digits = len(NOT_DIGIT.sub("", rest))
    shares["mostly_punctuation"] = _nonspace(rest) - letters - digits
    return max(shares, key=lambda name: shares[name])


@dataclass
class ChunkVerdict:
    """Per pair of a chunk: `code` (0 kept, else RULE_CODE of the rule that drops it; the
    duplicate rule is the caller's), `hash` (0: not a duplicate candidate), lengths in
    characters and words (0 where not measured), the language index per side into
    `languages` (UNSURE_LANG, NOT_LOOKED), and `against[i, f]`: the pair's
    source or target is in --against file f."""

    code: np.ndarray
    hash: np.ndarray
    chars: np.ndarray   # (n, 2): source, target
    words: np.ndarray   # (n, 2)
    lang: np.ndarray    # (n, 2)
    against: np.ndarray  # (n, files)
    measured: np.ndarray  # decodable and not empty: the pairs the summary describes
    languages: list[str]  # the codes `lang` indexes


class Judge:
    """The rules with their settings, for pairs in (source_lang, target_lang); without the
    languages (data check), the languages are identified among all but nothing is dropped for them."""

    def __init__(self, settings: CleanConfig, langs: tuple[str, str] | None,
                 against: Sequence[np.ndarray] = ()) -> None:
        self.settings = settings
        self.langs = langs
        self.against = [np.sort(np.asarray(a, dtype=np.uint64)) for a in against]
        candidates = None if langs is None else (*langs, *settings.lang_candidates)
        self.identifier = Identifier(candidates, settings.lang_min_confidence, settings.lang_min_chars)
        self.languages: list[str] = []
        self._index: dict[str, int] = {}
        self.word_sides = (True, True) if langs is None else (uses_words(langs[0]), uses_words(langs[1]))

    def _lang(self, text: str) -> int:
        code, _ = self.identifier.identify(text)
        if code == UNSURE:
            return UNSURE_LANG
        if code not in self._index:
            self._index[code] = len(self.languages)
            self.languages.append(code)
        return self._index[code]

    def judge(self, sources: Sequence[bytes], targets: Sequence[bytes], cut: Sequence[bool]) -> ChunkVerdict:
        n = len(sources)
        out = ChunkVerdict(code=np.zeros(n, np.uint8), hash=np.zeros(n, np.uint64),
                           chars=np.zeros((n, 2), np.uint32), words=np.zeros((n, 2), np.uint32),
                           lang=np.full((n, 2), NOT_LOOKED, np.int16),
                           against=np.zeros((n, len(self.against)), bool), measured=np.zeros(n, bool),
                           languages=self.languages)
        norm = np.zeros((n, 2), np.uint64)
        for i in range(n):
            out.code[i] = self._judge_pair(i, sources[i], targets[i], cut[i], out, norm)
        for f, table in enumerate(self.against):
            if len(table):
                hit = np.isin(norm, table) & out.measured[:, None]
                out.against[:, f] = hit.any(axis=1)
        overlap = out.against.any(axis=1) & (out.code == 0)
        out.code[overlap] = RULE_CODE["overlap"]
        self._wrong_language(out)
        out.languages = list(self.languages)
        return out

    def _judge_pair(self, i: int, raw_source: bytes, raw_target: bytes, cut: bool,
                    out: ChunkVerdict, norm: np.ndarray) -> int:
        if not raw_source.strip() or not raw_target.strip():
            return RULE_CODE["empty"]
        if cut:
            return RULE_CODE["too_long"]  # longer than the bytes the reader holds: never decoded nor hashed
        try:
            texts = [raw_source.decode("utf-8"), raw_target.decode("utf-8")]
        except UnicodeDecodeError:
            return RULE_CODE["invalid_utf8"]
        source, target = texts
        if not source.strip() or not target.strip():
            return RULE_CODE["empty"]
        if "\ufffd" in source or "\ufffd" in target:
            return RULE_CODE["invalid_utf8"]
        if self.settings.drop_control_chars and (CONTROL.search(source) or CONTROL.search(target)):
            return RULE_CODE["control_chars"]
        out.measured[i] = True
        out.hash[i] = pair_hash(raw_source, raw_target)
        for side, text in enumerate(texts):
            out.chars[i, side] = len(text.strip())
            out.words[i, side] = len(text.split())
            norm[i, side] = normalized_hash(text)
        return self._content_rules(texts, out.chars[i], out.words[i], out.lang[i])

    def _content_rules(self, texts: list[str], chars: np.ndarray, words: np.ndarray, lang: np.ndarray) -> int:
        s = self.settings
        if s.drop_identical and " ".join(texts[0].split()) == " ".join(texts[1].split()):
            return RULE_CODE["identical"]
        sides = range(2)
        worded = [side for side in sides if self.word_sides[side]]
        if any(chars[k] < s.min_chars for k in sides) or any(words[k] < s.min_words for k in worded):
            return RULE_CODE["too_short"]
        if (s.max_chars and any(chars[k] > s.max_chars for k in sides)) or \
                (s.max_words and any(words[k] > s.max_words for k in worded)):
            return RULE_CODE["too_long"]
        if max(chars) >= s.ratio_min_chars:
            if s.max_ratio_chars and max(chars) > s.max_ratio_chars * max(1, min(chars)):
                return RULE_CODE["ratio_chars"]
            if s.max_ratio_words and len(worded) == 2 and max(words) > s.max_ratio_words * max(1, min(words)):
                return RULE_CODE["ratio_words"]
        for text in texts:
            rule = nontext_rule(text, s.min_letter_share)
            if rule is not None:
                return RULE_CODE[rule]
        if s.lang_id:
            lang[0], lang[1] = self._lang(texts[0]), self._lang(texts[1])
        return 0

    def _wrong_language(self, out: ChunkVerdict) -> None:
        """Drop the kept pairs with a side confidently in another language (only when the pair's
        languages are given and the rule is on)."""
        if self.langs is None or not self.settings.lang_id:
            return
        expected = [self._index.get(code, NOT_LOOKED) for code in self.langs]
        for side in range(2):
            named = out.lang[:, side] >= 0
            wrong = named & (out.lang[:, side] != expected[side]) & (out.code == 0)
            out.code[wrong] = RULE_CODE["wrong_language"]


def final_codes(verdict: ChunkVerdict, seen: HashSet | None) -> np.ndarray:
    """The final codes: a hashed pair seen before (in this chunk or an earlier one) is a duplicate,
    whatever later rule it would have met."""
    codes = verdict.code.copy()
    if seen is None:
        return codes
    candidates = np.flatnonzero(verdict.hash != 0)
    new = seen.first_seen(verdict.hash[candidates])
    codes[candidates[~new]] = RULE_CODE["duplicate"]
    return codes
