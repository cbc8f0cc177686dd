"""The one-command main job: train on the demo corpus, translate its test split, score it.

The demo preset and its corpus are package data (mt_cli/core/packaged.py): the quickstart
runs from any folder of an installed wheel; the run goes under the working directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mt_cli.core.config_loading import load_config
from mt_cli.core.errors import ConfigError
from mt_cli.core.packaged import PRESET_DIR
from mt_cli.core.textio import atomic_write_lines, read_lines
from mt_cli.engines.choice import AUTO, check_engine_option, choose_engine, open_translator
from mt_cli.training.evaluation import scores_as_eval_says
from mt_cli.training.loop import Reporter, TrainResult, train

DEMO_CONFIG = PRESET_DIR / "demo.yaml"
log = logging.getLogger("mt_cli")


@dataclass
class QuickstartResult:
    training: TrainResult
    hypotheses: Path
    bleu: float
    chrf: float
    bleu_signature: str
    lines: int
    scores: dict[str, float]
    engine: str
    engine_reason: str


def run_quickstart(run_dir: Path, config: Path = DEMO_CONFIG, overrides: list[str] | None = None,
                   overwrite: bool = False, reporter: Reporter | None = None, engine: str = AUTO) -> QuickstartResult:
    """Train (or resume) the demo model, translate the test split and score it with sacreBLEU
    as the config's `eval:` section says (metrics, tokenize, lowercase, chrF word order)."""
    cfg = load_config(config, overrides or [])
    if cfg.data.test is None:
        raise ConfigError(f"data.test: the quickstart needs a test set ({cfg.origin})")
    check_engine_option(engine)  # a bad --engine fails before training, not after
    result = train(cfg, run_dir, overwrite=overwrite, reporter=reporter)
    sources = read_lines(cfg.data.test.source)
    references = read_lines(cfg.data.test.target)
    log.info(f"translating the test split, {cfg.data.test.source} ({len(sources)} lines)")
    choice = choose_engine([result.export_dir], engine)
    translator = open_translator(result.export_dir, engine=choice.engine, parallel_batches=True)
    log.info(choice.opened(translator).describe())
    hypotheses = translator.translate(sources)
    hyp_path = run_dir / f"test.hyp.{cfg.data.target_lang}"
    atomic_write_lines(hyp_path, hypotheses)
    refs = [[line.rstrip() for line in references]]
    hyps = [line.rstrip() for line in hypotheses]
    scored = scores_as_eval_says(hyps, refs, ("bleu", "chrf", *cfg.eval.metrics), cfg.eval)
    return QuickstartResult(result, hyp_path, scored["bleu"].score, scored["chrf"].score, scored["bleu"].signature,
                            len(hypotheses), {k: v.score for k, v in scored.items() if k in cfg.eval.metrics},
                            choice.engine, choice.reason)
