"""Which languages a model directory translates between: the one place that reads it.

Why one function: today a model has one direction, its config's `data.source_lang` →
`data.target_lang`; multilingual models will list theirs in the manifest, and only the body
of `model_languages` changes then (sentence splitting, serve's /languages, /detect and
`source: auto` all ask it)."""

from __future__ import annotations

from mt_cli.engines.opened import ModelDir

__all__ = ["model_languages", "source_languages", "target_languages"]


def model_languages(opened: ModelDir) -> list[tuple[str, str]]:
    """The (source, target) language codes the model translates, in its own order."""
    return [(opened.config.data.source_lang, opened.config.data.target_lang)]


def source_languages(opened: ModelDir) -> list[str]:
    """The distinct source languages, in order."""
    return list(dict.fromkeys(source for source, _ in model_languages(opened)))


def target_languages(opened: ModelDir) -> list[str]:
    """The distinct target languages, in order."""
    return list(dict.fromkeys(target for _, target in model_languages(opened)))
