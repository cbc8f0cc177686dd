#!/usr/bin/env python3
"""Model FLOPs of a Transformer training step, and this machine's matrix-product rate at that
step's own shapes: the two halves of model FLOP utilisation (`mfu`) in bench_train.py.

The rate is measured on the matrix products a step runs (forward x @ W and the two backward
products dY @ W^T and X^T @ dY, for every projection, FFN and the output layer, with the
step's row count), each timed in TensorFlow in its own process with mt-cli's runtime settings,
and combined FLOP-weighted: total FLOPs / total time. Attention's score/value products
(~1% of the FLOPs at d=256 and Multi30k lengths) are left out of both halves.

  python scripts/flops.py --precision float32 --rows 4096 --hidden 256 --ffn 1024 --vocab 8000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

Shape = tuple[int, int, int, int]  # (m, k, n, count per step): [m, k] @ [k, n]


@dataclass(frozen=True)
class Dims:
    encoder_layers: int
    decoder_layers: int
    hidden: int
    ffn: int
    vocab: int


def forward_shapes(dims: Dims, rows: int) -> list[Shape]:
    """The step's forward matrix products (the model's fused QKV and cross-attention KV)."""
    d, f, e, n = dims.hidden, dims.ffn, dims.encoder_layers, dims.decoder_layers
    return [
        (rows, d, 3 * d, e),
        (rows, d, d, e),
        (rows, d, f, e),
        (rows, f, d, e),
        (rows, d, 3 * d, n),
        (rows, d, d, 3 * n),
        (rows, d, 2 * d, n),
        (rows, d, f, n),
        (rows, f, d, n),
        (rows, d, dims.vocab, 1),
    ]


def training_shapes(dims: Dims, rows: int) -> list[Shape]:
    """Forward products and their two gradients (dX = dY W^T, dW = X^T dY)."""
    shapes = []
    for m, k, n, count in forward_shapes(dims, rows):
        shapes += [(m, k, n, count), (m, n, k, count), (k, m, n, count)]
    return shapes


def flops_per_token(dims: Dims) -> tuple[float, float]:
    """Training FLOPs (forward + backward = 3x forward) per source and per target token."""
    d, f = dims.hidden, dims.ffn
    source = dims.encoder_layers * 2 * (4 * d * d + 2 * d * f) + dims.decoder_layers * 2 * (
        2 * d * d
    )
    target = dims.decoder_layers * 2 * (4 * d * d + 2 * d * d + 2 * d * f) + 2 * d * dims.vocab
    return 3.0 * source, 3.0 * target


def model_flops_per_s(dims: Dims, tokens_per_s: float, source_share: float) -> float:
    """Achieved model FLOP/s from fed (non-pad source + target) tokens/s."""
    per_source, per_target = flops_per_token(dims)
    return tokens_per_s * (source_share * per_source + (1 - source_share) * per_target)


def measure_rate(shapes: list[Shape], precision: str, repeats: int = 10) -> dict:
    """Time each product in TensorFlow (compiled, warmed up); GFLOP/s, FLOP-weighted."""
    import tensorflow as tf

    dtype = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}[precision]
    total_flops = total_time = 0.0
    per_shape = []
    counts: dict[tuple[int, int, int], int] = {}
    for m, k, n, count in shapes:
        counts[(m, k, n)] = counts.get((m, k, n), 0) + count
    for (m, k, n), count in counts.items():
        a = tf.cast(tf.random.normal([m, k]), dtype)
        b = tf.cast(tf.random.normal([k, n]), dtype)
        product = tf.function(
            lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32))
        )
        product(a, b).numpy()
        started = time.perf_counter()
        for _ in range(repeats):
            product(a, b).numpy()
        seconds = (time.perf_counter() - started) / repeats
        flops = 2.0 * m * k * n
        per_shape.append(
            {"shape": [m, k, n], "count": count, "gflops": round(flops / seconds / 1e9, 1)}
        )
        total_flops += flops * count
        total_time += seconds * count
    return {
        "precision": precision,
        "gflops": round(total_flops / total_time / 1e9, 1),
        "shapes": per_shape,
    }


def rate_in_child(dims: Dims, rows: int, precision: str) -> dict:
    """measure_rate in a fresh process with mt-cli's allocator and thread settings."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from mt_cli.core.runtime import configure_environment

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    configure_environment(env)
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--precision",
        precision,
        "--rows",
        str(rows),
        "--encoder-layers",
        str(dims.encoder_layers),
        "--decoder-layers",
        str(dims.decoder_layers),
        "--hidden",
        str(dims.hidden),
        "--ffn",
        str(dims.ffn),
        "--vocab",
        str(dims.vocab),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--precision", default="float32", choices=("float32", "bfloat16", "float16")
    )
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--encoder-layers", type=int, default=3)
    parser.add_argument("--decoder-layers", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--ffn", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=8000)
    args = parser.parse_args()
    dims = Dims(args.encoder_layers, args.decoder_layers, args.hidden, args.ffn, args.vocab)
    print(json.dumps(measure_rate(training_shapes(dims, args.rows), args.precision)))


if __name__ == "__main__":
    main()
