"""What every command shares: the Typer app, the consoles, JSON output and tables that fit
the terminal."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lossbench._version import __version__


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


def reset_consoles() -> None:
    """Measure the terminal again (`main` calls it for each command line)."""
    global console, err_console
    console, err_console = _console(), _console(stderr=True)


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


def print_json(obj: Any) -> None:
    from lossbench.io import jsonable

    sys.stdout.write(json.dumps(jsonable(obj), indent=2, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------------
# inspect


#: The command line being run (`main` sets it), recorded in experiment.json and the report.
ARGV: list[str] = []


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
