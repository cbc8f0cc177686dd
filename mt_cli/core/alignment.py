"""Hard word alignments from attention: which source word each output word drew from.

Why words, not pieces: users carry tags and terminology between whitespace words, and the
Moses `i-j` format every aligner tool reads counts words. A piece starting with "▁" (or the
first piece) starts a word; a target piece is aligned to the source piece it attended to
most (the source's eos excluded), and piece links become word links.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mt_cli.core.errors import ConfigError

WORD_START = "\u2581"


def word_ids(pieces: Sequence[str]) -> list[int]:
    """The whitespace-word number of each SentencePiece piece."""
    ids, word = [], -1
    for piece in pieces:
        if word < 0 or piece.startswith(WORD_START):
            word += 1
        ids.append(word)
    return ids


def hard_alignment(cross: np.ndarray, source_pieces: Sequence[str],
                   target_pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Sorted unique (source word, target word) links.

    `cross` [T, S] holds the attention of output position t over source positions; rows
    beyond the target pieces (eos) and columns beyond the source pieces (eos) are ignored.
    """
    if not source_pieces or not target_pieces:
        return []
    src_words, tgt_words = word_ids(source_pieces), word_ids(target_pieces)
    best = np.argmax(cross[:len(target_pieces), :len(source_pieces)], axis=-1)
    return sorted({(src_words[int(i)], tgt_words[t]) for t, i in enumerate(best)})


def layer_index(layer: int, layers: int, flag: str) -> int:
    """A layer number that may count from the end (-1 = last). Out of range is an error naming
    `flag` and the valid numbers: silently using another layer would show the wrong attention."""
    if not -layers <= layer < layers:
        raise ConfigError(f"{flag}: the model has {layers} layer{'s' if layers != 1 else ''} "
                          f"(0..{layers - 1}, or -{layers}..-1 from the end), got {layer}")
    return layer if layer >= 0 else layers + layer


def moses(links: Sequence[tuple[int, int]]) -> str:
    """`0-0 1-2 ...`: Moses / fast_align format."""
    return " ".join(f"{i}-{j}" for i, j in links)
