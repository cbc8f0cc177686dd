"""Compiled train and eval steps: label-smoothed loss, gradient accumulation, non-finite
guards and tf.distribute strategies (one device, mirrored, multi-worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from mt_cli.core.config import Config
from mt_cli.training.loss import token_loss


def skip_graph_rewrites() -> None:
    """Turn TensorFlow's graph optimizer (grappler) off for this process.

    Why: it spends ~2 s rewriting the train step before step 1 and buys nothing here: the
    layers already fuse what it would (QKV projections, bias adds), and side-by-side runs
    measured the same steady step time and decode speed without it. Process-wide on
    purpose: a function's graph is optimized with the settings of its first call, and a
    later change would make TensorFlow rewrite it again.
    """
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def all_finite(loss_sum: tf.Tensor, grads: list[tf.Tensor]) -> tf.Tensor:
    """Whether the loss and every gradient entry are finite, from one sum per gradient.

    A NaN or an infinity anywhere makes its sum and the total non-finite: one pass over the
    gradients, where is_finite + reduce_all made two and a boolean table per gradient (half
    the time, measured). Only a total beyond float32's range (~3e38) from finite entries would
    read as non-finite, and such a step would be skipped rightly.
    """
    return tf.math.is_finite(tf.add_n([loss_sum] + [tf.reduce_sum(g) for g in grads]))


def make_strategy(name: str):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker_role(strategy: Any, run_dir: Path) -> tuple[bool, Path]:
    """(is this process the chief?, a private directory for a non-chief worker's saves)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True, run_dir
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0)
    return chief, run_dir / f".worker-{resolver.task_type}-{resolver.task_id}"


def apply_if_finite(strategy: Any, optimizer: Any, variables: list, grads: list, finite: Any) -> None:
    """Apply `grads` only when `finite` (the same on every replica): weights, optimizer
    slots and its iteration count stay untouched otherwise, on every strategy.

    tf.distribute forbids a cond around a merge_call in replica context, so where the
    optimizer needs one (mirrored), the cond runs in cross-replica context and the update
    goes back to each replica, as Keras's LossScaleOptimizer does.
    """
    def skip() -> Any:
        return tf.constant(False)

    def update() -> Any:
        optimizer.apply(grads, variables)
        return tf.constant(True)

    ctx = tf.distribute.get_replica_context()
    if ctx is None or strategy.num_replicas_in_sync == 1 or \
            tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(finite, update, skip)
        return

    def cross_replica(distribution: Any, finite_per_replica: Any, grads_per_replica: Any) -> None:
        first = distribution.experimental_local_results(finite_per_replica)[0]

        def update_replicas() -> Any:
            distribution.extended.call_for_each_replica(
                lambda g: optimizer.apply(g, variables), args=(grads_per_replica,))
            return tf.constant(True)

        tf.cond(first, update_replicas, skip)

    ctx.merge_call(cross_replica, args=(finite, grads))


class TrainSteps:
    """Compiled train / eval steps for one model, optimizer and strategy."""

    def __init__(self, model: Any, optimizer: Any, strategy: Any, cfg: Config) -> None:
        self.model, self.optimizer, self.strategy = model, optimizer, strategy
        self.smoothing = cfg.train.label_smoothing
        self.loss_scaled = cfg.train.precision == "float16"
        variables = model.trainable_variables
        spec = {k: tf.TensorSpec([None, None], tf.int32) for k in ("source", "target_in", "target_out")}
        with strategy.scope():
            self.accum = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
            self.accum_tokens = tf.Variable(0.0, trainable=False)
            self.accum_loss = tf.Variable(0.0, trainable=False)
            # 1.0, or NaN to make a step non-finite on purpose (tests; see Session.fault_steps)
            self.loss_factor = tf.Variable(1.0, trainable=False)
        jit = cfg.train.jit_compile

        def grads_of(batch):
            with tf.GradientTape() as tape:
                loss_sum, tokens = token_loss(model, batch, self.smoothing, True, static_shapes=bool(jit))
                loss_sum = loss_sum * self.loss_factor
                objective = optimizer.scale_loss(loss_sum) if self.loss_scaled else loss_sum
            return tape.gradient(objective, variables), loss_sum, tokens

        def apply(grads, loss_sum, tokens):
            ctx = tf.distribute.get_replica_context()
            total = ctx.all_reduce("sum", tokens) if ctx else tokens
            grads = [g / total for g in grads]
            finite = all_finite(loss_sum, grads)
            if ctx is not None and strategy.num_replicas_in_sync > 1:
                finite = ctx.all_reduce("sum", 1.0 - tf.cast(finite, tf.float32)) < 0.5
            if self.loss_scaled:  # LossScaleOptimizer skips non-finite steps itself
                optimizer.apply(grads, variables)
            else:
                apply_if_finite(strategy, optimizer, variables, grads, finite)
            return loss_sum, tokens, finite

        def replica_step(batch):
            return apply(*grads_of(batch))

        def replica_accumulate(batch):
            grads, loss_sum, tokens = grads_of(batch)
            for a, g in zip(self.accum, grads):
                a.assign_add(g)
            self.accum_tokens.assign_add(tokens)
            self.accum_loss.assign_add(loss_sum)
            return loss_sum, tokens

        def replica_apply_accumulated():
            out = apply([a.read_value() for a in self.accum], self.accum_loss.read_value(),
                        self.accum_tokens.read_value())
            for a in self.accum:
                a.assign(tf.zeros_like(a))
            self.accum_tokens.assign(0.0)
            self.accum_loss.assign(0.0)
            return out

        if strategy.num_replicas_in_sync == 1:
            # autograph off: the step's Python control flow is on Python values only, and
            # converting the model's code costs ~1.5 s of tracing at every start
            compiled = dict(input_signature=[spec], jit_compile=jit, reduce_retracing=True, autograph=False)
            self._step = tf.function(replica_step, **compiled)
            self._accumulate = tf.function(replica_accumulate, **compiled)
            self._apply = tf.function(replica_apply_accumulated, jit_compile=jit)
        else:  # strategy.run inside tf.function, as tf.distribute recommends
            self._step = tf.function(lambda b: strategy.run(replica_step, args=(b,)), reduce_retracing=True)
            self._accumulate = tf.function(lambda b: strategy.run(replica_accumulate, args=(b,)),
                                           reduce_retracing=True)
            self._apply = tf.function(lambda: strategy.run(replica_apply_accumulated))

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def eval_step(batch):
            return token_loss(model, batch, 0.0, False)

        self.eval_step = eval_step

    def _distribute(self, batches: list[dict]):
        if self.strategy.num_replicas_in_sync == 1:
            return batches[0]
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: {k: tf.identity(v) for k, v in batches[ctx.replica_id_in_sync_group].items()})

    def _reduce(self, values):
        if self.strategy.num_replicas_in_sync == 1:
            return values
        loss, tokens, *rest = values
        out = [self.strategy.reduce("sum", loss, axis=None), self.strategy.reduce("sum", tokens, axis=None)]
        if rest:
            out.append(tf.reduce_all(self.strategy.experimental_local_results(rest[0])))
        return out

    def train(self, micro_batches: list[list[dict]]) -> tuple[float, float, bool]:
        """One optimizer step over micro-batches (each a list with one batch per replica)."""
        if len(micro_batches) == 1:
            loss, tokens, finite = self._reduce(self._step(self._distribute(micro_batches[0])))
            return float(loss), float(tokens), bool(finite)
        for group in micro_batches:
            self._accumulate(self._distribute(group))
        loss, tokens, finite = self._reduce(self._apply())
        return float(loss), float(tokens), bool(finite)


