"""One model directory for both engines: the CTranslate2 conversion training writes beside the
native weights, and `--engine auto` choosing CTranslate2 unless the request needs the native
engine (said on stderr, in jsonl records), with GNMT's length penalty on both."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_one_line_error, random_model_dir

from mt_cli.cli.main import app
from mt_cli.core.hardware import nvidia_gpus_visible
from mt_cli.engines.choice import choose_engine, open_translator
from mt_cli.engines.ctranslate2 import gnmt_rescored
from mt_cli.engines.locate import read_manifest

LINES = ["the cat sees the dog .", "a bird .", "", "the dog runs to the big house ."]


def _copy_export(trained_run: Path, dest: Path) -> Path:
    return Path(shutil.copytree(trained_run / "export", dest))


def _without_conversion(model: Path) -> Path:
    """The directory as an older mt-cli wrote it: no CTranslate2 files, no section."""
    manifest = json.loads((model / "manifest.json").read_text())
    for name in manifest.pop("ctranslate2")["files"]:
        (model / name).unlink()
        del manifest["files_sha256"][name]
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


def _rehash(model: Path, name: str) -> None:
    """The manifest re-hashed after an edit of `name` (the directory stays verifiable)."""
    from mt_cli.core.files import file_sha256

    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files_sha256"][name] = file_sha256(model / name)
    (model / "manifest.json").write_text(json.dumps(manifest))


def test_training_writes_the_conversion_hashed_in_the_manifest(trained_run: Path) -> None:
    export = trained_run / "export"
    manifest = read_manifest(export)
    section = manifest["ctranslate2"]
    assert section["quantization"] == "float32"
    assert "model.bin" in section["files"] and "config.json" in section["files"]
    for name in section["files"]:
        assert (export / name).is_file() and name in manifest["files_sha256"]
    assert "model.weights.h5" in manifest["files_sha256"]  # both engines' weights, one directory


@pytest.mark.parametrize(("flags", "constraints", "engine", "reason"), [
    ({}, False, "ctranslate2", "holds a CTranslate2 float32 conversion"),
    ({"alignments": True}, False, "native", "--alignments"),
    ({"shortlist": 50}, False, "native", "--shortlist"),
    ({"coverage_penalty": 0.2}, False, "native", "--coverage-penalty"),
    ({"coverage_penalty": 0.2, "beam_size": 1}, False, "ctranslate2", "conversion"),  # greedy: no coverage
    ({}, True, "native", "--constraints-file"),
])
def test_auto_takes_ctranslate2_unless_the_request_needs_the_native_engine(
        trained_run: Path, flags: dict, constraints: bool, engine: str, reason: str) -> None:
    choice = choose_engine([trained_run], "auto", None, flags, constraints)
    assert choice.engine == engine and reason in choice.reason, choice


def test_ensembles_and_older_directories_go_native(trained_run: Path, tmp_path: Path) -> None:
    assert "ensemble of 2" in choose_engine([trained_run, trained_run]).reason
    old = _without_conversion(_copy_export(trained_run, tmp_path / "old"))
    choice = choose_engine([old])
    assert choice.engine == "native" and "no CTranslate2 conversion" in choice.reason
    assert_one_line_error(str(_error(lambda: choose_engine([old], "ctranslate2"))),
                          "--engine ctranslate2", "no CTranslate2 conversion")


def _error(call) -> str:
    from mt_cli.core.errors import MtError

    with pytest.raises(MtError) as caught:
        call()
    return f"error: {caught.value}"


def test_a_visible_gpu_goes_native(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = tmp_path / "gpus"
    (gpus / "0000:01:00.0").mkdir(parents=True)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert nvidia_gpus_visible(gpus) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert nvidia_gpus_visible(gpus) == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert nvidia_gpus_visible(gpus) == 0
    assert nvidia_gpus_visible(tmp_path / "absent") == 0
    monkeypatch.setattr("mt_cli.engines.choice.nvidia_gpus_visible", lambda: 1)
    choice = choose_engine([trained_run])
    assert choice.engine == "native" and "GPU" in choice.reason


def test_the_choice_is_one_stderr_line_and_in_jsonl_records(runner, trained_run: Path) -> None:
    result = runner.invoke(app, ["translate", "-m", str(trained_run), "--format", "jsonl"], input="the cat .\n")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines() == [
        "engine: ctranslate2 (the model directory holds a CTranslate2 float32 conversion and nothing asked "
        "for needs the native engine); compute type: float32 (set in the config)"]
    record = json.loads(result.stdout)
    assert record["engine"] == "ctranslate2" and "conversion" in record["engine_reason"]
    native = runner.invoke(app, ["translate", "-m", str(trained_run), "--alignments", "--format", "jsonl"],
                           input="the cat .\n")
    assert native.exit_code == 0, native.output
    assert native.stderr.strip() == ("engine: native (--alignments (attention alignments) needs the native engine); "
                                     "decode dtype: float32 (set in the config)")
    assert json.loads(native.stdout)["engine"] == "native"
    quiet = runner.invoke(app, ["-q", "translate", "-m", str(trained_run)], input="the cat .\n")
    assert quiet.exit_code == 0 and quiet.stderr == ""


@pytest.mark.parametrize(("args", "parts"), [
    (["--engine", "gpu"], ("--engine", "auto, native, ctranslate2", "'gpu'")),
    (["--engine", "ctranslate2", "--alignments"], ("--engine ctranslate2", "--alignments")),
    (["--engine", "ctranslate2", "--shortlist", "20"], ("--engine ctranslate2", "--shortlist")),
])
def test_an_engine_that_cannot_serve_the_request_is_one_line(runner, trained_run: Path, args: list[str],
                                                              parts: tuple[str, ...]) -> None:
    result = runner.invoke(app, ["translate", "-m", str(trained_run), *args], input="the cat .\n")
    assert_one_line_error(result, *parts)


def test_native_on_a_ctranslate2_export_is_one_line(runner, trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "ct2"
    assert runner.invoke(app, ["-q", "export", "-m", str(trained_run), "-o", str(out),
                               "--format", "ctranslate2"]).exit_code == 0
    assert choose_engine([out]).engine == "ctranslate2"
    result = runner.invoke(app, ["translate", "-m", str(out), "--engine", "native"], input="the cat .\n")
    assert_one_line_error(result, "--engine native", "CTranslate2 export")


def test_the_ctranslate2_path_never_imports_tensorflow(trained_run: Path) -> None:
    code = ("import sys, atexit; atexit.register(lambda: print('tf' if 'tensorflow' in sys.modules else 'no-tf', "
            "file=sys.stderr)); sys.argv = ['mt-cli', 'translate', '-m', sys.argv[1]]; "
            "from mt_cli.cli.main import main; main()")
    result = subprocess.run([sys.executable, "-c", code, str(trained_run)], input="the cat .\n", text=True,
                            capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "no-tf", result.stderr


def test_auto_decodes_native_in_float32_on_every_cpu_kind(runner, trained_run: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`decode.dtype: auto` is float32 as a CPU with bf16 units decides it and as one without
    (MT_CLI_CPU_FLAGS, read afresh: the CPU is looked up once per process), and the engine line
    says why. (tests/test_runtime.py runs the override in a real process.)"""
    from mt_cli.core.hardware import this_cpu

    model = _copy_export(trained_run, tmp_path / "auto")
    config = model / "config.yaml"
    config.write_text(config.read_text().replace("dtype: float32", "dtype: auto"))
    _rehash(model, "config.yaml")
    for flags, units in (("avx2,fma", "no bf16 units"), ("avx512f,avx512_bf16,amx_bf16,amx_tile", "bf16 units")):
        monkeypatch.setenv("MT_CLI_CPU_FLAGS", flags)
        this_cpu.cache_clear()
        try:
            done = runner.invoke(app, ["translate", "-m", str(model), "--engine", "native"], input="the cat .\n")
        finally:
            this_cpu.cache_clear()
        assert done.exit_code == 0, done.output
        assert len(done.stdout.splitlines()) == 1
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith("engine: native (--engine native); decode dtype: float32 (auto: "), line
        assert units in line and "independent of the lines batched with it" in line, line


