"""The `lossbench` command line: parse options, call the library, print. No ML logic here."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from inspect import Parameter, signature
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lossbench import __version__, choices
from lossbench.config import (
    RULES,
    check_setting,
    data_options,
    parse_list,
    resolve_settings,
    train_options,
)
from lossbench.errors import InputError

app = typer.Typer(
    name="lossbench",
    help="Benchmark training losses for imbalanced tabular classification.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
#: Width of the output when it goes to a pipe or a file: wide enough never to wrap a row or a path.
PIPE_WIDTH = 4096


def _console(stderr: bool = False) -> Console:
    """A rich console; on a pipe or a file it never wraps (rich would wrap at 80 columns)."""
    con = Console(stderr=stderr)
    if not con.is_terminal:
        con = Console(stderr=stderr, width=PIPE_WIDTH)
    return con


console = _console()
err_console = _console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"lossbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show version."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Show TensorFlow's and Ray's own log messages on stderr (hidden by default); "
            "accepted anywhere on the command line.",
        ),
    ] = False,
) -> None:
    """Benchmark training losses for imbalanced tabular classification."""


# ----------------------------------------------------------------------------------------------
# shared options

DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="CSV (.csv/.csv.gz), Parquet, folder of CSVs, or a built-in dataset "
        "(digits-lt, synthetic-cicids). Default: digits-lt.",
    ),
]
LabelColOpt = Annotated[
    str | None, typer.Option("--label-col", help="Label column (default: Label, else the last).")
]
PresetOpt = Annotated[
    choices.Preset, typer.Option("--preset", help="Dataset preset (auto: detect by column names).")
]
NanPolicyOpt = Annotated[
    choices.NanPolicy, typer.Option("--nan-policy", help="Rows with missing features.")
]
DropClassesOpt = Annotated[
    str | None,
    typer.Option(
        "--drop-classes",
        help="Comma-separated classes to drop (preset default: "
        "Heartbleed,Infiltration; pass '' to keep all).",
    ),
]
MergeOpt = Annotated[
    list[str] | None,
    typer.Option("--merge", help="Merge labels, e.g. --merge 'Web Attack=Web Attack*'."),
]
MinClassOpt = Annotated[
    int | None,
    typer.Option("--min-class-count", help="Drop, with a warning, classes with fewer rows."),
]
SampleFracOpt = Annotated[
    float | None, typer.Option("--sample-frac", help="Stratified subsample fraction (0, 1].")
]
SplitOpt = Annotated[str, typer.Option("--split", help="train,val,test fractions.")]
ScalerOpt = Annotated[choices.Scaler, typer.Option("--scaler", help="Feature scaling.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Bypass the prepared-array cache.")]
DedupeOpt = Annotated[
    bool, typer.Option("--dedupe", help="Drop exact duplicate rows (features and label) first.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for split, weights and batch order.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", help="TOML file whose keys mirror the flags.")
]


def _dataset_options(
    label_col: LabelColOpt = None,
    preset: PresetOpt = "auto",
    nan_policy: NanPolicyOpt = "drop",
    drop_classes: DropClassesOpt = None,
    merge: MergeOpt = None,
    min_class_count: MinClassOpt = None,
    no_cache: NoCacheOpt = False,
    dedupe: DedupeOpt = False,
) -> None:
    """How to read a dataset: the options `inspect`, `run` and `compare` share."""


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the option `name` was given (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is None or source.name != "DEFAULT"


def with_options(
    *groups: Callable[..., None],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the options of `groups` (functions whose signatures declare them, each
    declared once), after its own.

    The command is called with its own options and `settings`, the groups' options by name, all
    resolved once by `config.resolve_settings`: a flag given, else the `--config` file's value
    (where the command has --config), else the default, each validated whatever its source.
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [
            p for p in signature(command, eval_str=True).parameters.values() if p.name != "settings"
        ]
        shared = [p for g in groups for p in signature(g, eval_str=True).parameters.values()]
        params = [
            Parameter("ctx", Parameter.KEYWORD_ONLY, annotation=typer.Context),
            *(p.replace(kind=Parameter.KEYWORD_ONLY) for p in own + shared),
        ]

        @functools.wraps(command)
        def with_settings(ctx: typer.Context, **flags: Any) -> None:
            given = {name for name in flags if _on_command_line(ctx, name)}
            settings = resolve_settings(flags, given=given, config=flags.get("config"))
            command(settings=settings, **{p.name: settings.pop(p.name) for p in own})

        with_settings.__signature__ = signature(command).replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=None
        )
        with_settings.__annotations__ = {p.name: p.annotation for p in params}
        return with_settings

    return decorate


def _print_json(obj: Any) -> None:
    from lossbench.io import jsonable

    sys.stdout.write(json.dumps(jsonable(obj), indent=2, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------------
# inspect


#: `inspect` and `losses --plot --data` read the whole dataset, split as by default.
_WHOLE_DATASET = {
    "sample_frac": None,
    "split": "0.6,0.2,0.2",
    "scaler": "minmax",
    "positive_label": None,
}
PlotOpt = Annotated[bool, typer.Option("--plot", help="Also draw the figure into --out (PNG).")]


def _plot_path(out: str) -> Any:
    """The PNG file of `--out`, checked before anything is computed: a .png name in a folder
    that exists, and not a folder itself."""
    from pathlib import Path

    path = Path(out)
    if path.is_dir():
        raise InputError(f"--out {out!r}: is a folder; expected a .png file name")
    if path.suffix.lower() != ".png":
        raise InputError(f"--out {out!r}: expected a .png file name")
    if not path.parent.is_dir():
        raise InputError(f"--out {out!r}: the folder {str(path.parent)!r} does not exist")
    return path


@app.command()
@with_options(_dataset_options)
def inspect(
    settings: dict[str, Any],
    data: DataOpt = None,
    as_json: JsonOpt = False,
    plot: PlotOpt = False,
    out: Annotated[
        str, typer.Option("--out", help="With --plot: the PNG to write.")
    ] = "class_distribution.png",
) -> None:
    """Describe a dataset: class table, imbalance ratio, data-quality report, preset actions.
    With --plot, also draw the class distribution (paper Fig. 3) beside DWB's weight per class
    against p (paper Fig. 2) into --out."""
    from lossbench.data import inspect_dataset

    png = _plot_path(out) if plot else None
    opts = data_options({**settings, **_WHOLE_DATASET}, data=data, seed=0)
    info = inspect_dataset(opts)
    if png is not None:
        from lossbench.io import atomic_savefig
        from lossbench.report.figures import plot_class_distribution

        fig = plot_class_distribution(info["classes"], title=str(info.get("name", opts.data)))
        atomic_savefig(fig, png)
        info = {**info, "figure": str(png)}
    if as_json:
        _print_json(info)
        return
    total = sum(info["classes"].values()) or 1
    table = Table(title=f"{info.get('name', opts.data)}: classes after preprocessing")
    table.add_column("class")
    table.add_column("count", justify="right")
    table.add_column("percent", justify="right")
    for name, count in sorted(info["classes"].items(), key=lambda kv: -kv[1]):
        table.add_row(str(name), f"{count:,}", f"{100 * count / total:.3f}%")
    console.print(table)
    console.print(_leakage_table(info["leakage"]))
    for key, value in info.items():
        if key in ("classes", "leakage"):
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value, default=str)
        console.print(f"[bold]{key}[/bold]: {value}")


def _leakage_table(leakage: dict[str, Any]) -> Table:
    """Validation/test rows duplicating a training row, per class and in total."""
    table = Table(title="leakage: rows duplicating a training row (same / other label)")
    table.add_column("class")
    for split in ("val", "test"):
        table.add_column(f"{split} rows", justify="right")
        table.add_column(f"{split} duplicates", justify="right")
    rows = [
        (name, [leakage[s]["per_class"][name] for s in ("val", "test")])
        for name in leakage["val"]["per_class"]
    ]
    rows.append(("total", [leakage[s] for s in ("val", "test")]))
    for name, counts in rows:
        cells = []
        for c in counts:
            cells += [
                f"{c['rows']:,}",
                f"{c['duplicates']:,} ({c['same_label']:,} / {c['conflicting_label']:,})",
            ]
        table.add_row(str(name), *cells)
    return table


# ----------------------------------------------------------------------------------------------
# losses


def defaults_text(defaults: dict[str, Any]) -> str:
    """A loss's defaults as they are written in a TOML config (`weights="inverse", beta=0.999`,
    `alpha=null`), "–" when the loss has no parameters."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in defaults.items()) or "–"


