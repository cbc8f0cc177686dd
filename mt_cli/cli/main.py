"""The `mt-cli` root command: sub-commands, --version, and the one-line error contract.

User errors (MtError, OS errors such as a full disk) become `error: ...` on stderr and exit
code 1; --debug shows the traceback instead. TensorFlow is imported only inside commands.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mt_cli import __version__
from mt_cli.cli import (
    attention_cmd,
    average_cmd,
    config_cmd,
    console,
    data_cmd,
    evaluate_cmd,
    export_cmd,
    plot_cmd,
    quickstart_cmd,
    serve_cmd,
    tokenize_cmd,
    train_cmd,
    translate_cmd,
)
from mt_cli.core.errors import MtError

_debug = {"on": False}


class _ErrorHandlingGroup(TyperGroup):
    """Turns user errors raised anywhere below into one line and exit 1."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MtError as exc:
            if _debug["on"]:
                raise
            console.error(str(exc))
            raise typer.Exit(1) from None
        except BrokenPipeError:
            # The reader went away (`mt-cli translate ... | head`): stop quietly, like `yes | head`.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None
        except OSError as exc:
            if _debug["on"]:
                raise
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            console.error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.error("interrupted")
            raise typer.Exit(130) from None


app = typer.Typer(
    name="mt-cli",
    cls=_ErrorHandlingGroup,
    help="Train, translate and evaluate Transformer NMT models from one YAML config.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mt-cli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    """Train, translate and evaluate Transformer NMT models from one YAML config.

    Typical flow: tokenize train -> train -> translate -> evaluate.
    """
    _debug["on"] = debug
    console.setup(quiet=quiet, verbose=verbose)


app.add_typer(config_cmd.app, name="config")
app.add_typer(tokenize_cmd.app, name="tokenize")
app.add_typer(data_cmd.app, name="data")
app.command("train")(train_cmd.train)
app.command("translate")(translate_cmd.translate)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("quickstart")(quickstart_cmd.quickstart)
app.command("average")(average_cmd.average)
app.command("export")(export_cmd.export)
app.command("attention")(attention_cmd.attention)
app.command("plot")(plot_cmd.plot)
app.command("serve")(serve_cmd.serve)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="mt-cli")


if __name__ == "__main__":
    main()
    sys.exit(0)
