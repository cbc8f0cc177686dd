"""Which engine translates: CTranslate2 where the model directory holds its conversion and the
request uses only what CTranslate2 does the same way, the native (TensorFlow) engine where
only it can; the choice comes with its reason, said once on stderr, in jsonl records and in
serve's /info. The engines are imported inside the functions, so a CTranslate2 translation
never pays for TensorFlow's import."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mt_cli.core.compute_type import compute_type_for
from mt_cli.core.config import DecodeConfig, ctranslate2_fields, native_feature
from mt_cli.core.errors import ConfigError
from mt_cli.core.hardware import nvidia_gpus_visible, this_cpu
from mt_cli.core.runtime import Choice
from mt_cli.engines.job import Job, native_repays
from mt_cli.engines.locate import CTRANSLATE2, NATIVE
from mt_cli.engines.opened import ModelDir, open_model_dir
from mt_cli.engines.protocol import LineTranslator

__all__ = ["AUTO", "ENGINE_OPTIONS", "EngineChoice", "check_engine_option", "choose_engine", "native_only_use",
           "open_translator", "precision_name"]
AUTO = "auto"
ENGINE_OPTIONS = (AUTO, NATIVE, CTRANSLATE2)


@dataclass(frozen=True)
class EngineChoice:
    """The engine that translates, and why (the words users read on stderr and in /info)."""

    engine: str
    reason: str
    precision: Choice | None = None  # what the opened engine computes in and why

    def describe(self) -> str:
        said = f"engine: {self.engine} ({self.reason})"
        return said if self.precision is None else f"{said}; {self.precision.describe(precision_name(self.engine))}"

    def opened(self, translator: LineTranslator) -> EngineChoice:
        """This choice with what the opened engine computes in (native: its dtype; CTranslate2: its
        compute type)."""
        return replace(self, precision=getattr(translator, "precision", None))


def precision_name(engine: str) -> str:
    """What each engine calls the type it computes in (the engine line, serve's /info)."""
    return "compute type" if engine == CTRANSLATE2 else "decode dtype"


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


def choose_engine(models: Sequence[str | Path | ModelDir], requested: str = AUTO, overrides: list[str] | None = None,
                  decode_flags: Mapping[str, Any] | None = None, constraints: bool = False,
                  job: Job | None = None) -> EngineChoice:
    """The engine for this request, read from the opened directories (`open_model_dir`: paths
    are opened here, with `overrides` and `decode_flags`; no TensorFlow) and the `job` (a
    server, a file's length: engines/job.py); an explicit `--engine` wins, and fails in one line
    where it cannot serve."""
    check_engine_option(requested)
    opened = [open_model_dir(model, overrides, decode_flags) for model in models]
    exports = [m.path for m in opened if m.engine == CTRANSLATE2]
    if exports:
        if requested == NATIVE:
            raise ConfigError(f"--engine native: {exports[0]} is a CTranslate2 export without native weights; "
                              "give the model directory it was exported from")
        if len(opened) > 1:
            raise ConfigError(f"-m {exports[0]}: a CTranslate2 export cannot be part of an ensemble; "
                              "give the native model directories it was exported from")
        return EngineChoice(CTRANSLATE2, "the model is a CTranslate2 export")
    if requested == NATIVE:
        return EngineChoice(NATIVE, "--engine native")
    needs_native = _needs_native(opened, constraints)
    if requested == CTRANSLATE2:
        if needs_native is not None:
            raise ConfigError(f"--engine ctranslate2: {needs_native}; use --engine auto or native")
        return EngineChoice(CTRANSLATE2, "--engine ctranslate2")
    if needs_native is not None:
        return EngineChoice(NATIVE, needs_native)
    decode, cpu = opened[0].config.decode, this_cpu()
    faster = native_repays(job or Job(), cpu, decode.dtype,
                           compute_type_for(opened[0].manifest, decode.compute_type, cpu).value)
    if faster is not None:
        return EngineChoice(NATIVE, faster)
    quantization = opened[0].manifest[CTRANSLATE2]["quantization"]
    return EngineChoice(CTRANSLATE2, f"the model directory holds a CTranslate2 {quantization} conversion and "
                                     "nothing asked for needs the native engine")


def _needs_native(opened: list[ModelDir], constraints: bool) -> str | None:
    """Why this request needs the native engine (a sentence), or None."""
    if len(opened) > 1:
        return f"an ensemble of {len(opened)} models needs the native engine"
    if opened[0].conversion is None:
        return f"{opened[0].path} holds no CTranslate2 conversion (written by an older mt-cli)"
    use = native_only_use(opened[0].config.decode, constraints)
    if use is not None:
        return f"{use} needs the native engine"
    if nvidia_gpus_visible():
        return "a GPU is visible, and the native engine decodes on it"
    return None


def open_translator(model: str | Path | ModelDir | Sequence[str | Path | ModelDir], overrides: list[str] | None = None,
                    threads: int = 0, ensemble_weights: list[float] | None = None,
                    decode_flags: Mapping[str, Any] | None = None, engine: str = NATIVE,
                    parallel_batches: bool = False) -> LineTranslator:
    """The engine `engine` (native or ctranslate2; see `choose_engine` for `auto`) over a model
    directory opened once (`open_model_dir`; a path is opened here, with `--set` overrides and
    typed decode flags winning over both); several native directories make one ensemble
    (`ensemble_weights`, default equal). `parallel_batches`: CTranslate2 decodes a job's batches
    side by side (files), not each on every core (servers, streams). A CTranslate2 export is always read by CTranslate2.

    The engines are imported here, not at the top, so a CTranslate2 model never pays for
    TensorFlow's import.
    """
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    opened = [open_model_dir(m, overrides, decode_flags) for m in models]
    if engine == AUTO:
        engine = choose_engine(opened, AUTO).engine
    if len(opened) > 1:
        return _open_ensemble(opened, threads, ensemble_weights)
    if ensemble_weights is not None:
        raise ConfigError("--ensemble-weights: give two or more models (-m A -m B) to ensemble")
    if engine == CTRANSLATE2 or opened[0].engine == CTRANSLATE2:
        from mt_cli.engines.ctranslate2 import CT2Translator

        return CT2Translator(opened[0], threads=threads, parallel_batches=parallel_batches)
    from mt_cli.engines.model_dir import load_translator, set_threads

    set_threads(threads)
    return load_translator(opened[0])


def _open_ensemble(opened: list[ModelDir], threads: int, weights: list[float] | None) -> LineTranslator:
    """Native model directories decoded as one; CTranslate2 exports cannot join."""
    for model in opened:
        if model.engine == CTRANSLATE2:
            raise ConfigError(f"-m {model.path}: a CTranslate2 export cannot be part of an ensemble; "
                              "give the native model directories it was exported from")
    if weights is not None and (len(weights) != len(opened)
                                or not all(math.isfinite(w) and w > 0 for w in weights)):
        raise ConfigError(f"--ensemble-weights: need {len(opened)} positive finite numbers (one per -m), "
                          f"got {','.join(map(str, weights))}")
    from mt_cli.engines.model_dir import load_ensemble_translator, set_threads

    set_threads(threads)
    return load_ensemble_translator(opened, weights=weights)
