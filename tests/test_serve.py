"""`mt-cli serve`: a real server process on a loopback port, a real HTTP client.

One native server and one CTranslate2 server per module (started once, stopped with
SIGTERM, which must exit 0); the 500 / 503 paths run the same app in-process on a loopback
port over a real CTranslate2 translator wrapped to fail or stall on cue.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, assert_one_line_error
from typer.testing import CliRunner

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from mt_cli.cli.main import app

LIMITS = ["--max-lines", "8", "--max-chars", "400", "--max-batch-size", "16", "--max-wait-ms", "50"]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def post(self, body: Any, **kwargs: Any) -> httpx.Response:
        return post(self.url, body, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: Any, timeout: float = 60) -> httpx.Response:
    """POST /translate with a JSON body (or raw bytes, to send broken JSON)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + "/translate", content=content, timeout=timeout,
                      headers={"Content-Type": "application/json"})


def start_server(model: Path, log: Path, *args: str, quiet: bool = False) -> Server:
    """`mt-cli serve` as a subprocess; returns once /health says 200."""
    port = free_port()
    command = [sys.executable, "-m", "mt_cli", *(["-q"] if quiet else []), "serve", "-m", str(model),
               "--port", str(port), "--threads", "1", *args]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if server.get("/health").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    process.kill()
    raise AssertionError(f"server not ready in time: {log.read_text()}")


def stop_server(server: Server) -> int:
    server.process.send_signal(signal.SIGTERM)
    return server.process.wait(60)


def test_auto_serves_the_directorys_ctranslate2_conversion(trained_run: Path, toy_dir: Path, tmp_path: Path) -> None:
    """The default engine on a model directory: its CTranslate2 conversion, said in /info and
    on stderr, with the translations the CTranslate2 engine gives in-process."""
    from mt_cli.engines.choice import open_translator

    server = start_server(trained_run, tmp_path / "server.log", *LIMITS)
    try:
        info = server.get("/info").json()
        assert info["engine"] == "ctranslate2" and "CTranslate2 float32 conversion" in info["engine_reason"]
        lines = sources(toy_dir)[:6]
        answer = post(server.url, {"text": lines})
        assert answer.status_code == 200, answer.text
        expected = [n[0].text for n in open_translator(trained_run, engine="ctranslate2").translate_nbest(lines)]
        assert [t["text"] for t in answer.json()["translations"]] == expected
    finally:
        assert stop_server(server) == 0
    assert "engine: ctranslate2 (" in server.log.read_text()


