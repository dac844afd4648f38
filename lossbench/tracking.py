"""`--mlflow [TRACKING_URI]`: an experiment's runs in MLflow, from the files the store wrote.

MLflow's Keras autologging cannot see lossbench's own training loop, so lossbench logs what it
stored instead, after the runs: one MLflow run per lossbench run (its settings as params, each
history.csv column as a step metric per epoch, the summary metrics, and the run folder's tables
and plots as artifacts), nested under one parent run per experiment (the experiment's settings,
the summary tables, plots and report.html).

Runs are tagged `lossbench.experiment` (the experiment folder) and `lossbench.run` (the run
name); a run already logged and finished is skipped, so a resumed or grown compare adds only its
new runs. Everything goes into the MLflow experiment "lossbench".

The default tracking URI is a SQLite file in `<out>/mlruns/` (no server needed; MLflow's file
store is deprecated), with the artifacts beside it. MLflow is an optional extra:
`pip install -e '.[mlflow]'`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from lossbench import layout
from lossbench.errors import InputError
from lossbench.store import RunRecord, load_experiment, read_config

__all__ = ["DEFAULT", "MLFLOW_EXPERIMENT", "default_tracking_uri", "log_experiment"]

#: The value of `--mlflow` given without a URI.
DEFAULT = "default"
#: The MLflow experiment that holds every lossbench experiment's parent run.
MLFLOW_EXPERIMENT = "lossbench"
#: Files of a run folder logged as artifacts (tables and plots; not the model or predictions).
RUN_ARTIFACTS = ("*.csv", "*.json", f"{layout.PLOTS}/*.png")
SUMMARY_ARTIFACTS = ("*.csv", "*.md", layout.REPORT, f"{layout.PLOTS}/*.png")
_BATCH = 900  # MLflow's log_batch takes at most 1000 metrics, 100 params per call
_PARAM_BATCH = 90


def default_tracking_uri(out: Path) -> str:
    """`sqlite:///<out>/mlruns/mlflow.db` (absolute)."""
    return f"sqlite:///{(Path(out) / 'mlruns' / 'mlflow.db').resolve()}"


def _client(tracking_uri: str, out: Path) -> tuple[Any, str]:
    """An MlflowClient and the id of the "lossbench" experiment (created when missing, its
    artifacts in `<out>/mlruns/artifacts` for the default store)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError(
            "mlflow: MLflow is not installed; pip install -e '.[mlflow]' (or pip install mlflow)"
        ) from None
    if tracking_uri == DEFAULT:
        (Path(out) / "mlruns").mkdir(parents=True, exist_ok=True)
        tracking_uri = default_tracking_uri(out)
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    if found is not None:
        return client, found.experiment_id
    artifacts = None
    if tracking_uri.startswith("sqlite:///"):
        artifacts = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return client, client.create_experiment(MLFLOW_EXPERIMENT, artifact_location=artifacts)


def _flat(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    """Nested settings as MLflow params: `train.lr` -> "0.001"."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(f"{prefix}.{k}" if prefix else str(k), v)
    else:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        yield prefix, text[:6000]


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _find(client: Any, exp_id: str, tags: dict[str, str]) -> Any | None:
    """The newest MLflow run with these tags, or None."""
    query = " and ".join(f"tags.`{k}` = '{v.replace(chr(39), '')}'" for k, v in tags.items())
    runs = client.search_runs([exp_id], filter_string=query, max_results=1)
    return runs[0] if runs else None


def _log(client: Any, run_id: str, params: dict[str, str], metrics: list[Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k[:250], v) for k, v in params.items()]
    for i in range(0, len(items), _PARAM_BATCH):
        client.log_batch(run_id, params=items[i : i + _PARAM_BATCH])
    for i in range(0, len(metrics), _BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + _BATCH])


def _artifacts(client: Any, run_id: str, folder: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in sorted(folder.glob(pattern)):
            if path.is_file():
                sub = path.parent.relative_to(folder).as_posix()
                client.log_artifact(run_id, str(path), None if sub == "." else sub)


def _run_metrics(run: RunRecord) -> list[Any]:
    """history.csv as step metrics (step = epoch), then the summary metrics."""
    from mlflow.entities import Metric

    out = []
    frame = run.history()
    if frame is not None:
        steps = frame["epoch"] if "epoch" in frame else pd.Series(range(1, len(frame) + 1))
        for col in frame.columns:
            if col == "epoch":
                continue
            for step, value in zip(steps, frame[col], strict=True):
                if (v := _finite(value)) is not None:
                    out.append(Metric(f"history/{col}", v, 0, int(step)))
    for key, value in run.summary.items():
        if (v := _finite(value)) is not None:
            out.append(Metric(f"test/{key}", v, 0, 0))
    return out


def log_experiment(exp_dir: Path, tracking_uri: str, out: Path) -> dict[str, Any]:
    """Log one experiment folder into MLflow (see the module docstring); returns
    {"tracking_uri", "parent_run_id", "logged": new runs, "skipped": runs logged before}.

    Raises:
        InputError: MLflow is not installed.
    """
    exp_dir = Path(exp_dir)
    client, exp_id = _client(tracking_uri, out)
    results = load_experiment(exp_dir)
    key = str(exp_dir.resolve())
    parent = _find(client, exp_id, {"lossbench.experiment": key, "lossbench.level": "experiment"})
    if parent is None:
        parent = client.create_run(
            exp_id,
            run_name=exp_dir.name,
            tags={"lossbench.experiment": key, "lossbench.level": "experiment"},
        )
        meta = results.meta
        params = dict(_flat("", {k: meta.get(k) for k in ("dataset", "data", "train", "params")}))
        params["command_line"] = str((meta.get("invocation") or {}).get("command_line", ""))
        _log(client, parent.info.run_id, {k: v for k, v in params.items() if k}, [])
    parent_id = parent.info.run_id
    logged, skipped = [], []
    for run in results.runs:
        if not run.ok:
            continue  # failed and missing runs are logged once they complete
        tags = {"lossbench.experiment": key, "lossbench.run": run.name}
        found = _find(client, exp_id, tags)
        if found is not None and found.info.status == "FINISHED":
            skipped.append(run.name)
            continue
        if found is not None:  # an interrupted logging: start that run again
            client.delete_run(found.info.run_id)
        child = client.create_run(
            exp_id,
            run_name=run.name,
            tags={**tags, "mlflow.parentRunId": parent_id, "lossbench.loss": run.loss},
        )
        config = read_config(run.path) if run.path.exists() else {}
        params = dict(_flat("", {k: v for k, v in config.items() if k != "class_names"}))
        _log(client, child.info.run_id, params, _run_metrics(run))
        _artifacts(client, child.info.run_id, run.path, RUN_ARTIFACTS)
        client.set_terminated(child.info.run_id)
        logged.append(run.name)
    summary = layout.summary_dir(exp_dir)
    if summary.is_dir():
        _artifacts(client, parent_id, summary, SUMMARY_ARTIFACTS)
    client.set_terminated(parent_id)
    return {
        "tracking_uri": client.tracking_uri,
        "parent_run_id": parent_id,
        "logged": logged,
        "skipped": skipped,
    }
