"""Export a native model directory to CTranslate2, built with ctranslate2's own spec API.

Why the spec API and not a converter of another toolkit: our weights map one to one onto
CTranslate2's Transformer spec (fused self-attention QKV, query + fused KV for
cross-attention, pre- or post-norm), and our own sinusoidal table is given explicitly,
since CTranslate2's built-in one starts at position 1. The export carries the
SentencePiece model(s), the source model's config (decode defaults, limits) and a
manifest with the source model's hashes, the quantization and the versions.

The weights are read through the layers' own declarations (mt_cli/model/layers.py): a
layer's ``projections`` are CTranslate2's linears in order, and a layer's ``weight_specs``
give the embedding table and the norm's (gamma, beta); no weight name is repeated here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
from ctranslate2.specs import common_spec, transformer_spec

from mt_cli import __version__
from mt_cli.core.files import atomic_dir, file_sha256
from mt_cli.engines.locate import CTRANSLATE2, MANIFEST_FILE, model_name
from mt_cli.engines.model_dir import CONFIG_FILE, LoadedModel, load_export
from mt_cli.model import Transformer
from mt_cli.model.layers import (
    DeclaredLayer,
    DecoderLayer,
    EncoderLayer,
    FeedForward,
    LayerNorm,
    MultiHeadAttention,
)
from mt_cli.model.transformer import TokenEmbedding

FORMAT_VERSION = 1
_ACTIVATIONS = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELUTanh}


def _numpy(variable: Any) -> np.ndarray:
    return np.asarray(variable.numpy(), dtype=np.float32)


def _arrays(layer: DeclaredLayer) -> list[np.ndarray]:
    """A layer's weights as float32 arrays, in declaration order."""
    return [_numpy(variable) for variable in layer.declared_weights().values()]


def _set_norm(spec: Any, norm: LayerNorm) -> None:
    spec.gamma, spec.beta = _arrays(norm)  # LayerNorm declares (gamma, beta)


def _set_linears(specs: list[Any], layer: MultiHeadAttention | FeedForward) -> None:
    """`layer.projections` into CTranslate2's linears (same order, same count).

    Keras kernels are [in, out]; CTranslate2 wants [out, in].
    """
    weights = layer.declared_weights()
    for spec, projection in zip(specs, layer.projections, strict=True):
        spec.weight = np.ascontiguousarray(_numpy(weights[projection.kernel]).T)
        spec.bias = _numpy(weights[projection.bias])


def _set_attention(spec: Any, attn: MultiHeadAttention, norm: LayerNorm) -> None:
    _set_linears(spec.linear, attn)  # (qkv, out) or (q, kv, out)
    _set_norm(spec.layer_norm, norm)


def _set_ffn(spec: Any, layer: EncoderLayer | DecoderLayer) -> None:
    _set_linears([spec.linear_0, spec.linear_1], layer.ffn)
    _set_norm(spec.layer_norm, layer.ffn_norm)


def _table(embedding: TokenEmbedding) -> np.ndarray:
    (table,) = _arrays(embedding)  # TokenEmbedding declares its one table
    return table


def build_spec(model: Transformer, activation: str, source_vocab: list[str],
               target_vocab: list[str]) -> transformer_spec.TransformerSpec:
    """The CTranslate2 Transformer spec holding `model`'s float32 weights."""
    pre_norm, act = model.pre_norm, _ACTIVATIONS[activation]
    encoder = transformer_spec.TransformerEncoderSpec(len(model.encoder_layers), model.num_heads,
                                                      pre_norm=pre_norm, activation=act)
    decoder = transformer_spec.TransformerDecoderSpec(len(model.decoder_layers), model.num_heads,
                                                      pre_norm=pre_norm, activation=act)
    positions = np.asarray(model._positions, np.float32)
    encoder.embeddings[0].weight = _table(model.source_embedding)
    encoder.position_encodings.encodings = positions
    for spec, layer in zip(encoder.layer, model.encoder_layers):
        _set_attention(spec.self_attention, layer.self_attn, layer.self_attn_norm)
        _set_ffn(spec.ffn, layer)
    decoder.embeddings.weight = _table(model.target_lookup)
    decoder.position_encodings.encodings = positions
    for spec, layer in zip(decoder.layer, model.decoder_layers):
        _set_attention(spec.self_attention, layer.self_attn, layer.self_attn_norm)
        _set_attention(spec.attention, layer.cross_attn, layer.cross_attn_norm)
        _set_ffn(spec.ffn, layer)
    if pre_norm:
        _set_norm(encoder.layer_norm, model.encoder_norm)
        _set_norm(decoder.layer_norm, model.decoder_norm)
    decoder.projection.weight = _table(model.output_projection)
    spec = transformer_spec.TransformerSpec(encoder, decoder)
    spec.config.add_source_eos = True  # our sources end with eos; the decoder starts at bos
    spec.config.layer_norm_epsilon = model.encoder_layers[0].ffn_norm.epsilon
    spec.register_source_vocabulary(source_vocab)
    spec.register_target_vocabulary(target_vocab)
    return spec


def _pieces(processor: Any) -> list[str]:
    return [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]


def export_ctranslate2(model_dir: str | Path, output: Path, quantization: str = "float32") -> Path:
    """Convert a native model directory (or run) into a CTranslate2 directory at `output`."""
    loaded = load_export(model_dir)
    tok = loaded.tokenizers
    spec = build_spec(loaded.model, loaded.config.model.activation, _pieces(tok.source.processor),
                      _pieces(tok.target.processor))
    spec.validate()
    spec.optimize(quantization=quantization)

    def build(tmp: Path) -> None:
        spec.save(str(tmp))
        names = _copy_tokenizers(loaded, tmp)
        shutil.copyfile(loaded.directory / CONFIG_FILE, tmp / CONFIG_FILE)
        manifest = _manifest(tmp, loaded, names, quantization)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))

    atomic_dir(output, build)
    return output


def _copy_tokenizers(loaded: LoadedModel, tmp: Path) -> tuple[str, str]:
    source, target = loaded.manifest["tokenizer"]["source"], loaded.manifest["tokenizer"]["target"]
    for name in {source, target}:
        shutil.copyfile(loaded.directory / name, tmp / name)
    return source, target


def _manifest(tmp: Path, loaded: LoadedModel, names: tuple[str, str], quantization: str) -> dict[str, Any]:
    files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    source_manifest = loaded.manifest
    return {
        "engine": CTRANSLATE2,
        "format_version": FORMAT_VERSION,
        "quantization": quantization,
        "versions": {"mt_cli": __version__, "ctranslate2": ctranslate2.__version__},
        "source_model": {"directory": model_name(loaded.directory), "files_sha256": source_manifest["files_sha256"],
                         "step": source_manifest.get("step"), "versions": source_manifest.get("versions")},
        "special_ids": source_manifest["special_ids"],
        "tokenizer": {"source": names[0], "target": names[1], "source_sha256": files[names[0]],
                      "target_sha256": files[names[1]]},
        "dev_scores": source_manifest.get("dev_scores", {}),
        "files_sha256": files,
    }