def losses_markdown(rows: list[dict[str, Any]]) -> str:
    """The `lossbench losses` table in Markdown (as in the README)."""
    lines = [
        "| name | formula | defaults | source | posterior / head |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = [
            f"`{row['name']}`",
            row["formula"],
            defaults_text(row["defaults"]),
            row["source"],
            f"{row['posterior']} / {row['head']}",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


@app.command()
@with_options(_dataset_options)
def losses(
    settings: dict[str, Any],
    as_json: JsonOpt = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table in Markdown (as in the README).")
    ] = False,
    plot: Annotated[
        bool, typer.Option("--plot", help="Draw the figure into --out (PNG) instead of the table.")
    ] = False,
    losses: Annotated[
        str,
        typer.Option("--losses", help="With --plot: the losses to draw (comma-separated, or all)."),
    ] = "ce,wce,focal,dwb",
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="With --plot: the data whose training class counts the losses are built from "
            "(as for `run`). Default: the paper's illustration, two classes with imbalance ratio e "
            "(DWB weight 2 for the minority class).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="With --plot: loss parameter KEY=VALUE or LOSS.KEY=VALUE."),
    ] = None,
    out: Annotated[
        str, typer.Option("--out", help="With --plot: the PNG to write (values: the .csv beside).")
    ] = "loss_shape.png",
) -> None:
    """List the available losses: name, formula, defaults, source (and what differs from it),
    the posterior used for calibration (decisions are argmax z), the model head and the ranges
    `compare --tune` searches (a loss without any gets its trials of learning rate).
    With --plot, draw each loss's value against p = softmax(z)_y for a minority-class and a
    majority-class sample (paper Fig. 1) into --out, and the values into the .csv beside it."""
    if plot:
        _plot_loss_shapes(settings, losses, data, param, _plot_path(out), as_json)
        return
    if data is not None or param:
        raise InputError(
            "--data and --param choose what `lossbench losses --plot` draws: add --plot"
        )
    from lossbench.losses import describe
    from lossbench.tuning import LR_SEARCH

    rows = describe()
    if as_json:
        _print_json(rows)
        return
    if markdown:
        sys.stdout.write(losses_markdown(rows))
        return
    table = Table(title="lossbench losses", show_lines=True)
    for col in ("name", "formula", "defaults", "source", "posterior / head", "tuned (--tune)"):
        table.add_column(col, overflow="fold")
    lr_only = "lr (learning rate): log-uniform [{:g}, {:g}]".format(*LR_SEARCH)
    for row in rows:
        cells = (
            row["name"],
            row["formula"],
            defaults_text(row["defaults"]),
            row["source"],
            f"{row['posterior']} / {row['head']}",
            "; ".join(f"{k}: {v}" for k, v in row["search"].items()) or lr_only,
        )
        table.add_row(*map(escape, cells))
    console.print(table)


