"""How much memory a model section asks for, checked against the machine before anything is
allocated.

`--set model.max_length=1000000000` allocated 8.4 GB for the position table and ended in a
numpy traceback; `model.hidden_dim=2147483648` asked for 17.4 GB first. Each field has a
bound (core/config.py); the products that decide memory are checked here, at config load,
so a config file, `--set` and a model directory's config.yaml are refused in one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

FLOAT32 = 4
_POSITIONS_PEAK = 16  # bytes per (position, dim): sinusoidal_positions builds float64 angles, sin, cos


@dataclass(frozen=True)
class SizeTerm:
    """One product in the estimate: its bytes, the keys it grows with (the one to name first),
    and what they say."""

    nbytes: int
    keys: tuple[str, ...]
    what: str


def size_terms(encoder_layers: int, decoder_layers: int, hidden_dim: int, ffn_dim: int, max_length: int,
               vocab_size: int, share_embeddings: str) -> list[SizeTerm]:
    """Float32 weights (embeddings, layers) and the position table, in bytes (biases and norms
    included; within a few percent of the built model)."""
    d, f = hidden_dim, ffn_dim
    tables = {"all": 1, "target": 2, "none": 3}.get(share_embeddings, 3)
    attention, feed_forward, norm = 4 * d * d + 4 * d, 2 * d * f + f + d, 2 * d
    encoder = encoder_layers * (attention + feed_forward + 2 * norm)
    decoder = decoder_layers * (2 * attention + feed_forward + 3 * norm)
    return [
        SizeTerm(tables * vocab_size * d * FLOAT32, ("tokenizer.vocab_size", "model.hidden_dim"),
                 f"{tables} embedding table(s) of tokenizer.vocab_size={vocab_size} x model.hidden_dim={d}"),
        SizeTerm((encoder + decoder) * FLOAT32,
                 ("model.ffn_dim", "model.hidden_dim") if f > 2 * d else ("model.hidden_dim", "model.ffn_dim"),
                 f"model.encoder_layers={encoder_layers} + model.decoder_layers={decoder_layers} layers of "
                 f"model.hidden_dim={d}, model.ffn_dim={f}"),
        SizeTerm(max_length * d * _POSITIONS_PEAK, ("model.max_length", "model.hidden_dim"),
                 f"a position table of model.max_length={max_length} x model.hidden_dim={d}"),
    ]


def available_memory() -> tuple[int, str]:
    """(bytes, where the figure comes from): the smallest of MemAvailable, a cgroup v2 limit
    and physical memory."""
    found: list[tuple[int, str]] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            found.append((int(limit), "the cgroup limit /sys/fs/cgroup/memory.max"))
    except OSError:
        pass
    try:
        found.append((os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "physical memory"))
    except (OSError, ValueError, AttributeError):
        pass
    return min(found) if found else (0, "")
