"""Run and compare: experiment folders, one run's files, resume, baselines, executors (SPEC 6, 8).

Library code: it reports progress through a `Reporter` and never prints.
The folder layout is documented in the README ("Results layout").
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import platform
import shutil
import subprocess
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench import __version__
from lossbench.config import DataOptions, RunConfig, TrainOptions
from lossbench.errors import InputError
from lossbench.io import (
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
)

BASELINES = ("lr", "rf", "hgb")
DEFAULT_LOSSES = ("ce", "wce", "focal", "cb", "dwb")


# ----------------------------------------------------------------------------------------------
# progress reporting


class Reporter:
    """Progress callbacks; the CLI subclasses it to draw rich progress bars. Defaults do nothing."""

    def experiment_started(self, exp_dir: Path, runs: list[str]) -> None: ...
    def run_skipped(self, name: str) -> None: ...
    def run_started(self, name: str, epochs: int) -> None: ...
    def epoch_end(self, name: str, row: dict[str, Any]) -> None: ...
    def run_finished(self, name: str, metrics: dict[str, Any]) -> None: ...


# ----------------------------------------------------------------------------------------------
# run specifications


@dataclass(frozen=True)
class RunSpec:
    """One (loss or baseline, seed) run of an experiment."""

    loss: str
    seed: int
    kind: str = "loss"  # loss | baseline
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        return f"{self.loss}_seed{self.seed}"


def split_params(losses: Sequence[str], params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Distribute `--param` values to losses.

    `loss.key=value` targets one loss; a plain `key=value` goes to every selected loss that has
    that parameter (an error if none has it). Validation of values happens in `losses.get`.
    """
    from lossbench.losses import describe

    accepted = {row["name"]: set(row["defaults"]) for row in describe()}
    out: dict[str, dict[str, Any]] = {name: {} for name in losses}
    for key, value in params.items():
        if "." in key:
            target, sub = key.split(".", 1)
            if target not in out:
                raise InputError(f"--param {key}: loss {target!r} is not among the selected losses")
            out[target][sub] = value
            continue
        takers = [name for name in losses if key in accepted.get(name, set())]
        if not takers:
            raise InputError(
                f"--param {key}: none of the selected losses ({', '.join(losses)}) has a parameter "
                f"{key!r}; use LOSS.{key}=VALUE or see `lossbench losses`"
            )
        for name in takers:
            out[name][key] = value
    return out


def validate_losses(
    losses: Sequence[str], per_loss_params: dict[str, dict[str, Any]], class_counts: np.ndarray
) -> None:
    """Build every loss once so bad names or parameters fail before any folder is created."""
    from lossbench.losses import get, names

    known = names()
    for name in losses:
        if name not in known:
            raise InputError(f"--loss {name!r}: unknown loss; choose from {', '.join(known)}")
        try:
            get(name, class_counts, **per_loss_params.get(name, {}))
        except (ValueError, TypeError) as exc:
            raise InputError(f"--loss {name}: {' '.join(str(exc).split())}") from None


