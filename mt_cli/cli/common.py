"""Options shared by several commands."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from mt_cli.cli import console
from mt_cli.core.config import native_features
from mt_cli.core.quiet import native_stderr_captured
from mt_cli.core.runtime import configure_environment

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file, or a preset's name (mt-cli config presets).",
                                           show_default=False)]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE",
    help="Override a config value, e.g. --set train.max_steps=1000 (repeatable).")]
EngineOption = Annotated[str, typer.Option(
    "--engine", metavar="auto|native|ctranslate2",
    help="auto: CTranslate2 where the model directory holds its conversion and the request needs nothing "
         f"only the native engine has ({', '.join([*native_features(), 'constraints', 'ensembles', 'a GPU'])}); "
         "else native. The choice and its reason go to stderr.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")]


def load(config: Path | None, overrides: list[str] | None):  # -> Config, lazily imported
    from mt_cli.core.config_loading import load_config

    return load_config(config, overrides or [])


def check_output_path(path: Path | None, flag: str, example: str = "out.txt") -> None:
    """An output file path that names a directory fails before any work (model loading,
    translating, scoring), not when the result is written at the end."""
    if path is not None and path.is_dir():
        from mt_cli.core.errors import ConfigError

        raise ConfigError(f"{flag}: {path} is a directory; give a file path (e.g. {path / example})")


def open_chosen_engine(model: list[Path], engine: str, overrides: list[str] | None, threads: int = 0,
                       weights: list[float] | None = None, decode_flags: dict | None = None,
                       constraints: bool = False, job: Any = None,
                       parallel_batches: bool = True):  # -> (LineTranslator, EngineChoice, ModelDir)
    """The engine `--engine` asks for (auto: chosen here) and the choice, over the model
    directories opened once (manifest read, config parsed with `--set` and the decode flags),
    with TensorFlow started only when the native engine is the one (and the first directory,
    opened, for what else callers read from it: its languages). Callers say the choice (`say_engine`) once the
    input proved good, so bad input still gets its one error line alone."""
    from mt_cli.engines.choice import choose_engine, open_translator
    from mt_cli.engines.locate import NATIVE
    from mt_cli.engines.opened import open_model_dir

    opened = [open_model_dir(path, overrides, decode_flags) for path in model]  # each read and parsed once
    for directory in opened:  # a missing or unknown --target-lang, before any model is loaded
        directory.languages.source_tags(directory.config.decode.target_lang)
    choice = choose_engine(opened, engine, constraints=constraints, job=job)
    if choice.engine == NATIVE:
        start_tensorflow()
    translator = open_translator(opened, threads=threads, ensemble_weights=weights, engine=choice.engine,
                                 parallel_batches=parallel_batches)
    return translator, choice.opened(translator), opened[0]


def say_engine(lines: Iterable[str], choice: Any) -> Iterator[str]:
    """`lines`, with the engine choice said on stderr once the first of them is out (or at the
    end, for no lines): one info line, none with -q."""
    said = False
    for line in lines:
        if not said:
            console.info(choice.describe())
            said = True
        yield line
    if not said:
        console.info(choice.describe())


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
