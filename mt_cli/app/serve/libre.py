"""LibreTranslate's API over the server's model and batcher: `POST /translate` with its fields
(`q`, `source`, `target`, `format`, `alternatives`), `GET /languages`, `POST /detect`. Why here
and on the same path: LibreTranslate's clients (libretranslatepy, editors' plugins) call `POST
/translate`, with form-encoded or JSON bodies; mt-cli's own API already answers there with a
JSON body that forbids unknown keys, so a JSON body with LibreTranslate's keys (`q`, `source`,
...) and no `text`, or any form-encoded body, can only be LibreTranslate's, and both APIs share
one path without ambiguity. Answers and errors take LibreTranslate's shapes (`{"translatedText":
...}`, `{"error": message}`, 400 for a bad request, 429 for a full queue, 500 for a decoding
failure); what a request sent is echoed only escaped and cut short. Languages come from the
model directory's language pairs (`ModelDir.languages`, from its manifest) and detection from
py3langid restricted to the model's source languages (core/langid.py)."""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi.responses import JSONResponse

from mt_cli.app.serve.guard import FORM
from mt_cli.core.language_names import language_name
from mt_cli.core.printable import printable

__all__ = ["LibreError", "LibreRequest", "Detector", "is_libre", "languages_answer", "read_body",
           "read_request", "translated_answer"]

LIBRE_KEYS = frozenset({"q", "source", "target", "format", "alternatives", "api_key"})
LINE_BREAK = re.compile(r"(\r\n|\r|\n)")
ECHO_CHARS = 40


