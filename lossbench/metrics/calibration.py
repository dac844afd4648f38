"""Calibration metrics: Brier score (the paper's eq. 19) and top-label ECE/MCE with a bin table.

Binning convention (used by `calibration_bins`): `n_bins` equal-width bins on [0, 1] with edges
`e_b = b / n_bins`. Bin b holds the confidences c with `e_b < c <= e_{b+1}` (right-closed); the
first bin also holds c = 0; confidences above 1 by rounding fall in the last bin. Every bin is
listed, empty ones with `count = 0` and NaN confidence, accuracy and gap; empty bins add nothing
to ECE and are ignored by MCE.
"""

from __future__ import annotations

import numpy as np

__all__ = ["brier_score", "calibration_bins"]


def brier_score(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Multiclass Brier score, not halved (Fernando and Tsokos 2021, eq. 19).

    ```
    BS = (1/n) sum_i sum_k (y_ik - p_ik)^2,   y_ik = 1[y_i = k]
    ```

    Args:
        y_true: integer labels, shape (n,).
        proba: class probabilities, shape (n, K).

    For K = 2 this is twice scikit-learn's `brier_score_loss`, which scores only the positive
    class's probability: both classes' squared errors are equal and both are summed here.

    Returns:
        The score in [0, 2]; 0 for perfect confident predictions.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    diff = np.array(proba, dtype=np.float64)  # a copy: the true-class column is shifted below
    diff[np.arange(len(y_true)), y_true] -= 1.0
    return float(np.mean(np.sum(diff * diff, axis=1)))


def _bin_edges(n_bins: int) -> np.ndarray:
    """Bin edges b / n_bins, b = 0..n_bins, each the correctly rounded quotient."""
    return np.arange(n_bins + 1, dtype=np.float64) / n_bins


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Right-closed bin of each confidence; the first bin also holds 0 (module docstring)."""
    edges = _bin_edges(n_bins)
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)


def calibration_bins(
    y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15
) -> tuple[float, float, list[dict]]:
    """Expected and maximum calibration error over the top-label confidence.

    ```
    c_i = max_k p_ik,  correct_i = 1[argmax_k p_ik = y_i]
    ECE = sum_b (n_b / n) |acc_b - conf_b|
    MCE = max over non-empty bins b of |acc_b - conf_b|
    ```

    Args:
        y_true: integer labels, shape (n,).
        proba: class probabilities, shape (n, K); ties in argmax go to the lowest class index.
        n_bins: number of equal-width bins on [0, 1] (binning convention in the module docstring).

    Returns:
        `(ece, mce, bins)`; `bins` holds one dict per bin with keys lower, upper, count,
        confidence (mean c), accuracy (mean correct) and gap (|accuracy - confidence|).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n = len(y_true)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    index = _bin_index(confidence, n_bins)

    count = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(index, weights=correct, minlength=n_bins)
    filled = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        conf_mean = np.where(filled, conf_sum / count, np.nan)
        acc_mean = np.where(filled, acc_sum / count, np.nan)
    gap = np.abs(acc_mean - conf_mean)

    ece = float(np.sum(count[filled] / n * gap[filled])) if n else float("nan")
    mce = float(np.max(gap[filled])) if filled.any() else float("nan")
    edges = _bin_edges(n_bins)
    bins = [
        {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": int(count[b]),
            "confidence": float(conf_mean[b]),
            "accuracy": float(acc_mean[b]),
            "gap": float(gap[b]),
        }
        for b in range(n_bins)
    ]
    return ece, mce, bins
