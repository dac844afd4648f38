"""The data layer (SPEC 2.1-2.5): loading, the CICIDS2017 preset, split, scaling, cache, built-ins.

Expected values come from plain pandas/NumPy/scikit-learn computations in the tests, never from
the code under test.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from lossbench.config import DataOptions
from lossbench.data import BUILTIN_DATASETS, PreparedData, load_table, prepare, preprocess
from lossbench.data.builtin import synthetic_cicids
from lossbench.data.load import normalise_label, read_table
from lossbench.data.split import split_min_count, stratified_split
from lossbench.errors import InputError
from tests.conftest import RAW_GLF, RAW_MLCVE, need_shared

# The MachineLearningCVE header exactly as distributed (leading spaces, Fwd Header Length twice).
MLCVE_HEADER = (
    " Destination Port, Flow Duration, Total Fwd Packets, Total Backward Packets,"
    "Total Length of Fwd Packets, Total Length of Bwd Packets, Fwd Packet Length Max,"
    " Fwd Packet Length Min, Fwd Packet Length Mean, Fwd Packet Length Std,"
    "Bwd Packet Length Max, Bwd Packet Length Min, Bwd Packet Length Mean,"
    " Bwd Packet Length Std,Flow Bytes/s, Flow Packets/s, Flow IAT Mean, Flow IAT Std,"
    " Flow IAT Max, Flow IAT Min,Fwd IAT Total, Fwd IAT Mean, Fwd IAT Std, Fwd IAT Max,"
    " Fwd IAT Min,Bwd IAT Total, Bwd IAT Mean, Bwd IAT Std, Bwd IAT Max, Bwd IAT Min,"
    "Fwd PSH Flags, Bwd PSH Flags, Fwd URG Flags, Bwd URG Flags, Fwd Header Length,"
    " Bwd Header Length,Fwd Packets/s, Bwd Packets/s, Min Packet Length, Max Packet Length,"
    " Packet Length Mean, Packet Length Std, Packet Length Variance,FIN Flag Count,"
    " SYN Flag Count, RST Flag Count, PSH Flag Count, ACK Flag Count, URG Flag Count,"
    " CWE Flag Count, ECE Flag Count, Down/Up Ratio, Average Packet Size,"
    " Avg Fwd Segment Size, Avg Bwd Segment Size, Fwd Header Length,Fwd Avg Bytes/Bulk,"
    " Fwd Avg Packets/Bulk, Fwd Avg Bulk Rate, Bwd Avg Bytes/Bulk, Bwd Avg Packets/Bulk,"
    "Bwd Avg Bulk Rate,Subflow Fwd Packets, Subflow Fwd Bytes, Subflow Bwd Packets,"
    " Subflow Bwd Bytes,Init_Win_bytes_forward, Init_Win_bytes_backward, act_data_pkt_fwd,"
    " min_seg_size_forward,Active Mean, Active Std, Active Max, Active Min,Idle Mean,"
    " Idle Std, Idle Max, Idle Min, Label"
)
ID_COLUMNS = ["Flow ID", "Source IP", "Source Port", "Destination IP", "Timestamp"]


def opts(data: object = None, **kw: object) -> DataOptions:
    return DataOptions(data=None if data is None else str(data), **kw)


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_bytes((header + "\n" + "\n".join(rows) + "\n").encode())
    return path


def two_class_csv(path: Path, n: int = 30, seed: int = 0) -> Path:
    """A small numeric CSV: features a, b, c and a label with classes x (2n/3) and y (n/3)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.uniform(0, 10, n).round(3),
            "b": rng.integers(0, 100, n),
            "c": rng.normal(5, 2, n).round(4),
            "Label": np.where(np.arange(n) % 3 == 0, "y", "x"),
        }
    )
    df.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------------------------
# text normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Web Attack \u2013 Brute Force", "Web Attack - Brute Force"),
        ("Web Attack \u2014 XSS", "Web Attack - XSS"),
        ("  DoS   Hulk \t", "DoS Hulk"),
        ("Web Attack \udc96 Sql Injection", "Web Attack - Sql Injection"),  # cp1252 0x96
        ("Caf\udce9", "Café"),  # cp1252 0xe9
        (1.0, "1"),
        (3, "3"),
    ],
)
def test_normalise_label(raw: object, expected: str) -> None:
    assert normalise_label(raw) == expected


