"""What every lossbench loss shares: class statistics, parameter validation, the base class.

* `ClassStats` / `class_stats(class_counts)`: the one place where per-class weights, priors and
  margins are computed from the *training* class counts (once, in a loss's `__init__`).
* `Param`: the declaration of one loss parameter (default, allowed values); `LossbenchLoss`
  validates its parameters against these declarations and `describe()` prints them.
* `LossbenchLoss`: the `keras.losses.Loss` subclass all lossbench losses derive from. It turns
  integer or one-hot labels into class indices, serialises `class_counts` and the parameters
  through `get_config`, and carries the no-op training-loop hooks that adaptive losses override.
* `true_class_log_probs` / `log_true_and_rest`: numerically stable building blocks on logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict

import keras
import numpy as np
from keras import ops

from lossbench.errors import InputError

# ----------------------------------------------------------------------------------------------
# class statistics


@dataclass(frozen=True)
class ClassStats:
    """Per-class statistics of the training split, derived from the class counts `n_k`.

    Notation (SPEC section 4): `n = sum_k n_k`, `pi_k = n_k / n`, `n_max = max_k n_k`, `K` classes.
    All arrays are float64 NumPy arrays of shape `(K,)`.
    """

    counts: np.ndarray

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return int(self.counts.shape[0])

    @property
    def total(self) -> float:
        """n, the number of training samples."""
        return float(self.counts.sum())

    @property
    def priors(self) -> np.ndarray:
        """pi_k = n_k / n."""
        return self.counts / self.total

    @property
    def minority(self) -> np.ndarray:
        """Boolean mask of the minority classes, n_k < n / K."""
        return self.counts < self.total / self.num_classes

    @property
    def positive_class(self) -> int:
        """For K = 2 the positive class: the minority one (class 1 when the counts are equal)."""
        if self.num_classes != 2:
            return -1
        return 1 if self.counts[1] <= self.counts[0] else 0

    def inverse_weights(self) -> np.ndarray:
        """w_k = n / (K n_k) (1 for every class when the classes are balanced)."""
        return self.total / (self.num_classes * self.counts)

    def sqrt_weights(self) -> np.ndarray:
        """w_k = sqrt(n / (K n_k))."""
        return np.sqrt(self.inverse_weights())

    def effective_weights(self, beta: float) -> np.ndarray:
        """Class-balanced weights (Cui et al. 2019), normalised so that sum_k w_k = K.

        w_k proportional to (1 - beta) / (1 - beta^n_k), the inverse effective number of samples.
        beta = 0 gives w_k = 1 for every class.
        """
        if beta == 0.0:
            raw = np.ones_like(self.counts)
        else:
            # (1 - beta) / (1 - beta^n), 1 - beta^n = -expm1(n log beta): exact for beta near 0 or 1
            raw = -math.expm1(math.log(beta)) / -np.expm1(self.counts * math.log(beta))
        return raw * self.num_classes / raw.sum()

    def dwb_weights(self) -> np.ndarray:
        """w_k = log(n_max / n_k) + 1 (the DWB paper, eq. 8)."""
        return np.log(self.counts.max() / self.counts) + 1.0

    def prior_complement(self) -> np.ndarray:
        """w_k = 1 - pi_k (AMRL)."""
        return 1.0 - self.priors

    def ldam_margins(self, max_margin: float) -> np.ndarray:
        """Delta_k = C / n_k^(1/4) with C chosen so that max_k Delta_k = max_margin."""
        raw = self.counts**-0.25
        return max_margin * raw / raw.max()

    def vs_scales(self, gamma: float) -> np.ndarray:
        """Delta_k = (n_k / n_max)^gamma (VS loss multiplicative logit scale)."""
        return (self.counts / self.counts.max()) ** gamma

    def log_priors(self) -> np.ndarray:
        """log pi_k."""
        return np.log(self.priors)


def class_stats(class_counts: Sequence[int] | np.ndarray) -> ClassStats:
    """Validate training class counts and wrap them in a `ClassStats`.

    Args:
        class_counts: number of training samples of each class, in class-index order
            (at least two classes, every count a positive integer).

    Raises:
        ValueError: fewer than two classes, or a count that is not a positive integer.
    """
    arr = np.asarray(class_counts)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise InputError(
            f"class_counts: expected a list of at least 2 per-class counts, got {class_counts!r}"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_):
        raise InputError(f"class_counts: expected positive integers, got {class_counts!r}")
    if not (np.all(np.isfinite(arr)) and np.all(arr >= 1) and np.all(arr == np.round(arr))):
        raise InputError(
            f"class_counts: every class needs at least one training sample (positive integers), "
            f"got {arr.tolist()!r}"
        )
    return ClassStats(counts=arr.astype(np.float64))


def count_classes(labels: np.ndarray | Sequence[int], num_classes: int) -> list[int]:
    """Class counts of integer (or one-hot) training labels: the `class_counts` of a loss."""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == num_classes:
        y = y.argmax(axis=1)
    return np.bincount(y.reshape(-1).astype(np.int64), minlength=num_classes).tolist()


# ----------------------------------------------------------------------------------------------
# parameter declarations


@dataclass(frozen=True)
class Param:
    """One loss parameter: its default and the values it accepts.

    A value may be a number (`scalar`), a list of K numbers (`per_class`), one of `choices`
    (strings), `None` (`nullable`), or a boolean (`boolean`). Numbers must be finite and lie in
    `[low, high]` (open ends with `low_open` / `high_open`); `integer` asks for an integer.

    `search` is the range `compare --tune` searches (SPEC 9): `(low, high)` or
    `(low, high, "log")` for a number, or a tuple of the values to try (`search_choices`).
    A parameter with neither is never tuned.
    """

    default: Any
    help: str
    scalar: bool = True
    per_class: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False
    boolean: bool = False
    integer: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    search: tuple[float, float] | tuple[float, float, str] | None = None
    search_choices: tuple[Any, ...] = ()

    @classmethod
    def weights(cls, default: Any, help: str, choices: tuple[str, ...], **more: Any) -> Param:
        """Class weights: one of the named `choices` (schemes) or a list of K weights >= 0."""
        return cls(default, help, scalar=False, per_class=True, choices=choices, low=0.0, **more)

    def search_space(self) -> str | None:
        """Human-readable search range of `compare --tune`, or None when not tuned."""
        if self.search_choices:
            return "one of " + ", ".join(str(c) for c in self.search_choices)
        if self.search is None:
            return None
        low, high, *log = self.search
        return f"{'log-' if log else ''}uniform [{low:g}, {high:g}]"

    def allowed(self) -> str:
        """Human-readable description of the accepted values."""
        if self.boolean:
            return "true or false"
        parts: list[str] = []
        num = "an integer" if self.integer else "a number"
        rng = []
        if self.low is not None:
            rng.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            rng.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        num_txt = num + (" " + " and ".join(rng) if rng else "")
        if self.choices:
            parts.append(" | ".join(self.choices))
        if self.scalar:
            parts.append(num_txt)
        if self.per_class:
            parts.append(f"a list of K numbers{' ' + ' and '.join(rng) if rng else ''}")
        if self.nullable:
            parts.append("unset (default)")
        return " or ".join(parts)

    def _number(self, value: Any) -> float | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float | np.integer | np.floating):
            x = float(value)
        elif isinstance(value, str):
            try:
                x = float(value)
            except ValueError:
                return None
        else:
            return None
        if not math.isfinite(x):
            return None
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return None
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            return None
        if self.integer and x != round(x):
            return None
        return x

    def validate(self, loss: str, name: str, value: Any, num_classes: int) -> Any:
        """Return the normalised value, or raise ValueError saying what is allowed."""

        def bad(extra: str = "") -> InputError:
            return InputError(
                f"loss {loss!r}: parameter {name}={value!r} is invalid{extra}; "
                f"expected {self.allowed()}"
            )

        if value is None:
            if self.nullable:
                return None
            raise bad()
        if self.boolean:
            if isinstance(value, bool):
                return value
            if isinstance(value, int | np.integer) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            raise bad()
        if isinstance(value, str) and value in self.choices:
            return value
        if isinstance(value, list | tuple | np.ndarray):
            if not self.per_class:
                raise bad()
            items = list(np.asarray(value).reshape(-1)) if isinstance(value, np.ndarray) else value
            if len(items) != num_classes:
                raise bad(f" (got {len(items)} values for {num_classes} classes)")
            out = [self._number(v) for v in items]
            if any(v is None for v in out):
                raise bad()
            return [float(v) for v in out]  # type: ignore[arg-type]
        if self.scalar:
            x = self._number(value)
            if x is not None:
                return int(x) if self.integer else x
        raise bad()


# ----------------------------------------------------------------------------------------------
# numerically stable building blocks (keras.ops: any Keras 3 backend)


def take(values: Any, labels: Any) -> Any:
    """values[labels]: a per-class vector `(K,)` read at each sample's class `(batch,)`."""
    return ops.take(values, labels, axis=0)


