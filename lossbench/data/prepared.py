"""The prepared dataset (`PreparedData`) and how a preprocessed table becomes one (SPEC 2.5-2.6):
subsample, split, median fill, constant features and the scaler fitted on the training rows,
the split matrices; `--test-data`'s test split matched to the training features."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossbench.config import DataOptions
from lossbench.data.ids import assign_splits, describe_splits, parse_split_by
from lossbench.data.leakage import leakage_report
from lossbench.data.memory import give_back_freed_memory, release_mapped
from lossbench.data.presets import PRESETS
from lossbench.data.split import Scaler, split_min_count, stratified_subsample
from lossbench.data.table import (
    Table,
    counts_dict,
    finite_mask,
    fit_stats,
    gather_rows,
    gather_splits,
    sort_class_names,
)
from lossbench.errors import InputError

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
            # the report read every row: memory-mapped splits leave the process's memory until
            # they are used, and the report's temporaries go back to the system (issue 35)
            for X in (self.X_train, self.X_val, self.X_test):
                release_mapped(X)
            give_back_freed_memory()
        return self.info["leakage"]

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Rows per class in `split` ('train', 'val' or 'test'): int64 of length K."""
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, not {split!r}")
        y = getattr(self, f"y_{split}")
        return np.bincount(np.asarray(y), minlength=self.n_classes).astype(np.int64)


def _balance_shift(before: np.ndarray, after: np.ndarray, names: list[str]) -> str:
    """'class X: 0.1% -> 0.5%, ...' for the classes whose share a subsample moved by more than
    10% of its value; empty when the balance is kept."""
    k = len(names)
    p = np.bincount(before, minlength=k) / max(len(before), 1)
    q = np.bincount(after, minlength=k) / max(len(after), 1)
    moved = [i for i in range(k) if p[i] > 0 and abs(q[i] / p[i] - 1) > 0.1]
    return ", ".join(f"class {names[i]!r}: {100 * p[i]:.3g}% -> {100 * q[i]:.3g}%" for i in moved)


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
            f"{where}: test_data lacks {len(missing)} feature(s) of the training data: "
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
            "test_data has classes never seen in training, scored as errors of the model: "
            + ", ".join(f"{n} ({c} rows)" for n, c in unseen_counts.items())
        )
    info = {
        "path": test.info.get("sources"),
        "preset": test.info.get("preset"),
        "rows": int(len(y)),
        "classes": counts_dict(np.bincount(y, minlength=len(index)), class_names + unseen),
        "unseen_classes": unseen_counts,
        "merged": test.info.get("merged"),
        "dropped": test.info.get("dropped"),
        "warnings": test.info.get("warnings"),
    }
    return X, y, test.ids, unseen, info


def split_and_scale(
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
                f"sample_frac {opts.sample_frac} changes the class balance (small classes keep "
                f"the rows a stratified split needs): {shift}"
            )
        rows, y, ids = rows[sub], y[sub], ids[sub]
    tr, va, te, split_parts = _assign(table, opts, rows, y, ids, test_table, info["warnings"])
    # The scaler is fitted on the training rows: every statistic comes from them alone.
    check = opts.nan_policy != "drop"  # under drop the kept rows have no missing values
    columns, feature_names, stats, fill = _fit(table, opts, rows[tr], check, info)
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
            "classes": counts_dict(
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


def _assign(
    table: Table,
    opts: DataOptions,
    rows: np.ndarray,
    y: np.ndarray,
    ids: np.ndarray,
    test_table: Table | None,
    warn: list[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Step 6: the positions of the training, validation and test rows (`--split-by`), and
    their description for info["split"]."""
    spec = parse_split_by(opts.split_by)
    if spec.kind not in ("random", "order") and not table.split_keys:
        raise InputError(f"{table.name}: split_by {spec.text!r} needs a file with its columns")
    fractions = opts.split
    if test_table is not None:  # train/val only: the validation share split in two, then joined
        f_train, f_val = opts.split[0], opts.split[1]
        f_train, f_val = f_train / (f_train + f_val), f_val / (f_train + f_val)
        fractions = (f_train, f_val / 2, f_val / 2)
    tr, va, te = assign_splits(spec, table.split_keys, rows, ids, y, fractions, opts.seed)
    if test_table is not None:
        va, te = np.union1d(va, te), te[:0]
    split_parts = describe_splits(
        spec, table.split_keys, rows, y, (tr, va, te), table.class_names, warn,
        test_elsewhere=test_table is not None,
    )  # fmt: skip
    return tr, va, te, split_parts


def _fit(
    table: Table, opts: DataOptions, train_rows: np.ndarray, check: bool, info: dict[str, Any]
) -> tuple[list[np.ndarray], list[str], dict[str, np.ndarray], np.ndarray]:
    """Steps 5 and 7 on the training rows: median fill values, the features constant there
    dropped (CICIDS2017 preset), the scaler's statistics. Returns the kept columns, their names,
    the statistics and fill values."""
    columns, feature_names = list(table.columns), list(table.feature_names)
    median: list[int] = []
    if opts.nan_policy == "median":
        with_missing = set(info.get("columns_with_missing", []))
        median = [j for j, name in enumerate(feature_names) if name in with_missing]
    stats, fill = fit_stats(columns, train_rows, opts.scaler, check=check, median=median)
    if median:
        info["median_fill"] = {feature_names[j]: float(fill[j]) for j in median}
        empty = [  # a fill of 0 is either a median of 0 or no training value at all
            feature_names[j]
            for j in median
            if fill[j] == 0 and not finite_mask(columns[j][train_rows]).any()
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
    return columns, feature_names, stats, fill
