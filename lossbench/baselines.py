"""The classical baselines of `compare --baselines` (SPEC 1; issue 33's "how hard the task is").

- `lr`, `rf`, `hgb`: multinomial logistic regression, random forest, histogram gradient boosting.
- `prior`: predicts the training class prior for every row (scikit-learn's
  `DummyClassifier(strategy="prior")`; its decision is the training majority class): the floor
  any model must clear.
- `stump`: a depth-1 decision tree on the one feature whose stump scores the best validation
  macro-F1 (ties: the first feature), the test of how far a single threshold on a single feature
  gets. The choice uses the validation split only, as every other selection does (SPEC 5.1).

`fit_baseline` returns the fitted classifier and what it learned (recorded in metrics.json's
`learned_params`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Every baseline name, in the order the help lists them.
BASELINES = ("lr", "rf", "hgb", "prior", "stump")


def _classifier(name: str, seed: int) -> Any:
    # lazy: scikit-learn only for baselines
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    return {
        "lr": lambda: LogisticRegression(max_iter=1000),
        "rf": lambda: RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=seed),
        "hgb": lambda: HistGradientBoostingClassifier(random_state=seed),
        "prior": lambda: DummyClassifier(strategy="prior"),
        "stump": lambda: DecisionTreeClassifier(max_depth=1, random_state=seed),
    }[name]()


class FeatureStump:
    """A fitted depth-1 tree that reads one column of the full feature matrix."""

    def __init__(self, tree: Any, column: int) -> None:
        self.tree = tree
        self.column = column
        self.classes_ = tree.classes_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The tree's leaf class shares for the chosen column of `X`."""
        return self.tree.predict_proba(np.asarray(X)[:, [self.column]])

    def get_params(self) -> dict[str, Any]:
        """The tree's parameters and the chosen column."""
        return {**self.tree.get_params(), "column": self.column}


def _fit_stump(
    seed: int,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    feature_names: Sequence[str],
) -> tuple[FeatureStump, dict[str, Any]]:
    """The stump of the feature with the best validation macro-F1."""
    from sklearn.metrics import f1_score

    (X_train, y_train), (X_val, y_val) = train, val
    labels = list(range(n_classes))
    best: tuple[float, int, Any] | None = None
    for j in range(X_train.shape[1]):
        tree = _classifier("stump", seed).fit(X_train[:, [j]], y_train)
        score = f1_score(
            y_val, tree.predict(X_val[:, [j]]), labels=labels, average="macro", zero_division=0
        )
        if best is None or score > best[0]:
            best = (float(score), j, tree)
    assert best is not None  # a prepared split has at least one feature
    score, j, tree = best
    threshold = float(tree.tree_.threshold[0]) if tree.tree_.node_count > 1 else None
    learned = {
        "feature": str(feature_names[j]) if j < len(feature_names) else str(j),
        "feature_index": j,
        "threshold": threshold,
        "val_macro_f1": score,
    }
    return FeatureStump(tree, j), learned


def fit_baseline(
    name: str,
    seed: int,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    feature_names: Sequence[str] = (),
) -> tuple[Any, dict[str, Any]]:
    """Fit baseline `name` on the training split (the stump also chooses its feature on the
    validation split); returns (classifier with `predict_proba` and `classes_`, learned params)."""
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    if name == "stump":
        val = (np.asarray(X_val), np.asarray(y_val))
        return _fit_stump(seed, (X_train, y_train), val, n_classes, feature_names)
    clf = _classifier(name, seed).fit(X_train, y_train)
    learned: dict[str, Any] = {}
    if name == "prior":
        learned = {"class_prior": [float(p) for p in clf.class_prior_]}
    return clf, learned


__all__ = ["BASELINES", "FeatureStump", "fit_baseline"]
