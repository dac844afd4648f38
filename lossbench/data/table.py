"""The intermediate form of a dataset, before the split: feature columns and class indices.

Features stay as the loaded columns (pandas' own arrays, no copy) until the split is known;
`gather` then builds each split's C-contiguous float32 matrix in one pass per column. Building
one big float32 matrix first and cutting it up would copy the data two or three times more,
which costs more than the CSV parse itself on a 2-core machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossbench.data.split import Scaler, affine

_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
_WORKERS = max(1, min(8, _CPUS or 1))
_POOL: ThreadPoolExecutor | None = None

#: Values beyond float32's range cannot be represented: they count as missing, like ±inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Table:
    """Features and labels after loading and the preset's row/column steps, before the split.

    Attributes:
        name: dataset name (built-in name, file stem or folder name).
        columns: F feature columns, each a 1-D real array over all N loaded rows; a value that is
            NaN, ±inf or beyond float32's range is missing.
        y: (n,) int64 class indices into `class_names`, for the rows kept.
        ids: (n,) int64 row ids of the loaded table.
        rows: (n,) int64 positions of the kept rows in the columns.
        class_names: sorted class names.
        feature_names: F names.
        info: JSON-able record of what was done (see `lossbench.data.pipeline`).
    """

    name: str
    columns: list[np.ndarray]
    y: np.ndarray
    ids: np.ndarray
    rows: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_matrix(
        cls,
        name: str,
        X: np.ndarray,
        y: np.ndarray,
        class_names: list[str],
        feature_names: list[str],
        info: dict[str, Any] | None = None,
        ids: np.ndarray | None = None,
    ) -> Table:
        """A table over all rows of an (N, F) matrix."""
        XT = np.ascontiguousarray(np.asarray(X).T)
        n = XT.shape[1]
        ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        return cls(
            name=name,
            columns=list(XT),
            y=np.asarray(y, dtype=np.int64),
            ids=ids,
            rows=np.arange(n, dtype=np.int64),
            class_names=class_names,
            feature_names=feature_names,
            info=dict(info or {}),
        )

    def class_counts(self) -> np.ndarray:
        """Rows per class, int64 of length K."""
        return np.bincount(self.y, minlength=len(self.class_names)).astype(np.int64)

    def features(self) -> np.ndarray:
        """The kept rows as an (n, F) C-contiguous float32 matrix, missing values as NaN."""
        return to_rows(gather(self.columns, self.rows))


def finite_mask(col: np.ndarray) -> np.ndarray:
    """True where a value is usable: not NaN, not ±inf, within float32's range."""
    with np.errstate(invalid="ignore"):
        return np.abs(col) <= FLOAT32_MAX


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool when needed."""
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="lossbench-data")
    return _POOL


def _parallel(fn: Callable[[range], None], n: int) -> None:
    """Run `fn` over `_WORKERS` interleaved slices of range(n) (NumPy releases the GIL)."""
    if _WORKERS == 1 or n < 2:
        fn(range(n))
        return
    for f in [_pool().submit(fn, range(k, n, _WORKERS)) for k in range(_WORKERS)]:
        f.result()


def gather(
    columns: Sequence[np.ndarray],
    rows: np.ndarray,
    *,
    check: bool = True,
    fill: np.ndarray | None = None,
    scaler: Scaler | None = None,
    buffer: np.ndarray | None = None,
) -> np.ndarray:
    """Rows of the columns as an (F, n) C-contiguous float32 matrix (one column per row).

    Per column, on parallel threads and while its values are in cache: missing values become
    `fill[j]` (else NaN; `check=False` skips looking for them when the rows are known to have
    none), then the scaler is applied. The result is written into `buffer` (any float32 array
    with enough elements) when given: fresh memory costs page faults.
    """
    shape = (len(columns), len(rows))
    if buffer is not None and buffer.size >= shape[0] * shape[1]:
        out_T = buffer.reshape(-1)[: shape[0] * shape[1]].reshape(shape)
    else:
        out_T = np.empty(shape, dtype=np.float32)
    clip = scaler is not None and scaler.kind == "minmax"

    def work(js: range) -> None:
        with np.errstate(all="ignore"):
            for j in js:
                col, row = columns[j], out_T[j]
                row[:] = col[rows]
                if check and col.dtype.kind == "f":
                    bad = ~(np.abs(row) <= FLOAT32_MAX)
                    if bad.any():
                        row[bad] = np.nan if fill is None else fill[j]
                if scaler is not None:
                    row -= scaler.offset[j]
                    row /= scaler.scale[j]
                    if clip:
                        np.clip(row, 0.0, 1.0, out=row)

    _parallel(work, len(columns))
    return out_T


def gather_fit(
    columns: Sequence[np.ndarray],
    rows: np.ndarray,
    kind: str,
    *,
    check: bool = True,
    median: Sequence[int] = (),
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Gather the training rows, fit the scaler on them and scale them, column by column.

    Args:
        columns: feature columns; rows: the training rows.
        kind: scaler kind (`minmax` or `standard`, see `Scaler`).
        check: look for missing values (False when the rows are known to have none).
        median: columns whose missing values are filled with their training median.

    Returns:
        The scaled rows (F, n) float32, the training statistics per column (`min`, `max`, and
        for `standard` `mean`, `std`; zeros otherwise) and the fill value per column (NaN where
        not filled).
    """
    n_cols = len(columns)
    out_T = np.empty((n_cols, len(rows)), dtype=np.float32)
    stats = {k: np.zeros(n_cols, dtype=np.float64) for k in ("min", "max", "mean", "std")}
    fill = np.full(n_cols, np.nan, dtype=np.float32)
    to_fill = set(median)

    def work(js: range) -> None:
        with np.errstate(all="ignore"):
            for j in js:
                col, row = columns[j], out_T[j]
                row[:] = col[rows]
                if j in to_fill:
                    ok = np.abs(row) <= FLOAT32_MAX
                    fill[j] = np.median(row[ok]) if ok.any() else 0.0
                    row[~ok] = fill[j]
                elif check and col.dtype.kind == "f":
                    bad = ~(np.abs(row) <= FLOAT32_MAX)
                    if bad.any():
                        row[bad] = np.nan
                lo, hi = row.min(), row.max()
                mean = std = 0.0
                if kind == "standard":
                    mean, std = row.mean(dtype=np.float64), row.std(dtype=np.float64)
                    stats["mean"][j], stats["std"][j] = mean, std
                stats["min"][j], stats["max"][j] = lo, hi
                offset, scale = affine(kind, lo, hi, mean, std)
                row -= offset
                row /= scale

    _parallel(work, n_cols)
    return out_T, stats, fill


def compact_rows(a: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """`a[keep]` for increasing `keep`, moving rows within `a` (no new memory); a view."""
    for i, j in enumerate(keep):
        if i != j:
            a[i] = a[j]
    return a[: len(keep)]


def to_rows(a_T: np.ndarray) -> np.ndarray:
    """`a_T.T` as a C-contiguous copy, in blocks of rows on parallel threads."""
    n = a_T.shape[1]
    out = np.empty((n, a_T.shape[0]), dtype=a_T.dtype)
    step = max(1, -(-n // _WORKERS))

    def work(ks: range) -> None:
        for k in ks:
            out[k * step : (k + 1) * step] = a_T[:, k * step : (k + 1) * step].T

    _parallel(work, _WORKERS)
    return out


def sort_class_names(names: list[str]) -> list[str]:
    """Stable class order: numerically when every name is a number, else by text."""
    try:
        return sorted(names, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(names)
