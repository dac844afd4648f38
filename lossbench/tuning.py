"""`compare --tune N`: the same budget of N trials for every method (SPEC 9).

Each method gets its own Optuna study on the validation split of seed 0: the search space is the
loss's declared `Param` ranges (`Param.search` / `Param.search_choices`), or the learning rate for
a method whose loss has none (ce and the data-level baselines). Trial 0 is the method's default
(when it lies in the space), the rest come from the TPE sampler. A trial trains exactly like a run
of the method, and its score is the selection criterion (SPEC 5.1) at the epoch the selection rule
picks: the same number for every method, larger is better (`-nll` for `--select nll`).

A trial receives a `TuningSplit`, which holds the training and validation rows only: the test
split never reaches the objective.

Every finished trial is appended to `tuning/<method>/trials.csv` (atomically), and a restarted
tuning replays those rows into a fresh in-memory study before it asks for more. The sampler is
re-created for each trial with a seed derived from the trial number, so a trial's suggestion is a
function of the trials before it only: an interrupted tuning continues exactly where an
uninterrupted one would be, and two identical commands choose identical parameters.

Pruning (the default; `--no-prune` turns it off): every method's trials run under the same
pruner, Optuna's `MedianPruner` (`pruner_spec`). After each epoch a trial reports its best
validation selection value so far; from a warm-up of `--patience` epochs on, a trial below the
median of the completed trials at the same epoch stops and is stored with state `PRUNED`. Each
trial's reported values are stored in trials.csv (`intermediate`), so a restarted tuning replays
them and prunes exactly as an uninterrupted one. A pruned trial counts in the budget of N and is
never chosen.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lossbench.config import TrainOptions
from lossbench.errors import InputError
from lossbench.layout import trials_path
from lossbench.loss_catalog import LR_SEARCH  # log-uniform; `lossbench losses` lists it too
from lossbench.methods import parse_method, prepare_method, with_lr
from lossbench.metrics.scores import CRITERION_COLUMN  # history.csv column of each criterion
from lossbench.store import read_trials, write_trials

TUNE_SEED = 0  # the split and initial weights every trial uses


#: Completed trials before the pruner may stop one (fewer than Optuna's default 5, so that a
#: budget of 8 trials leaves most of them prunable). Chosen by measurement (README, "The full
#: release's size and pruned tuning"): replayed on the same 24 unpruned trials, MedianPruner
#: with 1 startup trial took 0.46 of their time, with 2 0.54, successive halving 0.48-0.69 and
#: Hyperband 0.83, every choice within one seed standard deviation of the unpruned one.
PRUNER_STARTUP_TRIALS = 1


def pruner_spec(patience: int) -> dict[str, Any]:
    """The pruner every method's trials run under (recorded in experiment.json's `tuning`)."""
    return {
        "name": "MedianPruner",
        "n_startup_trials": PRUNER_STARTUP_TRIALS,
        "n_warmup_steps": int(patience),
        "interval_steps": 1,
        "reported": "the best validation selection value so far, after every epoch",
    }


@dataclass(frozen=True)
class PruningHistory:
    """What the pruner of one trial compares against: the pruner's settings and the stored
    trials of the same method (state, value, {epoch: reported value}). Plain data, so that a
    Ray task receives it as the local executor does."""

    spec: dict[str, Any]
    trials: tuple[tuple[str, float, dict[int, float]], ...] = ()

    def checker(self) -> Callable[[int, float], bool]:
        """`check(epoch, value)`: report the value of a new trial, True when it is to stop."""
        import optuna

        spec = self.spec
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=spec["n_startup_trials"],
            n_warmup_steps=spec["n_warmup_steps"],
            interval_steps=spec["interval_steps"],
        )
        study = optuna.create_study(direction="maximize", pruner=pruner)
        for state, value, values in self.trials:
            study.add_trial(_frozen(state, value, values))
        trial = study.ask()

        def check(epoch: int, value: float) -> bool:
            trial.report(value, epoch)
            return trial.should_prune()

        return check


def _frozen(
    state: str,
    value: float,
    values: dict[int, float],
    params: dict[str, Any] | None = None,
    distributions: dict[str, Any] | None = None,
) -> Any:
    """A finished Optuna trial as stored in trials.csv (a pruned one keeps its last reported
    value, as Optuna's `tell` gives it)."""
    import optuna

    finite = isinstance(value, float) and math.isfinite(value)
    return optuna.trial.create_trial(
        params=params or {},
        distributions=distributions or {},
        value=value if state != "FAIL" and finite else None,
        intermediate_values=values,
        state=optuna.trial.TrialState[state],
    )


def _intermediate_to_csv(values: dict[int, float]) -> str:
    return json.dumps([[int(k), float(v)] for k, v in sorted(values.items())])


def _intermediate_from_csv(text: Any) -> dict[int, float]:
    if not isinstance(text, str) or not text:
        return {}  # a trials.csv of an older lossbench
    return {int(k): float(v) for k, v in json.loads(text)}


@dataclass(frozen=True)
class TuningSplit:
    """What a tuning trial may see: the training and validation rows of one split (no test)."""

    X_train: np.ndarray
    y_train: np.ndarray
    ids_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    ids_val: np.ndarray
    n_features: int
    n_classes: int

    @classmethod
    def of(cls, data: Any) -> TuningSplit:
        """The training and validation parts of a prepared dataset."""
        return cls(
            np.asarray(data.X_train),
            np.asarray(data.y_train),
            np.asarray(data.ids_train),
            np.asarray(data.X_val),
            np.asarray(data.y_val),
            np.asarray(data.ids_val),
            int(data.n_features),
            int(data.n_classes),
        )


def search_space(method: str) -> dict[str, Any]:
    """Optuna distributions of a method: its loss's declared ranges, else the learning rate."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from lossbench.losses.registry import declared_params

    space: dict[str, Any] = {}
    for name, param in declared_params(parse_method(method).loss).items():
        if param.search_choices:
            space[name] = CategoricalDistribution(param.search_choices)
        elif param.search is not None:
            low, high, *log = param.search
            space[name] = FloatDistribution(low, high, log=bool(log))
    return space or {"lr": FloatDistribution(*LR_SEARCH, log=True)}


def run_trial(
    method: str,
    params: dict[str, Any],
    lr: float | None,
    topts: TrainOptions,
    split: TuningSplit,
    device: str,
    pruning: PruningHistory | None = None,
) -> dict[str, Any]:
    """Train `method` with `params` (and `lr`) on `split.X_train`, select on `split.X_val`;
    returns the trial's outcome: `value` (the objective, larger is better; NaN when the run
    failed or was pruned), `pruned`, the values reported to the pruner (`intermediate`), the
    criterion's validation value, the selected epoch and how training stopped."""
    from lossbench.evaluation import history_scores, selection_key
    from lossbench.training import end_run_session, on_device

    t0 = time.perf_counter()
    criterion = topts.select
    column = CRITERION_COLUMN[criterion]
    reported: dict[int, float] = {}
    check = pruning.checker() if pruning is not None else None

    def report(epoch: int, value: float) -> bool:
        reported[epoch] = value
        return check is not None and check(epoch, value)

    try:
        with on_device(device):
            setup = prepare_method(
                parse_method(method),
                params,
                with_lr(dataclasses.replace(topts, seed=TUNE_SEED), lr),
                split.X_train,
                split.y_train,
                split.n_features,
                split.n_classes,
                device,
            )
            result = setup.trainer.fit(
                setup.X_train, setup.y_train, split.X_val, split.y_val, prune=report
            )
    except Exception as exc:  # the trial fails; the tuning goes on
        return {"value": math.nan, "reason": f"{type(exc).__name__}: {exc}"}
    finally:
        end_run_session()  # as after a run: Keras' state reset, the compiled steps kept
    pruned = result.selection.get("stopped_by") == "pruned"
    outcome = {
        "value": math.nan,
        "pruned": pruned,
        "intermediate": reported,
        column: math.nan,
        "selected_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_by": result.selection.get("stopped_by"),
        "seconds": time.perf_counter() - t0,
        "reason": result.reason,
    }
    if result.status == "ok" and result.best_epoch >= 1:
        scores = history_scores(result.history[result.best_epoch - 1])
        outcome[column] = scores[criterion]
        value = selection_key(criterion, scores)[0]
        outcome["value"] = value if math.isfinite(value) and not pruned else math.nan
    return outcome


