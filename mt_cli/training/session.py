"""Everything one training run works with, built once: data, model, optimizer, compiled
steps, the checkpointed objects and the restored state; plus saving and exporting them."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mt_cli.core.config import Config, CorpusConfig, DecodeConfig
from mt_cli.core.errors import MtError
from mt_cli.core.files import clean_temporaries
from mt_cli.core.languages import Languages, corpus_languages, corpus_tags, dev_target_lang
from mt_cli.core.pair_filter import against_table
from mt_cli.core.textio import read_lines
from mt_cli.core.tokenizer import PAD_ID, Tokenizers
from mt_cli.core.vocabulary_map import build_vocabulary_map
from mt_cli.engines.ct2_spec import pieces
from mt_cli.engines.model_dir import write_model_dir
from mt_cli.engines.native import Translator
from mt_cli.model import Transformer, build_model
from mt_cli.model.devices import training_precision
from mt_cli.training.checkpoints import (
    list_checkpoints,
    prune_checkpoints,
    restore_latest,
    save_checkpoint,
)
from mt_cli.training.conversion_check import DevCheck
from mt_cli.training.data import (
    XLA_PAD_MULTIPLE,
    Cleaning,
    EncodedCorpus,
    encode_corpus,
    iterate_batches,
    prefetched,
)
from mt_cli.training.evaluation import DevSet, first_lines
from mt_cli.training.export_choice import choose_export, load_choice
from mt_cli.training.init_from import Parent
from mt_cli.training.metrics_log import MetricsLog
from mt_cli.training.run_dir import check_tokenizers, run_tokenizers
from mt_cli.training.runtime_file import runtime_record, write_runtime
from mt_cli.training.schedules import make_schedule
from mt_cli.training.state import TrainState
from mt_cli.training.steps import TrainSteps, make_strategy, skip_graph_rewrites, worker_role

log = logging.getLogger("mt_cli")
Batches = list[list[dict[str, Any]]]  # micro-batches, each one batch per replica


def _all_finite(model: keras.Model) -> bool:
    return all(np.isfinite(w).all() for w in model.get_weights() if w.dtype.kind == "f")


def fed_tokens(batches: Batches) -> float:
    """Non-pad source + target tokens in a step's batches (throughput's unit)."""
    return sum(float(tf.math.count_nonzero(tf.not_equal(b[k], PAD_ID))) for group in batches for b in group
               for k in ("source", "target_out"))


def _build_model(cfg: Config, tokenizers: Tokenizers, strategy: Any,
                 schedule_offset: int = 0) -> tuple[Transformer, Any]:
    """The model and its optimizer (Adam + schedule, loss scaling under float16), built."""
    t = cfg.train
    with strategy.scope():
        model = build_model(cfg.model, tokenizers.source.vocab_size, tokenizers.target.vocab_size,
                            precision=t.precision)
        schedule = make_schedule(t.schedule, t.learning_rate, cfg.model.hidden_dim, t.warmup_steps,
                                 schedule_offset)
        optimizer = keras.optimizers.Adam(
            learning_rate=schedule,
            beta_1=t.adam_beta1, beta_2=t.adam_beta2, epsilon=t.adam_epsilon,
            global_clipnorm=t.clip_norm or None)
        if t.precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    return model, optimizer


def _against(cfg: Config) -> np.ndarray | None:
    """With data.clean: the dev and test sets' line hashes, which no training pair may contain."""
    d = cfg.data
    if d.clean is None:
        return None
    files = [getattr(corpus, side) for corpus in (d.dev, d.test) if corpus is not None for side in ("source", "target")]
    return against_table(files, d.lenient_utf8)


def _cleaning(cfg: Config, corpus: CorpusConfig, against: np.ndarray | None) -> Cleaning | None:
    """data.clean for one corpus, in its languages (`against` is None exactly when it is off)."""
    d = cfg.data
    if d.clean is None or against is None:
        return None
    return Cleaning(d.clean, (corpus.source_lang or d.source_lang, corpus.target_lang or d.target_lang), against)


def _tag_ids(tokenizers: Tokenizers, tags: list[str]) -> tuple[int, ...]:
    return tuple(tokenizers.source.piece_id(tag) for tag in tags)


def _load_dev(cfg: Config, tokenizers: Tokenizers, cache: Path, languages: Languages) -> DevSet | None:
    d = cfg.data
    if not d.dev:
        return None
    limit = cfg.model.max_length  # over-long dev pairs are cut (and counted), never a crash
    tags = _tag_ids(tokenizers, corpus_tags(languages, d.dev, d.target_lang))
    corpus = encode_corpus(d.dev.source, d.dev.target, tokenizers, cache, limit, limit, d.lenient_utf8,
                           truncate=True, source_tags=tags)
    count = cfg.train.eval_max_sentences
    return DevSet(corpus, first_lines(read_lines(d.dev.source, d.lenient_utf8), count),
                  first_lines(read_lines(d.dev.target, d.lenient_utf8), count), cfg.eval)


