"""`mt-cli average`: the mean of several training checkpoints of a run, as a model directory.

Averaging the last few checkpoints usually gains a little BLEU for free (Vaswani et al.
2017 averaged the last 5 or 20); this makes it a step after training rather than a choice
made before it (train.average_last).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from mt_cli.core.config import CONFIG_FILE, Config, ModelConfig
from mt_cli.core.config_loading import load_config
from mt_cli.core.errors import CheckpointError, ConfigError, MtError
from mt_cli.core.files import clean_leftovers
from mt_cli.core.languages import corpus_languages, dev_target_lang
from mt_cli.core.textio import read_lines
from mt_cli.engines.model_dir import write_model_dir
from mt_cli.engines.opened import ModelDir, open_model_dir
from mt_cli.model import build_model
from mt_cli.training.checkpoints import SavedStep, list_checkpoints
from mt_cli.training.conversion_check import DevCheck
from mt_cli.training.export_choice import ExportChoice, load_choice
from mt_cli.training.init_from import read_record
from mt_cli.training.run_dir import check_tokenizers, existing_tokenizers
from mt_cli.training.runtime_file import RUNTIME_FILE

log = logging.getLogger("mt_cli")


def select_checkpoints(saved: list[SavedStep], last: int | None, steps: list[int] | None) -> list[SavedStep]:
    """The checkpoints asked for (`last` K, or exactly `steps`), oldest first."""
    available = ", ".join(str(s.step) for s in saved) or "none"
    if (last is None) == (steps is None):
        raise ConfigError("give either --last K or --steps a,b,c")
    if steps is not None:
        if not steps:
            raise ConfigError("--steps: no step number given; give e.g. --steps 4000,5000")
        by_step = {s.step: s for s in saved}
        missing = [s for s in steps if s not in by_step]
        if missing:
            raise CheckpointError(f"no checkpoint for step(s) {', '.join(map(str, missing))}; "
                                  f"available: {available}")
        return [by_step[s] for s in sorted(set(steps))]
    if last is None or last < 1 or last > len(saved):
        raise CheckpointError(f"--last {last}: the run has {len(saved)} checkpoint(s) ({available})")
    return saved[-last:]


def trained_precision(run_dir: Path, configured: str) -> str:
    """The precision the run trained in: `auto` as its last session resolved it
    (RUN/runtime.json), else the configured value."""
    try:
        return str(json.loads((run_dir / RUNTIME_FILE).read_text())["precision"]["value"])
    except (OSError, ValueError, KeyError, TypeError):
        return configured


def _load_mean(model: object, choice: ExportChoice, config_path: Path) -> None:
    """The checkpoints' mean into `model`; a checkpoint that cannot be read into the model the
    config describes (truncated, or the config edited since) is one error line."""
    try:
        load_choice(model, choice)
    except MtError:
        raise
    except Exception as exc:  # noqa: BLE001 (TensorFlow raises many types for damaged or mismatched files)
        steps = ", ".join(str(s.step) for s in choice.steps)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"checkpoint(s) {steps}: cannot be read into the model {config_path} describes "
                              f"({type(exc).__name__}: {reason}); a checkpoint is damaged or the model "
                              "section was edited since training") from None


def _run_export(config_path: Path) -> ModelDir | None:
    """The run's own export (RUN/export), opened and checked like every model directory; None
    when there is none, or (with a warning) when it is damaged: the checkpoints are what
    counts here."""
    export = config_path.parent / "export"
    if not export.is_dir():
        return None
    try:  # read like every model directory's config: checked (regular, inside, hashed) first
        return open_model_dir(export)
    except MtError as exc:
        log.warning(f"the run's export is not read (model section not compared, no vocabulary map): {exc}")
        return None


def _check_model_unchanged(config_path: Path, model: ModelConfig, export: ModelDir | None) -> None:
    """An edit of the run's model section that keeps every weight's shape (an activation, the
    norm position) would load and average without complaint: compare it with the section the
    run exported (RUN/export/config.yaml) when there is one."""
    if export is None:
        return
    trained = export.config.model
    for fld in dataclasses.fields(ModelConfig):
        now, then = getattr(model, fld.name), getattr(trained, fld.name)
        if now != then:
            raise CheckpointError(f"{config_path}: model.{fld.name} is {now!r} but the run was trained with "
                                  f"{then!r} ({export.path / CONFIG_FILE}); restore it to average these checkpoints")


def _vocabulary_map(export: ModelDir | None) -> str | None:
    """vmap.txt's text from the run's export, hash-checked: built from the run's corpora and
    tokenizers, which the checkpoints share, so it holds for their mean as it is; a damaged one
    is left out with a warning."""
    name = None if export is None else export.vocabulary_map
    if export is None or name is None:
        return None
    try:
        return export.verify([name]).file(name).read_text(encoding="utf-8")
    except MtError as exc:  # a damaged map is left out, not copied; the average is still written
        log.warning(f"the averaged model gets no vocabulary map: {exc}")
        return None


def _dev_check(cfg: Config) -> DevCheck | None:
    """The conversion's dev check on the run's dev set, as training's export runs it (its
    first lines, the dev set's target language where the model is multilingual): without it,
    `compute_type: auto` would keep an averaged model in float32 on every CPU."""
    d = cfg.data
    if d.dev is None:
        return None
    target_lang = dev_target_lang(d, corpus_languages(d.train, d.source_lang, d.target_lang))
    try:  # DevCheck translates the first DEV_CHECK_LINES of them
        sources, references = read_lines(d.dev.source, d.lenient_utf8), read_lines(d.dev.target, d.lenient_utf8)
    except MtError as exc:  # moved or damaged since training: the average is still written
        log.warning(f"the averaged model gets no dev check (compute_type auto keeps float32): {exc}")
        return None
    return DevCheck(sources, references, cfg.eval, target_lang)


def average_checkpoints(run_dir: Path, output: Path, last: int | None = None,
                        steps: list[int] | None = None) -> list[int]:
    """Write the mean of the chosen checkpoints of `run_dir` to `output`; return their steps."""
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: missing; {run_dir} is not an mt-cli run directory")
    clean_leftovers(output)  # an interrupted average's .tmp-/.old- copies beside -o
    if output.exists() and any(output.iterdir()):
        raise CheckpointError(f"{output}: exists and is not empty; choose another -o (nothing is overwritten)")
    cfg = load_config(config_path)
    export = _run_export(config_path)
    _check_model_unchanged(config_path, cfg.model, export)
    chosen = select_checkpoints(list_checkpoints(run_dir / "checkpoints"), last, steps)
    tokenizers = existing_tokenizers(cfg, run_dir)
    if tokenizers is None:
        raise CheckpointError(f"{run_dir}: no SentencePiece model in the run (spm*.model) or config")
    check_tokenizers(run_dir, tokenizers, action="average")  # the vocabulary the checkpoints were trained on
    model = build_model(cfg.model, tokenizers.source.vocab_size, tokenizers.target.vocab_size)
    choice = ExportChoice("averaged", tuple(chosen))
    _load_mean(model, choice, config_path)
    info = {"step": chosen[-1].step, "trained_precision": trained_precision(run_dir, cfg.train.precision),
            "weights_from": choice.manifest_entry(chosen[-1].step), "dev_scores": {},
            "eval_metric": cfg.train.eval_metric, "best_score": None}
    parent = read_record(run_dir)
    if parent is not None:
        info["init_from"] = parent.entry()
    check = _dev_check(cfg)
    write_model_dir(output, model, cfg, tokenizers, info, None if check is None else check.run,
                    _vocabulary_map(export))
    return [s.step for s in chosen]
