"""Which engine translates: CTranslate2 where the model directory holds its conversion and the
request uses only what CTranslate2 does the same way, the native (TensorFlow) engine where
only it can; the choice comes with its reason, said once on stderr, in jsonl records and in
serve's /info. The engines are imported inside the functions, so a CTranslate2 translation
never pays for TensorFlow's import."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mt_cli.core.config import DecodeConfig, ctranslate2_fields, native_feature
from mt_cli.core.errors import ConfigError
from mt_cli.core.hardware import nvidia_gpus_visible
from mt_cli.core.runtime import Choice
from mt_cli.engines.locate import (
    CTRANSLATE2,
    NATIVE,
    conversion_files,
    engine_of,
    model_config,
    read_manifest,
    resolve_model_dir,
)
from mt_cli.engines.protocol import LineTranslator

__all__ = ["AUTO", "ENGINE_OPTIONS", "EngineChoice", "check_engine_option", "choose_engine", "native_only_use",
           "open_translator"]
AUTO = "auto"
ENGINE_OPTIONS = (AUTO, NATIVE, CTRANSLATE2)


@dataclass(frozen=True)
class EngineChoice:
    """The engine that translates, and why (the words users read on stderr and in /info)."""

    engine: str
    reason: str
    precision: Choice | None = None  # the native engine's compute dtype and why, once it is open

    def describe(self) -> str:
        said = f"engine: {self.engine} ({self.reason})"
        return said if self.precision is None else f"{said}; {self.precision.describe('decode dtype')}"

    def opened(self, translator: LineTranslator) -> EngineChoice:
        """This choice with what the opened engine computes in (the native engine's dtype)."""
        return replace(self, precision=getattr(translator, "precision", None))


NATIVE_FIRST = ("native", "native_first")  # DecodeConfig's `ctranslate2` kinds `auto` takes native for
CONSTRAINTS_USE = "--constraints-file (lexically constrained search)"


def native_only_use(decode: DecodeConfig, constraints: bool = False) -> str | None:
    """The first option in use that only the native engine has (or has its way), named as
    users give it (DecodeConfig's `ctranslate2` declarations); None when CTranslate2 decodes
    the request the same way."""
    if constraints:
        return CONSTRAINTS_USE
    for kind in NATIVE_FIRST:  # what CTranslate2 cannot serve at all is the stronger reason
        for f in ctranslate2_fields(kind):
            if decode.in_effect(f.name):
                return native_feature(f.name)
    return None


def check_engine_option(requested: str) -> None:
    """`--engine` must name one of the choices (checked before any long work)."""
    if requested not in ENGINE_OPTIONS:
        raise ConfigError(f"--engine: must be one of {', '.join(ENGINE_OPTIONS)}, got {requested!r}")


def choose_engine(models: list[str | Path], requested: str = AUTO, overrides: list[str] | None = None,
                  decode_flags: Mapping[str, Any] | None = None, constraints: bool = False) -> EngineChoice:
    """The engine for this request, read from the directories' manifests and configs (no
    TensorFlow); an explicit `--engine` wins, and fails in one line where it cannot serve."""
    check_engine_option(requested)
    directories = [resolve_model_dir(model) for model in models]
    manifests = [read_manifest(directory) for directory in directories]
    exports = [d for d, m in zip(directories, manifests) if m.get("engine", NATIVE) == CTRANSLATE2]
    if exports:
        if requested == NATIVE:
            raise ConfigError(f"--engine native: {exports[0]} is a CTranslate2 export without native weights; "
                              "give the model directory it was exported from")
        if len(directories) > 1:
            raise ConfigError(f"-m {exports[0]}: a CTranslate2 export cannot be part of an ensemble; "
                              "give the native model directories it was exported from")
        return EngineChoice(CTRANSLATE2, "the model is a CTranslate2 export")
    if requested == NATIVE:
        return EngineChoice(NATIVE, "--engine native")
    needs_native = _needs_native(directories, manifests, overrides, decode_flags, constraints)
    if requested == CTRANSLATE2:
        if needs_native is not None:
            raise ConfigError(f"--engine ctranslate2: {needs_native}; use --engine auto or native")
        return EngineChoice(CTRANSLATE2, "--engine ctranslate2")
    if needs_native is not None:
        return EngineChoice(NATIVE, needs_native)
    quantization = manifests[0][CTRANSLATE2]["quantization"]
    return EngineChoice(CTRANSLATE2, f"the model directory holds a CTranslate2 {quantization} conversion and "
                                     "nothing asked for needs the native engine")


def _needs_native(directories: list[Path], manifests: list[dict[str, Any]], overrides: list[str] | None,
                  decode_flags: Mapping[str, Any] | None, constraints: bool) -> str | None:
    """Why this request needs the native engine (a sentence), or None."""
    if len(directories) > 1:
        return f"an ensemble of {len(directories)} models needs the native engine"
    if conversion_files(manifests[0]) is None:
        return f"{directories[0]} holds no CTranslate2 conversion (written by an older mt-cli)"
    decode = model_config(directories[0], manifests[0], overrides, decode_flags).decode
    use = native_only_use(decode, constraints)
    if use is not None:
        return f"{use} needs the native engine"
    if nvidia_gpus_visible():
        return "a GPU is visible, and the native engine decodes on it"
    return None


def open_translator(model: str | Path | list[str | Path], overrides: list[str] | None = None, threads: int = 0,
                    ensemble_weights: list[float] | None = None,
                    decode_flags: Mapping[str, Any] | None = None, engine: str = NATIVE) -> LineTranslator:
    """The engine `engine` (native or ctranslate2; see `choose_engine` for `auto`) over a model
    directory, with `--set` overrides and typed decode flags (field name -> value, winning over
    both) applied; several native directories make one ensemble (`ensemble_weights`, default
    equal). A CTranslate2 export is always read by CTranslate2.

    The engines are imported here, not at the top, so a CTranslate2 model never pays for
    TensorFlow's import.
    """
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if engine == AUTO:
        engine = choose_engine(models, AUTO, overrides, decode_flags).engine
    if len(models) > 1:
        return _open_ensemble(models, overrides, threads, ensemble_weights, decode_flags)
    if ensemble_weights is not None:
        raise ConfigError("--ensemble-weights: give two or more models (-m A -m B) to ensemble")
    directory = resolve_model_dir(models[0])
    if engine == CTRANSLATE2 or engine_of(directory) == CTRANSLATE2:
        from mt_cli.engines.ctranslate2 import CT2Translator

        return CT2Translator(directory, overrides, threads, decode_flags)
    from mt_cli.engines.model_dir import load_translator, set_threads

    set_threads(threads)
    return load_translator(directory, overrides, decode_flags)


def _open_ensemble(models: list[str | Path], overrides: list[str] | None, threads: int,
                   weights: list[float] | None, decode_flags: Mapping[str, Any] | None) -> LineTranslator:
    """Native model directories decoded as one; CTranslate2 exports cannot join."""
    for path in models:
        if engine_of(path) == CTRANSLATE2:
            raise ConfigError(f"-m {path}: a CTranslate2 export cannot be part of an ensemble; "
                              "give the native model directories it was exported from")
    if weights is not None and (len(weights) != len(models)
                                or not all(math.isfinite(w) and w > 0 for w in weights)):
        raise ConfigError(f"--ensemble-weights: need {len(models)} positive finite numbers (one per -m), "
                          f"got {','.join(map(str, weights))}")
    from mt_cli.engines.model_dir import load_ensemble_translator, set_threads

    set_threads(threads)
    return load_ensemble_translator(models, overrides, weights, decode_flags)
