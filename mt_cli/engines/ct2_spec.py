"""Our Transformer as CTranslate2's Transformer spec, and the conversion every model directory holds.

Why the spec API and not a converter of another toolkit: our weights map one to one onto
CTranslate2's Transformer spec (fused self-attention QKV, query + fused KV for
cross-attention, pre- or post-norm), and our own sinusoidal table is given explicitly,
since CTranslate2's built-in one starts at position 1.

The weights are read through the layers' own declarations (mt_cli/model/declared.py): a
layer's ``projections`` are CTranslate2's linears in order, and a layer's ``weight_specs``
give the embedding table and the norm's (gamma, beta); no weight name is repeated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
from ctranslate2.specs import common_spec, transformer_spec

from mt_cli.core.tokenizer import Tokenizers
from mt_cli.model import Transformer
from mt_cli.model.attention import MultiHeadAttention
from mt_cli.model.declared import DeclaredLayer, LayerNorm
from mt_cli.model.layers import DecoderLayer, EncoderLayer, FeedForward
from mt_cli.model.transformer import TokenEmbedding

# float32: measured fastest on an AVX2 CPU (AMD EPYC Zen 3: int8 decodes at 0.67x float32's
# sentences/s; docs/translation.md), and lossless; CTranslate2 can still quantize it when loading.
CONVERSION_QUANTIZATION = "float32"
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



def pieces(processor: Any) -> list[str]:
    """A SentencePiece model's vocabulary, id order (CTranslate2's vocabulary files)."""
    return [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]


def write_conversion(directory: Path, model: Transformer, activation: str, tokenizers: Tokenizers,
                     quantization: str = CONVERSION_QUANTIZATION) -> dict[str, Any]:
    """CTranslate2's files (model.bin, config.json, vocabularies) written into `directory`
    beside the native ones; returns the manifest's `ctranslate2` section naming them."""
    before = {p.name for p in directory.iterdir()}
    spec = build_spec(model, activation, pieces(tokenizers.source.processor), pieces(tokenizers.target.processor))
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(directory))
    files = sorted(p.name for p in directory.iterdir() if p.name not in before)
    return {"files": files, "quantization": quantization, "version": ctranslate2.__version__}
