"""The command surface: help, version, `config show|validate`, exit codes, one-line errors.

Nothing here trains or imports TensorFlow; one test proves help never imports it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import PRESET_DIR, REPO, assert_one_line_error
from typer.testing import CliRunner

from mt_cli import __version__
from mt_cli.cli.main import app
from mt_cli.core.config_loading import load_config

COMMANDS = ["tokenize", "train", "translate", "evaluate", "config"]
ENV = {"COLUMNS": "80"}

# command path -> text of one example the help must show (compared with whitespace collapsed)
EXAMPLES = {
    ("tokenize", "train"): "mt-cli tokenize train -i train.en -i train.de --vocab-size 8000",
    ("tokenize", "encode"): 'echo "Hello world." | mt-cli tokenize encode -m spm.model',
    ("tokenize", "decode"): "mt-cli tokenize decode -m spm.model --ids ids.txt -o text.txt",
    ("train",): "mt-cli train configs/multi30k-en-de.yaml --set data.train.0.source=...",
    ("translate",): "mt-cli translate -m runs/demo test.en -o test.hyp",
    ("evaluate",): "mt-cli evaluate -r test.de hyp.de",
    ("config", "show"): "mt-cli config show configs/multi30k-en-de.yaml --set train.max_steps=500",
    ("config", "validate"): "mt-cli config validate transformer-small",
    ("config", "presets"): "mt-cli config presets",
    ("data", "clean"): "mt-cli data clean crawl.en crawl.de --source-lang en --target-lang de -o clean/",
    ("data", "check"): "mt-cli data check train.en train.de",
}


def console_script() -> Path | None:
    found = shutil.which("mt-cli")
    candidate = Path(found) if found else Path(sys.executable).parent / "mt-cli"
    return candidate if candidate.exists() else None


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture()
def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  hiden_dim: 64\n")
    return path


# ---------------------------------------------------------------- help and version


def test_root_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"], env=ENV)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: mt-cli ")
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, re.MULTILINE), command
    for option in ("--version", "--quiet", "--verbose", "--debug"):
        assert option in result.stdout


def test_short_help_flag(runner: CliRunner) -> None:
    assert runner.invoke(app, ["-h"]).stdout == runner.invoke(app, ["--help"]).stdout


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert "Usage: mt-cli" in result.output
    assert "Commands:" in result.output


@pytest.mark.parametrize("path", list(EXAMPLES), ids=" ".join)
def test_subcommand_help_shows_an_example(runner: CliRunner, path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env=ENV)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: mt-cli {' '.join(path)} ")
    assert "Example" in result.stdout
    assert EXAMPLES[path] in squash(result.stdout)


@pytest.mark.parametrize("group, subcommands", [
    ("tokenize", ["train", "encode", "decode"]),
    ("config", ["show", "validate", "presets"]),
    ("data", ["clean", "check"]),
])
def test_group_help_lists_subcommands(runner: CliRunner, group: str, subcommands: list[str]) -> None:
    result = runner.invoke(app, [group, "--help"], env=ENV)
    assert result.exit_code == 0, result.output
    for name in subcommands:
        assert re.search(rf"^\s+{name}\s+\S", result.stdout, re.MULTILINE), name


_NO_BLOCK = ("missing the '\\b' marker before 'Examples:' in the docstring: click rewraps the "
             "example block into one paragraph, so several example commands run together on "
             "one line (evaluate_cmd.py has the marker and renders correctly)")


@pytest.mark.parametrize("path, starts", [
    pytest.param(("evaluate",), ["mt-cli evaluate -r test.de hyp.de",
                                 "cat hyp.de | mt-cli evaluate -r test.de --metrics bleu --json",
                                 "mt-cli evaluate -r test.de base.de new.de --significance bootstrap"],
                 id="evaluate"),
    pytest.param(("train",), ["mt-cli train configs/multi30k-en-de.yaml",
                              "mt-cli train my.yaml --run-dir runs/exp1"],
                 id="train"),
    pytest.param(("translate",), ["mt-cli translate -m runs/demo test.en -o test.hyp",
                                  'echo "A dog runs." | mt-cli translate',
                                  "mt-cli translate -m runs/demo test.en --n-best 4"],
                 id="translate"),
    pytest.param(("tokenize", "train"), ["mt-cli tokenize train -i train.en",
                                         "mt-cli tokenize train configs/multi30k-en-de.yaml"],
                 id="tokenize-train"),
])
def test_each_example_on_its_own_line(runner: CliRunner, path: tuple[str, ...], starts: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], env=ENV)
    assert result.exit_code == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    for start in starts:
        assert any(line.startswith(start) for line in lines), (start, result.stdout)


def test_version(runner: CliRunner) -> None:
    assert __version__ == "0.1.0"
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"mt-cli {__version__}\n"


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(check=False, args=[sys.executable, "-m", "mt_cli", "--help"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: mt-cli ")
    assert "tokenize" in result.stdout and "translate" in result.stdout
    version = subprocess.run(check=False, args=[sys.executable, "-m", "mt_cli", "--version"], capture_output=True,
                             text=True, cwd=tmp_path, timeout=60)
    assert (version.returncode, version.stdout) == (0, f"mt-cli {__version__}\n")


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "from mt_cli.cli.main import app\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "CliRunner().invoke(app, ['train', '--help'])\n"
        "CliRunner().invoke(app, ['translate', '--help'])\n"
        "CliRunner().invoke(app, ['evaluate', '--help'])\n"
        "CliRunner().invoke(app, ['tokenize', 'train', '--help'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'sentencepiece', 'sacrebleu'))\n"
        "assert 'tensorflow' not in sys.modules, heavy\n"
        "print('heavy:', heavy)\n"
    )
    result = subprocess.run(check=False, args=[sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "heavy: []\n"


# ---------------------------------------------------------------- config show / validate


def test_config_show_prints_resolved_yaml_with_overrides(runner: CliRunner) -> None:
    preset = REPO / "configs" / "multi30k-en-de.yaml"
    overrides = ["train.max_steps=500", "model.dropout=0.2"]
    args = ["config", "show", str(preset)]
    for item in overrides:
        args += ["--set", item]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    shown = yaml.safe_load(result.stdout)
    assert shown["train"]["max_steps"] == 500
    assert shown["model"]["dropout"] == 0.2
    assert shown["model"]["hidden_dim"] == 256  # from the base preset
    assert shown["data"]["train"][0]["source"] == str(REPO / "data" / "multi30k" / "train.en")
    assert shown == load_config(preset, overrides).to_dict()


def test_config_show_short_set_flag(runner: CliRunner) -> None:
    result = runner.invoke(app, ["config", "show", str(PRESET_DIR / "transformer-tiny.yaml"),
                                 "-s", "decode.beam_size=3"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["decode"]["beam_size"] == 3


def test_config_validate_ok(runner: CliRunner) -> None:
    path = PRESET_DIR / "transformer-small.yaml"
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"{path}: ok\n"
    quiet = runner.invoke(app, ["-q", "config", "validate", str(path)])
    assert (quiet.exit_code, quiet.output) == (0, "")


@pytest.mark.parametrize("case", ["unknown-key", "syntax", "python-tag", "missing", "bad-set",
                                  "cross-field"])
def test_config_validate_bad_is_one_line(runner: CliRunner, tmp_path: Path, case: str) -> None:
    path = tmp_path / "c.yaml"
    overrides: list[str] = []
    if case == "unknown-key":
        path.write_text("model:\n  hiden_dim: 64\n")
        parts = ["did you mean 'hidden_dim'?", str(path)]
    elif case == "syntax":
        path.write_text("model:\n  hidden_dim: 32\n   bad: 4\n")
        parts = [f"{path}:3:"]
    elif case == "python-tag":
        path.write_text("model: !!python/object/apply:os.system ['true']\n")
        parts = [f"{path}:1:", "no !!python tags"]
    elif case == "missing":
        path = tmp_path / "absent.yaml"
        parts = [f"{path}: config file not found"]
    elif case == "bad-set":
        path.write_text("")
        overrides = ["--set", "train.max_steps"]
        parts = ["--set 'train.max_steps': expected key.path=value"]
    else:
        path.write_text("model:\n  hidden_dim: 256\n  num_heads: 6\n")
        parts = ["model.num_heads: must divide model.hidden_dim=256, got 6"]
    result = runner.invoke(app, ["config", "validate", str(path), *overrides])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert_one_line_error(result.stderr, *parts)


def test_debug_flag_shows_the_traceback(runner: CliRunner, bad_config: Path) -> None:
    result = runner.invoke(app, ["--debug", "config", "validate", str(bad_config)])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "ConfigError"


# ---------------------------------------------------------------- the installed console script


def test_console_script_bad_config_is_one_clean_line(bad_config: Path) -> None:
    script = console_script()
    if script is None:
        pytest.skip("mt-cli console script is not installed")
    result = subprocess.run(check=False, args=[str(script), "config", "validate", str(bad_config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    line = assert_one_line_error(result.stderr)
    assert line == f"error: model.hiden_dim: unknown key; did you mean 'hidden_dim'? ({bad_config})"


def test_console_script_good_config_and_debug(bad_config: Path) -> None:
    script = console_script()
    if script is None:
        pytest.skip("mt-cli console script is not installed")
    good = PRESET_DIR / "transformer-tiny.yaml"
    ok = subprocess.run(check=False, args=[str(script), "config", "validate", str(good)], capture_output=True,
                        text=True, timeout=60)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", f"{good}: ok\n")
    debug = subprocess.run(check=False, args=[str(script), "--debug", "config", "validate", str(bad_config)],
                           capture_output=True, text=True, timeout=60)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "ConfigError" in debug.stderr


# ---------------------------------------------------------------- usage errors exit 2


@pytest.mark.parametrize("args, message", [
    (["nope"], "No such command 'nope'"),
    (["config", "nope"], "No such command 'nope'"),
    (["config", "validate"], "Missing argument"),
    (["config", "validate", "x.yaml", "--bogus"], "No such option: --bogus"),
    (["tokenize", "encode"], "Missing option '--model'"),
])
def test_usage_errors_exit_2(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr
