"""Greedy decoding and sampling: ``rows`` independent left-to-right hypotheses per sentence.

Shapes: B sentences, n = B * rows hypotheses, V output vocabulary (or shortlist) width.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from mt_cli.core.tokenizer import BOS_ID, EOS_ID, PAD_ID
from mt_cli.model.attention import NEG_INF
from mt_cli.model.search.options import SearchParams
from mt_cli.model.search.shared import (
    SearchModel,
    Setup,
    ban_bias,
    forced,
    gnmt_length_penalty,
    log_normalizer,
)

MIN_TEMPERATURE = 1e-6


def sample_tokens(logits: tf.Tensor, seed: tf.Tensor, topk: int, use_topp: bool, params: SearchParams
                  ) -> tf.Tensor:
    """Draw one token per row [n] from the (top-k / nucleus truncated) tempered distribution."""
    # below MIN_TEMPERATURE the logits would overflow to inf (nan probabilities); it already is argmax
    scaled = logits / tf.maximum(params.sampling_temperature, MIN_TEMPERATURE)  # [n, V]
    if topk <= 0 and not use_topp:
        return tf.random.stateless_categorical(scaled, 1, seed, dtype=tf.int32)[:, 0]
    k = tf.minimum(topk, tf.shape(scaled)[-1]) if topk > 0 else tf.shape(scaled)[-1]
    values, indices = tf.math.top_k(scaled, k=k)  # [n, k]
    if use_topp:
        probs = tf.nn.softmax(values)
        before = tf.cumsum(probs, axis=-1, exclusive=True)  # [n, k] mass of the better tokens
        values = tf.where(before < params.sampling_topp, values, NEG_INF)
    choice = tf.random.stateless_categorical(values, 1, seed, dtype=tf.int32)  # [n, 1]
    return tf.gather(indices, choice, batch_dims=1)[:, 0]


class SampleState(NamedTuple):
    """Loop state of greedy/sampling decoding ([n] = sentences * rows)."""

    step: tf.Tensor
    prev: tf.Tensor  # [n] last token
    finished: tf.Tensor  # [n] bool
    length: tf.Tensor  # [n] tokens so far, eos included
    total: tf.Tensor  # [n] summed log-probabilities
    tokens: tf.TensorArray  # per step [n]
    logprobs: tf.TensorArray  # per step [n]
    cache: dict[str, Any]


class GreedyOrSampling:
    """Independent left-to-right decoding of ``rows`` hypotheses per sentence (greedy when
    ``sample`` is None, else (top-k, use top-p) sampling)."""

    def __init__(self, model: SearchModel, setup: Setup, params: SearchParams, rows: int,
                 sample: tuple[int, bool] | None) -> None:
        self.model, self.setup, self.params, self.rows, self.sample = model, setup, params, rows, sample
        self.ban = ban_bias(model.target_vocab_size)

    def body(self, s: SampleState) -> SampleState:
        logits, cache = self.model.decode_step(s.prev, s.step, s.cache, logits_bias=self.ban)  # [n, V]
        best = tf.argmax(logits, axis=-1, output_type=tf.int32)  # [n]
        lse = log_normalizer(logits, tf.nn.softmax(logits), best)  # [n]
        tok = best
        if self.sample is not None:
            seed = tf.random.experimental.stateless_fold_in(self.params.seed, s.step)
            tok = sample_tokens(logits, seed, self.sample[0], self.sample[1], self.params)
        restricted, forced_tok = forced(self.setup, s.step, self.rows)  # [n], [n]
        tok = tf.where(restricted, forced_tok, tok)
        logp = tf.gather(logits, tok, batch_dims=1) - lse  # [n]
        tok = tf.where(s.finished, PAD_ID, tok)
        logp = tf.where(s.finished, 0.0, logp)
        return SampleState(
            step=s.step + 1, prev=tok, finished=s.finished | tf.equal(tok, EOS_ID),
            length=s.length + tf.cast(~s.finished, tf.int32), total=s.total + logp,
            tokens=s.tokens.write(s.step, tok), logprobs=s.logprobs.write(s.step, logp), cache=cache)

    def start(self) -> tuple[SampleState, SampleState]:
        """The first loop state and its shape invariants."""
        n = self.setup.batch * self.rows
        state = SampleState(
            step=tf.constant(0), prev=tf.fill([n], BOS_ID), finished=tf.zeros([n], tf.bool),
            length=tf.zeros([n], tf.int32), total=tf.zeros([n], tf.float32),
            tokens=tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
            logprobs=tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[None]),
            cache=self.setup.cache)
        vector = tf.TensorShape([None])
        invariants = SampleState(
            tf.TensorShape([]), vector, vector, vector, vector, tf.TensorShape(None),
            tf.TensorShape(None), self.model.cache_shape_invariants(self.setup.cache))
        return state, invariants

    def run(self) -> dict[str, tf.Tensor]:
        start, invariants = self.start()

        def cond(s: SampleState) -> tf.Tensor:
            return tf.logical_and(s.step < self.setup.steps, ~tf.reduce_all(s.finished))

        (end,) = tf.while_loop(cond, lambda s: (self.body(s),), (start,), shape_invariants=(invariants,))
        shape = [self.setup.batch, self.rows]
        penalty = gnmt_length_penalty(end.length, self.params.length_penalty)  # [n]
        score = tf.reshape(end.total / penalty, shape)  # [B, rows]
        order = tf.argsort(score, axis=1, direction="DESCENDING", stable=True)  # [B, rows]

        def ranked(t: tf.Tensor) -> tf.Tensor:
            """[n, ...] -> [B, rows, ...], each sentence's rows best first."""
            return tf.gather(tf.reshape(t, tf.concat([shape, tf.shape(t)[1:]], 0)), order, batch_dims=1)

        return {
            "tokens": ranked(tf.transpose(end.tokens.stack())),
            "logprobs": ranked(tf.transpose(end.logprobs.stack())),
            "length": ranked(end.length),
            "score": tf.gather(score, order, batch_dims=1),
            "valid": tf.ones(shape, tf.bool),
        }
