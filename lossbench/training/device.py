"""Device, determinism and versions: where TensorFlow runs and how a run is made reproducible.

`configure_device` picks the device before TensorFlow initialises, `on_device` places ops on it,
`seed_everything` seeds Python, NumPy, Keras and TensorFlow with op determinism on, and
`end_run_session` clears Keras' global state after a run (both keep TensorFlow's compiled
functions: `step_cache.kernel_caches_kept`). `resolve_jit` decides XLA, `framework_versions`
and `matmul_peak` describe the machine for provenance and the bench.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from lossbench.errors import InputError
from lossbench.training.step_cache import kernel_caches_kept


def configure_device(device: str) -> str:
    """Select the device before TensorFlow initialises; returns a description of what was chosen.

    `cpu` hides every GPU; `gpu` requires one; `auto` uses a GPU when TensorFlow sees one (the
    settings have checked that `device` is one of these).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu":
        if gpus:
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # already initialised in this process: pin ops instead
                pass
        return "CPU"
    if device == "gpu" and not gpus:
        raise InputError("device 'gpu': TensorFlow sees no GPU (install the 'gpu' extra)")
    if gpus:
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        except Exception:  # pragma: no cover - depends on the driver
            name = ""
        return f"GPU:0 ({name})" if name else "GPU:0"
    return "CPU"


def device_scope(device_desc: str) -> str:
    """The TensorFlow device string for a description returned by `configure_device`."""
    return "/GPU:0" if device_desc.startswith("GPU") else "/CPU:0"


def on_device(device_desc: str) -> Any:
    """A context in which TensorFlow places ops on the device `configure_device` described
    (the runner, the tuner and the bench use it, so that only `lossbench.training` imports
    TensorFlow)."""
    return tf.device(device_scope(device_desc))


def tensorboard_writer(log_dir: Path | str) -> Any:
    """A TensorBoard summary writer for `Trainer.fit(summary_writer=...)`."""
    return tf.summary.create_file_writer(str(log_dir))


def framework_versions() -> dict[str, str]:
    """The versions of TensorFlow and Keras, for an experiment's provenance."""
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def matmul_peak(device_desc: str, n: int = 2048, seconds: float = 2.0) -> float:
    """The device's float32 matmul throughput in GFLOP/s: the best of repeated n x n products
    over `seconds` (the bench's reference for the training step's achieved FLOP/s)."""
    with on_device(device_desc):
        a = tf.random.stateless_normal((n, n), seed=(1, 2))
        b = tf.random.stateless_normal((n, n), seed=(3, 4))
        mm = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
        mm(a, b).numpy()
        best = float("inf")
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            mm(a, b).numpy()
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def end_run_session() -> None:
    """`keras.backend.clear_session()` after a run (Keras' global state: name counters, seed
    generator, settings), keeping the compiled functions (`kernel_caches_kept`)."""
    with kernel_caches_kept():
        keras.backend.clear_session(free_memory=False)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, Keras and TensorFlow and turn op determinism on (TensorFlow's
    compiled functions kept: `kernel_caches_kept`)."""
    with kernel_caches_kept():
        keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass


def resolve_jit(jit_compile: bool | None, device: str) -> bool:
    """`--jit auto`: XLA-compile the train step only on a GPU.

    On the 2-core CPU the plain graph measured faster than the XLA-compiled step for the 1D-CNN
    (about 1.4 s against 2.6 s per 20k-row epoch), so auto means off there; on a GPU XLA fuses the
    small loss and optimizer kernels. `--jit on|off` overrides.
    """
    if jit_compile is not None:
        return bool(jit_compile)
    return device.startswith("GPU")
