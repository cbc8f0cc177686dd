"""What this machine has: the CPU (model, usable cores, the flags that decide the fastest
precision) and the accelerators, read without importing TensorFlow.

Why a module of its own: every default that depends on the hardware (precision, threads,
the benchmarks' `"machine"` record) must read the same facts the same way.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from mt_cli.core.errors import ConfigError

# The CPU flags a decision or a benchmark reader needs (x86 names as /proc/cpuinfo spells them;
# aarch64's `bf16` is kept for the record).
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_tile",
    "bf16",
    "asimd",
    "sve",
)
BF16_UNIT_FLAGS = ("amx_bf16", "avx512_bf16")
# Decide as another CPU would: the auto precision choices read these flags instead of the
# detected ones (CI on an AVX2 machine can take the bf16 path, and back). Only decisions follow
# it; oneDNN and CTranslate2 still dispatch to what the CPU really has.
CPU_FLAGS_ENV = "MT_CLI_CPU_FLAGS"
_FLAG = re.compile(r"[+-]?[a-z0-9_]+")


@dataclass(frozen=True)
class Gpu:
    """One visible GPU; `compute_capability` is (major, minor), (0, 0) when unknown."""

    name: str
    compute_capability: tuple[int, int] = (0, 0)

    @property
    def has_bf16_units(self) -> bool:
        return self.compute_capability >= (8, 0)

    @property
    def has_tensor_cores(self) -> bool:
        return self.compute_capability >= (7, 0)


@dataclass(frozen=True)
class Cpu:
    """The CPU as the operating system describes it to this process."""

    model: str
    architecture: str
    cores: int
    flags: frozenset[str] = field(default_factory=frozenset)
    family: str = ""
    model_number: str = ""
    flags_set_by: str = "detected"  # or CPU_FLAGS_ENV when overridden

    @property
    def bf16_units(self) -> list[str]:
        """The flags that show bfloat16 arithmetic in hardware (x86 AMX or AVX512-BF16)."""
        return [name for name in BF16_UNIT_FLAGS if name in self.flags]

    def relevant_flags(self) -> dict[str, bool]:
        return {name: name in self.flags for name in RELEVANT_FLAGS}


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _parse_cpuinfo(text: str) -> dict[str, str]:
    """The first processor block of /proc/cpuinfo as key -> value."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_from_cpuinfo(text: str, cores: int, architecture: str) -> Cpu:
    """A Cpu from /proc/cpuinfo text (x86 `flags`, aarch64 `Features`)."""
    info = _parse_cpuinfo(text)
    flags = frozenset((info.get("flags") or info.get("Features") or "").split())
    model = (
        info.get("model name") or info.get("Model") or info.get("CPU part") or platform.processor()
    )
    return Cpu(
        model=model or "unknown",
        architecture=architecture,
        cores=cores,
        flags=flags,
        family=info.get("cpu family", ""),
        model_number=info.get("model", ""),
    )


def _sysctl(name: str) -> str:
    try:
        result = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _macos_cpu(cores: int, architecture: str) -> Cpu:
    flags = {f.lower().replace(".", "_") for f in _sysctl("machdep.cpu.features").split()}
    flags |= {f.lower().replace(".", "_") for f in _sysctl("machdep.cpu.leaf7_features").split()}
    if _sysctl("hw.optional.arm.FEAT_BF16") == "1":
        flags.add("bf16")
    return Cpu(
        model=_sysctl("machdep.cpu.brand_string") or platform.processor() or "unknown",
        architecture=architecture,
        cores=cores,
        flags=frozenset(flags),
    )


def override_flags(detected: frozenset[str], text: str) -> frozenset[str]:
    """The flags `MT_CLI_CPU_FLAGS` asks for: comma- or space-separated names replace the
    detected set (`avx2,fma`: a CPU without bf16 units), `+name`/`-name` add to or remove from it
    (`-avx512_bf16,-amx_bf16`); an empty value means no flags at all."""
    items = text.replace(",", " ").split()
    bad = [item for item in items if not _FLAG.fullmatch(item)]
    if bad:
        raise ConfigError(f"{CPU_FLAGS_ENV}: {bad[0][:40]!r} is not a CPU flag name; give names as "
                          "/proc/cpuinfo spells them, e.g. avx2,fma or +avx512_bf16 or -amx_bf16")
    flags = set() if any(item[0] not in "+-" for item in items) or not items else set(detected)
    for item in items:
        if item.startswith("-"):
            flags.discard(item[1:])
        else:
            flags.add(item.lstrip("+"))
    return frozenset(flags)


def _detected_cpu() -> Cpu:
    architecture, cores = platform.machine() or "unknown", usable_cores()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        return cpu_from_cpuinfo(cpuinfo.read_text(errors="replace"), cores, architecture)
    if platform.system() == "Darwin":
        return _macos_cpu(cores, architecture)
    return Cpu(model=platform.processor() or "unknown", architecture=architecture, cores=cores)


@lru_cache(maxsize=1)
def this_cpu() -> Cpu:
    """This machine's CPU (read once per process), its flags as `MT_CLI_CPU_FLAGS` sets them
    if it is set."""
    cpu = _detected_cpu()
    text = os.environ.get(CPU_FLAGS_ENV)
    if text is None:
        return cpu
    return replace(cpu, flags=override_flags(cpu.flags, text), flags_set_by=CPU_FLAGS_ENV)


_CAPABILITY = re.compile(r"^\s*(\d+)\.(\d+)\s*$")


def parse_compute_capability(value: object) -> tuple[int, int]:
    """TensorFlow reports (8, 6), nvidia-smi "8.6"; anything else is (0, 0)."""
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return int(value[0]), int(value[1])
    match = _CAPABILITY.match(str(value))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


NVIDIA_DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")


def nvidia_gpus_visible(driver_gpus: Path = NVIDIA_DRIVER_GPUS) -> int:
    """NVIDIA GPUs the driver lists and CUDA_VISIBLE_DEVICES leaves to this process, read
    without TensorFlow (which `auto` engine choice must not import to learn this)."""
    try:
        count = sum(1 for _ in driver_gpus.iterdir())
    except OSError:
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return count
    ids = [part for part in visible.split(",") if part.strip()]
    return 0 if not ids or ids[0].strip().startswith("-") else min(count, len(ids))
