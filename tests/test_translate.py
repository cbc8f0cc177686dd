"""`mt-cli translate`: N lines in, N lines out, deterministic, in order, and clean errors.

Everything goes through the real CLI (in-process `CliRunner`, or the installed `mt-cli` in a
subprocess where a real pipe matters) on the session's tiny trained model. The model is
barely trained, so outputs are not judged for quality, only for the contract: line counts,
order, determinism, equality between decoding paths, formats and error messages.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import ENGINE_LINE, assert_one_line_error, copy_run, toy_pairs
from typer.testing import CliRunner

from mt_cli.cli.main import app

MT_CLI = Path(sys.executable).parent / "mt-cli"
PIPE_TIMEOUT_S = 120.0  # first line includes TensorFlow start-up on a shared CPU


# ---------------------------------------------------------------- helpers

def translate(runner: CliRunner, *args: object, input: bytes | str | None = None):
    """Invoke `mt-cli translate ARGS` in-process."""
    return runner.invoke(app, ["translate", *map(str, args)], input=input)


def ok(result):
    """Assert success (with everything useful in the message) and return the result."""
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}\n"
        f"exception: {result.exception!r}")
    return result


def out_lines(text: str) -> list[str]:
    """Split output on "\\n" only (never on U+2028 & co); every line must be terminated."""
    if not text:
        return []
    assert text.endswith("\n"), f"output does not end with a newline: {text[-80:]!r}"
    return text[:-1].split("\n")


def jsonl(result) -> list[dict]:
    return [json.loads(line) for line in out_lines(ok(result).stdout)]


def source_lines(n: int, seed: int) -> list[str]:
    return [src for src, _ in toy_pairs(n, seed=seed)]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 toy sentences of varied length plus an empty line: a file for most tests."""
    lines = source_lines(40, seed=11)
    lines.insert(17, "")
    return write_lines(tmp_path_factory.mktemp("src") / "src.txt", lines)


@pytest.fixture(scope="module")
def greedy_file_output(trained_run: Path, sources: Path) -> list[str]:
    """`--beam-size 1` translation of `sources`, shared by several comparisons."""
    result = ok(translate(CliRunner(), "-m", trained_run, sources, "--beam-size", "1"))
    return out_lines(result.stdout)


# ---------------------------------------------------------------- N lines in, N lines out

ODD_INPUT: list[tuple[bytes, str | None]] = [
    # (raw bytes of the line including its terminator, the clean text it must equal or None)
    (b"\n", ""),                                 # empty first line
    (b"the cat runs .\n", "the cat runs ."),
    (b"\n", ""),                                 # empty middle line
    (b"   \n", ""),                              # whitespace only
    (b"\t \t\n", ""),
    (b"a big dog\r\n", "a big dog"),              # CRLF
    (b"old\rtree .\n", None),                    # lone CR inside the line
    ("big\u2028ball .\n".encode(), None),        # U+2028 LINE SEPARATOR inside the line
    (b"red\x00car .\n", None),                   # NUL byte
    (" ".join(["cat"] * 2000).encode() + b"\n", None),  # far over model.max_length=128
    (b"\n", ""),                                 # empty line before the last one
    (b"the small house", "the small house"),     # no final newline
]
LONG_LINE_NUMBER = 10


def test_odd_lines_one_output_line_each(runner: CliRunner, trained_run: Path) -> None:
    raw = b"".join(line for line, _ in ODD_INPUT)
    result = ok(translate(runner, "-m", trained_run, "--beam-size", "1", input=raw))
    got = out_lines(result.stdout)
    assert len(got) == len(ODD_INPUT)

    # Lines that are plain text once their terminator is handled must translate exactly
    # like the clean text does.
    clean = [text for _, text in ODD_INPUT if text]
    expected = out_lines(ok(translate(runner, "-m", trained_run, "--beam-size", "1",
                                      input="".join(t + "\n" for t in clean))).stdout)
    by_text = dict(zip(clean, expected))
    for (_, text), output in zip(ODD_INPUT, got):
        if text == "":
            assert output == ""
        elif text is not None:
            assert output == by_text[text], text

    # Only the over-long line warns, naming its line number.
    warnings = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("engine: ")]
    assert len(warnings) == 1, result.stderr
    assert re.search(rf"\bline {LONG_LINE_NUMBER}\b", warnings[0]), warnings[0]
    assert "truncated" in warnings[0]


