"""The evaluation protocol's decision rules, operating points and post-hoc calibration (SPEC 5.1).

Everything is fitted on the validation split and applied unchanged to the test split:

- `fit_offsets` / `apply_offsets`: the `tuned` decision rule, per-class additive logit offsets
  maximising validation macro-F1 (binary: one threshold on z_1 - z_0);
- `operating_points`: per class, one-vs-rest, the detection rate at false-alarm-rate targets with
  the threshold chosen on validation, and the partial AUROC up to `max_fpr` on test;
- `fit_temperature` / `temperature_scale`: one temperature T > 0 minimising the validation NLL of
  softmax(log posterior / T);
- `calibration_scores`: Brier, ECE, MCE and NLL of one set of probabilities.

Pure NumPy/SciPy/scikit-learn on arrays validated upstream; nothing here reads files or prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.metrics import roc_auc_score

from lossbench.metrics.calibration import brier_score, calibration_bins
from lossbench.metrics.scores import LOG_POSTERIOR_FLOOR, macro_f1, nll, softmax

__all__ = [
    "apply_offsets",
    "calibration_scores",
    "far_threshold",
    "fit_offsets",
    "fit_temperature",
    "operating_points",
    "temperature_scale",
]

#: A candidate offset is accepted only when it raises validation macro-F1 by more than this.
_MIN_GAIN = 1e-12
#: Bounds of log T in the temperature fit (T between about 0.0025 and 400).
_LOG_T_BOUNDS = (-6.0, 6.0)
#: Log posteriors below this (underflowed probabilities, -inf) are clipped to it: log(1e-300),
#: what `lossbench.metrics.scores.log_posterior` gives an exact 0.
_LOG_FLOOR = float(np.log(LOG_POSTERIOR_FLOOR))


# ----------------------------------------------------------------------------------------------
# tuned decision rule


def apply_offsets(logits: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The tuned decision: `argmax_k (z_ik + b_k)`, ties to the lowest class index (np.argmax).

    Args:
        logits: shape (n, K).
        b: per-class additive offsets, shape (K,).

    Returns:
        Predicted class indices, int64 of shape (n,).
    """
    z = np.asarray(logits, dtype=np.float64) + np.asarray(b, dtype=np.float64)
    return np.argmax(z, axis=1).astype(np.int64)


def _best_offset(z: np.ndarray, y: np.ndarray, b: np.ndarray, k: int) -> float | None:
    """The offset b_k maximising validation macro-F1 with the other offsets fixed.

    Row i predicts class k exactly when b_k > d_i = max_{j != k}(z_ij + b_j) - z_ik, else its
    best other class o_i. Sorting the rows by d_i, each candidate offset (below all d, between
    two distinct consecutive d, above all d) moves a prefix of the sorted rows to class k; the
    macro-F1 of every prefix comes from cumulative sums of the per-class changes. Returns the
    first best candidate, or None when there are no rows.
    """
    n, n_classes = z.shape
    if n == 0:
        return None
    zb = z + b
    zb[:, k] = -np.inf
    other = np.argmax(zb, axis=1)
    d = zb[np.arange(n), other] - z[:, k]
    order = np.argsort(d, kind="stable")
    d, other, ys = d[order], other[order], y[order]

    support = np.bincount(y, minlength=n_classes).astype(np.float64)
    hit = ys == other
    # At prefix 0 every row predicts its other class.
    pred0 = np.bincount(other, minlength=n_classes).astype(np.float64)
    tp0 = np.bincount(other[hit], minlength=n_classes).astype(np.float64)
    # Moving row j to k changes only F1 of its class c = other_j; r and lost count the rows and
    # true positives of c moved before it (counts within c's group, in sorted order).
    group = np.argsort(other, kind="stable")
    starts = np.concatenate([[0], np.cumsum(pred0)[:-1]]).astype(np.int64)
    r = np.empty(n)
    r[group] = np.arange(n) - starts[other[group]]
    cum_hit = np.cumsum(hit[group])
    before = cum_hit - hit[group]  # true positives of the group before each row, from index 0
    lost = np.empty(n)
    lost[group] = before - np.concatenate([[0], cum_hit])[starts[other[group]]]
    c_tp, c_den = tp0[other] - lost, pred0[other] - r + support[other]
    f1_before = np.divide(2.0 * c_tp, c_den, out=np.zeros(n), where=c_den > 0)
    c_tp, c_den = c_tp - hit, c_den - 1.0
    f1_after = np.divide(2.0 * c_tp, c_den, out=np.zeros(n), where=c_den > 0)
    f1_0 = np.divide(2.0 * tp0, pred0 + support, out=np.zeros(n_classes), where=pred0 + support > 0)
    f1_0[k] = 0.0
    rest = f1_0.sum() + np.concatenate([[0.0], np.cumsum(f1_after - f1_before)])
    tp_k = np.concatenate([[0.0], np.cumsum(ys == k)])
    den_k = np.arange(n + 1) + support[k]
    f1_k = np.divide(2.0 * tp_k, den_k, out=np.zeros(n + 1), where=den_k > 0)
    f1 = (rest + f1_k) / n_classes

    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = d[:-1] < d[1:]  # a prefix ending inside a run of equal d is not reachable
    p = int(np.argmax(np.where(valid, f1, -1.0)))
    if p == 0:
        return float(d[0] - max(1.0, abs(d[0])))
    if p == n:
        return float(d[-1] + max(1.0, abs(d[-1])))
    return float(d[p - 1] + (d[p] - d[p - 1]) / 2.0)


