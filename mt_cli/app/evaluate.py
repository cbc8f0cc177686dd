"""Corpus, significance and per-sentence scoring on top of sacreBLEU's own metric classes.

Numbers must be the ones `sacrebleu` prints for the same files, so every score comes from
sacreBLEU's BLEU/CHRF/TER objects and its `PairedTest`; this module only loads and checks
the text, picks the metric settings and turns the results into plain data.

References follow sacreBLEU's layout: `refs[k][i]` is the k-th reference of sentence i,
one inner list per reference file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_cli.core.errors import ConfigError, DataError
from mt_cli.core.metrics import HIGHER_IS_BETTER, METRICS, MetricScore, corpus_scores, make_metric
from mt_cli.core.textio import (
    STDIN_NAME,
    atomic_write_lines,
    check_line_counts,
    read_lines,
    require_nonempty,
)

METHODS = ("bootstrap", "randomization")
DEFAULT_SEED = 12345  # sacreBLEU's own default, so unseeded runs match `sacrebleu --paired-*`


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class EvalResult:
    """All requested metrics for one system."""

    n_lines: int
    n_refs: int
    scores: dict[str, MetricScore]


@dataclass(frozen=True)
class Significance:
    """One system x metric outcome of a paired test against the baseline."""

    score: float
    p_value: float | None  # None for the baseline itself
    mean: float | None  # bootstrap estimate of the true score
    ci: float | None  # half-width of the 95% confidence interval around `mean`

    def to_dict(self) -> dict[str, Any]:
        return {"p_value": self.p_value, "mean": self.mean, "ci": self.ci}


@dataclass(frozen=True)
class Comparison:
    """Paired test results; `systems[j][metric]`, system 0 being the baseline."""

    method: str
    bootstrap_samples: int
    ar_trials: int | None
    seed: int
    names: tuple[str, ...]
    signatures: dict[str, str]  # metric -> signature including the test's seed and sizes
    systems: tuple[dict[str, Significance], ...]


@dataclass(frozen=True)
class SentenceScore:
    """Per-sentence scores of one hypothesis line (index is 0-based)."""

    index: int
    hyp: str
    refs: tuple[str, ...]
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self, system: str | None = None) -> dict[str, Any]:
        head: dict[str, Any] = {} if system is None else {"system": system}
        return {**head, "index": self.index, "line": self.index + 1, "hyp": self.hyp,
                "refs": list(self.refs), **self.scores}


# ---------------------------------------------------------------------------- loading


def display_name(path: str | Path) -> str:
    """How a file is named in messages and reports ("-" is stdin)."""
    return STDIN_NAME if str(path) == "-" else str(path)


def read_text(path: str | Path, strip: bool = True, max_chars: int | None = None) -> list[str]:
    """Lines of a non-empty file; trailing whitespace dropped as the `sacrebleu` command does;
    each cut to `max_chars` if given (a source a model reads)."""
    lines = read_lines(path, max_chars=max_chars)
    require_nonempty(display_name(path), lines)
    return [line.rstrip() for line in lines] if strip else lines


ALIGNED_HINT = "hypothesis, reference and source files need one line per sentence"


def _check_single_stdin(paths: Iterable[str | Path]) -> None:
    if sum(str(p) == "-" for p in paths) > 1:
        raise ConfigError("stdin ('-') can be read only once: give the other inputs as files")


def load_references(paths: Sequence[str | Path]) -> list[list[str]]:
    """All reference files, checked to be non-empty and aligned with each other."""
    if not paths:
        raise ConfigError("no reference: give at least one reference file")
    _check_single_stdin(paths)
    refs = [read_text(path) for path in paths]
    for path, lines in zip(paths[1:], refs[1:]):
        check_line_counts(display_name(paths[0]), len(refs[0]), display_name(path), len(lines),
                          ALIGNED_HINT)
    return refs


def load_systems(hyp_paths: Sequence[str | Path], ref_paths: Sequence[str | Path],
                 refs: Sequence[Sequence[str]]) -> list[tuple[str, list[str]]]:
    """(name, lines) per hypothesis file, each aligned with the references."""
    _check_single_stdin([*hyp_paths, *ref_paths])
    systems = []
    for path in hyp_paths:
        lines = read_text(path)
        check_line_counts(display_name(path), len(lines), display_name(ref_paths[0]), len(refs[0]),
                          ALIGNED_HINT)
        systems.append((display_name(path), lines))
    return systems


# ---------------------------------------------------------------------------- metrics


def parse_metrics(text: str | Sequence[str]) -> tuple[str, ...]:
    """"bleu,chrf" (or a list) -> validated, de-duplicated metric keys in the given order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [item.strip().lower() for item in items if item.strip()]
    for name in names:
        if name not in METRICS:
            raise ConfigError(f"unknown metric {name!r}: choose from {', '.join(METRICS)}")
    if not names:
        raise ConfigError(f"no metric given: choose from {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


def _check_refs(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
    if not refs:
        raise ConfigError("no reference: give at least one reference")
    if not hyps:
        raise DataError("no hypothesis lines to score")
    for k, ref in enumerate(refs, start=1):
        check_line_counts("the hypothesis", len(hyps), f"reference {k}", len(ref), ALIGNED_HINT)


def score_corpus(hyps: Sequence[str], refs: Sequence[Sequence[str]],
                 metrics: Sequence[str] = METRICS, tokenize: str = "13a",
                 lowercase: bool = False, chrf_word_order: int = 0) -> EvalResult:
    """Corpus-level scores of one system, identical to the `sacrebleu` command's."""
    keys = parse_metrics(metrics)
    _check_refs(hyps, refs)
    scores = corpus_scores(hyps, refs, keys, tokenize, lowercase, chrf_word_order)
    return EvalResult(n_lines=len(hyps), n_refs=len(refs), scores=scores)


# ---------------------------------------------------------------------------- significance


@contextmanager
def _sacrebleu_seed(seed: int) -> Iterator[None]:
    """sacreBLEU's PairedTest takes its seed only from $SACREBLEU_SEED: set it for the call."""
    previous = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = previous


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def compare_systems(systems: Sequence[tuple[str, Sequence[str]]], refs: Sequence[Sequence[str]],
                    metrics: Sequence[str] = METRICS, method: str = "bootstrap",
                    bootstrap_samples: int = 1000, ar_trials: int = 10000,
                    seed: int = DEFAULT_SEED, tokenize: str = "13a", lowercase: bool = False,
                    chrf_word_order: int = 0) -> Comparison:
    """Paired significance of every system against the first, via sacreBLEU's PairedTest.

    "bootstrap" is `sacrebleu --paired-bs`; "randomization" is `--paired-ar` with
    `ar_trials` trials plus `bootstrap_samples` resamples for the 95% CI. The same seed
    gives the same numbers as `SACREBLEU_SEED=seed sacrebleu ...`.
    """
    from sacrebleu.significance import PairedTest

    keys = parse_metrics(metrics)
    if method not in METHODS:
        raise ConfigError(f"unknown significance test {method!r}: choose from {', '.join(METHODS)}")
    if len(systems) < 2:
        raise ConfigError("a significance test needs at least two systems (the first is the baseline)")
    if bootstrap_samples < 1 or ar_trials < 1:
        raise ConfigError("bootstrap samples and randomization trials must be at least 1")
    if seed < 1:
        # PairedTest treats a seed of 0 as "no seed" for the compared systems.
        raise ConfigError(f"significance seed must be a positive integer, got {seed}")
    for _, hyps in systems:
        _check_refs(hyps, refs)

    ref_lists = [list(r) for r in refs]
    objects = {key: make_metric(key, tokenize, lowercase, chrf_word_order, ref_lists) for key in keys}
    named = [(name, list(hyps)) for name, hyps in systems]
    is_bs = method == "bootstrap"
    with _sacrebleu_seed(seed):
        test = PairedTest(named, objects, references=None, test_type="bs" if is_bs else "ar",
                          n_samples=bootstrap_samples if is_bs else ar_trials,
                          n_ar_confidence=-1 if is_bs else bootstrap_samples, n_jobs=1)
        raw_signatures, raw_scores = test()

    # PairedTest keys its output by display name (chrF2++ ...): map back to our keys.
    display = {name: key for name, metric in test.metrics.items()
               for key, obj in objects.items() if obj is metric}
    per_system: list[dict[str, Significance]] = [{} for _ in named]
    for name, results in raw_scores.items():
        if name == "System":
            continue
        for j, res in enumerate(results):
            per_system[j][display[name]] = Significance(
                float(res.score), _opt_float(res.p_value), _opt_float(res.mean), _opt_float(res.ci))
    return Comparison(
        method=method, bootstrap_samples=bootstrap_samples, ar_trials=None if is_bs else ar_trials,
        seed=seed, names=tuple(name for name, _ in named),
        signatures={display[name]: sig.format() for name, sig in raw_signatures.items()},
        systems=tuple(per_system),
    )


# ---------------------------------------------------------------------------- sentences


def sentence_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]],
                    metrics: Sequence[str] = METRICS, tokenize: str = "13a",
                    lowercase: bool = False, chrf_word_order: int = 0) -> list[SentenceScore]:
    """Per-line scores (as `sacrebleu --sentence-level`), to find and inspect bad lines."""
    keys = parse_metrics(metrics)
    _check_refs(hyps, refs)
    objects = {key: make_metric(key, tokenize, lowercase, chrf_word_order, sentence_level=True)
               for key in keys}
    items = []
    for i, hyp in enumerate(hyps):
        line_refs = [ref[i] for ref in refs]
        scores = {key: float(obj.sentence_score(hyp, line_refs).score) for key, obj in objects.items()}
        items.append(SentenceScore(i, hyp, tuple(line_refs), scores))
    return items


