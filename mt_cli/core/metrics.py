"""The one place a sacreBLEU metric object is made, for `evaluate` and for training's dev
scores alike, so both report the numbers the `sacrebleu` command prints for the same files."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from mt_cli.core.errors import ConfigError

METRICS = ("bleu", "chrf", "ter")


def make_metric(key: str, tokenize: str, lowercase: bool, chrf_word_order: int,
                 references: Sequence[Sequence[str]] | None = None,
                 sentence_level: bool = False) -> Metric:
    """One sacreBLEU metric object, configured like the `sacrebleu` command would be.

    --lowercase maps to BLEU's --lowercase and chrF's --chrf-lowercase; TER keeps its
    default (case-insensitive, TERCOM-like). Sentence BLEU uses effective order, as
    `sacrebleu --sentence-level` does, so short lines are not all zero.
    """
    if key == "bleu":
        if tokenize not in BLEU.TOKENIZERS:
            raise ConfigError(f"unknown BLEU tokenizer {tokenize!r}: "
                              f"choose from {', '.join(BLEU.TOKENIZERS)}")
        try:
            return BLEU(lowercase=lowercase, tokenize=tokenize, references=references,
                        effective_order=sentence_level)
        except (ImportError, RuntimeError) as exc:  # sacreBLEU raises RuntimeError for ja-mecab
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(f"BLEU tokenizer {tokenize!r} needs an extra package "
                              f"({reason}); e.g. pip install 'sacrebleu[ja,ko]'") from None
    if key == "chrf":
        if not 0 <= chrf_word_order <= 2:
            raise ConfigError(f"chrF word order must be 0, 1 or 2, got {chrf_word_order}")
        return CHRF(word_order=chrf_word_order, lowercase=lowercase, references=references)
    if key == "ter":
        return TER(references=references)
    raise ConfigError(f"unknown metric {key!r}: choose from {', '.join(METRICS)}")
