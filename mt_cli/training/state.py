"""The resumable training state: every number a resume needs, saved and restored as one.

Tensors (weights, optimizer slots, dropout RNG, the step variable) live in the TensorFlow
checkpoint; everything else the loop decides with lives here and goes to `state.json`
beside it, so a rerun continues exactly where the last save left off.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataPosition:
    """Where training stands in the data stream: the next batch to feed."""

    epoch: int = 0
    batch: int = 0


@dataclass
class TrainState:
    """Step, data position, best dev score, early-stopping and non-finite counters, dev scores."""

    step: int = 0
    data_position: DataPosition = field(default_factory=DataPosition)
    best_score: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    nonfinite_in_row: int = 0
    nonfinite_total: int = 0
    dev_scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (state.json)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainState:
        """Read state.json; keys missing from older checkpoints keep their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["data_position"] = DataPosition(**raw.get("data_position", {}))
        return cls(**values)
