"""The Dynamically Weighted Balanced loss (`dwb`), the reference paper's loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import keras
import numpy as np
from keras import ops

from lossbench.losses.base import KerasLossArgs, LossbenchLoss, Param, take, true_class_log_probs


def dwb_loss(
    labels: Any,
    logits: Any,
    class_weights: Any,
    reg_weight: float | Any = 1.0,
) -> Any:
    """Per-sample DWB loss -w_y^(1 - p_y) log p_y - reg_weight * p_y (1 - p_y).

    w^(1 - p) is computed as exp((1 - p) log w) and 1 - p as -expm1(log p).
    """
    log_p = true_class_log_probs(labels, logits)
    p = ops.exp(log_p)
    one_minus_p = -ops.expm1(log_p)
    log_w = ops.log(take(class_weights, labels))
    return -ops.exp(one_minus_p * log_w) * log_p - reg_weight * p * one_minus_p


@keras.saving.register_keras_serializable(package="lossbench")
class DWBLoss(LossbenchLoss):
    """Dynamically Weighted Balanced loss (Fernando and Tsokos, IEEE TNNLS 2021).

    ```
    loss(z, y) = -w_y^(1 - p_y) log p_y  -  reg_weight * p_y (1 - p_y)
    w_k = log(n_max / n_k) + 1
    ```

    The first term (eq. 8) raises the class weight to the power 1 - p_y, so confidently
    classified samples of a rare class are weighted less than badly classified ones. The
    regulariser -p_y (1 - p_y) is kept for the true class only (eq. 13, one-hot labels; eq. 7
    writes it inside the class sum). Gradient of the first term w.r.t. logit z_i (the paper's
    eq. 17 prints `1 + ...`, a sign slip):

    ```
    w_y^(1 - p_y) * (1 - p_y log(p_y) log(w_y)) * (p_i - 1[i = y])
    ```

    Source: the paper, eqs. 8 and 13. Default reg_weight = 1 (the paper); reg_weight = 0 with
    balanced classes (w = 1) is exactly `ce`.

    Args:
        class_counts: training samples per class, n_k.
        reg_weight: weight of the regulariser, >= 0 (1 in the paper; 0 drops it).
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    ```python
    loss = DWBLoss(class_counts=[900, 100, 10])  # w = [1, 3.20, 5.50]
    loss([0, 2], [[2.0, -1.0, 0.0], [0.5, 0.3, 0.1]])
    ```
    """

    NAME = "dwb"
    FORMULA = "-w_y^(1 - p_y) log p_y - p_y (1 - p_y), w_k = log(n_max / n_k) + 1"
    SOURCE = "Fernando and Tsokos, IEEE TNNLS 2021 (DWB loss), eqs. 8 and 13"
    TRACE_FREE = frozenset({"class_counts", "reg_weight"})
    PARAMS = {
        "reg_weight": Param(
            1.0, "weight of the -p_y(1-p_y) regulariser", low=0.0, search=(0.0, 3.0)
        )
    }

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        reg_weight: float = 1.0,
        **keras_args: Unpack[KerasLossArgs],
    ) -> None:
        super().__init__(class_counts, **self.given(locals()))
        self.class_weights = self.constant(self.stats.dwb_weights(), "class_weights")
        self.reg_weight = self.constant(self.params["reg_weight"], "reg_weight")

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        return dwb_loss(labels, logits, self.class_weights, self.read(self.reg_weight, logits))
