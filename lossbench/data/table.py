"""The intermediate form of a dataset: float32 features and class indices, before the split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Table:
    """Features and labels after loading and the preset's row/column steps, before the split.

    Dropped rows are not copied out of X (copies of a big float matrix cost more than the
    parse): the table's rows are `X[rows]`.

    Attributes:
        name: dataset name (built-in name, file stem or folder name).
        X: (N, F) float32 of every loaded row, any memory layout; NaN marks a missing value.
        y: (n,) int64 class indices into `class_names`.
        ids: (n,) int64 row ids of the loaded table.
        class_names: sorted class names.
        feature_names: F names.
        info: JSON-able record of what was done (see `lossbench.data.pipeline`).
        rows: (n,) int64 positions in X of the table's rows.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.arange(len(self.X), dtype=np.int64)

    def features(self) -> np.ndarray:
        """The table's rows of X, (n, F) float32, C-contiguous (a copy)."""
        return np.ascontiguousarray(self.X[self.rows])

    def class_counts(self) -> np.ndarray:
        """Rows per class, int64 of length K."""
        return np.bincount(self.y, minlength=len(self.class_names)).astype(np.int64)


def sort_class_names(names: list[str]) -> list[str]:
    """Stable class order: numerically when every name is a number, else by text."""
    try:
        return sorted(names, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(names)
