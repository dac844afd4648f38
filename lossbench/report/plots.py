"""Plots of one run (`run_plots`), and the conventions and helpers of every plot (a whole
experiment's: `lossbench.report.overlays`).

Figures are built as bare `matplotlib.figure.Figure` objects rendered by the Agg canvas: no pyplot
state, no display, nothing to close. PNG at 100 dpi, written atomically.

Readable from 1 to 30 runs and 2 to 30 classes (issue 18):
- every figure is at most MAX_WIDTH inches wide, so the report (1150 px of content) shows it at
  its own size and its fonts (9-12 pt, `_RC`) stay legible;
- every figure has a title and axis labels, and a legend whenever it shows more than one series;
  legends sit outside the axes' data area (beside or below the panels);
- many series are split into small multiples (one panel per loss, one panel per learned
  parameter) or, for the precision-recall curves, a selection (the reference and the best losses);
  per-class F1 of many losses is a heatmap with the values written in the cells;
- a bar of value 0 is drawn as a hatched stub, so it reads as 0 and not as missing data; an
  undefined value is labelled "0/0" (a run's bars) or shown "–" (the heatmap);
- distinct things get distinct styles: a colour and a line style per loss (`kind_styles`), a colour
  per class and one panel per parameter name (AMRL's m, lambda and g never share a panel).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from lossbench import layout
from lossbench.io import atomic_savefig
from lossbench.layout import CONFUSION, plots_dir
from lossbench.store import read_run

__all__ = [
    "MAX_WIDTH",
    "RUN_PLOTS",
    "kind_colors",
    "kind_styles",
    "method_color",
    "run_figures",
    "run_plots",
]

DPI = 100
MAX_WIDTH = 11.5  # inches: the report's content width (1150 px) at DPI
RUN_PLOTS = layout.RUN_PLOTS
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
_PER_CLASS_PARAM = re.compile(r"^(?P<name>.+?)_(?P<k>\d+)$")
_RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 12,
}
_LINESTYLES = ("-", "--", ":", "-.")
_HATCHES = {"-": None, "--": "//", ":": "..", "-.": "xx"}  # the bars' line style
_EXTRA_COLORS = ("black", "#6a3d9a", "#b15928", "#01665e")  # after tab10's ten
_ZERO_STUB = 0.03  # height of the hatched stub that shows a bar of value 0


def _styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure under the report's font sizes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(_RC):
            return fn(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(min(width, MAX_WIDTH), height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    return atomic_savefig(fig, path, dpi=DPI)


def _empty_figure(message: str, xlabel: str, ylabel: str, title: str) -> Figure:
    """A small figure that says there is nothing to plot."""
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    _no_data(ax, message)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def _no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _class_ticks(ax: Axes, x: np.ndarray, classes: list[str]) -> None:
    """Class names under grouped bars, slanted when they would collide."""
    longest = max((len(c) for c in classes), default=0)
    if sum(len(c) for c in classes) > 40 or (len(classes) > 4 and longest > 3):
        ax.set_xticks(x, classes, rotation=35, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(x, classes)


#: The palette's fixed order: the built-in losses, then the scikit-learn baselines. Each gets its
#: own colour for good (tab10, then four darker ones); a new built-in goes at the end, so no
#: existing method changes colour.
PALETTE_ORDER = (
    "ce",
    "wce",
    "focal",
    "cb",
    "dwb",
    "amrl",
    "pgfl",
    "la",
    "ldam",
    "vs",
    "autobalance",
    "lr",
    "rf",
    "hgb",
)


def _palette() -> list[Any]:
    return [mpl.colors.to_hex(mpl.colormaps["tab10"](i)) for i in range(10)] + [
        mpl.colors.to_hex(c) for c in _EXTRA_COLORS
    ]


def method_color(name: str) -> str:
    """A method's colour, the same in every plot, diagram and page (a palette keyed by name, not
    by position): a built-in loss or baseline its own (`PALETTE_ORDER`); a variant
    (`ce+ros`, `dwb@tuned`) its base loss's colour (`kind_styles` sets it apart by line style);
    any other name a colour picked by a stable hash of the name."""
    colors = _palette()
    base = re.split(r"[+@]", name, maxsplit=1)[0]
    if base in PALETTE_ORDER:
        return colors[PALETTE_ORDER.index(base)]
    digest = int.from_bytes(hashlib.sha256(base.encode("utf-8")).digest()[:4], "big")
    return colors[digest % len(colors)]


def kind_colors(kinds: list[str]) -> dict[str, Any]:
    """A stable colour per run kind (`method_color`)."""
    return {k: method_color(k) for k in kinds}


def kind_styles(kinds: list[str]) -> dict[str, dict[str, Any]]:
    """A style per run kind: its colour (`method_color`, keyed by name) and a line style, solid
    unless an earlier kind of these has the same colour (a variant such as `ce+ros` beside `ce`,
    or a hash collision), then dashed, dotted, dash-dotted, so that no two kinds share both."""
    styles: dict[str, dict[str, Any]] = {}
    taken: dict[str, int] = {}
    for k in kinds:
        color = method_color(k)
        n = taken.get(color, 0)
        taken[color] = n + 1
        styles[k] = {"color": color, "linestyle": _LINESTYLES[n % len(_LINESTYLES)]}
    return styles


def _class_colors(n: int) -> list[Any]:
    """One colour per class index: tab10/tab20 up to 20 classes, viridis beyond."""
    if n <= 10:
        return [mpl.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [mpl.colormaps["tab20"](i) for i in range(n)]
    return [mpl.colormaps["viridis"](i / max(1, n - 1)) for i in range(n)]


def _legend_below(fig: Figure, handles: list[Any], labels: list[str], **kwargs: Any) -> None:
    """One legend for the whole figure, under the panels (outside every data area)."""
    if handles:
        ncol = kwargs.pop("ncol", min(len(handles), 4))
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, **kwargs)


def _legend_beside(ax: Axes, **kwargs: Any) -> None:
    """The axes' legend to the right of its data area (only when it has more than one entry)."""
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > 1:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), **kwargs)


