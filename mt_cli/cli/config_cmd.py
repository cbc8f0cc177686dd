"""`mt-cli config show|validate`: see the resolved config before spending hours on it."""

from __future__ import annotations

import typer

from mt_cli.cli import console
from mt_cli.cli.common import ConfigArg, SetOption, load

app = typer.Typer(help="Inspect and validate YAML configs.", no_args_is_help=True)


@app.command("show")
def show(config: ConfigArg, set_: SetOption = None) -> None:
    """Print the fully resolved config (bases merged, overrides applied, paths absolute).

    Example: mt-cli config show configs/multi30k-en-de.yaml --set train.max_steps=500
    """
    cfg = load(config, set_)
    typer.echo(cfg.to_yaml(), nl=False)


@app.command("validate")
def validate(config: ConfigArg, set_: SetOption = None) -> None:
    """Exit 0 if the config is valid, 1 with one line naming the problem otherwise.

    Example: mt-cli config validate configs/transformer-small.yaml
    """
    from mt_cli.core.config import check_for_training

    check_for_training(load(config, set_))
    console.info(f"{config}: ok")
