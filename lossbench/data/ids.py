"""Intrusion-detection evaluation settings of the data layer (issue 33).

- `binary_task`: `--task binary`, the negative class (default BENIGN) against every other class
  merged into one positive class, `attack`.
- `--split-by`: `parse_split_by` reads the setting; `split_keys` takes what a split needs from
  the loaded table (timestamps, `parse_timestamps`, with CICIDS2017's 12-hour clock restored;
  group codes; each row's file) before the preset drops the identifier columns; `assign_splits`
  puts the rows into training, validation and test; `describe_splits` says what each split
  holds and checks that no group is shared and no training row is later than a test row.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench.config import DataOptions
from lossbench.data.split import stratified_split
from lossbench.data.table import sort_class_names
from lossbench.errors import InputError

#: The negative class of `--task binary` when none is named.
DEFAULT_NEGATIVE = "BENIGN"
#: The positive class of `--task binary`: every class but the negative one, merged.
POSITIVE = "attack"


def binary_negative(names: list[str], negative: str | None) -> str:
    """The class name `--negative` means (exact, else case-insensitive; default BENIGN)."""
    wanted = negative or DEFAULT_NEGATIVE
    if wanted in names:
        return wanted
    folded = [n for n in names if n.casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise InputError(
        f"negative {wanted!r}: no such class for task binary; classes are "
        f"{', '.join(map(repr, names))}"
    )


def binary_task(
    y: np.ndarray, names: list[str], opts: DataOptions, merged: dict[str, list[str]]
) -> tuple[np.ndarray, list[str]]:
    """Under `opts.task == "binary"`: class indices and names of the negative class against
    `attack` (the other classes, recorded in `merged["attack"]`); else `(y, names)` unchanged."""
    if opts.task != "binary":
        return y, names
    counts = np.bincount(y[y >= 0], minlength=len(names))
    present = [n for n, c in zip(names, counts, strict=True) if c]
    negative = binary_negative(present, opts.negative)
    if POSITIVE in names and POSITIVE != negative:
        raise InputError(
            f"task binary: the data already has a class {POSITIVE!r}; rename it with the "
            "merge setting"
        )
    new_names = sort_class_names([negative, POSITIVE])
    lut = np.array(
        [new_names.index(negative if n == negative else POSITIVE) for n in names] + [-1],
        dtype=np.int64,
    )
    merged[POSITIVE] = [n for n in present if n != negative]
    return lut[y], new_names


# ----------------------------------------------------------------------------------------------
# --split-by: which rows go to training, validation and test

SPLIT_KINDS = ("random", "order", "time", "group", "files")
_PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitBy:
    """A parsed `--split-by`: its kind, the columns it reads (time, group) and, for `files`,
    the file-name globs of each split."""

    text: str
    kind: str
    columns: tuple[str, ...] = ()
    globs: tuple[tuple[str, ...], ...] = ()


def parse_split_by(text: str) -> SplitBy:
    """`random`, `order`, `time[:COLUMN]`, `group:COL[,COL...]` or `files:TRAIN;VAL;TEST` (each
    part a comma-separated list of file-name globs); InputError naming the value otherwise."""
    kind, _, rest = str(text).strip().partition(":")
    kind, rest = kind.strip(), rest.strip()
    where = f"split_by {text!r}"
    if kind not in SPLIT_KINDS:
        raise InputError(f"{where}: expected one of {', '.join(SPLIT_KINDS)}")
    if kind in ("random", "order"):
        if rest:
            raise InputError(f"{where}: {kind} takes no argument")
        return SplitBy(text, kind)
    if kind == "time":
        return SplitBy(text, kind, (rest,) if rest else ())
    if kind == "group":
        cols = tuple(c.strip() for c in rest.split(",") if c.strip())
        if not cols:
            raise InputError(f"{where}: name the group columns, e.g. group:'Source IP'")
        return SplitBy(text, kind, cols)
    parts = rest.split(";")
    globs = tuple(tuple(g.strip() for g in p.split(",") if g.strip()) for p in parts)
    if len(globs) != 3 or not all(globs):
        raise InputError(
            f"{where}: expected files:TRAIN;VAL;TEST, each a comma-separated list of file-name "
            "globs, e.g. files:Monday*,Tuesday*;Wednesday*;Thursday*,Friday*"
        )
    return SplitBy(text, kind, globs=globs)


# --- CICIDS2017 timestamps ---------------------------------------------------------------------

#: GeneratedLabelledFlows' two day-first formats (the 12-hour clock has no AM/PM).
DAY_FIRST_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S")
#: Working hours: on a 12-hour clock without AM/PM an hour below this is an afternoon hour.
FIRST_MORNING_HOUR = 8
_HOUR_NS = 3_600_000_000_000


def afternoon_rule(file_name: str) -> str:
    """How a file's 12-hour clock is restored: 'afternoon' (its name says Afternoon: hours 1-11
    are p.m.), 'morning' (its name says Morning: unchanged) or 'wrap' (a whole working day: an
    hour below 8 is p.m., as the clock wrapped from 12 to 1)."""
    lower = file_name.lower()
    if "afternoon" in lower:
        return "afternoon"
    if "morning" in lower:
        return "morning"
    return "wrap"


def parse_timestamps(
    values: pd.Series,
    file_of_row: np.ndarray,
    file_names: Sequence[str],
    *,
    clock12: bool,
    column: str,
    where: Callable[[int], str],
) -> tuple[np.ndarray, dict[str, Any]]:
    """Timestamps as int64 nanoseconds (numbers are taken as they are).

    Text is parsed as `d/m/yyyy h:mm` or `dd/mm/yyyy hh:mm:ss` (CICIDS2017, CSE-CIC-IDS2018),
    else as ISO 8601. With `clock12` (CICIDS2017's GeneratedLabelledFlows), day-first times
    are on a 12-hour clock without AM/PM: the afternoon hours are restored per file
    (`afternoon_rule`). Returns the values and what was done (formats, rows restored per file).

    Raises:
        InputError: a missing or unparsable value, naming the column, the place (`where(i)`)
            and the value.
    """
    if pd.api.types.is_numeric_dtype(values.dtype):
        out = values.to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(out))
        if len(bad):
            raise InputError(f"missing timestamp in column {column!r} at {where(int(bad[0]))}")
        return out.astype(np.int64), {"column": column, "format": "numeric"}
    text = values.astype("string").str.strip()
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    formats: dict[str, int] = {}
    day_first = np.zeros(len(text), dtype=bool)
    for fmt in DAY_FIRST_FORMATS:
        todo = parsed.isna() & text.notna()
        got = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        parsed[todo] = got
        hit = todo.to_numpy() & parsed.notna().to_numpy()
        day_first |= hit
        formats[fmt] = int(got.notna().sum())
    todo = parsed.isna() & text.notna()
    if todo.any():
        got = pd.to_datetime(text[todo], format="ISO8601", errors="coerce", utc=True)
        parsed[todo] = got.dt.tz_localize(None) if len(got) else got
        formats["ISO 8601"] = int(got.notna().sum())
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        value = text.iloc[i]
        what = "missing timestamp" if pd.isna(value) else f"unparsable timestamp {value!r}"
        raise InputError(
            f"{what} in column {column!r} at {where(i)}; expected d/m/yyyy h:mm, "
            "dd/mm/yyyy hh:mm:ss or ISO 8601"
        )
    ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    info: dict[str, Any] = {"column": column, "formats": {k: v for k, v in formats.items() if v}}
    if clock12:
        hour = parsed.dt.hour.to_numpy()
        restored: dict[str, int] = {}
        rules: dict[str, str] = {}
        for f, name in enumerate(file_names):
            rule = afternoon_rule(name)
            in_file = (file_of_row == f) & day_first
            if rule == "afternoon":
                pm = in_file & (hour >= 1) & (hour <= 11)
            elif rule == "wrap":
                pm = in_file & (hour < FIRST_MORNING_HOUR)
            else:
                pm = np.zeros(len(hour), dtype=bool)
            ns[pm] += 12 * _HOUR_NS
            rules[name] = rule
            restored[name] = int(pm.sum())
        info["clock"] = (
            "12-hour clock without AM/PM: afternoon hours restored (+12 h) per file, from "
            "its name (Afternoon: hours 1-11; Morning: none) or, for a whole day, where the "
            f"clock wraps (hours below {FIRST_MORNING_HOUR})"
        )
        info["rule_per_file"] = rules
        info["rows_restored"] = restored
    return ns, info


# --- the split keys of a loaded table -----------------------------------------------------------


def file_of_row(row_ids: np.ndarray, sources: Sequence[dict[str, Any]]) -> np.ndarray:
    """The index into `sources` (`LoadInfo.sources`: path, offset, rows) of each row id."""
    if not sources:
        return np.zeros(len(row_ids), dtype=np.int64)
    offsets = np.asarray([s["offset"] for s in sources], dtype=np.int64)
    return np.searchsorted(offsets, np.asarray(row_ids, dtype=np.int64), side="right") - 1


def split_keys(
    df: pd.DataFrame,
    spec: SplitBy,
    *,
    timestamp_column: str | None,
    clock12: bool,
    sources: Sequence[dict[str, Any]],
    source: str,
    where: Callable[[int], str],
) -> tuple[dict[str, np.ndarray], list[str], dict[str, Any]]:
    """What a split reads from the loaded table `df`, before its identifier columns go.

    Returns:
        arrays over `df`'s rows ("time": int64 timestamps, "group": group codes, "part": the
        split of the row's file, -1 for a file no glob names), the columns the split reads
        (never features), and what was done (for `inspect` and experiment.json).
    """
    if spec.kind in ("random", "order"):
        return {}, [], {}
    columns = [str(c) for c in df.columns]

    def need(col: str) -> None:
        if col not in columns:
            shown = ", ".join(map(repr, columns[:12])) + (", ..." if len(columns) > 12 else "")
            raise InputError(
                f"{source}: split_by {spec.text!r}: no column {col!r}; columns: {shown}"
            )

    files = [Path(s["path"]).name for s in sources]
    of_row = file_of_row(df.index.to_numpy(), sources)
    if spec.kind == "files":
        if len(files) < 2:
            raise InputError(
                f"{source}: split_by {spec.text!r} needs a folder of CSV files; the data is "
                "one file"
            )
        part_of_file = np.full(len(files), -1, dtype=np.int64)
        for p, globs in enumerate(spec.globs):
            for glob in globs:
                hits = [f for f, n in enumerate(files) if fnmatch.fnmatchcase(n, glob)]
                if not hits:
                    raise InputError(
                        f"{source}: split_by {spec.text!r}: {glob!r} matches no file; files: "
                        f"{', '.join(files)}"
                    )
                for f in hits:
                    if part_of_file[f] not in (-1, p):
                        raise InputError(
                            f"{source}: split_by {spec.text!r}: {files[f]!r} is named for "
                            f"both {_PARTS[part_of_file[f]]} and {_PARTS[p]}"
                        )
                    part_of_file[f] = p
        info = {
            "files": {
                _PARTS[p]: [n for f, n in enumerate(files) if part_of_file[f] == p]
                for p in range(3)
            },
            "files_unused": [n for f, n in enumerate(files) if part_of_file[f] < 0],
        }
        return {"part": part_of_file[of_row]}, [], info
    if spec.kind == "time":
        col = spec.columns[0] if spec.columns else timestamp_column
        if col is None:
            raise InputError(
                f"{source}: split_by time: this data has no known timestamp column; name it "
                "with time:COLUMN (or use split_by order for the row order)"
            )
        need(col)
        ns, info = parse_timestamps(
            df[col], of_row, files, clock12=clock12, column=col, where=where
        )
        return {"time": ns}, [col], {"timestamps": info}
    for col in spec.columns:
        need(col)
    codes = df.groupby(list(spec.columns), dropna=False, sort=False).ngroup().to_numpy()
    return {"group": codes.astype(np.int64)}, list(spec.columns), {}


# --- assigning rows to the splits ---------------------------------------------------------------


def _cut(order: np.ndarray, fractions: Sequence[float]) -> tuple[np.ndarray, ...]:
    """The first `fractions[0]` of `order` for training, the next `fractions[1]` for validation,
    the rest for test (each ascending)."""
    n = len(order)
    a = int(round(fractions[0] * n))
    b = a + int(round(fractions[1] * n))
    return tuple(np.sort(part) for part in (order[:a], order[a:b], order[b:]))


def _group_split(
    group: np.ndarray, y: np.ndarray, fractions: Sequence[float], seed: int, text: str
) -> tuple[np.ndarray, ...]:
    """Whole groups to each split, stratified as far as groups allow: scikit-learn's
    `StratifiedGroupKFold` (shuffled by `seed`) into k folds, test and validation taking
    round(f * k) folds each (k = 1 / the smaller of the two fractions, rounded)."""
    from sklearn.model_selection import StratifiedGroupKFold

    k = max(3, int(round(1 / min(fractions[1], fractions[2]))))
    n_groups = len(np.unique(group))
    if n_groups < k:
        raise InputError(
            f"split_by {text!r}: {n_groups} group(s); a group split into "
            f"{', '.join(f'{f:g}' for f in fractions)} needs at least {k}"
        )
    n_test = max(1, int(round(fractions[2] * k)))
    n_val = max(1, int(round(fractions[1] * k)))
    fold = np.empty(len(y), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the least populated class has fewer members than k"
        for i, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y, group)):
            fold[held] = i
    test = fold < n_test
    val = ~test & (fold < n_test + n_val)
    return np.flatnonzero(~(test | val)), np.flatnonzero(val), np.flatnonzero(test)


def assign_splits(
    spec: SplitBy,
    keys: dict[str, np.ndarray],
    rows: np.ndarray,
    ids: np.ndarray,
    y: np.ndarray,
    fractions: Sequence[float],
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (into `rows`, `ids`, `y`; ascending) of the training, validation and test rows.

    `rows` index the arrays of `keys` (`split_keys`); `ids` are the rows' ids in the loaded
    table, whose order (files in sorted order, then line order) is `order`'s and breaks ties of
    equal timestamps."""
    if spec.kind == "random":
        return stratified_split(y, fractions, seed)
    if spec.kind == "order":
        return _cut(np.argsort(ids, kind="stable"), fractions)
    if spec.kind == "time":
        return _cut(np.lexsort((ids, keys["time"][rows])), fractions)
    if spec.kind == "group":
        return _group_split(keys["group"][rows], y, fractions, seed, spec.text)
    part = keys["part"][rows]
    return np.flatnonzero(part == 0), np.flatnonzero(part == 1), np.flatnonzero(part == 2)


def _iso(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[s]"))


def describe_splits(
    spec: SplitBy,
    keys: dict[str, np.ndarray],
    rows: np.ndarray,
    y: np.ndarray,
    parts: Sequence[np.ndarray],
    names: Sequence[str],
    warn: list[str],
    *,
    test_elsewhere: bool = False,
) -> dict[str, Any]:
    """What each split holds: class counts, the time range (time) or group count (group), and
    the checks of a leak-free split: groups shared between splits (0 for a group split) and
    training rows later than the first test row (0 for a time split).

    Raises:
        InputError: a class with no training row, naming it.
    """
    k = len(names)
    counts = [np.bincount(y[p], minlength=k) for p in parts]
    missing_train = [names[c] for c in range(k) if counts[0][c] == 0 and any(x[c] for x in counts)]
    if missing_train:
        raise InputError(
            f"split_by {spec.text!r}: class(es) {', '.join(map(repr, missing_train))} have no "
            "training rows; drop them with drop_classes or choose another split"
        )
    for split, c in zip(_PARTS[1:], counts[1:], strict=True):
        if split == "test" and test_elsewhere:
            continue  # --test-data: the test split comes from another file
        absent = [names[j] for j in range(k) if c[j] == 0 and counts[0][j] > 0]
        if absent:
            warn.append(
                f"split_by {spec.text}: class(es) {', '.join(absent)} have no {split} rows; "
                "their metrics there are undefined"
            )
    out: dict[str, Any] = {"by": spec.text, "kind": spec.kind, "parts": {}}
    checks: dict[str, Any] = {}
    for split, p, c in zip(_PARTS, parts, counts, strict=True):
        entry: dict[str, Any] = {
            "rows": int(len(p)),
            "classes": {names[j]: int(c[j]) for j in range(k) if c[j]},
        }
        if "time" in keys and len(p):
            t = keys["time"][rows[p]]
            entry["time_range"] = [_iso(t.min()), _iso(t.max())]
        if "group" in keys:
            entry["groups"] = int(len(np.unique(keys["group"][rows[p]])))
        out["parts"][split] = entry
    if test_elsewhere:
        out["test_data"] = True
    if "time" in keys and all(len(p) for p in parts):
        t = [keys["time"][rows[p]] for p in parts]
        checks["train_rows_after_first_test_row"] = int((t[0] > t[2].min()).sum())
        checks["train_rows_after_first_val_row"] = int((t[0] > t[1].min()).sum())
        checks["val_rows_after_first_test_row"] = int((t[1] > t[2].min()).sum())
    if "group" in keys:
        seen = [set(np.unique(keys["group"][rows[p]]).tolist()) for p in parts]
        checks["groups_shared_between_splits"] = len(
            (seen[0] & seen[1]) | (seen[0] & seen[2]) | (seen[1] & seen[2])
        )
    out["checks"] = checks
    return out


__all__ = [
    "DEFAULT_NEGATIVE",
    "POSITIVE",
    "SplitBy",
    "assign_splits",
    "binary_negative",
    "binary_task",
    "describe_splits",
    "file_of_row",
    "parse_split_by",
    "parse_timestamps",
    "split_keys",
]


# --- a preset's layout (CSE-CIC-IDS2018) ---------------------------------------------------------


def normalise_layout(
    df: pd.DataFrame, rename: Sequence[tuple[str, str]], repeated_headers: bool, label: str
) -> tuple[pd.DataFrame, int]:
    """Rename columns to the CICIDS2017 names, and drop header rows repeated inside the table
    (their label cell reads the label column's name; pandas then read the columns as text, which
    are made numbers again where every other value is one). Returns the table and how many
    header rows were dropped."""
    if rename:
        df = df.rename(columns=dict(rename))
    if not repeated_headers or label not in df.columns:
        return df, 0
    header = df[label].astype("string").str.strip().eq(label).fillna(False).to_numpy()
    if not header.any():
        return df, 0
    df = df.loc[~header].copy()
    for col in df.columns:
        if col != label and df[col].dtype == object:
            try:
                df[col] = pd.to_numeric(df[col])
            except (ValueError, TypeError):
                continue  # a text column (Timestamp, an address) stays text
    return df, int(header.sum())
