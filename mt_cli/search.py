"""Greedy, beam and sampling search over ``Transformer.encode``/``decode_step``.

The whole decoding loop of one batch runs inside one compiled ``tf.function``
(one per model and graph-shaping option set, with ``None`` batch/length dims so
new shapes do not retrace).  Numeric options travel as tensors for the same
reason.  Only the final n-best tensors come back to Python.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from mt_cli.model.transformer import BOS_ID, EOS_ID, PAD_ID, Transformer

NEG = -1e9
_VALID = NEG / 2  # scores below this mark impossible hypotheses


@dataclass(frozen=True)
class SearchOptions:
    """Decoding options; greedy is ``beam_size=1`` without sampling.

    Sampling is on when ``sampling_topk != 0`` or ``sampling_topp < 1``
    (``sampling_topk < 0`` means the full vocabulary).  Sampling draws
    ``beam_size`` independent samples per sentence and keeps the ``n_best``
    best scored ones.  ``coverage_penalty`` (GNMT beta) is used by beam search
    only.  Scores are log-probabilities (eos included) divided by the GNMT
    length penalty of the length counting eos.
    """

    beam_size: int = 4
    length_penalty: float = 0.6
    coverage_penalty: float = 0.0
    max_length_a: float = 1.5
    max_length_b: int = 10
    n_best: int = 1
    sampling_topk: int = 0
    sampling_topp: float = 1.0
    sampling_temperature: float = 1.0
    seed: int | None = None

    @property
    def sampling(self) -> bool:
        return self.sampling_topk != 0 or self.sampling_topp < 1.0

    def validate(self) -> None:
        if self.beam_size < 1:
            raise ValueError("beam_size must be >= 1")
        if not 1 <= self.n_best <= self.beam_size:
            raise ValueError("n_best must be between 1 and beam_size")
        if not 0.0 < self.sampling_topp <= 1.0:
            raise ValueError("sampling_topp must be in (0, 1]")
        if self.sampling_temperature <= 0.0:
            raise ValueError("sampling_temperature must be > 0")


@dataclass(frozen=True)
class Hypothesis:
    """One output: tokens without bos/eos; ``token_logprobs`` has one extra, final entry for eos."""

    tokens: list[int]
    score: float
    token_logprobs: list[float]


@dataclass(frozen=True)
class SearchResult:
    """Per input sentence, its n-best hypotheses, best first."""

    hypotheses: list[list[Hypothesis]]

    def best(self) -> list[list[int]]:
        return [nbest[0].tokens if nbest else [] for nbest in self.hypotheses]


# -- shared graph helpers -----------------------------------------------------
def _length_penalty(length: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """GNMT ((5 + len) / 6) ** alpha."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def _write_column(buffer: tf.Tensor, column: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """buffer[..., column] = values, via a broadcast select (shape-stable)."""
    hit = tf.equal(tf.range(tf.shape(buffer)[-1]), column)
    return tf.where(hit, values[..., tf.newaxis], buffer)


def _ban_bias(vocab_size: int) -> tf.Tensor:
    """Logit bias [V] that keeps pad and bos from ever being generated."""
    bias = np.zeros([vocab_size], np.float32)
    bias[[PAD_ID, BOS_ID]] = NEG
    return tf.constant(bias)


def _top_k_wide(x: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Exact row-wise top-k for wide rows [N, V] (values, indices).

    tf.math.top_k costs ~2 ms on [128, 8000] on our CPUs, more than the output
    matmul.  The k best entries lie in the k chunks with the largest maxima,
    so one cheap max-reduction plus two small top_k calls give the same result.
    """
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
    model: Transformer, source: tf.Tensor, prefix: tf.Tensor, a: tf.Tensor, b: tf.Tensor, rows: int
) -> _Setup:
    """Encode, derive per-sentence limits, and build a cache for ``rows`` hypotheses per sentence."""
    memory, source_mask = model.encode(source)
    src_len = tf.reduce_sum(tf.cast(source_mask, tf.float32), axis=1)
    prefix = tf.pad(prefix, [[0, 0], [0, 1]])  # never empty, gathers stay in range
    prefix_len = tf.reduce_sum(tf.cast(tf.not_equal(prefix, PAD_ID), tf.int32), axis=1)
    max_len = tf.maximum(tf.cast(tf.floor(a * src_len + b), tf.int32), prefix_len)
    max_len = tf.clip_by_value(max_len, 0, model.max_length - 1)
    return _Setup(
        batch=tf.shape(source)[0],
        cache=model.init_cache(memory, source_mask, beam_size=rows),
        source_mask=source_mask,
        max_len=max_len,
        prefix=prefix,
        prefix_len=prefix_len,
        steps=tf.reduce_max(max_len) + 1,
    )


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
def _sample(
    logits: tf.Tensor, seed: tf.Tensor, topk: int, use_topp: bool, topp: tf.Tensor, temp: tf.Tensor
) -> tf.Tensor:
    """Draw one token per row from the (top-k / nucleus truncated) tempered distribution."""
    scaled = logits / temp
    if topk <= 0 and not use_topp:
        return tf.random.stateless_categorical(scaled, 1, seed, dtype=tf.int32)[:, 0]
    k = min(topk, int(scaled.shape[-1])) if topk > 0 else tf.shape(scaled)[-1]
    values, indices = tf.math.top_k(scaled, k=k)
    if use_topp:
        probs = tf.nn.softmax(values)
        before = tf.cumsum(probs, axis=-1, exclusive=True)
        values = tf.where(before < topp, values, NEG)
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


