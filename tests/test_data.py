"""Data pipeline: the id cache, token-based batches with bucketing, corpus weights and
resumable positions (no TensorFlow needed except for the tf.data prefetch test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import toy_pairs, write_pairs

from mt_cli.core.tokenizer import BOS_ID, EOS_ID, Tokenizers, train_sentencepiece
from mt_cli.training.data import (
    DataPosition,
    collate,
    encode_corpus,
    iterate_batches,
    plan_epoch,
    prefetched,
    sequential_batches,
)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory, toy_dir: Path):
    work = tmp_path_factory.mktemp("data")
    spm = train_sentencepiece([toy_dir / "train.src", toy_dir / "train.tgt"], work / "spm", 48)
    tok = Tokenizers.load(spm)
    a = encode_corpus(toy_dir / "train.src", toy_dir / "train.tgt", tok, work / "cache", 100, 100)
    src, tgt = write_pairs(work, "small", toy_pairs(50, seed=21))
    b = encode_corpus(src, tgt, tok, work / "cache", 100, 100)
    return tok, [a, b]


def test_cache_holds_the_encoded_pairs(corpora, toy_dir) -> None:
    tok, (big, _) = corpora
    first_src = (toy_dir / "train.src").read_text().splitlines()[0]
    first_tgt = (toy_dir / "train.tgt").read_text().splitlines()[0]
    src, tgt = big.pair(0)
    assert list(src) == tok.source.encode_ids([first_src])[0] + [EOS_ID]
    assert list(tgt) == tok.target.encode_ids([first_tgt])[0]
    assert len(big) == 600 and big.stats.kept == 600


def test_batches_respect_the_token_budget_and_cover_the_epoch(corpora) -> None:
    _, (big, _) = corpora
    plan = plan_epoch([big], [1.0], epoch=0, seed=1, batch_tokens=256, shuffle_buffer=1000)
    ids = np.concatenate(plan)
    assert sorted(ids.tolist()) == list(range(len(big)))  # every example exactly once
    for batch in plan:
        arrays = collate([big], batch)
        assert arrays["source"].shape[0] == len(batch)
        longest = max(arrays["source"].shape[1], arrays["target_in"].shape[1])
        assert longest * len(batch) <= 256 or len(batch) == 1
        assert (arrays["target_in"][:, 0] == BOS_ID).all()


def test_bucketing_keeps_padding_low(corpora) -> None:
    _, (big, _) = corpora
    plan = plan_epoch([big], [1.0], epoch=0, seed=1, batch_tokens=512, shuffle_buffer=1000)
    real = padded = 0
    for batch in plan:
        arrays = collate([big], batch)
        real += int((arrays["source"] != 0).sum())
        padded += arrays["source"].size
    assert real / padded > 0.75


def test_epochs_differ_and_are_reproducible(corpora) -> None:
    _, (big, _) = corpora
    a = plan_epoch([big], [1.0], 0, 7, 256, 1000)
    b = plan_epoch([big], [1.0], 0, 7, 256, 1000)
    c = plan_epoch([big], [1.0], 1, 7, 256, 1000)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_corpus_weights_up_and_down_sample(corpora) -> None:
    _, (big, small) = corpora
    plan = plan_epoch([big, small], [0.5, 3.0], 0, 3, 256, 10000)
    ids = np.concatenate(plan)
    from_big = int((ids < len(big)).sum())
    from_small = int((ids >= len(big)).sum())
    assert from_big == 300 and from_small == 150


def test_resuming_at_a_position_continues_the_same_stream(corpora) -> None:
    _, corpora_list = corpora
    straight = iterate_batches(corpora_list, [1.0, 1.0], 5, 256, 1000)
    seen = [next(straight) for _ in range(80)]
    position = seen[9][0]
    resumed = iterate_batches(corpora_list, [1.0, 1.0], 5, 256, 1000, start=position)
    for expected in seen[10:]:
        got = next(resumed)
        assert got[0] == expected[0]
        assert all(np.array_equal(got[1][k], expected[1][k]) for k in expected[1])
    assert any(p.epoch == 1 for p, _ in seen)  # the stream crossed an epoch boundary


def test_tf_data_prefetch_keeps_order_and_positions(corpora) -> None:
    _, corpora_list = corpora
    plain = iterate_batches(corpora_list, [1.0, 1.0], 5, 256, 1000, DataPosition(0, 3))
    fetched = prefetched(iterate_batches(corpora_list, [1.0, 1.0], 5, 256, 1000, DataPosition(0, 3)))
    for _ in range(5):
        (p1, b1), (p2, b2) = next(plain), next(fetched)
        assert p1 == p2
        assert np.array_equal(b1["source"], b2["source"].numpy())


def test_dev_batches_keep_file_order(corpora) -> None:
    _, (_, small) = corpora
    rows = [row for batch in sequential_batches(small, 128) for row in batch["source"]]
    assert len(rows) == len(small)
    for i, row in enumerate(rows):
        assert list(row[row != 0]) == list(small.pair(i)[0])
