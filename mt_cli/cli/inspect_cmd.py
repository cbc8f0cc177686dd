"""`mt-cli attention` and `mt-cli plot`: pictures of the attention inside a model and of
training curves (matplotlib in the `[plot]` extra; attention also draws in the terminal)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mt_cli.cli import console
from mt_cli.cli.common import SetOption, start_tensorflow

if TYPE_CHECKING:
    from mt_cli.attention_maps import AttentionView

IMAGE_FORMATS = (".png", ".svg", ".pdf")


def _check_image(output: Path | None) -> None:
    from mt_cli.errors import ConfigError
    from mt_cli.extras import require

    if output is None:
        return
    if output.suffix.lower() not in IMAGE_FORMATS:
        raise ConfigError(f"-o {output}: the file name must end in {', '.join(IMAGE_FORMATS)}")
    require("matplotlib", "plot", "drawing to a file")


def _line(text: str | None, file: Path | None, line: int | None) -> str:
    from mt_cli.errors import ConfigError, DataError
    from mt_cli.textio import read_lines

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
    output: Annotated[Path | None, typer.Option("--output", "-o", help="heat.png/.svg/.pdf (default: draw in the terminal).")] = None,
    layer: Annotated[str, typer.Option("--layer", help="Layer number (0 = first, -1 = last) or all.")] = "all",
    head: Annotated[str, typer.Option("--head", help="Head number, mean (over heads) or all.")] = "mean",
    kind: Annotated[str, typer.Option("--kind", help="cross (output over source), encoder or decoder.")] = "cross",
    set_: SetOption = None,
) -> None:
    """Show where the model looks: attention heatmaps for one sentence and its translation.

    \b
    Examples:
      mt-cli attention -m runs/demo --text "the cat sees a dog ." -o heat.png
      mt-cli attention -m runs/demo test.en --line 3 --layer -1 --head all -o heads.svg
      mt-cli attention -m runs/demo --text "the cat runs ."          # in the terminal
    """
    _check_image(output)
    sentence = _line(text, file, line)
    start_tensorflow()
    from mt_cli.attention_maps import attention_view, draw_heatmaps

    view = attention_view(model, sentence, kind, layer, head, list(set_ or []))
    if output is None:
        _print_grid(view)
        return
    draw_heatmaps(view, output)
    console.info(f"wrote {output} ({len(view.panels)} panel(s)): {view.translation}")


def _print_grid(view: AttentionView) -> None:
    """Each panel as a table of shaded cells (darker = more attention)."""
    from rich.table import Table
    from rich.text import Text

    console.stdout.print(f"{view.kind} attention: {view.source} → {view.translation}")
    for title, matrix in view.panels:
        table = Table(title=title, show_lines=False, padding=(0, 0))
        table.add_column("")
        for label in view.cols:
            table.add_column(label, justify="center")
        for label, row in zip(view.rows, matrix):
            cells = [Text(f"{p:4.2f}", style=f"on rgb({255 - int(200 * p)},{255 - int(160 * p)},255)")
                     for p in row]
            table.add_row(label, *cells)
        console.stdout.print(table)


def plot(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (or metrics.jsonl files).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="curves.png/.svg/.pdf")],
) -> None:
    """Training curves: loss, learning rate, tokens/s, dev BLEU/chrF/loss by step and minutes.

    \b
    Examples:
      mt-cli plot runs/multi30k-en-de -o curves.png
      mt-cli plot runs/a runs/b -o compare.svg          # runs overlaid, best dev point marked
    """
    _check_image(output)
    from mt_cli.curves import plot_runs, read_metrics

    panels = plot_runs([read_metrics(run) for run in runs], output)
    console.info(f"wrote {output} ({panels} panels, {len(runs)} run(s))")