def _greedy_or_sample(
    model: Transformer,
    setup: _Setup,
    params: dict[str, tf.Tensor],
    rows: int,
    sample_cfg: tuple[int, bool] | None,
) -> dict[str, tf.Tensor]:
    """Independent left-to-right decoding of ``rows`` hypotheses per sentence."""
    n = setup.batch * rows
    ban = _ban_bias(model.target_vocab_size)

    def body(s: _SampleState) -> _SampleState:
        logits, cache = model.decode_step(s.prev, s.step, s.cache, logits_bias=ban)
        best = tf.argmax(logits, axis=-1, output_type=tf.int32)
        lse = _log_normalizer(logits, tf.nn.softmax(logits), best)
        if sample_cfg is None:
            tok = best
        else:
            seed = tf.random.experimental.stateless_fold_in(params["seed"], s.step)
            tok = _sample(
                logits, seed, sample_cfg[0], sample_cfg[1], params["topp"], params["temperature"]
            )
        restricted, forced_tok = _forced(setup, s.step, rows)
        tok = tf.where(restricted, forced_tok, tok)
        logp = tf.gather(logits, tok, batch_dims=1) - lse
        tok = tf.where(s.finished, PAD_ID, tok)
        logp = tf.where(s.finished, 0.0, logp)
        return _SampleState(
            step=s.step + 1,
            prev=tok,
            finished=s.finished | tf.equal(tok, EOS_ID),
            length=s.length + tf.cast(~s.finished, tf.int32),
            total=s.total + logp,
            tokens=s.tokens.write(s.step, tok),
            logprobs=s.logprobs.write(s.step, logp),
            cache=cache,
        )

    def cond(s: _SampleState) -> tf.Tensor:
        return tf.logical_and(s.step < setup.steps, ~tf.reduce_all(s.finished))

    start = _SampleState(
        step=tf.constant(0),
        prev=tf.fill([n], BOS_ID),
        finished=tf.zeros([n], tf.bool),
        length=tf.zeros([n], tf.int32),
        total=tf.zeros([n], tf.float32),
        tokens=tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
        logprobs=tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[None]),
        cache=setup.cache,
    )
    vector = tf.TensorShape([None])
    invariants = _SampleState(
        tf.TensorShape([]), vector, vector, vector, vector, tf.TensorShape(None), tf.TensorShape(None),
        Transformer.cache_shape_invariants(setup.cache),
    )  # fmt: skip
    (end,) = tf.while_loop(cond, lambda s: (body(s),), (start,), shape_invariants=(invariants,))
    shape = [setup.batch, rows]
    score = tf.reshape(end.total / _length_penalty(end.length, params["alpha"]), shape)
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
    alive_lp: tf.Tensor  # [B, k] summed log-probabilities (NEG: no hypothesis)
    alive_seq: tf.Tensor  # [B, k, L]
    alive_tlp: tf.Tensor  # [B, k, L] per-token log-probabilities
    alive_cov: tf.Tensor  # [B, k, S] summed cross-attention (S=0 without coverage)
    fin_score: tf.Tensor  # [B, k] sorted, NEG: empty slot
    fin_seq: tf.Tensor  # [B, k, L]
    fin_tlp: tf.Tensor  # [B, k, L]
    fin_len: tf.Tensor  # [B, k] tokens including eos
    done: tf.Tensor  # [B] bool
    cache: dict[str, Any]


