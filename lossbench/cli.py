"""The `lossbench` command line: parse options, call the library, print. No ML logic here."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from lossbench import __version__
from lossbench.config import DataOptions, load_toml, parse_list, parse_split
from lossbench.errors import InputError

app = typer.Typer(
    name="lossbench",
    help="Benchmark training losses for imbalanced tabular classification.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


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
    str, typer.Option("--preset", help="cicids2017 | none | auto (detect by column names).")
]
NanPolicyOpt = Annotated[
    str, typer.Option("--nan-policy", help="Rows with missing features: drop | median | error.")
]
DropClassesOpt = Annotated[
    str | None,
    typer.Option("--drop-classes", help="Comma-separated classes to drop (preset default: "
                 "Heartbleed,Infiltration; pass '' to keep all)."),
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
ScalerOpt = Annotated[str, typer.Option("--scaler", help="minmax | standard.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Bypass the prepared-array cache.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for split, weights and batch order.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", help="TOML file whose keys mirror the flags.")
]


def data_options(
    *,
    data: str | None,
    label_col: str | None,
    preset: str,
    nan_policy: str,
    drop_classes: str | None,
    merge: list[str] | None,
    min_class_count: int | None,
    sample_frac: float | None,
    split: str,
    scaler: str,
    no_cache: bool,
    seed: int,
) -> DataOptions:
    """Build and validate DataOptions from command-line values."""
    if preset not in ("cicids2017", "none", "auto"):
        raise InputError(f"--preset {preset!r}: expected cicids2017, none or auto")
    if nan_policy not in ("drop", "median", "error"):
        raise InputError(f"--nan-policy {nan_policy!r}: expected drop, median or error")
    if scaler not in ("minmax", "standard"):
        raise InputError(f"--scaler {scaler!r}: expected minmax or standard")
    if sample_frac is not None and not (0 < sample_frac <= 1):
        raise InputError(f"--sample-frac {sample_frac}: expected a fraction in (0, 1]")
    if min_class_count is not None and min_class_count < 1:
        raise InputError(f"--min-class-count {min_class_count}: expected a positive integer")
    return DataOptions(
        data=data,
        label_col=label_col,
        preset=preset,
        nan_policy=nan_policy,
        drop_classes=None if drop_classes is None else parse_list(drop_classes),
        merge=merge or None,
        min_class_count=min_class_count,
        sample_frac=sample_frac,
        split=parse_split(split),
        scaler=scaler,
        seed=seed,
        cache=not no_cache,
    )


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------------
# inspect


@app.command()
def inspect(
    data: DataOpt = None,
    label_col: LabelColOpt = None,
    preset: PresetOpt = "auto",
    nan_policy: NanPolicyOpt = "drop",
    drop_classes: DropClassesOpt = None,
    merge: MergeOpt = None,
    min_class_count: MinClassOpt = None,
    no_cache: NoCacheOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Describe a dataset: class table, imbalance ratio, data-quality report, preset actions."""
    from lossbench.data import inspect_dataset

    opts = data_options(
        data=data,
        label_col=label_col,
        preset=preset,
        nan_policy=nan_policy,
        drop_classes=drop_classes,
        merge=merge,
        min_class_count=min_class_count,
        sample_frac=None,
        split="0.6,0.2,0.2",
        scaler="minmax",
        no_cache=no_cache,
        seed=0,
    )
    info = inspect_dataset(opts)
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
    for key, value in info.items():
        if key in ("classes",):
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value, default=str)
        console.print(f"[bold]{key}[/bold]: {value}")


# ----------------------------------------------------------------------------------------------
# losses


@app.command()
def losses(as_json: JsonOpt = False) -> None:
    """List the available losses: name, formula, defaults and source."""
    from lossbench.losses import describe

    rows = describe()
    if as_json:
        _print_json(rows)
        return
    table = Table(title="lossbench losses", show_lines=True)
    for col in ("name", "formula", "defaults", "source"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["formula"], str(row["defaults"]), row["source"])
    console.print(table)


# ----------------------------------------------------------------------------------------------
# entry point


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: maps InputError to exit code 2 with a one-line message."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        result = app(args=argv, standalone_mode=False)
    except InputError as exc:
        msg = " ".join(str(exc).split())
        err_console.print(f"[red]error:[/red] {msg}", highlight=False, soft_wrap=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except ClickException as exc:  # usage errors: unknown option, bad value type, ...
        if isinstance(exc, NoArgsIsHelpError):
            exc.show()
            return 0
        exc.show()
        return 2
    return result if isinstance(result, int) else 0


def run_main() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run_main()
