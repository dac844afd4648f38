"""Run and compare: plan the runs, experiment folders, provenance and resume (SPEC 6, 8).

Each planned run goes to an executor (local: `runner.execute` in this process; Ray:
`executors.run_with_ray`); `runner` trains one run and writes its folder.
Library code: it reports progress through a `Reporter` and never prints.
The folder layout is documented in the README ("Results layout").
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import platform
import subprocess
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench._version import __version__
from lossbench.baselines import BASELINES
from lossbench.config import (
    CompareOptions,
    DataOptions,
    RunConfig,
    Settings,
    TrainOptions,
    check_model_fits,
    run_defining,
)
from lossbench.errors import InputError
from lossbench.executors import run_with_ray
from lossbench.integrity import run_problem
from lossbench.io import atomic_write_json
from lossbench.lock import lock_experiment, lock_out
from lossbench.runner import (
    Reporter,
    RunSpec,
    _positive_index,
    data_for_seed,
    execute,
    execute_baseline_run,
    execute_loss_run,
    write_evaluation,
)
from lossbench.store import (
    find_experiment,
    load_metrics,
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
# folders and provenance


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    import sklearn

    from lossbench.train import framework_versions  # lazy: TensorFlow

    return {
        "lossbench": __version__,
        "python": platform.python_version(),
        **framework_versions(),  # tensorflow, keras
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


# ----------------------------------------------------------------------------------------------
# experiments


def experiment_meta(
    *,
    command: str,
    cfg: Settings,
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
        "data_fingerprint": data.info["source_fingerprint"],  # the one in `key`
        "device": device,
        "executor": executor,
        "user_code": _user_provenance(losses, cfg.train.model),
        "versions": versions(),
        "git_commit": git_commit(),
    }


def user_code_hashes(losses: Sequence[str], model: str = "") -> dict[str, str | None]:
    """The SHA-256 of the source of each user loss among `losses` (run name -> hash) and of the
    user's network (under "--model"); empty without user code: the experiment key's
    `user_code`, so that editing the code starts a new experiment."""
    return {name: rec["sha256"] for name, rec in _user_provenance(losses, model).items()}


def _user_provenance(losses: Sequence[str], model: str = "") -> dict[str, Any]:
    """experiment.json's `user_code`: spec, file and SHA-256 of each user loss (by run name)
    and of the user's network (under "--model")."""
    from lossbench.losses.registry import provenance

    out = provenance(losses)
    if ":" in model:
        from lossbench.models import user_model

        out["--model"] = user_model(model).provenance()
    return out


def resolve_key(
    command: str,
    cfg: Settings,
    params: dict[str, Any],
    tune: int = 0,
    *,
    data_fingerprint: str | None = None,
    user_code: dict[str, str | None] | None = None,
    pruner: dict[str, Any] | None = None,
) -> str:
    """Configuration key of an experiment: the same data and settings continue the same experiment.

    The key leaves out the seeds and the loss and baseline lists, so that a compare with more seeds
    or more losses grows the existing experiment (training only the new runs) instead of starting
    a new one; `--fresh` starts a new one. A tuned compare (`tune` trials) is its own experiment,
    and so is one with user code of other sources (`user_code`, `user_code_hashes`), and a pruned
    one (`pruner`).
    The data enter by their fingerprint (`data_fingerprint`, by default computed from `cfg.data`:
    `pipeline.source_fingerprint`), not by the spelling of their path: changed data under the
    same path start a new experiment, the same file under another spelling continues one."""
    if data_fingerprint is None:
        from lossbench.data.pipeline import source_fingerprint

        data_fingerprint = source_fingerprint(cfg.data)
    return config_key(
        {
            "command": command,
            "data": {**run_defining(cfg.data), "data": data_fingerprint},
            "train": run_defining(cfg.train),
            "params": params,
            **({"tune": tune} if tune else {}),
            **({"user_code": user_code} if user_code else {}),
            **({"pruner": pruner} if tune and pruner else {}),
        }
    )


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


