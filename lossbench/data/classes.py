"""Class indices from a label column, and the class rules of the preset and the options
(SPEC 2.3-2.4): merges, drops, minimum class sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lossbench.config import DataOptions
from lossbench.data.load import (
    normalise_label,
)
from lossbench.data.presets import Preset, label_mapping
from lossbench.data.split import split_min_count
from lossbench.data.table import (
    sort_class_names,
)
from lossbench.errors import InputError

#: A defaulted label column (the last column) with more distinct values is not a label.
MAX_DEFAULT_LABEL_CLASSES = 1000


def parse_labels(
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
                f"{label!r} holds continuous values; name the label column with label_col"
            )
        if len(values) > MAX_DEFAULT_LABEL_CLASSES:
            raise InputError(
                f"{source}: no label column: there is no 'Label' column and the last column "
                f"{label!r} has {len(values)} distinct values; name the label column with "
                "label_col"
            )
    text = [normalise_label(v) for v in values]
    names = sort_class_names(sorted({t for t in text if t}))
    index = {n: i for i, n in enumerate(names)}
    lut = np.array([index.get(t, -1) for t in text] + [-1], dtype=np.int64)
    return lut[codes], names


def apply_label_rules(
    y: np.ndarray, names: list[str], opts: DataOptions, preset: Preset, warn: list[str]
) -> tuple[np.ndarray, list[str], dict[str, int], dict[str, list[str]]]:
    """Merge, then drop, classes (step 4); returns new y, names, dropped counts, merges."""
    merges = list(preset.merges) if opts.merge is None else list(opts.merge)
    drops = list(preset.drop_classes) if opts.drop_classes is None else list(opts.drop_classes)
    new_of_old, merged, unused = label_mapping(names, merges, drops)
    if opts.drop_classes is not None:
        for pat in unused:
            warn.append(f"drop_classes {pat!r} matches no class")
    counts = np.bincount(y[y >= 0], minlength=len(names))
    dropped: dict[str, int] = {}
    for old, new in zip(names, new_of_old, strict=True):
        if new is None and counts[names.index(old)]:
            dropped[old] = int(counts[names.index(old)])
    if dropped:
        listed = ", ".join(f"{name!r} ({n})" for name, n in dropped.items())
        warn.append(
            f"{sum(dropped.values())} rows of the dropped classes {listed} were dropped "
            "(drop_classes, or the preset's default)"
        )
    new_names = sort_class_names(sorted({n for n in new_of_old if n is not None}))
    index = {n: i for i, n in enumerate(new_names)}
    lut = np.array([index[n] if n is not None else -1 for n in new_of_old] + [-1], np.int64)
    return lut[y], new_names, dropped, merged


def check_class_sizes(
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
            f"drop_classes {names[i]!r} or drop all such classes with min_class_count {need}"
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


def present_classes(y: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Recode to the classes that have rows."""
    counts = np.bincount(y[y >= 0], minlength=len(names))
    keep = np.flatnonzero(counts > 0)
    lut = np.full(len(names) + 1, -1, dtype=np.int64)
    lut[keep] = np.arange(len(keep))
    return lut[y], [names[i] for i in keep]
