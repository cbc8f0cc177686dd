"""Property-based tests (hypothesis): random bytes, line endings, YAML documents and `--set`
strings never give a traceback; N lines in are N lines out; every error is one line.

In process and bounded (max_examples) so the file runs in well under 30 s; run with
`pytest tests/test_properties.py --hypothesis-show-statistics` to see the case counts.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml
from helpers import assert_one_line_error
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.config import Config
from mt_cli.core.config_checks import from_dict
from mt_cli.core.config_loading import apply_overrides, load_config, parse_overrides
from mt_cli.core.errors import ConfigError, DataError
from mt_cli.core.textio import atomic_write_lines, count_lines, iter_lines, read_lines

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOWER = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Bytes rich in what breaks line handling: \n, \r, NUL, U+2028/U+2029, NEL, invalid UTF-8.
_PIECES = [b"\n", b"\r", b"\r\n", b"\x00", "\u2028".encode(), "\u2029".encode(), "\x85".encode(),
           b"\xff", b"\xc3", b"\xe9", "é".encode(), "😀".encode(), b"a", b" ", b"\t", b"\x0b\x0c"]
raw_bytes = st.one_of(st.binary(max_size=300),
                      st.lists(st.sampled_from(_PIECES), max_size=60).map(b"".join))
# One line of text: anything but "\n", not ending in "\r" (CRLF's "\r" is dropped on read).
line_text = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40) \
    .filter(lambda s: not s.endswith("\r"))


def _expected_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


@FAST
@given(data=raw_bytes)
def test_any_bytes_read_as_n_lines_or_one_clear_error(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("raw") / "in.txt"
    path.write_bytes(data)
    n = _expected_lines(data)
    assert count_lines(path) == n
    assert len(list(iter_lines(path, lenient=True))) == n  # lenient never fails, never splits
    try:
        lines = read_lines(path)
    except DataError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{path}:") and "invalid UTF-8" in message
        return
    assert len(lines) == n
    assert not any("\n" in line for line in lines)


@FAST
@given(lines=st.lists(line_text, max_size=30), crlf=st.booleans())
def test_lines_round_trip_whatever_the_line_ending(tmp_path_factory, lines: list[str], crlf: bool) -> None:
    directory = tmp_path_factory.mktemp("rt")
    path = directory / "out.txt"
    atomic_write_lines(path, lines)
    if crlf:
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert read_lines(path) == lines
    assert count_lines(path) == len(lines)
    assert [p.name for p in directory.iterdir()] == ["out.txt"]  # no temp file left


# ---------------------------------------------------------------- config loading

_KEYS = ["data", "model", "train", "decode", "eval", "tokenizer", "base", "hidden_dim", "max_steps",
         "beam_size", "metrics", "train.0", "!!python/object", "", "0", "vocab_size", "source"]
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                     st.text(max_size=20), st.sampled_from(["1e-9", "yes", "no", "~", "nan", "-.inf"]))
yaml_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)), max_leaves=12)
yaml_documents = st.one_of(
    yaml_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.text(string.printable, max_size=200),
    st.sampled_from(["!!python/object/apply:os.system ['true']\n", "a: [1, 2\n", "- a\n- b\n",
                     "model: {hidden_dim: !!float 3}\n", "\ufeffmodel: {}\n", "&a [*a]\n"]),
)


def _load_or_config_error(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc), str(exc)
        return None


@FAST
@given(document=yaml_documents)
def test_any_yaml_document_loads_or_is_one_config_error(tmp_path_factory, document: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(document, encoding="utf-8")
    cfg = _load_or_config_error(path)
    if cfg is not None:
        assert isinstance(cfg, Config)


_SET_KEYS = st.sampled_from(["train.max_steps", "model.hidden_dim", "decode.beam_size", "data.train.0.source",
                             "data.train.5.source", "eval.metrics", "train", "model.x", "", ".", "a..b",
                             "decode.sampling_topp", "train.precision", "tokenizer.model"])
_SET_VALUES = st.one_of(st.text(max_size=15), st.sampled_from(["[1, 2", "{a: 1}", "null", "1e-3", "yes", "-1"]))


@FAST
@given(pairs=st.lists(st.tuples(_SET_KEYS, st.booleans(), _SET_VALUES), max_size=4))
@example(pairs=[("tokenizer.model", True, "\x00")])  # found by CI-like runs: a NUL byte in a path
def test_any_set_override_applies_or_is_one_config_error(pairs: list[tuple[str, bool, str]]) -> None:
    overrides = [f"{key}={value}" if eq else f"{key}{value}" for key, eq, value in pairs]
    try:
        cfg = from_dict(apply_overrides({}, parse_overrides(overrides)), "<test>")
    except ConfigError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    assert isinstance(cfg, Config)


# ---------------------------------------------------------------- through the CLI

@pytest.fixture(scope="module")
def spm_model(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mt_cli.core.tokenizer import train_sentencepiece

    return train_sentencepiece([toy_dir / "train.src", toy_dir / "train.tgt"],
                               tmp_path_factory.mktemp("spm") / "spm", 48)


@SLOWER
@given(document=yaml_documents)
@example(document="base: '\n\n  '\ndata: null\n")  # found by a fresh run: line breaks in a file name
@example(document='data:\n  train:\n  - source: "a\\0b"\n    target: b\n')  # a NUL byte in a YAML path
def test_config_validate_exits_0_or_1_with_one_line(tmp_path_factory, document: str) -> None:
    path = tmp_path_factory.mktemp("cli") / "c.yaml"
    path.write_text(document, encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert result.exit_code in (0, 1), (result.exit_code, result.exception)
    if result.exit_code == 1:
        assert_one_line_error(result.stderr)


@SLOWER
@given(data=raw_bytes)
def test_tokenize_encode_gives_n_lines_or_one_error(spm_model: Path, data: bytes) -> None:
    result = CliRunner().invoke(app, ["tokenize", "encode", "-m", str(spm_model)], input=data)
    assert result.exit_code in (0, 1), (result.exit_code, result.exception)
    if result.exit_code == 1:
        assert_one_line_error(result.stderr, "invalid UTF-8")
        return
    out = result.stdout_bytes
    assert out.count(b"\n") == _expected_lines(data) and (not out or out.endswith(b"\n"))
