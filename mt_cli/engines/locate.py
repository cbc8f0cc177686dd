"""Find a model directory and tell which engine reads it, without importing TensorFlow.

`translate -m PATH` accepts a run directory (its export/), a native model directory or a
CTranslate2 export; the CLI must know which before it pays for TensorFlow's start-up,
which a CTranslate2 model never needs.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mt_cli.core.compute_type import MAP_SUFFIX
from mt_cli.core.config import CONFIG_FILE, Config
from mt_cli.core.config_loading import load_config
from mt_cli.core.errors import CheckpointError, show_value
from mt_cli.core.files import file_sha256
from mt_cli.core.languages import Languages

MANIFEST_FILE = "manifest.json"
CT2_QUANTIZATIONS = ("float32", "int8", "int8_float32", "int16", "float16", "bfloat16")
NATIVE = "native"
CTRANSLATE2 = "ctranslate2"
ENGINES = (NATIVE, CTRANSLATE2)
# The weights file of each engine: listed in files_sha256 and so verified before loading.
WEIGHTS_FILES = {NATIVE: "model.weights.h5", CTRANSLATE2: "model.bin"}
# A CTranslate2 vocabulary map (mt_cli/core/vocabulary_map.py): the one file name CTranslate2
# reads, and the manifest key naming it (in a native directory's `ctranslate2` section, at the
# top of a CTranslate2 export's manifest).
VMAP_FILE = "vmap.txt"
VOCABULARY_MAP = "vocabulary_map"
MAX_MANIFEST_BYTES = 1 << 20  # real ones are a few KB
_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXPECTED = {int: "an integer", str: "a string", dict: "an object"}
EDITED = ("the file was changed or damaged after export (the architecture and weights must match: "
          "re-export instead of editing)")
OTHER_TOKENIZER = "the tokenizer is not the one the model was trained with"
# What `mt-cli train` writes into a run directory before any export (its lock comes first).
RUN_MARKERS = ("checkpoints", ".lock", "metrics.jsonl")


def model_name(directory: Path) -> str:
    """A model directory's name, not its path (the run's name for RUN/export): manifests and
    /info travel, and must not tell where the model was built."""
    return directory.parent.name if directory.name == "export" else directory.name


def resolve_model_dir(path: str | Path) -> Path:
    """An export directory, or a run directory (then its export/)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: model directory not found")
    if os.path.lexists(path / MANIFEST_FILE) or not (path / "export").is_dir():
        return path
    return path / "export"


def read_manifest(directory: Path) -> dict[str, Any]:
    """manifest.json of a model directory, validated (`check_manifest`), or one error line."""
    path = directory / MANIFEST_FILE
    if not os.path.lexists(path):
        raise CheckpointError(_no_manifest(directory))
    checked_file(directory, MANIFEST_FILE)  # a FIFO would block, a link could read anything
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise CheckpointError(f"{path}: {path.stat().st_size} bytes, more than a manifest ever holds "
                                  f"({MAX_MANIFEST_BYTES}); re-export the model")
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise CheckpointError(f"{path}: unreadable ({reason})") from None
    return check_manifest(path, manifest)


def _no_manifest(directory: Path) -> str:
    """Why `directory` has no manifest: a run directory whose training has not exported yet
    (export/ is written when training ends), or no model directory at all."""
    if not any(os.path.lexists(directory / name) for name in RUN_MARKERS):
        return (f"{directory / MANIFEST_FILE}: missing; {directory} is not an mt-cli model directory "
                "(point -m at a run directory or its export/)")
    said = (f"{directory}: a run directory without an export yet (training writes export/ when it ends); "
            "let its training finish (rerun `mt-cli train` on it if it was stopped)")
    if not (directory / "checkpoints").is_dir():
        return f"{said}, then point -m at it"
    return (f"{said}, or write a model directory from its checkpoints now with "
            f"`mt-cli average {directory} --last 1 -o DIR` and point -m at DIR")


