"""`mt-cli data clean`'s rules applied in this process to text pairs as training encodes its
cache (`data.clean:`): the same Judge and duplicate set, so a config's cleaning and the
command's agree pair for pair; training's encoding is one pass in one process already, and the
cache makes it a one-time cost.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mt_cli.core.clean_rules import Judge, final_codes, normalized_hash
from mt_cli.core.clean_settings import RULES, CleanConfig
from mt_cli.core.hashset import HashSet
from mt_cli.core.langid import supported
from mt_cli.core.textio import chunked, iter_lines


def against_table(paths: Iterable[str | Path], lenient: bool) -> np.ndarray:
    """The sorted normalised hashes of the non-empty lines of `paths` (dev and test sets): a
    training pair with either side among them is dropped as overlap."""
    hashes = {normalized_hash(line) for path in paths for line in iter_lines(path, lenient) if line.strip()}
    return np.array(sorted(hashes), dtype=np.uint64)


def judged_languages(settings: CleanConfig, langs: tuple[str, str]) -> tuple[CleanConfig, tuple[str, str] | None]:
    """The settings and languages the wrong-language rule can use: off where a code is one the
    identifier does not know (`src`, `tgt`) or both sides share it."""
    known = set(supported())
    if not settings.lang_id or langs[0] == langs[1] or not set(langs) <= known:
        return dataclasses.replace(settings, lang_id=False), None
    return settings, langs


class PairFilter:
    """Keeps or drops text pairs chunk by chunk, counting each dropped pair under its rule."""

    def __init__(self, settings: CleanConfig, langs: tuple[str, str], against: np.ndarray) -> None:
        settings, judged = judged_languages(settings, langs)
        self.language_rule = judged is not None
        self.judge = Judge(settings, judged, [against] if len(against) else [])
        self.seen = HashSet() if settings.dedup else None
        self.dropped: Counter[str] = Counter()

    def keep(self, sources: Sequence[str], targets: Sequence[str]) -> list[bool]:
        """Per pair, whether every rule keeps it (duplicates judged against all earlier pairs)."""
        verdict = self.judge.judge([s.encode("utf-8", "surrogateescape") for s in sources],
                                   [t.encode("utf-8", "surrogateescape") for t in targets], [False] * len(sources))
        codes = final_codes(verdict, self.seen)
        for code in codes[codes > 0]:
            self.dropped[RULES[int(code) - 1]] += 1
        return [bool(code == 0) for code in codes]


def write_kept_pairs(source: str | Path, target: str | Path, pair_filter: PairFilter, lenient: bool,
                     out_source: Path, out_target: Path, chunk: int = 8192) -> int:
    """Stream the pairs of `source`/`target` through `pair_filter` into two new files; return
    how many were kept. Training's SentencePiece model learns from these where data.clean is on,
    so that the pieces are those of the text the model will see (not of junk it never sees)."""
    kept = 0
    pairs = zip(iter_lines(source, lenient), iter_lines(target, lenient))
    with out_source.open("w", encoding="utf-8", errors="surrogateescape") as src_out, \
            out_target.open("w", encoding="utf-8", errors="surrogateescape") as tgt_out:
        for block in chunked(pairs, chunk):
            for (s, t), keep in zip(block, pair_filter.keep([s for s, _ in block], [t for _, t in block])):
                if keep:
                    src_out.write(s + "\n")
                    tgt_out.write(t + "\n")
                    kept += 1
    return kept
