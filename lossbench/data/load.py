"""Raw loading of a table: CSV (optionally gzip), Parquet, or a folder of CSV files (SPEC 2.1).

`load_table` returns the table as pandas reads it, with three repairs and nothing else:
column names stripped of surrounding whitespace (duplicates renamed `X.1`, `X.2` as pandas does),
bytes that are not UTF-8 read as cp1252 in the header and labels (elsewhere replaced by U+FFFD),
and fully empty rows dropped. `Infinity`, `inf` and `NaN` cells arrive as ±inf and NaN; the
pipeline treats both as missing. What it found (`LoadInfo`: the source files, their row offsets,
the empty rows dropped, the duplicated column names) comes back from `read_table` with the table.

Streaming: each CSV is parsed in chunks of `CHUNK_ROWS` rows, file by file; every numeric
feature column of a chunk becomes float32 (the dtype of the prepared arrays; a value beyond
float32's range becomes ±inf, missing as before) and its empty rows are dropped before the next
chunk is parsed. Where every file is a plain CSV, the chunks' numbers are written straight to
their rows' places in one preallocated column per feature (`csvchunks.Slab`: the files' lines
are counted first), which become the table's columns without a copy; otherwise (gzip, Parquet)
each column's chunks are joined once at the end. So no float64 or object copy of the whole
table exists at any time: the table costs about the float32 feature matrix, where a one-shot
`pandas.read_csv` held a float64 table and a consolidated copy of it.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES

from lossbench.data.csvchunks import Chunks, Plan, Rows, Slab, parse_chunks, plan_file
from lossbench.data.memory import give_back_freed_memory, owned_empty
from lossbench.errors import InputError

#: File name endings read as CSV when they sit in a folder.
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")

_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
_SNIFF_BYTES = 8192
#: The cells pandas reads as missing by default ("", "NA", "NaN", "null", "None", ...); for the
#: feature columns only (a label is text as written).
_NA_MARKERS = sorted(STR_NA_VALUES)

#: Rows per chunk of the streaming CSV reader (about 32 MB of float64 while a chunk of 80
#: columns is parsed).
CHUNK_ROWS = 50_000


# Dash-like characters unified to "-" in labels. U+FFFD is what a lossy decoder leaves of the
# cp1252 en dash (0x96) in CICIDS2017's web-attack labels, so it is treated as a dash too.
_DASHES = str.maketrans(
    {c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\ufffd"}
)
_SURROGATES = re.compile("[\udc80-\udcff]")
# U+FFFD (a byte that was not UTF-8) anywhere but alone between spaces
_UNCLEAR_REPLACEMENT = re.compile("(?<! )\ufffd|\ufffd(?! )")


def _decode_byte(b: int) -> str:
    """One byte that is not UTF-8, read as cp1252 (latin-1 for the five bytes cp1252 leaves out)."""
    try:
        return bytes([b]).decode("cp1252")
    except UnicodeDecodeError:
        return bytes([b]).decode("latin-1")


def fix_text(text: str) -> str:
    """Replace the surrogate escapes of undecodable bytes by their cp1252 (else latin-1) reading."""
    if not _SURROGATES.search(text):
        return text
    return _SURROGATES.sub(lambda m: _decode_byte(ord(m.group()) - 0xDC00), text)


def normalise_label(value: Any) -> str:
    """Label text as lossbench compares it: bytes repaired, dashes unified, whitespace collapsed.

    >>> normalise_label("Web Attack \\udc96  Brute Force ")
    'Web Attack - Brute Force'
    >>> normalise_label(1.0)
    '1'
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return " ".join(fix_text(str(value)).translate(_DASHES).split())


def resolve_label_col(columns: list[str], label_col: str | None, source: str) -> tuple[str, bool]:
    """The label column's name and whether it was defaulted to the last column.

    Default: `Label` (any letter case), else the last column. A named column must exist.
    """
    if label_col is not None:
        want = label_col.strip()
        if want in columns:
            return want, False
        folded = [c for c in columns if c.casefold() == want.casefold()]
        if len(folded) == 1:
            return folded[0], False
        shown = ", ".join(repr(c) for c in columns[:8]) + (", ..." if len(columns) > 8 else "")
        raise InputError(f"{source}: no label column {label_col!r} (columns: {shown})")
    if "Label" in columns:
        return "Label", False
    folded = [c for c in columns if c.casefold() == "label"]
    if len(folded) == 1:
        return folded[0], False
    if not columns:
        raise InputError(f"{source}: no columns")
    return columns[-1], True


