"""`mt-cli plot`: training curves of one or several runs, read from their metrics.jsonl.

Six panels against step and against wall-clock minutes: training loss, learning rate,
tokens/s, dev BLEU, dev chrF and dev loss; runs overlaid with their names; the best dev
point of each run marked (highest BLEU/chrF, lowest loss).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from mt_cli.core.errors import DataError

log = logging.getLogger("mt_cli")
PANELS = (("train", "loss", "training loss"), ("train", "learning_rate", "learning rate"),
          ("train", "tokens_per_s", "tokens/s"), ("dev", "bleu", "dev BLEU"),
          ("dev", "chrf", "dev chrF"), ("dev", "loss", "dev loss"))


@dataclass
class RunMetrics:
    """One run's events: per kind (train, dev), the (step, minutes, values) records."""

    name: str
    events: dict[str, list[tuple[int, float, dict]]] = field(default_factory=dict)

    def series(self, kind: str, key: str, minutes: bool) -> tuple[list[float], list[float]]:
        points = [(m if minutes else s, _finite(v.get(key))) for s, m, v in self.events.get(kind, [])]
        return [x for x, y in points if y is not None], [y for _, y in points if y is not None]


def _finite(value: object) -> float | None:
    """A plottable value: a finite number (not a bool, not an integer too big for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _record(line: str) -> tuple[str, int, float, dict]:
    """(kind, step, time, event) of one metrics line; ValueError when it is not a record."""
    event = json.loads(line)
    if not isinstance(event, dict):
        raise ValueError("not an object")
    kind, step, when = event.get("event"), event.get("step"), event.get("time")
    if not isinstance(kind, str) or isinstance(step, bool) or not isinstance(step, int):
        raise ValueError("event must be a string and step an integer")
    if _finite(when) is None:
        raise ValueError("time must be a finite number")
    return kind, step, float(when), event


def _lines(path: Path) -> list[tuple[int, str, bool]]:
    """(number, text, complete) of each line: the last is incomplete without its newline."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: invalid UTF-8; metrics.jsonl is written as UTF-8 JSON lines "
                        "(was the file replaced?)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    lines = text.split("\n")
    return [(n, line, n < len(lines)) for n, line in enumerate(lines, start=1)]


def read_metrics(run: Path) -> RunMetrics:
    """A run's metrics.jsonl, or one error line naming the file and what is wrong. A partial
    last line (a run killed while writing it) is skipped with a warning: the rest is intact."""
    path = run if run.suffix == ".jsonl" else run / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: not found; give a run directory written by mt-cli train")
    metrics = RunMetrics(path.parent.name)
    start = None
    for lineno, line, complete in _lines(path):
        if not line.strip():
            continue
        try:
            kind, step, when, event = _record(line)
        except (ValueError, RecursionError) as exc:
            if not complete:
                log.warning(f"{path}:{lineno}: skipped a partial last line (the run was stopped while "
                            "writing it)")
                continue
            raise DataError(f"{path}:{lineno}: not a metrics record ({exc}; expected JSON with event, "
                            "step and time)") from None
        start = when if start is None else start
        metrics.events.setdefault(kind, []).append((step, (when - start) / 60.0, event))
    if not metrics.events.get("train") and not metrics.events.get("dev"):
        raise DataError(f"{path}: no training or dev events yet; train a few steps first")
    return metrics


def _best(xs: list[float], ys: list[float], key: str) -> tuple[float, float] | None:
    if not ys:
        return None
    pick = min if key == "loss" else max
    i = ys.index(pick(ys))
    return xs[i], ys[i]


def plot_runs(runs: list[RunMetrics], output: Path) -> int:
    """Draw the curves of `runs` into `output` (.png, .svg or .pdf); return the panel count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(PANELS), 2, figsize=(11, 3 * len(PANELS)), squeeze=False)
    for row, (kind, key, title) in enumerate(PANELS):
        for col, minutes in enumerate((False, True)):
            ax = axes[row][col]
            for run in runs:
                xs, ys = run.series(kind, key, minutes)
                (line,) = ax.plot(xs, ys, label=run.name, marker="." if kind == "dev" else None)
                best = _best(xs, ys, key) if kind == "dev" else None
                if best is not None:
                    ax.plot(*best, marker="*", markersize=14, color=line.get_color())
                    ax.annotate(f"best {best[1]:.2f}", best, textcoords="offset points", xytext=(5, 5))
            ax.set_title(f"{title} vs {'minutes' if minutes else 'step'}")
            ax.set_xlabel("wall-clock minutes" if minutes else "step")
            ax.grid(alpha=0.3)
            if len(runs) > 1 and row == 0:
                ax.legend()
    figure.tight_layout()
    figure.savefig(output)
    plt.close(figure)
    return len(PANELS) * 2
