"""Transformer blocks: the feed-forward layer, encoder and decoder layers with their residual
wiring, and the position table.

The weights of every layer are declared once (mt_cli/model/declared.py); attention lives in
mt_cli/model/attention.py.

Two paths, one test.  The teacher-forced path (training and the full forward:
``EncoderLayer`` / ``DecoderLayer`` called on whole sequences, through
``MultiHeadAttention.call``, ``FeedForward.apply`` and ``LayerNorm.apply``) and the
incremental path (cached decoding: ``DecoderLayer.step`` through
``MultiHeadAttention.step_self`` / ``step_cross`` on the ``weights_for_compute`` copies) are
the same function written twice.  tests/test_model.py::test_cached_decoding_matches_full_forward
keeps them equal (with test_beams_reorder_and_while_loop for reordered caches, and
tests/test_search.py::test_greedy_matches_full_recomputation for the search on top).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mt_cli.model.attention import AttentionRecord, MultiHeadAttention
from mt_cli.model.declared import ByteDropout, DeclaredLayer, LayerNorm, Projection, Weights, glorot, maybe_dropout


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """[length, dim] float32 table, sin half then cos half (no weights needed)."""
    half = dim // 2
    inv_freq = np.exp(-math.log(10000.0) * np.arange(half) / max(half - 1, 1))
    angles = np.arange(length, dtype=np.float64)[:, None] * inv_freq[None, :]
    table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    if dim % 2:
        table = np.pad(table, [(0, 0), (0, 1)])
    return table.astype(np.float32)


@keras.saving.register_keras_serializable(package="mt_cli")
class FeedForward(DeclaredLayer):
    """Position-wise two-layer MLP with dropout on the inner activation."""

    def __init__(
        self, dim: int, ffn_dim: int, dropout: float, activation: str, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        if activation not in ("relu", "gelu"):
            raise ValueError(f"unknown activation {activation!r}")
        self.dim, self.ffn_dim, self.dropout, self.activation = dim, ffn_dim, dropout, activation
        self._inner = Projection("inner", dim, ffn_dim, glorot(dim, ffn_dim))
        self._outer = Projection("outer", ffn_dim, dim, glorot(ffn_dim, dim))
        self.projections = (self._inner, self._outer)
        self.weight_specs = (*self._inner.specs(), *self._outer.specs())
        self.inner_dropout = ByteDropout(dropout, dtype=self.dtype_policy)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dim": self.dim, "ffn_dim": self.ffn_dim,
                "dropout": self.dropout, "activation": self.activation}

    def apply(self, x: tf.Tensor, w: Weights, training: bool | None = False) -> tf.Tensor:
        h = self._inner.apply(x, w)
        h = tf.nn.relu(h) if self.activation == "relu" else tf.nn.gelu(h, approximate=True)
        h = maybe_dropout(self.inner_dropout, h, training)
        return self._outer.apply(h, w)

    def call(self, x: tf.Tensor, training: bool | None = False) -> tf.Tensor:
        return self.apply(x, self.weights_for_compute(), training)


@dataclass(frozen=True)
class BlockSpec:
    """Sizes and options shared by every encoder/decoder layer."""

    dim: int
    num_heads: int
    ffn_dim: int
    dropout: float
    attention_dropout: float
    ffn_dropout: float
    norm: str
    activation: str


class _Block(keras.layers.Layer):
    """Residual wiring: pre-norm ``x + f(norm(x))`` or post-norm ``norm(x + f(x))``.

    ``PARTS`` names the sub-layers owning weights; ``build`` builds them (their sizes come
    from the spec, so no input shape is needed).
    """

    PARTS: tuple[str, ...] = ()

    def __init__(self, spec: BlockSpec, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if spec.norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', got {spec.norm!r}")
        self.block_spec = spec
        self.pre_norm = spec.norm == "pre"
        self._convert_input_args = False  # float32 biases and records pass as they are
        self.residual_dropout = ByteDropout(spec.dropout, dtype=self.dtype_policy)

    def build(self, input_shape: object = None) -> None:
        for part in (getattr(self, name) for name in self.PARTS):
            if not part.built:
                part.build(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "spec": asdict(self.block_spec)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> _Block:
        return super().from_config({**config, "spec": BlockSpec(**config["spec"])})

    def _residual(
        self,
        x: tf.Tensor,
        norm: Callable[[tf.Tensor], tf.Tensor],
        fn: Callable[[tf.Tensor], tf.Tensor],
        training: bool | None,
    ) -> tf.Tensor:
        if self.pre_norm:
            return x + maybe_dropout(self.residual_dropout, fn(norm(x)), training)
        return norm(x + maybe_dropout(self.residual_dropout, fn(x), training))


@keras.saving.register_keras_serializable(package="mt_cli")
class EncoderLayer(_Block):
    """Self-attention + FFN."""

    PARTS = ("self_attn", "self_attn_norm", "ffn", "ffn_norm")

    def __init__(self, spec: BlockSpec, **kwargs: object) -> None:
        super().__init__(spec, **kwargs)
        policy = self.dtype_policy
        self.self_attn = MultiHeadAttention(
            spec.dim, spec.num_heads, spec.attention_dropout, True, dtype=policy
        )
        self.self_attn_norm = LayerNorm(spec.dim, dtype=policy)
        self.ffn = FeedForward(
            spec.dim, spec.ffn_dim, spec.ffn_dropout, spec.activation, dtype=policy
        )
        self.ffn_norm = LayerNorm(spec.dim, dtype=policy)

    def call(self, x: tf.Tensor, bias: tf.Tensor, training: bool | None = False,
             record: AttentionRecord | None = None) -> tf.Tensor:
        probs = None if record is None else record.encoder
        attn = lambda h: self.self_attn(h, bias=bias, training=training, record=probs)
        x = self._residual(x, self.self_attn_norm, attn, training)
        return self._residual(x, self.ffn_norm, lambda h: self.ffn(h, training=training), training)


@keras.saving.register_keras_serializable(package="mt_cli")
class DecoderLayer(_Block):
    """Causal self-attention + cross-attention + FFN, plus a one-token ``step``."""

    PARTS = ("self_attn", "self_attn_norm", "cross_attn", "cross_attn_norm", "ffn", "ffn_norm")

    def __init__(self, spec: BlockSpec, **kwargs: object) -> None:
        super().__init__(spec, **kwargs)
        policy = self.dtype_policy
        self.self_attn = MultiHeadAttention(
            spec.dim, spec.num_heads, spec.attention_dropout, True, dtype=policy
        )
        self.self_attn_norm = LayerNorm(spec.dim, dtype=policy)
        self.cross_attn = MultiHeadAttention(
            spec.dim, spec.num_heads, spec.attention_dropout, False, dtype=policy
        )
        self.cross_attn_norm = LayerNorm(spec.dim, dtype=policy)
        self.ffn = FeedForward(
            spec.dim, spec.ffn_dim, spec.ffn_dropout, spec.activation, dtype=policy
        )
        self.ffn_norm = LayerNorm(spec.dim, dtype=policy)

    def call(
        self,
        x: tf.Tensor,
        memory: tf.Tensor,
        self_bias: tf.Tensor,
        memory_bias: tf.Tensor,
        training: bool | None = False,
        record: AttentionRecord | None = None,
    ) -> tf.Tensor:
        self_probs, cross_probs = (None, None) if record is None else (record.decoder, record.cross)
        self_attn = lambda h: self.self_attn(h, bias=self_bias, training=training, record=self_probs)
        cross_attn = lambda h: self.cross_attn(
            h, memory=memory, bias=memory_bias, training=training, record=cross_probs
        )
        x = self._residual(x, self.self_attn_norm, self_attn, training)
        x = self._residual(x, self.cross_attn_norm, cross_attn, training)
        return self._residual(x, self.ffn_norm, lambda h: self.ffn(h, training=training), training)

    def weights_for_compute(self) -> dict[str, Weights]:
        """Every sub-layer's compute-dtype weights, for ``step``."""
        return {n: getattr(self, n).weights_for_compute() for n in self.PARTS}

    def step(
        self,
        x: tf.Tensor,
        cache: dict[str, tf.Tensor],
        memory_bias: tf.Tensor,
        w: dict[str, Weights],
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor], tf.Tensor]:
        """Decode one position x [B, D]; returns (y, updated cache, cross probs [B, H, S])."""
        new_cache = dict(cache)
        probs: list[tf.Tensor] = []

        def self_fn(h: tf.Tensor) -> tf.Tensor:
            out, new_cache["self_k"], new_cache["self_v"] = self.self_attn.step_self(
                h, cache["self_k"], cache["self_v"], w["self_attn"]
            )
            return out

        def cross_fn(h: tf.Tensor) -> tf.Tensor:
            out, p = self.cross_attn.step_cross(
                h, cache["memory_k"], cache["memory_v"], memory_bias, w["cross_attn"]
            )
            probs.append(p)
            return out

        norm = lambda name: lambda h: getattr(self, name).apply(h, w[name])
        x = self._residual(x, norm("self_attn_norm"), self_fn, False)
        x = self._residual(x, norm("cross_attn_norm"), cross_fn, False)
        x = self._residual(x, norm("ffn_norm"), lambda h: self.ffn.apply(h, w["ffn"]), False)
        return x, new_cache, probs[0]
