"""Performance-Guided Focal Loss (`pgfl`): the seed notebook's PGFLossTF for K classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import keras
import numpy as np
from keras import ops

from lossbench.losses.base import KerasLossArgs, LossbenchLoss, Param
from lossbench.losses.focal import focal_loss
from lossbench.losses.hooks import LossHooks


def pgfl_alpha_update(alpha: np.ndarray, pod: np.ndarray, eta: float) -> np.ndarray:
    """alpha_k <- K * softmax_k(log alpha_k + eta * (1 - POD_k)); the mean of alpha is then 1.

    Classes whose POD is NaN (absent from the validation split) get the mean increment of the
    others, so their weight only drifts through the normalisation.
    """
    inc = eta * (1.0 - pod)
    present = np.isfinite(inc)
    inc = np.where(present, inc, inc[present].mean() if present.any() else 0.0)
    logits = np.log(alpha) + inc
    e = np.exp(logits - logits.max())
    return len(alpha) * e / e.sum()


@keras.saving.register_keras_serializable(package="lossbench")
class PGFLoss(LossbenchLoss):
    """Performance-guided focal loss: focal loss whose class weights follow validation recall.

    ```
    loss(z, y) = -alpha_y (1 - p_y)^gamma log p_y
    after each epoch:  alpha_k <- K * softmax_k(log alpha_k + eta * (1 - POD_k))
    POD_k = recall of class k on the validation split
    MC_k  <- mc_momentum * MC_k + (1 - mc_momentum) * mean confidence p_k of the correctly
             classified validation samples of class k (first update: the mean itself)
    ```

    Classes the model misses gain weight, detected classes lose it, and the mean of alpha stays
    1. alpha is a `keras.Variable` read by the compiled step; `on_epoch_end` updates it (eager,
    NumPy in). POD and MC (the notebook's MC0/MC1) are tracked for the history only; before the
    first update they read 0. In a plain `model.fit` pass
    `callbacks=loss.callbacks(validation_data=(x_val, y_val))`; without it this is focal loss
    with the initial alpha.

    Source: the seed notebook's PGFLossTF and its description (SPEC 4.2).
    Defaults: gamma = 2, eta = 1, alpha_k = 1, mc_momentum = 0.9.

    Args:
        class_counts: training samples per class, n_k.
        gamma: focusing parameter, >= 0.
        eta: step size of the alpha update, >= 0.
        alpha: initial alpha, a positive number (every class) or a list of K positive numbers.
        mc_momentum: momentum of the MC moving average, in [0, 1).
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = PGFLoss(class_counts=[90, 10])
    loss.on_epoch_end(0, y_val, proba_val)  # class 1 missed -> alpha[1] > 1 > alpha[0]
    ```
    """

    NAME = "pgfl"
    FORMULA = (
        "-alpha_y (1 - p_y)^gamma log p_y; after each epoch "
        "alpha_k <- K softmax_k(log alpha_k + eta (1 - POD_k)) from validation recall"
    )
    SOURCE = "seed notebook PGFLossTF (performance-guided focal loss)"
    TRACE_FREE = frozenset({"class_counts", "gamma", "eta", "alpha", "mc_momentum"})
    PARAMS = {
        "gamma": Param(2.0, "focusing parameter", low=0.0, search=(0.0, 5.0)),
        "eta": Param(1.0, "alpha update step", low=0.0, search=(0.1, 10.0, "log")),
        "alpha": Param(1.0, "initial class weights", per_class=True, low=0.0, low_open=True),
        "mc_momentum": Param(0.9, "MC moving-average momentum", low=0.0, high=1.0, high_open=True),
    }

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        gamma: float = 2.0,
        eta: float = 1.0,
        alpha: float | list[float] = 1.0,
        mc_momentum: float = 0.9,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        k = self.num_classes
        self.alpha = self.variable(np.broadcast_to(self.params["alpha"], k), "alpha")
        self.gamma = self.constant(self.params["gamma"], "gamma")
        self.pod = np.zeros(k)
        self.mc = np.zeros(k)
        self._mc_seen = np.zeros(k, dtype=bool)

    def on_epoch_end(self, epoch: int, y_val: np.ndarray, proba_val: np.ndarray) -> None:
        """Update alpha from the validation recall (POD) and the MC moving averages."""
        k = self.num_classes
        proba = np.asarray(proba_val, dtype=np.float64)
        y = np.asarray(y_val)
        y = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] == k else y.reshape(-1)
        y = y.astype(np.int64)
        pred = proba.argmax(axis=1)
        correct = pred == y
        support = np.bincount(y, minlength=k)
        hits = np.bincount(y[correct], minlength=k)
        pod = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
        alpha = ops.convert_to_numpy(self.alpha).astype(np.float64)
        self.alpha.assign(pgfl_alpha_update(alpha, pod, self.params["eta"]).astype(self.dtype))
        self.pod = np.where(support > 0, pod, self.pod)

        conf = proba[np.arange(len(y)), y]
        conf_sum = np.bincount(y[correct], weights=conf[correct], minlength=k)
        mean_conf = conf_sum / np.maximum(hits, 1)
        mom = self.params["mc_momentum"]
        updated = np.where(self._mc_seen, mom * self.mc + (1.0 - mom) * mean_conf, mean_conf)
        self.mc = np.where(hits > 0, updated, self.mc)
        self._mc_seen |= hits > 0

    def learned_params(self) -> dict[str, float]:
        """alpha_<k>, pod_<k> and mc_<k> for every class k."""
        out = {f"alpha_{k}": float(v) for k, v in enumerate(ops.convert_to_numpy(self.alpha))}
        out.update({f"pod_{k}": float(v) for k, v in enumerate(self.pod)})
        out.update({f"mc_{k}": float(v) for k, v in enumerate(self.mc)})
        return out

    def state_config(self) -> dict[str, Any]:
        """The current alpha, so a saved model reloads with the adapted weights."""
        return {"alpha": [float(v) for v in ops.convert_to_numpy(self.alpha)]}

    @property
    def state_variables(self) -> list[keras.Variable]:
        """[alpha]."""
        return [self.alpha]

    def callbacks(
        self, validation_data: tuple[Any, Any] | None = None, **_: Any
    ) -> list[keras.callbacks.Callback]:
        """`[LossHooks]` running the alpha update in a plain `model.fit`.

        Args:
            validation_data: (x_val, y_val) whose recall drives the update (required).
        """
        if validation_data is None:
            raise ValueError("pgfl.callbacks: pass validation_data=(x_val, y_val)")
        return [LossHooks(self, validation_data=validation_data)]

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        alpha, gamma = self.read(self.alpha, logits), self.read(self.gamma, logits)
        return focal_loss(labels, logits, alpha, gamma)
