"""Train/test leakage through exact duplicates, and dropping duplicate rows (SPEC 5.1).

A validation or test row *duplicates* a training row when its prepared feature vector (the
float32 model input, after preprocessing and scaling) is bit-for-bit equal to that training row's
(-0.0 counted as 0.0). CICIDS2017 holds many such rows (Engelen et al. 2021): a model can score
them by memory. `duplicate_rows` marks exact duplicate rows (features and label) of a table before
the split, for `--dedupe`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["duplicate_rows", "duplicated", "leakage_report"]


_BLOCK = 8192  # rows hashed at a time (a block of uint64 words stays in cache)
_HASH_SEED = 20211  # fixed: the hash (and so the report) is the same on every call


def _as_words(X: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows' bytes as unsigned integers, and the word of -0.0 (0 for non-float data)."""
    X = np.ascontiguousarray(X)
    size = X.dtype.itemsize
    neg_zero = 1 << (8 * size - 1) if X.dtype.kind == "f" else 0
    return X.view(np.dtype(f"u{size}")).reshape(X.shape), neg_zero


def _normalised(words: np.ndarray, neg_zero: int) -> np.ndarray:
    """A uint64 copy of some rows' words with -0.0 turned into 0.0."""
    out = words.astype(np.uint64)
    if neg_zero:
        out[out == neg_zero] = 0
    return out


def _row_hashes(words: Sequence[np.ndarray], neg_zero: int) -> np.ndarray:
    """sum_j c_j w_j mod 2**64 over each row's words w (fixed random odd c), rows stacked."""
    coef = np.random.default_rng(_HASH_SEED).integers(
        1, 2**63, size=words[0].shape[1], dtype=np.uint64
    ) * np.uint64(2) + np.uint64(1)
    hashes = np.empty(sum(len(W) for W in words), dtype=np.uint64)
    start = 0
    for W in words:
        for i in range(0, len(W), _BLOCK):
            block = _normalised(W[i : i + _BLOCK], neg_zero)
            hashes[start + i : start + i + len(block)] = block @ coef
        start += len(W)
    return hashes


def _row_groups(mats: Sequence[np.ndarray]) -> np.ndarray:
    """One group id per row of the stacked matrices: equal ids exactly when the rows are equal.

    Rows are grouped by a 64-bit hash of their words (`_row_hashes`), then each row is compared
    with its group's first row; should two different rows share a hash, the rows' bytes are
    grouped directly instead.
    """
    parts = [_as_words(X) for X in mats]
    neg_zero = parts[0][1]
    words = [W for W, _ in parts]
    hashes = _row_hashes(words, neg_zero)
    _, first, group = np.unique(hashes, return_index=True, return_inverse=True)
    group = group.ravel().astype(np.int64)
    offsets = np.cumsum([0] + [len(W) for W in words])

    def row(i: np.ndarray) -> np.ndarray:  # rows by global position, normalised
        part = np.searchsorted(offsets, i, side="right") - 1
        out = np.empty((len(i), words[0].shape[1]), dtype=np.uint64)
        for p, W in enumerate(words):
            sel = part == p
            out[sel] = _normalised(W[i[sel] - offsets[p]], neg_zero)
        return out

    dup = np.flatnonzero(np.arange(len(hashes)) != first[group])
    for i in range(0, len(dup), _BLOCK):
        pos = dup[i : i + _BLOCK]
        if not np.array_equal(row(pos), row(first[group[pos]])):
            # a hash collision: group the bytes themselves
            stacked = np.concatenate([_normalised(W, neg_zero) for W in words])
            keys = stacked.view(np.dtype((np.void, 8 * stacked.shape[1])))
            return np.unique(keys.ravel(), return_inverse=True)[1].ravel().astype(np.int64)
    return group


