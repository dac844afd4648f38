"""The evaluation protocol of SPEC 5.1, checked end to end on real runs.

Every stored decision rule, threshold and temperature is re-applied here with scikit-learn and
scipy, independently of lossbench's own code, to the logits and posteriors stored in the runs'
prediction files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.metrics import (
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)


def _load(run_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    name = "predictions.parquet" if split == "test" else "predictions_val.parquet"
    frame = pd.read_parquet(run_dir / name)
    z_cols = [c for c in frame.columns if c.startswith("z_")]
    p_cols = [c for c in frame.columns if c.startswith("p_")]
    z = frame[z_cols].to_numpy(np.float64) if z_cols else None
    return frame["y_true"].to_numpy(), z, frame[p_cols].to_numpy(np.float64)


def _far(y_neg: np.ndarray, flagged: np.ndarray) -> float:
    neg = ~y_neg
    return float((flagged & neg).sum() / neg.sum())


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    from lossbench.cli import main

    out = tmp_path_factory.mktemp("protocol")
    code = main(
        [
            "compare",
            "--losses",
            "ce,la",
            "--baselines",
            "lr",
            "--seeds",
            "0",
            "--epochs",
            "4",
            "--patience",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    (exp,) = [p for p in out.iterdir() if p.is_dir()]
    return exp


def _runs(exp: Path) -> list[Path]:
    runs = sorted(p for p in (exp / "runs").iterdir() if (p / "DONE").exists())
    assert len(runs) == 3
    return runs


def test_every_run_stores_both_prediction_files_with_logits(experiment):
    for run in _runs(experiment):
        test = pd.read_parquet(run / "predictions.parquet")
        val = pd.read_parquet(run / "predictions_val.parquet")
        p_cols = [c for c in test.columns if c.startswith("p_")]
        assert list(val.columns) == list(test.columns)
        assert len(p_cols) == 10
        np.testing.assert_allclose(test[p_cols].sum(axis=1), 1.0, atol=1e-9)
        assert test[p_cols].dtypes.unique().tolist() == [np.float64]
        is_loss = json.loads((run / "metrics.json").read_text())["kind"] == "loss"
        z_cols = [c for c in test.columns if c.startswith("z_")]
        assert len(z_cols) == (10 if is_loss else 0)
        if is_loss:
            assert test[z_cols].dtypes.unique().tolist() == [np.float32]
        assert not set(test["row_id"]) & set(val["row_id"])


def test_argmax_metrics_use_the_logits_and_probability_metrics_the_posterior(experiment):
    for run in _runs(experiment):
        m = json.loads((run / "metrics.json").read_text())
        y, z, p = _load(run, "test")
        pred = (z if z is not None else p).argmax(axis=1)
        labels = list(range(p.shape[1]))
        s = m["summary"]
        assert s["macro_f1"] == pytest.approx(
            f1_score(y, pred, labels=labels, average="macro", zero_division=0), abs=1e-9
        )
        assert s["macro_auroc"] == pytest.approx(
            roc_auc_score(y, p, multi_class="ovr", labels=labels), abs=1e-9
        )


def test_tuned_rule_reproduced_and_never_worse_on_validation(experiment):
    for run in _runs(experiment):
        m = json.loads((run / "metrics.json").read_text())
        offsets = np.asarray(m["tuned"]["offsets"])
        labels = list(range(len(offsets)))
        scores = {}
        for split in ("val", "test"):
            y, z, p = _load(run, split)
            s = z if z is not None else np.log(np.clip(p, 1e-300, None))
            scores[split] = (y, s)
        y_val, s_val = scores["val"]

        def f1(y, pred, labels=labels):
            return f1_score(y, pred, labels=labels, average="macro", zero_division=0)

        tuned_val = f1(y_val, (s_val + offsets).argmax(axis=1))
        assert tuned_val >= f1(y_val, s_val.argmax(axis=1))
        assert m["tuned"]["val_macro_f1"] == pytest.approx(tuned_val, abs=1e-9)
        y_test, s_test = scores["test"]
        pred = (s_test + offsets).argmax(axis=1)
        t = m["tuned"]["summary"]
        assert t["macro_f1"] == pytest.approx(f1(y_test, pred), abs=1e-9)
        assert t["macro_recall"] == pytest.approx(
            recall_score(y_test, pred, labels=labels, average="macro", zero_division=0), abs=1e-9
        )
        assert t["macro_precision"] == pytest.approx(
            precision_score(y_test, pred, labels=labels, average="macro", zero_division=0),
            abs=1e-9,
        )


def test_operating_points_reproduced_and_within_their_validation_far(experiment):
    for run in _runs(experiment):
        m = json.loads((run / "metrics.json").read_text())
        ops = m["operating_points"]
        assert ops["far_targets"] == [0.01, 0.001]
        y_val, _, p_val = _load(run, "val")
        y_test, _, p_test = _load(run, "test")
        for entry in ops["per_class"]:
            k = entry["class_index"]
            for point in entry["points"]:
                t = point["threshold"]
                assert _far(y_val == k, p_val[:, k] >= t) <= point["far_target"]
                assert point["val_far"] == pytest.approx(_far(y_val == k, p_val[:, k] >= t))
                flagged = p_test[:, k] >= t
                assert point["test_dr"] == pytest.approx(
                    recall_score(y_test == k, flagged, zero_division=0), abs=1e-9
                )
                assert point["test_far"] == pytest.approx(_far(y_test == k, flagged), abs=1e-9)
            assert entry["pauroc"] == pytest.approx(
                roc_auc_score(y_test == k, p_test[:, k], max_fpr=0.01), abs=1e-9
            )


def test_temperature_minimises_validation_nll_and_scaled_calibration_reproduced(experiment):
    for run in _runs(experiment):
        m = json.loads((run / "metrics.json").read_text())
        cal = m["calibration"]
        y_val, _, p_val = _load(run, "val")
        logp = np.log(np.clip(p_val, 1e-300, None))
        labels = list(range(p_val.shape[1]))

        def nll(log_t: float, logp=logp, y=y_val) -> float:
            return -np.mean(log_softmax(logp / np.exp(log_t), axis=1)[np.arange(len(y)), y])

        fit = minimize_scalar(nll, bounds=(-6, 6), method="bounded", options={"xatol": 1e-10})
        assert cal["temperature"]["T"] == pytest.approx(np.exp(fit.x), rel=1e-3)
        y_test, _, p_test = _load(run, "test")
        scaled = softmax(np.log(np.clip(p_test, 1e-300, None)) / cal["temperature"]["T"], axis=1)
        onehot = np.eye(p_test.shape[1])[y_test]
        assert cal["temperature"]["brier"] == pytest.approx(
            np.mean(np.sum((onehot - scaled) ** 2, axis=1)), abs=1e-9
        )
        assert cal["temperature"]["nll"] == pytest.approx(
            log_loss(y_test, scaled, labels=labels), abs=1e-9
        )
        assert cal["raw"]["nll"] == pytest.approx(log_loss(y_test, p_test, labels=labels), abs=1e-9)
        assert cal["raw"]["brier"] == pytest.approx(m["summary"]["brier"], abs=1e-12)


def test_selection_is_recorded_and_the_same_rule_for_every_loss(experiment):
    for run in _runs(experiment):
        m = json.loads((run / "metrics.json").read_text())
        if m["kind"] != "loss":
            continue
        sel = m["selection"]
        assert sel["criterion"] == "macro_f1" and sel["tie_break"] == "val_nll"
        assert sel["stopped_by"] in ("early_stopping", "max_epochs")
        history = pd.read_csv(run / "history.csv")
        assert sel["epochs_run"] == len(history)
        # the selected epoch holds the best validation macro-F1 (NLL breaks ties)
        best = history.sort_values(["val_macro_f1", "val_nll"], ascending=[False, True]).iloc[0]
        assert sel["selected_epoch"] == int(best["epoch"])


def test_summary_tables_and_report_show_the_protocol(experiment):
    summary = experiment / "summary"
    tuned = pd.read_csv(summary / "table_average_tuned.csv")
    assert set(tuned["loss"]) == {"ce", "la", "lr"}
    ce_tuned = json.loads((experiment / "runs" / "ce_seed0" / "metrics.json").read_text())
    row = tuned[tuned["loss"] == "ce"].iloc[0]
    assert row["macro_f1_mean"] == pytest.approx(ce_tuned["tuned"]["summary"]["macro_f1"])
    ops = pd.read_csv(summary / "table_operating_points.csv")
    assert {"dr@0.01_mean", "far@0.001_mean", "pauroc_mean"} <= set(ops.columns)
    assert len(ops) == 3 * 10
    cal = pd.read_csv(summary / "table_calibration.csv")
    assert {"brier_mean", "brier_ts_mean", "temperature_mean", "nll_ts_mean"} <= set(cal.columns)
    html = (summary / "report.html").read_text()
    for heading in ("validation-tuned decision rule", "Operating points", "NLL (TS)", "Leakage"):
        assert heading in html
    meta = json.loads((experiment / "experiment.json").read_text())
    leak = meta["data_info"]["leakage"]
    assert f"<td>{leak['test']['duplicates']}</td>" in html


def test_report_recomputes_from_predictions_without_training(experiment, tmp_path, cli):
    exp = tmp_path / experiment.name
    shutil.copytree(experiment, exp)
    ce = exp / "runs" / "ce_seed0"
    original = json.loads((ce / "metrics.json").read_text())
    stripped = {k: v for k, v in original.items() if k not in ("tuned", "operating_points")}
    (ce / "metrics.json").write_text(json.dumps(stripped))
    (ce / "model.keras").unlink()  # nothing to retrain from: the numbers come from predictions
    result = cli("report", str(exp), "--quiet")
    assert result.code == 0, result.err
    again = json.loads((ce / "metrics.json").read_text())
    assert again["tuned"]["offsets"] == pytest.approx(original["tuned"]["offsets"])
    assert again["tuned"]["summary"]["macro_f1"] == pytest.approx(
        original["tuned"]["summary"]["macro_f1"], abs=1e-12
    )
    assert again["operating_points"] == original["operating_points"]


def test_report_on_runs_without_logits_or_validation_predictions_says_so(experiment, tmp_path, cli):
    exp = tmp_path / experiment.name
    shutil.copytree(experiment, exp)
    la = exp / "runs" / "la_seed0"
    frame = pd.read_parquet(la / "predictions.parquet")
    frame.drop(columns=[c for c in frame.columns if c.startswith("z_")]).to_parquet(
        la / "predictions.parquet"
    )
    (la / "predictions_val.parquet").unlink()
    result = cli("report", str(exp), "--quiet")
    assert result.code == 0, result.err
    assert "la_seed0" in result.err and "not available" in result.err
    m = json.loads((la / "metrics.json").read_text())
    assert m["tuned"] is None and "raw" in m["calibration"]
    assert any("no validation predictions" in w for w in m["warnings"])


@pytest.mark.slow  # about 45 s on 2 cores (the default 200-epoch budget): make test-slow runs it
def test_default_budget_trains_a_small_rare_event_set_until_early_stopping(tmp_path, cli):
    """SPEC 5.1 "enough training": 1,500 rows, 2% positives, default settings, three seeds."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=1500,
        n_features=12,
        n_informative=6,
        weights=[0.98],
        flip_y=0,
        random_state=0,
    )
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(12)]).assign(Label=y)
    assert frame["Label"].mean() == pytest.approx(0.02)
    csv = tmp_path / "rare.csv"
    frame.to_csv(csv, index=False)
    result = cli(
        "compare",
        "--data",
        csv,
        "--losses",
        "ce,wce,focal,dwb",
        "--seeds",
        "0,1,2",
        "--out",
        tmp_path / "out",
    )
    assert result.code == 0, result.err
    runs = sorted((tmp_path / "out").glob("*/runs/*"))
    assert len(runs) == 12
    stopped, single = [], 0
    for run in runs:
        m = json.loads((run / "metrics.json").read_text())
        assert m["selection"]["max_epochs"] == 200
        stopped.append(m["selection"]["stopped_by"])
        predicted = np.unique(
            pd.read_parquet(run / "predictions.parquet")[["z_0", "z_1"]].to_numpy().argmax(axis=1)
        )
        warned = any("predicts only 1 of 2 classes" in w for w in m["warnings"])
        assert warned == (len(predicted) == 1), run.name
        single += warned
        if warned:
            assert f"warning: {run.name}: predicts only 1 of 2 classes" in result.err
    assert stopped.count("early_stopping") > len(runs) / 2, stopped
    html = next((tmp_path / "out").glob("*/summary/report.html")).read_text()
    assert html.count("predicts only 1 of 2") >= single


