"""The connection layer under the app: a deadline for every request's headers, and the count
of open connections that --max-connections is checked against (guard.py answers).

Why: uvicorn (0.55, h11) times a connection out only between requests (`timeout_keep_alive`,
armed when an answer ends and cancelled by the next byte), and has no header timeout. A
connection that never completes its headers was held forever and counted against
--max-connections, so a few dozen idle connections, or slowloris ones sending a byte every
few seconds, locked every client out. Here each wait for headers (from the connection's
opening, and after each answer on a kept-alive one) has a total deadline, not a per-byte
one; a connection that misses it is closed, with a 408 if part of a request had arrived.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from mt_cli.core.printable import printable

__all__ = ["connection_protocol"]
log = logging.getLogger("mt_cli")


def timeout_answer(seconds: float) -> bytes:
    """The 408 written to a connection whose headers came too slowly: the server's JSON error
    shape, and the connection closed (no request was parsed, so h11 cannot send it)."""
    body = json.dumps({"error": f"the request headers did not arrive within {seconds:g} s",
                       "field": "headers"}, separators=(",", ":")).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))


class CountedProtocol(H11Protocol):
    """What connection_protocol returns: its class keeps the set of its open connections."""

    open_connections: ClassVar[set[H11Protocol]]


def connection_protocol(seconds: float) -> type[CountedProtocol]:
    """uvicorn's h11 protocol (for uvicorn.Config(http=...)) whose connections must send each
    request's headers within `seconds`; each call gives a class with its own count."""

    class HeaderTimeoutProtocol(CountedProtocol):
        open_connections: ClassVar[set[H11Protocol]] = set()
        deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.open_connections.add(self)
            self._watch()

        def handle_events(self) -> None:
            super().handle_events()
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self.open_connections.discard(self)
            self._cancel()
            super().connection_lost(exc)

        def _watch(self) -> None:
            """Armed while the connection waits for a request's headers, once per wait."""
            waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
            if waiting and self.deadline is None:
                self.deadline = self.loop.call_later(seconds, self._expire)
            elif not waiting:
                self._cancel()

        def _cancel(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def _expire(self) -> None:
            self.deadline = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.trailing_data[0]:  # part of a request: say why (an idle one just closes)
                self.transport.write(timeout_answer(seconds))
                client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
                log.info(printable(f"{client}: request headers incomplete after {seconds:g} s; connection closed"))
            self.transport.close()

    return HeaderTimeoutProtocol
