"""The one way the scripts report: a JSON document on stdout, and in --out when given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(document: Any, out: Path | None) -> str:
    """Print `document` as indented JSON and write it to `out` (parents made); return the text."""
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    return text
