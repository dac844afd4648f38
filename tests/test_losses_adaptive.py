"""The adaptive losses against their sources (SPEC 4.1, 4.3, 4.4): AMRL's dual ascent, LDAM's
cosine head and DRW weighted mean, AutoBalance's hypergradient and its effect in training."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from lossbench import losses as L
from lossbench.config import DataOptions, TrainOptions
from lossbench.models import CosineDense, build_model
from lossbench.training import (
    Trainer,
    autobalance_hypergradient,
    carve_upper_split,
    fit_callbacks,
    seed_everything,
)

K = 3
COUNTS = [40, 16, 8]


@pytest.fixture(scope="module")
def digits():
    from lossbench.data import prepare

    return prepare(DataOptions(data="digits-lt"))


# ----------------------------------------------------------------------------------------------
# AMRL: margins from counts, lambda by projected dual ascent


def test_amrl_margins_come_from_class_counts():
    loss = L.AMRLLoss([900, 100, 9])
    m = keras.ops.convert_to_numpy(loss.margins)
    np.testing.assert_allclose(m, (9 / np.array([900, 100, 9])) ** 0.25, rtol=1e-6)
    assert m[2] == pytest.approx(1.0)  # the rarest class gets m
    assert loss.state_variables == [loss.lambdas]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss.lambdas), [1.0, 1.0, 1.0])


def fixed_amrl_run(loss: L.AMRLLoss, epochs: int) -> list[dict[str, float]]:
    """Train with lr = 0 (a fixed model) through the trainer: its compiled step feeds the
    constraint estimate, its epoch hooks take the dual steps. Every row gets the logits (3, -3):
    class 0 rows have s = 6, class 1 rows s = -6."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), [60, 20])
    x = rng.normal(size=(80, 2)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.layers[0].set_weights([np.zeros((2, 2)), np.array([3.0, -3.0])])
    opts = TrainOptions(model="mlp", epochs=epochs, batch_size=16, lr=0.0, patience=0)
    trainer = Trainer(model, loss, opts, 2)
    result = trainer.fit(x, y, x, y)
    assert result.status == "ok"
    return result.history


def test_amrl_violated_lambda_rises_satisfied_falls_to_zero():
    loss = L.AMRLLoss([60, 20], eta=1.0, eps=0.05, lambda_max=10.0)
    history = fixed_amrl_run(loss, epochs=25)
    lam0 = [row["lambda_0"] for row in history]
    lam1 = [row["lambda_1"] for row in history]
    # class 0: s = 6 > m_0, g_0 = 0 < eps: lambda_0 falls by eta * eps per epoch, then stays 0
    assert history[0]["g_0"] == 0.0
    np.testing.assert_allclose(lam0[:5], 1.0 - 0.05 * np.arange(1, 6), rtol=1e-5)
    assert lam0[-1] == 0.0 and all(b <= a for a, b in zip(lam0, lam0[1:], strict=False))
    # class 1 (the rarest, m_1 = 1, beta_1 = 2): g_1 = (1 + 6)^2 = 49 > eps: lambda_1 rises to
    # lambda_max and stays there
    assert history[0]["m_1"] == pytest.approx(1.0)
    assert history[0]["g_1"] == pytest.approx(49.0, rel=1e-5)
    assert all(v == 10.0 for v in lam1)


def test_amrl_small_violation_raises_lambda_step_by_step():
    loss = L.AMRLLoss([60, 20], m=[6.3, 1.0], beta=[1.0, 2.0], eta=0.5, eps=0.05)
    history = fixed_amrl_run(loss, epochs=4)
    lam0 = [row["lambda_0"] for row in history]
    # g_0 = 6.3 - 6 = 0.3: lambda_0 += 0.5 * (0.3 - 0.05) per epoch
    assert history[0]["g_0"] == pytest.approx(0.3, rel=1e-4)
    np.testing.assert_allclose(lam0, 1.0 + 0.125 * np.arange(1, 5), rtol=1e-4)


def test_amrl_frozen_and_plain_fit_callback():
    frozen = L.AMRLLoss([60, 20], trainable=False)
    history = fixed_amrl_run(frozen, epochs=2)
    assert [row["lambda_1"] for row in history] == [1.0, 1.0]
    with pytest.raises(ValueError, match="train_data"):
        L.AMRLLoss([60, 20]).callbacks()
    hooks = fit_callbacks(frozen, train_data=(np.zeros((2, 4)), np.array([0, 1])))
    assert [type(c) for c in hooks] == [L.LossHooks]  # a loss without an upper step: its hooks

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(K), COUNTS)
    x = rng.normal(size=(len(y), 4)).astype(np.float32)
    loss = L.get("amrl", COUNTS)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(K)])
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=loss.callbacks(train_data=(x, y)))
    params = loss.learned_params()
    assert all(np.isfinite(params[f"g_{k}"]) for k in range(K))
    assert any(params[f"lambda_{k}"] != 1.0 for k in range(K))