def _beam_search(
    model: Transformer, setup: _Setup, params: dict[str, tf.Tensor], beam: int, use_coverage: bool
) -> dict[str, tf.Tensor]:
    """Batched beam search keeping ``beam`` alive and ``beam`` finished hypotheses.

    Each step takes the top 2*beam continuations so that ``beam`` of them are
    not eos; eos ones compete for the finished slots with the GNMT length (and
    optional coverage) penalty.  A sentence stops once its ``n_best``-th
    finished score beats the best score any alive hypothesis could still reach
    (valid because log-probabilities only fall and the coverage term is <= 0).
    """
    bsz, k = setup.batch, beam
    k2 = min(2 * k, model.target_vocab_size)
    src_mask = tf.cast(setup.source_mask, tf.float32)  # [B, S]
    alpha = params["alpha"]
    lp_max_len = _length_penalty(setup.max_len + 1, alpha)
    batch_offsets = (tf.range(bsz) * k)[:, tf.newaxis]
    nth = params["n_best"] - 1
    ban = _ban_bias(model.target_vocab_size)

    def candidates(
        s: _BeamState, logits: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Best 2k continuations per sentence: (score, origin beam, token, token log-prob), [B, 2k] each.

        Per-row top 2k first (softmax and one max-reduction are the only
        passes over the vocabulary), then the best 2k of the k * 2k.
        """
        probs = tf.nn.softmax(logits)
        _, row_tok = _top_k_wide(probs, k2)
        lse = _log_normalizer(logits, probs, row_tok[:, 0])
        row_lp = tf.gather(logits, row_tok, batch_dims=1) - lse[:, tf.newaxis]
        restricted, forced_tok = _forced(setup, s.step, k)
        forced_lp = tf.gather(logits, forced_tok, batch_dims=1) - lse
        only_first = tf.equal(tf.range(k2), 0)[tf.newaxis]
        row_lp = tf.where(
            restricted[:, tf.newaxis], tf.where(only_first, forced_lp[:, tf.newaxis], NEG), row_lp
        )
        row_tok = tf.where(restricted[:, tf.newaxis], forced_tok[:, tf.newaxis], row_tok)
        scores = tf.reshape(row_lp + tf.reshape(s.alive_lp, [-1, 1]), [bsz, k * k2])
        top_score, top_idx = tf.math.top_k(scores, k=k2)
        tok = tf.gather(tf.reshape(row_tok, [bsz, k * k2]), top_idx, batch_dims=1)
        tok_lp = tf.gather(tf.reshape(row_lp, [bsz, k * k2]), top_idx, batch_dims=1)
        return top_score, top_idx // k2, tok, tok_lp

    def body(s: _BeamState) -> _BeamState:
        if use_coverage:
            logits, cache, attn = model.decode_step(
                s.prev, s.step, s.cache, return_attention=True, logits_bias=ban
            )
        else:
            logits, cache = model.decode_step(s.prev, s.step, s.cache, logits_bias=ban)
        score, origin, tok, tok_lp = candidates(s, logits)
        cand_seq = _write_column(tf.gather(s.alive_seq, origin, batch_dims=1), s.step, tok)
        cand_tlp = _write_column(tf.gather(s.alive_tlp, origin, batch_dims=1), s.step, tok_lp)
        is_eos = tf.equal(tok, EOS_ID)
        cand_cov = s.alive_cov
        if use_coverage:
            cand_cov = tf.gather(s.alive_cov + tf.reshape(attn, [bsz, k, -1]), origin, batch_dims=1)

        # Alive: the best k non-eos continuations.
        alive_lp, pick = tf.math.top_k(tf.where(is_eos, NEG, score), k=k)
        alive_lp = tf.where(alive_lp > _VALID, alive_lp, NEG)
        parent = tf.gather(origin, pick, batch_dims=1)
        cache = Transformer.reorder_cache(cache, tf.reshape(parent + batch_offsets, [-1]))

        # Finished: eos continuations compete with the k best so far.
        fin_cand = score / _length_penalty(s.step + 1, alpha)
        if use_coverage:
            capped = tf.maximum(tf.minimum(cand_cov, 1.0), 1e-6)
            fin_cand += params["beta"] * tf.reduce_sum(
                tf.math.log(capped) * src_mask[:, tf.newaxis], axis=-1
            )
        fin_cand = tf.where(is_eos & (score > _VALID), fin_cand, NEG)
        fin_score, keep = tf.math.top_k(tf.concat([s.fin_score, fin_cand], axis=1), k=k)

        def merge(old: tf.Tensor, new: tf.Tensor) -> tf.Tensor:
            """Kept finished entries; sentences already done stay frozen."""
            merged = tf.gather(tf.concat([old, new], axis=1), keep, batch_dims=1)
            frozen = tf.reshape(
                s.done, tf.concat([[bsz], tf.ones([tf.rank(old) - 1], tf.int32)], 0)
            )
            return tf.where(frozen, old, merged)

        fin_score = merge(s.fin_score, fin_cand)
        # A sentence is done when no alive hypothesis can beat its n-th best finished one.
        best_possible = alive_lp[:, 0] / tf.maximum(_length_penalty(s.step + 2, alpha), lp_max_len)
        nth_score = tf.gather(fin_score, nth, axis=1)
        done = (
            s.done
            | (s.step >= setup.max_len)
            | ((nth_score > _VALID) & (nth_score > best_possible))
        )
        return _BeamState(
            step=s.step + 1,
            prev=tf.reshape(tf.gather(tok, pick, batch_dims=1), [-1]),
            alive_lp=alive_lp,
            alive_seq=tf.gather(cand_seq, pick, batch_dims=1),
            alive_tlp=tf.gather(cand_tlp, pick, batch_dims=1),
            alive_cov=tf.gather(cand_cov, pick, batch_dims=1) if use_coverage else s.alive_cov,
            fin_score=fin_score,
            fin_seq=merge(s.fin_seq, cand_seq),
            fin_tlp=merge(s.fin_tlp, cand_tlp),
            fin_len=merge(s.fin_len, tf.fill(tf.shape(tok), s.step + 1)),
            done=done,
            cache=cache,
        )

    def cond(s: _BeamState) -> tf.Tensor:
        return tf.logical_and(s.step < setup.steps, ~tf.reduce_all(s.done))

    first_beam_only = tf.concat([tf.zeros([1]), tf.fill([k - 1], NEG)], axis=0)
    seq_shape = [bsz, k, setup.steps]
    start = _BeamState(
        step=tf.constant(0),
        prev=tf.fill([bsz * k], BOS_ID),
        alive_lp=tf.tile(first_beam_only[tf.newaxis], [bsz, 1]),
        alive_seq=tf.zeros(seq_shape, tf.int32),
        alive_tlp=tf.zeros(seq_shape, tf.float32),
        alive_cov=tf.zeros([bsz, k, tf.shape(src_mask)[1] if use_coverage else 0], tf.float32),
        fin_score=tf.fill([bsz, k], NEG),
        fin_seq=tf.zeros(seq_shape, tf.int32),
        fin_tlp=tf.zeros(seq_shape, tf.float32),
        fin_len=tf.zeros([bsz, k], tf.int32),
        done=tf.zeros([bsz], tf.bool),
        cache=setup.cache,
    )
    invariants = _BeamState(
        *(tf.TensorShape([None] * t.shape.rank) for t in start[:-1]),
        cache=Transformer.cache_shape_invariants(setup.cache),
    )
    (end,) = tf.while_loop(cond, lambda s: (body(s),), (start,), shape_invariants=(invariants,))
    return {
        "tokens": end.fin_seq,
        "logprobs": end.fin_tlp,
        "length": end.fin_len,
        "score": end.fin_score,
        "valid": end.fin_score > _VALID,
    }


# -- compiled entry point -----------------------------------------------------------
_PARAM_NAMES = ("alpha", "beta", "a", "b", "topp", "temperature")
_COMPILED: weakref.WeakKeyDictionary[Transformer, dict[tuple, Callable]] = (
    weakref.WeakKeyDictionary()
)


def _graph_key(options: SearchOptions) -> tuple:
    """Options that change the graph; everything else is a tensor argument."""
    if options.sampling:
        mode: tuple = ("sample", options.sampling_topk, options.sampling_topp < 1.0)
    elif options.beam_size == 1:
        mode = ("greedy",)
    else:
        mode = ("beam", options.coverage_penalty != 0.0)
    return (*mode, options.beam_size)


def _compile(model: Transformer, key: tuple) -> Callable:
    model_ref = weakref.ref(model)  # the cache must not keep the model alive
    mode, beam = key[0], key[-1]

    def run(
        source: tf.Tensor, prefix: tf.Tensor, values: tf.Tensor, n_best: tf.Tensor, seed: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        m = model_ref()
        assert m is not None, "model was garbage collected"
        params = {name: values[i] for i, name in enumerate(_PARAM_NAMES)}
        params["n_best"], params["seed"] = n_best, seed
        setup = _setup(m, source, prefix, params["a"], params["b"], beam if mode != "greedy" else 1)
        if mode == "beam":
            return _beam_search(m, setup, params, beam, use_coverage=key[1])
        sample_cfg = (key[1], key[2]) if mode == "sample" else None
        return _greedy_or_sample(m, setup, params, beam if mode == "sample" else 1, sample_cfg)

    signature = [
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([len(_PARAM_NAMES)], tf.float32),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([2], tf.int32),
    ]
    # No jit_compile: with the fixed-size caches XLA needs, a decode step measured
    # 1.4-3.5x slower than this graph on our CPUs (float32 and bfloat16 alike).
    return tf.function(run, input_signature=signature)


def search(
    model: Transformer,
    source_ids: tf.Tensor | np.ndarray,
    options: SearchOptions = SearchOptions(),
    target_prefix: tf.Tensor | np.ndarray | None = None,
) -> SearchResult:
    """Translate a batch of source ids [B, S] (0-padded, eos-terminated, no bos).

    Each sentence gets at most ``floor(a * source_length + b)`` tokens before
    eos (source_length counts its eos), capped at ``model.max_length - 1``
    and raised to its prefix length.  ``target_prefix`` [B, P] (0-padded, no
    bos) forces each output to start with those tokens.
    """
    options.validate()
    source = tf.convert_to_tensor(source_ids, tf.int32)
    if source.shape[0] == 0:
        return SearchResult([])
    if target_prefix is None:
        prefix = tf.zeros([tf.shape(source)[0], 0], tf.int32)
    else:
        prefix = tf.convert_to_tensor(target_prefix, tf.int32)
    key = _graph_key(options)
    per_model = _COMPILED.setdefault(model, {})
    if key not in per_model:
        per_model[key] = _compile(model, key)
    values = tf.constant(
        [
            options.length_penalty,
            options.coverage_penalty,
            options.max_length_a,
            options.max_length_b,
            options.sampling_topp,
            options.sampling_temperature,
        ],
        tf.float32,
    )
    seed = options.seed if options.seed is not None else int(np.random.randint(0, 2**31 - 1))
    out = per_model[key](
        source, prefix, values, tf.constant(options.n_best), tf.constant([seed, 0], tf.int32)
    )
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
            nbest.append(Hypothesis(ids, float(score[b, i]), logprobs[b, i, :n].tolist()))
        results.append(nbest)
    return SearchResult(results)
