"""Stratified subsampling and train/validation/test splitting, and the scalers (SPEC 2.2 steps 6-7).

Both draw from `numpy.random.default_rng` seeded by the run's seed, so the seed fixes them.
Within each class the rows are shuffled and the first `n_test` go to test, the next `n_val` to
validation and the rest to training, with `n_val = max(1, round(f_val * n_k))` (same for test):
every class appears in every split, which is what a class needs at least `split_min_count` rows for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_SUBSAMPLE_STREAM = 1
_SPLIT_STREAM = 2


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(np.int64)


def allocation(counts: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Rows per class and split: an int64 array (K, 3) of train, validation, test counts.

    Validation and test take `max(1, round(f * n_k))` rows, training the rest (which may be
    below 1 for classes smaller than `split_min_count`).
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_val = np.maximum(1, _round_half_up(fractions[1] * counts))
    n_test = np.maximum(1, _round_half_up(fractions[2] * counts))
    return np.stack([counts - n_val - n_test, n_val, n_test], axis=1)


def split_min_count(fractions: Sequence[float]) -> int:
    """The fewest rows a class needs so that training, validation and test each get one."""
    for n in range(3, 100_000):
        if allocation(np.array([n]), fractions)[0, 0] >= 1:
            return n
    raise ValueError(f"split {tuple(fractions)} leaves no training rows")  # pragma: no cover


def _grouped_ranks(y: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """For each row its rank within its class in a random order."""
    rank = np.empty(len(y), dtype=np.int64)
    for k in range(n_classes):
        members = np.flatnonzero(y == k)
        rank[members] = rng.permutation(len(members))
    return rank


def stratified_split(
    y: np.ndarray, fractions: Sequence[float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (ascending, int64) of the training, validation and test rows.

    Args:
        y: int64 class indices 0..K-1, every class with at least `split_min_count` rows.
        fractions: train, validation, test fractions summing to 1.
        seed: fixes the split.
    """
    y = np.asarray(y, dtype=np.int64)
    k = int(y.max()) + 1 if len(y) else 0
    alloc = allocation(np.bincount(y, minlength=k), fractions)
    rank = _grouped_ranks(y, k, np.random.default_rng([seed, _SPLIT_STREAM]))
    n_test = alloc[y, 2]
    is_test = rank < n_test
    is_val = ~is_test & (rank < n_test + alloc[y, 1])
    is_train = ~(is_test | is_val)
    return np.flatnonzero(is_train), np.flatnonzero(is_val), np.flatnonzero(is_test)


def stratified_subsample(y: np.ndarray, frac: float, seed: int, min_per_class: int) -> np.ndarray:
    """Indices (ascending) of a stratified subsample: `round(frac * n_k)` rows of each class.

    A class keeps at least `min(n_k, min_per_class)` rows, so that a class that could be split
    before subsampling still can.
    """
    y = np.asarray(y, dtype=np.int64)
    k = int(y.max()) + 1 if len(y) else 0
    counts = np.bincount(y, minlength=k)
    keep = np.minimum(counts, np.maximum(_round_half_up(frac * counts), min_per_class))
    rank = _grouped_ranks(y, k, np.random.default_rng([seed, _SUBSAMPLE_STREAM]))
    return np.flatnonzero(rank < keep[y])


@dataclass
class Scaler:
    """A per-feature affine map `(x - offset) / scale`, fitted on the training split only.

    `kind` is `minmax` (offset = min, scale = max - min, results clipped to [0, 1]) or
    `standard` (offset = mean, scale = standard deviation). A zero scale is replaced by 1.
    """

    kind: str
    offset: np.ndarray  # float32 (F,)
    scale: np.ndarray  # float32 (F,)
    stats: dict[str, np.ndarray]  # min, max, mean, std of each feature on the training split

    @classmethod
    def from_stats(cls, kind: str, stats: dict[str, np.ndarray]) -> Scaler:
        """The scaler for training statistics `min`, `max`, `mean`, `std` (arrays over F)."""
        if kind == "minmax":
            offset = np.asarray(stats["min"], dtype=np.float32)
            scale = np.asarray(stats["max"], dtype=np.float32) - offset
        elif kind == "standard":
            offset = np.asarray(stats["mean"], dtype=np.float32)
            scale = np.asarray(stats["std"], dtype=np.float32)
        else:
            raise ValueError(f"unknown scaler {kind!r}")
        scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
        return cls(kind, offset, scale, dict(stats))

    def to_info(self) -> dict[str, object]:
        """JSON-able description: kind and the training statistics it uses, per feature."""
        keys = ("min", "max") if self.kind == "minmax" else ("mean", "std")
        return {"kind": self.kind, **{k: np.asarray(self.stats[k], float).tolist() for k in keys}}
