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

from mt_cli.errors import CheckpointError


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_dir(final: Path, build: Callable[[Path], None]) -> None:
    """Build a directory via `build(tmp)` beside `final`, then rename it into place.

    A crash (kill -9, full disk) leaves only a `.tmp-*` folder, never a partial `final`.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        build(tmp)
        old = None
        if final.exists():
            old = final.with_name(f".old-{final.name}-{os.getpid()}")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except (KeyboardInterrupt, SystemExit):
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:  # OSError, or TensorFlow's own error types for a full disk
        shutil.rmtree(tmp, ignore_errors=True)
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0][:200]
        raise CheckpointError(f"{final}: cannot write ({reason}); the previous one is intact") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_temporaries(directory: Path) -> int:
    """Remove leftovers of interrupted `atomic_dir` builds; return how many."""
    removed = 0
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed += 1
    return removed
