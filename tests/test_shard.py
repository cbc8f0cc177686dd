"""`mt-cli translate --shard K/N` and the progress bar of `-o FILE` on a terminal.

Shards: the outputs of parts 1..N, concatenated in order, are byte-identical to one run (text,
scores, n-best, jsonl with its global indices), side files are cut the same way, and bad values
are one-line errors. The bar: seen on a real pseudo-terminal, never on a pipe or with -q, and
the output is the same with it or without it (the same rounds, so the same batches).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ENGINE_LINE, assert_one_line_error, run_with_terminal_stderr, toy_pairs
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.hypothesis import Hypothesis

MT_CLI = Path(sys.executable).parent / "mt-cli"
FORMATS = {
    "text": ["--beam-size", "1"],
    "scores": ["--with-scores"],
    "nbest": ["--n-best", "2", "--beam-size", "2"],
    "jsonl": ["--format", "jsonl", "--n-best", "2", "--beam-size", "2"],
}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """41 toy lines of varied length, one of them empty."""
    lines = [src for src, _ in toy_pairs(40, seed=11)]
    lines.insert(17, "")
    return _write(tmp_path_factory.mktemp("shard") / "src.txt", lines)


def _run(*args: object, input: str | None = None) -> str:
    result = CliRunner().invoke(app, ["translate", *map(str, args)], input=input)
    assert result.exit_code == 0, (result.stderr, result.exception)
    return result.stdout


def _sharded(count: int, *args: object) -> str:
    return "".join(_run(*args, "--shard", f"{k}/{count}") for k in range(1, count + 1))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_shards_concatenate_to_one_run(trained_run: Path, source: Path, tmp_path: Path, fmt: str) -> None:
    args = ["-m", trained_run, *FORMATS[fmt]]
    whole = _run(*args, source)
    assert whole.count("\n") >= 41
    for count in (1, 2, 3):
        assert _sharded(count, *args, source) == whole, (fmt, count)
    few = _write(tmp_path / "few.txt", source.read_text(encoding="utf-8").splitlines()[:5])
    assert _sharded(7, *args, few) == _run(*args, few), fmt  # more shards than lines: some empty
    if fmt in ("nbest", "jsonl"):  # indices are the whole input's, not the shard's
        last = _run(*args, source, "--shard", "3/3")
        first = json.loads(last.splitlines()[0])["index"] if fmt == "jsonl" else int(last.split(" ", 1)[0])
        assert first == 41 * 2 // 3


def test_side_files_are_cut_like_the_input(trained_run: Path, source: Path, tmp_path: Path) -> None:
    n = len(source.read_text(encoding="utf-8").splitlines())
    prefixes = _write(tmp_path / "prefix.txt", ["taco" if i % 3 == 0 else "" for i in range(n)])
    constraints = _write(tmp_path / "terms.tsv", ["godo" if i % 4 == 1 else "" for i in range(n)])
    for side in (["--prefix-file", prefixes], ["--constraints-file", constraints]):
        args = ["-m", trained_run, source, "--format", "jsonl", *side]
        whole = _run(*args)
        assert _sharded(3, *args) == whole, side
    forced = [json.loads(line)["text"] for line in _run("-m", trained_run, source, "--prefix-file", prefixes,
                                                       "--format", "jsonl", "--shard", "2/2").splitlines()]
    assert all(text.startswith("taco") for i, text in enumerate(forced, start=n // 2) if i % 3 == 0), forced


@pytest.mark.parametrize("value", ["0/3", "4/3", "a/b", "3", "1/0", "-1/2", "1/2/3", ""])
def test_bad_shard_values_are_one_line_errors(trained_run: Path, source: Path, value: str) -> None:
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(source), "--shard", value])
    assert_one_line_error(result, "--shard", "K/N", "1 <= K <= N")


def test_a_shard_without_lines_writes_an_empty_file(trained_run: Path, tmp_path: Path) -> None:
    two = _write(tmp_path / "two.txt", ["the cat .", "a dog ."])
    out = tmp_path / "out.txt"
    out.write_text("old\n")
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(two), "--shard", "1/3",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == b""
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


@pytest.mark.parametrize("engine", ["native", "ctranslate2"])
def test_shards_keep_the_rounds_of_one_run(engine: str, request: pytest.FixtureRequest, source: Path) -> None:
    """With rounds of 4 lines (small rounds, cheaper to test than 8192):
    a shard reads its lines widened to whole rounds, so each line is batched as in one run and
    even jsonl's full-precision scores agree; `on_lines_done` counts only the shard's lines."""
    from mt_cli.app.translate import plan_source, translate_lines
    from mt_cli.engines.choice import open_translator

    translator = open_translator(request.getfixturevalue("trained_run" if engine == "native" else "ct2_model"))

    def run(shard: tuple[int, int] | None, done: list[int]) -> list[str]:
        plan = plan_source(source, None, None, max_chars=10_000, shard=shard, chunk=4, count=True)
        lines = translate_lines(translator, plan.lines, fmt="jsonl", start=plan.start, keep=plan.keep,
                                chunk_lines=4, on_lines_done=done.append)
        return list(lines)

    whole_done: list[int] = []
    whole = run(None, whole_done)
    assert sum(whole_done) == 41 and max(whole_done) == 4
    parts, counts = [], []
    for k in (1, 2, 3):
        done: list[int] = []
        parts += run((k, 3), done)
        counts.append(sum(done))
    assert parts == whole
    assert counts == [13, 14, 14]
    plan = plan_source(source, None, None, max_chars=10_000, shard=(2, 3), chunk=4)
    assert (plan.start, plan.keep, plan.total, len(list(plan.lines))) == (12, (13, 27), 14, 16)


def test_lines_before_a_shard_are_skipped_undecoded(tmp_path: Path) -> None:
    """A shard neither decodes nor holds lines before its own (bad or huge: another shard's),
    and numbers its messages by the whole file's lines."""
    from mt_cli.core.errors import DataError
    from mt_cli.core.textio import iter_lines

    path = tmp_path / "mixed.txt"
    path.write_bytes(b"\xff bad\n" + b"x" * 300_000 + b"\nok\n\xfe\n")
    lines = iter_lines(path, max_chars=100, start=2)
    assert next(lines) == "ok"
    with pytest.raises(DataError, match=r"mixed.txt:4: invalid UTF-8"):
        next(lines)
    assert list(iter_lines(path, start=9)) == []


# ---------------------------------------------------------------- progress bar

def _env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "TERM": "xterm",
            "COLUMNS": "120"}


