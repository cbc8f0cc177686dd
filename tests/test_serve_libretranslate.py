"""`mt-cli serve` speaks LibreTranslate's API too (issue 32, points 3 and 4): the real
`libretranslatepy` client (form-encoded bodies) and JSON bodies against one real server
process on the session's trained model, plus the 500 path and language detection in-process.
"""

from __future__ import annotations

import json
import re
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
libretranslatepy = pytest.importorskip("libretranslatepy")
pytest.importorskip("sentencex")

from test_serve import LIMITS, Server, post, serving, sources, start_server, stop_server, wait_ready


@pytest.fixture(scope="module")
def server(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The one server of this module: the trained run, default engine (its CTranslate2 conversion)."""
    started = start_server(trained_run, tmp_path_factory.mktemp("serve-libre") / "server.log", *LIMITS)
    yield started
    assert stop_server(started) == 0, started.log.read_text()


@pytest.fixture(scope="module")
def alone(trained_run: Path) -> Any:
    """Each sentence translated alone, as the server's engine does."""
    from mt_cli.engines.choice import open_translator

    translator = open_translator(trained_run, engine="ctranslate2")
    return lambda lines: [n[0].text for n in translator.translate_nbest(lines)]


def client(server: Server) -> Any:
    return libretranslatepy.LibreTranslateAPI(server.url)


def libre(server: Server, body: Any, path: str = "/translate") -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=60)


def test_the_libretranslatepy_client_translates_detects_and_lists_languages(server: Server, toy_dir: Path,
                                                                           alone: Any) -> None:
    s = sources(toy_dir)[:3]
    lt = client(server)
    assert lt.languages() == [{"code": "src", "name": "src", "targets": ["tgt"]},
                              {"code": "tgt", "name": "tgt", "targets": []}]
    assert lt.detect(s[0]) == [{"language": "src", "confidence": 100.0}]
    t = alone(s)
    # a text of two lines, the first a paragraph: split into sentences, joined with its own spacing
    assert lt.translate(f"{s[0]}  {s[1]}\n{s[2]}", "src", "tgt") == f"{t[0]}  {t[1]}\n{t[2]}"
    assert lt.translate(s[2], "auto", "tgt") == t[2]


def test_json_bodies_lists_alternatives_and_detected_languages(server: Server, toy_dir: Path,
                                                              trained_run: Path) -> None:
    from mt_cli.engines.choice import open_translator

    s = sources(toy_dir)[:2]
    answer = libre(server, {"q": s, "source": "auto", "target": "tgt", "alternatives": 2, "api_key": ""})
    assert answer.status_code == 200, answer.text
    nbest = open_translator(trained_run, engine="ctranslate2",
                            decode_flags={"beam_size": 3, "n_best": 3}).translate_nbest(s)
    got = answer.json()
    assert got["translatedText"] == [n[0].text for n in nbest]
    assert got["alternatives"] == [list(dict.fromkeys(h.text for h in n[1:] if h.text != n[0].text)) for n in nbest]
    assert got["detectedLanguage"] == [{"language": "src", "confidence": 100.0}] * 2


def test_mt_clis_own_api_answers_on_the_same_path(server: Server, toy_dir: Path, alone: Any) -> None:
    s = sources(toy_dir)[:2]
    answer = post(server.url, {"text": s})
    assert answer.status_code == 200 and [t["text"] for t in answer.json()["translations"]] == alone(s)
    assert "/languages" in server.get("/openapi.json").json()["paths"]


def test_html_is_translated_between_its_tags_in_both_apis(server: Server, toy_dir: Path, alone: Any) -> None:
    """mt-cli's `format: "html"` and LibreTranslate's `format: html`: tags, attributes, comments
    and entities kept, code untouched, the text the engine's translation of it alone."""
    s = sources(toy_dir)[:3]
    first, rest = s[0].split(" ", 1)
    page = [f'<p class="a">{first} <b>{rest}</b></p><!-- c -->', f"<code>{s[1]}</code> &amp; {s[2]}"]
    t = alone([s[0], f"& {s[2]}"])
    own = post(server.url, {"text": page, "format": "html"})
    assert own.status_code == 200, own.text
    got = [item["text"] for item in own.json()["translations"]]
    assert re.sub(r"<[^>]*>", "", got[0]) == t[0] and got[0].startswith('<p class="a">')
    assert got[0].endswith("</b></p><!-- c -->") and got[0].count("<b>") == 1
    assert got[1] == f"<code>{s[1]}</code> " + t[1].replace("&", "&amp;")
    libre_html = libre(server, {"q": "\n".join(page), "source": "src", "target": "tgt", "format": "html"})
    assert libre_html.status_code == 200, libre_html.text
    assert libre_html.json()["translatedText"] == "\n".join(got)


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"text": ["a"], "format": "xml"}, "format", "format: Input should be 'text' or 'html'"),
    ({"text": ["a"], "format": "html", "prefix": ["b"]}, "prefix", "prefix: not with format html"),
])
def test_what_html_cannot_serve_is_a_422_naming_the_field(server: Server, body: dict, field: str, says: str) -> None:
    answer = post(server.url, body)
    assert answer.status_code == 422 and answer.json()["field"] == field and says in answer.json()["error"], answer.text


