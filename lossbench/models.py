"""The networks every loss trains (SPEC section 3): the paper's 1D-CNN and a small MLP.

Both output logits (no softmax): the losses and metrics apply softmax themselves, exactly once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any, get_args

import keras
import numpy as np

from lossbench.choices import ModelName, Precision

MODELS: tuple[str, ...] = get_args(ModelName)
HEADS = ("linear", "cosine")
PRECISIONS: tuple[str, ...] = get_args(Precision)


@keras.saving.register_keras_serializable(package="lossbench")
class MaxPool1D(keras.layers.Layer):
    """Max pooling over non-overlapping windows along the steps axis ("valid" padding).

    Kept so that models saved by earlier versions load after `import lossbench.models`;
    `build_model` now uses `PairMaxPool1D` (saved as `max_pool_standard`).

    The same function as `keras.layers.MaxPooling1D(pool_size)`, written as reshape + max so that
    its gradient has a deterministic XLA implementation (TensorFlow has none for MaxPoolGrad
    under op determinism), which lets the train step be XLA-compiled with determinism on.
    """

    def __init__(self, pool_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)

    def call(self, x):
        steps = x.shape[1] // self.pool_size
        x = x[:, : steps * self.pool_size, :]
        x = keras.ops.reshape(x, (-1, steps, self.pool_size, x.shape[2]))
        return keras.ops.max(x, axis=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] // self.pool_size, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="lossbench")
class CosineDense(keras.layers.Dense):
    """The normalised (cosine) classifier head: logits s * cos(x, w_k) = s * x.w_k / (|x| |w_k|).

    The head of LDAM's authors (kaidic/LDAM-DRW, models/resnet_cifar.py, NormedLinear) with the
    scale s applied here, so the model's logits are the s * cos the loss sees. It builds exactly
    the variables of `keras.layers.Dense` (kernel, then bias, drawn by the same initialisers), so
    a model with this head starts from the same weights (and checksum) as the plain head; the bias
    is frozen at 0 (not trainable) and unused, as the authors' head has none.
    """

    def __init__(self, units: int, scale: float = 30.0, **kwargs):
        kwargs.pop("activation", None)
        super().__init__(units, **kwargs)
        self.scale = float(scale)

    def build(self, input_shape):
        super().build(input_shape)
        if self.bias is not None:
            self.bias.trainable = False

    def call(self, inputs, training=None):
        x = keras.ops.convert_to_tensor(inputs)
        x = x / keras.ops.sqrt(
            keras.ops.maximum(keras.ops.sum(x * x, axis=-1, keepdims=True), 1e-24)
        )
        w = keras.ops.convert_to_tensor(self.kernel)
        w = w / keras.ops.sqrt(
            keras.ops.maximum(keras.ops.sum(w * w, axis=0, keepdims=True), 1e-24)
        )
        return self.scale * keras.ops.matmul(x, w)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="lossbench")
class PairMaxPool1D(keras.layers.Layer):
    """`MaxPool1D(2)` ("valid" padding) as the network trains it: the steps cut to an even
    count, pairs of steps laid side by side as channels, split in halves and compared by
    `keras.ops.maximum`. The same values and gradients as `max_pool_standard` (a tie sends the
    gradient to the first step of the pair, as there) and deterministic under XLA, but without
    its `Cropping1D`/`Permute` layers, whose gradients (StridedSliceGrad, transposes) made the
    pool cost 9.3 ms of a 21 ms step of the paper's CNN at batch 256 on a 2-core CPU (1.7 ms
    here). `portable` saves it as `max_pool_standard`, so `model.keras` stays in standard layers.
    """

    def call(self, x):
        steps, channels = x.shape[1] // 2, x.shape[2]
        if x.shape[1] != 2 * steps:  # tf.slice, whose gradient is a pad (a strided slice's is slow)
            x = keras.ops.slice(x, (0, 0, 0), (keras.ops.shape(x)[0], 2 * steps, channels))
        x = keras.ops.reshape(x, (-1, steps, 2 * channels))  # row i: [x_2i, x_2i+1]
        first, second = keras.ops.split(x, 2, axis=-1)
        return keras.ops.maximum(first, second)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] // 2, input_shape[2])


def max_pool_standard(x, pool_size: int):
    """`MaxPool1D(pool_size)` built from standard Keras layers only (so a saved model loads in
    plain `keras.saving.load_model`, without lossbench): the form `portable` saves
    `PairMaxPool1D` in (the network trains with that layer). The steps are cut to a multiple of the
    pool, pairs of steps laid side by side as channels, and the halves compared by `Maximum`,
    whose gradient is deterministic under XLA as MaxPoolGrad's is not. Only `pool_size` 2 is
    needed by cnn1d and supported."""
    if pool_size != 2:
        raise ValueError("max_pool_standard supports pool_size 2 only")
    steps, channels = x.shape[1] // 2, x.shape[2]
    # named, so that they never clash with the layers of the network they are put in
    x = keras.layers.Cropping1D((0, x.shape[1] - 2 * steps), name="pool_even")(x)
    x = keras.layers.Reshape((steps, 2 * channels), name="pool_pairs")(x)  # row i: x_2i, x_2i+1
    x = keras.layers.Permute((2, 1), name="pool_transpose")(x)  # (2C, steps)
    first = keras.layers.Cropping1D((0, channels), name="pool_first")(x)
    second = keras.layers.Cropping1D((channels, 0), name="pool_second")(x)
    x = keras.layers.Maximum(name="pool_max")([first, second])
    return keras.layers.Permute((2, 1), name="pool")(x)


def build_model(
    name: str,
    n_features: int,
    n_classes: int,
    *,
    filters: int = 64,
    units: int = 128,
    dropout: float = 0.2,
    head: str = "linear",
    scale: float = 1.0,
    precision: str = "float32",
    params: dict[str, Any] | None = None,
) -> keras.Model:
    """Build `cnn1d` (paper Fig. 4) or `mlp` for inputs of shape (n_features,), or the user's
    network `MODULE:ATTR`: `build(n_features, n_classes, **params)` returning logits (the head
    arguments apply to the built-in networks only).

    head: "linear" (Dense(K) logits; `scale` != 1 multiplies them) or "cosine" (`CosineDense`,
    logits scale * cos, LDAM's head). Both create the same variables from the same initialisers,
    so under one seed the initial weights (and `weights_checksum`) do not depend on the head.
    Pass the loss's declaration: `build_model(..., head=loss.head, scale=loss.scale)`.

    cnn1d: (F,) -> reshape (F, 1) -> Conv1D(filters, 3, ReLU) -> Conv1D(filters, 3, ReLU)
        -> MaxPool1D(2)
    -> Flatten -> Dense(units, ReLU) -> Dense(K) logits.
    mlp: Dense(64, ReLU) -> Dropout -> Dense(32, ReLU) -> Dense(K) logits (the seed notebook's
        network).
    Weights are drawn from Keras' seeded initialisers: call `keras.utils.set_random_seed` first.
    precision: the Keras dtype policy of every layer (float32, mixed_bfloat16, mixed_float16);
    under a mixed policy the weights stay float32 (the same initial values) and the layers
    compute, and output logits, in the low precision: the trainer casts the logits to float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}"
        )
    with _dtype_policy(precision):
        if ":" in name:  # the user's builder MODULE:ATTR (`user_model`)
            from lossbench.losses.user import build_model as build_user

            return build_user(user_model(name), n_features, n_classes, dict(params or {}))
        return _build(name, n_features, n_classes, filters, units, dropout, head, scale)