def _zero_stubs(ax: Axes, x: np.ndarray, values: np.ndarray, width: float, color: Any) -> None:
    """A hatched stub where a bar's value is exactly 0, so that it reads as 0, not as missing."""
    zero = np.isclose(np.nan_to_num(values, nan=1.0), 0.0)
    if zero.any():
        ax.bar(
            x[zero],
            _ZERO_STUB,
            width,
            facecolor="white",
            edgecolor=color,
            hatch="////",
            linewidth=1.2,
        )
        for xz in x[zero]:
            ax.text(xz, _ZERO_STUB, "0", ha="center", va="bottom", fontsize=8, color=color)


def _zero_stub_handle() -> Patch:
    return Patch(facecolor="white", edgecolor="0.3", hatch="////", label="value 0")


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


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    ncols = max(1, min(max_cols, n))
    return math.ceil(n / ncols), ncols


# ------------------------------------------------------------------------------------------------
# one run


def learned_groups(history: pd.DataFrame) -> dict[str, list[tuple[int | None, str]]]:
    """The learned loss parameters of a history.csv, grouped by name: `m_0, m_1, lambda_0, g_0`
    -> {"m": [(0, "m_0"), (1, "m_1")], "lambda": [(0, "lambda_0")], "g": [(0, "g_0")]}; a column
    without a class index (LDAM's `drw`) is a group of its own with index None."""
    groups: dict[str, list[tuple[int | None, str]]] = {}
    for col in history.columns:
        if col in _HISTORY_STANDARD or col.startswith("val_"):
            continue  # validation metrics (val_nll, val_auprc, ...) are not learned parameters
        if not pd.to_numeric(history[col], errors="coerce").notna().any():
            continue
        m = _PER_CLASS_PARAM.match(col)
        name, k = (m["name"], int(m["k"])) if m else (col, None)
        groups.setdefault(name, []).append((k, col))
    return groups


@_styled
def plot_history(
    history: pd.DataFrame,
    title: str,
    best_epoch: int | None = None,
    class_names: list[str] | None = None,
) -> Figure:
    """Training and validation loss, the validation metrics (macro F1, recall, AUPRC; the NLL in
    a panel of its own), and one panel per learned loss parameter (AMRL's m, lambda, g; PGFL's
    alpha, pod, mc; AutoBalance's l, delta; ...), each with one line per class in the class's
    colour. Panel titles say which is which: "Validation ..." or "learned ..."."""
    groups = learned_groups(history)
    has_nll = "val_nll" in history and history["val_nll"].notna().any()
    n_standard = 3 if has_nll else 2
    n_panels = n_standard + len(groups)
    nrows, ncols = _grid(n_panels, 2 if n_panels == 4 else 3)  # 4 panels: 2 x 2, no gaps
    fig = _figure(3.8 * ncols, 3.0 * nrows + 1.0)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    epoch = history["epoch"] if "epoch" in history else pd.Series(range(1, len(history) + 1))
    marker = "." if len(history) < 40 else None
    _standard_panels(axes, history, epoch, marker, best_epoch, has_nll)
    _learned_panels(
        fig, axes[n_standard:n_panels], history, epoch, marker, best_epoch, groups, class_names
    )
    for ax in axes[:n_panels]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


