"""Length bucketing: one rule for cutting length-ordered examples into padded batches.

Training (by shuffled windows), dev loss (file order) and translation (longest first) all
group examples the same way: walk them in a given order and close a batch before the
padded size (longest x count) would pass the token budget or the sentence limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence


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
