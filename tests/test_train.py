"""Training through the real CLI on the tiny preset: artefacts, resume, export, averaging,
early stopping, precision, strategies and the run-directory contract."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import assert_same_checkpoint_state, tiny_config_text

from mt_cli.cli.main import app


def _train(runner, config: Path, run_dir: Path, *extra: str):
    return runner.invoke(app, ["train", str(config), "--run-dir", str(run_dir), *extra])


def _metrics(run_dir: Path, event: str = "train") -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def _write(tmp_path: Path, toy_dir: Path, name: str = "c.yaml", **sections: dict) -> Path:
    path = tmp_path / name
    path.write_text(tiny_config_text(toy_dir, **sections))
    return path


def test_trained_run_has_every_artefact(trained_run: Path) -> None:
    for name in ("config.yaml", "metrics.jsonl", "spm.model", "finished.json"):
        assert (trained_run / name).is_file(), name
    assert list((trained_run / "tensorboard").glob("events.out.tfevents.*"))
    assert list((trained_run / "checkpoints").glob("step-*"))
    export = trained_run / "export"
    assert sorted(p.name for p in export.iterdir()) == ["config.json", "config.yaml", "manifest.json", "model.bin",
                                                        "model.weights.h5", "shared_vocabulary.json", "spm.model"]
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["step"] == 60
    assert manifest["special_ids"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    assert manifest["tokenizer"]["source_sha256"] == manifest["files_sha256"]["spm.model"]
    assert set(manifest["dev_scores"]) == {"loss", "bleu", "chrf", "ter"}  # eval.metrics + loss
    assert manifest["versions"]["tensorflow"]
    exported = yaml.safe_load((export / "config.yaml").read_text())
    assert exported["tokenizer"]["model"] == "spm.model"
    assert exported["data"].get("train") is None  # no machine-specific paths travel


def test_loss_decreases_and_logs(trained_run: Path) -> None:
    records = _metrics(trained_run)
    assert records[-1]["loss"] < records[0]["loss"]
    assert all(r["tokens_per_s"] > 0 for r in records)
    assert _metrics(trained_run, "dev")


def test_rerun_resumes_and_finished_run_is_not_overwritten(runner, tmp_path, toy_dir) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 10, "save_every": 5})
    run = tmp_path / "run"
    assert _train(runner, config, run).exit_code == 0
    weights = (run / "export" / "model.weights.h5").read_bytes()
    again = _train(runner, config, run)
    assert again.exit_code == 0
    assert "already trained" in again.stderr
    assert (run / "export" / "model.weights.h5").read_bytes() == weights
    longer = _train(runner, config, run, "--set", "train.max_steps=15")
    assert longer.exit_code == 0, longer.output
    assert "resuming from" in longer.stderr and "step 10" in longer.stderr
    assert json.loads((run / "export" / "manifest.json").read_text())["step"] == 15
    assert [r["step"] for r in _metrics(run)][-1] == 15
    fresh = _train(runner, config, run, "--overwrite")
    assert fresh.exit_code == 0 and "resuming" not in fresh.stderr
    assert json.loads((run / "export" / "manifest.json").read_text())["step"] == 10


def test_resume_with_changed_model_lists_the_differences(runner, tmp_path, toy_dir) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 5})
    run = tmp_path / "run"
    assert _train(runner, config, run).exit_code == 0
    result = _train(runner, config, run, "--set", "model.hidden_dim=64", "--set", "tokenizer.vocab_size=40")
    assert result.exit_code == 1
    assert "model.hidden_dim: 32 -> 64" in result.stderr
    assert "tokenizer.vocab_size: 48 -> 40" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_keep_last_k_keeps_an_old_best_checkpoint(runner, tmp_path, toy_dir) -> None:
    """An untrainable model (learning rate 1e-6) scores BLEU 0 at every evaluation, and only
    a strictly better score counts: the best stays at the first evaluation (step 10), far
    behind the newest two checkpoints, and must survive every pruning."""
    config = _write(tmp_path, toy_dir, train={"max_steps": 30, "save_every": 5, "keep_last": 2,
                                              "eval_every": 10, "eval_metric": "bleu",
                                              "learning_rate": 1e-6, "schedule": "constant",
                                              "warmup_steps": 0})
    run = tmp_path / "run"
    assert _train(runner, config, run).exit_code == 0
    dev = _metrics(run, "dev")
    assert [r["bleu"] for r in dev] == [0.0, 0.0, 0.0] and dev[-1]["best_step"] == 10
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    assert steps == [10, 25, 30]
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["weights_from"] == {"best_step": 10}


def test_average_last_checkpoints(runner, tmp_path, toy_dir) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 15, "save_every": 5, "keep_last": 3,
                                              "average_last": 3})
    run = tmp_path / "run"
    result = _train(runner, config, run)
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["weights_from"] == {"averaged_steps": [5, 10, 15]}
    out = runner.invoke(app, ["translate", "-m", str(run)], input="the cat runs .\n")
    assert out.exit_code == 0 and len(out.stdout.splitlines()) == 1


def test_early_stopping_with_patience(runner, tmp_path, toy_dir) -> None:
    # Score on the training loss of an over-regularised model that cannot improve BLEU from 0.
    config = _write(tmp_path, toy_dir, train={"max_steps": 200, "eval_every": 5,
                                              "early_stopping_patience": 2, "learning_rate": 1e-6,
                                              "schedule": "constant", "warmup_steps": 0})
    run = tmp_path / "run"
    result = _train(runner, config, run)
    assert result.exit_code == 0, result.output
    done = json.loads((run / "finished.json").read_text())
    assert done["reason"] == "early_stopping"
    assert done["step"] == 15  # best at 5, no gain at 10 and 15
    assert "early_stopping" in result.stderr


def test_bfloat16_training_exports_float32_weights(runner, tmp_path, toy_dir) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 10, "precision": "bfloat16"})
    run = tmp_path / "run"
    result = _train(runner, config, run)
    assert result.exit_code == 0, result.output
    import h5py

    dtypes = set()
    with h5py.File(run / "export" / "model.weights.h5") as handle:
        handle.visititems(lambda name, obj: dtypes.add(str(obj.dtype)) if hasattr(obj, "dtype") else None)
    assert dtypes <= {"float32", "int64"} and "float32" in dtypes
    assert json.loads((run / "export" / "manifest.json").read_text())["trained_precision"] == "bfloat16"
    out = runner.invoke(app, ["translate", "-m", str(run)], input="a red car .\nthe dog .\n")
    assert out.exit_code == 0 and len(out.stdout.splitlines()) == 2


def test_gradient_accumulation_feeds_several_batches_per_step(runner, tmp_path, toy_dir) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 4, "effective_batch_tokens": 1024,
                                              "log_every": 1})
    run = tmp_path / "run"
    result = _train(runner, config, run)
    assert result.exit_code == 0, result.output
    accumulated = _metrics(run)
    assert [r["step"] for r in accumulated] == [1, 2, 3, 4]
    plain = _write(tmp_path, toy_dir, "plain.yaml", train={"max_steps": 4, "log_every": 1})
    assert _train(runner, plain, tmp_path / "plain").exit_code == 0
    single = _metrics(tmp_path / "plain")
    # 1024 / 256 = 4 micro-batches per optimizer step: about 4x the tokens of a plain step
    ratio = sum(r["tokens"] for r in accumulated) / sum(r["tokens"] for r in single)
    assert 3.0 < ratio < 5.0
    assert all(np.isfinite(r["loss"]) for r in accumulated)


_MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pathlib import Path
from mt_cli.core.config_loading import load_config
from mt_cli.training.loop import train
cfg = load_config(sys.argv[1], sys.argv[3:])
result = train(cfg, Path(sys.argv[2]))
print(json.dumps({"step": result.step}))
"""


