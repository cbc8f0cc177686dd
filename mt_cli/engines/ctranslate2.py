"""Translate with CTranslate2 (a model directory's conversion, or a CTranslate2 export), under
the same contract as the native engine: N lines in, N results out in input order, empty in ->
empty out, over-long lines truncated with a warning naming them. Imports no TensorFlow (a
CTranslate2 model never needs it).

What CTranslate2 does differently, and how this engine makes it agree: CTranslate2 divides a
finished hypothesis's log-probability by len ** alpha, the native search by GNMT's
((5 + len) / 6) ** alpha (len counting the eos in both); so the beam's finished hypotheses are
asked for and re-scored with GNMT's formula (`gnmt_rescored`), which gives the native scores
and mostly the native choice (search paths may still differ). A hypothesis cut at its output
limit keeps CTranslate2's log-probability without the eos the native search forces there.
Its coverage penalty is its own (`auto` takes the native engine for one). CTranslate2 stops a
whole batch at one output limit, so batches are split where their lines' limits (a * source
length + b) differ (`same_limit_batches`) and each line is searched to its own. Where
the model has a vocabulary map (vmap.txt, named and hashed by the manifest), CTranslate2
scores only each batch's candidates unless `decode.vocabulary_map` is off; a vmap.txt the
manifest does not name is refused, since CTranslate2 would read it unasked.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ctranslate2

from mt_cli.core.batching import longest_first_batches, truncated
from mt_cli.core.compute_type import compute_type_for, map_loss
from mt_cli.core.config import CONFIG_FILE, DecodeConfig, ctranslate2_fields, ctranslate2_notes, native_feature
from mt_cli.core.errors import CheckpointError, ConfigError
from mt_cli.core.hardware import this_cpu, usable_cores
from mt_cli.core.hypothesis import Hypothesis
from mt_cli.core.tokenizer import cut_lines, line_char_limit
from mt_cli.engines.locate import CTRANSLATE2, check_unlisted_map
from mt_cli.engines.opened import ModelDir, open_model_dir

log = logging.getLogger("mt_cli")
EOS_PIECE = "</s>"
SUPPRESSED = [["<pad>"], ["<s>"]]  # as in the native search: pad and bos are never generated
# CTranslate2 stops a beam once beam * patience hypotheses finished; the native search goes on
# while an alive one can still win. Patience 2 finds the native choice more often (test2016:
# 13 of 1,000 lines differ instead of 20; the demo's test split: 0 of 500 instead of 6) but
# decodes 19% slower (AMD EPYC Zen 3, 2 cores: 9.96 s against 8.39 s), so 1, CTranslate2's own.
BEAM_PATIENCE = 1.0


def _check_supported(decode: DecodeConfig) -> None:
    """Options only the native engine has (DecodeConfig's `ctranslate2="native"`): an error,
    not a silent difference."""
    for field in ctranslate2_fields("native"):
        if decode.in_effect(field.name):
            raise ConfigError(f"{native_feature(field.name)} needs the native engine (translate with the model "
                              "directory this CTranslate2 model was exported from)")


def _rescored(d: DecodeConfig) -> bool:
    """With a length penalty, CTranslate2's hypotheses get GNMT's scores (greedy and sampling too:
    the native engine normalises every hypothesis with GNMT's formula)."""
    return d.length_penalty != 0


def gnmt_rescored(found: list[tuple[list[str], float]], alpha: float) -> list[tuple[list[str], float]]:
    """(pieces, CTranslate2 score) best first under GNMT's length penalty, as the native search
    ranks them: CTranslate2's score is logp / n ** alpha, GNMT's logp / ((5 + n) / 6) ** alpha,
    n counting the eos in both (measured: CTranslate2 4.8 divides by the length with it)."""
    rescored = [(pieces, _gnmt(score, len([p for p in pieces if p != EOS_PIECE]), alpha)) for pieces, score in found]
    return sorted(rescored, key=lambda pair: -pair[1])


def _gnmt(score: float, length: int, alpha: float) -> float:
    """score * n ** a / ((5 + n) / 6) ** a with n = pieces + eos, as one power (an alpha of 1e300
    must not overflow into an exception: its score is -inf, as the native engine's)."""
    steps = length + 1
    try:
        return score * (6.0 * steps / (5.0 + steps)) ** alpha
    except OverflowError:
        return float("-inf") if score < 0 else score


def same_limit_batches(batches: list[list[int]], limit_of: Callable[[int], int]) -> list[list[int]]:
    """Each batch split where its lines' output limits differ, largest first.

    Why: CTranslate2 stops a whole batch at one max_decoding_length. With the longest line's,
    a shorter line's beam ran past its own limit: cut afterwards, its translation and score
    depended on the lines batched with it (a repetitive output differed between --batch-size 1
    and 32, found by the suite). With one limit per batch, each line is searched exactly as
    alone and as the native engine searches it. Batches come longest first, so the split
    mostly falls at length boundaries.
    """
    out: list[list[int]] = []
    for batch in batches:
        by_limit: dict[int, list[int]] = {}
        for i in batch:
            by_limit.setdefault(limit_of(i), []).append(i)
        out.extend(by_limit[limit] for limit in sorted(by_limit, reverse=True))
    return out


class CT2Translator:
    """A CTranslate2 model, its tokenizers and decoding options."""

    def __init__(self, model: str | Path | ModelDir, overrides: list[str] | None = None, threads: int = 0,
                 decode_flags: Mapping[str, Any] | None = None, parallel_batches: bool = False) -> None:
        """`parallel_batches`: decode whole batches side by side, one per core, each on one thread
        (CTranslate2's inter_threads), for jobs of many batches (files); else one batch at a time
        on every core (intra_threads), for a server's or a stream's small batches and latency.
        Measured (AMD EPYC, 2 cores, flags: avx2 avx512f avx512_bf16; transformer-small, test2016,
        beam 4): 1.4x the sentences/s in float32 and 3.9x in int8, whose matrix products gain
        nothing from a second thread. A batch's output is the same either way."""
        opened = open_model_dir(model, overrides, decode_flags)
        files = opened.conversion
        if files is None:
            raise CheckpointError(f"{opened.path}: holds no CTranslate2 conversion (an older model directory); "
                                  "use --engine native, or mt-cli export --format ctranslate2")
        opened = opened.verify(None if opened.engine == CTRANSLATE2 else [*files, CONFIG_FILE])
        check_unlisted_map(opened.path, opened.manifest)
        self.vocabulary_map = opened.vocabulary_map is not None  # verified with the conversion
        config = opened.config
        self.tokenizers = opened.tokenizers()
        self.languages = opened.languages
        self.decode: DecodeConfig = config.decode
        for note in [*self.decode.ignored_options(), *ctranslate2_notes(config.decode_named)]:
            log.warning(note)
        _check_supported(self.decode)
        self.max_source_tokens = config.model.max_length
        self.directory = opened.path
        self.precision = compute_type_for(opened.manifest, self.decode.compute_type, this_cpu())
        lost = map_loss(opened.manifest.get(CTRANSLATE2, {}).get("dev_check"), self.precision.value)
        if self.vocabulary_map and self.decode.vocabulary_map and lost is not None:
            log.warning(lost)
        # seeded sampling repeats only on one worker: each would draw from its own generator
        self.parallel = parallel_batches and not self.decode.sampling
        workers = (threads or usable_cores()) if self.parallel else 1
        self.translator = ctranslate2.Translator(str(opened.path), device="cpu", inter_threads=workers,
                                                 intra_threads=1 if self.parallel else threads,
                                                 compute_type=self.precision.value)
        if self.decode.seed is not None:
            ctranslate2.set_random_seed(self.decode.seed)

    def _source_pieces(self, lines: list[str], first_line: int, d: DecodeConfig) -> list[list[str]]:
        """Source pieces after the target-language tag (as the native engine reads them), cut
        to the model's limit (CTranslate2 appends the eos); an empty line stays empty."""
        tags = self.languages.source_tags(d.target_lang)
        rows = truncated(self.tokenizers.source.encode_pieces(lines), self.max_source_tokens - 1 - len(tags),
                         first_line)
        return [tags + row if row else [] for row in rows]

    def _prefix_pieces(self, prefixes: list[str], first_line: int) -> list[list[str]]:
        return truncated(self.tokenizers.target.encode_pieces(prefixes), self.max_source_tokens - 2,
                         first_line, "prefix of line")

    def _limit(self, d: DecodeConfig, source_pieces: int, prefix_pieces: int = 0) -> int:
        """Output tokens before eos: a * source length (with its eos) + b, as the native search."""
        cap = self.max_source_tokens - 1  # capped before floor: a * length may overflow to inf
        limit = math.floor(min(d.max_length_a * (source_pieces + 1) + d.max_length_b, cap))
        return max(limit, prefix_pieces, 1)

    def _options(self, d: DecodeConfig, limit: int, prefixed: bool = False) -> dict[str, Any]:
        """translate_batch options from DecodeConfig and the batch's output limit (`_limit`, the
        same for every line of it); a batch holding a target prefix is decoded without the
        vocabulary map (`_uses_map`)."""
        sampling = d.sampling
        beam = 1 if sampling else d.beam_size
        # coverage only applies to beam search (ignored_options says so); CTranslate2 4.x crashes
        # the process (SIGSEGV) on a coverage penalty with beam_size 1, greedy or sampling
        coverage = d.coverage_penalty if beam > 1 else 0.0
        return {"suppress_sequences": SUPPRESSED, "min_decoding_length": 0, "max_input_length": 0,
                "beam_size": beam, "num_hypotheses": beam if _rescored(d) and beam > 1 else d.n_best,
                "patience": BEAM_PATIENCE,
                "length_penalty": d.length_penalty, "coverage_penalty": coverage,
                "max_decoding_length": limit, "return_scores": True,
                "use_vmap": self._uses_map(d, prefixed),
                "sampling_topk": (d.sampling_topk or 0) if sampling else 1,
                "sampling_topp": d.sampling_topp, "sampling_temperature": d.sampling_temperature}

    def _uses_map(self, d: DecodeConfig, prefixed: bool) -> bool:
        """Whether a batch is decoded with the vocabulary map: where the model has one and
        decode.vocabulary_map allows it, never for a batch with target prefixes. CTranslate2 4.x
        looks prefix pieces up in a table of their places among the candidates that it extends
        but never clears from batch to batch, so a later prefixed batch was forced to other
        pieces or failed with an IndexError (tests/test_ct2_vocabulary_map.py). A batch without
        the map resets that table (its candidates never hold <pad>, so they are never the whole
        vocabulary, which CTranslate2 would take for no change)."""
        return self.vocabulary_map and d.vocabulary_map and not prefixed

    def translate_nbest(self, lines: list[str], prefixes: list[str] | None = None,
                        first_line: int = 1, constraints: list[str] | None = None,
                        decode: DecodeConfig | None = None) -> list[list[Hypothesis]]:
        """n-best hypotheses for each line, in input order (`first_line` numbers warnings).
        `decode` replaces the engine's own options for this call only (its seed excepted: the
        random seed is CTranslate2's, process-wide, and set once at loading)."""
        d = self.decode if decode is None else decode
        if decode is not None:
            _check_supported(d)
        if constraints is not None and any(line.strip() for line in constraints):
            raise ConfigError("constraints need the native engine (CTranslate2 has no lexically constrained "
                              "decoding); translate with the model directory this export came from")
        bound = line_char_limit(self.max_source_tokens)  # before SentencePiece, whose memory grows with a line
        sources = self._source_pieces(cut_lines(lines, bound, first_line), first_line, d)
        prefix_pieces = (self._prefix_pieces(cut_lines(prefixes, bound, first_line, "prefix of line"), first_line)
                         if prefixes else None)
        results: list[list[Hypothesis]] = [[Hypothesis()] for _ in lines]
        # side by side only where a batch's output cannot depend on the others: not with the map
        # (CTranslate2 keeps candidate state between batches) nor with seeded sampling
        side_by_side = self.parallel and not (self.vocabulary_map and d.vocabulary_map) and not d.sampling

        def own_limit(i: int) -> int:
            return self._limit(d, len(sources[i]), len(prefix_pieces[i]) if prefix_pieces else 0)

        submitted = []
        for batch in same_limit_batches(longest_first_batches([len(s) for s in sources], d.batch_tokens,
                                                              d.batch_size), own_limit):
            forced = [prefix_pieces[i] or None for i in batch] if prefix_pieces is not None else []
            options = self._options(d, own_limit(batch[0]), prefixed=any(forced))
            if forced:
                options["target_prefix"] = forced
            submitted.append((batch, self.translator.translate_batch([sources[i] for i in batch],
                                                                     asynchronous=side_by_side, **options)))
        for batch, found in submitted:
            if side_by_side:
                found = [pending.result() for pending in found]
            for i, result in zip(batch, found):
                found_pairs = list(zip(result.hypotheses, result.scores))
                if _rescored(d):
                    found_pairs = gnmt_rescored(found_pairs, d.length_penalty)[:d.n_best]
                hyps = [self._hypothesis(p, s) for p, s in found_pairs]
                results[i] = hyps or [Hypothesis(score=float("-inf"))]
        return results

    def _hypothesis(self, pieces: list[str], score: float) -> Hypothesis:
        target = self.tokenizers.target
        pieces = [p for p in pieces if p != EOS_PIECE]
        return Hypothesis(ids=[target.processor.PieceToId(p) for p in pieces], score=float(score),
                          text=target.decode_pieces([pieces])[0], pieces=pieces)

    def translate(self, lines: list[str], first_line: int = 1) -> list[str]:
        """Best translation per line, in input order."""
        return [nbest[0].text for nbest in self.translate_nbest(lines, first_line=first_line)]
