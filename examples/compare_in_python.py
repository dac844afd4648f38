"""lossbench from Python, as in a notebook: your own loss beside the built-ins on a DataFrame.

    python examples/compare_in_python.py            # a short compare (a minute or two on a CPU)
    python examples/compare_in_python.py --tiny     # the few-second version the tests run

Every call goes through the command line's own path and validation (`lossbench.InputError`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from keras import ops

import lossbench


def double_ce(y_true, logits):
    """Twice the cross-entropy: `fn(y_true_onehot, logits)` -> per-sample values."""
    return -2.0 * ops.sum(y_true * ops.log_softmax(logits, axis=-1), axis=-1)


def make_data(rows: int, seed: int = 0) -> pd.DataFrame:
    """An imbalanced three-class table: 80% normal, 15% scan, 5% attack."""
    rng = np.random.default_rng(seed)
    label = rng.choice(["normal", "scan", "attack"], size=rows, p=[0.80, 0.15, 0.05])
    shift = {"normal": 0.0, "scan": 1.0, "attack": 2.0}
    X = rng.normal(size=(rows, 8)) + np.array([shift[v] for v in label])[:, None]
    frame = pd.DataFrame(X, columns=[f"feature_{i}" for i in range(8)])
    frame["label"] = label
    return frame


def main(tiny: bool = False, out: str = "results/python_example") -> lossbench.Experiment:
    """Compare ce, focal and `double_ce` on the table; print the average table."""
    here = Path(__file__).resolve().parent
    exp = lossbench.compare(
        data=make_data(400 if tiny else 5000),
        label_col="label",
        losses=["ce", "focal", double_ce, f"{here / 'my_losses.py'}:Poly1"],
        seeds=[0] if tiny else [0, 1, 2],
        epochs=1 if tiny else 20,
        model="mlp",
        out=out,
        quiet=tiny,
    )
    print(exp.tables["average"].to_string(index=False))
    print("report:", exp.report_path)
    best = max(exp.runs, key=lambda run: run.metrics.get("summary", {}).get("macro_f1", -1))
    print("best run:", best.name, "history rows:", len(best.history))
    return exp


if __name__ == "__main__":
    tiny = "--tiny" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--tiny"]
    main(tiny=tiny, **({"out": args[0]} if args else {}))
