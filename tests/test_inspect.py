"""`mt-cli attention` and `mt-cli plot` on real models and real metrics.jsonl files: valid
images with the panels asked for, a terminal grid without -o, and one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from mt_cli.cli.main import app

pytest.importorskip("matplotlib")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def svg_axes(path: Path) -> int:
    """Number of plot panels in a matplotlib SVG (one <g id="axes_N"> each)."""
    return len(re.findall(r'<g id="axes_\d+"', path.read_text()))


def test_attention_png_and_svg_panels(trained_run: Path, tmp_path: Path) -> None:
    result = cli("attention", "-m", trained_run, "--text", "the cat sees a dog .", "-o", tmp_path / "h.png")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG_MAGIC
    every = cli("attention", "-m", trained_run, "--text", "the cat sees a dog .", "--layer", "all",
                "--head", "all", "--kind", "encoder", "-o", tmp_path / "h.svg")
    assert every.exit_code == 0, every.stderr
    assert svg_axes(tmp_path / "h.svg") == 2  # the tiny model: 1 layer x 2 heads
    one = cli("attention", "-m", trained_run, "--text", "the cat", "--layer", "0", "--head", "1",
              "-o", tmp_path / "one.svg")
    assert one.exit_code == 0 and svg_axes(tmp_path / "one.svg") == 1


def test_attention_in_the_terminal(trained_run: Path, toy_dir: Path) -> None:
    result = cli("attention", "-m", trained_run, toy_dir / "test.src", "--line", "2", "--kind", "decoder")
    assert result.exit_code == 0, result.stderr
    first = (toy_dir / "test.src").read_text().splitlines()[1]
    assert first in result.stdout and "<s>" in result.stdout and "layer 0" in result.stdout


def test_attention_errors(trained_run: Path, toy_dir: Path, tmp_path: Path) -> None:
    assert_one_line_error(cli("attention", "-m", trained_run, "--text", "x", "--kind", "self"), "--kind")
    assert_one_line_error(cli("attention", "-m", trained_run, "--text", "x", "--head", "9"), "--head")
    assert_one_line_error(cli("attention", "-m", trained_run), "--text")
    assert_one_line_error(cli("attention", "-m", trained_run, toy_dir / "test.src", "--line", "999"), "--line")
    assert_one_line_error(cli("attention", "-m", trained_run, "--text", "x", "-o", tmp_path / "h.gif"), ".png")


def test_plot_reads_real_metrics(trained_run: Path, tmp_path: Path) -> None:
    result = cli("plot", trained_run, trained_run, "-o", tmp_path / "c.svg")
    assert result.exit_code == 0, result.stderr
    assert svg_axes(tmp_path / "c.svg") == 12
    text = (tmp_path / "c.svg").read_text()
    assert "dev BLEU vs step" in text and "best " in text
    png = cli("plot", trained_run, "-o", tmp_path / "c.png")
    assert png.exit_code == 0 and (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC


def test_plot_refuses_missing_empty_and_broken_metrics(tmp_path: Path) -> None:
    assert_one_line_error(cli("plot", tmp_path / "nope", "-o", tmp_path / "c.png"), "metrics.jsonl", "not found")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    assert_one_line_error(cli("plot", tmp_path / "empty", "-o", tmp_path / "c.png"), "no training or dev events")
    (tmp_path / "broken").mkdir()
    record = {"event": "train", "step": 1, "time": 1.0, "loss": 2.0}
    (tmp_path / "broken" / "metrics.jsonl").write_text(json.dumps(record) + "\n{oops\n")
    assert_one_line_error(cli("plot", tmp_path / "broken", "-o", tmp_path / "c.png"), "metrics.jsonl:2")