def test_long_line_in_file_warns_with_its_number(runner: CliRunner, trained_run: Path,
                                                 tmp_path: Path) -> None:
    lines = ["the dog .", "a cat .", " ".join(["red"] * 2000), "the tree ."]
    src = write_lines(tmp_path / "in.txt", lines)
    result = ok(translate(runner, "-m", trained_run, src, "-o", tmp_path / "out.txt"))
    assert len(out_lines((tmp_path / "out.txt").read_text(encoding="utf-8"))) == 4
    assert re.search(r"\bline 3\b", result.stderr), result.stderr
    assert not re.search(r"\bline [124]\b", result.stderr), result.stderr


def test_empty_input_gives_empty_output(runner: CliRunner, trained_run: Path) -> None:
    assert ok(translate(runner, "-m", trained_run, input=b"")).stdout == ""
    assert ok(translate(runner, "-m", trained_run, input=b"\n")).stdout == "\n"
    assert ok(translate(runner, "-m", trained_run, input=b"\n\n\n")).stdout == "\n\n\n"


# ---------------------------------------------------------------- model path, files, pipes

def test_run_dir_export_dir_file_and_stdin_agree(runner: CliRunner, trained_run: Path,
                                                 sources: Path, tmp_path: Path) -> None:
    from_run = ok(translate(runner, "-m", trained_run, sources)).stdout
    n = len(sources.read_bytes().splitlines())
    assert len(out_lines(from_run)) == n

    from_export = ok(translate(runner, "-m", trained_run / "export", sources)).stdout
    assert from_export == from_run

    out = tmp_path / "sub" / "hyp.txt"
    to_file = ok(translate(runner, "-m", trained_run, sources, "-o", out))
    assert to_file.stdout == ""
    assert out.read_text(encoding="utf-8") == from_run

    from_stdin = ok(translate(runner, "-m", trained_run, input=sources.read_bytes())).stdout
    assert from_stdin == from_run


# ---------------------------------------------------------------- determinism and order

def test_deterministic_and_independent_of_batching(runner: CliRunner, trained_run: Path,
                                                   sources: Path) -> None:
    # without CTranslate2's vocabulary map, whose candidates are the batch's (scores depend on it)
    base = ["-m", trained_run, sources, "--format", "jsonl"]
    first = ok(translate(runner, *base)).stdout
    assert ok(translate(runner, *base)).stdout == first, "two identical runs differ"

    reference = [json.loads(line) for line in out_lines(first)]
    for extra in (["--batch-size", "1"], ["--batch-size", "32"], ["--batch-tokens", "64"]):
        records = jsonl(translate(runner, *base, *extra))
        assert [r["text"] for r in records] == [r["text"] for r in reference], extra
        assert [r["index"] for r in records] == list(range(len(reference)))
        for got, want in zip(records, reference):
            assert got["score"] == pytest.approx(want["score"], abs=1e-4), extra


def test_output_order_is_input_order(runner: CliRunner, trained_run: Path, sources: Path,
                                     tmp_path: Path) -> None:
    lines = sources.read_text(encoding="utf-8").splitlines()
    base = ["-m", trained_run, "--format", "jsonl"]
    forward = jsonl(translate(runner, *base, sources))
    backward = jsonl(translate(runner, *base, write_lines(tmp_path / "rev.txt", lines[::-1])))
    assert [r["text"] for r in backward] == [r["text"] for r in forward][::-1]
    for got, want in zip(backward, forward[::-1]):
        # scores differ from sentence to sentence: they pin each output to its input
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)

    for i in (0, 5, len(lines) - 1):  # a few lines translated on their own
        alone = jsonl(translate(runner, *base, input=lines[i] + "\n"))
        assert len(alone) == 1
        assert alone[0]["text"] == forward[i]["text"]
        assert alone[0]["score"] == pytest.approx(forward[i]["score"], abs=1e-4)


