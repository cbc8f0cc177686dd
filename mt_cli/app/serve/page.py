"""The web page `mt-cli serve` answers at `/`: a form, and the translation rendered on the server.

Why server-side and a GET form: the page must work with JavaScript off and load nothing from
elsewhere (no framework, no CDN, no font), and the request guard takes only JSON bodies (so
that a page elsewhere cannot post to a local server without asking); `GET /?text=...&n_best=...`
passes the guard untouched and goes through the same limits and batcher as POST /translate.
Everything built here comes from plain values, and every piece of text put into the HTML is
escaped; the Content-Security-Policy lets no script run and no asset load, should escaping
ever fail. The query string is never logged (the request log names the path only).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["PAGE_HEADERS", "PageError", "PageForm", "PageView", "read_form", "render_page"]

# No script, no frame, no asset from anywhere; inline style only; the form posts back here.
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


class PageError(Exception):
    """A query the page cannot take: answered as the page with this one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class PageForm:
    """What the form sent: the text as typed (echoed back), its lines, the n-best count."""

    text: str = ""
    n_best: int = 1
    split: bool = False  # each line a paragraph, split into sentences
    target_lang: str | None = None  # a model with several targets: the one chosen (checked by the host)

    @property
    def lines(self) -> list[str]:
        """The textarea's lines (browsers send CRLF); no text, no lines; a last line break is no line."""
        text = self.text.replace("\r\n", "\n").replace("\r", "\n")
        return text.removesuffix("\n").split("\n") if text.strip() else []


def read_form(query: bytes, max_bytes: int, max_n_best: int) -> PageForm:
    """The form's fields from a raw query string, checked: its size before it is parsed (413), the
    n-best count as a whole number in 1..max_n_best (422); the split checkbox. Other fields are ignored."""
    if len(query) > max_bytes:
        raise PageError(413, f"the query is {len(query)} bytes, over the {max_bytes} that --max-chars and "
                             "--max-lines allow")
    fields = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))  # as Starlette reads it
    given = fields.get("n_best", "").strip()
    n_best = int(given) if given.isascii() and given.isdigit() else 0
    if given and not 1 <= n_best <= max_n_best:
        shown = given if len(given) <= 20 else given[:20] + "..."
        raise PageError(422, f"n_best: must be a whole number in 1..{max_n_best}, got {shown!r}")
    target = fields.get("target_lang", "").strip()[:40]
    return PageForm(fields.get("text", ""), n_best or 1, fields.get("split_sentences", "") not in ("", "0", "off"),
                    target or None)


@dataclass(frozen=True)
class PageView:
    """Everything the page shows, as plain values; `results` are POST /translate's translations."""

    info: Mapping[str, Any]  # /info's model description: model, engine, languages (engine_reason if any)
    max_n_best: int
    form: PageForm = PageForm()
    results: Sequence[Mapping[str, Any]] | None = None
    error: str | None = None


