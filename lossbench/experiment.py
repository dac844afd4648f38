"""Run and compare: plan the runs, experiment folders and resume (SPEC 6, 8).

`compare_datasets` checks every dataset, finds or creates each experiment folder
(`lossbench.store`, with provenance from `lossbench.provenance`), tunes, and hands the runs that
are not done to an executor (`lossbench.executors`: local or Ray, one interface), which trains
each one through `runner.execute_run`; then it writes each experiment's summary.
Library code: it reports progress through a `Reporter` and never prints.
The folder layout is `lossbench.layout`'s (README "Results layout").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lossbench.config import (
    CompareOptions,
    DataOptions,
    RunConfig,
    Settings,
    check_model_fits,
)
from lossbench.errors import InputError
from lossbench.executors import Job, make_executor, ray_session
from lossbench.integrity import run_problem
from lossbench.layout import run_dir, runs_dir
from lossbench.lock import lock_experiment, lock_out
from lossbench.provenance import experiment_meta, resolve_key, user_code_hashes
from lossbench.runner import (
    Reporter,
    RunSpec,
    data_for_seed,
    execute_loss_run,
    positive_index,
)
from lossbench.store import (
    find_experiment,
    grow_experiment,
    new_experiment_dir,
    read_experiment_meta,
    run_status,
    stray_warning,
    write_experiment,
    write_loss_shapes,
)


def split_params(losses: Sequence[str], params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Distribute `--param` values to losses.

    `loss.key=value` targets one loss; a plain `key=value` goes to every selected loss that has
    that parameter (an error if none has it). Validation of values happens in `losses.get`.
    """
    from lossbench.losses.registry import accepted_params  # lazy: the losses import Keras
    from lossbench.methods import base_loss

    def takes(name: str, key: str) -> bool:
        allowed = accepted_params(base_loss(name))
        return allowed is None or key in allowed

    out: dict[str, dict[str, Any]] = {name: {} for name in losses}
    for key, value in params.items():
        if "." in key:
            target, sub = key.split(".", 1)
            if target not in out:
                raise InputError(f"param {key}: loss {target!r} is not among the selected losses")
            out[target][sub] = value
            continue
        takers = [name for name in losses if takes(name, key)]
        if not takers:
            raise InputError(
                f"param {key}: none of the selected losses ({', '.join(losses)}) has a parameter "
                f"{key!r}; use LOSS.{key}=VALUE or see `lossbench losses`"
            )
        for name in takers:
            out[name][key] = value
    return out


def validate_losses(
    losses: Sequence[str],
    per_loss_params: dict[str, dict[str, Any]],
    class_counts: np.ndarray,
    model: str = "",
) -> None:
    """Build every method's loss once so bad names or parameters fail before any folder is
    created (a method is a loss or a data-level baseline, `lossbench.methods`); a loss that
    needs a head other than plain logits cannot train the user's network `model`."""
    from lossbench.losses.registry import probe_user_loss
    from lossbench.methods import parse_method

    for name in losses:
        method = parse_method(name, allow_tuned=False)
        loss = _build_loss(method, per_loss_params, class_counts)
        probe_user_loss(method.loss, loss)  # a user's loss on a probe batch (InputError)
        if ":" in model and (loss.head != "linear" or loss.scale != 1.0):
            raise InputError(
                f"loss {name}: it needs the {loss.head} head (scale {loss.scale:g}), which "
                f"only the built-in networks build, not model {model}"
            )


def _build_loss(
    method: Any, per_loss_params: dict[str, dict[str, Any]], class_counts: Sequence[int]
) -> Any:
    """The loss of a parsed method with its parameters; InputError naming the method."""
    from lossbench.losses import get  # lazy: TensorFlow

    try:
        return get(method.loss, class_counts, **per_loss_params.get(method.name, {}))
    except (ValueError, TypeError) as exc:
        raise InputError(f"loss {method.name}: {' '.join(str(exc).split())}") from None


