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
from helpers import assert_same_checkpoint_state, copy_run, tiny_config_text
from typer.testing import CliRunner

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
                                                        "model.weights.h5", "shared_vocabulary.json", "spm.model",
                                                        "vmap.txt"]
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


def test_rerun_resumes_and_finished_run_is_not_overwritten(runner, tmp_path, trained_run) -> None:
    run = copy_run(trained_run, tmp_path / "run")  # 60 steps, finished
    config = run / "config.yaml"
    weights = (run / "export" / "model.weights.h5").read_bytes()
    again = _train(runner, config, run)
    assert again.exit_code == 0
    assert "already trained" in again.stderr
    assert (run / "export" / "model.weights.h5").read_bytes() == weights
    longer = _train(runner, config, run, "--set", "train.max_steps=63")
    assert longer.exit_code == 0, longer.output
    assert "resuming from" in longer.stderr and "step 60" in longer.stderr
    assert json.loads((run / "export" / "manifest.json").read_text())["step"] == 63
    assert [r["step"] for r in _metrics(run)][-1] == 63
    fresh = _train(runner, config, run, "--overwrite", "--set", "train.max_steps=5")
    assert fresh.exit_code == 0 and "resuming" not in fresh.stderr
    assert json.loads((run / "export" / "manifest.json").read_text())["step"] == 5
    assert [r["step"] for r in _metrics(run)] == [5]  # a new metrics.jsonl


def test_resume_with_changed_model_lists_the_differences(runner, tmp_path, trained_run) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    result = _train(runner, run / "config.yaml", run, "--set", "model.hidden_dim=64",
                    "--set", "tokenizer.vocab_size=40")
    assert result.exit_code == 1
    assert "model.hidden_dim: 32 -> 64" in result.stderr
    assert "tokenizer.vocab_size: 48 -> 40" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_checkpoint_bookkeeping_in_one_real_run(runner, tmp_path, toy_dir) -> None:
    """The integration run of keep-last-K, the best checkpoint, early stopping and averaging
    (each also tested as a function in tests/test_training_parts.py). An untrainable model
    (learning rate 1e-6) scores BLEU 0 at every evaluation, and only a strictly better score
    counts: the best stays at the first evaluation (step 5).

    First 10 steps: the export takes the best checkpoint. Resumed to 100 steps with patience 3
    and averaging: the resume keeps the best score and the bad-evaluation count (a restore that
    lost them would call step 15 the best and stop at 30), so the run stops at step 20; the best
    checkpoint, far behind the newest two, survives every pruning; the export averages the
    last two."""
    config = _write(tmp_path, toy_dir, train={"max_steps": 10, "eval_every": 5, "save_every": 5,
                                              "keep_last": 2, "eval_metric": "bleu",
                                              "early_stopping_patience": 3, "learning_rate": 1e-6,
                                              "schedule": "constant", "warmup_steps": 0})
    run = tmp_path / "run"
    first = _train(runner, config, run)
    assert first.exit_code == 0, first.output
    state = json.loads((run / "checkpoints" / "step-00000010" / "state.json").read_text())
    assert (state["best_step"], state["bad_evals"]) == (5, 1)
    assert json.loads((run / "export" / "manifest.json").read_text())["weights_from"] == {"best_step": 5}

    longer = _train(runner, config, run, "--set", "train.max_steps=100", "--set", "train.average_last=2")
    assert longer.exit_code == 0, longer.output
    assert "early_stopping" in longer.stderr
    dev = _metrics(run, "dev")
    assert [r["bleu"] for r in dev] == [0.0] * 4
    assert [(r["step"], r["best_step"], r["bad_evals"]) for r in dev] == [
        (5, 5, 0), (10, 5, 1), (15, 5, 2), (20, 5, 3)]
    done = json.loads((run / "finished.json").read_text())
    assert (done["reason"], done["step"]) == ("early_stopping", 20)
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    assert steps == [5, 15, 20]
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["weights_from"] == {"averaged_steps": [15, 20]}
    out = runner.invoke(app, ["translate", "-m", str(run)], input="the cat runs .\n")
    assert out.exit_code == 0 and len(out.stdout.splitlines()) == 1


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


@pytest.fixture(scope="module")
def four_steps(tmp_path_factory, toy_dir):
    """4 plain steps, each logged, trained through the CLI (stderr not a terminal): the run
    directory and the CliRunner result."""
    work = tmp_path_factory.mktemp("four-steps")
    config = _write(work, toy_dir, train={"max_steps": 4, "log_every": 1})
    result = CliRunner().invoke(app, ["train", str(config), "--run-dir", str(work / "run")])
    assert result.exit_code == 0, result.output
    return work / "run", result


def test_gradient_accumulation_feeds_several_batches_per_step(runner, tmp_path, toy_dir, four_steps) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 4, "effective_batch_tokens": 1024,
                                              "log_every": 1})
    run = tmp_path / "run"
    result = _train(runner, config, run)
    assert result.exit_code == 0, result.output
    accumulated = _metrics(run)
    assert [r["step"] for r in accumulated] == [1, 2, 3, 4]
    single = _metrics(four_steps[0])
    # 1024 / 256 = 4 micro-batches per optimizer step: about 4x the tokens of a plain step
    ratio = sum(r["tokens"] for r in accumulated) / sum(r["tokens"] for r in single)
    assert 3.0 < ratio < 5.0
    assert all(np.isfinite(r["loss"]) for r in accumulated)


