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

    Example: mt-cli config validate transformer-small
    """
    from mt_cli.core.config_checks import check_for_training

    check_for_training(load(config, set_))
    console.info(f"{config}: ok")


@app.command("presets")
def presets() -> None:
    """List the presets that ship with mt-cli: a config names one by name (`base: transformer-small`,
    `mt-cli train demo`) from any folder; copy its file to start your own.

    Example: mt-cli config presets
    """
    from mt_cli.core.packaged import PRESET_DIR, preset_names

    names = preset_names()
    width = max(map(len, names))
    for name in names:
        typer.echo(f"{name:<{width}}  {PRESET_DIR / f'{name}.yaml'}")
