"""Issue 33, points 1, 2 and 12: every file of a model directory is checked (regular, inside
the directory, hashed) before any command or engine opens it, its config.yaml is bounded like
every YAML, and a run directory without an export is called what it is.

The commands run as real processes where the old behaviour was a hang (a timeout fails the
test instead of stalling the suite). Each test works on a copy of the session's exports.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import alias_bomb, assert_one_line_error, tiny_config_text

from mt_cli.cli.main import app
from mt_cli.core.errors import CheckpointError
from mt_cli.training.init_from import open_parent

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


def _copy(model: Path, dest: Path) -> Path:
    return Path(shutil.copytree(model, dest, symlinks=True))


def _run(*args: str, stdin: str = "a\n", timeout: float = 90) -> subprocess.CompletedProcess:
    """mt-cli as a real process; still running after `timeout` s fails the test (the hang)."""
    try:
        return subprocess.run([sys.executable, "-m", "mt_cli", *args], input=stdin, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mt-cli {' '.join(args)}: still running after {timeout} s")


def _rewrite_config(model: Path, text: str) -> None:
    """config.yaml replaced and its hash updated in the manifest, so that only the content is at fault."""
    (model / "config.yaml").write_text(text)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files_sha256"]["config.yaml"] = hashlib.sha256(text.encode()).hexdigest()
    (model / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(params=["native", "ctranslate2 export"])
def model(request: pytest.FixtureRequest, trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of a native model directory, or of a CTranslate2 export."""
    source = trained_run / "export" if request.param == "native" else request.getfixturevalue("ct2_model")
    return _copy(source, tmp_path / "m")


def _engine(model: Path) -> list[str]:
    """--engine native where the directory has native weights (the path that read config.yaml first)."""
    return ["--engine", "native"] if (model / "model.weights.h5").exists() else []


# ---------------------------------------------------------------- point 1: checked before opened

@needs_fifo
def test_serve_fails_at_once_on_a_fifo_config(model: Path) -> None:
    """`serve -m M --engine native` (or on a CTranslate2 export) read config.yaml for /info
    before any check: a FIFO there hung it forever."""
    (model / "config.yaml").unlink()
    os.mkfifo(model / "config.yaml")
    result = _run("serve", "-m", str(model), "--port", "0", *_engine(model), timeout=60)
    assert_one_line_error(result, f"{model / 'config.yaml'}: not a regular file")


@pytest.mark.parametrize("command", ["translate", "serve", "evaluate", "export", "attention"])
def test_a_config_linked_from_outside_is_refused_and_named_as_the_link(model: Path, tmp_path: Path,
                                                                      command: str) -> None:
    """A symlink out of the directory is never followed, even to an identical copy (its hash
    matches): the error names M/config.yaml, not the link's target."""
    if command in ("export", "attention") and not (model / "model.weights.h5").exists():
        pytest.skip(f"{command} reads native model directories")
    outside = tmp_path / "elsewhere" / "settings.yaml"
    outside.parent.mkdir()
    shutil.move(model / "config.yaml", outside)
    os.symlink(outside, model / "config.yaml")
    args = {"translate": ["translate", "-m", str(model)],
            "serve": ["serve", "-m", str(model), "--port", "0", *_engine(model)],
            "evaluate": ["evaluate", "-m", str(model), "-s", "-", "-r", str(outside)],
            "export": ["export", "-m", str(model), "-o", str(tmp_path / "out")],
            "attention": ["attention", "-m", str(model), "--text", "the cat ."]}[command]
    line = assert_one_line_error(_run(*args), f"{model / 'config.yaml'}: a symlink to a file outside the model "
                                              "directory")
    assert str(outside) not in line and not (tmp_path / "out").exists()


def test_serve_does_not_parse_a_foreign_file_behind_config(model: Path) -> None:
    """serve parsed a linked /etc/passwd before its hash was checked, and named /etc/passwd."""
    target = Path("/etc/passwd") if Path("/etc/passwd").is_file() else Path(sys.executable)
    (model / "config.yaml").unlink()
    os.symlink(target, model / "config.yaml")
    line = assert_one_line_error(_run("serve", "-m", str(model), "--port", "0", *_engine(model)),
                                 str(model / "config.yaml"), "outside the model directory")
    assert str(target) not in line


def test_a_link_inside_the_directory_is_followed(runner, trained_run: Path, tmp_path: Path) -> None:
    """Only links leaving the directory are refused: config.yaml -> a file beside it still loads,
    and a base (a file outside) in a model directory's config is refused."""
    model = _copy(trained_run / "export", tmp_path / "m")
    (model / "config.yaml").rename(model / "real.yaml")
    os.symlink("real.yaml", model / "config.yaml")
    result = runner.invoke(app, ["translate", "-m", str(model)], input="the cat .\n")
    assert result.exit_code == 0, result.stderr
    (model / "config.yaml").unlink()
    (tmp_path / "base.yaml").write_text((model / "real.yaml").read_text())
    _rewrite_config(model, f"base: {tmp_path / 'base.yaml'}\n")
    result = runner.invoke(app, ["translate", "-m", str(model)], input="the cat .\n")
    assert_one_line_error(result, f"{model / 'config.yaml'}: base: a model directory's config is complete")


