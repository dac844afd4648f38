"""A CSV file parsed in chunks (`load.read_table`'s streaming reader), on two threads where the
file allows it, each chunk's numbers written straight to their rows' places in the table.

pandas' C parser tokenises and converts numbers with the GIL released, so two readers, each over
one half of the file's bytes (split at a line break), parse it on two cores: a 218 MB
CICIDS2017-format file in 0.87-1.02 s against 1.25-1.28 s one after the other (issue 35). Only for
a plain (not gzip) file of at least `PARALLEL_MIN_BYTES` with no quote character anywhere, so that
no field can hold a line break and a half starts at a row; should a half fail to parse, the file
is parsed again from the start on one thread, whose error names the right line.

Before a plain file is parsed, one pass over its bytes (`plan_file`, each half on a thread of its
own) finds whether it holds a quote character, whether it decodes as UTF-8, and how many lines
each half holds: so each half knows the row its rows start at, and a chunk's numeric columns are
written as float32 into a `Slab` (one preallocated column per feature, for every row of the
table's files) at their final rows.
The table's columns are then the slab's, without a copy: no second copy of the numbers is made
to join the chunks (issue 35). A chunk whose rows do not fit where the line counts said (a file
whose lines end in a lone carriage return) keeps its own arrays, and the column is copied as
before.
"""

from __future__ import annotations

import codecs
import functools
import io
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench.data.memory import owned_empty, release_rows

#: Files smaller than this are parsed on one thread (the second reader's start-up would cost
#: more than it saves).
PARALLEL_MIN_BYTES = 32 * 2**20
#: Bytes looked at a time by `plan_file` (a block stays in the cache while it is looked at).
_SCAN_BYTES = 2**20


@dataclass(frozen=True)
class ByteScan:
    """What one pass over a plain file's bytes found (`plan_file`)."""

    quoted: bool  # a quote character somewhere: no field may be split between two readers
    utf8: bool  # the bytes decode as UTF-8: pandas may read the text strictly


@dataclass(frozen=True)
class Plan:
    """How a plain file is parsed (`plan_file`): its byte ranges, each starting right after a
    line break (the first at 0, with the header line), and the data rows (lines) in each."""

    scan: ByteScan
    cuts: list[int]  # range i is bytes cuts[i]:cuts[i + 1]
    rows: list[int]

    @property
    def n_rows(self) -> int:
        """Data rows of the file (its lines after the header, blank ones included)."""
        return sum(self.rows)


@dataclass(frozen=True)
class _RangeScan:
    """What `_scan_range` found in one byte range."""

    lines: int  # line breaks after the header line
    quoted: bool
    first_high: int  # where the first block holding a byte >= 0x80 starts (-1: none)


def plan_file(path: Path, *, decode: bool) -> Plan:
    """One pass over a plain (not compressed) file's bytes, before it is parsed: whether a
    quote character occurs, and, with `decode`, whether the bytes decode as UTF-8 (without it
    `utf8` is False unchecked: the caller knows they do not); the file's byte ranges (one unless
    it is parsed on two threads: `_cuts`) and the lines in each. Each range is looked at by a
    thread of its own (NumPy releases the GIL), a block at a time; a file with a byte outside
    ASCII is then decoded from the first block that holds one (a character may straddle two
    blocks)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return Plan(ByteScan(quoted=False, utf8=True), [0, 0], [0])
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            header_end = mm.find(b"\n") + 1 or size
            cuts = _cuts(mm)
            scans = _scan_ranges(mm, cuts, header_end)
            high = [s.first_high for s in scans if s.first_high >= 0]
            utf8 = decode and (not high or _decodes(mm, high[0]))
            rows = [s.lines for s in scans]
            if size > header_end and mm[size - 1] != 10:
                rows[-1] += 1  # the last line has no line break
    quoted = any(s.quoted for s in scans)
    if quoted and len(cuts) > 2:  # a quoted field may hold a line break: one range
        cuts, rows = [0, size], [sum(rows)]
    return Plan(ByteScan(quoted=quoted, utf8=utf8), cuts, rows)


def _scan_ranges(mm: mmap.mmap, cuts: list[int], header_end: int) -> list[_RangeScan]:
    """`_scan_range` of each range of a mapped file, on a thread each where there are two."""
    data = np.frombuffer(mm, dtype=np.uint8)
    jobs = [
        functools.partial(_scan_range, data, a, b, header_end)
        for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]
    try:
        if len(jobs) == 1:
            return [jobs[0]()]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            return list(pool.map(lambda job: job(), jobs))
    finally:
        del data, jobs  # before the map is closed


def _scan_range(data: np.ndarray, a: int, b: int, header_end: int) -> _RangeScan:
    """Bytes a:b of a file (`data`, its bytes): whether a quote character occurs, where the
    first block with a byte outside ASCII starts, and the line breaks after `header_end`."""
    lines, quoted, first_high = 0, False, -1
    for start in range(a, b, _SCAN_BYTES):
        block = data[start : min(start + _SCAN_BYTES, b)]
        counted = block[max(header_end - start, 0) :]
        lines += int(np.count_nonzero(counted == 10))
        quoted = quoted or bool((block == 34).any())
        if first_high < 0 and block.max() >= 0x80:
            first_high = start
    return _RangeScan(lines, quoted, first_high)


def _decodes(mm: mmap.mmap, start: int) -> bool:
    """Whether the mapped bytes from `start` (the bytes before it are ASCII) decode as UTF-8
    (see `plan_file`)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for at in range(start, len(mm), _SCAN_BYTES):
            decoder.decode(mm[at : at + _SCAN_BYTES])
        decoder.decode(b"", final=True)  # a character cut off at the end of the file
    except UnicodeDecodeError:
        return False
    return True


