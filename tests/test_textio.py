"""One definition of "a line": bytes up to b"\\n", counted and read the same way everywhere."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mt_cli.core.errors import DataError
from mt_cli.core.textio import (
    atomic_write_lines,
    check_same_length,
    count_lines,
    iter_lines,
    iter_stream,
    read_lines,
    require_nonempty,
)


def data_error(fn, *args) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    return str(info.value)


@pytest.mark.parametrize("raw, lines", [
    (b"a\nb\n", ["a", "b"]),
    (b"a\nb", ["a", "b"]),  # missing final newline: the last line still counts
    (b"", []),
    (b"\n", [""]),
    (b"\n\n", ["", ""]),
    (b"a\n\nb\n\n", ["a", "", "b", ""]),
    (b"a\rb\nc\n", ["a\rb", "c"]),  # a lone CR is not a line break
    ("a\u2028b\u2029c\nd\n".encode(), ["a\u2028b\u2029c", "d"]),  # nor LINE/PARAGRAPH SEPARATOR
    ("a\x85b\x0bc\x0cd\x1ce\n".encode(), ["a\x85b\x0bc\x0cd\x1ce"]),  # nor NEL, VT, FF, FS
    (b"a\x00b\nc\x00\n", ["a\x00b", "c\x00"]),  # nor NUL
    (b"a\r\nb\r\n", ["a", "b"]),  # CRLF loses its CR
    (b"a\r\nb", ["a", "b"]),
    (b"a\r\r\n", ["a\r"]),  # only the one CR before LF goes
    (b"a\r", ["a"]),  # a final CR without LF is dropped as well
    (b"\r\n\r\n", ["", ""]),
    ("gr\u00fc\u00dfe \u4e16\u754c \U0001f600\n".encode(), ["gr\u00fc\u00dfe \u4e16\u754c \U0001f600"]),
])
def test_count_and_iter_agree(tmp_path: Path, raw: bytes, lines: list[str]) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(raw)
    assert list(iter_lines(path)) == lines
    assert read_lines(path) == lines
    assert count_lines(path) == len(lines)
    assert list(iter_stream(io.BytesIO(raw), "mem")) == lines


@pytest.mark.parametrize("tail", [b"", b"x", b"\n", b"xy\n", b"last"])
def test_count_lines_across_chunk_boundary(tmp_path: Path, tail: bytes) -> None:
    """count_lines reads 1 MiB chunks: the final-line rule must hold at any boundary."""
    line = b"0123456789abcde\n"  # 16 bytes: the first MiB ends exactly on a newline
    body = line * ((1 << 20) // len(line))
    path = tmp_path / "big.txt"
    path.write_bytes(body + tail)
    assert count_lines(path) == sum(1 for _ in iter_lines(path))


def test_iter_lines_streams(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"one\ntwo\n\xff\n")
    lines = iter_lines(path)
    assert next(lines) == "one"  # a generator: lines come before the bad one is reached
    assert next(lines) == "two"
    with pytest.raises(DataError):
        next(lines)


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"ok\nbad \xff here\nfine\n")
    assert data_error(read_lines, path) == (
        f"{path}:2: invalid UTF-8 (byte 4 of the line); re-encode the file as UTF-8")
    assert count_lines(path) == 3  # counting does not decode


def test_truncated_multibyte_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "cut.txt"
    path.write_bytes("ok\n\u00e9".encode()[:-1] + b"\n")
    assert data_error(read_lines, path).startswith(f"{path}:2: invalid UTF-8 (byte 0 of the line)")


def test_lenient_mode_replaces(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"ok\nbad \xff here\r\ncaf\xe9\n")
    assert read_lines(path, lenient=True) == ["ok", "bad \ufffd here", "caf\ufffd"]
    assert list(iter_lines(path, lenient=True)) == read_lines(path, lenient=True)


def test_stdin_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\r\nb\n\xfe\n")))
    lines = iter_lines("-")
    assert [next(lines), next(lines)] == ["a", "b"]
    with pytest.raises(DataError) as info:
        next(lines)
    assert str(info.value).startswith("<stdin>:3: invalid UTF-8")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "absent.txt"
    assert data_error(read_lines, missing) == f"{missing}: file not found"
    assert data_error(count_lines, missing) == f"{missing}: file not found"
    assert data_error(read_lines, tmp_path) == f"{tmp_path}: is a directory, expected a text file"
    assert data_error(count_lines, tmp_path) == f"{tmp_path}: is a directory, expected a text file"


def test_check_same_length(tmp_path: Path) -> None:
    src, tgt = tmp_path / "a.src", tmp_path / "a.tgt"
    src.write_text("1\n2\n3\n")
    tgt.write_text("1\n2\n")
    assert data_error(check_same_length, src, tgt) == (
        f"{src} has 3 lines but {tgt} has 2: parallel files must have one line per sentence pair")
    tgt.write_bytes(b"1\r\n2\r\nthree")  # CRLF and no final newline: still 3 lines
    assert check_same_length(src, tgt) == 3
    tgt.write_bytes(b"1\n2\r3\n")  # a lone CR does not make a line
    assert data_error(check_same_length, src, tgt).endswith(f"{tgt} has 2: parallel files must have "
                                                             "one line per sentence pair")


def test_require_nonempty(tmp_path: Path) -> None:
    assert data_error(require_nonempty, tmp_path / "e.txt", []) == f"{tmp_path / 'e.txt'}: file is empty"
    require_nonempty(tmp_path / "x.txt", [""])  # one empty line is a line


# ---------------------------------------------------------------- atomic_write_lines


def test_atomic_write_lines_writes_lf_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_lines(target, iter(["a", "", "\u00fc\u00df", "tab\there"]))
    assert target.read_bytes() == "a\n\n\u00fc\u00df\ntab\there\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    assert read_lines(target) == ["a", "", "\u00fc\u00df", "tab\there"]
    atomic_write_lines(target, [])
    assert target.read_bytes() == b""


def test_atomic_write_lines_replaces_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "out.txt"
    atomic_write_lines(target, ["first"])
    atomic_write_lines(target, ["second", "run"])
    assert target.read_text() == "second\nrun\n"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_write_lines_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    atomic_write_lines("rel.txt", ["x"])
    assert (tmp_path / "rel.txt").read_text() == "x\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rel.txt"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt(), DataError("bad line")])
def test_failed_generator_keeps_previous_file(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "out.txt"
    target.write_text("previous\ncontent\n")

    def lines():
        yield "new 1"
        yield "new 2"
        raise error

    with pytest.raises(type(error)):
        atomic_write_lines(target, lines())
    assert target.read_text() == "previous\ncontent\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # temp file removed


def test_failed_generator_leaves_no_new_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"

    def lines():
        yield "x"
        raise ValueError("midway")

    with pytest.raises(ValueError, match="midway"):
        atomic_write_lines(target, lines())
    assert list(tmp_path.iterdir()) == []


def test_unwritable_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "out.txt").write_text("old\n")
    locked.chmod(0o500)
    try:
        assert data_error(atomic_write_lines, locked / "out.txt", ["x"]) == (
            f"{locked / 'out.txt'}: cannot write (Permission denied)")
        assert (locked / "out.txt").read_text() == "old\n"
        assert [p.name for p in locked.iterdir()] == ["out.txt"]
    finally:
        locked.chmod(0o700)


def test_parent_is_a_file(tmp_path: Path) -> None:
    """Works as root too: no permission bits involved."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory\n")
    target = blocker / "out.txt"
    message = data_error(atomic_write_lines, target, ["x"])
    assert message.startswith(f"{target}: cannot write (")
    assert blocker.read_text() == "not a directory\n"


