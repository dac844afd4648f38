"""Adaptive Margin Regularised Loss (`amrl`): the seed notebook's AMRLLossTF for K classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lossbench.losses.base import LossbenchLoss, Param, log_true_and_rest


def amrl_loss(
    labels: tf.Tensor,
    logits: tf.Tensor,
    class_weights: tf.Tensor,
    margins: tf.Tensor,
    lambdas: tf.Tensor,
    betas: tf.Tensor,
) -> tf.Tensor:
    """Per-sample AMRL: w_y (-log p_y) + lambda_y max(0, m_y - s)^beta_y, s = z_y - lse_{k!=y} z.

    The hinge power is computed with a double `where` so that its gradient is 0, never NaN, where
    the hinge is inactive, for any beta > 0.
    """
    log_p, log_rest = log_true_and_rest(labels, logits)
    score = log_p - log_rest  # = z_y - logsumexp_{k != y} z_k
    hinge = tf.nn.relu(tf.gather(margins, labels) - score)
    active = hinge > 0
    safe = tf.where(active, hinge, tf.ones_like(hinge))
    powered = tf.exp(tf.gather(betas, labels) * tf.math.log(safe))
    penalty = tf.where(active, powered, tf.zeros_like(hinge))
    return -tf.gather(class_weights, labels) * log_p + tf.gather(lambdas, labels) * penalty


@keras.saving.register_keras_serializable(package="lossbench")
class AMRLLoss(LossbenchLoss):
    """Adaptive Margin Regularised Loss: weighted CE plus a learnable per-class margin hinge.

    ```
    s = z_y - logsumexp_{k != y} z_k            (the true class's log-odds against the rest)
    loss(z, y) = w_y (-log p_y) + lambda_y * max(0, m_y - s)^beta_y
    w_k = 1 - pi_k;  m_k = 1;  minority classes (n_k < n/K): lambda_k = 2, beta_k = 2;
    the other classes: lambda_k = 1, beta_k = 1.  m and lambda are trainable.
    ```

    Training (SPEC 4.1, done by `lossbench.train`): m and lambda (`loss_variables`) get their
    gradients from the same tape and Adam step as the model, clipped by global norm together
    with the model's; `post_step()` then clips lambda_k to [0, lambda_max] and m_k to
    [-m_max, m_max]. Under a plain `model.fit` they stay fixed at their initial values.

    K = 2 and the seed notebook's binary form. With one positive logit z = z_1 - z_0 the notebook
    uses, for positives (y = 1, the minority class) `w1 BCE + lambda1 max(0, m1 - z)^beta1`, and
    for negatives `w0 BCE + lambda0 max(0, z - m0_nb)^beta0` with m0_nb = -1. Here s = z for
    y = 1 and s = -z for y = 0, so the class-0 hinge is max(0, m_0 + z) = max(0, z - (-m_0)):
    the notebook's margin is m0_nb = -m_0, and the default m_0 = 1 is its m0_nb = -1; m_1 = m1.
    -log p_y is the BCE of z, and the default weights, lambdas and betas are the notebook's
    (w1 = 1 - pi_1, lambda1 = beta1 = 2 for the minority positive class, 1 for the negatives).

    Source: the seed notebook's AMRLLossTF, generalised to K classes.

    Args:
        class_counts: training samples per class, n_k.
        m: initial margins, a number or a list of K numbers (default 1).
        lam: initial lambdas, >= 0, a number or list; unset: 2 for minority classes, else 1.
        beta: hinge powers, > 0, a number or list; unset: 2 for minority classes, else 1.
        weights: "prior" (w_k = 1 - pi_k, default), "none" (w_k = 1) or a list of K weights.
        lambda_max: upper clip of lambda in `post_step` (default 10).
        m_max: clip of |m| in `post_step` (default 5).
        trainable: whether m and lambda are `loss_variables` (default true).
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = AMRLLoss(class_counts=[90, 10])    # lambda = [1, 2], beta = [1, 2], w = [0.1, 0.9]
    loss([0, 1], [[2.0, -1.0], [0.5, 0.3]])
    ```
    """

    NAME = "amrl"
    FORMULA = (
        "w_y (-log p_y) + lambda_y max(0, m_y - s)^beta_y, s = z_y - logsumexp_{k!=y} z_k; "
        "w_k = 1 - pi_k, m_k = 1, lambda = beta = 2 (minority) / 1; m, lambda trainable"
    )
    SOURCE = "seed notebook AMRLLossTF, generalised to K classes"
    PARAMS = {
        "m": Param(1.0, "initial margins", per_class=True),
        "lam": Param(None, "initial lambdas", per_class=True, nullable=True, low=0.0),
        "beta": Param(None, "hinge powers", per_class=True, nullable=True, low=0.0, low_open=True),
        "weights": Param(
            "prior",
            "CE class weights",
            scalar=False,
            per_class=True,
            choices=("prior", "none"),
            low=0.0,
        ),
        "lambda_max": Param(10.0, "upper clip of lambda", low=0.0, low_open=True),
        "m_max": Param(5.0, "clip of |m|", low=0.0, low_open=True),
        "trainable": Param(True, "train m and lambda", boolean=True),
    }

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        m: float | list[float] = 1.0,
        lam: float | list[float] | None = None,
        beta: float | list[float] | None = None,
        weights: str | list[float] = "prior",
        lambda_max: float = 10.0,
        m_max: float = 5.0,
        trainable: bool = True,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(
            class_counts,
            name=name,
            reduction=reduction,
            dtype=dtype,
            m=m,
            lam=lam,
            beta=beta,
            weights=weights,
            lambda_max=lambda_max,
            m_max=m_max,
            trainable=trainable,
        )
        p, k, minority = self.params, self.num_classes, self.stats.minority
        default_two = np.where(minority, 2.0, 1.0)
        weights = p["weights"]
        if weights == "prior":
            w = self.stats.prior_complement()
        elif weights == "none":
            w = np.ones(k)
        else:
            w = np.asarray(weights)
        self.class_weights = self.constant(w)
        beta0 = default_two if p["beta"] is None else np.broadcast_to(p["beta"], k)
        self.betas = self.constant(beta0)
        trainable = p["trainable"]
        self.margins = self.variable(np.broadcast_to(p["m"], k), "m", trainable=trainable)
        lam0 = default_two if p["lam"] is None else np.broadcast_to(p["lam"], k)
        self.lambdas = self.variable(lam0, "lambda", trainable=trainable)

    @property
    def loss_variables(self) -> list[tf.Variable]:
        """[m, lambda] when trainable (trained by the model's optimizer step), else []."""
        return [self.margins, self.lambdas] if self.params["trainable"] else []

    def post_step(self) -> None:
        """Clip lambda to [0, lambda_max] and m to [-m_max, m_max] (graph-safe)."""
        lam_max, m_max = self.params["lambda_max"], self.params["m_max"]
        self.lambdas.assign(tf.clip_by_value(self.lambdas, 0.0, lam_max))
        self.margins.assign(tf.clip_by_value(self.margins, -m_max, m_max))

    def learned_params(self) -> dict[str, float]:
        """m_<k> and lambda_<k> for every class k."""
        out = {f"m_{k}": float(v) for k, v in enumerate(self.margins.numpy())}
        out.update({f"lambda_{k}": float(v) for k, v in enumerate(self.lambdas.numpy())})
        return out

    def state_config(self) -> dict[str, Any]:
        """The current m and lambda, so a saved model reloads with the learned values."""
        return {
            "m": [float(v) for v in self.margins.numpy()],
            "lam": [float(v) for v in self.lambdas.numpy()],
        }

    def call(self, y_true: Any, logits: Any) -> tf.Tensor:
        labels, logits = self.prepare(y_true, logits)
        return amrl_loss(
            labels,
            logits,
            self.class_weights,
            tf.cast(self.margins, logits.dtype),
            tf.cast(self.lambdas, logits.dtype),
            self.betas,
        )