def _run_script(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], check=False, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _export_weights(run: Path) -> list[np.ndarray]:
    import h5py

    arrays: list[np.ndarray] = []
    with h5py.File(run / "export" / "model.weights.h5") as handle:
        handle.visititems(lambda name, obj: arrays.append(np.array(obj)) if hasattr(obj, "shape") else None)
    return arrays


def test_mirrored_strategy_equals_accumulation_over_replica_batches(tmp_path, toy_dir) -> None:
    """Two replicas on two logical CPUs take batches b0, b1: one step must equal one
    single-device step accumulating b0 and b1."""
    config = _write(tmp_path, toy_dir, train={"max_steps": 2, "save_every": 2, "log_every": 1})
    mirrored = _run_script(_MIRRORED_SCRIPT, str(config), str(tmp_path / "mirrored"),
                           "train.strategy=mirrored")
    assert mirrored.returncode == 0, mirrored.stderr[-2000:]
    single = _run_script(_MIRRORED_SCRIPT, str(config), str(tmp_path / "single"),
                         "train.effective_batch_tokens=512")
    assert single.returncode == 0, single.stderr[-2000:]
    a, b = _metrics(tmp_path / "mirrored"), _metrics(tmp_path / "single")
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-4)
    # Adam normalises each update to ~lr (0.01 here), so near-zero gradients amplify float
    # noise; a missing all-reduce would move weights by a whole update, far beyond 2e-3.
    for x, y in zip(_export_weights(tmp_path / "mirrored"), _export_weights(tmp_path / "single")):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=2e-3)