# ---------------------------------------------------------------- search modes

def _greedy_reference(loaded, line: str) -> tuple[str, float]:
    """Plain-Python greedy decoding by full recomputation of `model(...)` at every step."""
    from mt_cli.core.tokenizer import BOS_ID, EOS_ID, PAD_ID

    model, decode = loaded.model, loaded.config.decode
    ids = loaded.tokenizers.source.encode_ids([line])[0][: model.max_length - 1] + [EOS_ID]
    max_len = min(math.floor(decode.max_length_a * len(ids) + decode.max_length_b),
                  model.max_length - 1)
    out: list[int] = []
    total = 0.0
    while True:
        logits = model({"source": np.array([ids], np.int32),
                        "target_in": np.array([[BOS_ID, *out]], np.int32)}, training=False)
        step = np.asarray(logits, np.float64)[0, -1]
        step[[PAD_ID, BOS_ID]] = -np.inf
        token = EOS_ID if len(out) >= max_len else int(np.argmax(step))
        top = step.max()
        total += step[token] - (top + math.log(np.exp(step - top).sum()))
        if token == EOS_ID:
            break
        out.append(token)
    length_penalty = ((5.0 + len(out) + 1) / 6.0) ** decode.length_penalty
    return loaded.tokenizers.target.decode_ids([out])[0], total / length_penalty


def test_beam_one_is_greedy(runner: CliRunner, trained_run: Path, sources: Path,
                            greedy_file_output: list[str]) -> None:
    from mt_cli.engines.model_dir import load_model_dir

    lines = sources.read_text(encoding="utf-8").splitlines()[:3]
    records = jsonl(translate(runner, "-m", trained_run, "--beam-size", "1", "--format", "jsonl", "--engine", "native",
                              input="".join(line + "\n" for line in lines)))
    loaded = load_model_dir(trained_run)
    for line, record, from_file in zip(lines, records, greedy_file_output):
        text, score = _greedy_reference(loaded, line)
        assert record["text"] == text, line
        assert record["text"] == from_file
        assert record["score"] == pytest.approx(score, abs=1e-3), line

    explicit = ok(translate(runner, "-m", trained_run, sources, "--beam-size", "1",
                            "--n-best", "1")).stdout
    assert out_lines(explicit) == greedy_file_output


def test_nbest_text_jsonl_and_scores(runner: CliRunner, trained_run: Path,
                                     tmp_path: Path) -> None:
    lines = source_lines(6, seed=21)
    src = write_lines(tmp_path / "in.txt", lines)
    nbest = ["-m", trained_run, src, "--n-best", "3", "--beam-size", "3"]

    text = out_lines(ok(translate(runner, *nbest)).stdout)
    assert len(text) == 3 * len(lines)
    parsed = []
    for line in text:
        match = re.fullmatch(r"(\d+) \|\|\| (.*) \|\|\| (-?\d+\.\d+)", line)
        assert match, line
        parsed.append((int(match[1]), match[2], float(match[3])))
    assert [i for i, _, _ in parsed] == [i for i in range(len(lines)) for _ in range(3)]
    for i in range(len(lines)):
        scores = [s for j, _, s in parsed if j == i]
        assert scores == sorted(scores, reverse=True), scores

    records = jsonl(translate(runner, *nbest, "--format", "jsonl"))
    assert len(records) == len(lines)
    for i, record in enumerate(records):
        assert {"text", "score", "tokens", "nbest"} <= set(record)
        assert len(record["nbest"]) == 3
        assert record["nbest"][0]["text"] == record["text"]
        assert record["nbest"][0]["score"] == record["score"]
        scores = [h["score"] for h in record["nbest"]]
        assert scores == sorted(scores, reverse=True)
        for hyp in record["nbest"]:
            assert "".join(hyp["tokens"]).replace("\u2581", " ").strip() == hyp["text"]
        # the same hypotheses as the text format
        assert [(h["text"], round(h["score"], 4)) for h in record["nbest"]] == \
            [(t, s) for j, t, s in parsed if j == i]

    best = out_lines(ok(translate(runner, "-m", trained_run, src, "--beam-size", "3")).stdout)
    scored = out_lines(ok(translate(runner, "-m", trained_run, src, "--beam-size", "3",
                                    "--with-scores")).stdout)
    assert len(scored) == len(lines)
    for line, plain, record in zip(scored, best, records):
        score, tab, hyp = line.partition("\t")
        assert tab and hyp == plain == record["text"]
        assert float(score) == pytest.approx(record["score"], abs=1e-4)


