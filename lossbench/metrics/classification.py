"""Classification metrics (SPEC section 5): per-class one-vs-rest scores, averages, binary scores.

Every number agrees with scikit-learn / imbalanced-learn where they define it
(tests/test_metrics.py); MCC and G-mean are their functions, AUROC and average precision own
vectorised code (scikit-learn's cost milliseconds of checks per class; see their docstrings):

- per class k, from one-vs-rest counts TP, FP, FN, TN: precision, recall (POD), F1,
  FAR = FP / (FP + TN), specificity = TN / (TN + FP), AUROC of `proba[:, k]`, average precision
  (scikit-learn's step-wise AUPRC), support. A ratio with a zero denominator is 0 and its name is
  added to `Evaluation.undefined` (scikit-learn's `zero_division=0`).
- AUROC of a class absent from `y_true` or that is all of `y_true`, and AUPRC of a class absent
  from `y_true`, are undefined: NaN in `per_class`, flagged, and left out of `macro_auroc` /
  `macro_auprc`.
- macro = unweighted mean over all K classes (`average="macro"`, `labels=range(K)`); weighted =
  support-weighted mean.
- balanced accuracy averages recall over the classes present in `y_true` (as scikit-learn).
- G-mean is `imblearn.metrics.geometric_mean_score(average="multiclass")`: the geometric mean
  of recall over the classes present in `y_true` or predicted; a class predicted but absent from
  `y_true` has recall 0/0 = 0, so G-mean is then 0.
- MCC is scikit-learn's multiclass `matthews_corrcoef` (0 and flagged when undefined).
- `y_pred = argmax(proba)`; ties go to the lowest class index (as `np.argmax`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import matthews_corrcoef

from lossbench.io import jsonable
from lossbench.metrics.calibration import brier_score, calibration_bins
from lossbench.metrics.scores import f1_from_counts

__all__ = [
    "PER_CLASS_COLUMNS",
    "Evaluation",
    "average_precision_ovr",
    "confusion_counts",
    "evaluate",
    "quick_scores",
    "roc_auc_ovr",
]

PER_CLASS_COLUMNS = (
    "precision",
    "recall",
    "f1",
    "far",
    "specificity",
    "auroc",
    "auprc",
    "support",
    "tp",
    "fp",
    "fn",
    "tn",
)


@dataclass
class Evaluation:
    """Everything `evaluate` computes for one set of predictions.

    Attributes:
        per_class: one row per class (index name "class"), columns `PER_CLASS_COLUMNS`.
        summary: scalar scores (see `evaluate`); `positive_class` is a str, the rest floats.
        calibration: brier, ece, mce, n_bins and the reliability-diagram `bins` table.
        confusion: (K, K) int64 counts, rows = true class, columns = predicted class.
        undefined: names of scores whose denominator was 0 (set to 0) or that are NaN,
            e.g. "precision[Bot]", "auroc[Infiltration]", "mcc".
    """

    per_class: pd.DataFrame
    summary: dict[str, Any]
    calibration: dict[str, Any]
    confusion: np.ndarray
    undefined: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view: NumPy scalars become Python numbers and NaN becomes None."""
        return {
            "summary": jsonable(self.summary),
            "calibration": jsonable(self.calibration),
            "undefined": list(self.undefined),
            "per_class": jsonable(self.per_class.reset_index().to_dict(orient="records")),
            "confusion": self.confusion.tolist(),
        }


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix, shape (K, K) int64, rows = true class, columns = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def _divide(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """num / den with 0 where den == 0; also returns the mask of zero denominators."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    zero = den == 0
    return np.divide(num, den, out=np.zeros_like(num), where=~zero), zero


def _one_vs_rest(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class TP, FP, FN, TN from a confusion matrix."""
    tp = np.diag(confusion).astype(np.int64)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    tn = confusion.sum() - tp - fp - fn
    return tp, fp, fn, tn


def _recall_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and their zero-denominator masks (F1 = 2TP / (2TP + FP + FN))."""
    precision, p_zero = _divide(tp, tp + fp)
    recall, r_zero = _divide(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1_from_counts(tp, tp + fn, tp + fp),
        "precision_zero": p_zero,
        "recall_zero": r_zero,
        "f1_zero": (2 * tp + fp + fn) == 0,
    }


def quick_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Cheap per-epoch validation scores, with the same definitions as `evaluate`.

    Returns:
        `{"macro_f1": float, "macro_recall": float, "recall": ndarray of shape (K,)}`.
    """
    tp, fp, fn, _ = _one_vs_rest(confusion_counts(y_true, y_pred, n_classes))
    scores = _recall_f1(tp, fp, fn)
    return {
        "macro_f1": float(scores["f1"].mean()),
        "macro_recall": float(scores["recall"].mean()),
        "recall": scores["recall"],
    }


def roc_auc_ovr(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """One-vs-rest AUROC of each column of `proba`, shape (K,); NaN where a class is absent or all.

    Uses the Mann-Whitney form with tied scores given average ranks, which equals the trapezoidal
    area under the ROC curve that `sklearn.metrics.roc_auc_score` computes (tests/test_metrics.py).
    Own code rather than that function, which takes one class a call with milliseconds of input
    checks: at 240 rows x 11 classes 26 ms against 0.5 ms, and about 2x slower at 420,000 x 15
    (`python scripts/bench_scores.py`); `evaluate` runs twice a run, and in most tests.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    n, n_classes = np.shape(proba)
    auc = np.full(n_classes, np.nan)
    for k in range(n_classes):  # a column at a time: no (n, K) temporaries (issue 35)
        positive = y_true == k
        n_pos = float(positive.sum())
        n_neg = n - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(np.asarray(proba[:, k], dtype=np.float64), method="average")
        # ranks are multiples of 1/2, so their sum is exact in any order
        auc[k] = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return auc


def average_precision_ovr(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """One-vs-rest average precision of each column of `proba`, shape (K,); NaN for absent classes.

    ```
    AP = sum_t (R_t - R_{t-1}) P_t
    ```
    over the distinct scores t in decreasing order (scikit-learn's `average_precision_score`:
    step-wise, no interpolation; tied scores form one threshold; tests/test_metrics.py). Own code
    rather than that function: the trainer scores the validation split with it after every epoch,
    and scikit-learn's one call per class with milliseconds of input checks took 18 ms against
    0.2 ms at 240 rows x 11 classes (`python scripts/bench_scores.py`; at 420,000 x 15 the two
    are within the noise of each other).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    n, n_classes = np.shape(proba)
    ap = np.full(n_classes, np.nan)
    rank = np.arange(1, n + 1, dtype=np.float64)
    for k in range(n_classes):  # a column at a time: no (n, K) temporaries (issue 35)
        score = np.asarray(proba[:, k], dtype=np.float64)
        order = np.argsort(-score, kind="stable")
        score = score[order]
        tp_cum = np.cumsum(y_true[order] == k, dtype=np.float64)
        n_pos = tp_cum[-1] if n else 0.0
        if n_pos == 0:
            continue
        # The last row of each run of equal scores closes a threshold.
        is_end = np.ones(n, dtype=bool)
        is_end[:-1] = score[:-1] != score[1:]
        tp = tp_cum[is_end]  # true positives at each threshold, scores decreasing
        recall_step = np.diff(tp, prepend=0.0)
        ap[k] = (recall_step * (tp / rank[is_end])).sum() / n_pos
    return ap


def _mcc(y_true: np.ndarray, y_pred: np.ndarray, confusion: np.ndarray) -> tuple[float, bool]:
    """scikit-learn's multiclass `matthews_corrcoef`; (0, True) when it is undefined (its
    denominator is 0: fewer than two classes in `y_true` or fewer than two predicted)."""
    if min((confusion.sum(axis=0) > 0).sum(), (confusion.sum(axis=1) > 0).sum()) < 2:
        return 0.0, True
    return float(matthews_corrcoef(y_true, y_pred)), False


def _gmean(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """imbalanced-learn's `geometric_mean_score(average="multiclass")`: over the classes in
    y_true or y_pred, a 0/0 recall (a class predicted, never true) counts as 0."""
    # imported here: imblearn's package import loads all its samplers (and pytest), ~0.6 s that
    # a process which never evaluates (lossbench losses, inspect) should not pay
    from imblearn.metrics import geometric_mean_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its 0/0-recall warning: the module docstring says so
        return float(geometric_mean_score(y_true, y_pred, average="multiclass"))


def _mean_defined(values: np.ndarray, name: str, undefined: list[str]) -> float:
    """Mean over the non-NaN entries; NaN, and `name` flagged, when there are none."""
    defined = values[~np.isnan(values)]
    if len(defined) == 0:
        undefined.append(name)
        return float("nan")
    return float(defined.mean())


def _binary_scores(
    tp: int, fp: int, fn: int, tn: int, recall_neg: float
) -> tuple[dict[str, float], list[str]]:
    """2x2 forecast-verification scores of the positive class, and the names of undefined ones."""
    tp, fp, fn, tn = (float(v) for v in (tp, fp, fn, tn))
    undefined: list[str] = []

    def ratio(name: str, num: float, den: float) -> float:
        if den == 0:
            undefined.append(name)
            return 0.0
        return num / den

    pod = ratio("pod", tp, tp + fn)
    pofd = ratio("pofd", fp, fp + tn)
    scores = {
        "pod": pod,
        "far": pofd,
        "pofd": pofd,
        "bias": ratio("bias", tp + fp, tp + fn),
        "hss": ratio("hss", 2 * (tp * tn - fp * fn), (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)),
        "pss": pod - pofd,
        "binary_gmean": math.sqrt(pod * recall_neg),
    }
    return scores, undefined


def evaluate(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    *,
    n_bins: int = 15,
    positive: int | None = None,
    y_pred: np.ndarray | None = None,
) -> Evaluation:
    """Per-class, averaged, binary and calibration scores of class probabilities.

    Args:
        y_true: integer labels in [0, K), shape (n,).
        proba: class probabilities, shape (n, K), rows summing to 1; `y_pred = argmax(proba)`.
        class_names: K names, in column order of `proba`.
        n_bins: bins of the top-label reliability table (ECE/MCE).
        positive: for K == 2 only, the index of the positive class; default the minority class
            of `y_true` (index 1 on a tie).
        y_pred: the decisions the count-based metrics use (SPEC 5.1: argmax of the logits, or
            the validation-tuned rule); default `argmax(proba)`. Probability-based metrics
            (AUROC, AUPRC, Brier, ECE, MCE) always use `proba`.

    Returns:
        An `Evaluation`. `summary` has accuracy, balanced_accuracy, gmean, mcc, macro_precision,
        macro_recall, macro_f1, macro_far, macro_auroc, macro_auprc, weighted_precision,
        weighted_recall, weighted_f1, brier, ece, mce; for K == 2 also positive_class, pod, far,
        pofd (far == pofd == FP / (FP + TN)), bias, hss, pss, binary_gmean and auprc (of the
        positive class). Definitions are in the module docstring.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    names = [str(name) for name in class_names]
    n_classes = len(names)
    if proba.ndim != 2 or proba.shape != (len(y_true), n_classes):
        raise ValueError(
            f"expected proba of shape ({len(y_true)}, {n_classes}) for {len(y_true)} labels and "
            f"{n_classes} class names, got {proba.shape}"
        )

    y_pred = proba.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=np.int64)
    confusion = confusion_counts(y_true, y_pred, n_classes)
    per_class, undefined = _per_class_scores(y_true, proba, confusion, names)
    summary = _averages(y_true, y_pred, confusion, per_class, undefined)
    ece, mce, bins = calibration_bins(y_true, proba, n_bins=n_bins)
    brier = brier_score(y_true, proba)
    summary.update(brier=brier, ece=ece, mce=mce)
    if n_classes == 2:
        if positive is None:
            counts = np.bincount(y_true, minlength=2)
            positive = 0 if counts[0] < counts[1] else 1
        p, q = positive, 1 - positive
        row = per_class.iloc[p]
        binary, binary_undefined = _binary_scores(
            row["tp"], row["fp"], row["fn"], row["tn"], per_class["recall"].iloc[q]
        )
        summary["positive_class"] = names[p]
        summary.update(binary)
        summary["auprc"] = float(row["auprc"])
        undefined.extend(binary_undefined)

    calibration = {"brier": brier, "ece": ece, "mce": mce, "n_bins": n_bins, "bins": bins}
    return Evaluation(per_class, summary, calibration, confusion, undefined)


def _per_class_scores(
    y_true: np.ndarray, proba: np.ndarray, confusion: np.ndarray, names: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """The per-class table (`PER_CLASS_COLUMNS`) and the flags of its undefined cells."""
    tp, fp, fn, tn = _one_vs_rest(confusion)
    prf = _recall_f1(tp, fp, fn)
    far, far_zero = _divide(fp, fp + tn)
    specificity, _ = _divide(tn, tn + fp)
    auroc = roc_auc_ovr(y_true, proba)
    auprc = average_precision_ovr(y_true, proba)

    undefined: list[str] = []
    for metric, mask in (
        ("precision", prf["precision_zero"]),
        ("recall", prf["recall_zero"]),
        ("f1", prf["f1_zero"]),
        ("far", far_zero),
        ("specificity", far_zero),
        ("auroc", np.isnan(auroc)),
        ("auprc", np.isnan(auprc)),
    ):
        undefined.extend(f"{metric}[{names[k]}]" for k in np.flatnonzero(mask))

    columns = {"precision": prf["precision"], "recall": prf["recall"], "f1": prf["f1"]}
    columns.update(far=far, specificity=specificity, auroc=auroc, auprc=auprc, support=tp + fn)
    columns.update(tp=tp, fp=fp, fn=fn, tn=tn)
    return pd.DataFrame(columns, index=pd.Index(names, name="class")), undefined


def _averages(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confusion: np.ndarray,
    per_class: pd.DataFrame,
    undefined: list[str],
) -> dict[str, Any]:
    """The summary's accuracy, balanced accuracy, G-mean, MCC, macro and weighted scores
    (flags of undefined ones appended to `undefined`)."""
    col = {name: per_class[name].to_numpy() for name in ("precision", "recall", "f1", "far")}
    support = per_class["support"].to_numpy()
    weights = support / len(y_true)
    mcc, mcc_undefined = _mcc(y_true, y_pred, confusion)
    if mcc_undefined:
        undefined.append("mcc")
    macro_auroc = _mean_defined(per_class["auroc"].to_numpy(), "macro_auroc", undefined)
    macro_auprc = _mean_defined(per_class["auprc"].to_numpy(), "macro_auprc", undefined)
    return {
        "accuracy": float(np.trace(confusion) / len(y_true)),
        "balanced_accuracy": float(col["recall"][support > 0].mean()),
        "gmean": _gmean(y_true, y_pred),
        "mcc": mcc,
        "macro_precision": float(col["precision"].mean()),
        "macro_recall": float(col["recall"].mean()),
        "macro_f1": float(col["f1"].mean()),
        "macro_far": float(col["far"].mean()),
        "macro_auroc": macro_auroc,
        "macro_auprc": macro_auprc,
        "weighted_precision": float(weights @ col["precision"]),
        "weighted_recall": float(weights @ col["recall"]),
        "weighted_f1": float(weights @ col["f1"]),
    }
