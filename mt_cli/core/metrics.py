"""The one place a sacreBLEU metric object is made and a corpus is scored, for `evaluate`,
training's dev scores and the quickstart alike, so all three report the numbers the
`sacrebleu` command prints for the same files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from mt_cli.core.errors import ConfigError

METRICS = ("bleu", "chrf", "ter")
HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "ter": False}


@dataclass(frozen=True)
class MetricScore:
    """One corpus-level score with what is needed to reproduce and report it."""

    metric: str  # "bleu" | "chrf" | "ter"
    name: str  # sacreBLEU's display name: BLEU, chrF2, chrF2++, TER
    score: float
    signature: str
    formatted: str  # sacreBLEU's full line, e.g. "BLEU = 26.7 81.8/50.0/21.4/10.0 (BP = ...)"

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "signature": self.signature,
                "formatted": self.formatted, "higher_is_better": self.higher_is_better}


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


def corpus_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]], keys: Sequence[str], tokenize: str = "13a",
                  lowercase: bool = False, chrf_word_order: int = 0) -> dict[str, MetricScore]:
    """Corpus-level scores of one system for each metric in `keys`, as `sacrebleu` prints them;
    `refs[k][i]` is the k-th reference of line i (sacreBLEU's layout)."""
    scores = {}
    for key in dict.fromkeys(keys):
        metric = make_metric(key, tokenize, lowercase, chrf_word_order)
        result = metric.corpus_score(list(hyps), [list(ref) for ref in refs])
        plain = result.format(width=1)  # "BLEU = 26.7 ..." without the signature prefix
        scores[key] = MetricScore(key, result.name, float(result.score), metric.get_signature().format(), plain)
    return scores
