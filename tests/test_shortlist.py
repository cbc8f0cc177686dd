"""Vocabulary shortlist: the search over a subset of the output vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import greedy_by_recomputation, random_source_batch, sharp_random_model

from mt_cli.core.config import DecodeConfig
from mt_cli.engines.native import batch_shortlist
from mt_cli.model.ensemble import Ensemble
from mt_cli.model.search import search

VOCAB = 24
BOS = 2


def rows(source: np.ndarray) -> list[list[int]]:
    return [[int(t) for t in row if t] for row in source]


@pytest.mark.parametrize("beam", [1, 4])
def test_a_shortlist_of_every_id_changes_nothing(beam: int) -> None:
    model = sharp_random_model(11, VOCAB)
    source = random_source_batch(5, 6, VOCAB)
    prefix = np.array([[7, 9], [5, 0], [0, 0], [12, 13], [0, 0], [4, 0]], np.int32)
    full = DecodeConfig(beam_size=beam, n_best=beam, max_length_a=1.0, max_length_b=4)
    listed = DecodeConfig(beam_size=beam, n_best=beam, max_length_a=1.0, max_length_b=4, shortlist=VOCAB)
    everything = np.arange(VOCAB, dtype=np.int32)
    for pre in (None, prefix):
        a = search(model, source, full, target_prefix=pre).hypotheses
        b = search(model, source, listed, target_prefix=pre, shortlist=everything).hypotheses
        assert [[h.ids for h in n] for n in a] == [[h.ids for h in n] for n in b]
        for na, nb in zip(a, b):
            np.testing.assert_allclose([h.score for h in na], [h.score for h in nb], atol=1e-5)


def test_greedy_over_a_shortlist_is_greedy_over_those_ids() -> None:
    model = sharp_random_model(12, VOCAB)
    source = random_source_batch(8, 6, VOCAB)
    shortlist = np.array([0, 1, 2, 3, 5, 8, 9, 13, 17, 20, 22], np.int32)
    options = DecodeConfig(beam_size=1, max_length_a=1.0, max_length_b=4, shortlist=11)
    found = search(model, source, options, shortlist=shortlist).hypotheses
    banned = np.setdiff1d(np.arange(VOCAB), shortlist)
    full = search(model, source, DecodeConfig(beam_size=1, max_length_a=1.0, max_length_b=4)).best()
    assert any(set(ids) - set(shortlist.tolist()) for ids in full)  # the shortlist does bite
    for row, src in enumerate(rows(source)):

        def restricted(prefix: list[int], src: list[int] = src) -> np.ndarray:
            logits = model({"source": tf.constant([src]), "target_in": tf.constant([[BOS, *prefix]])})[0, -1]
            scores = np.array(tf.nn.log_softmax(logits), np.float64)
            scores[banned] = -np.inf
            return scores

        expected = greedy_by_recomputation(restricted, min(len(src) + 4, model.max_length - 1))
        assert found[row][0].ids == expected
        # token log-probabilities are normalised over the shortlist (pad and bos banned)
        logits = model({"source": tf.constant([src]), "target_in": tf.constant([[BOS, *expected]])})[0]
        listed = tf.gather(logits, shortlist, axis=1) + np.where(np.isin(shortlist, [0, 2]), -np.inf, 0.0)
        picks = [shortlist.tolist().index(t) for t in expected + [3]][:len(found[row][0].token_logprobs)]
        want = tf.gather(tf.nn.log_softmax(listed), picks, batch_dims=1).numpy()[:len(picks)]
        np.testing.assert_allclose(found[row][0].token_logprobs, want, atol=1e-3)


def test_ensembles_and_sampling_take_a_shortlist() -> None:
    model = sharp_random_model(13, VOCAB)
    source = random_source_batch(9, 4, VOCAB)
    shortlist = np.array([0, 1, 2, 3, 6, 7, 10, 11, 15, 19], np.int32)
    ensemble = Ensemble([model, sharp_random_model(14, VOCAB)])
    for m, options in ((ensemble, DecodeConfig(beam_size=4, shortlist=10)),
                       (model, DecodeConfig(beam_size=4, sampling_topk=50, seed=3, shortlist=10))):
        for nbest in search(m, source, options, shortlist=shortlist).hypotheses:
            assert nbest[0].ids and set(nbest[0].ids) <= set(shortlist.tolist()) - {0, 1, 2, 3}


def test_a_shortlist_is_given_exactly_when_asked_for() -> None:
    model = sharp_random_model(11, VOCAB)
    source = random_source_batch(5, 2, VOCAB)
    with pytest.raises(ValueError, match="shortlist"):
        search(model, source, DecodeConfig(shortlist=5))
    with pytest.raises(ValueError, match="shortlist"):
        search(model, source, DecodeConfig(), shortlist=np.arange(VOCAB, dtype=np.int32))


def test_batch_shortlist_holds_specials_frequent_source_and_prefix_pieces() -> None:
    frequent = np.array([40, 7, 12], np.int32)
    ids = batch_shortlist(frequent, [[90, 7, 3], [55, 3]], [[120, 121]])
    assert ids.tolist() == [0, 1, 2, 3, 7, 12, 40, 55, 90, 120, 121]  # sorted, each once
    assert batch_shortlist(frequent, [], []).tolist() == [0, 1, 2, 3, 7, 12, 40]