def check_manifest(path: Path, manifest: object) -> dict[str, Any]:
    """The one validation every reader of a manifest relies on: types, hashes, and file names
    that stay inside the directory, so that no later step indexes, copies or opens what it
    has not checked (a `../` name once made export overwrite a file outside both directories)."""
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {_kind(manifest)}")
    engine = manifest.get("engine", NATIVE)
    if engine not in ENGINES:
        raise CheckpointError(f"{path}: unknown engine {_show(engine)} (this mt-cli reads {', '.join(ENGINES)})")
    check = _Checker(path)
    check.typed(manifest, "format_version", int, required=False)
    check.typed(manifest, "step", int, required=False)
    check.typed(manifest, "quantization", str, required=False)
    for key in ("versions", "source_model", "dev_scores", "weights"):
        check.typed(manifest, key, dict, required=False)
    files = check.typed(manifest, "files_sha256", dict)
    for name, digest in files.items():
        check.name(name, "files_sha256")
        check.digest(digest, f"files_sha256.{name}")
    tokenizer = check.typed(manifest, "tokenizer", dict)
    for side in ("source", "target"):
        check.name(check.typed(tokenizer, side, str, prefix="tokenizer."), f"tokenizer.{side}")
        check.digest(check.typed(tokenizer, f"{side}_sha256", str, prefix="tokenizer."), f"tokenizer.{side}_sha256")
    if "languages" in manifest:
        Languages.from_manifest(manifest["languages"], str(path), ("src", "tgt"))
    special = check.typed(manifest, "special_ids", dict)
    for key in ("pad", "unk", "bos", "eos"):
        check.typed(special, key, int, prefix="special_ids.")
    if engine == NATIVE and CTRANSLATE2 in manifest:
        _check_conversion(check, manifest, files)
    if engine == CTRANSLATE2:
        _check_vocabulary_map(check, manifest, files, "")
    weights = WEIGHTS_FILES[engine]
    if weights not in files:
        raise CheckpointError(f"{path}: files_sha256 does not list {weights}, so the weights cannot be "
                              "verified; re-export the model")
    declared = (manifest.get("weights") or {}).get("file", weights)
    if declared != weights:
        raise CheckpointError(f"{path}: weights.file: expected {weights!r}, got {_show(declared)}")
    return manifest


def _check_conversion(check: _Checker, manifest: dict[str, Any], files: dict[str, Any]) -> None:
    """A native directory's `ctranslate2` section: plain names, each hashed in files_sha256,
    CTranslate2's weights among them."""
    section = check.typed(manifest, CTRANSLATE2, dict)
    check.typed(section, "quantization", str, prefix=f"{CTRANSLATE2}.")
    names = section.get("files")
    if not isinstance(names, list) or not names:
        raise CheckpointError(f"{check.path}: {CTRANSLATE2}.files: expected a list of file names, got {_kind(names)}")
    for name in names:
        check.name(name, f"{CTRANSLATE2}.files")
        if name not in files:
            raise CheckpointError(f"{check.path}: {CTRANSLATE2}.files: {_show(name)} is not listed in files_sha256, "
                                  "so it cannot be verified; re-export the model")
    if WEIGHTS_FILES[CTRANSLATE2] not in names:
        raise CheckpointError(f"{check.path}: {CTRANSLATE2}.files: does not name {WEIGHTS_FILES[CTRANSLATE2]}")
    name = _check_vocabulary_map(check, section, files, f"{CTRANSLATE2}.")
    if name is not None and name not in names:
        raise CheckpointError(f"{check.path}: {CTRANSLATE2}.{VOCABULARY_MAP}: {_show(name)} is not among "
                              f"{CTRANSLATE2}.files; re-export the model")
    if "dev_check" in section:
        _check_dev_check(check, section)


