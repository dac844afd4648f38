"""The reference paper's explanatory figures, for any data (issue 36); no TensorFlow here.

- `plot_loss_shapes(table)`: paper Fig. 1, each loss's value against p = softmax(z)_y on a
  minority-class and a majority-class panel, from the table of `lossbench.losses.shape.loss_shapes`
  (`lossbench losses --plot`, and `loss_shape.png` in compare's report).
- `plot_class_distribution(counts)`: paper Fig. 3 (the count and share of each class, log axis)
  beside paper Fig. 2 (per class, DWB's dynamic weight w_k^(1 - p) against p, log axis)
  (`lossbench inspect --plot`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from lossbench.io import atomic_savefig, atomic_write_csv
from lossbench.report.plots import (
    DPI,
    _class_colors,
    _figure,
    _legend_below,
    _styled,
    kind_styles,
)

__all__ = [
    "dwb_class_weights",
    "plot_class_distribution",
    "plot_loss_shapes",
    "save_loss_shapes",
]

PANELS = ("minority", "majority")


def dwb_class_weights(counts: np.ndarray) -> np.ndarray:
    """DWB's class weights w_k = log(n_max / n_k) + 1 (the paper's eq. 8, as `ClassStats.
    dwb_weights` computes them; repeated here in NumPy so that `inspect` needs no Keras)."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log(counts.max() / counts) + 1.0


@_styled
def plot_loss_shapes(table: pd.DataFrame) -> Figure:
    """Paper Fig. 1 for the losses and class counts of `table` (`loss_shapes`' columns): one panel
    per sample (minority, majority), one curve per loss; losses whose value depends on more than
    p are marked * and the figure says at which logits they are drawn."""
    losses = list(dict.fromkeys(table["loss"]))
    styles = kind_styles(losses)
    dependent = [
        name for name in losses if table.loc[table["loss"] == name, "depends_on_logits"].any()
    ]
    n_max = int(table["n_y"].max())
    k = sum(c.startswith("z_") for c in table.columns)
    fig = _figure(11.0, 4.6)
    axes = fig.subplots(1, 2, sharex=True)
    for ax, panel in zip(axes, PANELS, strict=True):
        rows = table[table["panel"] == panel]
        for name in losses:
            curve = rows[rows["loss"] == name]
            ax.plot(curve["p"], curve["value"], lw=1.6, **styles[name])
        n_y = int(rows["n_y"].iloc[0])
        weight = np.log(n_max / n_y) + 1.0
        ax.set_title(
            f"{panel} sample: class {rows['class'].iloc[0]!r}\n"
            f"n_y = {n_y:,}, DWB weight log(n_max / n_y) + 1 = {weight:.2f}"
        )
        ax.set_xlabel("p = softmax(z)_y (predicted probability of the true class)")
        ax.set_xlim(0.0, 1.0)
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss value")
    fig.suptitle(f"Loss against the true class's probability ({k} classes)")
    labels = [f"{n} *" if n in dependent else n for n in losses]
    handles = [axes[0].lines[i] for i in range(len(losses))]
    note = None
    if dependent:
        where = (
            "the binary logits z_y = -z_other = logit(p) / 2"
            if k == 2
            else "the logits z = log q - mean(log q), q_y = p, q_k = (1 - p) / (K - 1)"
        )
        note = f"* depends on more than p: drawn at {where}"
    _legend_below(fig, handles, labels, ncol=min(len(losses), 6), title=note)
    return fig


@_styled
def plot_class_distribution(counts: Mapping[str, int], title: str = "") -> Figure:
    """Paper Fig. 3 (the count and share of each class, log axis) beside paper Fig. 2 (per class,
    w_k^(1 - p) against p, log axis) with lossbench's w_k = log(n_max / n_k) + 1."""
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    names = [str(name) for name, _ in ordered]
    n = np.array([c for _, c in ordered], dtype=np.float64)
    total = n.sum()
    colors = _class_colors(len(names))
    weights = dwb_class_weights(n)

    fig = _figure(11.5, max(4.2, 0.32 * len(names) + 1.8))
    bars, curves = fig.subplots(1, 2, width_ratios=(1.0, 1.1))
    y = np.arange(len(names))
    bars.barh(y, n, color=colors)
    bars.set_xscale("log")
    bars.set_yticks(y, names)
    bars.invert_yaxis()
    bars.set_xlim(
        10 ** np.floor(np.log10(n.min())), n.max() * 12
    )  # room for the labels right of the longest bar
    for yi, count in zip(y, n, strict=True):
        bars.text(count * 1.15, yi, f"{count:,.0f} ({100 * count / total:.2f}%)", va="center")
    bars.set_xlabel("rows (log scale)")
    bars.set_title(f"Class distribution (paper Fig. 3): {total:,.0f} rows")
    bars.grid(axis="x", alpha=0.3)

    p = np.linspace(0.0, 1.0, 101)
    for name, w, color in zip(names, weights, colors, strict=True):
        curves.plot(p, w ** (1.0 - p), color=color, lw=1.6, label=f"{name} (w = {w:.2f})")
    curves.set_yscale("log")
    curves.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    curves.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    curves.yaxis.set_minor_formatter(NullFormatter())
    curves.set_xlabel("p = softmax(z)_y (predicted probability of the true class)")
    curves.set_ylabel("DWB dynamic weight w_k^(1 - p) (log scale)")
    curves.set_title(
        "DWB's weight per class (paper Fig. 2)\nw_k = log(n_max / n_k) + 1: the paper's "
        "Fig. 2 omits the log"
    )
    curves.set_xlim(0.0, 1.0)
    curves.grid(alpha=0.3)
    curves.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title)
    return fig


def save_loss_shapes(table: pd.DataFrame, png: Path, *, values: bool = True) -> tuple[Path, Path]:
    """Draw `plot_loss_shapes(table)` into `png` and (with `values`) write `table` into the CSV
    beside it (same name, .csv); returns (png, csv)."""
    png = Path(png)
    csv = png.with_suffix(".csv")
    if values:
        atomic_write_csv(csv, table)
    atomic_savefig(plot_loss_shapes(table), png, dpi=DPI)
    return png, csv
