"""Logit-adjustment family: `la`, `ldam`, `vs` and the bi-level `autobalance`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import keras
import numpy as np
from keras import ops

from lossbench.losses.base import (
    KerasLossArgs,
    LossbenchLoss,
    Param,
    balanced_cross_entropy,
    take,
    true_class_log_probs,
)
from lossbench.losses.hooks import LossHooks


def logit_adjusted_loss(labels: Any, logits: Any, offsets: Any) -> Any:
    """Per-sample -log softmax(z + offsets)_y (offsets = tau log pi)."""
    return -true_class_log_probs(labels, logits + offsets)


def ldam_loss(
    labels: Any,
    logits: Any,
    margins: Any,
    class_weights: Any,
    scale: float = 1.0,
) -> Any:
    """Per-sample w_y l_i / mean_batch(w), l_i = -log softmax(z - s Delta_y e_y)_y.

    `z` are the model's logits (s * cos for the cosine head); the batch mean of the result is
    the weighted mean sum(w l) / sum(w).
    """
    shift = (
        ops.one_hot(labels, ops.shape(logits)[-1], dtype=logits.dtype)
        * take(margins, labels)[:, None]
    )
    log_p = true_class_log_probs(labels, logits - scale * shift)
    w = take(class_weights, labels)
    return -w * log_p / ops.mean(w)


def vs_loss(
    labels: Any,
    logits: Any,
    scales: Any,
    offsets: Any,
    class_weights: Any,
) -> Any:
    """Per-sample VS loss -w_y log softmax(Delta * z + l)_y."""
    return -take(class_weights, labels) * true_class_log_probs(labels, logits * scales + offsets)


@keras.saving.register_keras_serializable(package="lossbench")
class LogitAdjustedLoss(LossbenchLoss):
    """Logit-adjusted cross-entropy (Balanced Softmax at tau = 1).

    ```
    loss(z, y) = -log softmax(z + tau log pi)_y,   pi_k = n_k / n
    ```

    The posterior is softmax(z + tau log pi) (the training prior's); argmax z is the balanced
    decision the loss is designed for.

    Source: Menon et al. 2021, "Long-tail learning via logit adjustment"; the authors' code
    github.com/google-research/google-research `logit_adjustment/main.py` (mode "loss",
    tau = 1.0); Ren et al. 2020, "Balanced Meta-Softmax". Default tau = 1; tau = 0 is `ce`.

    Args:
        class_counts: training samples per class, n_k.
        tau: temperature of the prior offset (any real number).
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = LogitAdjustedLoss(class_counts=[900, 100, 10], tau=1.0)
    loss([0, 2], [[2.0, -1.0, 0.0], [0.5, 0.3, 0.1]])
    ```
    """

    NAME = "la"
    POSTERIOR = "softmax(z + tau log pi)"
    FORMULA = "-log softmax(z + tau log pi)_y"
    SOURCE = (
        "Menon et al. 2021 (logit adjustment), authors' code google-research/google-research "
        "logit_adjustment/main.py; Ren et al. 2020 (Balanced Softmax, tau = 1)"
    )
    TRACE_FREE = frozenset({"class_counts", "tau"})
    PARAMS = {"tau": Param(1.0, "prior offset temperature", search=(0.0, 3.0))}

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        tau: float = 1.0,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        self.offsets = self.constant(self.params["tau"] * self.stats.log_priors(), "offsets")

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        return logit_adjusted_loss(labels, logits, self.offsets)

    def posterior(self, logits: Any) -> Any:
        """softmax(z + tau log pi): the training-prior posterior the loss is consistent with."""
        z = keras.ops.cast(logits, "float32")
        return keras.ops.softmax(z + keras.ops.cast(self.offsets, "float32"), axis=-1)


@keras.saving.register_keras_serializable(package="lossbench")
class LDAMLoss(LossbenchLoss):
    """Label-distribution-aware margin loss with deferred re-weighting (LDAM-DRW).

    ```
    z = s * h(x)            the model's logits: h = cos(theta) of the normalised (cosine) head
                            (head="cosine", s = 30) or the plain Dense logits (head="linear", s = 1)
    loss_i = -w_y log softmax(z - s * Delta_y e_y)_y  =  -w_y log softmax(s (h - Delta_y e_y))_y
    Delta_k = C / n_k^(1/4),  C such that max_k Delta_k = max_margin (0.5)
    reduction: sum_i w_i loss_i / sum_i w_i over the batch (PyTorch's weighted mean)
    w_k = 1 before the DRW epoch; from epoch int(drw_start * epochs) on (0-based),
    w_k = (1 - beta) / (1 - beta^n_k) normalised so sum_k w_k = K, beta = drw_beta (0.9999)
    ```

    The loss declares the head it needs (`head`, `scale`); `lossbench.models.build_model(...,
    head=loss.head, scale=loss.scale)` builds it, with the same initial weights as the plain head.
    The model's logits are s * cos, so the posterior is softmax(z). In a plain `model.fit` use a
    model with that head (`lossbench.models.CosineDense`) and `callbacks=loss.callbacks()` for
    DRW; without the callback the DRW weights stay 1. The per-sample values returned by `call`
    are w_i loss_i / mean_batch(w), so Keras' batch mean is the weighted mean.

    Source: Cao et al. 2019, "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
    Loss"; the authors' code (github.com/kaidic/LDAM-DRW, `losses.py` LDAMLoss, `models/
    resnet_cifar.py` NormedLinear, `cifar_train.py` DRW weights). Differences: the cosine head's
    weights start from the plain head's initialiser (so every loss starts from the same weights)
    and keep its bias variable frozen at 0 (the authors' head has no bias).
    Defaults: head = cosine, s = 30 (1 for head=linear), max_margin = 0.5, drw = true,
    drw_beta = 0.9999, drw_start = 0.8.

    Args:
        class_counts: training samples per class, n_k.
        head: "cosine" (normalised features and weights, the authors' head) or "linear".
        max_margin: the largest margin (that of the rarest class), > 0.
        s: logit scale, > 0 (unset: 30 for head=cosine, 1 for head=linear).
        drw: enable deferred re-weighting.
        drw_beta: effective-number beta of the DRW weights, in [0, 1).
        drw_start: fraction of the epochs after which DRW starts, in [0, 1].
        drw_active: current DRW state (saved in the config; not a user parameter).
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = LDAMLoss(class_counts=[900, 100, 10])  # Delta = [0.163, 0.281, 0.5], s = 30
    model = build_model("mlp", 8, 3, head=loss.head, scale=loss.scale)
    model.compile("adam", loss=loss)
    model.fit(x, y, epochs=10, callbacks=loss.callbacks())  # DRW weights on from epoch 8
    ```
    """

    NAME = "ldam"
    POSTERIOR = "softmax(z), z = s cos"
    HEAD = "cosine, s = 30 (head=linear: plain logits, s = 1)"
    FORMULA = (
        "-w_y log softmax(s (cos - Delta_y e_y))_y with a cosine head, s = 30, Delta_k = C / "
        "n_k^(1/4), max Delta = 0.5; DRW: w = cb weights (beta = 0.9999) after 80% of the "
        "epochs, weighted mean sum(w l) / sum(w)"
    )
    SOURCE = (
        "Cao et al. 2019 (LDAM-DRW); authors' code kaidic/LDAM-DRW losses.py (LDAMLoss), "
        "models/resnet_cifar.py (NormedLinear)"
    )
    TRACE_FREE = frozenset(  # not head and s: the network and its scale
        {"class_counts", "max_margin", "drw", "drw_beta", "drw_start", "drw_active"}
    )
    PARAMS = {
        "head": Param("cosine", "model head", scalar=False, choices=("cosine", "linear")),
        "max_margin": Param(0.5, "largest margin", low=0.0, low_open=True, search=(0.1, 1.0)),
        "s": Param(
            None, "logit scale (unset: 30 cosine, 1 linear)", nullable=True, low=0.0, low_open=True
        ),
        "drw": Param(True, "deferred re-weighting", boolean=True),
        "drw_beta": Param(0.9999, "DRW effective-number beta", low=0.0, high=1.0, high_open=True),
        "drw_start": Param(0.8, "fraction of epochs before DRW", low=0.0, high=1.0),
    }

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        head: str = "cosine",
        max_margin: float = 0.5,
        s: float | None = None,
        drw: bool = True,
        drw_beta: float = 0.9999,
        drw_start: float = 0.8,
        drw_active: bool = False,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        p = self.params
        self.head = p["head"]
        self.scale = float(
            p["s"] if p["s"] is not None else (30.0 if self.head == "cosine" else 1.0)
        )
        self.margins = self.constant(self.stats.ldam_margins(p["max_margin"]), "margins")
        self._drw_weights = self.stats.effective_weights(p["drw_beta"])
        self.class_weights = self.variable(np.ones(self.num_classes), "drw_weights")
        self._epochs: int | None = None
        self.drw_active = False
        self.set_drw(bool(drw_active))

    def set_drw(self, active: bool) -> None:
        """Switch the class weights to the DRW weights (active) or back to 1."""
        self.drw_active = bool(active and self.params["drw"])
        w = self._drw_weights if self.drw_active else np.ones(self.num_classes)
        self.class_weights.assign(w.astype(self.dtype))

    def drw_epoch(self, epochs: int) -> int:
        """The first DRW epoch (0-based), int(drw_start * epochs)."""
        return int(self.params["drw_start"] * epochs)

    def selection_start(self, epochs: int) -> int:
        """With DRW, its first epoch (the final phase); else 0."""
        return self.drw_epoch(epochs) if self.params["drw"] else 0

    def on_train_begin(self, epochs: int) -> None:
        """Remember the planned number of epochs (DRW starts at int(drw_start * epochs))."""
        self._epochs = int(epochs)

    def on_epoch_begin(self, epoch: int) -> None:
        """Turn DRW on from epoch int(drw_start * epochs) (0-based)."""
        if self._epochs is not None:
            self.set_drw(epoch >= self.drw_epoch(self._epochs))

    @property
    def state_variables(self) -> list[keras.Variable]:
        """[the DRW class weights]."""
        return [self.class_weights]

    def callbacks(self, **_: Any) -> list[keras.callbacks.Callback]:
        """`[LossHooks]` switching the DRW weights on in a plain `model.fit` (none without DRW)."""
        return [LossHooks(self)] if self.params["drw"] else []

    def learned_params(self) -> dict[str, float]:
        """{"drw": 1.0 while the DRW weights are in use, else 0.0}."""
        return {"drw": float(self.drw_active)}

    def state_config(self) -> dict[str, Any]:
        return {"drw_active": self.drw_active, "s": self.scale}

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        return ldam_loss(
            labels,
            logits,
            self.margins,
            self.read(self.class_weights, logits),
            self.scale,
        )


def _vs_weights(stats: Any, weights: str | list[float]) -> np.ndarray:
    if isinstance(weights, list):
        return np.asarray(weights, dtype=np.float64)
    if weights == "inverse":
        return stats.inverse_weights()
    return np.ones(stats.num_classes)


_VS_PARAMS = {
    "gamma": Param(0.3, "exponent of the multiplicative scale", low=0.0, search=(0.0, 0.5)),
    "tau": Param(1.0, "temperature of the additive prior offset", search=(0.0, 3.0)),
    "weights": Param.weights("none", "class weights w", ("none", "inverse"), low_open=True),
}


@keras.saving.register_keras_serializable(package="lossbench")
class VSLoss(LossbenchLoss):
    """Vector-scaling loss: multiplicative and additive logit adjustment.

    ```
    loss(z, y) = -w_y log softmax(Delta * z + l)_y
    Delta_k = (n_k / n_max)^gamma,   l_k = tau log pi_k
    ```

    The posterior is softmax(Delta * z + l).

    Source: Kini et al. 2021, "Label-Imbalanced and Group-Sensitive Classification under
    Overparameterization"; the authors' code github.com/orparask/VS-Loss,
    `class_imbalance/losses.py` (VSLoss: x / Delta'_k + iota_k with Delta'_k = (n_max/n_k)^gamma,
    i.e. our Delta_k = (n_k/n_max)^gamma) and `class_imbalance/train.py` (defaults --gamma 0.3,
    --tau 1.0). Also the parametric loss of the AutoBalance seed. Defaults: gamma = 0.3 (the
    authors' default; the AutoBalance seed used 0.2), tau = 1, w = 1. gamma = 0 and tau = 0 is
    `ce`.

    Args:
        class_counts: training samples per class, n_k.
        gamma: exponent of the multiplicative scale, >= 0.
        tau: temperature of the additive offset (any real number).
        weights: "none" (w = 1), "inverse" (n / (K n_k)) or a list of K positive weights.
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = VSLoss(class_counts=[900, 100, 10], gamma=0.3, tau=1.0)
    logits = [[2.0, -1.0, 0.0], [0.5, 0.3, 0.1]]
    loss([0, 2], logits)
    ```
    """

    NAME = "vs"
    POSTERIOR = "softmax(Delta z + l)"
    FORMULA = "-w_y log softmax(Delta * z + l)_y, Delta_k = (n_k / n_max)^gamma, l_k = tau log pi_k"
    SOURCE = (
        "Kini et al. 2021 (VS loss); authors' code orparask/VS-Loss class_imbalance/losses.py "
        "(VSLoss), defaults from class_imbalance/train.py (gamma 0.3, tau 1)"
    )
    TRACE_FREE = frozenset({"class_counts", *_VS_PARAMS})
    PARAMS = _VS_PARAMS

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        gamma: float = 0.3,
        tau: float = 1.0,
        weights: str | list[float] = "none",
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        p = self.params
        self.scales = self.constant(self.stats.vs_scales(p["gamma"]), "scales")
        self.offsets = self.constant(p["tau"] * self.stats.log_priors(), "offsets")
        self.class_weights = self.constant(_vs_weights(self.stats, p["weights"]), "class_weights")

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        return vs_loss(labels, logits, self.scales, self.offsets, self.class_weights)

    def posterior(self, logits: Any) -> Any:
        """softmax(Delta * z + l)."""
        z = keras.ops.cast(logits, "float32")
        scales = keras.ops.cast(self.scales, "float32")
        return keras.ops.softmax(z * scales + keras.ops.cast(self.offsets, "float32"), axis=-1)


@keras.saving.register_keras_serializable(package="lossbench")
class AutoBalanceLoss(LossbenchLoss):
    """AutoBalance: the VS loss with (l, Delta) learned by bi-level optimisation.

    ```
    loss(z, y) = -w_y log softmax(Delta * z + l)_y,   Delta = exp(log_delta)
    init: Delta_k = (n_k / n_max)^gamma, l_k = tau log pi_k   (the `vs` defaults)
    upper data: a stratified 20% of the training split (fixed per seed); the model trains on
        the other 80%
    after a warm-up of int(warmup * epochs) epochs, every `interval` steps, for k = `pairs`
    (training batch, stratified upper batch) pairs:
        theta' = the real Adam step on the training batch (clipped gradient, current moments)
        h_i    = grad_(l, log_delta) CE_bal(upper batch; theta')
    (l, log_delta) <- Adam(upper_lr) step on mean_i h_i
    CE_bal = mean over the classes present of their mean cross-entropy  (`val_objective`)
    ```

    The loss declares what its upper step needs (`upper_variables`, `upper_lr`, `interval`,
    `upper_pairs`, `val_objective`, `selection_start`); the training package provides the step
    (`lossbench.training.bilevel`, TensorFlow tapes), used by the trainer, by
    `lossbench.training.fit_callbacks(loss, train_data=, upper_data=)` in a plain `model.fit`
    (TensorFlow backend) and by the tests; without it this is the VS loss at its current
    (l, Delta). `upper_variables` is `[l, log_delta]` (Delta stays positive); the posterior is
    softmax(Delta * z + l) with the learned values.

    Source: Li et al. 2022, "AutoBalance: Optimized Loss Functions for Imbalanced Data"; the
    authors' code github.com/ucr-optml/AutoBalance (`loss_search.py`, `core/trainer.py`
    train_epoch, `core/utils.py` loss_adjust_cross_entropy). Differences: the authors compute
    the hypergradient by implicit differentiation with a Neumann-series inverse-Hessian
    approximation and SGD; lossbench differentiates through the one real Adam step (SPEC 4.3),
    which is exact for that step and cheap on tabular models. Like the authors, the upper
    level uses data carved from the training split, never the validation split that model
    selection uses.
    Defaults: gamma = 0.3, tau = 1, w = 1 (the `vs` defaults), upper_lr = 1e-2, pairs = 4,
    warmup = 0.2, interval unset (10% of an epoch's steps).

    Args:
        class_counts: training samples per class, n_k.
        gamma, tau, weights: the initial VS loss (see `VSLoss`).
        l: current offsets, a list of K numbers (unset: tau log pi).
        delta: current scales, a list of K positive numbers (unset: (n_k / n_max)^gamma).
        upper_lr: Adam learning rate of the upper step, > 0.
        interval: training steps between upper steps, an integer >= 1 (unset: 10% of an epoch).
        pairs: batch pairs averaged per upper step, an integer >= 1.
        warmup: fraction of the epochs before the first upper step, in [0, 1].
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = AutoBalanceLoss(class_counts=[900, 100, 10])
    value, grads = lossbench.training.autobalance_hypergradient(
        model, loss, optimizer, x_tr, y_tr, x_up, y_up, clipnorm=1.0)
    keras.optimizers.Adam(loss.upper_lr).apply_gradients(zip(grads, loss.upper_variables))
    ```
    """

    NAME = "autobalance"
    POSTERIOR = "softmax(Delta z + l), learned Delta and l"
    FORMULA = (
        "-w_y log softmax(Delta * z + l)_y with (l, log Delta) learned by bi-level optimisation "
        "on a stratified 20% of the training split (never the validation split): Adam look-ahead "
        "hypergradient averaged over 4 batch pairs, after a 20% warm-up; initialised from vs"
    )
    SOURCE = (
        "Li et al. 2022, AutoBalance; authors' code ucr-optml/AutoBalance loss_search.py, "
        "core/trainer.py (their hypergradient: implicit differentiation, Neumann series)"
    )
    TRACE_FREE = frozenset(
        {"class_counts", "gamma", "tau", "weights", "l", "delta", "upper_lr", "interval",
         "pairs", "warmup"}
    )  # fmt: skip
    PARAMS = {
        **_VS_PARAMS,
        "l": Param(None, "current offsets", scalar=False, per_class=True, nullable=True),
        "delta": Param(
            None,
            "current scales",
            scalar=False,
            per_class=True,
            nullable=True,
            low=0.0,
            low_open=True,
        ),
        "upper_lr": Param(
            1e-2,
            "Adam learning rate of the upper step",
            low=0.0,
            low_open=True,
            search=(1e-3, 1e-1, "log"),
        ),
        "interval": Param(None, "steps between upper steps", nullable=True, integer=True, low=1),
        "pairs": Param(4, "batch pairs averaged per upper step", integer=True, low=1),
        "warmup": Param(0.2, "fraction of epochs before the first upper step", low=0.0, high=1.0),
    }

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        *,
        l: list[float] | None = None,  # noqa: E741 (the paper's name)
        delta: list[float] | None = None,
        gamma: float = 0.3,
        tau: float = 1.0,
        weights: str | list[float] = "none",
        upper_lr: float = 1e-2,
        interval: int | None = None,
        pairs: int = 4,
        warmup: float = 0.2,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        p = self.params
        l0 = p["tau"] * self.stats.log_priors() if p["l"] is None else np.asarray(p["l"])
        d0 = self.stats.vs_scales(p["gamma"]) if p["delta"] is None else np.asarray(p["delta"])
        self.l = self.variable(l0, "l", trainable=True)
        self.log_delta = self.variable(np.log(d0), "log_delta", trainable=True)
        self.class_weights = self.constant(_vs_weights(self.stats, p["weights"]), "class_weights")
        self.upper_variables = [self.l, self.log_delta]
        self.upper_lr = p["upper_lr"]
        self.interval = p["interval"]
        self.upper_pairs = p["pairs"]

    def callbacks(self, **data: Any) -> list[keras.callbacks.Callback]:
        """Refused: AutoBalance's upper step is the training package's, in a plain `model.fit`
        `callbacks=lossbench.training.fit_callbacks(loss, train_data=..., upper_data=...)`
        (without it this is the VS loss at its current (l, Delta))."""
        raise ValueError(
            "autobalance: its upper step comes from the training package: "
            "callbacks=lossbench.training.fit_callbacks(loss, train_data=(x, y), "
            "upper_data=(x, y))"
        )

    def val_objective(self, y_true: Any, logits: Any) -> Any:
        """Class-balanced validation CE: mean over the classes present of their mean -log p_y."""
        labels, logits = self.prepare(y_true, logits)
        return balanced_cross_entropy(labels, logits, self.num_classes)

    def learned_params(self) -> dict[str, float]:
        """l_<k> and delta_<k> (= exp(log_delta_k)) for every class k."""
        out = {f"l_{k}": float(v) for k, v in enumerate(ops.convert_to_numpy(self.l))}
        out.update(
            {
                f"delta_{k}": float(v)
                for k, v in enumerate(np.exp(ops.convert_to_numpy(self.log_delta)))
            }
        )
        return out

    def state_config(self) -> dict[str, Any]:
        """The current (l, Delta), so a saved model reloads with the learned values."""
        return {
            "l": [float(v) for v in ops.convert_to_numpy(self.l)],
            "delta": [
                float(v) for v in np.exp(ops.convert_to_numpy(self.log_delta).astype(np.float64))
            ],
        }

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        return vs_loss(
            labels,
            logits,
            ops.exp(self.read(self.log_delta, logits)),
            self.read(self.l, logits),
            self.class_weights,
        )

    def posterior(self, logits: Any) -> Any:
        """softmax(Delta * z + l) with the current (learned) Delta and l."""
        z = keras.ops.cast(logits, "float32")
        delta = keras.ops.exp(keras.ops.cast(self.log_delta, "float32"))
        return keras.ops.softmax(z * delta + keras.ops.cast(self.l, "float32"), axis=-1)

    def selection_start(self, epochs: int) -> int:
        """The end of the warm-up: the first epoch with upper steps, int(warmup * epochs)."""
        return int(self.params["warmup"] * epochs)
