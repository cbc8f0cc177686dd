"""File primitives every layer relies on: content hashes and directories that appear whole.

Why one place: checkpoints and model directories are both written "build aside, then
rename", and both are verified by sha256; a second copy of either rule would drift.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mt_cli.core.errors import CheckpointError, MtError

OLD_PREFIX = ".old-"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_dir(final: Path, build: Callable[[Path], None],
               io_errors: tuple[type[BaseException], ...] = (OSError,)) -> None:
    """Build a directory via `build(tmp)` beside `final`, then rename it into place.

    A crash (kill -9, full disk) leaves only a `.tmp-*` folder, never a partial `final`.
    Replacing an existing `final` moves it to `.old-*` first; if a crash lands between the
    two renames, `clean_temporaries` moves it back, so the only complete copy is never lost.
    `io_errors` are reported as "cannot write"; anything else keeps its cause.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        build(tmp)
        old = None
        if final.exists():
            old = final.with_name(f"{OLD_PREFIX}{final.name}-{os.getpid()}")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, io_errors):
            reason = getattr(exc, "strerror", None) or _first_line(exc)
            raise CheckpointError(f"{final}: cannot write ({reason}); the previous one is intact") from exc
        if isinstance(exc, Exception) and not isinstance(exc, MtError):
            raise CheckpointError(f"{final}: could not be built ({type(exc).__name__}: "
                                  f"{_first_line(exc)}); the previous one is intact") from exc
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def clean_temporaries(directory: Path) -> int:
    """Remove leftovers of interrupted `atomic_dir` builds; return how many.

    An `.old-NAME-PID` whose NAME is missing is the only complete copy (the crash came
    between the two renames): it is moved back instead of removed.
    """
    removed = 0
    if not directory.is_dir():
        return removed
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(OLD_PREFIX) and entry.is_dir():
            original = directory / entry.name[len(OLD_PREFIX):].rsplit("-", 1)[0]
            if not original.exists():
                os.replace(entry, original)
                removed += 1
                continue
        if entry.name.startswith((".tmp-", OLD_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed += 1
    return removed
