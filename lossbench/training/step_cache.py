"""Traced steps reused across the runs of a process (SPEC 7, a fixed cost per run).

A process keeps, per kind of run, the trainer with its traced steps (`STEP_CACHE`), the initial
weights of each (network, seed) (`INITIAL_WEIGHTS`), one model per network (`MODELS`) and the
compiled functions shared by the trainers of every loss on a model (`MODEL_FUNCTIONS`,
`MODEL_UPDATES`). A cached trainer takes a new run's state with `carry_loss_state`: the new
loss's values go into the variables the traced step reads. `kernel_caches_kept` keeps
TensorFlow's compiled functions alive across a run's seeding and session clearing.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import keras
import numpy as np
import tensorflow as tf

#: the private TensorFlow function that `keras.utils.set_random_seed` and
#: `keras.backend.clear_session` call to empty the kernel caches (`kernel_caches_kept`)
CACHE_CLEARER = "TFE_ContextClearCaches"


def cache_clearer_module() -> ModuleType:
    """The module that holds TensorFlow's kernel-cache clearer, `pywrap_tfe`.

    Private API, isolated here: TensorFlow offers no public way to keep its kernel caches when
    the global seed is set or the Keras session cleared, and emptying them costs 0.3-0.5 s a
    run (`kernel_caches_kept`). `tests/test_private_apis.py` fails when it changes.
    """
    from tensorflow.python import pywrap_tfe

    return pywrap_tfe


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
    module = cache_clearer_module()
    clear = getattr(module, CACHE_CLEARER, None)
    if clear is None:  # another TensorFlow: caches cleared as before (tests/test_private_apis.py)
        yield
        return
    setattr(module, CACHE_CLEARER, lambda handle: None)
    try:
        yield
    finally:
        setattr(module, CACHE_CLEARER, clear)


#: how many trainers (each a model, its optimizer, a loss and their traced steps) a process keeps
STEP_CACHE_SIZE = 16
#: kind of run (`trainer_for_run`) -> its `Trainer`
STEP_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
INITIAL_WEIGHTS: OrderedDict[tuple[str, int], tuple[list[np.ndarray], str]] = OrderedDict()
MODELS: OrderedDict[str, keras.Model] = OrderedDict()
MODEL_FUNCTIONS: OrderedDict[tuple[int, bool], tuple[keras.Model, tuple[Any, Any]]] = OrderedDict()


def _held(cache: OrderedDict[Any, tuple[keras.Model, Any]], key: Any, model: keras.Model) -> Any:
    """What `cache` holds for `model` under `key` (then the most recently used), or None: an
    entry of another model whose id `key` reuses holds nothing for this one."""
    held = cache.get(key)
    if held is None or held[0] is not model:
        return None
    cache.move_to_end(key)
    return held[1]


def model_functions(model: keras.Model, jit_compile: bool) -> tuple[Any, Any]:
    """The compiled functions of `model` alone, one pair per model and XLA setting, shared by
    the trainers of every loss on it: its evaluation step (float32 logits of a batch) and the
    check that every trainable weight is finite."""
    key = (id(model), bool(jit_compile))
    held = _held(MODEL_FUNCTIONS, key, model)
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
    MODEL_FUNCTIONS[key] = (model, fns)
    return fns


@dataclass
class ModelUpdate:
    """`model_update`'s result: the optimizer, its state when new (values to restore), and the
    compiled forward pass (training mode) and update, each traced once for the model."""

    optimizer: Any
    start: list[tuple[Any, np.ndarray]]
    forward: Any
    apply: Any


MODEL_UPDATES: OrderedDict[tuple[Any, ...], tuple[keras.Model, ModelUpdate]] = OrderedDict()


def model_update(
    model: keras.Model, precision: str, clipnorm: float | None, jit_compile: bool
) -> ModelUpdate:
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
    held = _held(MODEL_UPDATES, key, model)
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

    update = ModelUpdate(
        optimizer,
        start,
        tf.function(forward, jit_compile=jit_compile, reduce_retracing=True, autograph=False),
        tf.function(apply, jit_compile=jit_compile, reduce_retracing=True, autograph=False),
    )
    MODEL_UPDATES[key] = (model, update)
    return update


_CACHES = (STEP_CACHE, INITIAL_WEIGHTS, MODELS, MODEL_FUNCTIONS, MODEL_UPDATES)


def trim_caches() -> None:
    """Keep the `STEP_CACHE_SIZE` most recently used entries of every cache."""
    for cache in _CACHES:
        while len(cache) > STEP_CACHE_SIZE:
            cache.popitem(last=False)


def clear_step_cache() -> None:
    """Forget every cached trainer and initial weights (the next run of each kind traces its
    steps afresh)."""
    for cache in _CACHES:
        cache.clear()


def carry_loss_state(mine: Any, fresh: Any) -> tuple[list[tuple[Any, Any]], dict[str, Any]] | None:
    """How the cached loss `mine` (read by a traced step) takes the state of `fresh`, a new
    instance of its class and `trace_signature()`: (variable assignments, attribute values), or
    None when it cannot (a variable the traced step does not know, a constant of another value).
    Nothing is changed here."""
    plan: list[tuple[Any, Any]] = []
    updates: dict[str, Any] = {}
    for name, value in vars(fresh).items():
        if name not in vars(mine):
            updates[name] = value
            if holds_tf(value):
                return None
            continue
        ok, kept = carry(vars(mine)[name], value, plan)
        if not ok:
            return None
        updates[name] = kept
    return plan, updates


def holds_tf(value: Any) -> bool:
    """Whether `value` is or contains (in lists, tuples, dicts) a TensorFlow/Keras variable or
    tensor."""
    if isinstance(value, tf.Variable | tf.Tensor) or hasattr(value, "assign"):
        return True
    if isinstance(value, list | tuple):
        return any(holds_tf(v) for v in value)
    if isinstance(value, dict):
        return any(holds_tf(v) for v in value.values())
    return False


def carry(mine: Any, fresh: Any, plan: list[tuple[Any, Any]]) -> tuple[bool, Any]:
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
    if isinstance(mine, list | tuple) and holds_tf(mine):
        if type(fresh) is not type(mine) or len(fresh) != len(mine):
            return False, None
        for a, b in zip(mine, fresh, strict=True):
            if not carry(a, b, plan)[0]:
                return False, None
        return True, mine
    if isinstance(mine, dict) and holds_tf(mine):
        if not isinstance(fresh, dict) or set(fresh) != set(mine):
            return False, None
        for k in mine:
            if not carry(mine[k], fresh[k], plan)[0]:
                return False, None
        return True, mine
    if holds_tf(fresh):
        return False, None
    return True, fresh
