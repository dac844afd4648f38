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
from lossbench.metrics.protocol import (
    apply_offsets,
    calibration_scores,
    far_threshold,
    fit_offsets,
    fit_temperature,
    operating_points,
    temperature_scale,
)
from lossbench.metrics.scores import (
    CRITERION_COLUMN,
    f1_from_counts,
    log_posterior,
    macro_f1,
    nll,
    softmax,
)
from lossbench.metrics.significance import hierarchical_bootstrap_ci, holm, paired_seed_test

__all__ = [
    "CRITERION_COLUMN",
    "PER_CLASS_COLUMNS",
    "Evaluation",
    "apply_offsets",
    "average_precision_ovr",
    "brier_score",
    "calibration_bins",
    "calibration_scores",
    "confusion_counts",
    "evaluate",
    "f1_from_counts",
    "far_threshold",
    "fit_offsets",
    "fit_temperature",
    "hierarchical_bootstrap_ci",
    "holm",
    "log_posterior",
    "macro_f1",
    "nll",
    "operating_points",
    "paired_seed_test",
    "quick_scores",
    "roc_auc_ovr",
    "softmax",
    "temperature_scale",
]
