"""The one way the scripts report: a JSON document on stdout, and in --out when given."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mt_cli.core.hardware import this_cpu
from mt_cli.core.runtime import child_environment, machine_record, resolve_precision


def machine() -> dict[str, Any]:
    """The `"machine"` object of every benchmark: RUN/runtime.json's shape, with the precision
    `auto` picks here and the allocator/threads the measured mt-cli processes run with."""
    cpu = this_cpu()
    return machine_record(resolve_precision("auto", cpu), environ=child_environment())


def emit(document: Any, out: Path | None) -> str:
    """Print `document` as indented JSON and write it to `out` (parents made); return the text.
    A document that does not say its machine gets `"machine"` (every figure names its CPU)."""
    if isinstance(document, dict) and "machine" not in document:
        document = {**document, "machine": machine()}
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    return text
