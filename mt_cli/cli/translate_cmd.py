"""`mt-cli translate`: raw text in, detokenized translations out, one line per line."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from mt_cli.cli import console
from mt_cli.cli.common import EngineOption, SetOption, check_output_path, open_chosen_engine, say_engine
from mt_cli.cli.decode_options import with_decode_options
from mt_cli.engines.job import Job

OUTPUT_FORMATS = ("text", "jsonl")
SplitOption = Annotated[bool, typer.Option(
    "--split-sentences",
    help="Each line is a paragraph: translate its sentences (one over the model's limit is cut between "
         "words, not truncated), joined with the line's own spacing. Needs the 'sentences' extra.",
)]
MarkupOption = Annotated[str, typer.Option(
    "--markup", metavar="none|html",
    help="none, or html: each line is HTML; tags, comments and entities are kept, the text between "
         "tags translated (not inside script, style, code, pre); inline tags (b, i, a, span...) are "
         "placed by word alignments with --alignments (native engine), else by relative position.",
)]


def _decode_flags(given: dict[str, Any], stream: bool) -> dict[str, Any]:
    """The typed decode values the engine loads with: `--stream` decodes line by line."""
    flags = dict(given)
    if stream:
        flags.update(batch_size=1, batch_tokens=0)
    return flags


def _check_side_files(source: Path | None, prefix_file: Path | None, constraints_file: Path | None) -> None:
    """Side files must be files, line-aligned with the source: two files are counted here, to
    fail before loading the model; an input that reads once (stdin, a pipe) is checked while it
    is read instead (counting it here would leave nothing to translate)."""
    from mt_cli.core.errors import ConfigError
    from mt_cli.core.textio import check_same_length, reads_once

    for flag, side in (("--prefix-file", prefix_file), ("--constraints-file", constraints_file)):
        if side is not None and str(side) == "-":
            raise ConfigError(f"{flag}: give a file; stdin ('-') is where the source text comes from")
        if side is not None and source is not None and not reads_once(source) and not reads_once(side):
            check_same_length(source, side)


def _parse_weights(text: str | None) -> list[float] | None:
    """`0.6,0.4` -> [0.6, 0.4]; a clear error for anything else."""
    if text is None:
        return None
    from mt_cli.core.errors import ConfigError

    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        weights = []
    if not weights or not all(math.isfinite(w) for w in weights):  # float() reads inf and nan too
        raise ConfigError(f"--ensemble-weights: {text!r} is not a comma-separated list of finite numbers "
                          "(e.g. 0.5,0.5)")
    return weights


def _parse_shard_option(text: str | None) -> tuple[int, int] | None:
    """`--shard K/N` as (K, N), checked before the model loads."""
    if text is None:
        return None
    from mt_cli.core.shard import parse_shard

    return parse_shard(text)


def _check_split(split: bool, prefix_file: Path | None, constraints_file: Path | None, shard: str | None) -> None:
    """`--split-sentences` alone with what it can serve, and its segmenter installed, before loading."""
    if not split:
        return
    from mt_cli.core.errors import ConfigError
    from mt_cli.core.sentences import require_segmenter

    for flag, given in (("--prefix-file", prefix_file), ("--constraints-file", constraints_file),
                        ("--shard", shard)):
        if given is not None:
            why = "" if flag != "--shard" else " yet (a shard's rounds would not match a whole run's)"
            raise ConfigError(f"{flag}: not with --split-sentences{why}", flag)
    require_segmenter("--split-sentences")


def _check_markup(markup: str, prefix_file: Path | None, constraints_file: Path | None, shard: str | None) -> None:
    """`--markup` is one of MARKUPS, and html comes without what is per line, before loading."""
    from mt_cli.core.errors import ConfigError
    from mt_cli.engines.markup import MARKUPS

    if markup not in MARKUPS:
        raise ConfigError(f"--markup: must be one of {', '.join(MARKUPS)}, got {markup!r}")
    for flag, given in (("--prefix-file", prefix_file), ("--constraints-file", constraints_file),
                        ("--shard", shard)):
        if markup != "none" and given is not None:
            why = "a shard's rounds would not match a whole run's" if flag == "--shard" else \
                "it is per line, not per text segment"
            raise ConfigError(f"{flag}: not with --markup {markup} ({why})", flag)


def _split_translator(translator: Any, opened: Any) -> Any:
    """The engine translating each line as a paragraph, in the model's source language."""
    from mt_cli.engines.sentences import SentenceTranslator, check_split_options

    check_split_options(translator.decode, {"n_best": "--n-best", "alignments": "--alignments"})
    return SentenceTranslator(translator, opened.languages.sources[0])


def _wrapped(translator: Any, opened: Any, split: bool, markup: str) -> Any:
    """The engine as the line format asks: paragraphs split into sentences, HTML lines, or both."""
    translator = _split_translator(translator, opened) if split else translator
    if markup == "html":
        from mt_cli.engines.markup import MarkupTranslator

        translator = MarkupTranslator(translator)
    return translator


