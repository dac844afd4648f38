"""report.html: one self-contained page (inline CSS, images as base64 PNG data URIs, no links).

All text taken from the results (names, reasons, settings) is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from lossbench.metrics.significance import MIN_TEST_SEEDS
from lossbench.report.page_text import CSS, GROUPS_NOTE, PLOT_CAPTIONS
from lossbench.report.stats import HEADLINE_METRICS, LOWER_IS_BETTER_HEADLINE
from lossbench.report.tables import (
    LOWER_IS_BETTER,
    NOT_RANKED,
    ExperimentResults,
    best_positions,
    display_table,
    format_p,
    fully_defined,
    table_metrics,
    tuning_choices,
    undefined_note,
)

__all__ = ["render_report"]


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if math.isnan(v):
        return "–"
    return f"{v:.{digits}f}"


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def best_rows(table: pd.DataFrame, metric: str, group: str | None) -> set[int]:
    """Positions of the best mean per column (per group when given), by `best_positions`: every
    value tied for best at the printed precision, none when all tie, undefined values never."""
    col = f"{metric}_mean"
    best: set[int] = set()
    if table.empty or col not in table or metric in NOT_RANKED:
        return best
    values = pd.to_numeric(table[col], errors="coerce").reset_index(drop=True)
    values = values.where(fully_defined(table, metric))  # undefined values never rank
    groups = table[group].reset_index(drop=True) if group else pd.Series([0] * len(table))
    lower = metric in LOWER_IS_BETTER or metric.startswith("far@")
    for _, idx in groups.groupby(groups).groups.items():
        sub = values.loc[idx]
        best.update(int(sub.index[i]) for i in best_positions(sub, lower=lower))
    return best


def _summary_table_html(table: pd.DataFrame, which: str) -> str:
    """A summary table as HTML ("mean ± std" cells, best mean per column in bold)."""
    metrics = table_metrics(which, table)
    display = display_table(table, which)
    group = {"per_class": "class", "operating_points": "class", "class_groups": "group"}.get(which)
    best = {label: best_rows(table, m, group) for m, label in metrics.items()}
    text_cols = {"Class", "Loss", "Group", "Classes"}
    head = "".join(
        f'<th class="text">{_e(c)}</th>' if c in text_cols else f"<th>{_e(c)}</th>"
        for c in display.columns
    )
    body = []
    for i, row in enumerate(display.itertuples(index=False)):
        cells = []
        for col, value in zip(display.columns, row, strict=True):
            cls = "text" if col in text_cols else "best" if i in best.get(col, ()) else ""
            cells.append(f'<td class="{cls}">{_e(value)}</td>' if cls else f"<td>{_e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="wide">{table}</div>'  # cells never wrap: a narrow window scrolls


def _undefined_html(tables: dict[str, pd.DataFrame], which: str) -> str:
    """The footnote on undefined values under a summary table ("" when there are none)."""
    note = undefined_note(tables["per_class"], which)
    return f'<p class="note">{_e(note)}</p>' if note else ""


def _significance_html(sig: pd.DataFrame) -> str:
    """significance.csv as one table per metric; a row is bold only when `significant` (tested
    with >= 3 seeds and Holm-adjusted p < 0.05)."""
    if sig.empty:
        return '<p class="note">No comparison: fewer than two methods with results.</p>'
    parts = []
    max_seeds = int(pd.to_numeric(sig["n_seeds"]).max())
    if max_seeds < MIN_TEST_SEEDS:
        parts.append(
            f'<p class="note"><b>No test possible</b>: {max_seeds} seed(s) per pair, at least '
            f"{MIN_TEST_SEEDS} needed (run with --seeds 0,1,2 or more). Nothing is marked "
            "significant; the differences below are descriptive only.</p>"
        )
    head = (
        '<th class="text">A</th><th class="text">B</th><th>Seeds</th><th>Mean diff A − B</th>'
        "<th>95% CI (t)</th><th>p (paired t)</th><th>p Holm</th><th>p (Wilcoxon)</th>"
        '<th>Bootstrap 95% CI</th><th class="text">Better</th><th class="text">Note</th>'
    )
    for metric, group in sig.groupby("metric", sort=False):
        rows = []
        for r in group.to_dict("records"):
            cls = ' class="sig"' if bool(r.get("significant")) else ""
            rows.append(
                f"<tr{cls}>"
                f'<td class="text">{_e(r["method_a"])}</td>'
                f'<td class="text">{_e(r["method_b"])}</td>'
                f"<td>{_e(r['n_seeds'])}</td><td>{_num(r.get('mean_diff'))}</td>"
                f"<td>{_interval(r.get('ci_low'), r.get('ci_high'))}</td>"
                f"<td>{_e(format_p(r.get('p_value')))}</td>"
                f"<td>{_e(format_p(r.get('p_holm')))}</td>"
                f"<td>{_e(format_p(r.get('wilcoxon_p')))}</td>"
                f"<td>{_interval(r.get('boot_ci_low'), r.get('boot_ci_high'))}</td>"
                f'<td class="text">{_e(r.get("better") or "")}</td>'
                f'<td class="text">{_e(r.get("note") or "")}</td>'
                "</tr>"
            )
        label = HEADLINE_METRICS.get(str(metric), str(metric))
        lower = " (lower is better)" if metric in LOWER_IS_BETTER_HEADLINE else ""
        parts.append(
            f"<h3>{_e(label)}{lower}</h3><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return "".join(parts)


def _interval(low: Any, high: Any) -> str:
    if _num(low) == "–" or _num(high) == "–":
        return "–"
    return f"[{_num(low)}, {_num(high)}]"


def _ranks_html(ranks: pd.DataFrame | None) -> str:
    """ranks.csv as one table: methods x metrics, average rank over seeds (1 = best)."""
    if ranks is None or ranks.empty:
        return '<p class="note">No ranks: no method with results.</p>'
    wide = ranks.pivot(index="method", columns="metric", values="avg_rank")
    methods = list(dict.fromkeys(ranks["method"]))
    metrics = list(dict.fromkeys(ranks["metric"]))
    seeds = ranks.groupby("metric", sort=False)["n_seeds"].first()
    head = '<th class="text">Method</th>' + "".join(
        f"<th>{_e(HEADLINE_METRICS.get(m, m))} ({_e(seeds[m])} seeds)</th>" for m in metrics
    )
    body = []
    best = {
        m: {methods[i] for i in best_positions(wide[m].reindex(methods), lower=True, digits=2)}
        for m in metrics
    }
    for method in methods:
        cells = []
        for m in metrics:
            cls = "best" if method in best[m] else ""
            cells.append(f'<td class="{cls}">{_num(wide.loc[method, m], 2)}</td>')
        body.append(f'<tr><td class="text">{_e(method)}</td>{"".join(cells)}</tr>')
    notes = sorted({n for n in ranks["note"].fillna("") if n})
    note = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}"


def _tuning_html(results: ExperimentResults) -> str:
    """`compare --tune`: per method, the chosen values (or "defaults chosen", linked to the
    default run that stands for the @tuned row) and every trial with its objective."""
    from lossbench.store import read_trials

    tuning = results.meta.get("tuning") or {}
    choices = tuning_choices(results.meta)
    if not choices:
        return ""
    first_run = {}
    for r in sorted(results.runs, key=lambda r: (r.seed is None, r.seed or 0)):
        first_run.setdefault(r.loss, r.name)
    parts = [
        "<h2>Tuning</h2>",
        f'<p class="note">{_e(tuning.get("trials"))} trials per method on seed '
        f"{_e(tuning.get('seed'))}'s validation split ({_e(tuning.get('sampler'))}); objective: "
        f"the validation {_e(tuning.get('criterion'))} at the selected epoch (larger is better). "
        "The test split is never seen. When the defaults win, no @tuned run is trained: the "
        "default rows stand for it.</p>",
    ]
    for choice in choices:
        method = choice["method"]
        link = ""
        if choice["defaults_chosen"] and method in first_run:
            link = f' (<a href="#run-{_e(first_run[method])}">the default run\'s results</a>)'
        parts.append(f"<h3>{_e(method)}</h3><p>{_e(choice['text'])}{link}</p>")
        trials = read_trials(results.path, method)
        if not trials:
            continue
        params = [k for k in trials[0] if str(k).startswith("param_")]
        chosen_trial = ((tuning.get("chosen") or {}).get(method) or {}).get("trial")
        head = "<th>Trial</th><th>State</th><th>Objective</th>" + "".join(
            f"<th>{_e(k.removeprefix('param_'))}</th>" for k in params
        )
        rows = "".join(
            f"<tr{' class=sig' if t.get('number') == chosen_trial else ''}>"
            f"<td>{_e(t.get('number'))}</td><td>{_e(t.get('state'))}</td>"
            f"<td>{_num(t.get('value'))}</td>"
            + "".join(f"<td>{_e(_param_cell(t.get(k)))}</td>" for k in params)
            + "</tr>"
            for t in trials
        )
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return "".join(parts)


def _param_cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _settings_html(results: ExperimentResults) -> str:
    meta = results.meta
    train = meta.get("train") or {}
    data = meta.get("data") or {}
    items: list[tuple[str, Any]] = [
        ("Dataset", meta.get("dataset") or data.get("data")),
        ("Classes", f"{len(results.class_names)}: " + ", ".join(results.class_names)),
        ("Losses", ", ".join(map(str, meta.get("losses") or []))),
        ("Baselines", ", ".join(map(str, meta.get("baselines") or [])) or "none"),
        ("Seeds", ", ".join(map(str, meta.get("seeds") or []))),
        ("Epochs", train.get("epochs")),
        ("Batch size", train.get("batch_size")),
        ("Learning rate", train.get("lr")),
        ("Model", train.get("model")),
        ("Patience", train.get("patience")),
        ("Command", (meta.get("invocation") or {}).get("command_line") or meta.get("command")),
        ("Created", meta.get("created")),
        ("Device", meta.get("device")),
        ("Git commit", meta.get("git_commit")),
        ("Data fingerprint", meta.get("data_fingerprint")),
    ]
    rows = "".join(
        f'<tr><th class="text">{_e(k)}</th><td class="text wrap">{_e(v)}</td></tr>'
        for k, v in items
        if v not in (None, "")
    )
    invocation = meta.get("invocation") or {}
    if invocation.get("config_text"):
        rows += (
            f'<tr><th class="text">Config file {_e(invocation.get("config_file"))}</th>'
            f'<td class="text wrap"><pre class="config">{_e(invocation["config_text"])}</pre>'
            "</td></tr>"
        )
    details = "".join(
        f"<details><summary>{title}</summary>{_options_html(options, meta)}</details>"
        for title, options in (
            ("Data options", data),
            ("Training options", train),
            ("Versions", meta.get("versions")),
        )
        if options
    )
    return f"<table>{rows}</table>{details}"


# what an option left at None means, as a person would say it
_NONE_MEANS = {
    "data": "the built-in default dataset",
    "label_col": "Label, else the last column",
    "drop_classes": "the preset's default",
    "merge": "the preset's default",
    "sample_frac": "all rows",
    "min_class_count": "none",
    "positive_label": "the minority class",
    "cache_dir": "$LOSSBENCH_CACHE or ~/.cache/lossbench",
    "jit_compile": "auto",
}


def _option_text(key: str, value: Any, meta: dict[str, Any]) -> str:
    """An option's value as it would be written on the command line ("digits-lt", "0.6,0.2,0.2",
    "yes"), never a JSON literal such as null."""
    if value is None:
        if key == "data" and meta.get("dataset"):
            return f"{meta['dataset']} (the default)"
        return _NONE_MEANS.get(key, "default")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_option_text(k, v, meta)}" for k, v in value.items()) or "none"
    return str(value)


def _options_html(options: dict[str, Any], meta: dict[str, Any]) -> str:
    """One option per row: its name as a flag or a package (`sample-frac`, `tensorflow`), and its
    value."""
    rows = "".join(
        f'<tr><th class="text">{_e(str(k).replace("_", "-"))}</th>'
        f'<td class="text">{_e(_option_text(str(k), v, meta))}</td></tr>'
        for k, v in options.items()
    )
    return f"<table>{rows}</table>"


def _excluded_html(excluded: pd.DataFrame) -> str:
    if excluded.empty:
        return '<p class="note">None: every run completed.</p>'
    rows = "".join(
        f'<tr class="{_e(r["status"])}"><td class="text">{_e(r["name"])}</td>'
        f'<td class="text">{_e(r["loss"])}</td><td>{_e(r["seed"])}</td>'
        f'<td class="text">{_e(r["status"])}</td><td class="text">{_e(r["reason"])}</td></tr>'
        for r in excluded.to_dict("records")
    )
    head = (
        '<th class="text">Run</th><th class="text">Loss</th><th>Seed</th>'
        '<th class="text">Status</th><th class="text">Reason</th>'
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _runs_html(results: ExperimentResults) -> str:
    order = {k: i for i, k in enumerate(results.kinds)}
    runs = sorted(results.runs, key=lambda r: (order.get(r.loss, 1e9), r.seed or 0, r.name))
    parts = []
    for r in runs:
        m = r.metrics
        head = (
            f'<summary><b>{_e(r.name)}</b> — <span class="status-{_e(r.status)}">{_e(r.status)}'
            f"</span>"
        )
        if r.ok:
            head += (
                f" — macro F1 {_num(r.summary.get('macro_f1'))}, "
                f"Brier {_num(r.summary.get('brier'))}"
            )
        if m.get("warnings"):
            head += ' — <span class="status-failed">warning</span>'
        head += "</summary>"
        facts = [f"Loss <b>{_e(r.loss)}</b> ({_e(r.kind)})", f"seed {_e(r.seed)}"]
        if r.kind == "loss" and m.get("epochs_run") is not None:
            facts.append(f"epochs run {_e(m['epochs_run'])}, best epoch {_e(m.get('best_epoch'))}")
        if m.get("train_seconds") is not None:
            facts.append(f"training {_num(m['train_seconds'], 1)} s")
        body = [f"<p>{', '.join(facts)}.</p>"]
        if r.reason:
            body.append(f"<p>Reason: {_e(r.reason)}</p>")
        body.extend(
            f'<p class="status-failed">Warning: {_e(w)}</p>' for w in m.get("warnings") or []
        )
        if m.get("selection"):
            sel = m["selection"]
            body.append(
                f"<p>Selected by validation {_e(sel.get('criterion'))} at epoch "
                f"{_e(sel.get('selected_epoch'))} of {_e(sel.get('epochs_run'))} run "
                f"(stopped by {_e(sel.get('stopped_by'))}).</p>"
            )
        if r.summary:
            cells = "".join(
                f'<tr><th class="text">{_e(k)}</th><td>{_num(v)}</td></tr>'
                for k, v in r.summary.items()
            )
            body.append(f"<table>{cells}</table>")
        if m.get("undefined"):
            body.append(
                f'<p class="note">Undefined (0/0, reported as 0): {_e(", ".join(map(str, m["undefined"])))}</p>'  # noqa: E501
            )
        if m.get("learned_params"):
            learned = json.dumps(m["learned_params"], indent=1)
            body.append(f"<p>Learned parameters:</p><pre>{_e(learned)}</pre>")
        parts.append(f'<details id="run-{_e(r.name)}">{head}{"".join(body)}</details>')
    return "".join(parts) or '<p class="note">No runs.</p>'


def _difficulty_html(average: pd.DataFrame) -> str:
    """How hard the task is: each method's macro-F1 above the `stump` and `prior` baselines
    (issue 33); "" when the experiment ran neither."""
    if average.empty or "macro_f1_mean" not in average:
        return ""
    f1 = dict(zip(average["loss"], pd.to_numeric(average["macro_f1_mean"]), strict=True))
    refs = [b for b in ("stump", "prior") if b in f1 and not math.isnan(f1[b])]
    if not refs:
        return ""
    head = "".join(f"<th>F1 − {_e(b)}</th>" for b in refs)
    rows = "".join(
        f'<tr><td class="text">{_e(kind)}</td><td>{_num(value)}</td>'
        + "".join(f"<td>{'–' if math.isnan(value) else f'{value - f1[b]:+.3f}'}</td>" for b in refs)
        + "</tr>"
        for kind, value in f1.items()
        if kind not in refs
    )
    return (
        "<h2>How hard the task is</h2>"
        '<p class="note">Macro-F1 (mean over seeds) of each method and how far it is above the '
        "stump (a depth-1 tree on the one feature that scores best on validation) and the prior "
        "(the training class prior: the floor). A method close to the stump gains little over a "
        "single threshold on a single feature.</p>"
        f'<table><thead><tr><th class="text">Loss</th><th>F1</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _leakage_html(results: ExperimentResults) -> str:
    """Validation/test rows that exactly duplicate a training row (experiment.json data_info)."""
    info = results.meta.get("data_info") or {}
    leak = info.get("leakage")
    if not leak:
        return (
            '<p class="note">No leakage report (an experiment made before lossbench kept one).</p>'
        )
    rows = []
    for split in ("val", "test"):
        part = leak.get(split) or {}
        classes = part.get("per_class") or {}
        for name, c in [("all classes", part), *classes.items()]:
            rows.append(
                f'<tr><td class="text">{_e(split)}</td><td class="text">{_e(name)}</td>'
                f"<td>{_e(c.get('rows'))}</td><td>{_e(c.get('duplicates'))}</td>"
                f"<td>{_e(c.get('same_label'))}</td><td>{_e(c.get('conflicting_label'))}</td></tr>"
            )
    dedupe = "on" if info.get("dedupe") else "off (use --dedupe to drop duplicate rows)"
    return (
        f'<p class="note">Rows whose feature vector exactly duplicates a training row; --dedupe '
        f"was {_e(dedupe)}.</p>"
        '<table><thead><tr><th class="text">Split</th><th class="text">Class</th><th>Rows</th>'
        "<th>Duplicate a training row</th><th>Same label</th><th>Conflicting label</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


#: the summary tables shown as a heading, a note (HTML) and the table
_TABLE_SECTIONS = (
    ("Head, medium and tail classes", _e(GROUPS_NOTE), "class_groups"),
    (
        "Average test metrics under the validation-tuned decision rule",
        "Per-class logit offsets (binary: one threshold) fitted on validation "
        "macro-F1 and applied unchanged to the test split, for every method alike: a loss that "
        "wins above but not here bought a shift of the decision threshold.",
        "average_tuned",
    ),
    (
        "Calibration",
        "Raw: the posterior of each loss. TS: after temperature scaling, one T "
        "fitted on validation NLL.",
        "calibration",
    ),
    (
        "Operating points",
        "Per class, one-vs-rest on the posterior: the threshold is the lowest "
        "whose validation FAR is at most the target; test DR and the test FAR it gives. "
        "pAUROC: standardised partial AUROC up to FAR 0.01.",
        "operating_points",
    ),
)


def _table_section(tables: dict[str, pd.DataFrame], heading: str, note: str, key: str) -> str:
    """One entry of `_TABLE_SECTIONS`: heading, note and the table `tables[key]`."""
    return f'<h2>{heading}</h2><p class="note">{note}</p>' + _summary_table_html(tables[key], key)


def _status_line(results: ExperimentResults, excluded: pd.DataFrame) -> str:
    """How many runs completed, then the count of each status among the excluded ones."""
    n_ok = sum(r.ok for r in results.runs)
    counts = excluded["status"].value_counts().to_dict() if not excluded.empty else {}
    return f"{n_ok} completed run(s)" + "".join(
        f", {n} {status}" for status, n in sorted(counts.items())
    )


def _figures_html(plots: dict[str, Path]) -> str:
    """The summary plots, embedded as base64 PNG with their captions."""
    return "".join(
        f'<figure><img alt="{_e(name)}" src="{_data_uri(path)}">'
        f"<figcaption>{_e(PLOT_CAPTIONS.get(name, name))}</figcaption></figure>"
        for name, path in plots.items()
    )


def _warnings_html(results: ExperimentResults) -> str:
    """The data's own warnings (e.g. --test-data classes never seen in training, --split-by),
    then each run's; empty when there are none."""
    warned = [
        f"<li>{_e(r.name)}: {_e(w)}</li>"
        for r in results.runs
        for w in r.metrics.get("warnings") or []
    ]
    data_warnings = (results.meta.get("data_info") or {}).get("warnings") or []
    warned = [f"<li>data: {_e(w)}</li>" for w in data_warnings] + warned
    return f"<h2>Warnings</h2><ul>{''.join(warned)}</ul>" if warned else ""


