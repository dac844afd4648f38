"""The leaderboard across datasets: average ranks, Friedman test, post-hoc tests, CD diagrams.

Demsar (2006), "Statistical comparisons of classifiers over multiple data sets", JMLR 7:

- Each experiment folder is one dataset. A method's value on a dataset is its headline metric
  (`lossbench.report.stats.HEADLINE_METRICS`) averaged over the seeds it completed there.
- Only the methods that every experiment has (with a completed run) are compared; the others are
  named in a note. For each metric, datasets where one of those methods has no value are left
  out (with a note).
- Per dataset the methods are ranked with `scipy.stats.rankdata` (1 = best: Brier ascending, the
  other metrics descending; ties share the average rank); the average rank is the mean over the
  datasets. The Friedman test (`scipy.stats.friedmanchisquare`, from 3 methods and 2 datasets)
  asks whether the average ranks differ at all; the post-hoc comparisons are scikit-posthocs'
  `posthoc_siegel_friedman` (Demsar's z = (R_i - R_j) / sqrt(k (k + 1) / (6 N)) for every pair)
  with Holm's correction. A pair is `significant` only when the Friedman p and its Holm-adjusted
  p are both below 0.05.
- The critical-difference diagram (scikit-posthocs' `critical_difference_diagram`) places the
  methods by average rank and joins those not significantly different (all of them when the
  Friedman test does not reject).

Output folder: ranks.csv (metric, dataset, method, value, n_seeds, rank), average_ranks.csv,
friedman.csv, posthoc.csv, table_<metric>.{csv,md} (methods x datasets), cd_<metric>.png and
leaderboard.html (the PNGs embedded).
"""

from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import friedmanchisquare, rankdata

from lossbench import layout
from lossbench.errors import InputError
from lossbench.io import atomic_savefig, atomic_write_csv, atomic_write_text
from lossbench.report.stats import (
    HEADLINE_METRICS,
    LOWER_IS_BETTER_HEADLINE,
    headline_metrics,
    run_value,
)
from lossbench.report.tables import (
    ExperimentResults,
    best_positions,
    format_p,
    load_experiment,
    p_phrase,
    table_to_markdown,
)

__all__ = ["Leaderboard", "build_leaderboard", "default_leaderboard_dir", "leaderboard_from"]

ALPHA = 0.05
MIN_FRIEDMAN_METHODS = 3


@dataclass
class MetricBoard:
    """One metric across datasets."""

    metric: str
    values: pd.DataFrame  # datasets x methods: the mean over seeds
    n_seeds: pd.DataFrame  # datasets x methods: seeds averaged
    ranks: pd.DataFrame  # datasets x methods: 1 = best
    friedman_stat: float
    friedman_p: float
    posthoc: pd.DataFrame  # methods x methods: Holm-adjusted p-values
    notes: list[str] = field(default_factory=list)

    @property
    def average_ranks(self) -> pd.Series:
        """The average rank of each method over the datasets."""
        return self.ranks.mean(axis=0)

    @property
    def friedman_rejects(self) -> bool:
        """True when the Friedman test says the ranks differ (p < 0.05)."""
        return not math.isnan(self.friedman_p) and self.friedman_p < ALPHA


@dataclass
class Leaderboard:
    """Every metric's board, the datasets (one per experiment) and the methods compared."""

    datasets: list[str]
    experiments: list[Path]
    methods: list[str]
    boards: dict[str, MetricBoard]
    notes: list[str]


def _is_experiment(path: Path) -> bool:
    return layout.experiment_file(path).is_file() and layout.runs_dir(path).is_dir()


def _dataset_labels(results: list[ExperimentResults]) -> list[str]:
    """experiment.json "dataset" (else the folder name); the folder name is added to repeats."""
    labels = [str(r.meta.get("dataset") or r.path.name) for r in results]
    return [
        f"{label} ({r.path.name})" if labels.count(label) > 1 else label
        for label, r in zip(labels, results, strict=True)
    ]


