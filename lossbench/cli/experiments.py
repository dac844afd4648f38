"""`lossbench run` and `lossbench compare`, and how their results are printed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from lossbench import layout
from lossbench.cli import common
from lossbench.cli.common import ARGV, app, fit_table, print_json
from lossbench.cli.options import (
    compare_options,
    dataset_options,
    run_options,
    training_options,
    with_options,
)
from lossbench.config import CommandSettings
from lossbench.errors import InputError
from lossbench.progress import RichReporter


def _invocation(settings: CommandSettings) -> dict[str, Any]:
    """What the user typed: the exact command line, and the TOML file's name and content when
    --config was used."""
    import shlex
    from pathlib import Path

    out: dict[str, Any] = {"command_line": shlex.join(["lossbench", *ARGV])}
    config = settings.config
    if config:
        out["config_file"] = str(config)
        try:
            out["config_text"] = Path(config).read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
    return out


_HEADLINE = {
    "macro_precision": "prec",
    "macro_recall": "recall",
    "macro_f1": "F1",
    "macro_auroc": "AUROC",
    "gmean": "G-mean",
    "brier": "Brier",
    "ece": "ECE",
}


def _headline_table(title: str, rows: list[dict[str, Any]], full: str = "") -> Table:
    """One row per run: its status and headline test metrics (3 decimals)."""
    cells = []
    for m in rows:
        s = m.get("summary") or {}
        cells.append(
            [str(m.get("name")), str(m.get("status"))]
            + [f"{s[c]:.3f}" if isinstance(s.get(c), float) else "–" for c in _HEADLINE]
        )
    return fit_table(
        title,
        ["run", "status", *_HEADLINE.values()],
        cells,
        width=common.console.width,
        caption="macro averages on the test split",
        full=full,
        keep=2,
    )


def _print_run_warnings(rows: list[dict[str, Any]]) -> None:
    """The runs' warnings (e.g. "predicts only 1 of 2 classes"), one each, wrapped at the
    terminal's width (they hold no path)."""
    for m in rows:
        for text in m.get("warnings") or []:
            common.err_console.print(
                f"warning: {escape(str(m.get('name')))}: {escape(text)}", highlight=False
            )


@contextmanager
def _reporter(cfg: CommandSettings) -> Iterator[RichReporter]:
    """The progress of `run` and `compare` on stderr (none under --quiet or --json), which
    records the command line in the experiment."""
    with RichReporter(cfg.quiet or cfg.as_json, common.err_console) as reporter:
        reporter.invocation = _invocation(cfg)
        yield reporter


@app.command()
@with_options(run_options, dataset_options, training_options, build="run")
def run(settings: CommandSettings) -> None:
    """Train one network with one loss and write its run folder (metrics, plots, model)."""
    from lossbench.api import run_settings

    with _reporter(settings) as reporter:
        run_dir, metrics = run_settings(settings, reporter=reporter)
    quiet, as_json = settings.quiet, settings.as_json
    _print_run_warnings([metrics])  # on stderr, under --quiet and --json too
    if as_json:
        print_json({"run_dir": str(run_dir), **metrics})
    elif quiet:
        typer.echo(str(run_dir))
    else:
        common.console.print(_headline_table(f"{run_dir.parent.parent.name}", [metrics]))
        common.console.print(f"run folder: {run_dir}", soft_wrap=True)
    _log_mlflow([run_dir.parent.parent], settings, quiet=quiet or as_json)
    if metrics.get("status") != "ok":
        common.err_console.print(
            f"run failed: {metrics.get('reason')} (see {run_dir / layout.LOG})",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_RUNS_FAILED)


@app.command()
@with_options(compare_options, dataset_options, training_options, build="compare")
def compare(settings: CommandSettings) -> None:
    """Train one run per (loss, seed) on the same split and write the paper's tables and report."""
    from lossbench.api import compare_settings

    with _reporter(settings) as reporter:
        exp_dirs = compare_settings(settings, reporter=reporter)
    quiet, as_json = settings.quiet, settings.as_json
    _log_mlflow(exp_dirs, settings, quiet=quiet or as_json)
    board = _compare_leaderboard(exp_dirs, settings.out) if len(exp_dirs) > 1 else None
    if as_json:
        payloads = [experiment_payload(d) for d in exp_dirs]
        print_json(payloads[0] if len(payloads) == 1 else payloads)
    else:
        for exp_dir in exp_dirs:
            print_experiment(exp_dir, quiet=quiet)
        if board is not None and quiet:
            typer.echo(str(board))
        elif board is not None:
            common.console.print(f"leaderboard: {board}", soft_wrap=True)
    _exit_if_runs_failed(exp_dirs)


def _log_mlflow(exp_dirs: list[Any], settings: CommandSettings, *, quiet: bool) -> None:
    """`--mlflow`: log these experiments' runs (`api.log_mlflow`), one note line each."""
    from lossbench.api import log_mlflow

    for line in log_mlflow(exp_dirs, settings):
        if not quiet:
            common.err_console.print(f"note: {line}", highlight=False, soft_wrap=True)


#: Exit code of `run` and `compare` when they finished but at least one run failed.
EXIT_RUNS_FAILED = 3


