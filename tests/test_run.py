"""`lossbench run` end to end (issue 4): every loss, the run folder, determinism, failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossbench.losses import names
from lossbench.metrics import evaluate
from tests.conftest import CICIDS_SAMPLE, need_shared

RUN_FILES = [
    "config.json",
    "metrics.json",
    "per_class.csv",
    "calibration.json",
    "confusion.csv",
    "history.csv",
    "predictions.parquet",
    "model.keras",
    "log.txt",
    "DONE",
    "plots/history.png",
    "plots/reliability.png",
    "plots/confusion.png",
    "plots/per_class_f1.png",
]


def _only_run_dir(out: Path) -> Path:
    runs = list(out.glob("*/runs/*"))
    assert len(runs) == 1, runs
    return runs[0]


def _run(cli, out: Path, *args: str):
    res = cli("run", "--out", out, "--device", "cpu", "--quiet", *args)
    return res


@pytest.mark.parametrize("loss", names())
def test_every_loss_runs_on_digits_lt(cli, tmp_path, loss):
    res = _run(cli, tmp_path, "--loss", loss, "--epochs", "3")
    assert res.code == 0, res.err
    run_dir = _only_run_dir(tmp_path)
    assert res.out.strip() == str(run_dir)
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["loss"] == loss
    assert 0.0 <= metrics["summary"]["macro_f1"] <= 1.0
    assert len(metrics["class_names"]) == 10
    # DONE is written last
    done = (run_dir / "DONE").stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns <= done for p in run_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize("loss", names())
def test_every_loss_runs_on_cicids_sample(cli, tmp_path, loss):
    need_shared(CICIDS_SAMPLE)
    res = _run(cli, tmp_path, "--loss", loss, "--epochs", "3", "--data", CICIDS_SAMPLE)
    assert res.code == 0, res.err
    run_dir = _only_run_dir(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    # the preset keeps Infiltration out by default; the sample's 7 raw classes -> 6
    assert "Infiltration" not in metrics["class_names"]
    assert (run_dir / "DONE").exists()


def test_metrics_are_those_of_the_stored_predictions(cli, tmp_path):
    res = _run(cli, tmp_path, "--loss", "focal", "--epochs", "2")
    assert res.code == 0, res.err
    run_dir = _only_run_dir(tmp_path)
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    k = len(metrics["class_names"])
    proba = preds[[f"p_{i}" for i in range(k)]].to_numpy()
    ev = evaluate(preds["y_true"].to_numpy(), proba, metrics["class_names"])
    for key, value in ev.summary.items():
        stored = metrics["summary"][key]
        if isinstance(value, float) and np.isnan(value):
            assert stored is None
        else:
            assert stored == value, key
    per_class = pd.read_csv(run_dir / "per_class.csv", dtype={"class": str}).set_index("class")
    expected = ev.per_class
    expected.index = expected.index.astype(str)
    pd.testing.assert_frame_equal(
        per_class, expected, check_dtype=False, check_names=False, rtol=0, atol=1e-15
    )
    confusion = pd.read_csv(run_dir / "confusion.csv").set_index("true").to_numpy()
    np.testing.assert_array_equal(confusion, ev.confusion)
    # predictions are probabilities of the test split
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert preds["row_id"].is_unique


def test_same_seed_gives_identical_metrics(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        res = _run(cli, out, "--loss", "dwb", "--epochs", "2", "--seed", "3")
        assert res.code == 0, res.err
    ma = json.loads((_only_run_dir(a) / "metrics.json").read_text())
    mb = json.loads((_only_run_dir(b) / "metrics.json").read_text())
    for volatile in ("train_seconds",):
        ma.pop(volatile)
        mb.pop(volatile)
    assert ma == mb
    ha = pd.read_csv(_only_run_dir(a) / "history.csv").drop(columns="seconds")
    hb = pd.read_csv(_only_run_dir(b) / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(ha, hb)


def test_other_seed_gives_other_weights(cli, tmp_path):
    sums = []
    for seed in ("0", "1"):
        out = tmp_path / seed
        assert _run(cli, out, "--loss", "ce", "--epochs", "1", "--seed", seed).code == 0
        sums.append(
            json.loads((_only_run_dir(out) / "config.json").read_text())["initial_weights_sha256"]
        )
    assert sums[0] != sums[1]


@pytest.mark.parametrize(
    ("loss", "prefixes"),
    [("amrl", ("lambda_", "g_")), ("pgfl", ("alpha_", "pod_")), ("autobalance", ("l_", "delta_"))],
)
def test_learned_parameters_are_logged_and_change(cli, tmp_path, loss, prefixes):
    res = _run(cli, tmp_path, "--loss", loss, "--epochs", "3", "--patience", "0")
    assert res.code == 0, res.err
    hist = pd.read_csv(_only_run_dir(tmp_path) / "history.csv")
    assert len(hist) == 3
    for prefix in prefixes:
        cols = [c for c in hist.columns if c.startswith(prefix) and c[len(prefix) :].isdigit()]
        assert len(cols) == 10, (prefix, list(hist.columns))
        values = hist[cols].to_numpy()
        assert np.isfinite(values).all()
        assert not np.allclose(values[0], values[-1]), f"{prefix} did not change"
    if loss == "amrl":
        lam = hist[[f"lambda_{k}" for k in range(10)]].to_numpy()
        assert (lam >= 0).all() and (lam <= 10).all()


def test_amrl_lambda_stays_in_bounds_under_a_large_dual_step(cli, tmp_path):
    res = _run(
        cli,
        tmp_path,
        "--loss",
        "amrl",
        "--epochs",
        "3",
        "--patience",
        "0",
        "--param",
        "lambda_max=3",
        "--param",
        "eta=50",
    )
    assert res.code == 0, res.err
    hist = pd.read_csv(_only_run_dir(tmp_path) / "history.csv")
    lam = hist[[f"lambda_{k}" for k in range(10)]].to_numpy()
    m = hist[[f"m_{k}" for k in range(10)]].to_numpy()
    assert np.isfinite(lam).all()
    assert (lam >= 0).all() and (lam <= 3 + 1e-6).all()
    assert (m == m[0]).all()  # the margins are fixed by the class counts


def test_divergent_run_fails_cleanly(cli, tmp_path):
    res = cli(
        "run",
        "--out",
        tmp_path,
        "--device",
        "cpu",
        "--loss",
        "ce",
        "--epochs",
        "3",
        "--lr",
        "1e36",
        "--clipnorm",
        "0",
    )
    assert res.code == 3  # finished, but the run failed (README: exit codes)
    run_dir = _only_run_dir(tmp_path)
    assert not (run_dir / "DONE").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert "became" in metrics["reason"] and "epoch" in metrics["reason"]
    assert metrics["reason"] in (run_dir / "log.txt").read_text()
    assert "run failed" in res.err


def test_json_summary(cli, tmp_path):
    res = cli(
        "run", "--out", tmp_path, "--device", "cpu", "--loss", "la", "--epochs", "1", "--json"
    )
    assert res.code == 0, res.err
    payload = json.loads(res.out)
    assert payload["status"] == "ok"
    assert Path(payload["run_dir"]).is_dir()
    assert set(payload["summary"]) >= {"macro_f1", "brier", "ece", "mce", "accuracy"}


def test_config_file_and_command_line_precedence(cli, tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('loss = "focal"\nepochs = 2\nmodel = "mlp"\nseed = 5\n[param]\ngamma = 1.5\n')
    res = cli(
        "run",
        "--out",
        tmp_path / "r",
        "--device",
        "cpu",
        "--config",
        cfg,
        "--epochs",
        "1",
        "--quiet",
    )
    assert res.code == 0, res.err
    run_dir = _only_run_dir(tmp_path / "r")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["loss"] == "focal" and config["seed"] == 5
    assert config["train"]["model"] == "mlp"
    assert config["train"]["epochs"] == 1  # the command line wins
    assert config["params"] == {"gamma": 1.5}
    assert len(pd.read_csv(run_dir / "history.csv")) == 1


def test_tensorboard_logs(cli, tmp_path):
    res = _run(cli, tmp_path, "--loss", "ce", "--epochs", "1", "--tensorboard")
    assert res.code == 0, res.err
    assert list((_only_run_dir(tmp_path) / "tensorboard").glob("events.out.tfevents*"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--loss", "nope"), "nope"),
        (("--loss", "focal", "--param", "gamma=-1"), "gamma"),
        (("--loss", "focal", "--param", "bogus=1"), "bogus"),
        (("--loss", "ce", "--param", "novalue"), "novalue"),
        (("--model", "resnet"), "resnet"),
        (("--device", "tpu"), "tpu"),
        (("--split", "0.5,0.5"), "--split"),
        (("--data", "/nonexistent/file.csv"), "/nonexistent/file.csv"),
        (("--config", "/nonexistent/exp.toml"), "exp.toml"),
    ],
)
def test_bad_input_exits_2_without_leaving_results(cli, tmp_path, args, needle):
    out = tmp_path / "out"
    res = cli("run", "--out", out, "--device", "cpu", "--epochs", "1", *args)
    assert res.code == 2
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.err
    assert "Traceback" not in res.err
    assert not out.exists() or not any(out.iterdir())
