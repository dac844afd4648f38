"""`lossbench inspect`: the class table, data-quality report and the one-line errors of SPEC 2.5."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import CICIDS_SAMPLE, need_shared


def test_inspect_default_is_digits_lt(cli) -> None:
    res = cli("inspect", "--json")
    assert res.code == 0, res.err
    info = json.loads(res.out)
    assert info["name"] == "digits-lt"
    assert len(info["classes"]) == 10
    assert info["imbalance_ratio"] == 10
    expected = [round(180 * 10 ** (-k / 9)) for k in range(10)]
    assert sorted(info["classes"].values(), reverse=True) == expected
    assert info["n_rows"] == sum(expected)
    assert info["n_features"] == 64
    assert info["preset"] == "none"
    assert (info["n_missing"], info["n_infinite"]) == (0, 0)


def test_inspect_prints_a_class_table(cli) -> None:
    res = cli("inspect")
    assert res.code == 0, res.err
    assert "classes" in res.out and "imbalance ratio" in res.out
    first = res.out.splitlines()
    assert any("180" in line and "24.46%" in line for line in first)  # 180 / 736
    # readable sections, rounded numbers, no raw key/value dump
    assert {"Dataset", "Data quality", "Preprocessing"} <= {ln.strip() for ln in first}
    assert "10.00 (largest / smallest class)" in res.out
    assert "imbalance_ratio:" not in res.out and "{" not in res.out


def test_inspect_explains_the_duplicate_counts(cli) -> None:
    """The file's extra copies (before preprocessing) and, after it, the rows involved and the
    extra copies that --dedupe removes: counted here with pandas on the same rows."""
    path = need_shared(CICIDS_SAMPLE)
    info = json.loads(cli("inspect", "--data", str(path), "--json").out)
    res = cli("inspect", "--data", str(path), "--dedupe", "--json")
    removed = json.loads(res.out)["dropped"]["rows_duplicate"]
    assert info["duplicates"]["extra_copies"] == removed  # what --dedupe drops
    assert info["duplicates"]["rows_involved"] > removed
    assert info["n_duplicate_rows"] == int(pd.read_csv(path).duplicated().sum())
    text = cli("inspect", "--data", str(path)).out
    assert f"{info['duplicates']['rows_involved']:,} rows have an identical twin" in text
    assert f"{removed:,} of them are extra copies, the rows --dedupe" in " ".join(text.split())


def test_inspect_cicids_sample(cli) -> None:
    path = need_shared(CICIDS_SAMPLE)
    res = cli("inspect", "--data", str(path), "--json")
    assert res.code == 0, res.err
    info = json.loads(res.out)
    for key in ("n_rows", "n_features", "classes", "raw_classes", "imbalance_ratio", "n_missing"):
        assert key in info
    assert info["raw_classes"] == {
        "WebAttack": 2180,
        "Bot": 1966,
        "DoS": 952,
        "BruteForce": 553,
        "PortScan": 397,
        "BENIGN": 227,
        "Infiltration": 36,
    }
    assert info["preset"] == "cicids2017"

    # independent counts with plain pandas/numpy
    df = pd.read_csv(path)
    features = df.drop(columns="Label")
    values = features.to_numpy(dtype=np.float64)
    assert info["n_missing"] == int(df.isna().sum().sum()) > 0
    assert info["n_infinite"] == int(np.isinf(values).sum()) > 0
    assert info["n_duplicate_rows"] == int(df.duplicated().sum())
    constant = [c for c in features.columns if features[c].nunique(dropna=False) == 1]
    assert len(constant) == 12
    assert sorted(info["constant_columns"]) == sorted(constant)

    bad_row = ~np.isfinite(values).all(axis=1)
    kept = df.loc[~bad_row & (df["Label"] != "Infiltration"), "Label"]
    assert info["classes"] == kept.value_counts().to_dict()
    assert info["n_rows"] == len(kept)
    counts = kept.value_counts()
    assert info["imbalance_ratio"] == pytest.approx(counts.max() / counts.min())
    n_features = features.shape[1] - 1 - len(constant)  # minus Fwd Header Length.1
    assert info["n_features"] == n_features
    assert info["dropped"]["columns"] == ["Fwd Header Length.1"]
    assert info["dropped"]["classes"] == {"Infiltration": 36}
    assert info["dropped"]["rows_missing"] == int(bad_row.sum())


def test_inspect_synthetic_cicids(cli) -> None:
    res = cli("inspect", "--data", "synthetic-cicids", "--json")
    assert res.code == 0, res.err
    info = json.loads(res.out)
    assert info["n_rows"] == 91_142 and info["n_features"] == 66 and len(info["classes"]) == 11


# ----------------------------------------------------------------------------------------------
# bad input (SPEC 2.5): exit code 2, one line on stderr naming the problem


def _csv(text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "bad.csv"
        path.write_text(text)
        return path

    return make


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return make


def _rows(header: str, rows: list[str]) -> Callable[[Path], Path]:
    return _csv(header + "\n" + "\n".join(rows) + "\n")


def _folder(tmp: Path) -> Path:
    folder = tmp / "days"
    folder.mkdir()
    (folder / "a.csv").write_text("x,y,Label\n" + "".join(f"{i},{i},A\n" for i in range(9)))
    (folder / "b.csv").write_text("x,z,Label\n1,2,A\n")
    return folder


_GOOD = [f"{i},{i * 2 % 7},{'A' if i % 2 else 'B'}" for i in range(20)]

BAD_INPUTS = {
    "missing file": (lambda tmp: tmp / "nope.csv", r"nope\.csv: no such file"),
    "empty file": (_bytes("empty.csv", b""), r"empty\.csv: empty file"),
    "header only": (_csv("a,b,Label\n"), r"header only"),
    "no label column": (
        _rows("a,b,c", [f"{i},{i % 3},{i * 0.37:.2f}" for i in range(20)]),
        r"no label column.*'c'.*label_col",
    ),
    "one class": (_rows("a,b,Label", [f"{i},{i},BENIGN" for i in range(20)]), r"one class"),
    "class too small": (
        _rows("a,b,Label", _GOOD + ["3,4,Tiny", "5,6,Tiny"]),
        r"'Tiny' has 2 rows.*--min-class-count.*--drop-classes|"
        r"'Tiny' has 2 rows.*drop_classes.*min_class_count",
    ),
    "all-missing column": (
        _rows("a,b,Label", [f"{i},,{'A' if i % 2 else 'B'}" for i in range(20)]),
        r"column 'b' is entirely missing",
    ),
    "junk in a numeric column": (
        _rows("a,b,Label", _GOOD[:7] + ["7,oops,A"] + _GOOD[8:]),
        r"column 'b'.*'oops'.*row 8 \(line 9\)",
    ),
    "duplicate column names": (
        _rows("a,b, a,Label", [f"{i},{i},{i},{'A' if i % 2 else 'B'}" for i in range(20)]),
        r"duplicate column name 'a'",
    ),
    "binary junk": (_bytes("junk.csv", bytes(range(256)) * 8), r"not a CSV or Parquet file"),
    "xlsx workbook": (
        _bytes("book.xlsx", b"PK\x03\x04" + bytes(200)),
        r"book\.xlsx: not a CSV or Parquet file",
    ),
    "corrupt parquet": (_bytes("t.parquet", b"PAR1" + b"x" * 100), r"not a valid Parquet file"),
    "folder with disagreeing columns": (_folder, r"b\.csv: columns disagree"),
    "unknown built-in or typo": (lambda tmp: Path("digits-lr"), r"digits-lr: no such file"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(cli, tmp_path: Path, case: str) -> None:
    make, pattern = BAD_INPUTS[case]
    path = make(tmp_path)
    res = cli("inspect", "--data", str(path))
    assert res.code == 2, (res.out, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert "Traceback" not in res.err
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert res.out == ""


def test_min_class_count_turns_the_error_into_a_warning(cli, tmp_path: Path) -> None:
    path = _rows("a,b,Label", _GOOD + ["3,4,Tiny", "5,6,Tiny"])(tmp_path)
    res = cli("inspect", "--data", str(path), "--min-class-count", "3", "--json")
    assert res.code == 0, res.err
    info = json.loads(res.out)
    assert set(info["classes"]) == {"A", "B"}
    assert info["dropped"]["classes"] == {"Tiny": 2}
    assert any("Tiny" in w for w in info["warnings"])


def test_inspect_writes_nothing(cli, tmp_path: Path) -> None:
    path = _rows("a,b,Label", _GOOD)(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert cli("inspect", "--data", str(path)).code == 0
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
