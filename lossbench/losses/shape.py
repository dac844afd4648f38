"""Loss shapes: each loss's value against p = softmax(z)_y, before any training (issue 36).

The reference paper's Fig. 1 draws CE, weighted CE, focal and DWB as functions of the predicted
probability of the true class. `loss_shapes` evaluates any `keras.losses.Loss` objects (lossbench's
own, built by `lossbench.losses.get`, or a user's) on a grid of p for two samples: one of the
rarest class (the "minority" panel) and one of the most frequent class (the "majority" panel).

The logits of a point are the centred log-probabilities

```
q_y = p,  q_k = (1 - p) / (K - 1) for k != y,   z = log q - mean(log q)
```

so softmax(z)_y = p exactly; for K = 2 these are the binary logits z_y = -z_other = logit(p) / 2.
A loss whose value depends on more than p (a margin, a logit adjustment, a multiplicative logit
scale) is drawn at these logits; `loss_shapes` finds such losses by evaluating each one again at
other logits with the same p (shifted, and for K > 2 with the other classes' mass split unevenly)
and flags them in the column `depends_on_logits`. Adaptive losses (AMRL's lambda, PGFL's alpha,
LDAM's DRW weights, AutoBalance's learned terms) are drawn in the state they are built in, before
training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from keras import ops

__all__ = [
    "PAPER_CLASS_NAMES",
    "PAPER_COUNTS",
    "P_GRID",
    "loss_shapes",
    "shape_logits",
]

#: The paper's illustration (Fig. 1): two classes with imbalance ratio e, so that the minority's
#: DWB weight log(n_max / n_k) + 1 is 2 (1.9999993 with these integer counts).
PAPER_COUNTS = (271_828, 100_000)
PAPER_CLASS_NAMES = ("majority", "minority")
#: p = 0.005, 0.010, ..., 0.995: the open interval (0, 1) on which the logits are finite.
P_GRID = np.arange(1, 200) / 200.0
# a loss "depends on the logits" when its values at two logit vectors of the same p differ by
# more than this (relative to 1 + |value|): well above float32 rounding of the loss objects
_DEPENDENCE_TOL = 1e-4


def shape_logits(p: np.ndarray, y: int, num_classes: int, spread: bool = False) -> np.ndarray:
    """Logits `(len(p), K)` whose softmax gives class `y` the probability `p`.

    The other classes share 1 - p equally (or, with `spread`, in proportions 1 : 2 : ... : K-1,
    a second logit vector of the same p for the dependence probe); the log-probabilities are
    centred (mean 0 over the classes).
    """
    p = np.asarray(p, dtype=np.float64)
    others = np.arange(1, num_classes) if spread else np.ones(num_classes - 1)
    share = others / others.sum()
    q = np.empty((p.shape[0], num_classes))
    q[:, y] = p
    q[:, np.arange(num_classes) != y] = (1.0 - p)[:, None] * share[None, :]
    log_q = np.log(q)
    return log_q - log_q.mean(axis=1, keepdims=True)


def _values(loss: Any, y: int, logits: np.ndarray) -> np.ndarray:
    """Per-sample values of `loss` at one-hot labels of class `y` and `logits` (unreduced)."""
    one_hot = np.zeros_like(logits, dtype=np.float32)
    one_hot[:, y] = 1.0
    out = loss.call(ops.convert_to_tensor(one_hot), ops.convert_to_tensor(logits))
    return np.asarray(ops.convert_to_numpy(out), dtype=np.float64).reshape(-1)


def _panels(counts: np.ndarray) -> list[tuple[str, int]]:
    """(panel, class index): the rarest class (the last of equal counts) and the most frequent
    (the first of equal counts)."""
    rare = int(len(counts) - 1 - np.argmin(counts[::-1]))
    common = int(np.argmax(counts))
    return [("minority", rare), ("majority", common)]


def loss_shapes(
    losses: Mapping[str, Any],
    class_counts: Sequence[int] | np.ndarray,
    class_names: Sequence[str] | None = None,
    p: np.ndarray | None = None,
) -> pd.DataFrame:
    """Each loss's value against p = softmax(z)_y on the two panels, one row per (panel, loss, p).

    Args:
        losses: {label: a `keras.losses.Loss`} built for `class_counts` (its `call` gives
            per-sample values from one-hot labels and logits).
        class_counts: the class counts the losses were built from (class-index order).
        class_names: names of the classes (default "0", "1", ...).
        p: the probabilities of the true class, in (0, 1) (default `P_GRID`).

    Returns:
        Columns panel ("minority" | "majority"), class, y (class index), n_y (its count), loss,
        depends_on_logits (bool), p, value, z_0 .. z_{K-1} (the logits the loss was evaluated at).
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    k = len(counts)
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    grid = P_GRID if p is None else np.asarray(p, dtype=np.float64)
    frames = []
    for panel, y in _panels(counts):
        z = shape_logits(grid, y, k)
        probe = shape_logits(grid, y, k, spread=True) + 1.0
        for label, loss in losses.items():
            value = _values(loss, y, z)
            other = _values(loss, y, probe)
            moved = np.abs(other - value) > _DEPENDENCE_TOL * (1.0 + np.abs(value))
            frame = pd.DataFrame(
                {
                    "panel": panel,
                    "class": names[y],
                    "y": y,
                    "n_y": int(counts[y]),
                    "loss": str(label),
                    "depends_on_logits": bool(moved.any()),
                    "p": grid,
                    "value": value,
                }
            )
            for j in range(k):
                frame[f"z_{j}"] = z[:, j]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)