@pytest.fixture(scope="module")
def native_server(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(trained_run, tmp_path_factory.mktemp("serve-native") / "server.log", *LIMITS,
                          "--engine", "native")
    yield server
    assert stop_server(server) == 0, server.log.read_text()


@pytest.fixture(scope="module")
def ct2_server(ct2_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(ct2_model, tmp_path_factory.mktemp("serve-ct2-log") / "server.log", *LIMITS, quiet=True)
    yield server
    assert stop_server(server) == 0, server.log.read_text()


def sources(toy_dir: Path) -> list[str]:
    return (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------- the API

def test_health_info_and_docs(native_server: Server, trained_run: Path) -> None:
    health = native_server.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    info = native_server.get("/info").json()
    manifest = json.loads((trained_run / "export" / "manifest.json").read_text())
    assert info["model"] == health.json()["model"] and info["engine"] == "native"
    assert info["engine_reason"] == "--engine native"
    assert info["step"] == manifest["step"] and info["dev_scores"] == manifest["dev_scores"]
    assert info["hashes"]["files_sha256"] == manifest["files_sha256"]
    assert info["versions"]["tensorflow"] and info["languages"] == {
        "source": "src", "target": "tgt", "pairs": [["src", "tgt"]], "targets": ["tgt"], "target_required": False}
    assert "path" not in info and str(trained_run.parent) not in json.dumps(info)  # no filesystem paths
    assert native_server.get("/docs").status_code == 200
    assert "/translate" in native_server.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("engine", ["native", "ct2"])
def test_n_in_n_out_same_as_translate(engine: str, request: pytest.FixtureRequest, toy_dir: Path,
                                      trained_run: Path) -> None:
    from mt_cli.engines.choice import open_translator

    server: Server = request.getfixturevalue(f"{engine}_server")
    model = trained_run if engine == "native" else request.getfixturevalue("ct2_model")
    lines = [*sources(toy_dir)[:5], "", "   ", "ünïcödé ?"]
    answer = server.post({"text": lines})
    assert answer.status_code == 200, answer.text
    got = answer.json()["translations"]
    expected = [n[0] for n in open_translator(model).translate_nbest(lines)]
    assert len(got) == len(expected) == len(lines) and any(t["text"] for t in got[:5])
    assert [t["text"] for t in got] == [h.text for h in expected]
    assert got[5] == {"text": "", "score": 0.0} and all("nbest" not in t for t in got)
    assert answer.json()["model"] == server.get("/info").json()["model"]


def test_html_on_the_native_engine_places_inline_tags_by_its_alignments(native_server: Server,
                                                                        toy_dir: Path) -> None:
    """`format: "html"` asks the native engine for alignments: the tags come back nested
    around the text, which is the plain translation's; an HTML request and a text one differ."""
    s = sources(toy_dir)[:2]
    first, rest = s[0].split(" ", 1)
    page = [f"<li><b>{first}</b> <i>{rest}</i></li>", f"<pre>{s[1]}</pre>"]
    answer = native_server.post({"text": page, "format": "html"})
    assert answer.status_code == 200, answer.text
    got = [t["text"] for t in answer.json()["translations"]]
    plain = native_server.post({"text": [s[0]]}).json()["translations"][0]["text"]
    assert got[1] == page[1] and got[0].startswith("<li>") and got[0].endswith("</li>")
    assert got[0].count("<b>") == got[0].count("</b>") == got[0].count("<i>") == got[0].count("</i>") == 1
    assert got[0].index("</b>") < got[0].index("<i>") or got[0].index("</i>") < got[0].index("<b>")
    assert " ".join(re.sub(r"<[^>]*>", " ", got[0]).split()) == " ".join(plain.split())


def test_empty_request_nbest_and_prefix(native_server: Server, toy_dir: Path) -> None:
    assert native_server.post({"text": []}).json()["translations"] == []
    lines = sources(toy_dir)[:3]
    nbest = native_server.post({"text": lines, "beam_size": 2, "n_best": 2}).json()["translations"]
    assert len(nbest) == 3 and all(len(t["nbest"]) == 2 and t["nbest"][0]["text"] == t["text"] for t in nbest)
    greedy = native_server.post({"text": lines, "beam_size": 1}).json()["translations"]
    assert len(greedy) == 3 and all("nbest" not in t for t in greedy)
    prefixes = ["taco", "", "eaco euo"]
    forced = native_server.post({"text": lines, "prefix": prefixes}).json()["translations"]
    plain = native_server.post({"text": lines}).json()["translations"]
    assert len(forced) == 3 and forced[0]["text"].startswith("taco") and forced[2]["text"].startswith("eaco euo")
    assert forced[1]["text"] == plain[1]["text"]  # no prefix: the line's own translation


@pytest.mark.parametrize(("body", "status", "field"), [
    (b'{"text": ["a dog"', 400, "body"),
    (b"", 422, "body"),
    ({"text": "a dog"}, 422, "text"),
    ({"text": ["a dog", 3]}, 422, "text[1]"),
    ({"text": ["a"], "beam_size": "4"}, 422, "beam_size"),
    ({"text": ["a"], "beam_size": 0}, 422, "beam_size"),
    ({"text": ["a"], "beam_size": 99}, 422, "beam_size"),
    ({"text": ["a"], "beam_size": 2, "n_best": 3}, 422, "n_best"),
    ({"text": ["a"], "prefix": ["x", "y"]}, 422, "prefix"),
    ({"text": ["a"], "beam": 2}, 422, "beam"),
    ({"text": ["a"] * 9}, 413, "text"),
    ({"text": ["a" * 401]}, 413, "text"),
])
def test_bad_input_is_a_4xx_naming_the_field(native_server: Server, body: Any, status: int, field: str) -> None:
    answer = native_server.post(body)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field and answer.json()["error"]


@pytest.mark.parametrize(("body", "answer"), [
    ({"beam_size": 2, "n_best": 3}, {"error": "n_best: must be <= beam_size=2, got 3", "field": "n_best"}),
    ({"n_best": 3}, {"error": "n_best: must be <= decode.beam_size=2, got 3 (the model's decode options)",
                     "field": "n_best"}),
    ({"n_best": 0}, {"error": "n_best: must be >= 1, got 0", "field": "n_best"}),
    ({"beam_size": 0, "n_best": 1}, {"error": "beam_size: must be >= 1, got 0", "field": "beam_size"}),
])
def test_request_options_are_checked_by_the_decode_config_rules(native_server: Server, body: dict,
                                                                 answer: dict) -> None:
    """The messages are the ones DecodeConfig's rules give, naming the request's field."""
    from mt_cli.core.config import DecodeConfig
    from mt_cli.core.config_checks import DecodeNames, decode_with
    from mt_cli.core.errors import ConfigError

    got = native_server.post({"text": ["a dog"], **body})
    assert (got.status_code, got.json()) == (422, answer)
    with pytest.raises(ConfigError) as rule:
        decode_with(DecodeConfig(beam_size=2), body, DecodeNames({k: k for k in body}, "the model's decode options"))
    assert str(rule.value) == answer["error"]


def test_split_sentences_translates_each_lines_sentences(ct2_server: Server, ct2_model: Path, toy_dir: Path) -> None:
    """Issue 32 point 1: `split_sentences` in the JSON API and the page's checkbox: each line's
    sentences translated (as the engine does alone) and joined with the line's own spacing."""
    pytest.importorskip("sentencex")
    from mt_cli.engines.choice import open_translator

    s = sources(toy_dir)[:3]
    alone = [n[0].text for n in open_translator(ct2_model).translate_nbest(s)]
    answer = ct2_server.post({"text": [f"{s[0]}  {s[1]}", "", s[2]], "split_sentences": True})
    assert answer.status_code == 200, answer.text
    assert [t["text"] for t in answer.json()["translations"]] == [f"{alone[0]}  {alone[1]}", "", alone[2]]
    page = httpx.get(ct2_server.url + "/", params={"text": f"{s[0]} {s[1]}", "split_sentences": "on"}, timeout=60)
    assert page.status_code == 200 and 'name="split_sentences" type="checkbox" value="on" checked' in page.text
    assert f'class="translation">{html.escape(alone[0] + " " + alone[1])}</div>' in page.text


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"split_sentences": "yes"}, "split_sentences", "valid boolean"),
    ({"split_sentences": True, "beam_size": 2, "n_best": 2}, "n_best", "one translation per line"),
    ({"split_sentences": True, "prefix": ["x"]}, "prefix", "not with split_sentences"),
])
def test_split_sentences_refuses_what_it_cannot_serve(ct2_server: Server, body: dict, field: str, says: str) -> None:
    answer = ct2_server.post({"text": ["a dog ."], **body})
    assert (answer.status_code, answer.json()["field"]) == (422, field), answer.text
    assert says in answer.json()["error"], answer.text


