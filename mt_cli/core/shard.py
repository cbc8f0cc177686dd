"""`--shard K/N`: the K-th of N contiguous parts of a line file, so one long job can be spread
over processes or machines (GNU parallel, Slurm arrays, Kubernetes indexed Jobs) and the
parts' outputs concatenated in order."""

from __future__ import annotations

import re

from mt_cli.core.errors import ConfigError

SHARD_HINT = "expected K/N with whole numbers 1 <= K <= N, e.g. --shard 2/4"


def parse_shard(text: str) -> tuple[int, int]:
    """`2/4` -> (2, 4); a one-line error naming --shard for anything else."""
    found = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text)
    if found is None:
        raise ConfigError(f"--shard: {text!r} is not K/N; {SHARD_HINT}", key="--shard")
    index, count = int(found[1]), int(found[2])
    if not 1 <= index <= count:
        raise ConfigError(f"--shard: {text!r} is out of range; {SHARD_HINT}", key="--shard")
    return index, count


def shard_range(lines: int, index: int, count: int) -> tuple[int, int]:
    """Lines [start, stop) of part `index` (1-based) of `count` over `lines` lines: the parts
    tile 0..lines in order and differ in size by at most one line (empty when count > lines)."""
    return (index - 1) * lines // count, index * lines // count