def _metric_board(
    metric: str, results: list[ExperimentResults], datasets: list[str], methods: list[str]
) -> MetricBoard | None:
    values = pd.DataFrame(np.nan, index=datasets, columns=methods)
    counts = pd.DataFrame(0, index=datasets, columns=methods)
    for label, res in zip(datasets, results, strict=True):
        for method in methods:
            vals = [v for r in res.ok_runs(method) if (v := run_value(r, metric)) is not None]
            if vals:
                values.loc[label, method] = float(np.mean(vals))
                counts.loc[label, method] = len(vals)
    complete = values.notna().all(axis=1)
    notes = []
    if not complete.all():
        left = ", ".join(values.index[~complete])
        notes.append(f"left out (a compared method has no {metric} there): {left}")
    values, counts = values[complete], counts[complete]
    if len(values) < 2:
        return None
    sign = 1.0 if metric in LOWER_IS_BETTER_HEADLINE else -1.0
    ranks = pd.DataFrame(
        rankdata(sign * values.to_numpy(), axis=1), index=values.index, columns=methods
    )
    stat = p = math.nan
    if len(methods) >= MIN_FRIEDMAN_METHODS:
        result = friedmanchisquare(*(values[m].to_numpy() for m in methods))
        stat, p = float(result.statistic), float(result.pvalue)
    else:
        notes.append(f"no Friedman test: {len(methods)} methods, at least 3 needed")
    import scikit_posthocs as sp

    posthoc = sp.posthoc_siegel_friedman(sign * values.reset_index(drop=True), p_adjust="holm")
    posthoc = posthoc.loc[methods, methods]
    return MetricBoard(metric, values, counts, ranks, stat, p, posthoc, notes)


def leaderboard_from(exp_dirs: list[Path]) -> Leaderboard:
    """Read the experiments and compute every metric's board (nothing is written).

    Raises:
        InputError: when a path is not an experiment folder, when fewer than two distinct
            experiments are given, or when they have fewer than two methods in common.
    """
    paths: list[Path] = []
    for p in map(Path, exp_dirs):
        if not _is_experiment(p):
            raise InputError(
                f"{p}: not an experiment folder (no {layout.EXPERIMENT} and {layout.RUNS}/)"
            )
        if p.resolve() in {q.resolve() for q in paths}:
            raise InputError(f"{p}: given twice")
        paths.append(p)
    if len(paths) < 2:
        raise InputError(
            f"a leaderboard needs at least two experiments (one per dataset), got {len(paths)}"
        )
    results = [load_experiment(p) for p in paths]
    with_runs = [[k for k in r.kinds if r.ok_runs(k)] for r in results]
    methods = [m for m in with_runs[0] if all(m in w for w in with_runs[1:])]
    if len(methods) < 2:
        raise InputError(
            f"the experiments have {len(methods)} method(s) with results in common, need 2"
        )
    notes = []
    for r, w in zip(results, with_runs, strict=True):
        extra = [m for m in w if m not in methods]
        if extra:
            notes.append(f"{r.path.name}: {', '.join(extra)} left out (not in every experiment)")
    datasets = _dataset_labels(results)
    metrics = [m for m in HEADLINE_METRICS if any(m in headline_metrics(r) for r in results)]
    boards = {}
    for metric in metrics:
        board = _metric_board(metric, results, datasets, methods)
        if board is None:
            notes.append(f"{metric}: fewer than two datasets where every method has it")
        else:
            boards[metric] = board
    if not boards:
        raise InputError("no metric that every compared method has on two or more datasets")
    return Leaderboard(datasets, paths, methods, boards, notes)


def default_leaderboard_dir(exp_dirs: list[Path]) -> Path:
    """`leaderboard/` in the folder that holds the experiments (their common parent)."""
    parents = [str(Path(p).parent) for p in exp_dirs]
    try:
        common = os.path.commonpath(parents)
    except ValueError:  # relative and absolute paths mixed
        common = os.path.commonpath([str(Path(p).resolve()) for p in parents])
    return Path(common) / "leaderboard"


# ------------------------------------------------------------------------------------------------
# files


def _long_ranks(lb: Leaderboard) -> pd.DataFrame:
    rows = []
    for metric, b in lb.boards.items():
        for dataset in b.values.index:
            for method in lb.methods:
                rows.append(
                    {
                        "metric": metric,
                        "dataset": dataset,
                        "method": method,
                        "value": b.values.loc[dataset, method],
                        "n_seeds": int(b.n_seeds.loc[dataset, method]),
                        "rank": b.ranks.loc[dataset, method],
                    }
                )
    return pd.DataFrame(rows)


def _average_ranks(lb: Leaderboard) -> pd.DataFrame:
    rows = []
    for metric, b in lb.boards.items():
        avg = b.average_ranks
        for method in avg.sort_values(kind="stable").index:
            rows.append(
                {
                    "metric": metric,
                    "method": method,
                    "avg_rank": float(avg[method]),
                    "n_datasets": len(b.values),
                    "mean_value": float(b.values[method].mean()),
                }
            )
    return pd.DataFrame(rows)


def _friedman(lb: Leaderboard) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "metric": m,
                "n_datasets": len(b.values),
                "n_methods": len(lb.methods),
                "statistic": b.friedman_stat,
                "p_value": b.friedman_p,
                "note": "; ".join(b.notes),
            }
            for m, b in lb.boards.items()
        ]
    )


