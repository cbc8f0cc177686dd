"""The training objective: label-smoothed cross-entropy over the target tokens that count.

Why written out: the output layer and its loss are the only [rows, vocab] tensors of a step.
Differentiated automatically, log_softmax + gather + mean keep a float32 log-probability
table and scatter the picked entries back through an UnsortedSegmentSum over rows x vocab;
the closed-form gradient (softmax - smoothed one-hot) needs one pass and keeps only the
logits. And padding rows are not projected at all (only non-pad decoder states reach the
output layer), except under XLA, which wants static shapes and gets a mask instead.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from mt_cli.core.tokenizer import PAD_ID


def smoothed_cross_entropy(logits: tf.Tensor, labels: tf.Tensor, smoothing: float) -> tf.Tensor:
    """Per-row loss [N] (float32) of logits [N, V] against labels [N]:
    (1 - s) * -log p(label) + s * mean over the vocabulary of -log p."""

    @tf.custom_gradient
    def loss_of(logits: tf.Tensor) -> tuple[tf.Tensor, Any]:
        x = tf.cast(logits, tf.float32)
        lse = tf.reduce_logsumexp(x, axis=-1)
        picked = tf.gather(x, labels[:, tf.newaxis], batch_dims=1)[:, 0]
        loss = lse - (1.0 - smoothing) * picked
        if smoothing:
            loss -= smoothing * tf.reduce_mean(x, axis=-1)

        def grad(upstream: tf.Tensor) -> tf.Tensor:
            # d loss / d x = softmax(x) - q, q the smoothed one-hot; x recomputed from
            # the (possibly bfloat16) logits so no float32 table outlives the forward pass
            probs = tf.exp(tf.cast(logits, tf.float32) - lse[:, tf.newaxis])
            vocab = tf.shape(logits)[-1]
            uniform = smoothing / tf.cast(vocab, tf.float32)
            target = tf.one_hot(labels, vocab, on_value=1.0 - smoothing + uniform, off_value=uniform)
            return tf.cast((probs - target) * upstream[:, tf.newaxis], logits.dtype)

        return loss, grad

    return loss_of(logits)


def token_loss(model: Any, batch: dict[str, tf.Tensor], smoothing: float, training: bool,
               static_shapes: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """(Sum of the smoothed loss over non-pad target tokens, their count) for one batch.

    `static_shapes` (XLA) projects every row and masks the padding instead of gathering.
    """
    states = model.states({"source": batch["source"], "target_in": batch["target_in"]},
                          training=training)
    states = tf.reshape(states, [-1, tf.shape(states)[-1]])
    labels = tf.reshape(batch["target_out"], [-1])
    real = tf.not_equal(labels, PAD_ID)
    if static_shapes:
        logits = model.output_projection.raw_logits(states)
        mask = tf.cast(real, tf.float32)
        return tf.reduce_sum(smoothed_cross_entropy(logits, labels, smoothing) * mask), tf.reduce_sum(mask)
    rows = tf.where(real)[:, 0]
    logits = model.output_projection.raw_logits(tf.gather(states, rows))
    loss = smoothed_cross_entropy(logits, tf.gather(labels, rows), smoothing)
    return tf.reduce_sum(loss), tf.cast(tf.size(rows), tf.float32)