# Runs that need a process of their own (two logical CPUs must be set before TensorFlow starts;
# op determinism, once on, stays on), batched: one process trains every job in order, the
# resume's second half runs in a fresh process. Each job's outcome is recorded on its own, so a
# failing job fails only the tests that read it.
_JOBS_SCRIPT = """
import json, os, sys, traceback
import tensorflow as tf
if sys.argv[3:] == ["two-cpus"]:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pathlib import Path
import numpy as np
from mt_cli.core.config_loading import load_config
from mt_cli.training import session
from mt_cli.training.loop import train
original = session.Session.export
dump = {}
def export(self):  # the last step's weights, before the export picks best/averaged ones
    if dump.get("to"):
        np.savez(dump["to"], *self.model.get_weights())
    return original(self)
session.Session.export = export
results = {}
for job in json.loads(Path(sys.argv[1]).read_text()):
    dump["to"] = job.get("dump")
    os.environ["MT_CLI_FAULT_NONFINITE_STEPS"] = job.get("fault", "")
    try:
        result = train(load_config(job["config"], job.get("set", [])), Path(job["run"]))
        results[job["name"]] = {"step": result.step, "reason": result.stop_reason}
    except BaseException:
        results[job["name"]] = {"error": traceback.format_exc()[-3000:]}
Path(sys.argv[2]).write_text(json.dumps(results))
"""


def _run_jobs(work: Path, name: str, jobs: list[dict]) -> dict[str, dict]:
    (work / f"{name}.json").write_text(json.dumps(jobs))
    done = subprocess.run([sys.executable, "-c", _JOBS_SCRIPT, str(work / f"{name}.json"),
                           str(work / f"{name}.out.json"), "two-cpus"], check=False, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / f"{name}.out.json").read_text())


@pytest.fixture(scope="module")
def process_runs(tmp_path_factory, toy_dir) -> tuple[Path, dict[str, dict]]:
    """Every job's run directory under the returned path, and its outcome by name."""
    from mt_cli.core.tokenizer import train_sentencepiece

    work = tmp_path_factory.mktemp("process-runs")
    mirrored = _write(work, toy_dir, "mirrored.yaml", train={"max_steps": 2, "save_every": 2, "log_every": 1})
    nonfinite = _write(work, toy_dir, "nonfinite.yaml", train={"max_steps": 4, "save_every": 2, "log_every": 1,
                                                               "keep_last": 5}, data={"dev": None})
    resume = _write(work, toy_dir, "resume.yaml",
                    train={"max_steps": 12, "save_every": 6, "log_every": 1, "deterministic": True},
                    model={"dropout": 0.2, "attention_dropout": 0.1, "ffn_dropout": 0.1},
                    data={"dev": None})  # no dev set: both export the last step, not a best one
    spm = train_sentencepiece([toy_dir / "train.src", toy_dir / "train.tgt"], work / "spm", 48)
    workers = _write(work, toy_dir, "workers.yaml", tokenizer={"model": str(spm)},
                     train={"max_steps": 6, "save_every": 2, "log_every": 1, "eval_every": 3, "keep_last": 5,
                            "early_stopping_patience": 5, "eval_metric": "loss"})

    def job(name: str, config: Path, *overrides: str, **extra: str) -> dict:
        return {"name": name, "config": str(config), "run": str(work / name), "set": list(overrides), **extra}

    outcomes = _run_jobs(work, "first", [
        job("mirrored", mirrored, "train.strategy=mirrored"),
        job("single", mirrored, "train.effective_batch_tokens=512"),
        job("mirrored-nonfinite", nonfinite, "train.strategy=mirrored", "train.save_every=1", fault="3"),
        job("workers-reference", workers, "train.effective_batch_tokens=512", fault="3",
            dump=str(work / "single.npz")),
        # last: op determinism stays on in this process once a deterministic run starts
        job("straight", resume),
        job("resumed-first-half", resume, "train.max_steps=6", run=str(work / "resumed")),
    ])
    outcomes.update(_run_jobs(work, "second", [job("resumed", resume)]))
    return work, outcomes


def _outcome(process_runs: tuple[Path, dict[str, dict]], name: str) -> Path:
    work, outcomes = process_runs
    assert "error" not in outcomes[name], outcomes[name]["error"]
    return work / name


def _export_weights(run: Path) -> list[np.ndarray]:
    import h5py

    arrays: list[np.ndarray] = []
    with h5py.File(run / "export" / "model.weights.h5") as handle:
        handle.visititems(lambda name, obj: arrays.append(np.array(obj)) if hasattr(obj, "shape") else None)
    return arrays


