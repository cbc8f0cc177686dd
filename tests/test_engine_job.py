"""`--engine auto` by machine and job: the native engine only where it decodes faster once loaded
(bfloat16 on AMX units) and the job is long enough to repay TensorFlow's start (a server, a file
past the crossover, counted before loading); CTranslate2 for the rest, stdin included."""

from __future__ import annotations

from pathlib import Path

import pytest

from mt_cli.cli.main import app
from mt_cli.core.hardware import Cpu, this_cpu
from mt_cli.engines.job import CROSSOVER_LINES, Job, native_repays

AMX = Cpu("test", "x86_64", 2, frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}))
ZEN4 = Cpu("test", "x86_64", 2, frozenset({"avx512f", "avx512_bf16"}))


def test_a_file_is_counted_up_to_the_bound_and_stdin_is_unknown(tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("a\nb\nc\n")
    assert Job(path=short).counted == (3, False)
    long = tmp_path / "long.txt"
    long.write_bytes(b"x\n" * 3_000_000)  # 6 MB: more than one chunk, far past the bound
    job = Job(path=long, bound=10_000)
    assert job.counted == (10_000, True)
    assert "at least 10,000 lines" in job.describe()
    assert Job(path=None).lines is None and "unknown" in Job().describe()
    assert Job(path=tmp_path / "missing.txt").lines is None  # reading it later names the file


def test_a_pipe_is_never_read_to_count_it(tmp_path: Path) -> None:
    """What is read from a pipe is gone: its length is unknown, and every line stays for translate."""
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("a\nb\n"))
    writer.start()
    assert Job(path=fifo).lines is None
    assert fifo.read_text() == "a\nb\n"
    writer.join()


def _lines(directory: Path, count: int) -> Job:
    path = directory / f"{count}.txt"
    path.write_text("x\n" * count)
    return Job(path=path)


def test_native_only_in_bfloat16_on_amx_past_the_crossover(tmp_path: Path) -> None:
    long = _lines(tmp_path, CROSSOVER_LINES["float32"])
    reason = native_repays(long, AMX, "bfloat16", "float32")
    assert reason is not None and "amx_bf16" in reason and "2,600 lines" in reason
    assert native_repays(Job(server=True), AMX, "bfloat16", "int8") is not None
    assert native_repays(_lines(tmp_path, CROSSOVER_LINES["float32"] - 1), AMX, "bfloat16", "float32") is None
    assert native_repays(long, AMX, "bfloat16", "int8") is None  # int8 is faster
    assert native_repays(Job(), AMX, "bfloat16", "float32") is None  # stdin: may be short
    assert native_repays(Job(server=True), AMX, "float32", "float32") is None
    assert native_repays(Job(server=True), ZEN4, "bfloat16", "float32") is None


@pytest.mark.parametrize(("lines", "engine"), [(CROSSOVER_LINES["float32"], "native"), (50, "ctranslate2")])
def test_translate_takes_native_for_a_long_file_on_amx_in_bfloat16(runner, trained_run: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch, lines: int,
                                                                  engine: str) -> None:
    source = tmp_path / "in.txt"
    source.write_text("the cat .\n" * lines)
    monkeypatch.setenv("MT_CLI_CPU_FLAGS", "+amx_bf16,+amx_tile,+avx512_bf16")
    this_cpu.cache_clear()
    try:
        done = runner.invoke(app, ["translate", "-m", str(trained_run), str(source), "--dtype", "bfloat16",
                                   "--beam-size", "1"])
    finally:
        this_cpu.cache_clear()
    assert done.exit_code == 0, done.output
    assert len(done.stdout.splitlines()) == lines
    said = done.stderr.strip().splitlines()[-1]
    assert said.startswith(f"engine: {engine} ("), said
    if engine == "native":
        assert f"the input has {lines:,} lines" in said and "decode dtype: bfloat16" in said, said


def test_a_file_is_not_read_where_cpu_and_dtype_already_decide(tmp_path: Path) -> None:
    job = _lines(tmp_path, 10)
    assert native_repays(job, ZEN4, "bfloat16", "float32") is None
    assert "counted" not in job.__dict__  # never counted
