"""CTranslate2's compute type, chosen by machine when the model loads.

Model directories keep a float32 conversion; CTranslate2 quantizes it to int8 while loading when
asked (`compute_type`), so the choice is made per machine, not per directory. int8 is faster only
where the CPU multiplies int8 in hardware (VNNI dot products, AMX tiles): on an AVX2-only AMD EPYC
Zen 3 it decoded at 0.67x float32's rate (docs/performance.md). It also rounds the weights, so
`auto` takes it only where the model's own dev check, run by CTranslate2 when the directory was
written, kept BLEU within INT8_BLEU_TOLERANCE of float32. int8 translations do not depend on the
batching (CTranslate2 quantizes each row of activations on its own: 0 of 300 lines changed between
batch 1 and 32 on test2016), so the choice keeps the promise `auto`'s float32 native decoding makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mt_cli.core.hardware import Cpu
from mt_cli.core.runtime import AUTO, Choice, flags_source

__all__ = ["COMPUTE_TYPES", "INT8_BLEU_TOLERANCE", "INT8_UNIT_FLAGS", "compute_type_for", "int8_units",
           "resolve_compute_type"]
COMPUTE_TYPES = (AUTO, "float32", "int8")
INT8_BLEU_TOLERANCE = 0.3
MAP_SUFFIX = "+vmap"  # a dev check's score with the vocabulary map: "int8+vmap"
# x86 VNNI (AVX-512 and AVX), AMX's int8 tiles, aarch64's dot product and int8 matrix instructions.
INT8_UNIT_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "i8mm", "asimddp")


def int8_units(cpu: Cpu) -> list[str]:
    """The flags that show int8 dot products in hardware."""
    return [name for name in INT8_UNIT_FLAGS if name in cpu.flags]


def checked_pair(dev_check: Mapping[str, object] | None, full: str, other: str) -> tuple[float, float] | None:
    """The dev check's BLEU of `full` and of `other` (e.g. float32 and int8), where it has both."""
    scores = (dev_check or {}).get("bleu")
    if not isinstance(scores, Mapping):
        return None
    pair = scores.get(full), scores.get(other)
    return (float(pair[0]), float(pair[1])) if all(isinstance(v, (int, float)) for v in pair) else None


def int8_check(dev_check: Mapping[str, object] | None) -> tuple[bool, str]:
    """Whether the directory's dev check lets int8 stand in for float32, and what it measured."""
    pair = checked_pair(dev_check, "float32", "int8")
    if pair is None:
        return False, "the model directory records no int8 dev check (written by an older mt-cli or without a dev set)"
    full, quantized = pair
    said = f"dev BLEU {quantized:.2f} in int8 against {full:.2f} in float32"
    if full - quantized > INT8_BLEU_TOLERANCE:
        return False, f"{said}: more than {INT8_BLEU_TOLERANCE} lost"
    return True, said


def resolve_compute_type(requested: str, cpu: Cpu, stored: str = "float32",
                         dev_check: Mapping[str, object] | None = None) -> Choice:
    """The compute type CTranslate2 loads the model in: an explicit value wins; `auto` keeps a
    quantized export's own type, and on a float32 conversion takes int8 where the CPU has int8
    units and the dev check kept BLEU, else float32."""
    if requested != AUTO:
        return Choice(requested, "set in the config")
    if stored != "float32":
        return Choice(stored, "auto: the export's own quantization")
    units = int8_units(cpu)
    if not units:
        return Choice("float32", f"auto: this CPU has no int8 dot-product units{flags_source(cpu)} "
                                 "(int8 decoded at 0.67x float32 on an AVX2-only CPU)")
    allowed, measured = int8_check(dev_check)
    listed = ", ".join(units) + flags_source(cpu)
    if not allowed:
        return Choice("float32", f"auto: this CPU has int8 units ({listed}), but {measured}")
    return Choice("int8", f"auto: this CPU has int8 units ({listed}); {measured}")


def compute_type_for(manifest: Mapping[str, Any], requested: str, cpu: Cpu) -> Choice:
    """The compute type a model directory (its checked manifest) is loaded in on `cpu`: a
    CTranslate2 export's quantization, or a native directory's conversion and its dev check."""
    if manifest.get("engine") == "ctranslate2":
        return resolve_compute_type(requested, cpu, manifest["quantization"])
    section = manifest["ctranslate2"]
    return resolve_compute_type(requested, cpu, section["quantization"], section.get("dev_check"))


def map_loss(dev_check: Mapping[str, object] | None, compute_type: str) -> str | None:
    """What the dev check says the vocabulary map cost in `compute_type`, where it lost more
    than INT8_BLEU_TOLERANCE BLEU (said as a warning when the map is asked for); else None."""
    pair = checked_pair(dev_check, compute_type, compute_type + MAP_SUFFIX)
    if pair is None or pair[0] - pair[1] <= INT8_BLEU_TOLERANCE:
        return None
    plain, mapped = pair
    return (f"--vocabulary-map: the model's dev check scored BLEU {mapped:.2f} with the map against {plain:.2f} "
            f"without it in {compute_type}; leave it off where quality matters")