def test_every_error_body_has_the_error_and_field_shape(native_server: Server) -> None:
    """FastAPI's own 404/405 and the checks before parsing answer like the API's errors."""
    url = native_server.url
    answers = {
        "404": httpx.get(url + "/nope", timeout=30),
        "405": httpx.get(url + "/translate", timeout=30),
        "400 json": native_server.post(b'{"text": ["a dog"'),
        "415 text/plain": httpx.post(url + "/translate", content=b'{"text": ["a"]}', timeout=30,
                                     headers={"Content-Type": "text/plain"}),
        "415 none": httpx.post(url + "/translate", content=b'{"text": ["a"]}', timeout=30),
        "400 host": httpx.get(url + "/health", headers={"Host": "rebound.example"}, timeout=30),
    }
    for what, answer in answers.items():
        assert answer.status_code == int(what.split()[0]), (what, answer.text)
        assert set(answer.json()) == {"error", "field"} and answer.json()["error"], (what, answer.text)
    assert answers["415 text/plain"].json()["field"] == "Content-Type"
    assert answers["400 host"].json()["field"] == "Host"
    assert httpx.get(url + "/health", headers={"Host": f"localhost:{url.rsplit(':', 1)[1]}"}).status_code == 200


def test_a_body_over_the_bound_is_refused_before_it_is_parsed(native_server: Server) -> None:
    """2 MB of a million ints (seconds and a gigabyte to validate) is a 413 from its size alone,
    declared (Content-Length) or not (chunked)."""
    ints = b'{"text": [' + b",".join([b"1"] * 1_000_000) + b"]}"
    declared = native_server.post(ints)
    assert declared.status_code == 413 and declared.json()["field"] == "body", declared.text

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(ints), 65536):
            yield ints[start:start + 65536]

    chunked = httpx.post(native_server.url + "/translate", content=chunks(), timeout=60,
                         headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and chunked.json()["field"] == "body", chunked.text
    assert native_server.post({"text": ["a dog"]}).status_code == 200


def test_log_lines_escape_what_clients_send(native_server: Server) -> None:
    httpx.get(native_server.url + "/x%0Aerror:%20forged%1b[31m", timeout=30)
    time.sleep(0.2)
    log = native_server.log.read_text()
    assert "\nerror: forged" not in log and "\x1b" not in log
    assert "/x\\nerror: forged\\x1b[31m 404" in log


@pytest.mark.parametrize("value", ["inf", "nan", "1e300"])
def test_a_non_finite_wait_is_one_startup_error(ct2_model: Path, value: str) -> None:
    result = subprocess.run([sys.executable, "-m", "mt_cli", "serve", "-m", str(ct2_model), "--port", str(free_port()),
                             "--max-wait-ms", value], cwd=REPO, capture_output=True, text=True, timeout=60,
                            check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert_one_line_error(result, "--max-wait-ms", "0..60000")


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--max-beam-size", "2000", "must be <= 1024"),
    ("--header-timeout", "0", "(0, 3600]"),
    ("--header-timeout", "nan", "(0, 3600]"),
])
def test_serve_limits_out_of_range_are_one_startup_error(ct2_model: Path, option: str, value: str,
                                                         says: str) -> None:
    result = subprocess.run([sys.executable, "-m", "mt_cli", "serve", "-m", str(ct2_model), "--port", str(free_port()),
                             option, value], cwd=REPO, capture_output=True, text=True, timeout=60,
                            check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert_one_line_error(result, option, says)


def test_a_beam_over_the_servers_limit_names_that_limit(native_server: Server) -> None:
    """Over --max-beam-size (16 here), even past the decoder's own bound (1024): the server's limit."""
    for field in ("beam_size", "n_best"):
        got = native_server.post({"text": ["a dog"], field: 2000})
        assert (got.status_code, got.json()) == (422, {
            "error": f"{field}: must be <= 16 (the server's --max-beam-size), got 2000", "field": field})


def test_manifest_and_info_name_no_paths(ct2_server: Server, ct2_model: Path, trained_run: Path) -> None:
    manifest = (ct2_model / "manifest.json").read_text()
    info = ct2_server.get("/info").text
    for text in (manifest, info):
        assert str(trained_run) not in text and str(ct2_model) not in text
    assert json.loads(manifest)["source_model"]["directory"] == trained_run.name


def test_connections_and_host_names_are_limited(ct2_model: Path, tmp_path: Path) -> None:
    server = start_server(ct2_model, tmp_path / "server.log", "--max-connections", "3",
                          "--allowed-hosts", "mt.example, other.example")
    port = server.url.rsplit(":", 1)[1]
    with httpx.Client(timeout=30) as client:  # one connection for these
        for name, status in (("mt.example", 200), (f"other.example:{port}", 200), ("localhost", 400),
                             ("mt.example.evil", 400), (f"[::1]:{port}", 200)):
            assert client.get(server.url + "/health", headers={"Host": name}).status_code == status, name
    time.sleep(0.3)
    idle = [socket.create_connection(("127.0.0.1", int(port))) for _ in range(3)]
    try:
        time.sleep(0.3)
        assert httpx.get(server.url + "/health", timeout=30).status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(server.url + "/health", timeout=30).status_code == 200
    assert stop_server(server) == 0, server.log.read_text()


@pytest.fixture(scope="module")
def guarded_server(ct2_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with 3 connections at most and 1 s for a request's headers."""
    server = start_server(ct2_model, tmp_path_factory.mktemp("serve-guarded") / "server.log",
                          "--max-connections", "3", "--header-timeout", "1")
    yield server
    assert stop_server(server) == 0, server.log.read_text()


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=10)
    sock.settimeout(0.1)
    return sock


def until_closed(sock: socket.socket, seconds: float, trickle: bytes = b"") -> tuple[bytes, float | None]:
    """What the server sends before closing `sock`, and after how many seconds it closed (None:
    still open after `seconds`); `trickle` is sent a byte every 0.2 s meanwhile (slowloris)."""
    started = time.monotonic()
    received, sent = b"", 0
    while time.monotonic() - started < seconds:
        if sent < len(trickle) and time.monotonic() - started >= 0.2 * sent:
            with contextlib.suppress(OSError):
                sock.sendall(trickle[sent:sent + 1])
            sent += 1
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received, time.monotonic() - started
        if not chunk:
            return received, time.monotonic() - started
        received += chunk
    return received, None


def test_idle_connections_over_the_limit_lock_out_no_longer_than_the_header_timeout(
        guarded_server: Server) -> None:
    """Connections that send nothing count against --max-connections only until the header
    timeout closes them; meanwhile a request beyond the limit gets the JSON error shape with
    Retry-After (was a plain-text 503 for as long as they stayed open)."""
    idle = [connect(guarded_server) for _ in range(5)]
    opened = time.monotonic()
    try:
        time.sleep(0.2)
        over = guarded_server.get("/health")
        assert over.status_code == 503 and over.headers["Retry-After"] == "1", over.text
        assert over.json()["field"] is None and "--max-connections (3)" in over.json()["error"]
        while guarded_server.get("/health").status_code != 200:
            assert time.monotonic() - opened < 1 + 2, "locked out past the header timeout"
            time.sleep(0.1)
        for sock in idle:
            received, closed_after = until_closed(sock, 2)
            assert received == b"" and closed_after is not None  # closed, without a word
    finally:
        for sock in idle:
            sock.close()


def test_slowloris_headers_are_cut_off_by_the_header_timeout(guarded_server: Server) -> None:
    """Headers sent a byte every 0.2 s (each byte in time, the whole never done): a 408 in the
    JSON error shape and the connection closed about 1 s after it opened, the same on a
    kept-alive connection after its first answer."""
    headers = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 100
    with connect(guarded_server) as sock:
        answer, closed_after = until_closed(sock, 5, trickle=headers)
    assert closed_after is not None and closed_after < 1 + 1, closed_after
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
        "error": "the request headers did not arrive within 1 s", "field": "headers"}
    with connect(guarded_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.3)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in first.lower(), first
        answer, closed_after = until_closed(sock, 5, trickle=headers)
    assert closed_after is not None and closed_after < 1 + 1, closed_after
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert guarded_server.get("/health").status_code == 200
    assert "request headers incomplete after 1 s; connection closed" in guarded_server.log.read_text()


