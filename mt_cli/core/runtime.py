"""How TensorFlow should run on this machine: precision, allocator and threads, each chosen
from what the hardware has, each with the reason, an explicit value always winning.

Why one module: a default that is right on an AMX Xeon (bfloat16) is 0.86x float32 on an
AMD EPYC, 2 cores, flags: avx2, where bfloat16 is emulated; the choice and its reason must
be made once, the same way for training, decoding and the benchmarks, and be printable.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mt_cli.core.hardware import CPU_FLAGS_ENV, Cpu, Gpu, this_cpu

AUTO = "auto"

# TensorFlow's default CPU allocator hands large buffers back to the kernel after each step
# and faults them in again (42.4M page faults, 128 s of system time in 60 small-preset steps
# on an AMD EPYC, 2 cores, flags: avx2, under KVM; 2.4M and 11 s with BFC); its BFC
# allocator keeps them. Set before TensorFlow is imported; a user's value wins.
ALLOCATOR_ENV = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}


@dataclass(frozen=True)
class Choice:
    """A resolved setting and why (`auto: ...` when mt-cli chose it)."""

    value: str
    reason: str

    def describe(self, name: str) -> str:
        return f"{name}: {self.value} ({self.reason})"


def _gpu_precision(gpus: Sequence[Gpu], allow_float16: bool) -> Choice | None:
    if not gpus:
        return None
    names = ", ".join(
        f"{g.name} (compute capability {g.compute_capability[0]}.{g.compute_capability[1]})"
        for g in gpus
    )
    if all(g.has_bf16_units for g in gpus):
        return Choice("bfloat16", f"auto: GPU {names} has bf16 tensor cores")
    if allow_float16 and all(g.has_tensor_cores for g in gpus):
        return Choice(
            "float16",
            f"auto: GPU {names} has float16 tensor cores, no bf16 ones; float16 with loss scaling",
        )
    return Choice("float32", f"auto: GPU {names} has no bf16 tensor cores")


def flags_source(cpu: Cpu) -> str:
    """Where the flags came from, when not from the CPU itself (said in every auto reason)."""
    return f", as {CPU_FLAGS_ENV} sets its flags" if cpu.flags_set_by == CPU_FLAGS_ENV else ""


def _cpu_precision(cpu: Cpu) -> Choice:
    units = cpu.bf16_units
    if units:
        return Choice("bfloat16", f"auto: this CPU has bf16 units ({', '.join(units)}{flags_source(cpu)})")
    return Choice(
        "float32",
        f"auto: this CPU has no bf16 units{flags_source(cpu)}; bfloat16 would be emulated, slower than float32",
    )


def resolve_precision(requested: str, cpu: Cpu, gpus: Sequence[Gpu] = ()) -> Choice:
    """Training precision: bfloat16 on bf16 hardware (AMX/AVX512-BF16, GPUs >= 8.0), float16
    with loss scaling on older tensor-core GPUs, else float32; an explicit value wins."""
    if requested != AUTO:
        return Choice(requested, "set in the config")
    return _gpu_precision(gpus, allow_float16=True) or _cpu_precision(cpu)


# Why decoding stays float32 where training takes bfloat16: in bfloat16 every product is rounded
# to 8 bits of mantissa, so the last-bit differences that a batch's make-up causes (padding,
# oneDNN's blocking for other shapes) change which token wins: a line's translation then depends
# on the lines batched with it (measured: --batch-size 1 against 32 changed lines on an Intel Xeon
# with AMX). Files, shards, jsonl scores and a server's answers must not.
BATCH_INDEPENDENT = "float32 keeps each line's translation independent of the lines batched with it"


def resolve_decode_dtype(requested: str, cpu: Cpu, gpus: Sequence[Gpu] = ()) -> Choice:
    """Native decoding dtype: float32 unless asked (bfloat16 translations depend on the batching,
    see BATCH_INDEPENDENT; float16 is not a decode dtype: the search's log-probabilities need the
    range). The reason says what bfloat16 would have offered on this hardware."""
    if requested != AUTO:
        if requested == "bfloat16":
            return Choice(requested, "set in the config; translations may depend on the lines batched together")
        return Choice(requested, "set in the config")
    units = [g.name for g in gpus if g.has_bf16_units] if gpus else cpu.bf16_units
    device = "GPU" if gpus else "CPU"
    source = "" if gpus else flags_source(cpu)
    if not units:
        return Choice("float32", f"auto: this {device} has no bf16 units{source}; {BATCH_INDEPENDENT}")
    return Choice("float32", f"auto: {BATCH_INDEPENDENT}; decode.dtype: bfloat16 would use this {device}'s "
                             f"bf16 units ({', '.join(units)}{source}) at that cost")


@dataclass(frozen=True)
class Threads:
    """TensorFlow's thread pools: intra-op (one op's parallel work, oneDNN's matrix products
    included: TensorFlow runs oneDNN on this pool, so OMP_NUM_THREADS plays no part) and
    inter-op (independent ops at once)."""

    intra_op: int
    inter_op: int
    reason: str


def plan_threads(cores: int) -> Threads:
    """TensorFlow's own default, one thread per usable core in both pools, which mt-cli
    leaves alone: on 2 cores it measured fastest (README "Threads": inter-op 1 kept 1.1-1.2
    of 2 CPUs busy, 12-22% fewer tokens/s; TF_NUM_INTRAOP_THREADS set to the very same count
    cost ~60 s of wall time in a 90 s run). A user's TF_NUM_INTRAOP_THREADS and
    TF_NUM_INTEROP_THREADS, or `--threads` where a command has it, win."""
    cores = max(1, cores)
    return Threads(
        cores, cores, f"TensorFlow's default: {cores} usable core{'s' if cores != 1 else ''}"
    )


THREAD_ENV = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def configure_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set, before TensorFlow is imported, what the user has not set (the allocator; threads
    stay TensorFlow's, see plan_threads); returns each variable's value and who set it."""
    env = os.environ if environ is None else environ
    effective = {}
    for name, value in ALLOCATOR_ENV.items():
        owner = "user" if name in env else "mt-cli"
        env.setdefault(name, value)
        effective[name] = f"{env[name]} ({owner})"
    return effective