# ----------------------------------------------------------------------------------------------
# raw CICIDS2017 formats (shared files)


def test_raw_machinelearningcve_head_loads_under_the_preset() -> None:
    path = need_shared(RAW_MLCVE)
    df, loaded = read_table(path)
    ref = pd.read_csv(path)
    ref_cols = [c.strip() for c in ref.columns]
    assert list(df.columns)[:3] == ref_cols[:3]  # leading spaces stripped
    assert "Fwd Header Length.1" in df.columns
    table = preprocess(df, opts(path), check_classes=False, loaded=loaded)
    assert table.info["preset"] == "cicids2017"  # auto-detected
    assert "Fwd Header Length.1" not in table.feature_names
    assert "Destination Port" in table.feature_names
    assert len(table.feature_names) == len(ref_cols) - 2  # minus label and duplicate
    numeric = ref.drop(columns=ref.columns[-1]).to_numpy(dtype=float)
    n_bad_rows = int((~np.isfinite(numeric)).any(axis=1).sum())
    assert n_bad_rows > 0  # the file has Infinity cells
    assert len(table.y) == len(ref) - n_bad_rows
    assert table.class_names == ["BENIGN"]
    assert np.isfinite(table.features()).all()


def test_raw_generatedlabelledflows_head_drops_identifiers() -> None:
    path = need_shared(RAW_GLF)
    ref = pd.read_csv(path)
    ref_cols = [c.strip() for c in ref.columns]
    table = preprocess(load_table(path), opts(path), check_classes=False)
    assert table.info["preset"] == "cicids2017"
    assert sorted(table.info["dropped"]["columns"]) == sorted(ID_COLUMNS + ["Fwd Header Length.1"])
    for col in ID_COLUMNS + ["Fwd Header Length.1", "Label"]:
        assert col not in table.feature_names
    assert {"Destination Port", "Protocol"} <= set(table.feature_names)
    assert len(table.feature_names) == len(ref_cols) - len(ID_COLUMNS) - 2
    numeric = ref[[c for c in ref.columns if c.strip() in table.feature_names]]
    n_bad_rows = int((~np.isfinite(numeric.to_numpy(dtype=float))).any(axis=1).sum())
    assert len(table.y) == len(ref) - n_bad_rows


# ----------------------------------------------------------------------------------------------
# a CICIDS2017-format folder built here


def _day_rows(labels: list[bytes], rng: np.random.Generator, n_cols: int) -> list[bytes]:
    zero_cols = {31, 32, 33, 49, 50} | set(range(56, 62))  # flags and bulk columns: constant
    rows = []
    for label in labels:
        values = [str(int(v)).encode() for v in rng.integers(1, 5000, n_cols)]
        for j in zero_cols:
            values[j] = b"0"
        rows.append(b",".join(values) + b"," + label)
    return rows


@pytest.fixture
def cicids_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    header = MLCVE_HEADER.encode()
    n_cols = len(MLCVE_HEADER.split(",")) - 1
    folder = tmp_path / "MachineLearningCVE"
    folder.mkdir()
    empty = b"," * n_cols

    monday = _day_rows([b"BENIGN"] * 30, rng, n_cols)
    (folder / "Monday-WorkingHours.pcap_ISCX.csv").write_bytes(
        b"\n".join([header, *monday, empty]) + b"\n"
    )

    web = (
        [b"Web Attack \x96 Brute Force"] * 5
        + [b"Web Attack \x96 XSS"] * 4
        + [b"Web Attack \x96 Sql Injection"] * 3
    )
    thursday = _day_rows([b"BENIGN"] * 10 + web + [b"Infiltration"] * 2, rng, n_cols)
    # Flow Bytes/s (column 14) = Infinity in one benign row, Flow Packets/s = NaN in another
    cells = thursday[0].split(b",")
    cells[14] = b"Infinity"
    thursday[0] = b",".join(cells)
    cells = thursday[1].split(b",")
    cells[15] = b"NaN"
    thursday[1] = b",".join(cells)
    (folder / "Thursday-WorkingHours-Morning-WebAttacks.pcap_ISCX.csv").write_bytes(
        b"\r\n".join([header, *thursday]) + b"\r\n"
    )

    friday = _day_rows([b"DDoS"] * 20 + [b"PortScan"] * 15 + [b"Heartbleed"] * 2, rng, n_cols)
    (folder / "Friday-WorkingHours-Afternoon-DDos.pcap_ISCX.csv").write_bytes(
        b"\n".join([header, *friday, empty, empty]) + b"\n"
    )
    return folder


