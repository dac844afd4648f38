"""`lossbench compare` and `lossbench report` (issue 5)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

SUMMARY_FILES = [
    "table_average.csv",
    "table_average.md",
    "table_average.parquet",
    "table_per_class.csv",
    "table_per_class.md",
    "table_per_class.parquet",
    "table_calibration.csv",
    "table_calibration.md",
    "table_calibration.parquet",
    "significance.csv",
    "report.html",
    "plots/history_overlay.png",
    "plots/per_class_f1.png",
    "plots/reliability_overlay.png",
    "plots/pr_curves.png",
    "plots/loss_shape.png",
    "plots/loss_shape.csv",
]
FAST = ("--seeds", "0", "--device", "cpu", "--epochs", "2", "--model", "mlp")


def _experiment(out: Path) -> Path:
    exps = [p for p in out.iterdir() if (p / "experiment.json").exists()]
    assert len(exps) == 1, exps
    return exps[0]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.cells: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables += 1
        if tag in ("td", "th"):
            self._in_cell = True
            self.cells.append("")
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            val = a.get(key)
            if val and not val.startswith(("data:", "#")):
                self.external.append(val)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.cells[-1] += data


def test_compare_writes_every_file_and_a_self_contained_report(cli, tmp_path):
    res = cli(
        "compare",
        "--out",
        tmp_path,
        *FAST,
        "--losses",
        "ce,dwb",
        "--seeds",
        "0,1",
        "--baselines",
        "lr",
    )
    assert res.code == 0, res.err
    exp = _experiment(tmp_path)
    for name in SUMMARY_FILES:
        assert (exp / "summary" / name).is_file(), name
    for run in ("ce_seed0", "ce_seed1", "dwb_seed0", "dwb_seed1", "lr_seed0", "lr_seed1"):
        assert (exp / "runs" / run / "DONE").exists(), run
    table = pd.read_csv(exp / "summary" / "table_average.csv")
    text = table.to_csv()
    for row in ("ce", "dwb", "lr"):
        assert row in text
    # the table's mean equals the mean of the runs' metrics
    f1 = [
        json.loads((exp / "runs" / f"dwb_seed{s}" / "metrics.json").read_text())["summary"][
            "macro_f1"
        ]
        for s in (0, 1)
    ]
    mean_cols = [c for c in table.columns if "f1" in c.lower() and "mean" in c.lower()]
    assert mean_cols, table.columns
    row = table[table.apply(lambda r: "dwb" in r.astype(str).tolist(), axis=1)].iloc[0]
    assert row[mean_cols[0]] == pytest.approx(sum(f1) / 2, abs=1e-12)

    page = _Page()
    page.feed((exp / "summary" / "report.html").read_text())
    assert page.tables >= 4
    assert not page.external
    assert len(page.images) >= 5  # the four summary plots and loss_shape.png
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    cells = " ".join(page.cells)
    for name in ("ce", "dwb", "lr"):
        assert name in cells
    assert f"{sum(f1) / 2:.3f}" in cells
    # the loss-shape figure's values: the compare's losses at its training class counts
    shape = pd.read_csv(exp / "summary" / "plots" / "loss_shape.csv")
    counts = json.loads((exp / "experiment.json").read_text())["class_counts_train"]
    assert list(dict.fromkeys(shape["loss"])) == ["ce", "dwb"]
    assert set(shape["n_y"]) == {min(counts), max(counts)}


def test_same_initial_weights_and_batch_order_within_a_seed(cli, tmp_path):
    res = cli(
        "compare",
        "--out",
        tmp_path,
        *FAST,
        "--losses",
        "ce,focal,amrl,ldam",  # ldam trains the cosine head: same initial weights
        "--seeds",
        "0,1",
        "--quiet",
    )
    assert res.code == 0, res.err
    exp = _experiment(tmp_path)
    for seed in (0, 1):
        cfgs = [
            json.loads((exp / "runs" / f"{loss}_seed{seed}" / "config.json").read_text())
            for loss in ("ce", "focal", "amrl", "ldam")
        ]
        assert len({c["initial_weights_sha256"] for c in cfgs}) == 1
        assert len({c["batch_order_sha256"] for c in cfgs}) == 1
        assert len({c["data_fingerprint"] for c in cfgs}) == 1
    s0 = json.loads((exp / "runs" / "ce_seed0" / "config.json").read_text())
    s1 = json.loads((exp / "runs" / "ce_seed1" / "config.json").read_text())
    assert s0["initial_weights_sha256"] != s1["initial_weights_sha256"]


def test_rerun_resumes_and_fresh_starts_anew(cli, tmp_path):
    args = ("compare", "--out", tmp_path, *FAST, "--losses", "ce,wce", "--quiet")
    assert cli(*args).code == 0
    exp = _experiment(tmp_path)
    done = {p: p.stat().st_mtime_ns for p in exp.glob("runs/*/DONE")}
    assert len(done) == 2
    again = cli(*args)
    assert again.code == 0
    assert _experiment(tmp_path) == exp
    assert {p: p.stat().st_mtime_ns for p in exp.glob("runs/*/DONE")} == done
    fresh = cli(*args, "--fresh")
    assert fresh.code == 0
    assert len(list(tmp_path.glob("*/experiment.json"))) == 2


def test_failed_run_is_reported_and_others_complete(cli, tmp_path, monkeypatch):
    from lossbench import training

    original = training.Trainer.fit

    def fit(self, *a, **kw):
        result = original(self, *a, **kw)
        if type(self.loss).__name__.lower().startswith("focal"):
            result.status, result.reason = "failed", "training loss became nan at epoch 1"
        return result

    monkeypatch.setattr(training.Trainer, "fit", fit)
    res = cli("compare", "--out", tmp_path, *FAST, "--losses", "ce,focal,dwb", "--quiet")
    assert res.code == 3, res.err  # finished, but a run failed (README: exit codes)
    failed = [ln for ln in res.err.splitlines() if ln.startswith("run failed")]
    assert any("focal_seed0" in ln for ln in failed)
    assert not any("dwb_seed0" in ln for ln in failed)  # (its warnings stay on stderr)
    exp = _experiment(tmp_path)
    assert not (exp / "runs" / "focal_seed0" / "DONE").exists()
    assert (exp / "runs" / "ce_seed0" / "DONE").exists()
    assert (exp / "runs" / "dwb_seed0" / "DONE").exists()
    html = (exp / "summary" / "report.html").read_text()
    assert "training loss became nan at epoch 1" in html


def test_report_rebuilds_summary_without_training(cli, tmp_path):
    assert cli("compare", "--out", tmp_path, *FAST, "--losses", "ce,la", "--quiet").code == 0
    exp = _experiment(tmp_path)
    before = (exp / "summary" / "table_average.csv").read_text()
    for path in (exp / "summary").rglob("*"):
        if path.is_file():
            path.unlink()
    res = cli("report", exp, "--quiet")
    assert res.code == 0, res.err
    assert (exp / "summary" / "table_average.csv").read_text() == before
    for name in SUMMARY_FILES:
        assert (exp / "summary" / name).is_file(), name


def test_report_on_a_folder_that_is_not_an_experiment(cli, tmp_path):
    res = cli("report", tmp_path)
    assert res.code == 2 and "experiment.json" in res.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--losses", "ce,nope"), "nope"),
        (("--baselines", "svm"), "svm"),
        (("--seeds", "a,b"), "--seeds"),
        (("--param", "bogus=1"), "bogus"),
        (("--param", "xx.gamma=1"), "xx"),
    ],
)
def test_bad_compare_input_exits_2_and_leaves_nothing(cli, tmp_path, args, needle):
    out = tmp_path / "out"
    res = cli("compare", "--out", out, *FAST, *args)
    assert res.code == 2, res.err
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.err
    assert not out.exists() or not any(out.iterdir())


def _compare_cmd(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lossbench.cli",
        "compare",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--epochs",
        "3",
        "--model",
        "mlp",
        "--losses",
        "ce,focal",
        "--seeds",
        "0,1",
        "--quiet",
    ]


def test_sigkill_then_rerun_trains_only_missing_runs(tmp_path):
    env = {**os.environ, "LOSSBENCH_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _compare_cmd(out),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    first_done = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(out.glob("*/runs/*/DONE"))
        if found:
            first_done = found[0]
            break
        time.sleep(0.05)
    assert first_done is not None, "no run finished before the compare ended"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    exp = first_done.parents[2]
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in exp.glob("runs/*/DONE")}
    assert 1 <= len(done_before) < 4
    rerun = subprocess.run(_compare_cmd(out), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    done_after = {p.parent.name: p.stat().st_mtime_ns for p in exp.glob("runs/*/DONE")}
    assert len(done_after) == 4
    for name, mtime in done_before.items():
        assert done_after[name] == mtime, f"{name} was trained again"
    # an uninterrupted compare with the same seeds gives the same summary
    clean = tmp_path / "clean"
    full = subprocess.run(_compare_cmd(clean), env=env, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr
    exp_clean = _experiment(clean)
    for table in ("table_average.csv", "table_per_class.csv", "table_calibration.csv"):
        a = pd.read_csv(exp / "summary" / table)
        b = pd.read_csv(exp_clean / "summary" / table)
        pd.testing.assert_frame_equal(a, b)


def test_a_bad_second_dataset_creates_no_experiment(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,Label\n1,2,x\n3,oops,y\n")
    out = tmp_path / "out"
    res = cli(
        "compare",
        "--out",
        out,
        *FAST,
        "--losses",
        "ce",
        "--data",
        "digits-lt",
        "--data",
        bad,
        "--quiet",
    )
    assert res.code == 2
    assert str(bad) in res.err and len(res.err.strip().splitlines()) == 1
    assert not out.exists() or not list(out.glob("*/experiment.json"))