def _posthoc(lb: Leaderboard) -> pd.DataFrame:
    rows = []
    for metric, b in lb.boards.items():
        avg = b.average_ranks
        for i, a in enumerate(lb.methods):
            for c in lb.methods[i + 1 :]:
                p = float(b.posthoc.loc[a, c])
                rows.append(
                    {
                        "metric": metric,
                        "method_a": a,
                        "method_b": c,
                        "rank_diff": float(avg[a] - avg[c]),
                        "p_holm": p,
                        "significant": bool(b.friedman_rejects and p < ALPHA),
                    }
                )
    return pd.DataFrame(rows)


def _metric_table(lb: Leaderboard, b: MetricBoard) -> pd.DataFrame:
    """methods x datasets: "value (rank)" cells, then the average rank; best average rank first.
    The first column is "Loss", as in the experiment tables (baselines included)."""
    avg = b.average_ranks.sort_values(kind="stable")
    out: dict[str, list[Any]] = {"Loss": list(avg.index)}  # losses and baselines
    for dataset in b.values.index:
        out[dataset] = [
            f"{b.values.loc[dataset, m]:.3f} ({b.ranks.loc[dataset, m]:g})" for m in avg.index
        ]
    out["Average rank"] = [f"{avg[m]:.2f}" for m in avg.index]
    return pd.DataFrame(out)


def _cd_diagram(b: MetricBoard, path: Path) -> Path:
    return atomic_savefig(cd_figure(b), path, dpi=110)


#: Half the width of the bar drawn for methods that share one average rank exactly (scikit-
#: posthocs draws it from the lowest to the highest rank of the group: a zero-length bar).
TIED_BAR_HALF_WIDTH = 0.15


def cd_figure(b: MetricBoard) -> Figure:
    """The critical-difference diagram of one metric: scikit-posthocs' drawing with the axis
    spanning ranks 1..k in integer steps, each method in its own colour (`method_color`, the
    same in every plot of lossbench) and a visible bar joining methods tied on one rank."""
    import scikit_posthocs as sp

    from lossbench.report.plots import method_color

    sig = b.posthoc.copy() if b.friedman_rejects else b.posthoc * 0 + 1.0
    k = len(sig)
    fig = Figure(figsize=(7.5, 0.9 + 0.32 * k))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    artists = sp.critical_difference_diagram(
        b.average_ranks,
        sig,
        ax=ax,
        alpha=ALPHA,
        color_palette={m: method_color(str(m)) for m in b.average_ranks.index},
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
        text_h_margin=0.25,  # rank units: labels clear of the elbows, also when all tie
    )
    for (bar,) in artists["crossbars"]:
        xs = np.asarray(bar.get_xdata(), dtype=float)
        if len(xs) and xs.max() - xs.min() < 1e-9:  # one rank shared: widen to a visible bar
            centre = float(xs[0])
            bar.set_xdata([centre - TIED_BAR_HALF_WIDTH, centre + TIED_BAR_HALF_WIDTH])
            bar.set_ydata([bar.get_ydata()[0]] * 2)
    ax.set_xlim(1, k)
    ax.set_xticks(range(1, k + 1))
    for artist in [*ax.lines, *ax.collections]:  # a method ranked 1 or k sits on the axis' end
        artist.set_clip_on(False)
    label = HEADLINE_METRICS.get(b.metric, b.metric)
    ax.set_title(
        f"{label}: average rank over {len(b.values)} datasets (1 = best), "
        f"Friedman {p_phrase(b.friedman_p)}",
        fontsize=9,
        pad=22,
    )
    fig.tight_layout()
    return fig


