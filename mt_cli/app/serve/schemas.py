"""The HTTP API's request and response shapes, and the decode options one request asks for."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from mt_cli.core.config import DecodeConfig, decode_fields
from mt_cli.core.hypothesis import Hypothesis


@dataclass(frozen=True)
class Options:
    """Decode options of one request, passed to the engine per call: requests with equal
    options (a frozen DecodeConfig compares by value) share a batch."""

    decode: DecodeConfig
    prefixed: bool
    split: str | None = None  # the language lines are split into sentences in; None: not split
    markup: bool = False  # lines are HTML (request format "html")


class ApiError(Exception):
    """An HTTP error answered as JSON naming the field at fault."""

    def __init__(self, status: int, field: str | None, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.status, self.field, self.message, self.retry = status, field, message, retry


# ---------------------------------------------------------------- request and response bodies

class TranslateRequest(BaseModel):
    """POST /translate: lines to translate, optional decode options and target prefixes."""

    model_config = ConfigDict(extra="forbid")
    text: list[StrictStr] = Field(description="Source lines; N in = N out, empty line -> empty translation.")
    # Their rules (>= 1, n_best <= beam_size) are DecodeConfig's, checked in ModelHost.options.
    beam_size: StrictInt | None = Field(None, description="Beam width, >= 1 (default: the model's).")
    n_best: StrictInt | None = Field(None, description="Hypotheses per line, 1..beam_size.")
    prefix: list[StrictStr] | None = Field(None, description="One target prefix per line ('' = none).")
    target_lang: StrictStr | None = Field(None, max_length=40, description=(
        "Target language; required by a model with several (GET /info lists them)."))
    split_sentences: StrictBool = Field(False, description="Each line is a paragraph: its sentences are "
                                        "translated and joined with its own spacing (one best; no prefix).")
    format: Literal["text", "html"] = Field("text", description=(
        "html: each line is HTML; tags, comments and entities are kept, the text between them translated "
        "(not inside script, style, code or pre), inline tags placed in the translation (no prefix)."))


REQUEST_DECODE = tuple(f.name for f in decode_fields() if f.name in TranslateRequest.model_fields)
REQUEST_ORIGIN = "the model's decode options"


class NbestItem(BaseModel):
    text: str
    score: float | None


class Translation(BaseModel):
    text: str
    score: float | None = Field(description="Length-normalised log-probability (null if not finite).")
    nbest: list[NbestItem] | None = None


class TranslateResponse(BaseModel):
    translations: list[Translation]
    model: str


def _finite(score: float) -> float | None:
    return score if math.isfinite(score) else None


def translation_of(nbest: list[Hypothesis], n_best: int) -> dict[str, Any]:
    best = nbest[0]
    out: dict[str, Any] = {"text": best.text, "score": _finite(best.score)}
    if n_best > 1:
        out["nbest"] = [{"text": h.text, "score": _finite(h.score)} for h in nbest]
    return out


# ---------------------------------------------------------------- the model
