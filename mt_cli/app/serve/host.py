"""The model behind the server: loaded and warmed in the background, decoding through the
micro-batcher, and described for /info (from the model directory opened once, engines/opened.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mt_cli import __version__
from mt_cli.app.serve.microbatch import MicroBatcher
from mt_cli.app.serve.schemas import REQUEST_DECODE, REQUEST_ORIGIN, ApiError, Options, TranslateRequest
from mt_cli.app.serve.settings import WARMUP_LINE, ServeSettings
from mt_cli.core.config import DecodeConfig
from mt_cli.core.config_checks import DecodeNames, decode_with
from mt_cli.core.errors import ConfigError
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.languages import TARGET_LANG_FLAG
from mt_cli.core.sentences import require_segmenter
from mt_cli.engines.choice import precision_name
from mt_cli.engines.locate import model_name
from mt_cli.engines.markup import translate_markup
from mt_cli.engines.opened import ModelDir, open_model_dir
from mt_cli.engines.protocol import LineTranslator
from mt_cli.engines.sentences import check_split_options, translate_split

log = logging.getLogger("mt_cli")


def model_info(model: Path | ModelDir, engine: tuple[str, str] | None = None) -> dict[str, Any]:
    """What /info says about a model directory (as opened for the engine: nothing is read
    again; a path is opened here), without loading the model; `engine` is the engine chosen
    for it and why (default: the manifest's)."""
    opened = open_model_dir(model)
    manifest = opened.manifest
    (source_lang, target_lang), *_ = opened.languages.pairs
    source = manifest.get("source_model", {})
    files = manifest.get("files_sha256", {})
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]
    name = model_name(opened.path)
    return {
        "model": f"{name}@{digest}",
        "engine": engine[0] if engine else opened.engine,
        "engine_reason": engine[1] if engine else "the model directory's own engine",
        "languages": {"source": source_lang, "target": target_lang,
                      "pairs": [list(pair) for pair in opened.languages.pairs],
                      "targets": list(opened.languages.targets),
                      "target_required": opened.languages.tagged},
        "step": manifest.get("step", source.get("step")),
        "dev_scores": manifest.get("dev_scores", {}),
        "quantization": manifest.get("quantization"),
        "versions": {"mt_cli_server": __version__, **(manifest.get("versions") or {})},
        "source_model_versions": source.get("versions"),
        "hashes": {"files_sha256": files, "tokenizer": {k: v for k, v in manifest.get("tokenizer", {}).items()
                                                        if k.endswith("sha256")},
                   "source_model_files_sha256": source.get("files_sha256")},
    }