def _html(lb: Leaderboard, tables: dict[str, pd.DataFrame], pngs: dict[str, Path]) -> str:
    def e(v: Any) -> str:
        return escape(str(v), quote=True)

    parts = [
        "<h1>lossbench leaderboard</h1>",
        f"<p>{len(lb.datasets)} datasets: {e(', '.join(lb.datasets))}. Methods compared: "
        f"{e(', '.join(lb.methods))}.</p>",
        '<p class="note">Per dataset each method\'s metric is its mean over seeds; the methods are '
        "ranked per dataset (1 = best; Brier ascending) and the ranks averaged. Friedman test "
        "over the datasets; post-hoc: Demsar's z-test for every pair with Holm's correction; a "
        "pair is different only when both the Friedman p and its Holm p are below 0.05. In the "
        "critical-difference diagram a bar joins methods that are not significantly "
        "different.</p>",
    ]
    parts += [f'<p class="note">Note: {e(n)}</p>' for n in lb.notes]
    parts.append("<h2>Experiments</h2><ul>")
    parts += [f"<li>{e(d)}: {e(p)}</li>" for d, p in zip(lb.datasets, lb.experiments, strict=True)]
    parts.append("</ul>")
    posthoc = _posthoc(lb)
    for metric, b in lb.boards.items():
        label = HEADLINE_METRICS.get(metric, metric)
        stat = "–" if math.isnan(b.friedman_stat) else f"{b.friedman_stat:.3f}"
        verdict = "the ranks differ" if b.friedman_rejects else "no evidence that the ranks differ"
        parts.append(f"<h2>{e(label)}</h2>")
        parts.append(
            f"<p>Friedman chi² = {e(stat)}, {e(p_phrase(b.friedman_p))} ({e(verdict)}), "
            f"{len(b.values)} datasets.</p>"
        )
        parts += [f'<p class="note">{e(n)}</p>' for n in b.notes]
        t = tables[metric]
        head = "".join(f"<th>{e(c)}</th>" for c in t.columns)
        best = best_positions(pd.to_numeric(t["Average rank"]), lower=True, digits=2)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{e(v)}</td>" for v in row[:-1])
            + f"<td{' class=best' if i in best else ''}>{e(row[-1])}</td></tr>"
            for i, row in enumerate(t.itertuples(index=False))
        )
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        data = base64.b64encode(pngs[metric].read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img alt="cd_{e(metric)}.png" src="data:image/png;base64,{data}">'
            f"<figcaption>Critical-difference diagram, {e(label)}.</figcaption></figure>"
        )
        sub = posthoc[posthoc["metric"] == metric]
        rows = "".join(
            f"<tr{' class=sig' if r.significant else ''}><td>{e(r.method_a)}</td>"
            f"<td>{e(r.method_b)}</td><td>{r.rank_diff:+.2f}</td><td>{e(format_p(r.p_holm))}</td></tr>"
            for r in sub.itertuples(index=False)
        )
        parts.append(
            "<details><summary>Post-hoc comparisons (Holm)</summary><table><thead><tr>"
            "<th>A</th><th>B</th><th>Rank A − B</th><th>p Holm</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></details>"
        )
    css = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}"
        "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
        "th:first-child,td:first-child{text-align:left}th{background:#f0f0f0}"
        "tr.sig td,td.best{font-weight:bold}.note{color:#555;font-size:.9em}"
        "figure img{max-width:100%;border:1px solid #ddd}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>lossbench leaderboard</title><style>{css}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )


def build_leaderboard(exp_dirs: list[Path], out: Path | None = None) -> dict[str, Path]:
    """Compute the leaderboard of `exp_dirs` and write it into `out` (default
    `default_leaderboard_dir`); see the module docstring for the files.

    Every input is checked, and every number computed, before anything is written.

    Returns:
        {file name: path}.

    Raises:
        InputError: see `leaderboard_from`; also when `out` is an existing file.
    """
    lb = leaderboard_from(list(exp_dirs))
    out = Path(out) if out is not None else default_leaderboard_dir(lb.experiments)
    if out.exists() and not out.is_dir():
        raise InputError(f"out {out}: exists and is not a folder")
    tables = {m: _metric_table(lb, b) for m, b in lb.boards.items()}
    written = {
        "ranks.csv": atomic_write_csv(out / "ranks.csv", _long_ranks(lb)),
        "average_ranks.csv": atomic_write_csv(out / "average_ranks.csv", _average_ranks(lb)),
        "friedman.csv": atomic_write_csv(out / "friedman.csv", _friedman(lb)),
        "posthoc.csv": atomic_write_csv(out / "posthoc.csv", _posthoc(lb)),
    }
    pngs = {}
    for metric, b in lb.boards.items():
        written[f"table_{metric}.csv"] = atomic_write_csv(
            out / f"table_{metric}.csv", tables[metric]
        )
        label = HEADLINE_METRICS.get(metric, metric)
        md = (
            f"{label}: mean over seeds per dataset (rank; 1 = best), average rank over datasets. "
            f"Friedman {p_phrase(b.friedman_p)}.\n\n{table_to_markdown(tables[metric])}"
        )
        written[f"table_{metric}.md"] = atomic_write_text(out / f"table_{metric}.md", md)
        pngs[metric] = written[f"cd_{metric}.png"] = _cd_diagram(b, out / f"cd_{metric}.png")
    written["leaderboard.html"] = atomic_write_text(
        out / "leaderboard.html", _html(lb, tables, pngs)
    )
    return written
