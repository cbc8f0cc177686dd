"""`mt-cli serve`'s web page at `/`: a real server process, read over plain HTTP and driven in a
real headless browser (Debian's chromium + chromedriver through selenium; skipped when absent,
.ci/run installs them)."""

from __future__ import annotations

import html
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

httpx = pytest.importorskip("httpx")
from test_serve import LIMITS, Server, serving, sources, start_server, stop_server

from mt_cli.app.serve.page import CSP, PageForm, PageView, read_form, render_page

MAX_CHARS = int(LIMITS[LIMITS.index("--max-chars") + 1])
MAX_LINES = int(LIMITS[LIMITS.index("--max-lines") + 1])


@pytest.fixture(scope="module")
def server(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    served = start_server(trained_run, tmp_path_factory.mktemp("serve-page") / "server.log", *LIMITS)
    yield served
    assert stop_server(served) == 0, served.log.read_text()


def page(server: Server, **query: Any) -> httpx.Response:
    return httpx.get(f"{server.url}/?{urlencode(query)}" if query else server.url + "/", timeout=60)


def shown(body: str, element_id: str) -> str | None:
    """The text of the element with this id (no nested tags in those the page has), unescaped."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', body, re.S)
    return html.unescape(found.group(1)) if found else None


def nbest_shown(body: str) -> list[list[tuple[str, str]]]:
    """Per line: the (hypothesis, score) pairs of the page's n-best lists."""
    lists = re.findall(r'<ol class="nbest"[^>]*>(.*?)</ol>', body, re.S)
    return [[(html.unescape(h), s) for h, s in re.findall(r'<span class="hyp">(.*?)</span><span class="score">'
                                                           r"(.*?)</span>", items, re.S)] for items in lists]


def nbest_body(server: Server, lines: list[str], n_best: int) -> dict[str, Any]:
    """The POST /translate body the page's n-best count stands for (the beam widened to it)."""
    beam = server.get("/info").json()["decode"]["beam_size"]
    return {"text": lines, "n_best": n_best, **({"beam_size": n_best} if n_best > beam else {})}


# ---------------------------------------------------------------- plain HTTP

def test_the_page_is_one_self_contained_document(server: Server) -> None:
    answer = page(server)
    info = server.get("/info").json()
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CSP and "script-src" not in CSP
    body = answer.text
    assert "http://" not in body and "https://" not in body and "<script" not in body and "<link" not in body
    assert re.search(r"\bsrc=|url\(|@import", body) is None  # nothing to fetch
    assert shown(body, "model") == info["model"] and shown(body, "engine") == info["engine"] == "ctranslate2"
    assert shown(body, "languages") == f"{info['languages']['source']} \u2192 {info['languages']['target']}"
    assert '<form method="get">' in body and 'name="text"' in body
    assert f'name="n_best" type="number" min="1" max="{info["limits"]["max_beam_size"]}" value="1"' in body
    assert 'id="translation"' not in body and 'id="error"' not in body


def test_a_query_shows_the_translation_post_translate_gives(server: Server, toy_dir: Path) -> None:
    lines = sources(toy_dir)[:3]
    expected = [t["text"] for t in server.post({"text": lines}).json()["translations"]]
    answer = page(server, text="\r\n".join(lines) + "\r\n", n_best=1)  # as a browser sends a textarea
    assert answer.status_code == 200, answer.text
    assert shown(answer.text, "translation") == "\n".join(expected) and any(expected)
    assert 'class="nbest"' not in answer.text
    assert shown(answer.text, "text") == "\n" + "\r\n".join(lines) + "\r\n"  # echoed in the textarea
    assert page(server, text=lines[0]).status_code == 200  # no n_best: one best


def test_n_best_shows_each_hypothesis_with_its_score(server: Server, toy_dir: Path) -> None:
    lines = sources(toy_dir)[:2]
    expected = server.post(nbest_body(server, lines, 2)).json()["translations"]
    answer = page(server, text="\n".join(lines), n_best=2)
    assert answer.status_code == 200, answer.text
    assert shown(answer.text, "translation") == "\n".join(t["text"] for t in expected)
    assert nbest_shown(answer.text) == [[(h["text"], f"{h['score']:.4f}") for h in t["nbest"]] for t in expected]


@pytest.mark.parametrize(("query", "status", "message"), [
    ({"text": "a" * (MAX_CHARS + 1)}, 413, f"at most {MAX_CHARS} characters per request, got {MAX_CHARS + 1}"),
    ({"text": "\n".join(["a dog"] * (MAX_LINES + 1))}, 413, f"at most {MAX_LINES} lines per request"),
    ({"text": "a dog", "n_best": "0"}, 422, "n_best: must be a whole number in 1..16, got '0'"),
    ({"text": "a dog", "n_best": "17"}, 422, "n_best: must be a whole number in 1..16, got '17'"),
    ({"text": "a dog", "n_best": "two"}, 422, "n_best: must be a whole number in 1..16, got 'two'"),
    ({"text": "a dog", "n_best": "\u0663"}, 422, "n_best: must be a whole number"),  # a digit, not ASCII
    ({"text": "a dog", "junk": "x" * 12000}, 413, "the query is "),
])
def test_a_bad_query_is_the_page_with_a_one_line_error(server: Server, query: dict, status: int,
                                                        message: str) -> None:
    answer = page(server, **query)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html") and answer.headers["content-security-policy"]
    error = shown(answer.text, "error")
    assert error is not None and message in error and "\n" not in error, error
    assert 'id="translation"' not in answer.text and '<form method="get">' in answer.text
    assert page(server, text="a dog").status_code == 200  # the server failed only that request


def test_a_long_query_arriving_in_pieces_is_read_to_the_bound(server: Server) -> None:
    """The HTTP parser reads a head up to the page's own bound (a text of --max-chars 4-byte
    characters is 12 bytes a character in a URL), not its 16 KiB default: a 22 KB query sent in
    pieces, as a network delivers it, gets the page's 413, not the parser's plain-text 400."""
    query = urlencode({"text": "\U0001f600" * MAX_CHARS, "junk": "x" * 18000}).encode()
    head = b"GET /?%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % query
    assert 16384 + 4096 < len(head) and len(query) > 12 * MAX_CHARS
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as client:
        client.settimeout(30)
        for start in range(0, len(head), 2048):
            client.sendall(head[start:start + 2048])
            time.sleep(0.02)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413") and b"text/html" in status, answer[:300]
    assert "the query is" in (shown(body.decode(), "error") or "")


def test_everything_put_into_the_page_is_escaped(server: Server) -> None:
    typed = "</textarea><script>alert(1)</script> \"a\" & 'b' <b>dog</b>"
    expected = server.post({"text": [typed]}).json()["translations"][0]["text"]
    answer = page(server, text=typed)
    assert answer.status_code == 200, answer.text
    assert "<script" not in answer.text and "<b>dog" not in answer.text and "</textarea><" not in answer.text
    assert html.escape(typed) in answer.text
    assert shown(answer.text, "text") == "\n" + typed and shown(answer.text, "translation") == expected


def test_render_page_escapes_every_value() -> None:
    """What no model has today (markup in the name, the reason, a hypothesis, an error) is escaped too."""
    evil = "<img src=x onerror=alert(1)>&\"'"
    info = {"model": evil, "engine": evil, "engine_reason": evil, "languages": {"source": evil, "target": evil}}
    results = [{"text": evil, "score": -0.5, "nbest": [{"text": evil, "score": -0.5}, {"text": evil, "score": None}]}]
    for view in (PageView(info, 4, PageForm(evil, 2), results), PageView(info, 4, PageForm(evil), error=evil)):
        body = render_page(view)
        assert "<img" not in body and html.escape(evil) in body
    assert nbest_shown(render_page(PageView(info, 4, PageForm(evil, 2), results))) == [[(evil, "-0.5000"),
                                                                                       (evil, "n/a")]]


def test_read_form_lines_and_bounds() -> None:
    assert read_form(b"text=a+dog%0D%0Aa+cat%0D%0A&n_best=2", 100, 4) == PageForm("a dog\r\na cat\r\n", 2)
    assert PageForm("a dog\r\na cat\r\n").lines == ["a dog", "a cat"]
    assert PageForm("\na dog\n\n").lines == ["", "a dog", ""] and PageForm(" \r\n ").lines == []
    assert read_form(b"", 100, 4) == PageForm() and read_form(b"text=x&n_best=", 100, 4).n_best == 1
    with pytest.raises(Exception, match="query is 101 bytes, over the 100"):
        read_form(b"x" * 101, 100, 4)


def test_while_loading_the_page_shows_the_form_and_a_503_for_a_query(ct2_model: Path) -> None:
    with serving(ct2_model) as (url, _, loaded):
        empty = httpx.get(url + "/", timeout=10)
        assert empty.status_code == 200 and '<form method="get">' in empty.text
        loading = httpx.get(url + "/?text=a+dog", timeout=10)
        assert loading.status_code == 503 and loading.headers["Retry-After"]
        assert shown(loading.text, "error") == "the model is loading"
        loaded.set()
        deadline = time.monotonic() + 30
        while httpx.get(url + "/health", timeout=10).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shown(httpx.get(url + "/?text=a+dog", timeout=30).text, "translation") is not None


# ---------------------------------------------------------------- a real browser

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium under chromedriver; skipped where Debian's packages are not installed."""
    chromium = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    chromedriver = shutil.which("chromedriver") or shutil.which("/usr/bin/chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip("no chromium/chromedriver (apt-get install chromium chromium-driver; .ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def submit_in_browser(driver: Any, server: Server, typed: str, n_best: int | None = None) -> None:
    """Open the page, type `typed` into the text box (and the n-best count), press Translate, and
    wait until the answer page has loaded."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(server.url + "/")
    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(typed)
    if n_best is not None:
        field = driver.find_element(By.ID, "n_best")
        field.clear()
        field.send_keys(str(n_best))
    # The old document is marked and the wait is for a complete document without the mark. Waiting
    # on the button's staleness asked Chrome about a node mid-navigation, which it can answer with
    # "unknown error: Node with given id does not belong to the document" instead of "stale"
    # (CI, 2026-12-06); so no element of the old page is touched once the click is sent, and
    # WebDriver errors during the navigation only mean "not yet".
    driver.execute_script("window.mtCliOldPage = true;")
    driver.find_element(By.ID, "translate").click()
    answered = ("return window.mtCliOldPage === undefined && document.readyState === 'complete'"
                " && (document.getElementById('translation') !== null"
                " || document.getElementById('error') !== null);")
    WebDriverWait(driver, 120, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(answered))


def text_of(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, element_id)
    assert element.is_displayed()
    return element.get_property("textContent")


def test_browser_types_a_sentence_and_reads_the_translation(browser: Any, server: Server, toy_dir: Path) -> None:
    line = sources(toy_dir)[0]
    expected = server.post({"text": [line]}).json()["translations"][0]["text"]
    submit_in_browser(browser, server, line)
    assert text_of(browser, "translation") == expected and expected
    assert text_of(browser, "model") == server.get("/info").json()["model"]
    assert text_of(browser, "engine") == "ctranslate2"  # the default engine on a model directory
    from selenium.webdriver.common.by import By

    assert browser.find_element(By.ID, "text").get_property("value") == line  # kept for the next edit


def test_browser_n_best_two_shows_two_hypotheses_with_scores(browser: Any, server: Server, toy_dir: Path) -> None:
    from selenium.webdriver.common.by import By

    line = sources(toy_dir)[1]
    expected = server.post(nbest_body(server, [line], 2)).json()["translations"][0]
    submit_in_browser(browser, server, line, n_best=2)
    items = browser.find_elements(By.CSS_SELECTOR, "ol.nbest li")
    got = [(item.find_element(By.CLASS_NAME, "hyp").get_property("textContent"),
            item.find_element(By.CLASS_NAME, "score").text) for item in items]
    assert got == [(h["text"], f"{h['score']:.4f}") for h in expected["nbest"]] and len(got) == 2
    assert all(re.fullmatch(r"-?\d+\.\d{4}", score) for _, score in got)
    assert text_of(browser, "translation") == expected["text"]


def test_browser_shows_markup_as_typed_and_runs_no_script(browser: Any, server: Server) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    typed = "a dog </textarea><script>alert(1)</script> runs"  # breaks out of a textarea not escaped
    expected = server.post({"text": [typed]}).json()["translations"][0]["text"]
    submit_in_browser(browser, server, typed)
    with pytest.raises(NoAlertPresentException):
        _ = browser.switch_to.alert
    assert browser.find_elements(By.TAG_NAME, "script") == []
    assert browser.find_element(By.ID, "text").get_property("value") == typed
    assert text_of(browser, "translation") == expected


def test_browser_bad_count_shows_the_error_and_the_server_keeps_serving(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/?" + urlencode({"text": "a dog", "n_best": "99"}))
    assert "must be a whole number in 1..16" in text_of(browser, "error")
    assert browser.find_elements(By.ID, "translation") == []
    assert server.post({"text": ["a dog"]}).status_code == 200
