"""Decode options at their extremes: non-finite and out-of-range values are one ConfigError
(through the typed flags of `load_config` and the per-call `decode_with`), never another
exception; extreme but valid values (a huge max_length_a, huge penalties) decode on a real
tiny model without exceptions, and never empty every output (the int32 length limit did).

Property tests (hypothesis) are bounded (max_examples) so the file stays quick.
"""

from __future__ import annotations

import math
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mt_cli.cli.main import app
from mt_cli.core.config import INT32_MAX, Config, DecodeConfig, decode_fields
from mt_cli.core.config_checks import DecodeNames, decode_with
from mt_cli.core.config_loading import load_config
from mt_cli.core.errors import ConfigError
from mt_cli.engines.protocol import LineTranslator

FIELDS = {f.name: f for f in decode_fields()}
HINTS = typing.get_type_hints(DecodeConfig)
MODEL_SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Any value a flag, a request field or an API caller could give, rich in the troublesome ones.
any_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -1e308, 5e-324, 0.0, -0.0]),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([INT32_MAX, INT32_MAX + 1, 2**63, -(2**31) - 1, 0, 1, -1]),
    st.booleans(), st.none(), st.text(max_size=8),
)
decode_values = st.dictionaries(st.sampled_from(sorted(FIELDS)), any_value, max_size=5)


def _check_one_error(fn: typing.Callable[[], object]) -> object:
    """The call's result, or None after exactly one ConfigError with a one-line message."""
    try:
        return fn()
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)
        return None


@settings(max_examples=400, deadline=None)
@given(values=decode_values)
@example(values={"max_length_a": math.inf})
@example(values={"length_penalty": math.nan})
@example(values={"max_length_b": 2**40})
@example(values={"seed": 2**31})
@example(values={"beam_size": 10**9})
def test_typed_decode_flags_give_a_config_or_one_config_error(values: dict[str, object]) -> None:
    cfg = _check_one_error(lambda: load_config(None, [], values))
    if cfg is None:
        return
    assert isinstance(cfg, Config)
    _check_valid(cfg.decode)


@settings(max_examples=400, deadline=None)
@given(values=decode_values)
def test_per_call_decode_options_give_options_or_one_config_error(values: dict[str, object]) -> None:
    decode = _check_one_error(lambda: decode_with(DecodeConfig(), values, DecodeNames(
        {name: f"request.{name}" for name in values}, "")))
    if decode is not None:
        _check_valid(decode)


def _check_valid(decode: DecodeConfig) -> None:
    """What a checked config promises the engines: finite floats, ints within int32."""
    for name, field in FIELDS.items():
        value = getattr(decode, name)
        if isinstance(value, float):
            assert math.isfinite(value), name
        elif isinstance(value, int) and not isinstance(value, bool):
            assert -INT32_MAX <= value <= INT32_MAX, name
        if field.metadata.get("le") is not None and value is not None:
            assert value <= field.metadata["le"], name


@pytest.mark.parametrize(("flags", "message"), [
    ({"max_length_a": math.inf}, "--max-length-a: must be a finite number, got inf"),
    ({"length_penalty": math.nan}, "--length-penalty: must be a finite number, got nan"),
    ({"max_length_b": 2**31}, f"--max-length-b: must be <= {INT32_MAX}, got {2**31}"),
    ({"seed": 2**40}, f"--seed: must be <= {INT32_MAX}, got {2**40}"),
    ({"seed": -1}, "--seed: must be >= 0, got -1"),
    ({"beam_size": 5000}, "--beam-size: must be <= 1024, got 5000"),
    ({"sampling_topk": 2**63}, f"--sampling-topk: must be <= {INT32_MAX}, got {2**63}"),
])
def test_out_of_range_values_name_the_flag(flags: dict[str, object], message: str) -> None:
    """Integers reach the search and CTranslate2 as int32 (a seed of 2**40 was an OverflowError
    from TensorFlow; a beam of 10**9 a memory error): bounded like the floats are."""
    with pytest.raises(ConfigError) as info:
        load_config(None, [], flags)
    assert str(info.value) == message


