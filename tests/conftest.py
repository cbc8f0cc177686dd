"""Shared fixtures: a seeded toy corpus, a tiny config file and one tiny trained run (built
once per session) for translate/evaluate tests; two models trained on copy/reversal tasks.
Plain helpers live in tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# The allocator every mt-cli command starts TensorFlow with (the suite imports it in-process).
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

from helpers import tiny_config_text, toy_pairs, train_task, write_pairs


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("toy")
    write_pairs(directory, "train", toy_pairs(600, seed=1))
    write_pairs(directory, "dev", toy_pairs(20, seed=2))
    write_pairs(directory, "test", toy_pairs(20, seed=3))
    return directory


@pytest.fixture()
def tiny_config(toy_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_config_text(toy_dir))
    return path


@pytest.fixture(scope="session")
def trained_run(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model trained through the real CLI, shared read-only by many tests."""
    from mt_cli.cli.main import app

    work = tmp_path_factory.mktemp("trained")
    config = work / "tiny.yaml"
    config.write_text(tiny_config_text(toy_dir, train={"max_steps": 60, "eval_every": 60}))
    result = CliRunner().invoke(app, ["train", str(config), "--run-dir", str(work / "run")])
    assert result.exit_code == 0, result.output
    return work / "run"


@pytest.fixture(scope="session")
def ct2_model(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained run exported with `--format ctranslate2` (read-only, shared)."""
    from mt_cli.cli.main import app

    out = tmp_path_factory.mktemp("ct2") / "model"
    result = CliRunner().invoke(app, ["export", "-m", str(trained_run), "-o", str(out), "--format", "ctranslate2"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def copy_reverse_tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny models trained 350 steps each on the copy and the reversal task (helpers.train_task),
    shared read-only: the alignment tests and the search test on a trained model."""
    root = tmp_path_factory.mktemp("tasks")
    return {"copy": train_task(root, False), "reverse": train_task(root, True)}


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()
