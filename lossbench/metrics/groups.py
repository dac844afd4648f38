"""Head, medium and tail classes (issue 33): macro-F1 and macro recall per frequency group.

A class is *head* when its share of the training split is at least `head` (default 10%), *tail*
when it is below `tail` (default 1%), *medium* otherwise. A group's macro values are the plain
means of its classes' test F1 and recall, over the classes of the group that the test split holds
(a class with no test row has no defined recall); a group with no such class reads None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HEAD_SHARE = 0.10
TAIL_SHARE = 0.01
GROUPS = ("head", "medium", "tail")


def class_group_names(
    train_counts: Sequence[int], head: float = HEAD_SHARE, tail: float = TAIL_SHARE
) -> list[str]:
    """The group ("head", "medium" or "tail") of each class from its training count."""
    counts = np.asarray(train_counts, dtype=np.float64)
    share = counts / max(counts.sum(), 1.0)
    return ["head" if s >= head else "tail" if s < tail else "medium" for s in share]


def class_groups(
    train_counts: Sequence[int],
    f1: Sequence[float],
    recall: Sequence[float],
    support: Sequence[int],
    class_names: Sequence[str],
    head: float = HEAD_SHARE,
    tail: float = TAIL_SHARE,
) -> dict[str, Any]:
    """metrics.json's `class_groups`: the thresholds, and per group its classes, the classes
    scored (test support > 0), macro_f1 and macro_recall."""
    names = class_group_names(train_counts, head, tail)
    f1_arr, rec_arr = np.asarray(f1, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    out: dict[str, Any] = {
        "thresholds": {"head": head, "tail": tail},
        "rule": f"training share >= {head:g}: head; < {tail:g}: tail; else medium",
    }
    for group in GROUPS:
        members = [k for k, g in enumerate(names) if g == group]
        scored = [k for k in members if support[k] > 0]
        out[group] = {
            "classes": [str(class_names[k]) for k in members],
            "scored": [str(class_names[k]) for k in scored],
            "macro_f1": float(f1_arr[scored].mean()) if scored else None,
            "macro_recall": float(rec_arr[scored].mean()) if scored else None,
        }
    return out


__all__ = ["GROUPS", "HEAD_SHARE", "TAIL_SHARE", "class_group_names", "class_groups"]