def _link_out(model: Path, name: str, outside: Path, text: bytes | None = None) -> None:
    """M/name replaced by a symlink to `outside` (a copy of it, or `text` with its hash put in
    the manifest, so that only the link is at fault)."""
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_bytes((model / name).read_bytes() if text is None else text)
    (model / name).unlink()
    os.symlink(outside, model / name)
    if text is not None:
        manifest = json.loads((model / "manifest.json").read_text())
        manifest["files_sha256"][name] = hashlib.sha256(text).hexdigest()
        (model / "manifest.json").write_text(json.dumps(manifest))


def test_average_does_not_read_an_export_config_linked_from_outside(runner, trained_run: Path,
                                                                     tmp_path: Path) -> None:
    """average compared the run's model section with RUN/export/config.yaml wherever its link
    led (here: a file saying gelu, its hash in the manifest), and refused the run for it."""
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    text = (run / "export" / "config.yaml").read_text()
    assert "activation: relu" in text
    _link_out(run / "export", "config.yaml", tmp_path / "elsewhere" / "c.yaml",
              text.replace("activation: relu", "activation: gelu").encode())
    result = runner.invoke(app, ["average", str(run), "--last", "1", "-o", str(tmp_path / "avg")])
    assert result.exit_code == 0, result.stderr
    assert f"{run / 'export' / 'config.yaml'}: a symlink to a file outside" in result.stderr
    assert "elsewhere" not in result.stderr and "gelu" not in result.stderr


def test_init_from_refuses_a_config_linked_from_outside(runner, trained_run: Path, toy_dir: Path,
                                                        tmp_path: Path) -> None:
    """train --init-from M read M/config.yaml through a link out of M (its hash in the manifest)."""
    model = _copy(trained_run / "export", tmp_path / "m")
    text = (model / "config.yaml").read_text().replace("activation: relu", "activation: gelu")
    _link_out(model, "config.yaml", tmp_path / "elsewhere" / "c.yaml", text.encode())
    config = tmp_path / "ft.yaml"
    config.write_text(tiny_config_text(toy_dir, train={"max_steps": 2}))
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run"),
                                 "--init-from", str(model)])
    line = assert_one_line_error(result, f"--init-from {model}", f"{model / 'config.yaml'}: a symlink to a file "
                                                                 "outside the model directory")
    assert "elsewhere" not in line and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("name", ["model.weights.h5", "spm.model"])
def test_init_from_checks_the_files_it_opens_later(trained_run: Path, tmp_path: Path, name: str) -> None:
    """The parent's weights (loaded when the model is built) and SentencePiece model (copied
    into the run) were opened through a link out of the directory once open_parent had passed."""
    model = _copy(trained_run / "export", tmp_path / "m")
    parent, _ = open_parent(model)
    _link_out(model, name, tmp_path / "elsewhere" / name)  # the same bytes: only the link is at fault
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(CheckpointError) as caught:
        parent.load_weights(None) if name == "model.weights.h5" else parent.install(run)
    assert f"{model.resolve() / name}: a symlink to a file outside the model directory" in str(caught.value)
    assert "elsewhere" not in str(caught.value) and not (run / name).exists()


# ---------------------------------------------------------------- point 2: its YAML is bounded

def test_an_alias_bomb_in_a_model_directory_config_is_refused_at_once(model: Path) -> None:
    """The bomb (its hash in the manifest) cost translate 35 s and 3 GB."""
    _rewrite_config(model, f"data:\n  source_lang: {alias_bomb(9)}\n")
    result = _run("translate", "-m", str(model), *_engine(model), timeout=45)
    line = assert_one_line_error(result, str(model / "config.yaml"), "aliases expand to more than 100000 values")
    assert len(line) < 400


# ---------------------------------------------------------------- point 12: what the directory is

@pytest.mark.parametrize("checkpoints", [True, False])
def test_a_run_directory_without_an_export_is_called_one(runner, trained_run: Path, tmp_path: Path,
                                                         checkpoints: bool) -> None:
    """Training killed before its export left a run directory, which -m called "not an mt-cli
    model directory"."""
    run = tmp_path / "run"
    skipped = ("export",) if checkpoints else ("export", "checkpoints")
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns(*skipped))
    result = runner.invoke(app, ["translate", "-m", str(run)], input="a\n")
    line = assert_one_line_error(result, f"{run}: a run directory without an export yet", "mt-cli train")
    assert ("mt-cli average" in line) == checkpoints
    assert "not an mt-cli model directory" not in line


def test_a_directory_holding_a_config_is_no_run_directory(runner, trained_run: Path, tmp_path: Path) -> None:
    """Only what training writes (checkpoints/, its lock, metrics.jsonl) makes a run directory:
    a directory that merely holds a config.yaml is no model directory at all."""
    shutil.copy(trained_run / "config.yaml", tmp_path / "config.yaml")
    result = runner.invoke(app, ["translate", "-m", str(tmp_path)], input="a\n")
    assert_one_line_error(result, f"{tmp_path / 'manifest.json'}: missing", "not an mt-cli model directory")


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_manifest_that_is_not_a_regular_file_is_called_so(runner, trained_run: Path, tmp_path: Path,
                                                            kind: str) -> None:
    """A FIFO or directory manifest.json was reported "missing"."""
    if kind == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    model = _copy(trained_run / "export", tmp_path / "m")
    (model / "manifest.json").unlink()
    os.mkfifo(model / "manifest.json") if kind == "fifo" else (model / "manifest.json").mkdir()
    for command in (["translate", "-m", str(model)], ["serve", "-m", str(model), "--port", "0"]):
        result = runner.invoke(app, command, input="a\n")
        assert_one_line_error(result, f"{model / 'manifest.json'}: not a regular file")
