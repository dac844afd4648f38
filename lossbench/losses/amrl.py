"""Adaptive Margin Regularised Loss (`amrl`): the seed notebook's AMRLLossTF for K classes, with
margins from the class counts and lambda adapted by projected dual ascent (SPEC 4.1)."""

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
    log_true_and_rest,
    take,
)
from lossbench.losses.hooks import LossHooks


def amrl_hinge(labels: Any, logits: Any, margins: Any, betas: Any) -> Any:
    """Per-sample max(0, m_y - s)^beta_y, s = z_y - logsumexp_{k != y} z_k.

    The power is computed with a double `where` so that its gradient is 0, never NaN, where the
    hinge is inactive, for any beta > 0.
    """
    log_p, log_rest = log_true_and_rest(labels, logits)
    hinge = ops.relu(take(margins, labels) - (log_p - log_rest))
    active = hinge > 0
    safe = ops.where(active, hinge, ops.ones_like(hinge))
    powered = ops.exp(take(betas, labels) * ops.log(safe))
    return ops.where(active, powered, ops.zeros_like(hinge))


def amrl_loss(
    labels: Any, logits: Any, class_weights: Any, margins: Any, lambdas: Any, betas: Any
) -> Any:
    """Per-sample AMRL: w_y (-log p_y) + lambda_y max(0, m_y - s)^beta_y."""
    log_p, _ = log_true_and_rest(labels, logits)
    penalty = amrl_hinge(labels, logits, margins, betas)
    return -take(class_weights, labels) * log_p + take(lambdas, labels) * penalty


def amrl_margins(stats: Any, m: float | list[float]) -> np.ndarray:
    """m_k = m (n_min / n_k)^(1/4) for a scalar m (the rarest class gets m); a list as given."""
    if isinstance(m, list):
        return np.asarray(m, dtype=np.float64)
    return float(m) * (stats.counts.min() / stats.counts) ** 0.25


def dual_ascent(
    lambdas: np.ndarray, g: np.ndarray, eps: float, eta: float, lambda_max: float
) -> np.ndarray:
    """lambda_k <- clip(lambda_k + eta (g_k - eps), 0, lambda_max); NaN g_k (class not seen)
    leaves lambda_k unchanged."""
    step = np.where(np.isfinite(g), eta * (g - eps), 0.0)
    return np.clip(lambdas + step, 0.0, lambda_max)


