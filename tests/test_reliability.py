"""The reliability checks of ../shared/guide/reliability.md that concern training and data,
driven through the real CLI (translate/evaluate checks live in their own test files)."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    REPO,
    assert_one_line_error,
    assert_same_checkpoint_state,
    copy_run,
    small_tmpfs,
    tiny_config_text,
    toy_pairs,
    write_pairs,
)

from mt_cli.cli.main import app

MT_CLI = [sys.executable, "-m", "mt_cli"]


def _config(tmp_path: Path, toy_dir: Path, name: str = "c.yaml", **sections: dict) -> Path:
    path = tmp_path / name
    path.write_text(tiny_config_text(toy_dir, **sections))
    return path


def _steps_of(run: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


# ---------------------------------------------------------------- 1, 2: kill -9 and signals

@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_at_step_boundary_and_rerun_resumes(runner, tmp_path, toy_dir, signum, code) -> None:
    config = _config(tmp_path, toy_dir, train={"max_steps": 100000, "save_every": 100000,
                                               "log_every": 1})
    run = tmp_path / "run"
    proc = subprocess.Popen([*MT_CLI, "train", str(config), "--run-dir", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    _wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 3)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    saved = _steps_of(run)
    assert len(saved) == 1
    step = saved[0]
    last_logged = json.loads(metrics.read_text().splitlines()[-1])["step"]
    assert step == last_logged  # the step in flight finished and was saved; nothing lost
    resumed = runner.invoke(app, ["train", str(config), "--run-dir", str(run), "--set", f"train.max_steps={step + 3}"])
    assert resumed.exit_code == 0, resumed.output
    assert f"step {step}" in resumed.stderr
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()
             if json.loads(line)["event"] == "train"]
    assert steps[-3:] == [step + 1, step + 2, step + 3]


def test_kill_9_inside_a_save_resumes_from_the_previous_complete_checkpoint(runner, tmp_path, toy_dir) -> None:
    """$MT_CLI_PAUSE_SAVE pauses the save of step 10 after its first file, so the kill -9
    lands inside that save for certain; the rerun must resume from step 5, without an
    "unreadable" warning, and remove the partial save."""
    config = _config(tmp_path, toy_dir, train={"max_steps": 100000, "save_every": 5, "log_every": 1})
    run, marker = tmp_path / "run", tmp_path / "paused"
    proc = subprocess.Popen([*MT_CLI, "train", str(config), "--run-dir", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "MT_CLI_PAUSE_SAVE": f"10:{marker}"})
    try:
        _wait_for(marker.exists)
    finally:
        proc.kill()
        proc.wait()
    partial = [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-step-00000010")]
    assert partial and list(partial[0].glob("ckpt.index")), "the kill did not land inside the save"
    assert _steps_of(run) == [5]
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(run), "--set", "train.max_steps=7"])
    assert result.exit_code == 0, result.output
    assert "removed leftovers of an interrupted save" in result.stderr
    assert "unreadable" not in result.stderr
    assert "resuming from" in result.stderr and "step-00000005" in result.stderr
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert _steps_of(run) == [5, 7]


# ---------------------------------------------------------------- 6: corrupted checkpoints

def _corrupt(step_dir: Path) -> None:
    data = next(step_dir.glob("ckpt.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])


def _unfinished_copy(trained_run: Path, dest: Path) -> Path:
    """A copy of the session's run (checkpoints at 40, 50, 60) that is not finished."""
    run = copy_run(trained_run, dest)
    (run / "finished.json").unlink()
    assert _steps_of(run) == [40, 50, 60]
    return run


def test_corrupted_latest_checkpoint_falls_back_with_warning(runner, tmp_path, trained_run) -> None:
    run = _unfinished_copy(trained_run, tmp_path / "run")
    _corrupt(run / "checkpoints" / "step-00000060")
    result = runner.invoke(app, ["train", str(run / "config.yaml"), "--run-dir", str(run),
                                 "--set", "train.max_steps=62"])
    assert result.exit_code == 0, result.output
    assert "step-00000060 is unreadable" in result.stderr
    assert "resuming from" in result.stderr and "step-00000050" in result.stderr


