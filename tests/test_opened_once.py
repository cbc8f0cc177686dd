"""A model directory is opened once (issue 29, point 3): `translate` and `serve` read its
manifest once, parse its config once and parse each `--set` once, then hand that one value
(engines/opened.py) to the engine choice, the engine and serve's /info."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mt_cli.cli.main import app

SET = ["--set", "decode.length_penalty=0.5"]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How often the manifest is read, the config parsed and a --set parsed, at the one
    function that does each."""
    from mt_cli.core import config_loading
    from mt_cli.engines import locate

    counts: Counter = Counter()

    def counted(name: str, real: Any, test: Any = None) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if test is None or test(*args):
                counts[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(locate, "checked_file", counted("manifest", locate.checked_file,
                                                        lambda _d, name, *_: name == locate.MANIFEST_FILE))
    monkeypatch.setattr(locate, "load_config", counted("config", locate.load_config))
    monkeypatch.setattr(config_loading, "parse_override", counted("set", config_loading.parse_override))
    return counts


@pytest.mark.parametrize("engine", ["auto", "native"])
def test_translate_reads_the_model_directory_once(runner, trained_run: Path, reads: Counter, engine: str) -> None:
    result = runner.invoke(app, ["translate", "-m", str(trained_run), "--engine", engine, "--beam-size", "2", *SET],
                           input="the cat .\n")
    assert result.exit_code == 0, result.output
    assert reads == {"manifest": 1, "config": 1, "set": 1}, reads


def test_serve_reads_the_model_directory_once(runner, trained_run: Path, reads: Counter,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The choice, the engine and /info all from one opening (the server itself is not run)."""
    from mt_cli.app.serve import server
    from mt_cli.app.serve.host import ModelHost
    from mt_cli.engines.locate import resolve_model_dir

    seen: dict[str, Any] = {}

    def run_server(open_engine: Any, model: Any, settings: Any, engine: Any = None) -> None:
        host = ModelHost(open_engine, resolve_model_dir(model) if isinstance(model, Path) else model,
                         settings, engine)
        seen.update(info=host.info, engine=open_engine())

    monkeypatch.setattr(server, "run_server", run_server)
    result = runner.invoke(app, ["serve", "-m", str(trained_run), "--port", "0", *SET])
    assert result.exit_code == 0, result.output
    assert reads == {"manifest": 1, "config": 1, "set": 1}, reads
    assert seen["info"]["engine"] == "ctranslate2" and seen["engine"].decode.length_penalty == 0.5
