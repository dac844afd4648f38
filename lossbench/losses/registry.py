"""Loss names -> classes, and the `get` / `names` / `describe` entry points."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lossbench.errors import InputError
from lossbench.losses.amrl import AMRLLoss
from lossbench.losses.base import LossbenchLoss, class_stats
from lossbench.losses.ce import CrossEntropy, WeightedCrossEntropy
from lossbench.losses.dwb import DWBLoss
from lossbench.losses.focal import ClassBalancedLoss, FocalLoss
from lossbench.losses.margin import AutoBalanceLoss, LDAMLoss, LogitAdjustedLoss, VSLoss
from lossbench.losses.pgfl import PGFLoss

LOSSES: dict[str, type[LossbenchLoss]] = {
    cls.NAME: cls
    for cls in (
        CrossEntropy,
        WeightedCrossEntropy,
        FocalLoss,
        ClassBalancedLoss,
        DWBLoss,
        AMRLLoss,
        PGFLoss,
        LogitAdjustedLoss,
        LDAMLoss,
        VSLoss,
        AutoBalanceLoss,
    )
}


def names() -> list[str]:
    """The loss names, in the SPEC's order."""
    return list(LOSSES)


def get(name: str, class_counts: Sequence[int] | np.ndarray, **params: Any) -> LossbenchLoss:
    """Build the loss `name` from the training class counts and its parameters.

    Args:
        name: one of `names()`.
        class_counts: training samples per class (class-index order).
        **params: the loss's parameters (numbers, lists, strings or booleans as parsed from
            `--param key=value`); see `describe()` for what each loss accepts.

    Raises:
        ValueError (`lossbench.errors.InputError`): an unknown name, an unknown parameter or a
            value out of range; the message lists what is allowed.
    """
    cls = LOSSES.get(name)
    if cls is None:
        raise InputError(f"unknown loss {name!r}; expected one of: {', '.join(LOSSES)}")
    num_classes = class_stats(class_counts).num_classes
    return cls(class_counts, **cls.validate_params(params, num_classes))


def describe() -> list[dict[str, Any]]:
    """One dict per loss: name, formula, defaults, source (with what differs from the authors'
    code and why), posterior (what calibration uses; decisions are argmax z), head, params
    (allowed values) and search (the ranges `compare --tune` searches; empty: the learning rate is
    tuned instead)."""
    return [
        {
            "name": name,
            "formula": cls.FORMULA,
            "defaults": {k: p.default for k, p in cls.PARAMS.items()},
            "source": cls.SOURCE,
            "posterior": cls.POSTERIOR,
            "head": cls.HEAD,
            "params": {k: p.allowed() for k, p in cls.PARAMS.items()},
            "search": {
                k: p.search_space() for k, p in cls.PARAMS.items() if p.search_space() is not None
            },
        }
        for name, cls in LOSSES.items()
    ]
