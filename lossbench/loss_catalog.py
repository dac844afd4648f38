"""The built-in losses' descriptions as data: what `lossbench losses` prints, without Keras.

`lossbench.losses.describe()` reads them from the loss classes, which import Keras and with it
TensorFlow (8-11 s). `loss_catalog.json`, next to this module, holds the same rows and the
learning-rate range of `compare --tune`; `lossbench losses` reads it in milliseconds. A test
(`tests/test_cli.py`) checks that the file equals `describe()`; after changing a loss's formula,
defaults, source or search space, regenerate it with

    python -m lossbench.loss_catalog
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).with_name("loss_catalog.json")
#: `compare --tune`'s learning-rate range (log-uniform) for a method whose loss has no parameter
#: to tune; defined here, where `lossbench losses` reads it, and used by `lossbench.tuning`
LR_SEARCH = (1e-4, 1e-2)

__all__ = ["CATALOG", "LR_SEARCH", "build_catalog", "read_catalog"]


def build_catalog() -> dict[str, Any]:
    """The catalogue from the loss classes (imports Keras): {"losses": describe(),
    "lr_search": [low, high]}."""
    from lossbench.losses import describe

    return {"losses": describe(), "lr_search": list(LR_SEARCH)}


def read_catalog() -> dict[str, Any]:
    """The catalogue as stored in `CATALOG` (no Keras import)."""
    return json.loads(CATALOG.read_text(encoding="utf-8"))


if __name__ == "__main__":  # pragma: no cover
    CATALOG.write_text(json.dumps(build_catalog(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {CATALOG}")
