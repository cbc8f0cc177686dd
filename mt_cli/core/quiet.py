"""Keep native libraries' chatter (TensorFlow, SentencePiece) off the user's stderr.

TF 2.16+ logs CUDA probing and oneDNN notes through absl before TF_CPP_MIN_LOG_LEVEL is
read, and SentencePiece's trainer logs every step from C++; the only reliable way is to
point file descriptor 2 elsewhere meanwhile. What was printed is replayed if the block
fails, so real problems are never hidden.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stderr_captured(replay: bool = True) -> Iterator[None]:
    """Redirect fd 2 to a temp file for the block; replay it to stderr on an exception
    (unless the caller turns the exception into a clear message itself)."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            if replay:
                captured.seek(0)
                sys.stderr.write(captured.read().decode("utf-8", "replace")[-4000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
