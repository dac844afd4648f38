"""A CSV file parsed in chunks (`load.read_table`'s streaming reader), on two threads where the
file allows it, each chunk's numbers written straight to their rows' places in the table.

pandas' C parser tokenises and converts numbers with the GIL released, so two threads parse a file
on two cores. Only for a plain (not gzip) file of at least `PARALLEL_MIN_BYTES` with no quote
character anywhere, so that no field can hold a line break and a byte range starts at a row;
should a range fail to parse, the file is parsed again from the start on one thread, whose error
names the right line. Where pandas' parser can be handed one buffer after another (its
`TextReader.load_buffer`, pandas 3.1, the way its own parallel `read_csv` reads a file), the file
is cut into ranges of about `RANGE_BYTES` that two threads take in turn, each reusing one parser
(`_Ranges`): `read_table` of a 218 MB CICIDS2017-format file took 0.91-1.09 s (median 0.98)
against 1.00-1.32 s (median 1.18) in halves, eight of each side by side in one process. Through
`read_csv` each range would build a parser and a frame, so small ranges that way cost more than
they save: without `load_buffer` the file is cut in two halves, each read through
`pandas.read_csv` in chunks.

Before a plain file is parsed, one pass over its bytes (`plan_file`, its ranges on two threads)
finds whether it holds a quote character, whether it decodes as UTF-8, and how many lines each
range holds: so each range knows the row its rows start at, and a chunk's numeric columns are
written as float32 into a `Slab` (one preallocated column per feature, for every row of the
table's files) at their final rows.
The table's columns are then the slab's, without a copy: no second copy of the numbers is made
to join the chunks (issue 35). A chunk whose rows do not fit where the line counts said (a file
whose lines end in a lone carriage return) keeps its own arrays, and the column is copied as
before.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import io
import mmap
import os
import queue
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
#: Bytes of a file per range where its ranges are parsed by reused parsers (`_Ranges`): as in
#: pandas' own parallel reader, small enough that the two threads finish together, large
#: enough that a range's fixed cost does not count.
RANGE_BYTES = 4 * 2**20


def _reusable_parser() -> bool:
    """Whether pandas' C parser takes one buffer after another (`TextReader.load_buffer`, not a
    public interface): tried on two small buffers, which must come back as their numbers."""
    try:
        parser = _new_parser(header=None, names=["a", "b"])
        try:
            got = [_parse_buffer(parser, data)["b"].tolist() for data in (b"1,2\n", b"3,4\n5,6\n")]
        finally:
            parser.close()
    except Exception:  # any other pandas: the halves through read_csv
        return False
    return got == [[2], [4, 6]]


def _new_parser(encoding_errors: str = "strict", **kwargs: Any) -> Any:
    """A pandas C parser for `_parse_buffer` (pandas' `TextFileReader`, with no input yet)."""
    parser = pd.read_csv(
        io.BytesIO(b""),
        encoding="utf-8",
        encoding_errors=encoding_errors,
        low_memory=False,  # a buffer is parsed at once: no chunks to join
        iterator=True,
        **kwargs,
    )
    parser._engine._reader.trim_after_read = False  # its buffers serve the next one
    return parser


def _parse_buffer(parser: Any, data: Any) -> dict[str, Any]:
    """The columns (arrays by name) of the rows in `data` (bytes, no header line), parsed by a
    `_new_parser` that may have parsed other buffers before."""
    parser._engine._reader.load_buffer(data)
    parser._engine._first_chunk = True  # a parser that read a buffer reads again
    return parser._engine.read()[2]


#: Ranges of `RANGE_BYTES` parsed by reused parsers, not halves through `read_csv`.
REUSE_PARSERS = _reusable_parser()


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
    """`_scan_range` of each range of a mapped file, on two threads where there are several."""
    data = np.frombuffer(mm, dtype=np.uint8)
    jobs = [
        functools.partial(_scan_range, data, a, b, header_end)
        for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]
    try:
        if len(jobs) == 1:
            return [jobs[0]()]
        with ThreadPoolExecutor(max_workers=2) as pool:
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
    one line, one core), else ranges of about `RANGE_BYTES` where parsers are reused
    (`REUSE_PARSERS`), at least two, otherwise its two halves; each range after the first
    starts right after the line break its share of the bytes ends in (`plan_file` makes them
    one where a quote character occurs)."""
    size = len(mm)
    if size < PARALLEL_MIN_BYTES or (os.cpu_count() or 1) < 2:
        return [0, size]
    n = max(2, round(size / RANGE_BYTES)) if REUSE_PARSERS else 2
    cuts = [0]
    for k in range(1, n):
        end = mm.find(b"\n", max(size * k // n, cuts[-1]))
        if not 0 <= end < size - 1:
            break
        cuts.append(end + 1)
    return [*cuts, size] if len(cuts) > 1 else [0, size]


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
        self.add_columns({name: chunk[name] for name in self.names})

    def add_columns(self, chunk: dict[str, Any]) -> None:
        """Take one parsed chunk as its columns (Series, NumPy or pandas arrays, by name)."""
        label = chunk[self.label]
        # Fully empty rows (CICIDS2017 day files end with some): the label is missing, so only
        # rows without a label need the full check.
        no_label = np.asarray(pd.isna(label), dtype=bool)
        keep = np.ones(len(no_label), dtype=bool)
        if no_label.any():
            empty = [np.asarray(pd.isna(column[no_label])) for column in chunk.values()]
            keep[no_label] = ~np.logical_and.reduce(empty)
        whole = bool(keep.all())
        n = int(keep.sum())
        at = self._next if self._slab is not None and self._next + n <= self._end else None
        for name, column in self.parts.items():
            values = chunk[name]
            if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biuf":
                values = np.asarray(values)
                column.append(self._put(name, values if whole else values[keep], at))
            else:
                column.append(_series(values if whole else values[keep], name))
        self.label_parts.append(_series(label, self.label))
        self.keep.append(keep)
        self.n_raw += len(keep)
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


def _series(values: Any, name: str) -> pd.Series:
    """A chunk's column as a Series indexed from 0 (no copy)."""
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    return pd.Series(values, name=name, copy=False)


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
    """The file's chunks (`Chunks`), parsed by pandas' C parser with `kwargs` (`read_csv`'s,
    in chunks of `chunk_rows` rows): on two threads where its plan cuts it in ranges
    (`_Ranges`), else on one (a compressed file has no plan). The numbers go where `rows`
    says."""
    plan = rows.plan if kwargs.get("compression") is None else None

    def whole() -> Chunks:
        n = plan.n_rows if plan is not None else 0
        into = Chunks(names, label, rows.slab, rows.first_row, n)
        return _parse_range(path, into, errors, chunk_rows, kwargs)

    if plan is None or len(plan.cuts) <= 2:
        return whole()
    ranges = _Ranges(path, plan, rows, names, label, errors, chunk_rows, kwargs)
    try:
        return merge(ranges.parse())
    except UnicodeDecodeError:
        raise  # the caller reads the file again, replacing what is not UTF-8
    except (pd.errors.ParserError, ValueError):
        # the one-thread parse raises the same error, naming the line in the whole file
        return whole()


