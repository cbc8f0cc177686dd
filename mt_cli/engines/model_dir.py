"""The model directory: the contract between training and every consumer.

It holds only what translation needs (config, SentencePiece model(s), float32 weights, their
CTranslate2 conversion, and a manifest with versions, special ids and sha256 of every file),
written atomically and verified before loading; one directory serves both engines. Loading
rebuilds the model from our own code, then reads weights: never an architecture or code from
the directory.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import sacrebleu
import sentencepiece
import tensorflow as tf
import yaml
from keras.src.saving import saving_lib

from mt_cli import __version__
from mt_cli.core.config import CONFIG_FILE, Config
from mt_cli.core.errors import CheckpointError
from mt_cli.core.files import atomic_dir, file_sha256, write_bytes
from mt_cli.core.languages import Languages
from mt_cli.core.runtime import Choice
from mt_cli.core.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizers
from mt_cli.engines.ct2_spec import write_conversion
from mt_cli.engines.locate import CTRANSLATE2, MANIFEST_FILE, NATIVE, VMAP_FILE, VOCABULARY_MAP, WEIGHTS_FILES
from mt_cli.engines.native import Translator
from mt_cli.engines.opened import ModelDir, open_model_dir
from mt_cli.model import build_model
from mt_cli.model.devices import decode_dtype
from mt_cli.model.ensemble import Ensemble

log = logging.getLogger("mt_cli")
FORMAT_VERSION = 1
WEIGHTS_FILE = WEIGHTS_FILES[NATIVE]


def export_config(cfg: Config, spm_names: tuple[str, str | None]) -> dict[str, Any]:
    """The config an export carries: no training data paths, tokenizer paths relative."""
    raw = cfg.to_dict()
    data = raw["data"]
    raw["data"] = {k: data[k] for k in ("source_lang", "target_lang", "max_source_tokens", "max_target_tokens")}
    raw["tokenizer"]["model"] = spm_names[0]
    raw["tokenizer"]["target_model"] = spm_names[1]
    raw["train"]["run_dir"] = None
    return raw


def write_model_dir(directory: Path, model: Any, cfg: Config, tokenizers: Tokenizers,
                    info: dict[str, Any], conversion_check: Callable[[Path], dict[str, Any]] | None = None,
                    vocabulary_map: str | None = None) -> None:
    """Write `directory` (config, spm, float32 weights, their CTranslate2 conversion, manifest)
    atomically; `conversion_check`, given the written directory, returns the conversion's dev
    check (training/conversion_check.py), kept in the manifest's `ctranslate2.dev_check`; with
    `vocabulary_map` (vmap.txt's text) CTranslate2's vocabulary map too, part of the conversion."""
    names = ("spm.model", None) if tokenizers.joint else ("spm.src.model", "spm.tgt.model")

    def build(tmp: Path) -> None:
        shutil.copyfile(tokenizers.source.path, tmp / names[0])
        if names[1]:
            shutil.copyfile(tokenizers.target.path, tmp / names[1])
        write_weights(model, tmp / WEIGHTS_FILE)
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(export_config(cfg, names), sort_keys=False))
        conversion = _convert(tmp, model, cfg, tokenizers)
        if vocabulary_map is not None:
            conversion = with_vocabulary_map(tmp, conversion, vocabulary_map)
        manifest = _manifest(tmp, names, tokenizers, {**info, CTRANSLATE2: conversion})
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        if conversion_check is not None:  # reads the directory just written; the manifest is not hashed
            manifest[CTRANSLATE2]["dev_check"] = conversion_check(tmp)
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))

    atomic_dir(directory, build)  # OSError = cannot write; anything else keeps its cause


def write_weights(model: Any, path: Path) -> None:
    """`model.save_weights(path)`, but HDF5 is built in memory and written with plain file I/O.

    h5py writing to a full disk fails in its object destructors, where the error cannot be
    caught: a hundred lines of "Exception ignored" and a segfault (checked with h5py 3.14 on a
    small tmpfs). Built in memory, the only disk write is ours, and ENOSPC is an OSError
    naming the file. Keras's own saver is used on an in-memory store (its H5IOStore takes a
    BytesIO), so the bytes are those `save_weights` writes.
    """
    buffer = io.BytesIO()
    try:
        store = saving_lib.H5IOStore(buffer, mode="w")
    except (AttributeError, TypeError):  # a Keras whose private saver changed: its public one
        log.debug("keras.saving_lib.H5IOStore unavailable; weights written by save_weights")
        model.save_weights(str(path))
        return
    try:
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                               visited_saveables=set())
    finally:
        store.close()
    write_bytes(path, buffer.getvalue())


def _convert(tmp: Path, model: Any, cfg: Config, tokenizers: Tokenizers) -> dict[str, Any]:
    """The CTranslate2 conversion beside the native weights, timed in the log."""
    started = time.perf_counter()
    section = write_conversion(tmp, model, cfg.model.activation, tokenizers)
    size = sum((tmp / name).stat().st_size for name in section["files"])
    log.debug(f"CTranslate2 {section['quantization']} conversion: {time.perf_counter() - started:.2f} s, "
              f"{size / 2**20:.1f} MiB")
    return section


def with_vocabulary_map(tmp: Path, section: dict[str, Any], text: str) -> dict[str, Any]:
    """The `ctranslate2` section with vmap.txt written beside the conversion and named: listed
    in its files (so hashed and verified as they are) and as its vocabulary map."""
    write_bytes(tmp / VMAP_FILE, text.encode("utf-8"))
    return {**section, "files": sorted({*section["files"], VMAP_FILE}), VOCABULARY_MAP: VMAP_FILE}


def _versions() -> dict[str, str]:
    return {"mt_cli": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "sentencepiece": sentencepiece.__version__, "sacrebleu": sacrebleu.__version__}


def _manifest(tmp: Path, names: tuple[str, str | None], tokenizers: Tokenizers,
              info: dict[str, Any]) -> dict[str, Any]:
    files = {WEIGHTS_FILE: file_sha256(tmp / WEIGHTS_FILE), names[0]: file_sha256(tmp / names[0]),
             CONFIG_FILE: file_sha256(tmp / CONFIG_FILE)}
    files.update({name: file_sha256(tmp / name) for name in info.get(CTRANSLATE2, {}).get("files", [])})
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
    precision: Choice  # the compute dtype the model was built in, and why
    languages: Languages  # its language pairs, from the manifest


def check_model_dir(model: str | Path | ModelDir, overrides: list[str] | None = None,
                    decode_flags: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], Config]:
    """The manifest and config of a native model directory checked by `verified_native`."""
    opened = verified_native(model, overrides, decode_flags)
    return dict(opened.manifest), opened.config


def verified_native(model: str | Path | ModelDir, overrides: list[str] | None = None,
                    decode_flags: Mapping[str, Any] | None = None) -> ModelDir:
    """A native model directory opened once (`open_model_dir`: its config parsed with `--set`
    overrides and typed decode flags), its files and hashes verified before any heavy work."""
    opened = open_model_dir(model, overrides, decode_flags)
    if opened.engine != NATIVE:
        raise CheckpointError(f"{opened.path}: a {opened.engine} export, not an mt-cli model directory; "
                              "point -m at the run directory or model directory it was exported from")
    if opened.manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{opened.path / MANIFEST_FILE}: format_version {opened.manifest.get('format_version')} "
                              f"is not supported (this mt-cli reads {FORMAT_VERSION})")
    opened = opened.verify()
    if CONFIG_FILE not in opened.manifest["files_sha256"]:
        log.warning(f"{opened.path / CONFIG_FILE}: not covered by the manifest (an older export); "
                    "edits to it cannot be detected")
    return opened


def load_model_dir(model: str | Path | ModelDir, overrides: list[str] | None = None,
                   precision: str | None = None, decode_flags: Mapping[str, Any] | None = None) -> LoadedModel:
    """Load a model directory (or a run directory's export): check it, rebuild the model, load float32 weights;
    `--set` overrides and typed decode flags (winning over both) apply to its config when a
    path is given (an opened directory has them already)."""
    opened = verified_native(model, overrides, decode_flags)
    cfg, tokenizers = opened.config, opened.tokenizers()
    dtype = decode_dtype(precision or cfg.decode.dtype)
    log.debug(dtype.describe("decode dtype"))
    model = build_model(cfg.model, tokenizers.source.vocab_size, tokenizers.target.vocab_size,
                        precision=dtype.value)
    weights = opened.file(WEIGHTS_FILE)
    try:
        model.load_weights(str(weights))
    except Exception as exc:  # noqa: BLE001 (h5py / keras raise various types)
        raise CheckpointError(f"{weights}: cannot load weights ({str(exc)[:200]})") from None
    return LoadedModel(opened.path, cfg, tokenizers, dict(opened.manifest), model, dtype, opened.languages)


def load_translator(model: str | Path | ModelDir, overrides: list[str] | None = None,
                    decode_flags: Mapping[str, Any] | None = None) -> Translator:
    """A Translator over a model directory, with `--set` overrides and typed decode flags applied."""
    loaded = load_model_dir(model, overrides, decode_flags=decode_flags)
    return Translator(loaded.model, loaded.tokenizers, loaded.config.decode, loaded.precision, loaded.languages)


def _check_same_tokenizers(models: list[str | Path | ModelDir]) -> None:
    """Ensemble members must read and write the same pieces: compare the tokenizer hashes of
    their manifests before any model is built."""
    opened = [open_model_dir(model) for model in models]
    first = opened[0].manifest["tokenizer"]
    for model in opened[1:]:
        other = model.manifest["tokenizer"]
        for side in ("source", "target"):
            mine, theirs = first[f"{side}_sha256"], other[f"{side}_sha256"]
            if mine != theirs:
                raise CheckpointError(
                    f"{model.path}: its {side} SentencePiece model (sha256 {theirs[:12]}) differs from "
                    f"{opened[0].path}'s ({mine[:12]}); ensembles need models trained with the same "
                    "tokenizer (train them with the same tokenizer.model)")


def load_ensemble_translator(models: list[str | Path | ModelDir], overrides: list[str] | None = None,
                             weights: list[float] | None = None,
                             decode_flags: Mapping[str, Any] | None = None) -> Translator:
    """One Translator over several model directories whose next-token log-probabilities are
    averaged (`weights`, default equal); decoding options come from the first directory."""
    opened = [open_model_dir(model, overrides, decode_flags) for model in models]
    _check_same_tokenizers(opened)
    loaded = [load_model_dir(model) for model in opened]
    ensemble = Ensemble([m.model for m in loaded], weights)
    return Translator(ensemble, loaded[0].tokenizers, loaded[0].config.decode, loaded[0].precision,
                      loaded[0].languages)


def set_threads(threads: int) -> None:
    """Limit TensorFlow's CPU threads (0 = all cores). TensorFlow fixes its pools at the first
    op, so a second model opened in the same process with the same count is fine."""
    if not threads or tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:  # TensorFlow already ran an op in this process
        log.warning(f"threads={threads} not applied: TensorFlow's thread pools are already fixed "
                    "in this process")
