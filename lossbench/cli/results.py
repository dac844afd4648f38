"""`lossbench report`, `lossbench leaderboard` and `lossbench bench`."""

from __future__ import annotations

from typing import Annotated

import typer

from lossbench import choices, layout
from lossbench.cli import common
from lossbench.cli.common import app, fit_table, print_json
from lossbench.cli.experiments import experiment_payload, print_experiment
from lossbench.cli.options import DeviceOpt, JsonOpt, QuietOpt
from lossbench.errors import InputError
from lossbench.settings import (
    parse_list,
)


@app.command()
def report(
    results_dir: Annotated[
        str, typer.Argument(help="An experiment folder (results/<experiment>).")
    ],
    plots: Annotated[
        choices.Plots,
        typer.Option("--plots", help="summary: the summary's plots; runs: each run's plots too."),
    ] = "summary",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every run's metrics from its stored predictions (no training), then rebuild the
    tables, plots and report page of the experiment."""
    from pathlib import Path

    from lossbench.evaluation import reevaluate_run
    from lossbench.integrity import run_problem
    from lossbench.report import build_summary, run_plots
    from lossbench.store import read_experiment_meta, run_status, stray_run_dirs, stray_warning

    exp_dir = Path(results_dir)
    draw_runs = plots == "runs"
    read_experiment_meta(exp_dir)
    if (stray := stray_warning(exp_dir)) is not None:
        common.err_console.print(
            f"[yellow]warning:[/yellow] {stray}", highlight=False, soft_wrap=True
        )
    ignored = set(stray_run_dirs(exp_dir))
    for run_dir in sorted(set(layout.runs_dir(exp_dir).glob("*")) - ignored):
        if run_status(run_dir) == "done":
            note = reevaluate_run(run_dir)
            if note is not None and not as_json:
                common.err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
            if draw_runs:
                run_plots(run_dir)
        elif run_status(run_dir) == "unreadable":
            common.err_console.print(
                f"[yellow]warning:[/yellow] {run_dir}: {run_problem(run_dir)}; left out of the "
                "tables (the next compare trains it again)",
                highlight=False,
                soft_wrap=True,
            )
    build_summary(exp_dir)
    if as_json:
        print_json(experiment_payload(exp_dir))
    else:
        print_experiment(exp_dir, quiet=quiet)


@app.command()
def leaderboard(
    experiments: Annotated[
        list[str], typer.Argument(help="Experiment folders, one per dataset (two or more).")
    ],
    out: Annotated[
        str | None,
        typer.Option("--out", help="Output folder (default: leaderboard/ beside the experiments)."),
    ] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Rank the methods across datasets: average ranks, Friedman and post-hoc tests, CD diagrams."""
    from pathlib import Path

    import pandas as pd

    from lossbench.report.leaderboard import build_leaderboard

    written = build_leaderboard([Path(e) for e in experiments], Path(out) if out else None)
    folder = written["leaderboard.html"].parent
    ranks = pd.read_csv(folder / "average_ranks.csv")
    friedman = pd.read_csv(folder / "friedman.csv").set_index("metric")
    if as_json:
        print_json(
            {
                "folder": str(folder),
                "average_ranks": ranks.to_dict(orient="records"),
                "friedman": friedman.reset_index().to_dict(orient="records"),
            }
        )
        return
    if not quiet:
        from lossbench.report.tables import best_positions, format_p

        n = int(friedman["n_datasets"].max())
        wide = ranks.pivot(index="method", columns="metric", values="avg_rank")
        metrics = list(friedman.index)
        order = list(wide[metrics[0]].sort_values(kind="stable").index)
        rows = [[m, *(f"{wide.loc[m, k]:.2f}" for k in metrics)] for m in order]
        rows.append(["Friedman p", *(format_p(friedman.loc[k, "p_value"]) for k in metrics)])
        bold = {
            k: best_positions([wide.loc[m, k] for m in order], lower=True, digits=2)
            for k in metrics
        }
        common.console.print(
            fit_table(
                f"Average rank over {n} datasets (1 = best)",
                ["method", *metrics],
                rows,
                width=common.console.width,
                full=str(folder / "leaderboard.html"),
                bold=bold,
                footer=1,
            )
        )
    if quiet:
        typer.echo(str(folder / "leaderboard.html"))
    else:
        common.console.print(f"leaderboard: {folder / 'leaderboard.html'}")


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller data and fewer repetitions (minutes).")
    ] = False,
    out: Annotated[str, typer.Option("--out", help="Where bench/<date>/ goes.")] = "results/bench",
    device: DeviceOpt = "auto",
    losses: Annotated[
        str | None, typer.Option("--losses", help="Losses to time (default: all).")
    ] = None,
    precision: Annotated[
        choices.Precision,
        typer.Option(
            "--precision",
            help="Precision of the runs timed against stock Keras, of the fixed-cost runs and "
            "of the peak-memory run.",
        ),
    ] = "float32",
    compare_precision: Annotated[
        str,
        typer.Option(
            "--compare-precision",
            help="The mixed precision measured against float32 (epoch time of every loss, test "
            "macro-F1 over 3 seeds on synthetic-cicids): auto (mixed_bfloat16 where the device "
            "computes it natively: a GPU, or a CPU with AVX512-BF16, AMX or Arm BF16; none "
            "elsewhere) | mixed_bfloat16 | mixed_float16 | none.",
        ),
    ] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Measure training speed against stock Keras, FLOP/s, CSV ingest and peak memory."""
    from pathlib import Path

    from lossbench.bench import run_bench
    from lossbench.losses import names
    from lossbench.training import configure_device

    chosen = parse_list(losses) if losses else names()
    unknown = [n for n in chosen if n not in names()]
    if unknown:
        raise InputError(f"--losses {','.join(unknown)}: unknown; see `lossbench losses`")
    if compare_precision not in ("auto", "none", "mixed_bfloat16", "mixed_float16"):
        raise InputError(
            f"--compare-precision {compare_precision!r}: expected auto, mixed_bfloat16, "
            "mixed_float16 or none"
        )
    device_desc = configure_device(device)
    log = (
        (lambda msg: common.err_console.print(msg, highlight=False))
        if not as_json
        else (lambda msg: None)
    )
    result = run_bench(
        Path(out),
        quick=quick,
        device=device_desc,
        losses=chosen,
        precision=precision,
        compare_precision=compare_precision,
        log=log,
    )
    if as_json:
        print_json(result)
        return
    folder = Path(result["folder"])
    common.console.print((folder / "bench.md").read_text(), markup=False, highlight=False)
    common.console.print(f"bench: {folder / 'bench.json'}")
