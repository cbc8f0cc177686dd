"""The CTranslate2 vocabulary map's builder (mt_cli/core/vocabulary_map.py) on synthetic id
corpora: what it maps, what it always includes, what it leaves out, and that it reads a
bounded sample however large the corpus."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from mt_cli.core.vocabulary_map import Limits, build_vocabulary_map

EOS = 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


@dataclass
class Corpus:
    """Flat id arrays and offsets, as training's EncodedCorpus holds them (sources end with eos)."""

    src: np.ndarray
    tgt: np.ndarray
    src_offsets: np.ndarray
    tgt_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.src_offsets) - 1


def corpus(pairs: list[tuple[list[int], list[int]]]) -> Corpus:
    src = [s + [EOS] for s, _ in pairs]
    tgt = [t for _, t in pairs]
    flat = [np.array([i for row in rows for i in row], np.uint16) for rows in (src, tgt)]
    return Corpus(*flat, np.cumsum([0] + [len(r) for r in src]), np.cumsum([0] + [len(r) for r in tgt]))


def vocab(prefix: str, size: int) -> list[str]:
    return SPECIALS + [f"{prefix}{i}" for i in range(4, size)]


def lines(text: str) -> dict[str, list[str]]:
    """vmap.txt parsed as CTranslate2 reads it: key, TAB, space-separated targets."""
    parsed = {}
    for line in text.splitlines():
        key, targets = line.split("\t")
        assert key not in parsed
        parsed[key] = targets.split(" ")
    return parsed


def word_pairs(count: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """Source words 4..63, each translated by target word 100 + id, in shuffled order; every
    target also holds the filler piece 70 (a frequent function word)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        words = rng.choice(np.arange(4, 64), size=rng.integers(2, 7), replace=False).tolist()
        pairs.append((words, [70] + rng.permutation([100 + w for w in words]).tolist()))
    return pairs


def test_a_piece_maps_to_what_translates_it_and_frequent_pieces_are_always_in() -> None:
    source, target = vocab("s", 64), vocab("t", 170)
    built = build_vocabulary_map([corpus(word_pairs(400, 1))], source, target, Limits(candidates=3, frequent=1))
    parsed = lines(built.text())
    assert parsed[""] == ["<unk>", "<s>", "</s>", "t70"]  # the specials, then the most frequent
    for word in range(4, 64):
        assert parsed[f"s{word}"][0] == f"t{100 + word}", word  # it always comes with it: Dice 1
        assert "t70" not in parsed[f"s{word}"] and len(parsed[f"s{word}"]) <= 3
    assert built.pairs == 400 and not built.skipped
    assert "</s>" not in parsed  # the source eos is no key (CTranslate2 looks up the pieces given)


def test_a_piece_the_target_vocabulary_shares_maps_to_itself_even_unseen() -> None:
    """Names and numbers: the same piece is a candidate, also for pieces no pair showed."""
    source = vocab("s", 64) + ["▁Paris", "2024"]
    target = vocab("t", 170) + ["2024", "▁Paris"]
    built = build_vocabulary_map([corpus(word_pairs(50, 2))], source, target, Limits(candidates=3, frequent=1))
    parsed = lines(built.text())
    assert parsed["▁Paris"] == ["▁Paris"] and parsed["2024"] == ["2024"]
    joint = build_vocabulary_map([corpus(word_pairs(50, 2))], target, target, Limits(candidates=3, frequent=1))
    assert lines(joint.text())["t5"][0] == "t5"  # joint: each piece first of all maps to itself


def test_pieces_that_would_break_a_line_are_left_out() -> None:
    source = vocab("s", 64)
    target = vocab("t", 170)
    source[10], target[110], target[111] = "s\t10", "t 110", "t\n111"
    built = build_vocabulary_map([corpus(word_pairs(200, 3))], source, target, Limits(candidates=3, frequent=1))
    parsed = lines(built.text())  # each line one key, one TAB, its targets
    assert built.skipped == 3 and "s\t10" not in built.entries
    assert parsed["s12"][0] == "t112"
    assert not any({"t 110", "t\n111"} & set(targets) for targets in built.entries.values())
    assert len(parsed) == len(built.entries) + 1


class CountingIds:
    """A read-only id array computed from its index (a corpus of any size costs no memory),
    counting the elements read."""

    def __init__(self, values: object, size: int) -> None:
        self.values, self.size = values, size
        self.read = 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index)
        self.read += index.size
        return self.values(index)


def huge_corpus(pairs: int, length: int, vocab_size: int) -> Corpus:
    """`pairs` sentence pairs of `length` pieces each, source piece p translated by 1000 + p."""
    def source(position: np.ndarray) -> np.ndarray:
        return 4 + (position * 7919 + position // length) % (vocab_size - 4)

    offsets = CountingIds(lambda index: index * length, pairs + 1)
    return Corpus(CountingIds(source, pairs * length), CountingIds(lambda position: 1000 + source(position),
                                                                   pairs * length), offsets, offsets)


def test_a_huge_corpus_is_read_up_to_the_cap_only() -> None:
    huge = huge_corpus(10**12, 4, 300)  # a trillion pairs
    source, target = vocab("s", 300), vocab("t", 1300)
    built = build_vocabulary_map([huge], source, target, Limits(candidates=2, frequent=5, max_pairs=20_000))
    assert built.pairs == 20_000
    assert huge.src.read == huge.tgt.read == 20_000 * 4  # the sampled pairs' pieces, nothing more
    assert huge.src_offsets.read <= 4 * 20_000 * 2  # lengths when choosing, then starts and ends
    assert built.entries["s17"][0] == "t1017"


def test_the_cooccurrence_budget_cuts_the_sample() -> None:
    pairs = word_pairs(300, 4)
    budget = sum((len(s) + 1) * len(t) for s, t in pairs[:100])  # |source| counts its eos
    within = build_vocabulary_map([corpus(pairs)], vocab("s", 64), vocab("t", 170), Limits(max_cooccurrences=budget))
    assert 70 <= within.pairs <= 130  # a random third of them, about
    split = build_vocabulary_map([corpus(pairs[:150]), corpus(pairs[150:])], vocab("s", 64), vocab("t", 170),
                                 Limits(max_pairs=100))
    assert split.pairs == 100


@pytest.mark.parametrize("count", [0, 1])
def test_tiny_corpora_still_give_the_always_line(count: int) -> None:
    built = build_vocabulary_map([corpus(word_pairs(count, 5))], vocab("s", 64), vocab("t", 170))
    parsed = lines(built.text())
    assert parsed[""][:3] == ["<unk>", "<s>", "</s>"] and built.pairs == count