def _best_line(ax: Axes, best_epoch: int | None) -> None:
    if best_epoch is not None:
        ax.axvline(best_epoch, color="0.5", linestyle=":", label=f"best epoch ({best_epoch})")


def _standard_panels(
    axes: Any,
    history: pd.DataFrame,
    epoch: pd.Series,
    marker: str | None,
    best_epoch: int | None,
    has_nll: bool,
) -> None:
    """`plot_history`'s first panels: the losses, the validation metrics, the validation NLL."""
    standard = [
        (axes[0], (("loss", "-"), ("val_loss", "--")), "loss", "Training and validation loss"),
        (
            axes[1],
            (("val_macro_f1", "-"), ("val_macro_recall", "--"), ("val_auprc", ":")),
            "score",
            "Validation metrics: macro F1, recall, AUPRC",
        ),
    ]
    if has_nll:
        standard.append((axes[2], (("val_nll", "-"),), "NLL", "Validation NLL (metric)"))
    for ax, cols, ylabel, panel_title in standard:
        drawn = [c for c, _ in cols if c in history and history[c].notna().any()]
        for col, style in cols:
            if col in drawn:
                ax.plot(epoch, history[col], linestyle=style, marker=marker, label=col)
        if drawn:
            _best_line(ax, best_epoch)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
        else:
            _no_data(ax, "not logged")
        ax.set_title(panel_title)
        ax.set_ylabel(ylabel)


def _learned_panels(
    fig: Figure,
    axes: Any,
    history: pd.DataFrame,
    epoch: pd.Series,
    marker: str | None,
    best_epoch: int | None,
    groups: dict[str, list[tuple[int | None, str]]],
    class_names: list[str] | None,
) -> None:
    """`plot_history`'s panels of the learned parameters (`learned_groups`), a line per class in
    the class's colour, with a class legend below (a colour scale beyond 20 classes)."""
    n_classes = 1 + max(
        (k for cols in groups.values() for k, _ in cols if k is not None), default=0
    )
    names = list(class_names or [])
    names += [str(k) for k in range(len(names), n_classes)]
    colors = _class_colors(n_classes)
    for ax, (name, cols) in zip(axes, groups.items(), strict=False):
        for k, col in cols:
            color = colors[k] if k is not None else "tab:blue"
            ax.plot(epoch, history[col], color=color, marker=marker, markersize=3, linewidth=1.2)
        _best_line(ax, best_epoch)
        ax.set_title(f"learned {name}" + (" per class" if cols[0][0] is not None else ""))
        ax.set_ylabel(name)
    per_class = any(k is not None for cols in groups.values() for k, _ in cols)
    if per_class and n_classes <= 20:
        handles = [Line2D([], [], color=colors[k], label=names[k]) for k in range(n_classes)]
        _legend_below(
            fig,
            handles,
            [h.get_label() for h in handles],
            ncol=min(n_classes, 6),
            title="class (learned-parameter panels)",
            fontsize=8,
        )
    elif per_class:  # too many classes for a legend: a colour scale of the class index
        norm = mpl.colors.Normalize(vmin=0, vmax=n_classes - 1)
        mappable = mpl.cm.ScalarMappable(norm=norm, cmap="viridis")
        fig.colorbar(
            mappable,
            ax=list(axes),
            orientation="horizontal",
            location="bottom",
            label="class index (learned-parameter panels)",
            shrink=0.6,
            fraction=0.04,
            aspect=40,
        )


@_styled
def plot_reliability(calibration: dict[str, Any], title: str) -> Figure:
    """Reliability diagram (accuracy vs confidence per bin) over the confidence histogram."""
    bins = _bins_frame(calibration)
    fig = _figure(6.0, 6.8)
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
    top.set_title("Reliability diagram")
    handles, labels = top.get_legend_handles_labels()
    bottom.bar(centers, bins["count"], width=width, color="0.5", edgecolor="black")
    bottom.set_xlabel("confidence (top-label probability)")
    bottom.set_ylabel("count")
    bottom.set_title("Confidence histogram")
    _legend_below(fig, handles, labels, ncol=3)
    ece, mce = calibration.get("ece"), calibration.get("mce")
    fig.suptitle(f"{title}\nECE = {_fmt(ece)}, MCE = {_fmt(mce)}")
    return fig


