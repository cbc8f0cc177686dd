"""Inline tags put back into a segment's translation, always well-nested.

Why this way: the model translates the segment's text without its tags (tags inside the
text would be pieces the model never saw, and cost BLEU), so each tag pair becomes a span of
source words, mapped to a span of target words: by the engine's word alignments when it
gives them (the native engine's `decode.alignments`: the target words linked to the span's
source words, first to last), else by relative position (source word i of S is near target
word i*T/S). Spans form a tree (pairing by name as HTML does; a tag left open runs to where
an outer one closes, or to the segment's end; a stray closing tag encloses what precedes
it); each span is clamped into its parent's target span and siblings are kept from
overlapping (and in source order next to an unpaired tag), so the output nests however the
alignment reorders words. The tree is rendered word by word: whitespace between words stays
outside opening tags and after closing ones.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from mt_cli.core.markup import InlineTag, Segment, escape

__all__ = ["place_tags"]

WORD = re.compile(r"\S+")
TRAILING = re.compile(r"[^\w\s&;]+$")  # a word's trailing punctuation (never an entity's end)


@dataclass
class _Span:
    """A node of the tag tree: source word span [start, stop), its open/close tags (either may
    be missing for an unpaired tag), its children in source order, and its target span."""

    start: int
    stop: int
    open: str = ""
    close: str = ""
    before_punctuation: bool = False  # closed inside a word, before its trailing punctuation only
    point: bool = False  # a void or self-closed tag
    children: list[_Span] = field(default_factory=list)
    target: tuple[int, int] = (0, 0)


def _tree(segment: Segment) -> _Span:
    """The segment's tags as nested spans of source words."""
    words = [m.span() for m in WORD.finditer(segment.text)]
    starts, ends = [s for s, _ in words], [e for _, e in words]

    def opening(at: int) -> int:  # the first word not ended before `at`
        return bisect_right(ends, at)

    def closing(at: int) -> int:  # the words started before `at`
        return bisect_left(starts, at)

    root = _Span(0, len(words))
    stack: list[tuple[str, _Span]] = [("", root)]
    for tag in segment.tags:
        parent = stack[-1][1]
        if tag.kind == "point":
            parent.children.append(_Span(closing(tag.at), closing(tag.at), tag.raw, point=True))
        elif tag.kind == "open":
            span = _Span(opening(tag.at), len(words), tag.raw)
            parent.children.append(span)
            stack.append((tag.name, span))
        elif any(name == tag.name for name, _ in stack[1:]):
            rest = segment.text[tag.at:ends[closing(tag.at) - 1]] if closing(tag.at) else ""
            _close(stack, tag, closing(tag.at), bool(rest) and not any(c.isalnum() for c in rest))
        else:  # a closing tag without its opening one: it encloses all before it, up to here
            stray = _Span(parent.start, max(parent.start, closing(tag.at)), "", tag.raw)
            stray.children, parent.children = parent.children, [stray]
    return root


def _close(stack: list[tuple[str, _Span]], tag: InlineTag, stop: int, before_punctuation: bool) -> None:
    """Close `tag`'s element, and the ones left open inside it (they end here too, their
    closing tag absent as in the source)."""
    while True:
        name, span = stack.pop()
        span.stop = max(span.start, stop)
        if name == tag.name:
            span.close, span.before_punctuation = tag.raw, before_punctuation
            return


@dataclass(frozen=True)
class _Links:
    """Word alignments both ways: target words of each source word, source words of each target word."""

    targets: dict[int, list[int]]
    sources: dict[int, set[int]]

    def span(self, start: int, stop: int) -> tuple[int, int] | None:
        """The target words of source words [start, stop), first to last: those linked only into
        the span when there are any (a word whose punctuation piece looked elsewhere is
        not pulled in), else all linked ones; None when none is linked."""
        linked = [j for i in range(start, stop) for j in self.targets.get(i, ())]
        own = [j for j in linked if all(start <= i < stop for i in self.sources[j])]
        chosen = own or linked
        return (min(chosen), max(chosen) + 1) if chosen else None


