"""Multi-head attention with fused projections and a decoding cache, and the additive biases
that mask it (padding, the future).

Its weights are declared the way every layer declares them (mt_cli/model/declared.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import tensorflow as tf

from mt_cli.model.declared import ByteDropout, DeclaredLayer, Projection, Weights, glorot, maybe_dropout

# Additive bias for masked attention logits; added only in float32 (softmax
# runs in float32), so it cannot overflow under float16.
NEG_INF = -1e9


@dataclass
class AttentionRecord:
    """Attention probabilities collected during a forward pass, one [B, H, Tq, Tk] float32
    tensor per layer (for alignments and attention pictures; never during training)."""

    encoder: list[tf.Tensor] = field(default_factory=list)
    decoder: list[tf.Tensor] = field(default_factory=list)
    cross: list[tf.Tensor] = field(default_factory=list)


def padding_bias(mask: tf.Tensor) -> tf.Tensor:
    """Bool key mask [B, S] -> float32 additive bias [B, 1, 1, S]."""
    bias = (1.0 - tf.cast(mask, tf.float32)) * NEG_INF
    return bias[:, tf.newaxis, tf.newaxis, :]


def causal_bias(length: tf.Tensor) -> tf.Tensor:
    """Float32 [1, 1, T, T] bias hiding future positions."""
    allowed = tf.linalg.band_part(tf.ones([length, length], tf.float32), -1, 0)
    return ((1.0 - allowed) * NEG_INF)[tf.newaxis, tf.newaxis]


@keras.saving.register_keras_serializable(package="mt_cli")
class MultiHeadAttention(DeclaredLayer):
    """Scaled dot-product attention with fused projections and a decoding cache.

    Self-attention uses one fused [D, 3D] QKV kernel (one matmul per step);
    cross-attention keeps Q apart from a fused [D, 2D] KV kernel so the memory
    keys/values are projected once per sentence.  ``projections`` lists them in
    CTranslate2's order: (qkv, out) or (q, kv, out).
    """

    def __init__(
        self, dim: int, num_heads: int, dropout: float, self_attention: bool, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        if dim % num_heads:
            raise ValueError(f"hidden_dim {dim} not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.self_attention = self_attention
        init = glorot(dim, dim)  # one [D, D] block's initializer for every projection
        if self_attention:
            self._qkv = Projection("qkv", dim, 3 * dim, init)
            inputs: tuple[Projection, ...] = (self._qkv,)
        else:
            self._q = Projection("q", dim, dim, init)
            self._kv = Projection("kv", dim, 2 * dim, init)
            inputs = (self._q, self._kv)
        self._out = Projection("out", dim, dim, init)
        self.projections = (*inputs, self._out)
        self.weight_specs = tuple(spec for p in self.projections for spec in p.specs())
        self.prob_dropout = ByteDropout(dropout, dtype=self.dtype_policy)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads,
                "dropout": self.dropout, "self_attention": self.self_attention}

    def _split_heads(self, x: tf.Tensor, parts: int) -> list[tf.Tensor]:
        """[B, T, parts*D] -> ``parts`` tensors [B, H, T, hd] with one transpose."""
        b, t = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [b, t, parts, self.num_heads, self.head_dim])
        return tf.unstack(tf.transpose(x, [2, 0, 3, 1, 4]), num=parts, axis=0)

    def _merge_heads(self, x: tf.Tensor) -> tf.Tensor:
        """[B, H, T, hd] -> [B, T, D]."""
        b, t = tf.shape(x)[0], tf.shape(x)[2]
        return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, t, self.dim])

    def _attend(
        self,
        q: tf.Tensor,
        k: tf.Tensor,
        v: tf.Tensor,
        bias: tf.Tensor | None,
        training: bool | None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """softmax(q k^T / sqrt(hd) + bias) v; scores and softmax in float32."""
        q = q * tf.cast(self.head_dim**-0.5, q.dtype)
        scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32)
        if bias is not None:
            scores += bias
        probs = tf.nn.softmax(scores)
        dropped = maybe_dropout(self.prob_dropout, tf.cast(probs, self.compute_dtype), training)
        return tf.matmul(dropped, v), probs

    def project_memory(self, memory: tf.Tensor, w: Weights) -> tuple[tf.Tensor, tf.Tensor]:
        """Cross-attention keys/values [B, H, S, hd], computed once per sentence."""
        k, v = self._split_heads(self._kv.apply(memory, w), 2)
        return k, v

    def call(
        self,
        x: tf.Tensor,
        memory: tf.Tensor | None = None,
        bias: tf.Tensor | None = None,
        training: bool | None = False,
        record: list[tf.Tensor] | None = None,
    ) -> tf.Tensor:
        """Attention over x itself (self) or over memory (cross); probabilities are appended
        to `record` when given."""
        w = self.weights_for_compute()
        if self.self_attention:
            q, k, v = self._split_heads(self._qkv.apply(x, w), 3)
        else:
            (q,) = self._split_heads(self._q.apply(x, w), 1)
            k, v = self.project_memory(memory, w)
        out, probs = self._attend(q, k, v, bias, training)
        if record is not None:
            record.append(probs)
        return self._out.apply(self._merge_heads(out), w)

    def step_self(
        self, x: tf.Tensor, k_cache: tf.Tensor, v_cache: tf.Tensor, w: Weights
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One new token x [B, D] against the cache [B, H, t, hd]; returns grown caches.

        The new key/value is appended (concat), so attention covers exactly
        the t + 1 real positions and needs no mask.
        """
        b = tf.shape(x)[0]
        qkv = tf.reshape(self._qkv.apply(x, w), [b, 3, self.num_heads, 1, self.head_dim])
        q, k_new, v_new = tf.unstack(qkv, num=3, axis=1)
        k = tf.concat([k_cache, k_new], axis=2)
        v = tf.concat([v_cache, v_new], axis=2)
        out, _ = self._attend(q, k, v, None, False)
        return self._out.apply(tf.reshape(out, [b, self.dim]), w), k, v

    def step_cross(
        self, x: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor, w: Weights
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Tokens x [N*beams, D] against memory K/V [N, H, S, hd] (row i uses memory i // beams).

        All beams of a sentence share one memory, so their queries go into one
        [beams, hd] x [hd, S] product instead of ``beams`` separate ones and the
        memory is never tiled.  Returns (out [N*beams, D], probs [N*beams, H, S]).
        """
        rows, n = tf.shape(x)[0], tf.shape(k)[0]
        beams = rows // n
        q = tf.reshape(self._q.apply(x, w), [n, beams, self.num_heads, self.head_dim])
        q = q * tf.cast(self.head_dim**-0.5, q.dtype)
        # einsum folds the beam/head transposes into the batched matmuls
        # (measured ~1.3x faster than explicit transposes around tf.matmul).
        scores = tf.cast(tf.einsum("nbhd,nhsd->nhbs", q, k), tf.float32) + bias
        probs = tf.nn.softmax(scores)  # [N, H, beams, S]
        out = tf.einsum("nhbs,nhsd->nbhd", tf.cast(probs, self.compute_dtype), v)
        out = self._out.apply(tf.reshape(out, [rows, self.dim]), w)
        return out, tf.reshape(tf.transpose(probs, [0, 2, 1, 3]), [rows, self.num_heads, -1])
