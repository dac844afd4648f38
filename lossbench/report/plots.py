"""Plots of one run (`run_plots`) and of a whole experiment (`summary_plots`).

Figures are built as bare `matplotlib.figure.Figure` objects rendered by the Agg canvas: no pyplot
state, no display, nothing to close. Every figure has a title and axis labels, and a legend when it
shows more than one series. PNG at 100 dpi, written atomically.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import average_precision_score, precision_recall_curve

from lossbench.io import atomic_savefig
from lossbench.report.tables import ExperimentResults, RunRecord

__all__ = [
    "MAX_PR_CLASSES",
    "RUN_PLOTS",
    "SUMMARY_PLOTS",
    "kind_colors",
    "run_plots",
    "summary_plots",
]

DPI = 100
RUN_PLOTS = ("history.png", "reliability.png", "confusion.png", "per_class_f1.png")
SUMMARY_PLOTS = (
    "history_overlay.png",
    "per_class_f1.png",
    "reliability_overlay.png",
    "pr_curves.png",
)
MAX_PR_CLASSES = 12  # pr_curves.png shows at most this many classes: the rarest in the test set
# history.csv columns that are not learned loss parameters
_HISTORY_STANDARD = {
    "epoch",
    "loss",
    "val_loss",
    "val_macro_f1",
    "val_macro_recall",
    "lr",
    "seconds",
}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    return atomic_savefig(fig, path, dpi=DPI)


def _no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _class_ticks(ax: Axes, x: np.ndarray, classes: list[str]) -> None:
    """Class names under grouped bars, slanted when they would collide."""
    if len(classes) > 4 or sum(len(c) for c in classes) > 40:
        ax.set_xticks(x, classes, rotation=35, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(x, classes)


def kind_colors(kinds: list[str]) -> dict[str, Any]:
    """A stable colour per run kind (tab10, or tab20 beyond ten kinds)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(kinds) <= 10 else "tab20"]
    return {k: cmap(i % cmap.N) for i, k in enumerate(kinds)}


def _legend(ax: Axes, **kwargs: Any) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if len(handles) > 1:
        ax.legend(**kwargs)


def _bins_frame(calibration: dict[str, Any]) -> pd.DataFrame:
    """calibration.json's bin table as floats (null/NaN for empty bins)."""
    bins = pd.DataFrame(calibration.get("bins") or [])
    for col in ("lower", "upper", "count", "confidence", "accuracy", "gap"):
        if col not in bins:
            bins[col] = np.nan
        bins[col] = pd.to_numeric(bins[col], errors="coerce").astype(np.float64)
    bins["count"] = bins["count"].fillna(0.0)
    return bins


