"""Helper of test_losses_backend.py, run in a subprocess under a chosen KERAS_BACKEND.

Trains one small model per loss with a plain `model.fit` (no lossbench trainer) from
backend-independent initial weights and prints the loss values and final logits as JSON.
"""

from __future__ import annotations

import json

import keras
import numpy as np

from lossbench import losses as L
from lossbench.models import build_model

STATIC = ["ce", "wce", "focal", "cb", "dwb", "la", "ldam", "vs"]
COUNTS = [60, 25, 10]


def main() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), COUNTS)
    x = (rng.normal(size=(len(y), 8)) + 0.7 * y[:, None]).astype("float32")
    x_val, y_val = x[::3], y[::3]
    results = {}
    for name in [*STATIC, "pgfl"]:
        loss = L.get(name, COUNTS)
        model = build_model("mlp", 8, 3, dropout=0.0, head=loss.head, scale=loss.scale)
        init = np.random.default_rng(1)
        model.set_weights(
            [init.normal(scale=0.3, size=w.shape).astype("float32") for w in model.get_weights()]
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
        initial = float(keras.ops.convert_to_numpy(loss(y, model(x))))
        # pgfl (validation recall) and ldam (DRW from epoch int(0.8 * 2) = 1) adapt between
        # epochs through their callbacks; the others train one epoch
        callbacks = loss.callbacks(validation_data=(x_val, y_val)) if name == "pgfl" else []
        if name == "ldam":
            callbacks = loss.callbacks()
        history = model.fit(
            x,
            y,
            epochs=2 if callbacks else 1,
            batch_size=32,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )
        results[name] = {
            "initial": initial,
            "history": [float(v) for v in history.history["loss"]],
            "logits": np.asarray(model.predict(x, verbose=0), dtype=np.float64).tolist(),
            "learned": loss.learned_params(),
        }
    print("RESULT " + json.dumps({"backend": keras.backend.backend(), "results": results}))


if __name__ == "__main__":
    main()
