"""The executors (lossbench.executors): one interface, the loss-or-baseline dispatch once, the
run folders they leave (lossbench.layout / lossbench.store)."""

from __future__ import annotations

import pytest

from lossbench import layout
from lossbench.config import Settings
from lossbench.errors import InputError
from lossbench.executors import LocalExecutor, RayExecutor, make_executor
from lossbench.runner import Reporter, RunSpec, data_for_seed
from lossbench.store import read_run, write_experiment


@pytest.fixture
def digits():
    """The built-in digits-lt data of seeds 0 and 1, and settings for them."""
    cfg = Settings()
    return cfg, {seed: data_for_seed(cfg.data, seed) for seed in (0, 1)}


def _experiment(tmp_path, data):
    exp = tmp_path / "exp"
    exp.mkdir()
    write_experiment(exp, {"data_fingerprint": data.info["source_fingerprint"]})
    return exp


def test_make_executor_picks_by_name():
    reporter = Reporter()
    local = make_executor("local", device="CPU", reporter=reporter, plots=True)
    ray = make_executor("ray", device="CPU", reporter=reporter, options={"address": "h:1"})
    assert isinstance(local, LocalExecutor) and local.plots
    assert isinstance(ray, RayExecutor) and ray.address == "h:1" and ray.gpus_per_run == 0


def test_local_executor_loads_only_the_splits_it_does_not_hold(tmp_path, digits):
    """Seed 0's split is held by the caller, seed 1's is loaded once for both of its runs; every
    run leaves a complete folder where the layout puts it."""
    cfg, data = digits
    exp = _experiment(tmp_path, data[0])
    loaded = []

    def load(opts, seed):
        loaded.append(seed)
        return data[seed]

    jobs = [(RunSpec(m, s, "baseline"), cfg, exp) for s in (0, 1) for m in ("prior", "stump")]
    LocalExecutor("CPU", Reporter(), held={(id(cfg), 0): data[0]}, load=load).run(jobs)
    assert loaded == [1]
    for spec, _, _ in jobs:
        run = read_run(layout.run_dir(exp, spec.name))
        assert run.status == "ok", (spec.name, run.reason)
        assert (run.loss, run.kind, run.seed) == (spec.loss, "baseline", spec.seed)


def test_local_executor_refuses_a_seed_whose_data_changed(tmp_path, digits):
    cfg, data = digits
    exp = _experiment(tmp_path, data[0])
    write_experiment(exp, {"data_fingerprint": "0" * 16})
    executor = LocalExecutor("CPU", Reporter(), load=lambda opts, seed: data[seed])
    with pytest.raises(InputError, match="the data changed while the compare ran"):
        executor.run([(RunSpec("prior", 1, "baseline"), cfg, exp)])
    assert not layout.run_dir(exp, "prior_seed1").exists()


def test_ray_task_body_trains_through_the_one_dispatch_without_ray(digits):
    """The Ray task's body, called in this process: a baseline run through `execute_run`, its
    files returned as bytes, DONE among them."""
    from lossbench.executors import _task

    cfg, data = digits
    metrics, files = _task(RunSpec("prior", 0, "baseline"), cfg, data[0])
    assert metrics["status"] == "ok" and metrics["kind"] == "baseline"
    expected = {layout.CONFIG, layout.METRICS, layout.PREDICTIONS, layout.LOG, layout.DONE}
    assert expected <= set(files)