def true_class_log_probs(labels: Any, logits: Any) -> Any:
    """log p_y = log softmax(z)_y per sample, from logits `(batch, K)` and indices `(batch,)`."""
    log_p = ops.log_softmax(logits, axis=-1)
    return ops.squeeze(ops.take_along_axis(log_p, labels[:, None], axis=-1), axis=-1)


def log_true_and_rest(labels: Any, logits: Any) -> tuple[Any, Any]:
    """(log p_y, log(1 - p_y)) per sample, both stable for logits of any finite magnitude.

    log(1 - p_y) = logsumexp_{k != y} z_k - logsumexp_k z_k, so it never takes the log of a
    difference and its gradient stays finite when p_y rounds to 1. Their difference
    `log p_y - log(1 - p_y) = z_y - logsumexp_{k != y} z_k` is AMRL's score s.
    """
    mask = ops.one_hot(labels, ops.shape(logits)[-1], dtype="bool")
    lse = ops.logsumexp(logits, axis=-1)
    z_y = ops.sum(ops.where(mask, logits, ops.zeros_like(logits)), axis=-1)
    neg_inf = ops.full_like(logits, -np.inf)
    lse_rest = ops.logsumexp(ops.where(mask, neg_inf, logits), axis=-1)
    return z_y - lse, lse_rest - lse


