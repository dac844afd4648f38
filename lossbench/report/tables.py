"""Read an experiment folder and build the summary tables (SPEC section 6).

Conventions (documented here once, used by the CSV/Parquet/Markdown tables and the report):

- A *run kind* is the `loss` field of a run: a loss name or a baseline name. Rows come in a stable
  order: the losses in the order of experiment.json "losses", then its "baselines", then any other
  kind found on disk (losses before baselines, each sorted by name).
- Only runs with a DONE file and `metrics.json` status "ok" enter the numbers. Failed runs (status
  "failed") and incomplete runs (no DONE) are counted in `n_failed` of their kind and listed by
  `excluded_runs` with their reason. A kind whose every run failed keeps its row, with `n_seeds` 0
  and NaN statistics.
- `<metric>_mean` is the mean over seeds, `<metric>_std` the sample standard deviation over seeds
  (ddof = 1); with a single seed the std is NaN and the Markdown cell shows the mean alone
  ("0.912", no "±" part). Missing (null) metric values of a seed are skipped.
- Undefined values (`undefined_cells`): a per-class value that is 0/0 (metrics.json's `undefined`
  list, or per_class.csv's counts) and the FAR of a class a run never predicts are left out of the
  per-class means (NaN, shown "–" with a footnote) and counted in `<metric>_undefined`; a summary
  metric listed as undefined is left out of the average table's mean. Only values defined in every
  seed may be marked best (`fully_defined`).
- Significance and ranks (significance.csv, ranks.csv): see `lossbench.report.stats`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench.layout import METRICS, PER_CLASS
from lossbench.store import ExperimentResults, RunRecord, load_experiment

__all__ = [
    "AVERAGE_METRICS",
    "CALIBRATION_METRICS",
    "PER_CLASS_METRICS",
    "ExperimentResults",
    "RunRecord",
    "best_positions",
    "calibration_values",
    "excluded_runs",
    "format_mean_std",
    "format_p",
    "p_phrase",
    "load_experiment",
    "summary_tables",
    "table_to_markdown",
    "tuning_choices",
]

# summary key -> column label in Markdown/HTML
AVERAGE_METRICS: dict[str, str] = {
    "macro_precision": "Precision",
    "macro_recall": "Recall",
    "macro_f1": "F1",
    "macro_far": "FAR",
    "macro_auroc": "AUROC",
    "macro_auprc": "AUPRC",
}
PER_CLASS_METRICS: dict[str, str] = {
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "far": "FAR",
}
CALIBRATION_METRICS: dict[str, str] = {
    "brier": "Brier",
    "ece": "ECE",
    "mce": "MCE",
    "nll": "NLL",
    "temperature": "T",
    "brier_ts": "Brier (TS)",
    "ece_ts": "ECE (TS)",
    "mce_ts": "MCE (TS)",
    "nll_ts": "NLL (TS)",
}
# columns that are settings, not scores: never marked best
NOT_RANKED: frozenset[str] = frozenset({"temperature"})
# metrics where a smaller value is better (the report highlights the best row per column)
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"macro_far", "far", "brier", "ece", "mce", "nll", "brier_ts", "ece_ts", "mce_ts", "nll_ts"}
)


def excluded_runs(results: ExperimentResults) -> pd.DataFrame:
    """Failed, incomplete, unreadable and missing (planned, no folder) runs (name, loss, seed,
    status, reason), in table order."""
    rows = [
        {"name": r.name, "loss": r.loss, "seed": r.seed, "status": r.status, "reason": r.reason}
        for r in results.runs
        if not r.ok
    ]
    order = {k: i for i, k in enumerate(results.kinds)}
    rows.sort(key=lambda r: (order.get(r["loss"], len(order)), r["seed"] is None, r["seed"] or 0))
    return pd.DataFrame(rows, columns=["name", "loss", "seed", "status", "reason"])


def _mean_std(values: list[Any]) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of the non-null values; NaN where undefined."""
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def _tuned_summary(run: RunRecord) -> dict[str, Any]:
    """The test metrics under the validation-tuned decision rule (empty for older runs)."""
    return (run.metrics.get("tuned") or {}).get("summary") or {}