def test_nbest_format_kept_for_empty_lines(runner: CliRunner, trained_run: Path) -> None:
    args = ["-m", trained_run, "--n-best", "3", "--beam-size", "3"]
    text = out_lines(ok(translate(runner, *args, input="the cat .\n\na dog .\n")).stdout)
    assert all(re.fullmatch(r"\d+ \|\|\| .* \|\|\| -?\d+\.\d+", line) for line in text), text
    assert sorted({int(line.split(" ", 1)[0]) for line in text}) == [0, 1, 2]
    records = jsonl(translate(runner, *args, "--format", "jsonl", input="the cat .\n\n"))
    assert all("nbest" in record for record in records), records


def test_nbest_larger_than_beam_is_one_line_error(runner: CliRunner, trained_run: Path) -> None:
    result = translate(runner, "-m", trained_run, "--n-best", "5", "--beam-size", "2",
                       input="the cat .\n")
    assert_one_line_error(result, "--n-best", "--beam-size")
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (["--beam-size", "0"], "--beam-size: must be >= 1, got 0"),
    (["-b", "0"], "--beam-size: must be >= 1, got 0"),
    (["--length-penalty", "-1"], "--length-penalty: must be >= 0, got -1.0"),
    (["--temperature", "inf"], "--temperature: must be a finite number, got inf"),
    (["--temperature", "0"], "--temperature: must be > 0, got 0.0"),
    (["--n-best", "3", "--beam-size", "2"], "--n-best: must be <= --beam-size=2, got 3"),
])
def test_a_bad_flag_value_is_one_line_naming_the_flag(runner: CliRunner, trained_run: Path, sources: Path,
                                                      args: list[str], message: str) -> None:
    result = translate(runner, "-m", trained_run, *args, sources)
    assert assert_one_line_error(result) == f"error: {message}"
    assert result.stdout == ""


def test_set_errors_still_name_the_key_and_a_flag_wins_over_set(runner: CliRunner, trained_run: Path,
                                                                sources: Path,
                                                                greedy_file_output: list[str]) -> None:
    result = translate(runner, "-m", trained_run, "--set", "decode.beam_size=0", sources)
    assert_one_line_error(result, "decode.beam_size: must be >= 1, got 0", "+ --set)")
    # the flag is applied over --set (whose bad value it replaces) and the model's config
    won = ok(translate(runner, "-m", trained_run, "--set", "decode.beam_size=3", "--beam-size", "1", sources))
    assert out_lines(won.stdout) == greedy_file_output


def test_unknown_format_is_one_line_error(runner: CliRunner, trained_run: Path) -> None:
    assert_one_line_error(translate(runner, "-m", trained_run, "--format", "xml", input="a\n"),
                          "--format")


def test_sampling_seeded_and_topk1_is_greedy(runner: CliRunner, trained_run: Path,
                                             sources: Path, greedy_file_output: list[str]) -> None:
    sample = ["-m", trained_run, sources, "--sampling-topk", "5", "--seed", "1"]
    first = ok(translate(runner, *sample)).stdout
    assert ok(translate(runner, *sample)).stdout == first
    assert len(out_lines(first)) == len(greedy_file_output)

    top1 = ok(translate(runner, "-m", trained_run, sources, "--sampling-topk", "1",
                        "--seed", "7")).stdout
    assert out_lines(top1) == greedy_file_output