def _fmt(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(v) else f"{v:.3f}"


# ------------------------------------------------------------------------------------------------
# one run


def plot_history(history: pd.DataFrame, title: str, best_epoch: int | None = None) -> Figure:
    """Loss and val_loss, validation macro F1/recall, and learned loss parameters (when logged)."""
    learned = [
        c
        for c in history.columns
        if c not in _HISTORY_STANDARD
        and not c.startswith("val_class_loss_")
        and pd.to_numeric(history[c], errors="coerce").notna().any()
    ]
    n_panels = 3 if learned else 2
    fig = _figure(5.0 * n_panels, 4.0)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    epoch = history["epoch"] if "epoch" in history else pd.Series(range(1, len(history) + 1))
    panels = [
        (axes[0], ["loss", "val_loss"], "loss", "Training and validation loss"),
        (axes[1], ["val_macro_f1", "val_macro_recall"], "score", "Validation macro F1 / recall"),
    ]
    if learned:
        panels.append((axes[2], learned, "value", "Learned loss parameters"))
    for ax, cols, ylabel, panel_title in panels:
        drawn = 0
        for col in cols:
            if col in history and history[col].notna().any():
                ax.plot(epoch, history[col], marker="." if len(history) < 40 else None, label=col)
                drawn += 1
        if not drawn:
            _no_data(ax, "not logged")
        if best_epoch is not None and drawn:
            ax.axvline(best_epoch, color="0.5", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title, fontsize=10)
        ncol = max(1, math.ceil(len(cols) / 12))
        _legend(ax, fontsize=7 if len(cols) > 4 else 8, ncol=ncol)
    fig.suptitle(title)
    return fig


def plot_reliability(calibration: dict[str, Any], title: str) -> Figure:
    """Reliability diagram (accuracy vs confidence per bin) over the confidence histogram."""
    bins = _bins_frame(calibration)
    fig = _figure(6.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = bins[bins["count"] > 0]
    width = (bins["upper"] - bins["lower"]).to_numpy()
    centers = ((bins["upper"] + bins["lower"]) / 2).to_numpy()
    fw = (filled["upper"] - filled["lower"]).to_numpy()
    fc = ((filled["upper"] + filled["lower"]) / 2).to_numpy()
    top.bar(fc, filled["accuracy"], width=fw, edgecolor="black", color="tab:blue", label="accuracy")
    top.bar(
        fc,
        filled["confidence"] - filled["accuracy"],
        bottom=filled["accuracy"],
        width=fw,
        color="tab:red",
        alpha=0.3,
        hatch="//",
        edgecolor="tab:red",
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="0.3", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title("Reliability diagram", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centers, bins["count"], width=width, color="0.5", edgecolor="black")
    bottom.set_xlabel("confidence (top-label probability)")
    bottom.set_ylabel("count")
    bottom.set_title("Confidence histogram", fontsize=10)
    ece, mce = calibration.get("ece"), calibration.get("mce")
    fig.suptitle(f"{title}\nECE = {_fmt(ece)}, MCE = {_fmt(mce)}")
    return fig


def plot_confusion(confusion: pd.DataFrame, title: str) -> Figure:
    """Row-normalised confusion matrix with the counts, from confusion.csv (first column "true")."""
    labels_true = confusion.iloc[:, 0].astype(str).tolist()
    labels_pred = [str(c) for c in confusion.columns[1:]]
    counts = confusion.iloc[:, 1:].to_numpy(dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    k = max(len(labels_true), len(labels_pred))
    size = min(14.0, 3.0 + 0.7 * k)
    fig = _figure(size + 1.2, size)
    ax = fig.subplots()
    image = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    if k <= 20:
        fontsize = 9 if k <= 6 else 7 if k <= 12 else 5
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{frac[i, j]:.2f}\n({int(counts[i, j])})",
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="white" if frac[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(len(labels_pred)), labels_pred, rotation=45, ha="right")
    ax.set_yticks(range(len(labels_true)), labels_true)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.8)
    ax.set_title(f"{title}\nconfusion matrix (row-normalised; counts in brackets)")
    return fig


def plot_per_class(per_class: pd.DataFrame, title: str) -> Figure:
    """Grouped bars of precision, recall and F1 per class, from per_class.csv."""
    classes = per_class["class"].astype(str).tolist()
    metrics = [m for m in ("precision", "recall", "f1") if m in per_class]
    fig = _figure(max(6.0, 1.0 + 0.8 * len(classes)), 4.5)
    ax = fig.subplots()
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(metrics))
    for i, metric in enumerate(metrics):
        ax.bar(x + (i - (len(metrics) - 1) / 2) * width, per_class[metric], width, label=metric)
    _class_ticks(ax, x, classes)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_ylabel("score")
    ax.set_title(f"{title}\nper-class precision, recall and F1 (test split)")
    _legend(ax, fontsize=8)
    return fig


def run_plots(run_dir: Path) -> list[Path]:
    """Write a run's plots/ (history, reliability, confusion, per-class F1); return their paths.

    A plot whose input file is absent is skipped: baseline runs have no history.csv (3 plots),
    failed runs may have none of the files.
    """
    run_dir = Path(run_dir)
    out = run_dir / "plots"
    name = run_dir.name
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    written: list[Path] = []

    if (run_dir / "history.csv").is_file():
        history = pd.read_csv(run_dir / "history.csv")
        best = metrics.get("best_epoch")
        fig = plot_history(history, f"{name}: training history", best)
        written.append(_save(fig, out / "history.png"))
    if (run_dir / "calibration.json").is_file():
        calibration = json.loads((run_dir / "calibration.json").read_text())
        written.append(_save(plot_reliability(calibration, name), out / "reliability.png"))
    if (run_dir / "confusion.csv").is_file():
        confusion = pd.read_csv(run_dir / "confusion.csv")
        written.append(_save(plot_confusion(confusion, name), out / "confusion.png"))
    if (run_dir / "per_class.csv").is_file():
        per_class = pd.read_csv(run_dir / "per_class.csv")
        written.append(_save(plot_per_class(per_class, name), out / "per_class_f1.png"))
    return written


# ------------------------------------------------------------------------------------------------
# the experiment


def plot_history_overlay(results: ExperimentResults, colors: dict[str, Any]) -> Figure:
    """Validation macro F1 and validation loss per epoch, one line per loss (mean over seeds,
    band: ± one std where at least two seeds reached that epoch)."""
    fig = _figure(12.0, 4.5)
    ax_f1, ax_loss = fig.subplots(1, 2)
    drawn = False
    for kind in results.kinds:
        frames = [h for r in results.ok_runs(kind) if (h := r.history()) is not None]
        if not frames:
            continue
        hist = pd.concat(frames, ignore_index=True)
        n_runs = len(frames)
        for ax, col in ((ax_f1, "val_macro_f1"), (ax_loss, "val_loss")):
            if col not in hist or hist[col].isna().all():
                continue
            stats = hist.groupby("epoch")[col].agg(["mean", "std", "count"])
            label = f"{kind} (n={n_runs})"
            ax.plot(stats.index, stats["mean"], color=colors[kind], label=label)
            band = stats[stats["count"] > 1]
            if not band.empty and len(results.kinds) <= 4:  # bands of many kinds are unreadable
                ax.fill_between(
                    band.index,
                    band["mean"] - band["std"],
                    band["mean"] + band["std"],
                    color=colors[kind],
                    alpha=0.15,
                    linewidth=0,
                )
            drawn = True
    for ax, ylabel, panel in (
        (ax_f1, "macro F1", "Validation macro F1"),
        (ax_loss, "loss", "Validation loss (each run's own loss)"),
    ):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(panel, fontsize=10)
        if not drawn:
            _no_data(ax, "no training history")
    handles: dict[str, Any] = {}
    for ax in (ax_f1, ax_loss):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:  # both panels show the same losses: one legend beside them
        fig.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize=8)
    band = " (band: ± 1 std)" if len(results.kinds) <= 4 else ""
    fig.suptitle(f"{results.name}: training curves, mean over seeds{band}")
    return fig


def plot_per_class_overlay(
    per_class_table: pd.DataFrame, results: ExperimentResults, colors: dict[str, Any]
) -> Figure:
    """Grouped bars of the test F1 per class, one bar per run kind (mean over seeds, std bars)."""
    table = per_class_table
    classes = list(dict.fromkeys(table["class"].astype(str))) if not table.empty else []
    kinds = [k for k in results.kinds if k in set(table["loss"])] if not table.empty else []
    fig = _figure(min(18.0, max(7.0, 1.5 + 0.25 * len(classes) * max(1, len(kinds)))), 4.8)
    ax = fig.subplots()
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(kinds))
    for i, kind in enumerate(kinds):
        sub = table[table["loss"] == kind].set_index("class").reindex(classes)
        ax.bar(
            x + (i - (len(kinds) - 1) / 2) * width,
            sub["f1_mean"].fillna(0.0),
            width,
            yerr=sub["f1_std"].to_numpy(),  # NaN (one seed): no error bar
            color=colors[kind],
            label=kind,
            error_kw={"elinewidth": 0.8, "capsize": 1.5},
        )
    if not kinds:
        _no_data(ax, "no per-class results")
    _class_ticks(ax, x, classes)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_ylabel("F1 (test)")
    ax.set_title(f"{results.name}: per-class test F1 by loss, mean ± std over seeds")
    if len(kinds) > 5:
        fig.legend(loc="outside right upper", fontsize=8)
    else:
        _legend(ax, fontsize=8)
    return fig


