"""Options shared by several commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mt_cli.cli import console
from mt_cli.core.quiet import native_stderr_captured
from mt_cli.core.runtime import configure_environment

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file (presets live in configs/).",
                                           show_default=False)]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE",
    help="Override a config value, e.g. --set train.max_steps=1000 (repeatable).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")]


def load(config: Path | None, overrides: list[str] | None):  # -> Config, lazily imported
    from mt_cli.core.config import load_config

    return load_config(config, overrides or [])


def start_tensorflow() -> None:
    """Import TensorFlow, and initialise its devices, before a command that needs it.

    This is the one deliberate late import: commands call it first, then import the use
    case they run. The allocator variable is set first (mt_cli/core/runtime.py: a user's own value
    wins), since TensorFlow reads it once, at import. TF 2.16+ logs CUDA probing and oneDNN
    notes before TF_CPP_MIN_LOG_LEVEL is read, so native stderr is captured meanwhile
    (replayed on failure; shown with -v).
    """
    if "tensorflow" in sys.modules:
        return
    configure_environment()
    if console.is_verbose():
        import tensorflow  # noqa: F401  (imported for its start-up, chatter shown)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_captured():
        import tensorflow as tf

        tf.config.list_physical_devices()