def test_target_is_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    message = data_error(atomic_write_lines, target, ["x"])
    assert message.startswith(f"{target}: cannot write (")
    assert target.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["dir"]  # temp file removed


def test_written_file_has_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        target = tmp_path / "out.txt"
        atomic_write_lines(target, ["x"])
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)


# ---------------------------------------------------------------- bounded lines

def test_max_chars_cuts_long_lines_and_names_them(caplog: pytest.LogCaptureFixture) -> None:
    """Each line is cut to max_chars (a warning names it); the next line is intact, a character
    split by the byte bound is dropped, not called invalid UTF-8, and short lines pass as they are."""
    raw = b"short\n" + "é".encode() * 50 + b"\r\n" + b"x" * 1000 + b"\nlast \xe2\x82\xac"
    with caplog.at_level("WARNING", logger="mt_cli"):
        lines = list(iter_stream(io.BytesIO(raw), "in.txt", max_chars=10))
    assert lines == ["short", "é" * 10, "x" * 10, "last €"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and warnings[0].startswith("in.txt:2: longer than ")
    assert warnings[1].startswith("in.txt:3: longer than ") and "cut to 10" in warnings[1]
    # the byte bound (4 * 3 = 12) splits the fourth 3-byte character: dropped, no UTF-8 error
    assert list(iter_stream(io.BytesIO(("a" + "€" * 10 + "\n").encode()), "x", max_chars=3)) == ["a€€"]
    with pytest.raises(DataError, match="^in.txt:1: invalid UTF-8"):  # real invalid bytes still are
        list(iter_stream(io.BytesIO(b"\xff" * 100 + b"\n"), "in.txt", max_chars=10))
    assert list(iter_stream(io.BytesIO(b"\xff" * 30), "x", lenient=True, max_chars=5)) == ["\ufffd" * 5]


READER = """
import sys
from mt_cli.core.textio import iter_lines
lines = [len(line) for line in iter_lines("-", max_chars=32768)]
print(lines)
"""
WRAPPER = """
import resource, subprocess, sys
reader = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
block = b"a" * (1 << 20)
for _ in range(int(sys.argv[2])):
    reader.stdin.write(block)
reader.stdin.write(b"\\nnext line\\n")
reader.stdin.close()
print(reader.stdout.read().decode().strip())
reader.wait()
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
"""


def test_a_huge_line_is_never_held_whole() -> None:
    """A 300 MB line without a newline, read through the bounded reader: peak RSS of the
    reading process stays far below the line (it held the whole line, twice, before)."""
    size_mb = 300
    done = subprocess.run([sys.executable, "-c", WRAPPER, READER, str(size_mb)], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    lengths, peak_mb = done.stdout.split("\n")[:2]
    assert lengths == "[32768, 9]"
    assert int(peak_mb) < 100, f"peak RSS {peak_mb} MB for a {size_mb} MB line"
    assert "<stdin>:1: longer than 131072 characters, cut to 32768" in done.stderr
