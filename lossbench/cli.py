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

from lossbench import choices
from lossbench._version import __version__
from lossbench.config import (
    DEFAULTS,
    RULES,
    check_setting,
    data_options,
    parse_list,
    resolve_settings,
)
from lossbench.errors import InputError
from lossbench.progress import RichReporter


def _no_type_after_flags() -> None:
    """Typer 0.29 prints `<bool>` after options that take no value (`--quiet <bool>`), as if
    they wanted one; its rich help shows nothing there for a flag once this returns None."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "lossbench_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.lossbench_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_no_type_after_flags()

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
    """A rich console as wide as the terminal; on a pipe or a file as wide as $COLUMNS says when
    it is set, else it never wraps (rich would wrap at 80 columns)."""
    con = Console(stderr=stderr)
    if not con.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
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
TaskOpt = Annotated[
    choices.Task,
    typer.Option(
        "--task",
        help="binary: the negative class (--negative, default BENIGN) against every other class "
        "merged into 'attack' (zero-day and cross-dataset detection).",
    ),
]
NegativeOpt = Annotated[
    str | None, typer.Option("--negative", help="--task binary: the negative class (BENIGN).")
]
SplitByOpt = Annotated[
    str,
    typer.Option(
        "--split-by",
        help="random (stratified); order (row order); time[:COLUMN] (by timestamp); "
        "group:COL[,COL] (every group in one split); files:TRAIN;VAL;TEST (file-name globs).",
    ),
]
TestDataOpt = Annotated[
    str | None,
    typer.Option(
        "--test-data",
        help="Cross-dataset test: train and validate on --data, test on this file or folder.",
    ),
]
LabelMapOpt = Annotated[
    list[str] | None,
    typer.Option("--label-map", help="Rename --test-data labels, e.g. 'DDOS attack-HOIC=DDoS'."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for split, weights and batch order.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", help="TOML file whose keys mirror the flags.")
]


def _dataset_options(
    label_col: LabelColOpt = DEFAULTS["label_col"],
    preset: PresetOpt = DEFAULTS["preset"],
    nan_policy: NanPolicyOpt = DEFAULTS["nan_policy"],
    drop_classes: DropClassesOpt = DEFAULTS["drop_classes"],
    merge: MergeOpt = DEFAULTS["merge"],
    min_class_count: MinClassOpt = DEFAULTS["min_class_count"],
    no_cache: NoCacheOpt = DEFAULTS["no_cache"],
    dedupe: DedupeOpt = DEFAULTS["dedupe"],
    task: TaskOpt = DEFAULTS["task"],
    negative: NegativeOpt = DEFAULTS["negative"],
    split_by: SplitByOpt = DEFAULTS["split_by"],
    test_data: TestDataOpt = DEFAULTS["test_data"],
    label_map: LabelMapOpt = DEFAULTS["label_map"],
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
        table.add_row(escape(str(name)), f"{count:,}", f"{100 * count / total:.2f}%")
    console.print(table)
    console.print(_leakage_table(info["leakage"]))
    for title, rows in inspect_sections(info):
        grid = Table(title=title, title_justify="left", box=None, show_header=False)
        grid.add_column("what", style="dim", no_wrap=True)
        grid.add_column("value", overflow="fold")
        for what, value in rows:
            grid.add_row(what, escape(value))
        console.print(grid)
    if png is not None:
        console.print(f"figure: {png}", soft_wrap=True, highlight=False)
    for text in info.get("warnings") or []:
        err_console.print(f"warning: {escape(str(text))}", highlight=False)


def _names(items: Any, limit: int = 12) -> str:
    """'a, b, c' (the first `limit`, then 'and N more'), or 'none'."""
    items = list(items or [])
    head = ", ".join(map(str, items[:limit]))
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return (head + more) or "none"


def inspect_sections(info: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """`lossbench inspect` as readable sections of (what, value) lines, numbers rounded."""
    from lossbench.experiment import preset_drops

    dropped = info.get("dropped") or {}
    dup = info.get("duplicates") or {}
    sizes = (info.get("split") or {}).get("sizes") or []
    fractions = (info.get("split") or {}).get("fractions") or []
    dataset = [
        ("name", str(info.get("name"))),
        ("sources", _names(info.get("sources"), 3)),
        ("preset", str(info.get("preset"))),
        ("label column", str(info.get("label_col"))),
        ("rows", f"{info.get('n_rows_raw', 0):,} loaded, {info.get('n_rows', 0):,} kept"),
        (
            "columns",
            f"{info.get('n_columns_raw', 0):,} loaded, {info.get('n_features', 0):,} features used",
        ),
        ("classes", f"{info.get('n_classes')}"),
        ("imbalance ratio", f"{info.get('imbalance_ratio', 0):.2f} (largest / smallest class)"),
    ]
    if sizes:
        parts = [f"{n:,} ({f:g})" for n, f in zip(sizes, fractions, strict=False)]
        dataset.append(("split train / val / test", " / ".join(parts)))
    quality = [
        ("missing cells", f"{info.get('n_missing', 0):,}"),
        ("infinite cells", f"{info.get('n_infinite', 0):,}"),
        ("rows with a missing or infinite feature", f"{info.get('rows_with_missing', 0):,}"),
        (
            "duplicates, as loaded",
            f"{info.get('n_duplicate_rows', 0):,} extra copies of a row (features and label, "
            "before preprocessing)",
        ),
    ]
    if dup:
        quality.append(
            (
                "duplicates, after preprocessing",
                f"{dup.get('rows_involved', 0):,} rows have an identical twin; "
                f"{dup.get('extra_copies', 0):,} of them are extra copies, the rows --dedupe "
                "removes"
                + (" (done)" if info.get("dedupe") else "")
                + ". They differ from the count as loaded because preprocessing drops rows and "
                "columns first.",
            )
        )
    prep = []
    if dropped.get("columns"):
        prep.append(("dropped columns", _names(dropped["columns"])))
    prep += [
        ("dropped", line.removeprefix("dropped "))
        for line in preset_drops(info)
        if "constant" not in line
    ]
    if info.get("merged"):
        merged = "; ".join(f"{k} <- {_names(v)}" for k, v in info["merged"].items())
        prep.append(("merged labels", merged))
    if info.get("onehot_columns"):
        prep.append(("one-hot encoded", _names(info["onehot_columns"])))
    constant = info.get("constant_columns") or []
    if constant:
        prep.append((f"constant features ({len(constant)})", _names(constant)))
    return [
        ("Dataset", dataset),
        ("Data quality", quality),
        ("Preprocessing", prep or [("changes", "none")]),
    ]


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
    from lossbench.loss_catalog import read_catalog  # data: no Keras, no TensorFlow

    catalog = read_catalog()
    rows, plugins = catalog["losses"], _plugin_rows()
    if as_json:  # one list: the built-ins, then the plugins (with their entry point)
        _print_json(
            [{**r, "section": "built-in"} for r in rows]
            + [{**r, "section": "plugins"} for r in plugins]
        )
        return
    if markdown:
        sys.stdout.write(losses_markdown(rows))
        if plugins:
            sys.stdout.write("\nPlugins (not in `--losses all`):\n\n")
            sys.stdout.write(losses_markdown([r for r in plugins if "error" not in r]))
        return
    lr_only = "lr (learning rate): log-uniform [{:g}, {:g}]".format(*catalog["lr_search"])
    console.print(_losses_table("lossbench losses", rows, lr_only))
    if plugins:
        title = "plugins (entry-point group lossbench.losses; not in --losses all)"
        console.print(_losses_table(title, plugins, lr_only))


def _plugin_rows() -> list[dict[str, Any]]:
    """The installed plugins' `describe` rows; the loss library (Keras) is imported only when
    some plugin is installed, so that `lossbench losses` answers without TensorFlow."""
    from importlib.metadata import entry_points

    if not entry_points(group="lossbench.losses"):  # losses.user.PLUGIN_GROUP (imports Keras)
        return []
    from lossbench.losses.registry import describe_plugins

    return describe_plugins()


def _losses_table(title: str, rows: list[dict[str, Any]], lr_only: str) -> Table:
    """The `lossbench losses` table of these rows, one section a loss (a plugin that failed to
    load: its error)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, pad_edge=False)
    table.add_column("field", style="dim", no_wrap=True)
    table.add_column("value", overflow="fold")
    for i, row in enumerate(rows):
        if i:
            table.add_section()
        table.add_row(f"[bold]{escape(row['name'])}[/bold]", "")
        if "error" in row:
            table.add_row("  error", escape(row["error"]))
            continue
        fields = (
            ("formula", row["formula"]),
            ("defaults", defaults_text(row["defaults"])),
            ("source", row["source"]),
            ("posterior", f"{row['posterior']} (head: {row['head']})"),
            ("--tune", "; ".join(f"{k}: {v}" for k, v in row["search"].items()) or lr_only),
        )
        for name, value in fields:
            table.add_row(f"  {name}", escape(value))
    return table


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
    from lossbench.losses.registry import resolve_methods

    # a user's [ALIAS=]MODULE:ATTR is registered under its run name, as compare does
    loss_list = names() if losses.strip() == "all" else resolve_methods(parse_list(losses))
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
    str,
    typer.Option(
        "--model",
        help="Network: cnn1d (paper Fig. 4), mlp, or your builder MODULE:ATTR "
        "(build(n_features, n_classes, **params) -> keras.Model of logits).",
    ),
]
ModelParamOpt = Annotated[
    list[str] | None,
    typer.Option("--model-param", help="Parameter KEY=VALUE of your --model MODULE:ATTR."),
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
MlflowOpt = Annotated[
    str | None,
    typer.Option(
        "--mlflow",
        metavar="[TRACKING_URI]",
        help="Also log the runs to MLflow: one run per lossbench run, nested under one per "
        "experiment (settings, per-epoch history, test metrics, tables and plots). Without a "
        "URI: a SQLite store in <out>/mlruns/. Needs the mlflow extra.",
    ),
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
    sample_frac: SampleFracOpt = DEFAULTS["sample_frac"],
    split: SplitOpt = DEFAULTS["split"],
    scaler: ScalerOpt = DEFAULTS["scaler"],
    positive_label: PositiveOpt = DEFAULTS["positive_label"],
    model: ModelOpt = DEFAULTS["model"],
    model_param: ModelParamOpt = DEFAULTS["model_param"],
    epochs: EpochsOpt = DEFAULTS["epochs"],
    batch_size: BatchOpt = DEFAULTS["batch_size"],
    lr: LrOpt = DEFAULTS["lr"],
    clipnorm: ClipOpt = DEFAULTS["clipnorm"],
    patience: PatienceOpt = DEFAULTS["patience"],
    select: SelectOpt = DEFAULTS["select"],
    far: FarOpt = DEFAULTS["far"],
    device: DeviceOpt = DEFAULTS["device"],
    jit: JitOpt = DEFAULTS["jit"],
    precision: PrecisionOpt = DEFAULTS["precision"],
    param: ParamOpt = DEFAULTS["param"],
    out: OutOpt = DEFAULTS["out"],
    tensorboard: TensorboardOpt = DEFAULTS["tensorboard"],
    mlflow: MlflowOpt = DEFAULTS["mlflow"],
    config: ConfigOpt = DEFAULTS["config"],
    quiet: QuietOpt = DEFAULTS["quiet"],
    as_json: JsonOpt = DEFAULTS["as_json"],
) -> None:
    """The other options `run` and `compare` share (after `_dataset_options`)."""


#: The command line being run (`main` sets it), recorded in experiment.json and the report.
_ARGV: list[str] = []


def _invocation(settings: dict[str, Any]) -> dict[str, Any]:
    """What the user typed: the exact command line, and the TOML file's name and content when
    --config was used."""
    import shlex
    from pathlib import Path

    out: dict[str, Any] = {"command_line": shlex.join(["lossbench", *_ARGV])}
    config = settings.get("config")
    if config:
        out["config_file"] = str(config)
        try:
            out["config_text"] = Path(config).read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
    return out


def fit_table(
    title: str,
    header: list[str],
    rows: list[list[str]],
    *,
    width: int,
    caption: str = "",
    full: str = "",
    keep: int = 1,
    bold: dict[str, set[int]] | None = None,
    footer: int = 0,
) -> Table:
    """A rich table whose cells never wrap and which is never wider than `width`: columns beyond
    what fits are dropped from the right (the first `keep` always stay), and the caption says
    which, and where the full table is (`full`). `bold`: column -> row positions to embolden;
    the last `footer` rows come after a rule."""
    columns = list(header)

    def build(cols: list[str], note: str) -> Table:
        table = Table(
            title=title,
            caption=" ".join(filter(None, [caption, note])) or None,
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
            title_justify="left",
            caption_justify="left",
        )
        for i, col in enumerate(cols):
            table.add_column(col, justify="left" if i < keep else "right", no_wrap=True)
        index = [header.index(c) for c in cols]
        for r, row in enumerate(rows):
            if footer and r == len(rows) - footer:
                table.add_section()
            cells = []
            for i in index:
                text = escape(str(row[i]))
                cells.append(
                    f"[bold]{text}[/bold]" if r in (bold or {}).get(header[i], ()) else text
                )
            table.add_row(*cells)
        return table

    note = ""
    while True:
        table = build(columns, note)
        measured = table.__rich_measure__(console, console.options.update_width(PIPE_WIDTH))
        if measured.maximum <= width or len(columns) <= keep + 1:
            return table
        columns.pop()
        dropped = [c for c in header if c not in columns]
        note = f"Not shown (terminal too narrow): {', '.join(dropped)}" + (
            f"; full table: {full}." if full else "."
        )


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
        width=console.width,
        caption="macro averages on the test split",
        full=full,
        keep=2,
    )


