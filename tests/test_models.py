"""The networks: the 1D-CNN's pooling layer and the standard-layer form it is saved in."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from lossbench.models import PairMaxPool1D, build_model, max_pool_standard, portable


def _pool_input(length: int) -> np.ndarray:
    """ReLU-like activations with many ties: zeros, and pairs of steps with equal values."""
    rng = np.random.default_rng(length)
    x = np.maximum(rng.standard_normal((5, length, 4)), 0.0).astype(np.float32)
    x[:, 1, :] = x[:, 0, :]  # the first pair of steps ties everywhere
    return x


def _values_and_gradient(layer_fn, x: np.ndarray, upstream: np.ndarray, jit: bool = False):
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer_fn(inputs))

    @tf.function(jit_compile=jit)
    def fn(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = model(t)
            s = tf.reduce_sum(y * upstream)
        return y, tape.gradient(s, t)

    y, g = fn(tf.constant(x))
    return y.numpy(), g.numpy()


@pytest.mark.parametrize("length", [74, 75])
def test_pair_max_pool_is_max_pooling_and_has_the_standard_forms_gradient(length):
    x = _pool_input(length)
    upstream = np.random.default_rng(1).standard_normal((5, length // 2, 4)).astype(np.float32)
    y, g = _values_and_gradient(lambda t: PairMaxPool1D()(t), x, upstream)
    y_keras, g_keras = _values_and_gradient(lambda t: keras.layers.MaxPooling1D(2)(t), x, upstream)
    y_std, g_std = _values_and_gradient(lambda t: max_pool_standard(t, 2), x, upstream)
    np.testing.assert_array_equal(y, y_keras)  # MaxPool1D(2), "valid": the odd last step dropped
    np.testing.assert_array_equal(y, y_std)
    np.testing.assert_array_equal(g, g_std)  # a tie sends the gradient to the pair's first step
    assert (g[:, 1, :] == 0).all() and (g[:, 0, :] == upstream[:, 0, :]).all()
    if length % 2:
        assert (g[:, -1, :] == 0).all()  # the dropped step gets no gradient


def test_pair_max_pool_compiles_under_xla_with_op_determinism():
    """XLA has no deterministic MaxPoolGrad; the pair pool's gradient compiles and agrees."""
    tf.config.experimental.enable_op_determinism()
    x = _pool_input(74)
    upstream = np.ones((5, 37, 4), dtype=np.float32)
    y, g = _values_and_gradient(lambda t: PairMaxPool1D()(t), x, upstream, jit=True)
    y_std, g_std = _values_and_gradient(lambda t: max_pool_standard(t, 2), x, upstream)
    np.testing.assert_array_equal(y, y_std)
    np.testing.assert_array_equal(g, g_std)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_the_saved_cnn_is_in_standard_layers_and_computes_the_same_logits(precision, tmp_path):
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    model = build_model("cnn1d", 21, 3, precision=precision)
    assert any(isinstance(layer, PairMaxPool1D) for layer in model.layers)
    keras.backend.clear_session(free_memory=False)  # as after every run: layer names start over
    saved = portable(model)
    modules = {type(layer).__module__ for layer in saved.layers}
    assert all(m.startswith("keras.") for m in modules), modules
    x = np.random.default_rng(0).standard_normal((8, 21)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(saved(x)), expected)
    saved.save(tmp_path / "cnn1d.keras")
    loaded = keras.saving.load_model(tmp_path / "cnn1d.keras")
    assert not any(isinstance(layer, PairMaxPool1D) for layer in loaded.layers)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), expected)