#: The user's network builders resolved in this process, by spec.
USER_MODELS: dict[str, Any] = {}


def unpack_model(code: Any) -> None:
    """Register, in a Ray worker, the user's network a task carries (`losses.user.unpack`)."""
    from lossbench.losses.user import unpack

    USER_MODELS[code.spec] = unpack(code)


def user_model(spec: str) -> Any:
    """The `UserCode` of a network spec `MODULE:ATTR` (resolved once per process)."""
    from lossbench.losses.user import resolve_model

    if spec not in USER_MODELS:
        USER_MODELS[spec] = resolve_model(spec)
    return USER_MODELS[spec]


@contextlib.contextmanager
def _dtype_policy(policy: Any) -> Iterator[None]:
    """Within: Keras' global dtype policy is `policy` (layers built inside take it); the policy
    before is restored after, so that it never leaks into other models of the process."""
    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(saved)


def _build(
    name: str,
    n_features: int,
    n_classes: int,
    filters: int,
    units: int,
    dropout: float,
    head: str,
    scale: float,
) -> keras.Model:
    inputs = keras.Input(shape=(n_features,), name="features")
    if name == "cnn1d":
        if n_features < 6:
            raise ValueError(f"cnn1d needs at least 6 features, got {n_features}; use model mlp")
        x = keras.layers.Reshape((n_features, 1))(inputs)
        x = keras.layers.Conv1D(filters, 3, activation="relu", name="conv1")(x)
        x = keras.layers.Conv1D(filters, 3, activation="relu", name="conv2")(x)
        x = PairMaxPool1D(name="pool")(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(units, activation="relu", name="dense")(x)
    elif name == "mlp":
        x = keras.layers.Dense(64, activation="relu", name="dense1")(inputs)
        x = keras.layers.Dropout(dropout)(x)
        x = keras.layers.Dense(32, activation="relu", name="dense2")(x)
    else:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    if head == "cosine":
        logits = CosineDense(n_classes, scale=scale, name="logits")(x)
    elif head == "linear":
        logits = keras.layers.Dense(n_classes, name="logits")(x)
        if scale != 1.0:
            logits = keras.layers.Rescaling(scale, name="logit_scale")(logits)
    else:
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(HEADS)}")
    return keras.Model(inputs, logits, name=name)


