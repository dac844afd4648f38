"""From a source to prepared arrays: load, preset, sample, split, scale, cache (SPEC 2.1-2.5).

    prepare(opts)
      -> read_table (CSV/Parquet/folder) or load_builtin
      -> preprocess: preset columns, labels, feature columns (few-level text one-hot),
         NaN/±inf as missing, missing rows (--nan-policy), merge/drop classes,
         exact duplicate rows (--dedupe), class sizes
         (features stay pandas' columns until the split: see lossbench.data.table)
      -> stratified subsample (--sample-frac) -> stratified split
      -> median fill (nan-policy median), constant features dropped (CICIDS2017 preset)
         and scaling, all fitted on the training split only
      -> cache
    (the leakage report, `PreparedData.leakage()`, is computed on demand: not on the ingest path)

Bad input raises `InputError` with one message naming the file, column or value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench.config import DataOptions
from lossbench.data import cache as cache_mod
from lossbench.data.builtin import BUILTIN_DATASETS, BUILTIN_VERSION, load_builtin
from lossbench.data.classes import (
    apply_label_rules,
    check_class_sizes,
    parse_labels,
    present_classes,
)
from lossbench.data.ids import (
    binary_task,
    normalise_layout,
    parse_split_by,
    split_keys,
)
from lossbench.data.leakage import duplicate_rows
from lossbench.data.load import (
    LoadInfo,
    describe_row,
    fix_text,
    list_data_files,
    normalise_label,
    read_table,
    resolve_label_col,
)
from lossbench.data.memory import give_back_freed_memory
from lossbench.data.prepared import PreparedData, split_and_scale
from lossbench.data.presets import GENERIC, Preset, resolve_preset
from lossbench.data.table import (
    Table,
    counts_dict,
    finite_mask,
)
from lossbench.errors import InputError

__all__ = [
    "PreparedData",
    "builtin_table",
    "prepare",
    "preprocess",
    "resolve_source",
    "source_fingerprint",
]


# ----------------------------------------------------------------------------------------------
# sources


@dataclass
class DataSource:
    """Where a dataset comes from: its name, its file or folder (None: built in) and its
    signature (path, size and mtime of each file, or the built-in name and version)."""

    name: str
    path: Path | None  # None: a built-in dataset
    signature: list[Any]


def resolve_source(opts: DataOptions) -> DataSource:
    """`opts.data` as a source: a built-in dataset's name (no path) or a file or folder, with
    its signature (the array cache's key). Raises InputError naming a path that does not exist."""
    data = opts.data if opts.data is not None else "digits-lt"
    p = Path(data).expanduser()
    if data in BUILTIN_DATASETS and not p.exists():
        return DataSource(data, None, [["builtin", data, BUILTIN_VERSION]])
    if not p.exists():
        raise InputError(
            f"{data}: no such file or directory (built-in datasets: {', '.join(BUILTIN_DATASETS)})"
        )
    if p.is_dir():
        files = list_data_files(p)
        if not files:
            raise InputError(f"{p}: folder holds no CSV files (*.csv, *.csv.gz)")
        name = p.resolve().name
    else:
        files = [p]
        name = p.name.split(".")[0] or p.name
    return DataSource(name, p, cache_mod.file_signature(files))


def source_fingerprint(opts: DataOptions) -> str:
    """The fingerprint of the data `opts.data` names, whatever the spelling of its path: a hash of
    each source file's resolved path, size and modification time (the array cache's key for the
    sources), or of the built-in dataset's name and version. The experiment key includes it, so
    changed data under the same path starts a new experiment."""
    return cache_mod.sources_digest(resolve_source(opts).signature)


# ----------------------------------------------------------------------------------------------
# preprocessing (no split)


def preprocess(
    df: pd.DataFrame,
    opts: DataOptions,
    name: str | None = None,
    *,
    check_classes: bool = True,
    loaded: LoadInfo | None = None,
) -> Table:
    """Steps 1-4 of the preset (or the generic path) and the class checks, on a loaded table.

    Args:
        df: the table `read_table` returns.
        opts: label column, preset, nan policy, merges, drops, min class count, split,
            one-hot limit.
        name: dataset name for the Table (default: from the source path).
        check_classes: require two classes, each big enough for the stratified split (or drop
            the small ones under `opts.min_class_count`); False describes any table.
        loaded: what `read_table` found (source files for messages and info, empty rows,
            duplicated column names); None for a table from elsewhere.

    Returns:
        A Table whose kept rows have missing values only under `nan_policy='median'`, with
        `info` recording the preset, raw and final class counts, dropped columns/rows/classes,
        merges and warnings. Its columns may share memory with `df` (never written to).
    """
    df = df.copy(deep=False)  # no data copied
    df.attrs = {}  # else pandas deep-copies them on every column access
    source = loaded.path if loaded is not None else name or "data"
    if name is None:
        name = Path(source).name.split(".")[0] or source
    lay = _layout(df, opts, loaded, source)
    warn: list[str] = list(loaded.notes) if loaded is not None else []
    f = _labels_and_features(lay, opts, loaded, source, warn)
    y, names, dropped_classes, merged = apply_label_rules(f.y, f.names, opts, lay.preset, warn)
    y, names = binary_task(y, names, opts, merged)
    n_duplicate = _drop_duplicates(f.columns, y, opts)
    if n_duplicate:
        warn.append(f"{n_duplicate} rows repeating an earlier row were dropped (dedupe)")
    if check_classes:
        what = f"label column {lay.label!r}"
        y, names, small = check_class_sizes(y, names, opts, source, warn, what)
        dropped_classes.update(small)
    else:
        y, names = present_classes(y, names)
    rows = np.flatnonzero(y >= 0)
    ids = lay.df.index.to_numpy(dtype=np.int64)[rows]
    info: dict[str, Any] = {
        "preset": lay.preset.name,
        "label_col": lay.label,
        "sources": [s["path"] for s in loaded.sources] if loaded is not None else [],
        # row ids per file (offset: the row id of its first row), to find a row's file
        "source_rows": list(loaded.sources) if loaded is not None else [],
        **lay.split_info,
        **f.info,
        "dropped": {
            **f.dropped,
            "rows_duplicate": n_duplicate,
            "rows_repeated_header": lay.n_header_rows,
            "classes": dropped_classes,
        },
        **f.missing,
        "merged": merged,
        "onehot_columns": f.onehot,
        "warnings": warn,
    }
    cols, feature_names, keys = f.columns, f.feature_names, lay.keys
    return Table(name, cols, y[rows], ids, rows, names, feature_names, info, split_keys=keys)


@dataclass
class _Layout:
    """The columns of a loaded table after the preset's renames: which is the label, which split
    the rows (`--split-by`) and which are features."""

    df: pd.DataFrame
    label: str
    defaulted: bool
    preset: Preset
    n_header_rows: int
    keys: dict[str, np.ndarray]
    split_info: dict[str, Any]
    dropped_columns: list[str]
    feature_columns: list[str]


def _layout(df: pd.DataFrame, opts: DataOptions, loaded: LoadInfo | None, source: str) -> _Layout:
    """Step 1: the preset, its renames and repeated header rows, the label column, the
    `--split-by` keys and the feature columns."""
    columns = [str(c) for c in df.columns]
    label, defaulted = resolve_label_col(columns, opts.label_col, source)
    preset = resolve_preset(opts.preset, columns)
    df, n_header_rows = normalise_layout(df, preset.rename, preset.repeated_headers, label)
    columns = [str(c) for c in df.columns]
    for col, n in (loaded.duplicate_columns if loaded is not None else {}).items():
        if not (col in preset.allowed_duplicates and n == 2):
            raise InputError(
                f"{source}: duplicate column name {col!r} ({n} columns have it); "
                "column names must be unique"
            )
    keys, key_cols, split_info = split_keys(
        df,
        parse_split_by(opts.split_by),
        timestamp_column=preset.timestamp_column,
        clock12=preset.clock12,
        sources=loaded.sources if loaded is not None else [],
        source=source,
        where=lambda i: describe_row(loaded, int(df.index[i])),
    )
    if label in key_cols:
        raise InputError(f"{source}: split_by {opts.split_by!r}: {label!r} is the label column")
    # identifier columns split the rows and are never features
    dropped = [c for c in columns if c != label and (c in preset.drop_columns or c in key_cols)]
    features = [c for c in columns if c != label and c not in dropped]
    if not features:
        raise InputError(f"{source}: no feature columns besides the label column {label!r}")
    return _Layout(df, label, defaulted, preset, n_header_rows, keys, split_info, dropped, features)


@dataclass
class _Features:
    """Labels and feature columns of a loaded table, with what steps 2-3 found."""

    y: np.ndarray
    names: list[str]
    columns: list[np.ndarray]
    feature_names: list[str]
    onehot: dict[str, list[str]]
    info: dict[str, Any]
    dropped: dict[str, Any]
    missing: dict[str, Any]


def _labels_and_features(
    lay: _Layout, opts: DataOptions, loaded: LoadInfo | None, source: str, warn: list[str]
) -> _Features:
    """Steps 2-3: class indices, feature columns, missing values (--nan-policy)."""
    df = lay.df
    y, names = parse_labels(df[lay.label], lay.label, lay.defaulted, source)
    raw_counts = np.bincount(y[y >= 0], minlength=len(names))
    n_no_label = int((y < 0).sum())
    if loaded is not None and loaded.n_empty_rows:
        warn.append(f"{loaded.n_empty_rows} empty rows (no value in any cell) were skipped")
    if n_no_label:
        warn.append(f"{n_no_label} rows without a label were dropped")
    cols, feature_names, onehot = _features(
        df, lay.feature_columns, loaded, opts.max_onehot_levels, source
    )
    where = lambda r: describe_row(loaded, int(df.index[r]))  # noqa: E731
    n_row_missing, with_missing = _missing_values(cols, feature_names, y, opts, source, where, warn)
    return _Features(
        y,
        names,
        cols,
        feature_names,
        onehot,
        {"n_rows_raw": len(df), "raw_classes": counts_dict(raw_counts, names)},
        {
            "columns": lay.dropped_columns,
            "rows_empty": loaded.n_empty_rows if loaded is not None else 0,
            "rows_missing_label": n_no_label,
            "rows_missing": n_row_missing if opts.nan_policy == "drop" else 0,
        },
        {"rows_with_missing": n_row_missing, "columns_with_missing": with_missing},
    )


def _missing_values(
    cols: list[np.ndarray],
    feature_names: list[str],
    y: np.ndarray,
    opts: DataOptions,
    source: str,
    where: Callable[[int], str],
    warn: list[str],
) -> tuple[int, list[str]]:
    """Step 3: NaN, ±inf (and values beyond float32) are missing; all-missing columns are an
    error. Under --nan-policy drop the rows with one are unlabelled (y = -1). Returns the
    labelled rows with a missing value and the columns that have one."""
    labelled = y >= 0
    n_lab = int(labelled.sum())
    row_missing = np.zeros(len(y), dtype=bool)
    with_missing: list[str] = []
    for j, col in enumerate(cols):
        if np.issubdtype(col.dtype, np.integer) or col.dtype == bool:
            continue
        bad = ~finite_mask(col)
        if not bad.any():
            continue
        n_bad = int(bad.sum() if n_lab == len(y) else bad[labelled].sum())
        if n_lab and n_bad == n_lab:
            raise InputError(
                f"{source}: column {feature_names[j]!r} is entirely missing (no value in any row)"
            )
        row_missing |= bad
        with_missing.append(feature_names[j])
    row_missing &= labelled
    n_row_missing = int(row_missing.sum())
    if n_row_missing and opts.nan_policy == "error":
        r = int(np.flatnonzero(row_missing)[0])
        c = next(j for j, col in enumerate(cols) if not finite_mask(col[r : r + 1])[0])
        raise InputError(
            f"{source}: missing or infinite value in column {feature_names[c]!r} at {where(r)} "
            "(nan_policy error; use drop or median)"
        )
    if n_row_missing and opts.nan_policy == "drop":
        y[row_missing] = -1
        shown = ", ".join(repr(c) for c in with_missing[:5])
        shown += ", ..." if len(with_missing) > 5 else ""
        warn.append(
            f"{n_row_missing} rows with a missing, infinite or out-of-float32-range value "
            f"(columns {shown}) were dropped (nan_policy drop)"
        )
    return n_row_missing, with_missing


def _drop_duplicates(cols: list[np.ndarray], y: np.ndarray, opts: DataOptions) -> int:
    """Under `opts.dedupe`, unlabel (y = -1) each row whose features and label repeat an earlier
    labelled row's; returns how many rows that drops."""
    if not opts.dedupe:
        return 0
    rows = np.flatnonzero(y >= 0)
    dup = rows[duplicate_rows(cols, rows, y[rows])]
    y[dup] = -1
    return len(dup)


def _features(
    df: pd.DataFrame, cols: list[str], loaded: LoadInfo | None, max_levels: int, source: str
) -> tuple[list[np.ndarray], list[str], dict[str, list[str]]]:
    """Feature columns as 1-D arrays: numbers as loaded (no copy), few-level text one-hot encoded.

    Text that is mostly numbers is junk in a numeric column (an error naming the first bad row);
    other text is one-hot encoded when it has at most `max_levels` values (SPEC 2.3).
    """
    out: list[np.ndarray] = []
    names: list[str] = []
    onehot: dict[str, list[str]] = {}
    for c in cols:
        s = df[c]
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "biuf":
            out.append(s.to_numpy())
            names.append(c)
            continue
        if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            out.append(s.to_numpy(dtype=np.float64, na_value=np.nan))  # nullable types
            names.append(c)
            continue
        present = s.dropna()
        numbers = pd.to_numeric(present, errors="coerce")
        ok = numbers.notna().to_numpy()
        if ok.all():
            out.append(pd.to_numeric(s, errors="coerce").to_numpy(np.float64, na_value=np.nan))
            names.append(c)
        elif ok.mean() >= 0.5:
            row = present.index[int(np.flatnonzero(~ok)[0])]
            value = fix_text(str(present.loc[row]))
            value = value if len(value) <= 40 else value[:37] + "..."
            raise InputError(
                f"{source}: column {c!r} is numeric but holds the non-numeric value {value!r} "
                f"at {describe_row(loaded, int(row))}"
            )
        else:
            codes, uniques = pd.factorize(s, use_na_sentinel=True)
            text = [normalise_label(u) for u in uniques]
            levels = sorted(set(text))
            if len(levels) > max_levels:
                raise InputError(
                    f"{source}: column {c!r} holds text with {len(levels)} distinct values "
                    f"(e.g. {levels[0]!r}), more than the one-hot limit of {max_levels}; "
                    "remove the column or encode it as numbers"
                )
            level_of = np.array([levels.index(t) for t in text] + [-1], dtype=np.int64)[codes]
            for k, level in enumerate(levels):
                out.append((level_of == k).astype(np.float32))
                names.append(f"{c}={level}")
            onehot[c] = levels
    return out, names, onehot


def builtin_table(name: str, opts: DataOptions) -> Table:
    """A built-in dataset through the same label rules and class checks as a file."""
    table = load_builtin(name)
    warn: list[str] = []
    y, names, dropped, merged = apply_label_rules(table.y, table.class_names, opts, GENERIC, warn)
    y, names = binary_task(y, names, opts, merged)
    n_duplicate = _drop_duplicates(table.columns, y, opts)
    y, names, small = check_class_sizes(y, names, opts, name, warn)
    dropped.update(small)
    rows = np.flatnonzero(y >= 0)
    info = {
        **table.info,
        "preset": "none",
        "label_col": None,
        "sources": [f"builtin:{name}"],
        "n_rows_raw": len(table.y),
        "raw_classes": counts_dict(table.class_counts(), table.class_names),
        "dropped": {
            "columns": [],
            "rows_missing": 0,
            "rows_duplicate": n_duplicate,
            "classes": dropped,
        },
        "rows_with_missing": 0,
        "merged": merged,
        "onehot_columns": {},
        "warnings": warn,
    }
    return Table(
        name, table.columns, y[rows], table.ids[rows], rows, names, table.feature_names, info
    )


# ----------------------------------------------------------------------------------------------
# prepare


def prepare(opts: DataOptions) -> PreparedData:
    """Load, preprocess, sample, split, scale and cache a dataset (SPEC 2).

    A second call with the same sources (path, size, mtime) and the same options returns the
    cached arrays as read-only memory maps, with `info["cache_hit"]` true; `opts.cache=False`
    neither reads nor writes the cache.

    Raises:
        InputError: bad input (SPEC 2.5), with one message naming the file, column or value.
    """
    src = resolve_source(opts)
    test_src = resolve_source(dataclasses.replace(opts, data=opts.test_data))
    signature = src.signature + (test_src.signature if opts.test_data else [])
    key = cache_mod.fingerprint(signature, opts)
    root = cache_mod.cache_root(opts)
    if opts.cache:
        hit = cache_mod.load_entry(root, key)
        if hit is not None:
            arrays, meta = hit
            info = {**meta["info"], "cache_hit": True, "cache_path": str(root)}
            info["source_fingerprint"] = cache_mod.sources_digest(src.signature)
            return PreparedData(
                name=meta["name"],
                **arrays,
                class_names=list(meta["class_names"]),
                feature_names=list(meta["feature_names"]),
                info=info,
                fingerprint=key,
            )

    if src.path is None:
        table = builtin_table(src.name, opts)
    else:
        df, loaded = read_table(src.path, label_col=opts.label_col)
        table = preprocess(df, opts, src.name, loaded=loaded)
        del df
    test_table = _test_table(test_src, opts) if opts.test_data else None
    data = split_and_scale(table, opts, test_table, release=True)
    del table
    give_back_freed_memory(arrow=True)  # before a run imports TensorFlow (see README)
    data.fingerprint = key
    data.info["fingerprint"] = key
    data.info["source_fingerprint"] = cache_mod.sources_digest(src.signature)
    data.info["cache_hit"] = False
    if opts.cache:
        meta = {
            "name": data.name,
            "class_names": data.class_names,
            "feature_names": data.feature_names,
            "info": data.info,
        }
        arrays = {n: getattr(data, n) for n in cache_mod.ARRAY_NAMES}
        try:
            folder = cache_mod.save_entry(root, key, arrays, meta)
            data.info["cache_path"] = str(folder.parent.parent)
        except OSError as exc:
            data.info["warnings"].append(f"could not write the cache in {root}: {exc}")
        else:  # the arrays just written, memory-mapped: a split is resident while it is used
            reopened = cache_mod.load_entry(root, key, verify=False)
            if reopened is not None:
                for name, mapped in reopened[0].items():
                    setattr(data, name, mapped)
    return data


def _test_table(src: DataSource, opts: DataOptions) -> Table:
    """`--test-data`: the test file through its own preset (detected unless --preset names one
    that fits), its labels renamed by `--label-map` first, the training's label rules and
    `--task`; no split, no class-size checks."""
    if src.path is None:
        raise InputError(f"test_data {opts.test_data!r}: expected a file or folder")
    df, loaded = read_table(src.path, label_col=opts.label_col)
    renames = [_label_map_rule(rule) for rule in opts.label_map or []]
    preset = resolve_preset("auto", [str(c) for c in df.columns])
    base = list(preset.merges) if opts.merge is None else list(opts.merge)
    test_opts = dataclasses.replace(
        opts, preset=preset.name, split_by="random", sample_frac=None, merge=renames + base
    )
    return preprocess(df, test_opts, src.name, check_classes=False, loaded=loaded)


def _label_map_rule(rule: str) -> str:
    """`OLD=NEW` (`--label-map`) as the merge rule `NEW=OLD`."""
    old, sep, new = rule.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise InputError(f"label_map {rule!r}: expected OLD=NEW, e.g. 'DDOS attack-HOIC=DDoS'")
    return f"{new.strip()}={old.strip()}"
