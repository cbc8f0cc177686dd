"""The one-command main job: train on the demo corpus, translate its test split, score it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sacrebleu

from mt_cli.config import PRESET_DIR, load_config
from mt_cli.errors import ConfigError
from mt_cli.export.model_dir import load_translator
from mt_cli.textio import atomic_write_lines, read_lines
from mt_cli.training.loop import Reporter, TrainResult, train

DEMO_CONFIG = PRESET_DIR / "demo.yaml"


@dataclass
class QuickstartResult:
    training: TrainResult
    hypotheses: Path
    bleu: float
    chrf: float
    bleu_signature: str
    lines: int


def run_quickstart(run_dir: Path, config: Path = DEMO_CONFIG, overrides: list[str] | None = None,
                   overwrite: bool = False, reporter: Reporter | None = None) -> QuickstartResult:
    """Train (or resume) the demo model, translate the test split and score it with sacreBLEU."""
    cfg = load_config(config, overrides or [])
    if cfg.data.test is None:
        raise ConfigError(f"data.test: the quickstart needs a test set ({cfg.origin})")
    result = train(cfg, run_dir, overwrite=overwrite, reporter=reporter)
    sources = read_lines(cfg.data.test.source)
    references = read_lines(cfg.data.test.target)
    hypotheses = load_translator(result.export_dir).translate(sources)
    hyp_path = run_dir / f"test.hyp.{cfg.data.target_lang}"
    atomic_write_lines(hyp_path, hypotheses)
    bleu = sacrebleu.metrics.BLEU()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    return QuickstartResult(result, hyp_path, bleu_score.score, chrf.score,
                            str(bleu.get_signature()), len(hypotheses))
