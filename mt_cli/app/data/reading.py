"""The inputs of `data clean`/`check`: two line-aligned files read as raw pairs in chunks,
each file's sha256 taken on the way, and the --against files as sets of normalised lines."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mt_cli.core.clean_rules import normalized_hash
from mt_cli.core.textio import (
    PARALLEL_HINT,
    check_line_counts,
    count_lines,
    display_name,
    iter_raw,
    open_input,
    reads_once,
)

MAX_LINE_BYTES = 1 << 24  # a line is never held beyond this, whatever the length rules say


class HashingReader:
    """A binary file whose bytes are hashed (sha256) as they are read, all of them."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def readline(self, size: int = -1) -> bytes:
        data = self._handle.readline(size)
        self.digest.update(data)
        return data

    def drain(self) -> int:
        """Read (and hash) the rest; return the lines it held."""
        lines, last = 0, b"\n"
        while block := self._handle.read(1 << 20):
            self.digest.update(block)
            lines += block.count(b"\n")
            last = block[-1:]
        return lines + (last != b"\n")


@dataclass
class InputFile:
    """What the report says of an input: its name, lines and sha256."""

    path: str
    lines: int = 0
    sha256: str = ""
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"path": self.path, "lines": self.lines, "sha256": self.sha256, **self.extra}


def count_pairs(source: Path, target: Path) -> int | None:
    """The pairs two regular files hold, failing with both names and counts unless they are
    line-aligned; None for an input that reads once (checked as it is read instead)."""
    if reads_once(source) or reads_once(target):
        return None
    n_source = count_lines(source)
    check_line_counts(source, n_source, target, count_lines(target))
    return n_source


def read_pairs(source: Path, target: Path, max_bytes: int, chunk: int,
               files: tuple[InputFile, InputFile]) -> Iterator[tuple[list[bytes], list[bytes], list[bool]]]:
    """Chunks of (source lines, target lines, cut) as raw bytes; at the end, `files` get their
    line counts and sha256. Fails naming both files and counts if one ends first."""
    with open_input(source) as s_handle, open_input(target) as t_handle:
        readers = HashingReader(s_handle), HashingReader(t_handle)
        pairs = zip_longest(iter_raw(readers[0], max_bytes), iter_raw(readers[1], max_bytes))
        count = 0
        while True:
            sources: list[bytes] = []
            targets: list[bytes] = []
            cut: list[bool] = []
            for left, right in pairs:
                if left is None or right is None:
                    _mismatch(source, target, readers, count, left is None)
                sources.append(left[0])
                targets.append(right[0])
                cut.append(left[1] or right[1])
                count += 1
                if len(sources) == chunk:
                    break
            if not sources:
                break
            yield sources, targets, cut
        for info, reader in zip(files, readers):
            info.lines, info.sha256 = count, reader.digest.hexdigest()


def _mismatch(source: Path, target: Path, readers: Sequence[HashingReader], count: int, source_ended: bool) -> None:
    longer = readers[1] if source_ended else readers[0]
    more = count + 1 + longer.drain()
    n_source, n_target = (count, more) if source_ended else (more, count)
    check_line_counts(display_name(source), n_source, display_name(target), n_target, PARALLEL_HINT)


def load_against(paths: Sequence[Path]) -> tuple[list[np.ndarray], list[InputFile]]:
    """Per --against file: the sorted hashes of its distinct non-empty lines (whitespace
    collapsed, case folded) and its record (lines, distinct lines, sha256)."""
    tables, records = [], []
    for path in paths:
        hashes, lines = set(), 0
        with open_input(path) as handle:
            reader = HashingReader(handle)
            for raw, _ in iter_raw(reader, MAX_LINE_BYTES):
                lines += 1
                text = raw.decode("utf-8", errors="replace")
                if text.strip():
                    hashes.add(normalized_hash(text))
        tables.append(np.array(sorted(hashes), dtype=np.uint64))
        records.append(InputFile(display_name(path), lines, reader.digest.hexdigest(),
                                 {"distinct_lines": len(hashes)}))
    return tables, records
