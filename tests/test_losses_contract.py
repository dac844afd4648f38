"""What the trainer and the evaluation read from a loss: `posterior`, `selection_start` and the
model head it declares (SPEC 4.4)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lossbench import losses as L
from lossbench.models import CosineDense, build_model, weights_checksum

COUNTS = [400, 60, 9]


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def logits() -> np.ndarray:
    return np.random.default_rng(0).normal(scale=3.0, size=(7, 3)).astype(np.float32)


def test_posterior_of_each_loss(logits):
    n = np.array(COUNTS, dtype=np.float64)
    log_pi = np.log(n / n.sum())
    vs_delta = (n / n.max()) ** 0.3  # the authors' default gamma
    expected = {
        "la": np_softmax(logits + log_pi),
        "vs": np_softmax(logits * vs_delta + log_pi),
        "autobalance": np_softmax(logits * vs_delta + log_pi),
    }
    for name in L.names():
        got = keras.ops.convert_to_numpy(L.get(name, COUNTS).posterior(logits))
        want = expected.get(name, np_softmax(logits.astype(np.float64)))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=name)
    loss = L.get("la", COUNTS, tau=0.5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loss.posterior(logits)),
        np_softmax(logits + 0.5 * log_pi),
        rtol=1e-5,
    )


def test_autobalance_posterior_uses_learned_l_and_delta(logits):
    loss = L.get("autobalance", COUNTS)
    loss.l.assign([0.3, -0.1, 0.2])
    loss.log_delta.assign(np.log([1.5, 0.5, 2.0]))
    want = np_softmax(logits * np.array([1.5, 0.5, 2.0]) + np.array([0.3, -0.1, 0.2]))
    got = keras.ops.convert_to_numpy(loss.posterior(logits))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "name,params,epochs,start",
    [
        ("ce", {}, 10, 0),
        ("pgfl", {}, 10, 0),
        ("ldam", {}, 10, 8),
        ("ldam", {"drw_start": 0.5}, 7, 3),
        ("ldam", {"drw": False}, 10, 0),
        ("autobalance", {}, 10, 2),
        ("autobalance", {"warmup": 0.0}, 10, 0),
    ],
)
def test_selection_start(name, params, epochs, start):
    assert L.get(name, COUNTS, **params).selection_start(epochs) == start


def test_ldam_declares_cosine_head_with_s30_and_linear_with_s1():
    default = L.get("ldam", COUNTS)
    assert (default.head, default.scale) == ("cosine", 30.0)
    linear = L.get("ldam", COUNTS, head="linear")
    assert (linear.head, linear.scale) == ("linear", 1.0)
    assert L.get("ldam", COUNTS, s=16).scale == 16.0
    for name in L.names():
        if name != "ldam":
            loss = L.get(name, COUNTS)
            assert (loss.head, loss.scale) == ("linear", 1.0)


@pytest.mark.parametrize("model", ["mlp", "cnn1d"])
def test_cosine_head_starts_from_the_plain_heads_weights(model):
    keras.utils.set_random_seed(5)
    plain = build_model(model, 8, 3)
    keras.utils.set_random_seed(5)
    cosine = build_model(model, 8, 3, head="cosine", scale=30.0)
    assert weights_checksum(plain) == weights_checksum(cosine)
    assert len(cosine.trainable_weights) == len(plain.trainable_weights) - 1  # frozen bias


def test_cosine_head_outputs_s_times_cosine():
    keras.utils.set_random_seed(1)
    layer = CosineDense(4, scale=30.0)
    x = np.random.default_rng(2).normal(size=(5, 6)).astype(np.float32)
    out = keras.ops.convert_to_numpy(layer(x))
    w = keras.ops.convert_to_numpy(layer.kernel)
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0))
    np.testing.assert_allclose(out, 30.0 * cos, rtol=1e-5, atol=1e-5)
