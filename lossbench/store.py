"""The results store: the one owner of the experiment folder layout (README "Results layout").

```
<out>/<timestamp>_<label>/            an experiment (`new_experiment_dir`, `find_experiment`)
  experiment.json                     what was planned, provenance, the configuration key
  runs/<method>_seed<k>/              one run (`run_name`, `parse_run_name`)
    config.json, metrics.json, ...    written by `lossbench.runner` through this module
    DONE                              written last (`mark_done`): the run is complete
  tuning/<method>/trials.csv          compare --tune: every trial (`read_trials`, `write_trials`)
  loss_shape.csv                      the losses' values against p (`write_loss_shapes`)
  summary/                            tables, plots, report.html (`lossbench.report`)
```

The names and paths are `lossbench.layout`'s; this module is the one writer and reader of the
files. Writers: `prepare_run_dir` (a folder without DONE holds no result and is cleared),
`write_run_config`, `write_history`, `save_model`, `run_log`, `write_predictions`,
`write_evaluation_files`, `mark_done`, `write_failed_run`, `write_run_files` (a Ray task's
files), `write_experiment`, `grow_experiment`, `write_trials`, `write_loss_shapes`,
`write_summary_*`. Readers: `read_run`
-> `RunRecord`, `load_experiment` -> `ExperimentResults` (the report's view), `run_status` (what
resume needs), `load_metrics` (the CLI's view), `read_trials` (what a resumed tuning replays). Only
the runs experiment.json plans are runs (`planned_runs`); any other folder under runs/ is ignored
(`stray_run_dirs`, which the CLI names in a warning).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lossbench import layout
from lossbench.integrity import run_problem
from lossbench.io import (
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
)
from lossbench.layout import DONE, trials_path

LOSS_SHAPE_COLUMNS = {"panel", "class", "y", "n_y", "loss", "depends_on_logits", "p", "value"}
TUNED = "@tuned"  # suffix of the runs of a method's tuned parameters (`compare --tune`)
_SEED_SEP = "_seed"


def run_name(method: str, seed: int) -> str:
    """The folder name of one run: `<method>_seed<k>` (a method may contain '+', '-', '_')."""
    return f"{method}{_SEED_SEP}{seed}"


def parse_run_name(name: str) -> tuple[str, int] | None:
    """(method, seed) of a run folder name, or None when it does not follow `run_name`."""
    method, sep, seed = name.rpartition(_SEED_SEP)
    digits = seed[1:] if seed.startswith("-") else seed
    if not sep or not method or not digits.isdigit():
        return None
    return method, int(seed)


def read_result_csv(path: Path) -> pd.DataFrame:
    """A result CSV (per_class.csv, confusion.csv, ...) as written: an empty cell is missing (how
    pandas writes NaN), any other text, a class named `NA`, `None` or `null` included, is itself."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def mark_done(run_dir: Path) -> None:
    """Write DONE (the time it finished): the last file of a complete run."""
    atomic_write_text(run_dir / DONE, _dt.datetime.now().isoformat() + "\n")


def write_failed_run(run_dir: Path, base: dict[str, Any], reason: str) -> dict[str, Any]:
    """Write metrics.json of a failed run (`base` plus status "failed" and the reason; no DONE);
    returns its content."""
    metrics = {**base, "status": "failed", "reason": reason}
    atomic_write_json(run_dir / layout.METRICS, metrics)
    return metrics


