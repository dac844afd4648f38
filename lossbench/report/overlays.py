"""Plots of a whole experiment (`summary_plots`): the losses side by side, over their seeds.

The conventions of every figure (sizes, fonts, legends, styles per loss and per class) are
`lossbench.report.plots`'s, whose helpers draw these too.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import precision_recall_curve

from lossbench import layout
from lossbench.report.plots import (
    _HATCHES,
    _bins_frame,
    _class_ticks,
    _empty_figure,
    _figure,
    _grid,
    _legend_below,
    _save,
    _styled,
    _zero_stub_handle,
    _zero_stubs,
    kind_styles,
)
from lossbench.report.tables import ExperimentResults, RunRecord, calibration_values

__all__ = [
    "MAX_OVERLAY_KINDS",
    "MAX_PR_CLASSES",
    "SUMMARY_PLOTS",
    "overlay_selection",
    "summary_figures",
    "summary_plots",
    "thin_curve",
]

SUMMARY_PLOTS = layout.SUMMARY_PLOTS
# a drawn curve keeps a point per this much of its length in data units of the unit square
# (`thin_curve`): under a third of a pixel of a precision-recall panel (under 300 px a side)
CURVE_STEP = 0.001
# ticks of a [0, 1] axis in the summary's small multiples: three labels are enough there, and
# fixed ticks spare the tick search and the layout of the labels of every panel (a third of the
# time of saving those figures)
UNIT_TICKS = (0.0, 0.5, 1.0)
MAX_PR_CLASSES = 12  # pr_curves.png shows at most this many classes: the rarest in the test set
MAX_OVERLAY_KINDS = (
    6  # pr_curves.png overlays at most this many losses (the reference and the best)
)


def _panel_axes(fig: Figure, n: int, max_cols: int) -> list[Axes]:
    nrows, ncols = _grid(n, max_cols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return list(axes[:n])


@_styled
def plot_history_overlay(results: ExperimentResults, styles: dict[str, dict[str, Any]]) -> Figure:
    """Validation macro F1 per epoch: one panel per loss (mean over seeds, band ± 1 std where at
    least two seeds reached the epoch), the other losses in grey behind it for comparison."""
    curves: dict[str, tuple[pd.DataFrame, int]] = {}
    for kind in results.kinds:
        frames = [h for r in results.ok_runs(kind) if (h := r.history()) is not None]
        frames = [h for h in frames if "val_macro_f1" in h and h["val_macro_f1"].notna().any()]
        if frames:
            hist = pd.concat(frames, ignore_index=True)
            stats = hist.groupby("epoch")["val_macro_f1"].agg(["mean", "std", "count"])
            curves[kind] = (stats, len(frames))
    if not curves:
        return _empty_figure(
            "no training history",
            "epoch",
            "validation macro F1",
            f"{results.name}: validation macro F1",
        )
    nrows, ncols = _grid(len(curves), 4)
    fig = _figure(max(5.0, 2.9 * ncols), 2.5 * nrows + 1.2)
    axes = _panel_axes(fig, len(curves), 4)
    for ax, (kind, (stats, n_runs)) in zip(axes, curves.items(), strict=True):
        for other, (ostats, _) in curves.items():
            if other != kind:
                ax.plot(ostats.index, ostats["mean"], color="0.8", linewidth=0.8, zorder=1)
        style = styles[kind]
        ax.plot(stats.index, stats["mean"], color=style["color"], linewidth=2.0, zorder=3)
        band = stats[stats["count"] > 1]
        if not band.empty:
            ax.fill_between(
                band.index,
                band["mean"] - band["std"],
                band["mean"] + band["std"],
                color=style["color"],
                alpha=0.2,
                linewidth=0,
                zorder=2,
            )
        ax.set_title(f"{kind} (n={n_runs})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("val macro F1")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1.02)
        ax.set_yticks(UNIT_TICKS)
    handles = [
        Line2D([], [], color="0.2", linewidth=2.0, label="this loss, mean over seeds"),
        Patch(color="0.2", alpha=0.2, label="± 1 std over seeds"),
    ]
    if len(curves) > 1:
        handles.append(Line2D([], [], color="0.8", label="the other losses"))
    _legend_below(fig, handles, [h.get_label() for h in handles], ncol=len(handles))
    fig.suptitle(f"{results.name}: validation macro F1 per epoch, one panel per loss")
    return fig


def _bars_per_class(
    ax: Axes, table: pd.DataFrame, kinds: list[str], classes: list[str], styles: dict
) -> bool:
    """Grouped bars of F1 per class (a bar per loss, std error bars); returns whether a bar is 0."""
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(kinds))
    any_zero = False
    for i, kind in enumerate(kinds):
        sub = table[table["loss"] == kind].set_index("class").reindex(classes)
        values = sub["f1_mean"].to_numpy(np.float64)
        xs = x + (i - (len(kinds) - 1) / 2) * width
        color = styles[kind]["color"]
        ax.bar(
            xs,
            np.nan_to_num(values),
            width,
            yerr=sub["f1_std"].to_numpy(),  # NaN (one seed): no error bar
            color=color,
            hatch=_HATCHES[styles[kind]["linestyle"]],  # a variant sharing its base's colour
            edgecolor="white",
            label=kind,
            error_kw={"elinewidth": 0.8, "capsize": 1.5},
        )
        _zero_stubs(ax, xs, values, width, color)
        any_zero |= bool(np.isclose(np.nan_to_num(values, nan=1.0), 0.0).any())
    _class_ticks(ax, x, classes)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_ylabel("F1 (test)")
    return any_zero


def _heatmap_per_class(
    fig: Figure, ax: Axes, table: pd.DataFrame, kinds: list[str], classes: list[str]
) -> None:
    """F1 per (loss, class) as a heatmap with the mean written in each cell."""
    grid = (
        table.pivot_table(index="loss", columns="class", values="f1_mean", aggfunc="first")
        .reindex(index=kinds, columns=classes)
        .to_numpy(np.float64)
    )
    cmap = mpl.colormaps["viridis"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    fontsize = 8 if len(classes) <= 20 else 7
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v = grid[i, j]
            text = "–" if np.isnan(v) else f"{v:.2f}"
            color = "black" if np.isnan(v) or v > 0.6 else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color)
    rotation = (
        {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if len(classes) > 4 else {}
    )
    ax.set_xticks(range(len(classes)), classes, **rotation)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_xlabel("class")
    ax.set_ylabel("loss")
    fig.colorbar(image, ax=ax, label="F1 (test, mean over seeds)", shrink=0.9, pad=0.01)


@_styled
def plot_per_class_overlay(
    per_class_table: pd.DataFrame, results: ExperimentResults, styles: dict[str, dict[str, Any]]
) -> Figure:
    """Test F1 per class and loss, mean over seeds: grouped bars (std error bars) for a few losses
    and classes, a heatmap with the values in its cells beyond that."""
    table = per_class_table
    classes = list(dict.fromkeys(table["class"].astype(str))) if not table.empty else []
    kinds = [k for k in results.kinds if k in set(table["loss"])] if not table.empty else []
    as_bars = len(kinds) <= 5 and len(kinds) * len(classes) <= 60
    if not kinds:
        return _empty_figure(
            "no per-class results", "class", "F1 (test)", f"{results.name}: per-class test F1"
        )
    if as_bars:
        fig = _figure(max(6.5, 2.5 + 0.3 * len(classes) * len(kinds)), 4.8)
        ax = fig.subplots()
        any_zero = _bars_per_class(ax, table, kinds, classes, styles)
        handles, labels = ax.get_legend_handles_labels()
        if any_zero:
            handles.append(_zero_stub_handle())
            labels.append("value 0")
        fig.legend(handles, labels, loc="outside right upper", title="loss")
        what = "mean ± std over seeds"
    else:
        fig = _figure(max(7.5, 3.0 + 0.36 * len(classes)), 2.2 + 0.32 * len(kinds))
        ax = fig.subplots()
        _heatmap_per_class(fig, ax, table, kinds, classes)
        what = "mean over seeds; – no value"
    ax.set_title(f"{results.name}: per-class test F1 by loss\n({what})")
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


@_styled
def plot_reliability_overlay(
    results: ExperimentResults, styles: dict[str, dict[str, Any]]
) -> Figure:
    """Reliability curves, one panel per loss (bins pooled over its seeds; marker area grows
    with the bin's count). The panel title gives the ECE as the calibration table does: the
    mean over seeds of each run's ECE (the pooled bins' ECE can differ, e.g. 0.067 against a
    mean of 0.111, so it is not shown as "the" ECE)."""
    pooled = {k: b for k in results.kinds if (b := _pooled_bins(results.ok_runs(k))) is not None}
    pooled = {k: b for k, b in pooled.items() if not b.empty}
    if not pooled:
        return _empty_figure(
            "no calibration results", "confidence", "accuracy", f"{results.name}: reliability"
        )
    nrows, ncols = _grid(len(pooled), 4)
    side = 2.75 if ncols > 1 else 4.5
    fig = _figure(max(5.0, side * ncols), side * nrows + 1.2)
    axes = _panel_axes(fig, len(pooled), 4)
    for ax, (kind, bins) in zip(axes, pooled.items(), strict=True):
        total = bins["count"].sum()
        eces = [
            float(v)
            for r in results.ok_runs(kind)
            if (v := calibration_values(r).get("ece")) is not None
        ]
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.5", linewidth=1.0)
        color = styles[kind]["color"]
        ax.plot(bins["confidence"], bins["accuracy"], color=color, linewidth=1.5)
        ax.scatter(
            bins["confidence"],
            bins["accuracy"],
            s=8 + 60 * bins["count"] / total,
            color=color,
            zorder=3,
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xticks(UNIT_TICKS)
        ax.set_yticks(UNIT_TICKS)
        ax.set_aspect("equal")
        ax.set_title(f"{kind}\n{_ece_label(eces)}", fontsize=10)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
    handles = [
        Line2D([], [], color="0.5", linestyle="--", label="perfect calibration"),
        Line2D([], [], color="0.2", marker="o", label="bin (area ∝ count)"),
    ]
    _legend_below(fig, handles, [h.get_label() for h in handles], ncol=2)
    fig.suptitle(
        f"{results.name}: reliability per loss (top-label; curve: bins pooled over seeds; "
        "ECE: as in the calibration table)"
    )
    return fig


def _ece_label(eces: list[float]) -> str:
    """'ECE 0.111, mean over 3 seeds', 'ECE 0.105 (1 seed)', or 'ECE n/a'."""
    if not eces:
        return "ECE n/a"
    if len(eces) == 1:
        return f"ECE {eces[0]:.3f} (1 seed)"
    return f"ECE {np.mean(eces):.3f}, mean over {len(eces)} seeds"


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


def overlay_selection(results: ExperimentResults, limit: int = MAX_OVERLAY_KINDS) -> list[str]:
    """The run kinds an overlay shows: all of them up to `limit`; beyond, the reference ("ce", else
    the first kind) and the best by mean macro F1 over seeds, in table order."""
    kinds = [k for k in results.kinds if results.ok_runs(k)]
    if len(kinds) <= limit:
        return kinds
    reference = "ce" if "ce" in kinds else kinds[0]

    def mean_f1(kind: str) -> float:
        values = [r.summary.get("macro_f1") for r in results.ok_runs(kind)]
        values = [float(v) for v in values if v is not None]
        return float(np.mean(values)) if values else -math.inf

    ranked = sorted((k for k in kinds if k != reference), key=mean_f1, reverse=True)
    chosen = {reference, *ranked[: limit - 1]}
    return [k for k in kinds if k in chosen]


@_styled
def plot_pr_curves(results: ExperimentResults, styles: dict[str, dict[str, Any]]) -> Figure:
    """Precision-recall curves, one panel per class (the MAX_PR_CLASSES rarest when there are
    more), one curve per run kind (`overlay_selection`) on its test predictions pooled over
    seeds."""
    shown = overlay_selection(results)
    pooled = {k: p for k in shown if (p := _pooled_predictions(results.ok_runs(k)))}
    if not pooled:
        return _empty_figure(
            "no test predictions", "recall", "precision", f"{results.name}: precision-recall curves"
        )
    n_classes = max(p.shape[1] for _, p in pooled.values())
    y_any = next(iter(pooled.values()))[0]
    support = np.bincount(y_any, minlength=n_classes)
    classes = list(range(n_classes))
    if n_classes > MAX_PR_CLASSES:
        classes = sorted(np.argsort(support, kind="stable")[:MAX_PR_CLASSES].tolist())
    names = results.class_names
    nrows, ncols = _grid(len(classes), 4)
    fig = _figure(max(5.0, 2.85 * ncols), 2.6 * nrows + 1.4)
    axes = _panel_axes(fig, len(classes), 4)
    for ax, k in zip(axes, classes, strict=True):
        name = names[k] if k < len(names) else str(k)
        for kind, (y, p) in pooled.items():
            positive = y == k
            if k >= p.shape[1] or not positive.any():
                continue
            precision, recall, _ = precision_recall_curve(positive, p[:, k])
            recall, precision = thin_curve(recall, precision)
            ax.plot(recall, precision, linewidth=1.3, **styles[kind])
        prevalence = float(np.mean(y_any == k)) if len(y_any) else 0.0
        ax.axhline(prevalence, color="0.6", linestyle=":", linewidth=1.0)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xticks(UNIT_TICKS)
        ax.set_yticks(UNIT_TICKS)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{name} (n={int(support[k])})")
    handles = [Line2D([], [], linewidth=1.5, label=kind, **styles[kind]) for kind in pooled]
    handles.append(Line2D([], [], color="0.6", linestyle=":", label="prevalence"))
    _legend_below(fig, handles, [h.get_label() for h in handles], ncol=min(len(handles), 7))
    all_kinds = [k for k in results.kinds if results.ok_runs(k)]
    parts = []
    if len(classes) != n_classes:
        parts.append(f"the {len(classes)} rarest classes")
    if len(pooled) < len(all_kinds):
        parts.append(f"{len(pooled)} of {len(all_kinds)} losses: the reference and the best by F1")
    extra = f"\n({'; '.join(parts)})" if parts else ""
    fig.suptitle(f"{results.name}: precision-recall curves (test, pooled over seeds){extra}")
    return fig


def thin_curve(
    x: np.ndarray, y: np.ndarray, step: float = CURVE_STEP
) -> tuple[np.ndarray, np.ndarray]:
    """The points of a curve in the unit square that are at least `step` further along it than
    the last point kept (its ends always kept): every dropped point lies within `step` of the
    line drawn through the kept ones, so with `step` under a pixel the drawing is unchanged,
    while a curve of tens of thousands of thresholds (a large test set) becomes a few thousand
    points at most to draw."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) <= 2:
        return x, y
    along = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    bucket = np.floor(along / step)
    keep = np.concatenate([[True], bucket[1:] != bucket[:-1]])
    keep[-1] = True
    return x[keep], y[keep]


def summary_figures(results: ExperimentResults, per_class_table: pd.DataFrame) -> dict[str, Figure]:
    """The four summary figures by file name."""
    styles = kind_styles(results.kinds)
    return {
        layout.HISTORY_OVERLAY_PLOT: plot_history_overlay(results, styles),
        layout.PER_CLASS_PLOT: plot_per_class_overlay(per_class_table, results, styles),
        layout.RELIABILITY_OVERLAY_PLOT: plot_reliability_overlay(results, styles),
        layout.PR_CURVES_PLOT: plot_pr_curves(results, styles),
    }


def summary_plots(
    results: ExperimentResults, per_class_table: pd.DataFrame, out_dir: Path
) -> dict[str, Path]:
    """Write the four summary plots into `out_dir`; return {file name: path}."""
    out_dir = Path(out_dir)
    figures = summary_figures(results, per_class_table)
    return {name: _save(fig, out_dir / name) for name, fig in figures.items()}