def _pooled_bins(runs: list[RunRecord]) -> pd.DataFrame | None:
    """Bins of several runs merged: counts summed, confidence/accuracy count-weighted."""
    frames = [_bins_frame(c) for r in runs if (c := r.calibration()) is not None]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return None
    allb = pd.concat(frames, ignore_index=True)
    allb["conf_sum"] = allb["confidence"].fillna(0.0) * allb["count"]
    allb["acc_sum"] = allb["accuracy"].fillna(0.0) * allb["count"]
    g = allb.groupby(["lower", "upper"], as_index=False)[["count", "conf_sum", "acc_sum"]].sum()
    g = g[g["count"] > 0]
    g["confidence"] = g["conf_sum"] / g["count"]
    g["accuracy"] = g["acc_sum"] / g["count"]
    return g


def plot_reliability_overlay(results: ExperimentResults, colors: dict[str, Any]) -> Figure:
    """One reliability curve per run kind, bins pooled over its seeds."""
    fig = _figure(6.5 if len(results.kinds) <= 5 else 8.5, 6.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.3", label="perfect calibration")
    drawn = False
    for kind in results.kinds:
        bins = _pooled_bins(results.ok_runs(kind))
        if bins is None or bins.empty:
            continue
        total = bins["count"].sum()
        ece = float(((bins["accuracy"] - bins["confidence"]).abs() * bins["count"]).sum() / total)
        ax.plot(
            bins["confidence"],
            bins["accuracy"],
            marker="o",
            markersize=3,
            color=colors[kind],
            label=f"{kind} (pooled ECE {ece:.3f})",
        )
        drawn = True
    if not drawn:
        ax.text(0.5, 0.3, "no calibration results", ha="center", color="0.4")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-label probability, bin mean)")
    ax.set_ylabel("accuracy (bin mean)")
    ax.set_title(f"{results.name}\nreliability by loss (bins pooled over seeds)", fontsize=10)
    if len(results.kinds) > 5:
        fig.legend(loc="outside right upper", fontsize=8)
    else:
        _legend(ax, fontsize=8, loc="upper left")
    return fig