def _mapped(span: _Span, source_words: int, target_words: int, links: _Links | None) -> tuple[int, int]:
    """Where a source span lands in the target, before nesting is enforced."""
    found = links.span(span.start, span.stop) if links is not None and span.stop > span.start else None
    if found is not None:
        return found
    if source_words == 0:
        return (0, target_words) if span.stop > span.start else (target_words, target_words)
    start = round(span.start * target_words / source_words)
    stop = round(span.stop * target_words / source_words)
    if span.stop > span.start and stop <= start and target_words:  # a word keeps at least one word
        start = min(start, target_words - 1)
        stop = start + 1
    return start, stop


def _place(node: _Span, source_words: int, target_words: int, links: _Links | None) -> None:
    """Children's target spans inside their parent's, not overlapping one another."""
    low, high = node.target
    for child in node.children:
        start, stop = _mapped(child, source_words, target_words, links)
        start = min(max(start, low), high)
        child.target = (start, min(max(stop, start), high))
    if all(child.point or (child.open and child.close) for child in node.children):
        node.children.sort(key=lambda child: child.target[0])  # stable: ties keep the source order
    # else an unpaired tag is among them: its pair lies beyond the segment, so the order stays
    done = low
    for child in node.children:
        start = max(child.target[0], done)
        child.target = (start, max(child.target[1], start))
        done = child.target[1]
        _place(child, source_words, target_words, links)


def _walk(node: _Span, out: list[tuple[str, int | str]]) -> None:
    """The node's contents in order: ("word", j), ("open", tag), ("close", tag)."""
    at = node.target[0]
    for child in node.children:
        out.extend(("word", j) for j in range(at, child.target[0]))
        if child.open:
            out.append(("open", child.open))
        _walk(child, out)
        if child.close:
            out.append(("close" if not child.before_punctuation else "close-in-word", child.close))
        at = child.target[1]
    out.extend(("word", j) for j in range(at, node.target[1]))


def _joined(events: list[tuple[str, int | str]], words: Sequence[str], gaps: Sequence[str]) -> str:
    """The events as text: the whitespace before a word goes after the closing tags that
    precede it and before the opening ones ("ein <b>Hund</b> rennt"); a tag the source closed
    before a word's trailing punctuation ("<a>snow</a>.") closes before the target word's."""
    out: list[str] = []
    pending: list[tuple[str, int | str]] = []
    held = ""  # trailing punctuation of the last word, moved after the closing tags that precede it
    at_word = False  # out[-1] is a word
    for kind, value in events:
        if kind == "close-in-word" and not pending and out:
            match = TRAILING.search(out[-1]) if at_word else None
            if match and match.start() > 0:
                out[-1], held = out[-1][:match.start()], match.group()
            out.append(str(value))
            at_word = False
            continue
        if kind != "word":
            pending.append((kind, value))
            continue
        j = int(value)
        gap = gaps[j] if j > 0 else ""
        cut = next((n for n, (k, _) in enumerate(pending) if k == "open"), len(pending))
        out.extend([held, *(str(v) for _, v in pending[:cut]), gap, *(str(v) for _, v in pending[cut:]), words[j]])
        pending, held, at_word = [], "", True
    out.extend([held, *(str(v) for _, v in pending)])
    return "".join(out)


def place_tags(segment: Segment, translation: str, links: Sequence[tuple[int, int]] | None = None) -> str:
    """`translation` (plain text) with the segment's inline tags placed, escaped for HTML;
    `links` are (source word, target word) alignments, None for relative positions."""
    found = list(WORD.finditer(translation))
    words = [escape(m.group(), segment.entities) for m in found]
    gaps = [""] + [escape(translation[a.end():b.start()], segment.entities) for a, b in zip(found, found[1:])]
    root = _tree(segment)
    root.target = (0, len(words))
    known = None
    if links is not None:
        known = _Links({}, {})
        for i, j in links:
            if 0 <= j < len(words):
                known.targets.setdefault(i, []).append(j)
                known.sources.setdefault(j, set()).add(i)
    _place(root, root.stop, len(words), known)
    events: list[tuple[str, int | str]] = []
    _walk(root, events)
    return _joined(events, words, gaps)
