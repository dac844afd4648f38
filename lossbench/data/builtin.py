"""Built-in datasets that need no download (SPEC 2.4): `digits-lt` and `synthetic-cicids`."""

from __future__ import annotations

import numpy as np

from lossbench.data.presets import CICIDS2017_FEATURES
from lossbench.data.table import Table

BUILTIN_DATASETS: tuple[str, ...] = ("digits-lt", "synthetic-cicids")
#: Bumped whenever a generator changes, so that cached arrays of the old version are not reused.
BUILTIN_VERSION = 1

DIGITS_IMBALANCE = 10.0
DIGITS_N_MAX = 180

#: The paper's Table I (10% sample of CICIDS2017, 11 classes): approximate percentages.
#: They are normalised to sum to 1 and scaled to `SYNTHETIC_ROWS` by largest remainders.
SYNTHETIC_CLASSES: tuple[tuple[str, float], ...] = (
    ("BENIGN", 75.6),
    ("DoS Hulk", 8.0),
    ("PortScan", 5.5),
    ("DDoS", 4.4),
    ("DoS GoldenEye", 0.35),
    ("FTP-Patator", 0.27),
    ("SSH-Patator", 0.20),
    ("DoS slowloris", 0.20),
    ("DoS Slowhttptest", 0.19),
    ("Bot", 0.07),
    ("Web Attack", 0.07),
)
SYNTHETIC_ROWS = 91_142
#: Features the paper's preprocessing leaves out as constant; the other 66 are generated.
_SYNTHETIC_LEFT_OUT = (
    "Fwd Header Length.1",
    "Bwd PSH Flags",
    "Fwd URG Flags",
    "Bwd URG Flags",
    "CWE Flag Count",
    "ECE Flag Count",
    "Fwd Avg Bytes/Bulk",
    "Fwd Avg Packets/Bulk",
    "Fwd Avg Bulk Rate",
    "Bwd Avg Bytes/Bulk",
    "Bwd Avg Packets/Bulk",
    "Bwd Avg Bulk Rate",
)
SYNTHETIC_FEATURES: tuple[str, ...] = tuple(
    f for f in CICIDS2017_FEATURES if f not in _SYNTHETIC_LEFT_OUT
)
_PORTS = np.array([80, 443, 53, 21, 22, 8080, 139, 445, 123, 3389, 135, 389], dtype=np.float32)


def load_builtin(name: str) -> Table:
    """The built-in dataset `name` (one of `BUILTIN_DATASETS`) as a Table."""
    if name == "digits-lt":
        return digits_lt()
    if name == "synthetic-cicids":
        return synthetic_cicids()
    raise KeyError(name)


def long_tail_counts(n_max: int, ratio: float, n_classes: int) -> list[int]:
    """`round(n_max * ratio^(-k/(K-1)))` for k = 0..K-1 (k = 0 the largest)."""
    return [int(np.floor(n_max * ratio ** (-k / (n_classes - 1)) + 0.5)) for k in range(n_classes)]


