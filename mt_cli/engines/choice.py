"""Which engine reads a model directory: CTranslate2 exports or the native (TensorFlow) engine,
read from the directory's manifest. The engines are imported inside the functions, so a
CTranslate2 model never pays for TensorFlow's import."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mt_cli.core.errors import ConfigError
from mt_cli.engines.locate import CTRANSLATE2, engine_of, resolve_model_dir
from mt_cli.engines.protocol import LineTranslator

__all__ = ["open_translator"]


def open_translator(model: str | Path | list[str | Path], overrides: list[str] | None = None, threads: int = 0,
                    ensemble_weights: list[float] | None = None,
                    decode_flags: Mapping[str, Any] | None = None) -> LineTranslator:
    """The engine for a model directory (native or CTranslate2) with `--set` overrides and typed
    decode flags (field name -> value, winning over both) applied; several native directories
    make one ensemble (`ensemble_weights`, default equal).

    The engines are imported here, not at the top, so a CTranslate2 model never pays for
    TensorFlow's import.
    """
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if len(models) > 1:
        return _open_ensemble(models, overrides, threads, ensemble_weights, decode_flags)
    if ensemble_weights is not None:
        raise ConfigError("--ensemble-weights: give two or more models (-m A -m B) to ensemble")
    if engine_of(models[0]) == CTRANSLATE2:
        from mt_cli.engines.ctranslate2 import CT2Translator

        return CT2Translator(resolve_model_dir(models[0]), overrides, threads, decode_flags)
    from mt_cli.engines.model_dir import load_translator, set_threads

    set_threads(threads)
    return load_translator(models[0], overrides, decode_flags)


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
