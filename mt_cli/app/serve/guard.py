"""What the server checks before a request reaches FastAPI: the open connections, the Host
header, the content type and the body's size and arrival time; and the escaping of client
text in log lines (`printable`, from mt_cli/core/printable.py).

Why here, in front of the app: FastAPI parses a body before any route code runs, so a limit
checked in the route comes after the cost (a 2 MB body of a million ints took seconds and a
gigabyte to refuse). Reading the body ourselves, with a byte bound derived from the request
limits and a deadline, refuses floods and slow senders before anything is parsed; checking
the Host header refuses pages that reach a local server through DNS rebinding, and
requiring `application/json` refuses the bodies a browser sends cross-site without asking
(except form bodies on LibreTranslate's two POST paths, whose clients send them: a page
elsewhere can then have a browser ask for a translation, which changes nothing and whose
answer the browser does not let that page read).
Refusing a request over --max-connections here (not in uvicorn's `limit_concurrency`) gives
it the server's JSON error shape and `Retry-After` instead of a plain-text 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi.responses import JSONResponse

from mt_cli.core.printable import printable  # the one escaping (core), re-exported for the server

__all__ = ["EscapeFilter", "RequestGuard", "error_response", "host_names", "printable"]

Receive = Callable[[], Awaitable[dict]]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
RETRY_AFTER_S = 1
FORM = "application/x-www-form-urlencoded"
FORM_PATHS = ("/translate", "/detect")  # LibreTranslate's clients post forms there (app/serve/libre.py)


class EscapeFilter(logging.Filter):
    """Escapes every record of a library's logger (uvicorn's access and error logs format
    client paths and headers into their messages)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = printable(record.getMessage()), None
        return True


def error_response(status: int, field: str | None, message: str, retry: bool = False,
                   close: bool = False) -> JSONResponse:
    """Every error the server answers: `{"error": message, "field": field or null}`."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if retry else {}
    if close:
        headers["Connection"] = "close"
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers or None)


def host_names(bind_host: str, allowed: Iterable[str]) -> frozenset[str]:
    """The Host names accepted: those given, else localhost and the bind address (with a
    wildcard bind, this machine's names too); '*' accepts any."""
    import socket

    names = {name.strip().lower().rstrip(".") for name in allowed if name.strip()}
    if not names:
        names = {"localhost", bind_host.lower()}
        if bind_host in WILDCARD_HOSTS:
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names - {""})


def host_allowed(header: str, names: frozenset[str]) -> bool:
    """IP literals always pass (DNS rebinding needs a name the attacker controls); names must
    be listed. `header` is the Host header: name, name:port, [v6]:port."""
    if "*" in names:
        return True
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host in names


def _media_type(headers: dict[bytes, bytes]) -> str:
    return headers.get(b"content-type", b"").decode("latin-1").split(";", 1)[0].strip().lower()


class RequestGuard:
    """Pure ASGI middleware: at most `max_connections` open connections (503 + Retry-After,
    counted by `open_connections`), Host allow-list (400), `application/json` bodies only (form
    bodies too on FORM_PATHS; else 415), a
    body of at most `max_body` bytes (413, before parsing) that arrives within `read_timeout`
    seconds (408); the body read here is handed on to the app as one message."""

    def __init__(self, app: Any, names: frozenset[str], max_body: int, read_timeout: float,
                 max_connections: int = 0, open_connections: Callable[[], int] | None = None) -> None:
        self.app, self.names, self.max_body, self.read_timeout = app, names, max_body, read_timeout
        self.max_connections, self.open_connections = max_connections, open_connections

    async def __call__(self, scope: dict, receive: Receive, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        refusal = self._refusal(scope, headers)
        if refusal is None and scope["method"] in BODY_METHODS:
            body = await self._read_body(receive)
            if body is None:  # the client went away: nobody to answer
                return
            if isinstance(body, JSONResponse):
                refusal = body
            else:
                receive = _replay(body, receive)
        elif refusal is not None and scope["method"] in BODY_METHODS:
            await self._drain(receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _drain(self, receive: Receive) -> None:
        """Read and drop a refused body (for at most the read timeout): a server that closes on
        unread data resets the connection, and the client would never see the answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        with contextlib.suppress(asyncio.TimeoutError):
            while True:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    return

    def _refusal(self, scope: dict, headers: dict[bytes, bytes]) -> JSONResponse | None:
        if self.open_connections is not None and (count := self.open_connections()) > self.max_connections:
            return error_response(503, None, f"{count} connections open, over --max-connections "
                                             f"({self.max_connections}); retry later", retry=True, close=True)
        host = headers.get(b"host")
        if host is not None and not host_allowed(host.decode("latin-1"), self.names):
            return error_response(400, "Host", "Host header not allowed (see mt-cli serve --allowed-hosts)")
        if scope["method"] not in BODY_METHODS:
            return None
        media = _media_type(headers)
        if media != "application/json" and not (media == FORM and scope.get("path") in FORM_PATHS):
            return error_response(415, "Content-Type", "the body must be JSON with Content-Type: application/json "
                                                       f"(or, on {' and '.join(FORM_PATHS)}, {FORM})")
        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if length.isdigit() and int(length) > self.max_body:
            return self._too_large()
        return None

    def _too_large(self) -> JSONResponse:
        return error_response(413, "body", f"request body over {self.max_body} bytes (the bound that "
                                           "--max-lines and --max-chars allow)", close=True)

    async def _read_body(self, receive: Receive) -> bytes | JSONResponse | None:
        """The body, or the answer refusing it; None if the client disconnected."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return error_response(408, "body", f"the request body did not arrive within "
                                                   f"{self.read_timeout:g} s", close=True)
            if message["type"] == "http.disconnect":
                return None
            size += len(message.get("body", b""))
            if size > self.max_body:
                if message.get("more_body"):
                    await self._drain(receive)
                return self._too_large()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app the body read already, then the connection's own
    messages (a disconnect, which the route watches for)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