def test_ce_and_ldam_are_selected_by_one_criterion_and_ldam_within_its_drw_phase(tmp_path, cli):
    result = cli(
        "compare",
        "--losses",
        "ce,ldam",
        "--seeds",
        "0",
        "--epochs",
        "10",
        "--patience",
        "2",
        "--out",
        tmp_path,
        "--quiet",
    )
    assert result.code == 0, result.err
    (exp,) = list(tmp_path.glob("*_digits-lt"))
    ce = json.loads((exp / "runs" / "ce_seed0" / "metrics.json").read_text())["selection"]
    ldam = json.loads((exp / "runs" / "ldam_seed0" / "metrics.json").read_text())["selection"]
    assert ce["criterion"] == ldam["criterion"] == "macro_f1"
    assert ce["tie_break"] == ldam["tie_break"] == "val_nll"
    drw_first_epoch = int(0.8 * 10) + 1  # DRW from 80% of the epochs (1-based epoch 9)
    assert ldam["selection_start_epoch"] == drw_first_epoch
    assert ldam["selected_epoch"] >= drw_first_epoch
    # not stopped before DRW has run `patience` epochs
    assert ldam["epochs_run"] >= min(10, drw_first_epoch - 1 + 2)
    history = pd.read_csv(exp / "runs" / "ldam_seed0" / "history.csv")
    drw = history[history["epoch"] >= drw_first_epoch]
    best = drw.sort_values(["val_macro_f1", "val_nll"], ascending=[False, True]).iloc[0]
    assert ldam["selected_epoch"] == int(best["epoch"])
