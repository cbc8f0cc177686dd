"""Transformer building blocks with explicit mixed-precision handling.

Weights, declared once.  Each layer lists its weights in ``__init__`` as ``weight_specs``
(name, shape, initializer; a dense kernel + bias pair as one ``Projection``).  That one
declaration is read by ``build`` (which creates the variables, the Keras way), by
``weights_for_compute`` (the compute-dtype copies) and by the CTranslate2 exporter
(mt_cli/engines/ct2_convert.py).  The names, the declaration order and the class names are
the weights file's format (Keras stores a layer's variables by position under its class's
name), so they stay as they are; tests/test_weights_layout.py holds them to the files
written before.  The initializers are made with the declaration, in ``__init__``: an
unseeded Keras initializer draws its seed when made, so seeded runs keep their initial
values.  Sizes come from the constructor, so ``build`` needs no input shape and
``Transformer.build`` builds the whole model without data.

Weights are float32 with ``autocast=False``; every layer casts them to its compute dtype
itself.  ``weights_for_compute()`` returns the cast tensors so incremental decoding casts
once per search instead of once per step (under bf16 the per-step casts cost more than the
matmuls they feed).

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
from dataclasses import asdict, dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

# Additive bias for masked attention logits; added only in float32 (softmax
# runs in float32), so it cannot overflow under float16.
NEG_INF = -1e9

Weights = dict[str, tf.Tensor]


@dataclass
class AttentionRecord:
    """Attention probabilities collected during a forward pass, one [B, H, Tq, Tk] float32
    tensor per layer (for alignments and attention pictures; never during training)."""

    encoder: list[tf.Tensor] = field(default_factory=list)
    decoder: list[tf.Tensor] = field(default_factory=list)
    cross: list[tf.Tensor] = field(default_factory=list)


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """[length, dim] float32 table, sin half then cos half (no weights needed)."""
    half = dim // 2
    inv_freq = np.exp(-math.log(10000.0) * np.arange(half) / max(half - 1, 1))
    angles = np.arange(length, dtype=np.float64)[:, None] * inv_freq[None, :]
    table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    if dim % 2:
        table = np.pad(table, [(0, 0), (0, 1)])
    return table.astype(np.float32)


def padding_bias(mask: tf.Tensor) -> tf.Tensor:
    """Bool key mask [B, S] -> float32 additive bias [B, 1, 1, S]."""
    bias = (1.0 - tf.cast(mask, tf.float32)) * NEG_INF
    return bias[:, tf.newaxis, tf.newaxis, :]


def causal_bias(length: tf.Tensor) -> tf.Tensor:
    """Float32 [1, 1, T, T] bias hiding future positions."""
    allowed = tf.linalg.band_part(tf.ones([length, length], tf.float32), -1, 0)
    return ((1.0 - allowed) * NEG_INF)[tf.newaxis, tf.newaxis]


def _glorot(fan_in: int, fan_out: int) -> keras.initializers.Initializer:
    """Glorot-uniform of one [fan_in, fan_out] block, also used inside fused kernels."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return keras.initializers.RandomUniform(-limit, limit)


def dense(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """x[..., in] @ kernel + bias as a 2-D matmul, which oneDNN fuses with the bias."""
    if x.shape.rank == 2:
        return tf.nn.bias_add(tf.matmul(x, kernel), bias)
    lead = tf.shape(x)[:-1]
    y = tf.nn.bias_add(tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), kernel), bias)
    return tf.reshape(y, tf.concat([lead, tf.shape(kernel)[1:]], axis=0))


@dataclass(frozen=True)
class WeightSpec:
    """One weight as the weights file knows it: its name (also the layer attribute and the
    variable name), shape and initializer.  ``cast=False`` keeps its compute copy float32."""

    name: str
    shape: tuple[int, ...]
    initializer: str | keras.initializers.Initializer
    cast: bool = True


@dataclass(frozen=True)
class Projection:
    """A dense projection declared as one unit: kernel ``<name>_kernel`` [fan_in, fan_out] and
    a zero-initialised bias ``<name>_bias`` [fan_out] (CTranslate2 calls it a linear)."""

    name: str
    fan_in: int
    fan_out: int
    initializer: keras.initializers.Initializer

    @property
    def kernel(self) -> str:
        return f"{self.name}_kernel"

    @property
    def bias(self) -> str:
        return f"{self.name}_bias"

    def specs(self) -> tuple[WeightSpec, WeightSpec]:
        """Kernel then bias, the order the weights file stores them in."""
        return (WeightSpec(self.kernel, (self.fan_in, self.fan_out), self.initializer),
                WeightSpec(self.bias, (self.fan_out,), "zeros"))

    def apply(self, x: tf.Tensor, w: Weights) -> tf.Tensor:
        """x @ kernel + bias with the compute-dtype copies in ``w``."""
        return dense(x, w[self.kernel], w[self.bias])


