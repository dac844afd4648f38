"""The results store (lossbench.store): run names, resume state, reading runs back."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lossbench.store import (
    find_experiment,
    load_experiment,
    load_metrics,
    mark_done,
    new_experiment_dir,
    parse_run_name,
    prepare_run_dir,
    read_run,
    run_name,
    run_status,
    write_experiment,
)


@pytest.mark.parametrize(
    ("method", "seed"),
    [("ce", 0), ("ce+ros", 3), ("ce+balanced-batches", 12), ("my_loss", 1), ("x_seed2", -1)],
)
def test_run_name_round_trips(method, seed):
    assert parse_run_name(run_name(method, seed)) == (method, seed)


def test_run_name_format():
    assert run_name("ce+ros", 2) == "ce+ros_seed2"


@pytest.mark.parametrize("name", ["ce", "ce_seed", "_seed1", "ce_seedx", "ce_seed1a", "ce_seed-"])
def test_other_folder_names_do_not_parse(name):
    assert parse_run_name(name) is None


def _ok_run(run_dir: Path, **metrics) -> None:
    prepare_run_dir(run_dir)
    base = {"name": run_dir.name, "status": "ok", "reason": None, "summary": {"macro_f1": 0.5}}
    (run_dir / "metrics.json").write_text(json.dumps({**base, **metrics}))
    # the two result files every completed run has (integrity.run_problem requires them)
    pd.DataFrame({"row_id": [0], "y_true": [0], "p_0": [1.0]}).to_parquet(
        run_dir / "predictions.parquet"
    )
    pd.DataFrame({"class": ["a"], "f1": [0.5]}).to_csv(run_dir / "per_class.csv", index=False)
    mark_done(run_dir)


def test_resume_state_of_each_kind_of_run_folder(tmp_path):
    runs = tmp_path / "runs"
    _ok_run(runs / "ce_seed0")
    failed = runs / "dwb_seed0"
    prepare_run_dir(failed)
    (failed / "metrics.json").write_text(json.dumps({"status": "failed", "reason": "nan"}))
    interrupted = runs / "focal_seed0"
    prepare_run_dir(interrupted)
    (interrupted / "config.json").write_text("{}")
    assert run_status(runs / "ce_seed0") == "done"
    assert run_status(failed) == "failed"
    assert run_status(interrupted) == "incomplete"
    assert run_status(runs / "cb_seed0") == "missing"


def test_prepare_run_dir_clears_an_unfinished_run_and_keeps_a_done_one(tmp_path):
    unfinished = tmp_path / "a_seed0"
    prepare_run_dir(unfinished)
    (unfinished / "history.csv").write_text("epoch\n1\n")
    prepare_run_dir(unfinished)
    assert list(unfinished.iterdir()) == []
    done = tmp_path / "b_seed0"
    _ok_run(done)
    prepare_run_dir(done)
    kept = ["DONE", "metrics.json", "per_class.csv", "predictions.parquet"]
    assert sorted(p.name for p in done.iterdir()) == kept


def test_read_run_classifies_ok_failed_incomplete_and_garbled(tmp_path):
    runs = tmp_path / "runs"
    _ok_run(runs / "ce+ros_seed1", loss="ce+ros", kind="loss", seed=1)
    ok = read_run(runs / "ce+ros_seed1")
    assert (ok.status, ok.loss, ok.seed, ok.summary) == ("ok", "ce+ros", 1, {"macro_f1": 0.5})
    garbled = runs / "dwb_seed2"
    prepare_run_dir(garbled)
    (garbled / "metrics.json").write_text('{"status": "ok", "summ')
    mark_done(garbled)
    bad = read_run(garbled)
    # DONE but a damaged metrics.json: unreadable, retrained by the next compare (issue 17)
    assert bad.status == "unreadable" and bad.reason.startswith("unreadable metrics.json")
    assert (bad.loss, bad.seed) == ("dwb", 2)  # from the folder name
    interrupted = runs / "lr_seed0"
    prepare_run_dir(interrupted)
    assert read_run(interrupted).status == "incomplete"


def test_experiment_round_trip(tmp_path):
    exp = new_experiment_dir(tmp_path / "results", "digits-lt")
    assert exp.parent == tmp_path / "results" and exp.name.endswith("_digits-lt")
    assert new_experiment_dir(tmp_path / "results", "digits-lt") != exp  # never reused
    write_experiment(
        exp,
        {"name": exp.name, "config_key": "k1", "losses": ["ce"], "baselines": ["lr"], "seeds": [0]},
    )
    _ok_run(exp / "runs" / "ce_seed0", loss="ce", kind="loss", seed=0, class_names=["a", "b"])
    results = load_experiment(exp)
    assert results.name == exp.name
    # a planned run without a folder is read back as "missing" and keeps its kind in the tables
    assert [(r.name, r.status, r.kind) for r in results.runs] == [
        ("ce_seed0", "ok", "loss"),
        ("lr_seed0", "missing", "baseline"),
    ]
    assert results.kinds == ["ce", "lr"] and results.class_names == ["a", "b"]
    assert find_experiment(tmp_path / "results", "k1") == exp
    assert find_experiment(tmp_path / "results", "other") is None
    rows = load_metrics(exp)
    assert [(r["name"], r["status"], r.get("summary")) for r in rows] == [
        ("ce_seed0", "ok", {"macro_f1": 0.5}),
        ("lr_seed0", "missing", None),  # planned in experiment.json, no folder (issue 17)
    ]


def test_a_run_is_read_once_for_its_check_until_one_of_its_files_changes(tmp_path, monkeypatch):
    from lossbench import integrity

    run = tmp_path / "runs" / "ce_seed0"
    _ok_run(run)
    reads: list[str] = []
    check = integrity._check_file

    def counted(path, needed):
        reads.append(path.name)
        return check(path, needed)

    monkeypatch.setattr(integrity, "_check_file", counted)
    assert integrity.run_problem(run) is None
    assert sorted(reads) == ["per_class.csv", "predictions.parquet"]
    # the summary, the printed table and the exit code read the run again: its files are not
    assert read_run(run).status == "ok" and load_metrics(tmp_path)[0]["status"] == "ok"
    assert integrity.run_problem(run) is None
    assert len(reads) == 2
    # a file rewritten since the check is read again, and its damage found
    (run / "per_class.csv").write_text("garbage\n")
    assert integrity.run_problem(run) == "per_class.csv is unreadable (ValueError: no class column)"
    assert reads[2:] == ["predictions.parquet", "per_class.csv"]
    (run / "predictions.parquet").unlink()
    assert read_run(run).status == "unreadable"
    assert integrity.run_problem(run) == "predictions.parquet is missing"


def test_a_run_log_is_on_disk_after_every_line_before_it_is_closed(tmp_path):
    """log.txt: one handle for the run, each line flushed as it is logged, so the file is whole
    up to the last line when the process dies without closing it."""
    import logging

    from lossbench.store import run_log

    handler = run_log(tmp_path)
    logger = logging.getLogger("lossbench.test.run_log")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("epoch 1")
        first = (tmp_path / "log.txt").read_text(encoding="utf-8")
        logger.info("epoch 2")
        second = (tmp_path / "log.txt").read_text(encoding="utf-8")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert first.endswith("INFO epoch 1\n") and "epoch 2" not in first
    assert second.splitlines()[0] == first.rstrip("\n") and second.endswith("INFO epoch 2\n")


def test_a_failed_ray_task_leaves_a_failed_run_with_its_reason_in_the_log(tmp_path):
    from lossbench.store import write_failed_task, write_run_files

    run_dir = tmp_path / "runs" / "ce_seed0"
    write_run_files(run_dir, {"metrics.json": b"{}", "DONE": b"x", "log.txt": b"old\n"})
    assert run_status(run_dir) == "unreadable"  # DONE with a metrics.json of no status
    base = {"name": "ce_seed0", "loss": "ce", "kind": "loss", "seed": 0, "class_names": ["a"]}
    metrics = write_failed_task(run_dir, base, "ray task failed: WorkerCrashedError")
    assert metrics["status"] == "failed" and run_status(run_dir) == "failed"
    assert sorted(p.name for p in run_dir.iterdir()) == ["log.txt", "metrics.json"]
    assert (run_dir / "log.txt").read_text() == "ray task failed: WorkerCrashedError\n"
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
