"""The accelerators TensorFlow sees, as the hardware module describes them, and the
precision choices that depend on them (the decision itself lives in mt_cli/core/runtime.py)."""

from __future__ import annotations

import tensorflow as tf

from mt_cli.core.hardware import Gpu, parse_compute_capability, this_cpu
from mt_cli.core.runtime import AUTO, Choice, resolve_decode_dtype, resolve_precision


def visible_gpus() -> list[Gpu]:
    """GPUs this process may use, with their compute capability (CUDA builds report it)."""
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except (RuntimeError, ValueError):
            details = {}
        gpus.append(
            Gpu(
                str(details.get("device_name", device.name)),
                parse_compute_capability(details.get("compute_capability")),
            )
        )
    return gpus


def _gpus_if_auto(requested: str) -> list[Gpu]:
    """Only `auto` looks at the GPUs (an explicit value needs no device query)."""
    return visible_gpus() if requested == AUTO else []


def training_precision(requested: str) -> Choice:
    """train.precision resolved on this machine (`auto` by CPU flags and visible GPUs)."""
    return resolve_precision(requested, this_cpu(), _gpus_if_auto(requested))


def decode_dtype(requested: str) -> Choice:
    """decode.dtype resolved on this machine, for the native engine."""
    return resolve_decode_dtype(requested, this_cpu(), _gpus_if_auto(requested))
