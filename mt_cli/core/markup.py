"""One line of HTML as what is kept verbatim and what is translated.

Why this shape: tags, attributes, comments and entities must come out byte for byte, so the
line is cut (by the stdlib's `html.parser`, which knows HTML's tokenizing rules: attribute
quoting, `<script>`/`<style>` raw text, comments) into raw slices of the line itself, and
only the text between block-level boundaries becomes a `Segment` to translate. Inline tags
(`<b>`, `<a href>`, `<span>`, ...) inside that text are taken out and remembered with their
character position (core/tag_placement.py puts them back into the translation); every other
tag, comment or declaration is a boundary kept in place, and the contents of `<script>`,
`<style>`, `<code>` and `<pre>` are never touched. An incomplete construct (an unclosed
comment or tag) is kept verbatim with the rest of the line: the parser is only fed, never
closed, because its `close()` re-scans such a tail from every `<` (quadratic on a 1 MB line);
feeding alone is linear (a bogus `&#`, where feeding would stop too, is fed as `& `).
Adjacent text events are merged, so memory stays linear in the line.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from itertools import groupby

__all__ = ["INLINE", "MAX_INLINE_TAGS", "OPAQUE", "InlineTag", "Part", "Segment", "escape", "parse_line"]

INLINE = frozenset(("a abbr b bdi bdo big cite data del dfn em font i img ins kbd label mark q s samp small "
                    "span strike strong sub sup time tt u var").split())
VOID_INLINE = frozenset({"img"})
OPAQUE = frozenset({"script", "style", "code", "pre"})  # their contents are kept verbatim
MAX_INLINE_TAGS = 64  # per segment; a further inline tag is a boundary (bounds placement's work and depth)
ENTITY = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)")
# "&#" that starts no character reference: html.parser stops there to wait for more input
BOGUS_CHARREF = re.compile(r"&#(?!(?:[0-9]+|[xX][0-9a-fA-F]+)[^0-9a-fA-F])")
TEXT, START, END, SELF_CLOSED, OTHER = "text", "start", "end", "self-closed", "other"


@dataclass(frozen=True)
class InlineTag:
    """An inline tag taken out of a segment: its raw text, name, kind ("open", "close" or
    "point": a void or self-closed tag) and character offset in the segment's `text`."""

    raw: str
    name: str
    kind: str
    at: int


@dataclass
class Segment:
    """Text to translate (entities decoded), the whitespace around it as HTML to write back
    (`lead`, `trail`: `&nbsp;` stays so), its inline tags, and how the source spelled the
    characters it wrote as entities."""

    text: str = ""
    lead: str = ""
    trail: str = ""
    tags: list[InlineTag] = field(default_factory=list)
    entities: dict[str, str] = field(default_factory=dict)


Part = str | Segment  # a raw slice kept as is, or a segment to translate


class _Events(HTMLParser):
    """(offset, kind, tag name) of each construct, in order; consecutive text merged."""

    def __init__(self, line: str) -> None:
        super().__init__(convert_charrefs=False)
        self.events: list[tuple[int, str, str]] = []
        self._starts = [0] + [m.end() for m in re.finditer("\n", line)] if "\n" in line else None

    def _add(self, kind: str, name: str = "") -> None:
        row, col = self.getpos()
        at = col if self._starts is None else self._starts[row - 1] + col
        if kind == TEXT and self.events and self.events[-1][1] == TEXT:
            return
        self.events.append((at, kind, name))

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._add(START, tag)

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        self._add(SELF_CLOSED, tag)

    def handle_endtag(self, tag: str) -> None:
        self._add(END, tag)

    def handle_data(self, data: str) -> None:
        self._add(TEXT)

    def handle_entityref(self, name: str) -> None:
        self._add(TEXT)

    def handle_charref(self, name: str) -> None:
        self._add(TEXT)

    def handle_comment(self, data: str) -> None:
        self._add(OTHER)

    def handle_decl(self, decl: str) -> None:
        self._add(OTHER)

    def handle_pi(self, data: str) -> None:
        self._add(OTHER)

    def unknown_decl(self, data: str) -> None:
        self._add(OTHER)


