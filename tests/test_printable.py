"""User text shown on a terminal is escaped, by one helper (mt_cli/core/printable.py).

`evaluate --worst` printed hypotheses and references as they were: a line holding
`ESC [2J` cleared the screen. The server escaped client text in its logs; the CLI did not.
Now evaluate's worst lines, the evaluate table's system names, and every message on stderr
(info, warnings, errors, log records) go through `printable`, the function the server uses.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from mt_cli.cli.main import app

HOSTILE = "x\x1b[2J y\rz\u2028w"
ESCAPED = "x\\x1b[2J y\\rz\\u2028w"


def test_printable_escapes_control_characters_only() -> None:
    from mt_cli.core.printable import printable

    assert printable(HOSTILE) == ESCAPED
    assert printable("Grüße, 世界 ok\ttab\nnl") == "Grüße, 世界 ok\\ttab\\nnl"
    text = "plain text, nothing to escape"
    assert printable(text) is text


def test_the_server_uses_the_same_helper() -> None:
    from mt_cli.app.serve.guard import printable as served
    from mt_cli.core.printable import printable

    assert served is printable


def _files(tmp_path: Path) -> tuple[Path, Path]:
    hyp = tmp_path / "hyp.txt"
    ref = tmp_path / "ref.txt"
    hyp.write_text(f"the cat sat on the mat .\n{HOSTILE}\n", encoding="utf-8")
    ref.write_text(f"the cat sat on the mat .\nthe dog {HOSTILE}\n", encoding="utf-8")
    return hyp, ref


def test_evaluate_worst_lines_are_escaped(tmp_path: Path) -> None:
    hyp, ref = _files(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "-r", str(ref), str(hyp), "--worst", "1", "--metrics", "bleu"])
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\r" not in result.stdout and "\u2028" not in result.stdout
    assert f"    hyp: {ESCAPED}\n" in result.stdout
    assert f"    ref: the dog {ESCAPED}\n" in result.stdout


def test_evaluate_json_keeps_the_text(tmp_path: Path) -> None:
    """Machine-readable output is not the terminal's: --json and --sentence-level keep the text."""
    hyp, ref = _files(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "-r", str(ref), str(hyp), "--worst", "1", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["systems"][0]["worst"][0]["hyp"] == HOSTILE


def test_evaluate_system_names_are_escaped(tmp_path: Path) -> None:
    hyp, ref = _files(tmp_path)
    named = tmp_path / "sys\x1b[31m.txt"
    named.write_bytes(hyp.read_bytes())
    result = CliRunner().invoke(app, ["evaluate", "-r", str(ref), str(named), "--worst", "1"])
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "sys\\x1b[31m.txt" in result.stdout


def test_errors_quoting_a_file_name_are_escaped(tmp_path: Path) -> None:
    missing = tmp_path / "ref\x1b[2J.txt"
    result = CliRunner().invoke(app, ["evaluate", "-r", str(missing), str(missing)])
    line = assert_one_line_error(result, "ref\\x1b[2J.txt")
    assert "\x1b" not in line


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING, logging.ERROR])
def test_every_message_on_stderr_is_escaped(capsys: pytest.CaptureFixture[str], level: int) -> None:
    from mt_cli.cli import console

    console.setup()
    logging.getLogger("mt_cli").log(level, f"line 3: {HOSTILE}")
    console.info(HOSTILE)
    console.warning(HOSTILE)
    console.error(HOSTILE)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err and "\u2028" not in err, err
    assert err.count(ESCAPED) == 4, err
