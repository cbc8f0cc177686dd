"""The CTranslate2 vocabulary map a trained run's model directory carries (vmap.txt, built from
the training corpus at export): listed and hashed in the manifest, carried by `export --format
ctranslate2`, and refused when edited or not named by the manifest (CTranslate2 would read it
unasked). Real CTranslate2, on copies of the session's trained run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.files import file_sha256

LINES = "the cat sees the dog .\na big red ball .\n\nthe old man eats .\n"


def cli(*args: object, stdin: str = LINES) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def ok(result: object) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def manifest(model: Path) -> dict:
    return json.loads((model / "manifest.json").read_text())


def unlisted(model: Path) -> Path:
    """`model` with its manifest no longer naming vmap.txt (the file stays)."""
    document = manifest(model)
    section = document.get("ctranslate2", document)
    section.pop("vocabulary_map")
    if "files" in section:
        section["files"].remove("vmap.txt")
    del document["files_sha256"]["vmap.txt"]
    (model / "manifest.json").write_text(json.dumps(document))
    return model


def test_training_writes_the_map_listed_and_hashed(trained_run: Path) -> None:
    export = trained_run / "export"
    document = manifest(export)
    section = document["ctranslate2"]
    assert section["vocabulary_map"] == "vmap.txt" and "vmap.txt" in section["files"]
    assert document["files_sha256"]["vmap.txt"] == file_sha256(export / "vmap.txt")
    lines = (export / "vmap.txt").read_text(encoding="utf-8").splitlines()
    always = lines[0].split("\t")
    assert always[0] == "" and {"<unk>", "<s>", "</s>", "▁."} <= set(always[1].split(" "))
    assert all(line.count("\t") == 1 and line.split("\t")[0] for line in lines[1:])


def test_an_edited_map_is_refused(trained_run: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(trained_run / "export", tmp_path / "model"))
    with open(model / "vmap.txt", "a", encoding="utf-8") as handle:
        handle.write("▁the\t▁.\n")
    assert_one_line_error(cli("translate", "-m", model, "--engine", "ctranslate2"),
                          str(model / "vmap.txt"), "sha256 does not match the manifest")


@pytest.mark.parametrize("kind", ["model directory", "ctranslate2 export"])
def test_a_map_the_manifest_does_not_name_is_refused_before_ctranslate2_loads(
        kind: str, trained_run: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    source = trained_run / "export" if kind == "model directory" else request.getfixturevalue("ct2_model")
    model = unlisted(Path(shutil.copytree(source, tmp_path / "model")))
    error = assert_one_line_error(cli("translate", "-m", model), str(model / "vmap.txt"), "re-export")
    assert "not named by manifest.json" in error


def test_export_ctranslate2_carries_the_map(trained_run: Path, ct2_model: Path) -> None:
    document = manifest(ct2_model)
    assert document["vocabulary_map"] == "vmap.txt"
    assert (ct2_model / "vmap.txt").read_bytes() == (trained_run / "export" / "vmap.txt").read_bytes()
    assert document["files_sha256"]["vmap.txt"] == file_sha256(ct2_model / "vmap.txt")


def test_a_ctranslate2_export_naming_an_unhashed_map_is_refused(ct2_model: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(ct2_model, tmp_path / "model"))
    document = manifest(model)
    del document["files_sha256"]["vmap.txt"]
    (model / "manifest.json").write_text(json.dumps(document))
    assert_one_line_error(cli("translate", "-m", model), str(model / "manifest.json"),
                          "vocabulary_map: 'vmap.txt' is not listed in files_sha256")
