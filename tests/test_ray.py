"""`compare --executor ray` on a local Ray instance (issue 7)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray", reason="the ray extra is not installed (make install-ray)")

pytestmark = pytest.mark.ray
COMMON = ("--device", "cpu", "--epochs", "2", "--model", "mlp", "--quiet")
ARGS = (*COMMON, "--losses", "ce,dwb", "--seeds", "0,1")


def _experiment(out: Path) -> Path:
    (exp,) = [p for p in out.iterdir() if (p / "experiment.json").exists()]
    return exp


def _summaries(exp: Path) -> dict[str, dict]:
    out = {}
    for m in exp.glob("runs/*/metrics.json"):
        data = json.loads(m.read_text())
        out[data["name"]] = data
    return out


@pytest.mark.slow  # about 40 s on 2 cores (a Ray cluster's start): make test-slow runs it;
# tests/test_executors.py runs the Ray task's body without Ray in make test
def test_ray_executor_matches_local_executor(cli, tmp_path):
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    assert cli("compare", "--out", local, *ARGS).code == 0
    res = cli("compare", "--out", ray_out, *ARGS, "--executor", "ray")
    assert res.code == 0, res.err
    a, b = _summaries(_experiment(local)), _summaries(_experiment(ray_out))
    assert sorted(a) == sorted(b) == ["ce_seed0", "ce_seed1", "dwb_seed0", "dwb_seed1"]
    for name in a:
        assert b[name]["status"] == "ok"
        assert a[name]["summary"] == b[name]["summary"], name
    exp = _experiment(ray_out)
    assert all((exp / "runs" / n / "DONE").exists() for n in b)
    assert (exp / "summary" / "report.html").exists()
    assert not list(exp.rglob("*.tmp"))
    pd.testing.assert_frame_equal(
        pd.read_csv(_experiment(local) / "summary" / "table_average.csv"),
        pd.read_csv(exp / "summary" / "table_average.csv"),
    )


def _killing(task: Callable, names: set[str]) -> Callable:
    """`task` (the Ray task body), except that the tasks of the runs `names` kill their own
    worker with SIGKILL, as an out-of-memory killer or a lost node would. A closure, so Ray
    ships it to the workers by value."""

    def task_or_kill(spec, *args):
        if spec.name in names:
            os.kill(os.getpid(), signal.SIGKILL)
        return task(spec, *args)

    return task_or_kill


@pytest.mark.slow  # 45-50 s each on 2 cores: make test-slow runs it
def test_killed_worker_is_a_failed_run_and_rerun_completes_it(cli, tmp_path, monkeypatch):
    from lossbench import executors

    out = tmp_path / "ray"
    real = executors._task
    monkeypatch.setattr(executors, "_task", _killing(real, {"dwb_seed1"}))
    res = cli("compare", "--out", out, *ARGS, "--executor", "ray")
    assert res.code == 3, res.err  # finished, but a run failed (README: exit codes)
    assert "dwb_seed1" in res.err
    exp = _experiment(out)
    killed = json.loads((exp / "runs" / "dwb_seed1" / "metrics.json").read_text())
    assert killed["status"] == "failed" and "ray task failed" in killed["reason"]
    assert not (exp / "runs" / "dwb_seed1" / "DONE").exists()
    for name in ("ce_seed0", "ce_seed1", "dwb_seed0"):
        assert (exp / "runs" / name / "DONE").exists(), name
    assert "ray task failed" in (exp / "summary" / "report.html").read_text()
    done = {p: p.stat().st_mtime_ns for p in exp.glob("runs/*/DONE")}

    monkeypatch.setattr(executors, "_task", real)
    res = cli("compare", "--out", out, *ARGS, "--executor", "ray")
    assert res.code == 0, res.err
    assert _experiment(out) == exp
    assert (exp / "runs" / "dwb_seed1" / "DONE").exists()
    assert {p: p.stat().st_mtime_ns for p in done} == done  # the others were not retrained


def _small_csv(path: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(7)
    counts = {"normal": 240, "scan": 45, "flood": 15}
    y = np.repeat(list(counts), list(counts.values()))
    shift = {"normal": 0.0, "scan": 1.5, "flood": -1.5}
    X = rng.normal(size=(len(y), 6)) + np.array([shift[c] for c in y])[:, None]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["Label"] = y
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow  # 45-50 s each on 2 cores: make test-slow runs it
def test_ray_sweep_over_two_datasets_matches_local(cli, tmp_path):
    csv = _small_csv(tmp_path / "small.csv")
    args = (
        *COMMON,
        "--losses",
        "ce,wce",
        "--seeds",
        "0",
        "--data",
        "digits-lt",
        "--data",
        str(csv),
    )
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    assert cli("compare", "--out", local, *args).code == 0
    res = cli("compare", "--out", ray_out, *args, "--executor", "ray")
    assert res.code == 0, res.err
    for out in (local, ray_out):
        exps = sorted(
            p.name.split("_", 1)[1] for p in out.glob("*/experiment.json") for p in [p.parent]
        )
        assert exps == ["digits-lt", "small"], exps
    for name in ("digits-lt", "small"):
        (a,) = local.glob(f"*_{name}")
        (b,) = ray_out.glob(f"*_{name}")
        sa, sb = _summaries(a), _summaries(b)
        assert sorted(sa) == sorted(sb) == ["ce_seed0", "wce_seed0"]
        for run in sa:
            assert sa[run]["summary"] == sb[run]["summary"], (name, run)
