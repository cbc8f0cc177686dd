"""Paragraphs split into sentences for translation, and the translations joined back.

Why: a model trained on sentence pairs translates one sentence well and a paragraph badly,
and cuts a paragraph longer than its limit. Each line is split by sentencex (Wikimedia's rule
segmenter: ~300 languages, MIT, no dependencies; 200 KB of text in 0.01 s where pysbd took
6 s for 100 KB, see docs/translation.md), the sentences of all lines are translated together,
and each line's translations are joined with the line's own separators (the whitespace
between its sentences, verbatim). A sentence still longer than the model's limit is cut at
word boundaries (inside a word only when one word is over the limit), never truncated, and
the cut is said in a warning. Every step is linear in the text: a 1 MB paragraph costs
seconds of segmentation at most, not memory.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mt_cli.core.errors import ConfigError
from mt_cli.core.extras import installed
from mt_cli.core.tokenizer import CHARS_PER_PIECE

__all__ = ["MAX_PARAGRAPH_CHARS", "Split", "require_segmenter", "segment", "split_lines"]
log = logging.getLogger("mt_cli")

# A line read for splitting is held whole up to here (2 Mi characters; beyond: cut with a warning).
MAX_PARAGRAPH_CHARS = 1 << 21
SEGMENTER = "sentencex"
EXTRA = "sentences"
UNCOUNTED = 1 << 62  # the size of a sentence too long in characters to be worth tokenizing
WORD = re.compile(r"\S+\s*")
TokenCounter = Callable[[list[str]], list[int]]


def require_segmenter(purpose: str) -> None:
    """One line naming the extra to install when the segmenter is missing."""
    if not installed(SEGMENTER):
        raise ConfigError(f"{purpose} needs the '{EXTRA}' extra: pip install 'mt-cli[{EXTRA}]' "
                          f"(the package {SEGMENTER} is not installed)")


def segment(text: str, language: str) -> list[str]:
    """The text's sentences with their surrounding whitespace: joined they give `text` back
    (checked: should the segmenter ever drop a character, the text stays one sentence)."""
    import sentencex

    parts = [part for part in sentencex.segment(language, text) if part]
    return parts if "".join(parts) == text else [text]


@dataclass(frozen=True)
class Split:
    """The sentences of several lines, in order, and how each line joins back: `gaps[i]`
    holds the separators between line i's sentences (one fewer than its sentences; a line
    without any sentence has none and gives an empty line)."""

    sentences: list[str]
    counts: list[int]
    gaps: list[list[str]]

    def per_line(self, items: Sequence[object]) -> list[list[object]]:
        """One item per sentence, grouped by line."""
        out, start = [], 0
        for count in self.counts:
            out.append(list(items[start:start + count]))
            start += count
        return out

    def join(self, texts: Sequence[str]) -> list[str]:
        """Each line's translated sentences with its own separators between them."""
        lines = []
        for gaps, parts in zip(self.gaps, self.per_line(texts)):
            line = str(parts[0]) if parts else ""
            for gap, part in zip(gaps, parts[1:]):
                line += gap + str(part)
            lines.append(line)
        return lines


def _sentences_of(line: str, language: str) -> tuple[list[str], list[str]]:
    """A line's sentences (stripped, none empty) and the whitespace between them; the line's
    own leading and trailing whitespace is not kept (as without splitting)."""
    sentences: list[str] = []
    gaps: list[str] = []
    pending = ""
    for part in segment(line, language) if line.strip() else []:
        core = part.strip()
        if not core:
            pending += part
            continue
        lead = part[:len(part) - len(part.lstrip())]
        if sentences:
            gaps.append(pending + lead)
        sentences.append(core)
        pending = part[len(part.rstrip()):]
    return sentences, gaps


def _cut_word(word: str, limit: int, count: TokenCounter) -> list[str]:
    """A word over `limit` tokens in parts that fit: windows of characters, halved until one fits."""
    parts, size, start = [], max(1, limit), 0
    while start < len(word):
        while size > 1 and count([word[start:start + size]])[0] > limit:
            size //= 2
        parts.append(word[start:start + size])
        start += size
    return parts


def _cut_sentence(sentence: str, limit: int, count: TokenCounter) -> tuple[list[str], list[str]]:
    """A sentence over `limit` tokens as parts within it, cut after whole words (a word over the
    limit alone is cut inside); the whitespace at each cut is its separator. A part's size is
    its words' sizes plus one per space between them, so it fits however the joins tokenize."""
    words = WORD.findall(sentence)
    sizes = _sizes([word.rstrip() for word in words], limit, count)
    parts: list[str] = []
    gaps: list[str] = []
    current, used = "", 0
    for word, size in zip(words, sizes):
        pieces = [word] if size <= limit else [*_cut_word(word.rstrip(), limit, count), word[len(word.rstrip()):]]
        for piece in pieces:
            piece_size = size if len(pieces) == 1 else (count([piece])[0] if piece.strip() else 0)
            joins = bool(current and current[-1].isspace())  # a join may take a piece of its own
            if current and used + joins + piece_size > limit:
                parts.append(current.rstrip())
                gaps.append(current[len(current.rstrip()):])
                current, used, joins = "", 0, False
            current += piece
            used += joins + piece_size
    parts.append(current.rstrip())
    return parts, gaps


def _sizes(sentences: list[str], limit: int, count: TokenCounter) -> list[int]:
    """Each sentence's tokens; one so long in characters that it cannot fit is not tokenized
    whole (SentencePiece's memory grows with a line): it is marked over the limit."""
    bound = limit * CHARS_PER_PIECE
    short = iter(count([s for s in sentences if len(s) <= bound]) if sentences else [])
    return [next(short) if len(s) <= bound else UNCOUNTED for s in sentences]


def _said(size: int, sentence: str) -> str:
    return f"{len(sentence)} characters" if size == UNCOUNTED else f"{size} tokens"


def split_lines(lines: Sequence[str], language: str, limit: int, count: TokenCounter,
                first_line: int = 1) -> Split:
    """The sentences of `lines` (segmented as `language`), each within `limit` tokens as
    `count` counts them: a longer one is cut (see `_cut_sentence`) with a warning naming
    its line."""
    sentences: list[str] = []
    counts: list[int] = []
    gaps: list[list[str]] = []
    for number, line in enumerate(lines, first_line):
        found, between = _sentences_of(line, language)
        sizes = _sizes(found, limit, count)
        kept: list[str] = []
        joins: list[str] = []
        for i, (sentence, size) in enumerate(zip(found, sizes)):
            parts, cuts = ([sentence], []) if size <= limit else _cut_sentence(sentence, limit, count)
            if size > limit:
                log.warning(f"line {number}: a sentence of {_said(size, sentence)}, over the model's limit of "
                            f"{limit} tokens: translated in {len(parts)} parts cut between words (inside a "
                            "word only where one word is over the limit), not truncated")
            if i:
                joins.append(between[i - 1])
            joins.extend(cuts)
            kept.extend(parts)
        sentences.extend(kept)
        counts.append(len(kept))
        gaps.append(joins)
    return Split(sentences, counts, gaps)
