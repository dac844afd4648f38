"""Streaming ingest (issue 35): CSVs parsed file by file in chunks into float32 columns equal the
one-shot read, value by value and label by label."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CICIDS_SAMPLE, need_shared

from lossbench.bench import CICIDS_HEADER, CICIDS_LABELS
from lossbench.config import DataOptions
from lossbench.data import prepare
from lossbench.data.load import list_data_files, normalise_label, read_table

N_ROWS = 60  # data rows per generated file
N_EMPTY = 9  # empty trailing rows per generated file (as the CICIDS2017 day files have)


def _day_file(path: Path, seed: int) -> Path:
    """A CICIDS2017-format file: leading spaces in the header, the duplicated Fwd Header Length,
    `Infinity`, `-Infinity`, `inf` and `NaN` cells, cp1252 web-attack dashes, empty rows last."""
    rng = np.random.default_rng(seed)
    n_feat = CICIDS_HEADER.count(",")
    values = rng.integers(0, 70000, size=(N_ROWS, n_feat)).astype(object)
    values[:, 8] = np.round(rng.lognormal(3, 2, N_ROWS), 6)
    for row, cell in zip(
        rng.choice(N_ROWS, 8, replace=False),
        ["Infinity", "-Infinity", "inf", "NaN"] * 2,
        strict=True,
    ):
        values[row, 14 + row % 2] = cell
    labels = rng.choice(np.array([*CICIDS_LABELS, "Web Attack \u2013 XSS"], dtype=object), N_ROWS)
    labels[:3] = ["Web Attack \u2013 Brute Force", "Web Attack \u2013 Sql Injection", "BENIGN"]
    lines = [CICIDS_HEADER]
    lines += [
        ",".join(map(str, row)) + f",{label}" for row, label in zip(values, labels, strict=True)
    ]
    lines += ["," * n_feat] * N_EMPTY
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def _one_shot(path: Path) -> pd.DataFrame:
    """The reference: each file read whole by pandas (cp1252 text), names stripped, fully empty
    rows dropped, files concatenated with row ids counted across them."""
    frames, offset = [], 0
    for f in list_data_files(path) if path.is_dir() else [path]:
        df = pd.read_csv(f, encoding="cp1252", skip_blank_lines=False)
        df.columns = [c.strip() for c in df.columns]
        df.index = pd.RangeIndex(offset, offset + len(df))
        offset += len(df)
        frames.append(df.dropna(how="all"))
    return pd.concat(frames)


def _assert_same_table(streamed: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(streamed.columns) == list(ref.columns)
    np.testing.assert_array_equal(streamed.index.to_numpy(), ref.index.to_numpy())
    for c in ref.columns:
        if c == "Label":
            got = [normalise_label(v) for v in streamed[c]]
            assert got == [normalise_label(v) for v in ref[c]]
            continue
        assert streamed[c].dtype == np.float32, c
        np.testing.assert_array_equal(streamed[c].to_numpy(), ref[c].to_numpy(np.float32), c)


@pytest.fixture(scope="module")
def day_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("days")
    for k in range(3):
        _day_file(folder / f"day{k}.csv", seed=k)
    return folder


@pytest.mark.parametrize("chunk_rows", [7, 50_000])
def test_streamed_folder_equals_the_one_shot_read(day_folder, chunk_rows):
    df, info = read_table(day_folder, chunk_rows=chunk_rows)
    ref = _one_shot(day_folder)
    _assert_same_table(df, ref)
    assert info.n_empty_rows == 3 * N_EMPTY
    assert [s["rows"] for s in info.sources] == [N_ROWS + N_EMPTY] * 3
    values = df[["Flow Bytes/s", "Flow Packets/s"]].to_numpy()
    assert np.isinf(values).sum() == 18 and np.isnan(values).sum() == 6  # the cells were read
    labels = {normalise_label(v) for v in df["Label"]}
    assert {"Web Attack - Brute Force", "Web Attack - Sql Injection"} <= labels


def test_streamed_shared_sample_equals_the_one_shot_read():
    path = need_shared(CICIDS_SAMPLE)
    df, _ = read_table(path, chunk_rows=1000)
    _assert_same_table(df, _one_shot(path))


@pytest.mark.parametrize("source", ["folder", "sample"])
def test_prepared_arrays_do_not_depend_on_the_chunk_size(day_folder, source, monkeypatch):
    import lossbench.data.load as load

    path = day_folder if source == "folder" else need_shared(CICIDS_SAMPLE)
    opts = DataOptions(data=str(path), preset="cicids2017", cache=False, min_class_count=3)
    prepared = []
    for rows in (5 if source == "folder" else 997, 10**9):
        monkeypatch.setattr(load, "CHUNK_ROWS", rows)
        prepared.append(prepare(opts))
    a, b = prepared
    for part in ("X_train", "X_val", "X_test", "y_train", "y_val", "y_test", "ids_test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part), part)
    assert a.class_names == b.class_names and a.feature_names == b.feature_names
    assert a.info["dropped"] == b.info["dropped"]


def test_duplicate_rows_are_counted_as_pandas_counts_them(day_folder):
    from lossbench.data.inspection import count_duplicate_rows

    df, _ = read_table(day_folder)
    twice = pd.concat([df, df.iloc[::3], df.iloc[:5]])  # NaN and inf cells repeated too
    twice.iloc[0, 0] = -0.0 if twice.iloc[0, 0] == 0 else twice.iloc[0, 0]
    for frame in (df, twice, twice.iloc[::-1], df.iloc[:0]):
        assert count_duplicate_rows(frame) == int(frame.duplicated().sum())
    assert count_duplicate_rows(twice) >= len(df.iloc[::3])
    flipped = pd.DataFrame(
        {"a": [0.0, -0.0, np.nan, np.nan, 1.0], "b": ["x", "x", None, None, "y"]}
    )
    assert count_duplicate_rows(flipped) == int(flipped.duplicated().sum()) == 2


def test_memory_mapped_arrays_give_the_metrics_of_in_memory_ones(cli, tmp_path, monkeypatch):
    """The same run three times: from freshly prepared arrays (--no-cache), preparing and
    writing the cache (the run then trains from the arrays just written, memory-mapped), and
    from the cache's memory-mapped arrays: identical test metrics and predictions."""
    import lossbench.experiment as experiment

    real = experiment.data_for_seed
    mapped: list[bool] = []

    def spy(opts, seed):
        data = real(opts, seed)
        mapped.append(isinstance(data.X_train, np.memmap))
        return data

    monkeypatch.setattr(experiment, "data_for_seed", spy)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    y = (X[:, 0] + rng.normal(size=150) > 0.8).astype(int)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(Label=np.where(y, "attack", "benign"))
    frame.to_csv(tmp_path / "d.csv", index=False)
    common = ["run", "--data", tmp_path / "d.csv", "--model", "mlp", "--epochs", "2", "--json"]
    runs = {}
    for name, extra in (("memory", ["--no-cache"]), ("write", []), ("mmap", [])):
        res = cli(*common, "--out", tmp_path / name, *extra)
        assert res.code == 0, res.err
        runs[name] = Path(json.loads(res.out)["run_dir"])
    assert mapped == [False, True, True]
    metrics = [json.loads((runs[n] / "metrics.json").read_text()) for n in runs]
    for m in metrics[1:]:
        assert m["summary"] == metrics[0]["summary"]
    for name in ("write", "mmap"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(runs[name] / "predictions.parquet"),
            pd.read_parquet(runs["memory"] / "predictions.parquet"),
        )


