"""`mt-cli data check`: the same pass as `data clean`, nothing written; the report only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .job import Job, Progress, analyse, report


def check(job: Job, on_total: Callable[[int | None], None] | None = None,
          on_pairs: Progress | None = None) -> dict[str, Any]:
    """What each rule would drop, lengths, ratios, languages and overlaps of a corpus."""
    return report("data check", job, analyse(job, None, on_total, on_pairs))
