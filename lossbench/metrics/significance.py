"""Paired comparisons of two methods over seeds, and the hierarchical test-set bootstrap (SPEC 5.2).

A seed fixes the split, the initial weights and the batch order, so seed s of method A and seed s
of method B are a pair. Over the seeds:

- `paired_seed_test`: mean difference with a t-based 95% interval, the paired t-test
  (`scipy.stats.ttest_rel`) from `MIN_TEST_SEEDS` seeds, and the Wilcoxon signed-rank test
  (`scipy.stats.wilcoxon`) from `MIN_WILCOXON_SEEDS` seeds (with 5 pairs its smallest two-sided
  p-value is 0.0625, so it could never reject at 0.05).
- `holm`: Holm-Bonferroni adjusted p-values of one family of comparisons.

On the test rows (`hierarchical_bootstrap_ci`), a two-level bootstrap: each replicate draws the
seeds with replacement, then, inside each drawn seed, that seed's own test rows with replacement,
the same rows for A and B; the replicate's value is the mean over the drawn seeds of
metric(A) - metric(B). Rows of different seeds are never pooled: each seed has its own split, and
a metric such as macro F1 on pooled rows is not the mean of the per-seed values. With one seed it
is the ordinary paired bootstrap of that seed's test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from lossbench.metrics.scores import f1_from_counts

__all__ = [
    "BOOTSTRAP_METRICS",
    "MIN_TEST_SEEDS",
    "MIN_WILCOXON_SEEDS",
    "bootstrap_summary",
    "combine_seed_replicates",
    "hierarchical_bootstrap_ci",
    "holm",
    "metric_value",
    "paired_seed_test",
    "resample_counts",
    "resampled_metric",
    "seed_replicates",
]

BOOTSTRAP_METRICS = ("macro_f1", "macro_recall", "macro_auprc", "brier")
MIN_TEST_SEEDS = 3
MIN_WILCOXON_SEEDS = 6
ZERO_STD = 1e-12  # a std of the differences below this counts as zero variance (rounding noise)
_CHUNK_ELEMENTS = 2_000_000  # resample-by-row cells held in memory at once
# a class's average precision by a matrix product (`_ap_terms`) while the (rows x thresholds)
# matrices of the classes so taken stay within this many cells together and the class has at
# most this many thresholds; else by a sort-ordered pass
_AP_MATRIX_CELLS = 4_000_000
_AP_MATRIX_THRESHOLDS = 256  # measured: faster than the pass up to 200-400


def paired_seed_test(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> dict[str, Any]:
    """Paired comparison of `a - b` over seeds (one score per seed for each of two methods).

    Args:
        a: a score of method A, one per seed.
        b: the same score of method B, for the same seeds in the same order.
        alpha: 1 - confidence level of the interval of the mean difference.

    Returns:
        `n` pairs; `mean_diff` and `std_diff` (ddof = 1) of `a - b`; `ci_low`/`ci_high`, the
        t-based interval `mean ± t_{1-alpha/2, n-1} std / sqrt(n)` (NaN below 2 pairs); `t_stat`
        and `p_value` of the two-sided paired t-test (NaN below `MIN_TEST_SEEDS` pairs or when the
        differences have zero variance, i.e. a std below `ZERO_STD`); `wilcoxon_p`, the two-sided
        Wilcoxon signed-rank p-value (NaN below `MIN_WILCOXON_SEEDS` pairs or when every
        difference is 0); `tested` (True when `p_value` is defined) and `note`, why a value is
        missing ("" when nothing is).

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
    mean = float(diff.mean()) if n else nan
    std = float(np.std(diff, ddof=1)) if n >= 2 else nan
    ci_low = ci_high = t_stat = p_value = wilcoxon_p = nan
    notes = []
    if n >= 2:
        half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * std / np.sqrt(n)
        ci_low, ci_high = mean - half, mean + half
    if n < MIN_TEST_SEEDS:
        notes.append(f"no test possible: {n} seed(s), at least {MIN_TEST_SEEDS} needed")
    elif std <= ZERO_STD:
        notes.append("no t-test: the differences have zero variance")
    else:
        result = stats.ttest_rel(a_arr, b_arr)
        t_stat, p_value = float(result.statistic), float(result.pvalue)
    if MIN_TEST_SEEDS <= n < MIN_WILCOXON_SEEDS:
        notes.append(f"no Wilcoxon test: {n} seeds, at least {MIN_WILCOXON_SEEDS} needed")
    elif n >= MIN_WILCOXON_SEEDS:
        if np.any(diff != 0):
            wilcoxon_p = float(stats.wilcoxon(a_arr, b_arr).pvalue)
        else:
            notes.append("no Wilcoxon test: every difference is 0")
    return {
        "n": n,
        "mean_diff": mean,
        "std_diff": std,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "t_stat": t_stat,
        "p_value": p_value,
        "wilcoxon_p": wilcoxon_p,
        "tested": not np.isnan(p_value),
        "note": "; ".join(notes),
    }


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values of one family; NaN entries are not part of the family.

    ```
    p_adj(i) = max_{j <= i} min(1, (m - j + 1) p_(j))     p_(1) <= ... <= p_(m)
    ```

    Returns:
        An array of the input's shape, NaN where the input is NaN.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = len(defined)
    if m == 0:
        return out
    order = defined[np.argsort(p[defined], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


# ------------------------------------------------------------------------------------------------
# test-set bootstrap


def resample_counts(n_rows: int, n_resamples: int, seed: int | Sequence[int]) -> np.ndarray:
    """How often each of `n_rows` rows is drawn in each of `n_resamples` bootstrap resamples.

    Returns:
        float64 array of shape (n_resamples, n_rows); each row sums to `n_rows`. The same `seed`
        gives the same resamples, so two methods evaluated with it see the same rows.
    """
    index = np.random.default_rng(seed).integers(0, n_rows, size=(n_resamples, n_rows))
    codes = (np.arange(n_resamples)[:, None] * n_rows + index).ravel()
    counts = np.bincount(codes, minlength=n_resamples * n_rows)
    return counts.reshape(n_resamples, n_rows).astype(np.float64)


class _Scorer:
    """The metrics of one method's predictions on one test set, under row weights.

    A weight is how often a row is drawn in a resample; with all weights 1 each metric is the one
    `lossbench.metrics.evaluate` reports (argmax predictions): macro F1 and macro recall over all
    K classes with 0/0 = 0, macro AUPRC over the classes that have a positive row (step-wise
    average precision, tied scores one threshold), Brier not halved (eq. 19).
    """

    def __init__(self, y_true: np.ndarray, proba: np.ndarray) -> None:
        y = np.asarray(y_true, dtype=np.int64)
        proba = np.asarray(proba, dtype=np.float64)
        n, n_classes = proba.shape
        self.n = n
        self.n_classes = n_classes
        truth = np.eye(n_classes)[y]
        pred = np.eye(n_classes)[proba.argmax(axis=1)]
        sq = proba.copy()
        sq[np.arange(n), y] -= 1.0
        self.row_brier = np.sum(sq * sq, axis=1)
        # every count a metric needs is a column of one 0/1 matrix, so that a single product
        # with the weights gives them all: hits, support and predictions per class, then the
        # average-precision thresholds of the classes that take the matrix route (`_ap_terms`)
        blocks = [truth * pred, truth, pred]
        cells_left = _AP_MATRIX_CELLS
        self.ranking = []
        for k in range(n_classes):
            terms = _ap_terms(y == k, proba[:, k], cells_left)
            if terms[0] == "matrix":
                _, both, m = terms
                terms = ("matrix", sum(b.shape[1] for b in blocks), m)
                blocks.append(both)
                cells_left -= both.size // 2
            self.ranking.append(terms)
        self.columns = np.concatenate(blocks, axis=1)

    def scores(self, metrics: Sequence[str], w: np.ndarray) -> dict[str, np.ndarray]:
        """Each of `metrics` under each row of the weights `w` (shape (R, n)); shape (R,) each.
        Weights are draw counts, so every count below is an exact sum in float64."""
        out: dict[str, np.ndarray] = {}
        if "brier" in metrics:
            out["brier"] = w @ self.row_brier / self.n
        if set(metrics) - {"brier"}:
            counts = w @ self.columns
            k = self.n_classes
            tp, support, predicted = counts[:, :k], counts[:, k : 2 * k], counts[:, 2 * k : 3 * k]
            if "macro_recall" in metrics:
                recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
                out["macro_recall"] = recall.mean(axis=1)
            if "macro_f1" in metrics:
                out["macro_f1"] = f1_from_counts(tp, support, predicted).mean(axis=1)
            if "macro_auprc" in metrics:
                ap = np.column_stack([_average_precision(w, t, counts) for t in self.ranking])
                out["macro_auprc"] = _nanmean(ap, axis=1)
        return {metric: out[metric] for metric in metrics}

    def score(self, metric: str, w: np.ndarray) -> np.ndarray:
        """`metric` under each row of the weights `w` (shape (R, n)); shape (R,)."""
        return self.scores([metric], w)[metric]


def _ap_terms(positive: np.ndarray, score: np.ndarray, cells_left: int) -> tuple[Any, ...]:
    """What `_average_precision` needs of one class: its thresholds are the ends of the groups
    of tied scores, in decreasing order, and only those whose group holds a positive row add
    area (recall grows there only).

    ("matrix", A, m): A (n x 2m) says which rows each of those m thresholds draws (columns
    :m) and which of them are positives (m:), so that a product `w @ A` gives every
    resample's drawn weight and true-positive weight at every threshold; or, when there are
    many thresholds or A would exceed `cells_left` cells, ("sorted", order, ends, positive)
    for a cumulative pass in score order.
    """
    n = len(score)
    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    ends = np.flatnonzero(np.append(ranked[:-1] != ranked[1:], True))
    pos_sorted = positive[order]
    group = np.searchsorted(ends, np.arange(n))  # the tie group of each position in `order`
    kept = ends[np.unique(group[pos_sorted])]
    if len(kept) <= _AP_MATRIX_THRESHOLDS and n * len(kept) <= cells_left:
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        drawn = rank[:, None] <= kept[None, :]
        both = np.concatenate([drawn, drawn & positive[:, None]], axis=1)
        return ("matrix", both.astype(np.float64), len(kept))
    return ("sorted", order, ends, pos_sorted.astype(np.float64))


def _average_precision(w: np.ndarray, terms: tuple[Any, ...], counts: np.ndarray) -> np.ndarray:
    """Step-wise average precision of one class under each row of the weights `w` (R, n):
    sum over thresholds of (recall gained) x precision, ties one threshold; NaN without a
    positive. `counts` = `w @ _Scorer.columns`, where a matrix-route class finds its drawn and
    true-positive weights (exact: both routes give the same counts).

    Own code rather than scikit-learn's `average_precision_score(sample_weight=...)`: that is one
    call (one sort) per resample and class, R x K calls per method, where this shares one sort
    and one matrix product among all R resamples (tests/test_significance.py checks it equal).
    """
    if terms[0] == "matrix":
        _, offset, m = terms
        if m == 0:
            return np.full(len(w), np.nan)
        drawn, tp = counts[:, offset : offset + m], counts[:, offset + m : offset + 2 * m]
    else:
        _, order, ends, positive = terms
        wk = w[:, order]
        tp = np.cumsum(wk * positive, axis=1)[:, ends]
        drawn = np.cumsum(wk, axis=1)[:, ends]
    gained = np.diff(tp, axis=1, prepend=0.0)
    precision = np.divide(tp, drawn, out=np.zeros_like(tp), where=drawn > 0)
    total = tp[:, -1]
    area = (gained * precision).sum(axis=1)
    return np.divide(area, total, out=np.full_like(area, np.nan), where=total > 0)


def _check_metric(metric: str) -> None:
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"metric must be one of {', '.join(BOOTSTRAP_METRICS)}, got {metric!r}")


def resampled_metric(
    y_true: np.ndarray, proba: np.ndarray, metric: str, counts: np.ndarray | None = None
) -> np.ndarray:
    """`metric` of the predictions on each resample given by `counts` (see `resample_counts`).

    Args:
        y_true: integer labels, shape (n,).
        proba: class probabilities, shape (n, K).
        metric: one of `BOOTSTRAP_METRICS` (definitions: those of `evaluate`, see `_Scorer`).
        counts: (R, n) draw counts; None for the full set once.

    Returns:
        Shape (R,) (or (1,) without counts).

    Raises:
        ValueError: for an unknown metric.
    """
    _check_metric(metric)
    n = len(y_true)
    w = np.ones((1, n)) if counts is None else np.asarray(counts, dtype=np.float64)
    return _Scorer(y_true, proba).score(metric, w)


def metric_value(y_true: np.ndarray, proba: np.ndarray, metric: str) -> float:
    """`metric` on the full set (see `resampled_metric` for the definitions)."""
    return float(resampled_metric(y_true, proba, metric)[0])


def seed_replicates(
    y_true: np.ndarray,
    probas: dict[str, np.ndarray],
    metrics: Sequence[str],
    n_resamples: int,
    seed: Sequence[int],
) -> dict[tuple[str, str], np.ndarray]:
    """Every method's metrics on the same `n_resamples` row resamples of one seed's test set.

    Args:
        y_true: the seed's test labels, shape (n,).
        probas: method name -> its class probabilities on the same rows, shape (n, K).
        metrics: names from `BOOTSTRAP_METRICS`.
        n_resamples: number of row resamples.
        seed: entropy of the resampling; resample r is the same for every method.

    Returns:
        {(method, metric): shape (n_resamples,)}. Resamples are drawn in chunks (each from the
        generator seeded with `[*seed, chunk]`), so memory stays bounded on large test sets.
    """
    for metric in metrics:
        _check_metric(metric)
    n = len(y_true)
    scorers = {name: _Scorer(y_true, proba) for name, proba in probas.items()}
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    parts: dict[tuple[str, str], list[np.ndarray]] = {
        (name, m): [] for name in probas for m in metrics
    }
    for i, start in enumerate(range(0, n_resamples, chunk)):
        counts = resample_counts(n, min(chunk, n_resamples - start), [*seed, i])
        for name, scorer in scorers.items():
            for metric, values in scorer.scores(metrics, counts).items():
                parts[(name, metric)].append(values)
    return {key: np.concatenate(vals) for key, vals in parts.items()}


def combine_seed_replicates(
    reps_a: Sequence[np.ndarray],
    reps_b: Sequence[np.ndarray],
    n_boot: int,
    seed: int = 0,
) -> np.ndarray:
    """The hierarchical bootstrap replicates of mean-over-seeds(A - B).

    Args:
        reps_a: per seed, method A's metric on that seed's row resamples, shape (R,) with
            R >= n_boot * S (S = number of seeds); resample r of A and of B must use the same rows.
        reps_b: the same for method B, same seeds in the same order.
        n_boot: number of replicates.
        seed: seed of the generator that draws the seeds.

    Returns:
        Shape (n_boot,): replicate b draws S seeds with replacement; its j-th draw, seed s, takes
        resample b * S + j of seed s (so a seed drawn twice gets two different row resamples);
        the value is the mean of A - B over the draws (NaN draws, e.g. AUPRC without positives,
        are skipped).
    """
    n_seeds = len(reps_a)
    if n_seeds != len(reps_b) or n_seeds == 0:
        raise ValueError("reps_a and reps_b need the same, non-zero number of seeds")
    diffs = np.stack([np.asarray(a) - np.asarray(b) for a, b in zip(reps_a, reps_b, strict=True)])
    if diffs.shape[1] < n_boot * n_seeds:
        raise ValueError(f"need {n_boot * n_seeds} resamples per seed, got {diffs.shape[1]}")
    slots = np.random.default_rng(seed).integers(0, n_seeds, size=(n_boot, n_seeds))
    resample = np.arange(n_boot)[:, None] * n_seeds + np.arange(n_seeds)[None, :]
    return _nanmean(diffs[slots, resample], axis=1)


def hierarchical_bootstrap_ci(
    seeds: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    metric: str,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Percentile interval of mean-over-seeds(metric(A) - metric(B)) by the hierarchical bootstrap.

    Args:
        seeds: per seed, `(y_true, proba_a, proba_b)` on that seed's test rows (rows aligned).
        metric: one of `BOOTSTRAP_METRICS`.
        n_boot: number of replicates.
        seed: seed of the resampling.
        alpha: 1 - confidence level; the interval is the [alpha/2, 1 - alpha/2] quantiles.

    Returns:
        `{"diff": mean over seeds of metric(A) - metric(B) on each full test set, "ci_low",
        "ci_high", "n_boot", "n_test": test rows summed over seeds}`.
    """
    reps_a, reps_b, full = [], [], []
    for i, (y, pa, pb) in enumerate(seeds):
        reps = seed_replicates(y, {"a": pa, "b": pb}, [metric], n_boot * len(seeds), [seed, i])
        reps_a.append(reps[("a", metric)])
        reps_b.append(reps[("b", metric)])
        full.append(metric_value(y, pa, metric) - metric_value(y, pb, metric))
    boot = combine_seed_replicates(reps_a, reps_b, n_boot, seed)
    return bootstrap_summary(full, boot, alpha) | {"n_test": sum(len(s[0]) for s in seeds)}


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Mean over the non-NaN entries, NaN where there are none (without numpy's warning)."""
    defined = ~np.isnan(values)
    total = np.where(defined, values, 0.0).sum(axis=axis)
    count = defined.sum(axis=axis)
    return np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)


def bootstrap_summary(
    full_diffs: Sequence[float], boot: np.ndarray, alpha: float = 0.05
) -> dict[str, Any]:
    """`diff` (mean of the per-seed full-set differences), the percentile interval `ci_low`,
    `ci_high` of the replicates `boot`, and `n_boot` (replicates with a value)."""
    boot = np.asarray(boot, dtype=np.float64)
    boot = boot[~np.isnan(boot)]
    diffs = np.asarray(full_diffs, dtype=np.float64)
    diff = float(_nanmean(diffs)) if diffs.size else float("nan")
    if boot.size == 0:
        low = high = float("nan")
    else:
        low, high = (float(q) for q in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    return {"diff": diff, "ci_low": low, "ci_high": high, "n_boot": int(boot.size)}