# ---------------------------------------------------------------- target prefixes

def test_prefix_file_forces_each_prefix(runner: CliRunner, trained_run: Path, sources: Path,
                                        greedy_file_output: list[str], tmp_path: Path) -> None:
    lines = sources.read_text(encoding="utf-8").splitlines()[:6]
    src = write_lines(tmp_path / "in.txt", lines)
    greedy = greedy_file_output[:6]
    # the greedy outputs' first words, some other target words, and an empty (no) prefix
    prefixes = [(greedy[0].split() or [""])[0], "taco", "", "eaco euo",
                (greedy[4].split() or [""])[0], "neergo"]
    prefix_file = write_lines(tmp_path / "prefix.txt", prefixes)

    for beam in ("1", "2"):
        result = ok(translate(runner, "-m", trained_run, src, "--prefix-file", prefix_file,
                              "--beam-size", beam))
        got = out_lines(result.stdout)
        assert len(got) == len(lines)
        for prefix, output in zip(prefixes, got):
            assert output.startswith(prefix), (prefix, output)
    assert got[2] == out_lines(ok(translate(runner, "-m", trained_run, src,
                                            "--beam-size", "2")).stdout)[2]


@pytest.mark.parametrize("n_prefixes", [5, 7])
def test_prefix_file_line_count_mismatch(runner: CliRunner, trained_run: Path, tmp_path: Path,
                                         n_prefixes: int) -> None:
    src = write_lines(tmp_path / "in.txt", source_lines(6, seed=5))
    prefix_file = write_lines(tmp_path / "prefix.txt", ["taco"] * n_prefixes)
    out = tmp_path / "out.txt"
    result = translate(runner, "-m", trained_run, src, "--prefix-file", prefix_file, "-o", out)
    assert_one_line_error(result, str(prefix_file))
    assert not out.exists()


def test_dash_input_with_prefix_file_reads_stdin(runner: CliRunner, trained_run: Path, tmp_path: Path) -> None:
    """`translate - --prefix-file p` reads the source from stdin ('-' was taken as a file name
    when a prefix file asked for the line counts), and still checks the counts while reading."""
    lines = source_lines(3, seed=5)
    prefix_file = write_lines(tmp_path / "prefix.txt", ["taco", "", "neergo"])
    result = ok(translate(runner, "-m", trained_run, "-", "--prefix-file", prefix_file, "--beam-size", "1",
                          input="".join(line + "\n" for line in lines)))
    got = out_lines(result.stdout)
    assert len(got) == 3 and got[0].startswith("taco") and got[2].startswith("neergo")
    short = translate(runner, "-m", trained_run, "-", "--prefix-file", prefix_file, input=lines[0] + "\n")
    assert_one_line_error(short, str(prefix_file), "has 3 lines but <stdin> has 1", after_log=True)  # after output
    both = translate(runner, "-m", trained_run, "-", "--prefix-file", "-", input=lines[0] + "\n")
    assert_one_line_error(both, "--prefix-file: give a file")


@pytest.mark.parametrize("beam", [
    "1",
    "2",
])
def test_prefix_longer_than_model_limit(runner: CliRunner, trained_run: Path, tmp_path: Path,
                                        beam: str) -> None:
    prefix_file = write_lines(tmp_path / "prefix.txt", [" ".join(["taco"] * 300)])
    result = translate(runner, "-m", trained_run, "--prefix-file", prefix_file,
                       "--beam-size", beam, input="the cat .\n")
    ok(result)  # truncated to the model's limit with a warning, never refused
    assert len(out_lines(result.stdout)) == 1
    assert result.stdout.startswith("taco taco")
    assert re.search(r"prefix of line 1: \d+ tokens, truncated to 126", result.stderr), result.stderr


# ---------------------------------------------------------------- real subprocesses