# ----------------------------------------------------------------------------------------------
# folders and provenance


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    import keras
    import sklearn
    import tensorflow as tf

    return {
        "lossbench": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    """The lossbench source tree's git commit, when it is a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def config_key(payload: dict[str, Any]) -> str:
    """A stable hash of an experiment's resolved configuration (what `compare` resumes by)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def new_experiment_dir(out: Path, label: str) -> Path:
    """Create `out/<timestamp>_<label>`, never reusing an existing folder."""
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"{stamp}_{label}"
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
    for meta in out.glob("*/experiment.json"):
        try:
            if json.loads(meta.read_text()).get("config_key") == key:
                matches.append(meta.parent)
        except (OSError, json.JSONDecodeError):
            continue
    return max(matches, key=lambda p: p.name) if matches else None


def run_status(run_dir: Path) -> str:
    """`done`, `failed` or `incomplete` (or `missing`) for a run folder."""
    if (run_dir / "DONE").exists():
        return "done"
    meta = run_dir / "metrics.json"
    if meta.exists():
        try:
            if json.loads(meta.read_text()).get("status") == "failed":
                return "failed"
        except (OSError, json.JSONDecodeError):
            pass
    return "incomplete" if run_dir.exists() else "missing"


# ----------------------------------------------------------------------------------------------
# one run


def _run_logger(run_dir: Path, name: str) -> tuple[logging.Logger, logging.Handler]:
    logger = logging.getLogger(f"lossbench.run.{name}.{id(run_dir)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger, handler


def _positive_index(data: Any, positive_label: str | None) -> int | None:
    if data.n_classes != 2 or positive_label is None:
        return None
    if positive_label not in data.class_names:
        raise InputError(
            f"--positive-label {positive_label!r}: not a class; classes are "
            f"{', '.join(data.class_names)}"
        )
    return data.class_names.index(positive_label)


def write_evaluation(
    run_dir: Path,
    data: Any,
    test: Any,
    val: Any,
    positive: int | None,
    metrics_base: dict[str, Any],
    far_targets: Sequence[float] = (0.01, 0.001),
) -> dict[str, Any]:
    """Write predictions.parquet, predictions_val.parquet, metrics.json, per_class.csv,
    calibration.json and confusion.csv.

    `test` and `val` are `lossbench.evaluation.SplitPredictions`; every metric is computed from
    exactly what the prediction files store (`lossbench.evaluation.evaluate_predictions`), so
    `lossbench report` recomputes the same numbers from them.
    """
    from lossbench.evaluation import write_predictions, write_run_evaluation

    write_predictions(run_dir, test, val)
    metrics = {**metrics_base, "status": "ok", "reason": None, "far_targets": list(far_targets)}
    return write_run_evaluation(run_dir, data.class_names, metrics, test, val, positive)


def _finish(run_dir: Path, logger: logging.Logger, plots: bool = True) -> None:
    from lossbench.report import run_plots

    if plots:
        try:
            run_plots(run_dir)
        except Exception:  # a plot must never cost the numbers
            logger.error("plotting failed:\n%s", traceback.format_exc())
    atomic_write_text(run_dir / "DONE", _dt.datetime.now().isoformat() + "\n")


def _prepare_run_dir(run_dir: Path) -> None:
    """A run folder without DONE holds no result: clear it before (re)training."""
    if run_dir.exists() and not (run_dir / "DONE").exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def execute_loss_run(
    spec: RunSpec,
    cfg: RunConfig,
    data: Any,
    run_dir: Path,
    *,
    device: str,
    reporter: Reporter | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Train one loss on `data` and write its run folder; returns metrics.json's content.

    The compiled steps come from `train.trainer_for_run`: traced once per process for each kind
    of run and restarted with this run's weights and loss state. `plots=False` leaves the run's
    plots to `lossbench report --plots runs`.

    The seed fixes the initial weights (built right after seeding; the loss, built before, only
    names the head, which does not change them) and the batch order (`train.epoch_permutation`),
    so all losses under a seed start and step alike.
    """
    import keras
    import tensorflow as tf

    from lossbench.evaluation import SplitPredictions
    from lossbench.losses import get
    from lossbench.train import device_scope, posterior_np, resolve_jit, trainer_for_run

    reporter = reporter or Reporter()
    _prepare_run_dir(run_dir)
    logger, handler = _run_logger(run_dir, spec.name)
    topts = dataclasses.replace(cfg.train, seed=spec.seed)
    base = {
        "name": spec.name,
        "loss": spec.loss,
        "kind": "loss",
        "seed": spec.seed,
        "class_names": list(data.class_names),
        "precision": topts.precision,
    }
    try:
        logger.info(
            "run %s: loss=%s params=%s seed=%d device=%s",
            spec.name,
            spec.loss,
            spec.params,
            spec.seed,
            device,
        )
        with tf.device(device_scope(device)):
            loss = get(spec.loss, data.class_counts("train"), **spec.params)
            arch = {
                "name": topts.model,
                "n_features": data.n_features,
                "n_classes": data.n_classes,
                "filters": topts.filters,
                "units": topts.units,
                "dropout": topts.dropout,
                "head": loss.head,  # the head the loss declares (ldam: cosine, s = 30)
                "scale": loss.scale,
                "precision": topts.precision,
            }
            jit = resolve_jit(topts.jit_compile, device)
            trainer, checksum = trainer_for_run(arch, loss, topts, data.n_classes, jit_compile=jit)
            model, loss = trainer.model, trainer.loss  # the cached instances, this run's state
            config = {
                **base,
                "params": spec.params,
                "train": dataclasses.asdict(topts),
                "data": dataclasses.asdict(cfg.data),
                "dataset": data.name,
                "data_fingerprint": data.fingerprint,
                "initial_weights_sha256": checksum,
                "batch_order_sha256": hashlib.sha256(
                    _epoch0_order(spec.seed, len(data.y_train))
                ).hexdigest(),
                "device": device,
                "loss_config": _jsonable(loss.get_config()),
            }
            atomic_write_json(run_dir / "config.json", config)
            writer = (
                tf.summary.create_file_writer(str(run_dir / "tensorboard"))
                if topts.tensorboard
                else None
            )
            reporter.run_started(spec.name, topts.epochs)
            result = trainer.fit(
                data.X_train,
                data.y_train,
                data.X_val,
                data.y_val,
                on_epoch_end=lambda row: (
                    logger.info("epoch %s", _fmt_row(row)),
                    reporter.epoch_end(spec.name, row),
                ),
                summary_writer=writer,
            )
            if writer is not None:
                writer.close()
            atomic_write_csv(run_dir / "history.csv", pd.DataFrame(result.history))
            base.update(
                learned_params=result.learned_params,
                epochs_run=result.epochs_run,
                best_epoch=result.best_epoch,
                train_seconds=result.train_seconds,
                device=device,
                selection=result.selection,
            )
            if result.status != "ok":
                logger.error("run failed: %s", result.reason)
                metrics = {**base, "status": "failed", "reason": result.reason}
                atomic_write_json(run_dir / "metrics.json", metrics)
                reporter.run_finished(spec.name, metrics)
                return metrics
            splits = []
            for ids, X, y in (
                (data.ids_test, data.X_test, data.y_test),
                (data.ids_val, data.X_val, data.y_val),
            ):
                z = trainer.predict_logits(X)
                splits.append(SplitPredictions(ids, np.asarray(y), z, posterior_np(loss, z)))
            metrics = write_evaluation(
                run_dir,
                data,
                *splits,
                _positive_index(data, cfg.data.positive_label),
                base,
                topts.far_targets,
            )
            _save_model(model, run_dir / "model.keras")
            logger.info("test summary: %s", json.dumps(metrics["summary"], default=str))
        _finish(run_dir, logger, plots)
        reporter.run_finished(spec.name, metrics)
        return metrics
    except InputError:
        raise
    except Exception as exc:
        logger.error("internal error:\n%s", traceback.format_exc())
        metrics = {
            **base,
            "status": "failed",
            "reason": f"internal error: {type(exc).__name__}: {exc} (traceback in log.txt)",
        }
        atomic_write_json(run_dir / "metrics.json", metrics)
        reporter.run_finished(spec.name, metrics)
        return metrics
    finally:
        logger.removeHandler(handler)
        handler.close()
        keras.backend.clear_session(free_memory=False)


def _save_model(model: Any, path: Path) -> None:
    """The trained network (architecture and weights) as a `.keras` file, written atomically.

    The model is not compiled: a compile per run re-serialised the loss and the optimizer, whose
    slots doubled the file, for a file that is read back for inference.
    """
    tmp = path.with_name(".model.tmp.keras")
    model.save(tmp)
    tmp.replace(path)


def _epoch0_order(seed: int, n: int) -> bytes:
    from lossbench.train import epoch_permutation

    return epoch_permutation(seed, 0, n).astype(np.int64).tobytes()


def _fmt_row(row: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: getattr(o, "tolist", lambda: str(o))()))


def execute_baseline_run(
    spec: RunSpec,
    cfg: RunConfig,
    data: Any,
    run_dir: Path,
    *,
    reporter: Reporter | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Train a scikit-learn baseline (lr, rf, hgb) on the same split; same files minus history."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from lossbench.evaluation import SplitPredictions

    reporter = reporter or Reporter()
    _prepare_run_dir(run_dir)
    logger, handler = _run_logger(run_dir, spec.name)
    base = {
        "name": spec.name,
        "loss": spec.loss,
        "kind": "baseline",
        "seed": spec.seed,
        "class_names": list(data.class_names),
    }
    try:
        models = {
            "lr": lambda: LogisticRegression(max_iter=1000),
            "rf": lambda: RandomForestClassifier(
                n_estimators=100, n_jobs=-1, random_state=spec.seed
            ),
            "hgb": lambda: HistGradientBoostingClassifier(random_state=spec.seed),
        }
        clf = models[spec.loss]()
        atomic_write_json(
            run_dir / "config.json",
            {
                **base,
                "params": clf.get_params(),
                "data": dataclasses.asdict(cfg.data),
                "dataset": data.name,
                "data_fingerprint": data.fingerprint,
                "initial_weights_sha256": None,
                "device": "CPU",
            },
        )
        reporter.run_started(spec.name, 0)
        t0 = time.perf_counter()
        clf.fit(np.asarray(data.X_train), np.asarray(data.y_train))
        splits = []
        for ids, X, y in (
            (data.ids_test, data.X_test, data.y_test),
            (data.ids_val, data.X_val, data.y_val),
        ):
            proba = np.zeros((len(y), data.n_classes))
            proba[:, clf.classes_.astype(int)] = clf.predict_proba(np.asarray(X))
            proba /= proba.sum(axis=1, keepdims=True)  # float32 models: rows sum to 1 in float64
            splits.append(SplitPredictions(ids, np.asarray(y), None, proba))
        base.update(
            learned_params={},
            epochs_run=0,
            best_epoch=0,
            train_seconds=time.perf_counter() - t0,
            device="CPU",
        )
        metrics = write_evaluation(
            run_dir,
            data,
            *splits,
            _positive_index(data, cfg.data.positive_label),
            base,
            cfg.train.far_targets,
        )
        _finish(run_dir, logger, plots)
        reporter.run_finished(spec.name, metrics)
        return metrics
    except Exception as exc:
        logger.error("internal error:\n%s", traceback.format_exc())
        metrics = {**base, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        atomic_write_json(run_dir / "metrics.json", metrics)
        reporter.run_finished(spec.name, metrics)
        return metrics
    finally:
        logger.removeHandler(handler)
        handler.close()


# ----------------------------------------------------------------------------------------------
# experiments


def experiment_meta(
    *,
    command: str,
    cfg: RunConfig,
    data: Any,
    losses: Sequence[str],
    baselines: Sequence[str],
    seeds: Sequence[int],
    params: dict[str, Any],
    device: str,
    key: str,
    executor: str = "local",
) -> dict[str, Any]:
    """The content of experiment.json."""
    return {
        "name": None,  # filled by the caller with the folder name
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": command,
        "config_key": key,
        "dataset": data.name,
        "class_names": list(data.class_names),
        "class_counts_train": [int(c) for c in data.class_counts("train")],
        "n_features": int(data.n_features),
        "losses": list(losses),
        "baselines": list(baselines),
        "seeds": list(seeds),
        "params": params,
        "data": dataclasses.asdict(cfg.data),
        "train": dataclasses.asdict(cfg.train),
        "data_info": {**data.info, "leakage": data.leakage()},
        "data_fingerprint": data.fingerprint,
        "device": device,
        "executor": executor,
        "versions": versions(),
        "git_commit": git_commit(),
    }


def resolve_key(command: str, cfg: RunConfig, params: dict[str, Any]) -> str:
    """Configuration key of an experiment: the same data and settings continue the same experiment.

    The key leaves out the seeds and the loss and baseline lists, so that a compare with more seeds
    or more losses grows the existing experiment (training only the new runs) instead of starting
    a new one; `--fresh` starts a new one."""
    train = dataclasses.asdict(cfg.train)
    for volatile in ("seed", "device", "tensorboard"):
        train.pop(volatile, None)
    data = dataclasses.asdict(cfg.data)
    data.pop("seed", None)
    data.pop("cache", None)
    data.pop("cache_dir", None)
    return config_key(
        {
            "command": command,
            "data": data,
            "train": train,
            "params": params,
        }
    )


def grow_experiment(
    exp_dir: Path, losses: Sequence[str], baselines: Sequence[str], seeds: Sequence[int]
) -> None:
    """Add the losses, baselines and seeds a continued compare asks for to experiment.json's lists
    (the existing entries first, in their order), so that the summary plans and reports them."""
    path = exp_dir / "experiment.json"
    meta = json.loads(path.read_text())
    grown = {
        key: list(dict.fromkeys([*(meta.get(key) or []), *new]))
        for key, new in (("losses", losses), ("baselines", baselines), ("seeds", seeds))
    }
    if any(grown[key] != (meta.get(key) or []) for key in grown):
        atomic_write_json(path, {**meta, **grown})


def plan_runs(
    losses: Sequence[str],
    baselines: Sequence[str],
    seeds: Sequence[int],
    per_loss_params: dict[str, dict[str, Any]],
) -> list[RunSpec]:
    """All runs of a compare, seed-major (each seed's split is prepared once)."""
    runs = []
    for seed in seeds:
        runs += [RunSpec(loss, seed, "loss", per_loss_params.get(loss, {})) for loss in losses]
        runs += [RunSpec(b, seed, "baseline") for b in baselines]
    return runs


def data_for_seed(opts: DataOptions, seed: int) -> Any:
    """The prepared split of one seed (served from the cache after the first time)."""
    from lossbench.data import prepare

    return prepare(dataclasses.replace(opts, seed=seed))


def execute(
    spec: RunSpec,
    cfg: RunConfig,
    exp_dir: Path,
    *,
    device: str,
    reporter: Reporter | None = None,
    data: Any = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Run one planned run in-process (the local executor's unit of work); `data`: the seed's
    prepared split when the caller holds it already."""
    if data is None:
        data = data_for_seed(cfg.data, spec.seed)
    run_dir = exp_dir / "runs" / spec.name
    if spec.kind == "baseline":
        return execute_baseline_run(spec, cfg, data, run_dir, reporter=reporter, plots=plots)
    return execute_loss_run(spec, cfg, data, run_dir, device=device, reporter=reporter, plots=plots)


def compare(cfg: RunConfig, **options: Any) -> Path:
    """Run every (loss, seed) and baseline on one dataset, resuming a previous identical compare;
    build the summary. Validates everything before creating a folder; returns the experiment
    folder. `options` are those of `compare_datasets`."""
    (exp_dir,) = compare_datasets([cfg], **options)
    return exp_dir


def compare_datasets(
    cfgs: Sequence[RunConfig],
    *,
    losses: Sequence[str],
    baselines: Sequence[str],
    seeds: Sequence[int],
    params: dict[str, Any],
    out: Path,
    fresh: bool = False,
    device: str = "CPU",
    reporter: Reporter | None = None,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    run_plots: bool = False,
) -> list[Path]:
    """`compare` over one or more datasets: one experiment folder per dataset (same losses, seeds
    and options), every (loss, seed, dataset) run handed to the executor together, so that the Ray
    executor spreads all of them over the cluster at once. Every dataset is validated before any
    folder is created. Returns the experiment folders in the order of `cfgs`.

    The summary's plots are always drawn; each run's own plots only with `run_plots` (else on
    demand: `lossbench report --plots runs`), as drawing them cost more than training short runs.
    """
    reporter = reporter or Reporter()
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise InputError(
            f"--baselines {','.join(unknown)}: unknown; choose from {', '.join(BASELINES)}"
        )
    if not seeds:
        raise InputError("--seeds: give at least one seed")
    per_loss = split_params(losses, params)
    firsts = []
    for cfg in cfgs:
        first = data_for_seed(cfg.data, seeds[0])
        _positive_index(first, cfg.data.positive_label)
        validate_losses(losses, per_loss, first.class_counts("train"))
        firsts.append(first)
    specs = plan_runs(losses, baselines, seeds, per_loss)
    exp_dirs: list[Path] = []
    jobs: list[tuple[RunSpec, RunConfig, Path]] = []
    for cfg, first in zip(cfgs, firsts, strict=True):
        key = resolve_key("compare", cfg, params)
        exp_dir = None if fresh else find_experiment(out, key)
        if exp_dir is None or exp_dir in exp_dirs:
            exp_dir = new_experiment_dir(out, first.name)
            meta = experiment_meta(
                command="compare",
                cfg=cfg,
                data=first,
                losses=losses,
                baselines=baselines,
                seeds=seeds,
                params=params,
                device=device,
                key=key,
                executor=executor,
            )
            meta["name"] = exp_dir.name
            atomic_write_json(exp_dir / "experiment.json", meta)
        else:
            grow_experiment(exp_dir, losses, baselines, seeds)
        exp_dirs.append(exp_dir)
        reporter.experiment_started(exp_dir, [s.name for s in specs])
        for spec in specs:
            if run_status(exp_dir / "runs" / spec.name) == "done":
                reporter.run_skipped(spec.name)
            else:
                jobs.append((spec, cfg, exp_dir))
    if executor == "ray":
        from lossbench.executors import run_with_ray

        run_with_ray(jobs, device=device, reporter=reporter, **(executor_options or {}))
    else:
        held: dict[tuple[int, int], Any] = {
            (id(cfg), seeds[0]): first for cfg, first in zip(cfgs, firsts, strict=True)
        }
        for spec, cfg, exp_dir in jobs:
            key = (id(cfg), spec.seed)
            if key not in held:  # runs are seed-major: hold one seed's split at a time
                held = {k: v for k, v in held.items() if k[0] != id(cfg)}
                held[key] = data_for_seed(cfg.data, spec.seed)
            execute(
                spec,
                cfg,
                exp_dir,
                device=device,
                reporter=reporter,
                data=held[key],
                plots=run_plots,
            )
    from lossbench.report import build_summary

    for exp_dir in exp_dirs:
        build_summary(exp_dir)
    return exp_dirs


def single_run(
    cfg: RunConfig, *, out: Path, device: str, reporter: Reporter | None = None
) -> tuple[Path, dict[str, Any]]:
    """`lossbench run`: one loss, one seed, in a new experiment folder; returns (run dir,
    metrics)."""
    data = data_for_seed(cfg.data, cfg.train.seed)
    _positive_index(data, cfg.data.positive_label)
    validate_losses([cfg.loss], {cfg.loss: cfg.params}, data.class_counts("train"))
    key = resolve_key("run", cfg, cfg.params)
    exp_dir = new_experiment_dir(out, f"{data.name}_{cfg.loss}")
    meta = experiment_meta(
        command="run",
        cfg=cfg,
        data=data,
        losses=[cfg.loss],
        baselines=[],
        seeds=[cfg.train.seed],
        params=cfg.params,
        device=device,
        key=key,
    )
    meta["name"] = exp_dir.name
    atomic_write_json(exp_dir / "experiment.json", meta)
    spec = RunSpec(cfg.loss, cfg.train.seed, "loss", dict(cfg.params))
    run_dir = exp_dir / "runs" / spec.name
    metrics = execute_loss_run(spec, cfg, data, run_dir, device=device, reporter=reporter)
    return run_dir, metrics


def load_metrics(exp_dir: Path) -> list[dict[str, Any]]:
    """metrics.json of every run of an experiment (incomplete runs as status `incomplete`)."""
    rows = []
    for run_dir in sorted((exp_dir / "runs").glob("*")):
        if not run_dir.is_dir():
            continue
        status = run_status(run_dir)
        try:
            m = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError):
            m = {"name": run_dir.name}
        if status == "incomplete":
            m = {**m, "status": "incomplete", "reason": "no DONE file (interrupted)"}
        rows.append(m)
    return rows


__all__ = [
    "BASELINES",
    "DEFAULT_LOSSES",
    "Reporter",
    "RunSpec",
    "compare",
    "compare_datasets",
    "single_run",
    "execute",
    "run_status",
    "load_metrics",
    "TrainOptions",
]
