"""Alignments from cross-attention: a tiny model trained in seconds on a monotone copy task
must align word i to word i, and on a reversal task word i to word n-1-i, for >= 90% of the
words it translates correctly; the formats carry them and empty lines stay empty. The two
models are conftest's `copy_reverse_tasks` (shared with tests/test_search.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import task_files
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.alignment import hard_alignment, layer_index, moses, word_ids
from mt_cli.core.errors import ConfigError
from mt_cli.engines.choice import open_translator


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_alignment_follows_the_task(copy_reverse_tasks: dict[str, Path], task: str, tmp_path: Path) -> None:
    directory = copy_reverse_tasks[task]
    src, tgt = task_files(tmp_path, "test", task == "reverse", 60, 7)
    sources, references = src.read_text().splitlines(), tgt.read_text().splitlines()
    translator = open_translator(directory / "run", ["decode.alignments=true"])
    results = translator.translate_nbest(sources)
    right = total = correct_lines = 0
    for source, reference, nbest in zip(sources, references, results):
        if nbest[0].text != reference:
            continue
        correct_lines += 1
        n = len(source.split())
        expected = {(j, j) if task == "copy" else (n - 1 - j, j) for j in range(n)}
        total += n
        right += len(expected & set(nbest[0].alignment))
    assert correct_lines >= 30, f"the {task} model learned too little ({correct_lines}/60 lines right)"
    assert right / total >= 0.9, f"{task}: {right}/{total} words aligned as the task says"


def test_formats_carry_alignments(copy_reverse_tasks: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("ka lo mi\n\nnu pe\n")
    run = copy_reverse_tasks["copy"] / "run"
    text = CliRunner().invoke(app, ["translate", "-m", str(run), str(src), "--alignments"])
    assert text.exit_code == 0, text.stderr
    lines = text.stdout.split("\n")[:-1]
    assert len(lines) == 3 and lines[1] == " ||| "
    assert lines[0].endswith(" ||| 0-0 1-1 2-2")
    jsonl = CliRunner().invoke(app, ["translate", "-m", str(run), str(src), "--alignments", "--format", "jsonl",
                                     "--beam-size", "2", "--n-best", "2"])
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert records[1]["alignment"] == []
    assert all("alignment" in h for h in records[0]["nbest"])


def test_word_ids_and_links() -> None:
    assert word_ids(["\u2581Ein", "\u2581Fahr", "rad", "."]) == [0, 1, 1, 1]
    assert word_ids(["a", "b", "\u2581c"]) == [0, 0, 1]
    # 3 target words over 2 source words (+ eos column, + eos row: both ignored)
    cross = [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]]
    import numpy as np

    links = hard_alignment(np.array(cross), ["\u2581a", "\u2581b"], ["\u2581x", "\u2581y", "\u2581z"])
    assert links == [(0, 0), (0, 1), (1, 2)] and moses(links) == "0-0 0-1 1-2"
    assert hard_alignment(np.zeros((2, 2)), [], ["\u2581x"]) == []
    assert layer_index(-1, 3, "--layer") == 2 and layer_index(-3, 3, "--layer") == 0
    for wrong in (7, 3, -4):
        with pytest.raises(ConfigError, match=rf"^--layer: the model has 3 layers .*got {wrong}$"):
            layer_index(wrong, 3, "--layer")


@pytest.mark.parametrize("layer", ["1", "-3", "7"])
def test_alignment_layer_out_of_range_is_an_error(copy_reverse_tasks: dict[str, Path], tmp_path: Path,
                                                  layer: str) -> None:
    """A one-layer decoder has layers 0 and -1 only: another --alignment-layer is refused, naming
    the flag and the range, instead of silently aligning with the last layer."""
    src = tmp_path / "in.txt"
    src.write_text("ka lo mi\n")
    run = copy_reverse_tasks["copy"] / "run"
    result = CliRunner().invoke(app, ["translate", "-m", str(run), str(src), "--alignments",
                                      "--alignment-layer", layer])
    assert result.exit_code == 1, result.stdout
    assert "--alignment-layer: the model has 1 layer (0..0, or -1..-1 from the end), got " + layer in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    default = CliRunner().invoke(app, ["translate", "-m", str(run), str(src), "--alignments"])
    assert default.exit_code == 0 and default.stdout.endswith(" ||| 0-0 1-1 2-2\n")