def test_batches_gathered_on_the_host_train_exactly_as_the_device_copy(cli, tmp_path, monkeypatch):
    """A training split above `HOST_GATHER_BYTES` is not copied into a tensor: each batch is
    gathered from the (possibly memory-mapped) array. Same batches, same steps: the same run."""
    import lossbench.training.trainer as train

    real = train.Trainer.set_training_data
    modes: list[bool] = []

    def spy(self, *args, **kw):
        real(self, *args, **kw)
        modes.append(self._host_gather)

    monkeypatch.setattr(train.Trainer, "set_training_data", spy)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(160, 5))
    y = rng.integers(0, 3, 160)
    frame = pd.DataFrame(X + y[:, None], columns=list("abcde")).assign(Label=y)
    frame.to_csv(tmp_path / "d.csv", index=False)
    common = ["run", "--loss", "amrl", "--data", tmp_path / "d.csv", "--model", "mlp"]
    common += ["--epochs", "3", "--batch-size", "16", "--json", "--no-cache"]
    runs = []
    for limit in (train.HOST_GATHER_BYTES, 0):
        monkeypatch.setattr(train, "HOST_GATHER_BYTES", limit)
        res = cli(*common, "--out", tmp_path / str(limit))
        assert res.code == 0, res.err
        runs.append(Path(json.loads(res.out)["run_dir"]))
    assert modes == [False, True]
    device, host = (json.loads((r / "metrics.json").read_text()) for r in runs)
    assert (
        host["summary"] == device["summary"] and host["learned_params"] == device["learned_params"]
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(runs[1] / "history.csv").drop(columns="seconds"),
        pd.read_csv(runs[0] / "history.csv").drop(columns="seconds"),
    )


