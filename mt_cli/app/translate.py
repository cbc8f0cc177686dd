"""The translate use case: a model directory and lines in, formatted output lines out.

Streams its input in chunks (or line by line with `stream`), keeps N lines in = N results
out in input order, and checks target prefixes against the input line count. Two engines
read model directories: the native one (TensorFlow) and CTranslate2 exports; which one is
read from the directory's manifest, and only the native one loads TensorFlow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from mt_cli.core.alignment import moses
from mt_cli.core.errors import ConstraintError, DataError
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.shard import shard_range
from mt_cli.core.textio import (
    check_line_counts,
    chunked,
    chunked_within,
    count_lines,
    display_name,
    iter_handle,
    iter_lines,
    read_window,
    reads_once,
    spool,
)
from mt_cli.engines.protocol import LineTranslator

__all__ = ["SourcePlan", "chunk_size", "format_nbest", "plan_source", "translate_lines"]
# Lines read ahead (and sorted by length) per translation round. The same with or without a
# progress bar: a round's make-up moves scores in their last bits, so output never depends on
# whether stderr is a terminal.
CHUNK_LINES = 8192
SIDE_HINT = "give one line per input line (empty for none)"


def _json_fields(hyp: Hypothesis) -> dict[str, object]:
    fields: dict[str, object] = {"text": hyp.text, "score": hyp.score, "tokens": hyp.pieces}
    if hyp.alignment is not None:
        fields["alignment"] = [list(link) for link in hyp.alignment]
    return fields


def _aligned_text(hyp: Hypothesis, text: str) -> str:
    return text if hyp.alignment is None else f"{text} ||| {moses(hyp.alignment)}"


def format_nbest(index: int, nbest: list[Hypothesis], fmt: str, with_scores: bool, n_best: int,
                 record: Mapping[str, object] | None = None) -> list[str]:
    """Output lines for one input; the layout follows the requested n_best, never the count found.
    Alignments, when computed, follow as ` ||| 0-0 1-2` (text) or `"alignment"` (jsonl);
    `record` adds fields to every jsonl record (the engine and why)."""
    if fmt == "jsonl":
        fields = {"index": index, **_json_fields(nbest[0]), **(record or {})}
        if n_best > 1:
            fields["nbest"] = [_json_fields(h) for h in nbest]
        return [json.dumps(fields, ensure_ascii=False)]
    if n_best > 1:
        return [_aligned_text(h, f"{index} ||| {h.text} ||| {h.score:.4f}") for h in nbest]
    best = nbest[0]
    return [_aligned_text(best, f"{best.score:.4f}\t{best.text}" if with_scores else best.text)]


def _aligned_slice(side: list[str] | None, start: int, count: int, names: tuple[str, str]) -> list[str] | None:
    """Lines start..start+count of a per-line side file (prefixes, constraints), which must
    not run out before the input does; `names` = (input, side file)."""
    if side is None:
        return None
    part = side[start:start + count]
    if len(part) != count:
        raise DataError(f"{names[1]} has {len(side)} lines but {names[0]} has more; {SIDE_HINT}")
    return part


def chunk_size(stream: bool, chunk_lines: int | None = None) -> int:
    """Lines per translation round: one with `stream`, else `chunk_lines` or CHUNK_LINES."""
    return 1 if stream else (chunk_lines or CHUNK_LINES)


def translate_lines(translator: LineTranslator, lines: Iterable[str], *, prefixes: list[str] | None = None,
                    constraints: list[str] | None = None, fmt: str = "text", with_scores: bool = False,
                    stream: bool = False, names: tuple[str, ...] = ("<input>", "<prefixes>", "<constraints>"),
                    start: int = 0, keep: tuple[int, int] | None = None, chunk_lines: int | None = None,
                    on_lines_done: Callable[[int], None] | None = None,
                    record: Mapping[str, object] | None = None, chunk_chars: int | None = None) -> Iterator[str]:
    """Formatted output lines (`fmt` text or jsonl) for `lines`, lazily; `names` (input,
    prefix file, constraints file) name them in messages. `start` is the index of the first
    line in the whole input (n-best and jsonl indices and line numbers stay global); only lines
    whose index is in `keep` [start, stop) are output (a shard reading its window, see
    `plan_source`); `on_lines_done(k)` after each round with its k output lines' inputs;
    `chunk_chars` bounds a round's characters too (paragraphs split into sentences)."""
    low, high = keep if keep is not None else (start, math.inf)
    done = 0  # lines read so far
    size = chunk_size(stream, chunk_lines)
    for chunk in chunked(lines, size) if chunk_chars is None else chunked_within(lines, size, chunk_chars):
        chunk_prefixes = _aligned_slice(prefixes, done, len(chunk), (names[0], names[1]))
        chunk_constraints = _aligned_slice(constraints, done, len(chunk), (names[0], names[2]))
        index = start + done
        try:
            found = translator.translate_nbest(chunk, chunk_prefixes, index + 1, constraints=chunk_constraints)
        except ConstraintError as exc:
            raise ConstraintError(f"{names[2]}: {exc}") from None
        kept = [(index + offset, nbest) for offset, nbest in enumerate(found) if low <= index + offset < high]
        for position, nbest in kept:
            yield from format_nbest(position, nbest, fmt, with_scores, translator.decode.n_best, record)
        done += len(chunk)
        if on_lines_done is not None and kept:
            on_lines_done(len(kept))
    for side, name in ((prefixes, names[1]), (constraints, names[2])):
        if side is not None and done != len(side):
            raise DataError(f"{name} has {len(side)} lines but {names[0]} has {done}")


