"""The one training loop every loss uses (SPEC sections 3 and 4.1-4.3).

A compiled train step (Adam, global-norm clipping, the training batch handed to the loss's
`observe_batch`), per-epoch validation feeding the adaptive losses' hooks, AutoBalance's bi-level
upper step (`bilevel`, on a stratified 20% carved from the training split), early stopping and
best-weight restore on one selection criterion computed alike for every loss on the validation
split (SPEC 5.1, `lossbench.evaluation.selection_scores`; never a loss's own value), NaN
detection. Batch order is a function of (seed, epoch) only, so every loss under one seed sees the
same batches. `trainer_for_run` reuses a process's traced steps (`step_cache`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from lossbench.data.memory import release_mapped
from lossbench.evaluation import (
    history_scores,
    posterior_np,
    selection_key,
    selection_scores,
)
from lossbench.losses.base import LossbenchLoss
from lossbench.metrics.scores import CRITERION_COLUMN, softmax
from lossbench.training import step_cache
from lossbench.training.bilevel import (
    autobalance_upper_step,
    carve_upper_split,
    compiled_hypergradient,
    compiled_upper_update,
    sample_upper_pairs,
)
from lossbench.training.device import seed_everything

if TYPE_CHECKING:
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


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The training-row order of one epoch: depends on (seed, epoch, n) only, never on the loss."""
    return np.random.default_rng([seed, epoch, 20211]).permutation(n)


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


