"""From a run's stored predictions to everything its metrics.json reports (SPEC 5.1).

The evaluation protocol applies to every loss and baseline alike and uses the validation split only
for anything it fits:

* decisions: `argmax` of the logits (the rule each loss was designed for), and `tuned`: per-class
  logit offsets (binary: one threshold) fitted on validation macro-F1, applied unchanged to test;
* probability-based metrics (AUROC, AUPRC, Brier, ECE, MCE, NLL, operating points) use the loss's
  posterior;
* operating points: per class, the detection rate at each false-alarm-rate target with the
  threshold chosen on validation, and the partial AUROC up to FAR 0.01;
* calibration raw and after temperature scaling fitted on validation NLL;
* warnings, e.g. a run whose test predictions use fewer classes than the test split holds.

`evaluate_predictions` is pure; `write_predictions` / `read_predictions` turn the two splits'
predictions (test, validation) into the frames `lossbench.store` keeps and back;
`write_run_evaluation` evaluates a run and hands its files to the store, and `reevaluate_run`
recomputes them from the stored predictions, so `lossbench report` rebuilds every number without
training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lossbench import store
from lossbench.errors import InputError
from lossbench.layout import METRICS
from lossbench.metrics import calibration_bins, evaluate
from lossbench.metrics.protocol import (
    apply_offsets,
    calibration_scores,
    fit_offsets,
    fit_temperature,
    operating_points,
    temperature_scale,
)
from lossbench.metrics.scores import CRITERION_COLUMN, log_posterior, macro_f1, nll, softmax

if TYPE_CHECKING:
    from lossbench.losses.base import LossbenchLoss


@dataclass
class SplitPredictions:
    """One split's stored predictions: labels, logits (None for baselines' older files) and the
    posterior (class probabilities)."""

    row_id: np.ndarray
    y: np.ndarray
    logits: np.ndarray | None
    proba: np.ndarray

    @property
    def decisions(self) -> np.ndarray:
        """argmax of the logits (of the posterior when no logits are stored)."""
        scores = self.logits if self.logits is not None else self.proba
        return scores.argmax(axis=1)

    def to_frame(self) -> pd.DataFrame:
        columns: dict[str, np.ndarray] = {
            "row_id": np.asarray(self.row_id, dtype=np.int64),
            "y_true": np.asarray(self.y, dtype=np.int64),
        }
        if self.logits is not None:
            logits = np.asarray(self.logits, dtype=np.float32)
            columns.update({f"z_{k}": logits[:, k] for k in range(logits.shape[1])})
        proba = np.asarray(self.proba, dtype=np.float64)
        columns.update({f"p_{k}": proba[:, k] for k in range(proba.shape[1])})
        return pd.DataFrame(columns)  # built at once: a column at a time cost a copy each

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> SplitPredictions:
        z_cols = sorted((c for c in frame.columns if c.startswith("z_")), key=lambda c: int(c[2:]))
        p_cols = sorted((c for c in frame.columns if c.startswith("p_")), key=lambda c: int(c[2:]))
        logits = frame[z_cols].to_numpy(np.float32) if z_cols else None
        return cls(
            row_id=frame["row_id"].to_numpy(np.int64),
            y=frame["y_true"].to_numpy(np.int64),
            logits=logits,
            proba=frame[p_cols].to_numpy(np.float64),
        )


#: The logit of a class the model has no output for (a `--test-data` class never seen in
#: training): never the argmax, posterior 0.
UNSEEN_LOGIT = -1e9


def with_unseen_classes(split: SplitPredictions, n_unseen: int) -> SplitPredictions:
    """`split` with `n_unseen` more classes that the model cannot predict (logit
    `UNSEEN_LOGIT`, posterior 0), so that rows of a test class never seen in training are
    scored as errors of the model rather than dropped."""
    if not n_unseen:
        return split
    n = len(split.y)
    logits = None
    if split.logits is not None:
        pad = np.full((n, n_unseen), UNSEEN_LOGIT, dtype=np.float32)
        logits = np.concatenate([np.asarray(split.logits, dtype=np.float32), pad], axis=1)
    proba = np.concatenate([np.asarray(split.proba), np.zeros((n, n_unseen))], axis=1)
    return SplitPredictions(split.row_id, split.y, logits, proba)


def write_predictions(run_dir: Path, test: SplitPredictions, val: SplitPredictions) -> None:
    """Store the test and validation predictions of a run (`store.write_predictions`)."""
    store.write_predictions(run_dir, test.to_frame(), val.to_frame())


def read_predictions(run_dir: Path) -> tuple[SplitPredictions, SplitPredictions | None]:
    """(test, validation) predictions of a run; validation is None for runs made before the
    protocol stored it."""
    test, val = store.read_predictions(run_dir)
    return (
        SplitPredictions.from_frame(test),
        None if val is None else SplitPredictions.from_frame(val),
    )


def evaluate_predictions(
    test: SplitPredictions,
    val: SplitPredictions | None,
    class_names: Sequence[str],
    *,
    positive: int | None = None,
    far_targets: Sequence[float] = (0.01, 0.001),
) -> tuple[dict[str, Any], Any]:
    """Every metric of the evaluation protocol from stored predictions.

    Returns:
        `(fields, evaluation)`: `fields` holds metrics.json's `summary`, `undefined`, `tuned`,
        `operating_points`, `calibration` and `warnings`; `evaluation` is the argmax
        `lossbench.metrics.Evaluation` (per-class table, reliability bins, confusion).
    """
    names = [str(c) for c in class_names]
    n_classes = len(names)
    ev = evaluate(test.y, test.proba, names, positive=positive, y_pred=test.decisions)
    fields: dict[str, Any] = {
        "summary": ev.summary,
        "undefined": ev.undefined,
        "warnings": class_coverage_warnings(test.y, test.decisions, names),
    }
    raw = calibration_scores(test.y, test.proba)
    if val is None:
        fields["warnings"].append(
            "no validation predictions stored (a run made before lossbench stored them): the "
            "tuned rule, operating points and temperature scaling are not available"
        )
        fields.update(tuned=None, operating_points=None, calibration={"raw": raw})
        return fields, ev

    val_scores = val.logits if val.logits is not None else log_posterior(val.proba)
    test_scores = test.logits if test.logits is not None else log_posterior(test.proba)
    offsets = np.asarray(fit_offsets(val.y, val_scores), dtype=np.float64)
    tuned_test = apply_offsets(test_scores, offsets)
    tuned_ev = evaluate(test.y, test.proba, names, positive=positive, y_pred=tuned_test)
    val_argmax = macro_f1(val.y, val_scores.argmax(axis=1), n_classes)
    val_tuned = macro_f1(val.y, apply_offsets(val_scores, offsets), n_classes)
    tuned: dict[str, Any] = {
        "rule": "argmax(z + offsets), offsets fitted on validation macro-F1",
        "scores": "logits" if val.logits is not None else "log posterior",
        "offsets": offsets.tolist(),
        "val_macro_f1_argmax": val_argmax,
        "val_macro_f1": val_tuned,
        "summary": tuned_ev.summary,
        "undefined": tuned_ev.undefined,
        "warnings": class_coverage_warnings(test.y, tuned_test, names),
    }
    if n_classes == 2:
        # argmax(z + b) picks class 1 exactly when z_1 - z_0 > b_0 - b_1 (ties go to class 0)
        tuned["threshold"] = float(offsets[0] - offsets[1])
        tuned["rule"] = (
            "class 1 when z_1 - z_0 > threshold, threshold fitted on validation macro-F1"
        )
    fields["tuned"] = tuned
    ops = operating_points(val.y, val.proba, test.y, test.proba, far_targets=tuple(far_targets))
    for entry in ops["per_class"]:
        entry["class"] = names[entry["class_index"]]
    fields["operating_points"] = ops
    temperature = fit_temperature(log_posterior(val.proba), val.y)
    scaled = temperature_scale(log_posterior(test.proba), temperature)
    fields["calibration"] = {
        "raw": raw,
        "temperature": {"T": float(temperature), **calibration_scores(test.y, scaled)},
    }
    return fields, ev


def scaled_posterior(test_proba: np.ndarray, temperature: float) -> np.ndarray:
    """The temperature-scaled test posterior softmax(log p / T) (for the reliability plot)."""
    return temperature_scale(log_posterior(test_proba), temperature)


def class_coverage_warnings(y: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> list[str]:
    """ "predicts only N of K classes" when the decisions use fewer classes than `y` holds."""
    present = np.unique(y)
    predicted = np.intersect1d(np.unique(y_pred), present)
    if len(predicted) >= len(present):
        return []
    missing = [names[k] for k in present if k not in predicted]
    return [
        f"predicts only {len(predicted)} of {len(present)} classes present in the test split "
        f"(never predicts: {', '.join(missing)})"
    ]


def write_run_evaluation(
    run_dir: Path,
    class_names: Sequence[str],
    metrics: dict[str, Any],
    test: Any,
    val: Any,
    positive: int | None,
) -> dict[str, Any]:
    """Evaluate stored predictions and store metrics.json, per_class.csv, calibration.json and
    confusion.csv (`store.write_evaluation_files`; the evaluation fields of `metrics` are
    replaced, the rest is kept)."""
    fields, ev = evaluate_predictions(
        test,
        val,
        class_names,
        positive=positive,
        far_targets=metrics.get("far_targets") or (0.01, 0.001),
    )
    per_class = ev.per_class.reset_index()
    calibration = dict(ev.calibration)
    scaling = (fields.get("calibration") or {}).get("temperature")
    if scaling is not None:
        _, _, bins = calibration_bins(
            test.y, scaled_posterior(test.proba, scaling["T"]), n_bins=ev.calibration["n_bins"]
        )
        calibration["temperature"] = {**scaling, "bins": bins}
    conf = pd.DataFrame(ev.confusion, columns=list(class_names))
    conf.insert(0, "true", list(class_names))
    metrics = {**metrics, **fields}
    # the training split's counts before a method's resampling (older runs: what trained)
    train_counts = (metrics.get("split_class_counts") or {}).get("train") or metrics.get(
        "train_class_counts"
    )
    if train_counts:
        from lossbench.metrics.groups import class_groups

        metrics["class_groups"] = class_groups(
            train_counts,
            ev.per_class["f1"].to_numpy(),
            ev.per_class["recall"].to_numpy(),
            ev.per_class["support"].to_numpy(),
            class_names,
        )
    store.write_evaluation_files(run_dir, per_class, calibration, conf, metrics)
    return metrics


def reevaluate_run(run_dir: Path) -> str | None:
    """Recompute a completed run's metrics.json, per_class.csv, calibration.json and
    confusion.csv from its stored predictions (`lossbench report`); no training.

    Returns a one-line note when the run's files predate stored logits or validation predictions
    (the evaluation is then partial: the argmax metrics and raw calibration only), else None.

    Raises:
        InputError: an unreadable metrics.json or prediction file, naming it.
    """
    meta_path = run_dir / METRICS
    try:
        metrics = store.read_metrics(run_dir)
        test, val = read_predictions(run_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{run_dir}: unreadable run files ({type(exc).__name__}: {exc})") from None
    names = [str(c) for c in metrics.get("class_names") or []]
    if len(names) != test.proba.shape[1]:
        raise InputError(f"{meta_path}: class_names do not match the stored predictions")
    positive_name = (metrics.get("summary") or {}).get("positive_class")
    positive = names.index(positive_name) if positive_name in names else None
    write_run_evaluation(run_dir, names, metrics, test, val, positive)
    if val is None:
        return (
            f"{run_dir.name}: made before lossbench stored validation predictions and logits; "
            "its tuned, operating-point and temperature-scaled metrics are not available "
            "(start the experiment anew, fresh, to get them)"
        )
    return None


# ----------------------------------------------------------------------------------------------
# selection scores: the validation scores the training loop selects its epoch by (SPEC 5.1),
# computed alike for every loss


def posterior_np(
    loss: LossbenchLoss, logits: np.ndarray, softmax_of_logits: np.ndarray | None = None
) -> np.ndarray:
    """The class probabilities the loss's training makes consistent with the data's prior
    (SPEC 4.4), as float64 rows summing to 1.

    softmax(z) (computed in float64) for a loss that does not redefine `posterior`; otherwise the
    loss's own `posterior(logits)` (e.g. softmax(z + tau log pi) for `la`). `softmax_of_logits`:
    softmax(logits) where the caller has it already (not computed a second time).
    """
    import keras  # lazy: only a loss's own posterior needs it

    from lossbench.losses.base import LossbenchLoss

    if type(loss).posterior is LossbenchLoss.posterior:
        return softmax(logits) if softmax_of_logits is None else softmax_of_logits
    p = np.asarray(
        keras.ops.convert_to_numpy(loss.posterior(np.asarray(logits, np.float32))), np.float64
    )
    return p / p.sum(axis=1, keepdims=True)


def selection_scores(y: np.ndarray, logits: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Validation scores the selection rule can use (SPEC 5.1), the same for every loss.

    macro_f1 and balanced_accuracy (macro recall) of argmax(logits); nll (mean -log p_y) and auprc
    (macro one-vs-rest average precision over the classes present) of the posterior.
    """
    from lossbench.metrics import average_precision_ovr, quick_scores

    n_classes = proba.shape[1]
    scores = quick_scores(y, logits.argmax(axis=1), n_classes)
    ap = average_precision_ovr(y, proba) if len(y) else np.full(n_classes, np.nan)
    return {
        "macro_f1": float(scores["macro_f1"]),
        "balanced_accuracy": float(scores["macro_recall"]),
        "nll": nll(y, proba),
        "auprc": float(np.nanmean(ap)) if np.isfinite(ap).any() else math.nan,
    }


def history_scores(row: dict[str, Any]) -> dict[str, float]:
    """The selection scores of one history.csv row (`lossbench.training.Trainer.validate`'s
    columns), by criterion."""
    return {criterion: float(row[column]) for criterion, column in CRITERION_COLUMN.items()}


def selection_key(criterion: str, scores: dict[str, float]) -> tuple[float, float]:
    """Larger is better: (criterion, tie-break). The tie-break is the validation NLL of the
    posterior, so a plateau of macro-F1 still counts as progress while the NLL improves."""
    val_nll = scores["nll"]
    tie = -val_nll if math.isfinite(val_nll) else -math.inf
    if criterion == "nll":
        return (tie, 0.0)
    value = scores[criterion]
    return (value if math.isfinite(value) else -math.inf, tie)