def _cuts(mm: mmap.mmap) -> list[int]:
    """The bounds of a file's byte ranges: [0, size] where it is parsed on one thread (small,
    one line, one core), else its two halves, the second starting right after the line break
    the middle falls in (`plan_file` makes them one where a quote character occurs). (Ranges of
    8-64 MB taken in turn by the two readers parsed the 218 MB ingest file slower than halves:
    every range and chunk has a cost of its own, more than the halves' uneven finish.)"""
    size = len(mm)
    if size < PARALLEL_MIN_BYTES or (os.cpu_count() or 1) < 2:
        return [0, size]
    end = mm.find(b"\n", size // 2)
    return [0, end + 1, size] if 0 <= end < size - 1 else [0, size]


class Slab:
    """Float32 columns for every row of a table's CSV files, allocated before they are parsed:
    `Chunks` write each chunk's numeric columns at their rows' places, and `pack` makes a
    column's parts one array without copying them. One private anonymous map (`owned_empty`),
    so that `gather_splits` can give back each column's pages as it copies them; the pages of
    rows never written are never resident."""

    def __init__(self, names: list[str], capacity: int) -> None:
        self.capacity = capacity
        self._index = {name: i for i, name in enumerate(names)}
        self._data = owned_empty(capacity * len(names), np.float32)

    def column(self, name: str) -> np.ndarray | None:
        """All rows of a column (None: a column the slab has no place for)."""
        i = self._index.get(name)
        if i is None:
            return None
        return self._data[i * self.capacity : (i + 1) * self.capacity]

    def pack(self, name: str, parts: list[Any]) -> np.ndarray | None:
        """A column from its parts when every part lies in the slab's column, in order (rows
        that were not written, e.g. dropped empty rows, leave gaps: the later parts move down
        over them): a view of the slab, no copy. None when a part lies elsewhere (the caller
        copies the parts, then gives the column's pages back: `release`)."""
        column = self.column(name)
        if column is None:
            return None
        base, ends = column.ctypes.data, []
        parts = [part for part in parts if len(part)]  # an empty one may point anywhere
        for part in parts:
            start = (part.ctypes.data - base) // 4 if isinstance(part, np.ndarray) else -1
            inside = start >= (ends[-1] if ends else 0) and start + len(part) <= self.capacity
            if not inside or part.dtype != np.float32 or part.strides != (4,):
                return None
            ends.append(start + len(part))
        filled = 0
        for part, end in zip(parts, ends, strict=True):
            if end - len(part) != filled:
                column[filled : filled + len(part)] = part  # NumPy copies overlaps safely
            filled += len(part)
        release_rows(column, max(ends, default=0), filled)  # the rows left behind
        return column[:filled]

    def release(self, name: str) -> None:
        """Give back the pages of a column whose parts were copied elsewhere."""
        column = self.column(name)
        if column is not None:
            release_rows(column, self.capacity)


class Chunks:
    """The chunks of one byte range of a file as they are parsed: numeric feature columns as
    float32 arrays (in the `Slab`, from row `first_row`, where one is given and the rows fit
    in the range's `rows` places), other feature columns as Series, without the fully empty
    rows; the label column whole (its bytes may still need repair, by position)."""

    def __init__(
        self,
        names: list[str],
        label: str,
        slab: Slab | None = None,
        first_row: int = 0,
        rows: int = 0,
    ) -> None:
        self.names = names
        self.label = label
        self.parts: dict[str, list[Any]] = {n: [] for n in names if n != label}
        self.label_parts: list[pd.Series] = []
        self.keep: list[np.ndarray] = []
        self.n_raw = 0
        self._slab = slab
        self._next, self._end = first_row, first_row + rows

    def add(self, chunk: pd.DataFrame) -> None:
        """Take one parsed chunk (it may be freed afterwards)."""
        # Fully empty rows (CICIDS2017 day files end with some): the label is missing, so only
        # rows without a label need the full check.
        no_label = chunk[self.label].isna().to_numpy()
        keep = np.ones(len(chunk), dtype=bool)
        if no_label.any():
            keep[no_label] = ~chunk.loc[no_label].isna().all(axis=1).to_numpy()
        whole = bool(keep.all())
        n = int(keep.sum())
        at = self._next if self._slab is not None and self._next + n <= self._end else None
        for name, column in self.parts.items():
            s = chunk[name]
            if isinstance(s.dtype, np.dtype) and s.dtype.kind in "biuf":
                values = s.to_numpy()
                column.append(self._put(name, values if whole else values[keep], at))
            else:
                column.append((s if whole else s[keep]).reset_index(drop=True))
        self.label_parts.append(chunk[self.label].reset_index(drop=True))
        self.keep.append(keep)
        self.n_raw += len(chunk)
        if at is not None:
            self._next += n

    def _put(self, name: str, values: np.ndarray, at: int | None) -> np.ndarray:
        """A chunk's numeric column as float32: at rows `at:` of the slab's column, else in an
        array of its own."""
        column = self._slab.column(name) if at is not None and self._slab is not None else None
        out = np.empty(len(values), np.float32) if column is None else column[at : at + len(values)]
        np.copyto(out, values, casting="unsafe")  # float32's rounding, as astype
        return out

    def labels(self) -> pd.Series:
        """The label column of every row read (empty rows included)."""
        if len(self.label_parts) == 1:
            return self.label_parts[0]
        parts = self.label_parts
        if len({str(s.dtype) for s in parts}) > 1:  # e.g. a chunk of empty rows: float NaN
            parts = [s.astype(object) for s in parts]
        return pd.concat(parts, ignore_index=True)


def merge(parts: list[Chunks]) -> Chunks:
    """The chunks of consecutive parts of one file, in order, as if parsed in one pass."""
    out = Chunks(parts[0].names, parts[0].label)
    for part in parts:
        for name, column in out.parts.items():
            column.extend(part.parts[name])
        out.label_parts.extend(part.label_parts)
        out.keep.extend(part.keep)
        out.n_raw += part.n_raw
    return out


class _ByteRange(io.RawIOBase):
    """Bytes `start:end` of a file, read as a file of their own."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed with the range)
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:n]) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


def _parse_range(source: Any, chunks: Chunks, errors: str, chunk_rows: int, kwargs: dict) -> Chunks:
    with pd.read_csv(
        source, encoding="utf-8", encoding_errors=errors, chunksize=chunk_rows, **kwargs
    ) as reader:
        for chunk in reader:
            chunks.add(chunk)
    return chunks


@dataclass(frozen=True)
class Rows:
    """Where a file's parsed numbers go: its `plan_file` plan, and the slab and the slab row of
    its first data row (no slab: each chunk keeps its own arrays)."""

    plan: Plan | None = None
    slab: Slab | None = None
    first_row: int = 0


def parse_chunks(
    path: Path,
    names: list[str],
    label: str,
    errors: str,
    chunk_rows: int,
    kwargs: dict[str, Any],
    rows: Rows,
) -> Chunks:
    """The file's chunks (`Chunks`), parsed by `pandas.read_csv(..., chunksize=chunk_rows,
    **kwargs)`: on two threads, one half of the file each, where its plan cuts it in two (a
    compressed file has no plan and is parsed on one thread). The numbers go where `rows` says."""
    plan = rows.plan if kwargs.get("compression") is None else None

    def whole() -> Chunks:
        n = plan.n_rows if plan is not None else 0
        into = Chunks(names, label, rows.slab, rows.first_row, n)
        return _parse_range(path, into, errors, chunk_rows, kwargs)

    if plan is None or len(plan.cuts) <= 2:
        return whole()
    starts = np.cumsum([rows.first_row, *plan.rows]).tolist()  # each range's first slab row

    def one(i: int) -> Chunks:
        into = Chunks(names, label, rows.slab, starts[i], plan.rows[i])
        with io.BufferedReader(_ByteRange(path, plan.cuts[i], plan.cuts[i + 1])) as source:
            # only the first half has the header line
            return _parse_range(source, into, errors, chunk_rows, kwargs if i == 0 else rest)

    rest = {**kwargs, "header": None}
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            return merge(list(pool.map(one, range(len(plan.cuts) - 1))))
    except UnicodeDecodeError:
        raise  # the caller reads the file again, replacing what is not UTF-8
    except (pd.errors.ParserError, ValueError):
        # the one-thread parse raises the same error, naming the line in the whole file
        return whole()
