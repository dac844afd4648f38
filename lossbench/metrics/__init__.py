"""Metrics (SPEC section 5): per-class, averaged, binary and calibration scores.

Pure NumPy on arrays already validated upstream; nothing here reads files or prints.
"""

from lossbench.metrics.calibration import brier_score, calibration_bins
from lossbench.metrics.classification import (
    PER_CLASS_COLUMNS,
    Evaluation,
    average_precision_ovr,
    confusion_counts,
    evaluate,
    quick_scores,
    roc_auc_ovr,
)
from lossbench.metrics.significance import paired_bootstrap_ci, paired_seed_test

__all__ = [
    "PER_CLASS_COLUMNS",
    "Evaluation",
    "average_precision_ovr",
    "brier_score",
    "calibration_bins",
    "confusion_counts",
    "evaluate",
    "paired_bootstrap_ci",
    "paired_seed_test",
    "quick_scores",
    "roc_auc_ovr",
]
