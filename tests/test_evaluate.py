"""`mt-cli evaluate`: numbers must be the `sacrebleu` command's own, errors one clean line."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from mt_cli.app.evaluate import SentenceScore, parse_metrics, worst_sentences
from mt_cli.cli.main import app
from mt_cli.core.errors import ConfigError

MULTI30K = Path(__file__).resolve().parents[2] / "shared/data/multi30k"

REF = [
    "The cat sat on the mat.",
    "A dog runs in the park today.",
    "Hello there, friend!",
    "It is raining now.",
    "Two men are playing soccer on a green field.",
    "A woman in a red dress walks down the street.",
    "The children are eating ice cream.",
    "He opened the door and looked outside.",
    "We will meet at the station at 5 p.m.",
    "Das Wetter ist heute schön, nicht wahr?",
]
REF2 = [
    "A cat was sitting on the mat.",
    "Today a dog is running in the park.",
    "Hi there, my friend!",
    "It's raining now.",
    "Two guys play football on a green pitch.",
    "A lady wearing a red dress is walking along the street.",
    "The kids eat ice cream.",
    "He opened the door and looked out.",
    "We meet at the station at 5 pm.",
    "Schönes Wetter heute, oder?",
]
HYP1 = [
    "The cat sat on a mat.",
    "A dog is running in the park.",
    "Hello friend!",
    "It rains now.",
    "Two men play soccer on a field.",
    "A woman in red walks the street.",
    "Children are eating ice cream.",
    "He opened the door and looked out.",
    "We meet at the station at 5 pm.",
    "Das Wetter ist schön heute.",
]
HYP2 = [
    "The cat is on the mat.",
    "A dog runs in a park today.",
    "Hi there, friend!",
    "It is raining.",
    "Two men are playing soccer on a green field.",
    "A woman in a red dress walks down a street.",
    "The children eat ice cream.",
    "He opened the door and looked outside.",
    "We will meet at the station at 5 p.m.",
    "Das Wetter ist heute schön, nicht?",
]
HYP3 = ["cat mat", "dog park", "hello", "rain", "men soccer", "woman", "ice", "door", "station", "Wetter"]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "ref": write(tmp_path / "ref.txt", REF),
        "ref2": write(tmp_path / "ref2.txt", REF2),
        "h1": write(tmp_path / "h1.txt", HYP1),
        "h2": write(tmp_path / "h2.txt", HYP2),
        "h3": write(tmp_path / "h3.txt", HYP3),
    }


def run(*args: str | Path, input: bytes | str | None = None):
    return CliRunner().invoke(app, ["evaluate", *map(str, args)], input=input)


def run_json(*args: str | Path, input: bytes | str | None = None) -> dict:
    result = run(*args, "--json", input=input)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def sacrebleu(*args: str | Path, seed: int | None = None) -> str:
    """The real `sacrebleu` command, as the reference implementation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SACREBLEU")}
    if seed is not None:
        env["SACREBLEU_SEED"] = str(seed)
    proc = subprocess.run([sys.executable, "-m", "sacrebleu", *map(str, args)], env=env,
                          capture_output=True, text=True, check=True)
    return proc.stdout


def sacrebleu_json(*args: str | Path) -> list[dict]:
    return json.loads(sacrebleu(*args, "-m", "bleu", "chrf", "ter", "-w", "4", "--format", "json", "-q"))


def assert_same_scores(ours: dict, theirs: list[dict]) -> None:
    """Name, signature and score (to sacrebleu's printed precision) of every metric."""
    assert [s["name"] for s in ours["scores"].values()] == [t["name"] for t in theirs]
    for ours_score, their_score in zip(ours["scores"].values(), theirs):
        assert f"{ours_score['score']:.4f}" == f"{their_score['score']:.4f}"
        assert ours_score["signature"] == their_score["signature"]


# ------------------------------------------------------------------ scores vs sacrebleu


@pytest.mark.parametrize("hyp", ["h1", "h2", "h3"])
def test_scores_equal_sacrebleu_command(files: dict[str, Path], hyp: str) -> None:
    doc = run_json("-r", files["ref"], files[hyp])
    assert_same_scores(doc["systems"][0], sacrebleu_json(files["ref"], "-i", files[hyp]))


@pytest.mark.parametrize(("ours", "theirs"), [
    (["--lowercase"], ["--lowercase", "--chrf-lowercase"]),
    (["--chrf-plus"], ["--chrf-word-order", "2"]),
    (["--tokenize", "intl"], ["--tokenize", "intl"]),
    (["--tokenize", "char"], ["--tokenize", "char"]),
])
def test_options_map_to_sacrebleu_options(files: dict[str, Path], ours: list[str], theirs: list[str]) -> None:
    doc = run_json("-r", files["ref"], files["h1"], *ours)
    assert_same_scores(doc["systems"][0], sacrebleu_json(files["ref"], "-i", files["h1"], *theirs))


