"""File primitives every layer relies on: content hashes and directories that appear whole.

Why one place: checkpoints and model directories are both written "build aside, then
rename", and both are verified by sha256; a second copy of either rule would drift.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mt_cli.core.errors import CheckpointError, MtError

log = logging.getLogger("mt_cli")
OLD_PREFIX = ".old-"
TMP_PREFIX = ".tmp-"


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
    clean_leftovers(final)
    # The pid in the name tells a live build (another process writing the same directory) from a leftover.
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-pid{os.getpid()}-", dir=final.parent))
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


def clean_temporaries(directory: Path, name: str | None = None) -> int:
    """Remove leftovers of interrupted `atomic_dir` builds in `directory` (only those of
    `directory/name` if given: a user's folder may hold other dot files); return how many.

    An `.old-NAME-PID` whose NAME is missing is the only complete copy (the crash came
    between the two renames): it is moved back instead of removed.
    """
    removed = 0
    if not directory.is_dir():
        return removed
    for entry in sorted(directory.iterdir()):
        if not _is_leftover(entry.name, name) or _being_built(entry.name):
            continue
        if entry.name.startswith(OLD_PREFIX) and entry.is_dir():
            original = directory / entry.name[len(OLD_PREFIX):].rsplit("-", 1)[0]
            if not original.exists():
                os.replace(entry, original)
                removed += 1
                continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _is_leftover(entry: str, name: str | None) -> bool:
    """`.tmp-NAME-[pidPID-]XXXXXXXX` (mkdtemp's suffix) or `.old-NAME-PID`; any `.tmp-`/`.old-`
    entry when no `name` is given."""
    if name is None:
        return entry.startswith((TMP_PREFIX, OLD_PREFIX))
    quoted = re.escape(name)
    return re.fullmatch(rf"\.tmp-{quoted}-(pid\d+-)?[a-z0-9_]{{8}}|\.old-{quoted}-\d+", entry) is not None


def _being_built(entry: str) -> bool:
    """A `.tmp-` build of another process that is still running (left alone)."""
    found = re.fullmatch(r"\.tmp-.+-pid(\d+)-[a-z0-9_]{8}", entry)
    if found is None or int(found[1]) == os.getpid():
        return False
    try:
        os.kill(int(found[1]), 0)  # signal 0: only asks whether the process exists
    except PermissionError:  # exists, another user's
        return True
    except (OverflowError, OSError):  # ProcessLookupError: gone
        return False
    return True


def clean_leftovers(final: Path) -> int:
    """Clean (with a warning) what an interrupted `atomic_dir(final, ...)` left beside `final`,
    as training does under checkpoints/: an export or `-o` directory gets the same care."""
    removed = clean_temporaries(final.parent, final.name)
    if removed:
        log.warning(f"{final.parent}: cleaned {removed} leftover(s) of an interrupted write of {final.name} "
                    f"({TMP_PREFIX}{final.name}-*, {OLD_PREFIX}{final.name}-*)")
    return removed