def _print_run_warnings(rows: list[dict[str, Any]]) -> None:
    """The runs' warnings (e.g. "predicts only 1 of 2 classes"), one each, wrapped at the
    terminal's width (they hold no path)."""
    for m in rows:
        for text in m.get("warnings") or []:
            err_console.print(
                f"warning: {escape(str(m.get('name')))}: {escape(text)}", highlight=False
            )


@app.command()
@with_options(_dataset_options, _training_options)
def run(
    settings: dict[str, Any],
    loss: Annotated[
        str,
        typer.Option(
            "--loss",
            help="Loss name (see `lossbench losses`) or your own: [ALIAS=]MODULE:ATTR "
            "(MODULE a module or a .py file).",
        ),
    ] = DEFAULTS["loss"],
    data: DataOpt = DEFAULTS["data"],
    seed: SeedOpt = DEFAULTS["seed"],
) -> None:
    """Train one network with one loss and write its run folder (metrics, plots, model)."""
    from lossbench.api import run_settings

    quiet, as_json = settings["quiet"], settings["as_json"]
    with RichReporter(quiet or as_json, err_console) as reporter:
        reporter.invocation = _invocation(settings)
        run_dir, metrics = run_settings(
            settings, loss=loss, data=data, seed=seed, reporter=reporter
        )
    _print_run_warnings([metrics])  # on stderr, under --quiet and --json too
    if as_json:
        _print_json({"run_dir": str(run_dir), **metrics})
    elif quiet:
        typer.echo(str(run_dir))
    else:
        console.print(_headline_table(f"{run_dir.parent.parent.name}", [metrics]))
        console.print(f"run folder: {run_dir}", soft_wrap=True)
    _log_mlflow([run_dir.parent.parent], settings, quiet=quiet or as_json)
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
            "ce+balanced-batches), your own losses as [ALIAS=]MODULE:ATTR, or 'all' (the "
            "eleven built-in losses).",
        ),
    ] = DEFAULTS["losses"],
    seeds: Annotated[
        str, typer.Option("--seeds", help="Comma-separated seeds (3 or more for a test).")
    ] = DEFAULTS["seeds"],
    baselines: Annotated[
        str,
        typer.Option(
            "--baselines",
            help="scikit-learn baselines: lr,rf,hgb; prior (the training class prior) and stump "
            "(a depth-1 tree on the best single feature) show how hard the task is.",
        ),
    ] = DEFAULTS["baselines"],
    fresh: Annotated[bool, typer.Option("--fresh", help="Start a new experiment.")] = DEFAULTS[
        "fresh"
    ],
    plots: Annotated[
        choices.Plots,
        typer.Option(
            "--plots",
            help="summary: the summary's plots only (each run's: `lossbench report --plots "
            "runs`); runs: each run's plots too.",
        ),
    ] = DEFAULTS["plots"],
    tune: Annotated[
        int,
        typer.Option(
            "--tune",
            help="Tune every method with N trials on seed 0's validation split (Optuna TPE, "
            "objective: the --select criterion), then add '<method>@tuned' rows beside the "
            "defaults; 0 = no tuning.",
        ),
    ] = DEFAULTS["tune"],
    prune: Annotated[
        bool,
        typer.Option(
            "--prune/--no-prune",
            help="With --tune: stop trials below the median of the completed ones at the same "
            "epoch (Optuna MedianPruner after --patience epochs, the same for every method).",
        ),
    ] = DEFAULTS["prune"],
    executor: Annotated[
        choices.Executor, typer.Option("--executor", help="Where the runs train.")
    ] = DEFAULTS["executor"],
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (with --executor ray).")
    ] = DEFAULTS["address"],
    gpus_per_run: Annotated[
        float, typer.Option("--gpus-per-run", help="GPUs per Ray task (>= 0).")
    ] = DEFAULTS["gpus_per_run"],
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            help="As for `run`; repeat --data to compare on several datasets (one experiment "
            "each). Default: digits-lt.",
        ),
    ] = DEFAULTS["data"],
) -> None:
    """Train one run per (loss, seed) on the same split and write the paper's tables and report."""
    from pathlib import Path

    from lossbench.api import compare_settings

    quiet, as_json, out = settings["quiet"], settings["as_json"], Path(settings["out"])
    with RichReporter(quiet or as_json, err_console) as reporter:
        reporter.invocation = _invocation(settings)
        exp_dirs = compare_settings(
            settings,
            losses=losses,
            seeds=seeds,
            baselines=baselines,
            fresh=fresh,
            plots=plots,
            tune=tune,
            prune=prune,
            executor=executor,
            address=address,
            gpus_per_run=gpus_per_run,
            data=data,
            reporter=reporter,
        )
    _log_mlflow(exp_dirs, settings, quiet=quiet or as_json)
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


