"""The training loss: its written-out gradient against autodiff, and non-pad rows only."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_model_config

from mt_cli.core.tokenizer import PAD_ID
from mt_cli.model import build_model
from mt_cli.training.loss import smoothed_cross_entropy, token_loss


def reference_loss(logits: tf.Tensor, labels: tf.Tensor, smoothing: float) -> tf.Tensor:
    """The textbook form, differentiated by autodiff."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    nll = -tf.gather(log_probs, labels[:, None], batch_dims=1)[:, 0]
    return (1.0 - smoothing) * nll - smoothing * tf.reduce_mean(log_probs, axis=-1)


def loss_and_grad(fn, logits: tf.Tensor, labels: tf.Tensor, smoothing: float, weights: tf.Tensor):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = fn(logits, labels, smoothing)
        total = tf.reduce_sum(loss * weights)
    return loss.numpy(), tape.gradient(total, logits)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_gradient_matches_autodiff(smoothing: float) -> None:
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(0, 3, [7, 50]), tf.float32)
    labels = tf.constant(rng.integers(0, 50, 7), tf.int32)
    weights = tf.constant(rng.uniform(0.5, 2.0, 7), tf.float32)  # upstream gradient per row
    loss, grad = loss_and_grad(smoothed_cross_entropy, logits, labels, smoothing, weights)
    ref_loss, ref_grad = loss_and_grad(reference_loss, logits, labels, smoothing, weights)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), atol=1e-6)


def test_extreme_logits_keep_a_finite_exact_loss() -> None:
    """A label 300 below the row's best (its probability underflows float32) and logits near
    1e4: the loss is still the reference's, finite, as is the gradient."""
    logits = tf.constant([[0.0, 300.0, -5.0, 1.0], [1e4, 1e4 - 3.0, -1e4, 0.0], [2.0, 2.0, 2.0, 2.0]])
    labels = tf.constant([0, 1, 3])
    loss, grad = loss_and_grad(smoothed_cross_entropy, logits, labels, 0.1, tf.ones([3]))
    ref_loss, ref_grad = loss_and_grad(reference_loss, logits, labels, 0.1, tf.ones([3]))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad.numpy()))
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), atol=1e-6)


def test_bfloat16_logits_get_a_bfloat16_gradient() -> None:
    rng = np.random.default_rng(1)
    logits32 = tf.constant(rng.normal(0, 2, [5, 40]), tf.float32)
    logits = tf.cast(logits32, tf.bfloat16)
    labels = tf.constant(rng.integers(0, 40, 5), tf.int32)
    loss, grad = loss_and_grad(smoothed_cross_entropy, logits, labels, 0.1, tf.ones([5]))
    ref_loss, ref_grad = loss_and_grad(reference_loss, tf.cast(logits, tf.float32), labels, 0.1, tf.ones([5]))
    assert loss.dtype == np.float32 and grad.dtype == tf.bfloat16
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(tf.cast(grad, tf.float32).numpy(), ref_grad.numpy(), atol=4e-3)


@pytest.mark.parametrize("static_shapes", [False, True])
def test_token_loss_scores_non_pad_tokens_only(static_shapes: bool) -> None:
    keras.utils.set_random_seed(3)
    model = build_model(tiny_model_config(), 30, 30)
    batch = {"source": tf.constant([[5, 6, 7, 3], [8, 3, 0, 0]]),
             "target_in": tf.constant([[2, 9, 10, 11], [2, 12, 0, 0]]),
             "target_out": tf.constant([[9, 10, 11, 3], [12, 3, 0, 0]])}
    with tf.GradientTape() as tape:
        loss_sum, tokens = token_loss(model, batch, 0.1, False, static_shapes)
    grads = tape.gradient(loss_sum, model.trainable_variables)
    with tf.GradientTape() as tape:
        logits = model({"source": batch["source"], "target_in": batch["target_in"]})
        labels = tf.reshape(batch["target_out"], [-1])
        mask = tf.cast(tf.not_equal(labels, PAD_ID), tf.float32)
        ref = tf.reduce_sum(reference_loss(tf.reshape(logits, [-1, 30]), labels, 0.1) * mask)
    ref_grads = tape.gradient(ref, model.trainable_variables)
    assert float(tokens) == 6.0
    np.testing.assert_allclose(float(loss_sum), float(ref), rtol=1e-5)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(got).numpy(), tf.convert_to_tensor(want).numpy(),
                                   atol=1e-5)
    # changing what sits in a padded position changes nothing
    padded = dict(batch, target_in=tf.constant([[2, 9, 10, 11], [2, 12, 17, 17]]))
    again, _ = token_loss(model, padded, 0.1, False, static_shapes)
    np.testing.assert_allclose(float(again), float(loss_sum), rtol=1e-6)
