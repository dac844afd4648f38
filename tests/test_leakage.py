"""Leakage through exact duplicates (val/test rows equal to a training row) and --dedupe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench.config import DataOptions
from lossbench.data import cache as cache_mod
from lossbench.data import prepare
from lossbench.data.leakage import duplicate_rows, leakage_report
from tests.conftest import CICIDS_SAMPLE, need_shared


def test_leakage_counts_on_handmade_arrays():
    X_train = np.array([[1, 2], [1, 2], [3, 4], [5, 6], [0.0, 9]], dtype=np.float32)
    y_train = np.array([0, 1, 1, 1, 0])
    X_val = np.array([[1, 2], [3, 4], [7, 8], [-0.0, 9]], dtype=np.float32)
    y_val = np.array([0, 0, 1, 0])
    X_test = np.array([[5, 6], [5, 6], [2, 1], [3, 4]], dtype=np.float32)
    y_test = np.array([1, 0, 1, 1])
    out = leakage_report(X_train, y_train, X_val, y_val, X_test, y_test, ["a", "b"])
    assert json.loads(json.dumps(out)) == out
    # val: [1,2]/0 dup (train labels 0 and 1: same and conflicting); [3,4]/0 dup, conflicting;
    # [7,8] new; [-0,9]/0 dup of [0,9]/0, same label
    assert out["val"] == {
        "rows": 4,
        "duplicates": 3,
        "same_label": 2,
        "conflicting_label": 2,
        "per_class": {
            "a": {"rows": 3, "duplicates": 3, "same_label": 2, "conflicting_label": 2},
            "b": {"rows": 1, "duplicates": 0, "same_label": 0, "conflicting_label": 0},
        },
    }
    # test: [5,6]/1 same; [5,6]/0 conflicting; [2,1] new; [3,4]/1 same
    assert out["test"]["per_class"] == {
        "a": {"rows": 1, "duplicates": 1, "same_label": 0, "conflicting_label": 1},
        "b": {"rows": 3, "duplicates": 2, "same_label": 2, "conflicting_label": 0},
    }
    assert (out["test"]["duplicates"], out["test"]["same_label"]) == (3, 2)


def test_leakage_finds_duplicates_whatever_the_hash(monkeypatch):
    from lossbench.data import leakage

    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, size=(400, 3)).astype(np.float32)  # 27 distinct rows: many repeats
    y = rng.integers(0, 2, size=400)
    ref = leakage_report(X[:200], y[:200], X[200:300], y[200:300], X[300:], y[300:], ["a", "b"])
    train = {tuple(r) for r in X[:200]}
    assert ref["val"]["duplicates"] == sum(tuple(r) in train for r in X[200:300])
    # every row hashed alike: the collision check must still group by the exact bytes
    monkeypatch.setattr(
        leakage, "_row_hashes", lambda words, _: np.zeros(sum(map(len, words)), np.uint64)
    )
    same = leakage_report(X[:200], y[:200], X[200:300], y[200:300], X[300:], y[300:], ["a", "b"])
    assert same == ref


def test_duplicate_rows_compares_features_and_label():
    cols = [np.array([1.0, 1.0, 1.0, np.nan, np.nan, 2.0]), np.array([5, 5, 5, 6, 6, 7])]
    rows = np.arange(6)
    y = np.array([0, 0, 1, 0, 0, 0])
    assert duplicate_rows(cols, rows, y).tolist() == [False, True, False, False, True, False]
    assert duplicate_rows(cols, rows[2:], y[2:]).tolist() == [False, False, True, False]


def _csv_with_duplicates(tmp_path: Path) -> tuple[Path, int]:
    """300 distinct rows, 90 exact repeats of them, and 10 feature repeats with another label."""
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    df["Label"] = np.where(np.arange(n) % 3 == 0, "attack", "benign")
    repeats = df.iloc[rng.choice(n, size=90, replace=False)]
    flipped = df.iloc[:10].copy()
    flipped["Label"] = np.where(flipped["Label"] == "attack", "benign", "attack")
    full = pd.concat([df, repeats, flipped]).sample(frac=1.0, random_state=0)
    path = tmp_path / "dups.csv"
    full.to_csv(path, index=False)
    return path, 90


def test_dedupe_drops_exact_repeats_and_leaves_no_same_label_leak(tmp_path):
    path, n_repeats = _csv_with_duplicates(tmp_path)
    plain = prepare(DataOptions(data=str(path), cache=False))
    assert plain.info["dedupe"] is False
    assert plain.info["dropped"]["rows_duplicate"] == 0
    leak = plain.leakage()
    assert leak["val"]["same_label"] + leak["test"]["same_label"] > 0

    dedup = prepare(DataOptions(data=str(path), cache=False, dedupe=True))
    assert dedup.info["dropped"]["rows_duplicate"] == n_repeats
    assert dedup.info["n_rows"] == plain.info["n_rows"] - n_repeats == 310
    leak = dedup.leakage()
    assert leak["val"]["same_label"] == leak["test"]["same_label"] == 0
    # rows with the same features and another label are not duplicates: they stay
    assert leak["val"]["conflicting_label"] + leak["test"]["conflicting_label"] > 0
    # checked independently: no val/test row equals a training row with the same label
    train = {(tuple(r), c) for r, c in zip(dedup.X_train.tolist(), dedup.y_train, strict=True)}
    for X, y in ((dedup.X_val, dedup.y_val), (dedup.X_test, dedup.y_test)):
        assert not any((tuple(r), c) in train for r, c in zip(X.tolist(), y, strict=True))


def test_dedupe_is_part_of_the_cache_key(tmp_path):
    path, _ = _csv_with_duplicates(tmp_path)
    sig = cache_mod.file_signature([path])
    keys = {cache_mod.fingerprint(sig, DataOptions(data=str(path), dedupe=d)) for d in (0, 1)}
    assert len(keys) == 2
    first = prepare(DataOptions(data=str(path), cache_dir=str(tmp_path / "c")))
    other = prepare(DataOptions(data=str(path), cache_dir=str(tmp_path / "c"), dedupe=True))
    again = prepare(DataOptions(data=str(path), cache_dir=str(tmp_path / "c"), dedupe=True))
    assert not first.info["cache_hit"] and not other.info["cache_hit"] and again.info["cache_hit"]
    assert len(again.y_train) < len(first.y_train)
    assert "leakage" not in again.info  # computed on demand, not on the ingest path
    assert again.leakage() == other.leakage() == again.info["leakage"]


def test_inspect_shows_leakage_and_dedupe(cli, tmp_path):
    path, n_repeats = _csv_with_duplicates(tmp_path)
    plain = json.loads(cli("inspect", "--data", str(path), "--json").out)
    dedup = json.loads(cli("inspect", "--data", str(path), "--dedupe", "--json").out)
    assert plain["dedupe"] is False and dedup["dedupe"] is True
    assert dedup["n_rows"] == plain["n_rows"] - n_repeats
    assert dedup["dropped"]["rows_duplicate"] == n_repeats
    assert plain["leakage"]["test"]["same_label"] > 0 == dedup["leakage"]["test"]["same_label"]
    res = cli("inspect", "--data", str(path))
    assert res.code == 0, res.err
    assert "leakage" in res.out and "test duplicates" in res.out


def test_inspect_leakage_on_the_cicids_sample(cli):
    path = need_shared(CICIDS_SAMPLE)
    plain = json.loads(cli("inspect", "--data", str(path), "--json").out)
    dedup = json.loads(cli("inspect", "--data", str(path), "--dedupe", "--json").out)
    assert dedup["dropped"]["rows_duplicate"] > 0
    assert dedup["n_rows"] == plain["n_rows"] - dedup["dropped"]["rows_duplicate"]
    assert plain["leakage"]["test"]["duplicates"] > 0
    for split in ("val", "test"):
        assert dedup["leakage"][split]["same_label"] == 0
        per_class = plain["leakage"][split]["per_class"]
        assert set(per_class) == set(plain["classes"])
        assert (
            sum(c["duplicates"] for c in per_class.values())
            == plain["leakage"][split]["duplicates"]
        )


def test_run_records_dedupe_and_leakage_in_experiment_json(cli, tmp_path):
    path, n_repeats = _csv_with_duplicates(tmp_path)
    out = tmp_path / "out"
    args = ("--data", path, "--out", out, "--device", "cpu", "--epochs", "1", "--model", "mlp")
    res = cli("run", *args, "--dedupe", "--quiet")
    assert res.code == 0, res.err
    (exp,) = out.glob("*/experiment.json")
    saved = json.loads(exp.read_text())
    assert saved["data"]["dedupe"] is True
    assert saved["data_info"]["dropped"]["rows_duplicate"] == n_repeats
    assert saved["data_info"]["leakage"]["test"]["same_label"] == 0
    assert "--dedupe" in cli("compare", "--help").out
