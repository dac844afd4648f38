"""Data-level rebalancing of the training split (SPEC 9): the baselines a special loss must beat.

* `resample_training(X, y, sampler, seed)`: imbalanced-learn's random oversampling (`ros`), random
  undersampling (`rus`) or SMOTE (`smote`) of the *training* rows, seeded; the validation and test
  splits are never passed here.
* `balanced_epoch_order(seed, epoch, y)`: class-balanced batch sampling (`balanced-batches`): the
  row indices of one epoch drawn with replacement so that every class is equally likely, a
  function of (seed, epoch, y) only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lossbench.errors import RunError

RESAMPLERS = ("ros", "rus", "smote")
SAMPLERS = (*RESAMPLERS, "balanced-batches")


def resample_training(
    X: np.ndarray,
    y: np.ndarray,
    sampler: str,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The training split after `sampler` (one of `RESAMPLERS`), seeded by `seed`.

    `ros` and `smote` raise every class to the largest class's count, `rus` lowers every class
    to the smallest one's (imbalanced-learn's `sampling_strategy="auto"` for multi-class data).
    SMOTE uses min(5, n_min - 1) neighbours so that a class of a few rows still works.

    Raises:
        RunError: SMOTE on a class with a single training row (no neighbour to interpolate); the
            message names the class (by `class_names[k]` when given, else its index).
    """
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    y = np.asarray(y, dtype=np.int64)
    if sampler == "ros":
        tool = RandomOverSampler(sampling_strategy="not majority", random_state=seed)
    elif sampler == "rus":
        tool = RandomUnderSampler(sampling_strategy="not minority", random_state=seed)
    elif sampler == "smote":
        present = np.unique(y)
        counts = np.bincount(y)[present]
        smallest = int(counts.min())
        if smallest < 2:
            k = int(present[int(np.argmin(counts))])
            name = repr(str(class_names[k])) if class_names is not None else f"index {k}"
            raise RunError(
                f"SMOTE cannot oversample class {name}: it has {smallest} training row (SMOTE "
                "interpolates between 2 or more); use ce+ros, or drop the class with "
                "min_class_count"
            )
        tool = SMOTE(
            sampling_strategy="not majority", k_neighbors=min(5, smallest - 1), random_state=seed
        )
    else:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(RESAMPLERS)}")
    X_res, y_res = tool.fit_resample(np.asarray(X), y)
    return np.asarray(X_res, dtype=np.float32), np.asarray(y_res, dtype=np.int64)


def balanced_epoch_order(seed: int, epoch: int, y: np.ndarray) -> np.ndarray:
    """Row indices of one epoch of class-balanced batches: len(y) draws with replacement, each
    row weighted 1 / (K_present n_k), so every class present fills 1/K of the batches in
    expectation. Depends on (seed, epoch, y) only."""
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y)
    weights = 1.0 / counts[y]
    weights /= weights.sum()
    rng = np.random.default_rng([seed, epoch, 20211, 1])
    return rng.choice(len(y), size=len(y), replace=True, p=weights)


__all__ = ["RESAMPLERS", "SAMPLERS", "balanced_epoch_order", "resample_training"]