def render_report(
    results: ExperimentResults,
    tables: dict[str, pd.DataFrame],
    significance: pd.DataFrame,
    excluded: pd.DataFrame,
    plots: dict[str, Path],
    ranks: pd.DataFrame | None = None,
) -> str:
    """The report page as a string: settings, the three tables, significance and average ranks
    over seeds, the summary plots (embedded as base64 PNG), excluded runs with their reasons, one
    collapsible section per run."""
    status_line = _status_line(results, excluded)
    sections = [
        f"<h1>lossbench report: {_e(results.name)}</h1>",
        _warnings_html(results),
        f'<p class="note">{_e(status_line)}. Cells are mean ± std over seeds (sample std); '
        "a single seed shows the mean alone; every mean tied for best at the printed precision is "
        "in bold (none when all tie); – is a value that is missing or undefined (see the notes "
        "under the tables), never marked best.</p>",
        "<h2>Settings</h2>",
        _settings_html(results),
        "<h2>Average test metrics (macro over classes)</h2>",
        _summary_table_html(tables["average"], "average"),
        _undefined_html(tables, "average"),
        _difficulty_html(tables["average"]),
        "<h2>Per-class test metrics</h2>",
        _summary_table_html(tables["per_class"], "per_class"),
        _undefined_html(tables, "per_class"),
        *(_table_section(tables, *section) for section in _TABLE_SECTIONS),
        "<h2>Significance over seeds</h2>",
        '<p class="note">Every pair of methods, difference = A − B over the seeds both completed '
        "(runs of one seed share the split, initial weights and batch order). Paired t-test from "
        "3 seeds, Wilcoxon signed-rank test from 6 seeds; p Holm: Holm-adjusted within each "
        "metric. Bootstrap: hierarchical (seeds, then each seed's own test rows, the same rows "
        "for A and B). A row is bold only when it was tested (at least 3 seeds) and its "
        "Holm-adjusted p &lt; 0.05.</p>",
        _significance_html(significance),
        "<h2>Average rank over seeds</h2>",
        '<p class="note">Per seed the methods are ranked (1 = best; Brier ascending, the others '
        "descending), then the ranks are averaged over the seeds where every method has a "
        "value.</p>",
        _ranks_html(ranks),
        _tuning_html(results),
        "<h2>Plots</h2>",
        _figures_html(plots),
        "<h2>Leakage</h2>",
        _leakage_html(results),
        "<h2>Failed, incomplete and missing runs</h2>",
        _excluded_html(excluded),
        "<h2>Runs</h2>",
        _runs_html(results),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>lossbench: {_e(results.name)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