def test_non_finite_flags_on_the_command_line(trained_run: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("the cat .\n")
    for flag, value in (("--max-length-a", "inf"), ("--length-penalty", "nan"), ("--coverage-penalty", "-inf"),
                        ("--temperature", "inf"), ("--max-length-b", str(2**40))):
        result = CliRunner().invoke(app, ["translate", "-m", str(trained_run), str(src), flag, value])
        assert_one_line_error(result, flag)


# ---------------------------------------------------------------- a real tiny model

SOURCES = ["the cat sees a dog .", "a dog runs .", "the big cat .", "", "a cat and a dog see the big cat ."]
SAFE_A = 1000.0  # saturates: a * length + b is beyond the tiny model's 127 output tokens


@pytest.fixture(scope="module")
def translator(trained_run: Path) -> LineTranslator:
    from mt_cli.engines.choice import open_translator

    return open_translator(trained_run)


def _decode(translator, **values: object) -> DecodeConfig:
    return decode_with(translator.decode, values, DecodeNames({}, "test"))


@pytest.mark.parametrize("mode", [{"beam_size": 1}, {"beam_size": 3}, {"beam_size": 2, "sampling_topk": 5, "seed": 1}])
@pytest.mark.parametrize("a", [1e10, 3e38, 1e300, 1.7e308])
def test_a_huge_max_length_a_is_the_model_limit(translator: LineTranslator, mode: dict, a: float) -> None:
    """floor(a * source length + b) was cast to int32 beyond its range (negative), then clamped
    to 0: every output came out empty. It means the model's limit, as any saturating a does."""
    n_best = {"n_best": 1}
    huge = translator.translate_nbest(SOURCES, decode=_decode(translator, **mode, **n_best, max_length_a=a))
    safe = translator.translate_nbest(SOURCES, decode=_decode(translator, **mode, **n_best, max_length_a=SAFE_A))
    assert [n[0].ids for n in huge] == [n[0].ids for n in safe]
    assert any(n[0].ids for n in safe), "the tiny model translates nothing: the comparison says nothing"


def test_constrained_search_takes_a_huge_max_length_a(translator: LineTranslator) -> None:
    """The constrained search computed math.floor(a * length + b) in Python: OverflowError at
    a=1e308 (a * length is inf)."""
    constraints = ["dog", "", "cat", "", "big"]
    for a in (1e308, 1.7e308):
        found = translator.translate_nbest(SOURCES, constraints=constraints,
                                           decode=_decode(translator, beam_size=2, n_best=1, max_length_a=a))
        safe = translator.translate_nbest(SOURCES, constraints=constraints,
                                          decode=_decode(translator, beam_size=2, n_best=1, max_length_a=SAFE_A))
        assert [n[0].ids for n in found] == [n[0].ids for n in safe]
        assert all(n[0].ids for n, line in zip(found, SOURCES) if line)


def test_ctranslate2_takes_a_huge_max_length_a(ct2_model: Path, tmp_path: Path) -> None:
    """The CTranslate2 engine's limit overflowed the same way (OverflowError from math.floor).
    `ct2_model` is the trained run's `export --format ctranslate2` (conftest, shared)."""
    out = ct2_model
    from mt_cli.engines.choice import open_translator

    ct2 = open_translator(out)
    for mode in ({"beam_size": 1}, {"beam_size": 3}):
        huge = ct2.translate_nbest(SOURCES, decode=_decode(ct2, **mode, n_best=1, max_length_a=1.7e308,
                                                           length_penalty=1e300, coverage_penalty=1e300))
        safe = ct2.translate_nbest(SOURCES, decode=_decode(ct2, **mode, n_best=1, max_length_a=SAFE_A,
                                                           length_penalty=1e300, coverage_penalty=1e300))
        assert [n[0].ids for n in huge] == [n[0].ids for n in safe]
        assert len(huge) == len(SOURCES) and huge[3][0].ids == []
    # CTranslate2 itself crashed the process (SIGSEGV) on a coverage penalty without a beam
    src = tmp_path / "in.txt"
    src.write_text("the cat sees a dog .\n")
    for extra in (["--beam-size", "1"], ["--sampling-topk", "5", "--seed", "1"]):
        done = subprocess.run([str(Path(sys.executable).parent / "mt-cli"), "translate", "-m", str(out), str(src),
                               "--coverage-penalty", "0.5", *extra], capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, (done.returncode, done.stderr)
        assert len(done.stdout.splitlines()) == 1 and "only applies to beam search" in done.stderr


extreme = st.fixed_dictionaries({
    "max_length_a": st.one_of(st.floats(min_value=1.0, max_value=1.7e308), st.sampled_from([1e10, 1.7e308])),
    "max_length_b": st.one_of(st.integers(min_value=0, max_value=INT32_MAX), st.just(INT32_MAX)),
    "length_penalty": st.one_of(st.floats(min_value=0.0, max_value=1.7e308), st.sampled_from([1e6, 1.7e308])),
    "coverage_penalty": st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1.7e308)),
    "beam_size": st.integers(min_value=1, max_value=4),
})


@MODEL_SETTINGS
@given(values=extreme)
@example(values={"max_length_a": 1.7e308, "max_length_b": INT32_MAX, "length_penalty": 1.7e308,
                 "coverage_penalty": 1.7e308, "beam_size": 4})
def test_extreme_valid_options_decode_and_never_empty_every_output(translator: LineTranslator, values: dict) -> None:
    """Whatever valid extremes: no exception, one result per line, empty lines stay empty, and
    some output is not empty (a huge a or b saturates at the model's limit; huge penalties favour
    longer outputs)."""
    decode = _decode(translator, **values, n_best=1)
    found = translator.translate_nbest(SOURCES, decode=decode)
    assert len(found) == len(SOURCES) and found[3][0].ids == []
    assert any(n[0].ids for n in found), values
    assert all(len(n[0].ids) <= translator.max_source_tokens - 1 for n in found)