def _check_dev_check(check: _Checker, section: dict[str, Any]) -> None:
    """`ctranslate2.dev_check` (what `auto` reads to choose a compute type): a line count and a
    finite BLEU per compute type."""
    where = f"{CTRANSLATE2}.dev_check"
    dev_check = check.typed(section, "dev_check", dict, prefix=f"{CTRANSLATE2}.")
    check.typed(dev_check, "lines", int, prefix=f"{where}.")
    bleu = check.typed(dev_check, "bleu", dict, prefix=f"{where}.")
    for name, score in bleu.items():
        number = isinstance(score, (int, float)) and not isinstance(score, bool)
        if name.removesuffix(MAP_SUFFIX) not in CT2_QUANTIZATIONS or not number or not 0 <= score <= 100:
            raise CheckpointError(f"{check.path}: {where}.bleu: expected a score from 0 to 100 per compute type, "
                                  f"got {_show(name)}: {_show(score)}; re-export the model")


def _check_vocabulary_map(check: _Checker, section: dict[str, Any], files: dict[str, Any], prefix: str) -> str | None:
    """The vocabulary map a manifest names (None: none): `vmap.txt`, the one name CTranslate2
    reads, hashed in files_sha256 like every file it loads."""
    name = check.typed(section, VOCABULARY_MAP, str, required=False, prefix=prefix)
    if name is None:
        return None
    if name != VMAP_FILE:
        raise CheckpointError(f"{check.path}: {prefix}{VOCABULARY_MAP}: expected {VMAP_FILE!r} (the one name "
                              f"CTranslate2 reads), got {_show(name)}; re-export the model")
    if name not in files:
        raise CheckpointError(f"{check.path}: {prefix}{VOCABULARY_MAP}: {_show(name)} is not listed in files_sha256, "
                              "so it cannot be verified; re-export the model")
    return name


def conversion_files(manifest: dict[str, Any]) -> list[str] | None:
    """The files of a native directory's CTranslate2 conversion (None: it has none, an older
    directory), or all of a CTranslate2 export's; `manifest` comes from `read_manifest`."""
    if manifest.get("engine", NATIVE) == CTRANSLATE2:
        return list(manifest["files_sha256"])
    section = manifest.get(CTRANSLATE2)
    return list(section["files"]) if section else None


def vocabulary_map_name(manifest: Mapping[str, Any]) -> str | None:
    """The CTranslate2 vocabulary map a checked manifest names (None: it names none)."""
    if manifest.get("engine", NATIVE) == CTRANSLATE2:
        return manifest.get(VOCABULARY_MAP)
    return (manifest.get(CTRANSLATE2) or {}).get(VOCABULARY_MAP)


def check_unlisted_map(directory: Path, manifest: Mapping[str, Any]) -> None:
    """CTranslate2 reads a `vmap.txt` it finds in the directory while loading, unasked and
    unverified, and restricts every output to it: one the manifest does not name is refused."""
    if vocabulary_map_name(manifest) is None and os.path.lexists(directory / VMAP_FILE):
        raise CheckpointError(f"{directory / VMAP_FILE}: not named by {MANIFEST_FILE}, so it cannot be verified, "
                              "yet CTranslate2 would read it; delete it, or re-export the model to have one built")


def _kind(value: object) -> str:
    """What was found: the JSON type, with the value where it is a short scalar."""
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
             list: "array", dict: "object"}
    kind = names.get(type(value), type(value).__name__)
    return kind if value is None or isinstance(value, (list, dict)) else f"{kind} {_show(value)}"


def _show(value: object) -> str:
    return show_value(value, 80)