def _plot_loss_shapes(
    settings: dict[str, Any],
    losses: str,
    data: str | None,
    param: list[str] | None,
    png: Any,
    as_json: bool,
) -> None:
    """`losses --plot`: the figure and its CSV (`lossbench.experiment.draw_loss_shapes`)."""
    from lossbench.config import parse_params
    from lossbench.experiment import draw_loss_shapes
    from lossbench.losses import names

    loss_list = names() if losses.strip() == "all" else parse_list(losses)
    if not loss_list:
        raise InputError("--losses: give at least one loss")
    opts = None if data is None else data_options({**settings, **_WHOLE_DATASET}, data=data, seed=0)
    figure, values = draw_loss_shapes(loss_list, parse_params(param), opts, png)
    if as_json:
        _print_json({"figure": figure, "values": values})
        return
    console.print(f"figure: {figure}", soft_wrap=True, highlight=False)
    console.print(f"values: {values}", soft_wrap=True, highlight=False)


# ----------------------------------------------------------------------------------------------
# training options shared by run and compare

EpochsOpt = Annotated[int, typer.Option("--epochs", help="Maximum epochs (>= 1).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Mini-batch size (>= 1).")]
LrOpt = Annotated[float, typer.Option("--lr", help="Adam learning rate.")]
ModelOpt = Annotated[
    choices.ModelName, typer.Option("--model", help="Network: cnn1d (paper Fig. 4) or mlp.")
]
DeviceOpt = Annotated[choices.Device, typer.Option("--device", help="Training device.")]
OutOpt = Annotated[str, typer.Option("--out", help="Results folder.")]
PatienceOpt = Annotated[
    int,
    typer.Option(
        "--patience", help="Early-stopping patience on the --select criterion; 0 disables."
    ),
]
SelectOpt = Annotated[
    choices.Select,
    typer.Option(
        "--select",
        help="Selection criterion on the validation split, the same for every loss (validation "
        "NLL breaks ties of macro_f1).",
    ),
]
FarOpt = Annotated[
    str,
    typer.Option(
        "--far", help="False-alarm-rate targets of the operating points, e.g. 0.01,0.001."
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="Loss parameter KEY=VALUE (or LOSS.KEY=VALUE in compare)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result paths.")]
ClipOpt = Annotated[float, typer.Option("--clipnorm", help="Global-norm gradient clip; 0 = off.")]
PositiveOpt = Annotated[
    str | None, typer.Option("--positive-label", help="Binary tasks: the positive class.")
]
TensorboardOpt = Annotated[
    bool, typer.Option("--tensorboard", help="Also write TensorBoard logs into the run folder.")
]
JitOpt = Annotated[choices.Jit, typer.Option("--jit", help="XLA compilation of the train step.")]
PrecisionOpt = Annotated[
    choices.Precision,
    typer.Option(
        "--precision",
        help="Keras mixed precision for the network (losses and metrics stay float32).",
    ),
]