def _in_space(dist: Any, value: Any) -> bool:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    return isinstance(value, int | float) and dist.low <= float(value) <= dist.high


class MethodStudy:
    """One method's tuning: an Optuna study replayed from, and recorded in, the store's
    `tuning/<method>/trials.csv`.

    Args:
        exp_dir: the experiment folder.
        method: the method name.
        base_params: the method's `--param` values (searched parameters override them).
        default_lr: the learning rate of the default rows.
        n_trials: the budget N.
        criterion: the selection criterion (`--select`).
        pruner: `pruner_spec(...)`, or None for no pruning.
    """

    def __init__(
        self,
        exp_dir: Path,
        method: str,
        base_params: dict[str, Any],
        default_lr: float,
        n_trials: int,
        criterion: str,
        pruner: dict[str, Any] | None = None,
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.pruner = pruner
        self.exp_dir = exp_dir
        self.method = method
        self.base_params = dict(base_params)
        self.n_trials = n_trials
        self.criterion = criterion
        self.space = search_space(method)
        self.study = optuna.create_study(direction="maximize", sampler=self._sampler(0))
        self.rows: list[dict[str, Any]] = self._replay()
        from lossbench.losses.registry import declared_params

        declared = declared_params(parse_method(method).loss)
        #: the searched values of the default rows (trial 0 when they lie in the space)
        self.defaults = {
            k: self.base_params.get(k, declared[k].default) if k != "lr" else default_lr
            for k in self.space
        }
        if not self.rows and all(_in_space(self.space[k], v) for k, v in self.defaults.items()):
            self.study.enqueue_trial(self.defaults)

    def _sampler(self, number: int) -> Any:
        import optuna

        return optuna.samplers.TPESampler(
            seed=TUNE_SEED * 1_000_003 + number,
            n_startup_trials=min(10, max(2, self.n_trials // 2)),
        )

    def _replay(self) -> list[dict[str, Any]]:
        """Add the stored trials to the study; returns them as rows."""

        rows = read_trials(self.exp_dir, self.method)
        for row in rows:
            params = {k: _from_csv(row[f"param_{k}"]) for k in self.space}
            if set(f"param_{k}" for k in self.space) - set(row) or not all(
                _in_space(self.space[k], v) for k, v in params.items()
            ):
                raise InputError(
                    f"{trials_path(self.exp_dir, self.method)}: trials of another search space; "
                    "start anew (fresh)"
                )
            state, value, values = _stored_trial(row)
            self.study.add_trial(_frozen(state, value, values, params, self.space))
        return rows

    def pruning(self) -> PruningHistory | None:
        """What the next trial's pruner compares against (None without pruning)."""
        if self.pruner is None:
            return None
        return PruningHistory(self.pruner, tuple(_stored_trial(r) for r in self.rows))

    def pending(self) -> bool:
        """True while fewer than N trials are stored."""
        return len(self.rows) < self.n_trials

    def ask(self) -> tuple[Any, dict[str, Any], float | None]:
        """The next trial: (optuna trial, loss parameters, learning rate or None)."""
        self.study.sampler = self._sampler(len(self.rows))
        trial = self.study.ask(self.space)
        values = dict(trial.params)
        lr = values.pop("lr", None)
        return trial, {**self.base_params, **values}, lr

    def tell(self, trial: Any, outcome: dict[str, Any]) -> None:
        """Record a finished trial in the study and in trials.csv."""
        import optuna

        value = outcome.get("value", math.nan)
        ok = isinstance(value, float) and math.isfinite(value)
        reported = outcome.get("intermediate") or {}
        for epoch, v in sorted(reported.items()):
            trial.report(v, epoch)
        if ok:
            state = "COMPLETE"
            self.study.tell(trial, value)
        else:
            state = "PRUNED" if outcome.get("pruned") else "FAIL"
            self.study.tell(trial, state=optuna.trial.TrialState[state])
        row = {
            "number": trial.number,
            "state": state,
            "value": value if ok else math.nan,
            **{k: v for k, v in outcome.items() if k not in ("value", "pruned", "intermediate")},
            "intermediate": _intermediate_to_csv(reported),
            **{f"param_{k}": v for k, v in trial.params.items()},
        }
        self.rows.append(row)
        write_trials(self.exp_dir, self.method, self.rows)

    def chosen(self) -> dict[str, Any]:
        """The best stored trial (the lowest number among equal values): its parameters, learning
        rate and score; the method's defaults when no trial completed."""
        done = [r for r in self.rows if r["state"] == "COMPLETE"]
        out: dict[str, Any] = {
            "criterion": self.criterion,
            "n_trials": len(self.rows),
            "n_pruned": sum(r["state"] == "PRUNED" for r in self.rows),
            "pruner": self.pruner,
            "trials_csv": str(trials_path(Path(), self.method)),
        }
        if not done:
            return {**out, "params": dict(self.base_params), "lr": None, "trial": None}
        best = max(done, key=lambda r: (float(r["value"]), -int(r["number"])))
        params = {k: _from_csv(best[f"param_{k}"]) for k in self.space}
        defaults_chosen = all(_same(params[k], self.defaults[k]) for k in self.space)
        lr = params.pop("lr", None)
        return {
            **out,
            "params": {**self.base_params, **params},
            "lr": lr,
            "trial": int(best["number"]),
            "value": float(best["value"]),
            # the defaults won: the @tuned runs would retrain the default runs, so none is made
            "defaults_chosen": defaults_chosen,
        }


def _same(a: Any, b: Any) -> bool:
    """Equal parameter values; numbers up to the float round trip of trials.csv."""
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _stored_trial(row: dict[str, Any]) -> tuple[str, float, dict[int, float]]:
    """(state, value, reported values) of a trials.csv row; a pruned trial's value is its last
    reported one, as Optuna's `tell` records it."""
    values = _intermediate_from_csv(row.get("intermediate"))
    value = float(row["value"])
    if row["state"] == "PRUNED" and values:
        value = values[max(values)]
    return str(row["state"]), value, values


def _from_csv(value: Any) -> Any:
    """A parameter value as read back from trials.csv (NumPy scalars to Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


def tune_methods(
    exp_dir: Path,
    data: Any,
    topts: TrainOptions,
    methods: list[str],
    per_method_params: dict[str, dict[str, Any]],
    n_trials: int,
    *,
    device: str,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    progress: Callable[[str, int, int, dict[str, Any]], None] | None = None,
    pruner: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Tune every method with N trials on `data`'s validation split (seed 0's split); returns
    each method's chosen parameters (`MethodStudy.chosen`). Resumes from stored trials. Every
    method's trials run under the same `pruner` (`pruner_spec`; None: no pruning).

    `progress(method, trials stored, trials planned, trials.csv row)` follows each trial."""
    split = TuningSplit.of(data)
    studies = [
        MethodStudy(
            exp_dir,
            m,
            per_method_params.get(m, {}),
            topts.lr,
            n_trials,
            topts.select,
            pruner,
        )
        for m in methods
    ]
    total = n_trials * len(studies)

    def told(study: MethodStudy) -> None:
        if progress is not None:
            progress(study.method, sum(len(s.rows) for s in studies), total, study.rows[-1])

    if executor == "ray":
        _tune_with_ray(studies, topts, split, told, **(executor_options or {}))
    else:
        for study in studies:
            while study.pending():
                trial, params, lr = study.ask()
                outcome = run_trial(
                    study.method, params, lr, topts, split, device, pruning=study.pruning()
                )
                study.tell(trial, outcome)
                told(study)
    return {s.method: s.chosen() for s in studies}


def _trial_task(
    method: str,
    params: dict[str, Any],
    lr: float | None,
    topts: TrainOptions,
    split: TuningSplit,
    pruning: PruningHistory | None = None,
) -> dict[str, Any]:
    """Body of one Ray task: one tuning trial on the worker's device."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lossbench.training import configure_device

    device = configure_device(topts.device)
    return run_trial(method, params, lr, topts, split, device, pruning=pruning)


def _tune_with_ray(
    studies: list[MethodStudy],
    topts: TrainOptions,
    split: TuningSplit,
    told: Callable[[MethodStudy], None],
    *,
    address: str | None = None,
    gpus_per_run: float = 0,
) -> None:
    """Trials as Ray tasks: the studies advance in rounds, one trial of every unfinished method
    per round in parallel; each study sees its own trials in order, so the choice is the same
    as the local executor's."""
    from lossbench.executors import ray_session

    with ray_session(address) as ray:
        remote = ray.remote(num_cpus=1, num_gpus=gpus_per_run, max_retries=0)(_trial_task)
        split_ref = ray.put(split)
        while any(s.pending() for s in studies):
            round_ = [(s, *s.ask()) for s in studies if s.pending()]
            refs = [
                remote.remote(s.method, p, lr, topts, split_ref, s.pruning())
                for s, _, p, lr in round_
            ]
            for (study, trial, _, _), ref in zip(round_, refs, strict=True):
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # RayTaskError, WorkerCrashedError, ...
                    reason = str(exc).splitlines()[0]
                    outcome = {"value": math.nan, "reason": f"ray task failed: {reason}"}
                study.tell(trial, outcome)
                told(study)


__all__ = [
    "CRITERION_COLUMN",
    "LR_SEARCH",
    "TUNE_SEED",
    "MethodStudy",
    "PRUNER_STARTUP_TRIALS",
    "PruningHistory",
    "TuningSplit",
    "pruner_spec",
    "run_trial",
    "search_space",
    "tune_methods",
]
