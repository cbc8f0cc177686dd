"""The job an engine is chosen for, and whether the native engine's start repays itself on it.

Why: the CTranslate2 engine starts in well under a second, the native one pays TensorFlow's
start (import, graph tracing: ~4.4 s on an Intel Xeon with AMX, 2 cores) before its first line.
Where the native engine decodes faster once loaded, it wins on jobs long enough to repay that
start; `auto` must decide before loading anything, from what the job says of itself: a server
decodes for as long as it runs, a file's lines can be counted (up to the crossover, so the count
stays bounded), a pipe is unknown and may be short.

Measured decode-only rates, transformer-small on Multi30k test2016, beam 4, batch 32, sentences/s,
each machine's figures in one sitting:
  Intel Xeon with AMX (amx_bf16, avx512_bf16), 2 cores: native bfloat16 146.7, CTranslate2
      float32 117.2 (1.25x), int8 ~1.1x float32 (issue 31's figures);
  AMD EPYC, 2 cores, flags: avx2 avx512f avx512_bf16 (Zen 4, no AMX): native bfloat16 below
      CTranslate2 float32 (docs/performance.md);
  AMD EPYC, 2 cores, flags: avx2 (Zen 3): native float32 71-77, CTranslate2 float32 118-124.
Native float32 decoding was slower than CTranslate2 on every machine, so the native engine can
only win in bfloat16 (asked for: `auto` decodes in float32, see core/runtime.py) on AMX units.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mt_cli.core.hardware import Cpu

NATIVE_WINS_FLAG = "amx_bf16"
TENSORFLOW_START_S = 4.4
# Native bfloat16's rate over CTranslate2's in each compute type on AMX, and the lines past which
# it repays TensorFlow's start: start / (1 / ct2 rate - 1 / native rate), 146.7 against 117.2
# (float32) and ~129 (int8) sentences/s.
NATIVE_SPEEDUP = {"float32": 1.25, "int8": 1.14}
CROSSOVER_LINES = {"float32": 2_600, "int8": 4_700}
COUNT_CHUNK = 1 << 20


@dataclass(frozen=True)
class Job:
    """What `auto` knows of the work before loading: a server, or an input file (None: stdin),
    whose lines are counted only when asked (`lines`), so a job that CPU and dtype already
    decide is never read twice."""

    server: bool = False
    path: Path | None = None
    bound: int = max(CROSSOVER_LINES.values())

    @cached_property
    def counted(self) -> tuple[int | None, bool]:
        """(lines up to `bound`, whether the bound stopped the count); (None, False) for stdin,
        a pipe or a device, never read here (what is read from a pipe is gone), and for an
        unreadable path, whose error reading it reports with its name."""
        if self.path is None:
            return None, False
        count = 0
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                return None, False
            with open(self.path, "rb") as stream:
                while count < self.bound and (chunk := stream.read(COUNT_CHUNK)):
                    count += chunk.count(b"\n")
        except OSError:
            return None, False
        return min(count, self.bound), count >= self.bound

    @property
    def lines(self) -> int | None:
        return self.counted[0]

    def describe(self) -> str:
        if self.server:
            return "a server decodes for as long as it runs"
        lines, bounded = self.counted
        if lines is None:
            return "the input's length is unknown (stdin)"
        return f"the input has {'at least ' if bounded else ''}{lines:,} lines"


def native_repays(job: Job, cpu: Cpu, dtype: str, compute_type: str) -> str | None:
    """Why the native engine, in `dtype`, is faster than CTranslate2 in `compute_type` on this
    job and CPU (the reason said on the engine line), or None."""
    if dtype != "bfloat16" or NATIVE_WINS_FLAG not in cpu.flags:
        return None
    crossover = CROSSOVER_LINES.get(compute_type)
    if crossover is None:
        return None
    if not job.server and (job.lines is None or job.lines < crossover):
        return None
    return (f"decode.dtype bfloat16 on a CPU with AMX ({NATIVE_WINS_FLAG}): the native engine decodes "
            f"{NATIVE_SPEEDUP[compute_type]}x "
            f"CTranslate2's rate there once loaded, which repays TensorFlow's ~{TENSORFLOW_START_S} s start past "
            f"{crossover:,} lines against CTranslate2 {compute_type}; {job.describe()}")
