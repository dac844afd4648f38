"""The executors (SPEC 8): where the planned runs of a compare train, behind one interface.

`Executor.run(jobs)` trains every job, a (`RunSpec`, `Settings`, experiment folder) triple, and
leaves its run folder under the experiment's runs/; `make_executor` picks one by name. Both call
`runner.execute_run`, the one place that tells a loss run from a baseline run.

- `LocalExecutor`: in this process, one run after another, seed-major: it holds one seed's
  prepared split per dataset at a time, and refuses a seed whose data changed after the
  experiment began.
- `RayExecutor`: each (loss, seed, dataset) run becomes a Ray task. The driver prepares each
  seed's split once and hands it to the tasks through Ray's object store, so workers need neither
  the data files nor a shared filesystem. A task trains in a private temporary folder and returns
  the run's files as bytes; the driver stores them in the experiment's `runs/<name>/` atomically,
  DONE last, exactly as the local executor leaves them. A task that raises or whose worker dies
  is recorded as a failed run (metrics.json with the reason, no DONE); the other tasks carry on,
  and rerunning the command retries only what is missing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lossbench.config import DataOptions, Settings
from lossbench.errors import InputError
from lossbench.layout import run_dir as layout_run_dir
from lossbench.runner import Reporter, RunSpec, data_for_seed, execute_run
from lossbench.store import read_experiment_meta, read_run_files, write_failed_task, write_run_files

#: One planned run: what it trains, with which settings, in which experiment folder.
Job = tuple[RunSpec, Settings, Path]


class Executor(Protocol):
    """Trains planned runs and stores each one's run folder (failed runs included)."""

    def run(self, jobs: Sequence[Job]) -> None:
        """Train every job; a run that fails is recorded as failed, the others carry on."""
        ...


@dataclass
class LocalExecutor:
    """Every run in this process, in the order given (seed-major: `experiment.plan_runs`).

    `held`: splits the caller prepared already, by (id of the job's settings, seed); `load`
    prepares the others (`runner.data_for_seed`)."""

    device: str
    reporter: Reporter
    plots: bool = False
    held: dict[tuple[int, int], Any] = field(default_factory=dict)
    load: Callable[[DataOptions, int], Any] = data_for_seed

    def run(self, jobs: Sequence[Job]) -> None:
        held = dict(self.held)
        for spec, cfg, exp_dir in jobs:
            key = (id(cfg), spec.seed)
            if key not in held:  # runs are seed-major: hold one seed's split at a time
                held = {k: v for k, v in held.items() if k[0] != id(cfg)}
                held[key] = self.load(cfg.data, spec.seed)
                same_source(held[key], exp_dir)
            execute_run(
                spec,
                cfg,
                held[key],
                layout_run_dir(exp_dir, spec.name),
                device=self.device,
                reporter=self.reporter,
                plots=self.plots,
            )


@dataclass
class RayExecutor:
    """Every run as a Ray task (`run_with_ray`): on the cluster at `address`, else on a local
    Ray instance started for the call; `gpus_per_run` GPUs reserved for each task."""

    device: str
    reporter: Reporter
    address: str | None = None
    gpus_per_run: float = 0

    def run(self, jobs: Sequence[Job]) -> None:
        run_with_ray(
            list(jobs),
            device=self.device,
            reporter=self.reporter,
            address=self.address,
            gpus_per_run=self.gpus_per_run,
        )


def make_executor(
    name: str,
    *,
    device: str,
    reporter: Reporter,
    plots: bool = False,
    options: dict[str, Any] | None = None,
    held: dict[tuple[int, int], Any] | None = None,
    load: Callable[[DataOptions, int], Any] = data_for_seed,
) -> Executor:
    """The executor called `name` ("local" or "ray"). `options`: the Ray executor's (address,
    gpus_per_run); `plots`, `held` and `load`: the local executor's (a Ray task always draws its
    run's plots, in the worker)."""
    if name == "ray":
        return RayExecutor(device, reporter, **(options or {}))
    return LocalExecutor(device, reporter, plots, dict(held or {}), load)


def same_source(data: Any, exp_dir: Path) -> None:
    """Refuse a seed's data whose fingerprint differs from the experiment's (the file changed
    while the compare ran).

    Raises:
        InputError: naming the data's file and the two fingerprints.
    """
    expected = read_experiment_meta(exp_dir).get("data_fingerprint")
    if data.info["source_fingerprint"] != expected:
        raise InputError(
            f"{data.info.get('sources', [data.name])[0]}: the data changed while the compare ran "
            f"(fingerprint {data.info['source_fingerprint']}, experiment {exp_dir.name} has "
            f"{expected}); run the compare again"
        )


