"""How decode options reach the compiled search: the graph key and the typed tensor record.

``DecodeConfig`` gives every option a role (see ``mt_cli.core.config.DECODE_ROLES``).  The
`graph` values, and whether each `switch` is on, pick the compiled graph (``graph_key``); the
`tensor` and `switch` values travel into it as one float vector, read inside the graph as the
typed ``SearchParams`` record, so changing them never retraces (compiled.py caches one compiled
search per model and graph key).  tests/test_search_roles.py
checks that the search code uses each option the way its role says.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from mt_cli.core.config import DecodeConfig, decode_fields

GRAPH_ROLES = ("graph", "switch")  # roles whose value (or being on) shapes the compiled graph
VALUE_ROLES = ("tensor", "switch")  # roles whose value is an input of the compiled graph
# Options passed to the compiled search as one float vector, in field order.
TENSOR_OPTIONS = tuple(f.name for f in decode_fields(*VALUE_ROLES))


FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def _float32(value: float) -> float:
    """An option value as a float32 can hold it: the rules bound most only below (a huge
    max_length_a is valid, and capped by the model inside the search), so saturate, never inf;
    and a positive value stays positive (a top-p of 1e-300 is not 0)."""
    value = max(min(float(value), FLOAT32_MAX), -FLOAT32_MAX)
    return math.copysign(FLOAT32_TINY, value) if 0 < abs(value) < FLOAT32_TINY else value


class SearchParams(NamedTuple):
    """The option values inside the compiled search, scalar float32 tensors (seed: int32 [2]).

    Built by ``unpack`` from the one vector the compiled function takes, so the signature
    stays a single tensor and no value retraces; fields are the `tensor` and `switch` options
    in field order (checked at import), plus the sampling seed the host draws."""

    n_best: tf.Tensor
    length_penalty: tf.Tensor
    coverage_penalty: tf.Tensor
    max_length_a: tf.Tensor
    max_length_b: tf.Tensor
    sampling_topp: tf.Tensor
    sampling_temperature: tf.Tensor
    shortlist: tf.Tensor  # a switch: its value is the caller's (the shortlist ids carry it)
    seed: tf.Tensor

    @staticmethod
    def pack(options: DecodeConfig) -> tuple[tf.Tensor, tf.Tensor]:
        """The compiled search's tensor inputs: option vector [len(TENSOR_OPTIONS)] and seed [2]."""
        values = tf.constant([_float32(getattr(options, name)) for name in TENSOR_OPTIONS], tf.float32)
        seed = options.seed if options.seed is not None else int(np.random.randint(0, 2**31 - 1))
        return values, tf.constant([seed, 0], tf.int32)

    @staticmethod
    def unpack(values: tf.Tensor, seed: tf.Tensor) -> SearchParams:
        """The record from ``pack``'s tensors, inside the graph (one unstack, as before)."""
        return SearchParams(*tf.unstack(values, num=len(TENSOR_OPTIONS)), seed=seed)


if SearchParams._fields != (*TENSOR_OPTIONS, "seed"):
    raise AssertionError(f"SearchParams fields {SearchParams._fields} != the tensor/switch options "
                         f"{TENSOR_OPTIONS} + seed: update the record with DecodeConfig")


def graph_key(options: DecodeConfig) -> tuple:
    """What shapes the compiled graph: `graph` values, and whether each `switch` is on."""
    return tuple(
        (f.name, getattr(options, f.name) if f.metadata["role"] == "graph"
         else getattr(options, f.name) != f.default)
        for f in decode_fields(*GRAPH_ROLES))


def search_mode(options: DecodeConfig) -> str:
    """sample, greedy or beam."""
    if options.sampling:
        return "sample"
    return "greedy" if options.beam_size == 1 else "beam"