def labels_to_indices(y_true: Any, num_classes: int) -> Any:
    """Class indices `(batch,)` int32 from integer labels `(batch,)` / `(batch, 1)` or one-hot.

    A rank-2 `y_true` whose last dimension is K is read as one-hot (argmax); one of last
    dimension 1 is squeezed.
    """
    y = ops.convert_to_tensor(y_true)
    if len(y.shape) == 2 and y.shape[-1] == num_classes:
        return ops.cast(ops.argmax(y, axis=-1), "int32")
    if len(y.shape) == 2:
        y = ops.squeeze(y, axis=-1)
    if "int" not in keras.backend.standardize_dtype(y.dtype):
        y = ops.round(y)
    return ops.cast(y, "int32")


def balanced_cross_entropy(labels: Any, logits: Any, num_classes: int) -> Any:
    """Mean over the classes present in `labels` of the per-class mean of -log p_y (a scalar)."""
    ce = -true_class_log_probs(labels, logits)
    onehot = ops.one_hot(labels, num_classes, dtype=ce.dtype)
    sums = ops.sum(onehot * ce[:, None], axis=0)
    counts = ops.sum(onehot, axis=0)
    present = ops.cast(counts > 0, ce.dtype)
    means = sums / ops.maximum(counts, 1.0)
    return ops.sum(means * present) / ops.sum(present)


# ----------------------------------------------------------------------------------------------
# the base class


class KerasLossArgs(TypedDict, total=False):
    """The `keras.losses.Loss` arguments every loss takes (and `get_config` returns): a
    subclass's `**keras_args`, passed on to `LossbenchLoss.__init__` unchanged."""

    name: str | None
    reduction: str | None
    dtype: str | None


