"""Training loss and tokens/s over a log window (the numbers a progress line shows)."""

from __future__ import annotations

import time
from collections.abc import Callable


class ThroughputWindow:
    """Sums since the last report: non-pad tokens fed, and loss over tokens of finite steps."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self.tokens = 0.0
        self.loss_sum = 0.0
        self.loss_tokens = 0.0
        self.started = self.clock()

    def add(self, fed_tokens: float, loss_sum: float, loss_tokens: float, finite: bool) -> None:
        """One step: all tokens fed count for speed; only a finite step's loss counts."""
        self.tokens += fed_tokens
        if finite:
            self.loss_sum += loss_sum
            self.loss_tokens += loss_tokens

    def report(self) -> dict[str, float]:
        """Mean loss per target token, tokens/s and tokens since the last report; then reset."""
        elapsed = self.clock() - self.started
        values = {"loss": self.loss_sum / max(self.loss_tokens, 1.0),
                  "tokens_per_s": self.tokens / max(elapsed, 1e-9),
                  "tokens": int(self.tokens)}
        self._reset()
        return values
