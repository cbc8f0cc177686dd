"""The FastAPI app: routes, the JSON error shape, limits checked per request, one log line per request."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mt_cli import __version__
from mt_cli.app.serve.guard import RETRY_AFTER_S, RequestGuard, error_response, host_names, printable
from mt_cli.app.serve.host import ModelHost
from mt_cli.app.serve.libre import (
    Detector,
    LibreError,
    check_languages,
    is_libre,
    languages_answer,
    read_body,
    read_request,
    translated_answer,
)
from mt_cli.app.serve.microbatch import Closed, MicroBatcher, QueueFull
from mt_cli.app.serve.page import PAGE_HEADERS, PageError, PageView, read_form, render_page
from mt_cli.app.serve.schemas import ApiError, Options, TranslateRequest, TranslateResponse, translation_of
from mt_cli.app.serve.settings import ENDPOINTS, ServeSettings
from mt_cli.core.extras import installed
from mt_cli.core.hypothesis import Hypothesis

log = logging.getLogger("mt_cli")


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


async def _translate(host: ModelHost, settings: ServeSettings, body: TranslateRequest, request: Request,
                     language: str | None = None) -> tuple[list[list[Hypothesis]], Options]:
    """What POST /translate (both APIs) and the web page share: the limits, the options, the batcher."""
    if not host.ready or host.batcher is None:
        raise ApiError(503, None, "the model is loading", retry=True)
    _check_limits(body, settings)
    options = host.options(body, language)
    try:
        future = host.batcher.submit(body.text, body.prefix if options.prefixed else None, options)
    except QueueFull as exc:
        raise ApiError(503, None, f"queue full ({exc}); retry later", retry=True) from None
    except Closed as exc:
        raise ApiError(503, None, f"not serving: {exc}", retry=True) from None
    return await _answer(host.batcher, future, request), options


async def _fields(request: Request) -> tuple[bool, Any]:
    """The body (read and bounded by the guard already): (True, form fields) or (False, JSON),
    a body that is neither answered as FastAPI answers a broken JSON body."""
    body = await request.body()
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not body.strip() and media == "application/json":
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return read_body(body, media)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where, why = (exc.pos, exc.msg) if isinstance(exc, json.JSONDecodeError) else (exc.start, "not UTF-8")
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", where), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": why}}]) from None


def _own_request(fields: Any) -> TranslateRequest:
    """mt-cli's own request shape, checked as FastAPI checks a declared body (the same errors)."""
    try:
        return TranslateRequest.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _as_libre(exc: ApiError) -> LibreError:
    """An mt-cli API error in LibreTranslate's terms: 400 for a bad request, 429 for a full queue."""
    if exc.status in (413, 422):
        return LibreError(400, f"Invalid request: {exc.message}")
    if exc.status == 503 and exc.message.startswith("queue full"):
        return LibreError(429, f"Slowdown: {exc.message}", retry=True)
    if exc.status == 500:
        return LibreError(500, f"Cannot translate text: {exc.message}")
    return LibreError(exc.status, exc.message, exc.retry)


async def _libre_translate(host: ModelHost, settings: ServeSettings, detector: Detector, request: Request,
                           form: bool, fields: Any) -> JSONResponse:
    """LibreTranslate's POST /translate: each text's lines through the batcher (paragraphs split
    into sentences when the segmenter is installed, as LibreTranslate does), rejoined."""
    libre = read_request(fields, form, settings.max_beam_size - 1)
    pairs = host.languages.pairs
    check_languages(libre, pairs)
    lines, breaks = libre.lines()
    request.state.lines = len(lines)
    detected = None
    if libre.source == "auto":
        detected = [(await asyncio.to_thread(detector.detect, text))[0] for text in libre.texts]
    source = detected[0]["language"] if detected else libre.source
    n_best = 1 + libre.alternatives
    wider = libre.alternatives and host.base is not None and n_best > host.base.beam_size
    body = TranslateRequest(text=lines, n_best=n_best if libre.alternatives else None,
                            beam_size=n_best if wider else None,
                            split_sentences=not libre.alternatives and installed("sentencex"),
                            target_lang=libre.target, format="html" if libre.html else "text")
    try:
        nbests, _ = await _translate(host, settings, body, request, source)
    except ApiError as exc:
        raise _as_libre(exc) from None
    return JSONResponse(translated_answer(libre, nbests, breaks, detected))


def _add_libre_routes(app: FastAPI, host: ModelHost) -> Detector:
    """LibreTranslate's GET /languages and POST /detect; its POST /translate shares mt-cli's path."""
    detector = Detector(host.languages.sources)

    @app.get("/languages", summary="LibreTranslate: the model's languages and their targets")
    async def languages() -> JSONResponse:
        return JSONResponse(languages_answer(host.languages.pairs))

    @app.post("/detect", summary="LibreTranslate: the language of q among the model's source languages",
              openapi_extra=LIBRE_BODY)
    async def detect(request: Request) -> JSONResponse:
        form, fields = await _fields(request)
        q = fields.get("q") if isinstance(fields, dict) else None
        q = q[0] if form and isinstance(q, list) and len(q) == 1 else q
        if not isinstance(q, str) or not q:
            raise LibreError(400, "Invalid request: missing q parameter" if not q else "Invalid request: q must be "
                                  "a string")
        return JSONResponse(await asyncio.to_thread(detector.detect, q))

    return detector


LIBRE_BODY: dict[str, Any] = {"requestBody": {"content": {
    "application/json": {"schema": {"type": "object"}},
    "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}}
TRANSLATE_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/TranslateRequest"},
                                              {"type": "object", "required": ["q", "source", "target"],
                                               "description": "LibreTranslate's request"}]}},
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["q", "source", "target"],
                                                     "description": "LibreTranslate's request"}}}}}


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
            target = view.form.target_lang or (host.languages.targets[0] if host.languages.tagged else None)
            body = TranslateRequest(text=view.form.lines, n_best=n_best, beam_size=n_best if wider else None,
                                    split_sentences=view.form.split, target_lang=target)
            nbests, _ = await _translate(host, settings, body, request)
            view = dataclasses.replace(view, results=[translation_of(n, n_best) for n in nbests])
    except (ApiError, PageError) as exc:
        if getattr(exc, "retry", False):
            headers["Retry-After"] = str(RETRY_AFTER_S)
        return HTMLResponse(render_page(dataclasses.replace(view, error=exc.message)), exc.status, headers)
    return HTMLResponse(render_page(view), headers=headers)


def _add_routes(app: FastAPI, host: ModelHost, settings: ServeSettings) -> None:
    detector = _add_libre_routes(app, host)

    @app.post("/translate", response_model=TranslateResponse, response_model_exclude_unset=True,
              summary="Translate lines (N in, N out); a body with q (or a form) is LibreTranslate's request",
              openapi_extra=TRANSLATE_BODY,
              responses={400: {"description": "invalid JSON"}, 413: {"description": "too many lines/characters"},
                         422: {"description": "a field has the wrong type or value"},
                         500: {"description": "decoding failed"},
                         503: {"description": "loading, queue full or shutting down (Retry-After)"}})
    async def translate(request: Request) -> Any:
        form, fields = await _fields(request)
        if is_libre(form, fields):
            return await _libre_translate(host, settings, detector, request, form, fields)
        body = _own_request(fields)
        request.state.lines = len(body.text)
        nbests, options = await _translate(host, settings, body, request)
        return {"translations": [translation_of(n, options.decode.n_best) for n in nbests], "model": host.model_id}

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

    @app.exception_handler(LibreError)
    async def libre_error(_: Request, exc: LibreError) -> JSONResponse:
        return exc.response()

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
