"""Issue 33: evaluation an intrusion-detection reviewer accepts (baselines that show how hard the
task is, head/medium/tail classes, binary task, leak-free splits)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, recall_score

EXAMPLES = Path(__file__).resolve().parents[1] / "scripts" / "ids_example_data.py"
RAW_GLF = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "datasets"
    / "cicids2017_raw_head_generatedlabelledflows.csv"
)
CLASSES = ("benign", "dos", "scan", "bot")

# the generators of GeneratedLabelledFlows day files and CSE-CIC-IDS2018 files (scripts/)
_spec = importlib.util.spec_from_file_location("ids_example_data", EXAMPLES)
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)
write_glf_folder, write_ids2018_file = gen.write_glf_folder, gen.write_ids2018_file


def _row_truth(exp: Path, truth: dict[str, dict], key: str) -> dict[int, object]:
    """row_id -> the generator's value `key` of that row, through experiment.json's sources."""
    meta = json.loads((exp / "experiment.json").read_text())
    out = {}
    for src in meta["data_info"]["source_rows"]:
        values = truth[Path(src["path"]).name][key]
        for i, v in enumerate(values):
            out[src["offset"] + i] = v
    return out


def _split_ids(exp: Path, run: str = "ce_seed0") -> dict[str, set[int]]:
    """Row ids of each split from the stored predictions; training: every other row."""
    test = set(pd.read_parquet(exp / "runs" / run / "predictions.parquet")["row_id"])
    val = set(pd.read_parquet(exp / "runs" / run / "predictions_val.parquet")["row_id"])
    return {"val": val, "test": test}


def _threshold_csv(path: Path, seed: int = 0) -> Path:
    """Four classes of 800, 140, 52 and 8 rows (head, head, medium, tail), decided by thresholds
    on f2 alone; f0, f1, f3 are noise."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(4), [800, 140, 52, 8]))
    frame = pd.DataFrame(rng.normal(size=(len(y), 4)), columns=[f"f{i}" for i in range(4)])
    frame["f2"] = y * 10.0 + rng.random(len(y))  # class k in [10k, 10k + 1)
    frame["Label"] = np.array(CLASSES)[y]
    frame.to_csv(path, index=False)
    return path


def _exp(out: Path) -> Path:
    (exp,) = [p for p in out.iterdir() if (p / "experiment.json").exists()]
    return exp


@pytest.fixture(scope="module")
def baseline_exp(tmp_path_factory):
    """One compare (ce, prior, stump) shared by the tests that read it."""
    from lossbench.cli import main

    tmp = tmp_path_factory.mktemp("baselines")
    csv = _threshold_csv(tmp / "t.csv")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOSSBENCH_CACHE", str(tmp / "cache"))
        code = main(
            [
                "compare", "--data", str(csv), "--losses", "ce", "--baselines", "prior,stump",
                "--seeds", "0", "--epochs", "1", "--model", "mlp", "--device", "cpu",
                "--out", str(tmp / "out"), "--quiet",
            ]
        )  # fmt: skip
    assert code == 0
    return _exp(tmp / "out")


