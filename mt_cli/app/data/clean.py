"""`mt-cli data clean`: the kept pairs and report.json in OUT_DIR, which appears whole or not
at all (built beside it, then renamed), never where the inputs are."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from mt_cli.core.errors import ConfigError
from mt_cli.core.files import atomic_dir

from .job import Job, Progress, analyse, report

REPORT = "report.json"


class _Output:
    """A file written line by line with its sha256 and line count kept as it goes."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.handle, self.path = handle, path
        self.digest = hashlib.sha256()
        self.lines = 0

    def write(self, lines: list[bytes]) -> None:
        if lines:
            data = b"\n".join(lines) + b"\n"
            self.handle.write(data)
            self.digest.update(data)
            self.lines += len(lines)

    def record(self) -> dict[str, Any]:
        return {"path": str(self.path), "lines": self.lines, "sha256": self.digest.hexdigest()}


def _resolved(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def check_out_dir(out_dir: Path, job: Job) -> tuple[str, str]:
    """The two output names; refuse an OUT_DIR that holds an input, names that collide, and an
    existing OUT_DIR holding anything but a previous run's files (it is replaced whole)."""
    names = Path(job.source).name, Path(job.target).name
    if names[0] == names[1]:
        raise ConfigError(f"{job.source} and {job.target} have the same file name {names[0]!r}: their cleaned "
                          "copies would overwrite each other in -o; rename one (e.g. train.en, train.de)")
    if REPORT in names:
        raise ConfigError(f"-o: an input named {REPORT!r} would clash with the report; rename it")
    out = _resolved(out_dir)
    for flag, path in (("SOURCE", job.source), ("TARGET", job.target), *(("--against", a) for a in job.against)):
        if str(path) != "-" and (out == _resolved(path) or out == _resolved(path).parent):
            raise ConfigError(f"-o {out_dir}: holds the input {path} ({flag}); data clean never writes where its "
                              "inputs are: give another directory")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out_dir}: exists and is not a directory")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in (*names, REPORT))
        if foreign:
            raise ConfigError(f"-o {out_dir}: exists and holds other files ({', '.join(foreign[:5])}); it would be "
                              "replaced whole: give a new or empty directory")
    return names


def clean(job: Job, out_dir: Path, on_total: Callable[[int | None], None] | None = None,
          on_pairs: Progress | None = None) -> dict[str, Any]:
    """Write OUT_DIR/<source name>, OUT_DIR/<target name> (the kept pairs, in order) and
    OUT_DIR/report.json; return the report."""
    job.check()
    names = check_out_dir(out_dir, job)
    final = Path(out_dir)
    document: dict[str, Any] = {}

    def build(tmp: Path) -> None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; OUT_DIR is an ordinary directory
        with open(tmp / names[0], "wb") as source, open(tmp / names[1], "wb") as target:
            outputs = _Output(source, final / names[0]), _Output(target, final / names[1])

            def sink(sources: list[bytes], targets: list[bytes]) -> None:
                outputs[0].write(sources)
                outputs[1].write(targets)

            outcome = analyse(job, sink, on_total, on_pairs)
        document.update(report("data clean", job, outcome,
                               {"source": outputs[0].record(), "target": outputs[1].record()}))
        (tmp / REPORT).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    atomic_dir(final, build)
    return document
