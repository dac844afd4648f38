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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench.config import DataOptions
from lossbench.data import cache as cache_mod
from lossbench.data.builtin import BUILTIN_DATASETS, BUILTIN_VERSION, load_builtin
from lossbench.data.ids import (
    assign_splits,
    binary_task,
    describe_splits,
    normalise_layout,
    parse_split_by,
    split_keys,
)
from lossbench.data.leakage import duplicate_rows, duplicated, leakage_report
from lossbench.data.load import (
    LoadInfo,
    describe_row,
    fix_text,
    give_back_freed_memory,
    list_data_files,
    normalise_label,
    read_table,
    resolve_label_col,
)
from lossbench.data.presets import GENERIC, PRESETS, Preset, label_mapping, resolve_preset
from lossbench.data.split import (
    Scaler,
    split_min_count,
    stratified_subsample,
)
from lossbench.data.table import (
    FLOAT32_MAX,
    Table,
    finite_mask,
    fit_stats,
    gather_rows,
    gather_splits,
    sort_class_names,
)
from lossbench.errors import InputError

#: A defaulted label column (the last column) with more distinct values is not a label.
MAX_DEFAULT_LABEL_CLASSES = 1000
_SPLITS = ("train", "val", "test")


@dataclass
class PreparedData:
    """A dataset ready for training: scaled float32 features, int64 labels, split three ways.

    Arrays may be read-only memory maps (when they come from the cache).
    """

    name: str
    X_train: np.ndarray
    X_val: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    ids_train: np.ndarray
    ids_val: np.ndarray
    ids_test: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def n_classes(self) -> int:
        """Number of classes K."""
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        """Number of features F."""
        return len(self.feature_names)

    def leakage(self) -> dict[str, Any]:
        """Validation and test rows duplicating a training row (`leakage_report`), computed on
        the first call and kept in `info["leakage"]`."""
        if "leakage" not in self.info:
            self.info["leakage"] = leakage_report(
                self.X_train,
                self.y_train,
                self.X_val,
                self.y_val,
                self.X_test,
                self.y_test,
                # --test-data classes never seen in training have indices after the K classes
                list(self.class_names) + list(self.info.get("test_only_classes") or []),
            )
            # --split-by's checks: groups shared between splits, train rows after the first test row
            checks = (self.info.get("split") or {}).get("checks") or {}
            self.info["leakage"].update(checks)
        return self.info["leakage"]

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Rows per class in `split` ('train', 'val' or 'test'): int64 of length K."""
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, not {split!r}")
        y = getattr(self, f"y_{split}")
        return np.bincount(np.asarray(y), minlength=self.n_classes).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# sources


@dataclass
class _Source:
    name: str
    path: Path | None  # None: a built-in dataset
    signature: list[Any]


def _resolve_source(opts: DataOptions) -> _Source:
    data = opts.data if opts.data is not None else "digits-lt"
    p = Path(data).expanduser()
    if data in BUILTIN_DATASETS and not p.exists():
        return _Source(data, None, [["builtin", data, BUILTIN_VERSION]])
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
    return _Source(name, p, cache_mod.file_signature(files))


def source_fingerprint(opts: DataOptions) -> str:
    """The fingerprint of the data `opts.data` names, whatever the spelling of its path: a hash of
    each source file's resolved path, size and modification time (the array cache's key for the
    sources), or of the built-in dataset's name and version. The experiment key includes it, so
    changed data under the same path starts a new experiment."""
    return cache_mod.sources_digest(_resolve_source(opts).signature)


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
    columns = [str(c) for c in df.columns]
    label, defaulted = resolve_label_col(columns, opts.label_col, source)
    preset = resolve_preset(opts.preset, columns)
    warn: list[str] = []
    df, n_header_rows = normalise_layout(df, preset.rename, preset.repeated_headers, label)
    columns = [str(c) for c in df.columns]

    for col, n in (loaded.duplicate_columns if loaded is not None else {}).items():
        if not (col in preset.allowed_duplicates and n == 2):
            raise InputError(
                f"{source}: duplicate column name {col!r} ({n} columns have it); "
                "column names must be unique"
            )
    spec = parse_split_by(opts.split_by)
    keys, key_cols, split_info = split_keys(
        df,
        spec,
        timestamp_column=preset.timestamp_column,
        clock12=preset.clock12,
        sources=loaded.sources if loaded is not None else [],
        source=source,
        where=lambda i: describe_row(loaded, int(df.index[i])),
    )
    if label in key_cols:
        raise InputError(f"{source}: --split-by {opts.split_by!r}: {label!r} is the label column")
    # identifier columns split the rows and are never features
    dropped_cols = [
        c for c in columns if c != label and (c in preset.drop_columns or c in key_cols)
    ]
    feature_cols = [c for c in columns if c != label and c not in dropped_cols]
    if not feature_cols:
        raise InputError(f"{source}: no feature columns besides the label column {label!r}")

    y, names = _parse_labels(df[label], label, defaulted, source)
    raw_names = list(names)
    raw_counts = np.bincount(y[y >= 0], minlength=len(names))
    n_no_label = int((y < 0).sum())
    warn.extend(loaded.notes if loaded is not None else [])
    if loaded is not None and loaded.n_empty_rows:
        warn.append(f"{loaded.n_empty_rows} empty rows (no value in any cell) were skipped")
    if n_no_label:
        warn.append(f"{n_no_label} rows without a label were dropped")
    cols, feature_names, onehot = _features(
        df, feature_cols, loaded, opts.max_onehot_levels, source
    )

    # Step 3: NaN, ±inf (and values beyond float32) are missing; all-missing columns are an error.
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
    if n_row_missing:
        if opts.nan_policy == "error":
            r = int(np.flatnonzero(row_missing)[0])
            c = next(j for j, col in enumerate(cols) if not finite_mask(col[r : r + 1])[0])
            where = describe_row(loaded, int(df.index[r]))
            raise InputError(
                f"{source}: missing or infinite value in column {feature_names[c]!r} at {where} "
                "(--nan-policy error; use drop or median)"
            )
        if opts.nan_policy == "drop":
            y[row_missing] = -1
            shown = ", ".join(repr(c) for c in with_missing[:5])
            shown += ", ..." if len(with_missing) > 5 else ""
            warn.append(
                f"{n_row_missing} rows with a missing, infinite or out-of-float32-range value "
                f"(columns {shown}) were dropped (--nan-policy drop)"
            )

    y, names, dropped_classes, merged = _apply_label_rules(y, names, opts, preset, warn)
    y, names = binary_task(y, names, opts, merged)
    n_duplicate = _drop_duplicates(cols, y, opts)
    if n_duplicate:
        warn.append(f"{n_duplicate} rows repeating an earlier row were dropped (--dedupe)")
    if check_classes:
        what = f"label column {label!r}"
        y, names, small = _check_classes(y, names, opts, source, warn, what)
        dropped_classes.update(small)
    else:
        y, names = _present_classes(y, names)
    rows = np.flatnonzero(y >= 0)
    ids = df.index.to_numpy(dtype=np.int64)[rows]
    info: dict[str, Any] = {
        "preset": preset.name,
        "label_col": label,
        "sources": [s["path"] for s in loaded.sources] if loaded is not None else [],
        # row ids per file (offset: the row id of its first row), to find a row's file
        "source_rows": list(loaded.sources) if loaded is not None else [],
        **split_info,
        "n_rows_raw": len(df),
        "raw_classes": _counts_dict(raw_counts, raw_names),
        "dropped": {
            "columns": dropped_cols,
            "rows_empty": loaded.n_empty_rows if loaded is not None else 0,
            "rows_missing_label": n_no_label,
            "rows_missing": n_row_missing if opts.nan_policy == "drop" else 0,
            "rows_duplicate": n_duplicate,
            "rows_repeated_header": n_header_rows,
            "classes": dropped_classes,
        },
        "rows_with_missing": n_row_missing,
        "columns_with_missing": with_missing,
        "merged": merged,
        "onehot_columns": onehot,
        "warnings": warn,
    }
    return Table(name, cols, y[rows], ids, rows, names, feature_names, info, split_keys=keys)


def _drop_duplicates(cols: list[np.ndarray], y: np.ndarray, opts: DataOptions) -> int:
    """Under `opts.dedupe`, unlabel (y = -1) each row whose features and label repeat an earlier
    labelled row's; returns how many rows that drops."""
    if not opts.dedupe:
        return 0
    rows = np.flatnonzero(y >= 0)
    dup = rows[duplicate_rows(cols, rows, y[rows])]
    y[dup] = -1
    return len(dup)