def fit_offsets(y_val: np.ndarray, logits_val: np.ndarray, max_sweeps: int = 10) -> np.ndarray:
    """Per-class logit offsets b maximising validation macro-F1 of `argmax(z + b)` (SPEC 5.1).

    Coordinate ascent from b = 0 with b_0 fixed at 0: for each class k = 1..K-1 in turn, the
    exact best b_k given the others (`_best_offset`, over the breakpoints where a row's decision
    changes), kept only when the macro-F1 of the resulting predictions beats the current one by
    more than 1e-12; sweeps repeat until one changes nothing (at most `max_sweeps`). So the
    result's validation macro-F1 is never below argmax's, and the fit is deterministic. For K = 2
    one coordinate is an exhaustive threshold search on z_1 - z_0: b = [0, -t] predicts class 1
    exactly when z_1 - z_0 > t.

    Macro-F1 is scikit-learn's `f1_score(average='macro', labels=range(K), zero_division=0)`.

    Args:
        y_val: validation labels in 0..K-1, shape (n,).
        logits_val: validation logits, shape (n, K).
        max_sweeps: the most sweeps over the classes.

    Returns:
        Offsets b, float64 of shape (K,), b[0] = 0.
    """
    z = np.asarray(logits_val, dtype=np.float64)
    y = np.asarray(y_val, dtype=np.int64)
    n_classes = z.shape[1]
    b = np.zeros(n_classes)
    best = macro_f1(y, apply_offsets(z, b), n_classes)
    for _ in range(max_sweeps):
        changed = False
        for k in range(1, n_classes):
            candidate = _best_offset(z, y, b, k)
            if candidate is None or candidate == b[k]:
                continue
            trial = b.copy()
            trial[k] = candidate
            score = macro_f1(y, apply_offsets(z, trial), n_classes)
            if score > best + _MIN_GAIN:
                b, best, changed = trial, score, True
        if not changed:
            break
    return b


# ----------------------------------------------------------------------------------------------
# operating points


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def far_threshold(neg_scores: np.ndarray, target: float) -> float:
    """The lowest threshold t whose false-alarm rate `mean(neg_scores >= t)` is <= `target`.

    With n negatives, a = the largest integer with a / n <= target false alarms are allowed; t is
    the smallest float64 strictly greater than the (a+1)-th largest negative score (so at most a
    negatives, those scored strictly above it, are flagged; a tie at that score is not).

    Args:
        neg_scores: the scores of the negative rows, at least one.
        target: FAR target in (0, 1).
    """
    s = np.sort(np.asarray(neg_scores, dtype=np.float64))[::-1]
    n = len(s)
    a = math.floor(target * n)
    while a > 0 and a / n > target:  # floor of a rounded product
        a -= 1
    while a + 1 < n and (a + 1) / n <= target:
        a += 1
    return float(np.nextafter(s[a], np.inf))


