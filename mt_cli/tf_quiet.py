"""Import TensorFlow without its C++ start-up chatter on the user's stderr.

TF 2.16+ logs CUDA probing and oneDNN notes through absl before TF_CPP_MIN_LOG_LEVEL is read,
so the only reliable way is to point file descriptor 2 elsewhere while TF starts. What it
printed is replayed if the import fails, so real problems are never hidden.
"""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow(verbose: bool = False):
    """Import (once) and initialise TensorFlow's devices quietly; return the module."""
    if "tensorflow" in sys.modules or verbose:
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf
