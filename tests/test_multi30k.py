"""Slow quality check on real data: a short Multi30k en-de training must reach a dev BLEU floor.

Data: ../shared/data/multi30k relative to the repository (train/val .en/.de); skipped
cleanly when absent. Bounded by steps, not wall clock (about 0.9 s a step on two CPU
cores; 13m50s on a shared machine, dev BLEU 18.4). Run with `pytest -m slow tests/test_multi30k.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, SHARED_MULTI30K

STEPS = 400
BLEU_FLOOR = 10.0  # the small preset passes ~19 dev BLEU by step 430; an untrained model scores ~0
NEEDED = ("train.en", "train.de", "val.en", "val.de")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all((SHARED_MULTI30K / name).is_file() for name in NEEDED),
                       reason=f"Multi30k not found at {SHARED_MULTI30K}"),
]


def _train(config: str, overrides: dict[str, object], run: Path) -> Path:
    """`mt-cli train configs/CONFIG` with `--set` overrides, as a user runs it; the run directory."""
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    done = subprocess.run([sys.executable, "-m", "mt_cli", "train", str(REPO / "configs" / config),
                           "--run-dir", str(run), *sets], capture_output=True, text=True, timeout=3600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def test_short_multi30k_training_reaches_a_dev_bleu_floor(tmp_path: Path) -> None:
    data = SHARED_MULTI30K
    overrides = {
        "data.train.0.source": data / "train.en", "data.train.0.target": data / "train.de",
        "data.dev.source": data / "val.en", "data.dev.target": data / "val.de",
        "data.test": "null", "train.max_steps": STEPS, "train.max_minutes": 0,
        "train.warmup_steps": STEPS, "train.eval_every": STEPS, "train.save_every": STEPS,
        "train.eval_max_sentences": 300, "train.eval_metric": "bleu", "decode.beam_size": 1,
        "decode.n_best": 1,
    }
    run = _train("multi30k-en-de.yaml", overrides, tmp_path / "run")
    finished = json.loads((run / "finished.json").read_text())
    assert (finished["reason"], finished["step"]) == ("max_steps", STEPS)
    assert finished["dev_scores"]["bleu"] > BLEU_FLOOR, finished


def test_one_en_de_fr_model_writes_the_language_asked_for(tmp_path: Path) -> None:
    """configs/multi30k-en-defr.yaml trained briefly: `--target-lang` switches the output
    language, judged by the language ID `mt-cli data` uses (test2016's first 200 lines)."""
    data = SHARED_MULTI30K
    if not all((data / name).is_file() for name in ("train.fr", "test2016.en")):
        pytest.skip(f"Multi30k French not found at {data}")
    overrides = {
        "data.train.0.source": data / "train.en", "data.train.0.target": data / "train.de",
        "data.train.1.source": data / "train.en", "data.train.1.target": data / "train.fr",
        "data.dev.source": data / "val.en", "data.dev.target": data / "val.de",
        "data.test": "null", "train.max_steps": STEPS, "train.max_minutes": 0,
        "train.warmup_steps": STEPS, "train.eval_every": STEPS, "train.save_every": STEPS,
        "train.eval_max_sentences": 100, "decode.beam_size": 1,
    }
    run = _train("multi30k-en-defr.yaml", overrides, tmp_path / "run")
    source = tmp_path / "test.en"
    source.write_text("".join((data / "test2016.en").read_text(encoding="utf-8").splitlines(True)[:200]))
    from mt_cli.core.langid import Identifier

    identify = Identifier(("en", "de", "fr"), 0.0, 1)
    for lang in ("de", "fr"):
        out = subprocess.run([sys.executable, "-m", "mt_cli", "-q", "translate", "-m", str(run), str(source),
                              "--target-lang", lang], capture_output=True, text=True, timeout=600, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        lines = out.stdout.splitlines()
        assert len(lines) == 200
        share = sum(identify.identify(line)[0] == lang for line in lines) / len(lines)
        assert share >= 0.9, (lang, share, lines[:5])
