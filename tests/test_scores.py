"""lossbench.metrics.scores (the one softmax, NLL, macro-F1 and criterion map) against
scikit-learn, SciPy and NumPy written out here, and the edge cases lossbench documents for AUROC,
AP and the scikit-learn-backed MCC."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import softmax as scipy_softmax
from sklearn.metrics import f1_score, log_loss

from lossbench.choices import SELECT_CRITERIA
from lossbench.metrics import (
    CRITERION_COLUMN,
    average_precision_ovr,
    evaluate,
    f1_from_counts,
    log_posterior,
    macro_f1,
    nll,
    roc_auc_ovr,
    softmax,
)


def _logits(seed: int, n: int = 64, k: int = 5) -> np.ndarray:
    return (np.random.default_rng(seed).normal(scale=4.0, size=(n, k))).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_is_bitwise_the_in_place_float64_formula(seed):
    """The trainer's posterior was z -= max; exp; /= sum in float64: the same bits, so that
    switching it to this function leaves every stored prediction unchanged."""
    z = _logits(seed)
    ref = z.astype(np.float64)
    ref -= ref.max(axis=1, keepdims=True)
    np.exp(ref, out=ref)
    ref /= ref.sum(axis=1, keepdims=True)
    got = softmax(z)
    assert got.dtype == np.float64
    assert np.array_equal(got, ref)
    assert np.array_equal(got, scipy_softmax(z.astype(np.float64), axis=1))


def test_softmax_of_huge_logits_stays_finite():
    got = softmax(np.array([[1000.0, 0.0, -1000.0]]))
    assert np.isfinite(got).all() and got[0, 0] == 1.0 and got[0, 2] == 0.0


def test_nll_matches_log_loss_and_clips_at_1e_15():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, size=200)
    p = scipy_softmax(rng.normal(size=(200, 4)), axis=1)
    assert nll(y, p) == pytest.approx(log_loss(y, p, labels=[0, 1, 2, 3]), abs=1e-12)
    # a true class with probability 0 (or below 1e-15) adds -log(1e-15), not infinity
    p0 = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert nll(np.array([1, 0]), p0) == pytest.approx((-math.log(1e-15) - math.log(0.5)) / 2)
    assert nll(np.array([1]), np.array([[1.0, 1e-40]])) == pytest.approx(-math.log(1e-15))
    assert math.isnan(nll(np.zeros(0, dtype=int), np.zeros((0, 2))))


def test_log_posterior_floors_only_zeros_and_underflows():
    p = np.array([[0.0, 1e-200, 1.0]])
    got = log_posterior(p)
    assert got[0, 0] == pytest.approx(math.log(1e-300))
    assert got[0, 1] == pytest.approx(-200 * math.log(10))  # far below the NLL's 1e-15 floor
    assert got[0, 2] == 0.0


@pytest.mark.parametrize("k", [2, 5])
def test_macro_f1_matches_sklearn_with_absent_and_never_predicted_classes(k):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k - 1, size=120)  # class k-1 never true
    pred = np.where(rng.random(120) < 0.6, y, rng.integers(0, k, size=120))
    pred[pred == 0] = 1  # class 0 never predicted
    expected = f1_score(y, pred, labels=list(range(k)), average="macro", zero_division=0)
    assert macro_f1(y, pred, k) == pytest.approx(expected, abs=1e-15)


def test_f1_from_counts_is_elementwise_over_resamples():
    tp = np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]])
    n_true = np.array([[3.0, 0.0, 2.0], [1.0, 0.0, 3.0]])
    n_pred = np.array([[2.0, 0.0, 1.0], [2.0, 1.0, 4.0]])
    got = f1_from_counts(tp, n_true, n_pred)
    assert got.shape == (2, 3)
    np.testing.assert_array_equal(got, [[4 / 5, 0.0, 2 / 3], [0.0, 0.0, 6 / 7]])


def test_criterion_map_covers_every_selection_criterion():
    assert set(CRITERION_COLUMN) == set(SELECT_CRITERIA)
    assert CRITERION_COLUMN["balanced_accuracy"] == "val_macro_recall"


def test_auroc_ap_and_mcc_keep_their_documented_edge_cases():
    """AUROC is NaN for a class absent from y_true or that is all of it; AP is NaN only for an
    absent class (1 for a class that is all of y_true); MCC is 0 and flagged with one true
    class; no rows give NaN everywhere rather than an error."""
    y = np.zeros(6, dtype=int)
    p = scipy_softmax(np.random.default_rng(0).normal(size=(6, 3)), axis=1)
    auroc, ap = roc_auc_ovr(y, p), average_precision_ovr(y, p)
    assert np.isnan(auroc).all()
    assert ap[0] == 1.0 and np.isnan(ap[1:]).all()
    ev = evaluate(y, p, ["a", "b", "c"])
    assert ev.summary["mcc"] == 0.0 and "mcc" in ev.undefined
    assert "macro_auroc" in ev.undefined and "macro_auprc" not in ev.undefined
    empty = np.zeros((0, 3))
    assert np.isnan(roc_auc_ovr(np.zeros(0, dtype=int), empty)).all()
    assert np.isnan(average_precision_ovr(np.zeros(0, dtype=int), empty)).all()