def test_several_references(files: dict[str, Path]) -> None:
    doc = run_json("-r", files["ref"], "-r", files["ref2"], files["h1"])
    theirs = sacrebleu_json(files["ref"], files["ref2"], "-i", files["h1"])
    assert_same_scores(doc["systems"][0], theirs)
    assert doc["references"] == [str(files["ref"]), str(files["ref2"])]
    assert doc["systems"][0]["scores"]["bleu"]["signature"].startswith("nrefs:2|")


def test_score_only_matches_b_flag(files: dict[str, Path]) -> None:
    theirs = sacrebleu(files["ref"], "-i", files["h2"], "-m", "bleu", "-b", "-w", "1", "-q").strip()
    doc = run_json("-r", files["ref"], files["h2"], "--metrics", "bleu")
    assert f"{doc['systems'][0]['scores']['bleu']['score']:.1f}" == theirs
    assert list(doc["systems"][0]["scores"]) == ["bleu"]


def test_stdin_hypothesis(files: dict[str, Path]) -> None:
    from_file = run_json("-r", files["ref"], files["h1"])
    from_stdin = run_json("-r", files["ref"], input=files["h1"].read_bytes())
    assert from_stdin["systems"][0]["name"] == "<stdin>"
    assert from_stdin["systems"][0]["scores"] == from_file["systems"][0]["scores"]


def test_trailing_whitespace_and_crlf_ignored_like_sacrebleu(files: dict[str, Path], tmp_path: Path) -> None:
    messy = tmp_path / "messy.txt"
    messy.write_bytes(b"".join(line.encode() + b"  \r\n" for line in HYP1))
    doc = run_json("-r", files["ref"], messy)
    assert_same_scores(doc["systems"][0], sacrebleu_json(files["ref"], "-i", files["h1"]))


# ------------------------------------------------------------------ output formats


def test_json_schema(files: dict[str, Path]) -> None:
    doc = run_json("-r", files["ref"], files["h1"], files["h2"])
    assert set(doc) == {"schema_version", "references", "metrics", "settings", "model",
                        "significance", "sentence_level", "systems"}
    assert doc["schema_version"] == 1
    assert doc["metrics"] == ["bleu", "chrf", "ter"]
    assert doc["settings"] == {"tokenize": "13a", "lowercase": False, "chrf_word_order": 0}
    assert doc["model"] is None and doc["significance"] is None and doc["sentence_level"] is None
    assert [s["name"] for s in doc["systems"]] == [str(files["h1"]), str(files["h2"])]
    for system in doc["systems"]:
        assert set(system) == {"name", "file", "lines", "baseline", "scores", "worst"}
        assert system["lines"] == len(REF) and system["worst"] == [] and system["baseline"] is False
        assert list(system["scores"]) == ["bleu", "chrf", "ter"]
        for key, score in system["scores"].items():
            assert set(score) == {"name", "score", "signature", "formatted", "higher_is_better",
                                  "p_value", "mean", "ci"}
            assert score["higher_is_better"] is (key != "ter")
            assert score["p_value"] is None and score["mean"] is None and score["ci"] is None
            assert score["formatted"].startswith(f"{score['name']} = {score['score']:.1f}")


def test_table_output(files: dict[str, Path]) -> None:
    result = run("-r", files["ref"], files["h1"])
    assert result.exit_code == 0, result.stderr
    theirs = sacrebleu_json(files["ref"], "-i", files["h1"])
    for score in theirs:
        assert f"{score['score']:.1f}" in result.stdout
        assert f"{score['name']}: {score['signature']}" in result.stdout
    assert result.stderr == ""


# ------------------------------------------------------------------ significance


def _table_numbers(text: str) -> tuple[list[float], list[tuple[float, float, float]]]:
    """p-values and (score, mean, ci) triples, in row-major order, from sacrebleu's text table."""
    p_values = [float(p) for p in re.findall(r"\(p = ([0-9.]+)\)", text)]
    triples = [tuple(map(float, m)) for m in re.findall(r"([0-9.]+) \(([0-9.]+) ± ([0-9.]+)\)", text)]
    return p_values, triples


