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
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
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


def iter_raw(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """(raw line, cut) per line by the same rule as `iter_lines`, undecoded: the final "\\n" and a
    "\\r" before it dropped; a line over `max_bytes` is cut to them (`cut` True), the rest skipped unread."""
    for raw, cut in _records(stream, max_bytes):
        if not cut:
            raw = raw[:-1] if raw.endswith(b"\n") else raw
            raw = raw[:-1] if raw.endswith(b"\r") else raw
        yield raw, cut


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


def open_input(path: str | Path) -> BinaryIO:
    """A file opened for reading bytes; a missing, unreadable or directory path fails naming it."""
    return _open_binary(path)


def _opened(path: str | Path) -> AbstractContextManager[BinaryIO]:
    """`path` opened for reading bytes, as a context ("-": stdin, left open)."""
    return nullcontext(sys.stdin.buffer) if str(path) == "-" else _open_binary(path)


def display_name(path: str | Path) -> str:
    """How an input is named in messages ("-" is stdin)."""
    return STDIN_NAME if str(path) == "-" else str(path)


def iter_lines(path: str | Path, lenient: bool = False, max_chars: int | None = None,
               start: int = 0) -> Iterator[str]:
    """Stream the lines of a file (or stdin for "-") without loading it whole; `max_chars`
    bounds each line (see `iter_stream`); `start` lines are skipped first, undecoded."""
    with _opened(path) as handle:
        yield from iter_handle(handle, display_name(path), lenient, max_chars, start)


def iter_handle(handle: BinaryIO, name: str, lenient: bool = False, max_chars: int | None = None,
                start: int = 0) -> Iterator[str]:
    """`iter_lines` over an open binary stream (a spooled copy), named `name` in messages."""
    _skip_records(handle, start)
    yield from iter_stream(handle, name, lenient, max_chars, first_lineno=start + 1)


def _skip_records(stream: BinaryIO, count: int) -> int:
    """Pass over `count` b"\\n"-terminated records in bounded reads (a shard's lines before its
    own are neither decoded nor held: a bad or huge line there is another shard's concern);
    return how many there were (fewer at the end of the stream)."""
    for skipped in range(count):
        while (raw := stream.readline(READ_CHUNK)) and not raw.endswith(b"\n"):
            pass
        if not raw:
            return skipped
    return count


def read_lines(path: str | Path, lenient: bool = False, max_chars: int | None = None) -> list[str]:
    """All lines of a file (or stdin for "-"), each cut to `max_chars` if given."""
    return list(iter_lines(path, lenient, max_chars))


def _count_records(stream: BinaryIO, sink: BinaryIO | None = None) -> int:
    """Lines left in `stream` by the same rule as `iter_lines` (a final line without newline
    counts), read 1 MiB at a time; each block is also written to `sink` if given."""
    count = 0
    last = b"\n"
    while block := stream.read(1 << 20):
        count += block.count(b"\n")
        last = block[-1:]
        if sink is not None:
            sink.write(block)
    return count + (0 if last == b"\n" else 1)


def count_lines(path: str | Path) -> int:
    """Number of lines by the same rule as `iter_lines` (final line without newline counts)."""
    with _open_binary(path) as handle:
        return _count_records(handle)


def reads_once(path: str | Path) -> bool:
    """Whether an input can be read only once: stdin ("-") and anything but a regular file (a
    pipe from `<(...)`, a FIFO, a device). Counting such an input first would leave nothing to
    translate; a path that cannot be looked up is left to the open that names the problem."""
    if str(path) == "-":
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def spool(path: str | Path) -> tuple[BinaryIO, int]:
    """An input that can be read only once, copied to a temporary file and counted in the same
    pass (1 MiB in memory at a time): the copy, at its start, and its line count. The copy is
    unlinked at once, so it goes with the handle (or the process, even on kill -9)."""
    copy = tempfile.TemporaryFile(prefix="mt-cli-spool-")
    try:
        with _opened(path) as handle:
            total = _count_records(handle, copy)
        copy.flush()
        copy.seek(0)
    except OSError as exc:
        copy.close()
        raise DataError(f"{display_name(path)}: cannot keep a copy of it in {tempfile.gettempdir()} "
                        f"({exc.strerror}); set TMPDIR to a larger disk, or give a regular file") from None
    except BaseException:
        copy.close()
        raise
    return copy, total


def read_window(path: str | Path, start: int, stop: int | None,
                max_chars: int | None = None) -> tuple[list[str], int]:
    """Lines [start, stop) of an input read once (a pipe too), and how many lines it has in all:
    the lines outside the window are counted, neither decoded nor held."""
    with _opened(path) as handle:
        before = _skip_records(handle, start)
        lines = iter_stream(handle, display_name(path), max_chars=max_chars, first_lineno=start + 1)
        window = list(lines if stop is None else islice(lines, stop - start))
        return window, before + len(window) + _count_records(handle)


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


def chunked_within(lines: Iterable[str], size: int, max_chars: int) -> Iterator[list[str]]:
    """Like `chunked`, each chunk also at most `max_chars` characters (a longer line comes
    alone): rounds of paragraphs stay bounded in memory however long their lines are."""
    chunk: list[str] = []
    chars = 0
    for line in lines:
        if chunk and (len(chunk) == size or chars + len(line) > max_chars):
            yield chunk
            chunk, chars = [], 0
        chunk.append(line)
        chars += len(line)
    if chunk:
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
