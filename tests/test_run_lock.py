"""Issue 33 (6): one `train` at a time in a run directory (an flock on RUN/.lock holding the PID).

Two `train`s started together on one run directory both "finished": config.yaml, the export
and finished.json held one run, metrics.jsonl interleaved both."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import assert_one_line_error

from mt_cli.core.errors import CheckpointError
from mt_cli.training.run_lock import LOCK_FILE, locks_run_dir, run_lock

_HOLD = """
import sys, time
from pathlib import Path
from mt_cli.training.run_dir import clear_run_dir
from mt_cli.training.run_lock import run_lock
run = Path(sys.argv[1])
with run_lock(run):
    clear_run_dir(run)  # what --overwrite does: the held lock file must survive it
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_held_run_directory_names_the_holder_and_is_free_after_kill_9(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("{}\n")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # --overwrite kept only the lock
        with pytest.raises(CheckpointError) as caught, run_lock(run):
            pass
        assert str(caught.value) == (f"{run}: in use by another mt-cli train (process {holder.pid}, lock "
                                     f"{run / LOCK_FILE}); wait for it to finish or stop it, or use another --run-dir")
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the OS drops the flock
        holder.wait()
    with run_lock(run):
        assert (run / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_train_on_a_run_directory_in_use_is_one_line_and_writes_nothing(tmp_path, tiny_config) -> None:
    run = tmp_path / "run"
    with run_lock(run):
        result = subprocess.run([sys.executable, "-m", "mt_cli", "train", str(tiny_config), "--run-dir", str(run)],
                                check=False, capture_output=True, text=True, timeout=300)
    assert_one_line_error(result, f"in use by another mt-cli train (process {os.getpid()},")
    assert [p.name for p in run.iterdir()] == [LOCK_FILE]  # no config.yaml, no metrics, no spm


@pytest.mark.parametrize("tf_config, locks", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}, False),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief", "index": 0}}, True),
])
def test_only_the_chief_of_multi_worker_training_locks(monkeypatch, tf_config, locks) -> None:
    """Workers share RUN (the chief writes it, the others their private .worker-* folders)."""
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert locks_run_dir("multi_worker") is locks
    assert locks_run_dir("default") is True