def _parse_labels(
    series: pd.Series, label: str, defaulted: bool, source: str
) -> tuple[np.ndarray, list[str]]:
    """Class index per row (-1: no label) and the sorted, normalised class names."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    values = list(uniques)
    if defaulted:
        numeric = pd.api.types.is_numeric_dtype(series.dtype)
        if numeric and not all(float(v).is_integer() for v in values):
            raise InputError(
                f"{source}: no label column: there is no 'Label' column and the last column "
                f"{label!r} holds continuous values; name the label column with --label-col"
            )
        if len(values) > MAX_DEFAULT_LABEL_CLASSES:
            raise InputError(
                f"{source}: no label column: there is no 'Label' column and the last column "
                f"{label!r} has {len(values)} distinct values; name the label column with "
                "--label-col"
            )
    text = [normalise_label(v) for v in values]
    names = sort_class_names(sorted({t for t in text if t}))
    index = {n: i for i, n in enumerate(names)}
    lut = np.array([index.get(t, -1) for t in text] + [-1], dtype=np.int64)
    return lut[codes], names


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


def _apply_label_rules(
    y: np.ndarray, names: list[str], opts: DataOptions, preset: Preset, warn: list[str]
) -> tuple[np.ndarray, list[str], dict[str, int], dict[str, list[str]]]:
    """Merge, then drop, classes (step 4); returns new y, names, dropped counts, merges."""
    merges = list(preset.merges) if opts.merge is None else list(opts.merge)
    drops = list(preset.drop_classes) if opts.drop_classes is None else list(opts.drop_classes)
    new_of_old, merged, unused = label_mapping(names, merges, drops)
    if opts.drop_classes is not None:
        for pat in unused:
            warn.append(f"--drop-classes {pat!r} matches no class")
    counts = np.bincount(y[y >= 0], minlength=len(names))
    dropped: dict[str, int] = {}
    for old, new in zip(names, new_of_old, strict=True):
        if new is None and counts[names.index(old)]:
            dropped[old] = int(counts[names.index(old)])
    if dropped:
        listed = ", ".join(f"{name!r} ({n})" for name, n in dropped.items())
        warn.append(
            f"{sum(dropped.values())} rows of the dropped classes {listed} were dropped "
            "(--drop-classes, or the preset's default)"
        )
    new_names = sort_class_names(sorted({n for n in new_of_old if n is not None}))
    index = {n: i for i, n in enumerate(new_names)}
    lut = np.array([index[n] if n is not None else -1 for n in new_of_old] + [-1], np.int64)
    return lut[y], new_names, dropped, merged


def _check_classes(
    y: np.ndarray,
    names: list[str],
    opts: DataOptions,
    source: str,
    warn: list[str],
    what: str = "the label",
) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """Classes present, big enough for the stratified split; recode to the present classes."""
    counts = np.bincount(y[y >= 0], minlength=len(names))
    present = [i for i in range(len(names)) if counts[i] > 0]
    for i in range(len(names)):
        if counts[i] == 0:
            warn.append(f"class {names[i]!r} has no rows left after dropping rows")
    if not present:
        raise InputError(f"{source}: no rows left after preprocessing")
    if len(present) == 1:
        raise InputError(
            f"{source}: {what} has only one class ({names[present[0]]!r}) after "
            "preprocessing; classification needs at least two"
        )
    need = split_min_count(opts.split)
    split_txt = "/".join(f"{f:g}" for f in opts.split)
    threshold = max(need, opts.min_class_count or 0)
    small = [i for i in present if counts[i] < threshold]
    dropped: dict[str, int] = {}
    if small and opts.min_class_count is None:
        i = min(small, key=lambda i: counts[i])
        raise InputError(
            f"{source}: class {names[i]!r} has {counts[i]} rows but the stratified split "
            f"{split_txt} needs at least {need} per class; drop it with "
            f"--drop-classes {names[i]!r} or drop all such classes with --min-class-count {need}"
        )
    for i in small:
        dropped[names[i]] = int(counts[i])
        warn.append(f"class {names[i]!r} dropped: {counts[i]} rows, fewer than {threshold}")
    keep = [i for i in present if i not in small]
    if len(keep) < 2:
        raise InputError(
            f"{source}: fewer than two classes have at least {threshold} rows; "
            "classification needs at least two"
        )
    lut = np.full(len(names) + 1, -1, dtype=np.int64)
    lut[keep] = np.arange(len(keep))
    return lut[y], [names[i] for i in keep], dropped


def _present_classes(y: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Recode to the classes that have rows."""
    counts = np.bincount(y[y >= 0], minlength=len(names))
    keep = np.flatnonzero(counts > 0)
    lut = np.full(len(names) + 1, -1, dtype=np.int64)
    lut[keep] = np.arange(len(keep))
    return lut[y], [names[i] for i in keep]