@pytest.mark.parametrize("method", ["bootstrap", "randomization"])
def test_significance_three_systems(files: dict[str, Path], method: str) -> None:
    args = ["-r", files["ref"], files["h1"], files["h2"], files["h3"], "--significance", method,
            "--seed", "7", "--bootstrap-samples", "300", "--ar-trials", "400"]
    doc = run_json(*args)
    assert run_json(*args) == doc  # same seed, same numbers
    sig = doc["significance"]
    assert sig["method"] == method and sig["seed"] == 7 and sig["baseline"] == str(files["h1"])
    assert sig["bootstrap_samples"] == 300
    assert sig["ar_trials"] == (None if method == "bootstrap" else 400)
    assert "seed:7" in sig["signatures"]["bleu"]
    baseline, *others = doc["systems"]
    assert baseline["baseline"] is True
    assert all(s["p_value"] is None for s in baseline["scores"].values())
    for system in others:
        for score in system["scores"].values():
            assert 0.0 <= score["p_value"] <= 1.0
    for system in doc["systems"]:
        for score in system["scores"].values():
            assert score["mean"] is not None and score["ci"] >= 0.0

    # The same test as the real command, read from its table (to its 4 printed decimals).
    flag = ["--paired-bs", "-pbsn", "300"] if method == "bootstrap" else ["--paired-ar", "-parn", "400"]
    text = sacrebleu(files["ref"], "-i", files["h1"], files["h2"], files["h3"], "-m", "bleu", "chrf", "ter",
                     *flag, "-f", "text", "-w", "4", "-q", seed=7)
    p_values, triples = _table_numbers(text)
    ours_p = [f"{s['p_value']:.4f}" for system in others for s in system["scores"].values()]
    assert ours_p == [f"{p:.4f}" for p in p_values]
    if method == "bootstrap":  # sacrebleu prints no CI for approximate randomization
        ours = [(s["score"], s["mean"], s["ci"]) for system in doc["systems"] for s in system["scores"].values()]
        assert [tuple(f"{x:.4f}" for x in t) for t in ours] == [tuple(f"{x:.4f}" for x in t) for t in triples]


def test_significance_table_output(files: dict[str, Path]) -> None:
    result = run("-r", files["ref"], files["h1"], files["h2"], "--significance", "bootstrap",
                 "--bootstrap-samples", "100")
    assert result.exit_code == 0, result.stderr
    assert "(baseline)" in result.stdout and "p = " in result.stdout and "±" in result.stdout


def test_significance_needs_two_systems(files: dict[str, Path]) -> None:
    line = assert_one_line_error(run("-r", files["ref"], files["h1"], "--significance", "bootstrap"))
    assert "two" in line


def test_unknown_significance_method(files: dict[str, Path]) -> None:
    line = assert_one_line_error(run("-r", files["ref"], files["h1"], files["h2"], "--significance", "magic"))
    assert "magic" in line


# ------------------------------------------------------------------ sentence level


