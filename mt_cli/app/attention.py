"""`mt-cli attention`: the attention inside the model for one sentence and its translation.

softmax(QK^T / sqrt(d_k)) decides which positions each position draws from; this returns
those matrices (cross: output pieces over source pieces; encoder: source over source;
decoder: output over earlier output), per layer and per head or averaged over heads, with
the pieces as labels, and draws them as heatmaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from mt_cli.core.alignment import layer_index
from mt_cli.core.errors import ConfigError
from mt_cli.core.tokenizer import BOS_ID, EOS_ID
from mt_cli.engines.model_dir import load_translator
from mt_cli.engines.opened import ModelDir, open_model_dir

KINDS = ("cross", "encoder", "decoder")


@dataclass(frozen=True)
class AttentionView:
    """What to draw: labels of rows (queries) and columns (keys), and titled matrices."""

    kind: str
    source: str
    translation: str
    rows: list[str]
    cols: list[str]
    panels: list[tuple[str, np.ndarray]]


def _select(maps: list[tf.Tensor], layer: str, head: str) -> list[tuple[str, np.ndarray]]:
    """Panels for `layer` (a number or all) and `head` (a number, mean or all)."""
    layers = range(len(maps)) if layer == "all" else [layer_index(_number("--layer", layer), len(maps), "--layer")]
    panels = []
    for index in layers:
        probs = maps[index].numpy()[0]  # [H, Tq, Tk]
        if head == "mean":
            panels.append((f"layer {index} (mean of {probs.shape[0]} heads)", probs.mean(axis=0)))
            continue
        heads = range(probs.shape[0]) if head == "all" else [_number("--head", head)]
        for h in heads:
            if not 0 <= h < probs.shape[0]:
                raise ConfigError(f"--head: the model has heads 0..{probs.shape[0] - 1}, got {h}")
            panels.append((f"layer {index} head {h}", probs[h]))
    return panels


def _number(option: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{option}: expected a number, 'all'{' or mean' if option == '--head' else ''}, "
                          f"got {value!r}") from None


def attention_view(model: str | Path | ModelDir, text: str, kind: str = "cross", layer: str = "all",
                   head: str = "mean", overrides: list[str] | None = None) -> AttentionView:
    """Translate `text` with a native model directory (opened once, `open_model_dir`; a path
    is opened with `overrides`) and collect the attention asked for."""
    if kind not in KINDS:
        raise ConfigError(f"--kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    translator = load_translator(open_model_dir(model, overrides))
    best = translator.translate_nbest([text])[0][0]
    source = translator.tokenizers.source
    tags = translator.languages.source_tags(translator.decode.target_lang) if translator.languages else []
    limit = translator.max_source_tokens - 1 - len(tags)  # the source as translated: the tag first
    src_ids = [source.piece_id(tag) for tag in tags] + source.encode_ids([text])[0][:limit]
    src_pieces = tags + source.encode_pieces([text])[0][:limit]
    record = translator.model.attention(tf.constant([src_ids + [EOS_ID]], tf.int32),
                                        tf.constant([[BOS_ID, *best.ids]], tf.int32))
    src_labels, out_labels = [*src_pieces, "</s>"], [*best.pieces, "</s>"]
    rows, cols = {"cross": (out_labels, src_labels), "encoder": (src_labels, src_labels),
                  "decoder": (["<s>", *best.pieces], ["<s>", *best.pieces])}[kind]
    maps = {"cross": record.cross, "encoder": record.encoder, "decoder": record.decoder}[kind]
    return AttentionView(kind, text, best.text, rows, cols, _select(maps, layer, head))


def draw_heatmaps(view: AttentionView, output: Path) -> None:
    """One heatmap per panel, pieces as tick labels, into a .png/.svg/.pdf file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(view.panels)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    size = 0.35 * max(len(view.cols), len(view.rows)) + 2
    figure, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.remove()
    for ax, (title, matrix) in zip(axes.flat, view.panels):
        ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(view.cols)), view.cols, rotation=90, fontsize=8)
        ax.set_yticks(range(len(view.rows)), view.rows, fontsize=8)
        ax.set_title(title, fontsize=9)
    figure.suptitle(f"{view.kind} attention: {view.source} → {view.translation}", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    figure.savefig(output)
    plt.close(figure)