def list_data_files(folder: Path) -> list[Path]:
    """The CSV files (`.csv`, `.csv.gz`) of a folder, sorted by name (`scan_data_folder`)."""
    return scan_data_folder(folder)[0]


def scan_data_folder(folder: Path) -> tuple[list[Path], list[str]]:
    """The CSV files (`.csv`, `.csv.gz`) of a folder, sorted by name, and notes for warnings.

    Hidden files are ignored. Symbolic links are followed: a file reached twice (a link to a
    file of the folder, or two links to one file) is read once, under its first name; a link
    that leads nowhere is left out. Each of these is named in a note."""
    files: list[Path] = []
    notes: list[str] = []
    seen: dict[Path, Path] = {}
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        if p.name.startswith(".") or not p.name.lower().endswith(CSV_SUFFIXES):
            continue
        if p.is_symlink() and not p.exists():
            notes.append(f"{p}: a symbolic link to nothing ({os.readlink(p)}), left out")
            continue
        if not p.is_file():
            continue
        real = p.resolve()
        if real in seen:
            notes.append(f"{p}: the same file as {seen[real].name} (a link), read once")
            continue
        seen[real] = p
        files.append(p)
    return files, notes


@dataclass(frozen=True)
class LoadInfo:
    """What `read_table` found besides the table itself.

    Attributes:
        path: the file or folder that was read.
        sources: one {path, offset, rows} per file (offset: the row id of its first data row).
        n_empty_rows: fully empty rows dropped.
        duplicate_columns: names that occur more than once in the header -> how often.
        label_col: the label column.
        notes: files of a folder left out or read once (`scan_data_folder`), for warnings.
    """

    path: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    n_empty_rows: int = 0
    duplicate_columns: dict[str, int] = field(default_factory=dict)
    label_col: str | None = None
    notes: list[str] = field(default_factory=list)


def load_table(path: str | Path, *, label_col: str | None = None) -> pd.DataFrame:
    """The table of `read_table` (see there), without what the read found."""
    return read_table(path, label_col=label_col)[0]


def read_table(
    path: str | Path, *, label_col: str | None = None, chunk_rows: int | None = None
) -> tuple[pd.DataFrame, LoadInfo]:
    """Load a CSV, `.csv.gz`, Parquet file or a folder of CSV files as one DataFrame.

    Args:
        path: the file or folder.
        label_col: the label column (default `Label`, else the last column); it is read as text
            so that undecodable bytes in labels survive to be repaired by `normalise_label`.
        chunk_rows: rows per parsed chunk of a CSV (default `CHUNK_ROWS`; see the module's
            docstring).

    Returns:
        The raw table, whose index holds the row ids (0-based data rows, counted across the files
        of a folder in name order, fully empty rows included), and a `LoadInfo`. Numeric columns
        other than the label are float32 arrays; the others are as pandas parses them.

    Raises:
        InputError: missing, empty, header-only, unreadable or non-CSV/Parquet input; files of a
            folder whose columns disagree; a named label column that does not exist.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    notes: list[str] = []
    if p.is_dir():
        files, notes = scan_data_folder(p)
        if not files:
            raise InputError(f"{p}: folder holds no CSV files (*.csv, *.csv.gz)")
    else:
        files = [p]

    opened = [_open(f) for f in files]
    slab = _slab(files, opened, label_col)
    parts: dict[str, list[Any]] = {}
    ids: list[np.ndarray] = []
    sources: list[dict[str, Any]] = []
    duplicates: dict[str, int] = {}
    n_empty = 0
    offset = 0
    first_row = 0  # the slab row of the file's first data row
    label = None
    for f, (kind, head, plan) in zip(files, opened, strict=True):
        rows = Rows(plan, slab, first_row)
        file_parts, file_ids, dups, file_label, n_raw, file_empty = _read_one(
            f, kind, head, label_col, offset, chunk_rows or CHUNK_ROWS, rows
        )
        first_row += plan.n_rows if plan is not None else 0
        if parts:
            _check_same_columns(f, list(file_parts), files[0], list(parts))
        else:
            label = file_label
            duplicates = dups
            parts = {name: [] for name in file_parts}
        for name, column in parts.items():
            column += file_parts.pop(name)
        ids.append(file_ids)
        n_empty += file_empty
        sources.append({"path": str(f), "offset": offset, "rows": n_raw})
        offset += n_raw

    index = pd.Index(np.concatenate(ids), dtype=np.int64)
    columns = {}
    for name in list(parts):  # one column at a time, its chunks' memory given back at once
        column = slab.pack(name, parts[name]) if slab is not None else None
        if column is None:  # copied: the chunks' memory and the slab's pages given back
            column = _join(parts.pop(name))
            if slab is not None:
                slab.release(name)
            give_back_freed_memory()
        else:
            del parts[name]
        columns[name] = column
    df = pd.DataFrame(columns, index=index, copy=False)  # no copy: one block per column
    if len(df) == 0:
        raise InputError(f"{p}: no data rows (only empty lines after the header)")
    return df, LoadInfo(str(p), sources, n_empty, duplicates, label, notes)


def _open(path: Path) -> tuple[str, bytes, Plan | None]:
    """A file's kind and first bytes (`_sniff`) and, for a plain CSV, its `plan_file`."""
    kind, head = _sniff(path)
    return kind, head, plan_file(path, decode=_is_utf8(head)) if kind == "csv" else None


