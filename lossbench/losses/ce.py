"""Cross-entropy and weighted cross-entropy (`ce`, `wce`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import keras
import numpy as np

from lossbench.losses.base import KerasLossArgs, LossbenchLoss, Param, take, true_class_log_probs


def ce_loss(labels: Any, logits: Any) -> Any:
    """Per-sample cross-entropy -log softmax(z)_y from class indices and logits."""
    return -true_class_log_probs(labels, logits)


def weighted_ce_loss(labels: Any, logits: Any, class_weights: Any) -> Any:
    """Per-sample weighted cross-entropy -w_y log softmax(z)_y."""
    return -take(class_weights, labels) * true_class_log_probs(labels, logits)


@keras.saving.register_keras_serializable(package="lossbench")
class CrossEntropy(LossbenchLoss):
    """Softmax cross-entropy on logits, the baseline.

    ```
    loss(z, y) = -log p_y,   p = softmax(z)   (computed as log_softmax, never log(softmax))
    ```

    Source: the standard baseline. No parameters.

    Args:
        class_counts: training samples per class (fixes K; unused otherwise).
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = CrossEntropy(class_counts=[90, 10])
    loss([0, 1], [[2.0, -1.0], [0.5, 0.3]])  # mean over the batch
    ```
    """

    NAME = "ce"
    FORMULA = "-log p_y"
    SOURCE = "baseline"
    TRACE_FREE = frozenset({"class_counts"})
    PARAMS: dict[str, Param] = {}

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        return ce_loss(labels, logits)


WCE_SCHEMES = ("inverse", "sqrt", "effective", "none")


def class_weights_by_scheme(stats: Any, weights: str | list[float], beta: float) -> np.ndarray:
    """Per-class weights for `wce`: a scheme name or an explicit list of K weights."""
    if isinstance(weights, list):
        return np.asarray(weights, dtype=np.float64)
    if weights == "inverse":
        return stats.inverse_weights()
    if weights == "sqrt":
        return stats.sqrt_weights()
    if weights == "effective":
        return stats.effective_weights(beta)
    return np.ones(stats.num_classes)


@keras.saving.register_keras_serializable(package="lossbench")
class WeightedCrossEntropy(LossbenchLoss):
    """Class-weighted softmax cross-entropy.

    ```
    loss(z, y) = -w_y log p_y
    weights="inverse":   w_k = n / (K n_k)                        (default; 1 when balanced)
    weights="sqrt":      w_k = sqrt(n / (K n_k))
    weights="effective": w_k = (1 - beta) / (1 - beta^n_k), normalised so sum_k w_k = K
    weights="none":      w_k = 1
    weights=[w_0, ..., w_{K-1}]: explicit positive weights
    ```

    Source: seed lecture "Weighted Loss for Imbalanced Classification"; for K = 2 with inverse
    weights it equals BCE with pos_weight = n_-/n_+ up to a constant scale.

    Args:
        class_counts: training samples per class, n_k.
        weights: "inverse" | "sqrt" | "effective" | "none" or a list of K positive numbers.
        beta: effective-number beta for weights="effective", in [0, 1). Default 0.999.
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = WeightedCrossEntropy(class_counts=[90, 10], weights="inverse")  # w = [0.556, 5.0]
    loss([0, 1], [[2.0, -1.0], [0.5, 0.3]])
    ```
    """

    NAME = "wce"
    FORMULA = "-w_y log p_y, w_k = n / (K n_k) (weights=inverse|sqrt|effective|none|list)"
    SOURCE = (
        'seed lecture "Weighted Loss for Imbalanced Classification" '
        "(K=2: BCE with pos_weight = n-/n+ up to scale)"
    )
    TRACE_FREE = frozenset({"class_counts", "weights", "beta"})
    PARAMS = {
        "weights": Param.weights(
            "inverse",
            "class weights: scheme or explicit list",
            WCE_SCHEMES,
            low_open=True,
            search_choices=("inverse", "sqrt", "effective"),
        ),
        "beta": Param(0.999, "beta of weights=effective", low=0.0, high=1.0, high_open=True),
    }

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        weights: str | list[float] = "inverse",
        beta: float = 0.999,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        self.class_weights = self.constant(
            class_weights_by_scheme(self.stats, self.params["weights"], self.params["beta"]),
            "class_weights",
        )

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        return weighted_ce_loss(labels, logits, self.class_weights)
