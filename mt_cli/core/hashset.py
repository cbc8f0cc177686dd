"""A set of 64-bit hashes at 8 bytes each: the duplicate check over millions of pairs.

Why not a Python set: an int in a set costs ~70 bytes, 350 MB for 5 M pairs; here the hashes
sit in a few sorted numpy runs (merged when a newer one grows as large as the one before, as
a log-structured merge does: O(log n) runs), so membership is a binary search per run and memory stays 8 bytes a hash
(twice that for a moment while the largest runs merge).
"""

from __future__ import annotations

import numpy as np


class HashSet:
    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """A bool per hash: whether it was added before."""
        order = np.argsort(hashes)
        query = hashes[order]  # sorted queries walk each run in order: far fewer cache misses
        found = np.zeros(len(hashes), bool)
        for run in self._runs:
            at = np.searchsorted(run, query)
            inside = at < len(run)
            found[inside] |= run[at[inside]] == query[inside]
        result = np.empty(len(hashes), bool)
        result[order] = found
        return result

    def add(self, hashes: np.ndarray) -> None:
        """Add hashes not in the set (the caller checked), each once."""
        if not len(hashes):
            return
        self._runs.append(np.sort(np.asarray(hashes, dtype=np.uint64)))
        while len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1]):  # a binary counter
            last = self._runs.pop()
            merged = np.concatenate((self._runs.pop(), last))
            merged.sort(kind="stable")  # timsort: two sorted runs merge in linear time
            self._runs.append(merged)

    def first_seen(self, hashes: np.ndarray) -> np.ndarray:
        """Which of `hashes` (in order) are new: not in the set and not earlier in `hashes`
        itself; those are added. Returns a bool per hash."""
        new = np.zeros(len(hashes), bool)
        if not len(hashes):
            return new
        _, first = np.unique(hashes, return_index=True)
        new[first] = True
        new &= ~self.contains(hashes)
        self.add(hashes[new])
        return new