def test_cicids_folder_preset(cicids_folder: Path) -> None:
    data = prepare(opts(cicids_folder, cache=False))
    assert data.info["preset"] == "cicids2017"
    assert data.class_names == ["BENIGN", "DDoS", "PortScan", "Web Attack"]
    total = data.class_counts("train") + data.class_counts("val") + data.class_counts("test")
    # BENIGN: 30 + 10, minus the Infinity row and the NaN row; web attacks merged: 5 + 4 + 3
    assert dict(zip(data.class_names, total.tolist(), strict=True)) == {
        "BENIGN": 38,
        "DDoS": 20,
        "PortScan": 15,
        "Web Attack": 12,
    }
    dropped = data.info["dropped"]
    assert dropped["rows_empty"] == 3
    assert dropped["rows_missing"] == 2
    assert dropped["classes"] == {"Heartbleed": 2, "Infiltration": 2}
    assert dropped["columns"] == ["Fwd Header Length.1"]
    header = [c.strip() for c in MLCVE_HEADER.split(",")][:-1]
    constant = [header[j] for j in sorted({31, 32, 33, 49, 50} | set(range(56, 62)))]
    assert sorted(dropped["constant_columns"]) == sorted(constant)
    assert sorted(data.feature_names) == sorted(set(header) - set(constant))
    assert data.n_features == 78 - 1 - len(constant)
    assert data.X_train.shape == (len(data.y_train), data.n_features)
    assert data.info["raw_classes"]["Web Attack - Brute Force"] == 5
    assert data.info["raw_classes"]["Web Attack - Sql Injection"] == 3
    assert sorted(data.info["merged"]["Web Attack"]) == [
        "Web Attack - Brute Force",
        "Web Attack - Sql Injection",
        "Web Attack - XSS",
    ]
    # Row ids count the rows of the files in name order, empty rows included: Friday (37 + 2
    # empty), Monday (30 + 1 empty), then Thursday, whose first two rows were dropped.
    thursday = 39 + 31
    all_ids = set(np.concatenate([data.ids_train, data.ids_val, data.ids_test]).tolist())
    assert thursday not in all_ids and thursday + 1 not in all_ids
    assert thursday + 2 in all_ids
    assert len(all_ids) == 38 + 20 + 15 + 12


def test_folder_with_disagreeing_columns_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "days"
    folder.mkdir()
    two_class_csv(folder / "a.csv")
    (folder / "b.csv").write_text("a,b,zzz,Label\n1,2,3,x\n")
    with pytest.raises(InputError, match=r"b\.csv.*zzz"):
        load_table(folder)


def test_cp1252_header_and_blank_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"caf\xe9 , b ,Label\n1,2,x\n\n3,4,y\n,,\n5,6,x\n")
    df, loaded = read_table(path)
    assert list(df.columns) == ["café", "b", "Label"]
    assert df["café"].tolist() == [1, 3, 5]
    assert loaded.n_empty_rows == 2
    assert not df.attrs  # what the read found travels in LoadInfo, not in the DataFrame


# ----------------------------------------------------------------------------------------------
# formats