class _Builder:
    """Parts of one line: raw slices merged, segments opened by text and closed by boundaries."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.segment: Segment | None = None

    def raw(self, text: str) -> None:
        self.flush()
        if text:
            self.parts.append(text)

    def text(self, raw: str) -> None:
        segment = self.segment = self.segment or Segment()
        segment.text += html.unescape(raw)
        for match in ENTITY.finditer(raw):
            decoded = html.unescape(match.group())
            if len(decoded) == 1 and decoded != match.group():
                segment.entities.setdefault(decoded, match.group())

    def inline(self, raw: str, name: str, kind: str) -> None:
        if self.segment is not None and len(self.segment.tags) >= MAX_INLINE_TAGS:
            self.raw(raw)
            return
        segment = self.segment = self.segment or Segment()
        segment.tags.append(InlineTag(raw, name, kind, len(segment.text)))

    def flush(self) -> None:
        """The open segment ends: one without text to translate is kept as its raw parts."""
        segment, self.segment = self.segment, None
        if segment is None:
            return
        core = segment.text.strip()
        if not core:  # whitespace and tags only: nothing to translate, written back as it came
            self.raw(_as_written(segment))
            return
        lead = segment.text[:len(segment.text) - len(segment.text.lstrip())]
        trail = segment.text[len(lead) + len(core):]
        tags = [InlineTag(t.raw, t.name, t.kind, min(max(t.at - len(lead), 0), len(core))) for t in segment.tags]
        entities = segment.entities
        self.parts.append(Segment(core, escape(lead, entities), escape(trail, entities), tags, entities))


def _as_written(segment: Segment) -> str:
    """A segment without words, back as text with its tags at their places."""
    out, done = [], 0
    for tag in segment.tags:
        out += [escape(segment.text[done:tag.at], segment.entities), tag.raw]
        done = tag.at
    return "".join(out) + escape(segment.text[done:], segment.entities)


def escape(text: str, entities: dict[str, str]) -> str:
    """Text written back into HTML: the characters the source wrote as entities as it wrote
    them, `&`, `<` and `>` escaped (so the output is well-formed), everything else as is."""
    table = {ord(c): e for c, e in entities.items()}
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        table.setdefault(ord(char), entity)
    return text.translate(table)


def parse_line(line: str) -> list[Part]:
    """The line as raw slices and segments; their raw slices and the segments' text with their
    tags give the line back (up to entity spelling and `&<>` escaping in translated text)."""
    parser = _Events(line)
    parser.feed(BOGUS_CHARREF.sub("& ", line))  # the same length: offsets still index `line`
    tail = len(line) - len(parser.rawdata)  # an incomplete construct and all after it: kept as is
    events = [e for e in parser.events if e[0] < tail]
    build, opaque, depth = _Builder(), "", 0  # the outermost opaque element, and how deep in it
    for n, (start, kind, name) in enumerate(events):
        stop = events[n + 1][0] if n + 1 < len(events) else tail
        raw = line[start:stop]
        if depth:
            build.raw(raw)
            depth += (kind == START and name == opaque) - (kind == END and name == opaque)
        elif kind == TEXT:
            build.text(raw)
        elif kind in (START, END, SELF_CLOSED) and name in INLINE:
            point = kind == SELF_CLOSED or (kind == START and name in VOID_INLINE)
            build.inline(raw, name, "point" if point else "open" if kind == START else "close")
        else:
            build.raw(raw)
            if kind == START and name in OPAQUE:
                opaque, depth = name, 1
    build.raw(line[tail:])
    build.flush()
    return _merged(build.parts)


def _merged(parts: list[Part]) -> list[Part]:
    """Consecutive raw slices joined into one (joined once: linear however many there are)."""
    out: list[Part] = []
    for is_raw, run in groupby(parts, key=lambda part: isinstance(part, str)):
        out.extend(["".join(run)] if is_raw else run)  # type: ignore[arg-type]
    return out
