"""Line-exact text I/O shared by every command.

One definition of "a line" everywhere: bytes up to b"\\n". A lone "\\r", U+2028 or a NUL
byte never starts a new line (Python's text mode and TF's reader disagree on those),
a trailing "\\r" (CRLF files) is dropped, and a missing final newline still ends a line.
So N lines counted here are N lines read, tokenized, translated and scored.
"""

from __future__ import annotations

import codecs
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TypeVar

from mt_cli.core.errors import DataError

STDIN_NAME = "<stdin>"
READ_CHUNK = 1 << 16  # bytes read at a time while skipping the rest of an over-long line
MAX_UTF8_BYTES = 4  # a character takes at most 4 bytes: max_chars characters fit in 4 * max_chars
log = logging.getLogger("mt_cli")
T = TypeVar("T")


def _decode(raw: bytes, name: str, lineno: int, lenient: bool, final: bool = True) -> str:
    """Decode one raw line, naming the file and line on invalid UTF-8; `final=False` (a line cut
    at a byte bound) drops a character split by the cut instead of calling it invalid."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(raw, final=final)
    except UnicodeDecodeError as exc:
        if lenient:
            return raw.decode("utf-8", errors="replace")
        raise DataError(
            f"{name}:{lineno}: invalid UTF-8 (byte {exc.start} of the line); "
            "re-encode the file as UTF-8"
        ) from None


def _records(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """(raw record, cut) per b"\\n"-terminated record, holding at most `max_bytes` of one: the
    rest of a longer record is read in bounded chunks and dropped (a 1 GB line without a
    newline costs READ_CHUNK, not 1 GB)."""
    while raw := stream.readline(max_bytes + 1):
        if raw.endswith(b"\n") or len(raw) <= max_bytes:
            yield raw, False
            continue
        while (rest := stream.readline(READ_CHUNK)) and not rest.endswith(b"\n"):
            pass
        yield raw[:max_bytes], True


def iter_stream(stream: BinaryIO, name: str, lenient: bool = False, max_chars: int | None = None,
                first_lineno: int = 1) -> Iterator[str]:
    """Yield decoded lines of a binary stream, one per b"\\n"-terminated record; with `max_chars`
    each line is cut to that many characters (with a warning naming it) and never held whole.
    `first_lineno` numbers messages when the stream starts past a file's first line."""
    if max_chars is None:
        for lineno, raw in enumerate(stream, start=first_lineno):
            yield _decode(raw, name, lineno, lenient)
        return
    for lineno, (raw, cut) in enumerate(_records(stream, MAX_UTF8_BYTES * max_chars), start=first_lineno):
        line = _decode(raw, name, lineno, lenient, final=not cut)
        if cut or len(line) > max_chars:
            log.warning(f"{name}:{lineno}: {'longer than ' if cut else ''}{len(line)} characters, cut to "
                        f"{max_chars} (more than the model can read)")
            line = line[:max_chars]
        yield line


def _open_binary(path: str | Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None


def iter_lines(path: str | Path, lenient: bool = False, max_chars: int | None = None,
               start: int = 0) -> Iterator[str]:
    """Stream the lines of a file (or stdin for "-") without loading it whole; `max_chars`
    bounds each line (see `iter_stream`); `start` lines are skipped first, undecoded."""
    if str(path) == "-":
        yield from iter_stream(sys.stdin.buffer, STDIN_NAME, lenient, max_chars)
        return
    with _open_binary(path) as handle:
        _skip_records(handle, start)
        yield from iter_stream(handle, str(path), lenient, max_chars, first_lineno=start + 1)


def _skip_records(stream: BinaryIO, count: int) -> None:
    """Pass over `count` b"\\n"-terminated records in bounded reads (a shard's lines before its
    own are neither decoded nor held: a bad or huge line there is another shard's concern)."""
    for _ in range(count):
        while (raw := stream.readline(READ_CHUNK)) and not raw.endswith(b"\n"):
            pass
        if not raw:
            return


def read_lines(path: str | Path, lenient: bool = False, max_chars: int | None = None) -> list[str]:
    """All lines of a file (or stdin for "-"), each cut to `max_chars` if given."""
    return list(iter_lines(path, lenient, max_chars))


def count_lines(path: str | Path) -> int:
    """Number of lines by the same rule as `iter_lines` (final line without newline counts)."""
    count = 0
    last = b"\n"
    with _open_binary(path) as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


PARALLEL_HINT = "parallel files must have one line per sentence pair"


def check_line_counts(first: str | Path, n_first: int, second: str | Path, n_second: int,
                      hint: str = PARALLEL_HINT) -> None:
    """Misaligned files give wrong pairs or meaningless scores: fail naming both and counts."""
    if n_first != n_second:
        raise DataError(f"{first} has {n_first} lines but {second} has {n_second}: {hint}")


def check_same_length(first: str | Path, second: str | Path) -> int:
    """Fail with both names and counts unless two files are line-aligned; return the count."""
    n_first = count_lines(first)
    check_line_counts(first, n_first, second, count_lines(second))
    return n_first


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last one shorter): streams without loading all."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def require_nonempty(path: str | Path, lines: list[str]) -> None:
    """An empty input file is almost always a mistake worth a clear message."""
    if not lines:
        raise DataError(f"{path}: file is empty")


def atomic_write_lines(path: str | Path, lines: Iterable[str]) -> None:
    """Write lines to `path` via a temp file + rename, so a crash never leaves half a file."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    except OSError as exc:
        raise DataError(f"{target}: cannot write ({exc.strerror})") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp makes 0600; output files are ordinary files
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for line in lines:
                handle.write(line)
                handle.write("\n")
        os.replace(tmp_name, target)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise DataError(f"{target}: cannot write ({exc.strerror})") from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
