"""Mixed precision and the fixed cost of a run (issue 15): `--precision`, traced steps reused
across runs, per-run plots on demand."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from lossbench import training
from lossbench.config import TrainOptions
from lossbench.losses import get, names
from lossbench.losses.ce import CrossEntropy
from lossbench.models import build_model
from lossbench.training import bilevel, step_cache

FAST = ("--device", "cpu", "--model", "mlp", "--quiet")


def _run_dir(out: Path) -> Path:
    (run_dir,) = list(out.glob("*/runs/*"))
    return run_dir


def _metrics(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    m.pop("train_seconds")  # the one timing field
    return m


def _history(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "history.csv").drop(columns="seconds")


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_precision_run_trains_and_records_its_precision(cli, tmp_path, precision):
    res = cli("run", "--out", tmp_path, *FAST, "--epochs", "3", "--precision", precision)
    assert res.code == 0, res.err
    run_dir = _run_dir(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["precision"] == precision
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["precision"] == precision
    meta = json.loads((run_dir.parent.parent / "experiment.json").read_text())
    assert meta["train"]["precision"] == precision
    history = pd.read_csv(run_dir / "history.csv")
    assert np.isfinite(history["loss"]).all()
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]  # it learns


def test_the_default_precision_is_float32(cli, tmp_path):
    res = cli("run", "--out", tmp_path, *FAST, "--epochs", "1")
    assert res.code == 0, res.err
    assert json.loads((_run_dir(tmp_path) / "metrics.json").read_text())["precision"] == "float32"


class _SpyLoss(CrossEntropy):
    """Cross-entropy that records the dtype of every logits tensor it is given."""

    seen: list[tf.DType]

    def call(self, y_true, logits):
        self.seen.append(tf.convert_to_tensor(logits).dtype)
        return super().call(y_true, logits)


@pytest.mark.parametrize(
    ("precision", "compute"), [("mixed_bfloat16", tf.bfloat16), ("mixed_float16", tf.float16)]
)
def test_logits_reach_the_loss_as_float32(precision, compute):
    rng = np.random.default_rng(0)
    x = rng.random((300, 8), dtype=np.float32)
    y = rng.integers(0, 3, 300)
    model = build_model("mlp", 8, 3, precision=precision)
    assert model(x[:4]).dtype == compute  # the network itself computes in low precision
    loss = _SpyLoss(np.bincount(y, minlength=3))
    loss.seen = []
    opts = TrainOptions(epochs=1, batch_size=64, patience=0, precision=precision)
    trainer = training.Trainer(model, loss, opts, 3)
    result = trainer.fit(x[:200], y[:200], x[200:], y[200:])
    assert result.status == "ok"
    assert trainer.predict_logits(x[:5]).dtype == np.float32
    assert loss.seen and set(loss.seen) == {tf.float32}


def _count_new_trainers(monkeypatch) -> list[int]:
    """Empty the step cache; the returned list grows by one item per new `Trainer`."""
    training.clear_step_cache()
    built: list[int] = []
    original = training.Trainer.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "__init__", counting_init)
    return built


def test_a_reused_traced_step_gives_the_metrics_of_a_fresh_trace(cli, tmp_path, monkeypatch):
    built = _count_new_trainers(monkeypatch)
    args = (*FAST, "--losses", "all", "--epochs", "2", "--fresh")
    exps = []
    # reference: nothing kept between runs, every run builds and traces afresh
    monkeypatch.setattr(step_cache, "STEP_CACHE_SIZE", 0)
    res = cli("compare", "--out", tmp_path / "fresh", *args, "--seeds", "0")
    assert res.code == 0, res.err
    assert len(built) == len(names())
    # then seed 1 traces each loss's step and seed 0 restarts the step seed 1 left trained
    monkeypatch.setattr(step_cache, "STEP_CACHE_SIZE", 16)
    res = cli("compare", "--out", tmp_path / "reused", *args, "--seeds", "1,0")
    assert res.code == 0, res.err
    assert len(built) == 2 * len(names())
    for out in (tmp_path / "fresh", tmp_path / "reused"):
        (exp,) = [p for p in out.iterdir() if (p / "experiment.json").exists()]
        exps.append(exp)
    for loss in names():
        fresh, reused = (exp / "runs" / f"{loss}_seed0" for exp in exps)
        assert _metrics(fresh) == _metrics(reused), loss
        pd.testing.assert_frame_equal(_history(fresh), _history(reused))
    seed1 = exps[1] / "runs" / "ce_seed1"
    assert _metrics(seed1)["summary"] != _metrics(exps[1] / "runs" / "ce_seed0")["summary"]


def test_a_step_is_traced_once_for_runs_of_one_kind(cli, tmp_path, monkeypatch):
    built = _count_new_trainers(monkeypatch)
    res = cli(
        "compare", "--out", tmp_path, *FAST, "--losses", "ce,focal", "--seeds", "0,1,2",
        "--epochs", "1",
    )  # fmt: skip
    assert res.code == 0, res.err
    assert len(built) == 2  # one trainer per loss, not per run


def test_a_changed_loss_value_reuses_the_step_and_a_changed_code_path_traces_afresh(cli, tmp_path):
    training.clear_step_cache()
    runs = []
    for gamma in ("1.0", "3.0"):  # focal's gamma is a value: one traced step for both runs
        out = tmp_path / gamma
        res = cli("run", "--out", out, *FAST, "--loss", "focal", "--epochs", "1",
                  "--param", f"gamma={gamma}")  # fmt: skip
        assert res.code == 0, res.err
        runs.append(_metrics(_run_dir(out)))
    assert len(step_cache.STEP_CACHE) == 1
    assert runs[0]["summary"] != runs[1]["summary"]
    for base in ("ce", "focal"):  # cb's base picks the code of its loss: a step each
        res = cli("run", "--out", tmp_path / base, *FAST, "--loss", "cb", "--epochs", "1",
                  "--param", f"base={base}")  # fmt: skip
        assert res.code == 0, res.err
    assert len(step_cache.STEP_CACHE) == 3


#: for each loss, a value other than the default for every argument it declares TRACE_FREE
#: (its class counts differ too: another training subset)
OTHER_VALUES = {
    "ce": {},
    "wce": {"weights": "effective", "beta": 0.99},
    "focal": {"gamma": 0.5, "alpha": 0.25},
    "cb": {"beta": 0.99, "gamma": 1.0},
    "dwb": {"reg_weight": 0.3},
    "amrl": {"m": 0.5, "lam": 2.0, "beta": 1.5, "weights": "none", "eps": 0.1, "eta": 0.3,
             "lambda_max": 3.0, "trainable": False},
    "pgfl": {"gamma": 1.0, "eta": 3.0, "alpha": 0.5, "mc_momentum": 0.5},
    "la": {"tau": 2.0},
    "ldam": {"max_margin": 0.8, "drw": False, "drw_beta": 0.99, "drw_start": 0.3,
             "drw_active": True},
    "vs": {"gamma": 0.1, "tau": 2.0, "weights": "inverse"},
    "autobalance": {"gamma": 0.1, "tau": 0.5, "weights": "inverse", "l": [0.1, -0.2, 0.3],
                    "delta": [1.0, 0.5, 0.8], "upper_lr": 0.05, "interval": 1, "pairs": 2,
                    "warmup": 0.0},
}  # fmt: skip


@pytest.mark.parametrize("name", names())
def test_a_step_traced_for_other_loss_values_gives_the_results_of_a_fresh_trace(name):
    """A trainer traced for one configuration (other values of every TRACE_FREE argument,
    other class counts, another seed) and restarted for the default one trains exactly as a
    trainer traced for the default one: no value of the first reached its step as a constant."""
    loss_class = type(get(name, [5, 5, 5]))
    assert set(OTHER_VALUES[name]) | {"class_counts"} == loss_class.TRACE_FREE
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    y = np.minimum((x[:, 0] > 0.3) + 2 * (x[:, 1] > 1.0), 2)  # three classes, imbalanced
    x[:, 2] += y
    train_b, val, test = slice(0, 260), slice(260, 330), slice(330, 400)
    train_a = slice(40, 220)  # other class counts
    assert np.bincount(y[train_a]).tolist() != np.bincount(y[train_b]).tolist()

    def results(trainer, rows):
        fit = trainer.fit(x[rows], y[rows], x[val], y[val])
        assert fit.status == "ok", fit.reason
        history = pd.DataFrame(fit.history).drop(columns=["seconds"], errors="ignore")
        return history, fit.learned_params, trainer.predict_logits(x[test])

    def run(loss, seed, rows):
        arch = {"name": "mlp", "n_features": 8, "n_classes": 3, "head": loss.head,
                "scale": loss.scale}  # fmt: skip
        opts = TrainOptions(epochs=3, batch_size=64, patience=0, seed=seed)
        trainer, _ = training.trainer_for_run(arch, loss, opts, 3)
        return trainer, results(trainer, rows)

    training.clear_step_cache()
    other = loss_class(np.bincount(y[train_a]), **OTHER_VALUES[name])
    first, _ = run(other, 1, train_a)
    reused, (history, learned, logits) = run(get(name, np.bincount(y[train_b])), 0, train_b)
    assert reused is first  # one traced step for both configurations
    training.clear_step_cache()
    fresh, (history_0, learned_0, logits_0) = run(get(name, np.bincount(y[train_b])), 0, train_b)
    assert fresh is not first
    pd.testing.assert_frame_equal(history, history_0)
    assert learned == learned_0
    np.testing.assert_array_equal(logits, logits_0)


def test_compare_leaves_run_plots_to_report(cli, tmp_path):
    res = cli(
        "compare", "--out", tmp_path, *FAST, "--losses", "ce,wce", "--seeds", "0", "--epochs", "1"
    )
    assert res.code == 0, res.err
    (exp,) = [p for p in tmp_path.iterdir() if (p / "experiment.json").exists()]
    assert (exp / "summary" / "plots" / "history_overlay.png").is_file()
    assert not list(exp.glob("runs/*/plots/*.png"))
    res = cli("report", str(exp), "--quiet")
    assert res.code == 0, res.err
    assert not list(exp.glob("runs/*/plots/*.png"))
    res = cli("report", str(exp), "--plots", "runs", "--quiet")
    assert res.code == 0, res.err
    for run in ("ce_seed0", "wce_seed0"):
        assert (exp / "runs" / run / "plots" / "history.png").is_file()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "--precision", "float8"), "--precision"),
        (("compare", "--plots", "some"), "--plots"),
    ],
)
def test_bad_precision_or_plots_exit_2(cli, tmp_path, args, needle):
    res = cli(*args, "--out", tmp_path / "res", "--device", "cpu")
    assert res.code == 2
    assert needle in res.err and len(res.err.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()


def test_every_loss_builds_with_a_mixed_precision_model():
    counts = [50, 30, 20]
    for name in names():
        loss = get(name, counts)
        model = build_model("mlp", 8, 3, head=loss.head, scale=loss.scale,
                            precision="mixed_bfloat16")  # fmt: skip
        value = loss(np.array([0, 1, 2]), tf.cast(model(np.ones((3, 8), np.float32)), tf.float32))
        assert np.isfinite(float(value)), name


def test_the_train_step_is_traced_once_for_every_batch_size():
    rng = np.random.default_rng(0)
    x, y = rng.random((250, 8), dtype=np.float32), rng.integers(0, 3, 250)
    opts = TrainOptions(epochs=2, batch_size=64, patience=0)  # 200 rows: 3 x 64 and one of 8
    trainer = training.Trainer(build_model("mlp", 8, 3), CrossEntropy(np.bincount(y)), opts, 3)
    assert trainer.fit(x[:200], y[:200], x[200:], y[200:]).status == "ok"
    trainer.fit(x[:150], y[:150], x[150:], y[150:])  # another length of the training split
    assert trainer._compiled_step.experimental_get_tracing_count() == 1


def test_the_losses_of_one_model_share_its_evaluation_step_and_weight_check():
    training.clear_step_cache()
    rng = np.random.default_rng(0)
    x, y = rng.random((120, 8), dtype=np.float32), np.arange(120) % 3
    arch = {"name": "mlp", "n_features": 8, "n_classes": 3}
    opts = TrainOptions(epochs=1, batch_size=32, patience=0)
    trainers = []
    for name in ("ce", "focal"):
        trainer, _ = training.trainer_for_run(arch, get(name, np.bincount(y[:90])), opts, 3)
        assert trainer.fit(x[:90], y[:90], x[90:], y[90:]).status == "ok"
        trainers.append(trainer)
    ce, focal = trainers
    assert ce is not focal and ce.model is focal.model
    assert ce._logits is focal._logits and ce._weights_finite is focal._weights_finite
    assert ce._logits.experimental_get_tracing_count() == 1  # validation of both losses
    assert ce._loss_values is not focal._loss_values  # each loss's values traced on its own


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_the_losses_of_one_model_share_its_forward_pass_and_update_and_train_as_alone(precision):
    """A loss trained after another on the same model (its traced forward pass, optimizer and
    update shared, the optimizer left in the first run's state, another learning rate) trains
    exactly as when it is the process's first run."""
    rng = np.random.default_rng(0)
    x, y = rng.random((160, 8), dtype=np.float32), np.arange(160) % 3
    x[:, 0] += y
    arch = {"name": "mlp", "n_features": 8, "n_classes": 3, "precision": precision}

    def run(name, lr, seed):
        opts = TrainOptions(epochs=3, batch_size=32, patience=0, lr=lr, seed=seed,
                            precision=precision)  # fmt: skip
        trainer, _ = training.trainer_for_run(arch, get(name, np.bincount(y[:120])), opts, 3)
        fit = trainer.fit(x[:120], y[:120], x[120:], y[120:])
        assert fit.status == "ok", fit.reason
        history = pd.DataFrame(fit.history).drop(columns=["seconds"])
        return trainer, history, trainer.predict_logits(x[120:])

    training.clear_step_cache()
    ce, _, _ = run("ce", 3e-2, 1)
    focal, history, logits = run("focal", 1e-3, 0)
    assert ce is not focal and ce.optimizer is focal.optimizer
    assert ce._forward is focal._forward and ce._apply is focal._apply
    assert ce._forward.experimental_get_tracing_count() == 1
    assert ce._apply.experimental_get_tracing_count() == 1
    training.clear_step_cache()
    alone, history_0, logits_0 = run("focal", 1e-3, 0)
    assert alone.optimizer is not ce.optimizer
    pd.testing.assert_frame_equal(history, history_0)
    np.testing.assert_array_equal(logits, logits_0)


def test_autobalance_traces_one_hypergradient_for_its_batch_pairs():
    rng = np.random.default_rng(0)
    x, y = rng.random((300, 8), dtype=np.float32), np.arange(300) % 3
    loss = get("autobalance", np.bincount(y[:240]), warmup=0.0, interval=1)
    assert loss.upper_pairs > 1
    opts = TrainOptions(epochs=2, batch_size=64, patience=0)
    model = build_model("mlp", 8, 3, head=loss.head, scale=loss.scale)
    trainer = training.Trainer(model, loss, opts, 3)
    assert trainer.fit(x[:240], y[:240], x[240:], y[240:]).status == "ok"
    assert trainer.upper_updates > 1
    assert trainer._hypergradient.experimental_get_tracing_count() == 1
    assert trainer._upper_update.experimental_get_tracing_count() == 1


def test_the_compiled_upper_update_is_the_eager_one():
    counts = [50, 30, 20]
    losses = [get("autobalance", counts) for _ in range(2)]
    optimizers = [keras.optimizers.Adam(0.05) for _ in losses]
    rng = np.random.default_rng(1)
    shapes = [tuple(v.shape) for v in losses[0].upper_variables]
    for _ in range(3):  # three steps, so that Adam's moments matter
        grads = [[tf.constant(rng.normal(size=s), tf.float32) for s in shapes] for _ in range(4)]
        values = [tf.constant(float(v)) for v in rng.random(4)]
        eager = bilevel.upper_update(losses[0], optimizers[0], values, grads)
        compiled = bilevel.compiled_upper_update(losses[1], optimizers[1])(values, grads)
        assert float(eager) == float(compiled) == pytest.approx(float(np.mean(values)))
    for a, b in zip(losses[0].upper_variables, losses[1].upper_variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(losses[0].upper_variables[0]), np.zeros(shapes[0]))


def _distance_to_polyline(px, py, x, y):
    """Distance of each point (px, py) to the polyline through (x, y)."""
    ax, ay, bx, by = x[:-1], y[:-1], x[1:], y[1:]
    dx, dy = bx - ax, by - ay
    length2 = np.where(dx * dx + dy * dy > 0, dx * dx + dy * dy, 1.0)
    t = np.clip(((px[:, None] - ax) * dx + (py[:, None] - ay) * dy) / length2, 0.0, 1.0)
    return np.hypot(px[:, None] - (ax + t * dx), py[:, None] - (ay + t * dy)).min(axis=1)


def test_thinned_curves_draw_the_same_line_with_fewer_points():
    from sklearn.metrics import precision_recall_curve

    from lossbench.report.overlays import CURVE_STEP, thin_curve

    rng = np.random.default_rng(0)
    y = rng.random(20_000) < 0.05
    score = rng.random(20_000) + 0.5 * y
    precision, recall, _ = precision_recall_curve(y, score)
    x_thin, y_thin = thin_curve(recall, precision)
    assert len(x_thin) < len(recall) / 5
    assert (x_thin[0], y_thin[0], x_thin[-1], y_thin[-1]) == (
        recall[0], precision[0], recall[-1], precision[-1]
    )  # fmt: skip
    assert _distance_to_polyline(recall, precision, x_thin, y_thin).max() <= CURVE_STEP
    short = (np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.2, 0.1]))
    assert all(np.array_equal(a, b) for a, b in zip(thin_curve(*short), short, strict=True))


