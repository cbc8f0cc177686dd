"""An output file path that names an existing directory is one error line before any work.

`translate -o DIR` used to translate everything and only then fail to write; the same held for
`evaluate --save-hyp/--sentence-level`, `tokenize encode/decode -o` and the image outputs. The
model paths below do not exist: the output path must be refused before a model is looked at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from mt_cli.cli.main import app


@pytest.fixture()
def texts(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "src.txt").write_text("the cat .\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("eht tac .\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    (tmp_path / "heat.png").mkdir()
    return {"src": tmp_path / "src.txt", "ref": tmp_path / "ref.txt", "dir": tmp_path / "out",
            "image_dir": tmp_path / "heat.png", "model": tmp_path / "no-such-model"}


def _refused(args: list[str], flag: str, directory: Path) -> None:
    result = CliRunner().invoke(app, [*args])
    assert_one_line_error(result, flag, f"{directory} is a directory", "give a file path")
    assert result.stdout == ""


def test_translate_output_directory(texts: dict[str, Path]) -> None:
    _refused(["translate", "-m", str(texts["model"]), str(texts["src"]), "-o", str(texts["dir"])],
             "-o/--output", texts["dir"])


def test_translate_output_directory_with_a_real_model(trained_run: Path, texts: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(texts["src"]), "-o", str(texts["dir"])])
    assert_one_line_error(result, "-o/--output", "is a directory")  # not even the engine line: nothing ran
    assert list(texts["dir"].iterdir()) == []


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_tokenize_output_directory(texts: dict[str, Path], command: str) -> None:
    _refused(["tokenize", command, "-m", str(texts["model"]), str(texts["src"]), "-o", str(texts["dir"])],
             "-o/--output", texts["dir"])


def test_evaluate_save_hyp_directory(texts: dict[str, Path]) -> None:
    _refused(["evaluate", "-m", str(texts["model"]), "-s", str(texts["src"]), "-r", str(texts["ref"]),
              "--save-hyp", str(texts["dir"])], "--save-hyp", texts["dir"])


def test_evaluate_sentence_level_directory(texts: dict[str, Path]) -> None:
    _refused(["evaluate", "-r", str(texts["ref"]), str(texts["ref"]), "--sentence-level", str(texts["dir"])],
             "--sentence-level", texts["dir"])


def test_image_output_directory(texts: dict[str, Path]) -> None:
    _refused(["plot", str(texts["model"]), "-o", str(texts["image_dir"])], "-o/--output", texts["image_dir"])
    _refused(["attention", "-m", str(texts["model"]), "--text", "the cat .", "-o", str(texts["image_dir"])],
             "-o/--output", texts["image_dir"])
