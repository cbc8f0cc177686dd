"""SIGTERM/SIGINT become a flag the loop reads at a step boundary (save, then exit)."""

from __future__ import annotations

import signal
from typing import Any


class Interrupted(Exception):
    """Training stopped by a signal after saving; the CLI exits 128 + signum."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(f"stopped by signal {signum} at step {step}; rerun the same command to resume")
        self.signum = signum
        self.step = step


class SignalFlag:
    """Remembers SIGTERM/SIGINT so the loop can stop at a step boundary; a second Ctrl-C
    stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