@pytest.mark.parametrize(("body", "says"), [
    ({"source": "src", "target": "tgt"}, "Invalid request: missing q parameter"),
    ({"q": "", "source": "src", "target": "tgt"}, "Invalid request: missing q parameter"),
    ({"q": "a", "target": "tgt"}, "Invalid request: missing source parameter"),
    ({"q": "a", "source": "src"}, "Invalid request: missing target parameter"),
    ({"q": ["a", 3], "source": "src", "target": "tgt"}, "q must be a string or a list of strings"),
    ({"q": "a", "source": "src", "target": "tgt", "format": "pdf"}, "format must be text or html"),
    ({"q": "a", "source": "src", "target": "tgt", "alternatives": "many"}, "alternatives must be a whole number"),
    ({"q": "a", "source": "src", "target": "tgt", "alternatives": 99}, "alternatives must be in 0..15"),
    ({"q": "a", "source": "en", "target": "tgt"}, "en is not supported as a source language"),
    ({"q": "a", "source": "src", "target": "de"}, "de is not supported as a target language"),
    ({"q": "a\n" * 8 + "a", "source": "src", "target": "tgt"}, "Invalid request: at most 8 lines"),
    ({"q": "a" * 401, "source": "src", "target": "tgt"}, "Invalid request: at most 400 characters"),
])
def test_bad_requests_are_400_in_libretranslates_shape(server: Server, body: dict, says: str) -> None:
    answer = libre(server, body)
    assert answer.status_code == 400 and list(answer.json()) == ["error"], answer.text
    assert says in answer.json()["error"], answer.text


def test_what_is_echoed_is_escaped(server: Server) -> None:
    answer = libre(server, {"q": "a", "source": "src", "target": "<script>alert(1)</script>\x1b[31m" + "x" * 99})
    error = answer.json()["error"]
    assert answer.status_code == 400 and "<script>" not in error and "\x1b" not in error
    assert error.startswith("&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[") and "..." in error and "x" * 60 not in error


def test_the_client_sees_errors_as_http_errors_with_a_json_body(server: Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as failed:
        client(server).translate("a", "en", "tgt")
    assert failed.value.code == 400
    assert json.loads(failed.value.read()) == {
        "error": "en is not supported as a source language (this server translates src -> tgt)"}
    with pytest.raises(urllib.error.HTTPError) as empty:
        client(server).detect("")
    assert empty.value.code == 400


def test_form_bodies_pass_the_guard_only_on_libretranslates_paths_and_within_its_bounds(server: Server) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    own_shape = httpx.post(server.url + "/translate", content=b"text=a", headers=form, timeout=30)
    assert own_shape.status_code == 400 and own_shape.json() == {"error": "Invalid request: missing q parameter"}
    elsewhere = httpx.post(server.url + "/info", content=b"q=a", headers=form, timeout=30)
    assert elsewhere.status_code == 415, elsewhere.text
    huge = b"source=src&target=tgt&q=" + b"%C3%A9" * 200_000  # over 12 x 400 + 128 x 8 + 4096 bytes
    refused = httpx.post(server.url + "/translate", content=huge, headers=form, timeout=30)
    assert refused.status_code == 413 and refused.json()["field"] == "body", refused.text


def test_detect_is_restricted_to_the_models_source_languages() -> None:
    from mt_cli.app.serve.libre import Detector

    english = "The children are playing football in the park near the river."
    assert Detector(["en", "de"]).detect(english)[0]["language"] == "en"
    found = Detector(["de", "fr"]).detect(english)
    assert {f["language"] for f in found} == {"de", "fr"} and found[0]["confidence"] >= found[1]["confidence"]


def test_a_decoding_failure_is_a_500_without_the_exception(ct2_model: Path) -> None:
    with serving(ct2_model) as (url, _, loaded):
        wait_ready(url, loaded)
        failed = httpx.post(url + "/translate", data={"q": "boom", "source": "src", "target": "tgt"}, timeout=30)
        assert failed.status_code == 500 and list(failed.json()) == ["error"]
        assert failed.json()["error"].startswith("Cannot translate text") and "exploded" not in failed.text
