"""Unit tests of the training loop's parts, in process: state, throughput window, non-finite
policy, early stopping, evaluation schedule, export choice, bucketing and chunking; checkpoint
pruning, averaging and early stopping across a resume as plain calls on real or made-up checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mt_cli.core.batching import cut_batches
from mt_cli.core.errors import MtError
from mt_cli.core.textio import chunked
from mt_cli.training.checkpoints import SavedStep
from mt_cli.training.evaluation import EarlyStopping, evaluation_due, improved
from mt_cli.training.export_choice import choose_export
from mt_cli.training.nonfinite import NonFinitePolicy
from mt_cli.training.state import DataPosition, TrainState
from mt_cli.training.throughput import ThroughputWindow


def test_state_round_trips_through_json() -> None:
    state = TrainState(step=7, data_position=DataPosition(2, 5), best_score=31.5, best_step=6,
                       bad_evals=1, nonfinite_in_row=2, nonfinite_total=3, dev_scores={"bleu": 31.5})
    again = TrainState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state


def test_state_reads_older_checkpoints_without_new_keys() -> None:
    old = {"step": 4, "data_position": {"epoch": 1, "batch": 2}, "best_score": None,
           "best_step": None, "bad_evals": 0, "dev_scores": {}, "learning_rate": 0.001}
    state = TrainState.from_dict(old)
    assert (state.step, state.data_position, state.nonfinite_total) == (4, DataPosition(1, 2), 0)


def test_throughput_window_counts_all_tokens_but_only_finite_loss() -> None:
    now = [100.0]
    window = ThroughputWindow(clock=lambda: now[0])
    window.add(1000, loss_sum=40.0, loss_tokens=20.0, finite=True)
    window.add(500, loss_sum=float("nan"), loss_tokens=10.0, finite=False)
    now[0] = 102.0
    report = window.report()
    assert report == {"loss": 2.0, "tokens_per_s": 750.0, "tokens": 1500}
    now[0] = 103.0
    assert window.report()["tokens"] == 0  # reset after each report


def test_nonfinite_policy_counts_resets_and_stops() -> None:
    state, policy = TrainState(), NonFinitePolicy(max_in_row=3)
    for finite in (False, False, True, False):
        state.step += 1
        policy.observe(state, finite)
    assert (state.nonfinite_in_row, state.nonfinite_total) == (1, 3)
    state.step += 1
    policy.observe(state, False)
    with pytest.raises(MtError, match="3 non-finite steps in a row"):
        state.step += 1
        policy.observe(state, False)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), None])
def test_all_finite_sees_one_bad_entry_anywhere(bad: float | None) -> None:
    import numpy as np
    import tensorflow as tf

    from mt_cli.training.steps import all_finite

    grads = [np.full([300, 7], 1e30, np.float32), np.full([5], -1e30, np.float32), np.ones([2, 2], np.float32)]
    loss = 3.0
    if bad is not None:
        grads[1][3] = bad
    assert bool(all_finite(tf.constant(loss), [tf.constant(g) for g in grads])) is (bad is None)
    opposite = [np.array([np.inf], np.float32), np.array([-np.inf], np.float32)]  # sum to NaN
    assert not bool(all_finite(tf.constant(loss), [tf.constant(g) for g in opposite]))
    assert not bool(all_finite(tf.constant(float("nan")), [tf.constant(g) for g in grads[2:]]))


def test_early_stopping_tracks_best_and_patience() -> None:
    state, early = TrainState(), EarlyStopping("bleu", patience=2)
    for step, bleu in ((10, 20.0), (20, 25.0), (30, 24.0), (40, 25.0)):
        state.step = step
        early.record(state, {"bleu": bleu, "loss": 1.0, "chrf": 50.0})
    assert (state.best_score, state.best_step, state.bad_evals) == (25.0, 20, 2)
    assert early.should_stop(state)
    assert state.dev_scores["bleu"] == 25.0
    assert not EarlyStopping("bleu", patience=0).should_stop(state)


def test_loss_improves_downwards() -> None:
    assert improved("loss", 1.0, 2.0) and not improved("loss", 2.0, 1.0)
    assert improved("chrf", 2.0, 1.0) and improved("bleu", 0.0, None)


def test_evaluation_due() -> None:
    assert evaluation_due(100, 100, 1000, False)
    assert not evaluation_due(150, 100, 1000, False)
    assert evaluation_due(150, 100, 150, False)  # the last step
    assert evaluation_due(151, 100, 1000, True)  # out of time


def _saved(*steps: int) -> list[SavedStep]:
    return [SavedStep(s, Path(f"/ckpt/step-{s:08d}")) for s in steps]


def test_export_choice() -> None:
    saved = _saved(10, 20, 30, 40)
    averaged = choose_export(saved, TrainState(step=40, best_step=20), average_last=3)
    assert averaged.kind == "averaged" and [s.step for s in averaged.steps] == [20, 30, 40]
    assert averaged.manifest_entry(40) == {"averaged_steps": [20, 30, 40]}
    best = choose_export(saved, TrainState(step=40, best_step=20), average_last=0)
    assert best.manifest_entry(40) == {"best_step": 20}
    gone = choose_export(saved, TrainState(step=40, best_step=5), average_last=0)
    assert gone.kind == "last" and gone.manifest_entry(40) == {"last_step": 40}


def test_cut_batches_token_budget_sentence_limit_and_oversized() -> None:
    lengths = [3, 3, 4, 10, 2]
    assert list(cut_batches(range(5), lengths, max_tokens=9)) == [[0, 1], [2], [3], [4]]
    assert list(cut_batches(range(5), lengths, max_sentences=2)) == [[0, 1], [2, 3], [4]]
    order = sorted(range(5), key=lambda i: -lengths[i])
    batches = list(cut_batches(order, lengths, max_tokens=12))
    assert sorted(i for b in batches for i in b) == list(range(5))  # nothing dropped
    assert all(max(lengths[i] for i in b) * len(b) <= 12 or len(b) == 1 for b in batches)


def test_chunked_keeps_every_item_in_order() -> None:
    assert list(chunked(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []


# ---------------------------------------------------------------- checkpoint bookkeeping as functions
# (tests/test_train.py::test_checkpoint_bookkeeping_in_one_real_run is their integration run)

def _fake_checkpoints(directory: Path, *steps: int) -> None:
    for step in steps:
        (directory / f"step-{step:08d}").mkdir(parents=True)
        (directory / f"step-{step:08d}" / "state.json").write_text(json.dumps({"step": step}))


def test_prune_keeps_the_last_k_and_an_old_best(tmp_path: Path) -> None:
    from mt_cli.training.checkpoints import list_checkpoints, prune_checkpoints

    _fake_checkpoints(tmp_path, 5, 10, 15, 20, 25, 30)
    (tmp_path / ".tmp-step-00000035").mkdir()  # an unfinished save is not a checkpoint
    prune_checkpoints(tmp_path, keep_last=2, protect={10})
    assert [s.step for s in list_checkpoints(tmp_path)] == [10, 25, 30]
    prune_checkpoints(tmp_path, keep_last=1, protect=set())
    assert [s.step for s in list_checkpoints(tmp_path)] == [30]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-step-00000035", "step-00000030"]


def test_early_stopping_survives_a_resume_through_state_json() -> None:
    """BLEU stays 0: the best is the first evaluation (5), every later one is bad; saved at 10
    (bad_evals 1) and restored, patience 3 stops at 20, not at 30 as a restore that lost the
    best score or the counter would."""
    state, early = TrainState(), EarlyStopping("bleu", patience=3)
    stops = []
    for step in (5, 10, 15, 20, 25, 30):
        if step == 15:  # a resume: the state goes through state.json
            state = TrainState.from_dict(json.loads(json.dumps(state.to_dict())))
            early = EarlyStopping("bleu", patience=3)
        state.step = step
        early.record(state, {"bleu": 0.0, "loss": 5.0})
        stops.append(early.should_stop(state))
        if step == 10:
            assert (state.best_step, state.bad_evals) == (5, 1)
    assert stops == [False, False, False, True, True, True]
    assert (state.best_score, state.best_step) == (0.0, 5)


def test_averaging_loads_the_mean_of_the_chosen_checkpoints(tmp_path: Path) -> None:
    """Real checkpoints written as training writes them (model, optimizer, step), read back
    through the optimizer's variable list: the export holds their element-wise mean."""
    import keras
    import numpy as np
    import tensorflow as tf
    from helpers import tiny_model_config

    from mt_cli.model import build_model
    from mt_cli.training.checkpoints import list_checkpoints, save_checkpoint
    from mt_cli.training.export_choice import load_choice

    keras.utils.set_random_seed(3)
    model = build_model(tiny_model_config(), 24, 24)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    trackable = tf.train.Checkpoint(model=model, optimizer=optimizer, step=tf.Variable(0, dtype=tf.int64))
    rng = np.random.default_rng(0)
    saved = {}
    for step in (5, 10, 15):
        weights = [rng.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()]
        model.set_weights(weights)
        save_checkpoint(tmp_path, step, trackable, {"step": step})
        saved[step] = weights
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    choice = choose_export(list_checkpoints(tmp_path), TrainState(step=15, best_step=5), average_last=2)
    load_choice(model, choice)
    assert choice.manifest_entry(15) == {"averaged_steps": [10, 15]}
    for got, a, b in zip(model.get_weights(), saved[10], saved[15]):
        np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-6, atol=1e-6)
    load_choice(model, choose_export(list_checkpoints(tmp_path), TrainState(step=15, best_step=5), 0))
    for got, want in zip(model.get_weights(), saved[5]):  # the best: step 5's weights exactly
        np.testing.assert_array_equal(got, want)
