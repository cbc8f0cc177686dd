"""Weights files and checkpoints keep their layout: what a tiny model writes (weights-file
entries, shapes, the seeded initial values, the order the optimizer sees the variables in)
equals what the code before the layers' Keras rework (commit 3c39c02) wrote, so every
weights file and checkpoint saved since loads unchanged.

The reference is tests/data/weights_layout.json; `python tests/test_weights_layout.py` writes
it again (only ever from a commit known to read the old files).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest
from helpers import tiny_model_config

REFERENCE = Path(__file__).parent / "data" / "weights_layout.json"
# One variant holds every weight kind (three embeddings, both final norms); the other the
# post-norm, one-table layout.
VARIANTS = {"pre-none": {"norm": "pre", "share_embeddings": "none"},
            "post-all": {"norm": "post", "share_embeddings": "all"}}


def layout(variant: str, directory: Path) -> dict[str, Any]:
    """A seeded tiny model's weights file (entry -> shape and value checksums) and the
    (name, shape) order of its trainable variables (the optimizer's slots follow it)."""
    from mt_cli.model import build_model

    keras.utils.set_random_seed(1)
    cfg = tiny_model_config(encoder_layers=1, decoder_layers=2, hidden_dim=8, num_heads=2, ffn_dim=12,
                            **VARIANTS[variant])
    model = build_model(cfg, 11, 11)
    path = directory / f"{variant}.weights.h5"
    model.save_weights(str(path))
    entries: dict[str, Any] = {}
    with h5py.File(path) as handle:
        def visit(name: str, item: object) -> None:
            if isinstance(item, h5py.Dataset):
                values = np.asarray(item, np.float64)
                entries[name] = [list(values.shape), round(float(values.sum()), 5),
                                 round(float(np.abs(values).sum()), 5)]
        handle.visititems(visit)
    trainable = [[v.name, list(v.shape)] for v in model.trainable_variables]
    return {"weights_file": entries, "trainable_order": trainable}


@pytest.mark.parametrize("variant", VARIANTS)
def test_weights_layout_is_the_old_one(variant: str, tmp_path: Path) -> None:
    expected = json.loads(REFERENCE.read_text())[variant]
    got = layout(variant, tmp_path)
    assert sorted(got["weights_file"]) == sorted(expected["weights_file"])
    for name, (shape, total, absolute) in expected["weights_file"].items():
        assert got["weights_file"][name][0] == shape, name
        np.testing.assert_allclose(got["weights_file"][name][1:], [total, absolute], atol=1e-4, err_msg=name)
    assert got["trainable_order"] == expected["trainable_order"]


def _reference_text(record: dict[str, Any]) -> str:
    """The reference as JSON with one weights-file entry or variable a line (readable diffs)."""
    def lines(items: list[str]) -> str:
        return ",".join(f"\n   {item}" for item in items)

    parts = []
    for variant, data in record.items():
        entries = lines([f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data["weights_file"].items()])
        order = lines([json.dumps(item) for item in data["trainable_order"]])
        parts.append(f'\n "{variant}": {{\n  "weights_file": {{{entries}}},\n  "trainable_order": [{order}]}}')
    return "{" + ",".join(parts) + "}\n"


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as tmp:
        reference = {v: layout(v, Path(tmp)) for v in VARIANTS}
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(_reference_text(reference))
    print(f"wrote {REFERENCE}")