def test_concurrent_requests_each_get_their_own_result(native_server: Server, toy_dir: Path) -> None:
    lines = [line for line in (sources(toy_dir) * 2)[:32]]
    lines = [f"{line} {'big ' * (i % 3)}".strip() for i, line in enumerate(lines)]
    expected = [t["text"] for t in native_server.post({"text": lines[:8]}).json()["translations"]]
    expected += [t["text"] for t in native_server.post({"text": lines[8:16]}).json()["translations"]]
    expected += [t["text"] for t in native_server.post({"text": lines[16:24]}).json()["translations"]]
    expected += [t["text"] for t in native_server.post({"text": lines[24:32]}).json()["translations"]]
    before = native_server.get("/info").json()["stats"]
    got: list[str | None] = [None] * len(lines)
    barrier = threading.Barrier(len(lines))

    def one(i: int) -> None:
        barrier.wait(30)
        got[i] = native_server.post({"text": [lines[i]]}).json()["translations"][0]["text"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(lines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert got == expected
    after = native_server.get("/info").json()["stats"]
    assert after["requests"] - before["requests"] == len(lines)
    assert after["batches"] - before["batches"] < len(lines) and after["largest_batch"] > 1  # batched


def test_log_line_per_request_and_quiet(native_server: Server, ct2_server: Server) -> None:
    native_server.post({"text": ["a dog"]})
    ct2_server.post({"text": ["a dog"]})
    time.sleep(0.2)
    log = native_server.log.read_text()
    assert "POST /translate 200 (1 line)" in log and " ms" in log
    assert "POST /translate" not in ct2_server.log.read_text()


def test_sigterm_finishes_the_request_in_flight(ct2_model: Path, tmp_path: Path, toy_dir: Path) -> None:
    server = start_server(ct2_model, tmp_path / "server.log", "--max-wait-ms", "2500")
    line = sources(toy_dir)[0]
    expected = server.post({"text": [line]}).json()["translations"]  # waits 2.5 s for company
    answers: list[httpx.Response] = []
    in_flight = threading.Thread(target=lambda: answers.append(server.post({"text": [line]})))
    in_flight.start()
    time.sleep(0.7)  # the request now waits in the batcher
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(httpx.TransportError):
        server.get("/health")  # no longer accepting
    in_flight.join(30)
    assert answers and answers[0].status_code == 200 and answers[0].json()["translations"] == expected
    assert server.process.wait(30) == 0, server.log.read_text()


def test_missing_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch, trained_run: Path) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = CliRunner().invoke(app, ["serve", "-m", str(trained_run)])
    assert_one_line_error(result, "pip install 'mt-cli[serve]'")


# ---------------------------------------------------------------- failures, in-process

class Fatal(BaseException):
    """What no `except Exception` catches: it ends the batcher's worker thread."""


class Cued:
    """A real CTranslate2 translator that fails on the line 'boom', ends the worker on 'die',
    can be held at a gate, and remembers every line it was asked to decode."""

    def __init__(self, model: Path) -> None:
        from mt_cli.engines.choice import open_translator

        self.inner = open_translator(model)
        self.decode = self.inner.decode
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[list[str]] = []

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None,
                        first_line: int = 1, constraints: list[str] | None = None,
                        decode: Any = None) -> list[list[Any]]:
        self.gate.wait(30)
        self.calls.append(list(lines))
        if "die" in lines:
            raise Fatal("worker killed")
        if "boom" in lines:
            raise RuntimeError("decoder exploded")
        per_call = {} if decode is None else {"decode": decode}  # the engine's own options unless given
        return self.inner.translate_nbest(lines, prefixes, first_line, constraints, **per_call)