def portable(model: keras.Model) -> keras.Model:
    """The same network in standard Keras layers only, for `model.keras` files that load in plain
    `keras.saving.load_model` without lossbench: a `CosineDense` head becomes
    UnitNormalization -> Dense(no bias) with the kernel `scale * w / |w|` (the same logits, to float
    rounding); a `PairMaxPool1D` becomes `max_pool_standard` (the same values); every other layer
    is shared as it is."""
    if not any(isinstance(layer, CosineDense | PairMaxPool1D) for layer in model.layers):
        return model

    def call(layer, *args, **kwargs):
        if isinstance(layer, PairMaxPool1D):  # its standard layers under the model's policy
            with _dtype_policy(layer.dtype_policy):
                return max_pool_standard(args[0], 2)
        if not isinstance(layer, CosineDense):
            return layer(*args, **kwargs)
        x = keras.layers.UnitNormalization(axis=-1, name=f"{layer.name}_unit")(args[0])
        dense = keras.layers.Dense(layer.units, use_bias=False, name=layer.name)
        out = dense(x)
        w = keras.ops.convert_to_numpy(layer.kernel)
        norm = np.sqrt(np.maximum((w * w).sum(axis=0, keepdims=True), 1e-24))
        dense.set_weights([(layer.scale * w / norm).astype(w.dtype)])
        return out

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)


def weights_checksum(model: keras.Model) -> str:
    """SHA-256 of all weights (names, shapes and bytes): equal checksums mean identical weights."""
    h = hashlib.sha256()
    for w in model.weights:
        arr = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
        h.update(f"{w.path}:{arr.shape}:{arr.dtype}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def training_flops_per_sample(model: keras.Model) -> float:
    """FLOPs of one forward + backward pass for one sample (2 per multiply-add; backward = 2x
    forward).

    Counts the dense and convolution layers, which dominate; activations and pooling are ignored.
    """
    forward = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            fan_in, units = layer.kernel.shape
            forward += 2.0 * fan_in * units
        elif isinstance(layer, keras.layers.Conv1D):
            k, c_in, c_out = layer.kernel.shape
            length = layer.output.shape[1]
            forward += 2.0 * length * k * c_in * c_out
    return 3.0 * forward