class LibreError(Exception):
    """An error answered in LibreTranslate's shape, `{"error": message}`."""

    def __init__(self, status: int, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.retry = status, message, retry

    def response(self) -> JSONResponse:
        headers = {"Retry-After": "1"} if self.retry else None
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


def echo(value: object) -> str:
    """What a request sent, safe to repeat: escaped for terminals and HTML, cut short."""
    text = str(value)
    shown = text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "..."
    return html.escape(printable(shown), quote=True)


def read_body(body: bytes, media_type: str) -> tuple[bool, Any]:
    """(form, fields): a form-encoded body as {name: [values]}, anything else as parsed JSON
    (json.JSONDecodeError and UnicodeDecodeError propagate: mt-cli's own 400 answers them)."""
    if media_type == FORM:
        try:
            return True, parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise LibreError(400, "Invalid request: the form is not UTF-8") from None
    return False, json.loads(body)


def is_libre(form: bool, fields: Any) -> bool:
    """A form-encoded body, or a JSON object with one of LibreTranslate's fields and no `text`:
    LibreTranslate's (mt-cli's own shape has `text` and refuses any key of LibreTranslate's)."""
    return form or (isinstance(fields, dict) and "text" not in fields and not LIBRE_KEYS.isdisjoint(fields))


def _field(fields: Mapping[str, Any], form: bool, name: str) -> Any:
    value = fields.get(name)
    if form and isinstance(value, list):
        return value if name == "q" and len(value) > 1 else value[0]
    return value


@dataclass(frozen=True)
class LibreRequest:
    """A LibreTranslate request, checked: its texts (one if `q` was a string), the languages,
    how many alternatives; `lines` are the texts' lines, `breaks` the line breaks between them."""

    texts: list[str]
    single: bool
    source: str  # a code, or "auto"
    target: str
    alternatives: int
    html: bool = False  # format html: each line of a text is HTML (tags kept, text translated)

    def lines(self) -> tuple[list[str], list[list[str]]]:
        lines: list[str] = []
        breaks: list[list[str]] = []
        for text in self.texts:
            parts = LINE_BREAK.split(text)
            lines.extend(parts[0::2])
            breaks.append(parts[1::2])
        return lines, breaks


def _text_field(fields: Mapping[str, Any], form: bool, name: str, required: bool = True) -> str | None:
    value = _field(fields, form, name)
    if value is None or value == "":
        if required:
            raise LibreError(400, f"Invalid request: missing {name} parameter")
        return None
    if not isinstance(value, str):
        raise LibreError(400, f"Invalid request: {name} must be a string")
    return value


def read_request(fields: Any, form: bool, max_alternatives: int) -> LibreRequest:
    """The request's fields checked (400 naming the first at fault)."""
    if not isinstance(fields, dict):
        raise LibreError(400, "Invalid request: the body must be an object")
    q = _field(fields, form, "q")
    if q is None or q == "" or q == []:
        raise LibreError(400, "Invalid request: missing q parameter")
    single = isinstance(q, str)
    texts = [q] if single else q
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise LibreError(400, "Invalid request: q must be a string or a list of strings")
    source, target = _text_field(fields, form, "source"), _text_field(fields, form, "target")
    fmt = _text_field(fields, form, "format", required=False) or "text"
    if fmt not in ("text", "html"):
        raise LibreError(400, f"Invalid request: format must be text or html, got {echo(fmt)}")
    given = _field(fields, form, "alternatives")
    try:
        alternatives = int(given) if given not in (None, "") and not isinstance(given, bool) else 0
    except (TypeError, ValueError):
        raise LibreError(400, f"Invalid request: alternatives must be a whole number, got {echo(given)}") from None
    if not 0 <= alternatives <= max_alternatives:
        raise LibreError(400, f"Invalid request: alternatives must be in 0..{max_alternatives}, got {alternatives}")
    return LibreRequest(texts, single, str(source), str(target), alternatives, fmt == "html")


def check_languages(request: LibreRequest, pairs: Sequence[tuple[str, str]]) -> None:
    """Source (unless auto) and target among the model's (400 naming the one at fault)."""
    sources, targets = {s for s, _ in pairs}, {t for _, t in pairs}
    directions = ", ".join(f"{s} -> {t}" for s, t in pairs)
    if request.source != "auto" and request.source not in sources:
        raise LibreError(400, f"{echo(request.source)} is not supported as a source language "
                              f"(this server translates {directions})")
    if request.target not in targets:
        raise LibreError(400, f"{echo(request.target)} is not supported as a target language "
                              f"(this server translates {directions})")
    if request.source != "auto" and (request.source, request.target) not in pairs:
        raise LibreError(400, f"{echo(request.source)} -> {echo(request.target)} is not supported "
                              f"(this server translates {directions})")


def languages_answer(pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """GET /languages: every language of the model with the targets it translates into."""
    codes = list(dict.fromkeys([code for pair in pairs for code in pair]))
    return [{"code": code, "name": language_name(code),
             "targets": list(dict.fromkeys(t for s, t in pairs if s == code))} for code in codes]


class Detector:
    """Language ID restricted to the model's source languages (py3langid's model, loaded once,
    on first use). A model with one source language is that language: confidence 100."""

    def __init__(self, sources: Sequence[str]) -> None:
        self.sources = list(sources)
        self._identifier: Any = None
        self._lock = threading.Lock()

    def detect(self, text: str) -> list[dict[str, Any]]:
        """Candidates, most likely first, with confidences in percent (LibreTranslate's shape)."""
        if len(self.sources) == 1:
            return [{"language": self.sources[0], "confidence": 100.0}]
        from mt_cli.core.langid import Identifier, supported

        with self._lock:
            if self._identifier is None:
                known = set(supported())
                self._identifier = Identifier([s for s in self.sources if s in known], 0.0, 1)
        ranked = dict(self._identifier.rank(text)) if text.strip() else {}
        found = [{"language": code, "confidence": round(100 * ranked.get(code, 0.0), 2)} for code in self.sources]
        return sorted(found, key=lambda item: -item["confidence"])


def translated_answer(request: LibreRequest, nbests: list[list[Any]], breaks: list[list[str]],
                      detected: list[dict[str, Any]] | None) -> dict[str, Any]:
    """LibreTranslate's answer: `translatedText` (a string, or a list for a list `q`), each text's
    lines rejoined with its own line breaks; `alternatives` and `detectedLanguage` when asked."""
    texts, alternatives, start = [], [], 0
    for own in breaks:
        lines = nbests[start:start + len(own) + 1]
        start += len(own) + 1
        ranks = [_rejoin([n[min(k, len(n) - 1)].text for n in lines], own) for k in range(request.alternatives + 1)]
        texts.append(ranks[0])
        alternatives.append(list(dict.fromkeys(r for r in ranks[1:] if r != ranks[0])))
    answer: dict[str, Any] = {"translatedText": texts[0] if request.single else texts}
    if request.alternatives:
        answer["alternatives"] = alternatives[0] if request.single else alternatives
    if detected is not None:
        answer["detectedLanguage"] = detected[0] if request.single else detected
    return answer


def _rejoin(lines: list[str], breaks: list[str]) -> str:
    out = lines[0] if lines else ""
    for brk, line in zip(breaks, lines[1:]):
        out += brk + line
    return out
