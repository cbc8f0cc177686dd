"""The training loop: one config in, a run directory with checkpoints and an export out.

Rerunning the same command resumes exactly (step, optimizer slots, schedule, data position,
dropout RNG, best score, early-stopping counter); SIGTERM/SIGINT save at the step boundary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mt_cli.config import Config
from mt_cli.errors import ConfigError, MtError
from mt_cli.run_dir import prepare_run_dir, run_tokenizers
from mt_cli.textio import read_lines
from mt_cli.train_steps import TrainSteps, make_strategy, worker_role

log = logging.getLogger("mt_cli")
POLICIES = {"float32": None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class Interrupted(Exception):
    """Training stopped by a signal after saving; the CLI exits 128 + signum."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(f"stopped by signal {signum} at step {step}; rerun the same command to resume")
        self.signum = signum
        self.step = step


class Reporter(Protocol):
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


# ---------------------------------------------------------------- the loop

class _SignalFlag:
    """Remembers SIGTERM/SIGINT so the loop can stop at a step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _MetricsLog:
    """metrics.jsonl plus TensorBoard scalars."""

    def __init__(self, run_dir: Path) -> None:
        import tensorflow as tf

        self.path = run_dir / "metrics.jsonl"
        self.writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        import tensorflow as tf

        record = {"event": kind, "step": step, "time": round(time.time(), 3), **values}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        with self.writer.as_default():
            for name, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(f"{kind}/{name}", value, step=step)
        self.writer.flush()


def _setup_tf(cfg: Config) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.train.seed)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()


def _all_finite(model: Any) -> bool:
    import numpy as np

    return all(np.isfinite(w).all() for w in model.get_weights() if w.dtype.kind == "f")


@dataclass
class _DevSet:
    """The dev set, read and encoded once: ids for the loss, raw lines for BLEU/chrF."""

    corpus: Any
    sources: list[str]
    references: list[str]

    @classmethod
    def load(cls, cfg: Config, corpus: Any) -> "_DevSet":
        sources = read_lines(cfg.data.dev.source, cfg.data.lenient_utf8)
        references = read_lines(cfg.data.dev.target, cfg.data.lenient_utf8)
        limit = cfg.train.eval_max_sentences or len(sources)
        return cls(corpus, sources[:limit], references[:limit])

    def scores(self, cfg: Config, steps: TrainSteps, translator: Any) -> dict[str, float]:
        """Dev loss per token, and BLEU/chrF of the dev translation."""
        import sacrebleu

        from mt_cli.data import sequential_batches

        total = tokens = 0.0
        for batch in sequential_batches(self.corpus, cfg.train.batch_tokens):
            loss, count = steps.eval_step(batch)
            total, tokens = total + float(loss), tokens + float(count)
        hypotheses = translator.translate(self.sources)
        return {"loss": total / max(tokens, 1.0),
                "bleu": sacrebleu.corpus_bleu(hypotheses, [self.references]).score,
                "chrf": sacrebleu.corpus_chrf(hypotheses, [self.references]).score}


def _improved(metric: str, score: float, best: float | None) -> bool:
    if best is None:
        return True
    return score < best if metric == "loss" else score > best


def _average_into(model: Any, checkpoints: list[Any]) -> list[int]:
    """Load the mean of the model weights of several checkpoints into `model`."""
    import tensorflow as tf

    total = None
    reader = tf.train.Checkpoint(model=model)
    for item in checkpoints:
        reader.read(item.prefix).expect_partial()
        weights = model.get_weights()
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    model.set_weights([t / len(checkpoints) for t in total])
    return [c.step for c in checkpoints]


def train(cfg: Config, run_dir: Path, overwrite: bool = False,
          reporter: Reporter | None = None) -> TrainResult:
    """Train (or resume) the model described by `cfg` in `run_dir`."""
    if not cfg.data.train:
        raise ConfigError(f"data.train: no training corpus given ({cfg.origin})")
    reporter = reporter or _NullReporter()
    run_dir = Path(run_dir)
    finished = prepare_run_dir(cfg, run_dir, overwrite)
    export_dir = run_dir / "export"
    if finished:
        done = json.loads((run_dir / "finished.json").read_text())
        if done.get("max_steps", 0) >= cfg.train.max_steps or done.get("reason") == "early_stopping":
            log.info(f"{run_dir}: already trained ({done.get('reason')} at step {done.get('step')}); "
                     "nothing to do (--overwrite retrains, a larger train.max_steps continues)")
            return TrainResult(run_dir, int(done.get("step", 0)), export_dir, "already_finished",
                               done.get("best_score"), done.get("dev_scores", {}))
        (run_dir / "finished.json").unlink()

    tokenizers = run_tokenizers(cfg, run_dir)
    from mt_cli.data import (
        XLA_PAD_MULTIPLE,
        DataPosition,
        encode_corpus,
        iterate_batches,
        prefetched,
    )

    d = cfg.data
    cache = run_dir / "cache"
    corpora = [encode_corpus(c.source, c.target, tokenizers, cache, d.max_source_tokens,
                             d.max_target_tokens, d.lenient_utf8) for c in d.train]
    dev_set = (_DevSet.load(cfg, encode_corpus(d.dev.source, d.dev.target, tokenizers, cache,
                                                1 << 30, 1 << 30, d.lenient_utf8)) if d.dev else None)

    import keras
    import tensorflow as tf

    from mt_cli.checkpoint import (
        clean_temporaries,
        list_checkpoints,
        prune_checkpoints,
        restore_latest,
        save_checkpoint,
        write_export,
    )
    from mt_cli.model import build_model
    from mt_cli.schedules import make_schedule

    _setup_tf(cfg)
    t = cfg.train
    strategy = make_strategy(t.strategy)
    with strategy.scope():
        model = build_model(cfg.model, tokenizers.source.vocab_size, tokenizers.target.vocab_size,
                            dtype_policy=POLICIES[t.precision])
        optimizer = keras.optimizers.Adam(
            learning_rate=make_schedule(t.schedule, t.learning_rate, cfg.model.hidden_dim, t.warmup_steps),
            beta_1=t.adam_beta1, beta_2=t.adam_beta2, epsilon=t.adam_epsilon,
            global_clipnorm=t.clip_norm or None)
        if t.precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    rng = {f"seed{i}": v for i, v in enumerate(v for v in model.variables if "seed_generator" in v.path)}
    trackable = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var, rng=rng)

    is_chief, worker_dir = worker_role(strategy, run_dir)
    ckpt_dir = run_dir / "checkpoints"
    save_dir = ckpt_dir if is_chief else worker_dir / "checkpoints"
    if is_chief and clean_temporaries(ckpt_dir):
        log.warning(f"{ckpt_dir}: removed leftovers of an interrupted save")
    restored = restore_latest(ckpt_dir, trackable)
    state: dict[str, Any] = restored.state() if restored else {}
    step = int(step_var.numpy())
    position = DataPosition(**state.get("data_position", {}))
    best: float | None = state.get("best_score")
    best_step: int | None = state.get("best_step")
    bad_evals = int(state.get("bad_evals", 0))
    dev_scores: dict[str, float] = state.get("dev_scores", {})
    if restored:
        log.info(f"resuming from {restored.path} (step {step}, epoch {position.epoch}, batch {position.batch})")

    steps = TrainSteps(model, optimizer, strategy, cfg)
    from mt_cli.translate import Translator

    translator = Translator(model, tokenizers, cfg.decode, cfg.model.max_length)
    metrics = _MetricsLog(run_dir if is_chief else worker_dir)
    replicas = strategy.num_replicas_in_sync
    accumulate = max(1, -(-t.effective_batch_tokens // (t.batch_tokens * replicas))) if t.effective_batch_tokens else 1
    pad_multiple = XLA_PAD_MULTIPLE if t.jit_compile else 1
    stream = prefetched(iterate_batches(corpora, [c.weight for c in d.train], t.seed,
                                        t.batch_tokens, t.shuffle_buffer, position, pad_multiple))

    def snapshot() -> dict[str, Any]:
        return {"step": step, "data_position": dataclasses.asdict(position), "best_score": best,
                "best_step": best_step, "bad_evals": bad_evals, "dev_scores": dev_scores,
                "learning_rate": float(optimizer.learning_rate)}

    def save() -> None:
        if not _all_finite(model):
            raise MtError(f"step {step}: the weights hold non-finite values; not saving "
                          "(lower train.learning_rate or set train.clip_norm)")
        save_checkpoint(save_dir, step, trackable, snapshot())
        prune_checkpoints(save_dir, t.keep_last, {best_step} if best_step is not None else set())

    stop_reason = "max_steps"
    started = time.time()
    window_tokens, window_loss, window_loss_tokens, window_start = 0.0, 0.0, 0.0, time.time()
    nonfinite_in_row = nonfinite_total = 0
    reporter.start(t.max_steps, step)
    try:
        with _SignalFlag() as flag:
            while step < t.max_steps:
                micro = []
                for _ in range(accumulate):
                    group = []
                    for _ in range(replicas):
                        position, batch = next(stream)
                        group.append(batch)
                    micro.append(group)
                loss_sum, tokens, finite = steps.train(micro)
                step += 1
                step_var.assign(step)
                window_tokens += sum(float(tf.math.count_nonzero(b[k])) for g in micro for b in g
                                     for k in ("source", "target_out"))
                if finite:
                    nonfinite_in_row = 0
                    window_loss += loss_sum
                    window_loss_tokens += tokens
                else:
                    nonfinite_in_row += 1
                    nonfinite_total += 1
                    log.warning(f"step {step}: non-finite loss or gradients, update skipped "
                                f"({nonfinite_in_row} in a row)")
                    if nonfinite_in_row >= t.max_nonfinite_steps:
                        raise MtError(
                            f"step {step}: {nonfinite_in_row} non-finite steps in a row "
                            f"(train.max_nonfinite_steps={t.max_nonfinite_steps}); training diverged: "
                            "lower train.learning_rate, set train.clip_norm, or use bfloat16 instead of float16")
                if step % t.log_every == 0 or step == t.max_steps:
                    elapsed = time.time() - window_start
                    values = {"loss": window_loss / max(window_loss_tokens, 1.0),
                              "learning_rate": float(optimizer.learning_rate),
                              "tokens_per_s": window_tokens / max(elapsed, 1e-9),
                              "tokens": int(window_tokens),
                              "nonfinite_steps": nonfinite_total,
                              "epoch": position.epoch}
                    metrics.write("train", step, values)
                    reporter.update(step, values)
                    window_tokens, window_loss, window_loss_tokens, window_start = 0.0, 0.0, 0.0, time.time()
                else:
                    reporter.update(step, {})
                out_of_time = t.max_minutes and time.time() - started >= t.max_minutes * 60
                if dev_set is not None and (step % t.eval_every == 0 or step == t.max_steps or out_of_time):
                    dev_scores = dev_set.scores(cfg, steps, translator)
                    score = dev_scores[t.eval_metric]
                    if _improved(t.eval_metric, score, best):
                        best, best_step, bad_evals = score, step, 0
                    else:
                        bad_evals += 1
                    metrics.write("dev", step, {**dev_scores, "best": best, "bad_evals": bad_evals})
                    log.info(f"step {step}: dev loss {dev_scores['loss']:.3f} BLEU {dev_scores['bleu']:.2f} "
                             f"chrF {dev_scores['chrf']:.2f} (best {t.eval_metric} {best:.2f} at step {best_step})")
                    save()
                    if t.early_stopping_patience and bad_evals >= t.early_stopping_patience:
                        stop_reason = "early_stopping"
                        break
                elif step % t.save_every == 0:
                    save()
                if flag.signum is not None:
                    save()
                    raise Interrupted(flag.signum, step)
                if out_of_time:
                    stop_reason = "max_minutes"
                    break
    finally:
        reporter.close()

    existing = list_checkpoints(save_dir)
    if not existing or existing[-1].step != step:
        save()
        existing = list_checkpoints(save_dir)
    if not is_chief:  # workers took part in the collective saves; the chief exports
        shutil.rmtree(worker_dir, ignore_errors=True)
        return TrainResult(run_dir, step, export_dir, stop_reason, best, dev_scores)
    if t.average_last > 1:
        chosen = existing[-t.average_last:]
        source = {"averaged_steps": _average_into(model, chosen)}
    elif best_step is not None and any(c.step == best_step for c in existing):
        tf.train.Checkpoint(model=model).read(existing[[c.step for c in existing].index(best_step)].prefix).expect_partial()
        source = {"best_step": best_step}
    else:
        source = {"last_step": step}
    info = {"step": step, "trained_precision": t.precision, "weights_from": source,
            "dev_scores": dev_scores, "eval_metric": t.eval_metric, "best_score": best}
    write_export(export_dir, model, cfg, tokenizers, info)
    done = {"step": step, "reason": stop_reason, "max_steps": t.max_steps if stop_reason == "max_steps" else step,
            "best_score": best, "dev_scores": dev_scores}
    (run_dir / "finished.json").write_text(json.dumps(done, indent=1))
    metrics.write("end", step, {"reason": stop_reason, **{f"dev_{k}": v for k, v in dev_scores.items()}})
    return TrainResult(run_dir, step, export_dir, stop_reason, best, dev_scores)
