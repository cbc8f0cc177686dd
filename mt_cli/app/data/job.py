"""What `data clean` and `data check` share: the checks before reading, the one pass over the
corpus, and the report that says what was found, with what settings, on which machine."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_cli.core.clean_settings import CleanConfig, settings_record
from mt_cli.core.errors import ConfigError

from .pipeline import CHUNK_PAIRS, JudgeSpec, Sink, run, worker_count
from .reading import MAX_LINE_BYTES, InputFile, count_pairs, load_against, read_pairs
from .summary import Summary

Progress = Callable[[int], None]


@dataclass
class Job:
    """One run's inputs and settings; `langs` None: data check without languages."""

    source: Path
    target: Path
    langs: tuple[str, str] | None
    settings: CleanConfig = field(default_factory=CleanConfig)
    against: Sequence[Path] = ()
    workers: int = 0  # 0: the usable cores

    def check(self) -> None:
        """Language codes the identifier knows (naming the flag), before anything is read."""
        if self.langs is None or not self.settings.lang_id:
            return
        from mt_cli.core.langid import check_codes

        check_codes([("--source-lang", self.langs[0]), ("--target-lang", self.langs[1]),
                     *(("--lang-candidates", code) for code in self.settings.lang_candidates)])
        if self.langs[0] == self.langs[1]:
            raise ConfigError(f"--source-lang and --target-lang are both {self.langs[0]!r}: the wrong-language "
                              "rule needs the two languages (or --no-lang-id)")


@dataclass
class Outcome:
    summary: Summary
    inputs: tuple[InputFile, InputFile]
    against: list[InputFile]
    seconds: float
    workers: int


def analyse(job: Job, sink: Sink | None, on_total: Callable[[int | None], None] | None = None,
            on_pairs: Progress | None = None) -> Outcome:
    """The one pass: count (regular files), read, judge, count what each rule found."""
    job.check()
    started = time.perf_counter()
    total = count_pairs(job.source, job.target)
    tables, against = load_against(job.against)
    if on_total is not None:
        on_total(total)
    inputs = InputFile(str(job.source)), InputFile(str(job.target))
    max_bytes = 4 * job.settings.max_chars + 4 if job.settings.max_chars else MAX_LINE_BYTES
    chunks = read_pairs(job.source, job.target, max_bytes, CHUNK_PAIRS, inputs)
    workers = worker_count(job.workers, total)
    spec = JudgeSpec(job.settings, job.langs, tuple(tables))
    summary = run(spec, chunks, workers, sink, on_pairs)
    return Outcome(summary, inputs, against, time.perf_counter() - started, workers)


def versions() -> dict[str, Any]:
    from importlib import metadata

    from mt_cli import __version__
    from mt_cli.core.langid import version

    return {"mt_cli": __version__, "python": platform.python_version(), "py3langid": version(),
            "numpy": metadata.version("numpy")}


def report(command: str, job: Job, outcome: Outcome, outputs: dict | None = None) -> dict[str, Any]:
    """The JSON report (docs/data.md describes each key)."""
    from mt_cli.core.runtime import machine_record

    s = outcome.summary
    document: dict[str, Any] = {
        "command": command,
        "languages": None if job.langs is None else {"source": job.langs[0], "target": job.langs[1]},
        "settings": settings_record(job.settings),
        "inputs": {"source": outcome.inputs[0].record(), "target": outcome.inputs[1].record(),
                   "against": [a.record() for a in outcome.against]},
        "pairs": {"read": s.read, "kept": s.kept, "dropped": s.read - s.kept},
        "rules": s.rule_counts(),
        "overlap": {a.path: int(n) for a, n in zip(outcome.against, s.against)},
        "stats": s.stats(job.settings.lang_id),
        "seconds": round(outcome.seconds, 2),
        "pairs_per_s": round(s.read / outcome.seconds) if outcome.seconds else None,
        "workers": outcome.workers,
        "versions": versions(),
        "machine": machine_record(probe=False),
    }
    if outputs is not None:
        document["outputs"] = outputs
    return document
