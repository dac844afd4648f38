"""The one training loop every loss uses (SPEC sections 3 and 4.1-4.3).

A compiled train step (Adam, global-norm clipping, the training batch handed to the loss's
`observe_batch`), per-epoch validation feeding the adaptive losses' hooks, AutoBalance's bi-level
upper step (`autobalance_hypergradient`, on a stratified 20% carved from the training split),
early stopping and best-weight restore on one selection criterion computed alike for every loss
on the validation split (SPEC 5.1; never a loss's own value), NaN detection.
Batch order is a function of (seed, epoch) only, so every loss under one seed sees the same batches.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from lossbench.choices import SELECT_CRITERIA
from lossbench.errors import InputError
from lossbench.losses.base import LossbenchLoss
from lossbench.metrics import quick_scores

if TYPE_CHECKING:  # the config layer imports the losses, whose AutoBalance imports this module
    from lossbench.config import TrainOptions

#: Rows per evaluation call (validation each epoch, predictions): the 1D-CNN's convolution
#: activations of one call grow with it. 8192 -> 2048 rows lowered a 1-epoch run's peak RSS on
#: a 160,000-row CICIDS2017-format file from 1549 to 1325 MB.
EVAL_BATCH = 2048
#: A training split larger than this stays where it is (in memory or memory-mapped from the
#: cache) and each step's batch is gathered from it on the host, instead of the whole split
#: being copied into a TensorFlow tensor first (the validation split likewise, one evaluation
#: call at a time): at the full CICIDS2017 release's size those copies are 0.65 GB more.
#: Smaller splits (every dataset of the benchmark's epoch figures) keep the copies.
HOST_GATHER_BYTES = 256 * 2**20


# ----------------------------------------------------------------------------------------------
# device and determinism


def configure_device(device: str) -> str:
    """Select the device before TensorFlow initialises; returns a description of what was chosen.

    `cpu` hides every GPU; `gpu` requires one; `auto` uses a GPU when TensorFlow sees one.
    """
    if device not in ("auto", "cpu", "gpu"):
        raise InputError(f"--device {device!r}: expected auto, cpu or gpu")
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu":
        if gpus:
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # already initialised in this process: pin ops instead
                pass
        return "CPU"
    if device == "gpu" and not gpus:
        raise InputError("--device gpu: TensorFlow sees no GPU (install the 'gpu' extra)")
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
    (the runner, the tuner and the bench use it, so that only this module imports TensorFlow)."""
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


@contextlib.contextmanager
def kernel_caches_kept() -> Iterator[None]:
    """Within: setting TensorFlow's global seed (`keras.utils.set_random_seed`) and
    `keras.backend.clear_session()` leave TensorFlow's kernel caches as they are.

    Both empty them, so every run of a process re-instantiated (re-optimised) each compiled
    function it called, traced steps reused from the step cache included: 0.3-0.5 s a run, as
    much as training a short run. The caches hold compiled functions and the state of stateful
    random kernels; lossbench draws no stateful random numbers in TensorFlow (Keras' seeded,
    stateless generators and seeded NumPy only), so keeping them changes no result.
    """
    from tensorflow.python import pywrap_tfe

    clear = getattr(pywrap_tfe, "TFE_ContextClearCaches", None)
    if clear is None:  # another TensorFlow: caches cleared as before
        yield
        return
    pywrap_tfe.TFE_ContextClearCaches = lambda handle: None
    try:
        yield
    finally:
        pywrap_tfe.TFE_ContextClearCaches = clear


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


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The training-row order of one epoch: depends on (seed, epoch, n) only, never on the loss."""
    return np.random.default_rng([seed, epoch, 20211]).permutation(n)


# ----------------------------------------------------------------------------------------------
# results


@dataclass
class TrainResult:
    """What `Trainer.fit` returns."""

    status: str = "ok"  # ok | failed
    reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_run: int = 0
    best_epoch: int = 0
    train_seconds: float = 0.0
    learned_params: dict[str, float] = field(default_factory=dict)
    batch_order_sha256: str = ""
    selection: dict[str, Any] = field(default_factory=dict)


def softmax_np(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (the probabilities every metric is computed from)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def posterior_np(loss: LossbenchLoss, logits: np.ndarray) -> np.ndarray:
    """The class probabilities the loss's training makes consistent with the data's prior
    (SPEC 4.4), as float64 rows summing to 1.

    softmax(z) (computed in float64) for a loss that does not redefine `posterior`; otherwise the
    loss's own `posterior(logits)` (e.g. softmax(z + tau log pi) for `la`).
    """
    if type(loss).posterior is LossbenchLoss.posterior:
        return softmax_np(logits)
    p = np.asarray(
        keras.ops.convert_to_numpy(loss.posterior(np.asarray(logits, np.float32))), np.float64
    )
    return p / p.sum(axis=1, keepdims=True)


def selection_scores(y: np.ndarray, logits: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Validation scores the selection rule can use (SPEC 5.1), the same for every loss.

    macro_f1 and balanced_accuracy (macro recall) of argmax(logits); nll (mean -log p_y) and auprc
    (macro one-vs-rest average precision over the classes present) of the posterior.
    """
    from lossbench.metrics import average_precision_ovr

    n_classes = proba.shape[1]
    scores = quick_scores(y, logits.argmax(axis=1), n_classes)
    p_true = proba[np.arange(len(y)), y] if len(y) else np.ones(0)
    ap = average_precision_ovr(y, proba) if len(y) else np.full(n_classes, np.nan)
    return {
        "macro_f1": float(scores["macro_f1"]),
        "balanced_accuracy": float(scores["macro_recall"]),
        "nll": float(-np.mean(np.log(np.clip(p_true, 1e-15, None)))) if len(y) else math.nan,
        "auprc": float(np.nanmean(ap)) if np.isfinite(ap).any() else math.nan,
    }