def _training_options(
    sample_frac: SampleFracOpt = None,
    split: SplitOpt = "0.6,0.2,0.2",
    scaler: ScalerOpt = "minmax",
    positive_label: PositiveOpt = None,
    model: ModelOpt = "cnn1d",
    epochs: EpochsOpt = 200,
    batch_size: BatchOpt = 256,
    lr: LrOpt = 1e-3,
    clipnorm: ClipOpt = 1.0,
    patience: PatienceOpt = 20,
    select: SelectOpt = "macro_f1",
    far: FarOpt = "0.01,0.001",
    device: DeviceOpt = "auto",
    jit: JitOpt = "auto",
    precision: PrecisionOpt = "float32",
    param: ParamOpt = None,
    out: OutOpt = "results",
    tensorboard: TensorboardOpt = False,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The other options `run` and `compare` share (after `_dataset_options`)."""


class RichReporter:
    """Draws rich progress bars for the runs of an experiment and the epochs of each run."""

    def __init__(self, quiet: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=quiet,
            transient=False,
        )
        self.runs_task = None
        self.epoch_task = None
        self.tune_task = None
        self.results: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> RichReporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def experiment_started(self, exp_dir: Any, runs: list[str]) -> None:
        if self.runs_task is None:
            self.runs_task = self.progress.add_task("runs", total=len(runs), info=str(exp_dir))
        else:  # a compare over several datasets: one bar for all their runs
            total = self.progress.tasks[self.progress.task_ids.index(self.runs_task)].total or 0
            self.progress.update(self.runs_task, total=total + len(runs), info=str(exp_dir))

    def warning(self, message: str) -> None:
        self.progress.console.print(
            f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True
        )

    def trial_finished(self, method: str, done: int, total: int, row: dict[str, Any]) -> None:
        if self.tune_task is None:
            self.tune_task = self.progress.add_task("tuning", total=total, info="")
        info = f"{method} trial {row['number']}: {row['state'].lower()} {row['value']:.4f}"
        self.progress.update(self.tune_task, completed=done, total=total, info=info)

    def run_skipped(self, name: str) -> None:
        if self.runs_task is not None:
            self.progress.update(self.runs_task, advance=1, info=f"{name}: done earlier, skipped")

    def run_started(self, name: str, epochs: int) -> None:
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
        self.epoch_task = self.progress.add_task(f"  {name}", total=max(epochs, 1), info="")

    def epoch_end(self, name: str, row: dict[str, Any]) -> None:
        info = (
            f"loss {row['loss']:.4f} val_loss {row['val_loss']:.4f} "
            f"val F1 {row['val_macro_f1']:.3f}"
        )
        self.progress.update(self.epoch_task, advance=1, info=info)

    def run_finished(self, name: str, metrics: dict[str, Any]) -> None:
        self.results[name] = metrics
        if self.epoch_task is not None:
            task = self.progress.tasks[self.progress.task_ids.index(self.epoch_task)]
            self.progress.update(self.epoch_task, completed=task.total)
        if self.runs_task is not None:
            status = metrics.get("status")
            info = f"{name}: {status}" + (f" ({metrics.get('reason')})" if status != "ok" else "")
            self.progress.update(self.runs_task, advance=1, info=info)


def _headline_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title=title,
        caption="macro averages on the test split",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    cols = ["macro_precision", "macro_recall", "macro_f1", "macro_auroc", "gmean", "brier", "ece"]
    heads = ["prec", "recall", "F1", "AUROC", "G-mean", "Brier", "ECE"]
    table.add_column("run", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for head in heads:
        table.add_column(head, justify="right", no_wrap=True)
    for m in rows:
        s = m.get("summary") or {}
        table.add_row(
            str(m.get("name")),
            str(m.get("status")),
            *[f"{s[c]:.3f}" if isinstance(s.get(c), float) else "-" for c in cols],
        )
    return table


def _print_run_warnings(rows: list[dict[str, Any]]) -> None:
    """The runs' warnings (e.g. "predicts only 1 of 2 classes"), one line each."""
    for m in rows:
        for text in m.get("warnings") or []:
            err_console.print(f"warning: {m.get('name')}: {text}", highlight=False, soft_wrap=True)


@app.command()
@with_options(_dataset_options, _training_options)
def run(
    settings: dict[str, Any],
    loss: Annotated[str, typer.Option("--loss", help="Loss name (see `lossbench losses`).")] = "ce",
    data: DataOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Train one network with one loss and write its run folder (metrics, plots, model)."""
    from pathlib import Path

    from lossbench.config import RunConfig, parse_params

    dopts = data_options(settings, data=data, seed=seed)
    topts = train_options(settings, seed=seed)
    from lossbench.experiment import data_for_seed, single_run

    cfg = RunConfig(loss=loss, params=parse_params(settings["param"]), data=dopts, train=topts)
    prepared = data_for_seed(dopts, seed)  # before TensorFlow: their peak memory never adds up
    from lossbench.train import configure_device

    device_desc = configure_device(topts.device)
    quiet, as_json = settings["quiet"], settings["as_json"]
    with RichReporter(quiet or as_json) as reporter:
        run_dir, metrics = single_run(
            cfg, out=Path(settings["out"]), device=device_desc, reporter=reporter, data=prepared
        )
    if as_json:
        _print_json({"run_dir": str(run_dir), **metrics})
    elif quiet:
        typer.echo(str(run_dir))
    else:
        console.print(_headline_table(f"{run_dir.parent.parent.name}", [metrics]))
        _print_run_warnings([metrics])
        console.print(f"run folder: {run_dir}", soft_wrap=True)
    if metrics.get("status") != "ok":
        err_console.print(
            f"run failed: {metrics.get('reason')} (see {run_dir / 'log.txt'})",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_RUNS_FAILED)


@app.command()
@with_options(_dataset_options, _training_options)
def compare(
    settings: dict[str, Any],
    losses: Annotated[
        str,
        typer.Option(
            "--losses",
            help="Comma-separated losses or data-level baselines (ce+ros, ce+rus, ce+smote, "
            "ce+balanced-batches), or 'all' (the losses).",
        ),
    ] = "ce,wce,focal,cb,dwb",
    seeds: Annotated[
        str, typer.Option("--seeds", help="Comma-separated seeds (3 or more for a test).")
    ] = "0,1,2",
    baselines: Annotated[
        str, typer.Option("--baselines", help="scikit-learn baselines: lr,rf,hgb.")
    ] = "",
    fresh: Annotated[bool, typer.Option("--fresh", help="Start a new experiment.")] = False,
    plots: Annotated[
        choices.Plots,
        typer.Option(
            "--plots",
            help="summary: the summary's plots only (each run's: `lossbench report --plots "
            "runs`); runs: each run's plots too.",
        ),
    ] = "summary",
    tune: Annotated[
        int,
        typer.Option(
            "--tune",
            help="Tune every method with N trials on seed 0's validation split (Optuna TPE, "
            "objective: the --select criterion), then add '<method>@tuned' rows beside the "
            "defaults; 0 = no tuning.",
        ),
    ] = 0,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune/--no-prune",
            help="With --tune: stop trials below the median of the completed ones at the same "
            "epoch (Optuna MedianPruner after --patience epochs, the same for every method).",
        ),
    ] = True,
    executor: Annotated[
        choices.Executor, typer.Option("--executor", help="Where the runs train.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (with --executor ray).")
    ] = None,
    gpus_per_run: Annotated[
        float, typer.Option("--gpus-per-run", help="GPUs per Ray task (>= 0).")
    ] = 0,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            help="As for `run`; repeat --data to compare on several datasets (one experiment "
            "each). Default: digits-lt.",
        ),
    ] = None,
) -> None:
    """Train one run per (loss, seed) on the same split and write the paper's tables and report."""
    from pathlib import Path

    from lossbench.config import Settings, parse_params
    from lossbench.experiment import compare_datasets
    from lossbench.losses import names

    loss_list = names() if losses.strip() == "all" else parse_list(losses)
    if not loss_list:
        raise InputError("--losses: give at least one loss")
    try:
        seed_list = [int(s) for s in parse_list(str(seeds))]
    except ValueError:
        raise InputError(f"--seeds {seeds!r}: expected integers like 0,1,2") from None
    seed0 = seed_list[0] if seed_list else 0
    datasets = data if isinstance(data, list) else [data]
    if len(datasets) == 0:
        datasets = [None]
    cfgs = [
        Settings(
            data=data_options(settings, data=d, seed=seed0),
            train=train_options(settings, seed=seed0),
        )
        for d in datasets
    ]
    from lossbench.train import configure_device

    device_desc = configure_device(cfgs[0].train.device)
    quiet, as_json, out = settings["quiet"], settings["as_json"], Path(settings["out"])
    with RichReporter(quiet or as_json) as reporter:
        exp_dirs = compare_datasets(
            cfgs,
            losses=loss_list,
            baselines=parse_list(baselines),
            seeds=seed_list,
            params=parse_params(settings["param"]),
            out=out,
            fresh=fresh,
            device=device_desc,
            reporter=reporter,
            executor=executor,
            executor_options={"address": address, "gpus_per_run": gpus_per_run}
            if executor == "ray"
            else None,
            run_plots=plots == "runs",
            tune=tune,
            prune=prune,
        )
    board = _compare_leaderboard(exp_dirs, out) if len(exp_dirs) > 1 else None
    if as_json:
        payloads = [_experiment_payload(d) for d in exp_dirs]
        _print_json(payloads[0] if len(payloads) == 1 else payloads)
    else:
        for exp_dir in exp_dirs:
            _print_experiment(exp_dir, quiet=quiet)
        if board is not None and quiet:
            typer.echo(str(board))
        elif board is not None:
            console.print(f"leaderboard: {board}", soft_wrap=True)
    _exit_if_runs_failed(exp_dirs)


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
        err_console.print(
            f"run failed: {exp_dir / 'runs' / str(m.get('name'))}: {m.get('status')}: "
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
        err_console.print(f"[yellow]warning:[/yellow] no leaderboard: {exc}", highlight=False)
        return None
    return written["leaderboard.html"]


def _experiment_payload(exp_dir: Any) -> dict[str, Any]:
    """The `--json` summary of an experiment: paths, runs, the average, per-class and calibration
    tables (undefined per-class values are null, counted in `<metric>_undefined`)."""
    from lossbench.report import summary_tables
    from lossbench.store import load_metrics

    tables = summary_tables(exp_dir)
    return {
        "experiment": str(exp_dir),
        "report": str(exp_dir / "summary" / "report.html"),
        "runs": [
            {k: r.get(k) for k in ("name", "status", "reason", "summary")}
            for r in load_metrics(exp_dir)
        ],
        "table_average": tables["average"].to_dict(orient="records"),
        "table_per_class": tables["per_class"].to_dict(orient="records"),
        "table_calibration": tables["calibration"].to_dict(orient="records"),
    }


def _print_experiment(exp_dir: Any, *, quiet: bool) -> None:
    from lossbench.store import load_metrics

    summary = exp_dir / "summary"
    if quiet:
        typer.echo(str(exp_dir))
        typer.echo(str(summary / "report.html"))
        return
    runs = load_metrics(exp_dir)
    console.print(_headline_table(exp_dir.name, runs))
    _print_run_warnings(runs)
    md = summary / "table_average.md"
    if md.exists():
        console.print()
        console.print(md.read_text(), markup=False, highlight=False, soft_wrap=True)
    md = summary / "table_calibration.md"
    if md.exists():
        console.print(md.read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"experiment: {exp_dir}", soft_wrap=True, highlight=False)
    console.print(f"tables:     {summary}", soft_wrap=True, highlight=False)
    console.print(f"plots:      {summary / 'plots'}", soft_wrap=True, highlight=False)
    console.print(f"report:     {summary / 'report.html'}", soft_wrap=True, highlight=False)


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
    from lossbench.store import read_experiment_meta, run_status

    exp_dir = Path(results_dir)
    draw_runs = plots == "runs"
    read_experiment_meta(exp_dir)
    for run_dir in sorted((exp_dir / "runs").glob("*")):
        if run_status(run_dir) == "done":
            note = reevaluate_run(run_dir)
            if note is not None and not as_json:
                err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
            if draw_runs:
                run_plots(run_dir)
        elif run_status(run_dir) == "unreadable":
            err_console.print(
                f"[yellow]warning:[/yellow] {run_dir}: {run_problem(run_dir)}; left out of the "
                "tables (the next compare trains it again)",
                highlight=False,
                soft_wrap=True,
            )
    build_summary(exp_dir)
    if as_json:
        _print_json(_experiment_payload(exp_dir))
    else:
        _print_experiment(exp_dir, quiet=quiet)


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
        _print_json(
            {
                "folder": str(folder),
                "average_ranks": ranks.to_dict(orient="records"),
                "friedman": friedman.reset_index().to_dict(orient="records"),
            }
        )
        return
    if not quiet:
        n = int(friedman["n_datasets"].max())
        table = Table(title=f"Average rank over {n} datasets (1 = best)", box=box.SIMPLE_HEAD)
        table.add_column("method")
        wide = ranks.pivot(index="method", columns="metric", values="avg_rank")
        metrics = list(friedman.index)
        for metric in metrics:
            table.add_column(metric, justify="right")
        order = wide[metrics[0]].sort_values(kind="stable").index
        for method in order:
            table.add_row(method, *(f"{wide.loc[method, m]:.2f}" for m in metrics))
        table.add_section()
        table.add_row("Friedman p", *(f"{friedman.loc[m, 'p_value']:.3g}" for m in metrics))
        console.print(table)
    if quiet:
        typer.echo(str(folder / "leaderboard.html"))
    else:
        console.print(f"leaderboard: {folder / 'leaderboard.html'}")


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
            "macro-F1 over 3 seeds on synthetic-cicids): mixed_bfloat16 | mixed_float16 | none.",
        ),
    ] = "mixed_bfloat16",
    as_json: JsonOpt = False,
) -> None:
    """Measure training speed against stock Keras, FLOP/s, CSV ingest and peak memory."""
    from pathlib import Path

    from lossbench.bench import run_bench
    from lossbench.losses import names
    from lossbench.train import configure_device

    chosen = parse_list(losses) if losses else names()
    unknown = [n for n in chosen if n not in names()]
    if unknown:
        raise InputError(f"--losses {','.join(unknown)}: unknown; see `lossbench losses`")
    if compare_precision not in ("none", "mixed_bfloat16", "mixed_float16"):
        raise InputError(
            f"--compare-precision {compare_precision!r}: expected mixed_bfloat16, "
            "mixed_float16 or none"
        )
    device_desc = configure_device(device)
    log = (
        (lambda msg: err_console.print(msg, highlight=False)) if not as_json else (lambda msg: None)
    )
    result = run_bench(
        Path(out),
        quick=quick,
        device=device_desc,
        losses=chosen,
        precision=precision,
        compare_precision=None if compare_precision == "none" else compare_precision,
        log=log,
    )
    if as_json:
        _print_json(result)
        return
    folder = Path(result["folder"])
    console.print((folder / "bench.md").read_text(), markup=False, highlight=False)
    console.print(f"bench: {folder / 'bench.json'}")


