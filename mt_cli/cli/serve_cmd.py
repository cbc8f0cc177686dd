"""`mt-cli serve`: a micro-batched HTTP translation server over one model directory; its flags
are ServeSettings' fields (app/serve/settings.py), made by `with_settings_options`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mt_cli.app.serve.settings import ServeSettings, flag
from mt_cli.cli import console
from mt_cli.cli.common import EngineOption, SetOption, start_tensorflow
from mt_cli.cli.decode_options import with_settings_options


@with_settings_options(ServeSettings, "settings", flag)
def serve(
    model: Annotated[Path, typer.Option(
        "--model", "-m", help="Model directory (native or CTranslate2 export), or a run directory (uses its export/).",
    )],
    threads: Annotated[int, typer.Option(
        "--threads", help="CPU threads for decoding (0 = the engine's default: all cores).",
    )] = 0,
    engine: EngineOption = "auto",
    set_: SetOption = None,
    settings: ServeSettings | None = None,
) -> None:
    """Serve translations over HTTP: POST /translate, GET /health, GET /info, docs at /docs;
    LibreTranslate's API too (POST /translate with q, GET /languages, POST /detect).

    Concurrent requests are queued and decoded together (up to --max-batch-size lines, or
    --max-wait-ms), each result routed back to its request. SIGTERM finishes the requests
    in flight, then exits 0. Needs the 'serve' extra: pip install 'mt-cli[serve]'.

    \b
    Examples:
      mt-cli serve -m runs/demo --port 8080
      curl -s localhost:8080/translate -H 'Content-Type: application/json' \\
           -d '{"text": ["A dog runs.", ""]}'
      mt-cli -q serve -m runs/demo-ct2 --max-batch-size 64 --threads 4
      curl -s localhost:8080/translate -d 'q=A dog runs. A cat sleeps.&source=en&target=de'
    """
    from mt_cli.core.extras import require

    require("fastapi", "serve", "mt-cli serve")
    require("uvicorn", "serve", "mt-cli serve")
    from mt_cli.engines.choice import choose_engine, open_translator
    from mt_cli.engines.job import Job
    from mt_cli.engines.locate import NATIVE
    from mt_cli.engines.opened import open_model_dir

    opened = open_model_dir(model, list(set_ or []))  # the one read of its manifest and config
    choice = choose_engine([opened], engine, job=Job(server=True))  # said by the server once it listens
    if choice.engine == NATIVE:
        start_tensorflow()
    console.adopt_logger("uvicorn")
    from mt_cli.app.serve.server import run_server

    run_server(lambda: open_translator(opened, threads=threads, engine=choice.engine), opened,
               settings or ServeSettings(), engine=(choice.engine, choice.reason))