def test_prior_and_stump_baselines_reach_tables_significance_and_report(baseline_exp):
    exp = baseline_exp
    summary = exp / "summary"
    average = pd.read_csv(summary / "table_average.csv")
    assert average["loss"].tolist() == ["ce", "prior", "stump"]
    sig = pd.read_csv(summary / "significance.csv")
    assert {"prior", "stump"} <= set(sig["method_a"]) | set(sig["method_b"])
    page = (summary / "report.html").read_text()
    assert "How hard the task is" in page and "F1 − stump" in page

    # the stump found the one informative feature and separates the classes on it
    stump = json.loads((exp / "runs" / "stump_seed0" / "metrics.json").read_text())
    assert stump["learned_params"]["feature"] == "f2"
    pred = pd.read_parquet(exp / "runs" / "stump_seed0" / "predictions.parquet")
    proba = pred[[c for c in pred.columns if c.startswith("p_")]].to_numpy()
    y_hat = proba.argmax(axis=1)
    stump_f1 = f1_score(pred["y_true"], y_hat, average="macro")
    f1 = average.set_index("loss")["macro_f1_mean"]
    assert f1["stump"] == pytest.approx(stump_f1)
    assert f1["stump"] > f1["prior"] + 0.2  # two leaves: benign against the rest at least

    # the prior predicts the training class shares for every row
    prior = json.loads((exp / "runs" / "prior_seed0" / "metrics.json").read_text())
    counts = np.asarray(prior["train_class_counts"], dtype=float)
    pred = pd.read_parquet(exp / "runs" / "prior_seed0" / "predictions.parquet")
    proba = pred[[c for c in pred.columns if c.startswith("p_")]].to_numpy()
    np.testing.assert_allclose(proba, np.tile(counts / counts.sum(), (len(pred), 1)))


