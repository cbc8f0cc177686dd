"""Export a model directory as a TensorFlow SavedModel for TensorFlow Serving.

The `serving_default` signature takes token ids and returns the n-best ids and scores of
the whole search (beam, greedy or sampling, as the model directory's decode section says),
compiled into the graph: loading needs TensorFlow only, not mt-cli. Where tensorflow-text
is installed a second signature, `translate_text`, takes and returns strings through an
in-graph SentencePiece op.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tensorflow as tf

from mt_cli import __version__
from mt_cli.core.config import DecodeConfig
from mt_cli.core.extras import installed
from mt_cli.core.files import atomic_dir
from mt_cli.core.tokenizer import EOS_ID, PAD_ID
from mt_cli.engines.locate import MANIFEST_FILE, model_name
from mt_cli.engines.model_dir import load_model_dir
from mt_cli.model import Transformer
from mt_cli.model.search import bound_search

IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name="source_ids")


class ServingModule(tf.Module):
    """The model's variables plus the compiled search, as SavedModel signatures."""

    def __init__(self, model: Transformer, decode: DecodeConfig, spm: tuple[bytes, bytes] | None) -> None:
        super().__init__()
        # Only the variables are tracked: Keras would add its own signature for a tracked model.
        self.model_variables = [v.value if hasattr(v, "value") else v for v in model.variables]
        self.n_best = decode.n_best
        self._search = bound_search(model, decode)
        self._spm = spm

    @tf.function(input_signature=[IDS_SPEC])
    def translate_ids(self, source_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """source ids [B, S] (0-padded, eos-terminated) -> ids [B, N, L] (0-padded, no eos),
        lengths [B, N] and scores [B, N], best first."""
        prefix = tf.zeros([tf.shape(source_ids)[0], 0], tf.int32)
        out = self._search(source_ids, prefix)
        tokens = out["tokens"][:, :self.n_best]
        lengths = out["length"][:, :self.n_best]
        ends_with_eos = tf.equal(tf.gather(tokens, tf.maximum(lengths - 1, 0), batch_dims=2), EOS_ID)
        lengths = lengths - tf.cast(ends_with_eos & (lengths > 0), tf.int32)
        keep = tf.range(tf.shape(tokens)[2])[tf.newaxis, tf.newaxis] < lengths[..., tf.newaxis]
        return {"ids": tf.where(keep, tokens, PAD_ID), "lengths": lengths,
                "scores": out["score"][:, :self.n_best]}


def _text_signature(module: ServingModule, spm: tuple[bytes, bytes]) -> Any:
    """strings [B] -> best translation strings [B] and scores, through tensorflow-text."""
    import tensorflow_text as tf_text

    source_tok = tf_text.SentencepieceTokenizer(model=spm[0], add_eos=True)
    target_tok = tf_text.SentencepieceTokenizer(model=spm[1])
    module.source_tokenizer, module.target_tokenizer = source_tok, target_tok

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def translate_text(text: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = source_tok.tokenize(text).to_tensor(default_value=PAD_ID)
        out = module.translate_ids(ids)
        best = tf.RaggedTensor.from_tensor(out["ids"][:, 0], lengths=out["lengths"][:, 0])
        return {"translation": target_tok.detokenize(best), "score": out["scores"][:, 0]}

    module.translate_text = translate_text
    return translate_text


def text_ops_available() -> bool:
    return installed("tensorflow_text")


def export_savedmodel(model_dir: str | Path, output: Path) -> dict[str, Any]:
    """Write a SavedModel of a model directory (or run) to `output`; return its manifest."""
    loaded = load_model_dir(model_dir)
    tok = loaded.manifest["tokenizer"]
    spm = ((loaded.directory / tok["source"]).read_bytes(), (loaded.directory / tok["target"]).read_bytes())
    module = ServingModule(loaded.model, loaded.config.decode, spm)
    signatures = {"serving_default": module.translate_ids.get_concrete_function()}
    if text_ops_available():
        signatures["translate_text"] = _text_signature(module, spm).get_concrete_function()
    manifest = {"engine": "savedmodel", "format_version": 1, "signatures": sorted(signatures),
                "decode": loaded.config.to_dict()["decode"], "versions": {"mt_cli": __version__,
                                                                        "tensorflow": tf.__version__},
                "source_model": {"directory": model_name(loaded.directory),
                                 "files_sha256": loaded.manifest["files_sha256"]}}

    def build(tmp: Path) -> None:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))

    atomic_dir(output, build)
    return manifest