def _stderr_on_pty(args: list[str], stdin: Path | None = None) -> tuple[int, str]:
    """mt-cli with stderr on a pseudo-terminal: exit code and everything the terminal received."""
    return run_with_terminal_stderr([str(MT_CLI), *args], _env(), stdin)


def test_progress_bar_on_a_terminal_only(trained_run: Path, source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    base = ["translate", "-m", str(trained_run), "--beam-size", "1", "-o", str(out)]
    code, shown = _stderr_on_pty([*base, str(source)])
    assert code == 0, shown
    assert "41/41" in shown and "lines/s" in shown, shown
    expected = _run("-m", trained_run, "--beam-size", "1", source)
    assert out.read_text(encoding="utf-8") == expected

    code, shown = _stderr_on_pty([*base, str(source), "--shard", "2/3"])
    assert code == 0 and "14/14" in shown, shown

    code, shown = _stderr_on_pty(base, stdin=source)  # stdin: not counted, no total
    assert code == 0 and "41/" in shown and "41/41" not in shown, shown
    assert out.read_text(encoding="utf-8") == expected

    code, shown = _stderr_on_pty(["-q", *base, str(source)])
    assert code == 0 and shown == "", shown

    piped = subprocess.run([str(MT_CLI), *base, str(source)], capture_output=True, env=_env(), timeout=300,
                           check=False)
    assert piped.returncode == 0 and piped.stderr == ENGINE_LINE, piped.stderr  # no bar, the engine's line only
    assert out.read_text(encoding="utf-8") == expected


class _RecordingTranslator:
    """A stand-in engine that records the size of each round it is given."""

    max_source_tokens = 64
    decode = type("Decode", (), {"n_best": 1})()

    def __init__(self) -> None:
        self.rounds: list[int] = []

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None, first_line: int = 1,
                        constraints: list[str] | None = None) -> list[list[Hypothesis]]:
        self.rounds.append(len(lines))
        return [[Hypothesis(text=line)] for line in lines]


def test_the_progress_bar_translates_in_the_same_rounds(tmp_path: Path) -> None:
    """With the bar, rounds were 256 lines instead of 8192: the batches CTranslate2 was given,
    and so the last bits of scores, depended on whether stderr was a terminal."""
    from mt_cli.cli.translate_cmd import _output_lines

    big = _write(tmp_path / "big.txt", [f"line {i}" for i in range(9000)])
    rounds, outputs = [], []
    for progress in (None, type("Bar", (), {"advance": lambda self, lines: None})()):
        translator = _RecordingTranslator()
        lines, _ = _output_lines(translator, (big, None, None), None, progress, fmt="text", with_scores=False,
                                 stream=False, record={})
        outputs.append(list(lines))
        rounds.append(translator.rounds)
    assert rounds[0] == rounds[1] == [8192, 808]
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_output_does_not_depend_on_the_terminal(ct2_model: Path, tmp_path: Path, fmt: str) -> None:
    """The same file and options give byte-identical output whether stderr is a terminal (the
    progress bar), a terminal with -q (no bar) or a pipe: over 256 lines, the bar's old rounds."""
    sources = [src for src, _ in toy_pairs(600, seed=21)]
    many = _write(tmp_path / "many.txt", [f"{src} {sources[i - 1]}" if i % 3 == 0 else src
                                          for i, src in enumerate(sources)])  # lengths vary: rounds matter
    outputs = []
    for where in ("terminal", "quiet terminal", "pipe"):
        out = tmp_path / f"{where}.out"
        args = ["translate", "-m", str(ct2_model), str(many), "--format", fmt, "--with-scores", "-o", str(out)]
        if where == "pipe":
            result = subprocess.run([str(MT_CLI), *args], capture_output=True, env=_env(), timeout=300, check=False)
            assert result.returncode == 0, result.stderr
        else:
            code, shown = run_with_terminal_stderr([str(MT_CLI), *(["-q"] if "quiet" in where else []), *args],
                                                   _env())
            assert code == 0, shown
            assert ("600/600" in shown) == (where == "terminal"), shown
        outputs.append(out.read_bytes())
    assert outputs[0].count(b"\n") == 600
    assert outputs[0] == outputs[1] == outputs[2]
