"""significance.csv and ranks.csv of one experiment: every pair of methods over seeds (SPEC 5.2).

- Methods are the run kinds with at least one completed run (losses and baselines), in table order.
- Headline metrics (`HEADLINE_METRICS`): macro F1, macro recall, macro AUPRC and Brier from each
  run's metrics.json `summary`, and the macro F1 under the validation-tuned decision rule
  (`tuned` -> `summary` -> `macro_f1`) when some run has it.
- Each pair (A, B), A after B in table order, is compared on the seeds both completed
  (difference = A - B; for Brier lower is better). `paired_seed_test` gives the t-based 95%
  interval, the paired t-test (from 3 seeds) and the Wilcoxon test (from 6 seeds); the p-values
  of all pairs of one metric form one family, Holm-adjusted. A difference is `significant` only
  when it was tested (>= 3 seeds) and its Holm-adjusted t-test p is below 0.05; `note` says why
  a value is missing.
- The hierarchical bootstrap interval (`lossbench.metrics.significance`) uses each seed's own test
  predictions (aligned by row_id), the same row resamples for every method of that seed. The
  tuned macro F1 is compared over seeds only (no test-set bootstrap of the tuned rule yet).
  On very large test sets (the full CICIDS2017 release) the number of replicates shrinks and
  AUPRC is not bootstrapped, to bound the cost (`_bootstrap_plan`; the note says so).
- ranks.csv: per metric and seed, the methods are ranked with `scipy.stats.rankdata` (rank 1 is
  the best; ties share the average rank) over the seeds where every method has a value, and the
  ranks are averaged over those seeds.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from lossbench.metrics.significance import (
    BOOTSTRAP_METRICS,
    MIN_TEST_SEEDS,
    bootstrap_summary,
    combine_seed_replicates,
    holm,
    metric_value,
    paired_seed_test,
    seed_replicates,
)
from lossbench.report.tables import ExperimentResults, RunRecord

__all__ = [
    "HEADLINE_METRICS",
    "LOWER_IS_BETTER_HEADLINE",
    "RANK_COLUMNS",
    "SIGNIFICANCE_COLUMNS",
    "headline_metrics",
    "ranks_from",
    "run_value",
    "significance_from",
]

# metric key -> label
HEADLINE_METRICS: dict[str, str] = {
    "macro_f1": "macro F1",
    "macro_recall": "macro recall",
    "macro_auprc": "macro AUPRC",
    "brier": "Brier",
    "tuned_macro_f1": "tuned macro F1",
}
LOWER_IS_BETTER_HEADLINE: frozenset[str] = frozenset({"brier"})
ALPHA = 0.05
# resampled row cells (rows x resamples, over the seeds) per method and metric; see _bootstrap_plan
BOOT_CELL_BUDGET = 300_000_000
AUPRC_CELL_BUDGET = 1_000_000_000
MIN_BOOT = 200

SIGNIFICANCE_COLUMNS = [
    "metric",
    "method_a",
    "method_b",
    "n_seeds",
    "mean_diff",
    "ci_low",
    "ci_high",
    "std_diff",
    "t",
    "p_value",
    "p_holm",
    "wilcoxon_p",
    "wilcoxon_p_holm",
    "boot_diff",
    "boot_ci_low",
    "boot_ci_high",
    "n_boot",
    "n_test",
    "significant",
    "better",
    "note",
]
RANK_COLUMNS = ["metric", "method", "kind", "avg_rank", "n_seeds", "mean", "note"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(float(value)) else float(value)


def run_value(run: RunRecord, metric: str) -> float | None:
    """A headline metric of one run, or None when the run does not have it."""
    if metric == "tuned_macro_f1":
        tuned = run.metrics.get("tuned")
        if not isinstance(tuned, dict):
            return None
        for source in (tuned.get("summary"), tuned.get("test"), tuned):
            if isinstance(source, dict) and _number(source.get("macro_f1")) is not None:
                return _number(source["macro_f1"])
        return None
    value = _number(run.summary.get(metric))
    if value is None and metric == "brier":  # metrics.json "calibration" -> "raw" (SPEC 6)
        raw = (run.metrics.get("calibration") or {}).get("raw")
        value = _number(raw.get("brier")) if isinstance(raw, dict) else None
    return value


def headline_metrics(results: ExperimentResults) -> list[str]:
    """The headline metrics that at least one completed run has, in `HEADLINE_METRICS` order."""
    ok = results.ok_runs()
    return [m for m in HEADLINE_METRICS if any(run_value(r, m) is not None for r in ok)]


def _methods(results: ExperimentResults) -> list[str]:
    return [k for k in results.kinds if results.ok_runs(k)]


def _seed_values(results: ExperimentResults, kind: str, metric: str) -> dict[int | None, float]:
    values = {r.seed: run_value(r, metric) for r in results.ok_runs(kind)}
    return {s: v for s, v in values.items() if v is not None}


# ------------------------------------------------------------------------------------------------
# significance.csv


def _test_predictions(
    results: ExperimentResults, methods: list[str]
) -> dict[int | None, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Per seed: the test labels and each method's probabilities, rows ordered by row_id.

    The first method with predictions fixes the seed's rows; a method whose rows or labels differ
    (another split) is left out of that seed's bootstrap.
    """
    by_seed: dict[int | None, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = {}
    for kind in methods:
        for run in results.ok_runs(kind):
            pred = run.predictions()
            if pred is None or pred.empty:
                continue
            pred = pred.sort_values("row_id", kind="stable")
            pcols = sorted(
                (c for c in pred.columns if re.fullmatch(r"p_\d+", c)), key=lambda c: int(c[2:])
            )
            rows = pred["row_id"].to_numpy()
            y = pred["y_true"].to_numpy(np.int64)
            proba = pred[pcols].to_numpy(np.float64)
            if run.seed not in by_seed:
                by_seed[run.seed] = (rows, y, {kind: proba})
                continue
            rows0, y0, probas = by_seed[run.seed]
            if np.array_equal(rows, rows0) and np.array_equal(y, y0):
                if proba.shape == next(iter(probas.values())).shape:
                    probas[kind] = proba
    return {s: (y, probas) for s, (_, y, probas) in by_seed.items()}


def _bootstrap_plan(
    preds: dict[int | None, tuple[np.ndarray, dict[str, np.ndarray]]],
    n_boot: int,
    metrics: list[str],
) -> tuple[int, list[str], dict[str, str]]:
    """The replicates and metrics that fit the cost budget, and a note per metric affected.

    A method's resampling touches `n_boot * S` resamples of every seed's rows (S seeds): above
    `BOOT_CELL_BUDGET` cells n_boot shrinks (to no fewer than `MIN_BOOT`), and AUPRC, which costs
    a sort-ordered pass per class, is left out above `AUPRC_CELL_BUDGET` cells x classes.
    """
    n_seeds = len(preds)
    rows = sum(len(y) for y, _ in preds.values())
    notes: dict[str, str] = {}
    used = n_boot
    if n_boot * n_seeds * rows > BOOT_CELL_BUDGET:
        used = max(min(n_boot, MIN_BOOT), BOOT_CELL_BUDGET // (n_seeds * rows))
        if used < n_boot:
            for m in metrics:
                notes[m] = f"bootstrap: {used} replicates, not {n_boot}, for {rows} test rows"
    n_classes = max(
        (p.shape[1] for _, probas in preds.values() for p in probas.values()), default=0
    )
    if "macro_auprc" in metrics and used * n_seeds * rows * n_classes > AUPRC_CELL_BUDGET:
        metrics = [m for m in metrics if m != "macro_auprc"]
        notes["macro_auprc"] = f"no bootstrap: AUPRC resampling of {rows} test rows is too costly"
    return used, metrics, notes


def _bootstrap_rows(
    results: ExperimentResults,
    methods: list[str],
    metrics: list[str],
    n_boot: int,
    seed: int,
    alpha: float,
) -> tuple[dict[tuple[str, str, str], dict[str, Any]], dict[str, str]]:
    """{(metric, A, B): hierarchical bootstrap summary} for every pair with shared predictions,
    and the notes of `_bootstrap_plan`."""
    boot_metrics = [m for m in metrics if m in BOOTSTRAP_METRICS]
    preds = _test_predictions(results, methods) if boot_metrics and n_boot > 0 else {}
    n_boot, boot_metrics, plan_notes = _bootstrap_plan(preds, n_boot, boot_metrics)
    n_resamples = n_boot * max(len(preds), 1)
    reps: dict[int | None, dict[tuple[str, str], np.ndarray]] = {}
    full: dict[int | None, dict[tuple[str, str], float]] = {}
    for s, (y, probas) in preds.items():
        entropy = [seed, (s or 0) % 2**32]
        reps[s] = seed_replicates(y, probas, boot_metrics, n_resamples, entropy)
        full[s] = {
            (name, metric): metric_value(y, proba, metric)
            for name, proba in probas.items()
            for metric in boot_metrics
        }
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for i, b in enumerate(methods):
        for a in methods[i + 1 :]:
            seeds = [s for s in preds if a in preds[s][1] and b in preds[s][1]]
            if not seeds:
                continue
            n_test = sum(len(preds[s][0]) for s in seeds)
            for metric in boot_metrics:
                boot = combine_seed_replicates(
                    [reps[s][(a, metric)] for s in seeds],
                    [reps[s][(b, metric)] for s in seeds],
                    n_boot,
                    seed,
                )
                diffs = [full[s][(a, metric)] - full[s][(b, metric)] for s in seeds]
                out[(metric, a, b)] = bootstrap_summary(diffs, boot, alpha) | {"n_test": n_test}
    return out, plan_notes


def significance_from(
    results: ExperimentResults, n_boot: int = 1000, seed: int = 0, alpha: float = ALPHA
) -> pd.DataFrame:
    """significance.csv: one row per headline metric and pair of methods (see the module doc).

    Columns: metric, method_a, method_b, n_seeds (paired seeds), mean_diff (A - B) with its
    t-based interval ci_low/ci_high and std_diff, t and p_value of the paired t-test, p_holm,
    wilcoxon_p and wilcoxon_p_holm, boot_diff/boot_ci_low/boot_ci_high/n_boot/n_test of the
    hierarchical bootstrap, significant (tested and p_holm < alpha), better (the better method
    when significant) and note.
    """
    methods = _methods(results)
    metrics = headline_metrics(results)
    boots, boot_notes = _bootstrap_rows(results, methods, metrics, n_boot, seed, alpha)
    rows: list[dict[str, Any]] = []
    for metric in metrics:
        values = {k: _seed_values(results, k, metric) for k in methods}
        family: list[dict[str, Any]] = []
        for i, b in enumerate(methods):
            for a in methods[i + 1 :]:
                common = [s for s in values[a] if s in values[b]]
                test = paired_seed_test(
                    [values[a][s] for s in common], [values[b][s] for s in common], alpha
                )
                row: dict[str, Any] = dict.fromkeys(SIGNIFICANCE_COLUMNS, math.nan)
                notes = [test["note"]] if test["note"] else []
                row.update(
                    metric=metric,
                    method_a=a,
                    method_b=b,
                    n_seeds=test["n"],
                    mean_diff=test["mean_diff"],
                    ci_low=test["ci_low"],
                    ci_high=test["ci_high"],
                    std_diff=test["std_diff"],
                    t=test["t_stat"],
                    p_value=test["p_value"],
                    wilcoxon_p=test["wilcoxon_p"],
                )
                boot = boots.get((metric, a, b))
                if boot is not None:
                    row.update(
                        boot_diff=boot["diff"],
                        boot_ci_low=boot["ci_low"],
                        boot_ci_high=boot["ci_high"],
                        n_boot=boot["n_boot"],
                        n_test=boot["n_test"],
                    )
                elif metric not in BOOTSTRAP_METRICS:
                    notes.append("no bootstrap: the tuned rule is compared over seeds only")
                elif metric not in boot_notes:
                    notes.append("no bootstrap: no test predictions shared by both methods")
                if metric in boot_notes:
                    notes.append(boot_notes[metric])
                row["note"] = "; ".join(notes)
                family.append(row)
        p_holm = holm([r["p_value"] for r in family])
        w_holm = holm([r["wilcoxon_p"] for r in family])
        for row, p, w in zip(family, p_holm, w_holm, strict=True):
            row["p_holm"], row["wilcoxon_p_holm"] = p, w
            row["significant"] = bool(
                row["n_seeds"] >= MIN_TEST_SEEDS and not math.isnan(p) and p < alpha
            )
            lower = metric in LOWER_IS_BETTER_HEADLINE
            a_better = (row["mean_diff"] < 0) if lower else (row["mean_diff"] > 0)
            if row["significant"]:
                row["better"] = row["method_a"] if a_better else row["method_b"]
            else:
                row["better"] = ""
        rows.extend(family)
    table = pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)
    for col in ("n_seeds", "n_boot", "n_test"):  # counts stay integers next to NaN rows
        table[col] = pd.to_numeric(table[col]).astype("Int64")
    table["significant"] = table["significant"].astype(bool)
    return table


# ------------------------------------------------------------------------------------------------
# ranks.csv


def ranks_from(results: ExperimentResults) -> pd.DataFrame:
    """ranks.csv: the average rank of each method per headline metric over seeds (module doc).

    Columns: metric, method, kind, avg_rank (1 = best), n_seeds (seeds ranked: those where every
    method has a value), mean (the metric's mean over those seeds) and note.
    """
    methods = _methods(results)
    rows: list[dict[str, Any]] = []
    for metric in headline_metrics(results):
        values = {k: _seed_values(results, k, metric) for k in methods}
        all_seeds = sorted({s for v in values.values() for s in v}, key=lambda s: (s is None, s))
        blocks = [s for s in all_seeds if all(s in values[k] for k in methods)]
        note = ""
        if len(blocks) < len(all_seeds):
            left = [s for s in all_seeds if s not in blocks]
            note = f"seeds {', '.join(map(str, left))} left out: not every method has them"
        if len(methods) < 2:
            note = "one method only: nothing to rank"
        matrix = np.array([[values[k][s] for k in methods] for s in blocks], dtype=np.float64)
        sign = 1.0 if metric in LOWER_IS_BETTER_HEADLINE else -1.0
        ranks = (
            rankdata(sign * matrix, axis=1).mean(axis=0)
            if blocks
            else np.full(len(methods), np.nan)
        )
        for j, kind in enumerate(methods):
            rows.append(
                {
                    "metric": metric,
                    "method": kind,
                    "kind": results.kind_type(kind),
                    "avg_rank": float(ranks[j]),
                    "n_seeds": len(blocks),
                    "mean": float(matrix[:, j].mean()) if blocks else math.nan,
                    "note": note,
                }
            )
    return pd.DataFrame(rows, columns=RANK_COLUMNS)