class ModelHost:
    """The one model in memory, loaded and warmed in a background thread so that the port
    opens at once and /health can answer 503 until the first translation has run."""

    def __init__(self, open_engine: Callable[[], LineTranslator], model: Path | ModelDir, settings: ServeSettings,
                 engine: tuple[str, str] | None = None) -> None:
        self.settings = settings
        self.opened = open_model_dir(model)
        self.info = model_info(self.opened, engine)
        self.languages = self.opened.languages
        self.model_id: str = self.info["model"]
        self.engine: LineTranslator | None = None
        self.base: DecodeConfig | None = None
        self.batcher: MicroBatcher | None = None
        self.failure: Exception | None = None
        self.on_failure: Callable[[], None] = lambda: None
        self._open_engine = open_engine
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        threading.Thread(target=self._load, name="mt-cli-load", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            engine = self._open_engine()
            precision = getattr(engine, "precision", None)  # the engine's dtype or compute type, and why
            label = precision_name(self.info["engine"])
            if precision is not None:
                self.info[label.replace(" ", "_")] = {"value": precision.value, "reason": precision.reason}
            self.base = engine.decode
            self.engine = engine
            warm = self.base if self.base.target_lang or not self.languages.tagged else dataclasses.replace(
                self.base, target_lang=self.languages.targets[0])
            self._decode([WARMUP_LINE], None, Options(self._batched(warm), False))  # compiles / allocates
        except Exception as exc:  # noqa: BLE001 (any failure) reported by run_server as the command's error
            self.failure = exc
            self.on_failure()
            return
        self.batcher = MicroBatcher(self._decode, self.settings.max_batch_size,
                                    self.settings.max_wait_ms / 1000, self.settings.queue_lines)
        self._ready.set()
        dtype = f", {label} {precision.value} ({precision.reason})" if precision is not None else ""
        log.info(f"ready: {self.model_id} ({self.info['engine']}{dtype}), loaded and warmed in "
                 f"{time.perf_counter() - started:.1f} s")

    def _decode(self, lines: list[str], prefixes: list[str] | None, options: Options) -> list[list[Hypothesis]]:
        """One batch with its requests' options, passed per call: the engine is never changed."""
        assert self.engine is not None
        engine, decode, split = self.engine, options.decode, options.split

        def plain(texts: list[str], given: list[str] | None = None) -> list[list[Hypothesis]]:
            if split is not None:
                return translate_split(engine, texts, split, decode=decode)
            return engine.translate_nbest(texts, given, decode=decode)

        return translate_markup(plain, lines) if options.markup else plain(lines, prefixes)

    def _batched(self, decode: DecodeConfig) -> DecodeConfig:
        """`decode` batching as the server does: the batcher's groups, decoded as one batch."""
        return dataclasses.replace(decode, batch_size=self.settings.max_batch_size, batch_tokens=0)

    def options(self, request: TranslateRequest, language: str | None = None) -> Options:
        """The request's decode options on the model's, checked by DecodeConfig's own rules (422
        naming the request field; a beam size alone asks for one best). The server's beam limit
        comes first: DecodeConfig's own bound (1024) is not what this server takes. `language`:
        the one to split sentences in (default: the model's source language)."""
        assert self.base is not None
        given = {name: getattr(request, name) for name in REQUEST_DECODE if getattr(request, name) is not None}
        for name in ("beam_size", "n_best"):
            if given.get(name, 0) > self.settings.max_beam_size:
                raise ApiError(422, name, self._over_beam_limit(name, given[name]))
        try:
            decode = decode_with(self.base, given, DecodeNames({name: name for name in given}, REQUEST_ORIGIN))
        except ConfigError as exc:
            raise ApiError(422, exc.key if exc.key in given else "body", str(exc)) from None
        if decode.beam_size > self.settings.max_beam_size:
            raise ApiError(422, "beam_size", self._over_beam_limit("beam_size", decode.beam_size))
        try:
            self.languages.source_tags(decode.target_lang)
        except ConfigError as exc:
            raise ApiError(422, "target_lang", str(exc).replace(TARGET_LANG_FLAG, "target_lang")) from None
        split = self._split_language(decode, request, language) if request.split_sentences else None
        markup = request.format == "html"
        if markup:
            decode = self._markup_decode(decode, request, split)
        return Options(self._batched(decode), bool(request.prefix and any(request.prefix)), split, markup)

    def _markup_decode(self, decode: DecodeConfig, request: TranslateRequest, split: str | None) -> DecodeConfig:
        """An HTML request's options: no prefix (per line, not per text segment); word alignments
        from the native engine, to place inline tags by them (CTranslate2 has none, nor a split
        line: relative positions place them)."""
        if request.prefix is not None and any(request.prefix):
            raise ApiError(422, "prefix", "prefix: not with format html (prefixes are per line, not per text segment)")
        aligned = self.info["engine"] == "native" and split is None
        return dataclasses.replace(decode, alignments=aligned)

    def _split_language(self, decode: DecodeConfig, request: TranslateRequest, language: str | None = None) -> str:
        """The language to split the request's lines in (the model's source language unless
        given), once the request is one splitting can serve and the segmenter is here."""
        if request.prefix is not None and any(request.prefix):
            raise ApiError(422, "prefix", "prefix: not with split_sentences (prefixes are per line, not per sentence)")
        try:
            check_split_options(decode, {"n_best": "n_best", "alignments": "alignments"})
        except ConfigError as exc:
            raise ApiError(422, exc.key or "split_sentences", str(exc)) from None
        try:
            require_segmenter("split_sentences")
        except ConfigError as exc:  # the server lacks it, not the request
            raise ApiError(501, "split_sentences", str(exc)) from None
        return language or self.languages.sources[0]

    def _over_beam_limit(self, name: str, value: int) -> str:
        return f"{name}: must be <= {self.settings.max_beam_size} (the server's --max-beam-size), got {value}"

    def stats(self) -> dict[str, Any]:
        if self.batcher is None:
            return {}
        return {**dataclasses.asdict(self.batcher.stats), "queued_lines": self.batcher.pending_lines}

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


# ---------------------------------------------------------------- the HTTP app