def test_sentence_level_file(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "sent.jsonl"
    result = run("-r", files["ref"], files["h1"], "--sentence-level", out)
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(REF)
    assert [r["index"] for r in rows] == list(range(len(REF)))
    assert rows[0]["hyp"] == HYP1[0] and rows[0]["refs"] == [REF[0]]
    assert set(rows[0]) == {"system", "index", "line", "hyp", "refs", "bleu", "chrf", "ter"}
    for key in ("bleu", "chrf", "ter"):
        theirs = sacrebleu(files["ref"], "-i", files["h1"], "-m", key, "-sl", "-b", "-w", "4", "-q").split()
        assert [f"{r[key]:.4f}" for r in rows] == theirs


def test_worst_lines(files: dict[str, Path]) -> None:
    theirs = [float(x) for x in sacrebleu(files["ref"], "-i", files["h1"], "-m", "bleu", "-sl", "-b",
                                          "-w", "4", "-q").split()]
    expected = sorted(range(len(theirs)), key=lambda i: (theirs[i], i))[:2]
    doc = run_json("-r", files["ref"], files["h1"], "--worst", "2")
    assert [w["index"] for w in doc["systems"][0]["worst"]] == expected

    result = run("-r", files["ref"], files["h1"], "--worst", "2")
    assert result.exit_code == 0, result.stderr
    assert "Worst 2 lines" in result.stdout
    for i in expected:
        assert f"line {i + 1} " in result.stdout and f"hyp: {HYP1[i]}" in result.stdout


def test_worst_sentences_ranks_ter_upward() -> None:
    items = [SentenceScore(i, "h", ("r",), {"ter": t}) for i, t in enumerate([10.0, 80.0, 30.0, 80.0])]
    assert [s.index for s in worst_sentences(items, 3, "ter")] == [1, 3, 2]


def test_parse_metrics() -> None:
    assert parse_metrics(" TER, bleu,ter ") == ("ter", "bleu")
    with pytest.raises(ConfigError):
        parse_metrics("bleu,meteor")


# ------------------------------------------------------------------ errors


def test_line_count_mismatch(files: dict[str, Path], tmp_path: Path) -> None:
    short = write(tmp_path / "short.txt", HYP1[:7])
    line = assert_one_line_error(run("-r", files["ref"], short))
    assert str(short) in line and str(files["ref"]) in line and "7" in line and str(len(REF)) in line


def test_reference_count_mismatch(files: dict[str, Path], tmp_path: Path) -> None:
    short = write(tmp_path / "short_ref.txt", REF2[:9])
    line = assert_one_line_error(run("-r", files["ref"], "-r", short, files["h1"]))
    assert str(short) in line and str(files["ref"]) in line and " 9" in line


def test_invalid_utf8_names_file_and_line(files: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"".join((b"caf\xe9\n" if i == 2 else line.encode() + b"\n") for i, line in enumerate(HYP1)))
    line = assert_one_line_error(run("-r", files["ref"], bad))
    assert f"{bad}:3" in line and "UTF-8" in line


def test_empty_file(files: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert "empty" in assert_one_line_error(run("-r", files["ref"], empty))
    assert "empty" in assert_one_line_error(run("-r", empty, files["h1"]))


def test_missing_file(files: dict[str, Path], tmp_path: Path) -> None:
    assert "not found" in assert_one_line_error(run("-r", files["ref"], tmp_path / "nope.txt"))


def test_unknown_metric(files: dict[str, Path]) -> None:
    assert "meteor" in assert_one_line_error(run("-r", files["ref"], files["h1"], "--metrics", "bleu,meteor"))


def test_unknown_tokenizer(files: dict[str, Path]) -> None:
    assert "moses" in assert_one_line_error(run("-r", files["ref"], files["h1"], "--tokenize", "moses"))


def test_no_reference(files: dict[str, Path]) -> None:
    assert "--ref" in assert_one_line_error(run(files["h1"]))


def test_model_without_source(files: dict[str, Path]) -> None:
    line = assert_one_line_error(run("-m", "some/model", "-r", files["ref"]))
    assert "--source" in line


def test_source_without_model(files: dict[str, Path]) -> None:
    assert "--model" in assert_one_line_error(run("-s", files["ref"], "-r", files["ref"], files["h1"]))


def test_stdin_only_once(files: dict[str, Path]) -> None:
    assert "stdin" in assert_one_line_error(run("-r", "-", "-", input=b"x\n"))


# ------------------------------------------------------------------ real data


@pytest.mark.slow
@pytest.mark.skipif(not (MULTI30K / "test2016.de").exists(), reason="Multi30k not available")
def test_multi30k_perturbed_equals_sacrebleu(tmp_path: Path) -> None:
    ref = MULTI30K / "test2016.de"
    lines = ref.read_text(encoding="utf-8").splitlines()
    rng = random.Random(0)
    perturbed = [" ".join(rng.sample(line.split(), len(line.split()))) if rng.random() < 0.3 else line
                 for line in lines]
    hyp = write(tmp_path / "perturbed.de", perturbed)
    doc = run_json("-r", ref, hyp)
    assert_same_scores(doc["systems"][0], sacrebleu_json(ref, "-i", hyp))
    assert 0.0 < doc["systems"][0]["scores"]["bleu"]["score"] < 100.0


def test_model_source_save_hyp_translates_scores_and_saves(trained_run: Path, toy_dir: Path,
                                                           tmp_path: Path) -> None:
    """`evaluate -m MODEL -s SRC --save-hyp FILE`: the saved file holds the translations that
    were scored (same line count, same BLEU when scored again), and the metric defaults come
    from the model's own eval: section."""
    import shutil

    import yaml

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config = run / "config.yaml"  # the run's training config (not hashed; the export's is)
    raw = yaml.safe_load(config.read_text())
    raw["eval"]["metrics"] = ["bleu", "chrf"]
    config.write_text(yaml.safe_dump(raw))
    hyp = tmp_path / "hyp.txt"
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "-m", str(run), "-s", str(toy_dir / "test.src"),
                                 "-r", str(toy_dir / "test.tgt"), "--save-hyp", str(hyp), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["metrics"] == ["bleu", "chrf"]
    assert doc["model"]["saved_hypotheses"] == str(hyp)
    saved = hyp.read_text(encoding="utf-8").split("\n")
    assert saved[-1] == "" and len(saved) - 1 == doc["systems"][0]["lines"] == 20
    again = runner.invoke(app, ["evaluate", "-r", str(toy_dir / "test.tgt"), str(hyp), "--json",
                                "--metrics", "bleu"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["systems"][0]["scores"]["bleu"]["score"] == \
        doc["systems"][0]["scores"]["bleu"]["score"]
