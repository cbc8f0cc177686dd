"""`mt-cli train`: one config in, a run directory with checkpoints and an export out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mt_cli.cli import console
from mt_cli.cli.common import ConfigArg, SetOption, load, start_tensorflow


def default_run_dir(config: Path, configured: str | None) -> Path:
    return Path(configured) if configured else Path("runs") / config.stem


def train(
    config: ConfigArg,
    run_dir: Annotated[Path | None, typer.Option(
        "--run-dir", "-r", help="Run directory (default: train.run_dir or runs/<config name>).",
    )] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Delete an existing run directory and start again.",
    )] = False,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", metavar="MODEL_DIR",
        help="Start a new run from a model directory's weights and SentencePiece model(s) "
             "(fine-tuning; the config's model section must match; fresh optimizer, see "
             "train.init_reset). Resume it later without this option.")] = None,
    set_: SetOption = None,
) -> None:
    """Train a Transformer from a YAML config; rerun the same command to resume.

    \b
    Writes RUN_DIR/{config.yaml, metrics.jsonl, tensorboard/, checkpoints/, export/}.
    SIGTERM/SIGINT save a checkpoint and exit 143/130.

    \b
    Examples:
      mt-cli train configs/multi30k-en-de.yaml --set data.train.0.source=...
      mt-cli train my.yaml --run-dir runs/exp1 --set train.max_steps=20000
      mt-cli train indomain.yaml --run-dir runs/ft1 --init-from runs/exp1/export
    """
    start_tensorflow()
    from mt_cli.training.loop import Interrupted
    from mt_cli.training.loop import train as run_training

    cfg = load(config, set_)
    directory = run_dir or default_run_dir(config, cfg.train.run_dir)
    try:
        result = run_training(cfg, directory, overwrite=overwrite, reporter=console.TrainProgress(),
                              init_from=init_from)
    except Interrupted as stop:
        console.info(str(stop))
        raise typer.Exit(128 + stop.signum) from None
    scores = "  ".join(f"{k} {v:.2f}" for k, v in result.dev_scores.items())
    console.info(f"finished at step {result.step} ({result.stop_reason}); export: {result.export_dir}"
                 + (f"; dev {scores}" if scores else ""))