@contextlib.contextmanager
def serving(ct2_model: Path, **limits: Any) -> Iterator[tuple[str, Cued, threading.Event]]:
    """The serve app on a loopback port in a thread; loading waits for the returned event."""
    import uvicorn

    from mt_cli.app.serve.server import ModelHost, ServeSettings, create_app

    settings = ServeSettings(port=free_port(), **{"max_lines": 2, "max_queue": 2, "max_wait_ms": 0, **limits})
    engine, loaded = Cued(ct2_model), threading.Event()

    def open_engine() -> Cued:
        loaded.wait(30)
        return engine

    host = ModelHost(open_engine, ct2_model, settings)
    server = uvicorn.Server(uvicorn.Config(create_app(host, settings), host="127.0.0.1", port=settings.port,
                                           log_config=None, access_log=False))
    thread = threading.Thread(target=server.run)
    thread.start()
    url = f"http://127.0.0.1:{settings.port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield url, engine, loaded
    finally:
        engine.gate.set()
        loaded.set()
        server.should_exit = True
        thread.join(30)


@pytest.fixture()
def in_process(ct2_model: Path) -> Iterator[tuple[str, Cued, threading.Event]]:
    with serving(ct2_model) as served:
        yield served


def wait_ready(url: str, loaded: threading.Event) -> None:
    loaded.set()
    deadline = time.monotonic() + 30
    while httpx.get(url + "/health", timeout=10).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_for(url: str, stat: str, at_least: int) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(url + "/info", timeout=10).json()["stats"].get(stat, -1) < at_least:
        assert time.monotonic() < deadline, f"stats.{stat} never reached {at_least}"
        time.sleep(0.02)