@keras.saving.register_keras_serializable(package="lossbench")
class AMRLLoss(LossbenchLoss):
    """Adaptive Margin Regularised Loss: weighted CE plus a per-class margin hinge whose weight
    lambda is a Lagrange multiplier adapted by projected dual ascent.

    ```
    s = z_y - logsumexp_{k != y} z_k            (the true class's log-odds against the rest)
    loss(z, y) = w_y (-log p_y) + lambda_y * max(0, m_y - s)^beta_y
    w_k = 1 - pi_k;  m_k = m (n_min / n_k)^(1/4) (m = 1), fixed;  beta_k = 2 for minority classes
    (n_k < n/K), else 1;  lambda_k starts at 1
    constraint: g_k = E_{y=k}[max(0, m_k - s)^beta_k] <= eps          (eps = 0.05)
    after each epoch: lambda_k <- clip(lambda_k + eta (g_k - eps), 0, lambda_max)
    ```

    g_k is the epoch's training-batch estimate: `observe_batch` (called by `lossbench.training`
    inside the compiled step, with the logits the step trained on) sums the hinge per class,
    `on_epoch_end` takes the dual step, `on_epoch_begin` resets the sums. A class whose margin
    constraint is violated gains penalty; a satisfied class's penalty decays to 0. m, lambda and g
    per class are logged (`learned_params`). In a plain `model.fit` pass
    `callbacks=loss.callbacks(train_data=(x, y))`: g is then estimated at the end of each epoch
    from the training data's logits. `trainable=false` freezes lambda.

    Why not gradient descent on m and lambda (the notebook's trainable variables): d loss /
    d lambda_k = E[max(0, m_k - s)^beta_k] >= 0 and d loss / d m_k >= 0, so descent only shrinks
    both (SPEC 4.1); dual ascent keeps the notebook's intent (class-derived, clipped, adaptive
    penalties) with an update that can raise them.

    K = 2 and the seed notebook's binary form. With one positive logit z = z_1 - z_0 the notebook
    uses, for positives (y = 1, the minority class) `w1 BCE + lambda1 max(0, m1 - z)^beta1`, and
    for negatives `w0 BCE + lambda0 max(0, z - m0_nb)^beta0`. Here s = z for y = 1 and s = -z
    for y = 0, so the class-0 hinge is max(0, m_0 + z) = max(0, z - (-m_0)): the notebook's
    margin is m0_nb = -m_0; `m=[1, 1]` gives its m0_nb = -1, m1 = 1.

    Source: the seed notebook's AMRLLossTF, generalised to K classes; margins as in LDAM
    (Cao et al. 2019); lambda by projected dual ascent (SPEC 4.1).

    Args:
        class_counts: training samples per class, n_k.
        m: the rarest class's margin (a number; m_k = m (n_min / n_k)^(1/4)) or a list of K
            margins used as given. Default 1.
        lam: initial lambdas, >= 0, a number or list (default 1).
        beta: hinge powers, > 0, a number or list; unset: 2 for minority classes, else 1.
        weights: "prior" (w_k = 1 - pi_k, default), "none" (w_k = 1) or a list of K weights.
        eps: the constraint level, >= 0 (default 0.05).
        eta: the dual step size, >= 0 (default 1).
        lambda_max: upper clip of lambda (default 10).
        trainable: whether lambda adapts (default true).
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = AMRLLoss(class_counts=[90, 10])    # m = [0.58, 1], beta = [1, 2], w = [0.1, 0.9]
    model.compile("adam", loss=loss)
    model.fit(x, y, epochs=5, callbacks=loss.callbacks(train_data=(x, y)))
    ```
    """

    NAME = "amrl"
    FORMULA = (
        "w_y (-log p_y) + lambda_y max(0, m_y - s)^beta_y, s = z_y - logsumexp_{k!=y} z_k; "
        "w_k = 1 - pi_k, m_k = (n_min/n_k)^(1/4), beta = 2 (minority) / 1; per epoch "
        "lambda_k <- clip(lambda_k + eta (g_k - eps), 0, lambda_max), "
        "g_k = E_{y=k}[max(0, m_k - s)^beta_k]"
    )
    SOURCE = (
        "seed notebook AMRLLossTF, generalised to K classes; margins from class counts and "
        "lambda by projected dual ascent (SPEC 4.1) instead of descent on the loss"
    )
    TRACE_FREE = frozenset(
        {"class_counts", "m", "lam", "beta", "weights", "eps", "eta", "lambda_max", "trainable"}
    )
    PARAMS = {
        "m": Param(1.0, "rarest-class margin (or K margins)", per_class=True, search=(0.25, 2.0)),
        "lam": Param(1.0, "initial lambdas", per_class=True, low=0.0),
        "beta": Param(None, "hinge powers", per_class=True, nullable=True, low=0.0, low_open=True),
        "weights": Param.weights("prior", "CE class weights", ("prior", "none")),
        "eps": Param(0.05, "constraint level of g_k", low=0.0),
        "eta": Param(1.0, "dual ascent step", low=0.0),
        "lambda_max": Param(10.0, "upper clip of lambda", low=0.0, low_open=True),
        "trainable": Param(True, "adapt lambda by dual ascent", boolean=True),
    }

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        m: float | list[float] = 1.0,
        lam: float | list[float] = 1.0,
        beta: float | list[float] | None = None,
        weights: str | list[float] = "prior",
        eps: float = 0.05,
        eta: float = 1.0,
        lambda_max: float = 10.0,
        trainable: bool = True,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        p, k, minority = self.params, self.num_classes, self.stats.minority
        weights = p["weights"]
        if weights == "prior":
            w = self.stats.prior_complement()
        elif weights == "none":
            w = np.ones(k)
        else:
            w = np.asarray(weights)
        self.class_weights = self.constant(w, "class_weights")
        beta0 = np.where(minority, 2.0, 1.0) if p["beta"] is None else np.broadcast_to(p["beta"], k)
        self.betas = self.constant(beta0, "beta")
        self.margins = self.constant(amrl_margins(self.stats, p["m"]), "margins")
        self.lambdas = self.variable(np.broadcast_to(p["lam"], k), "lambda")
        self._g_sum = self.variable(np.zeros(k), "g_sum")
        self._g_count = self.variable(np.zeros(k), "g_count")
        self.g = np.full(k, np.nan)

    @property
    def state_variables(self) -> list[keras.Variable]:
        """[lambda]."""
        return [self.lambdas]

    def observe_batch(self, y_true: Any, logits: Any) -> None:
        """Add the batch's per-class sums of max(0, m_y - s)^beta_y and counts (graph-safe)."""
        labels, logits = self.prepare(y_true, ops.stop_gradient(logits))
        hinge = amrl_hinge(labels, logits, self.margins, self.betas)
        onehot = ops.one_hot(labels, self.num_classes, dtype=self._g_sum.dtype)
        self._g_sum.assign_add(ops.sum(onehot * ops.cast(hinge, onehot.dtype)[:, None], axis=0))
        self._g_count.assign_add(ops.sum(onehot, axis=0))

    def on_epoch_begin(self, epoch: int) -> None:
        """Reset the epoch's constraint estimate."""
        self._g_sum.assign(ops.zeros_like(self._g_sum))
        self._g_count.assign(ops.zeros_like(self._g_count))

    def on_epoch_end(self, epoch: int, y_val: Any = None, proba_val: Any = None) -> None:
        """g_k from the epoch's training batches, then the projected dual step on lambda."""
        sums = ops.convert_to_numpy(self._g_sum).astype(np.float64)
        counts = ops.convert_to_numpy(self._g_count).astype(np.float64)
        self.g = np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)
        if self.params["trainable"]:
            p = self.params
            lam = ops.convert_to_numpy(self.lambdas).astype(np.float64)
            new = dual_ascent(lam, self.g, p["eps"], p["eta"], p["lambda_max"])
            self.lambdas.assign(new.astype(self.dtype))
        self.on_epoch_begin(epoch + 1)

    def callbacks(
        self, train_data: tuple[Any, Any] | None = None, **_: Any
    ) -> list[keras.callbacks.Callback]:
        """`[LossHooks]` running the dual ascent in a plain `model.fit`.

        Args:
            train_data: (x, y) on which g is estimated at the end of each epoch (required).
        """
        if train_data is None:
            raise ValueError("amrl.callbacks: pass train_data=(x, y)")
        return [LossHooks(self, train_data=train_data)]

    def learned_params(self) -> dict[str, float]:
        """m_<k>, lambda_<k> and g_<k> (the last epoch's constraint estimate) for every class."""
        out = {f"m_{k}": float(v) for k, v in enumerate(ops.convert_to_numpy(self.margins))}
        lam = ops.convert_to_numpy(self.lambdas)
        out.update({f"lambda_{k}": float(v) for k, v in enumerate(lam)})
        out.update({f"g_{k}": float(v) for k, v in enumerate(self.g)})
        return out

    def state_config(self) -> dict[str, Any]:
        """The current lambda, so a saved model reloads with the adapted values."""
        return {"lam": [float(v) for v in ops.convert_to_numpy(self.lambdas)]}

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        return amrl_loss(
            labels,
            logits,
            self.class_weights,
            self.margins,
            self.read(self.lambdas, logits),
            self.betas,
        )
