"""Lexically constrained decoding: the file format, the search's guarantee, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_one_line_error, random_source_batch, sharp_random_model

from mt_cli.cli.main import app
from mt_cli.core.config import DecodeConfig
from mt_cli.core.constraints import distinct_pieces, parse_constraint_line
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.model import Transformer
from mt_cli.model.ensemble import Ensemble
from mt_cli.model.search import ConstraintState, constrained_search

VOCAB = 24
PAD, BOS, EOS = 0, 2, 3


def test_parse_constraint_line() -> None:
    assert parse_constraint_line("") == []
    assert parse_constraint_line("Hund\tgrüne  Wiese \t\tHund\t") == ["Hund", "grüne Wiese"]
    assert distinct_pieces([[5, 6], [], [5, 6], [7]]) == [[5, 6], [7]]


def test_constraint_state_follows_phrases() -> None:
    state = ConstraintState(((5, 6, 7), (9,)))
    assert state.advancing_tokens() == {5, 9} and state.needed() == 4
    state = state.advance(5).advance(6)
    assert state.progress == (0, 2) and state.advancing_tokens() == {7} and state.met_tokens() == 2
    broken = state.advance(8)  # leaving a phrase half-way forgets its progress
    assert broken.progress is None and broken.needed() == 4
    restarted = state.advance(5)  # a token that restarts the phrase starts it again
    assert restarted.progress == (0, 1)
    done = state.advance(7).advance(9)
    assert done.needed() == 0 and done.met == {0, 1} and done.advancing_tokens() == set()


@pytest.fixture(scope="module")
def model() -> Transformer:
    return sharp_random_model(6)


def _contains(ids: list[int], phrase: list[int]) -> bool:
    return any(ids[i:i + len(phrase)] == phrase for i in range(len(ids) - len(phrase) + 1))


def _teacher_forced_logprobs(model: Transformer, source: np.ndarray, hyp: Hypothesis) -> np.ndarray:
    """Per-token log-probabilities of `hyp` (eos included) from one full forward pass."""
    target = [BOS, *hyp.ids]
    logits = model({"source": tf.constant([source[source != PAD]]), "target_in": tf.constant([target])})[0].numpy()
    logits[:, [PAD, BOS]] = -np.inf
    logp = tf.nn.log_softmax(logits).numpy()
    return logp[np.arange(len(target)), [*hyp.ids, EOS]]


CASES = {
    "one-each": (DecodeConfig(beam_size=4, n_best=2), [[[7]], [[9, 10]], [[5], [6, 6]]]),
    "more-than-beam": (DecodeConfig(beam_size=2), [[[4], [5], [6], [7, 8], [9]], [[11, 12, 13], [14]], [[20]]]),
    "greedy": (DecodeConfig(beam_size=1, max_length_a=0.0, max_length_b=2), [[[15, 16], [17]], [[8]], [[4, 4, 4]]]),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_every_constraint_met_with_true_scores(model: Transformer, case: str) -> None:
    options, constraints = CASES[case]
    source = random_source_batch(1, len(constraints))
    found = constrained_search(model, source, constraints, options)
    assert [len(nbest) for nbest in found] == [options.n_best] * len(constraints)
    for row, (nbest, phrases) in enumerate(zip(found, constraints)):
        for hyp in nbest:
            assert all(_contains(hyp.ids, p) for p in phrases), (hyp.ids, phrases)
            assert all(t not in (PAD, BOS, EOS) for t in hyp.ids)
            # The cache followed each hypothesis: its scores are the model's own.
            np.testing.assert_allclose(hyp.token_logprobs, _teacher_forced_logprobs(model, source[row], hyp),
                                       rtol=1e-3, atol=1e-3)  # float32 incremental vs full pass
            penalty = ((5.0 + len(hyp.ids) + 1) / 6.0) ** options.length_penalty
            assert hyp.score == pytest.approx(sum(hyp.token_logprobs) / penalty, abs=1e-4)
        assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)


def test_constraints_through_an_ensemble(model: Transformer) -> None:
    found = constrained_search(Ensemble([model, model]), random_source_batch(2, 2), [[[9, 9]], [[13], [5]]],
                               DecodeConfig(beam_size=3))
    assert _contains(found[0][0].ids, [9, 9])
    assert _contains(found[1][0].ids, [13]) and _contains(found[1][0].ids, [5])


# -- CLI on the tiny trained model (toy target words are reversed English + "o") ---------------
def _translate(runner: object, *args: object) -> object:
    return runner.invoke(app, ["translate", *map(str, args)])


def test_translate_with_constraints_file(runner: object, trained_run: Path, toy_dir: Path, tmp_path: Path) -> None:
    sources = toy_dir / "test.src"
    n = len(sources.read_text().splitlines())
    rows = ["godo", "", "eerto\tllabo", "tac\ttac", "esuoho\tnamo\teerto\tdero\tgibo\tllamso",
            "neergo dlo"]
    constraints = tmp_path / "terms.tsv"
    lines = [rows[i % len(rows)] for i in range(n)]
    constraints.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    for extra in ([], ["--stream", "--beam-size", "2"]):
        result = _translate(runner, "-m", trained_run, sources, "--constraints-file", constraints, *extra)
        assert result.exit_code == 0, result.stderr
        outputs = result.stdout.split("\n")[:-1]
        assert len(outputs) == n
        for out, line in zip(outputs, lines):
            for phrase in parse_constraint_line(line):
                assert phrase in out, (phrase, out)
    plain = _translate(runner, "-m", trained_run, sources, "--format", "jsonl")
    constrained = _translate(runner, "-m", trained_run, sources, "--format", "jsonl", "--constraints-file", constraints)
    for a, b, line in zip(plain.stdout.splitlines(), constrained.stdout.splitlines(), lines):
        if not line:  # lines without constraints keep the ordinary search
            assert json.loads(a)["text"] == json.loads(b)["text"]


def test_constraint_errors(runner: object, trained_run: Path, toy_dir: Path, tmp_path: Path) -> None:
    sources = toy_dir / "test.src"
    n = len(sources.read_text().splitlines())
    short = tmp_path / "short.tsv"
    short.write_text("godo\n")
    assert_one_line_error(_translate(runner, "-m", trained_run, sources, "--constraints-file", short),
                          str(short), str(n))
    too_long = tmp_path / "long.tsv"
    words = ["godo", "tac", "eerto", "llabo", "namo", "dero", "gibo", "neergo"]
    phrases = [f"{a} {b}" for a in words for b in words]  # 64 distinct, > 128 pieces together
    too_long.write_text("\n" + "\t".join(phrases) + "\n" + "\n" * (n - 2))
    assert_one_line_error(_translate(runner, "-m", trained_run, sources, "--constraints-file", too_long),
                          str(too_long), "constraints of line 2", "output limit")
    terms = tmp_path / "terms.tsv"
    terms.write_text("godo\n" * n)
    assert_one_line_error(_translate(runner, "-m", trained_run, sources, "--constraints-file", terms,
                                     "--prefix-file", terms), "prefixes and constraints")
    assert_one_line_error(_translate(runner, "-m", trained_run, sources, "--constraints-file", terms,
                                     "--sampling-topk", "5"), "not sampling")
    ct2 = tmp_path / "ct2"
    assert runner.invoke(app, ["export", "-m", str(trained_run), "-o", str(ct2)]).exit_code == 0
    assert_one_line_error(_translate(runner, "-m", ct2, sources, "--constraints-file", terms),
                          "native engine")


def test_constraint_warnings(runner: object, trained_run: Path, tmp_path: Path) -> None:
    """An empty line keeps its empty output (its constraint skipped, said); a phrase the
    vocabulary cannot spell is still produced, with a warning naming it."""
    source, terms = tmp_path / "in.src", tmp_path / "terms.tsv"
    source.write_text("\nthe dog runs .\n", encoding="utf-8")
    terms.write_text("godo\nЖЖ\n", encoding="utf-8")
    result = _translate(runner, "-m", trained_run, source, "--constraints-file", terms)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split("\n")[:-1][0] == ""
    assert "line 1: empty input, its constraints are not applied" in result.stderr
    assert "line 2: constraint 'ЖЖ' has characters the target vocabulary lacks" in result.stderr
    # ... and still produced: the output holds the phrase's pieces (unknown ones included) in order
    from mt_cli.core.tokenizer import UNK_ID
    from mt_cli.engines.choice import open_translator

    translator = open_translator(trained_run)
    phrase = translator.tokenizers.target.encode_ids(["ЖЖ"])[0]
    assert UNK_ID in phrase
    ids = translator.translate_nbest(["the dog runs ."], constraints=["ЖЖ"])[0][0].ids
    assert any(ids[i:i + len(phrase)] == phrase for i in range(len(ids))), (phrase, ids)
    assert "\u2047" in result.stdout.split("\n")[1]  # SentencePiece's surface of an unknown piece
