"""The scores that several parts of lossbench compute, each implemented once here.

- `softmax`: row-wise class probabilities of logits, in float64 (SciPy's `softmax`).
- `log_posterior`: log p as a finite score, for the tuned rule of a method without logits and
  for temperature scaling; an exact zero (an underflowed probability) becomes log(1e-300).
- `nll`: mean -log p_y with p_y clipped to [1e-15, 1] (the training's selection NLL and the
  reported raw and temperature-scaled NLL).
- `f1_from_counts` / `macro_f1`: F1 = 2 TP / (2 TP + FP + FN) with 0/0 = 0, macro over labels
  0..K-1 (scikit-learn's `f1_score(average="macro", labels=range(K), zero_division=0)`).
- `CRITERION_COLUMN`: the history.csv column of each selection criterion.

Two floors, on purpose: `NLL_EPS` bounds what one row can add to the NLL (the convention
scikit-learn's `log_loss` used for years, and what every stored NLL was computed with);
`LOG_POSTERIOR_FLOOR` only turns log 0 into a finite number, so that two small but different
probabilities stay two different scores (a 1e-15 floor would tie every class below it in the
tuned rule and flatten the temperature fit of a confident model).

Pure NumPy/SciPy on arrays validated upstream; nothing here reads files or prints.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax as _scipy_softmax

__all__ = [
    "CRITERION_COLUMN",
    "LOG_POSTERIOR_FLOOR",
    "NLL_EPS",
    "f1_from_counts",
    "log_posterior",
    "macro_f1",
    "nll",
    "softmax",
]

#: Probabilities are clipped to [NLL_EPS, 1] before the log in the NLL.
NLL_EPS = 1e-15
#: Probabilities below this (an underflow, an exact 0) count as this in a log posterior.
LOG_POSTERIOR_FLOOR = 1e-300

#: The history.csv column of each selection criterion (`--select`), as the trainer writes it.
CRITERION_COLUMN: dict[str, str] = {
    "macro_f1": "val_macro_f1",
    "balanced_accuracy": "val_macro_recall",
    "nll": "val_nll",
    "auprc": "val_auprc",
}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits (n, K) in float64: exp(z - max z) / sum exp(z - max z)."""
    return _scipy_softmax(np.asarray(logits, dtype=np.float64), axis=1)


def log_posterior(proba: np.ndarray) -> np.ndarray:
    """log p in float64, with probabilities below `LOG_POSTERIOR_FLOOR` (1e-300) clipped to it."""
    return np.log(np.clip(np.asarray(proba, dtype=np.float64), LOG_POSTERIOR_FLOOR, None))


def nll(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood -(1/n) sum_i log p_{i, y_i}, with p clipped to [1e-15, 1];
    NaN without rows."""
    y = np.asarray(y, dtype=np.int64)
    if not len(y):
        return float("nan")
    p_true = np.asarray(proba, dtype=np.float64)[np.arange(len(y)), y]
    return float(-np.log(np.clip(p_true, NLL_EPS, 1.0)).mean())


def f1_from_counts(tp: np.ndarray, n_true: np.ndarray, n_pred: np.ndarray) -> np.ndarray:
    """Per-class F1 = 2 TP / (n_true + n_pred) (= 2 TP / (2 TP + FP + FN)), 0 where that is 0/0.

    Args:
        tp, n_true, n_pred: true positives, support and predictions per class, of one shape
            (e.g. (K,), or (R, K) for R bootstrap resamples); weighted counts are fine.

    Returns:
        float64 array of that shape.
    """
    num = 2.0 * np.asarray(tp, dtype=np.float64)
    den = np.asarray(n_true, dtype=np.float64) + np.asarray(n_pred, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def macro_f1(y: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of the F1 of every class 0..K-1, 0 for a class neither in `y` nor
    predicted (scikit-learn's `f1_score(average="macro", labels=range(K), zero_division=0)`)."""
    y = np.asarray(y, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    tp = np.bincount(y[y == y_pred], minlength=n_classes)
    n_true = np.bincount(y, minlength=n_classes)
    n_pred = np.bincount(y_pred, minlength=n_classes)
    return float(f1_from_counts(tp, n_true, n_pred).mean())
