"""The losses inside Keras: plain compile/fit, .keras round-trips, and the training-loop hooks
(PGFL's alpha update, graph updates without retracing, the static losses' no-op hooks).
AMRL's dual ascent, LDAM's head and AutoBalance's upper step: test_losses_adaptive.py."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import recall_score

from lossbench import losses as L

K = 3
COUNTS = [40, 16, 8]


@pytest.fixture(scope="module")
def tiny_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(K), COUNTS)
    x = rng.normal(size=(len(y), 4)).astype(np.float32) + y[:, None].astype(np.float32)
    return x, y


def tiny_model(seed: int = 0, dtype: str = "float32") -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,), dtype=dtype),
            keras.layers.Dense(8, activation="relu", dtype=dtype),
            keras.layers.Dense(K, dtype=dtype),
        ]
    )


def change_state(loss: L.LossbenchLoss, x: np.ndarray, y: np.ndarray) -> None:
    """Move a stateful loss away from its initial state, as training would."""
    if isinstance(loss, L.AMRLLoss):
        loss.lambdas.assign([0.5, 2.5, 4.0])
    elif isinstance(loss, L.PGFLoss):
        proba = np.tile([[0.8, 0.1, 0.1]], (len(y), 1))  # always predicts class 0
        loss.on_epoch_end(0, y, proba)
    elif isinstance(loss, L.LDAMLoss):
        loss.on_train_begin(5)
        loss.on_epoch_begin(4)
    elif isinstance(loss, L.AutoBalanceLoss):
        loss.l.assign([0.1, -0.3, 0.7])
        loss.log_delta.assign([0.0, -0.2, 0.4])


@pytest.mark.parametrize("name", L.names())
def test_fit_then_save_and_load_roundtrip(name, tiny_data, tmp_path):
    x, y = tiny_data
    loss = L.get(name, COUNTS)
    model = tiny_model()
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    hist = model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    assert np.isfinite(hist.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True))

    change_state(loss, x, y)
    logits = model.predict(x, verbose=0)
    value = float(loss(y, logits))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects: the classes are registered
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), logits, rtol=1e-6)
    assert float(loaded.loss(y, logits)) == pytest.approx(value, rel=1e-6)
    if name in ("amrl", "pgfl", "ldam", "autobalance"):  # the learned state came back
        fresh = float(L.get(name, COUNTS)(y, logits))
        assert value != pytest.approx(fresh, rel=1e-4)
        assert loaded.loss.learned_params().keys() == loss.learned_params().keys()


# ----------------------------------------------------------------------------------------------
# AMRL: defaults


def test_amrl_defaults_follow_minority_rule():
    loss = L.AMRLLoss([70, 20, 10])  # n/K = 33.3: classes 1 and 2 are minority
    np.testing.assert_allclose(loss.lambdas.numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(loss.betas.numpy(), [1.0, 2.0, 2.0])
    np.testing.assert_allclose(loss.margins.numpy(), (10 / np.array([70, 20, 10])) ** 0.25)
    np.testing.assert_allclose(loss.class_weights.numpy(), [0.3, 0.8, 0.9], rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# PGFL: alpha follows validation recall


def test_pgfl_alpha_moves_toward_missed_classes():
    rng = np.random.default_rng(4)
    y_val = np.repeat(np.arange(K), [30, 20, 10])
    proba = rng.dirichlet(np.ones(K), size=len(y_val))
    pred = np.where(y_val == 2, 0, y_val)  # class 2 always missed, half of class 1 missed
    pred[np.flatnonzero(y_val == 1)[:10]] = 0
    proba[np.arange(len(y_val)), pred] += 2.0
    proba /= proba.sum(axis=1, keepdims=True)

    loss = L.PGFLoss(COUNTS, eta=1.5)
    loss.on_epoch_end(0, y_val, proba)
    alpha = loss.alpha.numpy()
    pod = recall_score(y_val, proba.argmax(1), average=None, labels=range(K))
    np.testing.assert_allclose(pod, [1.0, 0.5, 0.0])
    logits = np.log(np.ones(K)) + 1.5 * (1 - pod)
    expected = K * np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(alpha, expected, rtol=1e-6)
    assert alpha[2] > 1.0 > alpha[1] > alpha[0]  # missed classes gain, detected ones lose
    assert alpha.mean() == pytest.approx(1.0, rel=1e-6)

    # MC: mean confidence of the correctly classified samples of each class
    correct = proba.argmax(1) == y_val
    mc0 = [proba[correct & (y_val == k), k].mean() for k in range(2)]
    params = loss.learned_params()
    assert params["pod_1"] == pytest.approx(0.5)
    assert [params["mc_0"], params["mc_1"]] == pytest.approx(mc0)
    assert params["mc_2"] == 0.0  # never correct yet

    # a second epoch: alpha keeps its mean, MC is a moving average; one-hot labels accepted
    sharper = proba**2 / (proba**2).sum(axis=1, keepdims=True)  # same argmax, other confidences
    loss.on_epoch_end(1, np.eye(K)[y_val], sharper)
    alpha2 = loss.alpha.numpy()
    assert alpha2.mean() == pytest.approx(1.0, rel=1e-6)
    assert alpha2[2] > alpha[2]
    mc1 = [sharper[correct & (y_val == k), k].mean() for k in range(2)]
    params2 = loss.learned_params()
    assert mc1[0] != pytest.approx(mc0[0])
    assert params2["mc_0"] == pytest.approx(0.9 * mc0[0] + 0.1 * mc1[0])
    assert params2["mc_1"] == pytest.approx(0.9 * mc0[1] + 0.1 * mc1[1])
    assert set(params2) == {f"{p}_{k}" for p in ("alpha", "pod", "mc") for k in range(K)}


def test_adaptive_state_reaches_a_compiled_function_without_retracing():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(12, K)).astype(np.float32)
    y = rng.integers(0, K, size=12)
    pgfl, ldam = L.PGFLoss(COUNTS), L.LDAMLoss(COUNTS)
    f_pgfl = tf.function(lambda yy, zz: pgfl(yy, zz))
    f_ldam = tf.function(lambda yy, zz: ldam(yy, zz))
    v0, w0 = float(f_pgfl(y, z)), float(f_ldam(y, z))

    proba = np.tile([[0.1, 0.1, 0.8]], (30, 1))
    pgfl.on_epoch_end(0, np.repeat(np.arange(K), 10), proba)
    ldam.on_train_begin(10)
    ldam.on_epoch_begin(9)
    v1, w1 = float(f_pgfl(y, z)), float(f_ldam(y, z))
    assert v1 != pytest.approx(v0, rel=1e-4)
    assert w1 != pytest.approx(w0, rel=1e-4)
    assert v1 == pytest.approx(float(pgfl(y, z)), rel=1e-6)  # graph == eager
    assert w1 == pytest.approx(float(ldam(y, z)), rel=1e-6)
    assert f_pgfl.experimental_get_tracing_count() == 1
    assert f_ldam.experimental_get_tracing_count() == 1


def test_hooks_are_noops_on_static_losses():
    for name in ("ce", "wce", "focal", "cb", "dwb", "la", "vs"):
        loss = L.get(name, COUNTS)
        loss.on_train_begin(3)
        loss.on_epoch_begin(0)
        loss.observe_batch(np.array([0, 1]), np.zeros((2, 3), np.float32))
        loss.on_epoch_end(0, np.array([0, 1, 2]), np.eye(3))
        assert loss.learned_params() == {}
        assert loss.state_variables == []
        assert loss.callbacks() == []
        assert getattr(loss, "upper_variables", None) is None


def test_pgfl_callback_adapts_alpha_in_plain_fit(tiny_data):
    x, y = tiny_data
    loss = L.get("pgfl", COUNTS)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    with pytest.raises(ValueError, match="validation_data"):
        loss.callbacks()
    model.fit(
        x, y, epochs=2, batch_size=16, verbose=0, callbacks=loss.callbacks(validation_data=(x, y))
    )
    alpha = loss.alpha.numpy()
    assert not np.allclose(alpha, 1.0)
    assert alpha.mean() == pytest.approx(1.0, rel=1e-5)


def test_ldam_callback_switches_drw_in_plain_fit(tiny_data):
    x, y = tiny_data
    loss = L.get("ldam", COUNTS, head="linear")
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: seen.append(loss.drw_active)
    )
    model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[*loss.callbacks(), record])
    assert seen == [False, False, False, False, True]  # DRW from int(0.8 * 5) = 4


# ----------------------------------------------------------------------------------------------
# AutoBalance: the upper objective


def np_balanced_ce(logits: np.ndarray, y: np.ndarray) -> float:
    m = logits.max(1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True))
    ce = -logp[np.arange(len(y)), y]
    return float(np.mean([ce[y == k].mean() for k in np.unique(y)]))


def test_autobalance_val_objective_is_class_balanced():
    rng = np.random.default_rng(6)
    z = rng.normal(size=(20, K))
    y = np.array([0] * 15 + [2] * 5)  # class 1 absent
    loss = L.AutoBalanceLoss(COUNTS, dtype="float64")
    assert float(loss.val_objective(y, z)) == pytest.approx(np_balanced_ce(z, y), rel=1e-9)