def test_all_checkpoints_corrupted_is_an_error_not_a_fresh_start(runner, tmp_path, trained_run) -> None:
    run = _unfinished_copy(trained_run, tmp_path / "run")
    for step_dir in (run / "checkpoints").glob("step-*"):
        _corrupt(step_dir)
    result = runner.invoke(app, ["train", str(run / "config.yaml"), "--run-dir", str(run),
                                 "--set", "train.max_steps=62"])
    assert result.exit_code == 1
    line = assert_one_line_error(result.stderr, after_log=True)
    assert "no readable checkpoint" in line and "step-000000" in line
    assert _steps_of(run) == [40, 50, 60]  # nothing new written over them


# ---------------------------------------------------------------- 8: non-finite steps

def test_non_finite_steps_are_skipped_counted_and_stop_the_run(runner, tmp_path, toy_dir) -> None:
    config = _config(tmp_path, toy_dir, train={"max_steps": 200, "save_every": 1000, "log_every": 1,
                                               "learning_rate": 1e30, "schedule": "constant",
                                               "warmup_steps": 0, "max_nonfinite_steps": 3})
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(run)])
    assert result.exit_code == 1
    line = assert_one_line_error(result.stderr, after_log=True)
    assert "3 non-finite steps in a row" in line and "train.max_nonfinite_steps=3" in line
    assert "update skipped" in result.stderr
    assert not (run / "export").exists()
    for step_dir in (run / "checkpoints").glob("step-*"):  # whatever was saved is finite
        import tensorflow as tf

        reader = tf.train.load_checkpoint(str(step_dir / "ckpt"))
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if getattr(value, "dtype", None) is not None and np.issubdtype(value.dtype, np.floating):
                assert np.isfinite(value).all(), name


def test_skipped_update_leaves_weights_slots_and_iteration_unchanged(runner, tmp_path, toy_dir,
                                                                    monkeypatch) -> None:
    """Steps 3 and 4 are made non-finite ($MT_CLI_FAULT_NONFINITE_STEPS): the checkpoint
    after them equals the one before, the counters show in metrics.jsonl and reset."""
    monkeypatch.setenv("MT_CLI_FAULT_NONFINITE_STEPS", "3,4")
    config = _config(tmp_path, toy_dir, train={"max_steps": 6, "save_every": 2, "log_every": 1,
                                               "keep_last": 5, "max_nonfinite_steps": 3},
                     data={"dev": None})
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    assert "step 3: non-finite loss or gradients, update skipped (1 in a row)" in result.stderr
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    counters = [(r["step"], r["nonfinite_in_row"], r["nonfinite_steps"]) for r in rows if r["event"] == "train"]
    assert counters == [(1, 0, 0), (2, 0, 0), (3, 1, 1), (4, 2, 2), (5, 0, 2), (6, 0, 2)]
    assert_same_checkpoint_state(run / "checkpoints" / "step-00000002", run / "checkpoints" / "step-00000004")
    with pytest.raises(AssertionError):  # a finite step does change them
        assert_same_checkpoint_state(run / "checkpoints" / "step-00000004", run / "checkpoints" / "step-00000006")


# ---------------------------------------------------------------- 9-12: bad training data

@pytest.mark.parametrize("tail, description", [
    (b"last line without newline", "missing final newline"),
    (b"a\rb\nc\n", "lone CR"),
    ("x\u2028y\n".encode(), "U+2028"),
    (b"nul\x00byte\n", "NUL"),
])
def test_line_count_mismatch_names_both_files_and_counts(runner, tmp_path, toy_dir, tail, description) -> None:
    pairs = toy_pairs(30, seed=5)
    src, tgt = write_pairs(tmp_path, "odd", pairs)
    src.write_bytes(src.read_bytes() + tail)  # one more source line than target lines
    n_src = len(pairs) + 1 if not tail.endswith(b"\n") or tail.count(b"\n") == 1 else len(pairs) + tail.count(b"\n")
    config = _config(tmp_path, toy_dir, data={"train": [{"source": str(src), "target": str(tgt)}]})
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1, description
    line = assert_one_line_error(result.stderr, after_log=True)
    assert f"{src} has {n_src} lines but {tgt} has {len(pairs)}" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_empty_and_overlong_pairs_are_skipped_and_counted(runner, tmp_path, toy_dir) -> None:
    pairs = toy_pairs(200, seed=9)
    pairs[3] = ("", "")
    pairs[4] = ("   ", "tac .")
    pairs[5] = ("the cat .", "")
    pairs[6] = (" ".join(["cat"] * 300), "tac .")
    src, tgt = write_pairs(tmp_path, "mixed", pairs)
    config = _config(tmp_path, toy_dir, data={"train": [{"source": str(src), "target": str(tgt)}],
                                              "max_source_tokens": 100},
                     train={"max_steps": 2})
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "200 pairs, kept 196, skipped 3 empty and 1 over-long" in result.stderr


