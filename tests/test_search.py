"""Search tests on a tiny random model (plus conftest's trained copy-task model)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import greedy_by_recomputation, task_files, tiny_model_config

from mt_cli.core.config import DecodeConfig
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.model import Transformer, build_model
from mt_cli.model.search import search

VOCAB = 24
PAD, BOS, EOS = 0, 2, 3


def TinyConfig(**overrides: object):
    return tiny_model_config(**{"num_heads": 2, "max_length": 40, **overrides})


def sentences(seed: int, count: int, vocab: int = VOCAB) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(4, vocab, size=rng.integers(1, 8)).tolist() + [EOS] for _ in range(count)]


def pad(rows: list[list[int]]) -> np.ndarray:
    out = np.zeros([len(rows), max(map(len, rows))], np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


@pytest.fixture(scope="module")
def model() -> Transformer:
    keras.utils.set_random_seed(6)  # a seed where outputs end both at eos and at the limit
    m = build_model(dataclasses.replace(TinyConfig(), share_embeddings="none"), VOCAB, VOCAB)
    # Scale the eos output row so that hypotheses end at varied lengths.
    table = m.output_embedding.embeddings
    table.assign(tf.tensor_scatter_nd_update(table, [[EOS]], [table[EOS] * 2.0]))
    return m


def reference_greedy(model: Transformer, source: list[int], a: float, b: float) -> list[int]:
    """Full recomputation of the whole prefix at every step."""
    max_len = min(math.floor(a * len(source) + b), model.max_length - 1)
    return greedy_by_recomputation(
        lambda out: model({"source": tf.constant([source]), "target_in": tf.constant([[BOS, *out]])})[0, -1],
        max_len)


def check_nbest(nbest: list[Hypothesis], alpha: float) -> None:
    scores = [h.score for h in nbest]
    assert scores == sorted(scores, reverse=True)
    for h in nbest:
        assert len(h.token_logprobs) == len(h.ids) + 1
        assert all(t not in (PAD, BOS, EOS) for t in h.ids)
        penalty = ((5.0 + len(h.ids) + 1) / 6.0) ** alpha
        assert h.score == pytest.approx(sum(h.token_logprobs) / penalty, abs=1e-4)


def test_greedy_matches_full_recomputation(model: Transformer) -> None:
    srcs = sentences(0, 8)
    opts = DecodeConfig(beam_size=1, max_length_a=1.0, max_length_b=4)
    result = search(model, pad(srcs), opts)
    expected = [reference_greedy(model, s, 1.0, 4) for s in srcs]
    assert result.best() == expected
    # Sanity of the fixture: some outputs stop at eos, some at the length limit.
    assert any(len(e) < len(s) + 4 for e, s in zip(expected, srcs))
    assert any(len(e) == len(s) + 4 for e, s in zip(expected, srcs))
    for nbest in result.hypotheses:
        check_nbest(nbest, opts.length_penalty)


@pytest.mark.parametrize("beam", [1, 4])
def test_batch_invariance_and_determinism(model: Transformer, beam: int) -> None:
    srcs = sentences(1, 5)
    opts = DecodeConfig(beam_size=beam, n_best=min(beam, 2))
    together = search(model, pad(srcs), opts)
    assert search(model, pad(srcs), opts) == together
    for i, src in enumerate(srcs):
        alone = search(model, pad([src]), opts).hypotheses[0]
        assert [h.ids for h in alone] == [h.ids for h in together.hypotheses[i]]
        np.testing.assert_allclose(
            [h.score for h in alone], [h.score for h in together.hypotheses[i]], atol=1e-4
        )


def test_nbest_sorted_and_complete(model: Transformer) -> None:
    opts = DecodeConfig(beam_size=5, n_best=4, length_penalty=1.0)
    result = search(model, pad(sentences(2, 4)), opts)
    for nbest in result.hypotheses:
        assert len(nbest) == 4
        assert len({tuple(h.ids) for h in nbest}) == 4
        check_nbest(nbest, 1.0)
    with pytest.raises(ValueError):
        search(model, pad(sentences(2, 1)), DecodeConfig(beam_size=2, n_best=3))


def test_beam_not_worse_than_greedy_without_length_penalty(model: Transformer) -> None:
    srcs = pad(sentences(3, 6))
    greedy = search(model, srcs, DecodeConfig(beam_size=1, length_penalty=0.0))
    beam = search(model, srcs, DecodeConfig(beam_size=6, length_penalty=0.0))
    for g, b in zip(greedy.hypotheses, beam.hypotheses):
        assert b[0].score >= g[0].score - 1e-5


def test_coverage_penalty(model: Transformer) -> None:
    result = search(
        model, pad(sentences(4, 3)), DecodeConfig(beam_size=3, n_best=3, coverage_penalty=0.4)
    )
    for nbest in result.hypotheses:
        assert len(nbest) == 3
        assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
        # The penalty is <= 0, so scores sit at or below the plain normalised log-probability.
        for h in nbest:
            assert h.score <= sum(h.token_logprobs) / ((6.0 + len(h.ids)) / 6.0) ** 0.6 + 1e-5


def test_sampling(model: Transformer) -> None:
    srcs = pad(sentences(5, 6))
    sample = lambda **kw: search(model, srcs, DecodeConfig(beam_size=1, **kw)).best()
    first = sample(sampling_topk=-1, seed=11)
    assert sample(sampling_topk=-1, seed=11) == first
    assert sample(sampling_topk=-1, seed=12) != first
    greedy = search(model, srcs, DecodeConfig(beam_size=1)).best()
    assert sample(sampling_topk=1, seed=3) == greedy
    assert sample(sampling_topp=1e-6, seed=3) == greedy
    assert sample(sampling_topk=5, sampling_topp=0.9, sampling_temperature=0.7, seed=3) == sample(
        sampling_topk=5, sampling_topp=0.9, sampling_temperature=0.7, seed=3
    )
    several = search(model, srcs, DecodeConfig(beam_size=4, n_best=3, sampling_topk=10, seed=5))
    for nbest in several.hypotheses:
        assert len(nbest) == 3
        check_nbest(nbest, 0.6)


@pytest.mark.parametrize("beam", [1, 3])
def test_max_length(model: Transformer, beam: int) -> None:
    srcs = sentences(6, 4)
    result = search(
        model, pad(srcs), DecodeConfig(beam_size=beam, max_length_a=0.5, max_length_b=1)
    )
    for src, nbest in zip(srcs, result.hypotheses):
        assert all(len(h.ids) <= int(0.5 * len(src) + 1) for h in nbest)
    capped = search(
        model, pad(srcs), DecodeConfig(beam_size=beam, max_length_a=10.0, max_length_b=100)
    )
    assert all(len(h.ids) <= model.max_length - 1 for nbest in capped.hypotheses for h in nbest)


@pytest.mark.parametrize("beam", [1, 3])
def test_prefix_forcing(model: Transformer, beam: int) -> None:
    srcs = sentences(7, 3)
    prefixes = [[5, 6, 7], [9], []]
    result = search(
        model,
        pad(srcs),
        DecodeConfig(beam_size=beam, n_best=beam),
        target_prefix=pad([p + [0] for p in prefixes]),
    )
    for prefix, nbest in zip(prefixes, result.hypotheses):
        assert nbest and all(h.ids[: len(prefix)] == prefix for h in nbest)
    # No prefix at all equals an empty prefix.
    plain = search(model, pad(srcs[2:]), DecodeConfig(beam_size=beam)).best()
    assert result.best()[2] == plain[0]


def test_bfloat16_model_search() -> None:
    keras.utils.set_random_seed(3)
    mixed = build_model(TinyConfig(), VOCAB, VOCAB, precision="bfloat16")
    result = search(mixed, pad(sentences(8, 3)), DecodeConfig(beam_size=2, n_best=2))
    for nbest in result.hypotheses:
        assert len(nbest) == 2
        assert all(np.isfinite(h.score) for h in nbest)


def test_trained_copy_model(copy_reverse_tasks: dict[str, Path], tmp_path: Path) -> None:
    """A model trained on copying (conftest's copy task: 350 steps of the real training loop)
    fits unseen sequences and beam search copies them; so do the same weights with bf16 compute."""
    from mt_cli.engines.model_dir import load_model_dir

    run = copy_reverse_tasks["copy"] / "run"
    src, tgt = task_files(tmp_path, "unseen", False, 16, 5)
    loaded = load_model_dir(run, precision="float32")
    model, tokenizers = loaded.model, loaded.tokenizers
    expected = tokenizers.target.encode_ids(tgt.read_text().splitlines())
    source = pad([row + [EOS] for row in tokenizers.source.encode_ids(src.read_text().splitlines())])
    target_in, target_out = pad([[BOS, *e] for e in expected]), pad([[*e, EOS] for e in expected])
    logits = model({"source": tf.constant(source), "target_in": tf.constant(target_in)})
    mask = tf.cast(target_out != PAD, tf.float32)
    loss = keras.losses.sparse_categorical_crossentropy(target_out, logits, from_logits=True)
    loss = tf.reduce_sum(loss * mask) / tf.reduce_sum(mask)
    assert float(loss) < 0.3
    result = search(model, source, DecodeConfig(beam_size=3))
    assert sum(h == e for h, e in zip(result.best(), expected)) >= 14
    # The same weights decoded with bf16 compute still copy.
    mixed = load_model_dir(run, precision="bfloat16").model
    result = search(mixed, source, DecodeConfig(beam_size=3))
    assert sum(h == e for h, e in zip(result.best(), expected)) >= 14