def test_prior_and_stump_baselines_reach_the_leaderboard(cli, tmp_path):
    data = [_threshold_csv(tmp_path / f"d{i}.csv", seed=i) for i in (1, 2)]
    res = cli(
        "compare", "--data", data[0], "--data", data[1], "--losses", "ce",
        "--baselines", "prior,stump", "--seeds", "0", "--epochs", "1", "--model", "mlp",
        "--device", "cpu", "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert res.code == 0, res.err
    (board,) = (tmp_path / "out").glob("leaderboard_*")
    ranks = pd.read_csv(board / "average_ranks.csv")
    assert {"prior", "stump"} <= set(ranks["method"])


def test_table_class_groups_scores_head_medium_and_tail_classes(baseline_exp):
    """Groups from the training shares (>= 10% head, < 1% tail), each group's macro-F1 and
    macro recall recomputed with scikit-learn from predictions.parquet."""
    exp = baseline_exp
    table = pd.read_csv(exp / "summary" / "table_class_groups.csv")
    assert table["group"].drop_duplicates().tolist() == ["head", "medium", "tail"]
    assert set(table["head_share"]) == {0.1} and set(table["tail_share"]) == {0.01}
    for run in ("ce_seed0", "stump_seed0"):
        metrics = json.loads((exp / "runs" / run / "metrics.json").read_text())
        train = np.asarray(metrics["split_class_counts"]["train"], dtype=float)
        share = train / train.sum()
        members = {
            "head": np.flatnonzero(share >= 0.1),
            "medium": np.flatnonzero((share >= 0.01) & (share < 0.1)),
            "tail": np.flatnonzero(share < 0.01),
        }
        names = metrics["class_names"]
        assert [names[k] for k in members["tail"]] == ["bot"]
        assert [names[k] for k in members["medium"]] == ["scan"]
        pred = pd.read_parquet(exp / "runs" / run / "predictions.parquet")
        y_hat = pred[[c for c in pred.columns if c.startswith("p_")]].to_numpy().argmax(axis=1)
        if run.startswith("ce"):  # a network: decisions from the logits
            y_hat = pred[[c for c in pred.columns if c.startswith("z_")]].to_numpy().argmax(axis=1)
        loss = run.split("_seed")[0]
        for group, labels in members.items():
            row = table[(table["group"] == group) & (table["loss"] == loss)].iloc[0]
            assert row["classes"] == ", ".join(names[k] for k in labels)
            for metric, fn in (("macro_f1", f1_score), ("macro_recall", recall_score)):
                expected = fn(
                    pred["y_true"], y_hat, labels=labels, average="macro", zero_division=0
                )
                assert row[f"{metric}_mean"] == pytest.approx(expected), (run, group, metric)
    page = (exp / "summary" / "report.html").read_text()
    assert "Head, medium and tail classes" in page


def test_task_binary_merges_every_attack_against_the_negative_class(cli, tmp_path):
    """--task binary: benign against `attack` (dos, scan, bot merged); attack is the positive
    class, so POD and FAR are the IDS detection rate and false-alarm rate (sklearn recomputed)."""
    csv = _threshold_csv(tmp_path / "t.csv")
    res = cli(
        "compare", "--data", csv, "--losses", "ce", "--task", "binary", "--negative", "benign",
        "--seeds", "0", "--epochs", "2", "--model", "mlp", "--device", "cpu",
        "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert res.code == 0, res.err
    exp = _exp(tmp_path / "out")
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["class_names"] == ["attack", "benign"]
    assert sorted(meta["data_info"]["merged"]["attack"]) == ["bot", "dos", "scan"]
    assert meta["data"]["task"] == "binary"
    metrics = json.loads((exp / "runs" / "ce_seed0" / "metrics.json").read_text())
    summary = metrics["summary"]
    assert summary["positive_class"] == "attack"
    pred = pd.read_parquet(exp / "runs" / "ce_seed0" / "predictions.parquet")
    attack = pred["y_true"].to_numpy() == 0
    said = pred[["z_0", "z_1"]].to_numpy().argmax(axis=1) == 0
    assert 0 < attack.sum() < len(attack)
    assert summary["pod"] == pytest.approx(recall_score(attack, said))
    far = (said & ~attack).sum() / (~attack).sum()
    assert summary["far"] == pytest.approx(far)


def test_task_binary_with_an_unknown_negative_class_exits_2(cli, tmp_path):
    csv = _threshold_csv(tmp_path / "t.csv")
    res = cli(
        "run", "--data", csv, "--loss", "ce", "--task", "binary", "--negative", "normal",
        "--epochs", "1", "--model", "mlp", "--out", tmp_path / "out",
    )  # fmt: skip
    assert res.code == 2
    assert "negative 'normal'" in res.err and "'benign'" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert "Traceback" not in res.err and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------
# --split-by


def _compare_glf(cli, tmp_path: Path, *extra: str) -> Path:
    res = cli(
        "compare", "--data", tmp_path / "glf", "--losses", "ce", "--seeds", "0", "--epochs", "1",
        "--model", "mlp", "--device", "cpu", "--out", tmp_path / "out", "--quiet", *extra,
    )  # fmt: skip
    assert res.code == 0, res.err
    return _exp(tmp_path / "out")


def _glf_split(cli, tmp_path: Path, split_by: str, key: str) -> tuple[Path, dict[str, list]]:
    """A compare on generated day files split by `split_by`: the experiment, and per split the
    generator's `key` value (time, ip) of each of its rows."""
    truth = write_glf_folder(tmp_path / "glf")
    exp = _compare_glf(cli, tmp_path, "--split-by", split_by)
    values = _row_truth(exp, truth, key)
    ids = _split_ids(exp)
    ids["train"] = set(values) - ids["val"] - ids["test"]
    return exp, {k: [values[i] for i in ids[k]] for k in ("train", "val", "test")}


def test_split_by_time_orders_train_before_val_before_test(cli, tmp_path):
    exp, t = _glf_split(cli, tmp_path, "time", "time")
    assert [len(t[k]) for k in ("train", "val", "test")] == [240, 80, 80]
    assert max(t["train"]) <= min(t["val"]) and max(t["val"]) <= min(t["test"])
    # the test split is the Friday afternoon: 15:xx, 16:xx read 3:xx, 4:xx in the files
    assert min(t["test"]).hour >= 13
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["data"]["split_by"] == "time"
    split = meta["data_info"]["split"]
    assert split["checks"]["train_rows_after_first_test_row"] == 0
    assert split["parts"]["test"]["time_range"][1] <= "2017-07-07T17:00:00"
    assert meta["data_info"]["leakage"]["train_rows_after_first_test_row"] == 0
    assert "Timestamp" in meta["data_info"]["dropped"]["columns"]


def test_split_by_group_keeps_every_source_ip_in_one_split(cli, tmp_path):
    exp, ips = _glf_split(cli, tmp_path, "group:Source IP", "ip")
    seen = [set(ips[k]) for k in ("train", "val", "test")]
    assert all(seen)
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    meta = json.loads((exp / "experiment.json").read_text())
    split = meta["data_info"]["split"]
    assert split["checks"]["groups_shared_between_splits"] == 0
    assert [split["parts"][p]["groups"] for p in ("train", "val", "test")] == [len(s) for s in seen]


def test_split_by_files_takes_test_rows_from_the_test_files_only(cli, tmp_path):
    """Given in a TOML config file, as `split_by = ...`."""
    truth = write_glf_folder(tmp_path / "glf")
    toml = tmp_path / "exp.toml"
    toml.write_text('split_by = "files:Monday*,Tuesday*;Friday*Morning*;*DDos*"\n')
    exp = _compare_glf(cli, tmp_path, "--config", toml)
    meta = json.loads((exp / "experiment.json").read_text())
    file_of = {}
    for src in meta["data_info"]["source_rows"]:
        for i in range(len(truth[Path(src["path"]).name]["time"])):
            file_of[src["offset"] + i] = Path(src["path"]).name
    ids = _split_ids(exp)
    assert {file_of[i] for i in ids["test"]} == {"Friday-WorkingHours-Afternoon-DDos.pcap_ISCX.csv"}
    assert len(ids["test"]) == 100
    assert {file_of[i] for i in ids["val"]} == {"Friday-WorkingHours-Morning.pcap_ISCX.csv"}
    assert meta["data"]["split_by"] == "files:Monday*,Tuesday*;Friday*Morning*;*DDos*"


def test_inspect_split_by_time_says_what_each_split_holds(cli, tmp_path):
    write_glf_folder(tmp_path / "glf")
    res = cli("inspect", "--data", tmp_path / "glf", "--split-by", "time", "--json")
    assert res.code == 0, res.err
    info = json.loads(res.out)
    parts = info["split"]["parts"]
    assert set(parts) == {"train", "val", "test"}
    assert sum(parts["train"]["classes"].values()) == parts["train"]["rows"] == 240
    stamps = info["timestamps"]
    assert stamps["rows_restored"]["Friday-WorkingHours-Afternoon-DDos.pcap_ISCX.csv"] == 100
    assert stamps["rows_restored"]["Friday-WorkingHours-Morning.pcap_ISCX.csv"] == 0
    assert "12-hour" in stamps["clock"]


def _late_class_csv(path: Path) -> Path:
    """A generic CSV with an ISO timestamp column `ts`, where class `late` only occurs in the last
    tenth of the time range."""
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    frame["ts"] = pd.date_range("2020-01-01", periods=n, freq="min").strftime("%Y-%m-%dT%H:%M:%S")
    frame["Label"] = np.where(np.arange(n) % 2 == 0, "a", "b")
    frame.loc[n - 20 :, "Label"] = "late"
    frame.to_csv(path, index=False)
    return path


def _bad_glf_timestamp(tmp_path: Path) -> Path:
    folder = tmp_path / "glf"
    write_glf_folder(folder)
    path = folder / "Tuesday-WorkingHours.pcap_ISCX.csv"
    frame = pd.read_csv(path)
    frame.loc[6, " Timestamp"] = "04/07/2017 1O:15:00"
    frame.to_csv(path, index=False)
    return folder


@pytest.mark.parametrize(
    ("make", "split_by", "needles"),
    [
        (lambda p: write_glf_folder(p / "glf") and p / "glf", "group:Source MAC",
         ["no column 'Source MAC'"]),
        (_bad_glf_timestamp, "time",
         ["'04/07/2017 1O:15:00'", "line 8", "Tuesday-WorkingHours.pcap_ISCX.csv"]),
        (lambda p: _late_class_csv(p / "late.csv"), "time:ts",
         ["'late'", "no training rows", "drop_classes"]),
        (lambda p: write_glf_folder(p / "glf") and p / "glf", "files:Monday*;Wednesday*;Friday*",
         ["'Wednesday*' matches no file"]),
    ],
    ids=["unknown-column", "unparsable-timestamp", "class-missing-from-training", "glob-no-file"],
)  # fmt: skip
def test_bad_split_input_exits_2_with_one_line_and_no_folder(
    cli, tmp_path, make, split_by, needles
):
    data = make(tmp_path)
    res = cli(
        "compare", "--data", data, "--losses", "ce", "--seeds", "0", "--epochs", "1",
        "--model", "mlp", "--out", tmp_path / "out", "--split-by", split_by,
    )  # fmt: skip
    assert res.code == 2, res.err
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err
    for needle in needles:
        assert needle in res.err
    assert not (tmp_path / "out").exists()


def test_afternoon_hours_restored_on_rows_of_the_shared_raw_head_file(cli, tmp_path):
    """The shared file's first flows read `7/7/2017 3:30` (the Friday afternoon DDoS file: 15:30).
    Copied under their release name, with every other row relabelled so that there are two classes,
    every timestamp reads 15:30 after restoration; under a Morning name it stays 03:30."""
    if not RAW_GLF.exists():
        pytest.skip(f"{RAW_GLF} not present (../shared/datasets is absent)")
    raw = RAW_GLF
    lines = raw.read_text(encoding="utf-8").splitlines()
    assert all(",7/7/2017 3:30," in line for line in lines[1:])
    body = [
        ln.rsplit(",", 1)[0] + ",DDoS" if i % 2 == 0 and i else ln for i, ln in enumerate(lines)
    ]
    for name, expected in (
        ("Friday-WorkingHours-Afternoon-DDos.pcap_ISCX.csv", "2017-07-07T15:30:00"),
        ("Friday-WorkingHours-Morning.pcap_ISCX.csv", "2017-07-07T03:30:00"),
    ):
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        (folder / name).write_text("\n".join(body) + "\n", encoding="utf-8")
        res = cli("inspect", "--data", folder, "--split-by", "time", "--json")
        assert res.code == 0, res.err
        info = json.loads(res.out)
        for part in info["split"]["parts"].values():
            assert part["time_range"] == [expected, expected]
        restored = info["timestamps"]["rows_restored"][name]
        assert restored == (len(lines) - 1 if "Afternoon" in name else 0)


# ------------------------------------------------------------------------------------------------
# CSE-CIC-IDS2018 (CICFlowMeter-V3 names, as distributed) and --test-data


def test_cicids2018_preset_reads_the_release_format(cli, tmp_path):
    """auto detects CSE-CIC-IDS2018, maps its names to CICIDS2017's, drops the repeated header row
    and the identifier columns, and merges its labels into the 2017 sample's classes."""
    path = write_ids2018_file(
        tmp_path / "Thuesday-20-02-2018_TrafficForML_CICFlowMeter.csv", ids=True
    )
    res = cli("inspect", "--data", path, "--json", "--split-by", "group:Source IP")
    assert res.code == 0, res.err
    info = json.loads(res.out)
    assert info["preset"] == "cicids2018"
    assert info["dropped"]["rows_repeated_header"] == 1
    assert set(info["classes"]) == {"BENIGN", "DoS", "Bot"}
    assert info["merged"]["DoS"] == ["DoS attacks-Hulk"]
    dropped = set(info["dropped"]["columns"])
    assert {"Flow ID", "Source IP", "Source Port", "Destination IP", "Timestamp"} <= dropped
    assert info["rows_with_missing"] == 2  # Infinity and NaN
    assert info["split"]["checks"]["groups_shared_between_splits"] == 0


def test_test_data_trains_on_2017_tests_on_2018_and_scores_like_sklearn(cli, tmp_path):
    write_glf_folder(tmp_path / "glf")
    test_file = write_ids2018_file(tmp_path / "Wednesday-21-02-2018_TrafficForML_CICFlowMeter.csv")
    exp = _compare_glf(
        cli, tmp_path, "--test-data", test_file, "--label-map", "DoS attacks-Hulk=DoS Hulk"
    )
    meta = json.loads((exp / "experiment.json").read_text())
    info = meta["data_info"]
    assert meta["data"]["test_data"] == str(test_file)
    assert info["test_data"]["preset"] == "cicids2018"
    raw = pd.read_csv(test_file)
    raw = raw[raw["Label"] != "Label"]
    finite = np.isfinite(raw[["Flow Byts/s", "Flow Pkts/s"]].astype(float)).all(axis=1)
    bots = int(((raw["Label"] == "Bot") & finite).sum())
    assert bots > 0 and info["test_data"]["unseen_classes"] == {"Bot": bots}
    assert info["leakage"]["test"]["per_class"]["Bot"]["rows"] == bots
    assert any("never seen in training" in w and "Bot" in w for w in info["warnings"])
    page = (exp / "summary" / "report.html").read_text()
    assert f"Bot ({bots} rows)" in page
    # training and validation come from --data only: 60/20 renormalised to 75/25 of 400 rows
    assert info["split"]["sizes"][:2] == [300, 100]
    run = exp / "runs" / "ce_seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    names = metrics["class_names"]
    assert names == ["BENIGN", "DoS Hulk", "PortScan", "Bot"]
    pred = pd.read_parquet(run / "predictions.parquet")
    assert len(pred) == 150 - 2  # the Infinity and NaN rows dropped (--nan-policy drop)
    y = pred["y_true"].to_numpy()
    z = pred[[f"z_{k}" for k in range(len(names))]].to_numpy()
    p = pred[[f"p_{k}" for k in range(len(names))]].to_numpy()
    y_hat = z.argmax(axis=1)
    assert (y == 3).sum() == bots and not (y_hat == 3).any()
    labels = list(range(len(names)))
    from sklearn.metrics import (
        accuracy_score,
        matthews_corrcoef,
        precision_recall_fscore_support,
    )

    prec, rec, f1, support = precision_recall_fscore_support(
        y, y_hat, labels=labels, zero_division=0
    )
    summary = metrics["summary"]
    assert summary["accuracy"] == pytest.approx(accuracy_score(y, y_hat))
    assert summary["macro_f1"] == pytest.approx(f1.mean())
    assert summary["macro_precision"] == pytest.approx(prec.mean())
    assert summary["macro_recall"] == pytest.approx(rec.mean())
    assert summary["mcc"] == pytest.approx(matthews_corrcoef(y, y_hat))
    brier = np.mean(np.sum((np.eye(len(names))[y] - p) ** 2, axis=1))
    assert summary["brier"] == pytest.approx(brier)
    per_class = pd.read_csv(run / "per_class.csv").set_index("class")
    np.testing.assert_allclose(per_class.loc[names, "f1"], f1)
    np.testing.assert_allclose(per_class.loc[names, "recall"], rec)
    np.testing.assert_allclose(per_class.loc[names, "support"], support)
    assert per_class.loc["Bot", "recall"] == 0  # never predicted: errors of the model


def test_test_data_missing_a_feature_exits_2_listing_it(cli, tmp_path):
    write_glf_folder(tmp_path / "glf")
    path = write_ids2018_file(tmp_path / "t2018.csv")
    frame = pd.read_csv(path).drop(columns=["Flow IAT Max", "Fwd IAT Tot"])
    frame.to_csv(path, index=False)
    res = cli(
        "compare", "--data", tmp_path / "glf", "--test-data", path, "--losses", "ce",
        "--seeds", "0", "--epochs", "1", "--model", "mlp", "--out", tmp_path / "out",
    )  # fmt: skip
    assert res.code == 2, res.err
    assert len(res.err.strip().splitlines()) == 1
    assert "'Flow IAT Max'" in res.err and "'Fwd IAT Total'" in res.err
    assert not (tmp_path / "out").exists()
