"""The compiled entry points: ``search`` (ids in, n-best hypotheses out) and ``bound_search``,
and the cache of compiled searches (one per model and graph key).

The whole decoding loop of one batch runs inside one compiled ``tf.function`` (one per model
and graph key, with ``None`` batch/length dims so new shapes do not retrace).  ``compile_search``
is the one place where ``DecodeConfig`` values meet the graph: it reads only `graph` options
and whether `switch` options are on; every value goes in as ``SearchParams``.  Only the final
n-best tensors come back to Python.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf

from mt_cli.core.config import DecodeConfig
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.tokenizer import EOS_ID
from mt_cli.model.search.beam import Beam
from mt_cli.model.search.greedy_sampling import GreedyOrSampling
from mt_cli.model.search.options import TENSOR_OPTIONS, SearchParams, graph_key, search_mode
from mt_cli.model.search.shared import SearchModel, setup, to_vocabulary


@dataclass(frozen=True)
class SearchResult:
    """Per input sentence, its n-best hypotheses (ids only), best first."""

    hypotheses: list[list[Hypothesis]]

    def best(self) -> list[list[int]]:
        return [nbest[0].ids if nbest else [] for nbest in self.hypotheses]


# One compiled search per model and graph key; weak keys, so the cache never keeps a model alive.
_COMPILED: weakref.WeakKeyDictionary[SearchModel, dict[tuple, Callable]] = weakref.WeakKeyDictionary()


def compiled(model: SearchModel, options: DecodeConfig,
             build: Callable[[SearchModel, DecodeConfig], Callable]) -> Callable:
    """The model's compiled search for `options`' graph key, built by `build` on first use."""
    per_model = _COMPILED.setdefault(model, {})
    key = graph_key(options)
    if key not in per_model:
        per_model[key] = build(model, options)
    return per_model[key]


def tracing_counts(model: SearchModel) -> dict[tuple, int]:
    """Per graph key, how often the model's compiled search was traced (tests: 1 = no retrace)."""
    return {key: fn.experimental_get_tracing_count() for key, fn in _COMPILED.get(model, {}).items()}


def compile_search(model: SearchModel, options: DecodeConfig) -> Callable:
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
        params = SearchParams.unpack(values, seed)
        rows = 1 if mode == "greedy" else beam
        ids = shortlist if use_shortlist else None
        batch = setup(m, source, prefix, params, rows, ids)
        if mode == "beam":
            out = Beam(m, batch, params, beam, use_coverage).run()
        else:
            out = GreedyOrSampling(m, batch, params, rows, sample).run()
        return out if ids is None else to_vocabulary(out, ids)

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


def bound_search(model: SearchModel, options: DecodeConfig) -> Callable[[tf.Tensor, tf.Tensor], dict]:
    """The compiled search with `options` bound: (source [B, S], prefix [B, P]) -> the raw
    tensors (tokens, logprobs, length, score, valid), for graphs that embed it (SavedModel)."""
    options = replace(options, shortlist=0)  # a shortlist is made per batch, by the caller
    run = compile_search(model, options)
    values, seed = SearchParams.pack(options)
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
    run = compiled(model, options, compile_search)
    if (shortlist is None) != (options.shortlist == 0):
        raise ValueError("give a shortlist exactly when options.shortlist is set")
    ids = tf.zeros([0], tf.int32) if shortlist is None else tf.constant(shortlist, tf.int32)
    values, seed = SearchParams.pack(options)
    out = run(source, prefix, values, seed, ids)
    return _to_python(out, options.n_best)


def _to_python(out: dict[str, tf.Tensor], n_best: int) -> SearchResult:
    """The valid n-best entries as hypotheses, eos dropped from the ids (not from the log-probs)."""
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
