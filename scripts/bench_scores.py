"""Time lossbench's own AUROC and average precision against scikit-learn's, where they are called.

Issue 31 takes every score from scikit-learn / imbalanced-learn unless the library is too slow
where lossbench calls it. MCC and G-mean are library calls (once per `evaluate`); AUROC and
average precision stay own code, vectorised over the classes, because scikit-learn's functions
take one class a call with input checks of several milliseconds each, and the trainer computes
average precision on the validation split after every epoch. This prints, per size, the best of
`--repeats` times of each, and the largest difference between the two (they agree to ~1e-14):

    python scripts/bench_scores.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from lossbench.metrics import average_precision_ovr, evaluate, roc_auc_ovr

SIZES = ((240, 11), (2_000, 10), (20_000, 10), (420_000, 15))  # the last: CICIDS2017's validation


def _best(repeats: int, fn: Callable, *args: object) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), out


def _library(score: Callable, y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    return np.array([score(y == k, proba[:, k]) for k in range(proba.shape[1])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    rng = np.random.default_rng(0)
    print("rows x classes | score | own ms | scikit-learn ms | max |difference|")
    for n, k in SIZES:
        y = rng.integers(0, k, n)
        z = rng.normal(size=(n, k)).astype(np.float32) + 2 * np.eye(k, dtype=np.float32)[y]
        proba = np.exp(z.astype(np.float64))
        proba /= proba.sum(axis=1, keepdims=True)
        for name, own, lib in (
            ("AUROC", roc_auc_ovr, roc_auc_score),
            ("AP", average_precision_ovr, average_precision_score),
        ):
            t_own, a = _best(repeats, own, y, proba)
            t_lib, b = _best(repeats, _library, lib, y, proba)
            diff = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            print(f"{n} x {k} | {name} | {t_own * 1e3:.1f} | {t_lib * 1e3:.1f} | {diff:.1e}")
        names = [str(c) for c in range(k)]
        t_eval, _ = _best(repeats, evaluate, y, proba, names)
        print(f"{n} x {k} | evaluate (all scores) | {t_eval * 1e3:.1f} | | ")


if __name__ == "__main__":
    main()