def _kind_row(results: ExperimentResults, kind: str, ok: list[RunRecord]) -> dict[str, Any]:
    """The columns every per-kind table starts with: loss, kind, n_seeds, n_failed."""
    return {
        "loss": kind,
        "kind": results.kind_type(kind),
        "n_seeds": len(ok),
        "n_failed": sum(1 for r in results.runs if r.loss == kind and not r.ok),
    }


def _average_table(results: ExperimentResults, tuned: bool = False) -> pd.DataFrame:
    rows = []
    for kind in results.kinds:
        ok = results.ok_runs(kind)
        row = _kind_row(results, kind, ok)
        for metric in AVERAGE_METRICS:
            row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std(
                [
                    None
                    if not tuned and metric in (r.metrics.get("undefined") or ())
                    else (_tuned_summary(r) if tuned else r.summary).get(metric)
                    for r in ok
                ]
            )
        rows.append(row)
    columns = ["loss", "kind", "n_seeds", "n_failed"] + [
        f"{m}_{s}" for m in AVERAGE_METRICS for s in ("mean", "std")
    ]
    return pd.DataFrame(rows, columns=columns)


def _calibration_table(results: ExperimentResults) -> pd.DataFrame:
    rows = []
    for kind in results.kinds:
        ok = results.ok_runs(kind)
        row = _kind_row(results, kind, ok)
        sources = [calibration_values(r) for r in ok]
        for metric in CALIBRATION_METRICS:
            values = [src.get(metric) for src in sources]
            row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std(values)
        rows.append(row)
    columns = ["loss", "kind", "n_seeds", "n_failed"] + [
        f"{m}_{s}" for m in CALIBRATION_METRICS for s in ("mean", "std")
    ]
    return pd.DataFrame(rows, columns=columns)


def calibration_values(run: RunRecord) -> dict[str, Any]:
    """Raw and temperature-scaled calibration of a run: metrics.json's `calibration` (SPEC 5.1),
    else its summary, else calibration.json (runs made before the protocol)."""
    stored = run.metrics.get("calibration") or {}
    raw = stored.get("raw") or (
        run.summary if _has_calibration(run.summary) else run.calibration() or {}
    )
    values = {m: raw.get(m) for m in ("brier", "ece", "mce", "nll")}
    scaled = stored.get("temperature") or {}
    values["temperature"] = scaled.get("T")
    for m in ("brier", "ece", "mce", "nll"):
        values[f"{m}_ts"] = scaled.get(m)
    return values


def _has_calibration(summary: dict[str, Any]) -> bool:
    return all(m in summary for m in ("brier", "ece", "mce"))


def _per_class_table(results: ExperimentResults) -> pd.DataFrame:
    frames = []
    for kind in results.kinds:
        for r in results.ok_runs(kind):
            pc = r.per_class()
            if pc is None:
                continue
            pc = mask_undefined(pc.assign(**{"class": pc["class"].astype(str)}), r)
            frames.append(pc.assign(loss=kind, seed=r.seed))
    columns = ["class", "loss", "kind", "n_seeds"] + [
        f"{m}_{s}" for m in PER_CLASS_METRICS for s in ("mean", "std", "undefined")
    ]
    if not frames:
        return pd.DataFrame(columns=columns)
    long = pd.concat(frames, ignore_index=True)
    classes = list(results.class_names) + sorted(
        c for c in long["class"].unique() if c not in results.class_names
    )
    groups = dict(iter(long.groupby(["class", "loss"], sort=False, dropna=False)))

    def cells(sub: pd.DataFrame) -> dict[str, Any]:
        row: dict[str, Any] = {"n_seeds": int(sub["seed"].nunique(dropna=False))}
        for metric in PER_CLASS_METRICS:
            vals = sub[metric].tolist() if metric in sub else []
            row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std(vals)
            row[f"{metric}_undefined"] = int(sub[f"{metric}_undefined"].sum())
        return row

    return pd.DataFrame(_class_rows(results, classes, groups, cells), columns=columns)


