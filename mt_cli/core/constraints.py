"""Terminology constraints as users write them: one line per input line, tab-separated
target phrases, empty for none.

Why its own module: the file format (and its documented edge cases) is text handling the
CLI, the translator and the tests share; the search only ever sees piece ids.
"""

from __future__ import annotations

FIELD_SEPARATOR = "\t"


def parse_constraint_line(line: str) -> list[str]:
    """The phrases one line requires, in order of first appearance.

    Fields are stripped; empty fields (a trailing tab, two tabs) are ignored, and a phrase
    listed twice is required once: the output must contain each distinct phrase at least
    once, as contiguous pieces.
    """
    phrases: list[str] = []
    for field in line.split(FIELD_SEPARATOR):
        phrase = " ".join(field.split())
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    return phrases


def distinct_pieces(phrases: list[list[int]]) -> list[list[int]]:
    """Encoded phrases without empty or repeated ones (two spellings can encode alike)."""
    kept: list[list[int]] = []
    for ids in phrases:
        if ids and ids not in kept:
            kept.append(ids)
    return kept