def test_mirrored_strategy_equals_accumulation_over_replica_batches(process_runs) -> None:
    """Two replicas on two logical CPUs take batches b0, b1: one step must equal one
    single-device step accumulating b0 and b1."""
    mirrored, single = _outcome(process_runs, "mirrored"), _outcome(process_runs, "single")
    a, b = _metrics(mirrored), _metrics(single)
    assert [r["step"] for r in a] == [1, 2]
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-4)
    # Adam normalises each update to ~lr (0.01 here), so near-zero gradients amplify float
    # noise; a missing all-reduce would move weights by a whole update, far beyond 2e-3.
    for x, y in zip(_export_weights(mirrored), _export_weights(single)):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=2e-3)


def test_mirrored_strategy_really_skips_a_non_finite_update(process_runs) -> None:
    """On two replicas a non-finite step (step 3, made NaN on purpose) must leave weights,
    Adam's slots and its iteration count exactly as they were (no zero-gradient update)."""
    run = _outcome(process_runs, "mirrored-nonfinite")
    assert [r["nonfinite_in_row"] for r in _metrics(run)] == [0, 0, 1, 0]
    assert_same_checkpoint_state(run / "checkpoints" / "step-00000002", run / "checkpoints" / "step-00000003")


def test_exact_resume_equals_straight_run(process_runs) -> None:
    """N + N resumed steps (the second N in a fresh process) == 2N straight steps: losses per
    step and final weights, with dropout on."""
    _outcome(process_runs, "resumed-first-half")
    straight, resumed = _outcome(process_runs, "straight"), _outcome(process_runs, "resumed")
    a = [(r["step"], r["loss"]) for r in _metrics(straight)]
    b = [(r["step"], r["loss"]) for r in _metrics(resumed)]
    assert len(a) == 12 and a == b
    for x, y in zip(_export_weights(straight), _export_weights(resumed)):
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


def _npz(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def test_multi_worker_strategy_with_two_local_workers(process_runs, tmp_path) -> None:
    """Two worker processes on loopback (TF_CONFIG), each with one replica. Gradients are
    all-reduced: both workers end with identical weights, equal to one process accumulating
    the same two batches per step. Dev evaluation, early stopping's bookkeeping and a real
    non-finite skip (step 3) run in multi-worker mode; the chief writes the run, the other
    worker's private saves are cleaned up."""
    reference = _outcome(process_runs, "workers-reference")
    config = process_runs[0] / "workers.yaml"
    run = tmp_path / "run"
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    procs = []
    for index in range(2):
        jobs = [{"name": "worker", "config": str(config), "run": str(run), "fault": "3",
                 "dump": str(tmp_path / f"worker{index}.npz"), "set": ["train.strategy=multi_worker"]}]
        (tmp_path / f"jobs{index}.json").write_text(json.dumps(jobs))
        env = {**os.environ,
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, "-c", _JOBS_SCRIPT,
                                       str(tmp_path / f"jobs{index}.json"), str(tmp_path / f"out{index}.json")],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    for index, (proc, (_, err)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, err[-3000:]
        outcome = json.loads((tmp_path / f"out{index}.json").read_text())["worker"]
        assert outcome == {"step": 6, "reason": "max_steps"}, outcome
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["step"] == 6
    assert [r["step"] for r in _metrics(run)] == [1, 2, 3, 4, 5, 6]
    assert [r["nonfinite_in_row"] for r in _metrics(run)] == [0, 0, 1, 0, 0, 0]
    dev = _metrics(run, "dev")
    assert [r["step"] for r in dev] == [3, 6] and all(np.isfinite(r["loss"]) for r in dev)
    single_dev = _metrics(reference, "dev")
    assert [r["loss"] for r in dev] == pytest.approx([r["loss"] for r in single_dev], rel=1e-3)
    assert_same_checkpoint_state(run / "checkpoints" / "step-00000002", run / "checkpoints" / "step-00000003")
    assert not list(run.glob(".worker-*"))
    workers = [_npz(tmp_path / f"worker{i}.npz") for i in range(2)]
    for x, y in zip(*workers):
        np.testing.assert_array_equal(x, y)
    # Adam moves each weight by about the learning rate (~0.07 here) per step, and turns
    # float noise in near-zero gradients into visible differences over 6 steps; a missing
    # all-reduce would be off by whole updates everywhere, far beyond these bounds.
    for x, y in zip(workers[0], _npz(process_runs[0] / "single.npz")):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-2)
        assert float(np.mean(np.abs(x - y))) < 5e-4


def test_float16_with_loss_scaling_trains(runner, tmp_path, toy_dir) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 6, "precision": "float16", "log_every": 1})
    run = tmp_path / "run"
    result = _train(runner, config, run)
    assert result.exit_code == 0, result.output
    assert all(np.isfinite(r["loss"]) for r in _metrics(run))


def test_quiet_training_prints_no_progress(runner, tmp_path, toy_dir, four_steps) -> None:
    config = _write(tmp_path, toy_dir, train={"max_steps": 4, "log_every": 1})
    result = runner.invoke(app, ["-q", "train", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == ""
    assert "step 4" in four_steps[1].stderr  # the same run without -q: plain lines (stderr not a terminal)


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
