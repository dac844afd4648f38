"""lossbench.metrics.protocol (SPEC 5.1) against independent scikit-learn / SciPy / NumPy code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from sklearn.metrics import f1_score, log_loss, recall_score, roc_auc_score

from lossbench.metrics import (
    apply_offsets,
    calibration_scores,
    fit_offsets,
    fit_temperature,
    operating_points,
    temperature_scale,
)

TOL = 1e-9


def _macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    return f1_score(y, pred, average="macro", labels=list(range(k)), zero_division=0)


def _problem(seed: int, k: int, n: int, ratio: float = 50.0, shift: float = 1.0):
    """Long-tailed labels; logits informative but biased towards the frequent classes."""
    rng = np.random.default_rng(seed)
    prior = np.geomspace(1.0, 1.0 / ratio, k)
    prior /= prior.sum()
    y = rng.choice(k, size=n, p=prior)
    y[:k] = np.arange(k)
    z = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y] + shift * np.log(prior)
    return y, z


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ tuned offsets


def test_apply_offsets_is_argmax_of_shifted_logits():
    z = np.array([[0.0, 1.0, 0.5], [2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    b = np.array([0.0, -2.0, 0.0])
    assert apply_offsets(z, b).tolist() == [2, 0, 0]  # full tie: the lowest index, as np.argmax


def test_binary_offsets_are_an_exhaustive_threshold_search():
    y, z = _problem(3, 2, 400, ratio=30.0)
    b = fit_offsets(y, z)
    assert b.shape == (2,) and b[0] == 0.0
    margin = z[:, 1] - z[:, 0]
    u = np.unique(margin)
    thresholds = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2.0, [u[-1] + 1.0]])
    best = max(_macro_f1(y, (margin > t).astype(int), 2) for t in thresholds)
    got = _macro_f1(y, apply_offsets(z, b), 2)
    assert got == pytest.approx(best, abs=1e-12)
    assert np.array_equal(apply_offsets(z, b), (margin > -b[1]).astype(int))
    assert got > _macro_f1(y, z.argmax(axis=1), 2)  # the biased argmax is beaten here


@pytest.mark.parametrize(
    ("seed", "k", "n"),
    [(0, 2, 300), (1, 2, 1000), (2, 3, 300), (3, 5, 500), (4, 11, 2000), (5, 11, 600)],
)
def test_offsets_never_lower_validation_macro_f1(seed, k, n):
    y, z = _problem(seed, k, n)
    b = fit_offsets(y, z)
    assert b.shape == (k,) and b[0] == 0.0 and np.isfinite(b).all()
    tuned = _macro_f1(y, apply_offsets(z, b), k)
    plain = _macro_f1(y, z.argmax(axis=1), k)
    assert tuned >= plain
    assert tuned > plain + 0.01  # the prior shift in the logits is there to be undone
    assert np.array_equal(fit_offsets(y, z), b)  # deterministic


def test_offsets_on_unbiased_logits_change_little_and_never_hurt():
    y, z = _problem(7, 4, 500, ratio=1.0, shift=0.0)
    b = fit_offsets(y, z)
    assert _macro_f1(y, apply_offsets(z, b), 4) >= _macro_f1(y, z.argmax(axis=1), 4)


def test_offsets_with_a_class_absent_from_validation():
    y, z = _problem(8, 4, 400)
    y = np.where(y == 3, 0, y)
    z[:20, 3] += 5.0  # the absent class wins argmax on some rows
    b = fit_offsets(y, z)
    pred = apply_offsets(z, b)
    assert _macro_f1(y, pred, 4) > _macro_f1(y, z.argmax(axis=1), 4)


def test_offsets_with_tied_and_all_equal_logits():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 3, size=300)
    z = rng.integers(0, 3, size=(300, 3)).astype(float)  # ties within rows and between rows
    b = fit_offsets(y, z)
    assert _macro_f1(y, apply_offsets(z, b), 3) >= _macro_f1(y, z.argmax(axis=1), 3)

    flat = np.zeros((50, 3))  # every row a full tie: argmax says class 0 everywhere
    y_flat = np.repeat([0, 1, 2], [30, 15, 5])
    b = fit_offsets(y_flat, flat)
    assert np.isfinite(b).all()
    assert _macro_f1(y_flat, apply_offsets(flat, b), 3) >= _macro_f1(y_flat, flat.argmax(1), 3)


# ------------------------------------------------------------------ operating points


def _check_points(out: dict, y_val, p_val, y_test, p_test, targets, max_fpr) -> None:
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert out["far_targets"] == list(targets) and out["max_fpr"] == max_fpr
    for entry in out["per_class"]:
        k = entry["class_index"]
        pos_t = y_test == k
        if pos_t.any() and (~pos_t).any():
            ref = roc_auc_score(pos_t, p_test[:, k], max_fpr=max_fpr)
            assert entry["pauroc"] == pytest.approx(ref, abs=TOL)
        else:
            assert entry["pauroc"] is None
        for target, pt in zip(targets, entry["points"], strict=True):
            assert pt["far_target"] == target
            t = pt["threshold"]
            neg_v = y_val != k
            flag_v, flag_t = p_val[:, k] >= t, p_test[:, k] >= t
            val_far = flag_v[neg_v].mean()
            assert val_far <= target
            assert pt["val_far"] == pytest.approx(val_far, abs=TOL)
            # the lowest such threshold: any lower float flags one false alarm too many
            lower = p_val[neg_v, k] >= np.nextafter(t, -np.inf)
            assert lower.mean() > target
            if (y_val == k).any():
                assert pt["val_dr"] == pytest.approx(flag_v[y_val == k].mean(), abs=TOL)
            if pos_t.any():
                assert pt["test_dr"] == pytest.approx(recall_score(pos_t, flag_t), abs=TOL)
            else:
                assert pt["test_dr"] is None
            far = recall_score(~pos_t, flag_t)  # flagged among the test negatives
            assert pt["test_far"] == pytest.approx(far, abs=TOL)


@pytest.mark.parametrize(("seed", "k"), [(0, 2), (1, 4), (2, 11)])
def test_operating_points_reproduce_with_sklearn(seed, k):
    y, z = _problem(seed, k, 3000, ratio=20.0)
    p = _softmax(z)
    y_val, p_val, y_test, p_test = y[:1500], p[:1500], y[1500:], p[1500:]
    targets = (0.01, 0.001)
    out = operating_points(y_val, p_val, y_test, p_test, targets, max_fpr=0.01)
    assert [e["class_index"] for e in out["per_class"]] == list(range(k))
    _check_points(out, y_val, p_val, y_test, p_test, targets, 0.01)


def test_operating_points_with_ties_absent_classes_and_equal_scores():
    rng = np.random.default_rng(4)
    y_val = rng.integers(0, 3, size=400)
    y_test = rng.integers(0, 2, size=400)  # class 2 absent from test
    p_val = np.round(_softmax(rng.normal(size=(400, 3))), 1)  # few distinct values: ties
    p_test = np.round(_softmax(rng.normal(size=(400, 3))), 1)
    p_val[:, 1] = 0.25  # all-equal scores for class 1
    targets = (0.05, 0.2)
    out = operating_points(y_val, p_val, y_test, p_test, targets, max_fpr=0.1)
    _check_points(out, y_val, p_val, y_test, p_test, targets, 0.1)
    assert all(pt["val_far"] == 0.0 for pt in out["per_class"][1]["points"])
    assert out["per_class"][2]["pauroc"] is None


def test_operating_points_reject_a_target_outside_the_unit_interval():
    y = np.array([0, 1, 0, 1])
    p = np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="FAR targets"):
        operating_points(y, p, y, p, far_targets=(0.0,))


# ------------------------------------------------------------------ temperature and calibration


def _miscalibrated(seed: int, sharpen: float, n: int = 3000, k: int = 5):
    """Labels drawn from softmax(a); the posterior softmax(sharpen * a) is over/under-confident."""
    rng = np.random.default_rng(seed)
    a = rng.normal(scale=1.5, size=(n, k))
    truth = _softmax(a)
    y = np.array([rng.choice(k, p=row) for row in truth])
    return y, np.log(_softmax(sharpen * a))


@pytest.mark.parametrize(("seed", "sharpen"), [(0, 3.0), (1, 0.5)])
def test_temperature_matches_an_independent_scipy_fit(seed, sharpen):
    y, logp = _miscalibrated(seed, sharpen)
    T = fit_temperature(logp, y)

    def nll(t: float) -> float:
        return log_loss(y, _softmax(logp / t), labels=list(range(logp.shape[1])))

    ref = minimize_scalar(nll, bounds=(0.01, 50.0), method="bounded", options={"xatol": 1e-9}).x
    assert abs(T - ref) < 1e-3
    assert T == pytest.approx(sharpen, rel=0.15)  # undoes the sharpening it was built with
    assert nll(T) <= nll(1.0)


def test_the_temperature_fitted_block_by_block_is_the_whole_splits(monkeypatch):
    # fit_temperature's objective takes rows a block at a time (memory at 2.8 M flows); every
    # step of it is per row, so the temperature is the one fitted on the whole split at once
    import lossbench.metrics.protocol as protocol

    y, logp = _miscalibrated(3, 2.5, n=1000)
    whole = fit_temperature(logp, y)
    monkeypatch.setattr(protocol, "_NLL_ROWS", 7)  # 143 blocks, the last of 6 rows
    assert fit_temperature(logp, y) == whole


def test_temperature_scale_is_softmax_of_scaled_log_posterior():
    y, logp = _miscalibrated(2, 2.0, n=50)
    out = temperature_scale(logp, 1.7)
    assert np.allclose(out, _softmax(logp / 1.7), rtol=0, atol=1e-12)
    assert np.allclose(out.sum(axis=1), 1.0)
    # an underflowed posterior (log 0 = -inf) stays finite
    logp[0, 1] = -np.inf
    assert np.isfinite(temperature_scale(logp, 0.5)).all()


def test_calibration_scores_against_independent_code():
    rng = np.random.default_rng(5)
    n, k = 500, 4
    y = rng.integers(0, k, size=n)
    p = _softmax(rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y])
    got = calibration_scores(y, p)
    assert set(got) == {"brier", "ece", "mce", "nll"}
    assert got["nll"] == pytest.approx(log_loss(y, p, labels=list(range(k))), abs=TOL)
    assert got["brier"] == pytest.approx(np.mean(np.sum((np.eye(k)[y] - p) ** 2, 1)), abs=TOL)
    conf, correct = p.max(1), (p.argmax(1) == y)
    gaps, weights = [], []
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        m = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if m.any():
            gaps.append(abs(correct[m].mean() - conf[m].mean()))
            weights.append(m.mean())
    assert got["ece"] == pytest.approx(float(np.dot(gaps, weights)), abs=TOL)
    assert got["mce"] == pytest.approx(max(gaps), abs=TOL)


def test_calibration_nll_clips_a_zero_probability_at_1e_15():
    y = np.array([0, 1])
    p = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert calibration_scores(y, p)["nll"] == pytest.approx(-np.log(1e-15) / 2, abs=TOL)
