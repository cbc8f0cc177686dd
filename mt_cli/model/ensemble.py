"""Several Transformers decoded as one: the search sees a single model.

Why here and not around the search: averaging next-token log-probabilities must happen at
every step inside the compiled loop (beam, greedy, n-best, prefixes and coverage all reuse
the same search code).  ``Ensemble`` offers exactly what the search reads from a
Transformer (encode, init_cache, decode_step, select_cache, the limits), each member
keeping its own encoder memory and decoder cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from mt_cli.model.attention import AttentionRecord
from mt_cli.model.transformer import Transformer

Cache = dict[str, Any]


class Ensemble:
    """A weighted average of members' log-probabilities, renormalised by the search.

    Members must share the source and target vocabularies (the caller checks the
    tokenizers).  Weights are normalised to sum to 1, so an ensemble of a model with
    itself scores exactly like the model.  Alignments and attention maps come from the
    first member.
    """

    def __init__(self, members: Sequence[Transformer], weights: Sequence[float] | None = None) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two models")
        weights = list(weights) if weights is not None else [1.0] * len(members)
        if len(weights) != len(members) or min(weights) <= 0:
            raise ValueError(f"need {len(members)} positive weights, got {weights}")
        vocab = {m.target_vocab_size for m in members}
        if len(vocab) != 1:
            raise ValueError(f"members have different target vocabularies: {sorted(vocab)}")
        total = sum(weights)
        self.members = list(members)
        self.weights = [w / total for w in weights]
        self.target_vocab_size = members[0].target_vocab_size
        self.max_length = min(m.max_length for m in members)

    def encode(self, source: tf.Tensor) -> tuple[list[tf.Tensor], tf.Tensor]:
        """Each member's memory (a list) and the shared source mask."""
        encoded = [m.encode(source) for m in self.members]
        return [memory for memory, _ in encoded], encoded[0][1]

    def init_cache(self, memory: list[tf.Tensor], source_mask: tf.Tensor,
                   beam_size: int | tf.Tensor = 1, shortlist: tf.Tensor | None = None) -> Cache:
        return {"members": [m.init_cache(mem, source_mask, beam_size, shortlist)
                            for m, mem in zip(self.members, memory)]}

    def cache_shape_invariants(self, cache: Cache) -> Cache:
        return {"members": [Transformer.cache_shape_invariants(c) for c in cache["members"]]}

    def select_cache(self, cache: Cache, sentences: tf.Tensor, rows: tf.Tensor) -> Cache:
        return {"members": [Transformer.select_cache(c, sentences, rows) for c in cache["members"]]}

    def decode_step(
        self,
        token_ids: tf.Tensor,
        step: tf.Tensor,
        cache: Cache,
        return_attention: bool = False,
        logits_bias: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, Cache] | tuple[tf.Tensor, Cache, tf.Tensor]:
        """The weighted mean of the members' log-softmax [rows, V] (the search renormalises);
        with ``return_attention`` the weighted mean of their cross-attention too."""
        mixed: tf.Tensor | None = None
        attention: tf.Tensor | None = None
        caches = []
        for member, member_cache, weight in zip(self.members, cache["members"], self.weights):
            out = member.decode_step(token_ids, step, member_cache, return_attention, logits_bias)
            part = weight * tf.nn.log_softmax(tf.cast(out[0], tf.float32))
            mixed = part if mixed is None else mixed + part
            caches.append(out[1])
            if return_attention:
                attention = weight * out[2] if attention is None else attention + weight * out[2]
        new_cache = {"members": caches}
        if return_attention:
            return mixed, new_cache, attention
        return mixed, new_cache

    def attention(self, source: tf.Tensor, target_in: tf.Tensor) -> AttentionRecord:
        """The first member's attention (alignments of an ensemble's output)."""
        return self.members[0].attention(source, target_in)
