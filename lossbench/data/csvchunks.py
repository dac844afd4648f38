"""A CSV file parsed in chunks (`load.read_table`'s streaming reader), on two threads where the
file allows it.

pandas' C parser tokenises and converts numbers with the GIL released, so two readers, each over
one half of the file's bytes (split at a line break), parse it on two cores: a 218 MB
CICIDS2017-format file in 0.87-1.02 s against 1.25-1.28 s one after the other (issue 35; bare
`pandas.read_csv` of the file: 1.0-1.35 s). Only for a plain (not gzip) file of at least
`PARALLEL_MIN_BYTES` with no quote character anywhere, so that no field can hold a line break
and a half starts at a row; should a half fail to parse, the file is parsed again from the start
on one thread, whose error names the right line.
"""

from __future__ import annotations

import codecs
import io
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Files smaller than this are parsed on one thread (the second reader's start-up would cost
#: more than it saves).
PARALLEL_MIN_BYTES = 32 * 2**20
#: Bytes read at a time by `scan_bytes`.
_SCAN_BYTES = 8 * 2**20


@dataclass(frozen=True)
class ByteScan:
    """What one pass over a plain file's bytes found (`scan_bytes`)."""

    quoted: bool  # a quote character somewhere: no field may be split between two readers
    utf8: bool  # the bytes decode as UTF-8: pandas may read the text strictly


def scan_bytes(path: Path, *, decode: bool = True) -> ByteScan:
    """One pass over a plain (not compressed) file's bytes, before it is parsed: whether a
    quote character occurs, and, with `decode`, whether the bytes decode as UTF-8 (without it
    `utf8` is False unchecked: the caller knows they do not). Blocks of ASCII bytes pass at
    memory speed; from the first block that is not ASCII, the rest is decoded incrementally (a
    character may straddle two blocks)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return ByteScan(quoted=False, utf8=True)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return ByteScan(quoted=mm.find(b'"') != -1, utf8=decode and _decodes(mm))


def _decodes(mm: mmap.mmap) -> bool:
    """Whether the mapped bytes decode as UTF-8 (see `scan_bytes`)."""
    decoder = None
    for start in range(0, len(mm), _SCAN_BYTES):
        block = mm[start : start + _SCAN_BYTES]
        if decoder is None and block.isascii():
            continue
        decoder = decoder or codecs.getincrementaldecoder("utf-8")()
        try:
            decoder.decode(block)
        except UnicodeDecodeError:
            return False
    try:
        if decoder is not None:
            decoder.decode(b"", final=True)  # a character cut off at the end of the file
    except UnicodeDecodeError:
        return False
    return True


class Chunks:
    """The chunks of one file as they are parsed: numeric feature columns as float32 arrays,
    other feature columns as Series, without the fully empty rows; the label column whole (its
    bytes may still need repair, by position)."""

    def __init__(self, names: list[str], label: str) -> None:
        self.names = names
        self.label = label
        self.parts: dict[str, list[Any]] = {n: [] for n in names if n != label}
        self.label_parts: list[pd.Series] = []
        self.keep: list[np.ndarray] = []
        self.n_raw = 0

    def add(self, chunk: pd.DataFrame) -> None:
        """Take one parsed chunk (it may be freed afterwards)."""
        # Fully empty rows (CICIDS2017 day files end with some): the label is missing, so only
        # rows without a label need the full check.
        no_label = chunk[self.label].isna().to_numpy()
        keep = np.ones(len(chunk), dtype=bool)
        if no_label.any():
            keep[no_label] = ~chunk.loc[no_label].isna().all(axis=1).to_numpy()
        whole = bool(keep.all())
        for name, column in self.parts.items():
            s = chunk[name]
            if isinstance(s.dtype, np.dtype) and s.dtype.kind in "biuf":
                values = s.to_numpy(dtype=np.float32)
                column.append(values if whole else values[keep])
            else:
                column.append((s if whole else s[keep]).reset_index(drop=True))
        self.label_parts.append(chunk[self.label].reset_index(drop=True))
        self.keep.append(keep)
        self.n_raw += len(chunk)

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


def _second_half(path: Path, quoted: bool) -> int | None:
    """Where the file's second half starts (right after a line break), or None where the file
    is parsed on one thread (small, `quoted`: a quote character somewhere, as `scan_bytes` found;
    one line)."""
    size = path.stat().st_size
    if size < PARALLEL_MIN_BYTES or (os.cpu_count() or 1) < 2 or quoted:
        return None
    with open(path, "rb") as fh:
        fh.seek(size // 2)
        fh.readline()  # to the end of the line the middle falls in
        mid = fh.tell()
    return mid if mid < size else None


def _parse_range(
    source: Any, names: list[str], label: str, errors: str, chunk_rows: int, kwargs: dict
) -> Chunks:
    chunks = Chunks(names, label)
    with pd.read_csv(
        source, encoding="utf-8", encoding_errors=errors, chunksize=chunk_rows, **kwargs
    ) as reader:
        for chunk in reader:
            chunks.add(chunk)
    return chunks


def parse_chunks(
    path: Path,
    names: list[str],
    label: str,
    errors: str,
    chunk_rows: int,
    kwargs: dict[str, Any],
    quoted: bool,
) -> Chunks:
    """The file's chunks (`Chunks`), parsed by `pandas.read_csv(..., chunksize=chunk_rows,
    **kwargs)`: on two threads, one half of the file each, where `_second_half` allows it
    (`quoted`: whether the file holds a quote character, as `scan_bytes` found; True for a
    compressed file, which is never split)."""
    mid = _second_half(path, quoted) if kwargs.get("compression") is None else None
    if mid is None:
        return _parse_range(path, names, label, errors, chunk_rows, kwargs)
    rest = {**kwargs, "header": None}  # the second half has no header line

    def second() -> Chunks:
        with io.BufferedReader(_ByteRange(path, mid, path.stat().st_size)) as source:
            return _parse_range(source, names, label, errors, chunk_rows, rest)

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            later = pool.submit(second)
            with io.BufferedReader(_ByteRange(path, 0, mid)) as source:
                first = _parse_range(source, names, label, errors, chunk_rows, kwargs)
            return merge([first, later.result()])
    except UnicodeDecodeError:
        raise  # the caller reads the file again, replacing what is not UTF-8
    except (pd.errors.ParserError, ValueError):
        # the one-thread parse raises the same error, naming the line in the whole file
        return _parse_range(path, names, label, errors, chunk_rows, kwargs)
