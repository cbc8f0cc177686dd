"""File primitives every layer relies on: content hashes and directories that appear whole.

Why one place: checkpoints and model directories are both written "build aside, then
rename", and both are verified by sha256; a second copy of either rule would drift.
"""

from __future__ import annotations

import errno
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
    `io_errors` are reported as "cannot write" (a full disk with the file and the free
    space); anything else keeps its cause. "The previous one is intact" only when there was one.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(final)
    existed = final.exists()
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
        last = _last_written(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        intact = "; the previous one is intact" if existed else ""
        if isinstance(exc, io_errors):
            raise CheckpointError(_cannot_write(final, tmp, exc, last) + intact) from exc
        if isinstance(exc, Exception) and not isinstance(exc, MtError):
            raise CheckpointError(f"{final}: could not be built ({type(exc).__name__}: "
                                  f"{_first_line(exc)}){intact}") from exc
        raise


_DISK_FULL = re.compile(r"no space left|disk quota|errno = 28|\d+ requested and \d+ written", re.IGNORECASE)


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT, or a library's words for it (TensorFlow: "N requested and M written")."""
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or bool(_DISK_FULL.search(str(exc)))


def free_space(path: Path) -> str:
    """What shutil.disk_usage says is free where `path` is (or would be), for messages."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return "unknown space"
    return human_size(free)


def human_size(count: int) -> str:
    """1536 -> "1.5 KB" (binary units, as df -h)."""
    if count < 1024:
        return f"{count} bytes"
    size = float(count)
    for unit in ("KB", "MB", "GB", "TB"):
        size /= 1024
        if size < 1024 or unit == "TB":
            break
    return f"{size:.1f} {unit}"


def disk_full_message(path: Path) -> str:
    """`path: cannot write (No space left on device, N free there); ...`: the file, the free space, the fix."""
    return (f"{path}: cannot write (No space left on device, {free_space(path)} free there); "
            "free some space or write elsewhere")


def _last_written(tmp: Path) -> Path | None:
    """The file of `tmp` modified last: the one a failed write without a file name was writing."""
    try:
        files = [(p.stat().st_mtime_ns, str(p)) for p in tmp.rglob("*") if p.is_file()]
    except OSError:
        return None
    return Path(max(files)[1]) if files else None


def _cannot_write(final: Path, tmp: Path, exc: BaseException, last: Path | None) -> str:
    """The line for an I/O error while building `final` in `tmp`: the file (as it will be
    named in `final`; the destination of a copy; else the file written last), and for a full
    disk the free space."""
    named = getattr(exc, "filename2", None) or getattr(exc, "filename", None) or last
    path = final
    if named:
        try:
            path = final / Path(named).relative_to(tmp)
        except ValueError:
            path = Path(named)
    if is_disk_full(exc):
        return disk_full_message(path)
    reason = getattr(exc, "strerror", None) or _first_line(exc)
    return f"{path}: cannot write ({reason})"


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path`; an OSError names the file (a failed write() alone does not)."""
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


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