def _slab(
    files: list[Path], opened: list[tuple[str, bytes, Plan | None]], label_col: str | None
) -> Slab | None:
    """The slab the numbers of a table's files are written to, with a place for each data
    line of each file (the columns of the first), when every file is a plain CSV; else None."""
    plans = [plan for _, _, plan in opened]
    if not plans or any(plan is None for plan in plans):
        return None
    names, _, _, label = _columns(files[0], opened[0][1], label_col)
    return Slab([n for n in names if n != label], sum(p.n_rows for p in plans if p))


def _join(parts: list[Any]) -> Any:
    """One column from its chunks, copied, where they do not lie in the slab (`Slab.pack`):
    float32 chunks as one float32 array (`owned_empty`), otherwise a Series (object when the
    chunks' types differ, e.g. numbers in one chunk and text in another)."""
    if all(isinstance(part, np.ndarray) for part in parts):
        out = owned_empty(sum(len(p) for p in parts), np.float32)
        return np.concatenate(parts, out=out)
    series = [pd.Series(p) if isinstance(p, np.ndarray) else p for p in parts]
    if len({str(s.dtype) for s in series}) > 1:
        series = [s.astype(object) for s in series]
    joined = pd.concat(series, ignore_index=True) if len(series) > 1 else series[0]
    return joined.array  # not the Series: its index would be aligned with the table's


def describe_row(loaded: LoadInfo | None, row_id: int) -> str:
    """Where a row id of `read_table`'s result lives, for messages: 'row 5 (line 6) of x.csv'."""
    for src in reversed(loaded.sources if loaded is not None else []):
        if row_id >= src["offset"]:
            row = row_id - src["offset"] + 1
            name = Path(src["path"]).name
            if src["path"].lower().endswith(PARQUET_SUFFIXES):
                return f"row {row} of {name}"
            return f"row {row} (line {row + 1}) of {name}"
    return f"row {row_id + 1}"


# ----------------------------------------------------------------------------------------------


def _read_head(fh: Any) -> bytes:
    """The first `_SNIFF_BYTES` bytes of a stream, extended to the end of its first line (the
    header), however wide that line is."""
    head = fh.read(_SNIFF_BYTES)
    if len(head) < _SNIFF_BYTES or b"\n" in head:
        return head
    parts = [head]
    while True:
        chunk = fh.read(1 << 20)
        parts.append(chunk)
        if not chunk or b"\n" in chunk:
            return b"".join(parts)