@pytest.mark.parametrize("ascending", [True, False])
def test_split_matrices_built_from_released_columns_equal_gathered_rows(monkeypatch, ascending):
    """`gather_splits` (what `prepare` uses) gives each split the rows `gather_rows` gives, and
    gives back the memory of the columns it has copied: their whole pages read 0 afterwards
    (ascending rows), or leaves them alone (rows in another order)."""
    from lossbench.data import table
    from lossbench.data.memory import owned_empty
    from lossbench.data.split import Scaler

    monkeypatch.setattr(table, "_RELEASE_ROWS", 3000)
    rng = np.random.default_rng(0)
    n = 20_000
    columns = [owned_empty(n, np.float32) for _ in range(3)]
    for col in columns:
        col[:] = rng.lognormal(2, 1, n)
    columns[1][[5, 900, 19_999]] = [np.inf, np.nan, -np.inf]
    parts = np.array_split(rng.permutation(n), [14_000, 17_000])
    parts = [np.sort(p) if ascending else p for p in parts]
    stats = {k: np.array([0.0, 1.0, 2.0]) for k in ("min", "mean")}
    stats |= {k: np.array([40.0, 30.0, 20.0]) for k in ("max", "std")}
    scaler = Scaler.from_stats("standard", stats)
    fill = np.array([0.0, 7.0, 0.0], dtype=np.float32)
    want = [table.gather_rows(columns, p, fill=fill, scaler=scaler) for p in parts]
    copies = list(columns)
    got = table.gather_splits(copies, parts, fill=fill, scaler=scaler)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert copies == [None] * 3  # consumed
    middle = slice(4096, n - 4096)  # whole pages, wherever the map begins
    assert (columns[0][middle] == 0).all() == ascending


def test_malloc_arenas_are_limited_unless_the_environment_says_otherwise(monkeypatch):
    from lossbench.malloc import limit_arenas

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_arenas() is True  # glibc accepted the setting
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas() is False  # the user's setting stands