# ----------------------------------------------------------------------------------------------
# entry point


def _quiet_tensorflow_import() -> None:
    """Import the training layer (the one module that imports TensorFlow) with TensorFlow's C++
    start-up chatter (absl/oneDNN notices) kept off stderr."""
    if "tensorflow" in sys.modules:
        return
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (e.g. captured by a test runner)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import lossbench.train  # noqa: F401
    except Exception:
        pass  # the real import, where it is needed, raises with its message visible
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _usage_message(exc: typer.TyperException, args: list[str]) -> str:
    """One line for a usage error, naming the option and the value given when there is one; a
    value outside an option's choices gets the config layer's message (as from a TOML file)."""
    msg = " ".join(exc.format_message().split())
    param = getattr(exc, "param", None)
    if isinstance(exc, typer.BadParameter) and param is not None and getattr(param, "opts", None):
        value = None
        for i, arg in enumerate(args):
            for name in param.opts:
                if arg == name and i + 1 < len(args):
                    value = args[i + 1]
                elif arg.startswith(name + "="):
                    value = arg.split("=", 1)[1]
        rule = RULES.get(param.name or "")
        if value is not None and rule is not None and rule.kind == "choice":
            try:
                check_setting(param.name, value)
            except InputError as bad:
                return str(bad)
        if value is not None:
            msg = f"{param.opts[0]} {value!r}: {' '.join(exc.message.split())}"
    path = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "lossbench"
    return f"{msg} (see `{path} --help`)"


