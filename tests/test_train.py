"""Unit tests of the training loop (lossbench.training.Trainer) on tiny arrays.

Early stopping and best-weight restore, divergence, the batch order (a function of the seed and
the epoch only, never of the loss) and the order in which the loss's epoch hooks are called.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from lossbench.config import TrainOptions
from lossbench.losses.base import LossbenchLoss
from lossbench.training import Trainer, epoch_permutation

N, D, K = 48, 4, 3


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)).astype(np.float32)
    y = np.arange(N) % K
    return X, y, X[:24].copy(), y[:24].copy()


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])


def _opts(**kw) -> TrainOptions:
    base = {"epochs": 3, "batch_size": 16, "patience": 0, "seed": 0, "lr": 1e-2}
    return TrainOptions(**{**base, **kw})


class PlainCE(LossbenchLoss):
    """Sparse cross-entropy on logits, overriding none of the hooks (the base class's defaults)."""

    NAME = "plain_ce"

    def __init__(self):
        super().__init__([N // K] * K)

    def call(self, y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


class ScaledCE(PlainCE):
    """A different loss (twice CE): it must not change the batch order."""

    def call(self, y_true, y_pred):
        return 2.0 * super().call(y_true, y_pred)


class NaNLoss(PlainCE):
    """Cross-entropy times NaN: the training loss is non-finite from the first step."""

    def call(self, y_true, y_pred):
        return super().call(y_true, y_pred) * float("nan")


class HookedCE(PlainCE):
    """Records every hook the trainer calls, in order. `observe_batch` runs inside the compiled
    step, so it counts the batches in a variable, read at each epoch's end."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []
        self.batches = keras.Variable(0, dtype="int32", trainable=False)

    def observe_batch(self, y_true, logits):
        self.batches.assign_add(1)

    def on_train_begin(self, epochs):
        self.calls.append(("train_begin", epochs))

    def on_epoch_begin(self, epoch):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, y_val, proba):
        assert proba.shape == (len(y_val), K)
        self.calls.append(("epoch_end", epoch, int(keras.ops.convert_to_numpy(self.batches))))

    def learned_params(self):
        self.calls.append(("learned_params",))
        return {"alpha": 0.5}


def _scripted_val(monkeypatch, trainer: Trainer, column: str, values: list[float]) -> None:
    """Make `trainer.validate` report the given values of one history column, one per epoch."""
    real = trainer.validate

    def validate(epoch):
        row = real(epoch)
        row[column] = values[epoch]
        return row

    monkeypatch.setattr(trainer, "validate", validate)


@pytest.mark.parametrize(
    ("select", "column", "values"),
    [
        ("nll", "val_nll", [1.0, 0.5, 0.7, 0.8, 0.9, 0.1, 0.1, 0.1]),  # lower is better
        ("macro_f1", "val_macro_f1", [0.1, 0.6, 0.5, 0.4, 0.3, 0.9, 0.9, 0.9]),
    ],
)
def test_early_stopping_restores_the_best_epochs_weights(monkeypatch, select, column, values):
    model = _model()
    trainer = Trainer(model, PlainCE(), _opts(epochs=8, patience=2, select=select), K)
    _scripted_val(monkeypatch, trainer, column, values)
    snapshots = []
    result = trainer.fit(*_data(), on_epoch_end=lambda row: snapshots.append(model.get_weights()))
    # best at epoch 2; epochs 3 and 4 do not improve -> patience 2 is spent after epoch 4
    assert result.status == "ok"
    assert result.epochs_run == 4
    assert result.best_epoch == 2
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    final = model.get_weights()
    for got, want in zip(final, snapshots[1], strict=True):
        np.testing.assert_array_equal(got, want)
    assert not all(np.array_equal(a, b) for a, b in zip(final, snapshots[3], strict=True))


def test_patience_zero_trains_every_epoch_and_keeps_the_last_weights(monkeypatch):
    model = _model()
    trainer = Trainer(model, PlainCE(), _opts(epochs=4, patience=0, select="nll"), K)
    _scripted_val(monkeypatch, trainer, "val_nll", [0.1, 0.5, 0.7, 0.9])
    snapshots = []
    result = trainer.fit(*_data(), on_epoch_end=lambda row: snapshots.append(model.get_weights()))
    assert result.epochs_run == 4
    assert result.best_epoch == 4
    for got, want in zip(model.get_weights(), snapshots[-1], strict=True):
        np.testing.assert_array_equal(got, want)


def test_non_finite_training_loss_fails_the_run_at_that_epoch():
    trainer = Trainer(_model(), NaNLoss(), _opts(epochs=5), K)
    result = trainer.fit(*_data())
    assert result.status == "failed"
    assert result.epochs_run == 1
    assert result.reason.startswith("training loss became nan at epoch 1")


def test_non_finite_validation_loss_fails_the_run_at_that_epoch(monkeypatch):
    trainer = Trainer(_model(), PlainCE(), _opts(epochs=5, patience=3), K)
    _scripted_val(monkeypatch, trainer, "val_loss", [1.0, 0.9, math.inf, 0.5, 0.5])
    result = trainer.fit(*_data())
    assert result.status == "failed"
    assert result.epochs_run == 3
    assert "validation loss became inf at epoch 3" in result.reason


def _batches_seen(loss: keras.losses.Loss, seed: int, epochs: int = 2) -> list[list[int]]:
    trainer = Trainer(_model(), loss, _opts(epochs=epochs, seed=seed), K)
    seen: list[list[int]] = []
    real = trainer._train_step

    def step(X, Y, idx, loss_sum):
        seen.append([int(i) for i in np.asarray(idx)])
        return real(X, Y, idx, loss_sum)

    trainer._train_step = step
    trainer.fit(*_data())
    return seen


def test_batch_order_depends_on_seed_and_epoch_not_on_the_loss():
    ce = _batches_seen(PlainCE(), seed=3)
    assert ce == _batches_seen(ScaledCE(), seed=3)
    assert ce != _batches_seen(PlainCE(), seed=4)
    steps = math.ceil(N / 16)
    assert len(ce) == 2 * steps
    epoch0, epoch1 = ce[:steps], ce[steps:]
    assert sorted(i for b in epoch0 for i in b) == list(range(N))  # every row once per epoch
    assert sorted(i for b in epoch1 for i in b) == list(range(N))
    assert epoch0 != epoch1  # reshuffled each epoch
    assert [i for b in epoch0 for i in b] == epoch_permutation(3, 0, N).tolist()


def test_epoch_hooks_are_called_in_order():
    loss = HookedCE()
    result = Trainer(_model(), loss, _opts(epochs=2), K).fit(*_data())
    assert loss.calls == [
        ("train_begin", 2),
        ("epoch_begin", 0),
        ("epoch_end", 0, 3),  # observe_batch saw the epoch's 3 batches (48 rows / 16)
        ("learned_params",),
        ("epoch_begin", 1),
        ("epoch_end", 1, 6),
        ("learned_params",),
        ("learned_params",),  # the final values, for metrics.json
    ]
    assert result.learned_params == {"alpha": 0.5}
    assert [row["alpha"] for row in result.history] == [0.5, 0.5]


@pytest.mark.parametrize("patience", [0, 2])
def test_history_has_one_finite_row_per_epoch(patience):
    result = Trainer(_model(), PlainCE(), _opts(epochs=3, patience=patience), K).fit(*_data())
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    for row in result.history:
        assert math.isfinite(row["loss"]) and math.isfinite(row["val_loss"])
        assert {f"val_class_loss_{k}" for k in range(K)} <= set(row)


def test_a_non_finite_weight_is_named_even_when_both_losses_are_finite():
    trainer = Trainer(_model(), PlainCE(), _opts(), K)
    assert trainer._divergence(1.0, 1.0) is None
    kernel = trainer.model.trainable_weights[0]
    values = keras.ops.convert_to_numpy(kernel).copy()
    values[0, 0] = np.inf
    kernel.assign(values)
    assert trainer._divergence(1.0, 1.0) == f"weight {kernel.path} became non-finite"