def _env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_stream_flushes_each_line_before_reading_the_next(trained_run: Path, tmp_path: Path,
                                                          greedy_file_output: list[str],
                                                          sources: Path) -> None:
    lines = sources.read_text(encoding="utf-8").splitlines()[:2]
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [str(MT_CLI), "translate", "-m", str(trained_run), "--stream", "--beam-size", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, bufsize=0, env=_env())
    received: queue.Queue[bytes] = queue.Queue()

    def reader() -> None:
        for raw in iter(proc.stdout.readline, b""):
            received.put(raw)
        received.put(b"")  # EOF

    threading.Thread(target=reader, daemon=True).start()
    try:
        got = []
        for line in lines:
            proc.stdin.write(line.encode() + b"\n")
            try:
                got.append(received.get(timeout=PIPE_TIMEOUT_S))
            except queue.Empty:
                pytest.fail(f"no output for {line!r} within {PIPE_TIMEOUT_S:.0f}s while stdin is "
                            f"still open (not flushed?); stderr: {stderr_path.read_text()!r}")
        proc.stdin.close()
        assert proc.wait(timeout=PIPE_TIMEOUT_S) == 0, stderr_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert received.get(timeout=10) == b""  # nothing more after the two lines
    assert [raw.decode() for raw in got] == [t + "\n" for t in greedy_file_output[:2]]


