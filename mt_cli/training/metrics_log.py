"""metrics.jsonl (one JSON object per event) plus the same scalars for TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import tensorflow as tf


class MetricsLog:
    """Appends events to RUN/metrics.jsonl and writes their numbers to RUN/tensorboard."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        record = {"event": kind, "step": step, "time": round(time.time(), 3), **values}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        with self.writer.as_default():
            for name, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(f"{kind}/{name}", value, step=step)
        self.writer.flush()
