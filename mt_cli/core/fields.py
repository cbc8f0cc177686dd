"""A dataclass field that carries its own rule: the one way every setting of mt-cli (the
config's sections, `data clean`'s thresholds, `serve`'s flags) declares its default, bounds,
choices and doc, so that one checker (core/config_checks.py) validates them all."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def rule_field(default: Any, *, choices: tuple[Any, ...] | None = None, ge: float | None = None,
               gt: float | None = None, le: float | None = None, says: str = "", doc: str = "",
               **extra: Any) -> Any:
    """A dataclass field carrying its validation rule (and any extra metadata, such as `path=True`
    for a file path resolved against the config file naming it) next to its default; `says`
    words the range in one phrase (`a number in 0..60000`) for every bound it breaks.
    config_checks.py checks a value by these rules, for the config and `mt-cli serve`'s
    settings alike."""
    meta = {"choices": choices, "ge": ge, "gt": gt, "le": le, "says": says, "doc": doc, **extra}
    if isinstance(default, (list, tuple)):
        value = tuple(default)
        return field(default_factory=lambda: value, metadata=meta)
    return field(default=default, metadata=meta)
