"""The Python API: `compare`, `run` and `load`, on the command line's own code path.

```python
import lossbench

exp = lossbench.compare(data=df, label_col="y", losses=["ce", my_loss], seeds=[0], epochs=5)
exp.tables["average"]          # the DataFrame of summary/table_average.csv
exp.runs[0].history            # history.csv of the first run
```

Settings take the command line's names (`epochs`, `batch_size`, `label_col`, `param={...}`, ...)
and its defaults, and go through `settings.resolve_settings`, the one validation of flags, TOML
files and these keywords: a bad value raises `lossbench.InputError` with the command line's
message. `data=` takes what `--data` takes, a pandas DataFrame (with `label_col`) or a pair
`(X, y)`; in-memory data is written once to a Parquet file in the cache folder named by a hash of
its content, so it is fingerprinted like a file (resume and the array cache work). `losses=`
takes names, specs `[ALIAS=]MODULE:ATTR` and the objects themselves (a loss class or a callable,
or a pair `(name, object)`). Progress is drawn with rich (in a notebook too) unless `quiet=True`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench.config import CommandSettings
from lossbench.errors import InputError

#: The tables of `Experiment.tables` (summary/table_<name>.csv).
TABLES = ("average", "average_tuned", "per_class", "calibration", "operating_points")


def _progress(quiet: bool) -> Any:
    """The rich progress of the API; with `quiet` nothing is printed, data warnings included
    (experiment.json keeps them)."""
    from lossbench.progress import RichReporter

    return RichReporter(quiet, warn_when_quiet=False)


@dataclass
class Run:
    """One run folder: `.metrics` (metrics.json), `.history` and `.predictions` DataFrames
    (None where the run has none, e.g. a baseline's history), `.model()` for its network."""

    path: Path
    name: str
    status: str
    metrics: dict[str, Any]
    config: dict[str, Any]

    @property
    def history(self) -> pd.DataFrame | None:
        """history.csv: one row per epoch."""
        return self._record().history()

    @property
    def predictions(self) -> pd.DataFrame | None:
        """predictions.parquet: row_id, y_true and the class probabilities of the test split."""
        return self._record().predictions()

    def model(self) -> Any:
        """The trained network, loaded from model.keras with plain Keras."""
        import keras

        from lossbench.layout import MODEL

        path = self.path / MODEL
        if not path.is_file():
            raise InputError(f"{path}: no {MODEL} in this run (a baseline or a failed run)")
        return keras.saving.load_model(path)

    def _record(self) -> Any:
        from lossbench.store import read_run

        return read_run(self.path)

    @classmethod
    def from_dir(cls, run_dir: Path) -> Run:
        """The run stored in `run_dir`."""
        from lossbench.store import read_config, read_run

        rec = read_run(Path(run_dir))
        return cls(rec.path, rec.name, rec.status, rec.metrics, read_config(rec.path))


@dataclass
class Experiment:
    """An experiment folder: `.path`, `.tables`, `.significance`, `.ranks`, `.runs`,
    `.report_path`, `.meta` (experiment.json)."""

    path: Path

    @property
    def meta(self) -> dict[str, Any]:
        """experiment.json."""
        from lossbench.store import read_experiment_meta

        return read_experiment_meta(self.path)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The summary tables that exist, by name: average, average_tuned, per_class,
        calibration, operating_points."""
        from lossbench.layout import summary_table
        from lossbench.store import read_summary_csv

        found = {name: read_summary_csv(self.path, summary_table(name)) for name in TABLES}
        return {name: table for name, table in found.items() if table is not None}

    @property
    def significance(self) -> pd.DataFrame | None:
        """summary/significance.csv."""
        from lossbench.layout import SIGNIFICANCE
        from lossbench.store import read_summary_csv

        return read_summary_csv(self.path, SIGNIFICANCE)

    @property
    def ranks(self) -> pd.DataFrame | None:
        """summary/ranks.csv."""
        from lossbench.layout import RANKS
        from lossbench.store import read_summary_csv

        return read_summary_csv(self.path, RANKS)

    @property
    def runs(self) -> list[Run]:
        """Every run folder, in name order."""
        from lossbench.layout import runs_dir

        return [Run.from_dir(d) for d in sorted(runs_dir(self.path).glob("*")) if d.is_dir()]

    @property
    def report_path(self) -> Path:
        """summary/report.html."""
        from lossbench.layout import report_path

        return report_path(self.path)


def load(path: str | Path) -> Experiment:
    """The experiment stored in the folder `path` (InputError when it is none)."""
    from lossbench.store import read_experiment_meta

    exp_dir = Path(path)
    read_experiment_meta(exp_dir)  # raises InputError naming the folder
    return Experiment(exp_dir)


def compare(
    data: Any = None,
    losses: Sequence[Any] | str | None = None,
    seeds: Sequence[int] | str | None = None,
    out: str | Path = "results",
    *,
    quiet: bool = False,
    **settings: Any,
) -> Experiment | list[Experiment]:
    """`lossbench compare` from Python: one run per (loss, seed) on the same split.

    Returns the `Experiment` (a list of them when `data` is a list of datasets). Failed runs
    are in `.runs` with their status, as the command line lists them.
    """
    given = {"out": str(out), "quiet": quiet, **settings}
    if losses is not None:
        given["losses"] = _loss_names(losses)
    if seeds is not None:
        given["seeds"] = list(seeds) if not isinstance(seeds, str | int) else str(seeds)
    if data is not None:
        datasets = data if isinstance(data, list) else [data]
        given["data"] = [_dataset(d, given) for d in datasets]
    resolved = _settings("compare", given)
    with _progress(quiet) as reporter:
        exp_dirs = compare_settings(resolved, reporter=reporter)
        for line in log_mlflow(exp_dirs, resolved):
            reporter.note(line)
    exps = [Experiment(d) for d in exp_dirs]
    return exps if isinstance(data, list) else exps[0]


def run(
    data: Any = None,
    loss: Any = "ce",
    seed: int = 0,
    out: str | Path = "results",
    *,
    quiet: bool = False,
    **settings: Any,
) -> Run:
    """`lossbench run` from Python: one network trained with one loss; returns its `Run`."""
    given = {"out": str(out), "quiet": quiet, "seed": seed, **settings}
    given["loss"] = _loss_names([loss])[0]
    if data is not None:
        given["data"] = _dataset(data, given)
    resolved = _settings("run", given)
    with _progress(quiet) as reporter:
        run_dir, _ = run_settings(resolved, reporter=reporter)
        for line in log_mlflow([run_dir.parent.parent], resolved):
            reporter.note(line)
    return Run.from_dir(run_dir)


# ----------------------------------------------------------------------------------------------
# the bodies of `lossbench compare` and `lossbench run` (the command line calls these too)


def log_mlflow(exp_dirs: Sequence[Path], settings: CommandSettings) -> list[str]:
    """With the `mlflow` setting (a tracking URI or "default"), log these experiments' runs
    (`lossbench.tracking`); one line per experiment saying what was logged (none without it)."""
    if not settings.mlflow:
        return []
    from lossbench.tracking import log_experiment

    lines = []
    for exp_dir in exp_dirs:
        done = log_experiment(exp_dir, settings.mlflow, settings.out)
        lines.append(
            f"mlflow: {len(done['logged'])} run(s) logged, {len(done['skipped'])} "
            f"logged before, parent run {done['parent_run_id']} in {done['tracking_uri']}"
        )
    return lines


def compare_settings(settings: CommandSettings, *, reporter: Any) -> list[Path]:
    """Run a compare from its settings (`config.build_settings`); returns the experiment
    folders, one per dataset."""
    from lossbench.config import Settings
    from lossbench.experiment import compare_datasets
    from lossbench.losses import names
    from lossbench.losses.registry import resolve_methods
    from lossbench.training import configure_device

    options = settings.compare
    assert options is not None, "compare_settings takes the settings of a compare"
    losses = list(options.losses)
    # a user's [ALIAS=]MODULE:ATTR is registered under its run name (names() when all)
    options = replace(
        options, losses=tuple(names() if losses == ["all"] else resolve_methods(losses))
    )
    seed0 = options.seeds[0]
    cfgs = [
        Settings(data=settings.data_for(d, seed0), train=replace(settings.train))
        for d in settings.datasets
    ]
    device_desc = configure_device(settings.train.device)
    return compare_datasets(cfgs, options, device=device_desc, reporter=reporter)


def run_settings(settings: CommandSettings, *, reporter: Any) -> tuple[Path, dict[str, Any]]:
    """Train one run from its settings (`config.build_settings`); returns (run folder, metrics)."""
    from lossbench.config import RunConfig
    from lossbench.experiment import data_for_seed, single_run

    dopts, topts = settings.data, settings.train
    prepared = data_for_seed(dopts, dopts.seed)  # before TensorFlow: peak memories never add up
    prepared.leakage()  # likewise: experiment.json's report reads every row
    from lossbench.losses.registry import resolve_methods  # Keras, and with it TensorFlow
    from lossbench.training import configure_device

    device_desc = configure_device(topts.device)
    loss = resolve_methods([settings.loss])[0]
    cfg = RunConfig(loss=loss, params=dict(settings.params), data=dopts, train=topts)
    return single_run(cfg, out=settings.out, device=device_desc, reporter=reporter, data=prepared)


# ----------------------------------------------------------------------------------------------
# keywords -> settings


def _settings(command: str, given: dict[str, Any]) -> CommandSettings:
    """The command's settings: its defaults, then `given` (the command line's names), validated
    by `settings.resolve_settings` with the `config` TOML file when given."""
    from lossbench.config import build_settings
    from lossbench.settings import command_defaults, resolve_settings

    defaults = command_defaults(command)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError(
            f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(defaults))}"
        )
    flags = {**defaults, **given}
    resolved = resolve_settings(flags, given=set(given), config=flags.get("config"))
    return build_settings(command, resolved)


def _loss_names(losses: Sequence[Any] | str) -> list[str] | str:
    """Loss names for the settings: a string as given, objects registered (their run names)."""
    from lossbench.losses.registry import resolve_methods

    if isinstance(losses, str):
        return losses
    items = list(losses)
    objects = [i for i in items if not isinstance(i, str)]
    names = iter(resolve_methods(objects))
    return [i if isinstance(i, str) else next(names) for i in items]


def _dataset(data: Any, given: dict[str, Any]) -> Any:
    """`data` as `--data` takes it: a DataFrame or an (X, y) pair becomes a Parquet file in the
    cache folder, named by a hash of its content (written once); sets `label_col` for (X, y)."""
    if isinstance(data, tuple) and len(data) == 2:
        X, y = data
        label = given.get("label_col") or "Label"
        frame = pd.DataFrame(X).copy() if isinstance(X, pd.DataFrame) else _frame(np.asarray(X))
        if label in frame.columns:
            raise InputError(f"data: X has a column {label!r}, the label's; pass label_col=")
        frame[label] = np.asarray(y)
        given["label_col"] = label
        data = frame
    if not isinstance(data, pd.DataFrame):
        return data
    return str(_frame_file(data))


def _frame(X: np.ndarray) -> pd.DataFrame:
    if X.ndim != 2:
        raise InputError(f"data: X has shape {X.shape}; expected (rows, features)")
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])


def _frame_file(frame: pd.DataFrame) -> Path:
    """The Parquet file holding `frame` in the cache folder (`frames/frame-<hash>.parquet`)."""
    from lossbench.config import DataOptions
    from lossbench.data.cache import cache_root
    from lossbench.io import atomic_write_parquet

    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    digest = hashlib.sha256()
    digest.update(json.dumps([list(frame.columns), [str(t) for t in frame.dtypes]]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    path = cache_root(DataOptions()) / "frames" / f"frame-{digest.hexdigest()[:16]}.parquet"
    if not path.is_file():  # written once: its size and time stay, as a file's do
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(path, frame)
    return path


__all__ = ["TABLES", "Experiment", "Run", "compare", "load", "run"]
