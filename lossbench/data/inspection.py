"""`lossbench inspect`: a dataset described (classes, imbalance, data quality, duplicates,
the split and its leakage) without writing anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lossbench.config import DataOptions
from lossbench.data.leakage import duplicated
from lossbench.data.load import read_table
from lossbench.data.memory import give_back_freed_memory
from lossbench.data.pipeline import builtin_table, preprocess, resolve_source
from lossbench.data.prepared import split_and_scale
from lossbench.data.presets import PRESETS
from lossbench.data.table import (
    FLOAT32_MAX,
    Table,
    counts_dict,
    finite_mask,
)


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
    src = resolve_source(opts)
    if src.path is None:
        table = builtin_table(src.name, opts)
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
        give_back_freed_memory()  # the row hashes' temporaries (see `_kept_duplicates` below)
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
    classes = counts_dict(counts, table.class_names)
    duplicates = _kept_duplicates(table)  # after preprocessing: what --dedupe acts on
    # glibc keeps the freed temporaries of the row hashes (a few hundred MB at 2.8 M rows) on
    # its heap: returned before the split matrices are written, they are not part of the peak
    give_back_freed_memory()
    prepared = split_and_scale(table, opts, release=True)
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
