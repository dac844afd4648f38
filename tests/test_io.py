"""Atomic writes (lossbench.io): content, permissions, no temporary file, no half-written target."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pandas as pd
import pytest

from lossbench.io import (
    atomic_path,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
)


def test_text_is_written_and_parent_created(tmp_path):
    target = tmp_path / "a" / "b" / "x.txt"
    atomic_write_text(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    assert os.listdir(target.parent) == ["x.txt"]


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_files_get_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "x.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_json_round_trip_with_non_finite_and_numpy_values(tmp_path):
    obj = {
        "nan": math.nan,
        "inf": -math.inf,
        "np_float": np.float32(0.5),
        "np_int": np.int64(3),
        "array": np.array([1.0, np.nan]),
        "nested": [{"x": (1, math.inf)}],
        3: "int key",
    }
    path = atomic_write_json(tmp_path / "m.json", obj)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {
        "nan": None,
        "inf": None,
        "np_float": 0.5,
        "np_int": 3,
        "array": [1.0, None],
        "nested": [{"x": [1, None]}],
        "3": "int key",
    }


def test_csv_and_parquet_round_trip(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    pd.testing.assert_frame_equal(pd.read_csv(atomic_write_csv(tmp_path / "t.csv", df)), df)
    got = pd.read_parquet(atomic_write_parquet(tmp_path / "t.parquet", df))
    pd.testing.assert_frame_equal(got, df)
    assert sorted(os.listdir(tmp_path)) == ["t.csv", "t.parquet"]