def _task(
    spec: RunSpec, cfg: Settings, data: Any, user_code: Any = None
) -> tuple[dict, dict[str, bytes]]:
    """Body of one Ray task: train in a temporary folder (`runner.execute_run`, which configures
    the worker's device for a loss run), return metrics and the files. `user_code`: the user's
    losses and network the run needs (`_user_code`), registered in the worker first."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if user_code:
        from lossbench.losses.registry import unpack_shipments
        from lossbench.models import unpack_model

        unpack_shipments(user_code["losses"])
        if user_code["model"] is not None:
            unpack_model(user_code["model"])

    with tempfile.TemporaryDirectory(prefix="lossbench-ray-") as tmp:
        run_dir = Path(tmp) / spec.name
        metrics = execute_run(spec, cfg, data, run_dir, device=None)
        files = read_run_files(run_dir)
    return metrics, files


def _user_code(spec: Any, cfg: Settings) -> dict[str, Any] | None:
    """The user's loss and network a run needs, as its Ray task carries them (None: none)."""
    if spec.kind != "loss":
        return None
    from lossbench.losses.registry import shipments
    from lossbench.losses.user import shipment
    from lossbench.models import user_model

    losses = shipments([spec.loss])
    model = shipment(user_model(cfg.train.model)) if ":" in cfg.train.model else None
    return {"losses": losses, "model": model} if losses or model is not None else None


def _record_failure(run_dir: Path, spec: Any, cfg_classes: list[str], reason: str) -> dict:
    base = {
        "name": spec.name,
        "loss": spec.loss,
        "kind": spec.kind,
        "seed": spec.seed,
        "class_names": cfg_classes,
    }
    return write_failed_task(run_dir, base, reason)


#: Seconds to wait for a Ray head node to accept a connection before giving up.
CONNECT_TIMEOUT_S = 10.0


def check_address(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, before any folder exists, when a Ray `--address HOST:PORT` cannot be reached.

    `None` and `auto` (a local instance, or the one `ray start` recorded) are not checked here.

    Raises:
        InputError: a malformed address, or nothing accepting connections there within `timeout`.
    """
    if not address or address == "auto":
        return
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"address {address!r}: expected HOST:PORT of a Ray head node")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise InputError(
            f"address {address}: cannot reach a Ray head node ({why} after at most {timeout:g} s)"
        ) from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            "executor ray needs the ray extra: pip install 'lossbench[ray]' (or make install-ray)"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Be connected to Ray for the duration: the cluster at `address` (reachability checked
    first, with a timeout), else a local instance started here; shut down afterwards. A no-op when
    Ray is already initialised. Yields the `ray` module.

    Raises:
        InputError: Ray is not installed, or the cluster cannot be reached or joined.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    check_address(address)
    env = {
        "env_vars": {
            k: v for k, v in os.environ.items() if k in ("LOSSBENCH_CACHE", "TF_CPP_MIN_LOG_LEVEL")
        }
    }
    kwargs: dict[str, Any] = {
        "runtime_env": env,
        "log_to_driver": False,
        "include_dashboard": False,
        "logging_level": "ERROR",
    }
    if address:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        raise InputError(f"address {address}: cannot connect to Ray ({exc})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def run_with_ray(
    jobs: list[tuple[Any, Settings, Path]],
    *,
    device: str,
    reporter: Any = None,
    address: str | None = None,
    gpus_per_run: float = 0,
) -> None:
    """Run each (spec, cfg, exp_dir) job as a Ray task; store its results under `exp_dir/runs/`.

    Without `address` a local Ray instance is started for the call and shut down after it
    (unless the caller is already connected, see `ray_session`).
    """
    reporter = reporter or Reporter()
    if not jobs:
        return
    with ray_session(address):
        _run_tasks(_import_ray(), jobs, reporter, gpus_per_run)


def _run_tasks(
    ray: Any, jobs: list[tuple[Any, Settings, Path]], reporter: Any, gpus: float
) -> None:
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_task)
    # one object-store copy of each (dataset, seed) split, shared by that seed's tasks
    data_refs: dict[tuple[str, int], Any] = {}
    classes: dict[tuple[str, int], list[str]] = {}
    pending: dict[Any, tuple[Any, Path, tuple[str, int]]] = {}
    for spec, cfg, exp_dir in jobs:
        key = (str(exp_dir), spec.seed)
        if key not in data_refs:
            data = data_for_seed(cfg.data, spec.seed)
            data_refs[key] = ray.put(data)
            classes[key] = list(data.class_names)
        shipped = _user_code(spec, cfg)
        args = (spec, cfg, data_refs[key]) + ((shipped,) if shipped else ())
        ref = remote.remote(*args)
        pending[ref] = (spec, exp_dir, key)
        reporter.run_started(spec.name, cfg.train.epochs if spec.kind == "loss" else 0)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ref = done[0]
        spec, exp_dir, key = pending.pop(ref)
        run_dir = layout_run_dir(exp_dir, spec.name)
        try:
            metrics, files = ray.get(ref)
            write_run_files(run_dir, files)
        except Exception as exc:  # RayTaskError, WorkerCrashedError, ...
            reason = f"ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            metrics = _record_failure(run_dir, spec, classes[key], reason)
        reporter.run_finished(spec.name, metrics)
