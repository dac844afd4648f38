"""Progress of an experiment drawn with rich: the bar of its runs, the epochs of each run and the
tuning trials (a terminal or a notebook; nothing with `quiet`). Library code reports through the
`runner.Reporter` interface; this is the implementation the command line and the API use."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


class RichReporter:
    """Draws rich progress bars for the runs of an experiment and the epochs of each run."""

    def __init__(
        self, quiet: bool, console: Console | None = None, *, warn_when_quiet: bool = True
    ) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.quiet = quiet
        self.warn_when_quiet = warn_when_quiet
        #: what the user typed ({"command_line", "config_file", "config_text"}; the CLI sets it)
        self.invocation: dict[str, Any] | None = None
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
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
        if not self.progress.tasks:  # nothing drawn (e.g. bad input): leave no blank line
            self.progress.live.transient = True
        self.progress.__exit__(*exc)

    def experiment_started(self, exp_dir: Any, runs: list[str]) -> None:
        if self.runs_task is None:
            self.runs_task = self.progress.add_task("runs", total=len(runs), info=str(exp_dir))
        else:  # a compare over several datasets: one bar for all their runs
            total = self.progress.tasks[self.progress.task_ids.index(self.runs_task)].total or 0
            self.progress.update(self.runs_task, total=total + len(runs), info=str(exp_dir))

    def warning(self, message: str) -> None:
        if self.quiet and not self.warn_when_quiet:
            return
        # on stderr even under --quiet (the progress display is off then, its console is not)
        self.progress.console.print(
            f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True
        )

    def note(self, message: str) -> None:
        if not self.quiet:
            self.progress.console.print(f"note: {escape(message)}", highlight=False, soft_wrap=True)

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
