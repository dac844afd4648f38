"""lossbench.report and lossbench.io on a hand-written experiment folder.

The fixture writes the results contract by hand (2 losses x 2 seeds, 1 baseline run, 1 failed run,
1 incomplete run, K = 3, 50 random test rows per seed) with metrics computed by scikit-learn; every
expected number below is recomputed independently with NumPy/SciPy/scikit-learn.
"""

from __future__ import annotations

import base64
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from lossbench.io import (
    atomic_path,
    atomic_savefig,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
)
from lossbench.report import build_summary, run_plots, summary_tables

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["BENIGN", "DoS Hulk", "Web <Attack> & Co"]  # markup in a name: must be escaped
K = len(CLASSES)
N_TEST = 50
LOSSES = ["focal", "ce", "dwb"]  # deliberately not alphabetical: tables follow this order
BASELINES = ["lr"]
SEEDS = [0, 1]
N_BOOT = 200

CONTRACT_FILES = [
    f"table_{t}.{ext}"
    for t in (
        "average",
        "average_tuned",
        "per_class",
        "calibration",
        "operating_points",
        "class_groups",
    )
    for ext in ("csv", "md", "parquet")
] + [
    "significance.csv",
    "ranks.csv",
    "plots/history_overlay.png",
    "plots/per_class_f1.png",
    "plots/reliability_overlay.png",
    "plots/pr_curves.png",
    "report.html",
]


# ------------------------------------------------------------------------------------------------
# building the fake experiment


def _calibration(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> dict:
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, n_bins + 1)
    bins, ece, mce = [], 0.0, 0.0
    for b in range(n_bins):
        inside = (conf > edges[b]) & (conf <= edges[b + 1])
        n = int(inside.sum())
        c = float(conf[inside].mean()) if n else None
        a = float(correct[inside].mean()) if n else None
        gap = abs(a - c) if n else None
        if n:
            ece += n / len(y) * gap
            mce = max(mce, gap)
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": n,
                "confidence": c,
                "accuracy": a,
                "gap": gap,
            }
        )
    onehot = np.eye(proba.shape[1])[y]
    brier = float(np.mean(np.sum((onehot - proba) ** 2, axis=1)))
    return {"brier": brier, "ece": ece, "mce": mce, "n_bins": n_bins, "bins": bins}


