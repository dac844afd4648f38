"""`lossbench inspect` and `lossbench losses`: describe a dataset and the losses."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from lossbench import layout
from lossbench.cli import common
from lossbench.cli.common import app, print_json
from lossbench.cli.options import (
    WHOLE_DATASET,
    DataOpt,
    JsonOpt,
    PlotOpt,
    dataset_options,
    plot_path,
    with_options,
)
from lossbench.config import data_options
from lossbench.errors import InputError


@app.command()
@with_options(dataset_options)
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

    png = plot_path(out) if plot else None
    opts = data_options({**settings, **WHOLE_DATASET}, data=data, seed=0)
    info = inspect_dataset(opts)
    if png is not None:
        from lossbench.io import atomic_savefig
        from lossbench.report.figures import plot_class_distribution

        fig = plot_class_distribution(info["classes"], title=str(info.get("name", opts.data)))
        atomic_savefig(fig, png)
        info = {**info, "figure": str(png)}
    if as_json:
        print_json(info)
        return
    total = sum(info["classes"].values()) or 1
    table = Table(title=f"{info.get('name', opts.data)}: classes after preprocessing")
    table.add_column("class")
    table.add_column("count", justify="right")
    table.add_column("percent", justify="right")
    for name, count in sorted(info["classes"].items(), key=lambda kv: -kv[1]):
        table.add_row(escape(str(name)), f"{count:,}", f"{100 * count / total:.2f}%")
    common.console.print(table)
    common.console.print(_leakage_table(info["leakage"]))
    for title, rows in inspect_sections(info):
        grid = Table(title=title, title_justify="left", box=None, show_header=False)
        grid.add_column("what", style="dim", no_wrap=True)
        grid.add_column("value", overflow="fold")
        for what, value in rows:
            grid.add_row(what, escape(value))
        common.console.print(grid)
    if png is not None:
        common.console.print(f"figure: {png}", soft_wrap=True, highlight=False)
    for text in info.get("warnings") or []:
        common.err_console.print(f"warning: {escape(str(text))}", highlight=False)


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
@with_options(dataset_options)
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
    ] = layout.LOSS_SHAPES_PLOT,
) -> None:
    """List the available losses: name, formula, defaults, source (and what differs from it),
    the posterior used for calibration (decisions are argmax z), the model head and the ranges
    `compare --tune` searches (a loss without any gets its trials of learning rate).
    With --plot, draw each loss's value against p = softmax(z)_y for a minority-class and a
    majority-class sample (paper Fig. 1) into --out, and the values into the .csv beside it."""
    if plot:
        _plot_loss_shapes(settings, losses, data, param, plot_path(out), as_json)
        return
    if data is not None or param:
        raise InputError(
            "--data and --param choose what `lossbench losses --plot` draws: add --plot"
        )
    from lossbench.loss_catalog import read_catalog  # data: no Keras, no TensorFlow

    catalog = read_catalog()
    rows, plugins = catalog["losses"], _plugin_rows()
    if as_json:  # one list: the built-ins, then the plugins (with their entry point)
        print_json(
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
    common.console.print(_losses_table("lossbench losses", rows, lr_only))
    if plugins:
        title = "plugins (entry-point group lossbench.losses; not in --losses all)"
        common.console.print(_losses_table(title, plugins, lr_only))


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
    losses: list[str],
    data: str | None,
    param: dict[str, Any] | None,
    png: Any,
    as_json: bool,
) -> None:
    """`losses --plot`: the figure and its CSV (`lossbench.experiment.draw_loss_shapes`)."""
    from lossbench.experiment import draw_loss_shapes
    from lossbench.losses import names
    from lossbench.losses.registry import resolve_methods

    # a user's [ALIAS=]MODULE:ATTR is registered under its run name, as compare does
    loss_list = names() if losses == ["all"] else resolve_methods(losses)
    opts = None if data is None else data_options({**settings, **WHOLE_DATASET}, data=data, seed=0)
    figure, values = draw_loss_shapes(loss_list, param or {}, opts, png)
    if as_json:
        print_json({"figure": figure, "values": values})
        return
    common.console.print(f"figure: {figure}", soft_wrap=True, highlight=False)
    common.console.print(f"values: {values}", soft_wrap=True, highlight=False)