def _log_mlflow(exp_dirs: list[Any], settings: dict[str, Any], *, quiet: bool) -> None:
    """`--mlflow`: log these experiments' runs (`api.log_mlflow`), one note line each."""
    from lossbench.api import log_mlflow

    for line in log_mlflow(exp_dirs, settings):
        if not quiet:
            err_console.print(f"note: {line}", highlight=False, soft_wrap=True)


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
        width=console.width,
        full=str(exp_dir / "summary" / f"table_{which}.md"),
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


def _print_experiment(exp_dir: Any, *, quiet: bool) -> None:
    summary = exp_dir / "summary"
    runs = _ordered_runs(exp_dir)
    _print_run_warnings(runs)  # on stderr, under --quiet too
    if quiet:
        typer.echo(str(exp_dir))
        typer.echo(str(summary / "report.html"))
        return
    console.print(_headline_table(exp_dir.name, runs, full=str(summary / "report.html")))
    if (summary / "table_average.csv").exists():
        console.print(
            _summary_rich_table(exp_dir, "average", "Macro-averaged test metrics (mean ± std)")
        )
        console.print(_summary_rich_table(exp_dir, "calibration", "Calibration (mean ± std)"))
    _print_tuning(exp_dir)
    console.print(f"experiment: {exp_dir}", soft_wrap=True, highlight=False)
    console.print(f"tables:     {summary}", soft_wrap=True, highlight=False)
    console.print(f"plots:      {summary / 'plots'}", soft_wrap=True, highlight=False)
    console.print(f"report:     {summary / 'report.html'}", soft_wrap=True, highlight=False)