def shape_losses(
    methods: Sequence[str], per_loss_params: dict[str, dict[str, Any]], class_counts: Sequence[int]
) -> dict[str, Any]:
    """{loss name: loss object} for `lossbench.losses.shape.loss_shapes`: each loss once, with
    the parameters of the first method that uses it (a data-level method `ce+ros` draws `ce`, a
    tuned row is left out: its loss is drawn at the parameters the user gave)."""
    from lossbench.methods import parse_method

    out: dict[str, Any] = {}
    for name in methods:
        method = parse_method(name)
        if not method.tuned and method.loss not in out:
            out[method.loss] = _build_loss(method, per_loss_params, class_counts)
    return out


def draw_loss_shapes(
    methods: Sequence[str], params: dict[str, Any], data: DataOptions | None, png: Path
) -> tuple[Path, Path]:
    """`lossbench losses --plot`: the losses `methods` with `params` (`--param` items, as in
    compare) built from the training class counts of `data` (else the paper's illustration),
    evaluated by `loss_shapes`; writes the figure `png` and its values beside it (.csv).
    Returns (png, csv)."""
    from lossbench.losses.shape import PAPER_CLASS_NAMES, PAPER_COUNTS, loss_shapes
    from lossbench.report.figures import save_loss_shapes

    if data is None:
        counts, class_names = list(PAPER_COUNTS), list(PAPER_CLASS_NAMES)
    else:
        prepared = data_for_seed(data, data.seed)
        counts, class_names = prepared.class_counts("train"), list(prepared.class_names)
    built = shape_losses(methods, split_params(methods, params), counts)
    return save_loss_shapes(loss_shapes(built, counts, class_names), png)


def record_loss_shapes(exp_dir: Path) -> Path | None:
    """Evaluate the loss shapes (`loss_shapes`) of an experiment's losses at its training class
    counts (experiment.json) and store them for the report's loss_shape.png; None without
    losses."""
    from lossbench.losses.shape import loss_shapes

    meta = read_experiment_meta(exp_dir)
    methods = list(meta.get("losses") or [])
    counts = meta.get("class_counts_train")
    if not methods or not counts:
        return None
    built = shape_losses(methods, split_params(methods, meta.get("params") or {}), counts)
    if not built:
        return None
    table = loss_shapes(built, counts, meta.get("class_names") or None)
    return write_loss_shapes(exp_dir, table)


# ----------------------------------------------------------------------------------------------
# experiments


def _refuse_repeats(cfgs: Sequence[Settings]) -> None:
    """The same data under any spelling given twice is bad input: it would make two experiments
    of one dataset. (A loss, baseline or seed given twice: the settings edge refuses it.)"""
    from lossbench.data.pipeline import source_fingerprint

    seen: dict[str, str] = {}
    for cfg in cfgs:
        given = cfg.data.data if cfg.data.data is not None else "digits-lt"
        fingerprint = source_fingerprint(cfg.data)
        if fingerprint in seen:
            same = given if seen[fingerprint] == given else f"{seen[fingerprint]} and {given}"
            raise InputError(f"data {same}: repeated (the same data); give each dataset once")
        seen[fingerprint] = given


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


def compare_datasets(
    cfgs: Sequence[Settings],
    options: CompareOptions,
    *,
    device: str = "CPU",
    reporter: Reporter | None = None,
) -> list[Path]:
    """`compare` over one or more datasets: one experiment folder per dataset (same losses, seeds
    and options), every (loss, seed, dataset) run handed to the executor together, so that the Ray
    executor spreads all of them over the cluster at once. Every dataset is validated before any
    folder is created. Each experiment folder is locked for the whole call (`lossbench.lock`): a
    second compare reaching the same folder is refused. Returns the experiment folders in the
    order of `cfgs`. `options` come validated from the settings edge (`lossbench.settings`)."""
    with ExitStack() as locks:
        return _compare_datasets(cfgs, _Compare(options, device, reporter or Reporter()), locks)


@dataclass
class _Compare:
    """A compare's options (`CompareOptions`, validated at the settings edge), with the device its
    runs train on and the reporter it prints through; reads an option as `c.<option>`."""

    options: CompareOptions
    device: str = "CPU"
    reporter: Reporter = field(default_factory=Reporter)

    def __getattr__(self, name: str) -> Any:
        if name == "options":  # not yet set (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.options, name)