@keras.saving.register_keras_serializable(package="mt_cli")
class ByteDropout(keras.layers.Layer):
    """Dropout drawing one random byte per element instead of one 32-bit float.

    The random draws dominate dropout's cost on CPU; packing four byte-draws into each
    32-bit Philox output halves the time of every dropout in training. The rate is
    rounded to a multiple of 1/256 (0.1 -> 25/256 = 0.098), and the kept values are
    scaled by the exact inverse keep probability, so the expectation is unchanged.
    The seed generator's state is a model variable, so resume restores the stream.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.threshold = round(rate * 256)
        self.scale = 256.0 / (256 - self.threshold) if self.threshold < 256 else 0.0
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True  # no weights; the seed state is made here, as keras.layers.Dropout does

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}

    def call(self, x: tf.Tensor, training: bool | None = False) -> tf.Tensor:
        if not training or self.threshold == 0:
            return x
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        count = tf.size(x)
        words = tf.random.stateless_uniform([(count + 3) // 4], seed, minval=None, maxval=None,
                                            dtype=tf.int32)
        draws = tf.reshape(tf.bitcast(words, tf.uint8), [-1])[:count]
        keep = tf.reshape(draws >= tf.constant(self.threshold, tf.uint8), tf.shape(x))
        return tf.where(keep, x * tf.cast(self.scale, x.dtype), tf.zeros_like(x))


def maybe_dropout(layer: keras.layers.Layer, x: tf.Tensor, training: bool | None) -> tf.Tensor:
    """Skip the dropout op entirely at inference (keeps decode graphs small)."""
    return layer(x, training=True) if training else x


class DeclaredLayer(keras.layers.Layer):
    """Base of the layers owning weights: ``weight_specs``, set in ``__init__``, is the one
    list that ``build``, ``weights_for_compute`` and the exporter read."""

    weight_specs: tuple[WeightSpec, ...] = ()

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        # Arguments come in mixed dtypes on purpose (float32 attention biases beside
        # compute-dtype activations, which a float16 cast would overflow) and as attention
        # records (lists): Keras must pass them through untouched; the layers cast themselves.
        self._convert_input_args = False

    def build(self, input_shape: object = None) -> None:
        """Create the declared weights: float32, never autocast, sized by the constructor."""
        for spec in self.weight_specs:
            variable = self.add_weight(shape=spec.shape, initializer=spec.initializer, name=spec.name,
                                       autocast=False)
            setattr(self, spec.name, variable)

    def declared_weights(self) -> dict[str, keras.Variable]:
        """The variables in declaration order (the weights file's order), by name."""
        return {spec.name: getattr(self, spec.name) for spec in self.weight_specs}

    def weights_for_compute(self) -> Weights:
        """This layer's weights as compute-dtype tensors (float32 where a spec says so)."""
        return {
            spec.name: tf.cast(getattr(self, spec.name), self.compute_dtype)
            if spec.cast
            else tf.convert_to_tensor(getattr(self, spec.name))
            for spec in self.weight_specs
        }


@keras.saving.register_keras_serializable(package="mt_cli")
class LayerNorm(DeclaredLayer):
    """Layer normalisation whose statistics and affine part run in float32."""

    def __init__(self, dim: int, epsilon: float = 1e-5, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.dim, self.epsilon = dim, epsilon
        self._gamma = WeightSpec("gamma", (dim,), "ones", cast=False)
        self._beta = WeightSpec("beta", (dim,), "zeros", cast=False)
        self.weight_specs = (self._gamma, self._beta)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dim": self.dim, "epsilon": self.epsilon}

    def apply(self, x: tf.Tensor, w: Weights) -> tf.Tensor:
        # Written out rather than tf.nn.moments: half the ops, ~2x faster on CPU.
        x32 = tf.cast(x, tf.float32)
        centered = x32 - tf.reduce_mean(x32, axis=-1, keepdims=True)
        var = tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
        y = centered * tf.math.rsqrt(var + self.epsilon) * w[self._gamma.name] + w[self._beta.name]
        return tf.cast(y, self.compute_dtype)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.apply(x, self.weights_for_compute())


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
        init = _glorot(dim, dim)  # one [D, D] block's initializer for every projection
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
        self._inner = Projection("inner", dim, ffn_dim, _glorot(dim, ffn_dim))
        self._outer = Projection("outer", ffn_dim, dim, _glorot(ffn_dim, dim))
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
