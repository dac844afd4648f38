"""Loss library (SPEC section 4): eleven `keras.losses.Loss` subclasses on logits.

Entry points: `names()`, `get(name, class_counts, **params)`, `describe()`. Every loss derives
from `LossbenchLoss` (hooks for the training loop), is written with `keras.ops` only (any Keras 3
backend; no TensorFlow import here), and is registered for Keras serialisation under the package
"lossbench", so a model compiled with one saves and loads without `custom_objects` once this
package is imported. The adaptive losses' epoch hooks also run in a plain `model.fit` through
`loss.callbacks(...)`.
"""

from lossbench.losses.amrl import AMRLLoss, amrl_hinge, amrl_loss, dual_ascent
from lossbench.losses.base import (
    ClassStats,
    LossbenchLoss,
    LossHooks,
    Param,
    balanced_cross_entropy,
    class_stats,
    count_classes,
    labels_to_indices,
)
from lossbench.losses.ce import CrossEntropy, WeightedCrossEntropy, ce_loss, weighted_ce_loss
from lossbench.losses.dwb import DWBLoss, dwb_loss
from lossbench.losses.focal import ClassBalancedLoss, FocalLoss, focal_loss
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
from lossbench.losses.registry import LOSSES, describe, get, names

__all__ = [
    "LOSSES",
    "AMRLLoss",
    "AutoBalanceLoss",
    "ClassBalancedLoss",
    "ClassStats",
    "CrossEntropy",
    "DWBLoss",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "LossHooks",
    "LossbenchLoss",
    "PGFLoss",
    "Param",
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
    "pgfl_alpha_update",
    "vs_loss",
    "weighted_ce_loss",
]