class _Checker:
    """One-line errors naming the manifest, the key and what was found."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def typed(self, parent: dict, key: str, kind: type, required: bool = True, prefix: str = "") -> Any:
        if key not in parent:
            if required:
                raise CheckpointError(f"{self.path}: {prefix}{key}: missing; re-export the model")
            return {} if kind is dict else None
        value = parent[key]
        if value is None and not required and kind is not dict:  # readers `.get()` objects: no null
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(f"{self.path}: {prefix}{key}: expected {_EXPECTED[kind]}, got {_kind(value)}")
        return value

    def name(self, name: str, key: str) -> None:
        if not plain_name(name):
            raise CheckpointError(f"{self.path}: {key}: {_show(name)} is not a plain file name inside the "
                                  "model directory (no '/', '..' or absolute paths); re-export the model")

    def digest(self, value: object, key: str) -> None:
        if not isinstance(value, str) or not _SHA256.fullmatch(value):
            raise CheckpointError(f"{self.path}: {key}: expected a sha256 (64 hex digits), got {_show(value)}")


def plain_name(name: object) -> bool:
    """A file name that can only mean a file directly inside the directory."""
    return (isinstance(name, str) and name not in ("", ".", "..") and len(name) <= 255
            and not any(c in name for c in "/\\") and all(ord(c) >= 32 for c in name))  # no NUL, newline...


def verify_files(directory: Path, manifest: dict[str, Any], required: tuple[str, ...] = (),
                 only: list[str] | None = None) -> dict[str, Path]:
    """Every listed file (or the `only` ones an engine reads, plus the tokenizers) checked by
    `checked_file` before any heavy work: all present and regular first, then their hashes;
    the tokenizer's mismatch gets its own words (the most common cause). `manifest` comes
    from `read_manifest`, so every name is a plain one. Returns the checked files' paths."""
    tok = manifest["tokenizer"]
    listed = manifest["files_sha256"]
    if only is not None:
        listed = {name: listed[name] for name in only if name in listed}
    names = dict.fromkeys((*required, *listed, tok["source"], tok["target"]))
    for name in names:
        checked_file(directory, name)
    for side in ("source", "target"):
        checked_file(directory, tok[side], tok[f"{side}_sha256"], OTHER_TOKENIZER)
    for name, expected in listed.items():
        checked_file(directory, name, expected)
    return {name: directory / name for name in names}


def checked_file(directory: Path, name: str, sha256: str | None = None, mismatch: str = EDITED) -> Path:
    """The one check before mt-cli opens a file of a model directory, by every command and
    engine: present, a regular file (a FIFO or device blocks or never ends), inside the
    directory (a symlink is followed only where it stays inside: a link to /etc/passwd is
    not read, nor named), and matching `sha256` when the manifest gives one. Errors name
    `directory/name`, never a link's target. Returns that path."""
    path = directory / name
    try:
        target = path.resolve(strict=True)
        mode = target.stat().st_mode
    except FileNotFoundError:  # a dangling link too
        raise CheckpointError(f"{path}: missing from the model directory") from None
    except (OSError, RuntimeError) as exc:  # no permission, a symlink loop (whose text names targets)
        raise CheckpointError(f"{path}: cannot be read ({_reason(exc)})") from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: not a regular file (a directory, FIFO or device); "
                              "the model directory holds regular files only")
    if not target.is_relative_to(directory.resolve()):
        raise CheckpointError(f"{path}: a symlink to a file outside the model directory, which is not read; "
                              "a model directory holds its own files (replace the link with the file)")
    if sha256 is not None:
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot be read ({_reason(exc)})") from None
        if actual != sha256:
            raise CheckpointError(f"{path}: sha256 does not match the manifest ({actual[:12]}… instead of "
                                  f"{sha256[:12]}…): {mismatch}")
    return path


def _reason(exc: Exception) -> str:
    """Why a file could not be read, without the paths an OS error's text may hold."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return "a symlink loop"  # what Path.resolve raises RuntimeError for


def model_config(directory: Path, manifest: dict[str, Any], overrides: list[str] | None = None,
                 decode_flags: Mapping[str, Any] | None = None) -> Config:
    """A model directory's config.yaml, read only after `checked_file` (regular, inside, its
    hash), with `--set` overrides and typed decode flags applied; it is complete, so a `base`
    (a file outside the directory) is refused. `manifest` comes from `read_manifest`."""
    path = checked_file(directory, CONFIG_FILE, manifest["files_sha256"].get(CONFIG_FILE))
    return load_config(path, overrides or [], decode_flags, bases=False)
