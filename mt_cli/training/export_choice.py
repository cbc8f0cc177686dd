"""Which weights go into the model directory at the end of a run.

Averaging the last K checkpoints when asked (train.average_last), else the best
checkpoint by the dev metric when it still exists, else the last step's weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from mt_cli.training.checkpoints import SavedStep, read_model_weights
from mt_cli.training.state import TrainState


@dataclass(frozen=True)
class ExportChoice:
    """`kind` is averaged, best or last; `steps` the checkpoints it reads (none for last)."""

    kind: str
    steps: tuple[SavedStep, ...] = ()

    def manifest_entry(self, last_step: int) -> dict[str, object]:
        """How the manifest records the choice (`weights_from`)."""
        if self.kind == "averaged":
            return {"averaged_steps": [s.step for s in self.steps]}
        if self.kind == "best":
            return {"best_step": self.steps[0].step}
        return {"last_step": last_step}


def choose_export(saved: list[SavedStep], state: TrainState, average_last: int) -> ExportChoice:
    """Pick the export's weights from the checkpoints on disk (oldest first)."""
    if average_last > 1:
        return ExportChoice("averaged", tuple(saved[-average_last:]))
    best = [s for s in saved if s.step == state.best_step]
    if state.best_step is not None and best:
        return ExportChoice("best", (best[0],))
    return ExportChoice("last")


def load_choice(model: keras.Model, choice: ExportChoice) -> None:
    """Load the chosen weights into `model` (the mean for averaged; unchanged for last)."""
    if not choice.steps:
        return
    total = None
    for item in choice.steps:
        read_model_weights(model, item.prefix)
        weights = model.get_weights()
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    model.set_weights([t / len(choice.steps) for t in total])
