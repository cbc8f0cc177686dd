"""The model directory: the contract between training and every consumer.

It holds only what translation needs (config, SentencePiece model(s), float32 weights and
a manifest with versions, special ids and sha256 of every file), written atomically and
verified before loading. Loading rebuilds the model from our own code, then reads weights:
never an architecture or code from the directory.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import sacrebleu
import sentencepiece
import tensorflow as tf
import yaml

from mt_cli import __version__
from mt_cli.config import Config, load_config
from mt_cli.errors import CheckpointError
from mt_cli.files import atomic_dir, file_sha256
from mt_cli.model import build_model
from mt_cli.model.translator import Translator
from mt_cli.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizers

log = logging.getLogger("mt_cli")
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.weights.h5"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.yaml"


def export_config(cfg: Config, spm_names: tuple[str, str | None]) -> dict[str, Any]:
    """The config an export carries: no training data paths, tokenizer paths relative."""
    raw = cfg.to_dict()
    data = raw["data"]
    raw["data"] = {k: data[k] for k in ("source_lang", "target_lang", "max_source_tokens", "max_target_tokens")}
    raw["tokenizer"]["model"] = spm_names[0]
    raw["tokenizer"]["target_model"] = spm_names[1]
    raw["train"]["run_dir"] = None
    return raw


def write_export(directory: Path, model: Any, cfg: Config, tokenizers: Tokenizers,
                 info: dict[str, Any]) -> None:
    """Write `directory` (config, spm, float32 weights, manifest) atomically."""
    names = ("spm.model", None) if tokenizers.joint else ("spm.src.model", "spm.tgt.model")

    def build(tmp: Path) -> None:
        shutil.copyfile(tokenizers.source.path, tmp / names[0])
        if names[1]:
            shutil.copyfile(tokenizers.target.path, tmp / names[1])
        model.save_weights(str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(export_config(cfg, names), sort_keys=False))
        manifest = _manifest(tmp, names, tokenizers, info)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))

    atomic_dir(directory, build)  # OSError (h5py's too) = cannot write; anything else keeps its cause


def _versions() -> dict[str, str]:
    return {"mt_cli": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "sentencepiece": sentencepiece.__version__, "sacrebleu": sacrebleu.__version__}


def _manifest(tmp: Path, names: tuple[str, str | None], tokenizers: Tokenizers,
              info: dict[str, Any]) -> dict[str, Any]:
    files = {WEIGHTS_FILE: file_sha256(tmp / WEIGHTS_FILE), names[0]: file_sha256(tmp / names[0]),
             CONFIG_FILE: file_sha256(tmp / CONFIG_FILE)}
    if names[1]:
        files[names[1]] = file_sha256(tmp / names[1])
    return {
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "source_vocab_size": tokenizers.source.vocab_size,
        "target_vocab_size": tokenizers.target.vocab_size,
        "special_ids": {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
        "tokenizer": {"source": names[0], "target": names[1] or names[0],
                      "source_sha256": files[names[0]],
                      "target_sha256": files[names[1] or names[0]]},
        "weights": {"file": WEIGHTS_FILE, "dtype": "float32"},
        "files_sha256": files,
        **info,
    }


@dataclass
class LoadedModel:
    directory: Path
    config: Config
    tokenizers: Tokenizers
    manifest: dict[str, Any]
    model: Any


def resolve_model_dir(path: str | Path) -> Path:
    """An export directory, or a run directory (then its export/)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: model directory not found")
    if (path / MANIFEST_FILE).is_file() or not (path / "export").is_dir():
        return path
    return path / "export"


def check_export(directory: Path) -> tuple[dict[str, Any], Config]:
    """Validate files and hashes of an export before any heavy work."""
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{manifest_path}: missing; {directory} is not an mt-cli model directory "
                              "(point -m at a run directory or its export/)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{manifest_path}: format_version {manifest.get('format_version')} "
                              f"is not supported (this mt-cli reads {FORMAT_VERSION})")
    for name in (CONFIG_FILE, *manifest.get("files_sha256", {})):
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
    if CONFIG_FILE not in manifest.get("files_sha256", {}):
        log.warning(f"{directory / CONFIG_FILE}: not covered by the manifest (an older export); "
                    "edits to it cannot be detected")
    return manifest, load_config(directory / CONFIG_FILE)


def load_export(path: str | Path, overrides: list[str] | None = None,
                precision: str | None = None) -> LoadedModel:
    """Load an export (or run) directory: check it, rebuild the model, load float32 weights."""
    directory = resolve_model_dir(path)
    manifest, _ = check_export(directory)
    cfg = load_config(directory / CONFIG_FILE, overrides or [])
    tok = manifest["tokenizer"]
    tokenizers = Tokenizers.load(directory / tok["source"],
                                 None if tok["target"] == tok["source"] else directory / tok["target"])
    model = build_model(cfg.model, tokenizers.source.vocab_size, tokenizers.target.vocab_size,
                        precision=precision or cfg.decode.dtype)
    try:
        model.load_weights(str(directory / WEIGHTS_FILE))
    except Exception as exc:  # h5py / keras raise various types
        raise CheckpointError(f"{directory / WEIGHTS_FILE}: cannot load weights ({str(exc)[:200]})") from None
    return LoadedModel(directory, cfg, tokenizers, manifest, model)


def load_translator(path: str | Path, overrides: list[str] | None = None) -> Translator:
    """A Translator over a model directory, with `--set` style (decode) overrides applied."""
    loaded = load_export(path, overrides)
    return Translator(loaded.model, loaded.tokenizers, loaded.config.decode)