def _sniff(path: Path) -> tuple[str, bytes]:
    """('csv'|'gzip'|'parquet', first bytes of the text, the whole header line included);
    rejects empty and non-tabular files."""
    try:
        with path.open("rb") as fh:
            head = _read_head(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head:
        raise InputError(f"{path}: empty file")
    name = path.name.lower()
    if head.startswith(_PARQUET_MAGIC) or name.endswith(PARQUET_SUFFIXES):
        return "parquet", b""
    if head.startswith(_ZIP_MAGIC) or name.endswith((".xlsx", ".xls", ".zip")):
        raise InputError(
            f"{path}: not a CSV or Parquet file (a ZIP archive or Excel workbook); export it as CSV"
        )
    if head.startswith(_OLE_MAGIC):
        raise InputError(f"{path}: not a CSV or Parquet file (an Excel .xls workbook)")
    kind = "csv"
    if head.startswith(_GZIP_MAGIC):
        kind = "gzip"
        try:
            with gzip.open(path, "rb") as fh:
                head = _read_head(fh)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: not a readable gzip file ({exc})") from None
        if not head:
            raise InputError(f"{path}: empty file")
    if b"\x00" in head[:_SNIFF_BYTES]:
        raise InputError(f"{path}: not a CSV or Parquet file (binary content)")
    return kind, head


def _decode_header(line: bytes) -> str:
    try:
        return line.decode("utf-8-sig")
    except UnicodeDecodeError:
        return fix_text(line.decode("utf-8", "surrogateescape"))


def _parse_header(path: Path, head: bytes) -> tuple[list[str], str]:
    """Column names (stripped) and the delimiter, from the first line."""
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    text = _decode_header(first)
    if not text.strip():
        raise InputError(f"{path}: the first line (the header) is empty")
    sep = ","
    if "," not in text:
        for cand in (";", "\t", "|"):
            if cand in text:
                sep = cand
                break
    if '"' in text:  # a quoted name may hold the delimiter or a line break (RFC 4180)
        text = _decode_header(head)
    names = next(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    return [n.strip() for n in names], sep


def _dedupe(names: list[str]) -> tuple[list[str], dict[str, int]]:
    """Rename repeats `X.1`, `X.2`, ... (as pandas does); unnamed columns become `Unnamed: i`."""
    out: list[str] = []
    seen: set[str] = set()
    dups: dict[str, int] = {}
    for i, name in enumerate(names):
        name = name or f"Unnamed: {i}"
        if name in seen:
            dups[name] = dups.get(name, 1) + 1
            k = 1
            while f"{name}.{k}" in seen:
                k += 1
            name = f"{name}.{k}"
        seen.add(name)
        out.append(name)
    return out, dups


def _read_one(
    path: Path,
    kind: str,
    head: bytes,
    label_col: str | None,
    offset: int,
    chunk_rows: int,
    rows: Rows,
) -> tuple[dict[str, list[Any]], np.ndarray, dict[str, int], str, int, int]:
    """One file (`_sniff`'s kind and head): (each column's chunks, the row ids kept,
    duplicated names, label column, data rows read, empty rows dropped)."""
    if kind == "parquet":
        df, dups = _read_parquet(path)
        label, _ = resolve_label_col(list(df.columns), label_col, str(path))
        chunks = Chunks(list(df.columns), label)
        chunks.add(df)
        labels = chunks.labels()
    else:
        chunks, dups, labels = _read_csv(path, kind, head, label_col, chunk_rows, rows)
        label = chunks.label
    if chunks.n_raw == 0:
        raise InputError(f"{path}: header only, no data rows")
    keep = np.concatenate(chunks.keep)
    kept_labels = [labels[keep].reset_index(drop=True)]
    column_parts = {n: chunks.parts[n] if n != label else kept_labels for n in chunks.names}
    ids = offset + np.flatnonzero(keep).astype(np.int64)
    return column_parts, ids, dups, label, chunks.n_raw, int((~keep).sum())


def _columns(
    path: Path, head: bytes, label_col: str | None
) -> tuple[list[str], dict[str, int], str, str]:
    """A CSV file's column names (deduplicated), the duplicated names, its delimiter and its
    label column."""
    raw_names, sep = _parse_header(path, head)
    names, dups = _dedupe(raw_names)
    return names, dups, sep, resolve_label_col(names, label_col, str(path))[0]


def _read_csv(
    path: Path, kind: str, head: bytes, label_col: str | None, chunk_rows: int, rows: Rows
) -> tuple[Chunks, dict[str, int], pd.Series]:
    """A CSV file parsed in chunks: (the chunks, duplicated names, the repaired labels)."""
    names, dups, sep, label = _columns(path, head, label_col)
    # Labels are text as written: pandas' default missing-value markers (NA, None, null, nan,
    # ...) hold for the features only, and only an empty label cell is a missing label.
    na_values: dict[str, Any] = {name: _NA_MARKERS for name in names}
    na_values[label] = [""]
    kwargs: dict[str, Any] = dict(
        sep=sep,
        header=0,
        names=names,
        index_col=False,
        keep_default_na=False,
        na_values=na_values,
        skip_blank_lines=False,
        engine="c",
        compression="gzip" if kind == "gzip" else None,
    )
    # Strict UTF-8 keeps pandas on its fast path (Arrow strings validated in bulk); undecodable
    # bytes need a read that replaces them (U+FFFD), and exact label text is then recovered from
    # the raw bytes where it matters (see `_recover_labels`). A plain file's bytes were checked
    # in one pass first (its plan, `plan_file`; decoded only where its head decodes), so that one
    # whose undecodable bytes lie far from its head (CICIDS2017's web-attack day) is parsed once;
    # a gzip file's head decides, and a strict parse that meets such bytes later is done again.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DtypeWarning: mixed types are diagnosed later
            utf8 = rows.plan.scan.utf8 if rows.plan is not None else _is_utf8(head)
            errors = "strict" if utf8 else "replace"
            try:
                chunks = parse_chunks(path, names, label, errors, chunk_rows, kwargs, rows)
            except UnicodeDecodeError:
                errors = "replace"
                chunks = parse_chunks(path, names, label, errors, chunk_rows, kwargs, rows)
            labels = chunks.labels()
            if errors == "replace":
                labels = _recover_labels(path, labels, label, kwargs)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file") from None
    except pd.errors.ParserError as exc:
        msg = str(exc).replace("Error tokenizing data. C error: ", "")
        raise InputError(f"{path}: not a valid CSV file ({msg.strip()})") from None
    except zlib.error as exc:
        raise InputError(f"{path}: corrupt gzip data ({exc})") from None
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as CSV ({exc})") from None
    return chunks, dups, labels


def _is_utf8(head: bytes) -> bool:
    """Whether the first bytes decode as UTF-8 (a character cut at the end does not count)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and len(head) >= _SNIFF_BYTES
    return True


def _recover_labels(path: Path, col: pd.Series, label: str, kwargs: dict[str, Any]) -> pd.Series:
    """The labels of every row of a file, those that lost undecodable bytes (now U+FFFD)
    replaced by their cp1252 reading.

    A U+FFFD between spaces is left alone: it is CICIDS2017's cp1252 dash (byte 0x96), and
    `normalise_label` turns it into "-" anyway; elsewhere the label column is read again as
    latin-1 (every byte kept) and those labels are decoded exactly.
    """
    uniques = pd.unique(col.dropna())
    lossy = [u for u in uniques if isinstance(u, str) and _UNCLEAR_REPLACEMENT.search(u)]
    if not lossy:
        return col
    raw = pd.read_csv(path, encoding="latin-1", usecols=[label], dtype={label: object}, **kwargs)[
        label
    ]
    rows = col.isin(lossy).to_numpy()
    codes, values = pd.factorize(raw[rows])
    exact = np.array([_relatin1(v) for v in values] + [None], dtype=object)
    fixed = col.to_numpy(dtype=object, na_value=None).copy()
    fixed[rows] = exact[codes]
    return pd.Series(fixed, dtype=object)


def _relatin1(text: str) -> str:
    """Text read as latin-1, decoded again as UTF-8 with a cp1252 (then latin-1) fallback."""
    raw = text.encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return fix_text(raw.decode("utf-8", "surrogateescape"))


def _read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt or foreign file
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a valid Parquet file ({msg})") from None
    _refuse_nested(path)
    names, dups = _dedupe([str(c).strip() for c in df.columns])
    df.columns = names
    return df, dups


def _refuse_nested(path: Path) -> None:
    """A Parquet column of a nested type (list, struct, map, union) is neither a feature nor a
    label: an error naming the column and its type."""
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    for field_ in pq.read_schema(path):
        if pat.is_nested(field_.type):
            raise InputError(
                f"{path}: column {field_.name!r} has the nested type {field_.type}; lossbench "
                "reads numbers and text only: flatten it or drop the column"
            )


def _check_same_columns(path: Path, cols: list[str], first: Path, want: list[str]) -> None:
    if cols == want:
        return
    missing = [c for c in want if c not in cols]
    extra = [c for c in cols if c not in want]
    if not missing and not extra:
        return  # same columns in another order: aligned by name
    parts = []
    if missing:
        parts.append("missing " + ", ".join(repr(c) for c in missing[:5]))
    if extra:
        parts.append("extra " + ", ".join(repr(c) for c in extra[:5]))
    raise InputError(
        f"{path}: columns disagree with {first.name} ({'; '.join(parts)}); "
        "the files of a folder must have the same columns"
    )
