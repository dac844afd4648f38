"""lossbench.metrics against scikit-learn, imbalanced-learn and loop-based NumPy references."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from imblearn.metrics import geometric_mean_score, sensitivity_specificity_support
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
)

from lossbench.metrics import (
    PER_CLASS_COLUMNS,
    brier_score,
    calibration_bins,
    confusion_counts,
    evaluate,
    quick_scores,
)

TOL = 1e-9


# ---------------------------------------------------------------- cases


def _random_case(seed: int, k: int, n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Imbalanced labels and Dirichlet probabilities tilted towards the true class."""
    rng = np.random.default_rng(seed)
    prior = np.geomspace(1.0, 0.1, k)
    y = rng.choice(k, size=n, p=prior / prior.sum())
    y[:k] = np.arange(k)  # every class present
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def _tied_case(seed: int, k: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities with few distinct values: ties in every column and in the row argmax."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)
    scores = rng.integers(1, 4, size=(n, k)).astype(np.float64)
    scores[np.arange(n), y] += rng.integers(0, 2, size=n)
    scores[:5] = 1.0  # rows whose argmax is a full tie
    return y, scores / scores.sum(axis=1, keepdims=True)


def _never_predicted_case(seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 is in y_true but its probability never wins the argmax."""
    y, proba = _random_case(seed, k)
    proba[:, 0] *= 1e-3
    return y, proba / proba.sum(axis=1, keepdims=True)


def _absent_case(seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The last class is absent from y_true but still predicted on some rows."""
    y, proba = _random_case(seed, k)
    y = np.where(y == k - 1, 0, y)
    proba[: 2 * k, k - 1] += 5.0  # make sure it wins the argmax somewhere
    return y, proba / proba.sum(axis=1, keepdims=True)


def _absent_never_predicted_case(seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The last class is absent from y_true and never predicted (0/0 precision, recall, F1)."""
    y, proba = _random_case(seed, k)
    y = np.where(y == k - 1, 0, y)
    proba[:, k - 1] *= 1e-3
    return y, proba / proba.sum(axis=1, keepdims=True)


def _perfect_case(seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Argmax always right and every positive scored above every negative."""
    y, _ = _random_case(seed, k)
    proba = np.full((len(y), k), 0.1 / k)
    proba[np.arange(len(y)), y] += 0.9
    return y, proba


CASES = {
    "random": _random_case,
    "ties": _tied_case,
    "never_predicted": _never_predicted_case,
    "absent": _absent_case,
    "absent_never_predicted": _absent_never_predicted_case,
    "perfect": _perfect_case,
}


def _case(name: str, seed: int, k: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y, proba = CASES[name](seed, k)
    return y, proba, [f"c{i}" for i in range(k)]


def _close(actual, expected) -> None:
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL)


@pytest.fixture(autouse=True)
def _quiet_sklearn():
    """scikit-learn and imbalanced-learn warn on 0/0; the tests check the values instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------- case sanity


@pytest.mark.parametrize("k", [3, 11])
def test_edge_cases_hold_their_edge(k):
    """Guards against vacuous passes: each edge case really has the property it is named for."""
    y, p, _ = _case("never_predicted", 0, k)
    assert 0 in y and 0 not in p.argmax(1)
    y, p, _ = _case("absent", 0, k)
    assert k - 1 not in y and k - 1 in p.argmax(1)
    y, p, _ = _case("absent_never_predicted", 0, k)
    assert k - 1 not in y and k - 1 not in p.argmax(1)
    y, p, _ = _case("ties", 0, k)
    assert all(len(np.unique(p[:, j])) < len(p) // 4 for j in range(k))
    assert np.all(p[:5] == p[0, 0])
    y, p, _ = _case("perfect", 0, k)
    assert np.all(p.argmax(1) == y)
    y, p, _ = _case("random", 0, k)
    assert 0.2 < np.mean(p.argmax(1) == y) < 0.95
    assert np.allclose(p.sum(1), 1.0)


# ---------------------------------------------------------------- against scikit-learn


SETTINGS = [
    (case, seed, k) for case in CASES for seed in (0, 1) for k in (2, 3, 11) if not (
        k == 2 and case in ("absent", "absent_never_predicted")
    )
]  # fmt: skip


@pytest.mark.parametrize("case,seed,k", SETTINGS)
def test_counts_and_per_class_scores_match_sklearn(case, seed, k):
    y, proba, names = _case(case, seed, k)
    y_pred = proba.argmax(axis=1)
    labels = list(range(k))
    ev = evaluate(y, proba, names)

    assert list(ev.per_class.columns) == list(PER_CLASS_COLUMNS)
    assert list(ev.per_class.index) == names and ev.per_class.index.name == "class"
    assert ev.confusion.dtype == np.int64
    np.testing.assert_array_equal(ev.confusion, confusion_matrix(y, y_pred, labels=labels))
    np.testing.assert_array_equal(confusion_counts(y, y_pred, k), ev.confusion)

    mcm = multilabel_confusion_matrix(y, y_pred, labels=labels)  # [[tn, fp], [fn, tp]]
    for col, (i, j) in {"tn": (0, 0), "fp": (0, 1), "fn": (1, 0), "tp": (1, 1)}.items():
        np.testing.assert_array_equal(ev.per_class[col].to_numpy(), mcm[:, i, j])

    prec, rec, f1, support = precision_recall_fscore_support(
        y, y_pred, labels=labels, average=None, zero_division=0
    )
    _close(ev.per_class["precision"], prec)
    _close(ev.per_class["recall"], rec)
    _close(ev.per_class["f1"], f1)
    np.testing.assert_array_equal(ev.per_class["support"], support)

    _, spec, _ = sensitivity_specificity_support(y, y_pred, labels=labels, average=None)
    _close(ev.per_class["specificity"], spec)
    fp, tn = mcm[:, 0, 1], mcm[:, 0, 0]
    _close(ev.per_class["far"], fp / (fp + tn))
    _close(ev.per_class["far"], 1 - spec)


@pytest.mark.parametrize("case,seed,k", SETTINGS)
def test_ranking_scores_match_sklearn(case, seed, k):
    y, proba, names = _case(case, seed, k)
    ev = evaluate(y, proba, names)
    present = [j for j in range(k) if np.any(y == j)]
    absent = [j for j in range(k) if j not in present]

    for j in present:
        assert ev.per_class["auroc"].iloc[j] == pytest.approx(
            roc_auc_score(y == j, proba[:, j]), abs=TOL
        )
        assert ev.per_class["auprc"].iloc[j] == pytest.approx(
            average_precision_score(y == j, proba[:, j]), abs=TOL
        )
    for j in absent:
        assert math.isnan(ev.per_class["auroc"].iloc[j])
        assert math.isnan(ev.per_class["auprc"].iloc[j])
        assert f"auroc[{names[j]}]" in ev.undefined and f"auprc[{names[j]}]" in ev.undefined

    auroc = [roc_auc_score(y == j, proba[:, j]) for j in present]
    auprc = [average_precision_score(y == j, proba[:, j]) for j in present]
    assert ev.summary["macro_auroc"] == pytest.approx(np.mean(auroc), abs=TOL)
    assert ev.summary["macro_auprc"] == pytest.approx(np.mean(auprc), abs=TOL)
    if not absent:
        expected = (
            roc_auc_score(y, proba[:, 1])
            if k == 2
            else roc_auc_score(y, proba, multi_class="ovr", average="macro")
        )
        assert ev.summary["macro_auroc"] == pytest.approx(expected, abs=TOL)
        onehot = np.eye(k)[y]
        assert ev.summary["macro_auprc"] == pytest.approx(
            average_precision_score(onehot, proba, average="macro"), abs=TOL
        )
    if case == "perfect":
        _close(ev.per_class["auroc"], 1.0)
        _close(ev.per_class["auprc"], 1.0)


@pytest.mark.parametrize("case,seed,k", SETTINGS)
def test_summary_scores_match_sklearn_and_imblearn(case, seed, k):
    y, proba, names = _case(case, seed, k)
    y_pred = proba.argmax(axis=1)
    labels = list(range(k))
    s = evaluate(y, proba, names).summary

    def prfs(average):
        return precision_recall_fscore_support(
            y, y_pred, labels=labels, average=average, zero_division=0
        )

    expected = {
        "accuracy": accuracy_score(y, y_pred),
        "balanced_accuracy": balanced_accuracy_score(y, y_pred),
        "gmean": geometric_mean_score(y, y_pred),
        "mcc": matthews_corrcoef(y, y_pred),
        "macro_precision": prfs("macro")[0],
        "macro_recall": prfs("macro")[1],
        "macro_f1": prfs("macro")[2],
        "weighted_precision": prfs("weighted")[0],
        "weighted_recall": prfs("weighted")[1],
        "weighted_f1": prfs("weighted")[2],
    }
    for key, value in expected.items():
        assert s[key] == pytest.approx(value, abs=TOL), key
    _, spec, _ = sensitivity_specificity_support(y, y_pred, labels=labels, average=None)
    assert s["macro_far"] == pytest.approx(np.mean(1 - spec), abs=TOL)

    if case == "perfect":
        assert s["accuracy"] == s["macro_f1"] == s["mcc"] == s["gmean"] == 1.0
    if case == "absent":  # a predicted class absent from y_true: imblearn's G-mean is 0
        assert s["gmean"] == 0.0 and s["balanced_accuracy"] > 0.0


@pytest.mark.parametrize("k", [3, 11])
def test_absent_never_predicted_class_is_flagged_and_zero(k):
    y, proba, names = _case("absent_never_predicted", 0, k)
    ev = evaluate(y, proba, names)
    last = names[-1]
    row = ev.per_class.loc[last]
    assert row["precision"] == row["recall"] == row["f1"] == 0.0
    for metric in ("precision", "recall", "f1", "auroc", "auprc"):
        assert f"{metric}[{last}]" in ev.undefined
    assert not any(flag.endswith(f"[{names[1]}]") for flag in ev.undefined)
    # macro precision/recall/F1 average over all K classes, so the 0 pulls the mean down
    assert ev.summary["macro_recall"] == pytest.approx(ev.per_class["recall"].iloc[:-1].sum() / k)


def test_never_predicted_class_flags_precision_only():
    y, proba, names = _case("never_predicted", 3, 4)
    ev = evaluate(y, proba, names)
    assert ev.per_class.loc["c0", "precision"] == 0.0
    assert "precision[c0]" in ev.undefined
    assert "recall[c0]" not in ev.undefined and "f1[c0]" not in ev.undefined


def test_mcc_undefined_when_one_class_is_predicted():
    y = np.array([0, 1, 1, 2])
    proba = np.tile([0.2, 0.5, 0.3], (4, 1))
    ev = evaluate(y, proba, ["a", "b", "c"])
    assert ev.summary["mcc"] == matthews_corrcoef(y, proba.argmax(1)) == 0.0
    assert "mcc" in ev.undefined


# ---------------------------------------------------------------- binary scores


def _binary_table() -> tuple[np.ndarray, np.ndarray]:
    """Class 1 (4 rows) is the minority: TP = 3, FN = 1, FP = 2, TN = 4 for positive = 1."""
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p1 = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.55, 0.4, 0.2, 0.1, 0.05])
    return y, np.column_stack([1 - p1, p1])


def test_binary_scores_match_hand_computed_table():
    y, proba = _binary_table()
    ev = evaluate(y, proba, ["benign", "attack"])
    s = ev.summary
    assert s["positive_class"] == "attack"
    assert ev.per_class.loc["attack", ["tp", "fn", "fp", "tn"]].tolist() == [3, 1, 2, 4]
    assert s["pod"] == pytest.approx(3 / 4)
    assert s["far"] == s["pofd"] == pytest.approx(2 / 6)
    assert s["bias"] == pytest.approx(5 / 4)
    # HSS = 2(TP TN - FP FN) / ((TP+FN)(FN+TN) + (TP+FP)(FP+TN)) = 2 * 10 / (4 * 5 + 5 * 6)
    assert s["hss"] == pytest.approx(0.4)
    assert s["pss"] == pytest.approx(3 / 4 - 2 / 6)
    assert s["binary_gmean"] == pytest.approx(math.sqrt(3 / 4 * 4 / 6))
    # positive scores ranked 1, 2, 4, 7: AP = (1 + 1 + 3/4 + 4/7) / 4
    assert s["auprc"] == pytest.approx((1 + 1 + 0.75 + 4 / 7) / 4)
    assert ev.undefined == []


def test_binary_positive_can_be_chosen():
    y, proba = _binary_table()
    s = evaluate(y, proba, ["benign", "attack"], positive=0).summary
    # positive = benign: TP = 4, FN = 2, FP = 1, TN = 3
    assert s["positive_class"] == "benign"
    assert s["pod"] == pytest.approx(4 / 6)
    assert s["pofd"] == pytest.approx(1 / 4)
    assert s["bias"] == pytest.approx(5 / 6)
    assert s["hss"] == pytest.approx(2 * (12 - 2) / (6 * 5 + 5 * 4))
    assert s["pss"] == pytest.approx(4 / 6 - 1 / 4)


def test_binary_default_positive_is_minority_and_index_1_on_tie():
    y, proba = _binary_table()
    assert evaluate(1 - y, proba[:, ::-1], ["x", "y"]).summary["positive_class"] == "x"
    tie = np.array([0, 1, 0, 1])
    assert evaluate(tie, np.full((4, 2), 0.5), ["x", "y"]).summary["positive_class"] == "y"


@pytest.mark.parametrize("case", ["random", "ties", "never_predicted", "perfect"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_scores_match_sklearn(case, seed):
    y, proba, names = _case(case, seed, 2)
    y_pred = proba.argmax(axis=1)
    s = evaluate(y, proba, names).summary
    pos = 0 if np.sum(y == 0) < np.sum(y == 1) else 1
    assert s["positive_class"] == names[pos]
    spec = np.sum((y != pos) & (y_pred != pos)) / np.sum(y != pos)
    assert s["pod"] == pytest.approx(recall_score(y, y_pred, pos_label=pos), abs=TOL)
    assert s["pofd"] == pytest.approx(1 - spec, abs=TOL)
    assert s["hss"] == pytest.approx(cohen_kappa_score(y, y_pred), abs=TOL)  # HSS == kappa
    assert s["pss"] == pytest.approx(balanced_accuracy_score(y, y_pred, adjusted=True), abs=TOL)
    assert s["binary_gmean"] == pytest.approx(
        geometric_mean_score(y, y_pred, average="binary", pos_label=pos), abs=TOL
    )
    assert s["auprc"] == pytest.approx(average_precision_score(y == pos, proba[:, pos]), abs=TOL)


def test_multiclass_has_no_binary_keys():
    y, proba, names = _case("random", 0, 3)
    s = evaluate(y, proba, names).summary
    assert not {"positive_class", "pod", "pss", "hss", "auprc"} & set(s)


# ---------------------------------------------------------------- calibration


def _loop_brier(y, proba):
    total = 0.0
    for i in range(len(y)):
        for k in range(proba.shape[1]):
            total += ((1.0 if y[i] == k else 0.0) - proba[i, k]) ** 2
    return total / len(y)


def _loop_calibration(y, proba, n_bins):
    """Direct per-sample reference of the documented convention (right-closed, 0 in bin 0)."""
    members = [[] for _ in range(n_bins)]
    for i in range(len(y)):
        conf = max(proba[i])
        pred = int(np.argmax(proba[i]))
        for b in range(n_bins):
            lower, upper = b / n_bins, (b + 1) / n_bins
            if (lower < conf <= upper) or (b == 0 and conf == 0) or (b == n_bins - 1 and conf > 1):
                members[b].append((conf, 1.0 if pred == y[i] else 0.0))
                break
    ece, mce, gaps = 0.0, 0.0, []
    for rows in members:
        if rows:
            gap = abs(sum(a for _, a in rows) / len(rows) - sum(c for c, _ in rows) / len(rows))
            ece += len(rows) / len(y) * gap
            mce = max(mce, gap)
            gaps.append(gap)
        else:
            gaps.append(None)
    return ece, mce, [len(rows) for rows in members], gaps


@pytest.mark.parametrize("case,seed,k", [(c, s, k) for c in CASES for s in (0, 1) for k in (2, 11)])
@pytest.mark.parametrize("n_bins", [15, 10])
def test_brier_ece_mce_match_loop_reference(case, seed, k, n_bins):
    y, proba, names = _case(case, seed, k)
    ece, mce, counts, gaps = _loop_calibration(y, proba, n_bins)
    got_ece, got_mce, bins = calibration_bins(y, proba, n_bins=n_bins)
    assert got_ece == pytest.approx(ece, abs=TOL)
    assert got_mce == pytest.approx(mce, abs=TOL)
    assert [b["count"] for b in bins] == counts
    for b, gap in zip(bins, gaps, strict=True):
        if gap is None:
            assert math.isnan(b["gap"]) and math.isnan(b["confidence"])
        else:
            assert b["gap"] == pytest.approx(gap, abs=TOL)
    assert brier_score(y, proba) == pytest.approx(_loop_brier(y, proba), abs=TOL)

    ev = evaluate(y, proba, names, n_bins=n_bins)
    assert ev.calibration["n_bins"] == n_bins and len(ev.calibration["bins"]) == n_bins
    assert ev.summary["brier"] == ev.calibration["brier"] == brier_score(y, proba)
    assert ev.summary["ece"] == ev.calibration["ece"] == got_ece
    assert ev.summary["mce"] == ev.calibration["mce"] == got_mce


def test_brier_is_not_halved_and_ece_by_hand():
    y = np.array([0, 1])
    proba = np.array([[0.8, 0.2], [0.8, 0.2]])
    # sample 0: 0.2^2 + 0.2^2 = 0.08; sample 1: 0.8^2 + 0.8^2 = 1.28
    assert brier_score(y, proba) == pytest.approx((0.08 + 1.28) / 2)
    ece, mce, bins = calibration_bins(y, proba, n_bins=15)
    # both confidences 0.8 in bin (11/15, 12/15]; accuracy 0.5, gap 0.3
    assert ece == pytest.approx(0.3) and mce == pytest.approx(0.3)
    assert bins[11]["count"] == 2 and sum(b["count"] for b in bins) == 2
    assert bins[11]["lower"] == pytest.approx(11 / 15) and bins[11]["upper"] == pytest.approx(0.8)


def test_confidence_on_an_edge_goes_to_the_lower_bin():
    """Right-closed bins: c = 1/3 = 5/15 is in bin 4 = (4/15, 5/15]; c = 1 is in the last bin."""
    y = np.array([0, 0])
    proba = np.array([[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]])
    _, _, bins = calibration_bins(y, proba, n_bins=15)
    assert bins[4]["count"] == 1 and bins[5]["count"] == 0
    assert bins[14]["count"] == 1 and bins[14]["gap"] == 0.0
    assert bins[4]["accuracy"] == 1.0  # the full tie goes to class 0


# ---------------------------------------------------------------- quick_scores, to_dict


@pytest.mark.parametrize("case,seed,k", SETTINGS)
def test_quick_scores_agree_with_evaluate_and_sklearn(case, seed, k):
    y, proba, names = _case(case, seed, k)
    y_pred = proba.argmax(axis=1)
    ev = evaluate(y, proba, names)
    q = quick_scores(y, y_pred, k)
    assert q["recall"].shape == (k,)
    _close(q["recall"], ev.per_class["recall"].to_numpy())
    assert q["macro_f1"] == pytest.approx(ev.summary["macro_f1"], abs=TOL)
    assert q["macro_recall"] == pytest.approx(ev.summary["macro_recall"], abs=TOL)
    assert q["macro_f1"] == pytest.approx(
        f1_score(y, y_pred, labels=list(range(k)), average="macro", zero_division=0), abs=TOL
    )


def test_to_dict_is_strict_json():
    y, proba, names = _case("absent_never_predicted", 0, 4)
    ev = evaluate(y, proba, names)
    d = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert set(d) == {"summary", "calibration", "undefined", "per_class", "confusion"}
    assert d["confusion"] == ev.confusion.tolist()
    assert [r["class"] for r in d["per_class"]] == names
    assert d["per_class"][-1]["auroc"] is None  # NaN (absent class) becomes null
    assert d["per_class"][0]["tp"] == int(ev.per_class["tp"].iloc[0])
    assert d["summary"]["macro_f1"] == ev.summary["macro_f1"]
    assert len(d["calibration"]["bins"]) == 15
    assert d["undefined"] == ev.undefined


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="shape"):
        evaluate(np.array([0, 1]), np.full((2, 3), 1 / 3), ["a", "b"])