def test_nothing_left_after_filtering_says_why(runner, tmp_path, toy_dir) -> None:
    src, tgt = write_pairs(tmp_path, "empty", [("", "")] * 5 + [(" ".join(["dog"] * 50), "god .")])
    config = _config(tmp_path, toy_dir, data={"train": [{"source": str(src), "target": str(tgt)}],
                                              "max_source_tokens": 10})
    config_text = config.read_text().replace(str(toy_dir / "train.src"), str(src))
    config.write_text(config_text)
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run"),
                                 "--set", f"tokenizer.model={_spm(tmp_path, toy_dir)}"])
    assert result.exit_code == 1
    line = assert_one_line_error(result.stderr, after_log=True)
    assert "no usable sentence pairs (5 empty, 1 over the length limits" in line


def _spm(tmp_path: Path, toy_dir: Path) -> Path:
    from mt_cli.core.tokenizer import train_sentencepiece

    return train_sentencepiece([toy_dir / "train.src", toy_dir / "train.tgt"], tmp_path / "spm", 48)


def test_invalid_utf8_in_training_data_names_file_and_line(runner, tmp_path, toy_dir) -> None:
    pairs = toy_pairs(20, seed=4)
    src, tgt = write_pairs(tmp_path, "bad", pairs)
    lines = src.read_bytes().split(b"\n")
    lines[6] = b"caf\xe9 au lait"
    src.write_bytes(b"\n".join(lines))
    config = _config(tmp_path, toy_dir, data={"train": [{"source": str(src), "target": str(tgt)}]})
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run"),
                                 "--set", f"tokenizer.model={_spm(tmp_path, toy_dir)}"])
    assert result.exit_code == 1
    assert f"{src}:7: invalid UTF-8" in assert_one_line_error(result.stderr, after_log=True)


def test_crlf_input_yields_the_same_ids_as_lf(tmp_path, toy_dir) -> None:
    from mt_cli.core.tokenizer import Tokenizers
    from mt_cli.training.data import encode_corpus

    tokenizers = Tokenizers.load(_spm(tmp_path, toy_dir))
    pairs = toy_pairs(50, seed=11)
    lf_src, lf_tgt = write_pairs(tmp_path, "lf", pairs)
    crlf_src, crlf_tgt = tmp_path / "crlf.src", tmp_path / "crlf.tgt"
    crlf_src.write_bytes(lf_src.read_bytes().replace(b"\n", b"\r\n"))
    crlf_tgt.write_bytes(lf_tgt.read_bytes().replace(b"\n", b"\r\n"))
    a = encode_corpus(lf_src, lf_tgt, tokenizers, tmp_path / "cache", 100, 100)
    b = encode_corpus(crlf_src, crlf_tgt, tokenizers, tmp_path / "cache", 100, 100)
    assert np.array_equal(a.src, b.src) and np.array_equal(a.tgt, b.tgt)
    assert np.array_equal(a.src_offsets, b.src_offsets)


def test_changed_training_file_is_noticed_by_the_cache(tmp_path, toy_dir) -> None:
    from mt_cli.core.tokenizer import Tokenizers
    from mt_cli.training.data import encode_corpus

    tokenizers = Tokenizers.load(_spm(tmp_path, toy_dir))
    src, tgt = write_pairs(tmp_path, "c", toy_pairs(20, seed=12))
    first = encode_corpus(src, tgt, tokenizers, tmp_path / "cache", 100, 100)
    write_pairs(tmp_path, "c", toy_pairs(20, seed=13))
    second = encode_corpus(src, tgt, tokenizers, tmp_path / "cache", 100, 100)
    assert first.directory != second.directory
    assert not np.array_equal(np.asarray(first.src), np.asarray(second.src))


# ---------------------------------------------------------------- 20: full disk

