"""Learning-rate schedules (as Keras schedules so the optimizer's step drives them)."""

from __future__ import annotations

import keras
import tensorflow as tf


class NoamSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Vaswani et al. (2017): scale * d^-0.5 * min(step^-0.5, step * warmup^-1.5)."""

    def __init__(self, scale: float, model_dim: int, warmup_steps: int) -> None:
        self.scale = scale
        self.model_dim = model_dim
        self.warmup_steps = max(warmup_steps, 1)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32) + 1.0  # the optimizer counts from 0
        warmup = tf.cast(self.warmup_steps, tf.float32)
        return (self.scale * self.model_dim ** -0.5
                * tf.minimum(tf.math.rsqrt(step), step * warmup ** -1.5))

    def get_config(self) -> dict[str, float]:
        return {"scale": self.scale, "model_dim": self.model_dim, "warmup_steps": self.warmup_steps}


class ConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A fixed rate with an optional linear warmup."""

    def __init__(self, rate: float, warmup_steps: int = 0) -> None:
        self.rate = rate
        self.warmup_steps = warmup_steps

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32) + 1.0
        if not self.warmup_steps:
            return tf.constant(self.rate, tf.float32)
        return self.rate * tf.minimum(1.0, step / float(self.warmup_steps))

    def get_config(self) -> dict[str, float]:
        return {"rate": self.rate, "warmup_steps": self.warmup_steps}


class ShiftedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Another schedule started `offset` steps in: a run initialised from a model directory
    continues the parent's schedule (train.init_reset: false) with a fresh optimizer, whose
    own step count starts at 0."""

    def __init__(self, inner: keras.optimizers.schedules.LearningRateSchedule, offset: int) -> None:
        self.inner = inner
        self.offset = offset

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        return self.inner(tf.cast(step, tf.int64) + self.offset)

    def get_config(self) -> dict[str, object]:
        return {"inner": self.inner.get_config(), "offset": self.offset}


def make_schedule(name: str, learning_rate: float, model_dim: int, warmup_steps: int,
                  offset: int = 0) -> keras.optimizers.schedules.LearningRateSchedule:
    """The configured schedule, started `offset` steps in (0: from its beginning)."""
    inner = (NoamSchedule(learning_rate, model_dim, warmup_steps) if name == "noam"
             else ConstantSchedule(learning_rate, warmup_steps))
    return ShiftedSchedule(inner, offset) if offset else inner