class Trainer:
    """Train one model with one loss.

    The trainers of one model share its Adam optimizer and the compiled forward pass and update
    (`step_cache.model_update`), as they share its weights: a new trainer resets the optimizer
    to its initial state, and they train one at a time.

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
        # every loss on the model (`step_cache.model_update`): each loss's step traces its part
        shared = step_cache.model_update(model, opts.precision, opts.clipnorm, jit_compile)
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
        self._logits, self._weights_finite = step_cache.model_functions(model, jit_compile)
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
        carried = step_cache.carry_loss_state(self.loss, loss)
        if carried is None:
            return False
        plan, updates = carried
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

    def _upper_step(self) -> tf.Tensor:
        """AutoBalance (SPEC 4.3): `autobalance_upper_step` on k stacked pairs (random
        lower-level training batch, stratified upper batch), each pair's hypergradient by the
        compiled `_hypergradient`."""
        pairs = sample_upper_pairs(self._upper_rng, self._X_tr_np, self._y_tr_np, self._X_up,
                                   self._y_up, self.n_classes, self.loss.upper_pairs,
                                   self.opts.batch_size)  # fmt: skip
        return autobalance_upper_step(
            self.model,
            self.loss,
            self._lower_adam(),
            self.upper_optimizer,
            *(tf.constant(a) for a in pairs),
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
        self._mapped = (X_train, X_val)  # as given: memory-mapped from the cache, or not
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

    @property
    def rows_per_epoch(self) -> int:
        """The rows an epoch trains on: the training split less AutoBalance's upper split."""
        return self._n

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
                self._upper_step()
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
        proba = softmax(val_logits)
        posterior = posterior_np(self.loss, val_logits, proba)
        scores = selection_scores(y_val, val_logits, posterior)
        self.loss.on_epoch_end(epoch, y_val, proba)
        row: dict[str, Any] = {
            "val_loss": float(np.mean(val_losses)) if len(val_losses) else math.nan,
            **{column: scores[criterion] for criterion, column in CRITERION_COLUMN.items()},
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
        start = min(max(int(self.loss.selection_start(opts.epochs)), 0), max(opts.epochs - 1, 0))
        best = _Best(opts.select, opts.patience)
        stopped_by = "max_epochs"
        self.loss.on_train_begin(opts.epochs)
        t_start = time.perf_counter()
        for epoch in range(opts.epochs):
            row = self._epoch(epoch)
            result.history.append(row)
            result.epochs_run = epoch + 1
            _write_summary(summary_writer, row)
            if on_epoch_end is not None:
                on_epoch_end(row)
            problem = self._divergence(row["loss"], row["val_loss"])
            if problem is not None:
                result.status = "failed"
                result.reason = f"{problem} at epoch {epoch + 1}; the run was stopped"
                stopped_by = "diverged"
                break
            if epoch < start:
                continue  # the loss's final phase (LDAM's DRW, AutoBalance's upper level) not on
            if best.observe(epoch + 1, row, self.model):
                stopped_by = "early_stopping"
                break
            value = best.value
            if prune is not None and epoch + 1 < opts.epochs and math.isfinite(value):
                if prune(epoch + 1, value):
                    stopped_by = "pruned"
                    break
        result.train_seconds = time.perf_counter() - t_start
        self._finish(result, best, start, stopped_by)
        return result

    def _epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch and validate: the epoch's history row."""
        t0 = time.perf_counter()
        train_loss = self.train_epoch(epoch)
        # A memory-mapped split, once read in full, leaves the process's memory until it is read
        # again: the training split is not resident while the validation split is predicted.
        release_mapped(self._mapped[0])
        val = self.validate(epoch)
        release_mapped(self._mapped[1])
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": train_loss, **val}
        row["lr"] = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
        row["seconds"] = time.perf_counter() - t0
        row.update({k: float(v) for k, v in self.loss.learned_params().items()})
        return row

    def _finish(self, result: TrainResult, best: _Best, start: int, stopped_by: str) -> None:
        """The selected epoch (its weights restored), the selection record and the learned
        parameters of a finished `fit`."""
        opts = self.opts
        if result.status == "ok" and opts.patience > 0 and best.weights is not None:
            self.model.set_weights(best.weights)
        result.best_epoch = result.epochs_run if opts.patience == 0 else best.epoch
        result.selection = {
            "criterion": best.criterion,
            "tie_break": "val_nll" if best.criterion != "nll" else None,
            "selected_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "max_epochs": opts.epochs,
            "patience": opts.patience,
            "selection_start_epoch": start + 1,
            "stopped_by": stopped_by,
        }
        result.learned_params = {k: float(v) for k, v in self.loss.learned_params().items()}


@dataclass
class _Best:
    """The best epoch so far on the selection criterion (SPEC 5.1) and the patience left:
    `Trainer.fit`'s early stopping."""

    criterion: str
    patience: int
    key: tuple[float, float] | None = None
    epoch: int = 0
    weights: list[np.ndarray] | None = None
    waited: int = 0

    @property
    def value(self) -> float:
        """The best selection value so far (larger is better)."""
        assert self.key is not None
        return self.key[0]

    def observe(self, epoch: int, row: dict[str, Any], model: keras.Model) -> bool:
        """Compare the history `row` of `epoch` (1-based) with the best so far (keeping the
        model's weights of a new best when patience is on); True: patience ran out."""
        key = selection_key(self.criterion, history_scores(row))
        if self.key is None or key > self.key:
            self.key, self.waited, self.epoch = key, 0, epoch
            if self.patience > 0:
                self.weights = model.get_weights()
            return False
        if self.patience > 0:
            self.waited += 1
            return self.waited >= self.patience
        return False


def _write_summary(summary_writer: Any, row: dict[str, Any]) -> None:
    """The finite float values of an epoch's history row as TensorBoard scalars."""
    if summary_writer is None:
        return
    with summary_writer.as_default(step=row["epoch"]):
        for key, value in row.items():
            if key != "epoch" and isinstance(value, float) and math.isfinite(value):
                tf.summary.scalar(key, value)


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
    initial = step_cache.INITIAL_WEIGHTS.pop(weights_key, None)
    cached = step_cache.STEP_CACHE.pop(key, None)
    model = None
    if initial is None:
        model = build_model(**arch)
        values = [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]
        initial = (values, weights_checksum(model))
    step_cache.INITIAL_WEIGHTS[weights_key] = initial
    if cached is not None and cached.restart(initial[0], loss, opts):
        trainer = cached
    else:  # losses of one network share its model (and its traced evaluation step)
        shared = step_cache.MODELS.pop(arch_text, None)
        if shared is not None:
            for v, value in zip(shared.variables, initial[0], strict=True):
                v.assign(value)
            model = shared
        elif model is None:
            seed_everything(opts.seed)
            model = build_model(**arch)
        step_cache.MODELS[arch_text] = model
        trainer = Trainer(model, loss, opts, n_classes, jit_compile=jit_compile)
    step_cache.STEP_CACHE[key] = trainer
    step_cache.trim_caches()
    return trainer, initial[1]