STYLE = """
body{font:16px/1.45 system-ui,sans-serif;max-width:46rem;margin:1.5rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.35rem;margin:0}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.model{color:#555;margin:.2rem 0 1rem}.model b{color:#1b1b1b;font-weight:600}
label{display:block;font-weight:600;margin:.6rem 0 .2rem}
textarea{width:100%;box-sizing:border-box;font:inherit;padding:.4rem}
input{width:5rem;font:inherit;padding:.2rem}label.check{font-weight:400}label.check input{width:auto}
button{font:inherit;font-weight:600;margin-top:.8rem;padding:.35rem 1.2rem;cursor:pointer}
.translation{white-space:pre-wrap;background:#f2f5f8;padding:.6rem;border-radius:4px;min-height:1.4em}
.error{color:#a40000;font-weight:600}
ol.nbest{padding-left:1.6rem}.hyp{white-space:pre-wrap}
.score{color:#555;font-variant-numeric:tabular-nums;margin-left:.6rem}
footer{color:#666;font-size:.85rem;margin-top:2rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _score(score: float | None) -> str:
    return "n/a" if score is None or not math.isfinite(score) else f"{score:.4f}"


def _header(info: Mapping[str, Any]) -> str:
    languages = info.get("languages") or {}
    source, target = languages.get("source") or "?", languages.get("target") or "?"
    reason = info.get("engine_reason")
    why = f' <span class="reason">({_e(reason)})</span>' if reason else ""
    return (f'<h1>mt-cli translate <span id="languages">{_e(source)} &rarr; {_e(target)}</span></h1>\n'
            f'<p class="model">model <b id="model">{_e(info.get("model", "?"))}</b> &middot; '
            f'engine <b id="engine">{_e(info.get("engine", "?"))}</b>{why}</p>')


def _form(view: PageView) -> str:
    source = (view.info.get("languages") or {}).get("source") or "source"
    # The newline after <textarea> is dropped by the HTML parser, so a text starting with one keeps it.
    return (f'<form method="get">\n<label for="text">Text ({_e(source)}), one sentence (or paragraph) per '
            'line</label>\n'
            f'<textarea id="text" name="text" rows="6" required autofocus>\n{_e(view.form.text)}</textarea>\n'
            f'<label for="n_best">n-best (1..{view.max_n_best})</label>\n'
            f'<input id="n_best" name="n_best" type="number" min="1" max="{view.max_n_best}" '
            f'value="{view.form.n_best}">\n<label class="check"><input id="split_sentences" name="split_sentences" '
            f'type="checkbox" value="on"{" checked" if view.form.split else ""}> Lines are paragraphs: split them '
            f'into sentences</label>\n{_target_choice(view)}<br><button id="translate" type="submit">Translate'
            '</button>\n</form>')


def _target_choice(view: PageView) -> str:
    """A model with several target languages: a choice among them (the first by default)."""
    targets = (view.info.get("languages") or {}).get("targets") or []
    if len(targets) < 2:
        return ""
    chosen = view.form.target_lang or targets[0]
    options = "".join(f'<option value="{_e(t)}"{" selected" if t == chosen else ""}>{_e(t)}</option>'
                      for t in targets)
    return (f'<label for="target_lang">Target language</label>\n'
            f'<select id="target_lang" name="target_lang">{options}</select>\n')


def _nbest(results: Sequence[Mapping[str, Any]]) -> str:
    parts = ["<h2>n-best</h2>"]
    for i, result in enumerate(results):
        if len(results) > 1:
            parts.append(f"<p>line {i + 1}</p>")
        items = "".join(f'<li><span class="hyp">{_e(h["text"])}</span><span class="score">{_score(h["score"])}'
                        f"</span></li>" for h in result.get("nbest") or [])
        parts.append(f'<ol class="nbest" data-line="{i + 1}">{items}</ol>')
    return "\n".join(parts)


def _result(view: PageView) -> str:
    if view.error is not None:
        return f'<p id="error" class="error" role="alert">{_e(view.error)}</p>'
    if view.results is None:
        return ""
    target = view.form.target_lang or (view.info.get("languages") or {}).get("target") or "target"
    text = "\n".join(result["text"] for result in view.results)
    out = f'<section id="result">\n<h2>Translation ({_e(target)})</h2>\n<div id="translation" class="translation">'
    out += f"{_e(text)}</div>\n"
    if any(result.get("nbest") for result in view.results):
        out += _nbest(view.results) + "\n"
    return out + "</section>"


def render_page(view: PageView) -> str:
    """The whole page: one HTML document with its style inline and nothing to fetch."""
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>mt-cli &middot; {_e(view.info.get('model', ''))}</title>\n<style>{STYLE}</style>\n</head>\n"
            f"<body>\n<header>\n{_header(view.info)}\n</header>\n<main>\n{_form(view)}\n{_result(view)}\n</main>\n"
            f'<footer>JSON API: POST /translate, GET /info, GET /health; <a href="docs">API docs</a></footer>\n'
            f"</body>\n</html>\n")