def _pooled_predictions(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray] | None:
    ys, ps = [], []
    for r in runs:
        pred = r.predictions()
        if pred is None:
            continue
        pcols = sorted(
            (c for c in pred.columns if re.fullmatch(r"p_\d+", c)), key=lambda c: int(c[2:])
        )
        ys.append(pred["y_true"].to_numpy(np.int64))
        ps.append(pred[pcols].to_numpy(np.float64))
    if not ys or len({p.shape[1] for p in ps}) != 1:
        return None
    return np.concatenate(ys), np.concatenate(ps)


def plot_pr_curves(results: ExperimentResults, colors: dict[str, Any]) -> Figure:
    """Precision-recall curves, one panel per class (the MAX_PR_CLASSES rarest when there are
    more), one curve per run kind on its test predictions pooled over seeds."""
    pooled = {k: p for k in results.kinds if (p := _pooled_predictions(results.ok_runs(k)))}
    if not pooled:
        fig = _figure(6.0, 4.0)
        ax = fig.subplots()
        _no_data(ax, "no test predictions")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{results.name}: precision-recall curves")
        return fig
    n_classes = max(p.shape[1] for _, p in pooled.values())
    y_any = next(iter(pooled.values()))[0]
    support = np.bincount(y_any, minlength=n_classes)
    classes = list(range(n_classes))
    if n_classes > MAX_PR_CLASSES:
        classes = sorted(np.argsort(support, kind="stable")[:MAX_PR_CLASSES].tolist())
    names = results.class_names
    ncols = min(4, len(classes))
    nrows = math.ceil(len(classes) / ncols)
    per_panel_legend = len(pooled) <= 5  # curve labels with the AP inside each panel
    fig = _figure(3.8 * ncols + (0 if per_panel_legend else 1.5), 3.4 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, k in zip(axes, classes, strict=False):
        name = names[k] if k < len(names) else str(k)
        for kind, (y, p) in pooled.items():
            positive = y == k
            if k >= p.shape[1] or not positive.any():
                continue
            precision, recall, _ = precision_recall_curve(positive, p[:, k])
            ap = average_precision_score(positive, p[:, k])
            label = f"{kind} (AP {ap:.2f})" if per_panel_legend else kind
            ax.plot(recall, precision, color=colors[kind], linewidth=1.1, label=label)
        prevalence = float(np.mean(y_any == k)) if len(y_any) else 0.0
        ax.axhline(prevalence, color="0.6", linestyle=":", linewidth=0.8, label="prevalence")
        if per_panel_legend:
            ax.legend(loc="best", fontsize=6, framealpha=0.7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
        ax.set_title(f"{name} (n={int(support[k])})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(classes) :]:
        ax.set_visible(False)
    if not per_panel_legend:  # many kinds: one legend; macro AUPRC is in table_average
        handles = [Line2D([], [], color=colors[kind], label=kind) for kind in pooled]
        handles.append(Line2D([], [], color="0.6", linestyle=":", label="prevalence"))
        fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    shown = "" if len(classes) == n_classes else f", the {len(classes)} rarest classes"
    fig.suptitle(f"{results.name}: precision-recall curves (test, pooled over seeds{shown})")
    return fig


def summary_plots(
    results: ExperimentResults, per_class_table: pd.DataFrame, out_dir: Path
) -> dict[str, Path]:
    """Write the four summary plots into `out_dir`; return {file name: path}."""
    out_dir = Path(out_dir)
    colors = kind_colors(results.kinds)
    figures = {
        "history_overlay.png": plot_history_overlay(results, colors),
        "per_class_f1.png": plot_per_class_overlay(per_class_table, results, colors),
        "reliability_overlay.png": plot_reliability_overlay(results, colors),
        "pr_curves.png": plot_pr_curves(results, colors),
    }
    return {name: _save(fig, out_dir / name) for name, fig in figures.items()}
