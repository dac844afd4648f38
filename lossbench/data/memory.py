"""Memory given back to the system while a large dataset is prepared (issue 35).

A float32 column of `read_table` lives in its own private anonymous memory map
(`owned_empty`), so that `gather_splits` can give back each column's pages as it copies them into
the split matrices (`release_rows`), and the heap's and pyarrow's freed memory is returned before
a run imports TensorFlow (`give_back_freed_memory`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import mmap
from typing import Any

import numpy as np


def _malloc_trim() -> Any:
    """glibc's `malloc_trim`, or None (another C library)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    return None


_MALLOC_TRIM = _malloc_trim()


def give_back_freed_memory(arrow: bool = False) -> None:
    """Return the heap's free pages to the system. A chunk's columns are small arrays, which
    glibc places on its heap and, once freed, keeps there: without this the joined columns and
    the chunks they were joined from would both count in the process's memory. `arrow`: also
    the free memory that pyarrow's pool keeps (pandas' text columns live there)."""
    if arrow:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def owned_empty(n: int, dtype: Any) -> np.ndarray:
    """An uninitialised 1-D array in its own private anonymous memory map, whose pages
    `release_rows` can give back to the system while the array still exists."""
    nbytes = n * np.dtype(dtype).itemsize
    if nbytes == 0:
        return np.empty(n, dtype=dtype)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buf, dtype=dtype, count=n)


def release_rows(column: np.ndarray, stop: int, start: int = 0) -> None:
    """Give the memory pages of rows `:stop` of a column of `owned_empty` back to the system,
    those of rows `start:stop` at least (earlier rows were given back by earlier calls); the
    rows read as 0 afterwards. Any other array: nothing happens.

    Only for a column nothing else reads any more: `gather_splits` calls it on the columns of
    `read_table` that `prepare` consumes."""
    owner = column
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    buf = owner.base.obj if isinstance(owner.base, memoryview) else owner.base
    if not isinstance(buf, mmap.mmap) or column.ndim != 1 or stop <= start:
        return
    if column.strides[0] != column.itemsize:
        return
    page, size = mmap.PAGESIZE, column.itemsize
    first = column.ctypes.data - owner.ctypes.data  # the column's first byte in the map
    lo = max((first + start * size) // page * page, -(-first // page) * page)
    end = first + min(stop, len(column)) * size
    hi = len(buf) if end == len(buf) else end // page * page
    if hi > lo:
        buf.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def release_mapped(array: Any) -> None:
    """Drop the process's resident pages of a read-only memory-mapped array (`np.load(...,
    mmap_mode="r")`, the array cache's): the data stays in the page cache and is read back on the
    next access, but no longer counts in the process's memory. Any other array: nothing happens.

    Used where a mapped split has been read in full and is not needed for a while: after the
    cache's checksums, after the leakage report, after each epoch's training (the training
    split) and validation (the validation split), after training (the split a method was
    resampled from) and after a split's predictions."""
    mapped = getattr(array, "_mmap", None)
    if isinstance(mapped, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        with contextlib.suppress(OSError, ValueError):
            mapped.madvise(mmap.MADV_DONTNEED)
