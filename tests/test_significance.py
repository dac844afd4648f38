"""Statistics over seeds (issue 12, SPEC 5.2): paired tests, Holm, the hierarchical bootstrap,
significance.csv and ranks.csv. Expected values come from scipy, statsmodels and scikit-learn."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, f1_score, recall_score
from statsmodels.stats.multitest import multipletests

from lossbench.metrics.significance import (
    combine_seed_replicates,
    hierarchical_bootstrap_ci,
    holm,
    metric_value,
    paired_seed_test,
    resample_counts,
    resampled_metric,
    seed_replicates,
)
from lossbench.report import build_summary

K = 3
FAST = ("--device", "cpu", "--epochs", "2", "--model", "mlp")

# ------------------------------------------------------------------------------------------------
# paired tests over seeds and Holm

A6 = [0.81, 0.84, 0.79, 0.86, 0.82, 0.80]
B6 = [0.78, 0.80, 0.80, 0.81, 0.79, 0.77]


def test_paired_t_test_and_interval_equal_scipy():
    for n in (3, 4, 6):
        a, b = np.array(A6[:n]), np.array(B6[:n])
        out = paired_seed_test(a, b)
        ref = stats.ttest_rel(a, b)
        d = a - b
        assert out["n"] == n and out["tested"]
        assert out["t_stat"] == pytest.approx(ref.statistic, rel=1e-12)
        assert out["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
        half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)
        assert out["ci_low"] == pytest.approx(d.mean() - half, abs=1e-12)
        assert out["ci_high"] == pytest.approx(d.mean() + half, abs=1e-12)
        low, high = stats.t.interval(0.95, n - 1, loc=d.mean(), scale=stats.sem(d))
        assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high), abs=1e-12)


def test_wilcoxon_only_from_six_seeds_and_equal_to_scipy():
    out = paired_seed_test(A6, B6)
    assert out["wilcoxon_p"] == pytest.approx(stats.wilcoxon(A6, B6).pvalue, rel=1e-12)
    five = paired_seed_test(A6[:5], B6[:5])
    # with 5 pairs the smallest two-sided exact p is 2 / 2**5 = 0.0625: never reported
    assert stats.wilcoxon([1, 2, 3, 4, 5], [0] * 5).pvalue == pytest.approx(0.0625)
    assert math.isnan(five["wilcoxon_p"]) and "at least 6" in five["note"]
    assert five["tested"]  # the t-test is there from 3 seeds


def test_fewer_than_three_seeds_is_no_test():
    for n in (1, 2):
        out = paired_seed_test(A6[:n], B6[:n])
        assert not out["tested"] and math.isnan(out["p_value"]) and math.isnan(out["t_stat"])
        assert "no test possible" in out["note"] and "at least 3" in out["note"]
        assert out["mean_diff"] == pytest.approx(np.mean(np.subtract(A6[:n], B6[:n])))
    assert math.isnan(paired_seed_test([0.9], [0.8])["ci_low"])
    exact = paired_seed_test([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])  # differences exactly 0.5
    assert not exact["tested"] and "zero variance" in exact["note"]
    with pytest.raises(ValueError, match="equal lengths"):
        paired_seed_test([1, 2], [1])


@pytest.mark.parametrize(
    "pvalues",
    [
        [0.01, 0.04, 0.03, 0.005],
        [0.2, 0.2, 0.01, 0.5, 0.049, 0.04],  # ties
        [0.001],
        [0.9, 0.8, 0.7],  # capped at 1
        list(np.random.default_rng(0).uniform(0, 0.2, 28)),
    ],
)
def test_holm_equals_statsmodels(pvalues):
    expected = multipletests(pvalues, method="holm")[1]
    np.testing.assert_allclose(holm(pvalues), expected, rtol=0, atol=1e-12)


def test_holm_leaves_nan_out_of_the_family():
    p = [0.01, np.nan, 0.04, 0.03]
    out = holm(p)
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], multipletests([0.01, 0.04, 0.03], method="holm")[1])
    assert np.isnan(holm([np.nan, np.nan])).all()


# ------------------------------------------------------------------------------------------------
# the hierarchical bootstrap


def _proba(seed: int, y: np.ndarray, skill: float, k: int = K) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(y)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), y] += rng.uniform(0, skill, n)
    proba /= proba.sum(axis=1, keepdims=True)
    proba[:10] = np.round(proba[:10], 1)  # some tied scores
    return proba


def _labels(seed: int, n: int, k: int = K) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([np.arange(k), rng.integers(0, k, n - k)])


def _case(seed: int, n: int, k: int = K, skill: float = 0.6):
    y = _labels(seed, n, k)
    return y, _proba(seed + 1, y, skill, k)


def _sk(metric: str, y: np.ndarray, proba: np.ndarray, k: int = K) -> float:
    pred = proba.argmax(axis=1)
    if metric == "macro_f1":
        return f1_score(y, pred, labels=range(k), average="macro", zero_division=0)
    if metric == "macro_recall":
        return recall_score(y, pred, labels=range(k), average="macro", zero_division=0)
    if metric == "macro_auprc":
        present = [c for c in range(k) if (y == c).any()]
        return float(np.mean([average_precision_score(y == c, proba[:, c]) for c in present]))
    return float(np.mean(np.sum((np.eye(k)[y] - proba) ** 2, axis=1)))


@pytest.mark.parametrize("metric", ["macro_f1", "macro_recall", "macro_auprc", "brier"])
def test_resampled_metrics_equal_sklearn_on_the_drawn_rows(metric):
    y, proba = _case(0, 80)
    assert metric_value(y, proba, metric) == pytest.approx(_sk(metric, y, proba), abs=1e-12)
    counts = resample_counts(len(y), 5, 11)
    assert (counts.sum(axis=1) == len(y)).all()
    values = resampled_metric(y, proba, metric, counts)
    for r in range(5):
        rows = np.repeat(np.arange(len(y)), counts[r].astype(int))
        assert values[r] == pytest.approx(_sk(metric, y[rows], proba[rows]), abs=1e-12)


def test_bootstrap_resamples_within_seeds_never_pooled():
    """Seed 0 (40 rows): A beats B by exactly 1 - 1/K in Brier on every row; seed 1 (100 rows):
    A equals B. Resampling inside each seed, every replicate is the mean over the drawn seeds of
    a per-seed constant, so it is -(1-1/K), -(1-1/K)/2 or 0; pooling the 140 rows would give
    replicates in between (and a point estimate weighted 40:100)."""
    c = 1 - 1 / K
    y0 = np.arange(40) % K
    perfect, uniform = np.eye(K)[y0], np.full((40, K), 1 / K)
    y1, p1 = _case(1, 100)
    seeds = [(y0, perfect, uniform), (y1, p1, p1.copy())]
    reps_a, reps_b = [], []
    for i, (y, pa, pb) in enumerate(seeds):
        reps = seed_replicates(y, {"a": pa, "b": pb}, ["brier"], 400 * 2, [0, i])
        reps_a.append(reps[("a", "brier")])
        reps_b.append(reps[("b", "brier")])
    boot = combine_seed_replicates(reps_a, reps_b, 400, seed=5)
    allowed = np.array([-c, -c / 2, 0.0])
    nearest = np.abs(boot[:, None] - allowed[None, :]).min(axis=1)
    assert nearest.max() < 1e-12
    assert set(np.round(boot, 9)) == set(np.round(allowed, 9))  # the seeds are resampled too
    out = hierarchical_bootstrap_ci(seeds, "brier", n_boot=400, seed=5)
    assert out["diff"] == pytest.approx(-c / 2, abs=1e-12)  # mean over seeds, not pooled rows
    assert out["ci_low"] == pytest.approx(-c) and out["ci_high"] == pytest.approx(0.0)
    assert out["n_test"] == 140


def test_bootstrap_point_is_the_mean_of_per_seed_differences():
    seeds = []
    for s, n in enumerate((30, 90)):
        y = _labels(10 + s, n)
        seeds.append((y, _proba(20 + s, y, 1.0 + 2 * s), _proba(30 + s, y, 0.2)))
    per_seed = [_sk("macro_f1", y, a) - _sk("macro_f1", y, b) for y, a, b in seeds]
    y_all = np.concatenate([y for y, _, _ in seeds])
    pooled = _sk("macro_f1", y_all, np.concatenate([a for _, a, _ in seeds])) - _sk(
        "macro_f1", y_all, np.concatenate([b for _, _, b in seeds])
    )
    out = hierarchical_bootstrap_ci(seeds, "macro_f1", n_boot=300, seed=1)
    assert out["diff"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert abs(out["diff"] - pooled) > 1e-3
    assert out["ci_low"] <= out["diff"] <= out["ci_high"]
    same = hierarchical_bootstrap_ci([(y, a, a.copy()) for y, a, _ in seeds], "macro_f1", 50)
    assert (same["diff"], same["ci_low"], same["ci_high"]) == (0.0, 0.0, 0.0)


def test_seed_replicates_do_not_depend_on_chunking(monkeypatch):
    from lossbench.metrics import significance

    y, pa = _case(3, 60)
    metrics = ["macro_f1", "macro_auprc", "brier"]
    whole = seed_replicates(y, {"a": pa}, metrics, 40, [1, 2])
    monkeypatch.setattr(significance, "_CHUNK_ELEMENTS", 7 * len(y))
    chunked = seed_replicates(y, {"a": pa}, metrics, 40, [1, 2])
    # chunks draw from their own generators: same sizes and definitions, other rows
    for key in whole:
        assert chunked[key].shape == whole[key].shape == (40,)
    with pytest.raises(ValueError, match="metric"):
        seed_replicates(y, {"a": pa}, ["accuracy"], 10, [0])


# ------------------------------------------------------------------------------------------------
# significance.csv and ranks.csv on a hand-written experiment


def _write_run(runs: Path, kind: str, seed: int, y, row_id, proba, extra=None) -> dict:
    d = runs / f"{kind}_seed{seed}"
    d.mkdir(parents=True)
    summary = {m: _sk(m, y, proba) for m in ("macro_f1", "macro_recall", "macro_auprc", "brier")}
    metrics = {
        "status": "ok",
        "name": d.name,
        "loss": kind,
        "kind": "baseline" if kind == "rf" else "loss",
        "seed": seed,
        "class_names": [str(c) for c in range(K)],
        "summary": summary,
        **(extra or {}),
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    preds = pd.DataFrame({"row_id": row_id, "y_true": y})
    for k in range(K):
        preds[f"p_{k}"] = proba[:, k]
    preds.sample(frac=1.0, random_state=seed).to_parquet(d / "predictions.parquet", index=False)
    (d / "DONE").write_text("done\n")
    return metrics


def _experiment(root: Path, seeds: list[int], methods=("ce", "focal", "rf"), tuned=False) -> Path:
    """Per seed its own test rows (other ids, other sizes); focal is clearly better than ce."""
    exp = root / "exp"
    (exp / "runs").mkdir(parents=True)
    meta = {"name": "exp", "losses": ["ce", "focal"], "baselines": ["rf"], "seeds": seeds}
    (exp / "experiment.json").write_text(json.dumps(meta))
    for s in seeds:
        n = 60 + 10 * s
        y = _labels(100 + s, n)
        row_id = np.arange(n) + 1000 * s
        for j, kind in enumerate(methods):
            skill = {"ce": 0.3, "focal": 3.0}.get(kind, 1.0)
            proba = _proba(200 + 10 * s + j, y, skill)
            extra = (
                {"tuned": {"summary": {"macro_f1": 0.5 + 0.1 * j + 0.01 * ((s * (j + 2)) % 5)}}}
                if tuned
                else {}
            )
            _write_run(exp / "runs", kind, s, y, row_id, proba, extra)
    return exp


def _metric_values(exp: Path, kind: str, metric: str, seeds: list[int]) -> np.ndarray:
    out = []
    for s in seeds:
        m = json.loads((exp / "runs" / f"{kind}_seed{s}" / "metrics.json").read_text())
        out.append(m["tuned"]["summary"]["macro_f1"] if metric == "tuned" else m["summary"][metric])
    return np.array(out)


def test_significance_csv_every_pair_holm_and_hierarchical_bootstrap(tmp_path):
    seeds = [0, 1, 2, 3]
    exp = _experiment(tmp_path, seeds, tuned=True)
    build_summary(exp, n_boot=200)
    sig = pd.read_csv(exp / "summary" / "significance.csv", keep_default_na=False, na_values=[""])
    metrics = ["macro_f1", "macro_recall", "macro_auprc", "brier", "tuned_macro_f1"]
    pairs = [("focal", "ce"), ("rf", "ce"), ("rf", "focal")]
    got = list(zip(sig["metric"], sig["method_a"], sig["method_b"], strict=True))
    assert got == [(m, a, b) for m in metrics for a, b in pairs]
    for metric in metrics:
        rows = sig[sig["metric"] == metric].reset_index(drop=True)
        key = "tuned" if metric == "tuned_macro_f1" else metric
        ps = []
        for i, (a, b) in enumerate(pairs):
            va, vb = _metric_values(exp, a, key, seeds), _metric_values(exp, b, key, seeds)
            ref = stats.ttest_rel(va, vb)
            assert rows.loc[i, "n_seeds"] == 4
            assert rows.loc[i, "mean_diff"] == pytest.approx(np.mean(va - vb), abs=1e-12)
            assert rows.loc[i, "p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
            ps.append(ref.pvalue)
            if metric == "tuned_macro_f1":
                assert np.isnan(rows.loc[i, "boot_diff"]) and "no bootstrap" in rows.loc[i, "note"]
            else:  # the bootstrap's point is the mean of the per-seed differences
                assert rows.loc[i, "boot_diff"] == pytest.approx(np.mean(va - vb), abs=1e-6)
                assert rows.loc[i, "boot_ci_low"] <= rows.loc[i, "boot_ci_high"]
                assert rows.loc[i, "n_test"] == sum(60 + 10 * s for s in seeds)
        expected = multipletests(ps, method="holm")[1]
        np.testing.assert_allclose(rows["p_holm"], expected, atol=1e-12)
        assert list(rows["significant"]) == [bool(p < 0.05) for p in expected]
    f1 = sig[(sig["metric"] == "macro_f1")].set_index(["method_a", "method_b"])
    assert bool(f1.loc[("focal", "ce"), "significant"])  # the test can say yes
    assert f1.loc[("focal", "ce"), "better"] == "focal"
    assert np.isnan(f1.loc[("focal", "ce"), "wilcoxon_p"])  # 4 seeds: no Wilcoxon
    brier = sig[(sig["metric"] == "brier")].set_index(["method_a", "method_b"])
    if brier.loc[("focal", "ce"), "significant"]:  # lower Brier is better
        assert brier.loc[("focal", "ce"), "mean_diff"] < 0
        assert brier.loc[("focal", "ce"), "better"] == "focal"


def test_two_seeds_mark_nothing_and_say_why(tmp_path):
    exp = _experiment(tmp_path, [0, 1])
    build_summary(exp, n_boot=50)
    sig = pd.read_csv(exp / "summary" / "significance.csv")
    assert not sig["significant"].any() and sig["p_value"].isna().all()
    assert sig["p_holm"].isna().all()
    assert sig["note"].str.contains("no test possible: 2 seed").all()
    html = (exp / "summary" / "report.html").read_text()
    assert "No test possible" in html and 'class="sig"' not in html


def test_ranks_csv_equals_rankdata_over_seeds(tmp_path):
    seeds = [0, 1, 2]
    exp = _experiment(tmp_path, seeds)
    build_summary(exp, n_boot=20)
    ranks = pd.read_csv(exp / "summary" / "ranks.csv")
    methods = ["ce", "focal", "rf"]
    for metric in ("macro_f1", "macro_recall", "macro_auprc", "brier"):
        matrix = np.column_stack([_metric_values(exp, k, metric, seeds) for k in methods])
        sign = 1 if metric == "brier" else -1  # rank 1 = best
        expected = stats.rankdata(sign * matrix, axis=1).mean(axis=0)
        got = ranks[ranks["metric"] == metric].set_index("method").loc[methods]
        np.testing.assert_allclose(got["avg_rank"], expected, atol=1e-12)
        np.testing.assert_allclose(got["mean"], matrix.mean(axis=0), atol=1e-12)
        assert (got["n_seeds"] == 3).all()
    assert "tuned_macro_f1" not in set(ranks["metric"])  # no run has it
    html = (exp / "summary" / "report.html").read_text()
    assert "Average rank over seeds" in html


def test_ranks_leave_out_seeds_where_a_method_is_missing(tmp_path):
    exp = _experiment(tmp_path, [0, 1, 2])
    import shutil

    shutil.rmtree(exp / "runs" / "rf_seed2")
    build_summary(exp, n_boot=20)
    ranks = pd.read_csv(exp / "summary" / "ranks.csv")
    assert (ranks["n_seeds"] == 2).all() and ranks["note"].str.contains("seeds 2 left out").all()
    sig = pd.read_csv(exp / "summary" / "significance.csv")
    pair = sig[(sig["method_a"] == "rf") & (sig["method_b"] == "ce")]
    assert (pair["n_seeds"] == 2).all() and not pair["significant"].any()


# ------------------------------------------------------------------------------------------------
# a real compare with one seed


def test_one_seed_compare_marks_nothing_significant(cli, tmp_path):
    res = cli("compare", "--out", tmp_path, *FAST, "--losses", "ce,focal", "--seeds", "0", "-q")
    assert res.code == 0, res.err
    (exp,) = [p for p in tmp_path.iterdir() if (p / "experiment.json").is_file()]
    sig = pd.read_csv(exp / "summary" / "significance.csv")
    assert set(sig["metric"]) >= {"macro_f1", "macro_recall", "macro_auprc", "brier"}
    assert (sig["n_seeds"] == 1).all() and not sig["significant"].any()
    assert sig["note"].str.contains("no test possible: 1 seed").all()
    html = (exp / "summary" / "report.html").read_text()
    assert "No test possible" in html and 'class="sig"' not in html
    assert (exp / "summary" / "ranks.csv").is_file()


def test_brier_read_from_metrics_calibration_raw_when_summary_lacks_it(tmp_path):
    exp = _experiment(tmp_path, [0, 1, 2])
    expected = {}
    for path in (exp / "runs").glob("*/metrics.json"):
        m = json.loads(path.read_text())
        brier = m["summary"].pop("brier")
        m["calibration"] = {"raw": {"brier": brier}, "temperature": {"brier": 0.0}}
        expected[(m["loss"], m["seed"])] = brier
        path.write_text(json.dumps(m))
    build_summary(exp, n_boot=20)
    ranks = pd.read_csv(exp / "summary" / "ranks.csv")
    got = ranks[ranks["metric"] == "brier"].set_index("method")["mean"]
    for kind in ("ce", "focal", "rf"):
        assert got[kind] == pytest.approx(np.mean([expected[(kind, s)] for s in (0, 1, 2)]))


def test_large_test_sets_get_fewer_replicates_and_no_auprc_bootstrap(tmp_path, monkeypatch):
    from lossbench.report import stats as report_stats

    exp = _experiment(tmp_path, [0, 1, 2])
    rows = 60 + 70 + 80
    monkeypatch.setattr(report_stats, "BOOT_CELL_BUDGET", 3 * rows * 30)  # room for 30
    monkeypatch.setattr(report_stats, "MIN_BOOT", 20)
    monkeypatch.setattr(report_stats, "AUPRC_CELL_BUDGET", 3 * rows * 30 * K - 1)
    build_summary(exp, n_boot=500)
    sig = pd.read_csv(exp / "summary" / "significance.csv").set_index("metric")
    assert (sig.loc["macro_f1", "n_boot"] == 30).all()
    assert sig.loc["macro_f1", "note"].str.contains("30 replicates, not 500").all()
    assert sig.loc["macro_auprc", "boot_diff"].isna().all()
    assert sig.loc["macro_auprc", "note"].str.contains("AUPRC resampling").all()
    assert sig.loc["brier", "boot_ci_low"].notna().all()
