"""Intrusion-detection evaluation settings of the data layer (issue 33).

- `binary_task`: `--task binary`, the negative class (default BENIGN) against every other class
  merged into one positive class, `attack`.
"""

from __future__ import annotations

import numpy as np

from lossbench.config import DataOptions
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
        f"--negative {wanted!r}: no such class for --task binary; classes are "
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
            f"--task binary: the data already has a class {POSITIVE!r}; rename it with --merge"
        )
    new_names = sort_class_names([negative, POSITIVE])
    lut = np.array(
        [new_names.index(negative if n == negative else POSITIVE) for n in names] + [-1],
        dtype=np.int64,
    )
    merged[POSITIVE] = [n for n in present if n != negative]
    return lut[y], new_names


__all__ = ["DEFAULT_NEGATIVE", "POSITIVE", "binary_negative", "binary_task"]