def _print_tuning(exp_dir: Any) -> None:
    """`compare --tune`: per method, the chosen values and whether the defaults won."""
    from lossbench.report.tables import tuning_choices
    from lossbench.store import read_experiment_meta

    for choice in tuning_choices(read_experiment_meta(exp_dir)):
        console.print(
            f"tuned {escape(choice['method'])}: {escape(choice['text'])}",
            highlight=False,
            soft_wrap=False,
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
        err_console.print(f"[yellow]warning:[/yellow] {stray}", highlight=False, soft_wrap=True)
    ignored = set(stray_run_dirs(exp_dir))
    for run_dir in sorted(set((exp_dir / "runs").glob("*")) - ignored):
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
        console.print(
            fit_table(
                f"Average rank over {n} datasets (1 = best)",
                ["method", *metrics],
                rows,
                width=console.width,
                full=str(folder / "leaderboard.html"),
                bold=bold,
                footer=1,
            )
        )
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


def _bare_mlflow(args: list[str]) -> list[str]:
    """`--mlflow` with no URI after it (the last word, or another option next) means the default
    store: Click options take a value, so the default is written in."""
    if "--mlflow" not in args:
        return args
    from lossbench.tracking import DEFAULT

    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--mlflow" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(DEFAULT)
    return out


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
    """Keep TensorFlow's, Ray's and MLflow's own log lines (C++ notices, retracing warnings,
    database set-up) off stderr."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no INFO lines from --mlflow
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
    global console, err_console
    args = list(sys.argv[1:] if argv is None else argv)
    _ARGV[:] = args
    args = _bare_mlflow(args)
    console, err_console = _console(), _console(stderr=True)  # the terminal's width now
    verbose = "--verbose" in args[: args.index("--")] if "--" in args else "--verbose" in args
    if verbose:
        args = [a for a in args if a != "--verbose"]
    else:
        _quiet_libraries()
    if not verbose and args and args[0] in ("run", "compare", "bench"):
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
    from lossbench.malloc import limit_arenas

    limit_arenas()  # before TensorFlow's threads start: see lossbench.malloc
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run_main()