def test_mirrored_strategy_really_skips_a_non_finite_update(tmp_path, toy_dir) -> None:
    """On two replicas a non-finite step (step 3, made NaN on purpose) must leave weights,
    Adam's slots and its iteration count exactly as they were (no zero-gradient update)."""
    config = _write(tmp_path, toy_dir, train={"max_steps": 4, "save_every": 2, "log_every": 1,
                                              "keep_last": 5}, data={"dev": None})
    run = tmp_path / "mirrored"
    result = _run_script(_MIRRORED_SCRIPT, str(config), str(run), "train.strategy=mirrored",
                         "train.save_every=1", env={"MT_CLI_FAULT_NONFINITE_STEPS": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert [r["nonfinite_in_row"] for r in _metrics(run)] == [0, 0, 1, 0]
    assert_same_checkpoint_state(run / "checkpoints" / "step-00000002", run / "checkpoints" / "step-00000003")


def test_exact_resume_equals_straight_run(runner, tmp_path, toy_dir) -> None:
    """N + N resumed steps == 2N straight steps: losses per step and final weights, with dropout on."""
    script = _MIRRORED_SCRIPT.replace(
        'tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)', "")
    sections = {"train": {"max_steps": 12, "save_every": 6, "log_every": 1, "deterministic": True},
                "model": {"dropout": 0.2, "attention_dropout": 0.1, "ffn_dropout": 0.1},
                "data": {"dev": None}}  # no dev set: both export the last step, not a best one
    config = _write(tmp_path, toy_dir, **sections)
    straight = _run_script(script, str(config), str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-2000:]
    first = _run_script(script, str(config), str(tmp_path / "resumed"), "train.max_steps=6")
    assert first.returncode == 0, first.stderr[-2000:]
    second = _run_script(script, str(config), str(tmp_path / "resumed"))
    assert second.returncode == 0, second.stderr[-2000:]
    a = [(r["step"], r["loss"]) for r in _metrics(tmp_path / "straight")]
    b = [(r["step"], r["loss"]) for r in _metrics(tmp_path / "resumed")]
    assert a == b
    for x, y in zip(_export_weights(tmp_path / "straight"), _export_weights(tmp_path / "resumed")):
        np.testing.assert_array_equal(x, y)


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


_DUMP_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np
from mt_cli.core.config_loading import load_config
from mt_cli.training import session
from mt_cli.training.loop import train
original = session.Session.export
def export(self):  # the last step's weights, before the export picks best/averaged ones
    np.savez(sys.argv[3], *self.model.get_weights())
    return original(self)
session.Session.export = export
result = train(load_config(sys.argv[1], sys.argv[4:]), Path(sys.argv[2]))
print(json.dumps({"step": result.step, "reason": result.stop_reason}))
"""


def _npz(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def test_multi_worker_strategy_with_two_local_workers(tmp_path, toy_dir) -> None:
    """Two worker processes on loopback (TF_CONFIG), each with one replica. Gradients are
    all-reduced: both workers end with identical weights, equal to one process accumulating
    the same two batches per step. Dev evaluation, early stopping's bookkeeping and a real
    non-finite skip (step 3) run in multi-worker mode; the chief writes the run, the other
    worker's private saves are cleaned up."""
    from mt_cli.core.tokenizer import train_sentencepiece

    spm = train_sentencepiece([toy_dir / "train.src", toy_dir / "train.tgt"], tmp_path / "spm", 48)
    train = {"max_steps": 6, "save_every": 2, "log_every": 1, "eval_every": 3, "keep_last": 5,
             "early_stopping_patience": 5, "eval_metric": "loss"}
    config = _write(tmp_path, toy_dir, train=train, tokenizer={"model": str(spm)})
    run = tmp_path / "run"
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    fault = {"MT_CLI_FAULT_NONFINITE_STEPS": "3"}
    procs = []
    for index in range(2):
        env = {**os.environ, **fault,
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, "-c", _DUMP_SCRIPT, str(config), str(run),
                                       str(tmp_path / f"worker{index}.npz"), "train.strategy=multi_worker"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    single = _run_script(_DUMP_SCRIPT, str(config), str(tmp_path / "single"), str(tmp_path / "single.npz"),
                         "train.effective_batch_tokens=512", env=fault)
    assert single.returncode == 0, single.stderr[-2000:]
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["step"] == 6
    assert [r["step"] for r in _metrics(run)] == [1, 2, 3, 4, 5, 6]
    assert [r["nonfinite_in_row"] for r in _metrics(run)] == [0, 0, 1, 0, 0, 0]
    dev = _metrics(run, "dev")
    assert [r["step"] for r in dev] == [3, 6] and all(np.isfinite(r["loss"]) for r in dev)
    single_dev = _metrics(tmp_path / "single", "dev")
    assert [r["loss"] for r in dev] == pytest.approx([r["loss"] for r in single_dev], rel=1e-3)
    assert_same_checkpoint_state(run / "checkpoints" / "step-00000002", run / "checkpoints" / "step-00000003")
    assert not list(run.glob(".worker-*"))
    workers = [_npz(tmp_path / f"worker{i}.npz") for i in range(2)]
    for x, y in zip(*workers):
        np.testing.assert_array_equal(x, y)
    # Adam moves each weight by about the learning rate (~0.07 here) per step, and turns
    # float noise in near-zero gradients into visible differences over 6 steps; a missing
    # all-reduce would be off by whole updates everywhere, far beyond these bounds.
    for x, y in zip(workers[0], _npz(tmp_path / "single.npz")):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-2)
        assert float(np.mean(np.abs(x - y))) < 5e-4


def test_resume_restores_best_score_and_early_stopping_counter(runner, tmp_path, toy_dir) -> None:
    """BLEU stays 0 (learning rate 1e-6), so the best is step 5 and every later evaluation
    counts as bad. Resumed at 10 (bad_evals 1), patience 3 stops at step 20; a restore that
    lost the best score or the counter would call step 15 the best and stop at 30."""
    config = _write(tmp_path, toy_dir, train={"max_steps": 10, "eval_every": 5, "save_every": 5,
                                              "eval_metric": "bleu", "early_stopping_patience": 3,
                                              "learning_rate": 1e-6, "schedule": "constant",
                                              "warmup_steps": 0})
    run = tmp_path / "run"
    assert _train(runner, config, run).exit_code == 0
    state = json.loads((run / "checkpoints" / "step-00000010" / "state.json").read_text())
    assert (state["best_step"], state["bad_evals"]) == (5, 1)
    longer = _train(runner, config, run, "--set", "train.max_steps=100")
    assert longer.exit_code == 0, longer.output
    dev = _metrics(run, "dev")
    assert [(r["step"], r["best_step"], r["bad_evals"]) for r in dev] == [
        (5, 5, 0), (10, 5, 1), (15, 5, 2), (20, 5, 3)]
    done = json.loads((run / "finished.json").read_text())
    assert (done["reason"], done["step"]) == ("early_stopping", 20)


def test_float16_with_loss_scaling_trains(runner, tmp_path, toy_dir) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 6, "precision": "float16", "log_every": 1})
    run = tmp_path / "run"
    result = _train(runner, config, run)
    assert result.exit_code == 0, result.output
    assert all(np.isfinite(r["loss"]) for r in _metrics(run))


def test_quiet_training_prints_no_progress(runner, tmp_path, toy_dir) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 4, "log_every": 1})
    result = runner.invoke(app, ["-q", "train", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == ""
    loud = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "loud")])
    assert "step 4" in loud.stderr  # plain lines when stderr is not a terminal


def _run_on_a_terminal(command: list[str], timeout: float = 600) -> str:
    """Run `command` with stderr on a pseudo-terminal (as a user at a shell sees it)."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks, deadline = [], time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks)[-2000:]
    return b"".join(chunks).decode("utf-8", "replace")


def test_training_on_a_terminal_shows_a_progress_bar_with_eta(tmp_path, toy_dir) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 20, "log_every": 5})
    shown = _run_on_a_terminal([sys.executable, "-m", "mt_cli", "train", str(config),
                                "--run-dir", str(tmp_path / "run")])
    assert "20/20" in shown and "━" in shown  # the bar, steps done of all
    assert "tok/s" in shown
    assert re.search(r"\d+:\d\d:\d\d", shown), shown[-1500:]  # the time-remaining column
    assert "\nstep 20  loss" not in shown  # no plain log lines on a terminal