def test_amrl_lambdas_on_digits_are_not_all_decreasing(digits):
    seed_everything(0)
    opts = TrainOptions(model="mlp", epochs=8, batch_size=64, patience=0)
    model = build_model("mlp", digits.n_features, digits.n_classes)
    loss = L.get("amrl", digits.class_counts("train"))
    trainer = Trainer(model, loss, opts, digits.n_classes)
    result = trainer.fit(digits.X_train, digits.y_train, digits.X_val, digits.y_val)
    assert result.status == "ok"
    lam = np.array(
        [[row[f"lambda_{k}"] for k in range(digits.n_classes)] for row in result.history]
    )
    rising = np.diff(lam, axis=0) > 0
    assert rising.any(), lam  # the multipliers adapt both ways, not only shrink
    g = np.array([[row[f"g_{k}"] for k in range(digits.n_classes)] for row in result.history])
    assert np.isfinite(g).all() and (g >= 0).all()


# ----------------------------------------------------------------------------------------------
# LDAM: the authors' formula with the cosine head


def ldam_authors_reference(h, W, y, counts, s=30.0, max_m=0.5, drw_beta=None):
    """NumPy: normalised features and weights, s * (cos - Delta_y e_y), (DRW-)weighted mean."""
    counts = np.asarray(counts, dtype=np.float64)
    cos = (h / np.linalg.norm(h, axis=1, keepdims=True)) @ (W / np.linalg.norm(W, axis=0))
    m = 1.0 / np.sqrt(np.sqrt(counts))
    m = m * (max_m / m.max())
    out = cos.copy()
    out[np.arange(len(y)), y] -= m[y]
    a = s * out
    a = a - a.max(axis=1, keepdims=True)
    ce = -(a[np.arange(len(y)), y] - np.log(np.exp(a).sum(axis=1)))
    if drw_beta is None:
        w = np.ones(len(counts))
    else:
        w = (1.0 - drw_beta) / (1.0 - drw_beta**counts)
        w = w / w.sum() * len(counts)
    return float((w[y] * ce).sum() / w[y].sum())


@pytest.mark.parametrize("drw", [False, True])
def test_ldam_matches_the_authors_formula(drw):
    rng = np.random.default_rng(8)
    counts = [500, 60, 7]
    h = rng.normal(size=(32, 6))
    W = rng.normal(size=(6, 3))
    y = rng.integers(0, 3, size=32)
    head = CosineDense(3, scale=30.0, dtype="float64")
    head.build((None, 6))
    head.kernel.assign(W)
    loss = L.LDAMLoss(counts, dtype="float64")
    assert (loss.head, loss.scale) == ("cosine", 30.0)
    if drw:
        loss.on_train_begin(10)
        loss.on_epoch_begin(8)
    got = float(loss(y, head(h)))
    want = ldam_authors_reference(h, W, y, counts, drw_beta=0.9999 if drw else None)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)


def test_ldam_run_starts_from_the_same_weights_as_ce(digits):
    from lossbench.models import weights_checksum

    sums = {}
    for name in ("ce", "ldam"):
        loss = L.get(name, digits.class_counts("train"))
        seed_everything(3)
        model = build_model(
            "cnn1d", digits.n_features, digits.n_classes, head=loss.head, scale=loss.scale
        )
        sums[name] = weights_checksum(model)
    assert sums["ce"] == sums["ldam"]


# ----------------------------------------------------------------------------------------------
# AutoBalance: the trainer's hypergradient against finite differences of the real Adam step


def small_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,), dtype="float64"),
            keras.layers.Dense(8, activation="tanh", dtype="float64"),
            keras.layers.Dense(K, dtype="float64"),
        ]
    )


def test_carve_upper_split_is_stratified_and_fixed_by_seed():
    y = np.repeat(np.arange(4), [100, 30, 6, 1])
    lower, upper = carve_upper_split(y, 0, 4)
    assert np.bincount(y[upper], minlength=4).tolist() == [20, 6, 1, 0]
    assert len(np.intersect1d(lower, upper)) == 0 and len(lower) + len(upper) == len(y)
    again = carve_upper_split(y, 0, 4)
    np.testing.assert_array_equal(upper, again[1])
    assert not np.array_equal(upper, carve_upper_split(y, 1, 4)[1])


