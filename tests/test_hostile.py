"""Never a silently wrong table (issue 37): results tied to their data, only planned runs counted,
no duplicates, labels as written, and bad input that used to end in exit 1.

Each case of the issue's "Why" has a test here, on tiny data (1 epoch, an MLP).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossbench.config import DataOptions

FAST = ("--device", "cpu", "--epochs", "1", "--model", "mlp", "--quiet")


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def _experiments(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/experiment.json")) if out.exists() else []


def _csv(path: Path, labels: list[str], n_per_class: int = 20, seed: int = 0) -> Path:
    """A small learnable CSV: 4 features, `n_per_class` rows per label."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, label in enumerate(labels):
        for x in rng.normal(k, 0.3, size=(n_per_class, 4)):
            rows.append(",".join(f"{v:.4f}" for v in x) + f",{label}")
    path.write_text("a,b,c,d,Label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _meta(exp: Path) -> dict:
    return json.loads((exp / "experiment.json").read_text())


# ----------------------------------------------------------------------------------------------
# 1. results tied to their data


def test_changed_data_under_the_same_path_starts_a_new_experiment(cli, tmp_path):
    from lossbench.data.pipeline import source_fingerprint

    data, out = _csv(tmp_path / "d.csv", ["x", "y", "z"]), tmp_path / "out"
    assert cli("compare", "--out", out, *FAST, "--losses", "ce", "--data", data).code == 0
    (first,) = _experiments(out)
    _csv(data, ["p", "q"], n_per_class=25, seed=1)  # another dataset under the same path
    res = cli("compare", "--out", out, *FAST, "--losses", "ce", "--seeds", "0,1", "--data", data)
    assert res.code == 0, res.err
    exps = _experiments(out)
    assert len(exps) == 2, exps
    second = next(e for e in exps if e != first)
    assert _meta(second)["class_names"] == ["p", "q"]
    assert _meta(first)["class_names"] == ["x", "y", "z"]
    assert _meta(second)["data_fingerprint"] != _meta(first)["data_fingerprint"]
    # the stored fingerprint is the data's as it is now: the one the key was made of
    assert _meta(second)["data_fingerprint"] == source_fingerprint(DataOptions(data=str(data)))
    assert _meta(second)["seeds"] == [0, 1]
    per_class = pd.read_csv(second / "summary" / "table_per_class.csv")
    assert set(per_class["class"]) == {"p", "q"}
    average = pd.read_csv(second / "summary" / "table_average.csv")
    assert average["n_seeds"].tolist() == [2]


def test_another_spelling_of_the_same_path_resumes(cli, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    _csv(tmp_path / "data" / "x.csv", ["x", "y"])
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    assert cli("compare", "--out", out, *FAST, "--losses", "ce", "--data", "data/x.csv").code == 0
    (exp,) = _experiments(out)
    done = (exp / "runs" / "ce_seed0" / "DONE").stat().st_mtime_ns
    for spelling in ("./data/../data/x.csv", str(tmp_path / "data" / "x.csv")):
        res = cli("compare", "--out", out, *FAST, "--losses", "ce", "--data", spelling)
        assert res.code == 0, res.err
        assert _experiments(out) == [exp]
    assert (exp / "runs" / "ce_seed0" / "DONE").stat().st_mtime_ns == done  # not trained again


# ----------------------------------------------------------------------------------------------
# 2. only planned runs are runs


def test_a_stray_run_folder_is_ignored_with_a_warning_and_the_summary_agrees(cli, tmp_path):
    data, out = _csv(tmp_path / "d.csv", ["x", "y", "z"]), tmp_path / "out"
    args = ("--out", out, *FAST, "--losses", "ce,wce", "--seeds", "0,1", "--data", data)
    assert cli("compare", *args).code == 0
    (exp,) = _experiments(out)
    shutil.copytree(exp / "runs" / "ce_seed0", exp / "runs" / "ce_seed0.bak")
    for res in (cli("report", exp), cli("compare", *args)):
        assert res.code == 0, res.err
        summary = exp / "summary"
        average = pd.read_csv(summary / "table_average.csv").set_index("loss")
        assert average.loc["ce", "n_seeds"] == 2
        assert set(pd.read_csv(summary / "significance.csv")["n_seeds"]) == {2}
        assert set(pd.read_csv(summary / "ranks.csv")["n_seeds"]) == {2}
        per_class = pd.read_csv(summary / "table_per_class.csv")
        assert set(per_class["n_seeds"]) == {2}
        warned = [ln for ln in _lines(res.err) if ln.startswith("warning:")]
        assert len([w for w in warned if "ce_seed0.bak" in w]) == 1, res.err


# ----------------------------------------------------------------------------------------------
# 3. no duplicates


@pytest.mark.parametrize(
    ("args", "repeated"),
    [
        (("--losses", "ce,wce,ce"), "ce"),
        (("--losses", "ce", "--seeds", "0,1,0"), "0"),
        (("--losses", "ce", "--baselines", "lr,lr"), "lr"),
        (("--losses", "ce", "--data", "{d}", "--data", "{d}"), "d.csv"),
        (("--losses", "ce", "--data", "{d}", "--data", "{d2}"), "d.csv"),
    ],
    ids=["losses", "seeds", "baselines", "data", "data-spelling"],
)
def test_repeated_values_exit_2_naming_the_value(cli, tmp_path, args, repeated):
    data, out = _csv(tmp_path / "d.csv", ["x", "y"]), tmp_path / "out"
    other = str(tmp_path / "." / "d.csv")
    args = [a.replace("{d}", str(data)).replace("{d2}", other) for a in args]
    res = cli("compare", "--out", out, *FAST, *args)
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and "repeated" in lines[0] and repeated in lines[0], res.err
    assert not _experiments(out)


# ----------------------------------------------------------------------------------------------
# 4. labels are strings as written


def test_labels_pandas_reads_as_missing_are_class_names(tmp_path):
    from lossbench.data.pipeline import prepare

    data = _csv(tmp_path / "d.csv", ["NA", "None", "null", "nan", "N/A"])
    text = data.read_text().rstrip("\n") + "\n" + "0.1,0.2,0.3,0.4,\n"  # one empty label
    data.write_text(text)
    prepared = prepare(DataOptions(data=str(data), cache=False))
    assert sorted(prepared.class_names) == sorted(["NA", "None", "null", "nan", "N/A"])
    assert prepared.info["dropped"]["rows_missing_label"] == 1


# ----------------------------------------------------------------------------------------------
# 5. no exit 1 for input


@pytest.mark.parametrize("nested", ["list", "struct", "list-label"])
@pytest.mark.parametrize("command", ["run", "inspect"])
def test_nested_parquet_columns_exit_2_naming_the_column(cli, tmp_path, nested, command):
    n = 40
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.random(n), "b": rng.random(n), "Label": ["x", "y"] * (n // 2)})
    if nested == "list":
        df["deep"] = [[1.0, 2.0]] * n
    elif nested == "struct":
        df["deep"] = [{"u": 1, "v": 2.0}] * n
    else:
        df["Label"] = [["x"], ["y"]] * (n // 2)
    path = tmp_path / "nested.parquet"
    df.to_parquet(path)
    column = "Label" if nested == "list-label" else "deep"
    out = tmp_path / "out"
    args = ("--out", out, *FAST) if command == "run" else ()
    res = cli(command, *args, "--data", path)
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and column in lines[0] and str(path) in lines[0], res.err
    assert ("list" if nested != "struct" else "struct") in lines[0], res.err
    assert not _experiments(out)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_toml_file_that_is_not_utf8_exits_2(cli, tmp_path, encoding):
    toml = tmp_path / "exp.toml"
    toml.write_bytes('losses = "ce"\n# café\n'.encode(encoding))
    out = tmp_path / "out"
    res = cli("compare", "--out", out, *FAST, "--config", toml)
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and "not UTF-8" in lines[0] and str(toml) in lines[0], res.err
    assert not _experiments(out)


@pytest.fixture(scope="module")
def _one_experiment(tmp_path_factory):
    from lossbench.cli import main

    root = tmp_path_factory.mktemp("hostile")
    data = _csv(root / "d.csv", ["x", "y"])
    assert (
        main(["compare", "--out", str(root / "out"), *FAST, "--losses", "ce", "--data", str(data)])
        == 0
    )
    return _experiments(root / "out")[0]


@pytest.mark.parametrize("blocked", ["summary", "summary/plots"])
def test_a_results_path_that_is_a_file_exits_2_naming_it(cli, _one_experiment, tmp_path, blocked):
    exp = tmp_path / "exp"
    shutil.copytree(_one_experiment, exp)
    target = exp / blocked
    if target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("in the way\n")
    res = cli("report", exp)
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and str(target) in lines[0] and "not a folder" in lines[0], res.err


def test_smote_on_a_one_row_training_class_names_the_class(cli, tmp_path):
    data = _csv(tmp_path / "d.csv", ["x", "y"], n_per_class=30)
    with data.open("a") as fh:  # three rows: one each for training, validation and test
        fh.write("".join(f"{v},{v},{v},{v},rare\n" for v in (5.0, 5.1, 5.2)))
    out = tmp_path / "out"
    res = cli("compare", "--out", out, *FAST, "--losses", "ce+smote", "--data", data)
    assert res.code == 3, res.err
    (exp,) = _experiments(out)
    metrics = json.loads((exp / "runs" / "ce+smote_seed0" / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert "internal error" not in metrics["reason"]
    assert "'rare'" in metrics["reason"] and "SMOTE" in metrics["reason"], metrics["reason"]


# ----------------------------------------------------------------------------------------------
# 6. non-finite values, dropped rows, --positive-label, symlinks, folder names


@pytest.mark.parametrize("policy", ["drop", "median"])
def test_every_non_finite_or_out_of_range_value_is_missing(tmp_path, policy):
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from lossbench.data.pipeline import prepare

    n = 60
    f16 = np.arange(n, dtype=np.float16)
    f16[3] = np.inf  # float16 cannot hold float32's largest value: compared naively it passes
    f32 = np.arange(n, dtype=np.float32)
    f32[4] = -np.inf
    dec = [decimal.Decimal(i) for i in range(n)]
    dec[5] = decimal.Decimal("1e39")  # beyond float32
    text = [str(i) for i in range(n)]
    text[6] = "1e39"
    table = {
        "f16": pa.array(f16),
        "f32": pa.array(f32),
        "dec": pa.array(dec, type=pa.decimal256(45, 0)),
        "s": pa.array(text),
        "Label": pa.array(["x", "y"] * (n // 2)),
    }
    path = tmp_path / "types.parquet"
    pq.write_table(pa.table(table), path)
    data = prepare(DataOptions(data=str(path), cache=False, nan_policy=policy))
    X = np.concatenate([data.X_train, data.X_val, data.X_test])
    assert np.isfinite(X).all()
    assert data.info["rows_with_missing"] == 4
    if policy == "drop":
        assert len(X) == n - 4
        assert any(w.startswith("4 rows with a missing") for w in data.info["warnings"])
    else:
        assert len(X) == n


def test_positive_label_on_a_multiclass_task_exits_2(cli, tmp_path):
    data, out = _csv(tmp_path / "d.csv", ["x", "y", "z"]), tmp_path / "out"
    res = cli("run", "--out", out, *FAST, "--data", data, "--positive-label", "x")
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and "positive_label" in lines[0] and "3 classes" in lines[0]
    assert not _experiments(out)


def test_symlinks_in_a_data_folder_are_read_once_and_dangling_ones_named(tmp_path):
    from lossbench.data.pipeline import prepare

    folder = tmp_path / "days"
    folder.mkdir()
    _csv(folder / "a.csv", ["x", "y"])
    (folder / "b.csv").symlink_to(folder / "a.csv")
    (folder / "c.csv").symlink_to(tmp_path / "gone.csv")
    data = prepare(DataOptions(data=str(folder), cache=False))
    assert data.info["n_rows_raw"] == 40  # a.csv once
    warnings = data.info["warnings"]
    assert any("b.csv" in w and "read once" in w for w in warnings), warnings
    assert any("c.csv" in w and "nothing" in w for w in warnings), warnings


def test_experiment_folder_names_hold_only_safe_characters(cli, tmp_path):
    data, out = _csv(tmp_path / "we\nird name;$x.csv", ["x", "y"]), tmp_path / "out"
    assert cli("run", "--out", out, *FAST, "--data", data).code == 0
    (exp,) = _experiments(out)
    assert all(c.isalnum() or c in "._+-" for c in exp.name), exp.name


def test_a_csv_header_is_parsed_by_the_csv_rules_of_the_rows(tmp_path):
    from lossbench.data.load import read_table

    path = tmp_path / "h.csv"
    body = "".join(f"{i},{i + 1},{'xy'[i % 2]}\r\n" for i in range(6))
    path.write_text('"first\r\nname","b,c",Label\r\n' + body, encoding="utf-8", newline="")
    df, _ = read_table(path)
    assert list(df.columns) == ["first\r\nname", "b,c", "Label"]
    assert df["b,c"].tolist() == [1, 2, 3, 4, 5, 6]


def test_an_error_writing_a_results_file_names_it_not_its_temporary(tmp_path, monkeypatch):
    import errno

    from lossbench.io import atomic_write_text

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    target = tmp_path / "summary" / "report.html"
    with pytest.raises(OSError) as info:
        atomic_write_text(target, "<html></html>")
    assert info.value.filename == str(target)
    assert info.value.errno == errno.ENOSPC
    assert list(target.parent.iterdir()) == []


def test_every_dropped_row_is_counted_in_a_warning(tmp_path):
    from lossbench.data.pipeline import prepare

    data = _csv(tmp_path / "d.csv", ["x", "y", "gone"])
    lines = data.read_text().splitlines()
    lines += [lines[1], ",,,,", "1,2,3,4,", "1,inf,3,4,x"]  # a repeat, empty, unlabelled, inf
    data.write_text("\n".join(lines) + "\n")
    opts = DataOptions(data=str(data), cache=False, dedupe=True, drop_classes=["gone"])
    warnings = prepare(opts).info["warnings"]
    for needle in (
        "1 empty rows",
        "1 rows without a label",
        "1 rows with a missing",
        "1 rows repeating an earlier row",
        "20 rows of the dropped classes 'gone' (20)",
    ):
        assert any(w.startswith(needle) for w in warnings), (needle, warnings)


def test_data_changed_between_seeds_stops_the_compare(cli, tmp_path, monkeypatch):
    import lossbench.experiment as experiment

    data, out = _csv(tmp_path / "d.csv", ["x", "y"]), tmp_path / "out"
    original = experiment.data_for_seed

    def changed_for_seed_1(opts, seed):
        prepared = original(opts, seed)
        if seed == 1:  # as if the file were replaced after seed 0 was loaded
            prepared.info["source_fingerprint"] = "0" * 16
        return prepared

    monkeypatch.setattr(experiment, "data_for_seed", changed_for_seed_1)
    res = cli("compare", "--out", out, *FAST, "--losses", "ce", "--seeds", "0,1", "--data", data)
    assert res.code == 2, res.err
    assert "changed while the compare ran" in _lines(res.err)[-1], res.err
    (exp,) = _experiments(out)
    assert not (exp / "runs" / "ce_seed1").exists()


def test_classes_named_like_missing_values_survive_to_the_tables(cli, tmp_path):
    data, out = _csv(tmp_path / "d.csv", ["NA", "None", "null"]), tmp_path / "out"
    res = cli("compare", "--out", out, *FAST, "--losses", "ce", "--data", data, "--plots", "runs")
    assert res.code == 0, res.err
    (exp,) = _experiments(out)
    table = pd.read_csv(exp / "summary" / "table_per_class.csv", keep_default_na=False)
    assert sorted(table["class"]) == ["NA", "None", "null"]
    assert (exp / "runs" / "ce_seed0" / "plots" / "per_class_f1.png").is_file()
