"""The serve use case: one model behind HTTP (FastAPI + uvicorn), with micro-batching.

Requests arrive one sentence at a time; the MicroBatcher queues them and one worker thread
decodes those with equal decode options (beam size, n-best, with or without prefixes)
together, off the event loop, handing each request its own results in order. The model is
loaded and warmed in the background after the port opens, so `/health` answers 503 until
it can translate. Limits (lines, characters, queued lines, body bytes, connections, the
time headers and a body may take) turn floods and slow clients into 4xx/503 answers or
closed connections instead of memory growth; the checks made before a body is parsed are in
guard.py, the header deadline and connection count in connection.py. This module runs the
server (uvicorn on a socket bound first, signals); settings.py holds what it is started with,
schemas.py the API's shapes, host.py the model, routes.py the FastAPI app. Answers and /info name no
file paths and pass no exception text on (the log has it, escaped). SIGTERM: uvicorn stops
accepting, in-flight requests finish, the batcher drains, exit 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from mt_cli.app.serve.connection import connection_protocol
from mt_cli.app.serve.guard import EscapeFilter
from mt_cli.app.serve.host import ModelHost, model_info
from mt_cli.app.serve.routes import create_app
from mt_cli.app.serve.settings import ServeSettings
from mt_cli.core.errors import MtError
from mt_cli.engines.opened import ModelDir, open_model_dir
from mt_cli.engines.protocol import LineTranslator

__all__ = ["ModelHost", "ServeSettings", "create_app", "model_info", "run_server"]
log = logging.getLogger("mt_cli")


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


def run_server(open_engine: Callable[[], LineTranslator], model: str | Path | ModelDir, settings: ServeSettings,
               engine: tuple[str, str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; a model that fails to load ends the server with its error.
    `model`: the directory `open_engine` opens (opened once: /info reads nothing again);
    `engine`: the engine `open_engine` opens and why, for /info."""
    settings.check()
    host = ModelHost(open_engine, open_model_dir(model), settings, engine)
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
