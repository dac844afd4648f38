"""What a reader sees (issue 18): undefined values, best marking, settings, readable figures.

A hand-written experiment folder: every metric is computed here with scikit-learn, never with
lossbench's own code.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from lossbench.report import build_summary


def _write_run(runs: Path, loss: str, seed: int, y: np.ndarray, proba: np.ndarray, names: list):
    k = len(names)
    d = runs / f"{loss}_seed{seed}"
    d.mkdir(parents=True)
    pred = proba.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=range(k), zero_division=0
    )
    cm = confusion_matrix(y, pred, labels=range(k))
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    far = fp / (fp + tn)
    pd.DataFrame(
        {
            "class": names,
            "precision": prec,
            "recall": rec,
            "f1": f1,
            "far": far,
            "support": support,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
        }
    ).to_csv(d / "per_class.csv", index=False)
    conf = pd.DataFrame(cm, columns=names)
    conf.insert(0, "true", names)
    conf.to_csv(d / "confusion.csv", index=False)
    edges = np.linspace(0, 1, 16)
    top = proba.max(axis=1)
    correct = pred == y
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (top > lo) & (top <= hi)
        n = int(inside.sum())
        bins.append(
            {
                "lower": lo,
                "upper": hi,
                "count": n,
                "confidence": float(top[inside].mean()) if n else None,
                "accuracy": float(correct[inside].mean()) if n else None,
            }
        )
    (d / "calibration.json").write_text(json.dumps({"ece": 0.1, "mce": 0.2, "bins": bins}))
    undefined = [f"precision[{names[c]}]" for c in range(k) if tp[c] + fp[c] == 0]
    summary = {
        "macro_precision": float(prec.mean()),
        "macro_recall": float(rec.mean()),
        "macro_f1": float(f1.mean()),
        "macro_far": float(far.mean()),
        "brier": 0.3,
        "ece": 0.1,
        "mce": 0.2,
    }
    metrics = {
        "status": "ok",
        "name": d.name,
        "loss": loss,
        "kind": "loss",
        "seed": seed,
        "class_names": names,
        "summary": summary,
        "undefined": undefined,
        "best_epoch": 2,
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    epochs = np.arange(1, 5)
    hist = pd.DataFrame(
        {
            "epoch": epochs,
            "loss": 1.0 / epochs,
            "val_loss": 1.2 / epochs,
            "val_macro_f1": 0.2 * epochs,
            "val_macro_recall": 0.2 * epochs,
        }
    )
    if loss == "amrl":  # per-class m, lambda and g (issue 13's naming)
        for c in range(k):
            hist[f"m_{c}"] = 1.0 + 0.1 * c
            hist[f"lambda_{c}"] = 0.5 * epochs / (c + 1)
            hist[f"g_{c}"] = 0.1 / epochs
    hist.to_csv(d / "history.csv", index=False)
    preds = pd.DataFrame({"row_id": np.arange(len(y)), "y_true": y})
    for c in range(k):
        preds[f"p_{c}"] = proba[:, c]
    preds.to_parquet(d / "predictions.parquet", index=False)
    (d / "DONE").write_text("done\n")


def make_experiment(
    root: Path,
    losses: list[str],
    seeds: list[int],
    n_classes: int,
    never_predicts: dict[str, int] | None = None,
    n_test: int = 120,
) -> Path:
    """An experiment folder; `never_predicts[loss] = c`: that loss never predicts class c."""
    names = [f"class {c}" for c in range(n_classes)]
    exp = root / "exp"
    (exp / "runs").mkdir(parents=True)
    meta = {
        "name": "exp",
        "command": "compare",
        "dataset": "digits-lt",
        "class_names": names,
        "losses": losses,
        "baselines": [],
        "seeds": seeds,
        "data": {"data": None, "preset": "auto"},
        "train": {"epochs": 4},
        "versions": {"lossbench": "0.1", "tensorflow": "2.21"},
    }
    (exp / "experiment.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(7)
    for seed in seeds:
        y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n_test)])
        for i, loss in enumerate(losses):
            proba = rng.dirichlet(np.ones(n_classes), len(y))
            proba[np.arange(len(y)), y] += rng.uniform(0.0, 0.3 + 0.05 * i, len(y))
            c = (never_predicts or {}).get(loss)
            if c is not None:
                proba[:, c] = 0.0
            proba /= proba.sum(axis=1, keepdims=True)
            _write_run(exp / "runs", loss, seed, y, proba, names)
    return exp


class _Cells(HTMLParser):
    """Every table row of a page as a list of (text, class attribute) cells."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = ["", dict(attrs).get("class") or ""]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append((self._cell[0].strip(), self._cell[1]))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


def _md_rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]


@pytest.fixture(scope="module")
def never_predicts(tmp_path_factory) -> Path:
    """ce and wce predict every class; focal never predicts class 2 (in both seeds)."""
    exp = make_experiment(
        tmp_path_factory.mktemp("undef"), ["ce", "wce", "focal"], [0, 1], 3, {"focal": 2}
    )
    build_summary(exp, n_boot=20)
    return exp


