"""`mt-cli serve`: a micro-batched HTTP translation server over one model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mt_cli.cli import console
from mt_cli.cli.common import EngineOption, SetOption, start_tensorflow


def serve(
    model: Annotated[Path, typer.Option(
        "--model", "-m", help="Model directory (native or CTranslate2 export), or a run directory (uses its export/).",
    )],
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on (0.0.0.0 = every interface).",
    )] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8080,
    max_batch_size: Annotated[int, typer.Option(
        "--max-batch-size", help="Most lines decoded together (1 = no micro-batching).",
    )] = 32,
    max_wait_ms: Annotated[float, typer.Option(
        "--max-wait-ms", help="How long the oldest queued request waits for others to batch with.",
    )] = 10.0,
    max_lines: Annotated[int, typer.Option("--max-lines", help="Most lines per request (more: 413).")] = 256,
    max_chars: Annotated[int, typer.Option(
        "--max-chars", help="Most characters per request, text and prefixes (more: 413); bodies over "
        "12 x --max-chars + 128 x --max-lines + 4096 bytes are refused before they are read.",
    )] = 10000,
    max_queue: Annotated[int, typer.Option(
        "--max-queue", help="Most lines queued or decoding (more: 503 + Retry-After); 0 = 4 x --max-lines.",
    )] = 0,
    max_beam_size: Annotated[int, typer.Option(
        "--max-beam-size", help="Largest beam_size a request may ask for.",
    )] = 16,
    allowed_hosts: Annotated[str, typer.Option(
        "--allowed-hosts", help="Comma-separated Host header names to answer (against DNS rebinding; others: 400); "
        "'*' = any. IP addresses always pass. Default: localhost and --host (with 0.0.0.0 or ::, this machine's "
        "name too).",
    )] = "",
    read_timeout: Annotated[float, typer.Option(
        "--read-timeout", help="Seconds a request body may take to arrive (slower: 408).",
    )] = 10.0,
    header_timeout: Annotated[float, typer.Option(
        "--header-timeout", help="Seconds a connection may take to send a request's headers, counted from its "
        "opening or its previous answer (slower: closed, with a 408 if part of a request came).",
    )] = 10.0,
    max_connections: Annotated[int, typer.Option(
        "--max-connections", help="Most open connections (requests beyond: 503 + Retry-After).",
    )] = 64,
    threads: Annotated[int, typer.Option(
        "--threads", help="CPU threads for decoding (0 = the engine's default: all cores).",
    )] = 0,
    engine: EngineOption = "auto",
    set_: SetOption = None,
) -> None:
    """Serve translations over HTTP: POST /translate, GET /health, GET /info, docs at /docs.

    Concurrent requests are queued and decoded together (up to --max-batch-size lines, or
    --max-wait-ms), each result routed back to its request. SIGTERM finishes the requests
    in flight, then exits 0. Needs the 'serve' extra: pip install 'mt-cli[serve]'.

    \b
    Examples:
      mt-cli serve -m runs/demo --port 8080
      curl -s localhost:8080/translate -H 'Content-Type: application/json' \\
           -d '{"text": ["A dog runs.", ""]}'
      mt-cli -q serve -m runs/demo-ct2 --max-batch-size 64 --threads 4
    """
    from mt_cli.core.extras import require

    require("fastapi", "serve", "mt-cli serve")
    require("uvicorn", "serve", "mt-cli serve")
    from mt_cli.engines.choice import choose_engine, open_translator
    from mt_cli.engines.locate import NATIVE

    overrides = list(set_ or [])
    choice = choose_engine([model], engine, overrides)  # said by the server once it listens
    if choice.engine == NATIVE:
        start_tensorflow()
    console.adopt_logger("uvicorn")
    from mt_cli.app.serve.server import ServeSettings, run_server

    settings = ServeSettings(host=host, port=port, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                             max_lines=max_lines, max_chars=max_chars, max_queue=max_queue,
                             max_beam_size=max_beam_size, read_timeout=read_timeout, header_timeout=header_timeout,
                             max_connections=max_connections,
                             allowed_hosts=tuple(name for name in allowed_hosts.split(",") if name.strip()))
    run_server(lambda: open_translator(model, overrides, threads, engine=choice.engine), model, settings,
               engine=(choice.engine, choice.reason))
