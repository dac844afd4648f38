"""Issue 33: evaluation an intrusion-detection reviewer accepts (baselines that show how hard the
task is, head/medium/tail classes, binary task, leak-free splits)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, recall_score

CLASSES = ("benign", "dos", "scan", "bot")


def _threshold_csv(path: Path, seed: int = 0) -> Path:
    """Four classes of 800, 140, 52 and 8 rows (head, head, medium, tail), decided by thresholds
    on f2 alone; f0, f1, f3 are noise."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(4), [800, 140, 52, 8]))
    frame = pd.DataFrame(rng.normal(size=(len(y), 4)), columns=[f"f{i}" for i in range(4)])
    frame["f2"] = y * 10.0 + rng.random(len(y))  # class k in [10k, 10k + 1)
    frame["Label"] = np.array(CLASSES)[y]
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
    stump_f1 = f1_score(pred["y_true"], y_hat, average="macro")
    f1 = average.set_index("loss")["macro_f1_mean"]
    assert f1["stump"] == pytest.approx(stump_f1)
    assert f1["stump"] > f1["prior"] + 0.2  # two leaves: benign against the rest at least

    # the prior predicts the training class shares for every row
    prior = json.loads((exp / "runs" / "prior_seed0" / "metrics.json").read_text())
    counts = np.asarray(prior["train_class_counts"], dtype=float)
    pred = pd.read_parquet(exp / "runs" / "prior_seed0" / "predictions.parquet")
    proba = pred[[c for c in pred.columns if c.startswith("p_")]].to_numpy()
    np.testing.assert_allclose(proba, np.tile(counts / counts.sum(), (len(pred), 1)))


def test_table_class_groups_scores_head_medium_and_tail_classes(baseline_exp):
    """Groups from the training shares (>= 10% head, < 1% tail), each group's macro-F1 and
    macro recall recomputed with scikit-learn from predictions.parquet."""
    exp = baseline_exp
    table = pd.read_csv(exp / "summary" / "table_class_groups.csv")
    assert table["group"].drop_duplicates().tolist() == ["head", "medium", "tail"]
    assert set(table["head_share"]) == {0.1} and set(table["tail_share"]) == {0.01}
    for run in ("ce_seed0", "stump_seed0"):
        metrics = json.loads((exp / "runs" / run / "metrics.json").read_text())
        train = np.asarray(metrics["split_class_counts"]["train"], dtype=float)
        share = train / train.sum()
        members = {
            "head": np.flatnonzero(share >= 0.1),
            "medium": np.flatnonzero((share >= 0.01) & (share < 0.1)),
            "tail": np.flatnonzero(share < 0.01),
        }
        names = metrics["class_names"]
        assert [names[k] for k in members["tail"]] == ["bot"]
        assert [names[k] for k in members["medium"]] == ["scan"]
        pred = pd.read_parquet(exp / "runs" / run / "predictions.parquet")
        y_hat = pred[[c for c in pred.columns if c.startswith("p_")]].to_numpy().argmax(axis=1)
        if run.startswith("ce"):  # a network: decisions from the logits
            y_hat = pred[[c for c in pred.columns if c.startswith("z_")]].to_numpy().argmax(axis=1)
        loss = run.split("_seed")[0]
        for group, labels in members.items():
            row = table[(table["group"] == group) & (table["loss"] == loss)].iloc[0]
            assert row["classes"] == ", ".join(names[k] for k in labels)
            for metric, fn in (("macro_f1", f1_score), ("macro_recall", recall_score)):
                expected = fn(
                    pred["y_true"], y_hat, labels=labels, average="macro", zero_division=0
                )
                assert row[f"{metric}_mean"] == pytest.approx(expected), (run, group, metric)
    page = (exp / "summary" / "report.html").read_text()
    assert "Head, medium and tail classes" in page


def test_task_binary_merges_every_attack_against_the_negative_class(cli, tmp_path):
    """--task binary: benign against `attack` (dos, scan, bot merged); attack is the positive
    class, so POD and FAR are the IDS detection rate and false-alarm rate (sklearn recomputed)."""
    csv = _threshold_csv(tmp_path / "t.csv")
    res = cli(
        "compare", "--data", csv, "--losses", "ce", "--task", "binary", "--negative", "benign",
        "--seeds", "0", "--epochs", "2", "--model", "mlp", "--device", "cpu",
        "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert res.code == 0, res.err
    exp = _exp(tmp_path / "out")
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["class_names"] == ["attack", "benign"]
    assert sorted(meta["data_info"]["merged"]["attack"]) == ["bot", "dos", "scan"]
    assert meta["data"]["task"] == "binary"
    metrics = json.loads((exp / "runs" / "ce_seed0" / "metrics.json").read_text())
    summary = metrics["summary"]
    assert summary["positive_class"] == "attack"
    pred = pd.read_parquet(exp / "runs" / "ce_seed0" / "predictions.parquet")
    attack = pred["y_true"].to_numpy() == 0
    said = pred[["z_0", "z_1"]].to_numpy().argmax(axis=1) == 0
    assert 0 < attack.sum() < len(attack)
    assert summary["pod"] == pytest.approx(recall_score(attack, said))
    far = (said & ~attack).sum() / (~attack).sum()
    assert summary["far"] == pytest.approx(far)


def test_task_binary_with_an_unknown_negative_class_exits_2(cli, tmp_path):
    csv = _threshold_csv(tmp_path / "t.csv")
    res = cli(
        "run", "--data", csv, "--loss", "ce", "--task", "binary", "--negative", "normal",
        "--epochs", "1", "--model", "mlp", "--out", tmp_path / "out",
    )  # fmt: skip
    assert res.code == 2
    assert "--negative 'normal'" in res.err and "'benign'" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert "Traceback" not in res.err and not (tmp_path / "out").exists()
