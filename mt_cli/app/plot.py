"""`mt-cli plot`: training curves of one or several runs, read from their metrics.jsonl.

Six panels against step and against wall-clock minutes: training loss, learning rate,
tokens/s, dev BLEU, dev chrF and dev loss; runs overlaid with their names; the best dev
point of each run marked (highest BLEU/chrF, lowest loss).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mt_cli.core.errors import DataError

PANELS = (("train", "loss", "training loss"), ("train", "learning_rate", "learning rate"),
          ("train", "tokens_per_s", "tokens/s"), ("dev", "bleu", "dev BLEU"),
          ("dev", "chrf", "dev chrF"), ("dev", "loss", "dev loss"))


@dataclass
class RunMetrics:
    """One run's events: per kind (train, dev), the (step, minutes, values) records."""

    name: str
    events: dict[str, list[tuple[int, float, dict]]] = field(default_factory=dict)

    def series(self, kind: str, key: str, minutes: bool) -> tuple[list[float], list[float]]:
        points = [(m if minutes else s, v[key]) for s, m, v in self.events.get(kind, [])
                  if isinstance(v.get(key), (int, float))]
        return [x for x, _ in points], [y for _, y in points]


def read_metrics(run: Path) -> RunMetrics:
    """A run's metrics.jsonl, or one error line naming the file and what is wrong."""
    path = run if run.suffix == ".jsonl" else run / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: not found; give a run directory written by mt-cli train")
    metrics = RunMetrics(path.parent.name)
    start = None
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            kind, step, when = event["event"], int(event["step"]), float(event["time"])
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}:{lineno}: not a metrics record (expected JSON with event, "
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