def _write_ok_run(
    runs: Path,
    loss: str,
    kind: str,
    seed: int,
    y: np.ndarray,
    row_id: np.ndarray,
    proba: np.ndarray,
    rng: np.random.Generator,
) -> dict:
    """Write every result file of a completed run; returns its metrics.json."""
    d = runs / f"{loss}_seed{seed}"
    d.mkdir(parents=True)
    name = d.name
    (d / "config.json").write_text(
        json.dumps({"name": name, "loss": loss, "kind": kind, "seed": seed, "params": {}})
    )
    pred = proba.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=range(K), zero_division=0
    )
    cm = confusion_matrix(y, pred, labels=range(K))
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    far = fp / (fp + tn)
    onehot = np.eye(K)[y]
    auroc = [roc_auc_score(onehot[:, k], proba[:, k]) for k in range(K)]
    auprc = [average_precision_score(onehot[:, k], proba[:, k]) for k in range(K)]
    per_class = pd.DataFrame(
        {
            "class": CLASSES,
            "precision": prec,
            "recall": rec,
            "f1": f1,
            "far": far,
            "specificity": 1 - far,
            "auroc": auroc,
            "auprc": auprc,
            "support": support,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
        }
    )
    per_class.to_csv(d / "per_class.csv", index=False)
    cal = _calibration(y, proba)
    (d / "calibration.json").write_text(json.dumps(cal))
    conf = pd.DataFrame(cm, columns=CLASSES)
    conf.insert(0, "true", CLASSES)
    conf.to_csv(d / "confusion.csv", index=False)
    summary = {
        "accuracy": float((pred == y).mean()),
        "macro_precision": float(prec.mean()),
        "macro_recall": float(rec.mean()),
        "macro_f1": float(f1.mean()),
        "macro_far": float(far.mean()),
        "macro_auroc": float(np.mean(auroc)),
        "macro_auprc": float(np.mean(auprc)),
        "brier": cal["brier"],
        "ece": cal["ece"],
        "mce": cal["mce"],
    }
    metrics = {
        "status": "ok",
        "reason": None,
        "name": name,
        "loss": loss,
        "kind": kind,
        "seed": seed,
        "class_names": CLASSES,
        "summary": summary,
        "undefined": [],
        "learned_params": {"alpha_0": 1.2} if loss == "focal" else {},
        "epochs_run": 3 + seed if kind == "loss" else 0,
        "best_epoch": 2 if kind == "loss" else 0,
        "train_seconds": 1.5,
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    if kind == "loss":
        epochs = np.arange(1, 4 + seed)  # ragged: seed 0 has 3 epochs, seed 1 has 4
        hist = pd.DataFrame(
            {
                "epoch": epochs,
                "loss": 1.0 / epochs,
                "val_loss": 1.1 / epochs,
                "val_macro_f1": rng.uniform(0, 1, len(epochs)),
                "val_macro_recall": rng.uniform(0, 1, len(epochs)),
                "lr": 1e-3,
                "seconds": 0.5,
            }
        )
        if loss == "focal":  # learned parameters -> a third panel
            for k in range(K):
                hist[f"alpha_{k}"] = rng.uniform(0.5, 1.5, len(epochs))
        for k in range(K):
            hist[f"val_class_loss_{k}"] = rng.uniform(0, 1, len(epochs))
        hist.to_csv(d / "history.csv", index=False)
    preds = pd.DataFrame({"row_id": row_id.astype(np.int64), "y_true": y.astype(np.int64)})
    for k in range(K):
        preds[f"p_{k}"] = proba[:, k].astype(np.float32)
    # shuffled rows: the report must align runs by row_id, not by position
    preds = preds.sample(frac=1.0, random_state=seed + len(loss)).reset_index(drop=True)
    preds.to_parquet(d / "predictions.parquet", index=False)
    (d / "DONE").write_text("done\n")
    return metrics


def _make_experiment(root: Path) -> tuple[Path, dict]:
    """The fake experiment folder and {run name: (metrics, y, row_id, proba)} of the ok runs."""
    exp = root / "exp"
    runs = exp / "runs"
    runs.mkdir(parents=True)
    (exp / "experiment.json").write_text(
        json.dumps(
            {
                "name": "fake <exp>",
                "command": "compare",
                "dataset": "digits-lt",
                "class_names": CLASSES,
                "losses": LOSSES,
                "baselines": BASELINES,
                "seeds": SEEDS,
                "train": {"epochs": 4, "batch_size": 32},
                "data": {"seed": 0},
            }
        )
    )
    rng = np.random.default_rng(1234)
    ok: dict[str, tuple] = {}
    for seed in SEEDS:
        # a different test split per seed, shared by the runs of that seed
        y = np.concatenate([np.arange(K), rng.integers(0, K, N_TEST - K)])
        row_id = rng.permutation(1000)[:N_TEST] + 1000 * seed
        for loss in ("focal", "ce"):
            proba = rng.dirichlet(np.ones(K), N_TEST)
            proba[np.arange(N_TEST), y] += rng.uniform(0, 0.6, N_TEST)  # better than chance
            proba /= proba.sum(axis=1, keepdims=True)
            m = _write_ok_run(runs, loss, "loss", seed, y, row_id, proba, rng)
            ok[m["name"]] = (m, y, row_id, proba)
        if seed == 0:
            proba = rng.dirichlet(np.ones(K), N_TEST)
            m = _write_ok_run(runs, "lr", "baseline", seed, y, row_id, proba, rng)
            ok[m["name"]] = (m, y, row_id, proba)
    # failed: metrics.json with status failed, no DONE
    failed = runs / "dwb_seed0"
    failed.mkdir()
    (failed / "config.json").write_text(json.dumps({"loss": "dwb", "kind": "loss", "seed": 0}))
    (failed / "metrics.json").write_text(
        json.dumps(
            {
                "status": "failed",
                "reason": "loss became NaN at epoch 2 <nan>",
                "name": "dwb_seed0",
                "loss": "dwb",
                "kind": "loss",
                "seed": 0,
            }
        )
    )
    # incomplete: an interrupted baseline run (config only, no DONE)
    incomplete = runs / "lr_seed1"
    incomplete.mkdir()
    (incomplete / "config.json").write_text(
        json.dumps({"loss": "lr", "kind": "baseline", "seed": 1})
    )
    return exp, ok


@pytest.fixture
def experiment(tmp_path: Path) -> tuple[Path, dict]:
    """A fresh fake experiment (for tests that change it or plot into it)."""
    return _make_experiment(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict, dict]:
    """The fake experiment after build_summary (built once: most tests only read it)."""
    exp, ok = _make_experiment(tmp_path_factory.mktemp("built"))
    written = build_summary(exp, n_boot=N_BOOT)
    return exp, ok, written


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else float("nan")


# ------------------------------------------------------------------------------------------------
# build_summary: files and tables


def test_build_summary_writes_every_contract_file(built):
    exp, _, written = built
    assert sorted(written) == sorted(CONTRACT_FILES)
    for rel in CONTRACT_FILES:
        path = exp / "summary" / rel
        assert written[rel] == path
        assert path.is_file() and path.stat().st_size > 0, rel
    for rel in CONTRACT_FILES:
        if rel.endswith(".png"):
            data = (exp / "summary" / rel).read_bytes()
            assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, rel
    leftovers = [p.name for p in (exp / "summary").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_average_table_is_the_mean_and_std_over_seeds(built):
    exp, ok, _ = built
    table = pd.read_csv(exp / "summary" / "table_average.csv")
    assert table["loss"].tolist() == ["focal", "ce", "dwb", "lr"]  # losses order, then baselines
    assert table["kind"].tolist() == ["loss", "loss", "loss", "baseline"]
    rows = table.set_index("loss")
    for loss in ("focal", "ce"):
        for metric in ("macro_precision", "macro_recall", "macro_f1", "macro_auroc", "macro_auprc"):
            values = [ok[f"{loss}_seed{s}"][0]["summary"][metric] for s in SEEDS]
            mean, std = _mean_std(values)
            assert rows.loc[loss, f"{metric}_mean"] == pytest.approx(mean, abs=1e-12)
            assert rows.loc[loss, f"{metric}_std"] == pytest.approx(std, abs=1e-12)
        assert rows.loc[loss, "n_seeds"] == 2 and rows.loc[loss, "n_failed"] == 0
    # the baseline: one completed seed (std undefined), its interrupted seed counted as failed
    assert rows.loc["lr", "n_seeds"] == 1 and rows.loc["lr", "n_failed"] == 1
    f1_lr = ok["lr_seed0"][0]["summary"]["macro_f1"]
    assert rows.loc["lr", "macro_f1_mean"] == pytest.approx(f1_lr)
    assert np.isnan(rows.loc["lr", "macro_f1_std"])
    # the failed loss keeps its row, with no numbers; its seed 1 (planned, no folder) counts too
    assert rows.loc["dwb", "n_seeds"] == 0 and rows.loc["dwb", "n_failed"] == 2
    assert np.isnan(rows.loc["dwb", "macro_f1_mean"])
    parquet = pd.read_parquet(exp / "summary" / "table_average.parquet")
    pd.testing.assert_frame_equal(parquet, table, check_dtype=False)


def test_per_class_and_calibration_tables(built):
    exp, ok, _ = built
    per_class = pd.read_csv(exp / "summary" / "table_per_class.csv")
    # rows (class, loss): classes in class order, losses in table order within a class
    expected_order = [(c, k) for c in CLASSES for k in ("focal", "ce", "lr")]
    assert list(zip(per_class["class"], per_class["loss"], strict=True)) == expected_order
    for k, cls in enumerate(CLASSES):
        for loss in ("focal", "ce"):
            f1s = []
            for s in SEEDS:
                _, y, _, proba = ok[f"{loss}_seed{s}"]
                f1s.append(f1_score(y, proba.argmax(1), labels=[k], average=None)[0])
            row = per_class[(per_class["class"] == cls) & (per_class["loss"] == loss)].iloc[0]
            mean, std = _mean_std(f1s)
            assert row["f1_mean"] == pytest.approx(mean, abs=1e-12)
            assert row["f1_std"] == pytest.approx(std, abs=1e-12)
    cal = pd.read_csv(exp / "summary" / "table_calibration.csv").set_index("loss")
    for loss in ("focal", "ce"):
        for metric in ("brier", "ece", "mce"):
            values = [ok[f"{loss}_seed{s}"][0]["summary"][metric] for s in SEEDS]
            assert cal.loc[loss, f"{metric}_mean"] == pytest.approx(np.mean(values), abs=1e-12)
    # the Brier in the table is the NumPy Brier of the stored probabilities
    _, y, _, proba = ok["ce_seed0"]
    brier0 = np.mean(np.sum((np.eye(K)[y] - proba) ** 2, axis=1))
    _, y, _, proba = ok["ce_seed1"]
    brier1 = np.mean(np.sum((np.eye(K)[y] - proba) ** 2, axis=1))
    assert cal.loc["ce", "brier_mean"] == pytest.approx((brier0 + brier1) / 2, abs=1e-12)


def test_summary_tables_match_the_written_csv(built):
    exp, _, _ = built
    tables = summary_tables(exp)
    assert set(tables) == {
        "average",
        "average_tuned",
        "per_class",
        "calibration",
        "operating_points",
        "class_groups",
    }
    for which, df in tables.items():
        on_disk = pd.read_csv(exp / "summary" / f"table_{which}.csv")
        pd.testing.assert_frame_equal(df.reset_index(drop=True), on_disk, check_dtype=False)


def test_markdown_cells_are_mean_pm_std_with_three_decimals(built):
    exp, ok, _ = built
    md = (exp / "summary" / "table_average.md").read_text(encoding="utf-8")
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == [
        "Loss",
        "Precision",
        "Recall",
        "F1",
        "FAR",
        "AUROC",
        "AUPRC",
        "Seeds",
        "Failed",
    ]
    cells = {ln.strip("|").split("|")[0].strip(): ln for ln in lines[2:]}
    assert list(cells) == ["focal", "ce", "dwb", "lr"]
    mean, std = _mean_std([ok[f"ce_seed{s}"][0]["summary"]["macro_f1"] for s in SEEDS])
    assert f"| {mean:.3f} ± {std:.3f} |" in cells["ce"]
    f1_lr = ok["lr_seed0"][0]["summary"]["macro_f1"]
    assert f"| {f1_lr:.3f} |" in cells["lr"] and "±" not in cells["lr"]  # one seed: no ± part


# ------------------------------------------------------------------------------------------------
# significance


def test_significance_every_pair_no_test_with_two_seeds(built):
    """2 seeds: differences and per-seed bootstrap, but no test and nothing significant."""
    exp, ok, _ = built
    sig = pd.read_csv(exp / "summary" / "significance.csv")
    # every pair of methods with results (dwb has none), per headline metric, in table order
    metrics = ["macro_f1", "macro_recall", "macro_auprc", "brier"]
    pairs = [("ce", "focal"), ("lr", "focal"), ("lr", "ce")]
    got = list(zip(sig["metric"], sig["method_a"], sig["method_b"], strict=True))
    assert got == [(m, a, b) for m in metrics for a, b in pairs]
    assert not sig["significant"].any() and sig["p_value"].isna().all()
    assert sig["note"].str.contains("no test possible").all()
    rows = sig.set_index(["method_a", "method_b", "metric"])
    for metric in metrics:
        a = np.array([ok[f"ce_seed{s}"][0]["summary"][metric] for s in SEEDS])
        b = np.array([ok[f"focal_seed{s}"][0]["summary"][metric] for s in SEEDS])
        row = rows.loc[("ce", "focal", metric)]
        assert row["n_seeds"] == 2
        assert row["mean_diff"] == pytest.approx(np.mean(a - b), abs=1e-12)
        half = stats.t.ppf(0.975, 1) * np.std(a - b, ddof=1) / np.sqrt(2)
        assert row["ci_low"] == pytest.approx(np.mean(a - b) - half, abs=1e-12)
        # the bootstrap's point: the mean of the per-seed differences (float32 predictions)
        assert row["boot_diff"] == pytest.approx(np.mean(a - b), abs=1e-5)
        assert row["boot_ci_low"] <= row["boot_diff"] <= row["boot_ci_high"]
        assert row["n_test"] == 2 * N_TEST
    lr = rows.loc[("lr", "ce", "macro_f1")]  # the baseline has one completed seed
    assert lr["n_seeds"] == 1 and np.isnan(lr["p_value"]) and lr["n_test"] == N_TEST


# ------------------------------------------------------------------------------------------------
# report.html


class _PageParser(HTMLParser):
    """Collects table cells, image sources, every src/href attribute and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.links: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href", "srcset", "action", "data"):
            if key in attrs:
                self.links.append((tag, key, attrs[key] or ""))
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def test_report_html_is_self_contained_with_all_tables(built):
    exp, ok, _ = built
    page = (exp / "summary" / "report.html").read_text(encoding="utf-8")
    parser = _PageParser()
    parser.feed(page)
    parser.close()
    text = "".join(parser.text)

    # escaped markup: the class name comes back as text, never as a tag
    assert "<Attack>" not in page and "Web &lt;Attack&gt; &amp; Co" in page
    assert "Web <Attack> & Co" in text and "fake <exp>" in text
    assert "digits-lt" in text and "focal, ce, dwb" in text

    def find_table(first_header: str, second_header: str) -> list[list[str]]:
        for t in parser.tables:
            if t and t[0][:2] == [first_header, second_header]:
                return t
        raise AssertionError(f"no table starting {first_header}, {second_header}")

    average = find_table("Loss", "Precision")
    assert [r[0] for r in average[1:]] == ["focal", "ce", "dwb", "lr"]
    col = average[0].index("F1")
    mean, std = _mean_std([ok[f"focal_seed{s}"][0]["summary"]["macro_f1"] for s in SEEDS])
    assert average[1][col] == f"{mean:.3f} ± {std:.3f}"

    per_class = find_table("Class", "Loss")
    assert len(per_class) == 1 + 3 * K
    row = next(r for r in per_class if r[:2] == ["Web <Attack> & Co", "ce"])
    f1s = [
        f1_score(ok[f"ce_seed{s}"][1], ok[f"ce_seed{s}"][3].argmax(1), labels=[2], average=None)[0]
        for s in SEEDS
    ]
    mean, std = _mean_std(f1s)
    assert row[per_class[0].index("F1")] == f"{mean:.3f} ± {std:.3f}"

    calibration = find_table("Loss", "Brier")
    mean, std = _mean_std([ok[f"ce_seed{s}"][0]["summary"]["ece"] for s in SEEDS])
    ce_row = next(r for r in calibration if r[0] == "ce")
    assert ce_row[calibration[0].index("ECE")] == f"{mean:.3f} ± {std:.3f}"

    significance = find_table("A", "B")
    assert {(r[0], r[1]) for r in significance[1:]} == {
        ("ce", "focal"),
        ("lr", "focal"),
        ("lr", "ce"),
    }

    # failed, incomplete and missing runs with their reasons
    excluded = find_table("Run", "Loss")
    by_run = {r[0]: r for r in excluded[1:]}
    assert by_run["dwb_seed0"][3] == "failed"
    assert by_run["dwb_seed0"][4] == "loss became NaN at epoch 2 <nan>"
    assert by_run["lr_seed1"][3] == "incomplete" and "DONE" in by_run["lr_seed1"][4]
    assert by_run["dwb_seed1"][3] == "missing"
    assert "focal_seed0" not in by_run

    # every image is an embedded, decodable PNG; nothing points outside the page
    assert len(parser.images) >= 4
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_SIGNATURE)
    assert all(v.startswith("data:") for _, _, v in parser.links), parser.links
    assert "<link" not in page and "<script" not in page and "url(" not in page


def test_build_summary_with_no_completed_run(tmp_path):
    exp = tmp_path / "exp"
    d = exp / "runs" / "ce_seed0"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(
        json.dumps({"status": "failed", "reason": "boom", "loss": "ce", "seed": 0})
    )
    written = build_summary(exp, n_boot=N_BOOT)
    assert sorted(written) == sorted(CONTRACT_FILES)
    table = pd.read_csv(written["table_average.csv"])
    assert table["loss"].tolist() == ["ce"] and table["n_failed"].tolist() == [1]
    assert "boom" in written["report.html"].read_text(encoding="utf-8")


def test_build_summary_rejects_a_folder_that_is_not_an_experiment(tmp_path):
    from lossbench.errors import InputError

    with pytest.raises(InputError, match="not an experiment folder"):
        build_summary(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


# ------------------------------------------------------------------------------------------------
# run_plots


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ("focal_seed1", ["confusion.png", "history.png", "per_class_f1.png", "reliability.png"]),
        ("ce_seed0", ["confusion.png", "history.png", "per_class_f1.png", "reliability.png"]),
        ("lr_seed0", ["confusion.png", "per_class_f1.png", "reliability.png"]),  # baseline
    ],
)
def test_run_plots(experiment, run, expected):
    exp, _ = experiment
    run_dir = exp / "runs" / run
    paths = run_plots(run_dir)
    assert sorted(p.name for p in paths) == expected
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == expected
    for p in paths:
        assert p.parent == run_dir / "plots"
        assert p.read_bytes().startswith(PNG_SIGNATURE) and p.stat().st_size > 5000
        image = mpimg.imread(p)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
        assert image[..., :3].std() > 0.01  # not a blank canvas


# ------------------------------------------------------------------------------------------------
# atomic writes


def test_atomic_writes_replace_and_leave_no_temp_files(tmp_path):
    from matplotlib.figure import Figure

    out = tmp_path / "new" / "folder"  # created on demand
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for round_ in range(2):  # the second round replaces the first
        atomic_write_text(out / "t.txt", f"text {round_}")
        atomic_write_bytes(out / "b.bin", bytes([round_]))
        atomic_write_json(out / "j.json", {"round": round_, "nan": float("nan")})
        atomic_write_csv(out / "t.csv", df.assign(r=round_))
        atomic_write_parquet(out / "t.parquet", df.assign(r=round_))
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [round_, 1])
        atomic_savefig(fig, out / "f.png")
    assert (out / "t.txt").read_text() == "text 1"
    assert (out / "b.bin").read_bytes() == b"\x01"
    assert json.loads((out / "j.json").read_text()) == {"round": 1, "nan": None}
    assert pd.read_csv(out / "t.csv")["r"].tolist() == [1, 1]
    assert pd.read_parquet(out / "t.parquet")["r"].tolist() == [1, 1]
    assert (out / "f.png").read_bytes().startswith(PNG_SIGNATURE)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["b.bin", "f.png", "j.json", "t.csv", "t.parquet", "t.txt"]
    mode = (out / "t.txt").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not tempfile's 0o600


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half-written")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    # a writer that fails half-way (pyarrow cannot store Python objects) also keeps the old file
    bad = pd.DataFrame({"a": [object(), object()]})
    with pytest.raises(Exception, match="(?i)arrow|object|convert"):
        atomic_write_parquet(target, bad)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def _figure_parts(fig) -> dict:
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    axes = [ax for ax in fig.axes if ax.has_data() and ax.get_label() != "<colorbar>"]
    return {
        "suptitle": suptitle,
        "axes": axes,
        "legends": [ax.get_legend() for ax in axes if ax.get_legend() is not None] + fig.legends,
    }


def test_run_figures_have_titles_axis_labels_and_legends(experiment):
    from lossbench.report.plots import (
        plot_confusion,
        plot_history,
        plot_per_class,
        plot_reliability,
    )

    exp, _ = experiment
    run_dir = exp / "runs" / "focal_seed1"
    figures = {
        "history": plot_history(pd.read_csv(run_dir / "history.csv"), "focal: history", 2),
        "reliability": plot_reliability(
            json.loads((run_dir / "calibration.json").read_text()), "focal"
        ),
        "confusion": plot_confusion(pd.read_csv(run_dir / "confusion.csv"), "focal"),
        "per_class": plot_per_class(pd.read_csv(run_dir / "per_class.csv"), "focal"),
    }
    need_legend = {"history", "reliability", "per_class"}  # several series on one axes
    for name, fig in figures.items():
        parts = _figure_parts(fig)
        assert parts["axes"], name
        for ax in parts["axes"]:
            assert ax.get_title() or parts["suptitle"], (name, "title")
            # an x label may sit on the panel below that shares the x axis
            xlabels = [a.get_xlabel() for a in ax.get_shared_x_axes().get_siblings(ax)]
            assert any(xlabels) and ax.get_ylabel(), (name, ax.get_title(), "axis labels")
        if name in need_legend:
            assert parts["legends"], (name, "legend")
            texts = [t.get_text() for lg in parts["legends"] for t in lg.get_texts()]
            assert all(texts), (name, texts)