def test_threads_and_real_pipe(trained_run: Path, sources: Path) -> None:
    result = subprocess.run(
        [str(MT_CLI), "translate", "-m", str(trained_run), "--threads", "1", "--beam-size", "1"],
        input=sources.read_bytes(), capture_output=True, timeout=300, env=_env(), check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == ENGINE_LINE  # the one info line: which engine and why
    assert result.stdout.decode() == ok(translate(CliRunner(), "-m", trained_run, sources,
                                                  "--beam-size", "1")).stdout


def test_bfloat16(runner: CliRunner, trained_run: Path) -> None:
    raw = b"".join(line for line, _ in ODD_INPUT)
    result = ok(translate(runner, "-m", trained_run, "--dtype", "bfloat16", input=raw))
    got = out_lines(result.stdout)
    assert len(got) == len(ODD_INPUT)
    for (_, text), output in zip(ODD_INPUT, got):
        if text == "":
            assert output == ""


# ---------------------------------------------------------------- broken model directories

def _other_tokenizer(toy_dir: Path, tmp_path: Path) -> Path:
    """A valid SentencePiece model with the right special ids, but not the model's own."""
    from mt_cli.core.tokenizer import train_sentencepiece

    return train_sentencepiece([toy_dir / "train.src"], tmp_path / "other", vocab_size=30)


@pytest.mark.parametrize("case", ["no-weights", "no-spm", "other-spm", "not-spm",
                                  "no-manifest", "no-config", "truncated-weights"])
def test_broken_model_directory(runner: CliRunner, trained_run: Path, toy_dir: Path,
                                tmp_path: Path, case: str) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    export = run / "export"
    if case == "no-weights":
        (export / "model.weights.h5").unlink()
        needles = ["model.weights.h5"]
    elif case == "no-spm":
        (export / "spm.model").unlink()
        needles = ["spm.model"]
    elif case == "other-spm":
        shutil.copyfile(_other_tokenizer(toy_dir, tmp_path), export / "spm.model")
        needles = ["spm.model", "sha256", "tokenizer"]
    elif case == "not-spm":
        (export / "spm.model").write_bytes(b"not a sentencepiece model\n")
        needles = ["spm.model", "sha256"]
    elif case == "no-manifest":
        (export / "manifest.json").unlink()
        needles = ["manifest.json"]
    elif case == "no-config":
        (export / "config.yaml").unlink()
        needles = ["config.yaml"]
    else:
        weights = export / "model.weights.h5"
        weights.write_bytes(weights.read_bytes()[:1000])
        needles = ["model.weights.h5"]
    engine = ["--engine", "native"] if "weights" in case else []  # the CTranslate2 path never reads the .h5
    for model in (run, export):
        assert_one_line_error(translate(runner, "-m", model, *engine, input="the cat .\n"), *needles)


def test_nonexistent_model_directory(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    assert_one_line_error(translate(runner, "-m", missing, input="a\n"), str(missing))


def test_export_config_with_python_tag_is_rejected(runner: CliRunner, trained_run: Path,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    config = run / "export" / "config.yaml"
    text = config.read_text(encoding="utf-8")
    assert "beam_size: 2" in text
    config.write_text(text.replace(
        "beam_size: 2", 'beam_size: !!python/object/apply:os.system ["touch PWNED"]'))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    error = assert_one_line_error(translate(runner, "-m", run, input="the cat .\n"), "config.yaml")
    assert "python" in error
    assert not (work / "PWNED").exists()
    assert not list(tmp_path.rglob("PWNED"))


# ---------------------------------------------------------------- invalid input

def test_invalid_utf8_names_file_and_line(runner: CliRunner, trained_run: Path,
                                          tmp_path: Path) -> None:
    src = tmp_path / "bad.txt"
    src.write_bytes(b"the cat .\na dog .\nbad \xff\xfe byte\nthe tree .\n")
    out = tmp_path / "out.txt"
    error = assert_one_line_error(translate(runner, "-m", trained_run, src, "-o", out), str(src))
    assert re.search(r"(:3\b|line 3\b)", error), error
    assert "UTF-8" in error
    assert not out.exists()

    error = assert_one_line_error(translate(runner, "-m", trained_run, input=src.read_bytes()),
                                  "stdin")
    assert re.search(r"(:3\b|line 3\b)", error), error


def test_closed_output_pipe_stops_quietly(trained_run: Path) -> None:
    """`mt-cli translate ... | head -1`: the reader goes away; no traceback, exit 141."""
    proc = subprocess.Popen([str(MT_CLI), "translate", "-m", str(trained_run), "--stream"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env())
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"the cat runs .\n")
    proc.stdin.flush()
    assert proc.stdout.readline()  # the first translation arrived
    proc.stdout.close()  # like `head -1` exiting
    try:
        proc.stdin.write(b"a dog .\n" * 50)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    proc.wait(timeout=120)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 141, stderr
    assert "Traceback" not in stderr and "error" not in stderr


# ---------------------------------------------------------------- per-call decode options

def _nbest(found: list) -> list[list[tuple[str, float, list[int]]]]:
    return [[(h.text, round(h.score, 5), h.ids) for h in nbest] for nbest in found]


@pytest.mark.parametrize("engine", ["native", "ct2"])
def test_per_call_decode_changes_no_engine_state(engine: str, request: pytest.FixtureRequest,
                                                 trained_run: Path, sources: Path) -> None:
    """`decode=` is that call's options only: the engine's own stay as they were, and the
    output is the one an engine opened with those options gives."""
    from mt_cli.engines.choice import open_translator

    model = trained_run if engine == "native" else request.getfixturevalue("ct2_model")
    lines = sources.read_text(encoding="utf-8").splitlines()[:12]
    options = {"beam_size": 3, "n_best": 3, "length_penalty": 1.0, "max_length_b": 3, "batch_size": 5}
    translator = open_translator(model)
    own = translator.decode
    default = _nbest(translator.translate_nbest(lines))
    per_call = translator.translate_nbest(lines, decode=dataclasses.replace(own, **options))
    assert translator.decode is own and translator.decode == open_translator(model).decode
    assert _nbest(per_call) == _nbest(open_translator(model, decode_flags=options).translate_nbest(lines))
    assert all(len(nbest) == 3 for nbest, line in zip(per_call, lines) if line)
    assert _nbest(translator.translate_nbest(lines)) == default  # and nothing lingers


def test_per_call_shortlists_of_other_sizes(trained_run: Path, sources: Path) -> None:
    """The shortlist's frequent pieces are cached by size, not for the first size asked."""
    from mt_cli.engines.choice import open_translator

    lines = sources.read_text(encoding="utf-8").splitlines()[:8]
    translator = open_translator(trained_run)
    got = {}
    for size in (6, 100000, 6):
        found = translator.translate_nbest(lines, decode=dataclasses.replace(translator.decode, shortlist=size))
        got[size] = _nbest(found)
        assert got[size] == _nbest(open_translator(trained_run, decode_flags={"shortlist": size})
                                   .translate_nbest(lines)), size
    assert got[6] != got[100000]  # the sizes really decode differently (scores at least)
    assert translator.decode.shortlist == 0


# ---------------------------------------------------------------- vocabulary shortlist

def test_shortlist_through_the_cli(runner: CliRunner, trained_run: Path, sources: Path,
                                   greedy_file_output: list[str], tmp_path: Path) -> None:
    lines = sources.read_text(encoding="utf-8").splitlines()[:8]
    src = write_lines(tmp_path / "in.txt", lines)
    # every piece listed: the same output as the full vocabulary
    whole = ok(translate(runner, "-m", trained_run, src, "--beam-size", "1", "--shortlist", "100000"))
    assert out_lines(whole.stdout) == greedy_file_output[:8]
    # a few frequent pieces: prefixes (even of rare pieces) are still forced
    prefixes = write_lines(tmp_path / "prefix.txt", ["neergo", "", "taco", "", "", "", "", ""])
    result = ok(translate(runner, "-m", trained_run, src, "--shortlist", "20", "--prefix-file", prefixes,
                          "--format", "jsonl"))
    rows = jsonl(result)
    assert len(rows) == 8 and rows[0]["text"].startswith("neergo")
    assert rows[2]["text"].startswith("taco")
    constraints = write_lines(tmp_path / "c.tsv", ["taco"] + [""] * 7)
    outcome = translate(runner, "-m", trained_run, src, "--shortlist", "20", "--constraints-file", constraints)
    assert_one_line_error(outcome, "--shortlist", "constraints")


# ---------------------------------------------------------------- huge lines

def test_a_huge_line_is_cut_before_sentencepiece(runner: CliRunner, trained_run: Path, tmp_path: Path) -> None:
    """The tiny model reads 128 positions: a line is cut to 128 * 64 characters (a warning names
    it) before SentencePiece, whose memory grows ~55 bytes per character, sees it. Through
    translate and evaluate (the reader) and the engine's API (requests never pass a reader)."""
    lines = ["the cat .", "a dog " * 50000, "the dog ."]
    src = write_lines(tmp_path / "in.txt", lines)
    result = ok(translate(runner, "-m", trained_run, src, "--beam-size", "1"))
    assert len(out_lines(result.stdout)) == 3
    assert f"{src}:2: longer than 32768 characters, cut to 8192 (more than the model can read)" in result.stderr
    assert re.search(r"line 2: \d+ tokens, truncated to 127", result.stderr), result.stderr
    piped = ok(translate(runner, "-m", trained_run, "-", "--beam-size", "1", input="".join(x + "\n" for x in lines)))
    assert piped.stdout == result.stdout and "<stdin>:2: longer than 32768 characters" in piped.stderr
    evaluated = runner.invoke(app, ["evaluate", "-m", str(trained_run), "-s", str(src), "-r", str(src)])
    assert evaluated.exit_code == 0, evaluated.stderr
    assert f"{src}:2: longer than 32768 characters, cut to 8192" in evaluated.stderr
    from mt_cli.engines.choice import open_translator

    translator = open_translator(trained_run, ["decode.beam_size=1", "decode.n_best=1"])
    handler = logging.Handler()
    messages: list[str] = []
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("mt_cli").addHandler(handler)  # the CLI's set-up stops propagation to caplog
    try:
        api = translator.translate(["a dog " * 2000], first_line=5)
    finally:
        logging.getLogger("mt_cli").removeHandler(handler)
    assert len(api) == 1
    assert "line 5: 12000 characters, cut to 8192 (more than the model can read)" in messages
