"""The only place that prints: messages to stderr, a progress display, quiet when piped.

Library code logs through `logging.getLogger("mt_cli")`; this module decides how that looks:
rich on a terminal, plain lines when not a TTY (CI, nohup), nothing but warnings with --quiet.
Every message goes out through `printable`: text quoted from a file (a line, a file name)
cannot drive the terminal or break a message into several lines.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from rich.console import Console

from mt_cli.core.printable import printable

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)
_state = {"quiet": False, "verbose": False}


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            prefix = "error: "
        elif record.levelno >= logging.WARNING:
            prefix = "warning: "
        else:
            prefix = ""
        stderr.print(f"{prefix}{printable(message)}", markup=False)


def setup(quiet: bool = False, verbose: bool = False) -> None:
    """Route the library's log records to stderr at the chosen verbosity."""
    _state["quiet"] = quiet
    _state["verbose"] = verbose
    logger = logging.getLogger("mt_cli")
    logger.handlers[:] = [_Handler()]
    logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO))


def adopt_logger(name: str) -> None:
    """Route another library's logger (uvicorn's) through this module: its warnings and
    errors always, its chatter only with --verbose."""
    logger = logging.getLogger(name)
    logger.handlers[:] = [_Handler()]
    logger.propagate = False
    logger.setLevel(logging.DEBUG if _state["verbose"] else logging.WARNING)


def is_verbose() -> bool:
    return _state["verbose"]


def is_quiet() -> bool:
    return _state["quiet"]


def interactive() -> bool:
    """Fancy output only for a human at a terminal."""
    return stderr.is_terminal and not _state["quiet"]


def info(message: str) -> None:
    if not _state["quiet"]:
        stderr.print(printable(message), markup=False)


def warning(message: str) -> None:
    """Shown even with --quiet: something the user asked for is not done as asked."""
    stderr.print(f"warning: {printable(message)}", markup=False)


def error(message: str) -> None:
    """One line on stderr: the whole contract for user errors (line breaks and other control
    characters inside the message, e.g. from a file name or a quoted line, are shown escaped)."""
    stderr.print(f"error: {printable(message)}", markup=False)


def print_text(text: str) -> None:
    """A command's text output (a summary) on stdout, as given."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def print_json(document: Any) -> None:
    """Machine-readable output goes to stdout, exactly one document."""
    import json

    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


class TrainProgress:
    """Progress of training: a rich bar on a terminal, plain log lines otherwise."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._last: dict[str, float] = {}

    def start(self, total_steps: int, first_step: int) -> None:
        if not interactive():
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("step"), MofNCompleteColumn(), BarColumn(),
            TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=stderr, transient=False)
        self._task = self._progress.add_task("train", total=total_steps, completed=first_step, status="")
        self._progress.start()

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if metrics:
            self._last = metrics
            status = (f"loss {metrics['loss']:.3f}  lr {metrics['learning_rate']:.2e}  "
                      f"{metrics['tokens_per_s']:,.0f} tok/s")
            if self._progress is None:
                if not is_quiet():
                    stderr.print(f"step {step}  {status}", markup=False)
                return
            self._progress.update(self._task, completed=step, status=status)
        elif self._progress is not None:
            self._progress.update(self._task, completed=step)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class LineProgress:
    """Lines (or `unit`) done of a long job: a rich bar (done / total, lines/s, ETA) on a terminal,
    nothing on a pipe or with --quiet (logs and files stay clean). `total` None: not counted."""

    def __init__(self, unit: str = "lines") -> None:
        self._progress: Any = None
        self._task: Any = None
        self._unit = unit

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def start(self, total: int | None) -> None:
        if not interactive():
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn(self._unit), MofNCompleteColumn(), BarColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=stderr, transient=False)
        self._task = self._progress.add_task("translate", total=total, rate="")
        self._progress.start()

    def advance(self, lines: int) -> None:
        if self._progress is None:
            return
        self._progress.advance(self._task, lines)
        task = self._progress.tasks[0]
        speed = task.speed or (task.completed / task.elapsed if task.elapsed else None)  # one round: no speed yet
        self._progress.update(self._task, rate="" if speed is None else f"{speed:,.1f} {self._unit}/s")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
