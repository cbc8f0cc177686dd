"""`mt-cli attention`: where a model looks, as heatmaps for one sentence and its translation
(drawn in the terminal, or to an image with the `[plot]` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mt_cli.cli import console
from mt_cli.cli.common import SetOption, start_tensorflow
from mt_cli.cli.image_output import check_image

if TYPE_CHECKING:
    from mt_cli.app.attention import AttentionView


def _line(text: str | None, file: Path | None, line: int | None) -> str:
    from mt_cli.core.errors import ConfigError, DataError
    from mt_cli.core.textio import read_lines

    if (text is None) == (file is None):
        raise ConfigError("give either --text \"...\" or FILE --line N")
    if text is not None:
        return text
    lines = read_lines(file)
    if line is None or not 1 <= line <= len(lines):
        raise DataError(f"{file}: --line must be between 1 and {len(lines)}, got {line}")
    return lines[line - 1]


def attention(
    model: Annotated[Path, typer.Option("--model", "-m", help="Native model directory or run directory.")],
    file: Annotated[Path | None, typer.Argument(help="Source file (with --line).")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Source sentence.")] = None,
    line: Annotated[int | None, typer.Option("--line", help="Line of FILE (1-based).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="heat.png/.svg/.pdf (default: draw in the terminal).",
    )] = None,
    layer: Annotated[str, typer.Option("--layer", help="Layer number (0 = first, -1 = last) or all.")] = "all",
    head: Annotated[str, typer.Option("--head", help="Head number, mean (over heads) or all.")] = "mean",
    kind: Annotated[str, typer.Option("--kind", help="cross (output over source), encoder or decoder.")] = "cross",
    target_lang: Annotated[str | None, typer.Option(
        "--target-lang", help="Target language, for a model with several (its tag is shown as a source piece).",
    )] = None,
    set_: SetOption = None,
) -> None:
    """Show where the model looks: attention heatmaps for one sentence and its translation.

    \b
    Examples:
      mt-cli attention -m runs/demo --text "the cat sees a dog ." -o heat.png
      mt-cli attention -m runs/demo test.en --line 3 --layer -1 --head all -o heads.svg
      mt-cli attention -m runs/demo --text "the cat runs ."          # in the terminal
    """
    check_image(output)
    sentence = _line(text, file, line)
    from mt_cli.engines.opened import open_model_dir

    flags = {"target_lang": target_lang} if target_lang is not None else None
    opened = open_model_dir(model, list(set_ or []), flags)  # its manifest read, its config parsed, once
    opened.languages.source_tags(opened.config.decode.target_lang)  # a missing or unknown one, before TensorFlow
    start_tensorflow()
    from mt_cli.app.attention import attention_view, draw_heatmaps

    view = attention_view(opened, sentence, kind, layer, head)
    if output is None:
        _print_grid(view)
        return
    draw_heatmaps(view, output)
    console.info(f"wrote {output} ({len(view.panels)} panel(s)): {view.translation}")


def _print_grid(view: AttentionView) -> None:
    """Each panel as a table of shaded cells (darker = more attention)."""
    from rich.table import Table
    from rich.text import Text

    from mt_cli.core.printable import printable

    console.stdout.print(f"{view.kind} attention: {printable(view.source)} → {printable(view.translation)}",
                         markup=False)  # user text: escaped, never read as markup
    for title, matrix in view.panels:
        table = Table(title=title, show_lines=False, padding=(0, 0))
        table.add_column("")
        for label in view.cols:
            table.add_column(Text(printable(label)), justify="center")
        for label, row in zip(view.rows, matrix):
            cells = [Text(f"{p:4.2f}", style=f"on rgb({255 - int(200 * p)},{255 - int(160 * p)},255)")
                     for p in row]
            table.add_row(Text(printable(label)), *cells)
        console.stdout.print(table)
