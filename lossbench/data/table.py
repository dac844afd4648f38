"""The intermediate form of a dataset, before the split: feature columns and class indices.

Features stay as the loaded columns (pandas' own arrays, no copy) until the split is known;
`fit_stats` reads the training rows of each column for the scaler, and `gather_rows` then builds
each split's C-contiguous float32 matrix in one pass, scaled on the way. Building one big float32
matrix first and cutting it up would copy the data two or three times more, which costs more than
the CSV parse itself on a 2-core machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossbench.data.memory import owned_empty, release_rows
from lossbench.data.split import Scaler

_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
_WORKERS = max(1, min(8, _CPUS or 1))
_POOL: ThreadPoolExecutor | None = None

#: Values beyond float32's range cannot be represented: they count as missing, like ±inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)

#: Rows per block in `gather_rows`: a block of 80 float32 features is 2.6 MB, within cache.
_BLOCK_ROWS = 8192
#: Columns written at a time when a block is transposed into the result: NumPy's transposed
#: copy of a whole block reads 80 rows 32 KB apart for every row it writes; 16 at a time (one
#: 64-byte line of the result per row) took 0.4x the time (issue 35).
_TRANSPOSE_COLUMNS = 16
#: Positions of the columns copied before their memory is given back (`gather_splits`).
_RELEASE_ROWS = 1 << 16


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
        split_keys: timestamps, group codes or file parts of the loaded rows for `--split-by`.
    """

    name: str
    columns: list[np.ndarray]
    y: np.ndarray
    ids: np.ndarray
    rows: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    # what `--split-by` reads, arrays over all N loaded rows (`lossbench.data.ids.split_keys`)
    split_keys: dict[str, np.ndarray] = field(default_factory=dict)

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
        return gather_rows(self.columns, self.rows)


def finite_mask(col: np.ndarray) -> np.ndarray:
    """True where a value is usable: not NaN, not ±inf, within float32's range (any dtype: a
    float16 or float32 value is in range when finite; FLOAT32_MAX is no float16)."""
    if col.dtype.kind == "f" and col.dtype.itemsize <= 4:
        return np.isfinite(col)
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


def gather_rows(
    columns: Sequence[np.ndarray],
    rows: np.ndarray,
    *,
    check: bool = True,
    fill: np.ndarray | None = None,
    scaler: Scaler | None = None,
) -> np.ndarray:
    """Rows of the columns as an (n, F) C-contiguous float32 matrix.

    Works in blocks of `_BLOCK_ROWS` rows on parallel threads: each block is gathered column by
    column into a small per-thread buffer that stays in cache, where missing values become
    `fill[j]` (else NaN; `check=False` skips looking for them when the rows are known to have
    none) and the scaler is applied, then written transposed into the result
    (`_TRANSPOSE_COLUMNS` columns at a time). The result is the only large allocation: fresh
    memory costs page faults, which on a 2-core machine cost as much as the arithmetic.
    """
    out = _matrix(len(rows), len(columns))
    _gather_into(out, columns, rows, check, fill, scaler)
    return out


def gather_splits(
    columns: list[Any],
    parts: Sequence[np.ndarray],
    *,
    check: bool = True,
    fill: np.ndarray | None = None,
    scaler: Scaler | None = None,
) -> list[np.ndarray]:
    """`gather_rows` for each of `parts` (the rows of each split), consuming `columns`.

    When every part's rows ascend (the random, stratified and file splits), the rows are
    copied in order of position, `_RELEASE_ROWS` positions at a time, and each column's memory
    of the positions passed is given back (`release_rows`: columns `read_table` made), so the
    columns and the split matrices together hold about one copy of the data, not two. The
    entries of `columns` are set to None at the end; the columns must not be read again."""
    outs = [_matrix(len(rows), len(columns)) for rows in parts]
    if not all(np.all(rows[1:] >= rows[:-1]) for rows in parts):
        for rows, out in zip(parts, outs, strict=True):
            _gather_into(out, columns, rows, check, fill, scaler)
    else:
        n = max((len(c) for c in columns), default=0)
        for start in range(0, n, _RELEASE_ROWS):
            stop = start + _RELEASE_ROWS
            for rows, out in zip(parts, outs, strict=True):
                a, b = np.searchsorted(rows, [start, stop])
                _gather_into(out[a:b], columns, rows[a:b], check, fill, scaler)
            for col in columns:
                release_rows(col, stop, start)
    columns[:] = [None] * len(columns)
    return outs


