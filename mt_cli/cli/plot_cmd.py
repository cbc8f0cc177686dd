"""`mt-cli plot`: training curves of one or more runs as an image (matplotlib, `[plot]` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mt_cli.cli import console
from mt_cli.cli.image_output import check_image


def plot(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (or metrics.jsonl files).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="curves.png/.svg/.pdf")],
) -> None:
    """Training curves: loss, learning rate, tokens/s, dev BLEU/chrF/loss by step and minutes.

    \b
    Examples:
      mt-cli plot runs/multi30k-en-de -o curves.png
      mt-cli plot runs/a runs/b -o compare.svg          # runs overlaid, best dev point marked
    """
    check_image(output)
    from mt_cli.app.plot import plot_runs, read_metrics

    panels = plot_runs([read_metrics(run) for run in runs], output)
    console.info(f"wrote {output} ({panels} panels, {len(runs)} run(s))")
