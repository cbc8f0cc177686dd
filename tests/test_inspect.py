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
    for layer in ("99", "1", "-2"):  # the tiny model has one layer: 0 or -1 (was: silently the last)
        assert_one_line_error(cli("attention", "-m", trained_run, "--text", "x", "--layer", layer),
                              "--layer: the model has 1 layer (0..0, or -1..-1 from the end)", f"got {layer}")
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


def test_plot_errors_on_odd_metrics_and_skips_a_partial_last_line(tmp_path: Path) -> None:
    """A run killed mid-write leaves a last line without its newline: skipped with a warning.
    Invalid UTF-8 and records of the wrong types are one-line errors naming the line."""
    good = json.dumps({"event": "train", "step": 1, "time": 1.0, "loss": 2.0}) + "\n"
    cases = {"binary": (good.encode() + b"\xff\xfe{}\n", "metrics.jsonl:2", "invalid UTF-8"),
             "kind": (good.encode() + b'{"event": ["train"], "step": 2, "time": 2.0}\n', "metrics.jsonl:2"),
             "step": (good.encode() + b'{"event": "train", "step": 1e400, "time": 2.0}\n', "metrics.jsonl:2"),
             "time": (good.encode() + b'{"event": "train", "step": 2, "time": NaN}\n', "metrics.jsonl:2"),
             "list": (b"[1, 2]\n" + good.encode(), "metrics.jsonl:1"),
             "deep": (good.encode() + b"[" * 100000 + b"\n", "metrics.jsonl:2")}
    for name, (content, *parts) in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_bytes(content)
        assert_one_line_error(cli("plot", tmp_path / name, "-o", tmp_path / "c.png"), *parts)
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / "metrics.jsonl").write_text(good + good.replace('"step": 1', '"step": 2') + '{"event": "tr')
    result = cli("plot", tmp_path / "killed", "-o", tmp_path / "c.png")
    assert result.exit_code == 0, result.stderr
    assert "metrics.jsonl:3: skipped a partial last line" in result.stderr
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
