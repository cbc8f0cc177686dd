"""`mt-cli average`: checkpoints of a run averaged into a model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mt_cli.cli import console
from mt_cli.cli.common import start_tensorflow


def _steps(text: str | None) -> list[int] | None:
    from mt_cli.core.errors import ConfigError

    if text is None:
        return None
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--steps: expected comma-separated step numbers, got {text!r}") from None
    if not steps:
        raise ConfigError(f"--steps: no step number in {text!r}; give e.g. --steps 4000,5000")
    return steps


def average(
    run: Annotated[Path, typer.Argument(help="Run directory (holds config.yaml and checkpoints/).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    last: Annotated[int | None, typer.Option("--last", help="Average the last K checkpoints.")] = None,
    steps: Annotated[str | None, typer.Option("--steps", help="Average these steps, e.g. 3000,4000,5000.")] = None,
) -> None:
    """Average checkpoints of a run into a model directory (translate -m reads it).

    \b
    Examples:
      mt-cli average runs/multi30k-en-de --last 5 -o runs/multi30k-avg5
      mt-cli average runs/multi30k-en-de --steps 4000,4500,5000 -o runs/avg
    """
    chosen = _steps(steps)
    start_tensorflow()
    from mt_cli.app.average import average_checkpoints

    averaged = average_checkpoints(run, output, last, chosen)
    console.info(f"averaged steps {', '.join(map(str, averaged))} into {output}")
