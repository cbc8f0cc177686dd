"""`mt-cli export`: a model directory to CTranslate2, a TensorFlow SavedModel or an Argos Translate package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mt_cli.cli import console
from mt_cli.cli.common import start_tensorflow
from mt_cli.engines.locate import CT2_QUANTIZATIONS as QUANTIZATIONS

FORMATS = ("ctranslate2", "savedmodel", "argos")


def export(
    model: Annotated[Path, typer.Option(
        "--model", "-m", help="Model directory, or a run directory (uses its export/).",
    )],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Directory to write, or NAME.argosmodel for argos (must not exist).",
    )],
    fmt: Annotated[str, typer.Option("--format", "-f", help="ctranslate2, savedmodel or argos.")] = "ctranslate2",
    quantization: Annotated[str, typer.Option(
        "--quantization", help="CTranslate2 weights: " + ", ".join(QUANTIZATIONS) + ".",
    )] = "float32",
    pair: Annotated[str | None, typer.Option(
        "--pair", help="argos: the language pair to package, SRC-TGT (needed when the model has several).",
    )] = None,
) -> None:
    """Export a trained model for CTranslate2 or TensorFlow Serving.

    \b
    Examples:
      mt-cli export -m runs/demo -o runs/demo-ct2 --format ctranslate2 --quantization int8
      mt-cli translate -m runs/demo-ct2 test.en          # decodes with CTranslate2
      mt-cli export -m runs/demo -o runs/demo-savedmodel --format savedmodel
      mt-cli export -m runs/en-defr -o en_fr.argosmodel --format argos --pair en-fr   # Argos Translate
    """
    from mt_cli.core.errors import CheckpointError, ConfigError
    from mt_cli.core.files import clean_leftovers

    if fmt not in FORMATS:
        raise ConfigError(f"--format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"--quantization: must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    if fmt == "savedmodel" and quantization != "float32":
        raise ConfigError("--quantization applies to --format ctranslate2 and argos only")
    if pair is not None and fmt != "argos":
        raise ConfigError("--pair applies to --format argos only")
    if fmt == "argos":
        from mt_cli.engines.argos import check_output

        check_output(output)
    clean_leftovers(output)  # an interrupted export's .tmp-/.old- copies (an .old- may be restored)
    if output.exists():
        raise CheckpointError(f"{output}: already exists; choose a new -o (nothing is overwritten)")
    if fmt == "argos":
        _export_argos(model, output, quantization, pair)
        return
    start_tensorflow()
    if fmt == "ctranslate2":
        from mt_cli.engines.ct2_convert import export_ctranslate2

        export_ctranslate2(model, output, quantization)
    else:
        from mt_cli.engines.savedmodel import export_savedmodel

        manifest = export_savedmodel(model, output)
        console.info(f"signatures: {', '.join(manifest['signatures'])}")
    console.info(f"wrote {output}")


def _export_argos(model: Path, output: Path, quantization: str, pair: str | None) -> None:
    """An Argos Translate package; TensorFlow starts only for a quantization the model
    directory's own CTranslate2 conversion is not in."""
    from mt_cli.engines.argos import export_argos, needs_conversion
    from mt_cli.engines.opened import open_model_dir

    opened = open_model_dir(model)
    if needs_conversion(opened, quantization):
        start_tensorflow()
    written = export_argos(opened, output, quantization, pair)
    tag = f"; target tag {written.tag} built into model/config.json" if written.tag else ""
    console.info(f"wrote {output} ({written.source} -> {written.target}{tag})")