def leakage_report(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Validation and test rows whose feature vector exactly duplicates a training row.

    For each of the splits 'val' and 'test', overall and per class (the row's own label):

    - rows: the rows of that split (and class);
    - duplicates: rows whose feature vector equals at least one training row's;
    - same_label: duplicates with at least one such training row of the same label;
    - conflicting_label: duplicates with at least one such training row of another label
      (a row can count in both).

    Args:
        X_train, X_val, X_test: feature matrices with the same columns, shape (n, F).
        y_train, y_val, y_test: class indices into `class_names`.
        class_names: the K class names.

    Returns:
        A JSON-able dict {"val": {...}, "test": {...}}, each with rows, duplicates, same_label,
        conflicting_label and per_class (class name -> the same four counts).
    """
    k = len(class_names)
    n_train = len(y_train)
    group = _row_groups([X_train, X_val, X_test])
    g_train = group[:n_train]
    # distinct (group, label) pairs among the training rows, and distinct labels per group
    pairs = np.unique(g_train * k + np.asarray(y_train, dtype=np.int64))
    labels_in_group = np.bincount(pairs // k, minlength=int(group.max(initial=-1)) + 1)

    out: dict[str, Any] = {}
    start = n_train
    for split, y in (("val", y_val), ("test", y_test)):
        y = np.asarray(y, dtype=np.int64)
        g = group[start : start + len(y)]
        start += len(y)
        n_labels = labels_in_group[g]
        dup = n_labels > 0
        same = np.isin(g * k + y, pairs)
        conflict = n_labels > same.astype(np.int64)
        counts = {
            "rows": np.bincount(y, minlength=k),
            "duplicates": np.bincount(y[dup], minlength=k),
            "same_label": np.bincount(y[same], minlength=k),
            "conflicting_label": np.bincount(y[conflict], minlength=k),
        }
        out[split] = {name: int(c.sum()) for name, c in counts.items()}
        out[split]["per_class"] = {
            class_names[c]: {name: int(v[c]) for name, v in counts.items()} for c in range(k)
        }
    return out


def duplicate_rows(columns: Sequence[np.ndarray], rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask over `rows`: True for a row whose features and label repeat an earlier row's exactly.

    Args:
        columns: feature columns (1-D arrays over all loaded rows); missing values (NaN) compare
            equal to each other.
        rows: positions of the rows considered, in order.
        y: their labels.
    """
    values = [lambda col=col: col[rows] for col in columns]
    return duplicated([*values, lambda: np.asarray(y)], len(rows))[0]


def duplicated(values: Sequence[Callable[[], np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows equal to another row in every column, as `pandas.DataFrame.duplicated` finds them
    (missing values equal, -0.0 equal to 0.0), one column at a time: no full-width temporary
    (pandas keeps an int64 code per cell of the table, twice the float32 table).

    Args:
        values: one function per column giving its n values (numbers; text as codes of its
            distinct values), called twice: once to hash, once to confirm.
        n: rows.

    Returns:
        (repeats, involved): masks of the rows equal to an earlier row (`keep="first"`) and of
        the rows with an identical twin (`keep=False`). Rows are grouped by a 64-bit hash of
        their values and a row counts when every column equals that of its group's first row
        (only a hash collision could make it count less).
    """
    repeats, involved = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if n == 0:
        return repeats, involved
    row_hash = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for value in values:
            row_hash *= np.uint64(0x100000001B3)
            row_hash ^= pd.util.hash_array(_comparable(value()))
    codes, _ = pd.factorize(row_hash)
    first = np.full(codes.max() + 1, -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1)  # each group's first row
    leader = first[codes]
    candidates = np.flatnonzero(leader != np.arange(n))
    same = np.ones(len(candidates), dtype=bool)
    for value in values if len(candidates) else ():
        v = _comparable(value())
        a, b = v[candidates], v[leader[candidates]]
        same &= (a == b) | (np.isnan(a) & np.isnan(b) if v.dtype.kind == "f" else False)
    repeats[candidates[same]] = True
    involved[candidates[same]] = True
    involved[leader[candidates[same]]] = True
    return repeats, involved


def _comparable(v: np.ndarray) -> np.ndarray:
    """Values whose bytes are equal when the values are: -0.0 as 0.0, every NaN the same."""
    v = np.asarray(v)
    if v.dtype.kind != "f":
        return v
    v = v + v.dtype.type(0.0)
    v[np.isnan(v)] = np.nan
    return v
