"""Ensembles: log-probabilities averaged inside the compiled search, and `translate -m A -m B`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    assert_one_line_error,
    greedy_by_recomputation,
    random_model_dir,
    random_source_batch,
    sharp_random_model,
)

from mt_cli.cli.main import app
from mt_cli.core.config import DecodeConfig
from mt_cli.core.errors import ConfigError
from mt_cli.engines.choice import open_translator
from mt_cli.model import Transformer
from mt_cli.model.ensemble import Ensemble
from mt_cli.model.search import search

VOCAB = 24
PAD, BOS, EOS = 0, 2, 3


@pytest.fixture(scope="module")
def models() -> tuple[Transformer, Transformer]:
    return sharp_random_model(6), sharp_random_model(9)


def _reference_greedy(members: list[Transformer], weights: list[float], source: np.ndarray,
                      max_len: int) -> list[int]:
    """Full recomputation: the weighted mean of each member's log-softmax over the whole prefix."""
    source = source[source != PAD]

    def mixed(out: list[int]) -> np.ndarray:
        feed = {"source": tf.constant([source]), "target_in": tf.constant([[BOS, *out]])}
        return sum(w * tf.nn.log_softmax(m(feed)[0, -1]).numpy() for m, w in zip(members, weights))

    return greedy_by_recomputation(mixed, max_len)


def test_ensemble_greedy_matches_recomputed_average(models: tuple[Transformer, Transformer]) -> None:
    weights = [0.7, 0.3]
    source = random_source_batch(0, 6)
    result = search(Ensemble(models, weights), source, DecodeConfig(beam_size=1, max_length_a=1.0, max_length_b=4))
    expected = [_reference_greedy(list(models), weights, row, math.floor(1.0 * np.sum(row != PAD) + 4))
                for row in source]
    assert result.best() == expected
    singles = [search(m, source, DecodeConfig(beam_size=1, max_length_a=1.0, max_length_b=4)).best()
               for m in models]
    assert expected != singles[0] and expected != singles[1]  # the average is neither member


@pytest.mark.parametrize("options", [
    DecodeConfig(beam_size=1),
    DecodeConfig(beam_size=4, n_best=3),
    DecodeConfig(beam_size=3, coverage_penalty=0.3),
], ids=["greedy", "beam-nbest", "coverage"])
def test_ensemble_with_itself_is_the_model(models: tuple[Transformer, Transformer], options: DecodeConfig) -> None:
    model = models[0]
    source = random_source_batch(1, 5)
    prefix = np.array([[5], [0], [7], [0], [9]], np.int32)
    for target_prefix in (None, prefix):
        alone = search(model, source, options, target_prefix)
        doubled = search(Ensemble([model, model], [0.4, 0.6]), source, options, target_prefix)
        for a, b in zip(alone.hypotheses, doubled.hypotheses):
            assert [h.ids for h in a] == [h.ids for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-4)


def test_ensemble_arguments_are_checked(models: tuple[Transformer, Transformer]) -> None:
    with pytest.raises(ValueError):
        Ensemble([models[0]])
    with pytest.raises(ValueError):
        Ensemble(list(models), [1.0])
    with pytest.raises(ValueError):
        Ensemble(list(models), [1.0, 0.0])


def _translate(runner: object, *args: object) -> object:
    return runner.invoke(app, ["translate", *map(str, args)])


def test_translate_ensemble_of_a_model_with_itself(runner: object, trained_run: Path, toy_dir: Path) -> None:
    source = toy_dir / "test.src"
    single = _translate(runner, "-m", trained_run, source, "--format", "jsonl", "--n-best", "2", "--engine", "native")
    double = _translate(runner, "-m", trained_run, "-m", trained_run, "--ensemble-weights", "1,3",
                        source, "--format", "jsonl", "--n-best", "2")
    assert single.exit_code == 0 and double.exit_code == 0, (single.stderr, double.stderr)
    a = [json.loads(line) for line in single.stdout.splitlines()]
    b = [json.loads(line) for line in double.stdout.splitlines()]
    assert len(a) == len(b) == len(source.read_text().splitlines())
    assert [[h["text"] for h in r["nbest"]] for r in a] == [[h["text"] for h in r["nbest"]] for r in b]
    np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], atol=1e-3)


def test_translate_ensemble_errors(runner: object, trained_run: Path, toy_dir: Path, tmp_path: Path) -> None:
    source = toy_dir / "test.src"
    assert_one_line_error(_translate(runner, "-m", trained_run, "-m", trained_run, "--ensemble-weights",
                                     "0.5", source), "--ensemble-weights", "need 2 positive finite numbers")
    for weights in ("inf,1", "1,nan", "-inf,1", "1e999,1"):  # float() reads them all: not weights
        assert_one_line_error(_translate(runner, "-m", trained_run, "-m", trained_run, "--ensemble-weights",
                                         weights, source), "--ensemble-weights", f"{weights!r}", "finite numbers")
    for weights in ([math.inf, 1.0], [1.0, math.nan]):  # the API checks them too
        with pytest.raises(ConfigError, match="^--ensemble-weights: need 2 positive finite numbers"):
            open_translator([trained_run, trained_run], ensemble_weights=weights)
    assert_one_line_error(_translate(runner, "-m", trained_run, "-m", trained_run, "--ensemble-weights",
                                     "a,b", source), "--ensemble-weights", "'a,b'")
    assert_one_line_error(_translate(runner, "-m", trained_run, "--ensemble-weights", "1", source),
                          "--ensemble-weights", "two or more models")
    other = random_model_dir(tmp_path, toy_dir, "other")  # its own SentencePiece model
    assert_one_line_error(_translate(runner, "-m", trained_run, "-m", other, source),
                          str(other), "SentencePiece model", "same tokenizer")
