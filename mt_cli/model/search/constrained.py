"""Lexically constrained beam search: dynamic beam allocation (Post & Vilar, NAACL 2018).

Every hypothesis tracks which target phrases (piece ids) it has produced; each step's
candidates are the beam's overall best, each hypothesis' best, and every token that
advances a constraint; the beam is then shared out between "banks" by the number of
constraint tokens met, so partly constrained hypotheses are not crowded out by fluent
unconstrained ones.  Two rules make the guarantee hard (every constraint in every output):
eos is only allowed once all phrases are met, and a hypothesis whose remaining length only
just fits its unmet pieces may only take a constraint-advancing token.  The caller extends
each sentence's length limit to fit its constraints.

Why on the host and not inside the compiled search: constraint bookkeeping is ragged
(per hypothesis sets and positions) while the model step is not.  The step (cache reorder,
decoder, log-softmax) runs compiled; the choice of beams runs in numpy/Python, which costs
little next to the decoder on a CPU.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from mt_cli.core.config import DecodeConfig
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.tokenizer import BOS_ID, EOS_ID
from mt_cli.model.attention import NEG_INF
from mt_cli.model.search.shared import SearchModel, ban_bias, top_k_wide


@dataclass(frozen=True)
class ConstraintState:
    """Which phrases a hypothesis has met, and how far into one it is (phrase, pieces matched)."""

    phrases: tuple[tuple[int, ...], ...]
    met: frozenset[int] = frozenset()
    progress: tuple[int, int] | None = None

    def advance(self, token: int) -> ConstraintState:
        """The state after `token`: continue the phrase in progress, else (re)start one."""
        if self.progress is not None:
            phrase, matched = self.progress
            if self.phrases[phrase][matched] == token:
                return self._matched(phrase, matched + 1)
        for phrase, ids in enumerate(self.phrases):
            if phrase not in self.met and ids[0] == token:
                return self._matched(phrase, 1)
        return ConstraintState(self.phrases, self.met) if self.progress is not None else self

    def _matched(self, phrase: int, matched: int) -> ConstraintState:
        if matched == len(self.phrases[phrase]):
            return ConstraintState(self.phrases, self.met | {phrase})
        return ConstraintState(self.phrases, self.met, (phrase, matched))

    def advancing_tokens(self) -> set[int]:
        """Tokens that bring the hypothesis closer to meeting all phrases."""
        if self.progress is not None:
            phrase, matched = self.progress
            return {self.phrases[phrase][matched]}
        return {ids[0] for phrase, ids in enumerate(self.phrases) if phrase not in self.met}

    def met_tokens(self) -> int:
        """Constraint pieces produced so far (the bank of the hypothesis)."""
        done = sum(len(self.phrases[p]) for p in self.met)
        return done + (self.progress[1] if self.progress is not None else 0)

    def needed(self) -> int:
        """Pieces still to produce before every phrase is met."""
        return sum(len(ids) for ids in self.phrases) - self.met_tokens()


@dataclass
class _Hyp:
    tokens: list[int]
    score: float  # summed log-probability
    token_lps: list[float]
    state: ConstraintState
    parent: int = 0  # its parent's slot in the previous beam (the cache row it continues)


@dataclass
class _Sentence:
    """The beam of one sentence between steps."""

    max_len: int  # tokens allowed before eos
    alive: list[_Hyp]
    finished: list[Hypothesis] = field(default_factory=list)
    done: bool = False


def _length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


class _Candidate:
    """`hyp` (in beam slot `slot`) continued by `token` with log-probability `lp`."""

    __slots__ = ("hyp", "lp", "slot", "state", "token")

    def __init__(self, hyp: _Hyp, slot: int, token: int, lp: float, state: ConstraintState) -> None:
        self.hyp, self.slot, self.token, self.lp, self.state = hyp, slot, token, lp, state

    @property
    def score(self) -> float:
        return self.hyp.score + self.lp


def _allocate(candidates: list[_Candidate], beam: int) -> list[_Candidate]:
    """Dynamic beam allocation: round robin over banks (constraint pieces met), most met first,
    each bank giving its best remaining candidate, until the beam is full."""
    banks: dict[int, list[_Candidate]] = {}
    for cand in sorted(candidates, key=lambda c: -c.score):
        banks.setdefault(cand.state.met_tokens(), []).append(cand)
    order = sorted(banks, reverse=True)
    chosen: list[_Candidate] = []
    while len(chosen) < beam and any(banks[b] for b in order):
        for bank in order:
            if banks[bank] and len(chosen) < beam:
                chosen.append(banks[bank].pop(0))
    return chosen


class _ConstrainedBeam:
    """Host side of the search for one batch: candidates, allocation, finished hypotheses."""

    def __init__(self, options: DecodeConfig) -> None:
        self.k, self.alpha, self.n_best = options.beam_size, options.length_penalty, options.n_best

    def expand(self, sentence: _Sentence, logprobs: np.ndarray, best: np.ndarray, step: int) -> list[_Candidate]:
        """Allowed continuations of each alive hypothesis (rows of `logprobs` and of its k best
        tokens `best`, in beam order)."""
        remaining = sentence.max_len - step - 1  # tokens still allowed after this one
        candidates = []
        for row, hyp in enumerate(sentence.alive):
            lp = logprobs[row]
            for token in {*best[row].tolist(), *hyp.state.advancing_tokens(), EOS_ID}:
                if token == EOS_ID:
                    if hyp.state.needed() == 0:
                        candidates.append(_Candidate(hyp, row, token, float(lp[token]), hyp.state))
                    continue
                state = hyp.state.advance(token)
                if state.needed() <= remaining and lp[token] > NEG_INF / 2:  # not a banned token
                    candidates.append(_Candidate(hyp, row, token, float(lp[token]), state))
        return candidates

    def select(self, sentence: _Sentence, candidates: list[_Candidate], step: int) -> None:
        """Finished candidates join the n-best; the rest are shared out into the new beam."""
        for cand in candidates:
            if cand.token == EOS_ID:
                lps = [*cand.hyp.token_lps, cand.lp]
                sentence.finished.append(Hypothesis(ids=cand.hyp.tokens, token_logprobs=lps,
                                                    score=cand.score / _length_penalty(step + 1, self.alpha)))
        sentence.finished.sort(key=lambda h: -h.score)
        del sentence.finished[self.k:]
        growing = [c for c in candidates if c.token != EOS_ID] if step < sentence.max_len else []
        sentence.alive = [_Hyp([*c.hyp.tokens, c.token], c.score, [*c.hyp.token_lps, c.lp], c.state, c.slot)
                          for c in _allocate(growing, self.k)]
        sentence.done = not sentence.alive or self._cannot_improve(sentence)

    def _cannot_improve(self, sentence: _Sentence) -> bool:
        """No alive hypothesis can beat the n-th best finished one (log-probabilities only fall)."""
        if len(sentence.finished) < self.n_best:
            return False
        best_alive = max(h.score for h in sentence.alive)
        return sentence.finished[self.n_best - 1].score > best_alive / _length_penalty(sentence.max_len + 1, self.alpha)


_STEPS: weakref.WeakKeyDictionary[SearchModel, dict[int, Callable]] = weakref.WeakKeyDictionary()


def _relaxed_spec(structure: Any, key: str = "") -> Any:
    """Input signature of a decoder cache: weights keep their shapes, attention keys/values
    their head size, all else is relaxed, so new batch sizes, source lengths and steps reuse
    one trace (a shape-polymorphic dispatch over a cache of many tensors cost ~40 ms a call)."""
    if isinstance(structure, dict):
        return {name: _relaxed_spec(value, "weights" if key == "weights" else name)
                for name, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(_relaxed_spec(value, key) for value in structure)
    rank = structure.shape.rank
    if key == "weights":
        shape = structure.shape
    elif key.endswith(("_k", "_v")):
        shape = [None] * (rank - 1) + [structure.shape[-1]]
    else:
        shape = [None] * rank
    return tf.TensorSpec(shape, structure.dtype)


def _compiled_step(model: SearchModel, cache: dict, k: int) -> Callable:
    """(previous tokens [R], step, cache, beam order [R]) -> (log-probabilities [R, V], each
    row's k best tokens [R, k], cache), traced once per model and beam size."""
    steps = _STEPS.setdefault(model, {})
    if k not in steps:
        model_ref = weakref.ref(model)
        ban = ban_bias(model.target_vocab_size)

        def step(prev: tf.Tensor, position: tf.Tensor, cache: dict, order: tf.Tensor) -> tuple:
            m = model_ref()
            assert m is not None, "model was garbage collected"
            cache = m.select_cache(cache, tf.range(tf.shape(order)[0] // k), order)  # every sentence kept
            logits, cache = m.decode_step(prev, position, cache, logits_bias=ban)
            logprobs = tf.nn.log_softmax(logits)
            return logprobs, top_k_wide(logprobs, min(k, m.target_vocab_size))[1], cache

        signature = [tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32), _relaxed_spec(cache),
                     tf.TensorSpec([None], tf.int32)]
        steps[k] = tf.function(step, input_signature=signature, autograph=False)
    return steps[k]


def constrained_search(model: SearchModel, source_ids: np.ndarray, constraints: list[list[list[int]]],
                       options: DecodeConfig) -> list[list[Hypothesis]]:
    """n-best hypotheses (ids, scores) for a batch of source ids [B, S] whose outputs must
    each contain all of their constraint phrases (lists of target piece ids)."""
    batch, k = source_ids.shape[0], options.beam_size
    memory, source_mask = model.encode(tf.constant(source_ids))
    cache = model.init_cache(memory, source_mask, beam_size=k)
    src_len = np.sum(source_ids != 0, axis=1)
    sentences = [
        _Sentence(max_len=_max_len(model, options, int(src_len[b]), constraints[b]),
                  alive=[_Hyp([], 0.0, [], ConstraintState(tuple(map(tuple, constraints[b]))))])
        for b in range(batch)]
    beam = _ConstrainedBeam(options)
    step_fn = _compiled_step(model, cache, k)
    prev, order = np.full([batch * k], BOS_ID, np.int32), np.arange(batch * k, dtype=np.int32)
    for step in range(max(s.max_len for s in sentences) + 1):
        logprobs, best, cache = step_fn(tf.constant(prev), tf.constant(step), cache, tf.constant(order))
        logprobs, best = logprobs.numpy(), best.numpy()
        for b, sentence in enumerate(sentences):
            if not sentence.done:
                rows = slice(b * k, b * k + len(sentence.alive))
                beam.select(sentence, beam.expand(sentence, logprobs[rows], best[rows], step), step)
        if all(s.done for s in sentences):
            break
        prev, order = _next_rows(sentences, k)
    return [s.finished[:options.n_best] for s in sentences]


def _next_rows(sentences: list[_Sentence], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The tokens to feed and the cache rows each beam slot continues (free slots: row 0 of
    their sentence, whose output is ignored)."""
    prev = np.full([len(sentences) * k], EOS_ID, np.int32)
    order = np.repeat(np.arange(len(sentences), dtype=np.int32) * k, k)
    for b, sentence in enumerate(sentences):
        for slot, hyp in enumerate(sentence.alive if not sentence.done else []):
            prev[b * k + slot] = hyp.tokens[-1]
            order[b * k + slot] = b * k + hyp.parent
    return prev, order


def _max_len(model: SearchModel, options: DecodeConfig, src_len: int, phrases: list[list[int]]) -> int:
    """The usual a * source + b limit, raised to fit the constraints, capped by the model."""
    cap = model.max_length - 1
    natural = math.floor(min(options.max_length_a * src_len + options.max_length_b, cap))  # inf-safe: cap first
    return min(max(natural, sum(map(len, phrases))), cap)
