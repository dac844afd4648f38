"""The Ray executor (SPEC 8): each (loss, seed, dataset) run of a compare becomes a Ray task.

The driver prepares each seed's split once and hands it to the tasks through Ray's object store,
so workers need neither the data files nor a shared filesystem. A task trains in a private temporary
folder and returns the run's files as bytes; the driver writes them into the experiment's
`runs/<name>/` atomically, DONE last, exactly as the local executor leaves them. A task that
raises or whose worker dies is recorded as a failed run (metrics.json with the reason, no DONE);
the other tasks carry on, and rerunning the command retries only what is missing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lossbench.config import Settings
from lossbench.errors import InputError
from lossbench.io import atomic_write_bytes
from lossbench.runner import (
    Reporter,
    data_for_seed,
    execute_baseline_run,
    execute_loss_run,
)
from lossbench.store import prepare_run_dir, write_failed_run


def _task(
    spec: Any, cfg: Settings, data: Any, device_pref: str, user_code: Any = None
) -> tuple[dict, dict[str, bytes]]:
    """Body of one Ray task: train in a temporary folder, return metrics and the files.
    `user_code`: the user's losses and network the run needs (`_user_code`), registered in the
    worker first."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lossbench.train import configure_device  # lazy: TensorFlow, only inside the task

    if user_code:
        from lossbench.losses.registry import unpack_shipments
        from lossbench.models import unpack_model

        unpack_shipments(user_code["losses"])
        if user_code["model"] is not None:
            unpack_model(user_code["model"])

    with tempfile.TemporaryDirectory(prefix="lossbench-ray-") as tmp:
        run_dir = Path(tmp) / spec.name
        if spec.kind == "baseline":
            metrics = execute_baseline_run(spec, cfg, data, run_dir)
        else:
            device = configure_device(device_pref)
            metrics = execute_loss_run(spec, cfg, data, run_dir, device=device)
        files = {
            str(p.relative_to(run_dir)): p.read_bytes()
            for p in sorted(run_dir.rglob("*"))
            if p.is_file()
        }
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


def _store(run_dir: Path, files: dict[str, bytes]) -> None:
    """Write a finished task's files atomically; DONE goes last so a crash leaves no false DONE."""
    prepare_run_dir(run_dir)
    for rel, payload in files.items():
        if rel != "DONE":
            atomic_write_bytes(run_dir / rel, payload)
    if "DONE" in files:
        atomic_write_bytes(run_dir / "DONE", files["DONE"])


def _record_failure(run_dir: Path, spec: Any, cfg_classes: list[str], reason: str) -> dict:
    prepare_run_dir(run_dir)
    base = {
        "name": spec.name,
        "loss": spec.loss,
        "kind": spec.kind,
        "seed": spec.seed,
        "class_names": cfg_classes,
    }
    metrics = write_failed_run(run_dir, base, reason)
    (run_dir / "log.txt").write_text(f"ray task failed: {reason}\n", encoding="utf-8")
    return metrics


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
        args = (spec, cfg, data_refs[key], cfg.train.device) + ((shipped,) if shipped else ())
        ref = remote.remote(*args)
        pending[ref] = (spec, exp_dir, key)
        reporter.run_started(spec.name, cfg.train.epochs if spec.kind == "loss" else 0)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ref = done[0]
        spec, exp_dir, key = pending.pop(ref)
        run_dir = exp_dir / "runs" / spec.name
        try:
            metrics, files = ray.get(ref)
            _store(run_dir, files)
        except Exception as exc:  # RayTaskError, WorkerCrashedError, ...
            reason = f"ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            metrics = _record_failure(run_dir, spec, classes[key], reason)
        reporter.run_finished(spec.name, metrics)
