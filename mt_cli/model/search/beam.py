"""Beam search over ``decode_step``: ``beam`` alive and ``beam`` finished hypotheses per sentence.

Shapes: B sentences, k = beam, k2 = 2k candidates, A active sentences (the cache's rows are
A*k), V output vocabulary (shortlist positions when a shortlist is on), L loop steps, S
source length.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from mt_cli.core.tokenizer import BOS_ID, EOS_ID, PAD_ID
from mt_cli.model.attention import NEG_INF
from mt_cli.model.search.options import SearchParams
from mt_cli.model.search.shared import (
    VALID,
    SearchModel,
    Setup,
    ban_bias,
    forced,
    gnmt_length_penalty,
    log_normalizer,
    top_k_wide,
    write_column,
)

ACTIVE_BUCKET = 8  # beam search keeps a multiple of this many sentences in its cache
SCORE_FLOOR = VALID / 2  # normalised scores saturate here, above VALID (extreme penalties stay valid)


class BeamState(NamedTuple):
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


class Candidates(NamedTuple):
    """The best 2k continuations per sentence, [B, 2k] each."""

    score: tf.Tensor  # summed log-probability
    origin: tf.Tensor  # beam they extend
    token: tf.Tensor
    token_lp: tf.Tensor


class Histories(NamedTuple):
    """The candidates' hypotheses so far, this step's token written in."""

    seq: tf.Tensor  # [B, 2k, L] tokens
    tlp: tf.Tensor  # [B, 2k, L] per-token log-probabilities
    cov: tf.Tensor  # [B, 2k, S] summed cross-attention ([B, k, 0] without coverage: unused)


class Finished(NamedTuple):
    """The k best finished hypotheses per sentence after a step, best first."""

    score: tf.Tensor  # [B, k] normalised score, NEG_INF: empty slot
    seq: tf.Tensor  # [B, k, L]
    tlp: tf.Tensor  # [B, k, L]
    length: tf.Tensor  # [B, k] tokens including eos


class Beam:
    """Batched beam search keeping ``beam`` alive and ``beam`` finished hypotheses.

    Each step takes the top 2*beam continuations so that ``beam`` of them are
    not eos; eos ones compete for the finished slots with the GNMT length (and
    optional coverage) penalty.  A sentence stops once its ``n_best``-th
    finished score beats the best score any alive hypothesis could still reach
    (valid because log-probabilities only fall and the coverage term is <= 0).
    """

    def __init__(self, model: SearchModel, setup: Setup, params: SearchParams, beam: int,
                 use_coverage: bool) -> None:
        self.model, self.setup, self.params = model, setup, params
        self.k, self.k2 = beam, min(2 * beam, model.target_vocab_size)
        self.use_coverage = use_coverage
        self.bsz = setup.batch
        self.src_mask = tf.cast(setup.source_mask, tf.float32)  # [B, S]
        self.alpha = params.length_penalty  # scalar
        self.lp_max_len = gnmt_length_penalty(setup.max_len + 1, self.alpha)  # [B]
        self.nth = tf.cast(params.n_best, tf.int32) - 1  # scalar: the finished slot that decides `done`
        self.ban = ban_bias(model.target_vocab_size)  # [V]

    def body(self, s: BeamState) -> BeamState:
        """One step, in order: decode the active rows (compaction), the 2k candidates (forced
        prefix and eos at the length limit), their histories (coverage), the new alive beam and
        finished n-best, `done`, and the active sentences and cache for the next step."""
        logits, rows, cache, attention = self.step_active(s)  # [A*k, V], [A*k, 1], A*k rows, [B*k, S]
        cand = self.candidates(s, logits, rows)  # [B, 2k] each
        hist = self.histories(s, cand, attention)  # [B, 2k, L], [B, 2k, L], [B, 2k, S]
        alive_lp, pick = self.alive(cand)  # [B, k] scores, [B, k] positions among the 2k
        parent = tf.gather(cand.origin, pick, batch_dims=1)  # [B, k] beam each alive one extends
        fin = self.finished(s, cand, hist)  # [B, k] (, L)
        done = self.done(s, alive_lp, fin.score)  # [B]
        active, cache = self.keep_active(s, done, parent, cache)  # [A'], A'*k rows
        return BeamState(
            step=s.step + 1,
            prev=tf.reshape(tf.gather(cand.token, pick, batch_dims=1), [-1]),  # [B*k]
            alive_lp=alive_lp,  # [B, k]
            alive_seq=tf.gather(hist.seq, pick, batch_dims=1),  # [B, k, L]
            alive_tlp=tf.gather(hist.tlp, pick, batch_dims=1),  # [B, k, L]
            alive_cov=tf.gather(hist.cov, pick, batch_dims=1) if self.use_coverage else s.alive_cov,  # [B, k, S]
            fin_score=fin.score,
            fin_seq=fin.seq,
            fin_tlp=fin.tlp,
            fin_len=fin.length,
            done=done,
            active=active,
            cache=cache,
        )

    def step_active(self, s: BeamState) -> tuple[tf.Tensor, tf.Tensor, dict[str, Any], tf.Tensor | None]:
        """The decoder over the active sentences' rows only: (logits [A*k, V], those rows'
        indices [A*k, 1] among all B*k, the cache, coverage attention scattered to all rows).
        Measured: a batch's sentences finish at different steps, and on test2016 a third of
        the rows a full-batch step computed belonged to finished sentences."""
        rows = tf.reshape(s.active[:, tf.newaxis] * self.k + tf.range(self.k)[tf.newaxis], [-1, 1])  # [A*k, 1]
        out = self.model.decode_step(tf.gather_nd(s.prev, rows), s.step, s.cache,
                                     return_attention=self.use_coverage, logits_bias=self.ban)
        attention = None
        if self.use_coverage:  # out[2]: [A*k, S] -> [B*k, S], zero for finished sentences
            attention = tf.scatter_nd(rows, out[2], tf.stack([self.bsz * self.k, tf.shape(out[2])[1]]))
        return out[0], rows, out[1], attention

    def candidates(self, s: BeamState, logits: tf.Tensor, rows: tf.Tensor) -> Candidates:
        """Per-row top 2k first (softmax and one max-reduction are the only passes over the
        vocabulary), then the best 2k of the k * 2k; for the active sentences (`logits` of
        their `rows` [A*k, 1]) only, finished ones get empty candidates.  A row that must take
        a forced token (prefix, or eos at the length limit) keeps it as its only candidate."""
        k, k2 = self.k, self.k2
        n = tf.shape(s.active)[0]  # A
        probs = tf.nn.softmax(logits)  # [A*k, V]
        _, row_tok = top_k_wide(probs, k2)  # [A*k, 2k]
        lse = log_normalizer(logits, probs, row_tok[:, 0])  # [A*k]
        row_lp = tf.gather(logits, row_tok, batch_dims=1) - lse[:, tf.newaxis]  # [A*k, 2k]
        restricted, forced_tok = (tf.gather_nd(t, rows) for t in forced(self.setup, s.step, k))  # [A*k] each
        forced_lp = tf.gather(logits, forced_tok, batch_dims=1) - lse  # [A*k]
        only_first = tf.equal(tf.range(k2), 0)[tf.newaxis]  # [1, 2k]
        row_lp = tf.where(
            restricted[:, tf.newaxis], tf.where(only_first, forced_lp[:, tf.newaxis], NEG_INF), row_lp)
        row_tok = tf.where(restricted[:, tf.newaxis], forced_tok[:, tf.newaxis], row_tok)  # [A*k, 2k]
        scores = tf.reshape(row_lp + tf.reshape(tf.gather(s.alive_lp, s.active), [-1, 1]), [n, k * k2])
        top_score, top_idx = tf.math.top_k(scores, k=k2)  # [A, 2k], positions among k * 2k
        tok = tf.gather(tf.reshape(row_tok, [n, k * k2]), top_idx, batch_dims=1)  # [A, 2k]
        tok_lp = tf.gather(tf.reshape(row_lp, [n, k * k2]), top_idx, batch_dims=1)  # [A, 2k]
        at = s.active[:, tf.newaxis]  # [A, 1]

        def full(values: tf.Tensor, empty: float) -> tf.Tensor:
            """[A, 2k] -> [B, 2k], `empty` for the sentences not active."""
            return tf.tensor_scatter_nd_update(tf.fill([self.bsz, k2], tf.cast(empty, values.dtype)), at, values)

        return Candidates(full(top_score, NEG_INF), full(top_idx // k2, 0), full(tok, PAD_ID), full(tok_lp, 0.0))

    def histories(self, s: BeamState, cand: Candidates, attention: tf.Tensor | None) -> Histories:
        """Each candidate's beam history with this step's token (and attention) added."""
        seq = write_column(tf.gather(s.alive_seq, cand.origin, batch_dims=1), s.step, cand.token)  # [B, 2k, L]
        tlp = write_column(tf.gather(s.alive_tlp, cand.origin, batch_dims=1), s.step, cand.token_lp)
        cov = s.alive_cov  # [B, k, 0]: no coverage
        if self.use_coverage:
            cov = tf.gather(s.alive_cov + tf.reshape(attention, [self.bsz, self.k, -1]), cand.origin,
                            batch_dims=1)  # [B, 2k, S]
        return Histories(seq, tlp, cov)

    def alive(self, cand: Candidates) -> tuple[tf.Tensor, tf.Tensor]:
        """The best k non-eos continuations: (summed log-probabilities [B, k], NEG_INF where
        none; their positions among the 2k candidates [B, k])."""
        alive_lp, pick = tf.math.top_k(tf.where(tf.equal(cand.token, EOS_ID), NEG_INF, cand.score), k=self.k)
        return tf.where(alive_lp > VALID, alive_lp, NEG_INF), pick

    def finished(self, s: BeamState, cand: Candidates, hist: Histories) -> Finished:
        """Eos continuations compete with the k best finished so far; sentences already done
        stay frozen."""
        fin_cand = self.finished_scores(s, cand, hist.cov)  # [B, 2k]
        _, keep = tf.math.top_k(tf.concat([s.fin_score, fin_cand], axis=1), k=self.k)  # [B, k] among k + 2k

        def merge(old: tf.Tensor, new: tf.Tensor) -> tf.Tensor:
            """old [B, k, ...] and new [B, 2k, ...] -> the kept [B, k, ...]."""
            merged = tf.gather(tf.concat([old, new], axis=1), keep, batch_dims=1)
            frozen = tf.reshape(s.done, tf.concat([[self.bsz], tf.ones([tf.rank(old) - 1], tf.int32)], 0))
            return tf.where(frozen, old, merged)

        return Finished(
            score=merge(s.fin_score, fin_cand),
            seq=merge(s.fin_seq, hist.seq),
            tlp=merge(s.fin_tlp, hist.tlp),
            length=merge(s.fin_len, tf.fill(tf.shape(cand.token), s.step + 1)),
        )

    def finished_scores(self, s: BeamState, cand: Candidates, cand_cov: tf.Tensor) -> tf.Tensor:
        """Length- (and coverage-) normalised scores [B, 2k] of the eos candidates; NEG_INF elsewhere."""
        fin = cand.score / gnmt_length_penalty(s.step + 1, self.alpha)  # [B, 2k]
        if self.use_coverage:
            capped = tf.maximum(tf.minimum(cand_cov, 1.0), 1e-6)  # [B, 2k, S]
            fin += self.params.coverage_penalty * tf.reduce_sum(
                tf.math.log(capped) * self.src_mask[:, tf.newaxis], axis=-1)
        fin = tf.maximum(fin, SCORE_FLOOR)  # a huge coverage penalty gives -inf: that is not "impossible"
        return tf.where(tf.equal(cand.token, EOS_ID) & (cand.score > VALID), fin, NEG_INF)

    def keep_active(self, s: BeamState, done: tf.Tensor, parent: tf.Tensor, cache: dict[str, Any]
                    ) -> tuple[tf.Tensor, dict[str, Any]]:
        """Drop newly finished sentences from the cache and reorder the rest's beams.

        The count kept is rounded up to a multiple of ACTIVE_BUCKET (finished sentences fill
        the gap; their state is frozen, so computing them changes nothing): each distinct
        row count costs oneDNN primitives, and one per count measured +160 MB peak RSS."""
        finished = tf.cast(tf.gather(done, s.active), tf.int32)  # [A]
        order = tf.argsort(finished, stable=True)  # [A] unfinished first
        count = tf.minimum(tf.shape(s.active)[0],
                           -(-(tf.shape(s.active)[0] - tf.reduce_sum(finished)) // ACTIVE_BUCKET) * ACTIVE_BUCKET)
        keep = tf.sort(order[:count])  # [A'] positions in s.active, in sentence order
        active = tf.gather(s.active, keep)  # [A']
        rows = tf.reshape(keep[:, tf.newaxis] * self.k + tf.gather(parent, active), [-1])  # [A'*k]
        return active, self.model.select_cache(cache, keep, rows)

    def done(self, s: BeamState, alive_lp: tf.Tensor, fin_score: tf.Tensor) -> tf.Tensor:
        """A sentence is done when no alive hypothesis can beat its n-th best finished one."""
        best_possible = alive_lp[:, 0] / tf.maximum(gnmt_length_penalty(s.step + 2, self.alpha),
                                                    self.lp_max_len)  # [B]
        nth_score = tf.gather(fin_score, self.nth, axis=1)  # [B]
        return s.done | (s.step >= self.setup.max_len) | ((nth_score > VALID) & (nth_score > best_possible))

    def start(self) -> BeamState:
        bsz, k = self.bsz, self.k
        first_beam_only = tf.concat([tf.zeros([1]), tf.fill([k - 1], NEG_INF)], axis=0)  # [k]
        seq_shape = [bsz, k, self.setup.steps]  # [B, k, L]
        return BeamState(
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
        invariants = BeamState(
            *(tf.TensorShape([None] * t.shape.rank) for t in start[:-1]),
            cache=self.model.cache_shape_invariants(self.setup.cache))

        def cond(s: BeamState) -> tf.Tensor:
            return tf.logical_and(s.step < self.setup.steps, ~tf.reduce_all(s.done))

        (end,) = tf.while_loop(cond, lambda s: (self.body(s),), (start,), shape_invariants=(invariants,))
        return {"tokens": end.fin_seq, "logprobs": end.fin_tlp, "length": end.fin_len,
                "score": end.fin_score, "valid": end.fin_score > VALID}