#: errno values of an environment the user can fix (permissions, a read-only or full disk).
_ENVIRONMENT_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.EMFILE,
}


def _quiet_libraries() -> None:
    """Keep TensorFlow's and Ray's own log lines (C++ notices, retracing warnings) off stderr."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _crash_log(exc: BaseException) -> str:
    """Write the traceback of an internal error to a log file; returns its path."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    fd, path = tempfile.mkstemp(prefix="lossbench-error-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"lossbench {__version__}: {' '.join(sys.argv)}\n{text}")
    return path


def _fail(message: str) -> None:
    err_console.print(
        f"[red]error:[/red] {' '.join(message.split())}", highlight=False, soft_wrap=True
    )


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point and its exit codes: 0 success; 2 bad input or environment (one
    line on stderr); 3 `run`/`compare` finished but a run failed; 1 an internal error (a bug:
    one line on stderr, the traceback in a log file)."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args[: args.index("--")] if "--" in args else "--verbose" in args
    if verbose:
        args = [a for a in args if a != "--verbose"]
    else:
        _quiet_libraries()
    if not verbose and args and args[0] in ("run", "compare", "bench", "losses"):
        _quiet_tensorflow_import()
    try:
        result = app(args=args, prog_name="lossbench", standalone_mode=False)
    except InputError as exc:
        _fail(str(exc))
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except typer.TyperException as exc:  # usage errors: unknown option, bad value type, ...
        if type(exc).__name__ == "NoArgsIsHelpError":  # as Typer tells it (no public name)
            exc.show()
            return 0
        _fail(_usage_message(exc, args))
        return 2
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            return _internal_error(exc, verbose)
        where = exc.filename or ""
        _fail(f"{where}: {exc.strerror or exc}" if where else f"{exc.strerror or exc}")
        return 2
    except Exception as exc:
        return _internal_error(exc, verbose)
    return result if isinstance(result, int) else 0


def _internal_error(exc: Exception, verbose: bool) -> int:
    """A bug: one line on stderr naming the log file that holds the traceback; exit code 1."""
    try:
        where = f"traceback in {_crash_log(exc)}"
    except OSError:
        where = "traceback below"
        verbose = True
    if verbose:
        import traceback

        traceback.print_exception(exc)
    _fail(f"internal error (a bug in lossbench): {type(exc).__name__}: {exc} ({where})")
    return 1


def run_main() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run_main()