def child_environment() -> dict[str, str]:
    """This process's environment as a TensorFlow child started by mt-cli will see it (for
    benchmarks describing the runs they start)."""
    env = dict(os.environ)
    configure_environment(env)
    return env


def allocator_name(environ: MutableMapping[str, str] | None = None) -> str:
    """The CPU allocator TensorFlow runs with in this process: `bfc` or `default`."""
    env = os.environ if environ is None else environ
    return "bfc" if env.get("TF_CPU_ALLOCATOR_USE_BFC", "").lower() in ("true", "1") else "default"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


_ONEDNN_PROBE = "import tensorflow as tf; tf.matmul(tf.ones([8, 8]), tf.ones([8, 8])).numpy()"


def _probe_onednn() -> dict[str, str]:
    """Ask oneDNN itself (its verbose mode, in a child process): TensorFlow does not expose
    the version it bundles, nor the instruction set oneDNN dispatches to on this CPU."""
    env = {
        **os.environ,
        "ONEDNN_VERBOSE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", _ONEDNN_PROBE],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    text = done.stdout + done.stderr
    found = {}
    version = re.search(r"info,oneDNN v(\S+)", text)
    isa = re.search(r"info,cpu,isa:([^\n]+)", text)
    if version:
        found["version"] = version.group(1)
    if isa:
        found["isa"] = isa.group(1).strip()
    return found


def onednn_info() -> dict[str, str]:
    """oneDNN's version and the ISA it uses here, probed once per machine and TensorFlow
    version (~4 s) and kept in ~/.cache/mt-cli; {} where it cannot be told."""
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mt-cli"
    key = re.sub(r"[^A-Za-z0-9.]+", "_", f"{_version('tensorflow')}-{platform.node()}")
    cache = cache_root / f"onednn-{key}.json"
    try:
        return dict(json.loads(cache.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    found = _probe_onednn()
    if found:
        try:
            cache_root.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(found))
        except OSError:
            pass
    return found


def _count(value: str | None, default: int) -> int | str:
    """A thread count from the environment (a user's unparsable value is shown as given)."""
    if value is None:
        return default
    return int(value) if value.strip().isdigit() else value


def machine_record(
    precision: Choice | None = None,
    gpus: Sequence[Gpu] = (),
    environ: MutableMapping[str, str] | None = None,
    probe: bool = True,
) -> dict:
    """What a figure was measured on and how TensorFlow ran: RUN/runtime.json and the
    benchmarks' `"machine"` object (one shape for both, so they compare)."""
    env = os.environ if environ is None else environ
    cpu = this_cpu()
    threads = plan_threads(cpu.cores)
    onednn = onednn_info() if probe and _version("tensorflow") else {}
    record: dict = {
        "cpu": {
            "model": cpu.model,
            "architecture": cpu.architecture,
            "family": cpu.family,
            "model_number": cpu.model_number,
            "cores": cpu.cores,
            "flags": cpu.relevant_flags(),
            "flags_set_by": cpu.flags_set_by,
        },
        "gpus": [
            {"name": g.name, "compute_capability": ".".join(map(str, g.compute_capability))}
            for g in gpus
        ],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            "tensorflow": _version("tensorflow"),
            "keras": _version("keras"),
            "onednn": onednn.get("version"),
            "ctranslate2": _version("ctranslate2"),
            "sentencepiece": _version("sentencepiece"),
        },
        "onednn_isa": onednn.get("isa"),
        "allocator": allocator_name(env),
        "threads": {
            "intra_op": _count(env.get("TF_NUM_INTRAOP_THREADS"), threads.intra_op),
            "inter_op": _count(env.get("TF_NUM_INTEROP_THREADS"), threads.inter_op),
            "set_by": "user" if any(n in env for n in THREAD_ENV) else threads.reason,
        },
    }
    if precision is not None:
        record["precision"] = {"value": precision.value, "reason": precision.reason}
    return record
