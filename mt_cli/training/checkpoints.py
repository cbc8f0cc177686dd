"""Training checkpoints: full training state for exact resume, written atomically.

A checkpoint is built in `checkpoints/.tmp-*` and renamed into `step-NNNNNNNN/` only when
complete, so a crash (kill -9, full disk) never leaves a partial checkpoint to be chosen.
What translation reads is the model directory (mt_cli.export.model_dir), not these.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from mt_cli.errors import CheckpointError
from mt_cli.files import atomic_dir

log = logging.getLogger("mt_cli")
STEP_PREFIX = "step-"


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
        (tmp / "state.json").write_text(json.dumps(state, indent=1))

    atomic_dir(final, build)
    return SavedStep(step, final)


def prune_checkpoints(directory: Path, keep_last: int, protect: set[int]) -> None:
    """Keep the newest `keep_last` checkpoints plus the protected (best) steps."""
    saved = list_checkpoints(directory)
    for item in saved[:-keep_last] if keep_last else saved:
        if item.step not in protect:
            shutil.rmtree(item.path, ignore_errors=True)


def restore_latest(directory: Path, trackable: Any) -> SavedStep | None:
    """Restore the newest readable checkpoint, falling back past corrupted ones with a warning."""
    saved = list_checkpoints(directory)
    errors = []
    for item in reversed(saved):
        try:
            state = item.state()
            trackable.read(item.prefix).assert_existing_objects_matched()
            if state.get("step") != item.step:
                raise CheckpointError(f"{item.path}: state.json says step {state.get('step')}")
            return item
        except Exception as exc:  # tf raises many types for corrupt files
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            errors.append(f"{item.path}: {message}")
            log.warning(f"checkpoint {item.path} is unreadable ({message[:200]}); trying the previous one")
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