def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, trained_run) -> None:
    """RLIMIT_FSIZE makes every write beyond a size fail like a full disk (EFBIG)."""
    run = _unfinished_copy(trained_run, tmp_path / "run")
    biggest = max(p.stat().st_size for p in (run / "checkpoints").rglob("*") if p.is_file())

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (biggest // 2, biggest // 2))

    result = subprocess.run([*MT_CLI, "train", str(run / "config.yaml"), "--run-dir", str(run),
                             "--set", "train.max_steps=65"],
                            check=False, capture_output=True, text=True, preexec_fn=limit)
    assert result.returncode == 1, result.stderr
    line = assert_one_line_error(result.stderr, after_log=True)
    assert "step-00000065: cannot write" in line
    assert "previous one is intact" not in line  # there was no step-00000065 before
    assert _steps_of(run) == [40, 50, 60]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_full_disk_while_writing_weights_is_one_line_naming_the_file_and_free_space(tmp_path, trained_run) -> None:
    """h5py writing model.weights.h5 to a full disk crashed (116-144 lines of "Exception
    ignored ... errno = 28", then a segfault, exit 139). A real 300 KB tmpfs: the SentencePiece
    copy fits, the weights do not."""
    with small_tmpfs(tmp_path / "small", 300) as small:
        result = subprocess.run([*MT_CLI, "average", str(trained_run), "--last", "1", "-o", str(small / "avg")],
                                check=False, capture_output=True, text=True, timeout=300)
        line = assert_one_line_error(result)
        assert line.startswith(f"error: {small / 'avg' / 'model.weights.h5'}: cannot write (No space left on "
                               "device, "), line
        assert re.search(r"\d+(\.\d)? KB free there\); free some space or write elsewhere$", line), line
        assert "previous one is intact" not in line  # there was none
        assert not list(small.iterdir())  # nothing half-written left


_REPLACE_EXPORT = """
import sys
from pathlib import Path
from mt_cli.core.errors import CheckpointError
from mt_cli.engines.model_dir import load_model_dir, write_model_dir
loaded = load_model_dir(sys.argv[1])
try:
    write_model_dir(Path(sys.argv[2]), loaded.model, loaded.config, loaded.tokenizers, {"step": 1})
except CheckpointError as exc:
    print(exc)
    sys.exit(3)
"""


def test_full_disk_while_replacing_a_model_directory_leaves_the_previous_one(tmp_path, trained_run) -> None:
    """`train` rewrites RUN/export when a run continues: on a full disk the previous model
    directory stays as it was, byte for byte, and the message says so."""
    with small_tmpfs(tmp_path / "small", 300) as small:
        previous = small / "export"
        previous.mkdir()
        (previous / "manifest.json").write_text('{"step": 60}')
        result = subprocess.run([sys.executable, "-c", _REPLACE_EXPORT, str(trained_run), str(previous)],
                                check=False, capture_output=True, text=True, timeout=300)
        assert result.returncode == 3, (result.returncode, result.stderr[-2000:])
        assert "Exception ignored" not in result.stderr and "errno = 28" not in result.stderr
        assert result.stdout.startswith(f"{previous / 'model.weights.h5'}: cannot write (No space left on device")
        assert result.stdout.rstrip().endswith("; the previous one is intact")
        assert sorted(p.name for p in small.iterdir()) == ["export"]
        assert [p.name for p in previous.iterdir()] == ["manifest.json"]
        assert (previous / "manifest.json").read_text() == '{"step": 60}'


def test_unwritable_run_directory_is_a_clear_error(runner, tmp_path, toy_dir) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = _config(tmp_path, toy_dir)
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(blocker / "run")])
    assert result.exit_code == 1
    assert str(blocker / "run") in assert_one_line_error(result.stderr, after_log=True)


# ---------------------------------------------------------------- 19: no pickle, safe YAML

def test_no_pickle_no_unsafe_yaml_no_code_from_model_directories() -> None:
    sources = {p: p.read_text() for p in (REPO / "mt_cli").rglob("*.py")}
    for path, text in sources.items():
        pickles = r"^\s*(import pickle|from pickle|import dill|import cloudpickle)"
        assert not re.search(pickles, text, re.MULTILINE), path
        assert "allow_pickle=True" not in text, path
        assert not re.search(r"yaml\.(load|unsafe_load|full_load)\(", text), path
        # importlib.util.find_spec only asks whether an optional extra is installed
        assert not re.search(r"import_module|__import__|spec_from_file_location|module_from_spec", text), path
        assert "exec(" not in text and "eval(" not in text, path
        # Keras's config round trip exists (get_config/from_config on our layers), but nothing
        # in mt_cli may call it, or any deserializer, on what a directory holds: the model is
        # rebuilt from config.yaml by build_model, our own code.
        assert not re.search(r"load_model\(|model_from_json|model_from_config|deserialize", text), path
        calls = re.findall(r"(\S*)\.from_config\(", text)
        assert all(call == "super()" for call in calls), (path, calls)