def test_bfloat16_decoding_when_asked_is_said_repeatable_and_close_to_float32(runner, trained_run: Path,
                                                                             toy_dir: Path) -> None:
    """What bfloat16 promises (on any CPU: TensorFlow emulates it without bf16 units): N lines,
    the same output for the same input and batching, the engine line naming the cost, and
    translations close to float32's; never that a line is independent of its batch."""
    source = toy_dir / "test.src"
    base = ["translate", "-m", str(trained_run), "--engine", "native", str(source), "--format", "jsonl"]
    first = runner.invoke(app, [*base, "--dtype", "bfloat16"])
    assert first.exit_code == 0, first.output
    assert first.stderr.strip().endswith("decode dtype: bfloat16 (set in the config; translations may depend on "
                                         "the lines batched together)")
    again = runner.invoke(app, [*base, "--dtype", "bfloat16"])
    assert again.stdout == first.stdout
    float32 = runner.invoke(app, base)
    assert float32.exit_code == 0, float32.output
    bf16_texts = [json.loads(line)["text"] for line in first.stdout.splitlines()]
    f32_texts = [json.loads(line)["text"] for line in float32.stdout.splitlines()]
    assert len(bf16_texts) == len(f32_texts) == len(source.read_text().splitlines())
    same = sum(a == b for a, b in zip(bf16_texts, f32_texts))
    assert same >= 0.7 * len(f32_texts), (same, len(f32_texts))


