"""The translate use case: a model directory and lines in, formatted output lines out.

Streams its input in chunks (or line by line with `stream`), keeps N lines in = N results
out in input order, and checks target prefixes against the input line count. Two engines
read model directories: the native one (TensorFlow) and CTranslate2 exports; which one is
read from the directory's manifest, and only the native one loads TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from mt_cli.core.alignment import moses
from mt_cli.core.errors import ConstraintError, DataError
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.textio import chunked
from mt_cli.engines.choice import open_translator
from mt_cli.engines.locate import NATIVE
from mt_cli.engines.protocol import LineTranslator

__all__ = ["format_nbest", "translate_file_lines", "translate_lines"]
CHUNK_LINES = 8192  # lines read ahead (and sorted by length) per translation round


def translate_file_lines(model: str | Path, lines: list[str], overrides: list[str] | None = None,
                         engine: str = NATIVE) -> list[str]:
    """Translate a list of lines with a model directory and engine (`auto` chooses)."""
    return open_translator(model, overrides, engine=engine).translate(lines)


def _json_fields(hyp: Hypothesis) -> dict[str, object]:
    fields: dict[str, object] = {"text": hyp.text, "score": hyp.score, "tokens": hyp.pieces}
    if hyp.alignment is not None:
        fields["alignment"] = [list(link) for link in hyp.alignment]
    return fields


def _aligned_text(hyp: Hypothesis, text: str) -> str:
    return text if hyp.alignment is None else f"{text} ||| {moses(hyp.alignment)}"


def format_nbest(index: int, nbest: list[Hypothesis], fmt: str, with_scores: bool, n_best: int,
                 record: Mapping[str, object] | None = None) -> list[str]:
    """Output lines for one input; the layout follows the requested n_best, never the count found.
    Alignments, when computed, follow as ` ||| 0-0 1-2` (text) or `"alignment"` (jsonl);
    `record` adds fields to every jsonl record (the engine and why)."""
    if fmt == "jsonl":
        record = {"index": index, **_json_fields(nbest[0]), **(record or {})}
        if n_best > 1:
            record["nbest"] = [_json_fields(h) for h in nbest]
        return [json.dumps(record, ensure_ascii=False)]
    if n_best > 1:
        return [_aligned_text(h, f"{index} ||| {h.text} ||| {h.score:.4f}") for h in nbest]
    best = nbest[0]
    return [_aligned_text(best, f"{best.score:.4f}\t{best.text}" if with_scores else best.text)]


def _aligned_slice(side: list[str] | None, start: int, count: int, names: tuple[str, str]) -> list[str] | None:
    """Lines start..start+count of a per-line side file (prefixes, constraints), which must
    not run out before the input does; `names` = (input, side file)."""
    if side is None:
        return None
    part = side[start:start + count]
    if len(part) != count:
        raise DataError(f"{names[1]} has {len(side)} lines but {names[0]} has more; "
                        "give one line per input line (empty for none)")
    return part


def translate_lines(translator: LineTranslator, lines: Iterable[str], *, prefixes: list[str] | None = None,
                    constraints: list[str] | None = None, fmt: str = "text", with_scores: bool = False,
                    stream: bool = False, names: tuple[str, ...] = ("<input>", "<prefixes>", "<constraints>"),
                    record: Mapping[str, object] | None = None) -> Iterator[str]:
    """Formatted output lines (`fmt` text or jsonl) for `lines`, lazily; `names` (input,
    prefix file, constraints file) name them in messages; `record`: fields every jsonl record has."""
    index = 0
    for chunk in chunked(lines, 1 if stream else CHUNK_LINES):
        chunk_prefixes = _aligned_slice(prefixes, index, len(chunk), (names[0], names[1]))
        chunk_constraints = _aligned_slice(constraints, index, len(chunk), (names[0], names[2]))
        try:
            found = translator.translate_nbest(chunk, chunk_prefixes, index + 1, constraints=chunk_constraints)
        except ConstraintError as exc:
            raise ConstraintError(f"{names[2]}: {exc}") from None
        for offset, nbest in enumerate(found):
            yield from format_nbest(index + offset, nbest, fmt, with_scores, translator.decode.n_best, record)
        index += len(chunk)
    for side, name in ((prefixes, names[1]), (constraints, names[2])):
        if side is not None and index != len(side):
            raise DataError(f"{name} has {len(side)} lines but {names[0]} has {index}")
