"""Model tests on tiny shapes: masking, caching, tying, saving, mixed precision."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_model_config

from mt_cli.model import Transformer, build_model

TinyConfig = tiny_model_config


VOCAB = 30
SOURCE = np.array([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0]], np.int32)
TARGET = np.array([[2, 11, 12, 13], [2, 14, 15, 16]], np.int32)


def make(
    seed: int = 0,
    precision: str = "float32",
    vocab: tuple[int, int] = (VOCAB, VOCAB),
    **cfg: object,
) -> Transformer:
    keras.utils.set_random_seed(seed)
    return build_model(TinyConfig(**cfg), vocab[0], vocab[1], precision=precision)


def forward(
    model: Transformer, source: np.ndarray = SOURCE, target: np.ndarray = TARGET, **kw: object
) -> np.ndarray:
    return model({"source": tf.constant(source), "target_in": tf.constant(target)}, **kw).numpy()


@pytest.mark.parametrize("share", ["all", "target", "none"])
def test_output_shapes(share: str) -> None:
    vocab = (VOCAB, VOCAB) if share == "all" else (VOCAB + 3, VOCAB)
    model = make(share_embeddings=share, vocab=vocab)
    logits = forward(model)
    assert logits.shape == (2, 4, VOCAB) and logits.dtype == np.float32
    memory, mask = model.encode(tf.constant(SOURCE))
    assert memory.shape == (2, 5, 32)
    assert mask.numpy().tolist() == (SOURCE != 0).tolist()


def test_source_padding_invariance() -> None:
    model = make(norm="post")
    padded = np.pad(SOURCE, [(0, 0), (0, 4)])
    np.testing.assert_allclose(forward(model, padded), forward(model), atol=1e-5)
    alone = forward(model, SOURCE[1:, :3], TARGET[1:])
    np.testing.assert_allclose(alone, forward(model)[1:], atol=1e-5)


def test_causal_mask() -> None:
    model = make()
    changed = TARGET.copy()
    changed[:, 2] = 20
    base, new = forward(model), forward(model, target=changed)
    np.testing.assert_allclose(new[:, :2], base[:, :2], atol=1e-6)
    assert np.abs(new[:, 2:] - base[:, 2:]).max() > 1e-4


@pytest.mark.parametrize("norm,share", [("pre", "all"), ("post", "target"), ("pre", "none")])
def test_cached_decoding_matches_full_forward(norm: str, share: str) -> None:
    model = make(norm=norm, share_embeddings=share, activation="gelu")
    full = forward(model)
    memory, mask = model.encode(tf.constant(SOURCE))
    cache = model.init_cache(memory, mask)
    steps = []
    for t in range(TARGET.shape[1]):
        logits, cache, attn = model.decode_step(
            tf.constant(TARGET[:, t]), tf.constant(t), cache, return_attention=True
        )
        steps.append(logits.numpy())
        assert attn.shape == (2, 5)
        np.testing.assert_allclose(attn.numpy().sum(-1), 1.0, atol=1e-5)
        assert np.all(attn.numpy()[1, 3:] == 0.0)  # padded source positions get no attention
    np.testing.assert_allclose(np.stack(steps, axis=1), full, atol=1e-4)


def test_beams_reorder_and_while_loop() -> None:
    """Two hypotheses per sentence sharing one memory, swapped mid-way inside a while loop."""
    model = make()
    memory, mask = model.encode(tf.constant(SOURCE))
    alt = TARGET.copy()
    alt[:, 1:3] = [[17, 18], [19, 20]]
    histories = np.stack([TARGET[0], alt[0], TARGET[1], alt[1]])  # rows b * 2 + i
    swap = tf.constant([1, 0, 3, 2])
    # Rows follow their own history for 2 steps, then continue the swapped one.
    fed = np.concatenate([histories[:, :2], histories[[1, 0, 3, 2], 2:]], axis=1)

    @tf.function
    def run() -> tf.Tensor:
        cache = model.init_cache(memory, mask, beam_size=2)

        def body(t: tf.Tensor, out: tf.TensorArray, cache: dict) -> tuple:
            cache = model.reorder_cache(cache, tf.where(tf.equal(t, 2), swap, tf.range(4)))
            logits, cache = model.decode_step(tf.constant(fed)[:, t], t, cache)
            return t + 1, out.write(t, logits), cache

        invariants = (
            tf.TensorShape([]),
            tf.TensorShape(None),
            Transformer.cache_shape_invariants(cache),
        )
        _, out, _ = tf.while_loop(
            lambda t, *_: t < 4,
            body,
            (tf.constant(0), tf.TensorArray(tf.float32, size=4), cache),
            shape_invariants=invariants,
        )
        return tf.transpose(out.stack(), [1, 0, 2])

    sources = SOURCE[[0, 0, 1, 1]]
    expected = forward(model, sources, histories)
    expected[:, 2:] = forward(model, sources, histories[[1, 0, 3, 2]])[:, 2:]
    np.testing.assert_allclose(run().numpy(), expected, atol=1e-4)


def test_embedding_tying() -> None:
    def embedding_tables(model: Transformer) -> int:
        return sum(1 for w in model.weights if w.path.endswith("embeddings"))

    shared = make(share_embeddings="all")
    assert shared.source_embedding is shared.target_lookup is shared.output_projection
    assert embedding_tables(shared) == 1
    target = make(share_embeddings="target", vocab=(VOCAB + 1, VOCAB))
    assert target.target_lookup is target.output_projection is not target.source_embedding
    assert embedding_tables(target) == 2
    assert embedding_tables(make(share_embeddings="none")) == 3
    with pytest.raises(ValueError):
        make(share_embeddings="all", vocab=(VOCAB, VOCAB + 1))


def test_weights_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "model.weights.h5")
    model = make(seed=1, norm="post")
    model.save_weights(path)
    other = make(seed=2, norm="post")
    assert np.abs(forward(other) - forward(model)).max() > 1e-3
    other.load_weights(path)
    np.testing.assert_allclose(forward(other), forward(model), atol=1e-6)


def test_mixed_bfloat16_weights_load_into_float32(tmp_path: Path) -> None:
    mixed = make(seed=3, precision="bfloat16")
    assert mixed.compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in mixed.weights)
    logits = forward(mixed)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
    path = str(tmp_path / "mixed.weights.h5")
    mixed.save_weights(path)
    plain = make(seed=4)
    plain.load_weights(path)
    for a, b in zip(mixed.weights, plain.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # bf16 compute stays close to the float32 reference.
    reference = forward(plain)
    assert np.abs(logits - reference).max() < 0.1 * np.abs(reference).max()


def test_mixed_float16_runs() -> None:
    model = make(precision="float16")
    assert all(w.dtype == "float32" for w in model.weights)
    logits = forward(model)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()


def test_dropout_only_in_training() -> None:
    model = make(dropout=0.3, attention_dropout=0.3, ffn_dropout=0.3)
    np.testing.assert_array_equal(forward(model), forward(model, training=False))
    assert np.abs(forward(model, training=True) - forward(model)).max() > 1e-3


def _structure(layer: keras.layers.Layer) -> list[tuple[str, tuple[int, ...]]]:
    return [(w.name, tuple(w.shape)) for w in layer.weights]


@pytest.mark.parametrize("norm,share", [("pre", "none"), ("post", "all")])
def test_every_layer_round_trips_its_config(norm: str, share: str) -> None:
    """from_config(get_config()) of the model and of every layer in it builds the same weights
    (names, shapes, order) and gives the same config back."""
    model = make(norm=norm, share_embeddings=share)
    layers = [model, *model._flatten_layers(include_self=False, recursive=True)]
    for layer in layers:
        config = layer.get_config()
        clone = type(layer).from_config(config)
        if not clone.built:
            clone.build(None)
        assert _structure(clone) == _structure(layer), type(layer).__name__
        assert clone.get_config() == config, type(layer).__name__
    kinds = {type(layer).__name__ for layer in layers}
    assert kinds == {"Transformer", "TokenEmbedding", "ByteDropout", "EncoderLayer", "DecoderLayer",
                     "MultiHeadAttention", "FeedForward", "LayerNorm"}
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(revived, Transformer) and _structure(revived) == _structure(model)


def test_weights_declared_once() -> None:
    """A layer's variables, its compute copies and the exporter's view all follow its one
    declaration; the compute copies are in the compute dtype, except LayerNorm's float32."""
    from mt_cli.model.declared import DeclaredLayer, LayerNorm

    model = make(precision="bfloat16", share_embeddings="none")
    declared = [layer for layer in model._flatten_layers(recursive=True) if isinstance(layer, DeclaredLayer)]
    assert len(declared) == 3 + 2 * 4 + 2 * 6 + 2  # tables, encoder and decoder parts, final norms
    for layer in declared:
        names = [spec.name for spec in layer.weight_specs]
        assert [w.name for w in layer.trainable_weights] == names
        assert list(layer.declared_weights()) == names
        compute = layer.weights_for_compute()
        assert list(compute) == names
        dtype = tf.float32 if isinstance(layer, LayerNorm) else tf.bfloat16
        assert all(t.dtype == dtype for t in compute.values()), type(layer).__name__
    attn = model.decoder_layers[0]
    assert [p.name for p in attn.self_attn.projections] == ["qkv", "out"]
    assert [p.name for p in attn.cross_attn.projections] == ["q", "kv", "out"]
    assert [p.name for p in attn.ffn.projections] == ["inner", "outer"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_layer_norm_hand_gradient_matches_automatic_differentiation(dtype: str) -> None:
    """normalise_layer's written-out backward pass against TensorFlow differentiating the same
    forward ops: values, and gradients for x, gamma and beta."""
    from mt_cli.model.declared import normalise_layer

    rng = np.random.default_rng(7)
    x = tf.cast(tf.constant(rng.normal(2.0, 3.0, [3, 5, 16]), tf.float32), dtype)
    gamma = tf.constant(rng.normal(1.0, 0.5, [16]), tf.float32)
    beta = tf.constant(rng.normal(0.0, 0.5, [16]), tf.float32)
    upstream = tf.constant(rng.normal(0.0, 1.0, [3, 5, 16]), tf.float32)

    def reference(x, gamma, beta):
        x32 = tf.cast(x, tf.float32)
        centered = x32 - tf.reduce_mean(x32, axis=-1, keepdims=True)
        var = tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
        return tf.cast(centered * tf.math.rsqrt(var + 1e-5) * gamma + beta, dtype)

    results = []
    for fn in (lambda *a: normalise_layer(*a, 1e-5, dtype), reference):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y = fn(x, gamma, beta)
            objective = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
        results.append([y, *tape.gradient(objective, [x, gamma, beta])])
    tolerance = 1e-5 if dtype == "float32" else 2e-2
    for got, want in zip(*results):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), tf.cast(want, tf.float32).numpy(),
                                   rtol=tolerance, atol=tolerance)
