"""Your own losses and network for lossbench (README, "Your own loss or network").

Run them beside the built-ins, under the same protocol:

    lossbench compare --losses ce,focal,examples/my_losses.py:poly1_ce,examples/my_losses.py:Poly1 \
        --seeds 0 --epochs 5 --model mlp
    lossbench compare --losses ce,examples/my_losses.py:Poly1 --tune 4 --seeds 0 --epochs 5
    lossbench compare --losses ce,focal --model examples/my_losses.py:build_mlp \
        --model-param units=32 --seeds 0 --epochs 5
"""

from __future__ import annotations

import keras
from keras import ops

from lossbench.losses import LossbenchLoss, Param


def poly1_ce(y_true, logits):
    """Poly-1 (Leng et al. 2022) with epsilon = 1, as a plain function: the run's name is
    `poly1_ce`. `y_true` is one-hot `(B, K)`, `logits` `(B, K)`; returns per-sample values `(B,)`.
    """
    log_p = ops.log_softmax(logits, axis=-1)
    ce = -ops.sum(y_true * log_p, axis=-1)
    p_true = ops.sum(y_true * ops.exp(log_p), axis=-1)
    return ce + (1.0 - p_true)


class Poly1(LossbenchLoss):
    """Poly-1 with its epsilon a parameter (`--param epsilon=2`) and a search range for `--tune`.

    ```
    L = -log p_y + epsilon (1 - p_y)
    ```
    """

    NAME = "poly1"
    FORMULA = "-log p_y + epsilon (1 - p_y)"
    SOURCE = "Leng et al. 2022, PolyLoss (ICLR)"
    PARAMS = {
        "epsilon": Param(1.0, "weight of the first polynomial term", low=-1.0, search=(-1.0, 5.0))
    }

    def __init__(self, class_counts, **kwargs):
        super().__init__(class_counts, **kwargs)
        # a value the compiled step reads: held in a variable (`constant`), read with `read`
        self.epsilon = self.constant(self.params["epsilon"], "epsilon")

    def call(self, y_true, logits):
        labels, logits = self.prepare(y_true, logits)  # class indices, logits in the loss dtype
        log_p = ops.log_softmax(logits, axis=-1)
        log_p_true = ops.squeeze(ops.take_along_axis(log_p, labels[:, None], axis=-1), axis=-1)
        return -log_p_true + self.read(self.epsilon, log_p_true) * (1.0 - ops.exp(log_p_true))


def build_mlp(n_features: int, n_classes: int, units: int = 64) -> keras.Model:
    """A two-layer MLP of logits (`--model examples/my_losses.py:build_mlp --model-param
    units=32`)."""
    inputs = keras.Input(shape=(n_features,))
    x = keras.layers.Dense(units, activation="relu")(inputs)
    x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_classes)(x))
