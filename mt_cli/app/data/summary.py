"""What a run found, in memory that does not grow with the corpus: counts per rule, length
histograms (percentiles read from them), language counts and overlaps per --against file."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from mt_cli.core.clean_rules import NOT_LOOKED, UNSURE_LANG, ChunkVerdict
from mt_cli.core.clean_settings import RULE_CODE, RULES

MAX_CHARS_BIN = 10_000  # longer lines share the last bin (the maximum is kept exactly)
MAX_WORDS_BIN = 2_000
RATIO_STEPS = 50  # log2 ratio bins per doubling (1.4 % apart)
RATIO_BINS = 10 * RATIO_STEPS  # ratios from 1/1024 to 1024
PERCENTILES = (1, 5, 50, 95, 99)
SIDES = ("source", "target")


class Summary:
    def __init__(self, against_files: int) -> None:
        self.read = 0
        self.kept = 0
        self.rules = np.zeros(len(RULES) + 1, np.int64)
        self.against = np.zeros(against_files, np.int64)
        self.chars = np.zeros((2, MAX_CHARS_BIN + 1), np.int64)
        self.words = np.zeros((2, MAX_WORDS_BIN + 1), np.int64)
        self.max_chars = [0, 0]
        self.max_words = [0, 0]
        self.ratio_chars = np.zeros(2 * RATIO_BINS + 1, np.int64)
        self.ratio_words = np.zeros(2 * RATIO_BINS + 1, np.int64)
        self.languages = [Counter(), Counter()]

    def add(self, verdict: ChunkVerdict, codes: np.ndarray) -> None:
        """Count one judged chunk; `codes` are its final verdicts (duplicates decided)."""
        self.read += len(codes)
        self.kept += int((codes == 0).sum())
        self.rules += np.bincount(codes, minlength=len(RULES) + 1)
        self.against += verdict.against.sum(axis=0)
        measured = verdict.measured & (verdict.chars > 0).all(axis=1)
        chars, words = verdict.chars[measured].astype(np.int64), verdict.words[measured].astype(np.int64)
        for side in range(2):
            self.chars[side] += np.bincount(np.minimum(chars[:, side], MAX_CHARS_BIN), minlength=MAX_CHARS_BIN + 1)
            self.words[side] += np.bincount(np.minimum(words[:, side], MAX_WORDS_BIN), minlength=MAX_WORDS_BIN + 1)
            if len(chars):
                self.max_chars[side] = max(self.max_chars[side], int(chars[:, side].max()))
                self.max_words[side] = max(self.max_words[side], int(words[:, side].max()))
        self.ratio_chars += _ratio_hist(chars)
        self.ratio_words += _ratio_hist(words)
        distinct = codes != RULE_CODE["duplicate"]
        for side in range(2):
            found = verdict.lang[distinct & (verdict.lang[:, side] != NOT_LOOKED), side]
            counts = np.bincount(found[found >= 0], minlength=len(verdict.languages))
            self.languages[side].update({verdict.languages[i]: int(n) for i, n in enumerate(counts) if n})
            self.languages[side]["unsure"] += int((found == UNSURE_LANG).sum())

    def rule_counts(self) -> dict[str, int]:
        return {name: int(self.rules[i + 1]) for i, name in enumerate(RULES)}

    def stats(self, lang_id: bool) -> dict:
        """Lengths and ratios (source / target) as percentiles, languages as shares."""
        out: dict = {}
        for side, name in enumerate(SIDES):
            out[name] = {"chars": _percentiles(self.chars[side], self.max_chars[side]),
                         "words": _percentiles(self.words[side], self.max_words[side])}
            if lang_id:
                out[name]["languages"] = _shares(self.languages[side])
        out["ratio_chars"] = _ratio_percentiles(self.ratio_chars)
        out["ratio_words"] = _ratio_percentiles(self.ratio_words)
        return out


def _ratio_hist(lengths: np.ndarray) -> np.ndarray:
    valid = (lengths > 0).all(axis=1)
    ratio = np.log2(lengths[valid, 0] / lengths[valid, 1]) * RATIO_STEPS
    bins = np.clip(np.rint(ratio), -RATIO_BINS, RATIO_BINS).astype(np.int64) + RATIO_BINS
    return np.bincount(bins, minlength=2 * RATIO_BINS + 1)


def _quantile_bins(hist: np.ndarray) -> list[int] | None:
    total = int(hist.sum())
    if not total:
        return None
    cumulative = np.cumsum(hist)
    return [int(np.searchsorted(cumulative, math.ceil(p / 100 * total))) for p in PERCENTILES]


def _percentiles(hist: np.ndarray, maximum: int) -> dict:
    bins = _quantile_bins(hist)
    if bins is None:
        return {}
    return {**{f"p{p}": b for p, b in zip(PERCENTILES, bins)}, "max": maximum}


def _ratio_percentiles(hist: np.ndarray) -> dict:
    bins = _quantile_bins(hist)
    if bins is None:
        return {}
    return {f"p{p}": round(2 ** ((b - RATIO_BINS) / RATIO_STEPS), 3) for p, b in zip(PERCENTILES, bins)}


def _shares(counts: Counter) -> dict:
    total = sum(counts.values())
    if not total:
        return {}
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {"sides": total, **{code: round(n / total, 4) for code, n in ranked if n}}