@dataclass(frozen=True)
class SourcePlan:
    """What `translate_lines` reads: the lines of [start, stop) of the input (and of its side
    files), the part of them to output, and how many lines that is (None: not counted)."""

    lines: Iterator[str]
    prefixes: list[str] | None
    constraints: list[str] | None
    start: int
    keep: tuple[int, int] | None
    total: int | None


def _window(span: tuple[int, int], lines: int, chunk: int) -> tuple[int, int]:
    """A shard's lines widened to the rounds of one unsharded run (multiples of `chunk`): every
    line is then batched with the same neighbours as in that run, since a batch's make-up moves
    scores in their last bits. The cost: at most one round of extra lines at each end."""
    start, stop = span
    if start >= stop:
        return start, start
    return start - start % chunk, min(lines, -(-stop // chunk) * chunk)


def _counted_source(path: str | Path, shard: bool, count: bool) -> tuple[BinaryIO | None, int | None]:
    """The input's line count, taken without losing a line: a file is counted in a streaming
    pass (for a shard or `count`); an input that reads once (stdin, a pipe) is copied to a
    temporary file and counted on the way for a shard (the copy returned), else not counted."""
    if shard and reads_once(path):
        return spool(path)
    if (shard or count) and not reads_once(path):
        return None, count_lines(path)
    return None, None


def _spooled_lines(copy: BinaryIO, name: str, max_chars: int, start: int) -> Iterator[str]:
    with copy:
        yield from iter_handle(copy, name, max_chars=max_chars, start=start)


def plan_source(source: Path | None, prefix_file: Path | None, constraints_file: Path | None, *,
                max_chars: int, shard: tuple[int, int] | None = None, chunk: int = CHUNK_LINES,
                count: bool = False) -> SourcePlan:
    """The input of one translate run: all of `source` (None: stdin), or with `shard` (K, N)
    its K-th of N contiguous parts. Every input is read once (see `_counted_source`); side
    files are read whole once, and checked against the input's line count when it is known."""
    path = source or "-"
    copy, lines_in = _counted_source(path, shard is not None, count)
    start, stop, keep, total = 0, None, None, lines_in
    if shard is not None and lines_in is not None:
        keep = shard_range(lines_in, *shard)
        start, stop = _window(keep, lines_in, chunk)
        total = keep[1] - keep[0]

    def side(side_path: Path | None) -> list[str] | None:
        if side_path is None:
            return None
        window, lines = read_window(side_path, start, stop, max_chars=max_chars)
        if lines_in is not None:
            check_line_counts(display_name(path), lines_in, side_path, lines, SIDE_HINT)
        return window

    try:
        sides = side(prefix_file), side(constraints_file)
    except BaseException:
        if copy is not None:
            copy.close()
        raise
    name = display_name(path)
    lines = (iter_lines(path, max_chars=max_chars, start=start) if copy is None
             else _spooled_lines(copy, name, max_chars, start))
    if stop is not None:
        lines = islice(lines, stop - start)
    return SourcePlan(lines, *sides, start, keep, total)
