"""Loss library (SPEC section 4): eleven `keras.losses.Loss` subclasses on logits.

Entry points: `names()`, `get(name, class_counts, **params)`, `describe()`. Every loss derives
from `LossbenchLoss` (hooks for the training loop) and is registered for Keras serialisation
under the package "lossbench", so a model compiled with one saves and loads without
`custom_objects` once this package is imported.
"""

from lossbench.losses.amrl import AMRLLoss, amrl_loss
from lossbench.losses.base import (
    ClassStats,
    LossbenchLoss,
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
    upper_gradients,
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
    "LossbenchLoss",
    "PGFLoss",
    "Param",
    "VSLoss",
    "WeightedCrossEntropy",
    "amrl_loss",
    "balanced_cross_entropy",
    "ce_loss",
    "class_stats",
    "count_classes",
    "describe",
    "dwb_loss",
    "focal_loss",
    "get",
    "labels_to_indices",
    "ldam_loss",
    "logit_adjusted_loss",
    "names",
    "pgfl_alpha_update",
    "upper_gradients",
    "vs_loss",
    "weighted_ce_loss",
]