def _dev_decode(cfg: Config, languages: Languages) -> DecodeConfig:
    """The decode options dev translation uses: the dev set's target language, when tagged."""
    target_lang = dev_target_lang(cfg.data, languages)
    return cfg.decode if target_lang is None else dataclasses.replace(cfg.decode, target_lang=target_lang)


FAULT_NONFINITE_ENV = "MT_CLI_FAULT_NONFINITE_STEPS"


def _fault_steps() -> frozenset[int]:
    """Test hook: $MT_CLI_FAULT_NONFINITE_STEPS="3,4" makes those steps' loss NaN."""
    raw = os.environ.get(FAULT_NONFINITE_ENV, "")
    return frozenset(int(x) for x in raw.split(",") if x.strip().isdigit())


@dataclass
class Session:
    """One run's working objects; `state` is what the loop advances."""

    cfg: Config
    run_dir: Path
    tokenizers: Tokenizers
    model: Transformer
    optimizer: Any
    steps: TrainSteps
    trackable: tf.train.Checkpoint
    step_var: tf.Variable
    state: TrainState
    is_chief: bool
    save_dir: Path
    worker_dir: Path
    metrics: MetricsLog
    dev: DevSet | None
    translator: Translator
    replicas: int
    accumulate: int
    stream: Iterator[Any] | None = None
    saved_step: int = -1  # the step whose checkpoint is on disk already (never saved twice)
    fault_steps: frozenset[int] = frozenset()
    parent: Parent | None = None  # the model directory the run started from (--init-from)
    corpora: list[EncodedCorpus] = dataclasses.field(default_factory=list)  # memory-mapped: cheap to keep

    @classmethod
    def open(cls, cfg: Config, run_dir: Path, parent: Parent | None = None) -> Session:
        """Build everything and restore the newest checkpoint, if any; a run started from a
        parent that has no checkpoint of its own yet loads the parent's weights."""
        against = _against(cfg)
        cleanings = [_cleaning(cfg, c, against) for c in cfg.data.train]
        tokenizers = run_tokenizers(cfg, run_dir, cleanings)
        check_tokenizers(run_dir, tokenizers)  # a refused resume stays a one-line error
        precision = training_precision(cfg.train.precision)
        log.info(precision.describe("precision"))
        runtime = runtime_record(precision)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision.value))
        d, t = cfg.data, cfg.train
        cache = run_dir / "cache"
        languages = corpus_languages(d.train, d.source_lang, d.target_lang)
        corpora = [encode_corpus(c.source, c.target, tokenizers, cache, d.max_source_tokens,
                                 d.max_target_tokens, d.lenient_utf8,
                                 source_tags=_tag_ids(tokenizers, corpus_tags(languages, c, d.target_lang)),
                                 cleaning=cleaning)
                   for c, cleaning in zip(d.train, cleanings)]
        dev = _load_dev(cfg, tokenizers, cache, languages)
        keras.utils.set_random_seed(t.seed)
        if t.deterministic:
            tf.config.experimental.enable_op_determinism()
        skip_graph_rewrites()
        strategy = make_strategy(t.strategy)
        offset = parent.schedule_offset(t.init_reset) if parent is not None else 0
        model, optimizer = _build_model(cfg, tokenizers, strategy, offset)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        rng = {f"seed{i}": v for i, v in enumerate(v for v in model.variables if "seed_generator" in v.path)}
        trackable = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var, rng=rng)
        is_chief, worker_dir = worker_role(strategy, run_dir)
        if is_chief:
            write_runtime(run_dir, runtime)
        state = cls._restore(run_dir / "checkpoints", trackable, is_chief)
        if parent is not None and state.step == 0:
            parent.load_weights(model)
        replicas = strategy.num_replicas_in_sync
        per_step = t.batch_tokens * replicas
        accumulate = max(1, -(-t.effective_batch_tokens // per_step)) if t.effective_batch_tokens else 1
        session = cls(cfg, run_dir, tokenizers, model, optimizer, TrainSteps(model, optimizer, strategy, cfg),
                      trackable, step_var, state, is_chief,
                      run_dir / "checkpoints" if is_chief else worker_dir / "checkpoints", worker_dir,
                      MetricsLog(run_dir if is_chief else worker_dir), dev,
                      Translator(model, tokenizers, _dev_decode(cfg, languages), None, languages), replicas, accumulate)
        if is_chief and state.step == 0:  # the run's record of what each corpus gave (and lost to data.clean)
            for c, corpus in zip(d.train, corpora):
                session.metrics.write("data", 0, {"source": str(c.source), "target": str(c.target),
                                                  **dataclasses.asdict(corpus.stats)})
        session.saved_step = state.step or -1
        session.fault_steps = _fault_steps()
        session.parent = parent
        session.corpora = corpora
        pad_multiple = XLA_PAD_MULTIPLE if t.jit_compile else 1
        session.stream = prefetched(iterate_batches(corpora, [c.weight for c in d.train], t.seed,
                                                    t.batch_tokens, t.shuffle_buffer, state.data_position,
                                                    pad_multiple))
        return session

    @staticmethod
    def _restore(ckpt_dir: Path, trackable: tf.train.Checkpoint, is_chief: bool) -> TrainState:
        if is_chief and clean_temporaries(ckpt_dir):
            log.warning(f"{ckpt_dir}: removed leftovers of an interrupted save")
        restored = restore_latest(ckpt_dir, trackable)
        if restored is None:
            return TrainState()
        state = TrainState.from_dict(restored.state())
        log.info(f"resuming from {restored.path} (step {state.step}, epoch {state.data_position.epoch}, "
                 f"batch {state.data_position.batch})")
        return state

    def next_batches(self) -> Batches:
        """One optimizer step's input: `accumulate` micro-batches of one batch per replica."""
        batches = []
        for _ in range(self.accumulate):
            group = []
            for _ in range(self.replicas):
                self.state.data_position, batch = next(self.stream)
                group.append(batch)
            batches.append(group)
        return batches

    def train_step(self, batches: Batches) -> tuple[float, float, bool]:
        """Run one optimizer step; returns (loss sum, target tokens, finite)."""
        poisoned = self.state.step + 1 in self.fault_steps
        if poisoned:
            self.steps.loss_factor.assign(float("nan"))
        result = self.steps.train(batches)
        if poisoned:
            self.steps.loss_factor.assign(1.0)
        self.state.step += 1
        self.step_var.assign(self.state.step)
        return result

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.learning_rate)

    def evaluate(self) -> dict[str, float]:
        assert self.dev is not None
        t = self.cfg.train
        return self.dev.scores(self.steps.eval_step, self.translator, t.batch_tokens, (t.eval_metric,))

    def save(self) -> None:
        """A checkpoint of the current step (refused if the weights are not finite).

        A step is saved once: a signal on a save step must not rewrite (rename aside) the
        checkpoint just written."""
        if self.saved_step == self.state.step:
            return
        if not _all_finite(self.model):
            raise MtError(f"step {self.state.step}: the weights hold non-finite values; not saving "
                          "(lower train.learning_rate or set train.clip_norm)")
        record = {**self.state.to_dict(), "learning_rate": self.learning_rate}
        save_checkpoint(self.save_dir, self.state.step, self.trackable, record)
        best = self.state.best_step
        self.saved_step = self.state.step
        prune_checkpoints(self.save_dir, self.cfg.train.keep_last, {best} if best is not None else set())

    def export(self) -> Path:
        """Write RUN/export from the chosen weights (chief only; workers clean up)."""
        export_dir = self.run_dir / "export"
        if not self.is_chief:  # workers took part in the collective saves; the chief exports
            shutil.rmtree(self.worker_dir, ignore_errors=True)
            return export_dir
        t, state = self.cfg.train, self.state
        choice = choose_export(list_checkpoints(self.save_dir), state, t.average_last)
        load_choice(self.model, choice)
        info = {"step": state.step, "trained_precision": t.precision,
                "weights_from": choice.manifest_entry(state.step), "dev_scores": state.dev_scores,
                "eval_metric": t.eval_metric, "best_score": state.best_score}
        if self.parent is not None:
            info["init_from"] = self.parent.entry()
        info["languages"] = self.translator.languages.to_manifest()  # the run's, made once in `open`
        check = None if self.dev is None else DevCheck(self.dev.sources, self.dev.references, self.cfg.eval,
                                                       self.translator.decode.target_lang)
        write_model_dir(export_dir, self.model, self.cfg, self.tokenizers, info,
                        None if check is None else check.run, self.vocabulary_map())
        return export_dir

    def vocabulary_map(self) -> str | None:
        """CTranslate2's vocabulary map of the run's training corpora (vmap.txt's text), timed;
        None without a pair to count (a map of nothing would leave only the special pieces)."""
        started = time.perf_counter()
        built = build_vocabulary_map(self.corpora, pieces(self.tokenizers.source.processor),
                                     pieces(self.tokenizers.target.processor))
        text = built.text() if built.pairs else None
        log.debug(f"vocabulary map: {built.pairs} training pairs counted, {len(built.entries)} source pieces, "
                  f"{len(built.always)} always included, {len(text or '') / 2**20:.1f} MiB, "
                  f"{time.perf_counter() - started:.2f} s")
        return text