class LossbenchLoss(keras.losses.Loss):
    """Base class of the lossbench losses: labels handling, config, training-loop hooks.

    Subclasses declare `NAME`, `FORMULA`, `SOURCE` and `PARAMS` (name -> `Param`), call
    `super().__init__(class_counts, **self.given(locals()))` (the declared parameters and the
    Keras arguments of their own signature, forwarded once) and then build
    their per-class constants from `self.stats` (never inside `call`) with `constant`, which holds
    them (and any scalar parameter `call` reads) in variables; `TRACE_FREE` names the arguments
    whose values reach the compiled steps only that way. `call` returns the
    per-sample loss `(batch,)` computed with `keras.ops` only; reduction is Keras' (default
    `sum_over_batch_size`).

    The interface between a loss and `lossbench.training.Trainer`: every member below is declared
    here with its default, and the trainer calls them unconditionally (a loss overrides only
    what it changes).

    What the trainer and the evaluation read (defaults here):

    * `head`, `scale`: the model head the loss needs ("linear", 1; LDAM: "cosine", 30), built by
      `lossbench.models.build_model(..., head=loss.head, scale=loss.scale)`.
    * `posterior(logits)`: the class probabilities for calibration (softmax(z) by default).
    * `selection_start(epochs)`: first epoch of the final training phase (0 by default).

    Training-loop hooks (no-ops here), called by `lossbench.training` and, in a plain `model.fit`,
    by the callbacks of `callbacks()`, in this order: `on_train_begin`, then per epoch
    `on_epoch_begin`, `observe_batch` for each batch, `on_epoch_end`, `learned_params`:

    * `observe_batch(y_true, logits)`: each training batch's labels and logits, inside the
      compiled step (AMRL's constraint estimate).
    * `on_train_begin(epochs)`, `on_epoch_begin(epoch)` (0-based; LDAM-DRW, AMRL),
      `on_epoch_end(epoch, y_val, proba_val)` (PGFL, AMRL; eager NumPy).
    * `learned_params()`: flat dict of floats logged per epoch.

    The bi-level step (AutoBalance; off while `upper_variables` is None): `upper_variables`,
    `upper_lr`, `interval` (steps between upper steps; None: 10% of an epoch), `upper_pairs`
    and `val_objective(y_true, logits)`.
    """

    NAME: ClassVar[str] = ""
    FORMULA: ClassVar[str] = ""
    SOURCE: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Param]] = {}
    #: for `describe()`: the posterior calibration uses, and the model head by default
    POSTERIOR: ClassVar[str] = "softmax(z)"
    HEAD: ClassVar[str] = "linear"

    #: AutoBalance's bi-level step (see the class docstring); None: the loss has none
    upper_variables: list[keras.Variable] | None = None
    upper_lr: float = 1e-2
    interval: int | None = None
    upper_pairs: int = 4
    #: constructor arguments (parameters, "class_counts") whose values reach the compiled steps
    #: only through the loss's variables (`constant`, `variable`) or eager hooks, never as Python
    #: values read while tracing: runs that differ only in them share one traced step
    #: (`trace_signature`, `lossbench.training.trainer_for_run`). Default: none (every argument
    #: shapes the trace).
    TRACE_FREE: ClassVar[frozenset[str]] = frozenset()
    #: the model head the loss needs (`lossbench.models.build_model(..., head=, scale=)`):
    #: "linear" (the plain Dense logits) or "cosine" (s * cos, LDAM); `scale` multiplies it.
    head: str = "linear"
    scale: float = 1.0

    def __init__(
        self,
        class_counts: Sequence[int] | np.ndarray,
        *,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(name=name or self.NAME, reduction=reduction, dtype=dtype)
        self.stats = class_stats(class_counts)
        self.num_classes = self.stats.num_classes
        self.class_counts = [int(c) for c in self.stats.counts]
        self._dtype_arg = dtype if dtype is None or isinstance(dtype, str) else self.dtype
        self.params = self.validate_params(params, self.num_classes)

    # ---- parameters and config

    @classmethod
    def given(cls, args: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments a subclass's `__init__` forwards to `LossbenchLoss.__init__`:
        from its `locals()`, the values of the parameters it declares in `PARAMS` and its
        `**keras_args` (name, reduction, dtype), so that the explicit signature is not restated."""
        return {k: args[k] for k in cls.PARAMS if k in args} | args.get("keras_args", {})

    @classmethod
    def validate_params(cls, params: dict[str, Any], num_classes: int) -> dict[str, Any]:
        """Check names and values against `PARAMS`; returns all parameters (defaults filled in)."""
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            raise InputError(
                f"loss {cls.NAME!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"allowed: {cls.allowed_params()}"
            )
        out = {}
        for key, spec in cls.PARAMS.items():
            value = params.get(key, spec.default)
            out[key] = spec.validate(cls.NAME, key, value, num_classes)
        return out

    @classmethod
    def allowed_params(cls) -> str:
        """One line listing every parameter, its allowed values and its default."""
        if not cls.PARAMS:
            return "none (this loss takes no parameters)"
        return "; ".join(
            f"{k} ({p.allowed()}, default {p.default!r})" for k, p in cls.PARAMS.items()
        )

    def state_config(self) -> dict[str, Any]:
        """Constructor arguments capturing the current learned state (overridden by subclasses)."""
        return {}

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments: class_counts, parameters (with current learned state), name..."""
        config = {"class_counts": list(self.class_counts), **self.params}
        config.update(self.state_config())
        config.update({"name": self.name, "reduction": self.reduction, "dtype": self._dtype_arg})
        return config

    def trace_signature(self) -> dict[str, Any]:
        """What shapes the loss's compiled code: `get_config()` less the name and `TRACE_FREE`.
        Two losses of one class with equal signatures can run in one traced step, each with its
        own values (`lossbench.training.Trainer.restart` assigns them to the step's variables)."""
        return {
            k: v for k, v in self.get_config().items() if k != "name" and k not in self.TRACE_FREE
        }

    # ---- helpers for subclasses

    def constant(self, values: np.ndarray | Sequence[float] | float, name: str) -> keras.Variable:
        """A per-class constant (or a scalar parameter) of the run, built once in `__init__`,
        in the loss's dtype. It is held in a non-trainable variable, so that a step traced for
        one run reads the values of the next run of another configuration (`TRACE_FREE`)."""
        return self.variable(values, name)

    def variable(
        self, values: np.ndarray | Sequence[float] | float, name: str, trainable: bool = False
    ) -> keras.Variable:
        """A per-class `keras.Variable` in the loss's dtype (state read inside compiled steps)."""
        return keras.Variable(
            np.asarray(values, dtype=np.float64).astype(self.dtype),
            trainable=trainable,
            name=f"{self.NAME}_{name}",
            dtype=self.dtype,
        )

    def prepare(self, y_true: Any, logits: Any) -> tuple[Any, Any]:
        """(class indices int32 `(batch,)`, logits in the loss's dtype `(batch, K)`)."""
        logits = ops.cast(ops.convert_to_tensor(logits), self.dtype)
        return labels_to_indices(y_true, self.num_classes), logits

    def read(self, variable: keras.Variable, like: Any) -> Any:
        """The current value of a state variable, in the dtype of `like`."""
        return ops.cast(ops.convert_to_tensor(variable), like.dtype)

    # ---- what the trainer and the evaluation read

    def selection_start(self, epochs: int) -> int:
        """0-based epoch from which the loss's final training phase is active (0 by default).

        Model selection only considers epochs from here on, and early stopping does not end a run
        before `selection_start + patience` epochs.
        """
        return 0

    def posterior(self, logits: Any) -> Any:
        """Class probabilities `(batch, K)` that this loss's training makes consistent with the
        data's prior: softmax(z) unless a subclass says otherwise (calibration uses these;
        decisions use argmax z)."""
        return ops.softmax(ops.cast(logits, "float32"), axis=-1)

    # ---- training-loop hooks (no-ops by default)

    @property
    def state_variables(self) -> list[keras.Variable]:
        """The variables the epoch hooks change (none by default)."""
        return []

    def observe_batch(self, y_true: Any, logits: Any) -> None:
        """Called with each training batch's labels and logits inside the compiled train step."""
        return None  # a body besides the docstring keeps AutoGraph from failing to convert it

    def on_train_begin(self, epochs: int) -> None:
        """Called once before training with the planned number of epochs."""

    def on_epoch_begin(self, epoch: int) -> None:
        """Called before each epoch (0-based)."""

    def on_epoch_end(self, epoch: int, y_val: np.ndarray, proba_val: np.ndarray) -> None:
        """Called after each epoch with validation labels and predicted probabilities (eager)."""

    def learned_params(self) -> dict[str, float]:
        """Current values of the learned/adapted parameters, flat and JSON-able."""
        return {}

    def val_objective(self, y_true: Any, logits: Any) -> Any:
        """The upper-level objective of a bi-level loss (only read when `upper_variables`)."""
        raise NotImplementedError(f"loss {self.name!r} has no bi-level step")

    def callbacks(self, **data: Any) -> list[keras.callbacks.Callback]:
        """The epoch hooks as Keras callbacks for a plain `model.fit` (none for static losses).

        Adaptive losses return `[LossHooks(self, ...)]`; see their docstrings for the data they
        need (PGFL: `validation_data=(x, y)`, AMRL: `train_data=(x, y)`).
        """
        return []