def test_gzip_and_parquet_load_like_the_csv(tmp_path: Path) -> None:
    csv = two_class_csv(tmp_path / "t.csv", n=45)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(csv.read_bytes()))
    pq = tmp_path / "t.parquet"
    pd.read_csv(csv).to_parquet(pq)
    ref = pd.read_csv(csv)
    ref = ref.astype({c: np.float32 for c in ref.columns if c != "Label"})  # streamed: float32
    for path in (csv, gz, pq):
        df = load_table(path)
        pd.testing.assert_frame_equal(
            df.reset_index(drop=True), ref, check_dtype=False, check_exact=True
        )
    a = prepare(opts(csv, cache=False))
    b = prepare(opts(pq, cache=False))
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_generic_csv_one_hot_encodes_few_level_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 40
    proto = rng.choice(["tcp", "udp", "icmp"], n)
    df = pd.DataFrame(
        {"bytes": rng.integers(0, 1000, n), "proto": proto, "Label": np.tile(["a", "b"], n // 2)}
    )
    path = tmp_path / "g.csv"
    df.to_csv(path, index=False)
    data = prepare(opts(path, cache=False))
    assert data.info["preset"] == "none"
    assert data.feature_names == ["bytes", "proto=icmp", "proto=tcp", "proto=udp"]
    for X, ids in ((data.X_train, data.ids_train), (data.X_test, data.ids_test)):
        onehot = X[:, 1:]
        assert set(np.unique(onehot)) <= {0.0, 1.0}
        np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)
        expected = np.stack([proto[ids] == p for p in ("icmp", "tcp", "udp")], axis=1)
        np.testing.assert_array_equal(onehot, expected.astype(np.float32))
    with pytest.raises(InputError, match=r"'proto'.*3 distinct"):
        prepare(opts(path, cache=False, max_onehot_levels=2))


# ----------------------------------------------------------------------------------------------
# split and scaling


def test_stratified_split_sizes_and_seed() -> None:
    y = np.repeat(np.arange(4), [100, 37, 9, 3])
    tr, va, te = stratified_split(y, (0.6, 0.2, 0.2), seed=5)
    assert len(np.intersect1d(tr, va)) == len(np.intersect1d(tr, te)) == 0
    assert len(np.intersect1d(va, te)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(len(y)))
    for k, n_k in enumerate([100, 37, 9, 3]):
        expect = max(1, int(np.floor(0.2 * n_k + 0.5)))
        assert (y[va] == k).sum() == expect
        assert (y[te] == k).sum() == expect
        assert (y[tr] == k).sum() == n_k - 2 * expect >= 1
    again = stratified_split(y, (0.6, 0.2, 0.2), seed=5)
    other = stratified_split(y, (0.6, 0.2, 0.2), seed=6)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again, strict=True))
    assert not np.array_equal(te, other[2])
    assert split_min_count((0.6, 0.2, 0.2)) == 3


