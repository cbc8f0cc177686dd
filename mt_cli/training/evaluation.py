"""Dev evaluation during training and what follows from it: the best score and early stopping.

The dev set is read and encoded once per run; its loss comes from the eval step, its BLEU
and chrF from translating it with the model being trained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sacrebleu.metrics.base import Metric

from mt_cli.core.config import EvalConfig
from mt_cli.core.metrics import MetricScore, corpus_scores, make_metric
from mt_cli.engines.native import Translator
from mt_cli.training.data import EncodedCorpus, sequential_batches
from mt_cli.training.state import TrainState

EvalStep = Callable[[dict], tuple[float, float]]


@dataclass
class DevSet:
    """The dev set, encoded once: ids for the loss, raw lines for BLEU/chrF."""

    corpus: EncodedCorpus
    sources: list[str]
    references: list[str]
    settings: EvalConfig = field(default_factory=EvalConfig)

    def scores(self, eval_step: EvalStep, translator: Translator, batch_tokens: int,
               need: tuple[str, ...] = ()) -> dict[str, float]:
        """Dev loss per target token, and the `eval:` metrics (plus `need`) of the dev
        translation, scored with the `eval:` settings (tokenize, lowercase, chrF word order)."""
        total = tokens = 0.0
        for batch in sequential_batches(self.corpus, batch_tokens):
            loss, count = eval_step(batch)
            total, tokens = total + float(loss), tokens + float(count)
        hypotheses = translator.translate(self.sources)
        metrics = dict.fromkeys((*self.settings.metrics, *(m for m in need if m != "loss")))
        refs = [[r.rstrip() for r in self.references]]
        hyps = [h.rstrip() for h in hypotheses]
        scored = scores_as_eval_says(hyps, refs, tuple(metrics), self.settings)
        return {"loss": total / max(tokens, 1.0), **{m: scored[m].score for m in metrics}}


def scores_as_eval_says(hyps: list[str], refs: list[list[str]], keys: tuple[str, ...],
                        settings: EvalConfig) -> dict[str, MetricScore]:
    """Corpus scores with the `eval:` settings (tokenize, lowercase, chrF word order): training's
    dev scores and the quickstart's test scores, through the one scoring function `evaluate` uses."""
    return corpus_scores(hyps, refs, keys, settings.tokenize, settings.lowercase, settings.chrf_word_order)


def dev_metric(name: str, settings: EvalConfig) -> Metric:
    """A sacreBLEU metric set up as the `eval:` section says (as `mt-cli evaluate` does)."""
    return make_metric(name, settings.tokenize, settings.lowercase, settings.chrf_word_order)


def improved(metric: str, score: float, best: float | None) -> bool:
    """Loss improves downwards, BLEU and chrF upwards."""
    if best is None:
        return True
    return score < best if metric == "loss" else score > best


class EarlyStopping:
    """Keeps the best score and step, and counts evaluations without improvement."""

    def __init__(self, metric: str, patience: int) -> None:
        self.metric = metric
        self.patience = patience

    def record(self, state: TrainState, scores: dict[str, float]) -> None:
        """Put a new evaluation (at state.step) into the state."""
        state.dev_scores = dict(scores)
        score = scores[self.metric]
        if improved(self.metric, score, state.best_score):
            state.best_score, state.best_step, state.bad_evals = score, state.step, 0
        else:
            state.bad_evals += 1

    def should_stop(self, state: TrainState) -> bool:
        return bool(self.patience) and state.bad_evals >= self.patience


def evaluation_due(step: int, every: int, last_step: int, out_of_time: bool) -> bool:
    """Evaluate every `every` steps, at the last step and when time runs out."""
    return step % every == 0 or step == last_step or out_of_time


def first_lines(lines: Iterable[str], limit: int) -> list[str]:
    """The first `limit` lines (0 = all): train.eval_max_sentences."""
    lines = list(lines)
    return lines[:limit] if limit else lines
