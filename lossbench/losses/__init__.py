"""Loss library (SPEC section 4): eleven `keras.losses.Loss` subclasses on logits.

Entry points: `names()`, `get(name, class_counts, **params)`, `describe()`, `register(spec)`.

The extension API (README, "Your own loss or network"): a loss written outside the package
derives from `LossbenchLoss`, declares its parameters with `Param`, builds its per-class constants
with `self.constant(...)` from `self.stats` (`class_stats`), reads them in `call` with
`self.read(...)` after `labels, logits = self.prepare(y_true, logits)`, and may use the stable
building blocks `take`, `true_class_log_probs`, `log_true_and_rest`, `balanced_cross_entropy`.
A plain function `fn(y_true_onehot, logits)` or a Keras loss is wrapped in `FunctionLoss`.

Every loss derives
from `LossbenchLoss` (hooks for the training loop), is written with `keras.ops` only (any Keras 3
backend; no TensorFlow import here), and is registered for Keras serialisation under the package
"lossbench", so a model compiled with one saves and loads without `custom_objects` once this
package is imported. The adaptive losses' epoch hooks also run in a plain `model.fit` through
`loss.callbacks(...)`; AutoBalance's upper step (TensorFlow tapes) is the training package's,
`lossbench.training.fit_callbacks(loss, ...)`. This package imports nothing of lossbench but
itself and `lossbench.errors`.
"""

from lossbench.losses.amrl import AMRLLoss, amrl_hinge, amrl_loss, dual_ascent
from lossbench.losses.base import (
    ClassStats,
    LossbenchLoss,
    Param,
    balanced_cross_entropy,
    class_stats,
    count_classes,
    labels_to_indices,
    log_true_and_rest,
    take,
    true_class_log_probs,
)
from lossbench.losses.ce import CrossEntropy, WeightedCrossEntropy, ce_loss, weighted_ce_loss
from lossbench.losses.dwb import DWBLoss, dwb_loss
from lossbench.losses.focal import ClassBalancedLoss, FocalLoss, focal_loss
from lossbench.losses.hooks import LossHooks
from lossbench.losses.margin import (
    AutoBalanceLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    VSLoss,
    ldam_loss,
    logit_adjusted_loss,
    vs_loss,
)
from lossbench.losses.pgfl import PGFLoss, pgfl_alpha_update
from lossbench.losses.registry import LOSSES, describe, get, names, register
from lossbench.losses.user import FunctionLoss, UserCode

__all__ = [
    "LOSSES",
    "AMRLLoss",
    "AutoBalanceLoss",
    "ClassBalancedLoss",
    "ClassStats",
    "CrossEntropy",
    "DWBLoss",
    "FocalLoss",
    "FunctionLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "LossHooks",
    "LossbenchLoss",
    "PGFLoss",
    "Param",
    "UserCode",
    "VSLoss",
    "WeightedCrossEntropy",
    "amrl_hinge",
    "amrl_loss",
    "balanced_cross_entropy",
    "ce_loss",
    "class_stats",
    "count_classes",
    "describe",
    "dual_ascent",
    "dwb_loss",
    "focal_loss",
    "get",
    "labels_to_indices",
    "ldam_loss",
    "logit_adjusted_loss",
    "names",
    "log_true_and_rest",
    "pgfl_alpha_update",
    "register",
    "take",
    "true_class_log_probs",
    "vs_loss",
    "weighted_ce_loss",
]