def write_run_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Write config.json: what a run trains with (written before training starts)."""
    atomic_write_json(run_dir / layout.CONFIG, config)


def write_history(run_dir: Path, history: pd.DataFrame) -> None:
    """Write history.csv: one row per epoch."""
    atomic_write_csv(run_dir / layout.HISTORY, history)


def save_model(run_dir: Path, save: Callable[[Path], Any]) -> Path:
    """Write model.keras atomically: `save(path)` writes the file under a temporary name (Keras
    picks the format by the suffix, so it is `.keras` too), renamed into place after."""
    tmp = run_dir / layout.MODEL_TMP
    save(tmp)
    return tmp.replace(run_dir / layout.MODEL)


def run_log(run_dir: Path) -> logging.Handler:
    """The handler of a run's log.txt: one handle for the run, appended to and flushed after
    every record (logging's `FileHandler` flushes each one), so the file is readable while the
    run trains and complete up to the last line when it is killed. The caller closes it."""
    handler = logging.FileHandler(run_dir / layout.LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler


def write_predictions(run_dir: Path, test: pd.DataFrame, val: pd.DataFrame) -> None:
    """Write predictions.parquet (test) and predictions_val.parquet (validation) atomically."""
    atomic_write_parquet(run_dir / layout.PREDICTIONS, test)
    atomic_write_parquet(run_dir / layout.PREDICTIONS_VAL, val)


def read_predictions(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(test, validation) prediction frames of a run; validation is None for runs made before
    the protocol stored it.

    Raises:
        OSError, ValueError: the test predictions are missing or unreadable.
    """
    test = pd.read_parquet(run_dir / layout.PREDICTIONS)
    val_path = run_dir / layout.PREDICTIONS_VAL
    return test, (pd.read_parquet(val_path) if val_path.exists() else None)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """A run's metrics.json as stored.

    Raises:
        OSError, ValueError: the file is missing or is not JSON.
    """
    return json.loads((Path(run_dir) / layout.METRICS).read_text(encoding="utf-8"))


def write_evaluation_files(
    run_dir: Path,
    per_class: pd.DataFrame,
    calibration: dict[str, Any],
    confusion: pd.DataFrame,
    metrics: dict[str, Any],
) -> None:
    """Write per_class.csv, calibration.json, confusion.csv and, last, metrics.json."""
    atomic_write_csv(run_dir / layout.PER_CLASS, per_class)
    atomic_write_json(run_dir / layout.CALIBRATION, calibration)
    atomic_write_csv(run_dir / layout.CONFUSION, confusion)
    atomic_write_json(run_dir / layout.METRICS, metrics)


def read_run_files(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run folder by its path relative to the folder (what a Ray task returns)."""
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(Path(run_dir).rglob("*"))
        if p.is_file()
    }


def write_run_files(run_dir: Path, files: dict[str, bytes]) -> None:
    """Write a run's files (`read_run_files` of a Ray task) into a cleared `run_dir`, each
    atomically; DONE goes last, so a crash leaves no false DONE."""
    prepare_run_dir(run_dir)
    for rel, payload in files.items():
        if rel != DONE:
            atomic_write_bytes(run_dir / rel, payload)
    if DONE in files:
        atomic_write_bytes(run_dir / DONE, files[DONE])


def write_failed_task(run_dir: Path, base: dict[str, Any], reason: str) -> dict[str, Any]:
    """Record a run whose Ray task failed: a cleared folder with metrics.json (`write_failed_run`)
    and log.txt, one line: the reason; returns the metrics."""
    prepare_run_dir(run_dir)
    metrics = write_failed_run(run_dir, base, reason)
    atomic_write_text(run_dir / layout.LOG, f"{reason}\n")  # the reason names the Ray task
    return metrics


def write_experiment(exp_dir: Path, meta: dict[str, Any]) -> None:
    """Write experiment.json."""
    atomic_write_json(layout.experiment_file(exp_dir), meta)


def grow_experiment(
    exp_dir: Path, losses: Sequence[str], baselines: Sequence[str], seeds: Sequence[int]
) -> None:
    """Add the losses, baselines and seeds a continued compare asks for to experiment.json's lists
    (the existing entries first, in their order), so that the summary plans and reports them."""
    path = layout.experiment_file(exp_dir)
    meta = json.loads(path.read_text())
    grown = {
        key: list(dict.fromkeys([*(meta.get(key) or []), *new]))
        for key, new in (("losses", losses), ("baselines", baselines), ("seeds", seeds))
    }
    if any(grown[key] != (meta.get(key) or []) for key in grown):
        atomic_write_json(path, {**meta, **grown})


def write_loss_shapes(exp_dir: Path, table: pd.DataFrame) -> Path:
    """Write the losses' values against p (`lossbench.losses.shape.loss_shapes`)."""
    return atomic_write_csv(layout.loss_shapes_path(exp_dir), table)


def read_trials(exp_dir: Path, method: str) -> list[dict[str, Any]]:
    """The stored tuning trials of one method, in order (empty when none is stored)."""
    path = trials_path(exp_dir, method)
    if not path.is_file():
        return []
    return pd.read_csv(path).to_dict(orient="records")


def write_trials(exp_dir: Path, method: str, rows: list[dict[str, Any]]) -> None:
    """Store the tuning trials of one method (atomically: a kill leaves the previous file)."""
    path = trials_path(exp_dir, method)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(path, pd.DataFrame(rows))


def prepare_run_dir(run_dir: Path) -> None:
    """A run folder without a usable result (no DONE, or a damaged result file) is cleared before
    (re)training."""
    if run_dir.exists() and run_status(run_dir) != "done":
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def new_experiment_dir(out: Path, label: str) -> Path:
    """Create `out/<timestamp>_<label>`, never reusing an existing folder; `label` keeps only
    safe characters (letters, digits, `.`, `_`, `+`, `-`; any other run of characters becomes
    `_`), so a newline or a slash in a file name never reaches a folder name."""
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", label).strip("._") or "data"
    base = out / f"{stamp}_{safe}"
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir(parents=False, exist_ok=False)
            return candidate
        except FileExistsError:
            n += 1
            candidate = Path(f"{base}-{n}")


def find_experiment(out: Path, key: str) -> Path | None:
    """The most recent experiment folder under `out` whose configuration key is `key`."""
    if not out.is_dir():
        return None
    matches = []
    for meta in out.glob(f"*/{layout.EXPERIMENT}"):
        try:
            if json.loads(meta.read_text()).get("config_key") == key:
                matches.append(meta.parent)
        except (OSError, json.JSONDecodeError):
            continue
    return max(matches, key=lambda p: p.name) if matches else None


def read_experiment_meta(exp_dir: Path) -> dict[str, Any]:
    """An experiment folder's experiment.json.

    Raises:
        InputError: the folder has no experiment.json, or it is not a readable JSON object.
    """
    from lossbench.errors import InputError

    path = layout.experiment_file(exp_dir)
    if not path.is_file():
        raise InputError(f"{exp_dir}: not an experiment folder (no {layout.EXPERIMENT})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable ({' '.join(str(exc).split())})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: unreadable (not a JSON object)")
    return meta


def run_status(run_dir: Path) -> str:
    """`done`, `failed`, `unreadable` (DONE, but a result file is missing or damaged:
    `integrity.run_problem`), `incomplete` or `missing` for a run folder."""
    if (run_dir / DONE).exists():
        return "unreadable" if run_problem(run_dir) else "done"
    meta = run_dir / layout.METRICS
    if meta.exists():
        try:
            if json.loads(meta.read_text()).get("status") == "failed":
                return "failed"
        except (OSError, json.JSONDecodeError):
            pass
    return "incomplete" if run_dir.exists() else "missing"


def load_metrics(exp_dir: Path) -> list[dict[str, Any]]:
    """metrics.json of every run of an experiment, with the status and reason `read_run` gives it
    (ok, failed, incomplete, unreadable), then the planned runs that have no folder (missing)."""
    try:
        runs = load_experiment(exp_dir).runs
    except (OSError, ValueError):  # an unreadable experiment.json: the run folders alone
        runs = [read_run(d) for d in _run_dirs(Path(exp_dir))]
    return [{**r.metrics, "name": r.name, "status": r.status, "reason": r.reason} for r in runs]


def _run_dirs(exp_dir: Path) -> list[Path]:
    runs_dir = layout.runs_dir(exp_dir)
    return sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []


def planned_runs(meta: dict[str, Any]) -> dict[str, tuple[str, str, int]]:
    """The runs experiment.json plans: folder name -> (method, "loss" | "baseline", seed), for
    every seed and every loss, baseline and tuned method (`compare --tune`)."""
    baselines = list(meta.get("baselines") or [])
    kinds = list(meta.get("losses") or []) + baselines
    chosen = (meta.get("tuning") or {}).get("chosen") or {}
    kinds += [f"{m}{TUNED}" for m, c in chosen.items() if not (c or {}).get("defaults_chosen")]
    return {
        run_name(str(k), int(seed)): (str(k), "baseline" if k in baselines else "loss", int(seed))
        for seed in meta.get("seeds") or []
        for k in kinds
    }


def stray_run_dirs(exp_dir: Path) -> list[Path]:
    """Folders under runs/ that experiment.json does not plan (a copy such as `ce_seed0.bak`, a
    run of another experiment): the store's readers ignore them. Empty when experiment.json is
    missing, unreadable or plans nothing (every folder is read then)."""
    try:
        planned = planned_runs(_read_json(layout.experiment_file(exp_dir)) or {})
    except (OSError, ValueError):
        return []
    return [d for d in _run_dirs(Path(exp_dir)) if planned and d.name not in planned]


def stray_warning(exp_dir: Path) -> str | None:
    """One line naming the `stray_run_dirs` of an experiment, or None when there are none."""
    stray = stray_run_dirs(exp_dir)
    if not stray:
        return None
    names = ", ".join(d.name for d in stray)
    return (
        f"{layout.runs_dir(exp_dir)}: ignored {len(stray)} folder(s) that {layout.EXPERIMENT} "
        f"does not plan: {names}"
    )


def _missing_runs(exp_dir: Path, meta: dict[str, Any], present: set[str]) -> list[RunRecord]:
    """Runs that experiment.json plans but that have no folder (never started, or deleted)."""
    return [
        RunRecord(
            name=name,
            path=layout.run_dir(exp_dir, name),
            loss=method,
            kind=kind,
            seed=seed,
            status="missing",
            reason="no run folder (not started, or deleted)",
        )
        for name, (method, kind, seed) in planned_runs(meta).items()
        if name not in present
    ]


@dataclass
class RunRecord:
    """One folder under runs/, with its status and whatever result files it has."""

    name: str
    path: Path
    loss: str  # the run kind: loss name or baseline name
    kind: str  # "loss" | "baseline"
    seed: int | None
    status: str  # "ok" | "failed" | "incomplete" | "unreadable" | "missing" (planned, no folder)
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the run completed (DONE) with status ok."""
        return self.status == "ok"

    @property
    def summary(self) -> dict[str, Any]:
        """The run's `Evaluation.summary` from metrics.json (empty when absent)."""
        return self.metrics.get("summary") or {}

    def per_class(self) -> pd.DataFrame | None:
        """per_class.csv, or None when the file is absent."""
        p = self.path / layout.PER_CLASS
        return read_result_csv(p) if p.is_file() else None

    def confusion(self) -> pd.DataFrame | None:
        """confusion.csv, or None when the file is absent."""
        p = self.path / layout.CONFUSION
        return read_result_csv(p) if p.is_file() else None

    def calibration(self) -> dict[str, Any] | None:
        """calibration.json, or None when the file is absent."""
        return _read_json(self.path / layout.CALIBRATION)

    def history(self) -> pd.DataFrame | None:
        """history.csv (loss runs only), or None when absent."""
        p = self.path / layout.HISTORY
        return pd.read_csv(p) if p.is_file() else None

    def predictions(self) -> pd.DataFrame | None:
        """predictions.parquet (row_id, y_true, p_0..p_{K-1}), or None when absent."""
        p = self.path / layout.PREDICTIONS
        return pd.read_parquet(p) if p.is_file() else None


@dataclass
class ExperimentResults:
    """An experiment folder as read from disk: its experiment.json and its runs."""

    path: Path
    meta: dict[str, Any]
    runs: list[RunRecord]
    kinds: list[str]  # run kinds in table order
    class_names: list[str]

    @property
    def name(self) -> str:
        """The experiment's name (experiment.json "name", else the folder name)."""
        return str(self.meta.get("name") or self.path.name)

    def ok_runs(self, kind: str | None = None) -> list[RunRecord]:
        """Completed runs (of one kind when given), ordered by seed."""
        runs = [r for r in self.runs if r.ok and (kind is None or r.loss == kind)]
        return sorted(runs, key=lambda r: (r.seed is None, r.seed or 0, r.name))

    def loss_shapes(self) -> pd.DataFrame | None:
        """The losses' values against p (`write_loss_shapes`), or None when absent or damaged
        (the next compare writes it again)."""
        p = layout.loss_shapes_path(self.path)
        try:
            table = pd.read_csv(p) if p.is_file() else None
        except (OSError, ValueError, UnicodeDecodeError):  # pandas' ParserError is a ValueError
            return None
        if table is None or not LOSS_SHAPE_COLUMNS <= set(table.columns) or table.empty:
            return None
        return table

    def kind_type(self, kind: str) -> str:
        """ "loss" or "baseline" for a run kind."""
        if kind in (self.meta.get("baselines") or []):
            return "baseline"
        for r in self.runs:
            if r.loss == kind:
                return r.kind
        return "loss"


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    obj = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(obj, dict):
        raise ValueError(f"{path.name} holds no JSON object")
    return obj


def read_run(run_dir: Path) -> RunRecord:
    """Classify one run folder as ok, failed or incomplete (results contract)."""
    name = run_dir.name
    loss, seed = parse_run_name(name) or (name, None)
    kind = "loss"
    config: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    problem = None
    try:
        config = _read_json(run_dir / layout.CONFIG) or {}
    except (OSError, ValueError) as exc:
        problem = f"unreadable {layout.CONFIG} ({exc})"
    try:
        metrics = _read_json(run_dir / layout.METRICS) or {}
    except (OSError, ValueError) as exc:
        problem = f"unreadable {layout.METRICS} ({exc})"
    for src in (config, metrics):  # metrics.json, written later, has the last word
        loss = src.get("loss") or loss
        kind = src.get("kind") or kind
        if src.get("seed") is not None:
            seed = src["seed"]

    done = (run_dir / DONE).is_file()
    status = metrics.get("status")
    if status == "failed":
        state, reason = "failed", str(metrics.get("reason") or "failed (no reason recorded)")
    elif problem is not None:  # with DONE: a damaged result, which the next compare retrains
        state, reason = ("unreadable" if done else "failed"), problem
    elif not done:
        state, reason = "incomplete", f"incomplete: no {DONE} file (interrupted or still running)"
    elif status != "ok":
        state, reason = "failed", f"{layout.METRICS} missing or status {status!r}"
    elif (problem := run_problem(run_dir)) is not None:
        state, reason = "unreadable", f"unreadable: {problem}; the next compare trains it again"
    else:
        state, reason = "ok", None
    return RunRecord(
        name=name,
        path=run_dir,
        loss=str(loss),
        kind=str(kind),
        seed=None if seed is None else int(seed),
        status=state,
        reason=reason,
        metrics=metrics,
    )


def load_experiment(exp_dir: Path) -> ExperimentResults:
    """Read experiment.json (optional) and the runs/*/ folders of the runs it plans (every
    folder when it plans none; `stray_run_dirs` are left out)."""
    exp_dir = Path(exp_dir)
    meta = _read_json(layout.experiment_file(exp_dir)) or {}
    planned = planned_runs(meta)
    runs = [read_run(d) for d in _run_dirs(exp_dir) if not planned or d.name in planned]
    runs += _missing_runs(exp_dir, meta, {r.name for r in runs})

    declared = list(meta.get("losses") or []) + list(meta.get("baselines") or [])
    seen = {r.loss: r.kind for r in runs}
    extra = sorted((k for k in seen if k not in declared), key=lambda k: (seen[k] != "loss", k))
    kinds = [k for k in dict.fromkeys(declared + extra) if k in seen]
    # a tuned row (`<method>@tuned`, compare --tune) right after its method's default row
    for k in [k for k in kinds if k.endswith(TUNED) and k.removesuffix(TUNED) in kinds]:
        kinds.remove(k)
        kinds.insert(kinds.index(k.removesuffix(TUNED)) + 1, k)

    class_names = list(meta.get("class_names") or [])
    if not class_names:
        for r in runs:
            if r.metrics.get("class_names"):
                class_names = list(r.metrics["class_names"])
                break
    return ExperimentResults(exp_dir, meta, runs, kinds, [str(c) for c in class_names])


def read_config(run_dir: Path) -> dict[str, Any]:
    """A run's config.json (empty when absent or unreadable)."""
    try:
        return _read_json(Path(run_dir) / layout.CONFIG) or {}
    except (OSError, ValueError):
        return {}


def write_summary_table(
    exp_dir: Path, which: str, table: pd.DataFrame, markdown: str
) -> dict[str, Path]:
    """Write one summary table as summary/table_<which>.csv, .parquet and .md (`markdown`);
    returns {file name: path}."""
    out = layout.summary_dir(exp_dir)
    csv, parquet, md = (layout.summary_table(which, ext) for ext in (".csv", ".parquet", ".md"))
    return {
        csv: atomic_write_csv(out / csv, table),
        parquet: atomic_write_parquet(out / parquet, table),
        md: atomic_write_text(out / md, markdown),
    }


def write_summary_csv(exp_dir: Path, name: str, table: pd.DataFrame) -> Path:
    """Write summary/<name> (significance.csv, ranks.csv)."""
    return atomic_write_csv(layout.summary_dir(exp_dir) / name, table)


def write_report(exp_dir: Path, page: str) -> Path:
    """Write summary/report.html."""
    return atomic_write_text(layout.report_path(exp_dir), page)


def read_summary_csv(exp_dir: Path, name: str) -> pd.DataFrame | None:
    """summary/<name> of an experiment (a table, significance.csv, ranks.csv), None if absent."""
    path = layout.summary_dir(exp_dir) / name
    return pd.read_csv(path) if path.is_file() else None
