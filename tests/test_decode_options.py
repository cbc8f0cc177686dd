"""Decode options are defined once (DecodeConfig): the CLI flags, `--set`, the search's
graph key and tensor inputs, and the model directory's decode section all follow it."""

from __future__ import annotations

import dataclasses
import re

import yaml
from typer.testing import CliRunner

from mt_cli.cli.decode_options import to_overrides
from mt_cli.cli.main import app
from mt_cli.core.config import DecodeConfig, decode_fields, load_config


def _flag(field: dataclasses.Field) -> str:
    return (field.metadata["flags"] or ("--" + field.name.replace("_", "-"),))[0]


def test_every_field_has_a_role_a_doc_and_a_translate_flag() -> None:
    result = CliRunner().invoke(app, ["translate", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for field in decode_fields():
        assert field.metadata["role"] in ("graph", "switch", "tensor", "host"), field.name
        assert field.metadata["doc"], field.name
        assert re.search(rf"{re.escape(_flag(field))}\b", result.output), _flag(field)


def test_flags_become_set_overrides() -> None:
    overrides = to_overrides({"beam_size": 2, "sampling_temperature": 0.7, "seed": None})
    assert overrides == ["decode.beam_size=2", "decode.sampling_temperature=0.7"]
    cfg = load_config(None, overrides)
    assert (cfg.decode.beam_size, cfg.decode.sampling_temperature, cfg.decode.seed) == (2, 0.7, None)


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