def _compare_datasets(cfgs: Sequence[Settings], c: _Compare, locks: ExitStack) -> list[Path]:
    """The body of `compare_datasets`, holding the experiment folders' locks in `locks`: check
    every dataset, find or create each experiment folder, tune, hand the runs that are not done
    to the executor (`executors.make_executor`), then write each experiment's summary.

    The summary's plots are always drawn; each run's own plots only with `run_plots` (else on
    demand: `lossbench report --plots runs`), as drawing them cost more than training short runs.

    `tune` > 0 first tunes every method with that many trials (`lossbench.tuning`, stored under
    `tuning/`, the choice in experiment.json's `tuning`), then adds a `<method>@tuned` run per
    seed with the chosen parameters beside the default runs. With `prune` every method's trials
    run under the same pruner (`tuning.pruner_spec`), recorded in experiment.json.
    """
    reporter, seeds = c.reporter, c.seeds
    per_loss, firsts = _check_compare(cfgs, c.losses, seeds, c.params)
    address = (c.executor_options or {}).get("address")
    if c.executor == "ray" and address:  # join the cluster before any folder exists
        locks.enter_context(ray_session(address))
    for first in firsts:
        _report_data_warnings(first, reporter)
    specs = plan_runs(c.losses, c.baselines, seeds, per_loss)
    exp_dirs: list[Path] = []
    jobs: list[Job] = []
    for cfg, first in zip(cfgs, firsts, strict=True):
        exp_dir, pruner = _compare_experiment(c, cfg, first, exp_dirs, locks)
        exp_dirs.append(exp_dir)
        exp_specs = specs
        if c.tune:  # each seed's tuned runs follow its default runs (one split held at a time)
            exp_specs = specs + _tune(
                exp_dir,
                cfg,
                c.losses,
                per_loss,
                seeds,
                n_trials=c.tune,
                pruner=pruner,
                device=c.device,
                executor=c.executor,
                executor_options=c.executor_options,
                reporter=reporter,
            )
            exp_specs.sort(key=lambda spec: list(seeds).index(spec.seed))
        jobs += [(spec, cfg, exp_dir) for spec in _runs_to_train(exp_dir, exp_specs, reporter)]
    make_executor(
        c.executor,
        device=c.device,
        reporter=reporter,
        plots=c.run_plots,
        options=c.executor_options,
        held={(id(cfg), seeds[0]): first for cfg, first in zip(cfgs, firsts, strict=True)},
        load=data_for_seed,
    ).run(jobs)
    _summarise(exp_dirs, reporter)
    return exp_dirs


def _compare_experiment(
    c: _Compare, cfg: Settings, first: Any, taken: list[Path], locks: ExitStack
) -> tuple[Path, dict[str, Any] | None]:
    """The experiment folder of one dataset of a compare (`_open_experiment`, by the key of its
    settings, data and user code), and the pruner its tuning runs under (None: none)."""
    from lossbench.tuning import pruner_spec

    pruner = pruner_spec(cfg.train.patience) if c.tune and c.prune else None
    key = resolve_key(
        "compare",
        cfg,
        c.params,
        c.tune,
        data_fingerprint=first.info["source_fingerprint"],
        user_code=user_code_hashes(c.losses, cfg.train.model),
        pruner=pruner,
    )
    new_meta = functools.partial(
        _experiment_meta,
        c.reporter,
        command="compare",
        cfg=cfg,
        data=first,
        losses=c.losses,
        baselines=c.baselines,
        seeds=c.seeds,
        params=c.params,
        device=c.device,
        key=key,
        executor=c.executor,
    )
    grow = (c.losses, c.baselines, c.seeds)
    exp_dir = _open_experiment(
        c.out,
        key,
        first.name,
        fresh=c.fresh,
        taken=taken,
        locks=locks,
        new_meta=new_meta,
        grow=grow,
    )
    return exp_dir, pruner


