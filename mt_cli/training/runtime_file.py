"""RUN/runtime.json: the machine and TensorFlow runtime a training session ran on, written at
its start, so every figure read from the run (tokens/s, the loss curve) names its machine."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from mt_cli.core.runtime import Choice, machine_record
from mt_cli.model.devices import visible_gpus
from mt_cli.training.run_dir import atomic_write_text

log = logging.getLogger("mt_cli")
RUNTIME_FILE = "runtime.json"


def describe(record: dict[str, Any]) -> str:
    """The runtime in one line, for the start of `train`."""
    cpu, threads = record["cpu"], record["threads"]
    gpus = f", {len(record['gpus'])} GPU(s)" if record["gpus"] else ""
    name = re.sub(r"\s+", " ", cpu["model"]).strip()
    tensorflow = record["versions"]["tensorflow"]
    return (
        f"runtime: {name} ({cpu['cores']} cores{gpus}), TensorFlow {tensorflow}, "
        f"threads {threads['intra_op']} intra-op / {threads['inter_op']} inter-op, "
        f"allocator {record['allocator']}"
    )


def runtime_record(precision: Choice) -> dict[str, Any]:
    """This session's machine and runtime (logged in one line, for the start of `train`)."""
    record = machine_record(precision, visible_gpus())
    log.info(describe(record))
    return record


def write_runtime(run_dir: Path, record: dict[str, Any]) -> None:
    """Write RUN/runtime.json (temp file + rename: never half a file)."""
    atomic_write_text(run_dir / RUNTIME_FILE, json.dumps(record, indent=1) + "\n")