@pytest.mark.parametrize("variant", ["pre-joint", "post-separate-untied-gelu"])
def test_greedy_auto_equals_native_on_every_line(tmp_path: Path, toy_dir: Path, variant: str) -> None:
    """The directory's own conversion decodes greedily exactly as the native engine does."""
    norm, vocab, *rest = variant.split("-")
    model = random_model_dir(tmp_path, toy_dir, variant, norm=norm, joint=vocab == "joint",
                             share="target" if "untied" in rest else "all",
                             activation="gelu" if "gelu" in rest else "relu")
    sources = (toy_dir / "test.src").read_text().splitlines() + LINES
    flags = {"beam_size": 1, "n_best": 1, "dtype": "float32"}  # the same precision as the conversion
    native = open_translator(model, decode_flags=flags, engine="native").translate_nbest(sources)
    ct2 = open_translator(model, decode_flags=flags, engine="ctranslate2").translate_nbest(sources)
    assert [n[0].text for n in ct2] == [n[0].text for n in native]
    assert [n[0].pieces for n in ct2] == [n[0].pieces for n in native]


def test_beam_scores_are_gnmt_scores_on_both_engines(trained_run: Path) -> None:
    """Re-scored CTranslate2 hypotheses carry the native engine's GNMT score for the same output
    (over the whole vocabulary: a vocabulary map normalises over its candidates)."""
    flags = {"beam_size": 4, "n_best": 1, "vocabulary_map": False}
    native = open_translator(trained_run, decode_flags=flags, engine="native").translate_nbest(LINES)
    engine = open_translator(trained_run, decode_flags=flags, engine="ctranslate2")
    ct2 = engine.translate_nbest(LINES)
    limits = [engine._limit(engine.decode, len(p)) for p in engine.tokenizers.source.encode_pieces(LINES)]
    same = [(n[0], c[0]) for n, c, limit in zip(native, ct2, limits)
            if n[0].pieces == c[0].pieces and 0 < len(n[0].pieces) < limit]  # ended by eos, not cut at the limit
    assert same, "no line decoded alike"
    for n, c in same:
        assert c.score == pytest.approx(n.score, abs=2e-3), (n.text, n.score, c.score)


def test_gnmt_rescored_ranks_as_the_native_search() -> None:
    """CTranslate2's logp / n ** a turned into GNMT's logp / ((5 + n) / 6) ** a (n with the eos), best first."""
    short, long = ["a"], ["a", "b", "c", "d", "e"]
    found = [(long, -2.9 / 6), (short, -1.0 / 2)]  # CTranslate2's order: long (-0.48) before short (-0.5)
    ranked = gnmt_rescored(found, 1.0)
    assert [pieces for pieces, _ in ranked] == [short, long]  # GNMT: -1/(7/6) = -0.86 before -2.9/(11/6) = -1.58
    assert ranked[0][1] == pytest.approx(-1.0 / (7 / 6)) and ranked[1][1] == pytest.approx(-2.9 / (11 / 6))
    assert gnmt_rescored([([], -1.0)], 0.6)[0][1] == pytest.approx(-1.0)  # eos alone: n = 1, both penalties 1
    assert gnmt_rescored([(["a"], -1.0)], 1e300)[0][1] == float("-inf")  # no OverflowError