@_styled
def plot_confusion(confusion: pd.DataFrame, title: str) -> Figure:
    """Row-normalised confusion matrix with the counts, from confusion.csv (first column "true")."""
    labels_true = confusion.iloc[:, 0].astype(str).tolist()
    labels_pred = [str(c) for c in confusion.columns[1:]]
    counts = confusion.iloc[:, 1:].to_numpy(dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    k = max(len(labels_true), len(labels_pred))
    size = min(MAX_WIDTH - 1.5, 3.5 + 0.6 * k)
    fig = _figure(size + 1.5, size + 0.6)
    ax = fig.subplots()
    image = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    if k <= 16:
        fontsize = 9 if k <= 6 else 8 if k <= 12 else 7
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
    ticks = 9 if k <= 20 else 8
    ax.set_xticks(range(len(labels_pred)), labels_pred, rotation=45, ha="right", fontsize=ticks)
    ax.set_yticks(range(len(labels_true)), labels_true, fontsize=ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.8)
    counts_note = "counts in brackets" if k <= 16 else f"counts in {CONFUSION}"
    ax.set_title(f"{title}\nconfusion matrix (row-normalised; {counts_note})")
    return fig


def _undefined_mask(per_class: pd.DataFrame, metric: str) -> np.ndarray:
    """Where a run's per-class precision or recall is 0/0 (from the TP/FP/FN counts)."""
    cols = {"precision": ("tp", "fp"), "recall": ("tp", "fn")}.get(metric)
    if cols is None or not set(cols) <= set(per_class.columns):
        return np.zeros(len(per_class), dtype=bool)
    return per_class[list(cols)].to_numpy(dtype=np.float64).sum(axis=1) == 0


@_styled
def plot_per_class(per_class: pd.DataFrame, title: str) -> Figure:
    """Grouped bars of precision, recall and F1 per class, from per_class.csv; a 0 is a hatched
    stub, an undefined value a "0/0" label."""
    classes = per_class["class"].astype(str).tolist()
    metrics = [m for m in ("precision", "recall", "f1") if m in per_class]
    fig = _figure(max(6.5, 2.5 + 0.3 * len(metrics) * len(classes)), 4.8)
    ax = fig.subplots()
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(metrics))
    colors = {"precision": "tab:blue", "recall": "tab:orange", "f1": "tab:green"}
    any_zero = any_undefined = False
    for i, metric in enumerate(metrics):
        xs = x + (i - (len(metrics) - 1) / 2) * width
        values = pd.to_numeric(per_class[metric], errors="coerce").to_numpy(np.float64)
        undefined = _undefined_mask(per_class, metric)
        values = np.where(undefined, np.nan, values)
        ax.bar(xs, np.nan_to_num(values), width, color=colors[metric], label=metric)
        _zero_stubs(ax, xs, values, width, colors[metric])
        any_zero |= bool(np.isclose(np.nan_to_num(values, nan=1.0), 0.0).any())
        for xu in xs[undefined]:
            ax.text(xu, 0.01, "0/0", ha="center", va="bottom", rotation=90, color="0.3", fontsize=8)
        any_undefined |= bool(undefined.any())
    _class_ticks(ax, x, classes)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_ylabel("score")
    ax.set_title(f"{title}\nper-class precision, recall and F1 (test split)")
    handles, labels = ax.get_legend_handles_labels()
    if any_zero:
        handles.append(_zero_stub_handle())
        labels.append("value 0")
    if any_undefined:
        handles.append(Line2D([], [], linestyle="none", marker="$0/0$", markersize=16, color="0.3"))
        labels.append("undefined")
    fig.legend(handles, labels, loc="outside right upper")
    return fig


def run_figures(run_dir: Path) -> dict[str, Figure]:
    """A run's figures by file name (history, reliability, confusion, per-class F1). A figure
    whose input file is absent is left out: baseline runs have no history.csv, failed runs may
    have none of the files."""
    run = read_run(Path(run_dir))
    name, metrics = run.name, run.metrics
    figures: dict[str, Figure] = {}
    if (history := run.history()) is not None:
        figures[layout.HISTORY_PLOT] = plot_history(
            history,
            f"{name}: training history",
            metrics.get("best_epoch"),
            [str(c) for c in metrics.get("class_names") or []],
        )
    if (calibration := run.calibration()) is not None:
        figures[layout.RELIABILITY_PLOT] = plot_reliability(calibration, name)
    if (confusion := run.confusion()) is not None:
        figures[layout.CONFUSION_PLOT] = plot_confusion(confusion, name)
    if (per_class := run.per_class()) is not None:
        figures[layout.PER_CLASS_PLOT] = plot_per_class(per_class, name)
    return figures


def run_plots(run_dir: Path) -> list[Path]:
    """Write a run's plots/ (see `run_figures`); return their paths."""
    out = plots_dir(run_dir)
    return [_save(fig, out / name) for name, fig in run_figures(run_dir).items()]