def operating_points(
    y_val: np.ndarray,
    p_val: np.ndarray,
    y_test: np.ndarray,
    p_test: np.ndarray,
    far_targets: Sequence[float] = (0.01, 0.001),
    max_fpr: float = 0.01,
) -> dict[str, Any]:
    """Per class, one-vs-rest on the posterior column p[:, k]: DR at FAR targets and pAUROC.

    For class k and each target, the threshold t is chosen on validation by `far_threshold`
    (the lowest t whose validation FAR of the rule `p_k >= t` is <= target; FAR = FP / (FP + TN)
    among the rows not of class k) and applied unchanged to test. A reviewer reproduces the test
    numbers with `recall_score(y_test == k, p_test[:, k] >= t)` for test_dr and the same recall on
    the negatives' flags for test_far. pauroc is `roc_auc_score(y_test == k, p_test[:, k],
    max_fpr=max_fpr)` (standardised partial AUROC).

    Args:
        y_val, y_test: labels in 0..K-1.
        p_val, p_test: posteriors, shape (n, K).
        far_targets: FAR targets, each in (0, 1).
        max_fpr: FAR limit of the partial AUROC, in (0, 1].

    Returns:
        A JSON-able dict: far_targets, max_fpr and per_class, one entry per class with
        class_index, pauroc and points (one per target: far_target, threshold, val_far, val_dr,
        test_dr, test_far). A number that is undefined (no validation negatives, no positives or
        negatives on one split) is None.

    Raises:
        ValueError: a FAR target outside (0, 1).
    """
    targets = [float(t) for t in far_targets]
    for t in targets:
        if not 0.0 < t < 1.0:
            raise ValueError(f"FAR targets must lie in (0, 1), not {t!r}")
    y_val = np.asarray(y_val, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    p_val = np.asarray(p_val, dtype=np.float64)
    p_test = np.asarray(p_test, dtype=np.float64)
    per_class = []
    for k in range(p_val.shape[1]):
        v_pos, t_pos = y_val == k, y_test == k
        sv, st = p_val[:, k], p_test[:, k]
        points = []
        for target in targets:
            point: dict[str, Any] = {"far_target": target, "threshold": None}
            point.update(val_far=None, val_dr=None, test_dr=None, test_far=None)
            if (~v_pos).any():
                thr = far_threshold(sv[~v_pos], target)
                fv, ft = sv >= thr, st >= thr
                point.update(
                    threshold=thr,
                    val_far=_ratio(int(fv[~v_pos].sum()), int((~v_pos).sum())),
                    val_dr=_ratio(int(fv[v_pos].sum()), int(v_pos.sum())),
                    test_dr=_ratio(int(ft[t_pos].sum()), int(t_pos.sum())),
                    test_far=_ratio(int(ft[~t_pos].sum()), int((~t_pos).sum())),
                )
            points.append(point)
        pauroc = None
        if t_pos.any() and (~t_pos).any():
            pauroc = float(roc_auc_score(t_pos, st, max_fpr=max_fpr))
        per_class.append({"class_index": k, "pauroc": pauroc, "points": points})
    return {"far_targets": targets, "max_fpr": float(max_fpr), "per_class": per_class}


# ----------------------------------------------------------------------------------------------
# temperature scaling and calibration


#: Rows per block of `fit_temperature`'s objective.
_NLL_ROWS = 65536


def _floored(log_posterior: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(log_posterior, dtype=np.float64), _LOG_FLOOR)


def temperature_scale(log_posterior: np.ndarray, T: float) -> np.ndarray:
    """`softmax(log_posterior / T)` over classes; log posteriors below log(1e-300) are clipped.

    Args:
        log_posterior: log of the posterior, shape (n, K).
        T: temperature > 0 (T > 1 softens, T < 1 sharpens).

    Returns:
        Probabilities, float64 of shape (n, K).
    """
    return softmax(_floored(log_posterior) / T)


def fit_temperature(log_posterior_val: np.ndarray, y_val: np.ndarray) -> float:
    """The temperature T > 0 minimising the mean validation NLL of softmax(log posterior / T).

    ```
    T = argmin_T  -(1/n) sum_i log softmax(l_i / T)_{y_i},   l_i = log p_i
    ```

    A bounded scalar minimisation (SciPy's `minimize_scalar`, method 'bounded', xatol 1e-10)
    over log T in [-6, 6]. Returns 1.0 when there are no rows.
    """
    logp = _floored(log_posterior_val)
    y = np.asarray(y_val, dtype=np.int64)
    if len(y) == 0:
        return 1.0
    picked = np.empty(len(y), dtype=np.float64)

    def nll(log_t: float) -> float:
        # A block of rows at a time (the same values: every step is per row): at 2.8 M flows the
        # whole split's temporaries were the largest allocation of a run's evaluation.
        t = math.exp(log_t)
        for a in range(0, len(y), _NLL_ROWS):
            block = -log_softmax(logp[a : a + _NLL_ROWS] / t, axis=1)
            picked[a : a + len(block)] = block[np.arange(len(block)), y[a : a + _NLL_ROWS]]
        return float(picked.mean())

    res = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-10})
    return float(math.exp(res.x))


def calibration_scores(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """Brier (SPEC 5: summed over classes, not halved), ECE and MCE (top-label, `n_bins` bins)
    and NLL (mean -log p_y with p_y clipped to [1e-15, 1]) of one set of probabilities.

    Returns:
        {"brier", "ece", "mce", "nll"} as floats.
    """
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    ece, mce, _ = calibration_bins(y, proba, n_bins)
    return {"brier": brier_score(y, proba), "ece": ece, "mce": mce, "nll": nll(y, proba)}
