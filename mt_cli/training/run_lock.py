"""One process trains in a run directory at a time: an flock on RUN/.lock, holding its PID.

Two `train`s on one run directory both "finished" while config.yaml, the export and
finished.json held one run and metrics.jsonl interleaved both. The OS drops an flock when its
process ends, however it ends (kill -9 included), so a lock is never left stale; the file
stays (removing it would let a third process lock a new file while the second still holds
the old one).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mt_cli.core.errors import CheckpointError

LOCK_FILE = ".lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold RUN/.lock for the block; another holder is a one-line error naming its PID."""
    path = run_dir / LOCK_FILE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot create the run directory's lock file ({exc.strerror}); "
                              "check the permissions or use another --run-dir") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise CheckpointError(f"{path}: cannot lock ({exc.strerror})") from None
        raise CheckpointError(f"{run_dir}: in use by another mt-cli train ({holder}, lock {path}); wait for "
                              "it to finish or stop it, or use another --run-dir") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # drops the flock


def _holder(fd: int) -> str:
    """"process PID" as the holder wrote it, or what is known."""
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"process {text}" if text.isdigit() else "process unknown (it has not written its PID yet)"


def locks_run_dir(strategy: str) -> bool:
    """Whether this process is the one that locks the run directory: all but a non-chief
    multi_worker process (workers share RUN; the chief writes it, as worker_role decides)."""
    if strategy != "multi_worker":
        return True
    try:
        spec = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
        task, cluster = spec.get("task") or {}, spec.get("cluster") or {}
        if not task or task.get("type") == "chief":
            return True
        return "chief" not in cluster and int(task.get("index", 0)) == 0
    except (ValueError, TypeError, AttributeError):
        return True  # TensorFlow reports a malformed TF_CONFIG itself