def _class_rows(
    results: ExperimentResults,
    classes: list[str],
    groups: dict[tuple[str, str], Any],
    cells: Callable[[Any], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per (class, run kind) present in `groups`, in class then run-kind order: the class,
    the run kind and its type, then `cells(groups[(class, kind)])` (n_seeds and the metrics)."""
    return [
        {"class": cls, "loss": kind, "kind": results.kind_type(kind), **cells(groups[(cls, kind)])}
        for cls in classes
        for kind in results.kinds
        if (cls, kind) in groups
    ]


def _operating_points_table(results: ExperimentResults) -> pd.DataFrame:
    """Per (class, run kind): test DR and test FAR at each FAR target (thresholds chosen on
    validation) and the standardised partial AUROC up to FAR max_fpr, mean and std over seeds."""
    values: dict[tuple[str, str], dict[str, list[Any]]] = {}
    metric_keys: list[str] = []
    for kind in results.kinds:
        for r in results.ok_runs(kind):
            ops = r.metrics.get("operating_points") or {}
            for entry in ops.get("per_class") or []:
                cell = values.setdefault((str(entry.get("class")), kind), {})
                items = [("pauroc", entry.get("pauroc"))]
                for point in entry.get("points") or []:
                    t = f"{float(point['far_target']):g}"
                    items += [
                        (f"dr@{t}", point.get("test_dr")),
                        (f"far@{t}", point.get("test_far")),
                    ]
                for key, value in items:
                    cell.setdefault(key, []).append(value)
                    if key not in metric_keys:
                        metric_keys.append(key)
    metric_keys = sorted(metric_keys, key=lambda k: (k == "pauroc", k.split("@")[-1], k))
    columns = ["class", "loss", "kind", "n_seeds"] + [
        f"{m}_{s}" for m in metric_keys for s in ("mean", "std")
    ]
    classes = list(results.class_names) + sorted({c for c, _ in values} - set(results.class_names))

    def cells(cell: dict[str, list[Any]]) -> dict[str, Any]:
        row: dict[str, Any] = {"n_seeds": max(len(v) for v in cell.values())}
        for m in metric_keys:
            row[f"{m}_mean"], row[f"{m}_std"] = _mean_std(cell.get(m, []))
        return row

    rows = _class_rows(results, classes, values, cells)
    return pd.DataFrame(rows, columns=columns)


CLASS_GROUP_METRICS: dict[str, str] = {"macro_f1": "F1", "macro_recall": "Recall"}


def _class_groups_table(results: ExperimentResults) -> pd.DataFrame:
    """Per (frequency group, run kind): macro-F1 and macro recall over the group's classes
    (metrics.json's `class_groups`, `lossbench.metrics.groups`), with the share thresholds."""
    from lossbench.metrics.groups import GROUPS, HEAD_SHARE, TAIL_SHARE

    columns = ["group", "loss", "kind", "n_seeds", "classes", "head_share", "tail_share"] + [
        f"{m}_{s}" for m in CLASS_GROUP_METRICS for s in ("mean", "std")
    ]
    rows = []
    for group in GROUPS:
        for kind in results.kinds:
            ok = [r for r in results.ok_runs(kind) if r.metrics.get("class_groups")]
            if not ok:
                continue
            stored = [r.metrics["class_groups"] for r in ok]
            thresholds = stored[0].get("thresholds") or {}
            row: dict[str, Any] = {
                "group": group,
                "loss": kind,
                "kind": results.kind_type(kind),
                "n_seeds": len(ok),
                "classes": ", ".join(stored[0][group]["classes"]),
                "head_share": thresholds.get("head", HEAD_SHARE),
                "tail_share": thresholds.get("tail", TAIL_SHARE),
            }
            for metric in CLASS_GROUP_METRICS:
                row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std(
                    [g[group][metric] for g in stored]
                )
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def operating_point_metrics(table: pd.DataFrame) -> dict[str, str]:
    """Column key -> label of an operating-points table ("DR@FAR 0.01", "pAUROC", ...)."""
    labels: dict[str, str] = {}
    for col in table.columns:
        if not col.endswith("_mean"):
            continue
        key = col[: -len("_mean")]
        name, _, target = key.partition("@")
        labels[key] = {
            "dr": f"DR@FAR≤{target}",
            "far": f"test FAR@{target}",
            "pauroc": "pAUROC(0.01)",
        }.get(name, key)
    return labels


def table_metrics(which: str, table: pd.DataFrame) -> dict[str, str]:
    """Metric key -> display label of one summary table."""
    if which == "operating_points":
        return operating_point_metrics(table)
    return {
        "average": AVERAGE_METRICS,
        "average_tuned": AVERAGE_METRICS,
        "per_class": PER_CLASS_METRICS,
        "calibration": CALIBRATION_METRICS,
        "class_groups": CLASS_GROUP_METRICS,
    }[which]


def tables_from(results: ExperimentResults) -> dict[str, pd.DataFrame]:
    """The summary tables of already-loaded results (see `summary_tables`)."""
    return {
        "average": _average_table(results),
        "average_tuned": _average_table(results, tuned=True),
        "per_class": _per_class_table(results),
        "calibration": _calibration_table(results),
        "operating_points": _operating_points_table(results),
        "class_groups": _class_groups_table(results),
    }


def summary_tables(exp_dir: Path) -> dict[str, pd.DataFrame]:
    """The summary tables of an experiment, keyed "average", "average_tuned", "per_class",
    "calibration" and "operating_points".

    - average: one row per run kind; columns loss, kind, n_seeds, n_failed, then
      `<m>_mean`/`<m>_std` for m in macro_precision, macro_recall, macro_f1, macro_far, macro_auroc,
      macro_auprc.
    - per_class: one row per (class, run kind), classes in class order; columns class, loss, kind,
      n_seeds, then `<m>_mean`/`<m>_std`/`<m>_undefined` (seeds where the value is undefined)
      for m in precision, recall, f1, far.
    - average_tuned: as average, under the validation-tuned decision rule (SPEC 5.1).
    - calibration: one row per run kind; loss, kind, n_seeds, n_failed, raw brier/ece/mce/nll,
      the temperature T fitted on validation, and the temperature-scaled `<m>_ts`, mean and std.
    - operating_points: one row per (class, run kind); `dr@<t>`/`far@<t>` (test detection rate and
      test FAR at each validation FAR target t) and `pauroc`, mean and std.
    - class_groups: one row per (group, run kind), groups head (training share >= head_share),
      medium and tail (< tail_share); the group's classes and macro_f1/macro_recall mean and std.

    Means are over the completed seeds; std is the sample std (ddof=1), NaN for one seed.
    """
    return tables_from(load_experiment(Path(exp_dir)))


# ------------------------------------------------------------------------------------------------
# Markdown


def _param_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def tuning_choices(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """`compare --tune`: per method, what was chosen, one dict each: method, text (one line:
    "defaults chosen (trial 0 of 2, validation macro_f1 0.812)" or "reg_weight=0.83 (trial 1
    of 2, ...)"), defaults_chosen, tuned_row (the `@tuned` row, or the default row that stands
    for it when the defaults won). Empty without tuning."""
    tuning = meta.get("tuning") or {}
    out = []
    for method, c in (tuning.get("chosen") or {}).items():
        c = c or {}
        searched = {k: v for k, v in (c.get("params") or {}).items()}
        if c.get("lr") is not None:
            searched["lr"] = c["lr"]
        where = (
            f"trial {c.get('trial')} of {c.get('n_trials')}, validation "
            f"{c.get('criterion', tuning.get('criterion'))} "
            + (f"{c['value']:.3f}" if isinstance(c.get("value"), int | float) else "–")
            if c.get("trial") is not None
            else f"no trial of {c.get('n_trials')} completed"
        )
        values = ", ".join(f"{k}={_param_text(v)}" for k, v in searched.items())
        if c.get("defaults_chosen"):
            text = f"defaults chosen ({where}); not retrained: the {method} rows stand for it"
        else:
            text = f"{values or 'defaults'} ({where}) -> {method}@tuned"
        out.append(
            {
                "method": method,
                "text": text,
                "defaults_chosen": bool(c.get("defaults_chosen")),
                "tuned_row": method if c.get("defaults_chosen") else f"{method}@tuned",
            }
        )
    return out


def format_p(p: Any) -> str:
    """A p-value as every table and figure prints it: 3 significant digits ("0.145", "1.00",
    "0.0123"), "< 0.001" below 0.001, "–" when there is none."""
    try:
        v = float(p)
    except (TypeError, ValueError):
        return "–"
    if math.isnan(v):
        return "–"
    return "< 0.001" if v < 0.001 else f"{v:#.3g}"


def p_phrase(p: Any, name: str = "p") -> str:
    """ "p = 0.145", "p < 0.001", "p = –": a p-value in running text."""
    text = format_p(p)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """ "0.912 ± 0.004"; the mean alone when std is NaN (one seed); "–" when there is no value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def display_table(table: pd.DataFrame, which: str) -> pd.DataFrame:
    """A summary table as display strings (the Markdown/HTML view): "mean ± std" cells."""
    metrics = table_metrics(which, table)
    out: dict[str, list[Any]] = {}
    if which in ("per_class", "operating_points"):
        out["Class"] = table["class"].astype(str).tolist()
    if which == "class_groups":
        out["Group"] = table["group"].astype(str).tolist()
        out["Classes"] = table["classes"].fillna("").astype(str).tolist()
    out["Loss"] = table["loss"].astype(str).tolist()
    for metric, label in metrics.items():
        out[label] = [
            format_mean_std(m, s)
            for m, s in zip(table[f"{metric}_mean"], table[f"{metric}_std"], strict=True)
        ]
        out[label] = mark_partly_undefined(out[label], table, metric)
    out["Seeds"] = table["n_seeds"].astype(int).tolist()
    if "n_failed" in table:
        out["Failed"] = table["n_failed"].astype(int).tolist()
    return pd.DataFrame(out)


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table_to_markdown(display: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of a display DataFrame (text left, numbers right)."""
    cols = list(display.columns)
    align = [":---" if c in ("Class", "Loss", "Group", "Classes") else "---:" for c in cols]
    lines = [
        "| " + " | ".join(_md_cell(c) for c in cols) + " |",
        "| " + " | ".join(align) + " |",
    ]
    for row in display.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# undefined values (issue 18)

UNDEFINED_MARK = "*"
_UNDEFINED_RE = re.compile(r"^(?P<metric>[a-z_]+)\[(?P<cls>.*)\]$")


def undefined_cells(per_class: pd.DataFrame, run: RunRecord) -> set[tuple[str, str]]:
    """(metric, class) pairs of one run's per-class table whose value is undefined or meaningless.

    From metrics.json's `undefined` list ("precision[DoS Hulk]": a 0/0 ratio reported as 0) and
    from per_class.csv's counts: precision when the run never predicts the class (TP + FP = 0),
    recall when the class is absent from the test split (TP + FN = 0), FAR when no test row is
    outside the class (FP + TN = 0); and the FAR of a class the run never predicts, which is 0 by
    abstention, not by skill, so it must not compete with real false-alarm rates.
    """
    cells: set[tuple[str, str]] = set()
    for name in run.metrics.get("undefined") or []:
        m = _UNDEFINED_RE.match(str(name))
        if m:
            cells.add((m["metric"], m["cls"]))
    if {"tp", "fp", "fn", "tn", "class"} <= set(per_class.columns):
        counts = per_class[["tp", "fp", "fn", "tn"]].apply(pd.to_numeric, errors="coerce")
        classes = per_class["class"].astype(str)
        never_predicted = (counts["tp"] + counts["fp"]) == 0
        for metric, mask in (
            ("precision", never_predicted),
            ("far", never_predicted | ((counts["fp"] + counts["tn"]) == 0)),
            ("recall", (counts["tp"] + counts["fn"]) == 0),
        ):
            cells.update((metric, c) for c in classes[mask.to_numpy()])
    return cells


def mask_undefined(per_class: pd.DataFrame, run: RunRecord) -> pd.DataFrame:
    """One run's per-class table with its undefined values (see `undefined_cells`) set to NaN and a
    boolean `<metric>_undefined` column per metric of PER_CLASS_METRICS."""
    out = per_class.copy()
    cells = undefined_cells(per_class, run)
    classes = out["class"].astype(str)
    for metric in PER_CLASS_METRICS:
        flagged = classes.isin({c for m, c in cells if m == metric}).to_numpy()
        if metric in out:
            out[metric] = pd.to_numeric(out[metric], errors="coerce").mask(flagged)
        out[f"{metric}_undefined"] = flagged
    return out


def mark_partly_undefined(cells: list[str], table: pd.DataFrame, metric: str) -> list[str]:
    """Display cells with UNDEFINED_MARK where the value is undefined in some of the seeds (the
    mean is then over the others); a value undefined in every seed is already "–"."""
    col = f"{metric}_undefined"
    if col not in table:
        return cells
    partly = (pd.to_numeric(table[col], errors="coerce").fillna(0) > 0) & table[
        f"{metric}_mean"
    ].notna()
    return [f"{c}{UNDEFINED_MARK}" if p else c for c, p in zip(cells, partly, strict=True)]


def fully_defined(table: pd.DataFrame, metric: str) -> pd.Series:
    """Rows whose `metric` is defined in every seed: the only ones that may be marked best."""
    col = f"{metric}_undefined"
    defined = table[f"{metric}_mean"].notna()
    if col in table:
        defined &= pd.to_numeric(table[col], errors="coerce").fillna(0) == 0
    return defined.reset_index(drop=True)


def best_positions(values: Any, *, lower: bool, digits: int = 3) -> set[int]:
    """Positions of the values tied for best at the printed precision (`digits` decimals): all of
    them, or none when every defined value ties (nothing stands out) or fewer than two are
    defined. NaN (undefined or missing) is never best. One rule for every table that marks a
    best value (the report's tables, its ranks, the terminal's tables)."""
    rounded = pd.Series(pd.to_numeric(pd.Series(list(values)), errors="coerce")).round(digits)
    defined = rounded.dropna()
    if len(defined) < 2 or defined.nunique() == 1:
        return set()
    target = defined.min() if lower else defined.max()
    return {int(i) for i in defined.index[defined == target]}


def undefined_note(per_class_table: pd.DataFrame, which: str) -> str:
    """The footnote about undefined values of summary table `which` ("" when the experiment has
    none): "per_class" explains the "–" and UNDEFINED_MARK cells, "average" how the macro
    averages count undefined per-class values."""
    cols = [f"{m}_undefined" for m in PER_CLASS_METRICS if f"{m}_undefined" in per_class_table]
    flags = per_class_table[cols].apply(pd.to_numeric, errors="coerce").fillna(0)
    if not cols or not (flags.to_numpy() > 0).any():
        return ""
    if which == "per_class":
        return (
            "– also marks an undefined value: the precision of a class the run never predicts "
            "(0/0), the recall of a class absent from the test split, and the FAR of a class the "
            f"run never predicts (0 by abstention, not a real false-alarm rate). {PER_CLASS} "
            f"keeps them as 0 ({METRICS} lists the 0/0 ones under `undefined`); here they are "
            "left out of the means and never marked best. "
            f"{UNDEFINED_MARK}: undefined in some seeds, the mean is over the seeds where the "
            "value is defined (and it is not marked best)."
        )
    if which == "average":
        return (
            "Macro averages follow scikit-learn's zero_division=0: a per-class value that is "
            "undefined (– in the per-class table) counts as 0 in them."
        )
    return ""
