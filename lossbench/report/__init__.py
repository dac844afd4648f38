"""Tables, plots and the report page (SPEC section 6).

- `run_plots(run_dir)`: the four plots of one run (three for baselines, which have no history).
- `summary_tables(exp_dir)`: the average, per-class and calibration tables as DataFrames.
- `build_summary(exp_dir)`: writes summary/ (tables, significance.csv, ranks.csv, plots,
  report.html).

Conventions (row order, mean ± std, failed runs, significance) are documented in
`lossbench.report.tables`.
"""

from __future__ import annotations

from pathlib import Path

from lossbench import layout
from lossbench.errors import InputError
from lossbench.report.figures import save_loss_shapes
from lossbench.report.html import render_report
from lossbench.report.overlays import summary_plots
from lossbench.report.plots import run_plots
from lossbench.report.stats import ranks_from, significance_from
from lossbench.report.tables import (
    display_table,
    excluded_runs,
    load_experiment,
    summary_tables,
    table_to_markdown,
    tables_from,
    undefined_note,
)
from lossbench.store import write_report, write_summary_csv, write_summary_table

__all__ = ["TABLE_CAPTIONS", "build_summary", "run_plots", "summary_tables"]

TABLE_CAPTIONS = {
    "average": "Macro-averaged test metrics per loss (paper Table II), mean ± std over seeds.",
    "per_class": "Per-class test metrics per loss (paper Table III), mean ± std over seeds.",
    "calibration": "Calibration per loss (paper Tables IV/VIII), raw and after temperature "
    "scaling (TS, T fitted on validation NLL), mean ± std over seeds.",
    "average_tuned": "Macro-averaged test metrics under the validation-tuned decision rule "
    "(per-class logit offsets fitted on validation macro-F1), mean ± std over seeds.",
    "class_groups": "Head (training share >= 10%), medium and tail (< 1%) classes: macro-F1 "
    "and macro recall over each group's classes present in the test split, mean ± std over seeds.",
    "operating_points": "Per class: test detection rate (DR) and test FAR at each validation "
    "FAR target, and pAUROC up to FAR 0.01, mean ± std over seeds.",
}
_NOTE = (
    "std is the sample standard deviation over seeds (ddof = 1); a single seed shows the mean "
    "alone; – marks a value with no completed run. Seeds: completed runs; Failed: failed or "
    "incomplete runs, excluded from the numbers."
)


def build_summary(exp_dir: Path, *, n_boot: int = 1000) -> dict[str, Path]:
    """Write `exp_dir/summary/` from every `runs/*/` folder: the three tables as CSV, Markdown and
    Parquet, significance.csv and ranks.csv (`lossbench.report.stats`), plots/ (history_overlay,
    per_class_f1, reliability_overlay, pr_curves, and loss_shape.png with its .csv when compare
    stored the losses' values against p) and report.html. Failed and incomplete runs are left out
    of the numbers, counted in n_failed and listed in the report with their reason.
    `n_boot`: hierarchical bootstrap replicates for the intervals in significance.csv.

    Returns:
        {path relative to summary/ (e.g. "table_average.csv", "plots/pr_curves.png"): path}.

    Raises:
        InputError: when `exp_dir` holds neither experiment.json nor runs/.
    """
    exp_dir = Path(exp_dir)
    if not layout.experiment_file(exp_dir).is_file() and not layout.runs_dir(exp_dir).is_dir():
        raise InputError(
            f"{exp_dir}: not an experiment folder (no {layout.EXPERIMENT}, no {layout.RUNS}/)"
        )
    out = layout.summary_dir(exp_dir)
    results = load_experiment(exp_dir)
    tables = tables_from(results)
    significance = significance_from(results, n_boot=n_boot)
    ranks = ranks_from(results)
    excluded = excluded_runs(results)

    written: dict[str, Path] = {}
    for which, table in tables.items():
        note = " ".join(filter(None, [_NOTE, undefined_note(tables["per_class"], which)]))
        markdown = (
            f"{TABLE_CAPTIONS[which]}\n\n{table_to_markdown(display_table(table, which))}\n{note}\n"
        )
        written.update(write_summary_table(exp_dir, which, table, markdown))
    written[layout.SIGNIFICANCE] = write_summary_csv(exp_dir, layout.SIGNIFICANCE, significance)
    written[layout.RANKS] = write_summary_csv(exp_dir, layout.RANKS, ranks)
    plots = summary_plots(results, tables["per_class"], layout.plots_dir(out))
    shapes = results.loss_shapes()
    if shapes is not None:  # compare's losses at its data (`lossbench.experiment`)
        png, csv = save_loss_shapes(shapes, layout.plots_dir(out) / layout.LOSS_SHAPES_PLOT)
        plots[png.name] = png
        written[f"{layout.PLOTS}/{csv.name}"] = csv
    written.update({f"{layout.PLOTS}/{name}": path for name, path in plots.items()})
    page = render_report(results, tables, significance, excluded, plots, ranks=ranks)
    written[layout.REPORT] = write_report(exp_dir, page)
    return written
