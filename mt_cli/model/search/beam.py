"""Greedy, beam and sampling search over ``Transformer.encode``/``decode_step``.

The whole decoding loop of one batch runs inside one compiled ``tf.function``
(one per model and graph key, with ``None`` batch/length dims so new shapes do
not retrace).  Which options shape the graph and which travel as tensors is
read from ``DecodeConfig``'s field roles, so a new option is one field plus its
use here.  Only the final n-best tensors come back to Python.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from mt_cli.core.config import DecodeConfig, decode_fields
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.tokenizer import BOS_ID, EOS_ID, PAD_ID
from mt_cli.model.ensemble import Ensemble
from mt_cli.model.layers import NEG_INF
from mt_cli.model.transformer import Transformer

_VALID = NEG_INF / 2  # scores below this mark impossible hypotheses
# Options passed to the compiled search as one float vector, in field order.
TENSOR_OPTIONS = tuple(f.name for f in decode_fields("tensor", "switch"))
SearchModel = Transformer | Ensemble  # what the search decodes: one model or several as one
ACTIVE_BUCKET = 8  # beam search keeps a multiple of this many sentences in its cache


def graph_key(options: DecodeConfig) -> tuple:
    """What shapes the compiled graph: `graph` values, and whether each `switch` is on."""
    return tuple(
        (f.name, getattr(options, f.name) if f.metadata["role"] == "graph"
         else getattr(options, f.name) != f.default)
        for f in decode_fields("graph", "switch"))


def search_mode(options: DecodeConfig) -> str:
    """sample, greedy or beam."""
    if options.sampling:
        return "sample"
    return "greedy" if options.beam_size == 1 else "beam"


@dataclass(frozen=True)
class SearchResult:
    """Per input sentence, its n-best hypotheses (ids only), best first."""

    hypotheses: list[list[Hypothesis]]

    def best(self) -> list[list[int]]:
        return [nbest[0].ids if nbest else [] for nbest in self.hypotheses]


# -- shared graph helpers -----------------------------------------------------
def _length_penalty(length: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """GNMT ((5 + len) / 6) ** alpha."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def _write_column(buffer: tf.Tensor, column: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """buffer[..., column] = values, via a broadcast select (shape-stable)."""
    hit = tf.equal(tf.range(tf.shape(buffer)[-1]), column)
    return tf.where(hit, values[..., tf.newaxis], buffer)


def ban_bias(vocab_size: int) -> tf.Tensor:
    """Logit bias [V] that keeps pad and bos from ever being generated."""
    bias = np.zeros([vocab_size], np.float32)
    bias[[PAD_ID, BOS_ID]] = NEG_INF
    return tf.constant(bias)


def top_k_wide(x: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Exact row-wise top-k for wide rows [N, V] (values, indices).

    tf.math.top_k costs ~2 ms on [128, 8000] on our CPUs, more than the output
    matmul.  The k best entries lie in the k chunks with the largest maxima,
    so one cheap max-reduction plus two small top_k calls give the same result.
    """
    if x.shape[-1] is None:  # a shortlist: narrow and of varying width
        return tf.math.top_k(x, k=k)
    vocab = int(x.shape[-1])
    size = max(1, round(math.sqrt(vocab / k)))
    chunks = -(-vocab // size)
    if chunks < 4 * k:
        return tf.math.top_k(x, k=k)
    if chunks * size != vocab:
        x = tf.pad(x, [[0, 0], [0, chunks * size - vocab]], constant_values=x.dtype.min)
    n = tf.shape(x)[0]
    x3 = tf.reshape(x, [n, chunks, size])
    _, best_chunks = tf.math.top_k(tf.reduce_max(x3, axis=-1), k=k)
    candidates = tf.reshape(tf.gather(x3, best_chunks, batch_dims=1), [n, k * size])
    values, pos = tf.math.top_k(candidates, k=k)
    return values, tf.gather(best_chunks, pos // size, batch_dims=1) * size + pos % size


def _log_normalizer(logits: tf.Tensor, probs: tf.Tensor, best: tf.Tensor) -> tf.Tensor:
    """log-sum-exp per row [N] from softmax output, anchored at the row's best token.

    oneDNN softmax is ~2x faster than log_softmax here; p[best] >= 1/V so its
    log is exact, and logit - lse stays exact even where p underflows.
    """
    return tf.gather(logits, best, batch_dims=1) - tf.math.log(tf.gather(probs, best, batch_dims=1))


@dataclass(frozen=True)
class _Setup:
    """Per-batch tensors every search mode needs."""

    batch: tf.Tensor
    cache: dict[str, Any]
    source_mask: tf.Tensor
    max_len: tf.Tensor  # [B] max tokens before eos
    prefix: tf.Tensor  # [B, P>=1]
    prefix_len: tf.Tensor  # [B]
    steps: tf.Tensor  # scalar: loop bound (max_len + 1 for eos)


def _setup(
    model: SearchModel, source: tf.Tensor, prefix: tf.Tensor, a: tf.Tensor, b: tf.Tensor, rows: int,
    shortlist: tf.Tensor | None = None,
) -> _Setup:
    """Encode, derive per-sentence limits, and build a cache for ``rows`` hypotheses per sentence.

    With a ``shortlist`` the search runs in shortlist positions (see ``init_cache``): the
    prefixes are mapped into them here and the outputs back by ``_to_vocabulary``.
    """
    memory, source_mask = model.encode(source)
    src_len = tf.reduce_sum(tf.cast(source_mask, tf.float32), axis=1)
    if shortlist is not None:  # prefix ids are in the shortlist (the caller puts them there)
        prefix = tf.reshape(tf.searchsorted(shortlist, tf.reshape(prefix, [-1]), out_type=tf.int32),
                            tf.shape(prefix))
    prefix = tf.pad(prefix, [[0, 0], [0, 1]])  # never empty, gathers stay in range
    prefix_len = tf.reduce_sum(tf.cast(tf.not_equal(prefix, PAD_ID), tf.int32), axis=1)
    max_len = tf.maximum(tf.cast(tf.floor(a * src_len + b), tf.int32), prefix_len)
    max_len = tf.clip_by_value(max_len, 0, model.max_length - 1)
    return _Setup(
        batch=tf.shape(source)[0],
        cache=model.init_cache(memory, source_mask, beam_size=rows, shortlist=shortlist),
        source_mask=source_mask,
        max_len=max_len,
        prefix=prefix,
        prefix_len=prefix_len,
        steps=tf.reduce_max(max_len) + 1,
    )


def _to_vocabulary(out: dict[str, tf.Tensor], shortlist: tf.Tensor) -> dict[str, tf.Tensor]:
    """A search's outputs with shortlist positions turned back into vocabulary ids (padding,
    position 0, stays id 0)."""
    return {**out, "tokens": tf.gather(shortlist, out["tokens"])}


def _forced(setup: _Setup, step: tf.Tensor, rows: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(restricted [B*rows], token [B*rows]): prefix token while forcing, eos at max length."""
    prefix_tok = tf.gather(setup.prefix, tf.minimum(step, tf.shape(setup.prefix)[1] - 1), axis=1)
    in_prefix = step < setup.prefix_len
    restricted = tf.logical_or(in_prefix, step >= setup.max_len)
    token = tf.where(in_prefix, prefix_tok, EOS_ID)
    if rows > 1:
        restricted, token = tf.repeat(restricted, rows), tf.repeat(token, rows)
    return restricted, token


# -- greedy and sampling --------------------------------------------------------
def _sample(logits: tf.Tensor, seed: tf.Tensor, topk: int, use_topp: bool, params: dict[str, tf.Tensor]
            ) -> tf.Tensor:
    """Draw one token per row from the (top-k / nucleus truncated) tempered distribution."""
    scaled = logits / params["sampling_temperature"]
    if topk <= 0 and not use_topp:
        return tf.random.stateless_categorical(scaled, 1, seed, dtype=tf.int32)[:, 0]
    k = tf.minimum(topk, tf.shape(scaled)[-1]) if topk > 0 else tf.shape(scaled)[-1]
    values, indices = tf.math.top_k(scaled, k=k)
    if use_topp:
        probs = tf.nn.softmax(values)
        before = tf.cumsum(probs, axis=-1, exclusive=True)
        values = tf.where(before < params["sampling_topp"], values, NEG_INF)
    choice = tf.random.stateless_categorical(values, 1, seed, dtype=tf.int32)
    return tf.gather(indices, choice, batch_dims=1)[:, 0]


class _SampleState(NamedTuple):
    """Loop state of greedy/sampling decoding ([n] = sentences * rows)."""

    step: tf.Tensor
    prev: tf.Tensor  # [n] last token
    finished: tf.Tensor  # [n] bool
    length: tf.Tensor  # [n] tokens so far, eos included
    total: tf.Tensor  # [n] summed log-probabilities
    tokens: tf.TensorArray  # per step [n]
    logprobs: tf.TensorArray  # per step [n]
    cache: dict[str, Any]


class _LeftToRight:
    """Independent left-to-right decoding of ``rows`` hypotheses per sentence (greedy when
    ``sample`` is None, else (top-k, use top-p) sampling)."""

    def __init__(self, model: SearchModel, setup: _Setup, params: dict[str, tf.Tensor], rows: int,
                 sample: tuple[int, bool] | None) -> None:
        self.model, self.setup, self.params, self.rows, self.sample = model, setup, params, rows, sample
        self.ban = ban_bias(model.target_vocab_size)

    def body(self, s: _SampleState) -> _SampleState:
        logits, cache = self.model.decode_step(s.prev, s.step, s.cache, logits_bias=self.ban)
        best = tf.argmax(logits, axis=-1, output_type=tf.int32)
        lse = _log_normalizer(logits, tf.nn.softmax(logits), best)
        tok = best
        if self.sample is not None:
            seed = tf.random.experimental.stateless_fold_in(self.params["seed"], s.step)
            tok = _sample(logits, seed, self.sample[0], self.sample[1], self.params)
        restricted, forced_tok = _forced(self.setup, s.step, self.rows)
        tok = tf.where(restricted, forced_tok, tok)
        logp = tf.gather(logits, tok, batch_dims=1) - lse
        tok = tf.where(s.finished, PAD_ID, tok)
        logp = tf.where(s.finished, 0.0, logp)
        return _SampleState(
            step=s.step + 1, prev=tok, finished=s.finished | tf.equal(tok, EOS_ID),
            length=s.length + tf.cast(~s.finished, tf.int32), total=s.total + logp,
            tokens=s.tokens.write(s.step, tok), logprobs=s.logprobs.write(s.step, logp), cache=cache)

    def start(self) -> tuple[_SampleState, _SampleState]:
        """The first loop state and its shape invariants."""
        n = self.setup.batch * self.rows
        state = _SampleState(
            step=tf.constant(0), prev=tf.fill([n], BOS_ID), finished=tf.zeros([n], tf.bool),
            length=tf.zeros([n], tf.int32), total=tf.zeros([n], tf.float32),
            tokens=tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
            logprobs=tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[None]),
            cache=self.setup.cache)
        vector = tf.TensorShape([None])
        invariants = _SampleState(
            tf.TensorShape([]), vector, vector, vector, vector, tf.TensorShape(None),
            tf.TensorShape(None), self.model.cache_shape_invariants(self.setup.cache))
        return state, invariants

    def run(self) -> dict[str, tf.Tensor]:
        start, invariants = self.start()

        def cond(s: _SampleState) -> tf.Tensor:
            return tf.logical_and(s.step < self.setup.steps, ~tf.reduce_all(s.finished))

        (end,) = tf.while_loop(cond, lambda s: (self.body(s),), (start,), shape_invariants=(invariants,))
        shape = [self.setup.batch, self.rows]
        score = tf.reshape(end.total / _length_penalty(end.length, self.params["length_penalty"]), shape)
        order = tf.argsort(score, axis=1, direction="DESCENDING", stable=True)

        def ranked(t: tf.Tensor) -> tf.Tensor:
            """[n, ...] -> [B, rows, ...], each sentence's rows best first."""
            return tf.gather(tf.reshape(t, tf.concat([shape, tf.shape(t)[1:]], 0)), order, batch_dims=1)

        return {
            "tokens": ranked(tf.transpose(end.tokens.stack())),
            "logprobs": ranked(tf.transpose(end.logprobs.stack())),
            "length": ranked(end.length),
            "score": tf.gather(score, order, batch_dims=1),
            "valid": tf.ones(shape, tf.bool),
        }


# -- beam search ------------------------------------------------------------------
class _BeamState(NamedTuple):
    """Loop state of beam search; [B, k] per sentence and beam, L = max steps."""

    step: tf.Tensor
    prev: tf.Tensor  # [B*k] last token of each alive hypothesis
    alive_lp: tf.Tensor  # [B, k] summed log-probabilities (NEG_INF: no hypothesis)
    alive_seq: tf.Tensor  # [B, k, L]
    alive_tlp: tf.Tensor  # [B, k, L] per-token log-probabilities
    alive_cov: tf.Tensor  # [B, k, S] summed cross-attention (S=0 without coverage)
    fin_score: tf.Tensor  # [B, k] sorted, NEG_INF: empty slot
    fin_seq: tf.Tensor  # [B, k, L]
    fin_tlp: tf.Tensor  # [B, k, L]
    fin_len: tf.Tensor  # [B, k] tokens including eos
    done: tf.Tensor  # [B] bool
    active: tf.Tensor  # [A] the sentences not done, whose hypotheses the cache holds
    cache: dict[str, Any]  # A sentences, A*k rows (finished sentences are dropped)


class _Candidates(NamedTuple):
    """The best 2k continuations per sentence, [B, 2k] each."""

    score: tf.Tensor  # summed log-probability
    origin: tf.Tensor  # beam they extend
    token: tf.Tensor
    token_lp: tf.Tensor


class _Beam:
    """Batched beam search keeping ``beam`` alive and ``beam`` finished hypotheses.

    Each step takes the top 2*beam continuations so that ``beam`` of them are
    not eos; eos ones compete for the finished slots with the GNMT length (and
    optional coverage) penalty.  A sentence stops once its ``n_best``-th
    finished score beats the best score any alive hypothesis could still reach
    (valid because log-probabilities only fall and the coverage term is <= 0).
    """

    def __init__(self, model: SearchModel, setup: _Setup, params: dict[str, tf.Tensor], beam: int,
                 use_coverage: bool) -> None:
        self.model, self.setup, self.params = model, setup, params
        self.k, self.k2 = beam, min(2 * beam, model.target_vocab_size)
        self.use_coverage = use_coverage
        self.bsz = setup.batch
        self.src_mask = tf.cast(setup.source_mask, tf.float32)  # [B, S]
        self.alpha = params["length_penalty"]
        self.lp_max_len = _length_penalty(setup.max_len + 1, self.alpha)
        self.nth = tf.cast(params["n_best"], tf.int32) - 1
        self.ban = ban_bias(model.target_vocab_size)

    def candidates(self, s: _BeamState, logits: tf.Tensor, rows: tf.Tensor) -> _Candidates:
        """Per-row top 2k first (softmax and one max-reduction are the only passes over the
        vocabulary), then the best 2k of the k * 2k; for the active sentences (`logits` of
        their `rows` [A*k, 1]) only, finished ones get empty candidates."""
        k, k2 = self.k, self.k2
        n = tf.shape(s.active)[0]
        probs = tf.nn.softmax(logits)
        _, row_tok = top_k_wide(probs, k2)
        lse = _log_normalizer(logits, probs, row_tok[:, 0])
        row_lp = tf.gather(logits, row_tok, batch_dims=1) - lse[:, tf.newaxis]
        restricted, forced_tok = (tf.gather_nd(t, rows) for t in _forced(self.setup, s.step, k))
        forced_lp = tf.gather(logits, forced_tok, batch_dims=1) - lse
        only_first = tf.equal(tf.range(k2), 0)[tf.newaxis]
        row_lp = tf.where(
            restricted[:, tf.newaxis], tf.where(only_first, forced_lp[:, tf.newaxis], NEG_INF), row_lp)
        row_tok = tf.where(restricted[:, tf.newaxis], forced_tok[:, tf.newaxis], row_tok)
        scores = tf.reshape(row_lp + tf.reshape(tf.gather(s.alive_lp, s.active), [-1, 1]), [n, k * k2])
        top_score, top_idx = tf.math.top_k(scores, k=k2)
        tok = tf.gather(tf.reshape(row_tok, [n, k * k2]), top_idx, batch_dims=1)
        tok_lp = tf.gather(tf.reshape(row_lp, [n, k * k2]), top_idx, batch_dims=1)
        at = s.active[:, tf.newaxis]

        def full(values: tf.Tensor, empty: float | int) -> tf.Tensor:
            return tf.tensor_scatter_nd_update(tf.fill([self.bsz, k2], tf.cast(empty, values.dtype)), at, values)

        return _Candidates(full(top_score, NEG_INF), full(top_idx // k2, 0), full(tok, PAD_ID), full(tok_lp, 0.0))

    def finished_scores(self, s: _BeamState, cand: _Candidates, cand_cov: tf.Tensor) -> tf.Tensor:
        """Length- (and coverage-) normalised scores of the eos candidates; NEG_INF elsewhere."""
        fin = cand.score / _length_penalty(s.step + 1, self.alpha)
        if self.use_coverage:
            capped = tf.maximum(tf.minimum(cand_cov, 1.0), 1e-6)
            fin += self.params["coverage_penalty"] * tf.reduce_sum(
                tf.math.log(capped) * self.src_mask[:, tf.newaxis], axis=-1)
        return tf.where(tf.equal(cand.token, EOS_ID) & (cand.score > _VALID), fin, NEG_INF)

    def step_active(self, s: _BeamState) -> tuple[tf.Tensor, tf.Tensor, dict[str, Any], tf.Tensor | None]:
        """The decoder over the active sentences' rows only: (logits [A*k, V], those rows'
        indices [A*k, 1] among all B*k, the cache, coverage attention scattered to all rows).
        Measured: a batch's sentences finish at different steps, and on test2016 a third of
        the rows a full-batch step computed belonged to finished sentences."""
        rows = tf.reshape(s.active[:, tf.newaxis] * self.k + tf.range(self.k)[tf.newaxis], [-1, 1])
        out = self.model.decode_step(tf.gather_nd(s.prev, rows), s.step, s.cache,
                                     return_attention=self.use_coverage, logits_bias=self.ban)
        attention = None
        if self.use_coverage:
            attention = tf.scatter_nd(rows, out[2], tf.stack([self.bsz * self.k, tf.shape(out[2])[1]]))
        return out[0], rows, out[1], attention

    def keep_active(self, s: _BeamState, done: tf.Tensor, parent: tf.Tensor, cache: dict[str, Any]
                    ) -> tuple[tf.Tensor, dict[str, Any]]:
        """Drop newly finished sentences from the cache and reorder the rest's beams.

        The count kept is rounded up to a multiple of ACTIVE_BUCKET (finished sentences fill
        the gap; their state is frozen, so computing them changes nothing): each distinct
        row count costs oneDNN primitives, and one per count measured +160 MB peak RSS."""
        finished = tf.cast(tf.gather(done, s.active), tf.int32)
        order = tf.argsort(finished, stable=True)  # unfinished first
        count = tf.minimum(tf.shape(s.active)[0],
                           -(-(tf.shape(s.active)[0] - tf.reduce_sum(finished)) // ACTIVE_BUCKET) * ACTIVE_BUCKET)
        keep = tf.sort(order[:count])  # positions in s.active, in sentence order
        active = tf.gather(s.active, keep)
        rows = tf.reshape(keep[:, tf.newaxis] * self.k + tf.gather(parent, active), [-1])
        return active, self.model.select_cache(cache, keep, rows)

    def body(self, s: _BeamState) -> _BeamState:
        logits, rows, cache, attention = self.step_active(s)
        cand = self.candidates(s, logits, rows)
        cand_seq = _write_column(tf.gather(s.alive_seq, cand.origin, batch_dims=1), s.step, cand.token)
        cand_tlp = _write_column(tf.gather(s.alive_tlp, cand.origin, batch_dims=1), s.step, cand.token_lp)
        cand_cov = s.alive_cov
        if self.use_coverage:
            cand_cov = tf.gather(s.alive_cov + tf.reshape(attention, [self.bsz, self.k, -1]), cand.origin,
                                 batch_dims=1)
        # Alive: the best k non-eos continuations.
        alive_lp, pick = tf.math.top_k(tf.where(tf.equal(cand.token, EOS_ID), NEG_INF, cand.score), k=self.k)
        alive_lp = tf.where(alive_lp > _VALID, alive_lp, NEG_INF)
        parent = tf.gather(cand.origin, pick, batch_dims=1)
        # Finished: eos continuations compete with the k best so far.
        fin_cand = self.finished_scores(s, cand, cand_cov)
        _, keep = tf.math.top_k(tf.concat([s.fin_score, fin_cand], axis=1), k=self.k)

        def merge(old: tf.Tensor, new: tf.Tensor) -> tf.Tensor:
            """Kept finished entries; sentences already done stay frozen."""
            merged = tf.gather(tf.concat([old, new], axis=1), keep, batch_dims=1)
            frozen = tf.reshape(s.done, tf.concat([[self.bsz], tf.ones([tf.rank(old) - 1], tf.int32)], 0))
            return tf.where(frozen, old, merged)

        fin_score = merge(s.fin_score, fin_cand)
        done = self.done(s, alive_lp, fin_score)
        active, cache = self.keep_active(s, done, parent, cache)
        return _BeamState(
            step=s.step + 1,
            prev=tf.reshape(tf.gather(cand.token, pick, batch_dims=1), [-1]),
            alive_lp=alive_lp,
            alive_seq=tf.gather(cand_seq, pick, batch_dims=1),
            alive_tlp=tf.gather(cand_tlp, pick, batch_dims=1),
            alive_cov=tf.gather(cand_cov, pick, batch_dims=1) if self.use_coverage else s.alive_cov,
            fin_score=fin_score,
            fin_seq=merge(s.fin_seq, cand_seq),
            fin_tlp=merge(s.fin_tlp, cand_tlp),
            fin_len=merge(s.fin_len, tf.fill(tf.shape(cand.token), s.step + 1)),
            done=done,
            active=active,
            cache=cache,
        )

    def done(self, s: _BeamState, alive_lp: tf.Tensor, fin_score: tf.Tensor) -> tf.Tensor:
        """A sentence is done when no alive hypothesis can beat its n-th best finished one."""
        best_possible = alive_lp[:, 0] / tf.maximum(_length_penalty(s.step + 2, self.alpha), self.lp_max_len)
        nth_score = tf.gather(fin_score, self.nth, axis=1)
        return s.done | (s.step >= self.setup.max_len) | ((nth_score > _VALID) & (nth_score > best_possible))

    def start(self) -> _BeamState:
        bsz, k = self.bsz, self.k
        first_beam_only = tf.concat([tf.zeros([1]), tf.fill([k - 1], NEG_INF)], axis=0)
        seq_shape = [bsz, k, self.setup.steps]
        return _BeamState(
            step=tf.constant(0),
            prev=tf.fill([bsz * k], BOS_ID),
            alive_lp=tf.tile(first_beam_only[tf.newaxis], [bsz, 1]),
            alive_seq=tf.zeros(seq_shape, tf.int32),
            alive_tlp=tf.zeros(seq_shape, tf.float32),
            alive_cov=tf.zeros([bsz, k, tf.shape(self.src_mask)[1] if self.use_coverage else 0], tf.float32),
            fin_score=tf.fill([bsz, k], NEG_INF),
            fin_seq=tf.zeros(seq_shape, tf.int32),
            fin_tlp=tf.zeros(seq_shape, tf.float32),
            fin_len=tf.zeros([bsz, k], tf.int32),
            done=tf.zeros([bsz], tf.bool),
            active=tf.range(bsz),
            cache=self.setup.cache,
        )

    def run(self) -> dict[str, tf.Tensor]:
        start = self.start()
        invariants = _BeamState(
            *(tf.TensorShape([None] * t.shape.rank) for t in start[:-1]),
            cache=self.model.cache_shape_invariants(self.setup.cache))

        def cond(s: _BeamState) -> tf.Tensor:
            return tf.logical_and(s.step < self.setup.steps, ~tf.reduce_all(s.done))

        (end,) = tf.while_loop(cond, lambda s: (self.body(s),), (start,), shape_invariants=(invariants,))
        return {"tokens": end.fin_seq, "logprobs": end.fin_tlp, "length": end.fin_len,
                "score": end.fin_score, "valid": end.fin_score > _VALID}


# -- compiled entry point -----------------------------------------------------------
_COMPILED: weakref.WeakKeyDictionary[SearchModel, dict[tuple, Callable]] = weakref.WeakKeyDictionary()


def _compile(model: SearchModel, options: DecodeConfig) -> Callable:
    """One tf.function for the graph-shaping part of `options`; the rest are its inputs."""
    model_ref = weakref.ref(model)  # the cache must not keep the model alive
    mode, beam = search_mode(options), options.beam_size
    sample = (options.sampling_topk, options.sampling_topp < 1.0) if mode == "sample" else None
    use_coverage = options.coverage_penalty != 0.0
    use_shortlist = options.shortlist != 0

    def run(source: tf.Tensor, prefix: tf.Tensor, values: tf.Tensor, seed: tf.Tensor,
            shortlist: tf.Tensor) -> dict[str, tf.Tensor]:
        m = model_ref()
        assert m is not None, "model was garbage collected"
        params = dict(zip(TENSOR_OPTIONS, tf.unstack(values)))
        params["seed"] = seed
        rows = 1 if mode == "greedy" else beam
        ids = shortlist if use_shortlist else None
        setup = _setup(m, source, prefix, params["max_length_a"], params["max_length_b"], rows, ids)
        if mode == "beam":
            out = _Beam(m, setup, params, beam, use_coverage).run()
        else:
            out = _LeftToRight(m, setup, params, rows, sample).run()
        return out if ids is None else _to_vocabulary(out, ids)

    signature = [
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([len(TENSOR_OPTIONS)], tf.float32),
        tf.TensorSpec([2], tf.int32),
        tf.TensorSpec([None], tf.int32),
    ]
    # No jit_compile: with the fixed-size caches XLA needs, a decode step measured
    # 1.4-3.5x slower than this graph on our CPUs (float32 and bfloat16 alike).
    return tf.function(run, input_signature=signature, autograph=False)


def _option_values(options: DecodeConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """The tensor inputs of the compiled search: option vector and sampling seed."""
    values = tf.constant([float(getattr(options, name)) for name in TENSOR_OPTIONS], tf.float32)
    seed = options.seed if options.seed is not None else int(np.random.randint(0, 2**31 - 1))
    return values, tf.constant([seed, 0], tf.int32)


def bound_search(model: SearchModel, options: DecodeConfig) -> Callable[[tf.Tensor, tf.Tensor], dict]:
    """The compiled search with `options` bound: (source [B, S], prefix [B, P]) -> the raw
    tensors (tokens, logprobs, length, score, valid), for graphs that embed it (SavedModel)."""
    options = replace(options, shortlist=0)  # a shortlist is made per batch, by the caller
    run = _compile(model, options)
    values, seed = _option_values(options)
    none = tf.zeros([0], tf.int32)
    return lambda source, prefix: run(source, prefix, values, seed, none)


def search(
    model: SearchModel,
    source_ids: tf.Tensor | np.ndarray,
    options: DecodeConfig | None = None,
    target_prefix: tf.Tensor | np.ndarray | None = None,
    shortlist: np.ndarray | None = None,
) -> SearchResult:
    """Translate a batch of source ids [B, S] (0-padded, eos-terminated, no bos).

    Each sentence gets at most ``floor(a * source_length + b)`` tokens before
    eos (source_length counts its eos), capped at ``model.max_length - 1``
    and raised to its prefix length.  ``target_prefix`` [B, P] (0-padded, no
    bos) forces each output to start with those tokens.  ``shortlist`` (sorted target
    ids holding 0-3 and every prefix id; needed when ``options.shortlist``) limits the
    output vocabulary.  Sampling draws
    ``beam_size`` samples per sentence and keeps the ``n_best`` best scored.
    """
    options = options or DecodeConfig()
    if not 1 <= options.n_best <= options.beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size={options.beam_size}, got {options.n_best}")
    source = tf.convert_to_tensor(source_ids, tf.int32)
    if source.shape[0] == 0:
        return SearchResult([])
    if target_prefix is None:
        prefix = tf.zeros([tf.shape(source)[0], 0], tf.int32)
    else:
        prefix = tf.convert_to_tensor(target_prefix, tf.int32)
    per_model = _COMPILED.setdefault(model, {})
    key = graph_key(options)
    if key not in per_model:
        per_model[key] = _compile(model, options)
    if (shortlist is None) != (options.shortlist == 0):
        raise ValueError("give a shortlist exactly when options.shortlist is set")
    ids = tf.zeros([0], tf.int32) if shortlist is None else tf.constant(shortlist, tf.int32)
    values, seed = _option_values(options)
    out = per_model[key](source, prefix, values, seed, ids)
    return _to_python(out, options.n_best)


def _to_python(out: dict[str, tf.Tensor], n_best: int) -> SearchResult:
    tokens, logprobs = out["tokens"].numpy(), out["logprobs"].numpy()
    length, score, valid = out["length"].numpy(), out["score"].numpy(), out["valid"].numpy()
    results = []
    for b in range(tokens.shape[0]):
        nbest = []
        for i in range(tokens.shape[1]):
            if not valid[b, i] or len(nbest) == n_best:
                continue
            n = int(length[b, i])
            ids = tokens[b, i, :n].tolist()
            if ids and ids[-1] == EOS_ID:
                ids = ids[:-1]
            nbest.append(Hypothesis(ids=ids, score=float(score[b, i]), token_logprobs=logprobs[b, i, :n].tolist()))
        results.append(nbest)
    return SearchResult(results)
