"""Issue 33: evaluation an intrusion-detection reviewer accepts (baselines that show how hard the
task is, head/medium/tail classes, binary task, leak-free splits)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score


def _threshold_csv(path: Path, n: int = 400, seed: int = 0) -> Path:
    """Three classes (70/20/10%) decided by thresholds on f2 alone; f0, f1, f3 are noise."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.7, 0.2, 0.1])
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=[f"f{i}" for i in range(4)])
    frame["f2"] = y * 10.0 + rng.random(n)  # class k in [10k, 10k + 1)
    frame["Label"] = np.array(["benign", "dos", "scan"])[y]
    frame.to_csv(path, index=False)
    return path


def _exp(out: Path) -> Path:
    (exp,) = [p for p in out.iterdir() if (p / "experiment.json").exists()]
    return exp


@pytest.fixture
def baseline_exp(cli, tmp_path):
    csv = _threshold_csv(tmp_path / "t.csv")
    res = cli(
        "compare", "--data", csv, "--losses", "ce", "--baselines", "prior,stump",
        "--seeds", "0", "--epochs", "1", "--model", "mlp", "--device", "cpu",
        "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert res.code == 0, res.err
    return _exp(tmp_path / "out")


def test_prior_and_stump_baselines_reach_tables_significance_and_report(baseline_exp):
    exp = baseline_exp
    summary = exp / "summary"
    average = pd.read_csv(summary / "table_average.csv")
    assert average["loss"].tolist() == ["ce", "prior", "stump"]
    sig = pd.read_csv(summary / "significance.csv")
    assert {"prior", "stump"} <= set(sig["method_a"]) | set(sig["method_b"])
    page = (summary / "report.html").read_text()
    assert "How hard the task is" in page and "F1 − stump" in page

    # the stump found the one informative feature and separates the classes on it
    stump = json.loads((exp / "runs" / "stump_seed0" / "metrics.json").read_text())
    assert stump["learned_params"]["feature"] == "f2"
    pred = pd.read_parquet(exp / "runs" / "stump_seed0" / "predictions.parquet")
    proba = pred[[c for c in pred.columns if c.startswith("p_")]].to_numpy()
    y_hat = proba.argmax(axis=1)
    # a depth-1 tree has two leaves: it separates the majority from the rest at best
    assert f1_score(pred["y_true"], y_hat, average="macro") > 0.5
    row = average.set_index("loss").loc["stump"]
    assert row["macro_f1_mean"] == pytest.approx(f1_score(pred["y_true"], y_hat, average="macro"))

    # the prior predicts the training class shares for every row
    prior = json.loads((exp / "runs" / "prior_seed0" / "metrics.json").read_text())
    counts = np.asarray(prior["train_class_counts"], dtype=float)
    pred = pd.read_parquet(exp / "runs" / "prior_seed0" / "predictions.parquet")
    proba = pred[[c for c in pred.columns if c.startswith("p_")]].to_numpy()
    np.testing.assert_allclose(proba, np.tile(counts / counts.sum(), (len(pred), 1)))