def _exit_if_runs_failed(exp_dirs: list[Any]) -> None:
    """Name every run of these experiments that did not complete, and exit with code 3."""
    from lossbench.store import load_metrics

    failed = [
        (exp_dir, m)
        for exp_dir in exp_dirs
        for m in load_metrics(exp_dir)
        if m.get("status") != "ok"
    ]
    for exp_dir, m in failed:
        common.err_console.print(
            f"run failed: {layout.run_dir(exp_dir, str(m.get('name')))}: {m.get('status')}: "
            f"{m.get('reason')}",
            highlight=False,
            soft_wrap=True,
        )
    if failed:
        raise typer.Exit(EXIT_RUNS_FAILED)


def _compare_leaderboard(exp_dirs: list[Any], out: Any) -> Any:
    """The leaderboard of a compare over several datasets, in `<out>/leaderboard_<time stamp of
    the first experiment>`; None (with a warning) when it cannot be built."""
    from lossbench.report.leaderboard import build_leaderboard

    folder = out / f"leaderboard_{exp_dirs[0].name.split('_', 1)[0]}"
    try:
        written = build_leaderboard(exp_dirs, folder)
    except InputError as exc:
        common.err_console.print(
            f"[yellow]warning:[/yellow] no leaderboard: {exc}", highlight=False
        )
        return None
    return written["leaderboard.html"]


def experiment_payload(exp_dir: Any) -> dict[str, Any]:
    """The `--json` summary of an experiment: paths, runs, the average, per-class and calibration
    tables (undefined per-class values are null, counted in `<metric>_undefined`)."""
    from lossbench.report import summary_tables
    from lossbench.store import load_metrics

    tables = summary_tables(exp_dir)
    return {
        "experiment": str(exp_dir),
        "report": str(layout.report_path(exp_dir)),
        "runs": [
            {k: r.get(k) for k in ("name", "status", "reason", "summary")}
            for r in load_metrics(exp_dir)
        ],
        "table_average": tables["average"].to_dict(orient="records"),
        "table_per_class": tables["per_class"].to_dict(orient="records"),
        "table_calibration": tables["calibration"].to_dict(orient="records"),
        "table_class_groups": tables["class_groups"].to_dict(orient="records"),
    }


def _summary_rich_table(exp_dir: Any, which: str, title: str) -> Table:
    """A summary table of summary/ (average or calibration) as a rich table fitting the terminal,
    in the experiment's row order (`--losses`, then baselines), best values in bold by the
    report's rule (`best_positions`)."""
    from lossbench.report.html import best_rows
    from lossbench.report.tables import display_table, summary_tables, table_metrics

    table = summary_tables(exp_dir)[which]
    display = display_table(table, which)
    metrics = table_metrics(which, table)
    bold = {label: best_rows(table, m, None) for m, label in metrics.items()}
    return fit_table(
        title,
        [str(c) for c in display.columns],
        [[str(v) for v in row] for row in display.itertuples(index=False)],
        width=common.console.width,
        full=str(layout.summary_dir(exp_dir) / layout.summary_table(which, ".md")),
        bold=bold,
    )


def _ordered_runs(exp_dir: Any) -> list[dict[str, Any]]:
    """The runs' metrics in the tables' order: methods as in `--losses`, then seeds."""
    from lossbench.report.tables import load_experiment
    from lossbench.store import load_metrics

    order = {k: i for i, k in enumerate(load_experiment(exp_dir).kinds)}
    return sorted(
        load_metrics(exp_dir),
        key=lambda m: (order.get(m.get("loss"), len(order)), m.get("seed") or 0, m.get("name")),
    )


def print_experiment(exp_dir: Any, *, quiet: bool) -> None:
    summary, report = layout.summary_dir(exp_dir), layout.report_path(exp_dir)
    runs = _ordered_runs(exp_dir)
    _print_run_warnings(runs)  # on stderr, under --quiet too
    if quiet:
        typer.echo(str(exp_dir))
        typer.echo(str(report))
        return
    common.console.print(_headline_table(exp_dir.name, runs, full=str(report)))
    if (summary / layout.summary_table("average")).exists():
        common.console.print(
            _summary_rich_table(exp_dir, "average", "Macro-averaged test metrics (mean ± std)")
        )
        common.console.print(
            _summary_rich_table(exp_dir, "calibration", "Calibration (mean ± std)")
        )
    _print_tuning(exp_dir)
    common.console.print(f"experiment: {exp_dir}", soft_wrap=True, highlight=False)
    common.console.print(f"tables:     {summary}", soft_wrap=True, highlight=False)
    common.console.print(
        f"plots:      {layout.plots_dir(summary)}", soft_wrap=True, highlight=False
    )
    common.console.print(f"report:     {report}", soft_wrap=True, highlight=False)


def _print_tuning(exp_dir: Any) -> None:
    """`compare --tune`: per method, the chosen values and whether the defaults won."""
    from lossbench.report.tables import tuning_choices
    from lossbench.store import read_experiment_meta

    for choice in tuning_choices(read_experiment_meta(exp_dir)):
        common.console.print(
            f"tuned {escape(choice['method'])}: {escape(choice['text'])}",
            highlight=False,
            soft_wrap=False,
        )
