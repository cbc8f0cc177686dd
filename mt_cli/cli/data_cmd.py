"""`mt-cli data clean|check`: the noise in a parallel corpus, removed or counted.

One flag per CleanConfig field (core/clean_settings.py), made from the field as decode flags
are; the values given are checked by the field's rule and named by their flag.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mt_cli.cli import console
from mt_cli.core.clean_settings import CleanConfig

app = typer.Typer(help="Clean a parallel corpus (data clean) or count its noise (data check).",
                  no_args_is_help=True)
SETTINGS_PARAM = "clean_flags"

SourceArg = Annotated[Path, typer.Argument(help="Source-side text file, one sentence per line.")]
TargetArg = Annotated[Path, typer.Argument(help="Target-side text file, line-aligned with SOURCE.")]
AgainstOption = Annotated[list[Path] | None, typer.Option(
    "--against", help="Drop (clean) or count (check) pairs whose source or target is a line of this file, "
                      "ignoring case and spacing: test sets, dev sets. Repeatable.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary on stderr.")]
WorkersOption = Annotated[int, typer.Option("--workers", min=0, help="Processes judging pairs (0 = the usable cores).")]


def _parameter(field: dataclasses.Field) -> inspect.Parameter:
    meta = field.metadata
    hint = typing.get_type_hints(CleanConfig)[field.name]
    if hint is bool:
        option = typer.Option(meta["flag"], help=f"Do not {meta['doc']}." if meta.get("negate") else meta["doc"])
        annotation: Any = Annotated[bool, option]
        default: Any = False
    else:
        value = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        shown = ",".join(value) if isinstance(value, tuple) else value
        option = typer.Option(meta["flag"], help=f"{meta['doc'][0].upper()}{meta['doc'][1:]} (default {shown}).",
                              show_default=False)
        annotation, default = Annotated[(str if hint not in (int, float) else hint) | None, option], None
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _settings(given: dict[str, Any]) -> CleanConfig:
    """CleanConfig from the flags given, each checked by its field's rule (errors name the flag)."""
    from mt_cli.core.config_checks import typed_fields

    values: dict[str, Any] = {}
    flags = {f.name: f.metadata["flag"] for f in dataclasses.fields(CleanConfig)}
    for f in dataclasses.fields(CleanConfig):
        value = given[f.name]
        if f.metadata.get("negate"):
            if value:
                values[f.name] = not f.default
        elif isinstance(value, str):  # a list of codes: en,de
            values[f.name] = tuple(code.strip() for code in value.split(",") if code.strip())
        elif value is not None:
            values[f.name] = value
    return typed_fields(CleanConfig, values, flags)


def with_clean_options(command: Callable[..., None]) -> Callable[..., None]:
    """One option per CleanConfig field; the command gets a CleanConfig in `clean_flags`."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != SETTINGS_PARAM]
    fields = dataclasses.fields(CleanConfig)

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        given = {f.name: kwargs.pop(f.name) for f in fields}
        command(**kwargs, **{SETTINGS_PARAM: _settings(given)})

    parameters = own + [_parameter(f) for f in fields]
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def _with_progress(json_out: bool, run: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """`run(on_total, on_pairs)` with a bar on a terminal (not with --json or -q), closed
    however the run ends."""
    if json_out or not console.interactive():
        return run(None, None)
    progress = console.LineProgress(unit="pairs")
    try:
        return run(progress.start, progress.advance)
    finally:
        progress.close()


def _job(source: Path, target: Path, langs: tuple[str, str] | None, settings: CleanConfig,
         against: list[Path] | None, workers: int) -> Any:
    from mt_cli.app.data.job import Job

    return Job(source, target, langs, settings, tuple(against or ()), workers)


@app.command("clean")
@with_clean_options
def clean(
    source: SourceArg,
    target: TargetArg,
    source_lang: Annotated[str, typer.Option("--source-lang", help="SOURCE's language (ISO 639-1, e.g. en).")],
    target_lang: Annotated[str, typer.Option("--target-lang", help="TARGET's language (ISO 639-1, e.g. de).")],
    out_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Directory for the kept pairs and "
                                          "report.json (made whole, or not at all; never the inputs' own).")],
    against: AgainstOption = None,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
    workers: WorkersOption = 0,
    clean_flags: CleanConfig | None = None,
) -> None:
    """Write the pairs that pass every rule to OUT_DIR, in input order, with a report.

    \b
    Examples:
      mt-cli data clean crawl.en crawl.de --source-lang en --target-lang de -o clean/
      mt-cli data clean crawl.en crawl.de --source-lang en --target-lang de -o clean/ \\
          --against test.en --against test.de --max-ratio-chars 2.5 --json
    """
    from mt_cli.app.data.clean import clean as run_clean

    if quiet:
        console.setup(quiet=True)
    job = _job(source, target, (source_lang, target_lang), clean_flags or CleanConfig(), against, workers)
    document = _with_progress(json_out, lambda on_total, on_pairs: run_clean(job, out_dir, on_total, on_pairs))
    if json_out:
        console.print_json(document)
        return
    pairs = document["pairs"]
    share = 100 * pairs["kept"] / pairs["read"] if pairs["read"] else 0.0
    dropped = ", ".join(f"{name} {n:,}" for name, n in document["rules"].items() if n) or "none"
    console.info(f"kept {pairs['kept']:,} of {pairs['read']:,} pairs ({share:.1f} %); dropped: {dropped}")
    console.info(f"wrote {document['outputs']['source']['path']}, {document['outputs']['target']['path']} "
                 f"and {Path(out_dir) / 'report.json'}")


@app.command("check")
@with_clean_options
def check(
    source: SourceArg,
    target: TargetArg,
    source_lang: Annotated[str | None, typer.Option(
        "--source-lang", help="SOURCE's language: with --target-lang, counts the wrong-language rule.")] = None,
    target_lang: Annotated[str | None, typer.Option("--target-lang", help="TARGET's language.")] = None,
    against: AgainstOption = None,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
    workers: WorkersOption = 0,
    clean_flags: CleanConfig | None = None,
) -> None:
    """Count what `data clean` would drop and summarise lengths, ratios, languages and
    overlaps; writes nothing, exits 0 whatever it finds.

    \b
    Examples:
      mt-cli data check train.en train.de
      mt-cli data check train.en train.de --source-lang en --target-lang de --against test.en --json
    """
    from mt_cli.app.data.check import check as run_check
    from mt_cli.cli.data_summary import summary_text
    from mt_cli.core.errors import ConfigError

    if quiet:
        console.setup(quiet=True)
    if (source_lang is None) != (target_lang is None):
        raise ConfigError("--source-lang and --target-lang go together: give both or neither")
    langs = None if source_lang is None or target_lang is None else (source_lang, target_lang)
    job = _job(source, target, langs, clean_flags or CleanConfig(), against, workers)
    document = _with_progress(json_out, lambda on_total, on_pairs: run_check(job, on_total, on_pairs))
    if json_out:
        console.print_json(document)
    else:
        console.print_text(summary_text(document))