class _Ranges:
    """The byte ranges of a file's plan (`plan_file`), parsed on two threads that take them in
    turn, into `Chunks` each (their numbers at their rows' places in the slab).

    The first range, which holds the header line, is read through `pandas.read_csv` in chunks
    of `chunk_rows`; where `REUSE_PARSERS`, each later range is handed whole to the thread's one
    parser (`TextReader.load_buffer`, a view of the mapped file; the columns come back as arrays,
    no frame is built), else read through `pandas.read_csv` as the first."""

    def __init__(
        self,
        path: Path,
        plan: Plan,
        rows: Rows,
        names: list[str],
        label: str,
        errors: str,
        chunk_rows: int,
        kwargs: dict[str, Any],
    ) -> None:
        self.path, self.plan, self.slab = path, plan, rows.slab
        self.names, self.label, self.errors = names, label, errors
        self.chunk_rows, self.kwargs = chunk_rows, kwargs
        self.rest = {**kwargs, "header": None}  # only the first range has the header line
        self.starts = np.cumsum([rows.first_row, *plan.rows]).tolist()  # each range's slab row

    def parse(self) -> list[Chunks]:
        """Every range's chunks, in the file's order."""
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(self.plan.rows)):
            todo.put(i)
        done: list[Any] = [None] * len(self.plan.rows)
        with open(self.path, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                for job in [pool.submit(self._work, mapped, todo, done) for _ in range(2)]:
                    job.result()
        finally:
            with contextlib.suppress(BufferError):  # a traceback may still hold a view
                mapped.close()
        return done

    def _work(self, mapped: mmap.mmap, todo: queue.SimpleQueue, done: list[Chunks]) -> None:
        """One thread: take ranges until none is left (or another thread failed)."""
        parser, view = None, memoryview(mapped)
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                if parser is None and i > 0 and REUSE_PARSERS:
                    parser = _new_parser(self.errors, **self.rest)
                done[i] = self._range(i, parser, view)
        except BaseException:
            while not todo.empty():  # the other thread stops after its range
                todo.get_nowait()
            raise
        finally:
            if parser is not None:
                parser.close()
            view.release()

    def _range(self, i: int, parser: Any, view: memoryview) -> Chunks:
        """Range i's chunks: through `pandas.read_csv` (the first range, or no `parser`), else
        by the thread's reused `parser` from `view` (the mapped file)."""
        into = Chunks(self.names, self.label, self.slab, self.starts[i], self.plan.rows[i])
        a, b = self.plan.cuts[i], self.plan.cuts[i + 1]
        if i == 0 or parser is None:
            with io.BufferedReader(_ByteRange(self.path, a, b)) as source:
                args = (self.errors, self.chunk_rows, self.rest if i else self.kwargs)
                return _parse_range(source, into, *args)
        into.add_columns(_parse_buffer(parser, view[a:b]))
        return into
