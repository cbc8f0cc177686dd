"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file (presets live in configs/).",
                                           show_default=False)]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE",
    help="Override a config value, e.g. --set train.max_steps=1000 (repeatable).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")]


def load(config: Path | None, overrides: list[str] | None):  # -> Config, lazily imported
    from mt_cli.config import load_config

    return load_config(config, overrides or [])


def start_tensorflow() -> None:
    """Import TensorFlow quietly before a command that needs it (chatter only with -v)."""
    from mt_cli import console
    from mt_cli.quiet import import_tensorflow

    import_tensorflow(verbose=console.is_verbose())
