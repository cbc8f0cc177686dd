"""The serve use case: one model behind HTTP (FastAPI + uvicorn), with micro-batching.

Requests arrive one sentence at a time; the MicroBatcher queues them and one worker thread
decodes those with equal decode options (beam size, n-best, with or without prefixes)
together, off the event loop, handing each request its own results in order. The model is
loaded and warmed in the background after the port opens, so `/health` answers 503 until
it can translate. Limits (lines, characters, queued lines, body bytes, connections, the
time headers and a body may take) turn floods and slow clients into 4xx/503 answers or
closed connections instead of memory growth; the checks made before a body is parsed are in
guard.py, the header deadline and connection count in connection.py. Answers and /info name no
file paths and pass no exception text on (the log has it, escaped). SIGTERM: uvicorn stops
accepting, in-flight requests finish, the batcher drains, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from mt_cli import __version__
from mt_cli.app.serve.connection import connection_protocol
from mt_cli.app.serve.guard import (
    RETRY_AFTER_S,
    EscapeFilter,
    RequestGuard,
    error_response,
    host_names,
    printable,
)
from mt_cli.app.serve.microbatch import Closed, MicroBatcher, QueueFull
from mt_cli.app.serve.page import PAGE_HEADERS, PageError, PageView, read_form, render_page
from mt_cli.core.config import (
    MAX_BEAM,
    DecodeConfig,
    DecodeNames,
    decode_fields,
    decode_with,
)
from mt_cli.core.errors import ConfigError, MtError
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.engines.locate import NATIVE, model_config, model_name, read_manifest, resolve_model_dir
from mt_cli.engines.protocol import LineTranslator

__all__ = ["ModelHost", "ServeSettings", "create_app", "model_info", "run_server"]
log = logging.getLogger("mt_cli")
WARMUP_LINE = "Warm up ."
MAX_WAIT_MS = 60_000.0  # longer waits would hold every request for minutes; larger numbers overflow timers
ENDPOINTS = "GET / (the web page), POST /translate, GET /health, GET /info, GET /docs"


@dataclass(frozen=True)
class ServeSettings:
    """Where to listen, how to batch, and the limits that keep memory bounded."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_batch_size: int = 32
    max_wait_ms: float = 10.0
    max_lines: int = 256
    max_chars: int = 10000
    max_queue: int = 0  # lines queued or being decoded; 0 = 4 x max(max_lines, max_batch_size)
    max_beam_size: int = 16
    allowed_hosts: tuple[str, ...] = ()  # Host header names; () = localhost and --host; IP literals always
    read_timeout: float = 10.0  # seconds a request body may take to arrive
    header_timeout: float = 10.0  # seconds a connection may take to send a request's headers
    max_connections: int = 64  # open connections; requests on more: 503

    @property
    def queue_lines(self) -> int:
        return self.max_queue or 4 * max(self.max_lines, self.max_batch_size)

    @property
    def max_body(self) -> int:
        """The most bytes a request within --max-chars and --max-lines can take as JSON: 12
        per character (a \\uXXXX\\uXXXX escape), 128 per line (quotes, commas, its prefix's,
        spacing) and 4 KiB for the rest."""
        return 12 * self.max_chars + 128 * self.max_lines + 4096

    def check(self) -> None:
        """One error naming the option, before anything starts."""
        for name in ("max_batch_size", "max_lines", "max_chars", "max_beam_size", "max_connections"):
            if getattr(self, name) < 1:
                raise MtError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.max_wait_ms <= MAX_WAIT_MS:  # False for nan too
            raise MtError(f"--max-wait-ms: must be a number in 0..{MAX_WAIT_MS:g}, got {self.max_wait_ms}")
        for name in ("read_timeout", "header_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise MtError(f"--{name.replace('_', '-')}: must be a number of seconds in (0, 3600], "
                              f"got {getattr(self, name)}")
        if self.max_beam_size > MAX_BEAM:
            raise MtError(f"--max-beam-size: must be <= {MAX_BEAM} (the widest beam decoding takes), "
                          f"got {self.max_beam_size}")
        if not 0 <= self.port < 65536:
            raise MtError(f"--port: must be in 0..65535, got {self.port}")
        if self.max_queue and self.max_queue < self.max_lines:
            raise MtError(f"--max-queue: must be >= --max-lines ({self.max_lines}), got {self.max_queue}")