@pytest.mark.parametrize("n_classes", [2, 5])
def test_both_routes_of_the_bootstrap_auprc_give_the_same_values(monkeypatch, n_classes):
    from sklearn.metrics import average_precision_score

    from lossbench.metrics import significance

    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 300)
    proba = np.round(rng.dirichlet(np.ones(n_classes), 300), 2)  # rounded: tied scores
    counts = significance.resample_counts(300, 50, [0, 1])
    by_matrix = significance.resampled_metric(y, proba, "macro_auprc", counts)
    monkeypatch.setattr(significance, "_AP_MATRIX_CELLS", 0)
    by_sorting = significance.resampled_metric(y, proba, "macro_auprc", counts)
    np.testing.assert_allclose(by_matrix, by_sorting, rtol=0, atol=1e-12)
    rows = np.repeat(np.arange(300), counts[7].astype(int))
    present = np.unique(y[rows])
    reference = np.mean([average_precision_score(y[rows] == k, proba[rows, k]) for k in present])
    assert by_matrix[7] == pytest.approx(reference, abs=1e-12)


def test_runs_keep_tensorflows_compiled_functions(cli, tmp_path, monkeypatch):
    """Seeding a run and ending it leave TensorFlow's kernel caches alone: emptied, the next
    run of the process re-instantiated every compiled function it called."""
    from tensorflow.python import pywrap_tfe

    cleared: list[int] = []
    real = pywrap_tfe.TFE_ContextClearCaches

    def counting(handle):
        cleared.append(1)
        return real(handle)

    monkeypatch.setattr(pywrap_tfe, "TFE_ContextClearCaches", counting)
    res = cli("compare", "--out", tmp_path, *FAST, "--losses", "ce,focal", "--seeds", "0,1",
              "--epochs", "1")  # fmt: skip
    assert res.code == 0, res.err
    assert cleared == []
    training.seed_everything(3)
    training.end_run_session()
    assert cleared == []