def test_scaler_sees_only_training_rows(tmp_path: Path) -> None:
    path = two_class_csv(tmp_path / "s.csv", n=60)
    first = prepare(opts(path, cache=False))
    # Put extreme values only in validation and test rows; the split depends on labels and seed.
    df = pd.read_csv(path)
    df.loc[first.ids_val, "a"] = 1e6
    df.loc[first.ids_test, "a"] = -1e6
    df.loc[first.ids_test, "c"] = 1e4
    df.to_csv(path, index=False)
    data = prepare(opts(path, cache=False))
    for name in ("ids_train", "ids_val", "ids_test"):
        np.testing.assert_array_equal(getattr(data, name), getattr(first, name))

    train = df.loc[data.ids_train, ["a", "b", "c"]].to_numpy(np.float32)
    lo, hi = train.min(axis=0), train.max(axis=0)
    assert data.info["scaler"]["kind"] == "minmax"
    np.testing.assert_array_equal(np.float32(data.info["scaler"]["min"]), lo)
    np.testing.assert_array_equal(np.float32(data.info["scaler"]["max"]), hi)
    assert data.X_train.min() >= 0.0 and data.X_train.max() <= 1.0
    np.testing.assert_allclose(data.X_train, (train - lo) / (hi - lo), atol=1e-6)
    for X, ids in ((data.X_val, data.ids_val), (data.X_test, data.ids_test)):
        raw = df.loc[ids, ["a", "b", "c"]].to_numpy(np.float32)
        np.testing.assert_allclose(X, np.clip((raw - lo) / (hi - lo), 0, 1), atol=1e-6)
        assert X.min() >= 0.0 and X.max() <= 1.0
    np.testing.assert_array_equal(data.X_val[:, 0], 1.0)
    np.testing.assert_array_equal(data.X_test[:, 0], 0.0)
    for X in (data.X_train, data.X_val, data.X_test):
        assert X.dtype == np.float32 and X.flags.c_contiguous

    std = prepare(opts(path, cache=False, scaler="standard"))
    mean, sd = train.astype(np.float64).mean(axis=0), train.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(std.info["scaler"]["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(std.info["scaler"]["std"], sd, rtol=1e-5)
    np.testing.assert_allclose(std.X_train, (train - mean) / sd, atol=1e-4)
    raw_test = df.loc[std.ids_test, ["a", "b", "c"]].to_numpy(np.float64)
    np.testing.assert_allclose(std.X_test, (raw_test - mean) / sd, rtol=1e-4)


@pytest.mark.parametrize("block", [7, 64, 8192])
def test_gather_rows_fills_scales_and_transposes_in_blocks(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    from lossbench.data import table
    from lossbench.data.split import Scaler

    monkeypatch.setattr(table, "_BLOCK_ROWS", block)
    rng = np.random.default_rng(3)
    n = 200
    floats = rng.normal(5, 3, n)
    floats[[3, 50, 199]] = [np.inf, np.nan, -np.inf]
    huge = rng.normal(0, 1, n)
    huge[10] = 1e300  # beyond float32: missing
    ints = rng.integers(-50, 50, n)
    columns = [floats, huge, ints]
    perm = rng.permutation(n)
    # Any order, with a partial last block; rows 3 and 10 hold missing values.
    rows = np.concatenate([[10, 3], perm[~np.isin(perm, [10, 3])][:148]])
    fill = np.array([2.5, np.nan, 0.0], dtype=np.float32)
    stats = {"min": np.array([0.0, -1.0, -50.0]), "max": np.array([10.0, 1.0, 49.0])}
    stats |= {"mean": np.zeros(3), "std": np.zeros(3)}
    scaler = Scaler.from_stats("minmax", stats)

    got = table.gather_rows(columns, rows, fill=fill, scaler=scaler)
    ref = np.column_stack([c[rows] for c in columns]).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        missing = ~(np.abs(ref.astype(np.float32)) <= np.finfo(np.float32).max)
    ref = np.where(missing, fill.astype(np.float64), ref)
    ref = np.clip((ref - stats["min"]) / (stats["max"] - stats["min"]), 0, 1)
    assert got.shape == (150, 3) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert np.isnan(got[0, 1])  # row 10's value beyond float32 range, no fill for the column
    assert got[1, 0] == np.float32(0.25)  # row 3's infinity filled with 2.5, then scaled

    plain = table.gather_rows(columns, rows, check=False)
    np.testing.assert_array_equal(
        plain, np.column_stack([c[rows] for c in columns]).astype(np.float32)
    )
    assert table.gather_rows(columns, rows[:0]).shape == (0, 3)


def test_gather_rows_transposes_wide_blocks_a_group_of_columns_at_a_time(monkeypatch) -> None:
    """A block wider than `_TRANSPOSE_COLUMNS` is written into the result a group of columns at
    a time, the last group partial: every value lands at its row and column."""
    from lossbench.data import table

    monkeypatch.setattr(table, "_BLOCK_ROWS", 64)
    rng = np.random.default_rng(3)
    n_cols = 2 * table._TRANSPOSE_COLUMNS + 5
    columns = [rng.standard_normal(500).astype(np.float32) for _ in range(n_cols)]
    rows = rng.permutation(500)[:300]
    got = table.gather_rows(columns, rows, check=False)
    assert got.shape == (300, n_cols) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.column_stack([c[rows] for c in columns]))


def test_nan_policies(tmp_path: Path) -> None:
    path = two_class_csv(tmp_path / "m.csv", n=30)
    df = pd.read_csv(path)
    df["c"] = df["c"].astype(object)
    df.loc[[4, 11], "c"] = "Infinity"
    df.loc[17, "c"] = np.nan
    df.to_csv(path, index=False)
    dropped = prepare(opts(path, cache=False))
    ids = np.concatenate([dropped.ids_train, dropped.ids_val, dropped.ids_test])
    assert sorted(set(range(30)) - set(ids.tolist())) == [4, 11, 17]
    assert dropped.info["dropped"]["rows_missing"] == 3

    filled = prepare(opts(path, cache=False, nan_policy="median", scaler="standard"))
    c = pd.to_numeric(df["c"], errors="coerce").replace(np.inf, np.nan)
    median = float(np.median(c.loc[filled.ids_train].dropna().to_numpy(np.float32)))
    assert filled.info["median_fill"]["c"] == pytest.approx(median, rel=1e-6)
    assert len(filled.y_train) + len(filled.y_val) + len(filled.y_test) == 30
    for X in (filled.X_train, filled.X_val, filled.X_test):
        assert np.isfinite(X).all()

    with pytest.raises(InputError, match=r"'c'.*row 5 \(line 6\)"):
        prepare(opts(path, cache=False, nan_policy="error"))


def test_median_fill_without_training_values_warns(tmp_path: Path) -> None:
    path = two_class_csv(tmp_path / "m.csv", n=30)
    split = prepare(opts(path, cache=False))
    df = pd.read_csv(path)
    df["c"] = df["c"].astype(object)
    df.loc[split.ids_train, "c"] = "Infinity"  # values of c only outside the training rows
    df.to_csv(path, index=False)
    filled = prepare(opts(path, cache=False, nan_policy="median"))
    np.testing.assert_array_equal(filled.ids_train, split.ids_train)
    assert filled.info["median_fill"] == {"c": 0.0}
    assert any("no training values" in w and "'c'" in w for w in filled.info["warnings"])
    assert np.isfinite(filled.X_train).all()


def test_min_class_count_drops_small_classes_with_a_warning(tmp_path: Path) -> None:
    rows = [f"{i},{i % 7},{'x' if i < 20 else 'y' if i < 40 else 'rare'}" for i in range(42)]
    path = write_csv(tmp_path / "r.csv", "a,b,Label", rows)
    with pytest.raises(InputError, match=r"'rare' has 2 rows.*min_class_count 3"):
        prepare(opts(path, cache=False))
    data = prepare(opts(path, cache=False, min_class_count=5))
    assert data.class_names == ["x", "y"]
    assert data.info["dropped"]["classes"] == {"rare": 2}
    assert any("rare" in w for w in data.info["warnings"])


def test_drop_and_merge_options(tmp_path: Path) -> None:
    labels = ["A1"] * 10 + ["A2"] * 10 + ["B"] * 12 + ["C"] * 9
    rows = [f"{i},{i * 3 % 11},{lab}" for i, lab in enumerate(labels)]
    path = write_csv(tmp_path / "dm.csv", "a,b,Label", rows)
    data = prepare(opts(path, cache=False, merge=["A=A*"], drop_classes=["C"]))
    assert data.class_names == ["A", "B"]
    counts = data.class_counts("train") + data.class_counts("val") + data.class_counts("test")
    assert counts.tolist() == [20, 12]


# ----------------------------------------------------------------------------------------------
# cache


def _entries(root: Path) -> list[Path]:
    folder = root / "prepared"
    return (
        sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []
    )


def test_cache_hit_miss_and_bypass(tmp_path: Path) -> None:
    root = tmp_path / "cache"  # LOSSBENCH_CACHE (conftest)
    assert os.environ["LOSSBENCH_CACHE"] == str(root)
    path = two_class_csv(tmp_path / "c.csv", n=45)
    base = opts(path)
    first = prepare(base)
    assert first.info["cache_hit"] is False
    assert isinstance(first.X_train, np.memmap)  # the entry just written, memory-mapped
    assert len(_entries(root)) == 1
    second = prepare(base)
    assert second.info["cache_hit"] is True
    assert second.fingerprint == first.fingerprint
    assert isinstance(second.X_train, np.memmap)
    for name in ("X_train", "X_val", "X_test", "y_train", "y_val", "y_test", "ids_test"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    assert second.class_names == first.class_names
    assert second.feature_names == first.feature_names

    # never pickle: every array loads with allow_pickle=False; metadata is JSON
    entry = _entries(root)[0]
    for f in entry.iterdir():
        assert f.suffix in (".npy", ".json")
        if f.suffix == ".npy":
            np.load(f, allow_pickle=False)
    json.loads((entry / "meta.json").read_text())

    for changed in (
        dataclasses.replace(base, scaler="standard"),
        dataclasses.replace(base, split=(0.5, 0.25, 0.25)),
        dataclasses.replace(base, seed=1),
    ):
        assert prepare(changed).info["cache_hit"] is False

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touch
    assert prepare(base).info["cache_hit"] is False
    assert prepare(base).info["cache_hit"] is True

    n = len(_entries(root))
    bypass = prepare(dataclasses.replace(base, cache=False))
    assert bypass.info["cache_hit"] is False
    assert not isinstance(bypass.X_train, np.memmap)
    assert len(_entries(root)) == n

    other = tmp_path / "other-cache"
    prepare(dataclasses.replace(base, cache_dir=str(other)))
    assert len(_entries(other)) == 1


def test_builtin_datasets_are_cached() -> None:
    a = prepare(opts("digits-lt"))
    b = prepare(opts("digits-lt"))
    assert (a.info["cache_hit"], b.info["cache_hit"]) == (False, True)
    np.testing.assert_array_equal(a.X_test, b.X_test)


# ----------------------------------------------------------------------------------------------
# built-in datasets


def test_builtin_names() -> None:
    assert BUILTIN_DATASETS == ("digits-lt", "synthetic-cicids")


def test_digits_lt() -> None:
    data = prepare(opts(cache=False))  # the default dataset
    assert isinstance(data, PreparedData)
    assert data.name == "digits-lt"
    assert data.n_classes == 10 and data.n_features == 64
    counts = data.class_counts("train") + data.class_counts("val") + data.class_counts("test")
    expected = [round(180 * 10 ** (-k / 9)) for k in range(10)]
    assert sorted(counts.tolist(), reverse=True) == expected
    assert max(counts) / min(counts) == 10
    assert min(data.class_counts("test")) >= 1

    # rows are the bundled digits (ids index them), scaled with training statistics only
    digits = load_digits()
    train = digits.data[data.ids_train].astype(np.float32)
    lo, hi = train.min(axis=0), train.max(axis=0)
    rng = np.where(hi > lo, hi - lo, 1)
    np.testing.assert_allclose(data.X_train, (train - lo) / rng, atol=1e-6)
    test = digits.data[data.ids_test].astype(np.float32)
    np.testing.assert_allclose(data.X_test, np.clip((test - lo) / rng, 0, 1), atol=1e-6)
    labels = [data.class_names[k] for k in data.y_test]
    assert labels == [str(t) for t in digits.target[data.ids_test]]


def test_synthetic_cicids_shape_and_proportions() -> None:
    data = prepare(opts("synthetic-cicids", cache=False))
    assert data.n_features == 66
    table_i = {
        "BENIGN": 75.6,
        "DoS Hulk": 8.0,
        "PortScan": 5.5,
        "DDoS": 4.4,
        "DoS GoldenEye": 0.35,
        "FTP-Patator": 0.27,
        "SSH-Patator": 0.20,
        "DoS slowloris": 0.20,
        "DoS Slowhttptest": 0.19,
        "Bot": 0.07,
        "Web Attack": 0.07,
    }
    assert sorted(data.class_names) == sorted(table_i)
    counts = data.class_counts("train") + data.class_counts("val") + data.class_counts("test")
    assert counts.sum() == 91_142
    total_pct = sum(table_i.values())
    for name, n in zip(data.class_names, counts.tolist(), strict=True):
        assert abs(n - 91_142 * table_i[name] / total_pct) < 1
        assert n >= 60
    assert np.isfinite(data.X_train).all()


def test_synthetic_cicids_is_deterministic_and_learnable() -> None:
    a, b, c = synthetic_cicids(seed=0), synthetic_cicids(seed=0), synthetic_cicids(seed=1)
    np.testing.assert_array_equal(a.features(), b.features())
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.features(), c.features())

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    data = prepare(opts("synthetic-cicids", sample_frac=0.2, cache=False))
    clf = LogisticRegression(max_iter=300).fit(data.X_train, data.y_train)
    macro_f1 = f1_score(data.y_test, clf.predict(data.X_test), average="macro")
    assert 0.4 < macro_f1 < 0.9  # learnable, but not by a linear model alone


def test_sample_frac_is_stratified() -> None:
    full = prepare(opts("synthetic-cicids", cache=False))
    part = prepare(opts("synthetic-cicids", sample_frac=0.1, cache=False))
    n_full = full.class_counts("train") + full.class_counts("val") + full.class_counts("test")
    n_part = part.class_counts("train") + part.class_counts("val") + part.class_counts("test")
    expected = np.maximum(np.floor(0.1 * n_full + 0.5), 3)
    np.testing.assert_array_equal(n_part, expected)
