"""Image output shared by `attention -o` and `plot -o`: the suffix decides the format, matplotlib
(the `[plot]` extra) draws it."""

from __future__ import annotations

from pathlib import Path

from mt_cli.cli.common import check_output_path

IMAGE_FORMATS = (".png", ".svg", ".pdf")


def check_image(output: Path | None) -> None:
    from mt_cli.core.errors import ConfigError
    from mt_cli.core.extras import require

    if output is None:
        return
    if output.suffix.lower() not in IMAGE_FORMATS:
        raise ConfigError(f"-o {output}: the file name must end in {', '.join(IMAGE_FORMATS)}")
    check_output_path(output, "-o/--output", "heat.png")
    require("matplotlib", "plot", "drawing to a file")