@pytest.fixture
def two_threads(monkeypatch):
    """Every CSV parsed on two threads (`csvchunks`), however small; yields the byte ranges
    read, to tell which path a read took."""
    import lossbench.data.csvchunks as csvchunks

    monkeypatch.setattr(csvchunks, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(csvchunks.os, "cpu_count", lambda: 2)
    ranges: list[tuple[int, int]] = []
    real = csvchunks._Ranges._range

    def spy(self, i, parser, view):
        ranges.append((self.plan.cuts[i], self.plan.cuts[i + 1]))
        return real(self, i, parser, view)

    monkeypatch.setattr(csvchunks._Ranges, "_range", spy)
    return ranges


@pytest.mark.parametrize("chunk_rows", [7, 50_000])
def test_a_file_parsed_on_two_threads_equals_the_one_shot_read(day_folder, two_threads, chunk_rows):
    df, info = read_table(day_folder, chunk_rows=chunk_rows)
    assert len(two_threads) == 2 * 3  # two halves of each of the 3 files
    _assert_same_table(df, _one_shot(day_folder))
    assert info.n_empty_rows == 3 * N_EMPTY
    assert [s["rows"] for s in info.sources] == [N_ROWS + N_EMPTY] * 3


def test_the_shared_sample_parsed_on_two_threads_equals_the_one_shot_read(two_threads):
    path = need_shared(CICIDS_SAMPLE)
    df, _ = read_table(path, chunk_rows=1000)
    assert len(two_threads) == 2
    _assert_same_table(df, _one_shot(path))


def test_a_quoted_file_is_parsed_on_one_thread(tmp_path, two_threads):
    path = tmp_path / "q.csv"
    rows = [f'{i},{i * 0.5},"a\nb"' if i == 3 else f"{i},{i * 0.5},x" for i in range(40)]
    path.write_text("a,b,Label\n" + "\n".join(rows) + "\n")
    df, _ = read_table(path, chunk_rows=5)
    assert two_threads == []  # a quoted field may hold a line break: no split
    assert len(df) == 40 and df["Label"].iloc[3] == "a\nb"


def test_a_bad_row_in_the_second_half_is_named_by_its_line_in_the_file(tmp_path, two_threads):
    from lossbench.errors import InputError

    path = tmp_path / "bad.csv"
    lines = ["a,b,Label"] + [f"{i},{i},x" for i in range(100)]
    lines[90] = "1,2,3,4,5"  # line 91 of the file: too many fields
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as two:
        read_table(path)
    assert len(two_threads) == 2
    import lossbench.data.csvchunks as csvchunks

    csvchunks.PARALLEL_MIN_BYTES = 2**62  # one thread (monkeypatch restores the value)
    with pytest.raises(InputError) as one:
        read_table(path)
    assert str(two.value) == str(one.value) and "line 91" in str(one.value)


@pytest.fixture(params=[True, False], ids=["reused-parsers", "read_csv"])
def many_ranges(request, two_threads, monkeypatch):
    """Every CSV cut into byte ranges of about 2 KB (several per file), parsed on two threads by
    reused parsers (`REUSE_PARSERS`) or through `read_csv` each; yields the ranges read."""
    import lossbench.data.csvchunks as csvchunks

    if request.param and not csvchunks.REUSE_PARSERS:
        pytest.skip("this pandas' C parser cannot be handed one buffer after another")
    monkeypatch.setattr(csvchunks, "REUSE_PARSERS", request.param)
    monkeypatch.setattr(csvchunks, "RANGE_BYTES", 2048)
    return two_threads


def _assert_ranges_cover(path: Path, ranges: list[tuple[int, int]]) -> None:
    """The byte ranges read are the whole file, each once, each after a line break."""
    data, out = path.read_bytes(), sorted(ranges)
    assert out[0][0] == 0 and out[-1][1] == len(data)
    assert all(b == a for (_, b), (a, _) in zip(out[:-1], out[1:], strict=True))
    assert all(data[a - 1 : a] == b"\n" for a, _ in out[1:])


def test_a_file_cut_into_many_ranges_equals_the_one_shot_read(day_folder, many_ranges):
    import lossbench.data.csvchunks as csvchunks

    df, info = read_table(day_folder, chunk_rows=7)
    _assert_same_table(df, _one_shot(day_folder))
    assert info.n_empty_rows == 3 * N_EMPTY
    assert len(_owners(df)) == 1  # every range's numbers written in place
    sizes = [f.stat().st_size for f in sorted(day_folder.iterdir())]
    per_file = [round(size / 2048) if csvchunks.REUSE_PARSERS else 2 for size in sizes]
    assert len(many_ranges) == sum(per_file)
    assert (min(per_file) > 2) == csvchunks.REUSE_PARSERS  # else halves


def test_the_shared_sample_cut_into_many_ranges_equals_the_one_shot_read(many_ranges):
    path = need_shared(CICIDS_SAMPLE)
    df, _ = read_table(path, chunk_rows=1000)
    _assert_ranges_cover(path, many_ranges)
    _assert_same_table(df, _one_shot(path))


def test_a_bad_row_in_a_later_range_is_named_by_its_line_in_the_file(tmp_path, many_ranges):
    from lossbench.errors import InputError

    path = tmp_path / "bad.csv"
    lines = ["a,b,Label"] + [f"{i},{i},x" for i in range(1000)]
    lines[900] = "1,2,3,4,5"  # line 901 of the file, in the last ranges: too many fields
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as exc:
        read_table(path)
    assert "line 901" in str(exc.value) and len(many_ranges) >= 2


def test_a_cp1252_byte_in_a_later_range_is_read_again_replaced(tmp_path, many_ranges, parses):
    """The strict parse of a file whose bytes the byte pass found not UTF-8 is skipped; one
    whose head and byte pass say UTF-8 is read strictly, exactly, in every range."""
    df, _ = read_table(_file_with_late_label(tmp_path / "w.csv", b"Web Attack \x96 XSS"))
    assert parses == ["replace"] and len(many_ranges) >= 2
    assert normalise_label(df["Label"].iloc[-1]) == "Web Attack - XSS"
    df, _ = read_table(_file_with_late_label(tmp_path / "u.csv", "Café".encode()))
    assert parses == ["replace", "strict"] and df["Label"].iloc[-1] == "Café"
    assert df["Flow Bytes/s"].iloc[1500] == np.float32(1500.5)


@pytest.fixture
def parses(monkeypatch):
    """The `errors` argument of every parse of a CSV file (`parse_chunks`), in order."""
    import lossbench.data.load as load

    seen: list[str] = []
    real = load.parse_chunks

    def spy(path, names, label, errors, *args, **kwargs):
        seen.append(errors)
        return real(path, names, label, errors, *args, **kwargs)

    monkeypatch.setattr(load, "parse_chunks", spy)
    return seen


def _file_with_late_label(path: Path, label: bytes) -> Path:
    """2000 ASCII rows (about 36 KB, far more than the 8 KB head) and a last row labelled
    `label`."""
    rows = [b"%d,%d.5,BENIGN" % (i, i) for i in range(2000)] + [b"7,8.5," + label]
    path.write_bytes(b"Flow Duration,Flow Bytes/s,Label\n" + b"\n".join(rows) + b"\n")
    return path


def test_a_cp1252_byte_far_from_the_head_costs_one_parse(tmp_path, parses):
    # The strict parse used to meet the byte at the end and start the file again.
    df, _ = read_table(_file_with_late_label(tmp_path / "w.csv", b"Web Attack \x96 XSS"))
    assert parses == ["replace"]
    assert normalise_label(df["Label"].iloc[-1]) == "Web Attack - XSS"
    assert len(df) == 2001 and df["Flow Bytes/s"].iloc[-1] == np.float32(8.5)


def test_utf8_text_far_from_the_head_is_read_strictly_and_exactly(tmp_path, parses):
    df, _ = read_table(_file_with_late_label(tmp_path / "u.csv", "Café".encode()))
    assert parses == ["strict"]
    assert df["Label"].iloc[-1] == "Café"


@pytest.mark.parametrize(
    ("data", "quoted", "utf8"),
    [
        (b"", False, True),
        (b"a,b\n1,2\n" * 5, False, True),
        (b'a,b\n1,"x"\n', True, True),
        ("a,b\n1,çé\n".encode() * 5, False, True),  # characters straddle the 16-byte blocks
        (b"a,b\n1,2\n" * 5 + b"1,\x96\n", False, False),
        (b"a,b\n1,\xc3", False, False),  # a character cut off at the end
        (b"\x96,b\n" + b'1,"2"\n' * 9, True, False),  # quotes still found after bad bytes
    ],
)
def test_the_byte_pass_finds_quotes_and_tells_utf8(tmp_path, monkeypatch, data, quoted, utf8):
    import lossbench.data.csvchunks as csvchunks

    monkeypatch.setattr(csvchunks, "_SCAN_BYTES", 16)
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    assert csvchunks.plan_file(path, decode=True).scan == csvchunks.ByteScan(
        quoted=quoted, utf8=utf8
    )


@pytest.mark.parametrize(
    ("last", "quoted", "utf8"),
    [
        (b"9,x", False, True),
        (b'9,"x"', True, True),  # a quote in the second half only
        (b"9,\x96", False, False),  # a cp1252 byte in the second half only
        ("9,é".encode(), False, True),
    ],
)
def test_each_half_is_scanned_and_the_halves_agree_with_one_range(
    tmp_path, two_threads, monkeypatch, last, quoted, utf8
):
    import lossbench.data.csvchunks as csvchunks

    monkeypatch.setattr(csvchunks, "_SCAN_BYTES", 16)  # many blocks in each half
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 50 + last)  # no line break at the end
    size = path.stat().st_size
    plan = csvchunks.plan_file(path, decode=True)
    assert plan.scan == csvchunks.ByteScan(quoted=quoted, utf8=utf8)
    if quoted:  # one range, every row
        assert plan.cuts == [0, size] and plan.rows == [51]
    else:  # halves split after the line break the middle falls in, rows counted in each
        middle = path.read_bytes().index(b"\n", size // 2) + 1
        assert plan.cuts == [0, middle, size]
        assert plan.rows == [path.read_bytes()[:middle].count(b"\n") - 1, 51 - plan.rows[0]]
        assert plan.rows[0] == (middle - 4) // 4


def _float_columns(df: pd.DataFrame) -> list[np.ndarray]:
    return [df[c].to_numpy() for c in df.columns if df[c].dtype == np.float32]


def _owners(df: pd.DataFrame) -> set[int]:
    """Where the memory the table's float32 columns are views of begins."""
    return {col.base.ctypes.data for col in _float_columns(df) if col.base is not None}


@pytest.mark.parametrize("threads", [1, 2])
def test_a_plain_folders_numbers_are_written_in_place_not_joined(
    day_folder, monkeypatch, threads, request
):
    """Every float32 column of a folder of plain CSV files is a view of one slab (`Slab`): the
    chunks' numbers were written at their rows' places, across the files' empty trailing rows,
    with no joining copy; the table is the one-shot read's."""
    if threads == 2:
        request.getfixturevalue("two_threads")
    import lossbench.data.load as load

    monkeypatch.setattr(load, "CHUNK_ROWS", 11)
    copies: list[int] = []
    real = load.owned_empty
    monkeypatch.setattr(load, "owned_empty", lambda n, dtype: copies.append(n) or real(n, dtype))
    df, _ = read_table(day_folder)
    _assert_same_table(df, _one_shot(day_folder))
    assert len(_owners(df)) == 1 and len(_float_columns(df)) == 78
    assert copies == []  # no column was copied to join its chunks


def test_empty_rows_in_the_first_half_leave_a_gap_the_later_rows_close(tmp_path, two_threads):
    """Empty rows dropped early in the first half of a file parsed on two threads: the second
    half's rows, written after the places counted for the empty ones, move down over them."""
    lines = ["a,b,Label"] + [f"{i},{i * 0.5},x{i % 3}" for i in range(200)]
    lines[5:5] = [",,"] * 30  # 30 empty rows near the start
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join(lines) + "\n")
    df, info = read_table(path, chunk_rows=16)
    assert len(two_threads) == 2 and info.n_empty_rows == 30
    _assert_same_table(df, _one_shot(path))
    assert len(_owners(df)) == 1