def digits_lt() -> Table:
    """scikit-learn's digits made long-tailed with imbalance ratio 10 (180 down to 18 rows).

    Class k (k = 0 the largest) keeps its first `round(180 * 10^(-k/9))` samples in the bundled
    order; k ranks the digits by how many samples they have (most first, ties by digit), so the
    largest share goes to a digit that has it (digit 0 has only 178). Row ids index the full
    1,797-sample dataset.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    target = digits.target.astype(np.int64)
    available = np.bincount(target, minlength=10)
    rank = np.argsort(-available, kind="stable")
    keep = long_tail_counts(DIGITS_N_MAX, DIGITS_IMBALANCE, 10)
    rows = np.sort(
        np.concatenate([np.flatnonzero(target == digit)[: keep[k]] for k, digit in enumerate(rank)])
    )
    return Table.from_matrix(
        "digits-lt",
        digits.data[rows].astype(np.float32),
        target[rows],
        class_names=[str(d) for d in range(10)],
        feature_names=list(digits.feature_names),
        info={"builtin": "digits-lt", "imbalance_ratio": DIGITS_IMBALANCE},
        ids=rows,
    )


def synthetic_class_counts(n_rows: int = SYNTHETIC_ROWS) -> dict[str, int]:
    """Rows per class of `synthetic-cicids`: Table I proportions by largest remainders."""
    p = np.array([pct for _, pct in SYNTHETIC_CLASSES])
    exact = n_rows * p / p.sum()
    counts = np.floor(exact).astype(np.int64)
    short = n_rows - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return {name: int(c) for (name, _), c in zip(SYNTHETIC_CLASSES, counts, strict=True)}


def synthetic_cicids(n_rows: int = SYNTHETIC_ROWS, seed: int = 0) -> Table:
    """A generated dataset with the CICIDS2017 preset's shape: 66 features, 11 classes.

    Each class is a mixture of Gaussian clusters in a 10-dimensional latent space; some attack
    classes sit near each other (slowloris/Slowhttptest, FTP/SSH-Patator) or near benign
    traffic (Bot, Web Attack), so the classes overlap. Features are random projections of the
    latent point plus noise, shaped like flow statistics: non-negative and right-skewed
    (log-normal), flag counts in {0, 1}, and a destination port drawn from a few ports per
    cluster. Deterministic for a given `seed`.
    """
    rng = np.random.default_rng([seed, 2017])
    d = 10
    counts = synthetic_class_counts(n_rows)
    names = list(counts)
    benign = rng.normal(0.0, 2.5, size=(6, d))
    pair_base = {
        "DoS slowloris": "slow",
        "DoS Slowhttptest": "slow",
        "FTP-Patator": "patator",
        "SSH-Patator": "patator",
    }
    bases = {"slow": rng.normal(0.0, 2.5, size=d), "patator": rng.normal(0.0, 2.5, size=d)}

    centers, spreads, owner = [], [], []
    for k, name in enumerate(names):
        if name == "BENIGN":
            c = benign
        elif name in ("Bot", "Web Attack"):
            c = benign[rng.integers(0, 6, size=2)] + rng.normal(0.0, 1.6, size=(2, d))
        elif name in pair_base:
            c = bases[pair_base[name]] + rng.normal(0.0, 1.3, size=(2, d))
        else:
            c = rng.normal(0.0, 2.5, size=(3, d))
        centers.append(c)
        spreads.append(rng.uniform(0.5, 1.2, size=c.shape))
        owner.extend([k] * len(c))
    center = np.concatenate(centers)
    spread = np.concatenate(spreads)
    owner_arr = np.array(owner)

    y = np.repeat(np.arange(len(names)), [counts[n] for n in names])
    y = y[rng.permutation(len(y))]
    cluster = np.empty(len(y), dtype=np.int64)
    for k in range(len(names)):
        rows = np.flatnonzero(y == k)
        mine = np.flatnonzero(owner_arr == k)
        weights = rng.dirichlet(np.full(len(mine), 4.0))
        cluster[rows] = rng.choice(mine, size=len(rows), p=weights)
    z = center[cluster] + spread[cluster] * rng.standard_normal((len(y), d))

    n_feat = len(SYNTHETIC_FEATURES)
    W = rng.normal(0.0, 1.0 / np.sqrt(d), size=(d, n_feat))
    h = z @ W + rng.normal(0.0, 0.4, size=(len(y), n_feat))
    X = np.empty((len(y), n_feat), dtype=np.float32)
    magnitude = 10.0 ** rng.uniform(0.0, 5.0, size=n_feat)
    for j, fname in enumerate(SYNTHETIC_FEATURES):
        if "Flag" in fname:
            X[:, j] = h[:, j] > rng.normal(0.5, 0.5)
        elif fname == "Destination Port":
            port_of_cluster = rng.integers(0, len(_PORTS), size=len(center))
            port = _PORTS[port_of_cluster[cluster]]
            noisy = rng.random(len(y)) < 0.3
            port[noisy] = rng.integers(1, 65536, size=int(noisy.sum()))
            X[:, j] = port
        else:
            X[:, j] = magnitude[j] * np.exp(0.6 * h[:, j])
    class_names = sorted(names)
    to_sorted = np.array([class_names.index(n) for n in names], dtype=np.int64)
    return Table.from_matrix(
        "synthetic-cicids",
        X,
        to_sorted[y],
        class_names=class_names,
        feature_names=list(SYNTHETIC_FEATURES),
        info={"builtin": "synthetic-cicids", "generator_seed": seed},
    )
