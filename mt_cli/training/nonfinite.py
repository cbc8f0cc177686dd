"""What to do with a step whose loss or gradients are not finite: skip, count, and stop
once too many come in a row (training has diverged; more steps would only waste time)."""

from __future__ import annotations

import logging

from mt_cli.core.errors import MtError
from mt_cli.training.state import TrainState

log = logging.getLogger("mt_cli")


class NonFinitePolicy:
    """Counts skipped steps in the state; raises after `max_in_row` in a row."""

    def __init__(self, max_in_row: int) -> None:
        self.max_in_row = max_in_row

    def observe(self, state: TrainState, finite: bool) -> None:
        """Record the step just taken (state.step) as finite or skipped."""
        if finite:
            state.nonfinite_in_row = 0
            return
        state.nonfinite_in_row += 1
        state.nonfinite_total += 1
        log.warning(f"step {state.step}: non-finite loss or gradients, update skipped "
                    f"({state.nonfinite_in_row} in a row)")
        if state.nonfinite_in_row >= self.max_in_row:
            raise MtError(
                f"step {state.step}: {state.nonfinite_in_row} non-finite steps in a row "
                f"(train.max_nonfinite_steps={self.max_in_row}); training diverged: "
                "lower train.learning_rate, set train.clip_norm, or use bfloat16 instead of float16")