def test_undefined_precision_and_far_read_as_undefined_in_markdown(never_predicts):
    rows = _md_rows((never_predicts / "summary" / "table_per_class.md").read_text())
    header = rows[0]
    row = next(r for r in rows if r[:2] == ["class 2", "focal"])
    cell = dict(zip(header, row, strict=True))
    assert cell["Precision"] == "–"
    assert cell["FAR"] == "–"
    assert cell["Recall"] == "0.000 ± 0.000"  # defined: the class is in the test split
    ce = dict(zip(header, next(r for r in rows if r[:2] == ["class 2", "ce"]), strict=True))
    assert re.fullmatch(r"\d\.\d{3} ± \d\.\d{3}", ce["Precision"])
    text = (never_predicts / "summary" / "table_per_class.md").read_text()
    assert "never predicts" in text  # the footnote explains the –
    csv = pd.read_csv(never_predicts / "summary" / "table_per_class.csv")
    focal = csv[(csv["class"] == "class 2") & (csv["loss"] == "focal")].iloc[0]
    assert np.isnan(focal["precision_mean"]) and np.isnan(focal["far_mean"])
    assert focal["precision_undefined"] == 2 and focal["far_undefined"] == 2


def test_undefined_values_in_the_report_are_dashes_and_never_best(never_predicts):
    page = _Cells()
    page.feed((never_predicts / "summary" / "report.html").read_text())
    header = next(r for r in page.rows if [c[0] for c in r[:2]] == ["Class", "Loss"])
    labels = [c[0] for c in header]
    rows = {
        tuple(c[0] for c in r[:2]): dict(zip(labels, r, strict=True))
        for r in page.rows
        if len(r) == len(labels) and r[0][0].startswith("class ")
    }
    focal = rows[("class 2", "focal")]
    assert focal["Precision"] == ("–", "")
    assert focal["FAR"] == ("–", "")
    # the best FAR of class 2 is the smaller of ce's and wce's (independently computed here)
    far = {}
    for loss in ("ce", "wce"):
        pcs = [
            pd.read_csv(never_predicts / "runs" / f"{loss}_seed{s}" / "per_class.csv")
            for s in (0, 1)
        ]
        far[loss] = np.mean([pc.loc[2, "far"] for pc in pcs])
    best = min(far, key=far.get)
    assert "best" in rows[("class 2", best)]["FAR"][1]
    html = (never_predicts / "summary" / "report.html").read_text()
    assert "never predicts" in html


def test_settings_read_as_written(never_predicts):
    html = (never_predicts / "summary" / "report.html").read_text()
    assert "data: null" not in html and '"data": null' not in html
    assert ">Versions<" in html
    assert "versions options" not in html
    page = _Cells()
    page.feed(html)
    settings = {r[0][0]: r[1][0] for r in page.rows if len(r) == 2}
    assert settings["Dataset"] == "digits-lt"


# ------------------------------------------------------------------------------------------------
# the terminal


def test_losses_table_is_the_readme_table_without_python_reprs(cli):
    res = cli("losses")
    assert res.code == 0, res.err
    for repr_text in ("{'", "{}", "None", "True", "False"):
        assert repr_text not in res.out
    assert 'weights="inverse"' in res.out
    md = cli("losses", "--markdown")
    assert md.code == 0, md.err
    lines = md.out.strip().splitlines()
    assert lines[0] == "| name | formula | defaults | source | posterior / head |"
    assert len(lines) == 2 + 11
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text().splitlines()
    start = readme.index(lines[0])
    assert readme[start : start + len(lines)] == lines  # README shows what the command prints
    ce = next(line for line in lines if line.startswith("| `ce` |"))
    assert ce.split(" | ")[2] == "–"  # no parameters


def test_json_includes_per_class_metrics_with_undefined_as_null(cli, never_predicts):
    res = cli("report", never_predicts, "--json")
    assert res.code == 0, res.err
    payload = json.loads(res.out)
    rows = payload["table_per_class"]
    assert {r["class"] for r in rows} == {"class 0", "class 1", "class 2"}
    focal = next(r for r in rows if r["class"] == "class 2" and r["loss"] == "focal")
    assert focal["precision_mean"] is None and focal["far_mean"] is None
    assert focal["precision_undefined"] == 2
    ce = next(r for r in rows if r["class"] == "class 0" and r["loss"] == "ce")
    pcs = [pd.read_csv(never_predicts / "runs" / f"ce_seed{s}" / "per_class.csv") for s in (0, 1)]
    assert ce["f1_mean"] == pytest.approx(np.mean([pc.loc[0, "f1"] for pc in pcs]), abs=1e-12)


# ------------------------------------------------------------------------------------------------
# figures: size, labels, legends outside the data, legible fonts

