"""`mt-cli evaluate`: sacreBLEU-identical scores, paired significance tests and worst lines.

--json prints one document on stdout (schema_version 1):

    {
      "schema_version": 1,
      "references": ["ref.de", ...],          # files, "<stdin>" for "-"
      "metrics": ["bleu", "chrf", "ter"],
      "settings": {"tokenize": "13a", "lowercase": false, "chrf_word_order": 0},
      "model": null | {"path": str, "source": str, "saved_hypotheses": str | null},
      "significance": null | {"method": "bootstrap" | "randomization",
                              "bootstrap_samples": int, "ar_trials": int | null,
                              "seed": int, "baseline": str,
                              "signatures": {"bleu": str, ...}},
      "sentence_level": null | str,            # the --sentence-level file
      "systems": [{
        "name": str, "file": str | null, "lines": int, "baseline": bool,
        "scores": {"bleu": {"name": "BLEU", "score": float, "signature": str,
                            "formatted": str, "higher_is_better": bool,
                            "p_value": float | null, "mean": float | null, "ci": float | null},
                   ...},
        "worst": [{"index": int, "line": int, "hyp": str, "refs": [str], "bleu": float, ...}]
      }]
    }

"score" is unrounded; p_value is null for the baseline and without --significance, mean/ci
(95% half-width) are null without --significance. "worst" is empty without --worst.
--sentence-level lines are {"system", "index" (0-based), "line" (1-based), "hyp", "refs",
and one float per metric}.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mt_cli.cli import console
from mt_cli.cli.common import EngineOption, check_output_path
from mt_cli.core.errors import ConfigError
from mt_cli.core.printable import printable

if TYPE_CHECKING:
    from mt_cli.app.evaluate import Report

HypArg = Annotated[list[Path] | None, typer.Argument(
    metavar="HYP", show_default=False,
    help="Hypothesis files, one per system; the first is the significance baseline. "
         "Default: one system read from stdin.")]
RefOption = Annotated[list[Path] | None, typer.Option(
    "--ref", "-r", metavar="REF", help="Reference file (repeat for several references per line).")]
MetricsOption = Annotated[str | None, typer.Option(
    "--metrics", metavar="LIST", help="Comma-separated subset of bleu,chrf,ter (default: all).")]
ChrfPlusOption = Annotated[bool, typer.Option("--chrf-plus", help="chrF++ (word n-grams up to 2).")]
LowercaseOption = Annotated[bool, typer.Option(
    "--lowercase", help="Case-insensitive BLEU and chrF (TER is case-insensitive anyway).")]
TokenizeOption = Annotated[str | None, typer.Option(
    "--tokenize", metavar="NAME",
    help="BLEU tokenizer: 13a (default), intl, zh, char, none, flores200, ...")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of the table.")]
SignificanceOption = Annotated[str | None, typer.Option(
    "--significance", metavar="bootstrap|randomization",
    help="Paired test of each system against the first HYP (as sacrebleu --paired-bs/--paired-ar).")]
SamplesOption = Annotated[int, typer.Option(
    "--bootstrap-samples", metavar="N", help="Bootstrap resamples (test and 95% CI).")]
TrialsOption = Annotated[int, typer.Option(
    "--ar-trials", metavar="N", help="Approximate randomization trials.")]
SeedOption = Annotated[int, typer.Option("--seed", metavar="N", help="Random seed of the significance test.")]
SentenceOption = Annotated[Path | None, typer.Option(
    "--sentence-level", metavar="FILE", help="Write per-sentence scores as JSON lines.")]
WorstOption = Annotated[int, typer.Option(
    "--worst", metavar="N", help="Show the N worst lines by sentence BLEU.")]
ModelOption = Annotated[Path | None, typer.Option(
    "--model", "-m", metavar="MODEL", help="Translate --source with this model, then score the output.")]
SourceOption = Annotated[Path | None, typer.Option(
    "--source", "-s", metavar="SRC", help="Source text for -m.")]
SaveHypOption = Annotated[Path | None, typer.Option(
    "--save-hyp", metavar="FILE", help="With -m: also write the translations here.")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", metavar="YAML",
    help="Take the metric defaults from this config's eval: section (with -m: the model's own).")]
TargetLangOption = Annotated[str | None, typer.Option(
    "--target-lang", metavar="LANG",
    help="With -m: the target language, for a model with several (decode.target_lang).")]
# Not common.SetOption: its "-s" short flag is taken by --source here.
ModelSetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
    help="With -m: override a model/decoding config value, e.g. --set decode.beam_size=5 (repeatable).")]


def evaluate(
    hypotheses: HypArg = None,
    ref: RefOption = None,
    metrics: MetricsOption = None,
    chrf_plus: ChrfPlusOption = False,
    lowercase: LowercaseOption = False,
    tokenize: TokenizeOption = None,
    as_json: JsonOption = False,
    significance: SignificanceOption = None,
    bootstrap_samples: SamplesOption = 1000,
    ar_trials: TrialsOption = 10000,
    seed: SeedOption = 12345,
    sentence_level: SentenceOption = None,
    worst: WorstOption = 0,
    model: ModelOption = None,
    source: SourceOption = None,
    save_hyp: SaveHypOption = None,
    set_: ModelSetOption = None,
    engine: EngineOption = "auto",
    config: ConfigOption = None,
    target_lang: TargetLangOption = None,
) -> None:
    """Score hypotheses against references with sacreBLEU's BLEU, chrF and TER.

    \b
    Examples:
      mt-cli evaluate -r test.de hyp.de
      cat hyp.de | mt-cli evaluate -r test.de --metrics bleu --json
      mt-cli evaluate -r test.de base.de new.de --significance bootstrap
      mt-cli evaluate -m runs/en-de/export -s test.en -r test.de --save-hyp hyp.de
      mt-cli evaluate -m runs/en-defr -s test.en -r test.fr --target-lang fr
    """
    from mt_cli.app import evaluate as ev

    _check_usage(hypotheses or [], ref or [], significance, worst, model, source, save_hyp, set_, sentence_level)
    if target_lang is not None and model is None:
        raise ConfigError("--target-lang only applies with -m/--model MODEL")
    defaults = _eval_defaults(config, model)
    keys = ev.parse_metrics(metrics if metrics is not None else defaults.metrics)
    settings = {"tokenize": tokenize or defaults.tokenize,
                "lowercase": lowercase or defaults.lowercase,
                "chrf_word_order": 2 if chrf_plus else defaults.chrf_word_order}

    refs = ev.load_references(ref or [])
    ref_names = [ev.display_name(path) for path in ref or []]
    if model is not None:
        systems = [(str(model), _translate(model, source, save_hyp, set_, ref or [], refs, engine,
                                                 target_lang))]
        files: list[str | None] = [str(save_hyp) if save_hyp else None]
    else:
        hyp_paths = list(hypotheses or [Path("-")])
        systems = ev.load_systems(hyp_paths, ref or [], refs)
        files = [name for name, _ in systems]

    report = ev.evaluate_systems(systems, files, refs, keys, settings, significance, bootstrap_samples, ar_trials,
                                 seed, sentence_level, worst)
    if sentence_level is not None:
        console.info(f"wrote per-sentence scores to {sentence_level}")
    if as_json:
        console.print_json(ev.report_document(report, ref_names, keys, settings, model, source, save_hyp,
                                              sentence_level))
        return
    _print_table(report)
    if worst > 0:
        _print_worst(report)


def _eval_defaults(config: Path | None, model: Path | None):
    """The `eval:` section that supplies defaults for flags not given: --config's, else the
    run's (-m RUN) or the model directory's (so `evaluate -m` scores as training's dev
    evaluation did)."""
    from mt_cli.core.config import CONFIG_FILE, EvalConfig
    from mt_cli.core.config_loading import load_config
    from mt_cli.engines.locate import resolve_model_dir
    from mt_cli.engines.opened import open_model_dir

    if config is not None:
        return load_config(config).eval
    if model is None:
        return EvalConfig()
    directory = resolve_model_dir(model)
    if directory != model and (model / CONFIG_FILE).is_file():
        return load_config(model / CONFIG_FILE).eval  # a run's training config, read as --config is
    return open_model_dir(directory).config.eval  # checked like every model file


def _check_usage(hypotheses: list[Path], ref: list[Path], significance: str | None, worst: int,
                 model: Path | None, source: Path | None, save_hyp: Path | None,
                 set_: list[str] | None, sentence_level: Path | None) -> None:
    """Catch contradictory options before reading (or translating) anything."""
    if model is not None:
        if source is None:
            raise ConfigError("-m/--model needs -s/--source SRC: the source text to translate")
        if hypotheses:
            raise ConfigError("give either HYP files or -m MODEL -s SRC, not both")
    elif source is not None or save_hyp is not None or set_:
        raise ConfigError("-s/--source, --save-hyp and --set only apply with -m/--model MODEL")
    if not ref:
        raise ConfigError("no reference: give at least one -r/--ref FILE")
    stdin_uses = [p for p in [*hypotheses, *ref, source] if p is not None and str(p) == "-"]
    if len(stdin_uses) + (model is None and not hypotheses) > 1:
        raise ConfigError("stdin ('-') can be read only once: give the other inputs as files")
    if significance is not None:
        if significance not in ("bootstrap", "randomization"):
            raise ConfigError(f"--significance must be bootstrap or randomization, got {significance!r}")
        if len(hypotheses) < 2:
            raise ConfigError("--significance needs at least two HYP files (the first is the baseline)")
    if worst < 0:
        raise ConfigError(f"--worst must be 0 or more, got {worst}")
    check_output_path(save_hyp, "--save-hyp", "hyp.txt")
    check_output_path(sentence_level, "--sentence-level", "sentences.jsonl")
    if model is None and not hypotheses and sys.stdin.isatty():
        raise ConfigError("no hypothesis: give HYP files or pipe a hypothesis into stdin")


def _translate(model: Path, source: Path | None, save_hyp: Path | None, overrides: list[str] | None,
               ref_paths: list[Path], refs: list[list[str]], engine: str,
               target_lang: str | None = None) -> list[str]:
    """Translate the source with the model (checked against the references before decoding)."""
    from mt_cli.app import evaluate as ev
    from mt_cli.cli.common import open_chosen_engine
    from mt_cli.core.tokenizer import line_char_limit

    assert source is not None
    flags = {"target_lang": target_lang} if target_lang is not None else None
    translator, choice, _ = open_chosen_engine([model], engine, list(overrides) if overrides else None,
                                               decode_flags=flags)
    bound = line_char_limit(translator.max_source_tokens)  # a source line is never held beyond it
    hyps = ev.translate_source(translator.translate, source, bound, ref_paths[0], refs, save_hyp)
    console.info(choice.describe())
    if save_hyp is not None:
        console.info(f"wrote translations to {save_hyp}")
    return hyps


def _print_table(report: Report) -> None:
    """One row per system; with a test, mean ± 95% CI and p-value (* = p < 0.05) per cell."""
    names, results, comparison = report.names, report.results, report.comparison
    from rich.table import Table
    from rich.text import Text

    first = results[0].scores
    table = Table(show_lines=comparison is not None and len(names) > 1)
    table.add_column("System", overflow="fold")
    table.add_column("Lines", justify="right")
    for score in first.values():
        table.add_column(score.name if score.higher_is_better else f"{score.name} (↓)", justify="right")
    for j, (name, result) in enumerate(zip(names, results)):
        cells = []
        for key, score in result.scores.items():
            lines = [f"{score.score:.1f}"]
            if comparison is not None:
                sig = comparison.systems[j][key]
                if sig.mean is not None and sig.ci is not None:
                    lines.append(f"({sig.mean:.1f} ± {sig.ci:.1f})")
                if sig.p_value is not None:
                    lines.append(f"p = {sig.p_value:.4f}" + ("*" if sig.p_value < 0.05 else ""))
            cells.append("\n".join(lines))
        label = f"{name} (baseline)" if comparison is not None and j == 0 else name
        table.add_row(Text(printable(label)), str(result.n_lines), *cells)
    console.stdout.print(table)
    signatures = comparison.signatures if comparison else {k: s.signature for k, s in first.items()}
    for key, score in first.items():
        console.stdout.print(f"{score.name}: {signatures[key]}", markup=False)
    if comparison is not None:
        test = (f"paired bootstrap resampling, {comparison.bootstrap_samples} samples"
                if comparison.method == "bootstrap" else
                f"approximate randomization, {comparison.ar_trials} trials "
                f"(CI from {comparison.bootstrap_samples} bootstrap samples)")
        console.stdout.print(f"Significance: {test}, seed {comparison.seed}; each system vs the "
                             "baseline; score (mean ± 95% CI); * = p < 0.05", markup=False)


def _print_worst(report: Report) -> None:
    """Plain lines, so long sentences stay greppable and copyable; the text is escaped
    (`printable`): a line holding ESC sequences must not clear or redraw the terminal."""
    names, worst_lines, rank_by = report.names, report.worst, report.rank_by
    for name, items in zip(names, worst_lines):
        noun = "line" if len(items) == 1 else "lines"
        console.stdout.print(f"\nWorst {len(items)} {noun} of {printable(name)} by sentence {rank_by}:",
                             markup=False)
        for item in items:
            scores = "  ".join(f"{key} {value:.1f}" for key, value in item.scores.items())
            console.stdout.print(f"  line {item.index + 1}  {scores}", markup=False)
            console.stdout.print(f"    hyp: {printable(item.hyp)}", markup=False)
            for k, reference in enumerate(item.refs, start=1):
                label = "ref" if len(item.refs) == 1 else f"ref{k}"
                console.stdout.print(f"    {label}: {printable(reference)}", markup=False)
