"""What is declared once and derived everywhere (issue 29, point 4): how CTranslate2 serves each
decode option (the engine choice, the CTranslate2 engine's refusals, the warnings and the
`--engine` help follow it), the rule that a beam size alone asks for one best (in
`decode_with`, for flags and requests alike), and `mt-cli serve`'s flags (ServeSettings'
fields, checked by the config's own rules)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mt_cli.app.serve.settings import ServeSettings
from mt_cli.cli.main import app
from mt_cli.core.config import CTRANSLATE2_SUPPORT, DecodeConfig, ctranslate2_notes, decode_fields, decode_flag
from mt_cli.core.config_checks import DecodeNames, decode_with
from mt_cli.core.config_loading import load_config
from mt_cli.core.errors import ConfigError, MtError
from mt_cli.engines.choice import native_only_use

# A value each option takes that the search uses (with a beam, where the option needs one).
CHANGED = {"beam_size": 5, "n_best": 2, "length_penalty": 1.0, "coverage_penalty": 0.2, "max_length_a": 2.0,
           "max_length_b": 3, "batch_size": 4, "batch_tokens": 100, "sampling_topk": 5, "sampling_topp": 0.5,
           "sampling_temperature": 0.5, "seed": 1, "shortlist": 50, "dtype": "float32", "compute_type": "int8",
           "alignments": True, "alignment_layer": -1, "target_lang": "de", "vocabulary_map": True}


def _changed(name: str) -> DecodeConfig:
    extra = {"sampling_topk": 5} if name == "sampling_temperature" else {}
    decode = dataclasses.replace(DecodeConfig(), **{name: CHANGED[name]}, **extra)
    assert decode.in_effect(name), name
    return decode


def test_every_decode_option_declares_how_ctranslate2_serves_it() -> None:
    assert set(CHANGED) == {f.name for f in decode_fields()}, "a new option: give it a value here"
    for field in decode_fields():
        kind = field.metadata["ctranslate2"]
        assert kind in CTRANSLATE2_SUPPORT, field.name
        if kind in ("native", "native_first"):
            assert field.metadata["feature"], f"{field.name}: say what it is in the sentences about it"
        if kind in ("own", "native_first"):
            assert field.metadata["ct2_note"], f"{field.name}: the warning that says how CTranslate2 differs"


@pytest.mark.parametrize("name", list(CHANGED))
def test_the_choice_refusals_and_warnings_follow_the_declaration(name: str) -> None:
    from mt_cli.engines.ctranslate2 import _check_supported

    kind = next(f for f in decode_fields() if f.name == name).metadata["ctranslate2"]
    decode = _changed(name)
    use = native_only_use(decode)
    assert (use is not None) == (kind in ("native", "native_first")), (name, use)
    if use is not None:
        assert use.startswith(decode_flag(name))
    refused = None
    try:
        _check_supported(decode)
    except ConfigError as exc:
        refused = str(exc)
    assert (refused is not None) == (kind == "native"), (name, refused)
    if refused is not None:
        assert refused.startswith(decode_flag(name)) and "needs the native engine" in refused
    assert bool(ctranslate2_notes({name})) == (kind in ("own", "native_first")), name


def test_the_engine_help_lists_what_only_the_native_engine_has() -> None:
    result = CliRunner().invoke(app, ["translate", "--help"], terminal_width=1000)
    assert result.exit_code == 0, result.output
    help_text = " ".join(result.output.split())
    for field in decode_fields():
        if field.metadata["ctranslate2"] in ("native", "native_first"):
            assert field.metadata["feature"] in help_text, field.name


def test_a_beam_size_alone_asks_for_one_best_in_decode_with() -> None:
    """Requests and flags alike: the model's n_best never clashes with a narrower beam asked for."""
    saved = DecodeConfig(beam_size=4, n_best=3)
    assert decode_with(saved, {"beam_size": 2}, DecodeNames({})).n_best == 1
    assert decode_with(saved, {"beam_size": 4, "n_best": 2}, DecodeNames({})).n_best == 2
    assert decode_with(saved, {"beam_size": 4}, DecodeNames({}), named={"n_best"}).n_best == 3


def test_a_beam_size_flag_alone_asks_for_one_best_unless_set_names_n_best(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("decode:\n  beam_size: 4\n  n_best: 3\n")
    assert load_config(config, [], {"beam_size": 2}).decode.n_best == 1
    assert load_config(config, ["decode.n_best=2"], {"beam_size": 2}).decode.n_best == 2
    named = load_config(config, ["decode.max_length_a=2"], {"beam_size": 2})
    assert named.decode_named == {"max_length_a", "beam_size"}


def _serve_options() -> dict[str, object]:
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return {param.name: param for param in command.params}


def test_serve_flags_are_the_settings_fields() -> None:
    options = _serve_options()
    for field in dataclasses.fields(ServeSettings):
        option = options[field.name]
        assert option.opts == ["--" + field.name.replace("_", "-")], field.name
        assert option.help == field.metadata["doc"] and field.metadata["doc"], field.name
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        assert option.default == (",".join(default) if isinstance(default, tuple) else default), field.name


@pytest.mark.parametrize(("values", "message"), [
    ({"max_lines": 0}, "--max-lines: must be >= 1, got 0"),
    ({"max_wait_ms": float("nan")}, "--max-wait-ms: must be a number in 0..60000, got nan"),
    ({"max_wait_ms": 1e300}, "--max-wait-ms: must be a number in 0..60000, got 1e+300"),
    ({"header_timeout": 0.0}, "--header-timeout: must be a number of seconds in (0, 3600], got 0.0"),
    ({"max_beam_size": 2000}, "--max-beam-size: must be <= 1024, got 2000"),
    ({"port": 70000}, "--port: must be in 0..65535, got 70000"),
    ({"max_queue": 3}, "--max-queue: must be >= --max-lines (256), got 3"),
])
def test_serve_settings_are_checked_by_the_config_rules(values: dict, message: str) -> None:
    with pytest.raises(MtError) as info:
        ServeSettings(**values).check()
    assert str(info.value) == message
