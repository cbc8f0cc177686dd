"""Weights declared once, and the layers built only from them (layer norm, dropout).

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

Weights = dict[str, tf.Tensor]


def glorot(fan_in: int, fan_out: int) -> keras.initializers.Initializer:
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
        # x times a {0, scale} mask: the same values as where(keep, x * scale, 0) for finite x,
        # and its gradient is one Mul (where's is ZerosLike + SelectV2, then the scaling Mul)
        mask = tf.where(keep, tf.cast(self.scale, x.dtype), tf.zeros([], x.dtype))
        return x * mask


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


def normalise_layer(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float,
                    dtype: str) -> tf.Tensor:
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis, in float32, cast to
    `dtype`; with its gradient written out.

    Why: written out rather than tf.nn.moments (half the ops, ~2x faster on CPU), and
    differentiated by hand: automatic differentiation of the forward ops made ~20 backward ops
    per norm, where the closed form (dx = (h - mean(h) - xhat * mean(h * xhat)) / std, with
    h = dy * gamma) needs about half, from the normalised values kept from the forward pass.
    """

    @tf.custom_gradient
    def norm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) -> tuple[tf.Tensor, Any]:
        x32 = tf.cast(x, tf.float32)
        centered = x32 - tf.reduce_mean(x32, axis=-1, keepdims=True)
        inverse_std = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True) + epsilon)
        normalised = centered * inverse_std

        def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            dy = tf.cast(upstream, tf.float32)
            rows = [-1, tf.shape(normalised)[-1]]
            d_gamma = tf.reduce_sum(tf.reshape(dy * normalised, rows), axis=0)
            d_beta = tf.reduce_sum(tf.reshape(dy, rows), axis=0)
            h = dy * gamma
            dx = inverse_std * (h - tf.reduce_mean(h, axis=-1, keepdims=True)
                                - normalised * tf.reduce_mean(h * normalised, axis=-1, keepdims=True))
            return tf.cast(dx, x.dtype), d_gamma, d_beta

        return tf.cast(normalised * gamma + beta, dtype), grad

    return norm(x, gamma, beta)


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
        return normalise_layer(x, w[self._gamma.name], w[self._beta.name], self.epsilon, self.compute_dtype)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.apply(x, self.weights_for_compute())