def in_thread(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(call()))
    thread.start()
    return thread, answers


def test_health_503_until_loaded_then_500_and_503_answers_keep_serving(in_process: tuple) -> None:
    url, engine, loaded = in_process
    health = httpx.get(url + "/health", timeout=10)
    assert health.status_code == 503 and health.headers["Retry-After"]
    assert post(url, {"text": ["a dog"]}).status_code == 503
    loaded.set()
    deadline = time.monotonic() + 30
    while httpx.get(url + "/health", timeout=10).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    failed = post(url, {"text": ["boom"]})
    assert failed.status_code == 500 and "decoding failed" in failed.json()["error"]
    assert post(url, {"text": ["a dog"]}).status_code == 200  # still serving
    engine.gate.clear()  # the next request holds the decoder: 2 lines queued = the limit
    held: list[httpx.Response] = []
    holder = threading.Thread(target=lambda: held.append(post(url, {"text": ["a dog", "a cat"]})))
    holder.start()
    deadline = time.monotonic() + 10
    while httpx.get(url + "/info", timeout=10).json()["stats"]["queued_lines"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    full = post(url, {"text": ["one more"]})
    assert full.status_code == 503 and full.headers["Retry-After"] and "queue full" in full.json()["error"]
    engine.gate.set()
    holder.join(30)
    assert held[0].status_code == 200 and len(held[0].json()["translations"]) == 2
    assert post(url, {"text": ["one more"]}).status_code == 200


def test_request_options_are_passed_per_call_not_set_on_the_engine(in_process: tuple, ct2_model: Path) -> None:
    from mt_cli.engines.choice import open_translator

    url, engine, loaded = in_process
    own = engine.decode
    loaded.set()
    deadline = time.monotonic() + 30
    while httpx.get(url + "/health", timeout=10).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    answer = post(url, {"text": ["a dog .", "the red car ."], "beam_size": 3, "n_best": 3})
    assert answer.status_code == 200, answer.text
    assert engine.decode is own and engine.inner.decode is own
    expected = open_translator(ct2_model, decode_flags={"beam_size": 3, "n_best": 3}).translate_nbest(
        ["a dog .", "the red car ."])
    got = answer.json()["translations"]
    assert len(got) == len(expected) == 2 and all(len(t["nbest"]) == 3 for t in got)
    assert [[h["text"] for h in t["nbest"]] for t in got] == [[h.text for h in n] for n in expected]
    assert httpx.get(url + "/info", timeout=10).json()["decode"]["beam_size"] == own.beam_size


def test_a_model_that_fails_to_load_ends_the_server_with_one_error(ct2_model: Path, tmp_path: Path) -> None:
    import shutil

    broken = Path(shutil.copytree(ct2_model, tmp_path / "broken"))
    with (broken / "model.bin").open("ab") as weights:
        weights.write(b"\0")
    result = subprocess.run([sys.executable, "-m", "mt_cli", "serve", "-m", str(broken), "--port", str(free_port())],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert_one_line_error(result, "model.bin", after_log=True)


def test_a_busy_port_is_one_error_line(ct2_model: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = subprocess.run([sys.executable, "-m", "mt_cli", "serve", "-m", str(ct2_model),
                                 "--port", str(busy.getsockname()[1])], cwd=REPO, capture_output=True,
                                text=True, timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert_one_line_error(result, "cannot listen", "--port")


def test_a_bad_request_fails_alone_in_a_shared_batch(ct2_model: Path) -> None:
    """An unencodable line is a 422 naming it; a line the decoder fails on is a 500 with no
    exception text, while the request batched with it gets its translation."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("mt_cli").addHandler(handler)
    try:
        with serving(ct2_model, max_queue=8) as (url, engine, loaded):
            wait_ready(url, loaded)
            engine.gate.clear()  # the first request holds the decoder; the next three queue up together
            holder, held = in_thread(lambda: post(url, {"text": ["a dog"]}))
            wait_for(url, "queued_lines", 1)
            bodies = {"surrogate": {"text": ["x\udfff"]}, "boom": {"text": ["boom"]}, "good": {"text": ["a cat"]}}
            threads = {name: in_thread(lambda body=body: post(url, body)) for name, body in bodies.items()}
            wait_for(url, "queued_lines", 3)
            time.sleep(0.3)
            engine.gate.set()
            for thread, _ in [*threads.values(), (holder, held)]:
                thread.join(30)
            got = {name: answers[0] for name, (_, answers) in threads.items()}
            expected = engine.inner.translate_nbest(["a cat"])[0][0].text
    finally:
        logging.getLogger("mt_cli").removeHandler(handler)
    assert (got["surrogate"].status_code, got["surrogate"].json()["field"]) == (422, "text[0]"), got["surrogate"].text
    assert got["boom"].status_code == 500 and "exploded" not in got["boom"].text
    assert got["good"].status_code == 200 and got["good"].json()["translations"][0]["text"] == expected
    assert held[0].status_code == 200
    assert {"boom", "a cat"} in [set(call) for call in engine.calls]  # the good one shared the batch that failed
    assert any("decoder exploded" in record for record in records)  # the details are in the log


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_batcher_fails_its_requests_and_health_says_503(ct2_model: Path) -> None:
    with serving(ct2_model) as (url, _, loaded):
        wait_ready(url, loaded)
        dying = post(url, {"text": ["die"]}, timeout=10)  # answered, not left hanging
        assert dying.status_code == 500, dying.text
        health = httpx.get(url + "/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "stopped"
        assert post(url, {"text": ["a dog"]}, timeout=10).status_code == 503


def test_a_client_that_left_is_dropped_before_decoding(ct2_model: Path) -> None:
    with serving(ct2_model) as (url, engine, loaded):
        wait_ready(url, loaded)
        engine.gate.clear()
        holder, held = in_thread(lambda: post(url, {"text": ["a dog"]}))
        wait_for(url, "queued_lines", 1)
        body = json.dumps({"text": ["gone away"]}).encode()
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as client:
            client.sendall(b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            wait_for(url, "queued_lines", 2)
        wait_for(url, "dropped_requests", 1)
        engine.gate.set()
        holder.join(30)
        assert held[0].status_code == 200
        assert post(url, {"text": ["a cat"]}).status_code == 200
    assert ["gone away"] not in engine.calls and not any("gone away" in call for call in engine.calls)


def test_a_slow_body_is_a_408(ct2_model: Path) -> None:
    with serving(ct2_model, read_timeout=0.5) as (url, _, loaded):
        wait_ready(url, loaded)
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as client:
            client.settimeout(5)
            client.sendall(b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 50\r\n\r\n{\"text\": [")
            answer = b""
            while chunk := client.recv(65536):  # the server answers, then closes
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["field"] == "body"
        assert post(url, {"text": ["a dog"]}).status_code == 200