def test_autobalance_hypergradient_matches_finite_differences_of_the_real_step():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 4))
    y = rng.integers(0, K, size=64)
    x_up = rng.normal(size=(12, 4)) + np.repeat(np.arange(K), 4)[:, None] * 0.5
    y_up = np.repeat(np.arange(K), 4)
    model = small_model(3)
    loss = L.AutoBalanceLoss(COUNTS, dtype="float64")
    optimizer = keras.optimizers.Adam(1e-3)  # the default learning rate
    clipnorm = 1.0

    def real_step(xb, yb):
        with tf.GradientTape() as tape:
            value = loss(yb, model(xb, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, clipnorm)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    for i in range(200):  # Adam's moments warm up, as after the 20% warm-up
        real_step(x[(i * 16) % 64 : (i * 16) % 64 + 16], y[(i * 16) % 64 : (i * 16) % 64 + 16])
    xb, yb = x[:16], y[:16]
    value, grads = autobalance_hypergradient(
        model, loss, optimizer, xb, yb, x_up, y_up, clipnorm=clipnorm
    )

    weights = [v.numpy().copy() for v in model.trainable_variables]
    opt_state = [v.numpy().copy() for v in optimizer.variables]

    def objective_after_real_step() -> float:
        real_step(xb, yb)
        out = float(loss.val_objective(y_up, model(x_up)))
        for v, w in zip(model.trainable_variables, weights, strict=True):
            v.assign(w)
        for v, w in zip(optimizer.variables, opt_state, strict=True):
            v.assign(w)
        return out

    assert float(value) == pytest.approx(objective_after_real_step(), rel=1e-9)
    h = 1e-4
    for var, grad in zip(loss.upper_variables, grads, strict=True):
        base = var.numpy().copy()
        fd = np.zeros(K)
        for k in range(K):
            for sign in (1, -1):
                shifted = base.copy()
                shifted[k] += sign * h
                var.assign(shifted)
                fd[k] += sign * objective_after_real_step() / (2 * h)
            var.assign(base)
        g = grad.numpy()
        assert np.abs(fd).max() > 1e-6  # not trivially zero
        np.testing.assert_allclose(g, fd, rtol=0.1, atol=0.1 * np.abs(fd).max())


def test_autobalance_missing_gradient_is_an_error():
    model = small_model(0)
    loss = L.AutoBalanceLoss(COUNTS, dtype="float64")
    loss.upper_variables = [loss.l, loss.log_delta, keras.Variable(np.zeros(K), name="unused")]
    x = np.random.default_rng(0).normal(size=(6, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="no gradient reaches unused"):
        autobalance_hypergradient(model, loss, keras.optimizers.Adam(1e-3), x, y, x, y)


def test_autobalance_moves_l_and_delta_on_digits(digits):
    seed_everything(0)
    opts = TrainOptions(model="mlp", epochs=10, batch_size=64, patience=0)
    model = build_model("mlp", digits.n_features, digits.n_classes)
    loss = L.get("autobalance", digits.class_counts("train"))
    l0 = keras.ops.convert_to_numpy(loss.l).copy()
    d0 = keras.ops.convert_to_numpy(loss.log_delta).copy()
    trainer = Trainer(model, loss, opts, digits.n_classes)
    result = trainer.fit(digits.X_train, digits.y_train, digits.X_val, digits.y_val)
    assert result.status == "ok"
    updates = trainer.upper_updates
    assert updates > 0
    # no upper step during the warm-up (int(0.2 * 10) = 2 epochs)
    assert [row["l_0"] for row in result.history[:2]] == [float(l0[0])] * 2
    floor = loss.upper_lr * updates / 10
    moved_l = np.abs(keras.ops.convert_to_numpy(loss.l) - l0).max()
    moved_d = np.abs(keras.ops.convert_to_numpy(loss.log_delta) - d0).max()
    assert moved_l > floor and moved_d > floor, (moved_l, moved_d, floor)
    # the upper data came from the training split: the model trained on the other 80%
    lower, upper = carve_upper_split(digits.y_train, 0, digits.n_classes)
    assert trainer._n == len(lower) < len(digits.y_train)


def test_autobalance_callback_runs_the_upper_step_in_plain_fit():
    from lossbench.training import AutoBalanceCallback

    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(K), [80, 30, 15])
    x = (rng.normal(size=(len(y), 4)) + 0.8 * y[:, None]).astype(np.float32)
    lower, upper = carve_upper_split(y, 0, K)
    loss = L.get("autobalance", COUNTS, warmup=0.5, interval=1)
    with pytest.raises(ValueError, match="upper_data"):
        fit_callbacks(loss, train_data=(x, y))
    with pytest.raises(ValueError, match="fit_callbacks"):  # the loss has no upper step itself
        loss.callbacks(train_data=(x, y), upper_data=(x, y))
    (callback,) = fit_callbacks(
        loss, train_data=(x[lower], y[lower]), upper_data=(x[upper], y[upper]), batch_size=32
    )
    assert isinstance(callback, AutoBalanceCallback)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(K)]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0), loss=loss)
    l0 = keras.ops.convert_to_numpy(loss.l).copy()
    model.fit(x[lower], y[lower], epochs=2, batch_size=32, verbose=0, callbacks=[callback])
    steps = int(np.ceil(len(lower) / 32))
    assert callback.updates == steps  # epoch 0 is the warm-up, then one upper step per step
    assert not np.allclose(keras.ops.convert_to_numpy(loss.l), l0)
