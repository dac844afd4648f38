"""AutoBalance's upper level (SPEC 4.3): the one implementation, used by `Trainer`, by
`AutoBalanceCallback` in a plain `model.fit` and by the tests.

The loss declares what its upper step needs (`LossbenchLoss.upper_variables`, `upper_lr`,
`interval`, `upper_pairs`, `val_objective`, `selection_start`); this module provides the step:
the look-ahead through the model's real Adam step (`adam_lookahead`), the hypergradient, the
averaged update and the Keras callback (`fit_callbacks` builds it by looking at the loss).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lossbench.losses.base import LossbenchLoss


def carve_upper_split(
    y: np.ndarray, seed: int, n_classes: int, fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) row indices: a stratified `fraction` of every class, fixed by the seed.

    A class with a single training row stays in the lower level (it cannot be split).
    """
    rng = np.random.default_rng([seed, 4301])
    lower, upper = [], []
    for k in range(n_classes):
        rows = rng.permutation(np.flatnonzero(y == k))
        take = int(round(fraction * len(rows))) if len(rows) > 1 else 0
        take = min(max(take, 1 if len(rows) > 1 else 0), len(rows) - 1)
        upper.append(rows[:take])
        lower.append(rows[take:])
    return np.sort(np.concatenate(lower)), np.sort(np.concatenate(upper))


def adam_moments(optimizer: keras.optimizers.Adam, variable: Any) -> tuple[Any, Any]:
    """The current first and second moments (m, v) that Keras' Adam `optimizer` holds for
    `variable` (the values, not the variables).

    Private API, isolated here: Keras 3's Adam exposes no accessor for the moment slot of a
    variable; its `_get_variable_index`, `_momentums` and `_velocities` are what its own
    `update_step` reads. `tests/test_private_apis.py` fails when they change.
    """
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index].value, optimizer._velocities[index].value


def adam_lookahead(
    optimizer: keras.optimizers.Adam, variables: list, grads: list
) -> list[tf.Tensor]:
    """The weights after the Adam step `optimizer` would take with `grads`, as tensors that are
    differentiable in `grads` (the optimizer's state is not changed).

    Keras' Adam: m' = m + (g - m)(1 - beta_1), v' = v + (g^2 - v)(1 - beta_2),
    theta' = theta - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m' / (sqrt(v') + epsilon),
    t = iterations + 1; the current moments m, v are constants, m' and v' depend on g.
    """
    if not optimizer.built:
        optimizer.build(variables)
    t = tf.cast(optimizer.iterations + 1, tf.float32)
    out = []
    for var, g in zip(variables, grads, strict=True):
        dtype = var.dtype
        lr = tf.cast(optimizer.learning_rate, dtype)
        b1, b2 = tf.cast(optimizer.beta_1, dtype), tf.cast(optimizer.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - b2 ** tf.cast(t, dtype)) / (1 - b1 ** tf.cast(t, dtype))
        m, v = adam_moments(optimizer, var)
        m_new = m + (g - m) * (1 - b1)
        v_new = v + (tf.square(g) - v) * (1 - b2)
        positive = v_new > 0  # sqrt'(0) is infinite: keep the gradient finite where v' = 0
        root = tf.where(
            positive, tf.sqrt(tf.where(positive, v_new, tf.ones_like(v_new))), tf.zeros_like(v_new)
        )
        out.append(var.value - alpha * m_new / (root + tf.cast(optimizer.epsilon, dtype)))
    return out


def autobalance_hypergradient(
    model: keras.Model,
    loss: LossbenchLoss,
    optimizer: keras.optimizers.Adam,
    x_train: tf.Tensor,
    y_train: tf.Tensor,
    x_upper: tf.Tensor,
    y_upper: tf.Tensor,
    *,
    clipnorm: float | None = None,
) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """AutoBalance's upper-level objective and its gradient in `loss.upper_variables`.

    ```
    g      = clip_by_global_norm(grad_theta loss(y_train, model(x_train; theta)), clipnorm)
    theta' = the optimizer's real next Adam step with g (`adam_lookahead`)
    value  = loss.val_objective(y_upper, model(x_upper; theta'))   (class-balanced CE)
    returns (value, d value / d (l, log Delta))
    ```

    Two nested tapes: the inner gives g as a function of (l, log Delta), the outer
    differentiates the upper objective through theta' (evaluated with `model.stateless_call`,
    so neither the model's weights nor the optimizer's state are touched). Graph-safe.

    Raises:
        ValueError: an upper variable gets no gradient (the loss does not use it), instead of a
            silent zero.
    """
    theta = model.trainable_variables
    non_trainable = [v.value for v in model.non_trainable_variables]
    upper = list(loss.upper_variables)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            train_value = loss(y_train, _float32(model(x_train, training=True)))
        grads = inner.gradient(train_value, theta)
        grads = [tf.zeros_like(t) if g is None else g for g, t in zip(grads, theta, strict=True)]
        if clipnorm:
            grads, _ = tf.clip_by_global_norm(grads, clipnorm)
        ahead = adam_lookahead(optimizer, theta, grads)
        logits, _ = model.stateless_call(ahead, non_trainable, x_upper, training=False)
        value = loss.val_objective(y_upper, _float32(logits))
    hyper = outer.gradient(value, upper)
    missing = [v.name for v, g in zip(upper, hyper, strict=True) if g is None]
    if missing:
        raise ValueError(
            f"AutoBalance: no gradient reaches {', '.join(missing)} through the look-ahead step"
        )
    return value, hyper


