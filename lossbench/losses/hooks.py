"""`LossHooks`: a lossbench loss's epoch hooks as a Keras callback for a plain `model.fit`."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops
from scipy.special import softmax

from lossbench.losses.base import LossbenchLoss


class LossHooks(keras.callbacks.Callback):
    """Runs a lossbench loss's epoch hooks in a plain `model.fit` (any Keras 3 backend).

    on_train_begin -> `loss.on_train_begin(epochs)`; on_epoch_begin -> `loss.on_epoch_begin`;
    on_epoch_end -> (with `train_data`) `loss.observe_batch` over the training data's logits,
    then `loss.on_epoch_end(epoch, y_val, softmax(logits_val))` (with `validation_data`, else
    None, None). Under JAX, whose compiled step holds the loss's state as constants, the train
    and test functions are rebuilt whenever a hook changed that state.

    Args:
        loss: the lossbench loss.
        validation_data: (x, y) for hooks that read validation predictions (PGFL).
        train_data: (x, y) for hooks that need training-set statistics (AMRL).
        batch_size: prediction batch size.
    """

    def __init__(
        self,
        loss: LossbenchLoss,
        validation_data: tuple[Any, Any] | None = None,
        train_data: tuple[Any, Any] | None = None,
        batch_size: int = 1024,
    ) -> None:
        super().__init__()
        self.loss = loss
        self.validation_data = validation_data
        self.train_data = train_data
        self.batch_size = batch_size

    def _snapshot(self) -> list[np.ndarray]:
        return [np.array(ops.convert_to_numpy(v)) for v in self.loss.state_variables]

    def _sync(self, before: list[np.ndarray]) -> None:
        changed = any(
            not np.array_equal(a, b) for a, b in zip(before, self._snapshot(), strict=True)
        )
        if changed and keras.backend.backend() == "jax":
            self.model.make_train_function(force=True)
            self.model.make_test_function(force=True)

    def on_train_begin(self, logs: dict | None = None) -> None:
        before = self._snapshot()
        self.loss.on_train_begin(int(self.params.get("epochs") or 1))
        self._sync(before)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        before = self._snapshot()
        self.loss.on_epoch_begin(epoch)
        self._sync(before)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        before = self._snapshot()
        if self.train_data is not None:
            x, y = self.train_data
            logits = self.model.predict(x, batch_size=self.batch_size, verbose=0)
            self.loss.observe_batch(y, logits)
        y_val = proba = None
        if self.validation_data is not None:
            x_val, y_val = self.validation_data
            logits = np.asarray(self.model.predict(x_val, batch_size=self.batch_size, verbose=0))
            proba = softmax(logits.astype(np.float64), axis=1)
            y_val = np.asarray(y_val)
        self.loss.on_epoch_end(epoch, y_val, proba)
        self._sync(before)