def worst_sentences(items: Sequence[SentenceScore], n: int, metric: str = "bleu") -> list[SentenceScore]:
    """The n worst lines by one metric (lowest BLEU/chrF, highest TER); ties by line order."""
    if items and metric not in items[0].scores:
        raise ConfigError(f"cannot rank lines by {metric!r}: it was not computed")
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    return sorted(items, key=lambda s: (sign * s.scores[metric], s.index))[:max(n, 0)]


def _json_line(document: dict[str, Any]) -> str:
    """One JSON object per physical line, even for text holding U+2028/U+2029."""
    text = json.dumps(document, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_sentence_scores(path: str | Path,
                          per_system: Sequence[tuple[str, Sequence[SentenceScore]]]) -> None:
    """JSON lines, one object per sentence and system, written atomically."""
    atomic_write_lines(path, (_json_line(item.to_dict(system))
                              for system, items in per_system for item in items))


# ---------------------------------------------------------------------------- one evaluate run


@dataclass(frozen=True)
class Report:
    """What one `mt-cli evaluate` run found, ready to print or to turn into its JSON document."""

    names: list[str]
    files: list[str | None]
    results: list[EvalResult]
    comparison: Comparison | None
    worst: list[list[SentenceScore]]
    rank_by: str  # the metric the worst lines are ranked by


def evaluate_systems(systems: list[tuple[str, list[str]]], files: list[str | None], refs: list[list[str]],
                     keys: tuple[str, ...], settings: dict[str, Any], significance: str | None = None,
                     bootstrap_samples: int = 1000, ar_trials: int = 10000, seed: int = DEFAULT_SEED,
                     sentence_level: Path | None = None, worst: int = 0) -> Report:
    """Scores, the paired test, per-sentence scores (written to `sentence_level`) and the worst
    lines of each system, all with the same metric settings."""
    results = [score_corpus(lines, refs, keys, **settings) for _, lines in systems]
    comparison = None
    if significance is not None:
        comparison = compare_systems(systems, refs, keys, significance, bootstrap_samples, ar_trials, seed,
                                     **settings)
    sentences: list[list[SentenceScore]] = []
    if sentence_level is not None or worst > 0:
        sentences = [sentence_scores(lines, refs, keys, **settings) for _, lines in systems]
    if sentence_level is not None:
        write_sentence_scores(sentence_level, [(name, items) for (name, _), items in zip(systems, sentences)])
    rank_by = "bleu" if "bleu" in keys else keys[0]
    worst_lines = ([worst_sentences(items, worst, rank_by) for items in sentences] if worst > 0
                   else [[] for _ in systems])
    return Report([name for name, _ in systems], files, results, comparison, worst_lines, rank_by)


def report_document(report: Report, ref_names: list[str], keys: tuple[str, ...], settings: dict[str, Any],
                    model: Path | None, source: Path | None, save_hyp: Path | None,
                    sentence_level: Path | None) -> dict[str, Any]:
    """The --json document, schema_version 1 (docs/evaluation.md)."""
    comparison, systems = report.comparison, []
    for j, (name, file, result) in enumerate(zip(report.names, report.files, report.results)):
        scores = {}
        for key, score in result.scores.items():
            sig = (comparison.systems[j][key].to_dict() if comparison
                   else {"p_value": None, "mean": None, "ci": None})
            scores[key] = {**score.to_dict(), **sig}
        systems.append({"name": name, "file": file, "lines": result.n_lines,
                        "baseline": comparison is not None and j == 0, "scores": scores,
                        "worst": [item.to_dict() for item in report.worst[j]]})
    return {
        "schema_version": 1,
        "references": ref_names,
        "metrics": list(keys),
        "settings": settings,
        "model": None if model is None else {"path": str(model), "source": str(source),
                                             "saved_hypotheses": str(save_hyp) if save_hyp else None},
        "significance": None if comparison is None else {
            "method": comparison.method, "bootstrap_samples": comparison.bootstrap_samples,
            "ar_trials": comparison.ar_trials, "seed": comparison.seed,
            "baseline": comparison.names[0], "signatures": comparison.signatures},
        "sentence_level": str(sentence_level) if sentence_level else None,
        "systems": systems,
    }


def translate_source(translate: Callable[[list[str]], list[str]], source: Path, max_chars: int,
                     ref_path: Path, refs: list[list[str]], save_hyp: Path | None) -> list[str]:
    """`evaluate -m`: the source translated (checked against the references first, to fail
    before decoding), written to `save_hyp` if given, right-stripped as hypotheses are."""
    lines = read_text(source, strip=False, max_chars=max_chars)
    check_line_counts(display_name(source), len(lines), display_name(ref_path), len(refs[0]), ALIGNED_HINT)
    hyps = translate(lines)
    if len(hyps) != len(lines):
        raise DataError(f"returned {len(hyps)} translations for {len(lines)} source lines")
    if save_hyp is not None:
        atomic_write_lines(save_hyp, hyps)
    return [line.rstrip() for line in hyps]