@pytest.mark.parametrize("end", ["\r", "\n"])
def test_rows_that_do_not_fit_the_counted_lines_are_copied_as_before(tmp_path, end):
    """Lines that end in a lone carriage return count no line break: the rows do not fit the
    places counted for them, keep arrays of their own, and the columns are copied; lines that
    end in a line break fit. The table is pandas' either way."""
    path = tmp_path / "cr.csv"
    path.write_bytes(end.join(["a,b,Label"] + [f"{i},{i / 4},y" for i in range(50)]).encode())
    df, _ = read_table(path, chunk_rows=8)
    ref = pd.read_csv(path)
    np.testing.assert_array_equal(df["a"].to_numpy(), ref["a"].to_numpy(np.float32))
    np.testing.assert_array_equal(df["b"].to_numpy(), ref["b"].to_numpy(np.float32))
    assert len(df) == 50 and (len(_owners(df)) == 1) == (end == "\n")


def test_a_column_with_text_in_one_chunk_is_joined_and_its_slab_pages_given_back(tmp_path):
    """A numeric column whose later chunk holds text is joined as text (and diagnosed later);
    the numbers its first chunks wrote to the slab are given back (they read 0)."""
    rows = [f"{i},{i + 0.25},z" for i in range(3000)]
    rows[2990] = "oops,1.5,z"
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(["a,b,Label", *rows]) + "\n")
    df, _ = read_table(path, chunk_rows=1000)
    assert df["a"].dtype == object and df["a"].iloc[2990] == "oops"
    assert float(df["a"].iloc[2000]) == 2000.0
    b = df["b"].to_numpy()
    slab = b.base  # columns a and b, in this order
    assert slab.ctypes.data == b.ctypes.data - len(slab) // 2 * 4
    assert (slab[1024:2048] == 0).all()  # column a's whole pages were given back
