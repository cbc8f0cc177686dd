"""Training checkpoints: full training state for exact resume, written atomically.

A checkpoint is built in `checkpoints/.tmp-*` and renamed into `step-NNNNNNNN/` only when
complete, so a crash (kill -9, full disk) never leaves a partial checkpoint to be chosen.
What translation reads is the model directory (mt_cli.engines.model_dir), not these.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from mt_cli.core.errors import CheckpointError
from mt_cli.core.files import atomic_dir

log = logging.getLogger("mt_cli")
STEP_PREFIX = "step-"
# Fault injection for tests: "STEP:MARKER" pauses the save of STEP after its first file
# (the TensorFlow checkpoint) and creates MARKER, so a test can kill -9 inside a save.
PAUSE_SAVE_ENV = "MT_CLI_PAUSE_SAVE"
# How TensorFlow reports truncated, damaged or missing checkpoint files (checked on TF 2.21):
# a truncated data file is an IndexError, a damaged index an UNKNOWN OpError about sstables.
_DAMAGE_TYPES = (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.NotFoundError)
_DAMAGE_WORDS = re.compile(r"sstable|too short|truncat|corrupt|checksum|crc|No such file|"
                           r"Read less bytes than requested", re.IGNORECASE)


@dataclass(frozen=True)
class SavedStep:
    step: int
    path: Path

    @property
    def prefix(self) -> str:
        return str(self.path / "ckpt")

    def state(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "state.json").read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path / 'state.json'}: unreadable ({exc})") from None


def list_checkpoints(directory: Path) -> list[SavedStep]:
    """Complete checkpoints, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        if entry.is_dir() and entry.name.startswith(STEP_PREFIX):
            try:
                found.append(SavedStep(int(entry.name[len(STEP_PREFIX):]), entry))
            except ValueError:
                continue
    return sorted(found, key=lambda s: s.step)


def save_checkpoint(directory: Path, step: int, trackable: Any, state: dict[str, Any]) -> SavedStep:
    """Write a tf.train.Checkpoint of `trackable` plus a JSON state, atomically."""
    final = directory / f"{STEP_PREFIX}{step:08d}"

    def build(tmp: Path) -> None:
        trackable.write(str(tmp / "ckpt"))
        _maybe_pause(step)
        (tmp / "state.json").write_text(json.dumps(state, indent=1))

    atomic_dir(final, build, io_errors=(OSError, tf.errors.OpError))
    return SavedStep(step, final)


def _maybe_pause(step: int) -> None:
    """Test hook ($MT_CLI_PAUSE_SAVE=STEP:MARKER): stop inside this save until killed."""
    wanted, _, marker = os.environ.get(PAUSE_SAVE_ENV, "").partition(":")
    if wanted.strip() == str(step) and marker:
        Path(marker).write_text(str(os.getpid()))
        while True:
            time.sleep(1.0)


def prune_checkpoints(directory: Path, keep_last: int, protect: set[int]) -> None:
    """Keep the newest `keep_last` checkpoints plus the protected (best) steps."""
    saved = list_checkpoints(directory)
    for item in saved[:-keep_last] if keep_last else saved:
        if item.step not in protect:
            shutil.rmtree(item.path, ignore_errors=True)


class _Unreadable(Exception):
    """A checkpoint whose files are truncated, damaged or missing."""


def _read_one(item: SavedStep, trackable: Any) -> None:
    """Restore one checkpoint; _Unreadable for damaged files, CheckpointError for the rest."""
    try:
        state = item.state()
    except CheckpointError as exc:
        raise _Unreadable(str(exc)) from exc
    if state.get("step") != item.step:
        raise _Unreadable(f"{item.path}: state.json says step {state.get('step')}")
    try:
        trackable.read(item.prefix).assert_existing_objects_matched()
    except Exception as exc:
        if _is_damage(exc):
            raise _Unreadable(_first_line(exc)) from exc
        # a shape mismatch, a code change, an I/O error: not corruption, so no fallback
        raise CheckpointError(
            f"{item.path}: cannot restore ({type(exc).__name__}: {_first_line(exc)[:300]}); "
            "the checkpoint is readable but does not fit this model or could not be read "
            "(--debug shows the cause)") from exc


def _is_damage(exc: Exception) -> bool:
    """True for truncated, damaged or missing files; False for a mismatch or a bug."""
    if isinstance(exc, _DAMAGE_TYPES):
        return True
    plain_error = isinstance(exc, IndexError) or (
        isinstance(exc, tf.errors.OpError) and exc.error_code == tf.errors.UNKNOWN)
    return plain_error and bool(_DAMAGE_WORDS.search(str(exc)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def restore_latest(directory: Path, trackable: Any) -> SavedStep | None:
    """Restore the newest readable checkpoint, falling back past damaged ones with a warning."""
    saved = list_checkpoints(directory)
    errors = []
    for item in reversed(saved):
        try:
            _read_one(item, trackable)
            return item
        except _Unreadable as exc:
            errors.append(f"{item.path}: {exc}")
            log.warning(f"checkpoint {item.path} is unreadable ({str(exc)[:200]}); trying the previous one")
    if saved:
        raise CheckpointError(
            f"{directory}: no readable checkpoint among {len(saved)} ({errors[0][:300]}); "
            "remove the directory or use --overwrite to start again")
    return None


def read_model_weights(model: keras.Model, prefix: str) -> None:
    """Load the model weights of a training checkpoint into `model` (no optimizer needed).

    TensorFlow's object graph names each variable by the first path it finds, and Keras 3
    keeps lists of layers out of that graph: most layer weights are reachable only through
    the optimizer's list of trainable variables. Reading with the model alone would restore
    the few top-level weights and silently skip the rest, so that path is mirrored here,
    and every weight of the model must be matched.
    """
    shadow = tf.Module()
    shadow._trainable_variables = list(model.trainable_variables)
    status = tf.train.Checkpoint(model=model, optimizer=shadow).read(prefix)
    status.expect_partial()
    status.assert_existing_objects_matched()
