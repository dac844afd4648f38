"""One run: a loss or a scikit-learn baseline trained on one prepared split, and its run folder.

`execute_run` hands a run to `execute_loss_run` or `execute_baseline_run` (the one place that
tells them apart; both executors call it), which write its folder through `lossbench.store`
(config.json, history.csv, predictions, metrics.json, ..., DONE last); every failure inside a run
is caught here, logged to the run's log.txt and recorded as a failed run.
Library code: it reports progress through a `Reporter` and never prints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench.config import DataOptions, Settings
from lossbench.data.memory import give_back_freed_memory, release_mapped
from lossbench.errors import InputError, RunError
from lossbench.layout import LOG, tensorboard_dir
from lossbench.store import (
    mark_done,
    prepare_run_dir,
    run_log,
    run_name,
    save_model,
    write_failed_run,
    write_history,
    write_run_config,
)


class Reporter:
    """Progress callbacks; the CLI subclasses it to draw rich progress bars. Defaults do nothing.

    `invocation` ({"command_line", "config_file", "config_text"}) is what the user typed, recorded
    in a new experiment's experiment.json when the caller knows it (the CLI does)."""

    invocation: dict[str, Any] | None = None

    def note(self, message: str) -> None: ...
    def experiment_started(self, exp_dir: Path, runs: list[str]) -> None: ...
    def run_skipped(self, name: str) -> None: ...
    def trial_finished(self, method: str, done: int, total: int, row: dict[str, Any]) -> None: ...
    def run_started(self, name: str, epochs: int) -> None: ...
    def epoch_end(self, name: str, row: dict[str, Any]) -> None: ...
    def run_finished(self, name: str, metrics: dict[str, Any]) -> None: ...
    def warning(self, message: str) -> None: ...


@dataclass(frozen=True)
class RunSpec:
    """One (method or baseline, seed) run of an experiment; `loss` is the method name
    (`lossbench.methods`: a loss, `<loss>+<sampler>`, `<method>@tuned`), `lr` a tuned learning
    rate (None: the configured one)."""

    loss: str
    seed: int
    kind: str = "loss"  # loss | baseline
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    lr: float | None = None

    @property
    def name(self) -> str:
        return run_name(self.loss, self.seed)


