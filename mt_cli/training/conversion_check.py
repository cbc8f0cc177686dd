"""The dev check of a model directory's CTranslate2 conversion, run once when training writes it.

Why at export: whether int8 (or any other way CTranslate2 can decode faster) keeps the model's
quality depends on the model, and only the run has references at hand. The run's dev set (its
first DEV_CHECK_LINES lines, so the check stays bounded) is translated by the conversion in
each compute type (with and without the vocabulary map, where there is one) and scored as
`eval:` says; the manifest keeps the scores
(`ctranslate2.dev_check`), and `auto` reads them on every machine that loads the directory
(core/compute_type.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mt_cli.core.compute_type import MAP_SUFFIX
from mt_cli.core.config import EvalConfig
from mt_cli.training.evaluation import scores_as_eval_says

log = logging.getLogger("mt_cli")
DEV_CHECK_LINES = 500
CHECKED_TYPES = ("float32", "int8")


@dataclass(frozen=True)
class DevCheck:
    """What the check translates and how it scores it."""

    sources: Sequence[str]
    references: Sequence[str]
    settings: EvalConfig
    target_lang: str | None = None

    def run(self, directory: Path) -> dict[str, Any]:
        """The manifest's `dev_check`: BLEU of the conversion in each compute type."""
        from mt_cli.engines.ctranslate2 import CT2Translator

        sources, references = list(self.sources[:DEV_CHECK_LINES]), list(self.references[:DEV_CHECK_LINES])
        refs = [[r.rstrip() for r in references]]
        bleu: dict[str, float] = {}
        for compute_type in CHECKED_TYPES:  # one load (and hash check) per type; the map is per call
            translator = CT2Translator(directory, decode_flags={"compute_type": compute_type,
                                                                "target_lang": self.target_lang})
            for vocabulary_map in (False, True) if translator.vocabulary_map else (False,):
                name = compute_type + (MAP_SUFFIX if vocabulary_map else "")
                started = time.perf_counter()
                decode = dataclasses.replace(translator.decode, vocabulary_map=vocabulary_map)
                hyps = [n[0].text.rstrip() for n in translator.translate_nbest(sources, decode=decode)]
                bleu[name] = round(scores_as_eval_says(hyps, refs, ("bleu",), self.settings)["bleu"].score, 2)
                log.debug(f"CTranslate2 dev check, {name}: BLEU {bleu[name]} on {len(sources)} lines "
                          f"in {time.perf_counter() - started:.1f} s")
        return {"lines": len(sources), "bleu": bleu}