@dataclass(frozen=True)
class Options:
    """Decode options of one request, passed to the engine per call: requests with equal
    options (a frozen DecodeConfig compares by value) share a batch."""

    decode: DecodeConfig
    prefixed: bool


class ApiError(Exception):
    """An HTTP error answered as JSON naming the field at fault."""

    def __init__(self, status: int, field: str | None, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.status, self.field, self.message, self.retry = status, field, message, retry


# ---------------------------------------------------------------- request and response bodies

class TranslateRequest(BaseModel):
    """POST /translate: lines to translate, optional decode options and target prefixes."""

    model_config = ConfigDict(extra="forbid")
    text: list[StrictStr] = Field(description="Source lines; N in = N out, empty line -> empty translation.")
    # Their rules (>= 1, n_best <= beam_size) are DecodeConfig's, checked in ModelHost.options.
    beam_size: StrictInt | None = Field(None, description="Beam width, >= 1 (default: the model's).")
    n_best: StrictInt | None = Field(None, description="Hypotheses per line, 1..beam_size.")
    prefix: list[StrictStr] | None = Field(None, description="One target prefix per line ('' = none).")


REQUEST_DECODE = tuple(f.name for f in decode_fields() if f.name in TranslateRequest.model_fields)
REQUEST_ORIGIN = "the model's decode options"


class NbestItem(BaseModel):
    text: str
    score: float | None


class Translation(BaseModel):
    text: str
    score: float | None = Field(description="Length-normalised log-probability (null if not finite).")
    nbest: list[NbestItem] | None = None


class TranslateResponse(BaseModel):
    translations: list[Translation]
    model: str


def _finite(score: float) -> float | None:
    return score if math.isfinite(score) else None


def _translation(nbest: list[Hypothesis], n_best: int) -> dict[str, Any]:
    best = nbest[0]
    out: dict[str, Any] = {"text": best.text, "score": _finite(best.score)}
    if n_best > 1:
        out["nbest"] = [{"text": h.text, "score": _finite(h.score)} for h in nbest]
    return out


# ---------------------------------------------------------------- the model

def model_info(directory: Path, engine: tuple[str, str] | None = None) -> dict[str, Any]:
    """What /info says about a model directory, read without loading the model; `engine` is
    the engine chosen for it and why (default: the manifest's)."""
    manifest = read_manifest(directory)
    config = model_config(directory, manifest)  # checked before it is opened: a FIFO blocked here
    source = manifest.get("source_model", {})
    files = manifest.get("files_sha256", {})
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]
    name = model_name(directory)
    return {
        "model": f"{name}@{digest}",
        "engine": engine[0] if engine else manifest.get("engine", NATIVE),
        "engine_reason": engine[1] if engine else "the model directory's own engine",
        "languages": {"source": config.data.source_lang, "target": config.data.target_lang},
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

    def __init__(self, open_engine: Callable[[], LineTranslator], directory: Path, settings: ServeSettings,
                 engine: tuple[str, str] | None = None) -> None:
        self.settings = settings
        self.info = model_info(directory, engine)
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
            precision = getattr(engine, "precision", None)  # the native engine's dtype and why
            if precision is not None:
                self.info["decode_dtype"] = {"value": precision.value, "reason": precision.reason}
            self.base = engine.decode
            self.engine = engine
            self._decode([WARMUP_LINE], None, Options(self._batched(self.base), False))  # compiles / allocates
        except Exception as exc:  # noqa: BLE001 (any failure) reported by run_server as the command's error
            self.failure = exc
            self.on_failure()
            return
        self.batcher = MicroBatcher(self._decode, self.settings.max_batch_size,
                                    self.settings.max_wait_ms / 1000, self.settings.queue_lines)
        self._ready.set()
        dtype = f", decode dtype {precision.value} ({precision.reason})" if precision is not None else ""
        log.info(f"ready: {self.model_id} ({self.info['engine']}{dtype}), loaded and warmed in "
                 f"{time.perf_counter() - started:.1f} s")

    def _decode(self, lines: list[str], prefixes: list[str] | None, options: Options) -> list[list[Hypothesis]]:
        """One batch with its requests' options, passed per call: the engine is never changed."""
        assert self.engine is not None
        return self.engine.translate_nbest(lines, prefixes, decode=options.decode)

    def _batched(self, decode: DecodeConfig) -> DecodeConfig:
        """`decode` batching as the server does: the batcher's groups, decoded as one batch."""
        return dataclasses.replace(decode, batch_size=self.settings.max_batch_size, batch_tokens=0)

    def options(self, request: TranslateRequest) -> Options:
        """The request's decode options on the model's, checked by DecodeConfig's own rules (422
        naming the request field); a beam size alone asks for one best. The server's beam limit
        comes first: DecodeConfig's own bound (1024) is not what this server takes."""
        assert self.base is not None
        given = {name: getattr(request, name) for name in REQUEST_DECODE if getattr(request, name) is not None}
        for name in ("beam_size", "n_best"):
            if given.get(name, 0) > self.settings.max_beam_size:
                raise ApiError(422, name, self._over_beam_limit(name, given[name]))
        if "beam_size" in given:
            given.setdefault("n_best", 1)
        try:
            decode = decode_with(self.base, given, DecodeNames({name: name for name in given}, REQUEST_ORIGIN))
        except ConfigError as exc:
            raise ApiError(422, exc.key if exc.key in given else "body", str(exc)) from None
        if decode.beam_size > self.settings.max_beam_size:
            raise ApiError(422, "beam_size", self._over_beam_limit("beam_size", decode.beam_size))
        return Options(self._batched(decode), bool(request.prefix and any(request.prefix)))

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

def _check_unicode(name: str, lines: list[str]) -> None:
    """Lines the tokenizer can take: JSON lets a lone surrogate (\\udfff) through, UTF-8 does not."""
    for i, line in enumerate(lines):
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(422, f"{name}[{i}]", f"{name}[{i}]: not valid Unicode: a lone surrogate "
                                               f"U+{ord(line[exc.start]):04X} at character {exc.start + 1}") from None


def _check_limits(request: TranslateRequest, settings: ServeSettings) -> None:
    if len(request.text) > settings.max_lines:
        raise ApiError(413, "text", f"at most {settings.max_lines} lines per request, got {len(request.text)}")
    chars = sum(map(len, request.text)) + sum(map(len, request.prefix or []))
    if chars > settings.max_chars:
        raise ApiError(413, "text", f"at most {settings.max_chars} characters per request, got {chars}")
    if request.prefix is not None and len(request.prefix) != len(request.text):
        raise ApiError(422, "prefix", f"one prefix per line: {len(request.text)} lines, "
                                      f"{len(request.prefix)} prefixes")
    _check_unicode("text", request.text)
    _check_unicode("prefix", request.prefix or [])


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    """Pydantic's first complaint as one message naming the field (text, text[2], beam_size, body)."""
    first = exc.errors()[0]
    loc = [part for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return error_response(400, "body", f"invalid JSON: {first.get('ctx', {}).get('error', first['msg'])}")
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "body"
    return error_response(422, field, f"{field}: {first['msg']}")


class RequestLog:
    """Pure ASGI middleware: one log line per HTTP request with its status and latency."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            lines = scope.get("state", {}).get("lines")
            what = f" ({lines} line{'' if lines == 1 else 's'})" if lines is not None else ""
            log.info(f"{printable(scope['method'])} {printable(scope['path'])} {status[0]}{what} "
                     f"{(time.perf_counter() - started) * 1000:.1f} ms")


async def _disconnected(request: Request) -> None:
    """Returns once the client has closed its connection (the body has been read already, so
    the next message is the disconnect; anything else is waited past, at most 20 a second)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)


async def _answer(batcher: MicroBatcher, future: Future, request: Request) -> list[list[Hypothesis]]:
    """The request's results; a client that leaves first has its job dropped from the queue
    (499, read by nobody), a decoding failure is a 500 whose details only the log has."""
    waiter = asyncio.wrap_future(future)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({waiter, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not waiter.done():
        dropped = batcher.drop(future)
        waiter.cancel()
        log.info(f"client disconnected; its request was {'dropped from the queue' if dropped else 'being decoded'}")
        raise ApiError(499, None, "the client disconnected")
    try:
        return waiter.result()
    except Exception as exc:  # noqa: BLE001 (a decoding failure is a 500, not a crash)
        log.error(printable(f"decoding failed: {type(exc).__name__}: {exc}"))
        raise ApiError(500, None, "decoding failed (the server's log has the details)") from None


async def _translate(host: ModelHost, settings: ServeSettings, body: TranslateRequest,
                     request: Request) -> tuple[list[list[Hypothesis]], Options]:
    """What POST /translate and the web page share: the limits, the options, the batcher."""
    if not host.ready or host.batcher is None:
        raise ApiError(503, None, "the model is loading", retry=True)
    _check_limits(body, settings)
    options = host.options(body)
    try:
        future = host.batcher.submit(body.text, body.prefix if options.prefixed else None, options)
    except QueueFull as exc:
        raise ApiError(503, None, f"queue full ({exc}); retry later", retry=True) from None
    except Closed as exc:
        raise ApiError(503, None, f"not serving: {exc}", retry=True) from None
    return await _answer(host.batcher, future, request), options


async def _page(host: ModelHost, settings: ServeSettings, request: Request) -> HTMLResponse:
    """GET /: the page; with ?text=, its translation by the same path as POST /translate (the beam
    widened to the n-best asked for), or the page with the request's one-line error and status."""
    view = PageView(host.info, settings.max_beam_size)
    headers = dict(PAGE_HEADERS)
    try:
        view = dataclasses.replace(view, form=read_form(request.scope.get("query_string", b""),
                                                        settings.max_body, settings.max_beam_size))
        if view.form.lines:
            request.state.lines = len(view.form.lines)
            n_best = view.form.n_best
            wider = host.base is not None and n_best > host.base.beam_size
            body = TranslateRequest(text=view.form.lines, n_best=n_best, beam_size=n_best if wider else None)
            nbests, _ = await _translate(host, settings, body, request)
            view = dataclasses.replace(view, results=[_translation(n, n_best) for n in nbests])
    except (ApiError, PageError) as exc:
        if getattr(exc, "retry", False):
            headers["Retry-After"] = str(RETRY_AFTER_S)
        return HTMLResponse(render_page(dataclasses.replace(view, error=exc.message)), exc.status, headers)
    return HTMLResponse(render_page(view), headers=headers)


def _add_routes(app: FastAPI, host: ModelHost, settings: ServeSettings) -> None:
    @app.post("/translate", response_model=TranslateResponse, response_model_exclude_unset=True,
              summary="Translate lines (N in, N out)",
              responses={400: {"description": "invalid JSON"}, 413: {"description": "too many lines/characters"},
                         422: {"description": "a field has the wrong type or value"},
                         500: {"description": "decoding failed"},
                         503: {"description": "loading, queue full or shutting down (Retry-After)"}})
    async def translate(body: TranslateRequest, request: Request) -> dict[str, Any]:
        request.state.lines = len(body.text)
        nbests, options = await _translate(host, settings, body, request)
        return {"translations": [_translation(n, options.decode.n_best) for n in nbests], "model": host.model_id}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return await _page(host, settings, request)

    @app.get("/health", summary="200 once the model is loaded and warmed and while the batcher runs, 503 else")
    async def health() -> JSONResponse:
        if host.ready and host.batcher is not None and not host.batcher.alive:
            return JSONResponse({"status": "stopped", "model": host.model_id}, status_code=503)
        if host.ready:
            return JSONResponse({"status": "ok", "model": host.model_id})
        return JSONResponse({"status": "loading", "model": host.model_id}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.get("/info", summary="The model: languages, versions, step, dev scores, hashes; decode defaults")
    async def info() -> dict[str, Any]:
        decode = dataclasses.asdict(host.base) if host.base is not None else None
        limits = {**dataclasses.asdict(settings), "max_queue": settings.queue_lines}
        return {**host.info, "ready": host.ready, "decode": decode, "limits": limits, "stats": host.stats()}


def create_app(host: ModelHost, settings: ServeSettings,
               open_connections: Callable[[], int] | None = None) -> FastAPI:
    """The FastAPI app over a ModelHost; its lifespan loads the model and drains the batcher.
    `open_connections` counts the server's connections for --max-connections (None: no limit)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        host.start()
        yield
        await asyncio.to_thread(host.close)

    app = FastAPI(title="mt-cli translation server", version=__version__, lifespan=lifespan,
                  description="Micro-batched translation with one mt-cli model (native or CTranslate2).")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.field, exc.message, exc.retry)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """FastAPI's own 404/405/400 answers in the server's error shape."""
        message = {404: f"no such endpoint; there are {ENDPOINTS}",
                   405: f"method {printable(request.method)} not allowed here; there are {ENDPOINTS}"}
        response = error_response(exc.status_code, "body" if exc.status_code == 400 else None,
                                  message.get(exc.status_code, str(exc.detail)))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error(printable(f"internal error: {type(exc).__name__}: {exc}"))
        return error_response(500, None, "internal error (the server's log has the details)")

    _add_routes(app, host, settings)
    app.add_middleware(RequestGuard, names=host_names(settings.host, settings.allowed_hosts),
                       max_body=settings.max_body, read_timeout=settings.read_timeout,
                       max_connections=settings.max_connections, open_connections=open_connections)
    app.add_middleware(RequestLog)  # outermost: logs the guard's refusals too
    return app


class _Server(uvicorn.Server):
    """uvicorn re-raises a SIGTERM it handled once its graceful shutdown is over, so the
    process would die by the signal; a server that finished its in-flight requests has done
    what SIGTERM asks, and exits 0 (SIGINT still ends as an interrupt)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            captured = getattr(self, "_captured_signals", [])
            captured[:] = [s for s in captured if s != signal.SIGTERM]


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is one error line (exit 1)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MtError(f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run_server(open_engine: Callable[[], LineTranslator], model: str | Path, settings: ServeSettings,
               engine: tuple[str, str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; a model that fails to load ends the server with its error.
    `engine`: the engine `open_engine` opens and why, for /info."""
    settings.check()
    host = ModelHost(open_engine, resolve_model_dir(model), settings, engine)
    sock = _listen(settings.host, settings.port)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # their messages carry client paths too
        logging.getLogger(name).addFilter(EscapeFilter())
    protocol = connection_protocol(settings.header_timeout)
    app = create_app(host, settings, lambda: len(protocol.open_connections))
    config = uvicorn.Config(app, http=protocol, log_config=None, access_log=False,
                            timeout_graceful_shutdown=60, lifespan="on", server_header=False,
                            timeout_keep_alive=5,  # the header deadline closes idle ones sooner if shorter
                            h11_max_incomplete_event_size=settings.max_body + 16384)  # the page's GET query
    server = _Server(config)

    def stop() -> None:
        server.should_exit = True

    host.on_failure = stop
    log.info(f"serving {host.model_id} on http://{settings.host}:{sock.getsockname()[1]} "
             "(loading the model; /health says 503 until ready)")
    log.info(f"engine: {host.info['engine']} ({host.info['engine_reason']})")
    server.run(sockets=[sock])
    if host.failure is not None:
        if isinstance(host.failure, MtError):
            raise host.failure
        raise MtError(f"cannot load the model: {type(host.failure).__name__}: {host.failure}")