class _RunGuard:
    """The one guard of a run, loss or baseline: the run's log.txt while it lasts, and any error
    inside (except bad input, `InputError`, which ends the command) logged with its traceback and
    recorded as a failed run instead of propagating; `after` runs last in every case.

        guard = _RunGuard(run_dir, base, reporter)
        with guard as logger:
            ...
            return metrics
        return guard.failed  # reached only when the guard recorded a failure
    """

    def __init__(
        self,
        run_dir: Path,
        base: dict[str, Any],
        reporter: Reporter,
        after: Callable[[], None] | None = None,
    ) -> None:
        self.run_dir, self.base, self.reporter, self.after = run_dir, base, reporter, after
        self.failed: dict[str, Any] = {}

    def __enter__(self) -> logging.Logger:
        self.logger = logging.getLogger(f"lossbench.run.{self.base['name']}.{id(self.run_dir)}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.handler = run_log(self.run_dir)
        self.logger.addHandler(self.handler)
        return self.logger

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            if not isinstance(exc, Exception) or isinstance(exc, InputError):
                return False
            if isinstance(exc, RunError):  # the data do not allow this run: no bug
                self.logger.error("failed: %s", exc)
                reason = str(exc)
            else:
                self.logger.error("internal error:\n%s", traceback.format_exc())
                reason = f"internal error: {type(exc).__name__}: {exc} (traceback in {LOG})"
            self.failed = _failed(self.run_dir, self.base, reason, self.reporter)
            return True
        finally:
            self.logger.removeHandler(self.handler)
            self.handler.close()
            if self.after is not None:
                self.after()


def positive_index(data: Any, positive_label: str | None) -> int | None:
    """The index of the positive class of binary `data` (`positive_label`, else the IDS
    convention's attack class under `--task binary`), or None: no positive class.

    Raises:
        InputError: a positive label on data that are not binary, or that is not a class.
    """
    if positive_label is None and data.info.get("task") == "binary":
        from lossbench.data.ids import POSITIVE

        positive_label = POSITIVE  # --task binary: the IDS convention, attack is positive
    if positive_label is None:
        return None
    if data.n_classes != 2:
        raise InputError(
            f"positive_label {positive_label!r}: {data.name} has {data.n_classes} classes; "
            "the positive class applies to binary tasks only"
        )
    if positive_label not in data.class_names:
        raise InputError(
            f"positive_label {positive_label!r}: not a class; classes are "
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
    from lossbench.evaluation import with_unseen_classes, write_predictions, write_run_evaluation

    # --test-data classes never seen in training: columns the model cannot predict (errors)
    unseen = list(data.info.get("test_only_classes") or [])
    names = list(data.class_names) + unseen
    test, val = (with_unseen_classes(split, len(unseen)) for split in (test, val))
    write_predictions(run_dir, test, val)
    give_back_freed_memory(arrow=True)  # the prediction tables' Arrow buffers, before the metrics
    metrics = {**metrics_base, "status": "ok", "reason": None, "far_targets": list(far_targets)}
    metrics["class_names"] = names
    # the split's own class counts (before any resampling of a method): the head/medium/tail
    # groups come from them, the same for every method
    metrics["split_class_counts"] = {
        split: np.bincount(getattr(data, f"y_{split}"), minlength=len(names)).astype(int).tolist()
        for split in ("train", "val", "test")
    }
    return write_run_evaluation(run_dir, names, metrics, test, val, positive)


def _finish(run_dir: Path, logger: logging.Logger, plots: bool = True) -> None:
    from lossbench.report import run_plots  # lazy: Matplotlib

    if plots:
        try:
            run_plots(run_dir)
        except Exception:  # a plot must never cost the numbers
            logger.error("plotting failed:\n%s", traceback.format_exc())
    mark_done(run_dir)


def execute_loss_run(
    spec: RunSpec,
    cfg: Settings,
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
    from lossbench.methods import parse_method, prepare_method, with_lr
    from lossbench.training import end_run_session, on_device

    reporter = reporter or Reporter()
    prepare_run_dir(run_dir)
    topts = with_lr(dataclasses.replace(cfg.train, seed=spec.seed), spec.lr)
    base = {
        "name": spec.name,
        "loss": spec.loss,
        "kind": "loss",
        "seed": spec.seed,
        "class_names": list(data.class_names),
        "precision": topts.precision,
    }
    # after: Keras' global state reset; TensorFlow's compiled functions kept
    guard = _RunGuard(run_dir, base, reporter, after=end_run_session)
    with guard as logger:
        logger.info(
            "run %s: loss=%s params=%s seed=%d device=%s",
            spec.name,
            spec.loss,
            spec.params,
            spec.seed,
            device,
        )
        with on_device(device):
            setup = prepare_method(
                parse_method(spec.loss),
                spec.params,
                topts,
                data.X_train,
                data.y_train,
                data.n_features,
                data.n_classes,
                device,
                data.class_names,
            )
            base["train_class_counts"] = setup.train_class_counts
            write_run_config(run_dir, _loss_config(spec, cfg, topts, data, setup, base, device))
            result = _fit(spec, setup, data, run_dir, topts, logger, reporter)
            fitted = ("learned_params", "epochs_run", "best_epoch", "train_seconds", "selection")
            base.update({key: getattr(result, key) for key in fitted}, device=device)
            if result.status != "ok":
                logger.error("run failed: %s", result.reason)
                return _failed(run_dir, base, result.reason, reporter)
            # a memory-mapped training split (the cache's) is not read again by this run: its
            # pages leave the process's memory before the evaluation's arrays come (issue 35)
            release_mapped(data.X_train)
            metrics = _evaluate_loss_run(run_dir, data, setup, base, cfg, topts)
            logger.info("test summary: %s", json.dumps(metrics["summary"], default=str))
        _finish(run_dir, logger, plots)
        reporter.run_finished(spec.name, metrics)
        return metrics
    return guard.failed


def _loss_config(
    spec: RunSpec,
    cfg: Settings,
    topts: Any,
    data: Any,
    setup: Any,
    base: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """config.json of a loss run: what it trains with, and the checksums of its start."""
    return {
        **base,
        "params": spec.params,
        "train": dataclasses.asdict(topts),
        "data": dataclasses.asdict(cfg.data),
        "dataset": data.name,
        "data_fingerprint": data.fingerprint,
        "initial_weights_sha256": setup.initial_weights_sha256,
        "batch_order_sha256": hashlib.sha256(
            _epoch0_order(spec.seed, setup.y_train, setup.trainer.epoch_order)
        ).hexdigest(),
        "device": device,
        "loss_config": setup.loss.get_config(),
        **_user_code(spec.loss, topts.model),
    }


def _fit(
    spec: RunSpec,
    setup: Any,
    data: Any,
    run_dir: Path,
    topts: Any,
    logger: logging.Logger,
    reporter: Reporter,
) -> Any:
    """Train the prepared method on `data` (validation selects the epoch), logging and
    reporting each epoch; writes history.csv. Returns the trainer's result."""
    from lossbench.training import tensorboard_writer

    writer = tensorboard_writer(tensorboard_dir(run_dir)) if topts.tensorboard else None
    reporter.run_started(spec.name, topts.epochs)
    result = setup.trainer.fit(
        setup.X_train,
        setup.y_train,
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
    write_history(run_dir, pd.DataFrame(result.history))
    return result


def _evaluate_loss_run(
    run_dir: Path, data: Any, setup: Any, base: dict[str, Any], cfg: Settings, topts: Any
) -> dict[str, Any]:
    """Predict the test and validation splits, write the evaluation files and the model;
    returns metrics.json's content."""
    from lossbench.evaluation import SplitPredictions, posterior_np
    from lossbench.models import portable

    splits = []
    for ids, X, y in _test_and_val(data):
        z = setup.trainer.predict_logits(X)
        release_mapped(X)  # read in full; a memory-mapped split leaves the process's memory
        splits.append(SplitPredictions(ids, np.asarray(y), z, posterior_np(setup.loss, z)))
    metrics = write_evaluation(
        run_dir,
        data,
        *splits,
        positive_index(data, cfg.data.positive_label),
        base,
        topts.far_targets,
    )
    # The model is not compiled: a compile per run re-serialised the loss and the optimizer, whose
    # slots doubled the file, for a file that is read back for inference. It is saved in standard
    # layers (`models.portable`), so plain keras.saving.load_model reads it without lossbench.
    save_model(run_dir, portable(setup.model).save)
    return metrics


def _failed(run_dir: Path, base: dict[str, Any], reason: str, reporter: Reporter) -> dict[str, Any]:
    """Record the run as failed (metrics.json, no DONE) and report it; returns its metrics."""
    metrics = write_failed_run(run_dir, base, reason)
    reporter.run_finished(base["name"], metrics)
    return metrics


def _epoch0_order(seed: int, y_train: np.ndarray, order: Any = None) -> bytes:
    """The first epoch's training-row order (`Trainer.epoch_order`, else the seeded
    permutation), as bytes to hash."""
    from lossbench.training import epoch_permutation  # lazy: TensorFlow

    rows = order(0, y_train) if order is not None else epoch_permutation(seed, 0, len(y_train))
    return np.asarray(rows).astype(np.int64).tobytes()


def _test_and_val(data: Any) -> tuple[tuple[Any, Any, Any], ...]:
    """(row ids, features, labels) of the test split, then of the validation split: the two
    splits whose predictions a run stores (SPEC 5.1)."""
    return (
        (data.ids_test, data.X_test, data.y_test),
        (data.ids_val, data.X_val, data.y_val),
    )


def _fmt_row(row: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def execute_baseline_run(
    spec: RunSpec, cfg: Settings, data: Any, run_dir: Path, reporter: Reporter, plots: bool
) -> dict[str, Any]:
    """Train a scikit-learn baseline (`lossbench.baselines`: lr, rf, hgb, prior, stump) on the
    same split; same files minus history."""
    from lossbench.baselines import fit_baseline
    from lossbench.evaluation import SplitPredictions

    prepare_run_dir(run_dir)
    base = {
        "name": spec.name,
        "loss": spec.loss,
        "kind": "baseline",
        "seed": spec.seed,
        "class_names": list(data.class_names),
    }
    guard = _RunGuard(run_dir, base, reporter)
    with guard as logger:
        t0 = time.perf_counter()
        clf, learned = fit_baseline(
            spec.loss,
            spec.seed,
            data.X_train,
            data.y_train,
            data.X_val,
            data.y_val,
            data.n_classes,
            data.feature_names,
        )
        fit_seconds = time.perf_counter() - t0
        write_run_config(
            run_dir,
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
        splits = []
        for ids, X, y in _test_and_val(data):
            proba = np.zeros((len(y), data.n_classes))
            proba[:, clf.classes_.astype(int)] = clf.predict_proba(np.asarray(X))
            proba /= proba.sum(axis=1, keepdims=True)  # float32 models: rows sum to 1 in float64
            splits.append(SplitPredictions(ids, np.asarray(y), None, proba))
        base.update(
            learned_params=learned,
            train_class_counts=data.class_counts("train").astype(int).tolist(),
            epochs_run=0,
            best_epoch=0,
            train_seconds=fit_seconds,
            device="CPU",
        )
        metrics = write_evaluation(
            run_dir,
            data,
            *splits,
            positive_index(data, cfg.data.positive_label),
            base,
            cfg.train.far_targets,
        )
        _finish(run_dir, logger, plots)
        reporter.run_finished(spec.name, metrics)
        return metrics
    return guard.failed


def data_for_seed(opts: DataOptions, seed: int) -> Any:
    """The prepared split of one seed (served from the cache after the first time)."""
    from lossbench.data import prepare  # lazy: the data layer loads pandas readers, pyarrow

    return prepare(dataclasses.replace(opts, seed=seed))


def execute_run(
    spec: RunSpec,
    cfg: Settings,
    data: Any,
    run_dir: Path,
    *,
    device: str | None,
    reporter: Reporter | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Run one planned run, a loss or a baseline, on its seed's prepared split `data` into
    `run_dir`: the one place that tells the two apart (both executors call it). `device`: the
    device a loss run trains on; None configures `cfg.train.device` in this process first (a
    Ray worker), which a baseline run never needs."""
    if spec.kind == "baseline":
        return execute_baseline_run(spec, cfg, data, run_dir, reporter or Reporter(), plots)
    if device is None:
        from lossbench.training import configure_device  # lazy: TensorFlow

        device = configure_device(cfg.train.device)
    return execute_loss_run(spec, cfg, data, run_dir, device=device, reporter=reporter, plots=plots)


def _user_code(method: str, model: str) -> dict[str, Any]:
    """config.json's `user_code` (spec, file, SHA-256) when the run's loss is user code, and
    `user_model` when its network is."""
    from lossbench.losses.registry import provenance

    found = provenance([method])
    out = {"user_code": next(iter(found.values()))} if found else {}
    if ":" in model:
        from lossbench.models import user_model

        out["user_model"] = user_model(model).provenance()
    return out
