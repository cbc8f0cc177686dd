"""Decode options are defined once (DecodeConfig): the CLI flags, `--set`, the search's
graph key and tensor inputs, and the model directory's decode section all follow it."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mt_cli.cli.decode_options import given_flags
from mt_cli.cli.main import app
from mt_cli.core.config import DecodeConfig, decode_fields
from mt_cli.core.config_checks import DecodeNames, decode_with
from mt_cli.core.config_loading import load_config
from mt_cli.core.errors import ConfigError


def _flag(field: dataclasses.Field) -> str:
    return (field.metadata["flags"] or ("--" + field.name.replace("_", "-"),))[0]


def test_every_field_has_a_role_a_doc_and_a_translate_flag() -> None:
    result = CliRunner().invoke(app, ["translate", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for field in decode_fields():
        assert field.metadata["role"] in ("graph", "switch", "tensor", "host"), field.name
        assert field.metadata["doc"], field.name
        assert re.search(rf"{re.escape(_flag(field))}\b", result.output), _flag(field)


def test_flags_stay_typed_values() -> None:
    flags = given_flags({"beam_size": 2, "sampling_temperature": 0.7, "seed": None})
    assert flags == {"beam_size": 2, "sampling_temperature": 0.7}
    cfg = load_config(None, [], flags)
    assert (cfg.decode.beam_size, cfg.decode.sampling_temperature, cfg.decode.seed) == (2, 0.7, None)


@pytest.mark.parametrize(("flags", "message"), [
    ({"beam_size": 0}, "--beam-size: must be >= 1, got 0"),
    ({"length_penalty": -0.5}, "--length-penalty: must be >= 0, got -0.5"),
    ({"sampling_temperature": math.inf}, "--temperature: must be a finite number, got inf"),
    ({"sampling_temperature": 0.0}, "--temperature: must be > 0, got 0.0"),
    ({"sampling_topp": 1.5}, "--sampling-topp: must be <= 1, got 1.5"),
    ({"dtype": "float16"}, "--dtype: must be one of auto, float32, bfloat16, got 'float16'; did you mean 'bfloat16'?"),
    ({"n_best": 5, "beam_size": 2}, "--n-best: must be <= --beam-size=2, got 5"),
    ({"n_best": 5}, "--n-best: must be <= decode.beam_size=4, got 5 (<defaults>)"),
])
def test_a_bad_flag_value_names_the_flag(flags: dict, message: str) -> None:
    """Typed flag values are checked by the field's own rule, under the flag the user typed."""
    with pytest.raises(ConfigError) as info:
        load_config(None, [], flags)
    assert str(info.value) == message
    assert info.value.key == message.split(":")[0]


def test_set_still_names_the_dotted_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["decode.beam_size=0"])
    assert str(info.value) == "decode.beam_size: must be >= 1, got 0 (<defaults> + --set)"


def test_a_flag_wins_over_set_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("decode: {beam_size: 3, length_penalty: 0.2}\n")
    cfg = load_config(path, ["decode.beam_size=5", "decode.length_penalty=0.4"], {"beam_size": 2})
    assert (cfg.decode.beam_size, cfg.decode.length_penalty) == (2, 0.4)
    # a flag fixes what the file got wrong: the rules see the final values only
    path.write_text("decode: {beam_size: 2, n_best: 2}\n")
    assert load_config(path, [], {"beam_size": 4, "n_best": 4}).decode.n_best == 4


def test_per_call_options_take_the_same_rules() -> None:
    base = DecodeConfig(beam_size=2)
    names = DecodeNames({"n_best": "n_best"}, "the model's")
    with pytest.raises(ConfigError) as info:
        decode_with(base, {"n_best": 3}, names)
    assert (str(info.value), info.value.key) == ("n_best: must be <= decode.beam_size=2, got 3 (the model's)",
                                                 "n_best")
    assert decode_with(base, {"n_best": 2}, names) == dataclasses.replace(base, n_best=2)
    assert base.n_best == 1  # frozen: the base is never changed


def test_graph_key_follows_roles() -> None:
    import tensorflow  # noqa: F401  (the search module needs it)

    from mt_cli.model.search import TENSOR_OPTIONS, graph_key

    base = DecodeConfig()
    assert set(TENSOR_OPTIONS) == {f.name for f in decode_fields("tensor", "switch")}
    for field in decode_fields():
        role = field.metadata["role"]
        other = {"graph": 1, "switch": 2.5, "tensor": 2, "host": 8}[role]
        kind = int if field.default is None else type(field.default)
        changed = dataclasses.replace(base, **{field.name: other if kind is str else kind(other)})
        if role in ("graph", "switch"):
            assert graph_key(changed) != graph_key(base), field.name
        else:
            assert graph_key(changed) == graph_key(base), field.name
    # a switch retraces when it turns on, not for each value
    on = dataclasses.replace(base, coverage_penalty=0.2)
    assert graph_key(on) == graph_key(dataclasses.replace(base, coverage_penalty=0.4))


def test_model_directory_carries_every_decode_option(trained_run) -> None:
    saved = yaml.safe_load((trained_run / "export" / "config.yaml").read_text())
    assert list(saved["decode"]) == [f.name for f in decode_fields()]
