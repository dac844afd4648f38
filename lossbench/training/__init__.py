"""The training package: the one training loop and the only importer of TensorFlow.

* `trainer`: `Trainer` (the loop every loss uses), `TrainResult`, `trainer_for_run` (a seeded
  trainer whose traced steps a process reuses), `epoch_permutation`.
* `device`: `configure_device`, `on_device`, `seed_everything`, `end_run_session`,
  `resolve_jit`, `framework_versions`, `matmul_peak`, `tensorboard_writer`.
* `step_cache`: the process-global caches of traced steps, `clear_step_cache`,
  `kernel_caches_kept`.
* `bilevel`: AutoBalance's upper step (`autobalance_hypergradient`, `autobalance_upper_step`),
  `AutoBalanceCallback` and `fit_callbacks` for a plain `model.fit`.

The losses declare the hooks and the bi-level members the trainer calls
(`lossbench.losses.LossbenchLoss`); they import nothing from here.
"""

from lossbench.training.bilevel import (
    AutoBalanceCallback,
    adam_lookahead,
    autobalance_hypergradient,
    autobalance_upper_step,
    carve_upper_split,
    fit_callbacks,
)
from lossbench.training.device import (
    configure_device,
    end_run_session,
    framework_versions,
    matmul_peak,
    on_device,
    resolve_jit,
    seed_everything,
    tensorboard_writer,
)
from lossbench.training.step_cache import clear_step_cache, kernel_caches_kept
from lossbench.training.trainer import Trainer, TrainResult, epoch_permutation, trainer_for_run

__all__ = [
    "AutoBalanceCallback",
    "TrainResult",
    "Trainer",
    "adam_lookahead",
    "autobalance_hypergradient",
    "autobalance_upper_step",
    "carve_upper_split",
    "clear_step_cache",
    "configure_device",
    "end_run_session",
    "epoch_permutation",
    "fit_callbacks",
    "framework_versions",
    "kernel_caches_kept",
    "matmul_peak",
    "on_device",
    "resolve_jit",
    "seed_everything",
    "tensorboard_writer",
    "trainer_for_run",
]
