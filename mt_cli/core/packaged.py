"""The presets and the demo corpus that ship inside the package (setuptools package data).

Found through `importlib.resources`, so an installed wheel reads its own copy from any working
directory: a path computed from a checkout's layout names nothing once pip has installed it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePath

LEGACY_PRESET_DIR = "configs"  # where a checkout kept the presets before they shipped in the package


def _shipped(name: str) -> Path:
    """A directory of package data as a file-system path: configs name files by path and
    SentencePiece reads real files, which every unpacked install (pip's) has."""
    return Path(str(resources.files("mt_cli.core").joinpath(name)))


PRESET_DIR = _shipped("presets")
DEMO_DATA_DIR = _shipped("demo_data")


def preset_names() -> list[str]:
    """The names a config may give instead of a path (`base: transformer-small`), for listings and errors."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def find_preset(given: str) -> Path | None:
    """The shipped preset `given` names, or None: `transformer-small`, `transformer-small.yaml`,
    or `configs/transformer-small.yaml` (the checkout path README once gave, so configs written
    for it keep working where no such file exists)."""
    path = PurePath(given)
    if len(path.parts) > 1 and path.parent.name != LEGACY_PRESET_DIR:
        return None
    for name in (path.name, f"{path.name}.yaml"):
        if name.endswith(".yaml") and (PRESET_DIR / name).is_file():
            return PRESET_DIR / name
    return None
