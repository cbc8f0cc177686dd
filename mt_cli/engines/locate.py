"""Find a model directory and tell which engine reads it, without importing TensorFlow.

`translate -m PATH` accepts a run directory (its export/), a native model directory or a
CTranslate2 export; the CLI must know which before it pays for TensorFlow's start-up,
which a CTranslate2 model never needs.
"""

from __future__ import annotations

import json
from pathlib import Path

from mt_cli.core.errors import CheckpointError
from mt_cli.core.files import file_sha256

MANIFEST_FILE = "manifest.json"
CT2_QUANTIZATIONS = ("float32", "int8", "int8_float32", "int16", "float16", "bfloat16")
NATIVE = "native"
CTRANSLATE2 = "ctranslate2"
ENGINES = (NATIVE, CTRANSLATE2)


def resolve_model_dir(path: str | Path) -> Path:
    """An export directory, or a run directory (then its export/)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: model directory not found")
    if (path / MANIFEST_FILE).is_file() or not (path / "export").is_dir():
        return path
    return path / "export"


def read_manifest(directory: Path) -> dict:
    """manifest.json of a model directory, or one error line saying what is wrong."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; {directory} is not an mt-cli model directory "
                              "(point -m at a run directory or its export/)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return manifest


def engine_of(path: str | Path) -> str:
    """`native` or `ctranslate2`: which engine reads the model directory at `path`."""
    directory = resolve_model_dir(path)
    engine = read_manifest(directory).get("engine", NATIVE)
    if engine not in ENGINES:
        raise CheckpointError(f"{directory / MANIFEST_FILE}: unknown engine {engine!r} "
                              f"(this mt-cli reads {', '.join(ENGINES)})")
    return engine


def verify_files(directory: Path, manifest: dict, required: tuple[str, ...] = ()) -> None:
    """Every listed file present and matching its sha256, before any heavy work; the
    tokenizer's mismatch gets its own message (the most common cause)."""
    for name in (*required, *manifest.get("files_sha256", {})):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory / name}: missing from the model directory")
    tok = manifest["tokenizer"]
    for side in ("source", "target"):
        actual = file_sha256(directory / tok[side])
        if actual != tok[f"{side}_sha256"]:
            raise CheckpointError(
                f"{directory / tok[side]}: sha256 {actual[:12]}… does not match the manifest "
                f"({tok[f'{side}_sha256'][:12]}…): the tokenizer is not the one the model was trained with")
    for name, expected in manifest.get("files_sha256", {}).items():
        if file_sha256(directory / name) != expected:
            raise CheckpointError(f"{directory / name}: sha256 does not match the manifest; "
                                  "the file was changed or damaged after export (the architecture "
                                  "and weights must match: re-export instead of editing)")
