"""Focal loss and the class-balanced (effective number) loss (`focal`, `cb`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import keras
import numpy as np
from keras import ops

from lossbench.errors import InputError
from lossbench.losses.base import (
    KerasLossArgs,
    LossbenchLoss,
    Param,
    log_true_and_rest,
    take,
    true_class_log_probs,
)


def focal_loss(labels: Any, logits: Any, alpha: Any, gamma: float | Any) -> Any:
    """Per-sample focal loss -alpha_y (1 - p_y)^gamma log p_y.

    (1 - p_y)^gamma is computed as exp(gamma * log(1 - p_y)) with the stable log(1 - p_y) of
    `log_true_and_rest`, so value and gradient stay finite when p_y rounds to 0 or 1.
    """
    log_p, log_rest = log_true_and_rest(labels, logits)
    return -take(alpha, labels) * ops.exp(gamma * log_rest) * log_p


def focal_alpha(stats: Any, alpha: float | list[float] | None) -> np.ndarray:
    """Per-class alpha: None -> 1; list -> as given; scalar -> K=2 binary rule, else uniform."""
    k = stats.num_classes
    if alpha is None:
        return np.ones(k)
    if isinstance(alpha, list):
        return np.asarray(alpha, dtype=np.float64)
    if k == 2:
        out = np.full(2, 1.0 - alpha)
        out[stats.positive_class] = alpha
        return out
    return np.full(k, float(alpha))


@keras.saving.register_keras_serializable(package="lossbench")
class FocalLoss(LossbenchLoss):
    """Focal loss on softmax logits.

    ```
    loss(z, y) = -alpha_y (1 - p_y)^gamma log p_y
    ```

    Source: Lin et al. 2017, "Focal Loss for Dense Object Detection" (written there for
    sigmoid outputs; this is its softmax form, as in Cui et al. 2019's multi-class use).
    Defaults: gamma = 2, alpha_k = 1 (alpha unset). gamma = 0 with alpha_k = 1 is `ce`.

    Args:
        class_counts: training samples per class, n_k.
        gamma: focusing parameter, >= 0.
        alpha: unset (alpha_k = 1), a list of K non-negative weights, or a scalar. For K = 2 a
            scalar alpha is the weight of the positive (minority) class and 1 - alpha that of the
            other class (so it must lie in [0, 1]); for K > 2 a scalar multiplies every class.
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = FocalLoss(class_counts=[90, 10], gamma=2.0, alpha=0.75)  # alpha = [0.25, 0.75]
    loss([0, 1], [[2.0, -1.0], [0.5, 0.3]])
    ```
    """

    NAME = "focal"
    FORMULA = "-alpha_y (1 - p_y)^gamma log p_y"
    SOURCE = "Lin et al. 2017, Focal Loss for Dense Object Detection"
    TRACE_FREE = frozenset({"class_counts", "gamma", "alpha"})
    PARAMS = {
        "gamma": Param(2.0, "focusing parameter", low=0.0, search=(0.0, 5.0)),
        "alpha": Param(
            None,
            "class weights (K=2 scalar: positive class alpha, other 1-alpha)",
            per_class=True,
            nullable=True,
            low=0.0,
        ),
    }

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        gamma: float = 2.0,
        alpha: float | list[float] | None = None,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        a = self.params["alpha"]
        if self.num_classes == 2 and isinstance(a, float) and a > 1.0:
            raise InputError(
                f"loss 'focal': parameter alpha={a!r} is invalid; for K=2 a scalar alpha is the "
                "positive-class weight and must lie in [0, 1] (or pass a list of 2 weights)"
            )
        self.alpha = self.constant(focal_alpha(self.stats, a), "alpha")
        self.gamma = self.constant(self.params["gamma"], "gamma")

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        return focal_loss(labels, logits, self.alpha, self.read(self.gamma, logits))


@keras.saving.register_keras_serializable(package="lossbench")
class ClassBalancedLoss(LossbenchLoss):
    """Class-balanced loss: the base loss weighted by the inverse effective number of samples.

    ```
    loss(z, y) = w_y * base(z, y)
    w_k = (1 - beta) / (1 - beta^n_k), normalised so that sum_k w_k = K
    base = -log p_y (base="ce")  or  -(1 - p_y)^gamma log p_y (base="focal")
    ```

    Source: Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples"; the
    authors' code github.com/richardaecn/class-balanced-loss (`src/cifar_main.py`). With
    base="focal" this is the *softmax* focal loss -(1 - p_y)^gamma log p_y; the authors'
    official focal variant is the sigmoid one (a per-class binary focal loss on sigmoid(z_k)),
    which lossbench does not implement because every other loss here is a softmax loss.
    Defaults: beta = 0.999, base = "ce", gamma = 2 (focal base only). beta -> 0 gives `ce`.

    Args:
        class_counts: training samples per class, n_k.
        beta: in [0, 1); 0 means no re-weighting, -> 1 approaches inverse-frequency weights.
        base: "ce" or "focal".
        gamma: focusing parameter of the focal base, >= 0.
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = ClassBalancedLoss(class_counts=[900, 100, 10], beta=0.999, base="focal")
    loss([0, 2], [[2.0, -1.0, 0.0], [0.5, 0.3, 0.1]])
    ```
    """

    NAME = "cb"
    FORMULA = "w_y * base, w_k = (1 - beta) / (1 - beta^n_k) normalised to sum K; base = ce|focal"
    SOURCE = (
        "Cui et al. 2019, Class-Balanced Loss; authors' code richardaecn/class-balanced-loss "
        "(base=focal here is the softmax focal loss, theirs the sigmoid one)"
    )
    TRACE_FREE = frozenset({"class_counts", "beta", "gamma"})  # not base: it picks the code
    PARAMS = {
        "beta": Param(
            0.999,
            "effective-number beta",
            low=0.0,
            high=1.0,
            high_open=True,
            search_choices=(0.9, 0.99, 0.999, 0.9999),
        ),
        "base": Param("ce", "base loss", scalar=False, choices=("ce", "focal")),
        "gamma": Param(2.0, "focal gamma (base=focal)", low=0.0),
    }

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        beta: float = 0.999,
        base: str = "ce",
        gamma: float = 2.0,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        self.class_weights = self.constant(
            self.stats.effective_weights(self.params["beta"]), "class_weights"
        )
        self.gamma = self.constant(self.params["gamma"], "gamma")

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        if self.params["base"] == "focal":
            return focal_loss(labels, logits, self.class_weights, self.read(self.gamma, logits))
        return -take(self.class_weights, labels) * true_class_log_probs(labels, logits)