def history_scores(row: dict[str, Any]) -> dict[str, float]:
    """The selection scores of one history.csv row (`Trainer.validate`'s columns), by criterion."""
    return {
        "macro_f1": float(row["val_macro_f1"]),
        "balanced_accuracy": float(row["val_macro_recall"]),
        "nll": float(row["val_nll"]),
        "auprc": float(row["val_auprc"]),
    }


def selection_key(criterion: str, scores: dict[str, float]) -> tuple[float, float]:
    """Larger is better: (criterion, tie-break). The tie-break is the validation NLL of the
    posterior, so a plateau of macro-F1 still counts as progress while the NLL improves."""
    nll = scores["nll"]
    tie = -nll if math.isfinite(nll) else -math.inf
    if criterion == "nll":
        return (tie, 0.0)
    value = scores[criterion]
    return (value if math.isfinite(value) else -math.inf, tie)


# ----------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Train one model with one loss.

    The trainers of one model share its Adam optimizer and the compiled forward pass and update
    (`_model_update`), as they share its weights: a new trainer resets the optimizer to its
    initial state, and they train one at a time.

    Args:
        model: a Keras model that outputs logits.
        loss: a `LossbenchLoss`; the trainer calls its hooks (`on_train_begin`,
            `on_epoch_begin`, `observe_batch`, `on_epoch_end`, `learned_params`,
            `selection_start`) and, when `upper_variables` is set, its bi-level step
            (`upper_lr`, `interval`, `upper_pairs`, `val_objective`); the base class declares
            each with a no-op default.
        opts: the training options.
        n_classes: number of classes K.
    """

    def __init__(
        self,
        model: keras.Model,
        loss: LossbenchLoss,
        opts: TrainOptions,
        n_classes: int,
        *,
        jit_compile: bool = False,
    ) -> None:
        self.model = model
        self.loss = loss
        self.opts = opts
        self.n_classes = n_classes
        self.jit_compile = jit_compile
        # (epoch, training labels) -> the training-row indices of that epoch; None:
        # `epoch_permutation` (a data-level method sets class-balanced sampling here,
        # `lossbench.methods`)
        self.epoch_order: Callable[[int, np.ndarray], np.ndarray] | None = None
        # float16 needs loss scaling; its clipping then happens inside the wrapped optimizer,
        # after the gradients are unscaled (bfloat16 has float32's range and needs neither)
        self._scaled = opts.precision == "mixed_float16"
        # the model's forward pass, optimizer and compiled update, shared by the trainers of
        # every loss on the model (`_model_update`): each loss's step traces only its own part
        shared = _model_update(model, opts.precision, opts.clipnorm, jit_compile)
        self.optimizer = shared.optimizer
        self._forward, self._apply = shared.forward, shared.apply
        self.upper_vars = list(loss.upper_variables or [])
        self.upper_optimizer = (
            keras.optimizers.Adam(learning_rate=loss.upper_lr) if self.upper_vars else None
        )
        # built now so that their initial state can be restored when the step is reused
        if self.upper_optimizer is not None:
            self.upper_optimizer.build(self.upper_vars)
        self._optimizer_start = shared.start + [
            (v, np.array(keras.ops.convert_to_numpy(v)))
            for v in getattr(self.upper_optimizer, "variables", None) or []
        ]
        self._reset_optimizers(opts.lr, loss.upper_lr)  # another loss's run may have used it
        self._loss_sum = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        # traced for any batch size (`_trace_for`): the last, shorter batch of an epoch and the
        # next run of the kind reuse the one trace instead of tracing again. No AutoGraph: the
        # losses are `keras.ops` code without Python control flow on tensors (SPEC 4.4, as
        # under JAX), and converting them cost about 60 ms of every trace
        self._compiled_step = tf.function(
            self._train_step_impl, jit_compile=jit_compile, reduce_retracing=True, autograph=False
        )
        self._train_step = self._compiled_step
        # the model's evaluation step (validation and test logits), shared by the trainers of
        # every loss on the model; only the loss's per-sample values are traced per trainer
        self._logits, self._weights_finite = _model_functions(model, jit_compile)
        self._loss_values = tf.function(
            self._loss_values_impl, reduce_retracing=True, autograph=False
        )
        # AutoBalance's hypergradient of one batch pair, called for each pair (`_upper_step`)
        self._hypergradient = compiled_hypergradient(model, loss, self._lower_adam(), opts.clipnorm)
        self._upper_update = (
            compiled_upper_update(loss, self.upper_optimizer) if self.upper_vars else None
        )

    def restart(self, weights: list[np.ndarray], loss: LossbenchLoss, opts: TrainOptions) -> bool:
        """Make this trainer (its traced steps included) train a new run: the initial `weights`
        (values of `model.variables`, in order), the state of `loss` (a fresh instance of the
        same loss class and `trace_signature()`: the loss's variables take its values) and the
        options `opts`, with the optimizers back at their initial state.

        Returns False, changing nothing, when the new run's state cannot be carried over (a
        variable the traced step does not know, a constant of another value): the caller then
        builds a new trainer.
        """
        mine = self.model.variables
        if len(mine) != len(weights) or any(
            tuple(a.shape) != tuple(np.shape(b)) for a, b in zip(mine, weights, strict=True)
        ):
            return False
        plan: list[tuple[Any, Any]] = []
        updates: dict[str, Any] = {}
        for name, fresh in vars(loss).items():
            if name not in vars(self.loss):
                updates[name] = fresh
                if _holds_tf(fresh):
                    return False
                continue
            ok, value = _carry(vars(self.loss)[name], fresh, plan)
            if not ok:
                return False
            updates[name] = value
        for a, b in zip(mine, weights, strict=True):
            a.assign(b)
        for target, value in plan:
            target.assign(value)
        vars(self.loss).update(updates)
        self._reset_optimizers(opts.lr, loss.upper_lr)
        self.opts = opts
        return True

    def _reset_optimizers(self, lr: float, upper_lr: float) -> None:
        """The optimizers (the model's shared one and the upper level's) back at their initial
        state, with the run's learning rates."""
        for v, start in self._optimizer_start:
            v.assign(start)
        self.optimizer.learning_rate = lr
        if self.upper_optimizer is not None:
            self.upper_optimizer.learning_rate = upper_lr

    # -- compiled pieces --------------------------------------------------------------------

    def _train_step_impl(
        self, X: tf.Tensor, Y: tf.Tensor, idx: tf.Tensor, loss_sum: tf.Variable
    ) -> tf.Tensor:
        """One optimiser step on the rows `idx` of (X, Y); adds the batch's loss x size to
        `loss_sum`. The gather and the bookkeeping run in the graph: no per-step eager ops."""
        x, y = tf.gather(X, idx), tf.gather(Y, idx)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = tf.cast(self._forward(x), tf.float32)
            value = self.loss(y, logits)
            scaled = self.optimizer.scale_loss(value) if self._scaled else value
        self.loss.observe_batch(y, tf.stop_gradient(logits))  # AMRL's constraint estimate
        grads = tape.gradient(scaled, variables)
        grads = [
            tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)
        ]
        if self.opts.clipnorm and self.opts.clipnorm > 0 and not self._scaled:
            grads, _ = tf.clip_by_global_norm(grads, self.opts.clipnorm)
        self._apply(grads)
        loss_sum.assign_add(value * tf.cast(tf.shape(idx)[0], tf.float32))
        return value

    def _loss_values_impl(self, y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        """The loss's per-sample values on float32 logits (the validation split's)."""
        return self.loss.call(y, logits)

    def _upper_step(self, x_tr, y_tr, x_up, y_up) -> tf.Tensor:
        """AutoBalance (SPEC 4.3): `autobalance_upper_step` on the k stacked batch pairs, each
        pair's hypergradient by the compiled `_hypergradient`."""
        return autobalance_upper_step(
            self.model,
            self.loss,
            self._lower_adam(),
            self.upper_optimizer,
            x_tr,
            y_tr,
            x_up,
            y_up,
            clipnorm=self.opts.clipnorm,
            hypergradient=self._hypergradient,
            update=self._upper_update,
        )

    def _lower_adam(self) -> keras.optimizers.Adam:
        """The model's Adam (the one inside the float16 LossScaleOptimizer)."""
        return getattr(self.optimizer, "inner_optimizer", self.optimizer)

    def _trace_for(self, X: tf.Tensor, Y: tf.Tensor) -> None:
        """Trace the train step for batches of any size drawn from splits of any length with
        X's and Y's other dimensions (nothing to do when a trace of that kind exists)."""

        def spec(t: tf.Tensor) -> tf.TensorSpec:
            return tf.TensorSpec([None, *t.shape[1:]], t.dtype)

        idx = tf.TensorSpec([None], tf.int64)
        self._compiled_step.get_concrete_function(spec(X), spec(Y), idx, self._loss_sum)

    # -- helpers ----------------------------------------------------------------------------

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        """Logits for `x`, evaluated in large batches."""
        out = []
        for start in range(0, len(x), EVAL_BATCH):
            chunk = tf.convert_to_tensor(
                np.asarray(x[start : start + EVAL_BATCH], dtype=np.float32)
            )
            out.append(self._logits(chunk).numpy())
        if not out:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        return np.concatenate(out, axis=0)

    def _validation_outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Logits and the loss's per-sample values on the validation split: per chunk of the
        split held on the device (`set_training_data`), the model's compiled evaluation step
        and the loss's compiled per-sample values."""
        logits, losses = [], []
        for x, y in self._val_chunks:
            x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)  # host-held chunks: now
            z = self._logits(x)
            values = self._loss_values(y, z)
            logits.append(z.numpy())
            losses.append(values.numpy())
        if not logits:
            return np.zeros((0, self.n_classes), dtype=np.float32), np.zeros(0)
        return np.concatenate(logits, axis=0), np.concatenate(losses)

    # -- the loop ---------------------------------------------------------------------------

    def set_training_data(
        self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray
    ) -> None:
        """Hold the training split as device tensors and the validation split for the hooks.

        With a bi-level loss (AutoBalance) a stratified 20% of the training split, fixed by the
        seed, becomes the upper-level data and the model trains on the other 80% (SPEC 4.3).
        """
        X_train, y_train = np.asarray(X_train), np.asarray(y_train)
        if self.upper_vars:
            lower, upper = carve_upper_split(y_train, self.opts.seed, self.n_classes)
            self._X_up = np.asarray(X_train[upper], dtype=np.float32)
            self._y_up = np.asarray(y_train[upper], dtype=np.int64)
            X_train, y_train = X_train[lower], y_train[lower]
        self._X_tr_np = np.asarray(X_train, dtype=np.float32)
        self._y_tr_np = np.asarray(y_train, dtype=np.int64)
        self._host_gather = self._X_tr_np.nbytes > HOST_GATHER_BYTES
        if self._host_gather:  # a batch at a time: see HOST_GATHER_BYTES
            self._X_tr = self._y_tr = None
            self._trace_for(tf.constant(self._X_tr_np[:1]), tf.constant(self._y_tr_np[:1]))
        else:
            self._X_tr = tf.constant(self._X_tr_np)
            self._y_tr = tf.constant(self._y_tr_np)
            self._trace_for(self._X_tr, self._y_tr)
        self._n = len(y_train)
        self._y_val = np.asarray(y_val, dtype=np.int64)
        hold = np.asarray if self._host_gather else tf.constant  # see HOST_GATHER_BYTES
        self._val_chunks = [
            (
                hold(np.asarray(X_val[start : start + EVAL_BATCH], dtype=np.float32)),
                hold(self._y_val[start : start + EVAL_BATCH]),
            )
            for start in range(0, len(self._y_val), EVAL_BATCH)
        ]
        self._steps = max(1, math.ceil(self._n / self.opts.batch_size))
        self._interval = self.loss.interval or max(1, int(0.1 * self._steps))
        self._upper_rng = np.random.default_rng([self.opts.seed, 7])
        self._upper_start = self.loss.selection_start(self.opts.epochs)
        self.upper_updates = 0

    def _upper_batches(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """k pairs (random lower-level training batch, stratified upper batch), stacked."""
        x_tr, y_tr, x_up, y_up = sample_upper_pairs(
            self._upper_rng,
            self._X_tr_np,
            self._y_tr_np,
            self._X_up,
            self._y_up,
            self.n_classes,
            self.loss.upper_pairs,
            self.opts.batch_size,
        )
        return tuple(tf.constant(a) for a in (x_tr, y_tr, x_up, y_up))

    def epoch_batches(self, epoch: int) -> Iterator[tf.Tensor]:
        """Row indices of each batch of one epoch, in the order `epoch_permutation(seed, epoch)`
        (or `epoch_order(epoch, training labels)` when a method sets it: `epoch_indices`).

        The training step gathers its batch from the device-resident training split. There is no
        tf.data pipeline: on a 2-core CPU its background threads competed with the training step
        for the cores and stalled whole epochs (measured: 3.0 s epochs stretched to 5.1 s).
        """
        perm = np.asarray(self.epoch_indices(epoch))
        b = self.opts.batch_size
        for start in range(0, self._n, b):  # a constant per batch: an eager slice cost 14x more
            yield tf.constant(perm[start : start + b])

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The training-row indices of one epoch, in order (`set_training_data` first)."""
        if self.epoch_order is not None:
            return self.epoch_order(epoch, self._y_tr_np)
        return epoch_permutation(self.opts.seed, epoch, self._n)

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training split (no validation); returns the mean training loss."""
        self.loss.on_epoch_begin(epoch)
        self._loss_sum.assign(0.0)
        for step, idx in enumerate(self.epoch_batches(epoch)):
            if self._host_gather:  # the same step on the batch's rows, gathered here
                rows = idx.numpy()
                x, y = tf.constant(self._X_tr_np[rows]), tf.constant(self._y_tr_np[rows])
                self._train_step(x, y, tf.range(len(rows), dtype=tf.int64), self._loss_sum)
            else:
                self._train_step(self._X_tr, self._y_tr, idx, self._loss_sum)
            if self.upper_vars and epoch >= self._upper_start and (step + 1) % self._interval == 0:
                self._upper_step(*self._upper_batches())
                self.upper_updates += 1
        return float(self._loss_sum.numpy()) / max(self._n, 1)

    def _divergence(self, train_loss: float, val_loss: float) -> str | None:
        """Why the run has diverged (a non-finite loss or weight), or None when it has not."""
        if not math.isfinite(train_loss):
            return f"training loss became {train_loss}"
        if not math.isfinite(val_loss):
            return f"validation loss became {val_loss}"
        if bool(self._weights_finite()):  # one compiled check; the culprit is looked up below
            return None
        for weight in self.model.trainable_weights:
            if not np.isfinite(keras.ops.convert_to_numpy(weight)).all():
                return f"weight {weight.path} became non-finite"
        return None

    def validate(self, epoch: int) -> dict[str, Any]:
        """Evaluate the validation split; feeds the loss's `on_epoch_end` hook.

        Returns the history row's validation part: the loss's own mean value (`val_loss`, for
        information only), and the selection scores of every criterion (`val_macro_f1`,
        `val_balanced_accuracy`, `val_nll`, `val_auprc`), computed alike for every loss.
        """
        y_val = self._y_val
        val_logits, val_losses = self._validation_outputs()
        val_losses = np.asarray(val_losses, dtype=np.float64)
        proba = softmax_np(val_logits)
        posterior = posterior_np(self.loss, val_logits)
        scores = selection_scores(y_val, val_logits, posterior)
        self.loss.on_epoch_end(epoch, y_val, proba)
        row: dict[str, Any] = {
            "val_loss": float(np.mean(val_losses)) if len(val_losses) else math.nan,
            "val_macro_f1": scores["macro_f1"],
            "val_macro_recall": scores["balanced_accuracy"],
            "val_nll": scores["nll"],
            "val_auprc": scores["auprc"],
        }
        for k in range(self.n_classes):
            mask = y_val == k
            row[f"val_class_loss_{k}"] = float(val_losses[mask].mean()) if mask.any() else math.nan
        return row

    def fit(
        self,
        X_train: np.ndarray,
        y_train: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        *,
        on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
        summary_writer: Any = None,
        prune: Callable[[int, float], bool] | None = None,
    ) -> TrainResult:
        """Train for `opts.epochs` epochs (fewer with early stopping); returns the history.

        `prune(epoch, value)` (tuning's pruner) is called after every epoch from the selection
        start on, except the last, with the best validation selection value so far (larger is
        better); when it returns True training stops (`stopped_by: pruned`)."""
        opts = self.opts
        result = TrainResult()
        self.set_training_data(X_train, y_train, X_val, y_val)
        result.batch_order_sha256 = hashlib.sha256(
            self.epoch_indices(0).astype(np.int64).tobytes()
        ).hexdigest()
        criterion = opts.select
        if criterion not in SELECT_CRITERIA:
            raise InputError(
                f"--select {criterion!r}: expected one of {', '.join(SELECT_CRITERIA)}"
            )
        start = min(max(int(self.loss.selection_start(opts.epochs)), 0), max(opts.epochs - 1, 0))
        best_key: tuple[float, float] | None = None
        best_weights, waited, stopped_by = None, 0, "max_epochs"
        self.loss.on_train_begin(opts.epochs)
        t_start = time.perf_counter()
        for epoch in range(opts.epochs):
            t0 = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            val = self.validate(epoch)
            row: dict[str, Any] = {"epoch": epoch + 1, "loss": train_loss, **val}
            row["lr"] = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
            row["seconds"] = time.perf_counter() - t0
            row.update({k: float(v) for k, v in self.loss.learned_params().items()})
            result.history.append(row)
            result.epochs_run = epoch + 1
            if summary_writer is not None:
                with summary_writer.as_default(step=epoch + 1):
                    for key, value in row.items():
                        if key != "epoch" and isinstance(value, float) and math.isfinite(value):
                            tf.summary.scalar(key, value)
            if on_epoch_end is not None:
                on_epoch_end(row)
            problem = self._divergence(train_loss, row["val_loss"])
            if problem is not None:
                result.status = "failed"
                result.reason = f"{problem} at epoch {epoch + 1}; the run was stopped"
                stopped_by = "diverged"
                break
            if epoch < start:
                continue  # the loss's final phase (LDAM's DRW, AutoBalance's upper level) not on
            key = selection_key(criterion, history_scores(row))
            if best_key is None or key > best_key:
                best_key, waited, result.best_epoch = key, 0, epoch + 1
                if opts.patience > 0:
                    best_weights = self.model.get_weights()
            elif opts.patience > 0:
                waited += 1
                if waited >= opts.patience:
                    stopped_by = "early_stopping"
                    break
            best_value = best_key[0]
            if (
                prune is not None
                and epoch + 1 < opts.epochs
                and math.isfinite(best_value)
                and prune(epoch + 1, best_value)
            ):
                stopped_by = "pruned"
                break
        result.train_seconds = time.perf_counter() - t_start
        if result.status == "ok" and opts.patience > 0 and best_weights is not None:
            self.model.set_weights(best_weights)
        elif opts.patience == 0:
            result.best_epoch = result.epochs_run
        result.selection = {
            "criterion": criterion,
            "tie_break": "val_nll" if criterion != "nll" else None,
            "selected_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "max_epochs": opts.epochs,
            "patience": opts.patience,
            "selection_start_epoch": start + 1,
            "stopped_by": stopped_by,
        }
        result.learned_params = {k: float(v) for k, v in self.loss.learned_params().items()}
        return result


# ----------------------------------------------------------------------------------------------
# AutoBalance's upper level (SPEC 4.3): the one implementation, used by Trainer and the tests


def carve_upper_split(
    y: np.ndarray, seed: int, n_classes: int, fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) row indices: a stratified `fraction` of every class, fixed by the seed.

    A class with a single training row stays in the lower level (it cannot be split).
    """
    rng = np.random.default_rng([seed, 4301])
    lower, upper = [], []
    for k in range(n_classes):
        rows = rng.permutation(np.flatnonzero(y == k))
        take = int(round(fraction * len(rows))) if len(rows) > 1 else 0
        take = min(max(take, 1 if len(rows) > 1 else 0), len(rows) - 1)
        upper.append(rows[:take])
        lower.append(rows[take:])
    return np.sort(np.concatenate(lower)), np.sort(np.concatenate(upper))


def adam_lookahead(
    optimizer: keras.optimizers.Adam, variables: list, grads: list
) -> list[tf.Tensor]:
    """The weights after the Adam step `optimizer` would take with `grads`, as tensors that are
    differentiable in `grads` (the optimizer's state is not changed).

    Keras' Adam: m' = m + (g - m)(1 - beta_1), v' = v + (g^2 - v)(1 - beta_2),
    theta' = theta - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m' / (sqrt(v') + epsilon),
    t = iterations + 1; the current moments m, v are constants, m' and v' depend on g.
    """
    if not optimizer.built:
        optimizer.build(variables)
    t = tf.cast(optimizer.iterations + 1, tf.float32)
    out = []
    for var, g in zip(variables, grads, strict=True):
        dtype = var.dtype
        lr = tf.cast(optimizer.learning_rate, dtype)
        b1, b2 = tf.cast(optimizer.beta_1, dtype), tf.cast(optimizer.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - b2 ** tf.cast(t, dtype)) / (1 - b1 ** tf.cast(t, dtype))
        index = optimizer._get_variable_index(var)
        m = optimizer._momentums[index].value
        v = optimizer._velocities[index].value
        m_new = m + (g - m) * (1 - b1)
        v_new = v + (tf.square(g) - v) * (1 - b2)
        positive = v_new > 0  # sqrt'(0) is infinite: keep the gradient finite where v' = 0
        root = tf.where(
            positive, tf.sqrt(tf.where(positive, v_new, tf.ones_like(v_new))), tf.zeros_like(v_new)
        )
        out.append(var.value - alpha * m_new / (root + tf.cast(optimizer.epsilon, dtype)))
    return out


def autobalance_hypergradient(
    model: keras.Model,
    loss: LossbenchLoss,
    optimizer: keras.optimizers.Adam,
    x_train: tf.Tensor,
    y_train: tf.Tensor,
    x_upper: tf.Tensor,
    y_upper: tf.Tensor,
    *,
    clipnorm: float | None = None,
) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """AutoBalance's upper-level objective and its gradient in `loss.upper_variables`.

    ```
    g      = clip_by_global_norm(grad_theta loss(y_train, model(x_train; theta)), clipnorm)
    theta' = the optimizer's real next Adam step with g (`adam_lookahead`)
    value  = loss.val_objective(y_upper, model(x_upper; theta'))   (class-balanced CE)
    returns (value, d value / d (l, log Delta))
    ```

    Two nested tapes: the inner gives g as a function of (l, log Delta), the outer
    differentiates the upper objective through theta' (evaluated with `model.stateless_call`,
    so neither the model's weights nor the optimizer's state are touched). Graph-safe.

    Raises:
        ValueError: an upper variable gets no gradient (the loss does not use it), instead of a
            silent zero.
    """
    theta = model.trainable_variables
    non_trainable = [v.value for v in model.non_trainable_variables]
    upper = list(loss.upper_variables)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            train_value = loss(y_train, _float32(model(x_train, training=True)))
        grads = inner.gradient(train_value, theta)
        grads = [tf.zeros_like(t) if g is None else g for g, t in zip(grads, theta, strict=True)]
        if clipnorm:
            grads, _ = tf.clip_by_global_norm(grads, clipnorm)
        ahead = adam_lookahead(optimizer, theta, grads)
        logits, _ = model.stateless_call(ahead, non_trainable, x_upper, training=False)
        value = loss.val_objective(y_upper, _float32(logits))
    hyper = outer.gradient(value, upper)
    missing = [v.name for v, g in zip(upper, hyper, strict=True) if g is None]
    if missing:
        raise ValueError(
            f"AutoBalance: no gradient reaches {', '.join(missing)} through the look-ahead step"
        )
    return value, hyper


def _float32(logits: Any) -> Any:
    """Low-precision (mixed precision) logits as float32 for a loss; others pass untouched."""
    return tf.cast(logits, tf.float32) if logits.dtype in (tf.float16, tf.bfloat16) else logits


def compiled_hypergradient(
    model: keras.Model,
    loss: LossbenchLoss,
    optimizer: keras.optimizers.Adam,
    clipnorm: float | None,
) -> Callable[..., tuple[tf.Tensor, list[tf.Tensor]]]:
    """`autobalance_hypergradient` of one batch pair as one compiled function, traced once for
    any batch sizes, for `autobalance_upper_step` to call for each of the k pairs from Python
    (`Trainer` and `AutoBalanceCallback`): a compiled step around the k calls made the graph
    optimiser inline k copies of the nested tapes at its first call (about 1.1 s a run)."""
    return tf.function(
        lambda *pair: autobalance_hypergradient(model, loss, optimizer, *pair, clipnorm=clipnorm),
        reduce_retracing=True,
        autograph=False,
    )


def autobalance_upper_step(
    model: keras.Model,
    loss: LossbenchLoss,
    optimizer: keras.optimizers.Adam,
    upper_optimizer: keras.optimizers.Optimizer,
    x_train: tf.Tensor,
    y_train: tf.Tensor,
    x_upper: tf.Tensor,
    y_upper: tf.Tensor,
    *,
    clipnorm: float | None = None,
    hypergradient: Callable[..., tuple[tf.Tensor, list[tf.Tensor]]] | None = None,
    update: Callable[..., tf.Tensor] | None = None,
) -> tf.Tensor:
    """One upper step: the hypergradient averaged over the k batch pairs stacked on axis 0 of
    the data arguments, then one `upper_optimizer` step on `loss.upper_variables`; returns the
    mean upper objective. Used by `Trainer` and by `AutoBalanceCallback`.

    `hypergradient(x_train, y_train, x_upper, y_upper)` of one pair: `autobalance_hypergradient`
    of these arguments when None. `Trainer` and `AutoBalanceCallback` pass
    `compiled_hypergradient` and call this function eagerly, so that the k pairs share one trace.
    `update(values, grads)`: `upper_update` of `loss` and `upper_optimizer` when None
    (`Trainer` and `AutoBalanceCallback` pass `compiled_upper_update`'s)."""
    if hypergradient is None:

        def hypergradient(*pair: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
            return autobalance_hypergradient(model, loss, optimizer, *pair, clipnorm=clipnorm)

    pairs = [hypergradient(x_train[i], y_train[i], x_upper[i], y_upper[i])
             for i in range(int(x_train.shape[0]))]  # fmt: skip
    values, grads = [v for v, _ in pairs], [g for _, g in pairs]
    if update is not None:
        return update(values, grads)
    return upper_update(loss, upper_optimizer, values, grads)


def upper_update(
    loss: LossbenchLoss,
    upper_optimizer: keras.optimizers.Optimizer,
    values: list[tf.Tensor],
    grads: list[list[tf.Tensor]],
) -> tf.Tensor:
    """The end of `autobalance_upper_step`: the k pairs' hypergradients `grads` averaged, one
    `upper_optimizer` step on `loss.upper_variables` with the mean; returns the mean of the
    pairs' upper objectives `values`. Graph-safe (`compiled_upper_update`)."""
    total = grads[0]
    for more in grads[1:]:
        total = [a + b for a, b in zip(total, more, strict=True)]
    mean = [g / len(grads) for g in total]
    upper_optimizer.apply_gradients(zip(mean, loss.upper_variables, strict=True))
    return tf.add_n(values) / len(values)


def compiled_upper_update(
    loss: LossbenchLoss, upper_optimizer: keras.optimizers.Optimizer
) -> Callable[..., tf.Tensor]:
    """`upper_update` as one compiled function (about 5 ms less an upper step than its eager
    ops), for `autobalance_upper_step`'s `update`."""
    return tf.function(
        lambda values, grads: upper_update(loss, upper_optimizer, values, grads),
        reduce_retracing=True,
        autograph=False,
    )


def sample_upper_pairs(
    rng: np.random.Generator,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_upper: np.ndarray,
    y_upper: np.ndarray,
    n_classes: int,
    pairs: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """k pairs (random training batch, class-stratified upper batch), stacked on axis 0."""
    n = len(y_train)
    tr = [rng.choice(n, size=min(batch_size, n), replace=False) for _ in range(pairs)]
    per_class = max(1, batch_size // n_classes)
    up = []
    for _ in range(pairs):
        idx = []
        for k in range(n_classes):
            rows = np.flatnonzero(y_upper == k)
            if len(rows):
                idx.append(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
        up.append(np.concatenate(idx))
    return (
        np.stack([x_train[i] for i in tr]).astype(np.float32),
        np.stack([y_train[i] for i in tr]).astype(np.int64),
        np.stack([x_upper[i] for i in up]).astype(np.float32),
        np.stack([y_upper[i] for i in up]).astype(np.int64),
    )


class AutoBalanceCallback(keras.callbacks.Callback):
    """AutoBalance's upper level in a plain `model.fit` (TensorFlow backend; the model compiled
    with an Adam optimizer and the AutoBalance loss): after the warm-up, every `interval` steps,
    `autobalance_upper_step` on `pairs` (training batch, stratified upper batch) pairs.

    Made by `AutoBalanceLoss.callbacks(train_data=..., upper_data=...)`; the upper data should
    not be the validation data used for model selection (carve it with `carve_upper_split`).
    """

    def __init__(
        self,
        loss: LossbenchLoss,
        train_data: tuple[Any, Any],
        upper_data: tuple[Any, Any],
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.loss = loss
        self.x_train, self.y_train = (np.asarray(a) for a in train_data)
        self.x_upper, self.y_upper = (np.asarray(a) for a in upper_data)
        self.batch_size = batch_size
        self.rng = np.random.default_rng([seed, 7])
        self.updates = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        if keras.backend.backend() != "tensorflow":
            raise ValueError("autobalance's upper step needs the TensorFlow backend")
        optimizer = self.model.optimizer
        if not isinstance(optimizer, keras.optimizers.Adam):
            raise ValueError("autobalance's look-ahead is Adam's step: compile with Adam")
        epochs = int(self.params.get("epochs") or 1)
        steps = int(self.params.get("steps") or 1)
        self.start = self.loss.selection_start(epochs)
        self.interval = self.loss.interval or max(1, int(0.1 * steps))
        upper_optimizer = keras.optimizers.Adam(self.loss.upper_lr)
        clipnorm = optimizer.global_clipnorm
        self._step = functools.partial(
            autobalance_upper_step, self.model, self.loss, optimizer, upper_optimizer,
            clipnorm=clipnorm,
            hypergradient=compiled_hypergradient(self.model, self.loss, optimizer, clipnorm),
            update=compiled_upper_update(self.loss, upper_optimizer),
        )  # fmt: skip
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.epoch < self.start or (batch + 1) % self.interval:
            return
        data = sample_upper_pairs(
            self.rng,
            self.x_train,
            self.y_train,
            self.x_upper,
            self.y_upper,
            self.loss.num_classes,
            self.loss.upper_pairs,
            self.batch_size,
        )
        self._step(*(tf.constant(a) for a in data))
        self.updates += 1


def resolve_jit(jit_compile: bool | None, device: str) -> bool:
    """`--jit auto`: XLA-compile the train step only on a GPU.

    On the 2-core CPU the plain graph measured faster than the XLA-compiled step for the 1D-CNN
    (about 1.4 s against 2.6 s per 20k-row epoch), so auto means off there; on a GPU XLA fuses the
    small loss and optimizer kernels. `--jit on|off` overrides.
    """
    if jit_compile is not None:
        return bool(jit_compile)
    return device.startswith("GPU")


# ----------------------------------------------------------------------------------------------
# traced steps reused across the runs of a process (SPEC 7, fixed cost per run)

#: how many trainers (each a model, its optimizer, a loss and their traced steps) a process keeps
STEP_CACHE_SIZE = 16
_STEP_CACHE: OrderedDict[tuple[Any, ...], Trainer] = OrderedDict()
_INITIAL_WEIGHTS: OrderedDict[tuple[str, int], tuple[list[np.ndarray], str]] = OrderedDict()
_MODELS: OrderedDict[str, keras.Model] = OrderedDict()
_MODEL_FUNCTIONS: OrderedDict[tuple[int, bool], tuple[keras.Model, tuple[Any, Any]]] = OrderedDict()


def _held(cache: OrderedDict[Any, tuple[keras.Model, Any]], key: Any, model: keras.Model) -> Any:
    """What `cache` holds for `model` under `key` (then the most recently used), or None: an
    entry of another model whose id `key` reuses holds nothing for this one."""
    held = cache.get(key)
    if held is None or held[0] is not model:
        return None
    cache.move_to_end(key)
    return held[1]


def _model_functions(model: keras.Model, jit_compile: bool) -> tuple[Any, Any]:
    """The compiled functions of `model` alone, one pair per model and XLA setting, shared by
    the trainers of every loss on it: its evaluation step (float32 logits of a batch) and the
    check that every trainable weight is finite."""
    key = (id(model), bool(jit_compile))
    held = _held(_MODEL_FUNCTIONS, key, model)
    if held is not None:
        return held

    def logits(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(x, training=False), tf.float32)

    def weights_finite() -> tf.Tensor:
        return tf.reduce_all(
            tf.stack([tf.reduce_all(tf.math.is_finite(w)) for w in model.trainable_weights])
        )

    fns = (
        tf.function(logits, jit_compile=jit_compile, reduce_retracing=True, autograph=False),
        tf.function(weights_finite, autograph=False),
    )
    _MODEL_FUNCTIONS[key] = (model, fns)
    return fns


@dataclass
class _ModelUpdate:
    """`_model_update`'s result: the optimizer, its state when new (values to restore), and the
    compiled forward pass (training mode) and update, each traced once for the model."""

    optimizer: Any
    start: list[tuple[Any, np.ndarray]]
    forward: Any
    apply: Any


_MODEL_UPDATES: OrderedDict[tuple[Any, ...], tuple[keras.Model, _ModelUpdate]] = OrderedDict()


def _model_update(
    model: keras.Model, precision: str, clipnorm: float | None, jit_compile: bool
) -> _ModelUpdate:
    """The model's Adam optimizer (float16: in a `LossScaleOptimizer` that clips after
    unscaling) with its compiled update `apply(grads)`, and its compiled forward pass in training
    mode, one of each per model, precision, clipping and XLA setting.

    Shared by the trainers of every loss on the model (as they share its weights): a loss's
    train step calls these two functions, already traced, so that only the loss and the
    gradient are traced for each loss (about 0.1 s less a trace). A trainer restores the
    optimizer's initial state (`start`) and sets its learning rate before a run; trainers of
    one model train one at a time.
    """
    scaled = precision == "mixed_float16"
    key = (id(model), precision, float(clipnorm or 0) if scaled else None, bool(jit_compile))
    held = _held(_MODEL_UPDATES, key, model)
    if held is not None:
        return held
    if scaled:
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.Adam(global_clipnorm=clipnorm or None)
        )
    else:
        optimizer = keras.optimizers.Adam()
    variables = model.trainable_variables
    optimizer.build(variables)
    state: dict[int, Any] = {}  # every variable of the optimizer (the wrapped one's too), once
    for opt in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        for v in getattr(opt, "variables", None) or []:
            state.setdefault(id(v), v)
    start = [(v, np.array(keras.ops.convert_to_numpy(v))) for v in state.values()]

    def forward(x: tf.Tensor) -> tf.Tensor:
        return model(x, training=True)

    def apply(grads: list[tf.Tensor]) -> None:
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    update = _ModelUpdate(
        optimizer,
        start,
        tf.function(forward, jit_compile=jit_compile, reduce_retracing=True, autograph=False),
        tf.function(apply, jit_compile=jit_compile, reduce_retracing=True, autograph=False),
    )
    _MODEL_UPDATES[key] = (model, update)
    return update


def trainer_for_run(
    arch: dict[str, Any],
    loss: LossbenchLoss,
    opts: TrainOptions,
    n_classes: int,
    *,
    jit_compile: bool = False,
) -> tuple[Trainer, str]:
    """A seeded trainer for one run whose compiled steps are traced at most once per process
    for each kind of run; returns it and the SHA-256 of the run's initial weights.

    `arch` holds the keyword arguments of `models.build_model`. A kind of run is the network
    (`arch`), the loss's class and the part of its configuration that shapes its code
    (`loss.trace_signature()`: its values, class counts included, live in the loss's variables),
    the batch size, the clipping, the precision and XLA; the seed, learning rate, epochs,
    patience and the loss's values are state set per run. A cached trainer of the kind is
    restarted with this run's initial weights, the state of `loss` and `opts`; otherwise a new
    one is built (and cached). The initial weights of an (`arch`, seed) are drawn once too:
    `seed_everything(seed)` then `build_model(**arch)`, as for a new model. Train with
    `trainer.model` and `trainer.loss`, the cached instances.
    """
    from lossbench.models import build_model, weights_checksum

    arch_text = json.dumps(arch, sort_keys=True, default=str)
    key = (
        arch_text,
        type(loss).__module__,
        type(loss).__qualname__,
        json.dumps(loss.trace_signature(), sort_keys=True, default=str),
        int(opts.batch_size),
        float(opts.clipnorm),
        opts.precision,
        bool(jit_compile),
        int(n_classes),
    )
    weights_key = (arch_text, int(opts.seed))
    seed_everything(opts.seed)
    initial = _INITIAL_WEIGHTS.pop(weights_key, None)
    cached = _STEP_CACHE.pop(key, None)
    model = None
    if initial is None:
        model = build_model(**arch)
        values = [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]
        initial = (values, weights_checksum(model))
    _INITIAL_WEIGHTS[weights_key] = initial
    if cached is not None and cached.restart(initial[0], loss, opts):
        trainer = cached
    else:  # losses of one network share its model (and its traced evaluation step)
        shared = _MODELS.pop(arch_text, None)
        if shared is not None:
            for v, value in zip(shared.variables, initial[0], strict=True):
                v.assign(value)
            model = shared
        elif model is None:
            seed_everything(opts.seed)
            model = build_model(**arch)
        _MODELS[arch_text] = model
        trainer = Trainer(model, loss, opts, n_classes, jit_compile=jit_compile)
    _STEP_CACHE[key] = trainer
    for cache in (_STEP_CACHE, _INITIAL_WEIGHTS, _MODELS, _MODEL_FUNCTIONS, _MODEL_UPDATES):
        while len(cache) > STEP_CACHE_SIZE:
            cache.popitem(last=False)
    return trainer, initial[1]


def clear_step_cache() -> None:
    """Forget every cached trainer and initial weights (the next run of each kind traces its
    steps afresh)."""
    for cache in (_STEP_CACHE, _INITIAL_WEIGHTS, _MODELS, _MODEL_FUNCTIONS, _MODEL_UPDATES):
        cache.clear()


def _holds_tf(value: Any) -> bool:
    if isinstance(value, tf.Variable | tf.Tensor) or hasattr(value, "assign"):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_tf(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_tf(v) for v in value.values())
    return False


def _carry(mine: Any, fresh: Any, plan: list[tuple[Any, Any]]) -> tuple[bool, Any]:
    """How one attribute of a cached loss takes the value of a fresh loss's: variables keep their
    identity (the traced step reads them) and take the fresh values (added to `plan`); constants
    must be equal; containers holding either are walked; plain Python values are replaced.
    Returns (possible, the value the cached loss keeps)."""
    if hasattr(mine, "assign") and hasattr(mine, "shape"):  # tf.Variable or keras.Variable
        if not (hasattr(fresh, "assign") and tuple(fresh.shape) == tuple(mine.shape)):
            return False, None
        plan.append((mine, keras.ops.convert_to_numpy(fresh)))
        return True, mine
    if isinstance(mine, tf.Tensor):
        if not isinstance(fresh, tf.Tensor) or fresh.dtype != mine.dtype:
            return False, None
        a, b = np.asarray(mine), np.asarray(fresh)
        return (a.shape == b.shape and np.array_equal(a, b, equal_nan=True)), mine
    if isinstance(mine, list | tuple) and _holds_tf(mine):
        if type(fresh) is not type(mine) or len(fresh) != len(mine):
            return False, None
        for a, b in zip(mine, fresh, strict=True):
            if not _carry(a, b, plan)[0]:
                return False, None
        return True, mine
    if isinstance(mine, dict) and _holds_tf(mine):
        if not isinstance(fresh, dict) or set(fresh) != set(mine):
            return False, None
        for k in mine:
            if not _carry(mine[k], fresh[k], plan)[0]:
                return False, None
        return True, mine
    if _holds_tf(fresh):
        return False, None
    return True, fresh
