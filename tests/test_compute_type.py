"""CTranslate2's compute type chosen by machine at load time: int8 where the CPU multiplies int8 in
hardware and the model's dev check (written with the directory) kept BLEU, float32 elsewhere; an
explicit --compute-type wins; said on the engine line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import assert_one_line_error

from mt_cli.cli.main import app
from mt_cli.core.compute_type import resolve_compute_type
from mt_cli.core.hardware import Cpu, this_cpu

AVX2 = Cpu("test", "x86_64", 2, frozenset({"avx2", "fma"}))
VNNI = Cpu("test", "x86_64", 2, frozenset({"avx2", "avx512f", "avx512_vnni"}))
KEPT = {"lines": 20, "bleu": {"float32": 30.0, "int8": 29.8}}
LOST = {"lines": 20, "bleu": {"float32": 30.0, "int8": 29.6}}


def test_auto_takes_int8_only_with_int8_units_and_a_dev_check_that_kept_bleu() -> None:
    assert resolve_compute_type("auto", VNNI, "float32", KEPT).value == "int8"
    lost = resolve_compute_type("auto", VNNI, "float32", LOST)
    assert lost.value == "float32" and "more than 0.3 lost" in lost.reason
    unchecked = resolve_compute_type("auto", VNNI, "float32", None)
    assert unchecked.value == "float32" and "no int8 dev check" in unchecked.reason
    no_units = resolve_compute_type("auto", AVX2, "float32", KEPT)
    assert no_units.value == "float32" and "no int8 dot-product units" in no_units.reason
    assert resolve_compute_type("int8", AVX2, "float32", None).reason == "set in the config"
    assert resolve_compute_type("float32", VNNI, "float32", KEPT).value == "float32"
    assert resolve_compute_type("auto", AVX2, "int8", None).value == "int8"  # a quantized export keeps its own


def test_a_trained_model_directory_records_its_int8_dev_check(trained_run: Path) -> None:
    manifest = json.loads((trained_run / "export" / "manifest.json").read_text())
    check = manifest["ctranslate2"]["dev_check"]
    assert check["lines"] == 20  # the toy dev set, under the cap
    assert set(check["bleu"]) == {"float32", "int8", "float32+vmap", "int8+vmap"}  # the run has a map
    assert all(0 <= score <= 100 for score in check["bleu"].values())


def _with_dev_check(trained_run: Path, dest: Path, dev_check: object) -> Path:
    model = Path(shutil.copytree(trained_run / "export", dest))
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["ctranslate2"]["dev_check"] = dev_check
    (model / "manifest.json").write_text(json.dumps(manifest))
    config = model / "config.yaml"  # the toy config pins float32; this model asks for auto
    config.write_text(config.read_text().replace("compute_type: float32", "compute_type: auto"))
    from mt_cli.core.files import file_sha256

    manifest["files_sha256"]["config.yaml"] = file_sha256(config)
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


@pytest.mark.parametrize(("flags", "expected"), [("avx2,fma", "compute type: float32 (auto: this CPU has no int8"),
                                                 ("avx2,avx512f,avx512_vnni", "compute type: int8 (auto: this CPU "
                                                  "has int8 units (avx512_vnni, as MT_CLI_CPU_FLAGS")])
def test_the_engine_line_says_the_compute_type_chosen_for_the_cpu(runner, trained_run: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch, flags: str,
                                                                  expected: str) -> None:
    model = _with_dev_check(trained_run, tmp_path / "model", KEPT)
    monkeypatch.setenv("MT_CLI_CPU_FLAGS", flags)
    this_cpu.cache_clear()
    try:
        done = runner.invoke(app, ["translate", "-m", str(model)], input="the cat .\nthe dog .\n")
    finally:
        this_cpu.cache_clear()
    assert done.exit_code == 0, done.output
    assert len(done.stdout.splitlines()) == 2
    assert expected in done.stderr.strip().splitlines()[-1], done.stderr


def test_an_explicit_compute_type_wins_and_int8_translates(runner, trained_run: Path, toy_dir: Path) -> None:
    source = toy_dir / "test.src"
    base = ["translate", "-m", str(trained_run), str(source), "--engine", "ctranslate2"]
    int8 = runner.invoke(app, [*base, "--compute-type", "int8"])
    assert int8.exit_code == 0, int8.output
    assert int8.stderr.strip().endswith("compute type: int8 (set in the config)")
    float32 = runner.invoke(app, base)
    assert float32.stderr.strip().endswith("compute type: float32 (set in the config)")
    lines = source.read_text().splitlines()
    assert len(int8.stdout.splitlines()) == len(float32.stdout.splitlines()) == len(lines)
    bad = runner.invoke(app, [*base, "--compute-type", "int4"])
    assert_one_line_error(bad, "--compute-type")


@pytest.mark.parametrize("dev_check", [{"lines": 20, "bleu": {"int8": "high"}}, {"lines": 20, "bleu": {"int3": 1.0}},
                                       {"lines": "20", "bleu": {}}, [1, 2]])
def test_a_malformed_dev_check_is_one_line_naming_it(runner, trained_run: Path, tmp_path: Path,
                                                    dev_check: object) -> None:
    model = _with_dev_check(trained_run, tmp_path / "model", dev_check)
    done = runner.invoke(app, ["translate", "-m", str(model)], input="the cat .\n")
    assert_one_line_error(done, "manifest.json", "ctranslate2.dev_check")


def test_the_map_asked_for_warns_where_the_dev_check_saw_it_lose_bleu(runner, trained_run: Path,
                                                                     tmp_path: Path) -> None:
    model = _with_dev_check(trained_run, tmp_path / "model",
                            {"lines": 20, "bleu": {"float32": 30.0, "float32+vmap": 29.0}})
    flags = ["translate", "-m", str(model), "--compute-type", "float32"]
    warned = runner.invoke(app, [*flags, "--vocabulary-map"], input="the cat .\n")
    assert warned.exit_code == 0, warned.output
    assert "BLEU 29.00 with the map against 30.00 without it in float32" in warned.stderr
    quiet = runner.invoke(app, flags, input="the cat .\n")
    assert quiet.exit_code == 0 and "with the map" not in quiet.stderr