def _float32(logits: Any) -> Any:
    """Low-precision (mixed precision) logits as float32 for a loss; others pass untouched."""
    return tf.cast(logits, tf.float32) if logits.dtype in (tf.float16, tf.bfloat16) else logits


def compiled_hypergradient(
    model: keras.Model,
    loss: LossbenchLoss,
    optimizer: keras.optimizers.Adam,
    clipnorm: float | None,
) -> Callable[..., tuple[tf.Tensor, list[tf.Tensor]]]:
    """`autobalance_hypergradient` of one batch pair as one compiled function, traced once for
    any batch sizes, for `autobalance_upper_step` to call for each of the k pairs from Python
    (`Trainer` and `AutoBalanceCallback`): a compiled step around the k calls made the graph
    optimiser inline k copies of the nested tapes at its first call (about 1.1 s a run)."""
    return tf.function(
        lambda *pair: autobalance_hypergradient(model, loss, optimizer, *pair, clipnorm=clipnorm),
        reduce_retracing=True,
        autograph=False,
    )


def autobalance_upper_step(
    model: keras.Model,
    loss: LossbenchLoss,
    optimizer: keras.optimizers.Adam,
    upper_optimizer: keras.optimizers.Optimizer,
    x_train: tf.Tensor,
    y_train: tf.Tensor,
    x_upper: tf.Tensor,
    y_upper: tf.Tensor,
    *,
    clipnorm: float | None = None,
    hypergradient: Callable[..., tuple[tf.Tensor, list[tf.Tensor]]] | None = None,
    update: Callable[..., tf.Tensor] | None = None,
) -> tf.Tensor:
    """One upper step: the hypergradient averaged over the k batch pairs stacked on axis 0 of
    the data arguments, then one `upper_optimizer` step on `loss.upper_variables`; returns the
    mean upper objective. Used by `Trainer` and by `AutoBalanceCallback`.

    `hypergradient(x_train, y_train, x_upper, y_upper)` of one pair: `autobalance_hypergradient`
    of these arguments when None. `Trainer` and `AutoBalanceCallback` pass
    `compiled_hypergradient` and call this function eagerly, so that the k pairs share one trace.
    `update(values, grads)`: `upper_update` of `loss` and `upper_optimizer` when None
    (`Trainer` and `AutoBalanceCallback` pass `compiled_upper_update`'s)."""
    if hypergradient is None:

        def hypergradient(*pair: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
            return autobalance_hypergradient(model, loss, optimizer, *pair, clipnorm=clipnorm)

    pairs = [hypergradient(x_train[i], y_train[i], x_upper[i], y_upper[i])
             for i in range(int(x_train.shape[0]))]  # fmt: skip
    values, grads = [v for v, _ in pairs], [g for _, g in pairs]
    if update is not None:
        return update(values, grads)
    return upper_update(loss, upper_optimizer, values, grads)


def upper_update(
    loss: LossbenchLoss,
    upper_optimizer: keras.optimizers.Optimizer,
    values: list[tf.Tensor],
    grads: list[list[tf.Tensor]],
) -> tf.Tensor:
    """The end of `autobalance_upper_step`: the k pairs' hypergradients `grads` averaged, one
    `upper_optimizer` step on `loss.upper_variables` with the mean; returns the mean of the
    pairs' upper objectives `values`. Graph-safe (`compiled_upper_update`)."""
    total = grads[0]
    for more in grads[1:]:
        total = [a + b for a, b in zip(total, more, strict=True)]
    mean = [g / len(grads) for g in total]
    upper_optimizer.apply_gradients(zip(mean, loss.upper_variables, strict=True))
    return tf.add_n(values) / len(values)


def compiled_upper_update(
    loss: LossbenchLoss, upper_optimizer: keras.optimizers.Optimizer
) -> Callable[..., tf.Tensor]:
    """`upper_update` as one compiled function (about 5 ms less an upper step than its eager
    ops), for `autobalance_upper_step`'s `update`."""
    return tf.function(
        lambda values, grads: upper_update(loss, upper_optimizer, values, grads),
        reduce_retracing=True,
        autograph=False,
    )


def sample_upper_pairs(
    rng: np.random.Generator,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_upper: np.ndarray,
    y_upper: np.ndarray,
    n_classes: int,
    pairs: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """k pairs (random training batch, class-stratified upper batch), stacked on axis 0."""
    n = len(y_train)
    tr = [rng.choice(n, size=min(batch_size, n), replace=False) for _ in range(pairs)]
    per_class = max(1, batch_size // n_classes)
    up = []
    for _ in range(pairs):
        idx = []
        for k in range(n_classes):
            rows = np.flatnonzero(y_upper == k)
            if len(rows):
                idx.append(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
        up.append(np.concatenate(idx))
    return (
        np.stack([x_train[i] for i in tr]).astype(np.float32),
        np.stack([y_train[i] for i in tr]).astype(np.int64),
        np.stack([x_upper[i] for i in up]).astype(np.float32),
        np.stack([y_upper[i] for i in up]).astype(np.int64),
    )


class AutoBalanceCallback(keras.callbacks.Callback):
    """AutoBalance's upper level in a plain `model.fit` (TensorFlow backend; the model compiled
    with an Adam optimizer and the AutoBalance loss): after the warm-up, every `interval` steps,
    `autobalance_upper_step` on `pairs` (training batch, stratified upper batch) pairs.

    Made by `fit_callbacks(loss, train_data=..., upper_data=...)`; the upper data should not be
    the validation data used for model selection (carve it with `carve_upper_split`).
    """

    def __init__(
        self,
        loss: LossbenchLoss,
        train_data: tuple[Any, Any],
        upper_data: tuple[Any, Any],
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.loss = loss
        self.x_train, self.y_train = (np.asarray(a) for a in train_data)
        self.x_upper, self.y_upper = (np.asarray(a) for a in upper_data)
        self.batch_size = batch_size
        self.rng = np.random.default_rng([seed, 7])
        self.updates = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        if keras.backend.backend() != "tensorflow":
            raise ValueError("autobalance's upper step needs the TensorFlow backend")
        optimizer = self.model.optimizer
        if not isinstance(optimizer, keras.optimizers.Adam):
            raise ValueError("autobalance's look-ahead is Adam's step: compile with Adam")
        epochs = int(self.params.get("epochs") or 1)
        steps = int(self.params.get("steps") or 1)
        self.start = self.loss.selection_start(epochs)
        self.interval = self.loss.interval or max(1, int(0.1 * steps))
        upper_optimizer = keras.optimizers.Adam(self.loss.upper_lr)
        clipnorm = optimizer.global_clipnorm
        self._step = functools.partial(
            autobalance_upper_step, self.model, self.loss, optimizer, upper_optimizer,
            clipnorm=clipnorm,
            hypergradient=compiled_hypergradient(self.model, self.loss, optimizer, clipnorm),
            update=compiled_upper_update(self.loss, upper_optimizer),
        )  # fmt: skip
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.epoch < self.start or (batch + 1) % self.interval:
            return
        data = sample_upper_pairs(
            self.rng,
            self.x_train,
            self.y_train,
            self.x_upper,
            self.y_upper,
            self.loss.num_classes,
            self.loss.upper_pairs,
            self.batch_size,
        )
        self._step(*(tf.constant(a) for a in data))
        self.updates += 1


def fit_callbacks(
    loss: LossbenchLoss,
    *,
    train_data: tuple[Any, Any] | None = None,
    upper_data: tuple[Any, Any] | None = None,
    batch_size: int = 256,
    seed: int = 0,
    **data: Any,
) -> list[keras.callbacks.Callback]:
    """Every callback `loss` needs in a plain `model.fit` (TensorFlow backend for a bi-level
    loss): its epoch hooks, `loss.callbacks(train_data=..., **data)`; for a bi-level loss
    (`upper_variables`: AutoBalance, whose epoch hooks are the base class's no-ops) its upper
    step, `AutoBalanceCallback` on `train_data` (what the model trains on) and `upper_data`
    (held-out upper-level data, not the validation split: `carve_upper_split`).

    Raises:
        ValueError: a bi-level loss without `train_data` and `upper_data`.
    """
    if not loss.upper_variables:
        return loss.callbacks(train_data=train_data, **data)
    if train_data is None or upper_data is None:
        raise ValueError(f"{loss.name}'s upper step: pass train_data=(x, y) and upper_data=(x, y)")
    return [AutoBalanceCallback(loss, train_data, upper_data, batch_size, seed)]