def _output_lines(translator: Any, files: tuple[Path | None, Path | None, Path | None],
                  shard: tuple[int, int] | None, progress: Any, split: bool = False,
                  **formatting: Any) -> tuple[Iterator[str], int | None]:
    """The output lines (lazy) of the input `files` (source or None for stdin, prefix file,
    constraints file), or of their shard, and how many input lines they cover (None: not counted).
    The rounds are the same with or without a progress bar (it moves once per round); with
    `split` (sentences or markup) a line is read whole up to MAX_PARAGRAPH_CHARS and rounds are
    bounded in characters."""
    from mt_cli.app.translate import chunk_size, plan_source, translate_lines
    from mt_cli.core.sentences import MAX_PARAGRAPH_CHARS
    from mt_cli.core.tokenizer import line_char_limit

    bound = line_char_limit(translator.max_source_tokens)  # a line is never held (nor tokenized) beyond it
    bound = MAX_PARAGRAPH_CHARS if split else bound  # split into sentences, nothing is cut
    chunk = chunk_size(formatting["stream"])
    plan = plan_source(*files, max_chars=bound, shard=shard, chunk=chunk, count=progress is not None)
    lines = translate_lines(translator, plan.lines, prefixes=plan.prefixes, constraints=plan.constraints,
                            names=(str(files[0] or "<stdin>"), str(files[1]), str(files[2])),
                            start=plan.start, keep=plan.keep, chunk_lines=chunk,
                            on_lines_done=progress.advance if progress else None,
                            chunk_chars=MAX_PARAGRAPH_CHARS if split else None, **formatting)
    return lines, plan.total


def _write_with_progress(output: Path, lines: Iterable[str], progress: Any, total: int | None) -> None:
    """`-o FILE` written atomically, with the progress bar (if any) shown while it fills."""
    from mt_cli.core.textio import atomic_write_lines

    if progress is not None:
        progress.start(total)
    try:
        atomic_write_lines(output, lines)
    finally:
        if progress is not None:
            progress.close()


@with_decode_options
def translate(
    model: Annotated[list[Path], typer.Option(
        "--model", "-m",
        help="Model directory (native or CTranslate2 export), or a run directory (uses its export/). "
             "Repeat for an ensemble of native models.",
    )],
    input_: Annotated[Path | None, typer.Argument(help="Source text file (default: stdin).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (default: stdout).")] = None,
    with_scores: Annotated[bool, typer.Option(
        "--with-scores", help="Prefix each line with its score and a tab.",
    )] = False,
    fmt: Annotated[str, typer.Option("--format", help="text or jsonl (text, score, tokens, n-best).")] = "text",
    prefix_file: Annotated[Path | None, typer.Option(
        "--prefix-file", help="Target prefixes, one per line, to continue from.",
    )] = None,
    constraints_file: Annotated[Path | None, typer.Option(
        "--constraints-file",
        help="Target phrases each output must contain: one line per input line, tab-separated, empty for none.",
    )] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Translate and flush line by line (for pipes).")] = False,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads (0 = the engine's default: all cores).")] = 0,
    ensemble_weights: Annotated[str | None, typer.Option(
        "--ensemble-weights", help="Comma-separated weight per -m (default equal), e.g. 0.6,0.4.",
    )] = None,
    engine: EngineOption = "auto",
    shard: Annotated[str | None, typer.Option(
        "--shard", metavar="K/N",
        help="Translate only the K-th of N contiguous parts of the input (1 <= K <= N; stdin or a pipe is "
             "first copied to a temporary file); the outputs of parts 1..N concatenated equal one whole run.",
    )] = None,
    split_sentences: SplitOption = False,
    markup: MarkupOption = "none",
    set_: SetOption = None,
    decode_flags: dict[str, Any] | None = None,
) -> None:
    """Translate a file or stdin with a trained model; N lines in, N lines out.

    \b
    Examples:
      mt-cli translate -m runs/demo test.en -o test.hyp
      echo "A dog runs." | mt-cli translate -m runs/demo --beam-size 1
      mt-cli translate -m runs/demo test.en --n-best 4 --beam-size 4 --format jsonl
      mt-cli translate -m runs/a -m runs/b --ensemble-weights 0.6,0.4 test.en
      mt-cli translate -m runs/demo test.en --constraints-file terms.tsv
      mt-cli translate -m runs/demo test.en --engine native
      mt-cli translate -m runs/demo big.en --shard 2/4 -o big.de.2
      mt-cli translate -m runs/demo paragraphs.en --split-sentences
      mt-cli translate -m runs/demo page.en.html --markup html --alignments
    """
    from mt_cli.core.errors import ConfigError

    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"--format: must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    overrides = list(set_ or [])
    flags = _decode_flags(dict(decode_flags or {}), stream)
    source = None if input_ is None or str(input_) == "-" else input_  # None: stdin
    check_output_path(output, "-o/--output")
    _check_side_files(source, prefix_file, constraints_file)
    parts = _parse_shard_option(shard)
    _check_split(split_sentences, prefix_file, constraints_file, shard)
    _check_markup(markup, prefix_file, constraints_file, shard)
    weights = _parse_weights(ensemble_weights)
    translator, choice, opened = open_chosen_engine(model, engine, overrides, threads, weights, flags,
                                                    constraints=constraints_file is not None, job=Job(path=source),
                                                    parallel_batches=not stream)
    translator = _wrapped(translator, opened, split_sentences, markup)
    progress = console.LineProgress() if output is not None and console.interactive() else None
    whole = split_sentences or markup != "none"
    lines, total = _output_lines(translator, (source, prefix_file, constraints_file), parts, progress, whole,
                                 fmt=fmt, with_scores=with_scores, stream=stream,
                                 record={"engine": choice.engine, "engine_reason": choice.reason})
    lines = say_engine(lines, choice)
    if output is not None:
        _write_with_progress(output, lines, progress, total)
        return
    for line in lines:
        sys.stdout.write(line + "\n")
        if stream:
            sys.stdout.flush()
    sys.stdout.flush()