def _matrix(n: int, n_cols: int) -> np.ndarray:
    """An uninitialised (n, n_cols) float32 matrix for `gather_rows` and `gather_splits`, in
    pages of the system's base size (`owned_empty`): NumPy asks for transparent huge pages for
    a large array, and where the kernel compacts memory to find them (`defrag` "madvise") the
    faults cost more than the copy (issue 35)."""
    return owned_empty(n * n_cols, np.float32).reshape(n, n_cols)


def _gather_into(
    out: np.ndarray,
    columns: Sequence[np.ndarray],
    rows: np.ndarray,
    check: bool,
    fill: np.ndarray | None,
    scaler: Scaler | None,
) -> None:
    """Write the rows of the columns into `out` ((n, F) float32, possibly a column slice of a
    wider matrix), in blocks of rows on parallel threads (see `gather_rows`)."""
    n, n_cols = len(rows), len(columns)
    if n == 0 or n_cols == 0:
        return
    offset = scale = None
    if scaler is not None:
        offset, scale = scaler.offset[:, None], scaler.scale[:, None]
    clip = scaler is not None and scaler.kind == "minmax"
    fill_col = None if fill is None else np.asarray(fill, dtype=np.float32)[:, None]
    block = min(_BLOCK_ROWS, n)

    def work(blocks: range) -> None:
        buf = np.empty((n_cols, block), dtype=np.float32)
        with np.errstate(all="ignore"):
            for b in blocks:
                part = rows[b * block : (b + 1) * block]
                t = buf[:, : len(part)]
                for j, col in enumerate(columns):
                    t[j] = col[part]
                if check:
                    bad = ~(np.abs(t) <= FLOAT32_MAX)
                    if bad.any():
                        t[bad] = (
                            np.nan if fill_col is None else np.broadcast_to(fill_col, t.shape)[bad]
                        )
                if scaler is not None:
                    t -= offset
                    t /= scale
                    if clip:
                        np.clip(t, 0.0, 1.0, out=t)
                rows_out = out[b * block : b * block + len(part)]
                for j in range(0, n_cols, _TRANSPOSE_COLUMNS):
                    rows_out[:, j : j + _TRANSPOSE_COLUMNS] = t[j : j + _TRANSPOSE_COLUMNS].T

    _parallel(work, -(-n // block))


def fit_stats(
    columns: Sequence[np.ndarray],
    rows: np.ndarray,
    kind: str,
    *,
    check: bool = True,
    median: Sequence[int] = (),
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Training statistics of each column over `rows`, for a scaler of `kind`.

    Args:
        columns: feature columns; rows: the training rows.
        kind: scaler kind (`minmax` or `standard`, see `Scaler`).
        check: look for missing values (False when the rows are known to have none).
        median: columns whose missing values are filled with their training median.

    Returns:
        The statistics per column, computed on the rows' float32 values after filling (`min`,
        `max`, and for `standard` `mean`, `std`; zeros otherwise), and the fill value per column
        (NaN where not filled; 0 for a `median` column without any value in `rows`).
    """
    n_cols = len(columns)
    stats = {k: np.zeros(n_cols, dtype=np.float64) for k in ("min", "max", "mean", "std")}
    fill = np.full(n_cols, np.nan, dtype=np.float32)
    to_fill = set(median)

    def work(js: range) -> None:
        row = np.empty(len(rows), dtype=np.float32)  # one buffer per thread, reused
        with np.errstate(all="ignore"):
            for j in js:
                col = columns[j]
                row[:] = col[rows]
                if j in to_fill:
                    ok = np.abs(row) <= FLOAT32_MAX
                    fill[j] = np.median(row[ok]) if ok.any() else 0.0  # see `Returns`
                    row[~ok] = fill[j]
                elif check and col.dtype.kind == "f":
                    bad = ~(np.abs(row) <= FLOAT32_MAX)
                    if bad.any():
                        row[bad] = np.nan
                stats["min"][j], stats["max"][j] = row.min(), row.max()
                if kind == "standard":
                    stats["mean"][j] = row.mean(dtype=np.float64)
                    stats["std"][j] = row.std(dtype=np.float64)

    if len(rows):
        _parallel(work, n_cols)
    return stats, fill


def sort_class_names(names: list[str]) -> list[str]:
    """Stable class order: numerically when every name is a number, else by text."""
    try:
        return sorted(names, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(names)


def counts_dict(counts: np.ndarray, names: list[str]) -> dict[str, int]:
    """name -> count, largest first (ties by name order), zero counts left out."""
    order = sorted(range(len(names)), key=lambda i: -counts[i])
    return {names[i]: int(counts[i]) for i in order if counts[i] > 0}
