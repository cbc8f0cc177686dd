"""Inputs that read only once (stdin, `<(...)` pipes, FIFOs) are read once.

`translate` used to count such an input before reading it, and so translated nothing: a
sharded pipe or a pipe with the progress bar gave an empty output with exit 0, and a prefix
file given as a pipe was empty by the time it was read. Each case here runs the real command
in a shell (`bash -c`, for process substitution) and compares with the same file given as a
regular file. Training, which reads its data several times, refuses pipes in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ENGINE_LINE, assert_one_line_error, run_with_terminal_stderr, tiny_config_text, toy_pairs
from typer.testing import CliRunner

from mt_cli.cli.main import app

MT_CLI = Path(sys.executable).parent / "mt-cli"


def _env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "TERM": "xterm",
            "COLUMNS": "120"}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _shell(script: str, *args: object) -> subprocess.CompletedProcess[bytes]:
    """`script` run by bash with $0 = mt-cli and $1.. = `args` (stderr a pipe: no progress bar)."""
    return subprocess.run(["bash", "-c", script, str(MT_CLI), *map(str, args)], capture_output=True,
                          env=_env(), timeout=300, check=False)


def _translate_file(*args: object) -> str:
    result = CliRunner().invoke(app, ["translate", *map(str, args)])
    assert result.exit_code == 0, (result.stderr, result.exception)
    return result.stdout


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("once") / "four.en", [src for src, _ in toy_pairs(4, seed=5)])


# ---------------------------------------------------------------- textio


def test_reads_once_tells_pipes_from_files(tmp_path: Path) -> None:
    from mt_cli.core.textio import reads_once

    regular = _write(tmp_path / "a.txt", ["x"])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    read_end, write_end = os.pipe()
    try:
        assert reads_once("-") and reads_once(fifo) and reads_once(f"/dev/fd/{read_end}")
        assert not reads_once(regular)
        assert not reads_once(tmp_path / "missing")  # left to the open that names the problem
    finally:
        os.close(read_end)
        os.close(write_end)


def test_spool_and_read_window_read_a_pipe_once(tmp_path: Path) -> None:
    from mt_cli.core.textio import read_window, spool

    data = b"a\nb\n\xff skipped, not decoded\nd\ne"  # no final newline: still a line
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    copy, total = spool(f"/dev/fd/{read_end}")
    os.close(read_end)
    with copy:
        assert (copy.read(), total) == (data, 5)

    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    try:
        assert read_window(f"/dev/fd/{read_end}", 3, 4) == (["d"], 5)
    finally:
        os.close(read_end)


# ---------------------------------------------------------------- translate


def test_a_sharded_pipe_is_translated(trained_run: Path, four: Path) -> None:
    """`translate <(cat four.en) --shard 1/1` wrote 0 lines with exit 0."""
    whole = _translate_file("-m", trained_run, four)
    assert whole.count("\n") == 4
    result = _shell('"$0" translate -m "$1" <(cat "$2") --shard 1/1', trained_run, four)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == whole
    parts = [_shell(f'"$0" translate -m "$1" <(cat "$2") --shard {k}/2', trained_run, four) for k in (1, 2)]
    assert [p.returncode for p in parts] == [0, 0], [p.stderr for p in parts]
    assert b"".join(p.stdout for p in parts).decode() == whole


@pytest.mark.parametrize("stdin_args", [[], ["-"]])
def test_stdin_is_sharded_from_a_copy(trained_run: Path, four: Path, stdin_args: list[str]) -> None:
    whole = _translate_file("-m", trained_run, four)
    parts = []
    for k in (1, 2, 3):
        result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), *stdin_args, "--shard", f"{k}/3"],
                                    input=four.read_bytes())
        assert result.exit_code == 0, result.stderr
        parts.append(result.stdout)
    assert "".join(parts) == whole


def test_a_pipe_with_the_progress_bar_is_translated(trained_run: Path, four: Path, tmp_path: Path) -> None:
    """`-o out` with stderr on a terminal (the progress bar) wrote an empty file from a pipe."""
    out = tmp_path / "out.txt"
    script = f'"$0" translate -m "$1" <(cat "$2") -o "{out}"'
    code, shown = run_with_terminal_stderr(["bash", "-c", script, str(MT_CLI), str(trained_run), str(four)],
                                           _env())
    assert code == 0, shown
    assert "4/" in shown and "lines/s" in shown, shown  # the bar, without a total (not counted)
    assert out.read_text(encoding="utf-8") == _translate_file("-m", trained_run, four)


def test_a_prefix_file_from_a_pipe(trained_run: Path, four: Path, tmp_path: Path) -> None:
    """A prefix file given as `<(...)` was counted, then read empty: `/dev/fd/63 has 0 lines`."""
    prefixes = _write(tmp_path / "prefixes.txt", ["taco", "", "taco", ""])
    expected = _translate_file("-m", trained_run, four, "--prefix-file", prefixes)
    result = _shell('"$0" translate -m "$1" "$2" --prefix-file <(cat "$3")', trained_run, four, prefixes)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == expected
    result = _shell('"$0" translate -m "$1" "$2" --prefix-file <(cat "$3") --shard 2/2', trained_run, four,
                    prefixes)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "".join(expected.splitlines(keepends=True)[2:])


def test_a_short_prefix_pipe_is_one_line_error(trained_run: Path, four: Path, tmp_path: Path) -> None:
    prefixes = _write(tmp_path / "prefixes.txt", ["taco", ""])
    result = _shell('"$0" translate -m "$1" "$2" --prefix-file <(cat "$3")', trained_run, four, prefixes)
    assert_one_line_error(result, "/dev/fd/", "has 2 lines", str(four))
    assert result.stdout == b""
    result = _shell('"$0" translate -m "$1" "$2" --prefix-file <(cat "$3") --shard 1/2', trained_run, four,
                    prefixes)
    assert_one_line_error(result, str(four), "has 4 lines", "/dev/fd/", "has 2")
    assert result.stdout == b""


def test_a_piped_source_with_a_prefix_pipe(trained_run: Path, four: Path, tmp_path: Path) -> None:
    prefixes = _write(tmp_path / "prefixes.txt", ["taco", "", "taco", ""])
    expected = _translate_file("-m", trained_run, four, "--prefix-file", prefixes)
    result = _shell('cat "$2" | "$0" translate -m "$1" --prefix-file <(cat "$3") --shard 1/1', trained_run,
                    four, prefixes)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == expected and result.stderr == ENGINE_LINE


# ---------------------------------------------------------------- training


def test_training_refuses_pipes_in_one_line(toy_dir: Path, tmp_path: Path) -> None:
    """Training reads its data more than once: a pipe or FIFO is refused before anything is read."""
    config = tmp_path / "tiny.yaml"
    config.write_text(tiny_config_text(toy_dir))
    fifo = tmp_path / "train.fifo"
    os.mkfifo(fifo)  # nobody writes: reading it would block, so the check must not open it
    result = CliRunner().invoke(app, ["config", "validate", str(config), "--set", f"data.train.0.source={fifo}"])
    assert_one_line_error(result, "data.train[0].source", str(fifo), "not a regular file")
    result = CliRunner().invoke(app, ["config", "validate", str(config), "--set", "data.dev.target='-'"])
    assert_one_line_error(result, "data.dev.target", "not a regular file")

    script = '"$0" config validate "$1" --set data.train.0.target=<(cat "$2")'
    result = _shell(script, config, toy_dir / "train.tgt")
    assert_one_line_error(result, "data.train[0].target", "/dev/fd/", "save it to a file first")
