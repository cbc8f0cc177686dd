"""Which languages a model directory translates between: the one place that reads it.

Why one function: sentence splitting, serve's /languages, /detect and `source: auto` all ask
it, and a model's pairs come from its manifest (`languages.pairs`, written at training from
the corpora's languages) or, for a model directory without them, its config's one pair
(core/languages.py)."""

from __future__ import annotations

from mt_cli.engines.opened import ModelDir

__all__ = ["model_languages", "source_languages", "target_languages"]


def model_languages(opened: ModelDir) -> list[tuple[str, str]]:
    """The (source, target) language codes the model translates, in its own order."""
    return list(opened.languages.pairs)


def source_languages(opened: ModelDir) -> list[str]:
    """The distinct source languages, in order."""
    return list(opened.languages.sources)


def target_languages(opened: ModelDir) -> list[str]:
    """The distinct target languages, in order."""
    return list(opened.languages.targets)
