"""Paired comparisons of two losses: over seeds (t-test, Wilcoxon) and on one test set (bootstrap).

Both are paired: seed s of loss A is compared with seed s of loss B (same split, initial weights
and batch order), and every bootstrap resample uses the same test rows for A and B, so the shared
difficulty of the rows cancels out of the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from lossbench.metrics.calibration import brier_score
from lossbench.metrics.classification import quick_scores

__all__ = ["BOOTSTRAP_METRICS", "paired_bootstrap_ci", "paired_seed_test"]

BOOTSTRAP_METRICS = ("macro_f1", "brier")
MIN_WILCOXON_PAIRS = 5
ZERO_STD = 1e-12  # a std of the differences below this counts as zero variance (rounding noise)
_CHUNK_ELEMENTS = 2_000_000  # resampled row indices held in memory at once


def paired_seed_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Paired test of `a - b` over seeds (one score per seed for each of two losses).

    Args:
        a: a score of loss A, one per seed.
        b: the same score of loss B, for the same seeds in the same order.

    Returns:
        `n` pairs, `mean_diff` and `std_diff` (ddof = 1) of `a - b`, `t_stat` and `p_value` of the
        two-sided paired t-test (`scipy.stats.ttest_rel`; NaN with fewer than 2 pairs or when the
        differences have zero variance, i.e. a std below `ZERO_STD`), and `wilcoxon_p`, the
        two-sided Wilcoxon signed-rank p-value (NaN with fewer than `MIN_WILCOXON_PAIRS` pairs or
        when every difference is 0).

    Raises:
        ValueError: when `a` and `b` differ in length.
    """
    a_arr = np.asarray(a, dtype=np.float64)
    b_arr = np.asarray(b, dtype=np.float64)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"paired scores need equal lengths, got {a_arr.shape} and {b_arr.shape}")
    diff = a_arr - b_arr
    n = len(diff)
    nan = float("nan")
    std = float(np.std(diff, ddof=1)) if n >= 2 else nan
    t_stat = p_value = wilcoxon_p = nan
    if n >= 2 and std > ZERO_STD:
        result = stats.ttest_rel(a_arr, b_arr)
        t_stat, p_value = float(result.statistic), float(result.pvalue)
    if n >= MIN_WILCOXON_PAIRS and np.any(diff != 0):
        wilcoxon_p = float(stats.wilcoxon(a_arr, b_arr).pvalue)
    return {
        "n": n,
        "mean_diff": float(diff.mean()) if n else nan,
        "std_diff": std,
        "t_stat": t_stat,
        "p_value": p_value,
        "wilcoxon_p": wilcoxon_p,
    }


def _boot_macro_f1(
    y_true: np.ndarray, y_pred: np.ndarray, index: np.ndarray, n_classes: int
) -> np.ndarray:
    """Macro F1 (zero_division = 0, all K classes) of each resample; index has shape (B, n)."""
    n_boot = index.shape[0]
    codes = (
        np.arange(n_boot)[:, None] * n_classes * n_classes
        + y_true[index] * n_classes
        + y_pred[index]
    )
    confusion = np.bincount(codes.ravel(), minlength=n_boot * n_classes * n_classes)
    confusion = confusion.reshape(n_boot, n_classes, n_classes)
    tp = np.diagonal(confusion, axis1=1, axis2=2).astype(np.float64)
    fp = confusion.sum(axis=1) - tp
    fn = confusion.sum(axis=2) - tp
    den = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)
    return f1.mean(axis=1)


def paired_bootstrap_ci(
    y_true: np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    metric: str,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Percentile bootstrap confidence interval of `metric(A) - metric(B)` on one test set.

    Test rows are resampled with replacement, the same rows for A and B in each resample.

    Args:
        y_true: integer labels, shape (n,).
        proba_a: class probabilities of model A, shape (n, K).
        proba_b: class probabilities of model B, shape (n, K).
        metric: "macro_f1" (as `evaluate`, argmax predictions) or "brier" (eq. 19).
        n_boot: number of resamples.
        seed: seed of the resampling generator.
        alpha: 1 - confidence level; the interval is the [alpha/2, 1 - alpha/2] quantiles.

    Returns:
        `{"diff": metric(A) - metric(B) on the full set, "ci_low", "ci_high", "n_boot"}`.

    Raises:
        ValueError: for an unknown metric.
    """
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"metric must be one of {', '.join(BOOTSTRAP_METRICS)}, got {metric!r}")
    y_true = np.asarray(y_true, dtype=np.int64)
    proba_a = np.asarray(proba_a, dtype=np.float64)
    proba_b = np.asarray(proba_b, dtype=np.float64)
    n, n_classes = proba_a.shape

    if metric == "brier":
        rows = np.arange(n)
        sq_a, sq_b = proba_a.copy(), proba_b.copy()
        sq_a[rows, y_true] -= 1.0
        sq_b[rows, y_true] -= 1.0
        row_diff = np.sum(sq_a * sq_a, axis=1) - np.sum(sq_b * sq_b, axis=1)
        diff = brier_score(y_true, proba_a) - brier_score(y_true, proba_b)

        def resampled(index: np.ndarray) -> np.ndarray:
            return row_diff[index].mean(axis=1)

    else:
        pred_a, pred_b = proba_a.argmax(axis=1), proba_b.argmax(axis=1)
        diff = (
            quick_scores(y_true, pred_a, n_classes)["macro_f1"]
            - quick_scores(y_true, pred_b, n_classes)["macro_f1"]
        )

        def resampled(index: np.ndarray) -> np.ndarray:
            return _boot_macro_f1(y_true, pred_a, index, n_classes) - _boot_macro_f1(
                y_true, pred_b, index, n_classes
            )

    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    boot = np.concatenate(
        [
            resampled(rng.integers(0, n, size=(min(chunk, n_boot - start), n)))
            for start in range(0, n_boot, chunk)
        ]
    )
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return {
        "diff": float(diff),
        "ci_low": float(low),
        "ci_high": float(high),
        "n_boot": int(n_boot),
    }