REPORT_WIDTH_IN = 11.5  # report.html's content width (1150 px) at the figures' 100 dpi
TEN = ["ce", "wce", "focal", "cb", "dwb", "amrl", "pgfl", "la", "ldam", "vs"]


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(0.0, w) * max(0.0, h)


def _check_figure(name: str, fig) -> None:
    from matplotlib.text import Text

    width, height = fig.get_size_inches()
    assert 4.0 <= width <= REPORT_WIDTH_IN, (name, width)
    assert 3.0 <= height <= 16.0, (name, height)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    colorbars = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    data_axes = [ax for ax in fig.axes if ax.get_visible() and ax not in colorbars]
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    assert data_axes, name
    for ax in data_axes:
        assert ax.get_title() or suptitle, (name, "title")
        # an x label may sit on the panel below that shares the x axis
        xlabels = [a.get_xlabel() for a in ax.get_shared_x_axes().get_siblings(ax)]
        assert any(xlabels) and ax.get_ylabel(), (name, ax.get_title(), "axis labels")
        for tick in ax.get_xticklabels() + ax.get_yticklabels():
            if tick.get_text():
                assert tick.get_fontsize() >= 8, (name, "tick font", tick.get_fontsize())
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + fig.legends
    assert legends or colorbars, (name, "no legend or colour scale")
    fig_box = fig.bbox
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert all(t.get_text() for t in legend.get_texts()), name
        assert box.x0 >= -1 and box.y0 >= -1, (name, "legend cut off")
        assert box.x1 <= fig_box.x1 + 1 and box.y1 <= fig_box.y1 + 1, (name, "legend cut off")
        for ax in data_axes:
            data_area = ax.get_window_extent(renderer)
            assert _overlap(box, data_area) <= 1.0, (name, ax.get_title(), "legend over the data")
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip():
            assert text.get_fontsize() >= 7, (name, text.get_text(), text.get_fontsize())


@pytest.mark.parametrize(
    ("losses", "seeds", "n_classes"),
    [(["amrl"], [0], 2), (TEN[:5] + ["amrl"], [0], 10), (TEN, [0, 1, 2], 30)],
    ids=["1 run, 2 classes", "6 runs, 10 classes", "30 runs, 30 classes"],
)
def test_figures_fit_the_report_with_labels_and_legends_outside_the_data(
    tmp_path, losses, seeds, n_classes
):
    from lossbench.report.overlays import summary_figures
    from lossbench.report.plots import run_figures
    from lossbench.report.tables import load_experiment, tables_from

    exp = make_experiment(tmp_path, losses, seeds, n_classes, {losses[-1]: 1}, n_test=60)
    results = load_experiment(exp)
    figures = summary_figures(results, tables_from(results)["per_class"])
    for name, fig in run_figures(exp / "runs" / "amrl_seed0").items():
        figures[f"amrl_seed0/{name}"] = fig
    assert len(figures) == 8
    for name, fig in figures.items():
        _check_figure(name, fig)


def test_history_gives_each_learned_parameter_its_own_panel(tmp_path):
    from lossbench.report.plots import plot_history

    epochs = np.arange(1, 6)
    history = pd.DataFrame({"epoch": epochs, "loss": 1.0 / epochs, "val_loss": 1.0 / epochs})
    for k in range(4):
        history[f"m_{k}"] = 1.0 + k
        history[f"lambda_{k}"] = 0.1 * k * epochs
        history[f"g_{k}"] = 0.01 * epochs
    history["drw"] = 0.0
    fig = plot_history(history, "amrl", 2, ["a", "b", "c", "d"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    for name in ("m", "lambda", "g", "drw"):
        panel = next(ax for ax in fig.axes if ax.get_title().startswith(f"learned {name}"))
        lines = [ln for ln in panel.get_lines() if "best epoch" not in str(ln.get_label())]
        assert len(lines) == (1 if name == "drw" else 4), (name, titles)
    m_panel = next(ax for ax in fig.axes if ax.get_title() == "learned m per class")
    colors = {tuple(ln.get_color()) for ln in m_panel.get_lines()[:4]}
    assert len(colors) == 4  # one colour per class
    legend_texts = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert legend_texts == ["a", "b", "c", "d"]


def test_a_zero_bar_is_drawn_and_an_undefined_one_is_labelled(tmp_path):
    from lossbench.report.plots import plot_per_class

    per_class = pd.DataFrame(
        {
            "class": ["x", "y"],
            "precision": [0.5, 0.0],
            "recall": [1.0, 0.0],
            "f1": [0.667, 0.0],
            "tp": [4, 0],
            "fp": [4, 0],
            "fn": [0, 4],
            "tn": [4, 8],
        }
    )
    fig = plot_per_class(per_class, "run")
    ax = fig.axes[0]
    stubs = [p for p in ax.patches if p.get_hatch() and p.get_height() > 0]
    assert len(stubs) == 2  # recall and F1 of class y are 0: visible hatched stubs
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("0/0") == 1  # precision of y: never predicted
    assert texts.count("0") == 2
