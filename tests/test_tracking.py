"""`--mlflow`: lossbench runs in MLflow, read back through MLflow's own client (issue 34)."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip(
    "mlflow", reason="the mlflow extra is not installed (pip install -e '.[mlflow]')"
)


def test_mlflow_logs_one_nested_run_per_run_and_a_resumed_compare_adds_only_new_ones(cli, tmp_path):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "results"
    common = ["--seeds", "0", "--epochs", "2", "--model", "mlp", "--out", out]
    res = cli("compare", "--losses", "ce,wce", *common, "--mlflow")
    assert res.code == 0, res.err
    assert "note: mlflow: 2 run(s) logged, 0 logged before" in " ".join(res.err.split())
    (exp,) = [p for p in out.iterdir() if (p / "experiment.json").exists()]

    client = MlflowClient(tracking_uri=f"sqlite:///{out.resolve() / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lossbench")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("lossbench.level") == "experiment"]
    children = [r for r in runs if "lossbench.run" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    ce = next(r for r in children if r.data.tags["lossbench.run"] == "ce_seed0")
    history = pd.read_csv(exp / "runs" / "ce_seed0" / "history.csv")
    logged = {m.step: m.value for m in client.get_metric_history(ce.info.run_id, "history/loss")}
    assert logged[2] == pytest.approx(history.set_index("epoch").loc[2, "loss"])
    assert ce.data.params["train.epochs"] == "2" and ce.data.params["loss"] == "ce"
    assert "test/macro_f1" in ce.data.metrics
    assert "per_class.csv" in {a.path for a in client.list_artifacts(ce.info.run_id)}
    assert "report.html" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}

    res = cli("compare", "--losses", "ce,wce,focal", *common, "--mlflow")  # grows: one new run
    assert res.code == 0, res.err
    assert "note: mlflow: 1 run(s) logged, 2 logged before" in " ".join(res.err.split())
    runs = client.search_runs([experiment.experiment_id])
    names = sorted(r.data.tags.get("lossbench.run", "") for r in runs)
    assert names == ["", "ce_seed0", "focal_seed0", "wce_seed0"]  # the parent, no duplicates


def test_the_python_api_logs_to_mlflow_as_the_command_line_does(tmp_path):
    """`lossbench.compare(..., mlflow="default")` goes through the command line's logging."""
    from mlflow.tracking import MlflowClient

    import lossbench

    out = tmp_path / "results"
    lossbench.compare(
        losses=["ce"], seeds=[0], out=out, epochs=1, model="mlp", mlflow="default", quiet=True
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{out.resolve() / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lossbench")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags.get("lossbench.run", "") for r in runs) == ["", "ce_seed0"]
