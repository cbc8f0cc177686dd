"""Shared fixtures: a seeded toy corpus, a tiny SentencePiece model, a tiny config, and one
tiny trained run (built once per session) for translate/evaluate tests."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parents[1]
SHARED_MULTI30K = REPO.parent / "shared" / "data" / "multi30k"

_WORDS = ["cat", "dog", "man", "woman", "red", "blue", "big", "small", "runs", "eats",
          "sees", "the", "a", "house", "tree", "car", "green", "old", "young", "ball"]
_DICT = {w: w[::-1] + "o" for w in _WORDS}


def toy_pairs(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """A learnable toy 'language pair': each word maps to a made-up word, order kept."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(2, 7))]
        pairs.append((" ".join(words) + " .", " ".join(_DICT[w] for w in words) + " ."))
    return pairs


def write_pairs(directory: Path, name: str, pairs: list[tuple[str, str]]) -> tuple[Path, Path]:
    src, tgt = directory / f"{name}.src", directory / f"{name}.tgt"
    src.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    tgt.write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return src, tgt


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("toy")
    write_pairs(directory, "train", toy_pairs(600, seed=1))
    write_pairs(directory, "dev", toy_pairs(20, seed=2))
    write_pairs(directory, "test", toy_pairs(20, seed=3))
    return directory


def tiny_config_text(toy: Path, **sections: dict) -> str:
    """YAML for the tiny preset on the toy corpus; `sections` add/replace keys."""
    import yaml

    raw = {
        "base": str(REPO / "configs" / "transformer-tiny.yaml"),
        "data": {"train": [{"source": str(toy / "train.src"), "target": str(toy / "train.tgt")}],
                 "dev": {"source": str(toy / "dev.src"), "target": str(toy / "dev.tgt")}},
        "tokenizer": {"vocab_size": 48},
        "train": {"max_steps": 30, "save_every": 10, "eval_every": 1000, "log_every": 10,
                  "batch_tokens": 256, "warmup_steps": 10},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return yaml.safe_dump(raw)


@pytest.fixture()
def tiny_config(toy_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_config_text(toy_dir))
    return path


@pytest.fixture(scope="session")
def trained_run(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model trained through the real CLI, shared read-only by many tests."""
    from mt_cli.cli.app import app

    work = tmp_path_factory.mktemp("trained")
    config = work / "tiny.yaml"
    config.write_text(tiny_config_text(toy_dir, train={"max_steps": 60, "eval_every": 60}))
    result = CliRunner().invoke(app, ["train", str(config), "--run-dir", str(work / "run")])
    assert result.exit_code == 0, result.output
    return work / "run"


def assert_one_line_error(stderr: str, *parts: str) -> str:
    """The CLI's error contract: exactly one `error: ...` line, no traceback."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def tiny_model_config(**overrides: object):
    """A 2+2-layer, d=32 ModelConfig for layer and search tests (no dropout)."""
    from mt_cli.config import ModelConfig

    base = dict(encoder_layers=2, decoder_layers=2, hidden_dim=32, num_heads=4, ffn_dim=64,
                dropout=0.0, attention_dropout=0.0, ffn_dropout=0.0, max_length=32)
    return ModelConfig(**{**base, **overrides})


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest
