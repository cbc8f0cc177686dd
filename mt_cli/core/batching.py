"""Length bucketing: one rule for cutting length-ordered examples into padded batches.

Training (by shuffled windows), dev loss (file order) and translation (longest first) all
group examples the same way: walk them in a given order and close a batch before the
padded size (longest x count) would pass the token budget or the sentence limit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

log = logging.getLogger("mt_cli")
T = TypeVar("T")
R = TypeVar("R", bound=Sequence)  # a row: a list of ids, or a line of text


def round_up(n: int, multiple: int) -> int:
    """`n` rounded up to a multiple (pad lengths for XLA's few distinct shapes)."""
    return -(-n // multiple) * multiple


def cut_batches(order: Iterable[int], lengths: Sequence[int], max_tokens: int = 0,
                max_sentences: int = 0) -> Iterator[list[int]]:
    """Consecutive groups of `order` whose padded size stays within the limits (0 = none).

    A single example over `max_tokens` still forms its own batch: nothing is ever dropped.
    """
    batch: list[int] = []
    longest = 0
    for index in order:
        length = int(lengths[index])
        grown = max(longest, length)
        full = ((max_tokens and grown * (len(batch) + 1) > max_tokens)
                or (max_sentences and len(batch) >= max_sentences))
        if batch and full:
            yield batch
            batch, grown = [], length
        batch.append(index)
        longest = grown
    if batch:
        yield batch


def longest_first_batches(lengths: Sequence[int], batch_tokens: int, batch_size: int) -> list[list[int]]:
    """Indices of the non-empty inputs in batches of similar length, longest first (little
    padding; callers put results back in input order). A token budget, when set, wins."""
    order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: -lengths[i])
    if batch_tokens:
        return list(cut_batches(order, lengths, max_tokens=batch_tokens))
    return list(cut_batches(order, lengths, max_sentences=batch_size))


def cut_rows(rows: list[R], limit: int, first_line: int, label: str, unit: str, outcome: str) -> list[R]:
    """Rows (id lists or strings) cut to `limit` items, each cut announced as
    "{label} N: {len} {unit}, {outcome}" with its line number (never dropped)."""
    out = []
    for offset, row in enumerate(rows):
        if len(row) > limit:
            log.warning(f"{label} {first_line + offset}: {len(row)} {unit}, {outcome}")
            row = row[:limit]
        out.append(row)
    return out


def truncated(rows: list[list[T]], limit: int, first_line: int, label: str = "line") -> list[list[T]]:
    """Rows cut to `limit` tokens, each cut announced with its line number (never dropped)."""
    return cut_rows(rows, limit, first_line, label, "tokens", f"truncated to {limit} (the model's limit)")