def _check_compare(
    cfgs: Sequence[Settings],
    losses: Sequence[str],
    seeds: Sequence[int],
    params: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """Check a compare before any folder exists: every dataset's first seed against the losses
    and the network (the lists themselves come checked from the settings edge). Returns (each
    method's parameters, each dataset's first split)."""
    _refuse_repeats(cfgs)  # a loss, baseline or seed given twice: the settings edge refuses it
    per_loss = split_params(losses, params)
    firsts = []
    for cfg in cfgs:
        first = data_for_seed(cfg.data, seeds[0])
        first.leakage()  # it reads every row: before TensorFlow is loaded (issue 35)
        positive_index(first, cfg.data.positive_label)
        validate_losses(losses, per_loss, first.class_counts("train"), cfg.train.model)
        check_model_fits(
            cfg.train.model,
            first.n_features,
            first.name,
            first.n_classes,
            cfg.train.model_params,
        )
        firsts.append(first)
    return per_loss, firsts


def _experiment_meta(reporter: Reporter | None, **kwargs: Any) -> dict[str, Any]:
    """experiment.json of a new experiment (`provenance.experiment_meta`), with what the user
    typed when the reporter knows it."""
    meta = experiment_meta(**kwargs)
    if reporter is not None and reporter.invocation:
        meta["invocation"] = reporter.invocation
    return meta


def _open_experiment(
    out: Path,
    key: str,
    label: str,
    *,
    fresh: bool,
    taken: list[Path],
    locks: ExitStack,
    new_meta: Callable[[], dict[str, Any]],
    grow: tuple[Sequence[str], Sequence[str], Sequence[int]],
) -> Path:
    """The experiment folder of `key` under `out`, locked in `locks` for the call: the latest one
    with that key (unless `fresh`, or `taken` by another dataset of this call), its lists grown by
    `grow` (losses, baselines, seeds), else a new one whose experiment.json is `new_meta()`.
    Finding or creating the folder is one step for every process (`lock_out`)."""
    out_lock = lock_out(out)
    locks.callback(out_lock.release)
    exp_dir = None if fresh else find_experiment(out, key)
    if exp_dir is None or exp_dir in taken:
        exp_dir = new_experiment_dir(out, label)
        locks.enter_context(lock_experiment(exp_dir))
        write_experiment(exp_dir, {**new_meta(), "name": exp_dir.name})
    else:
        locks.enter_context(lock_experiment(exp_dir))
        grow_experiment(exp_dir, *grow)
    out_lock.release()
    return exp_dir


def _runs_to_train(exp_dir: Path, specs: list[RunSpec], reporter: Reporter) -> list[RunSpec]:
    """The runs of `specs` that are not done in `exp_dir` (resume), reported: a note when the
    experiment continues, each done run skipped, each unreadable one warned about."""
    statuses = {s.name: run_status(run_dir(exp_dir, s.name)) for s in specs}
    n_done = sum(status == "done" for status in statuses.values())
    if n_done or any(runs_dir(exp_dir).glob("*")):
        reporter.note(
            f"continuing {exp_dir}: {n_done} of {len(specs)} runs done"
            + (", the others to train" if n_done < len(specs) else "")
        )
    reporter.experiment_started(exp_dir, [s.name for s in specs])
    todo = []
    for spec in specs:
        status = statuses[spec.name]
        if status == "done":
            reporter.run_skipped(spec.name)
            continue
        if status == "unreadable":
            path = run_dir(exp_dir, spec.name)
            reporter.warning(f"{path}: {run_problem(path)}; training it again")
        todo.append(spec)
    return todo


def _summarise(exp_dirs: list[Path], reporter: Reporter) -> None:
    """Each experiment's loss shapes and summary/ (tables, plots, report.html), after a warning
    naming any folder under runs/ that it does not plan."""
    from lossbench.report import build_summary  # lazy: Matplotlib

    for exp_dir in exp_dirs:
        record_loss_shapes(exp_dir)
        if (stray := stray_warning(exp_dir)) is not None:
            reporter.warning(stray)
        build_summary(exp_dir)


def _tune(
    exp_dir: Path,
    cfg: Settings,
    losses: Sequence[str],
    per_loss: dict[str, dict[str, Any]],
    seeds: Sequence[int],
    *,
    n_trials: int,
    pruner: dict[str, Any] | None,
    device: str,
    executor: str,
    executor_options: dict[str, Any] | None,
    reporter: Reporter,
) -> list[RunSpec]:
    """Tune every method of one experiment, record the choice in experiment.json, and return the
    tuned runs (`<method>@tuned`, one per seed)."""
    from lossbench.methods import TUNED
    from lossbench.tuning import TUNE_SEED, tune_methods

    chosen = tune_methods(
        exp_dir,
        data_for_seed(cfg.data, TUNE_SEED),
        cfg.train,
        list(losses),
        per_loss,
        n_trials,
        device=device,
        executor=executor,
        executor_options=executor_options,
        progress=reporter.trial_finished,
        pruner=pruner,
    )
    meta = read_experiment_meta(exp_dir)
    meta["tuning"] = {
        "trials": n_trials,
        "seed": TUNE_SEED,
        "criterion": cfg.train.select,
        "split": "validation",
        "sampler": "optuna TPESampler (seeded per trial), trial 0 = the defaults",
        "pruner": pruner,  # the same for every method; None: --no-prune
        "chosen": chosen,
    }
    write_experiment(exp_dir, meta)
    return [  # none where the defaults won: those runs would be the default runs again
        RunSpec(f"{m}{TUNED}", seed, "loss", chosen[m]["params"], chosen[m]["lr"])
        for seed in seeds
        for m in losses
        if not chosen[m].get("defaults_chosen")
    ]


def single_run(
    cfg: RunConfig,
    *,
    out: Path,
    device: str,
    reporter: Reporter | None = None,
    data: Any = None,
) -> tuple[Path, dict[str, Any]]:
    """`lossbench run`: one loss, one seed, in a new experiment folder; returns (run dir,
    metrics). `data`: the prepared data of `cfg.data` and the seed, when the caller has it."""
    data = data if data is not None else data_for_seed(cfg.data, cfg.train.seed)
    positive_index(data, cfg.data.positive_label)
    validate_losses([cfg.loss], {cfg.loss: cfg.params}, data.class_counts("train"), cfg.train.model)
    check_model_fits(
        cfg.train.model, data.n_features, data.name, data.n_classes, cfg.train.model_params
    )
    _report_data_warnings(data, reporter or Reporter())
    hashes = user_code_hashes([cfg.loss], cfg.train.model)
    key = resolve_key(
        "run", cfg, cfg.params, data_fingerprint=data.info["source_fingerprint"], user_code=hashes
    )
    exp_dir = new_experiment_dir(out, f"{data.name}_{cfg.loss}")
    meta = _experiment_meta(
        reporter,
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
    write_experiment(exp_dir, {**meta, "name": exp_dir.name})
    spec = RunSpec(cfg.loss, cfg.train.seed, "loss", dict(cfg.params))
    folder = run_dir(exp_dir, spec.name)
    metrics = execute_loss_run(spec, cfg, data, folder, device=device, reporter=reporter)
    return folder, metrics


def _report_data_warnings(data: Any, reporter: Reporter) -> None:
    for message in data.info.get("warnings", []):
        reporter.warning(f"{data.name}: {message}")
    for message in preset_drops(data.info):
        reporter.note(f"{data.name}: {message}")


def preset_drops(info: dict[str, Any]) -> list[str]:
    """What preprocessing dropped, one sentence each ("dropped 14 rows with a missing or infinite
    feature", "dropped class Infiltration (36 rows)"), from a dataset's info."""
    dropped = info.get("dropped") or {}
    lines = []
    for key, what in (
        ("rows_missing", "with a missing or infinite feature"),
        ("rows_empty", "that are empty"),
        ("rows_missing_label", "without a label"),
        ("rows_duplicate", "duplicating another row (dedupe)"),
    ):
        if dropped.get(key):
            lines.append(f"dropped {dropped[key]:,} rows {what}")
    for name, count in (dropped.get("classes") or {}).items():
        lines.append(f"dropped class {name} ({count:,} rows)")
    if dropped.get("constant_columns"):
        lines.append(
            f"dropped {len(dropped['constant_columns'])} features constant on the training split"
        )
    return lines


__all__ = [
    "Reporter",
    "RunSpec",
    "compare_datasets",
    "data_for_seed",
    "plan_runs",
    "single_run",
]