def _counts_dict(counts: np.ndarray, names: list[str]) -> dict[str, int]:
    """name -> count, largest first (ties by name order), zero counts left out."""
    order = sorted(range(len(names)), key=lambda i: -counts[i])
    return {names[i]: int(counts[i]) for i in order if counts[i] > 0}


def _builtin_table(name: str, opts: DataOptions) -> Table:
    """A built-in dataset through the same label rules and class checks as a file."""
    table = load_builtin(name)
    warn: list[str] = []
    y, names, dropped, merged = _apply_label_rules(table.y, table.class_names, opts, GENERIC, warn)
    y, names = binary_task(y, names, opts, merged)
    n_duplicate = _drop_duplicates(table.columns, y, opts)
    y, names, small = _check_classes(y, names, opts, name, warn)
    dropped.update(small)
    rows = np.flatnonzero(y >= 0)
    info = {
        **table.info,
        "preset": "none",
        "label_col": None,
        "sources": [f"builtin:{name}"],
        "n_rows_raw": len(table.y),
        "raw_classes": _counts_dict(table.class_counts(), table.class_names),
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
    src = _resolve_source(opts)
    test_src = _resolve_source(dataclasses.replace(opts, data=opts.test_data))
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
        table = _builtin_table(src.name, opts)
    else:
        df, loaded = read_table(src.path, label_col=opts.label_col)
        table = preprocess(df, opts, src.name, loaded=loaded)
        del df
    test_table = _test_table(test_src, opts) if opts.test_data else None
    data = _split_and_scale(table, opts, test_table, release=True)
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
    return data


def _balance_shift(before: np.ndarray, after: np.ndarray, names: list[str]) -> str:
    """'class X: 0.1% -> 0.5%, ...' for the classes whose share a subsample moved by more than
    10% of its value; empty when the balance is kept."""
    k = len(names)
    p = np.bincount(before, minlength=k) / max(len(before), 1)
    q = np.bincount(after, minlength=k) / max(len(after), 1)
    moved = [i for i in range(k) if p[i] > 0 and abs(q[i] / p[i] - 1) > 0.1]
    return ", ".join(f"class {names[i]!r}: {100 * p[i]:.3g}% -> {100 * q[i]:.3g}%" for i in moved)


def _test_table(src: _Source, opts: DataOptions) -> Table:
    """`--test-data`: the test file through its own preset (detected unless --preset names one
    that fits), its labels renamed by `--label-map` first, the training's label rules and
    `--task`; no split, no class-size checks."""
    if src.path is None:
        raise InputError(f"--test-data {opts.test_data!r}: expected a file or folder")
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
        raise InputError(f"--label-map {rule!r}: expected OLD=NEW, e.g. 'DDOS attack-HOIC=DDoS'")
    return f"{new.strip()}={old.strip()}"


def _cross_dataset_test(
    test: Table,
    class_names: list[str],
    feature_names: list[str],
    fill: np.ndarray,
    scaler: Scaler,
    check: bool,
    warn: list[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """The test split from `--test-data`: its columns matched to the training features by name,
    scaled with what the training split fitted; its labels matched by name. A test class never
    seen in training gets an index after the training classes (its rows count as errors of the
    model, which cannot predict it). Returns X, y, ids, the test-only class names, and info."""
    missing = [n for n in feature_names if n not in test.feature_names]
    if missing:
        where = (test.info.get("sources") or [test.name])[0]
        raise InputError(
            f"{where}: --test-data lacks {len(missing)} feature(s) of the training data: "
            f"{', '.join(map(repr, missing))}"
        )
    position = {n: j for j, n in enumerate(test.feature_names)}
    columns = [test.columns[position[n]] for n in feature_names]
    X = gather_rows(columns, test.rows, check=check, fill=fill, scaler=scaler)
    unseen = sort_class_names([n for n in test.class_names if n not in class_names])
    index = {n: i for i, n in enumerate(class_names + unseen)}
    lut = np.array([index[n] for n in test.class_names], dtype=np.int64)
    y = lut[test.y]
    counts = np.bincount(test.y, minlength=len(test.class_names))
    unseen_counts = {n: int(counts[test.class_names.index(n)]) for n in unseen}
    if unseen:
        warn.append(
            "--test-data has classes never seen in training, scored as errors of the model: "
            + ", ".join(f"{n} ({c} rows)" for n, c in unseen_counts.items())
        )
    info = {
        "path": test.info.get("sources"),
        "preset": test.info.get("preset"),
        "rows": int(len(y)),
        "classes": _counts_dict(np.bincount(y, minlength=len(index)), class_names + unseen),
        "unseen_classes": unseen_counts,
        "merged": test.info.get("merged"),
        "dropped": test.info.get("dropped"),
        "warnings": test.info.get("warnings"),
    }
    return X, y, test.ids, unseen, info


def _split_and_scale(
    table: Table, opts: DataOptions, test_table: Table | None = None, *, release: bool = False
) -> PreparedData:
    """Steps 5-7: subsample, split; median fill, constant features and scaler from train only.
    With `test_table` (`--test-data`) the data is split into training and validation only (the
    fractions renormalised) and the test split is `test_table`. With `release`, the table's
    columns are taken out of it and freed as the split matrices are written (`gather_splits`)."""
    info = dict(table.info)
    info["warnings"] = list(info.get("warnings", []))
    info["dropped"] = dict(info.get("dropped", {}))
    rows, y, ids = table.rows, table.y, table.ids
    if opts.sample_frac is not None and opts.sample_frac < 1:
        sub = stratified_subsample(y, opts.sample_frac, opts.seed, split_min_count(opts.split))
        info["dropped"]["rows_sampled_out"] = int(len(y) - len(sub))
        shift = _balance_shift(y, y[sub], table.class_names)
        if shift:
            info["warnings"].append(
                f"--sample-frac {opts.sample_frac} changes the class balance (small classes keep "
                f"the rows a stratified split needs): {shift}"
            )
        rows, y, ids = rows[sub], y[sub], ids[sub]
    spec = parse_split_by(opts.split_by)
    if spec.kind not in ("random", "order") and not table.split_keys:
        raise InputError(f"{table.name}: --split-by {spec.text!r} needs a file with its columns")
    fractions = opts.split
    if test_table is not None:  # train/val only: the validation share split in two, then joined
        f_train, f_val = opts.split[0], opts.split[1]
        f_train, f_val = f_train / (f_train + f_val), f_val / (f_train + f_val)
        fractions = (f_train, f_val / 2, f_val / 2)
    tr, va, te = assign_splits(spec, table.split_keys, rows, ids, y, fractions, opts.seed)
    if test_table is not None:
        va, te = np.union1d(va, te), te[:0]
    split_parts = describe_splits(
        spec, table.split_keys, rows, y, (tr, va, te), table.class_names, info["warnings"],
        test_elsewhere=test_table is not None,
    )  # fmt: skip

    # The scaler is fitted on the training rows: every statistic comes from them alone.
    columns, feature_names = list(table.columns), list(table.feature_names)
    check = opts.nan_policy != "drop"  # under drop the kept rows have no missing values
    median: list[int] = []
    if opts.nan_policy == "median":
        with_missing = set(info.get("columns_with_missing", []))
        median = [j for j, name in enumerate(feature_names) if name in with_missing]
    stats, fill = fit_stats(columns, rows[tr], opts.scaler, check=check, median=median)
    if median:
        info["median_fill"] = {feature_names[j]: float(fill[j]) for j in median}
        empty = [  # a fill of 0 is either a median of 0 or no training value at all
            feature_names[j]
            for j in median
            if fill[j] == 0 and not finite_mask(columns[j][rows[tr]]).any()
        ]
        if empty:
            info["warnings"].append(
                f"no training values to take a median from in {empty}; filled with 0"
            )

    constant: list[str] = []
    if PRESETS[info["preset"]].drop_constant:  # step 5: features constant on the training split
        const = stats["min"] == stats["max"]
        if const.any():
            constant = [feature_names[j] for j in np.flatnonzero(const)]
            keep = np.flatnonzero(~const)
            stats = {k: v[keep] for k, v in stats.items()}
            fill = fill[keep]
            columns = [columns[j] for j in keep]
            feature_names = [feature_names[j] for j in keep]
    info["dropped"]["constant_columns"] = constant

    scaler = Scaler.from_stats(opts.scaler, stats)
    parts = [rows[tr], rows[va], rows[te]]
    if release:  # the columns' memory given back as the split matrices are written
        table.columns = []
        X_train, X_val, X_test = gather_splits(
            columns, parts, check=check, fill=fill, scaler=scaler
        )
    else:
        X_train, X_val, X_test = (
            gather_rows(columns, part, check=check, fill=fill, scaler=scaler) for part in parts
        )
    class_names = list(table.class_names)
    y_test, ids_test = y[te], ids[te]
    if test_table is not None:
        X_test, y_test, ids_test, unseen, info["test_data"] = _cross_dataset_test(
            test_table, class_names, feature_names, fill, scaler, check, info["warnings"]
        )
        info["test_only_classes"] = unseen
        split_parts["parts"]["test"] = {"rows": int(len(y_test)), **info["test_data"]}
    info.update(
        {
            "n_rows": int(len(y)),
            "n_features": len(feature_names),
            "classes": _counts_dict(
                np.bincount(y, minlength=len(table.class_names)), table.class_names
            ),
            "split": {
                "fractions": [float(f) for f in opts.split],
                "seed": opts.seed,
                "sizes": [len(tr), len(va), len(y_test)],
                **split_parts,
            },
            "sample_frac": opts.sample_frac,
            "task": opts.task,
            "scaler": scaler.to_info(),
            "dedupe": opts.dedupe,
        }
    )
    return PreparedData(
        name=table.name,
        X_train=X_train,
        X_val=X_val,
        X_test=X_test,
        y_train=y[tr],
        y_val=y[va],
        y_test=y_test,
        ids_train=ids[tr],
        ids_val=ids[va],
        ids_test=ids_test,
        class_names=class_names,
        feature_names=feature_names,
        info=info,
    )


# ----------------------------------------------------------------------------------------------
# inspect


def inspect_dataset(opts: DataOptions) -> dict[str, Any]:
    """Describe a dataset for `lossbench inspect`: classes, imbalance, data quality, preset.

    Returns a JSON-able dict with at least: name, n_rows, n_features, classes (after
    preprocessing, largest first), raw_classes (before), imbalance_ratio (largest / smallest
    class), n_missing and n_infinite (cells before cleaning), constant_columns, n_duplicate_rows
    (extra copies of a row in the loaded table, before preprocessing and --dedupe), duplicates
    (after preprocessing: rows_involved, the rows that have an identical twin, and extra_copies,
    the rows --dedupe removes), preset, dropped, warnings, and split and leakage
    (`lossbench.data.leakage.leakage_report` on the split `prepare` makes with these options).
    Constant columns are those constant over all preprocessed rows (`prepare` decides on the
    training split only). Nothing is written.
    """
    src = _resolve_source(opts)
    if src.path is None:
        table = _builtin_table(src.name, opts)
        n_missing, n_infinite = 0, 0
        n_dup = _kept_duplicates(table)["extra_copies"]
        n_columns_raw = len(table.columns) + 1
    else:
        df, loaded = read_table(src.path, label_col=opts.label_col)
        n_missing = n_infinite = 0
        for c in df.columns:  # one column at a time: no full-width temporary
            n_missing += int(df[c].isna().sum())
            if pd.api.types.is_float_dtype(df[c].dtype):
                n_infinite += int(np.isinf(df[c].to_numpy(na_value=np.nan)).sum())
        n_dup = count_duplicate_rows(df)
        n_columns_raw = df.shape[1]
        table = preprocess(df, opts, src.name, loaded=loaded)
        del df

    constant = [
        name
        for name, col in zip(table.feature_names, table.columns, strict=True)
        if _is_constant(col[table.rows])
    ]
    info = table.info
    dropped = dict(info["dropped"])
    n_features = len(table.feature_names)
    if PRESETS[info["preset"]].drop_constant:
        dropped["constant_columns"] = constant
        n_features -= len(constant)
    counts = table.class_counts()
    classes = _counts_dict(counts, table.class_names)
    duplicates = _kept_duplicates(table)  # after preprocessing: what --dedupe acts on
    prepared = _split_and_scale(table, opts, release=True)
    give_back_freed_memory(arrow=True)
    return {
        "name": table.name,
        "sources": info["sources"],
        "preset": info["preset"],
        "label_col": info["label_col"],
        "n_rows_raw": info["n_rows_raw"],
        "n_columns_raw": n_columns_raw,
        "n_rows": int(len(table.y)),
        "n_features": n_features,
        "n_classes": len(table.class_names),
        "classes": classes,
        "raw_classes": info["raw_classes"],
        "imbalance_ratio": float(counts.max() / counts.min()),
        "n_missing": n_missing,
        "n_infinite": n_infinite,
        "rows_with_missing": info["rows_with_missing"],
        "n_duplicate_rows": n_dup,
        "duplicates": duplicates,
        "constant_columns": constant,
        "dropped": dropped,
        "merged": info["merged"],
        "onehot_columns": info["onehot_columns"],
        "warnings": info["warnings"],
        "dedupe": opts.dedupe,
        "split": prepared.info["split"],
        "leakage": prepared.leakage(),
        # --split-by: the timestamps read (and restored), the files of each split
        **{k: info[k] for k in ("timestamps", "files", "files_unused") if k in info},
    }


def count_duplicate_rows(df: pd.DataFrame) -> int:
    """Rows equal to an earlier row in every column, as `DataFrame.duplicated` counts them
    (missing values equal), one column at a time (`lossbench.data.leakage.duplicated`)."""

    def values(c: str) -> Callable[[], np.ndarray]:
        """A column as numbers that compare as its values do: floats, else codes of its
        distinct values (missing: -1), not millions of Python objects."""
        s = df[c]
        if isinstance(s.dtype, np.dtype) and s.dtype.kind == "f":
            return s.to_numpy
        return lambda: pd.factorize(s, use_na_sentinel=True)[0]

    return int(duplicated([values(c) for c in df.columns], len(df))[0].sum())


def _kept_duplicates(table: Table) -> dict[str, int]:
    """Duplicates among the kept rows, features as `Table.features` gives them (float32, missing
    as NaN) and the label: the rows with an identical twin and the extra copies."""

    def values(col: np.ndarray) -> Callable[[], np.ndarray]:
        def get() -> np.ndarray:
            v = col[table.rows].astype(np.float32, copy=False)
            with np.errstate(invalid="ignore", over="ignore"):
                return np.where(np.abs(v) <= FLOAT32_MAX, v, np.float32(np.nan))

        return get

    repeats, involved = duplicated(
        [*(values(c) for c in table.columns), lambda: table.y], len(table.y)
    )
    return {"rows_involved": int(involved.sum()), "extra_copies": int(repeats.sum())}


def _is_constant(values: np.ndarray) -> bool:
    """True when the non-missing values are all equal (or there are none)."""
    ok = values[finite_mask(values)] if values.dtype.kind == "f" else values
    return len(ok) == 0 or bool(ok.min() == ok.max())
