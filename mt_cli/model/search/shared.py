"""Graph helpers every search strategy shares: setup, forced tokens, penalties, fast top-k.

Everything here runs inside the compiled search (or the constrained search's compiled step);
options arrive as ``SearchParams`` tensors, never as ``DecodeConfig`` values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from mt_cli.core.tokenizer import BOS_ID, EOS_ID, PAD_ID
from mt_cli.model.attention import NEG_INF
from mt_cli.model.ensemble import Ensemble
from mt_cli.model.search.options import SearchParams
from mt_cli.model.transformer import Transformer

VALID = NEG_INF / 2  # scores below this mark impossible hypotheses
SearchModel = Transformer | Ensemble  # what the search decodes: one model or several as one


def gnmt_length_penalty(length: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """GNMT ((5 + len) / 6) ** alpha."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def write_column(buffer: tf.Tensor, column: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """buffer[..., column] = values, via a broadcast select (shape-stable)."""
    hit = tf.equal(tf.range(tf.shape(buffer)[-1]), column)
    return tf.where(hit, values[..., tf.newaxis], buffer)


def ban_bias(vocab_size: int) -> tf.Tensor:
    """Logit bias [V] that keeps pad and bos from ever being generated."""
    bias = np.zeros([vocab_size], np.float32)
    bias[[PAD_ID, BOS_ID]] = NEG_INF
    return tf.constant(bias)


def top_k_wide(x: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Exact row-wise top-k for wide rows [N, V] (values, indices).

    tf.math.top_k costs ~2 ms on [128, 8000] on our CPUs, more than the output
    matmul.  The k best entries lie in the k chunks with the largest maxima,
    so one cheap max-reduction plus two small top_k calls give the same result.
    """
    if x.shape[-1] is None:  # a shortlist: narrow and of varying width
        return tf.math.top_k(x, k=k)
    vocab = int(x.shape[-1])
    size = max(1, round(math.sqrt(vocab / k)))
    chunks = -(-vocab // size)
    if chunks < 4 * k:
        return tf.math.top_k(x, k=k)
    if chunks * size != vocab:
        x = tf.pad(x, [[0, 0], [0, chunks * size - vocab]], constant_values=x.dtype.min)
    n = tf.shape(x)[0]
    x3 = tf.reshape(x, [n, chunks, size])
    _, best_chunks = tf.math.top_k(tf.reduce_max(x3, axis=-1), k=k)
    candidates = tf.reshape(tf.gather(x3, best_chunks, batch_dims=1), [n, k * size])
    values, pos = tf.math.top_k(candidates, k=k)
    return values, tf.gather(best_chunks, pos // size, batch_dims=1) * size + pos % size


def log_normalizer(logits: tf.Tensor, probs: tf.Tensor, best: tf.Tensor) -> tf.Tensor:
    """log-sum-exp per row [N] from softmax output, anchored at the row's best token.

    oneDNN softmax is ~2x faster than log_softmax here; p[best] >= 1/V so its
    log is exact, and logit - lse stays exact even where p underflows.
    """
    return tf.gather(logits, best, batch_dims=1) - tf.math.log(tf.gather(probs, best, batch_dims=1))


@dataclass(frozen=True)
class Setup:
    """Per-batch tensors every search mode needs."""

    batch: tf.Tensor
    cache: dict[str, Any]
    source_mask: tf.Tensor  # [B, S]
    max_len: tf.Tensor  # [B] max tokens before eos
    prefix: tf.Tensor  # [B, P>=1]
    prefix_len: tf.Tensor  # [B]
    steps: tf.Tensor  # scalar: loop bound (max_len + 1 for eos)


def _length_limit(params: SearchParams, src_len: tf.Tensor, cap: int) -> tf.Tensor:
    """floor(a * source length + b) [B], at most `cap`, capped in float before the int32 cast: a
    huge a (1e10) made a product beyond int32, which the cast turned negative, so every output was
    empty. Capping a and b first keeps the sum finite (no inf * 0 = nan for an empty row)."""
    a = tf.minimum(params.max_length_a, float(cap))
    b = tf.minimum(params.max_length_b, float(cap))
    return tf.cast(tf.minimum(tf.floor(a * src_len + b), float(cap)), tf.int32)


def setup(model: SearchModel, source: tf.Tensor, prefix: tf.Tensor, params: SearchParams, rows: int,
          shortlist: tf.Tensor | None = None) -> Setup:
    """Encode, derive per-sentence limits, and build a cache for ``rows`` hypotheses per sentence.

    With a ``shortlist`` the search runs in shortlist positions (see ``init_cache``): the
    prefixes are mapped into them here and the outputs back by ``to_vocabulary``.
    """
    memory, source_mask = model.encode(source)
    src_len = tf.reduce_sum(tf.cast(source_mask, tf.float32), axis=1)
    if shortlist is not None:  # prefix ids are in the shortlist (the caller puts them there)
        prefix = tf.reshape(tf.searchsorted(shortlist, tf.reshape(prefix, [-1]), out_type=tf.int32),
                            tf.shape(prefix))
    prefix = tf.pad(prefix, [[0, 0], [0, 1]])  # never empty, gathers stay in range
    prefix_len = tf.reduce_sum(tf.cast(tf.not_equal(prefix, PAD_ID), tf.int32), axis=1)
    max_len = tf.maximum(_length_limit(params, src_len, model.max_length - 1), prefix_len)
    max_len = tf.clip_by_value(max_len, 0, model.max_length - 1)
    return Setup(
        batch=tf.shape(source)[0],
        cache=model.init_cache(memory, source_mask, beam_size=rows, shortlist=shortlist),
        source_mask=source_mask,
        max_len=max_len,
        prefix=prefix,
        prefix_len=prefix_len,
        steps=tf.reduce_max(max_len) + 1,
    )


def to_vocabulary(out: dict[str, tf.Tensor], shortlist: tf.Tensor) -> dict[str, tf.Tensor]:
    """A search's outputs with shortlist positions turned back into vocabulary ids (padding,
    position 0, stays id 0)."""
    return {**out, "tokens": tf.gather(shortlist, out["tokens"])}


def forced(setup: Setup, step: tf.Tensor, rows: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(restricted [B*rows], token [B*rows]): prefix token while forcing, eos at max length."""
    prefix_tok = tf.gather(setup.prefix, tf.minimum(step, tf.shape(setup.prefix)[1] - 1), axis=1)
    in_prefix = step < setup.prefix_len
    restricted = tf.logical_or(in_prefix, step >= setup.max_len)
    token = tf.where(in_prefix, prefix_tok, EOS_ID)
    if rows > 1:
        restricted, token = tf.repeat(restricted, rows), tf.repeat(token, rows)
    return restricted, token
