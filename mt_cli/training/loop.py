"""The training loop: one config in, a run directory with checkpoints and an export out.

Rerunning the same command resumes exactly (step, optimizer slots, schedule, data position,
dropout RNG, best score, early-stopping and non-finite counters); SIGTERM/SIGINT save at the
step boundary. The loop itself only sequences the named parts it is built from.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mt_cli.core.config import Config
from mt_cli.core.config_checks import check_for_training
from mt_cli.core.errors import ConfigError
from mt_cli.training.evaluation import EarlyStopping, evaluation_due
from mt_cli.training.init_from import Parent
from mt_cli.training.init_from import plan as init_plan
from mt_cli.training.nonfinite import NonFinitePolicy
from mt_cli.training.run_dir import (
    FINISHED_FILE,
    atomic_write_text,
    prepare_run_dir,
    write_run_config,
)
from mt_cli.training.run_lock import locks_run_dir, run_lock
from mt_cli.training.session import Session, fed_tokens
from mt_cli.training.signals import Interrupted, SignalFlag
from mt_cli.training.throughput import ThroughputWindow

log = logging.getLogger("mt_cli")
__all__ = ["Interrupted", "Reporter", "TrainResult", "train"]


class Reporter(Protocol):
    """Where progress goes (the CLI's progress bar or log lines)."""

    def start(self, total_steps: int, first_step: int) -> None: ...
    def update(self, step: int, metrics: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class _NullReporter:
    def start(self, total_steps: int, first_step: int) -> None:
        pass

    def update(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    export_dir: Path
    stop_reason: str
    best_score: float | None = None
    dev_scores: dict[str, float] = field(default_factory=dict)


def train(cfg: Config, run_dir: Path, overwrite: bool = False,
          reporter: Reporter | None = None, init_from: Path | None = None) -> TrainResult:
    """Train (or resume) the model described by `cfg` in `run_dir`; `init_from` starts a new
    run from a model directory's weights and tokenizer."""
    if not cfg.data.train:
        raise ConfigError(f"data.train: no training corpus given ({cfg.origin})")
    check_for_training(cfg)
    run_dir = Path(run_dir)
    cfg, parent = init_plan(cfg, run_dir, init_from, overwrite)  # only reads: a refusal writes nothing
    with run_lock(run_dir) if locks_run_dir(cfg.train.strategy) else nullcontext():
        return _train_locked(cfg, run_dir, overwrite, reporter or _NullReporter(), parent)


def _train_locked(cfg: Config, run_dir: Path, overwrite: bool, reporter: Reporter,
                  parent: Parent | None) -> TrainResult:
    """`train` once this process holds the run directory (RUN/.lock)."""
    t = cfg.train
    done = _already_finished(cfg, run_dir, overwrite)
    if done is not None:
        return done
    if parent is not None:
        parent.install(run_dir)
    session = Session.open(cfg, run_dir, parent)
    state, window = session.state, ThroughputWindow()
    nonfinite = NonFinitePolicy(t.max_nonfinite_steps)
    early = EarlyStopping(t.eval_metric, t.early_stopping_patience)
    stop_reason, started = "max_steps", time.time()
    reporter.start(t.max_steps, state.step)
    try:
        with SignalFlag() as signals:
            while state.step < t.max_steps:
                batches = session.next_batches()
                loss_sum, tokens, finite = session.train_step(batches)
                window.add(fed_tokens(batches), loss_sum, tokens, finite)
                nonfinite.observe(state, finite)
                _log_progress(session, window, reporter)
                out_of_time = bool(t.max_minutes) and time.time() - started >= t.max_minutes * 60
                if session.dev is not None and evaluation_due(state.step, t.eval_every, t.max_steps, out_of_time):
                    early.record(state, session.evaluate())
                    _log_dev(session)
                    session.save()
                    if early.should_stop(state):
                        stop_reason = "early_stopping"
                        break
                elif state.step % t.save_every == 0:
                    session.save()
                if signals.signum is not None:
                    session.save()
                    raise Interrupted(signals.signum, state.step)
                if out_of_time:
                    stop_reason = "max_minutes"
                    break
    finally:
        reporter.close()
    session.save()
    export_dir = session.export()
    if session.is_chief:
        _write_finished(session, stop_reason)
    return TrainResult(run_dir, state.step, export_dir, stop_reason, state.best_score, state.dev_scores)


def _log_progress(session: Session, window: ThroughputWindow, reporter: Reporter) -> None:
    """Every train.log_every steps (and at the last): metrics.jsonl, TensorBoard, reporter."""
    state, t = session.state, session.cfg.train
    if state.step % t.log_every and state.step != t.max_steps:
        reporter.update(state.step, {})
        return
    values = window.report()
    values = {"loss": values["loss"], "learning_rate": session.learning_rate,
              "tokens_per_s": values["tokens_per_s"], "tokens": values["tokens"],
              "nonfinite_steps": state.nonfinite_total,
              "nonfinite_in_row": state.nonfinite_in_row, "epoch": state.data_position.epoch}
    session.metrics.write("train", state.step, values)
    reporter.update(state.step, values)


def _log_dev(session: Session) -> None:
    state, metric = session.state, session.cfg.train.eval_metric
    scores = state.dev_scores
    session.metrics.write("dev", state.step, {**scores, "best": state.best_score, "best_step": state.best_step,
                                              "bad_evals": state.bad_evals})
    shown = " ".join(f"{k} {v:.3f}" if k == "loss" else f"{k} {v:.2f}" for k, v in scores.items())
    log.info(f"step {state.step}: dev {shown} (best {metric} {state.best_score:.2f} at step {state.best_step})")


def _already_finished(cfg: Config, run_dir: Path, overwrite: bool) -> TrainResult | None:
    """A finished run is not retrained (nor its config.yaml rewritten) unless asked
    (--overwrite) or given more steps."""
    done = prepare_run_dir(cfg, run_dir, overwrite)
    if done is None:
        return None
    if done.get("max_steps", 0) >= cfg.train.max_steps or done.get("reason") == "early_stopping":
        log.info(f"{run_dir}: already trained ({done.get('reason')} at step {done.get('step')}); "
                 "nothing to do (--overwrite retrains, a larger train.max_steps continues)")
        return TrainResult(run_dir, int(done.get("step", 0)), run_dir / "export", "already_finished",
                           done.get("best_score"), done.get("dev_scores", {}))
    write_run_config(cfg, run_dir)
    (run_dir / FINISHED_FILE).unlink()
    return None


def _write_finished(session: Session, stop_reason: str) -> None:
    state, t = session.state, session.cfg.train
    done = {"step": state.step, "reason": stop_reason,
            "max_steps": t.max_steps if stop_reason == "max_steps" else state.step,
            "best_score": state.best_score, "dev_scores": state.dev_scores}
    atomic_write_text(session.run_dir / FINISHED_FILE, json.dumps(done, indent=1))
    session.metrics.write("end", state.step, {"reason": stop_reason,
                                              **{f"dev_{k}": v for k, v in state.dev_scores.items()}})