def _same_source(data: Any, exp_dir: Path) -> None:
    """Refuse a seed's data whose fingerprint differs from the experiment's (the file changed
    while the compare ran)."""
    expected = read_experiment_meta(exp_dir).get("data_fingerprint")
    if data.info["source_fingerprint"] != expected:
        raise InputError(
            f"{data.info.get('sources', [data.name])[0]}: the data changed while the compare ran "
            f"(fingerprint {data.info['source_fingerprint']}, experiment {exp_dir.name} has "
            f"{expected}); run the compare again"
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
        return _compare_datasets(
            cfgs,
            locks=locks,
            losses=list(options.losses),
            baselines=list(options.baselines),
            seeds=list(options.seeds),
            params=dict(options.params),
            out=options.out,
            fresh=options.fresh,
            device=device,
            reporter=reporter,
            executor=options.executor,
            executor_options=options.executor_options,
            run_plots=options.run_plots,
            tune=options.tune,
            prune=options.prune,
        )


def _compare_datasets(
    cfgs: Sequence[Settings],
    *,
    locks: ExitStack,
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
    tune: int = 0,
    prune: bool = True,
) -> list[Path]:
    """The body of `compare_datasets`, holding the experiment folders' locks in `locks`.

    The summary's plots are always drawn; each run's own plots only with `run_plots` (else on
    demand: `lossbench report --plots runs`), as drawing them cost more than training short runs.

    `tune` > 0 first tunes every method with that many trials (`lossbench.tuning`, stored under
    `tuning/`, the choice in experiment.json's `tuning`), then adds a `<method>@tuned` run per
    seed with the chosen parameters beside the default runs. With `prune` every method's trials
    run under the same pruner (`tuning.pruner_spec`), recorded in experiment.json.
    """
    from lossbench.tuning import pruner_spec

    reporter = reporter or Reporter()
    _refuse_repeats(cfgs)
    per_loss = split_params(losses, params)
    firsts = []
    for cfg in cfgs:
        first = data_for_seed(cfg.data, seeds[0])
        _positive_index(first, cfg.data.positive_label)
        validate_losses(losses, per_loss, first.class_counts("train"), cfg.train.model)
        check_model_fits(
            cfg.train.model,
            first.n_features,
            first.name,
            first.n_classes,
            cfg.train.model_params,
        )
        firsts.append(first)
    address = (executor_options or {}).get("address")
    if executor == "ray" and address:  # join the cluster before any folder exists
        from lossbench.executors import ray_session

        locks.enter_context(ray_session(address))
    for first in firsts:
        _report_data_warnings(first, reporter)
    specs = plan_runs(losses, baselines, seeds, per_loss)
    exp_dirs: list[Path] = []
    jobs: list[tuple[RunSpec, Settings, Path]] = []
    for cfg, first in zip(cfgs, firsts, strict=True):
        fingerprint = first.info["source_fingerprint"]
        hashes = user_code_hashes(losses, cfg.train.model)
        pruner = pruner_spec(cfg.train.patience) if tune and prune else None
        key = resolve_key(
            "compare",
            cfg,
            params,
            tune,
            data_fingerprint=fingerprint,
            user_code=hashes,
            pruner=pruner,
        )
        out_lock = lock_out(out)  # finding or creating the folder is one step for every process
        locks.callback(out_lock.release)
        exp_dir = None if fresh else find_experiment(out, key)
        if exp_dir is None or exp_dir in exp_dirs:
            exp_dir = new_experiment_dir(out, first.name)
            locks.enter_context(lock_experiment(exp_dir))
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
            if reporter.invocation:
                meta["invocation"] = reporter.invocation
            write_experiment(exp_dir, meta)
        else:
            locks.enter_context(lock_experiment(exp_dir))
            grow_experiment(exp_dir, losses, baselines, seeds)
        out_lock.release()
        exp_dirs.append(exp_dir)
        exp_specs = specs
        if tune:  # each seed's tuned runs follow its default runs (one split held at a time)
            exp_specs = specs + _tune(
                exp_dir,
                cfg,
                losses,
                per_loss,
                seeds,
                n_trials=tune,
                pruner=pruner,
                device=device,
                executor=executor,
                executor_options=executor_options,
                reporter=reporter,
            )
            exp_specs.sort(key=lambda spec: list(seeds).index(spec.seed))
        statuses = {s.name: run_status(exp_dir / "runs" / s.name) for s in exp_specs}
        n_done = sum(status == "done" for status in statuses.values())
        if n_done or any((exp_dir / "runs").glob("*")):
            reporter.note(
                f"continuing {exp_dir}: {n_done} of {len(exp_specs)} runs done"
                + (", the others to train" if n_done < len(exp_specs) else "")
            )
        reporter.experiment_started(exp_dir, [s.name for s in exp_specs])
        for spec in exp_specs:
            status = statuses[spec.name]
            if status == "done":
                reporter.run_skipped(spec.name)
            else:
                if status == "unreadable":
                    why = run_problem(exp_dir / "runs" / spec.name)
                    reporter.warning(f"{exp_dir / 'runs' / spec.name}: {why}; training it again")
                jobs.append((spec, cfg, exp_dir))
    if executor == "ray":
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
                _same_source(held[key], exp_dir)
            execute(
                spec,
                cfg,
                exp_dir,
                device=device,
                reporter=reporter,
                data=held[key],
                plots=run_plots,
            )
    from lossbench.report import build_summary  # lazy: Matplotlib

    for exp_dir in exp_dirs:
        record_loss_shapes(exp_dir)
        if (stray := stray_warning(exp_dir)) is not None:
            reporter.warning(stray)
        build_summary(exp_dir)
    return exp_dirs


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
    _positive_index(data, cfg.data.positive_label)
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
    if reporter is not None and reporter.invocation:
        meta["invocation"] = reporter.invocation
    write_experiment(exp_dir, meta)
    spec = RunSpec(cfg.loss, cfg.train.seed, "loss", dict(cfg.params))
    run_dir = exp_dir / "runs" / spec.name
    metrics = execute_loss_run(spec, cfg, data, run_dir, device=device, reporter=reporter)
    return run_dir, metrics


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
    "BASELINES",
    "Reporter",
    "RunSpec",
    "compare_datasets",
    "single_run",
    "execute",
    "execute_baseline_run",
    "execute_loss_run",
    "write_evaluation",
    "data_for_seed",
    "run_status",
    "load_metrics",
    "TrainOptions",
]
