"""`compare --tune N` and the data-level baselines (issue 16, SPEC 9)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N_TRIALS = 4  # trials 2 and 3 may be pruned (the pruner waits for 2 completed ones)


def _tiny_csv(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A two-class CSV, about 15% positives, with some signal in the features."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.15).astype(int)
    X = rng.normal(size=(n, 5)) + y[:, None] * 2.5
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame["Label"] = np.where(y == 1, "attack", "benign")
    frame.to_csv(path, index=False)
    return path


def _tune_args(csv: Path, out: Path) -> list[str]:
    return [
        "compare",
        "--data",
        str(csv),
        "--losses",
        "ce,focal",
        "--seeds",
        "1",
        "--tune",
        str(N_TRIALS),
        "--epochs",
        "5",
        "--patience",
        "1",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
        "--model",
        "mlp",
        "--device",
        "cpu",
        "--no-cache",
        "--quiet",
        "--out",
        str(out),
    ]


def _experiment(out: Path) -> Path:
    (exp,) = [p for p in out.iterdir() if (p / "experiment.json").exists()]
    return exp


def _chosen(exp: Path) -> dict:
    return json.loads((exp / "experiment.json").read_text())["tuning"]["chosen"]


def _trials(exp: Path, method: str) -> pd.DataFrame:
    frame = pd.read_csv(exp / "tuning" / method / "trials.csv")
    return frame.drop(columns=["seconds"])  # the one column that is not a result


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory) -> Path:
    return _tiny_csv(tmp_path_factory.mktemp("tune_data") / "tiny.csv")


@pytest.fixture(scope="module")
def reference(tiny_csv, tmp_path_factory) -> Path:
    """An uninterrupted tuned compare."""
    from lossbench.cli import main

    out = tmp_path_factory.mktemp("tune_ref")
    assert main(_tune_args(tiny_csv, out)) == 0
    return _experiment(out)


def test_losses_show_the_search_ranges(cli):
    res = cli("losses", "--json")
    assert res.code == 0
    rows = {r["name"]: r for r in json.loads(res.out)}
    assert rows["focal"]["search"] == {"gamma": "uniform [0, 5]"}
    assert rows["cb"]["search"]["beta"] == "one of 0.9, 0.99, 0.999, 0.9999"
    assert rows["ce"]["search"] == {}
    assert "lr (learning rate)" in cli("losses").out


def test_every_default_lies_in_its_search_range():
    """Trial 0 of every tuning is the defaults, which needs them inside the space."""
    from lossbench.losses import LOSSES
    from lossbench.tuning import search_space

    for name, cls in LOSSES.items():
        space = search_space(name)
        assert space, name
        for key, dist in space.items():
            if key == "lr":
                assert dist.low < 1e-3 < dist.high and dist.log
                continue
            default = cls.PARAMS[key].default
            assert dist._contains(dist.to_internal_repr(default)), (name, key)


def test_tuning_is_reproducible_equal_budget_and_never_sees_test_rows(
    reference, tiny_csv, tmp_path, monkeypatch
):
    """The same command with the test split of seed 0 (the tuning seed) poisoned with NaN: every
    trial receives only training and validation rows, every objective is finite and equal to the
    unpoisoned run's, and the chosen parameters are identical."""
    import lossbench.experiment as experiment
    import lossbench.tuning as tuning
    from lossbench.cli import main

    real_data, real_trial = experiment.data_for_seed, tuning.run_trial
    test_ids: set[int] = set()

    def poisoned(opts, seed):
        data = real_data(opts, seed)
        if seed != 0:
            return data
        test_ids.update(np.asarray(data.ids_test).tolist())
        return dataclasses.replace(data, X_test=np.full_like(np.asarray(data.X_test), np.nan))

    seen: list[set[int]] = []

    def spy(method, params, lr, topts, split, device, **kw):
        assert not hasattr(split, "X_test") and not hasattr(split, "ids_test")
        assert np.isfinite(split.X_train).all() and np.isfinite(split.X_val).all()
        seen.append(set(np.asarray(split.ids_train).tolist()) | set(split.ids_val.tolist()))
        return real_trial(method, params, lr, topts, split, device, **kw)

    monkeypatch.setattr(experiment, "data_for_seed", poisoned)
    monkeypatch.setattr(tuning, "run_trial", spy)
    out = tmp_path / "again"
    assert main(_tune_args(tiny_csv, out)) == 0
    exp = _experiment(out)

    assert len(seen) == 2 * N_TRIALS and test_ids
    assert all(not (ids & test_ids) for ids in seen)
    for method in ("ce", "focal"):
        trials = _trials(exp, method)
        assert len(trials) == N_TRIALS and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
        done = trials["state"] == "COMPLETE"
        assert np.isfinite(trials["value"][done]).all() and trials["value"][~done].isna().all()
        pd.testing.assert_frame_equal(trials, _trials(reference, method))
    assert list(_trials(reference, "ce").columns[-2:]) == ["intermediate", "param_lr"]
    assert list(_trials(reference, "focal").columns[-1:]) == ["param_gamma"]
    assert _chosen(exp) == _chosen(reference)
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["tuning"]["trials"] == N_TRIALS
    assert {m: c["n_trials"] for m, c in meta["tuning"]["chosen"].items()} == {
        "ce": N_TRIALS,
        "focal": N_TRIALS,
    }


def test_tuned_rows_sit_beside_the_defaults_with_the_chosen_parameters(tiny_csv, tmp_path):
    from lossbench.cli import main

    # --lr 1e-5 lies outside ce's search range [1e-4, 1e-2], so ce has no trial of its defaults
    # and gets a @tuned row for sure; focal's defaults (gamma 2) may or may not win
    args = _tune_args(tiny_csv, tmp_path)
    args[args.index("--lr") + 1] = "0.00001"
    assert main(args) == 0
    reference = _experiment(tmp_path)
    chosen = _chosen(reference)
    # a method whose defaults won has no @tuned row (see test_defaults_chosen_...)
    tuned = [m for m in ("ce", "focal") if not chosen[m]["defaults_chosen"]]
    assert "ce" in tuned, chosen
    table = pd.read_csv(reference / "summary" / "table_average.csv")
    expected = [r for m in ("ce", "focal") for r in [m, f"{m}@tuned"][: 2 if m in tuned else 1]]
    assert table["loss"].tolist() == expected
    sig = pd.read_csv(reference / "summary" / "significance.csv")
    assert {f"{m}@tuned" for m in tuned} <= set(sig["method_a"]) | set(sig["method_b"])
    for method, param in (("ce", "lr"), ("focal", "gamma")):
        run = reference / "runs" / f"{method}@tuned_seed1"
        if method not in tuned:  # the defaults (trial 0) won: no @tuned run is trained
            assert not run.exists()
            continue
        config = json.loads((run / "config.json").read_text())
        value = config["train"]["lr"] if param == "lr" else config["params"][param]
        want = chosen[method]["lr"] if param == "lr" else chosen[method]["params"][param]
        assert value == want
        trials = _trials(reference, method)
        assert trials["value"].nunique() > 1  # the choice is an argmax, not a tie at trial 0
        done = trials[trials["state"] == "COMPLETE"]
        best = done.sort_values(["value", "number"], ascending=[False, True]).iloc[0]
        assert want == best[f"param_{param}"]


# A compare whose process SIGKILLs itself once it has stored KILL_AFTER trials (as an
# out-of-memory killer would): the fault is injected here, not in lossbench.
KILL_AFTER = 2
_KILLING_MAIN = f"""
import os, signal, sys
import lossbench.tuning as tuning
real_tell = tuning.MethodStudy.tell
stored = []
def tell(self, trial, outcome):
    real_tell(self, trial, outcome)
    stored.append(trial.number)
    if len(stored) >= {KILL_AFTER}:
        os.kill(os.getpid(), signal.SIGKILL)
tuning.MethodStudy.tell = tell
from lossbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_during_tuning_then_rerun_chooses_the_same(reference, tiny_csv, tmp_path):
    out = tmp_path / "killed"
    args = _tune_args(tiny_csv, out)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLING_MAIN, *args], env=env, capture_output=True, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL
    exp = _experiment(out)
    assert len(pd.read_csv(exp / "tuning" / "ce" / "trials.csv")) == KILL_AFTER
    assert not (exp / "tuning" / "focal" / "trials.csv").exists()
    assert not (exp / "runs").exists()
    cmd = [sys.executable, "-m", "lossbench.cli", *args]
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert _experiment(out) == exp
    assert _chosen(exp) == _chosen(reference)
    for method in ("ce", "focal"):
        pd.testing.assert_frame_equal(_trials(exp, method), _trials(reference, method))
    # the pruner replayed the stored trials' reported values: the same trials were pruned after
    # the restart as without it (a trial after the kill point among them)
    pruned = _trials(exp, "ce").query("state == 'PRUNED'")["number"]
    assert (pruned >= KILL_AFTER).any()


# ----------------------------------------------------------------------------------------------
# pruning (issue 35)


def test_pruned_trials_are_stored_as_pruned_and_never_chosen(reference):
    for method in ("ce", "focal"):
        trials = _trials(reference, method)
        pruned = trials[trials["state"] == "PRUNED"]
        assert len(pruned) >= 1, method
        assert (pruned["stopped_by"] == "pruned").all()
        assert (pruned["epochs_run"] < 5).all()  # stopped before the epoch cap
        assert pruned["value"].isna().all()
        for text, run in zip(pruned["intermediate"], pruned["epochs_run"], strict=True):
            assert [step for step, _ in json.loads(text)] == list(range(1, run + 1))
        assert _chosen(reference)[method]["trial"] not in set(pruned["number"])
        assert _chosen(reference)[method]["n_pruned"] == len(pruned)


def test_the_pruner_is_the_same_for_every_method_and_recorded(reference):
    tuning = json.loads((reference / "experiment.json").read_text())["tuning"]
    assert tuning["pruner"]["name"] == "MedianPruner"
    assert tuning["pruner"]["n_warmup_steps"] == 1  # --patience 1
    assert [c["pruner"] for c in tuning["chosen"].values()] == [tuning["pruner"]] * 2


def test_no_prune_trains_every_trial_to_its_stop_in_its_own_experiment(
    reference, tiny_csv, tmp_path
):
    from lossbench.cli import main

    out = tmp_path / "unpruned"
    args = [a if a != "ce,focal" else "focal" for a in _tune_args(tiny_csv, out)]
    assert main([*args, "--no-prune"]) == 0
    exp = _experiment(out)
    tuning = json.loads((exp / "experiment.json").read_text())["tuning"]
    assert tuning["pruner"] is None and tuning["chosen"]["focal"]["pruner"] is None
    trials = _trials(exp, "focal")
    assert (trials["state"] == "COMPLETE").all()
    assert (trials["stopped_by"] != "pruned").all()
    # the trials the pruner let finish are the same trials, with the same values
    ref = _trials(reference, "focal")
    kept = ref["state"] == "COMPLETE"
    pd.testing.assert_frame_equal(trials[kept.to_numpy()], ref[kept])
    key = json.loads((exp / "experiment.json").read_text())["config_key"]
    assert key != json.loads((reference / "experiment.json").read_text())["config_key"]


def test_the_pruner_stops_a_trial_below_the_median_after_the_warm_up():
    """Completed trials that reported 1.0 at every epoch (one is enough: `PRUNER_STARTUP_TRIALS`):
    a new trial reporting less is not stopped during the warm-up, and stopped at its end;
    without history it never is."""
    from lossbench.tuning import PruningHistory, pruner_spec

    spec = pruner_spec(patience=3)
    history = PruningHistory(spec, (("COMPLETE", 1.0, {e: 1.0 for e in range(1, 9)}),) * 2)
    check = history.checker()
    assert [check(epoch, 0.5) for epoch in range(1, 5)] == [False, False, True, True]
    check = history.checker()
    assert not any(check(epoch, 1.0) for epoch in range(1, 9))  # not below the median
    check = PruningHistory(spec, history.trials[:1]).checker()  # one completed trial: enough
    assert [check(epoch, 0.5) for epoch in range(1, 5)] == [False, False, True, True]
    check = PruningHistory(spec, ()).checker()  # no completed trial: too few
    assert not any(check(epoch, 0.5) for epoch in range(1, 9))


def test_a_trial_run_under_the_pruner_stops_and_says_so():
    """A real trial against completed trials that reported a perfect 1.0 at every epoch, on
    labels a model cannot learn: stopped at the end of the warm-up, value NaN, reports kept."""
    from lossbench.config import TrainOptions
    from lossbench.tuning import PruningHistory, TuningSplit, pruner_spec, run_trial

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = (rng.random(120) < 0.3).astype(np.int64)
    ids = np.arange(120)
    split = TuningSplit(X[:80], y[:80], ids[:80], X[80:], y[80:], ids[80:], 4, 2)
    opts = TrainOptions(model="mlp", epochs=6, batch_size=16, patience=2, device="cpu")
    perfect = (("COMPLETE", 1.0, {e: 1.0 for e in range(1, 7)}),) * 2
    history = PruningHistory(pruner_spec(opts.patience), perfect)
    outcome = run_trial("ce", {}, None, opts, split, "CPU", pruning=history)
    assert max(outcome["intermediate"].values()) < 1.0  # labels independent of the features
    assert outcome["pruned"] and outcome["stopped_by"] == "pruned"
    assert outcome["epochs_run"] == 2 and sorted(outcome["intermediate"]) == [1, 2]
    assert np.isnan(outcome["value"])
    free = run_trial("ce", {}, None, opts, split, "CPU")
    assert not free["pruned"] and free["epochs_run"] > 2


# ----------------------------------------------------------------------------------------------
# data-level baselines


def test_resampling_baselines_keep_val_and_test_and_balance_training(cli, tmp_path, monkeypatch):
    from lossbench.training import Trainer

    csv = _tiny_csv(tmp_path / "two.csv")
    seen: list[dict] = []
    real_fit = Trainer.fit

    real_batches = Trainer.epoch_batches

    def spy(self, X_train, y_train, X_val, y_val, **kw):
        seen.append({"train": np.bincount(y_train, minlength=2), "epoch0": []})
        return real_fit(self, X_train, y_train, X_val, y_val, **kw)

    def batches(self, epoch):  # the labels of every batch the trainer trains on in epoch 0
        for idx in real_batches(self, epoch):
            if epoch == 0:
                seen[-1]["epoch0"].extend(self._y_tr_np[np.asarray(idx)].tolist())
            yield idx

    monkeypatch.setattr(Trainer, "fit", spy)
    monkeypatch.setattr(Trainer, "epoch_batches", batches)
    methods = ["ce", "ce+ros", "ce+rus", "ce+smote", "ce+balanced-batches"]
    res = cli(
        "compare", "--data", csv, "--losses", ",".join(methods), "--seeds", "0",
        "--epochs", "1", "--model", "mlp", "--device", "cpu", "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert res.code == 0, res.err
    exp = _experiment(tmp_path / "out")
    by_method = dict(zip(methods, seen, strict=True))  # runs go in --losses order

    # the validation and test rows are the same for every method
    for name in ("predictions.parquet", "predictions_val.parquet"):
        ref = pd.read_parquet(exp / "runs" / "ce_seed0" / name)[["row_id", "y_true"]]
        for m in methods[1:]:
            got = pd.read_parquet(exp / "runs" / f"{m}_seed0" / name)[["row_id", "y_true"]]
            pd.testing.assert_frame_equal(got, ref)

    # the original training counts: the CSV's counts minus the validation and test rows
    labels = pd.read_csv(csv)["Label"]
    total = np.array([(labels == "attack").sum(), (labels == "benign").sum()])
    held_out = sum(
        np.bincount(pd.read_parquet(exp / "runs" / "ce_seed0" / n)["y_true"], minlength=2)
        for n in ("predictions.parquet", "predictions_val.parquet")
    )
    train = total - held_out
    assert train.min() < train.max()
    np.testing.assert_array_equal(by_method["ce"]["train"], train)
    np.testing.assert_array_equal(by_method["ce+ros"]["train"], [train.max()] * 2)
    np.testing.assert_array_equal(by_method["ce+smote"]["train"], [train.max()] * 2)
    np.testing.assert_array_equal(by_method["ce+rus"]["train"], [train.min()] * 2)
    np.testing.assert_array_equal(by_method["ce+balanced-batches"]["train"], train)
    # what the trainer's batches held in epoch 0: every training row once, balanced for ros,
    # smote and rus; rows drawn about half from each class for balanced-batches
    saw = {m: np.bincount(by_method[m]["epoch0"], minlength=2) for m in methods}
    np.testing.assert_array_equal(saw["ce"], train)
    np.testing.assert_array_equal(saw["ce+ros"], [train.max()] * 2)
    np.testing.assert_array_equal(saw["ce+smote"], [train.max()] * 2)
    np.testing.assert_array_equal(saw["ce+rus"], [train.min()] * 2)
    assert saw["ce+balanced-batches"].sum() == train.sum()
    majority_share = saw["ce+balanced-batches"][1] / train.sum()  # class 1: benign
    assert 0.35 < majority_share < 0.65  # about half, against 0.85 without balancing
    for m in methods:
        recorded = json.loads((exp / "runs" / f"{m}_seed0" / "metrics.json").read_text())
        assert recorded["train_class_counts"] == by_method[m]["train"].tolist()
    table = pd.read_csv(exp / "summary" / "table_average.csv")
    assert table["loss"].tolist() == methods


def test_data_level_baselines_reach_every_table_the_tests_and_the_leaderboard(cli, tmp_path):
    """A compare over two datasets with three seeds: ce+ros and ce+rus are rows of every summary
    table that lists ce, methods of the significance tests, and methods of the leaderboard."""
    data = [_tiny_csv(tmp_path / f"d{i}.csv", seed=i) for i in (1, 2)]
    methods = ["ce", "ce+ros", "ce+rus"]
    res = cli(
        "compare", "--data", data[0], "--data", data[1], "--losses", ",".join(methods),
        "--seeds", "0,1,2", "--epochs", "1", "--model", "mlp", "--device", "cpu",
        "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert res.code == 0, res.err
    exps = sorted(p for p in (tmp_path / "out").iterdir() if (p / "experiment.json").exists())
    assert len(exps) == 2
    for exp in exps:
        tables = sorted((exp / "summary").glob("*.csv"))
        assert len(tables) >= 5
        for table in tables:
            frame = pd.read_csv(table)
            column = next(c for c in ("loss", "method", "method_a") if c in frame.columns)
            listed = set(frame[column])
            if table.name == "significance.csv":
                listed |= set(frame["method_b"])
            if "ce" in listed:
                assert {"ce+ros", "ce+rus"} <= listed, table.name
        sig = pd.read_csv(exp / "summary" / "significance.csv")
        pairs = set(zip(sig["method_a"], sig["method_b"], strict=True))
        assert {("ce+ros", "ce"), ("ce+rus", "ce")} <= pairs | {(b, a) for a, b in pairs}
        assert sig["p_value"].notna().any()  # three seeds: a test was run
    (board,) = (tmp_path / "out").glob("leaderboard_*")
    ranks = pd.read_csv(board / "average_ranks.csv")
    assert set(ranks["method"]) == set(methods)


def test_balanced_batches_depend_on_seed_and_epoch_only():
    from lossbench.data.resample import balanced_epoch_order

    y = np.array([0] * 90 + [1] * 10)
    a = balanced_epoch_order(3, 1, y)
    np.testing.assert_array_equal(a, balanced_epoch_order(3, 1, y.copy()))
    assert not np.array_equal(a, balanced_epoch_order(3, 2, y))
    assert not np.array_equal(a, balanced_epoch_order(4, 1, y))
    shares = [y[balanced_epoch_order(0, e, y)].mean() for e in range(20)]
    assert abs(np.mean(shares) - 0.5) < 0.05


def test_random_oversampling_repeats_training_rows_only():
    from lossbench.data.resample import resample_training

    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3)).astype(np.float32)
    y = np.array([0] * 40 + [1] * 10)
    Xr, yr = resample_training(X, y, "ros", seed=0)
    assert np.bincount(yr).tolist() == [40, 40]
    originals = {tuple(row) for row in X}
    assert all(tuple(row) in originals for row in Xr)
    Xr2, yr2 = resample_training(X, y, "ros", seed=0)
    np.testing.assert_array_equal(Xr, Xr2)


@pytest.mark.parametrize(
    ("losses", "needle"),
    [("ce+foo", "unknown sampler"), ("nope+ros", "unknown loss"), ("ce@tuned", "--tune")],
)
def test_bad_method_names_exit_2_and_leave_nothing(cli, tmp_path, losses, needle):
    res = cli("compare", "--losses", losses, "--out", tmp_path / "out", "--epochs", "1")
    assert res.code == 2
    assert needle in res.err and "Traceback" not in res.err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.ray
@pytest.mark.slow  # a Ray start-up (about 1.5 minutes on 2 cores); make test-slow
def test_ray_trials_choose_what_the_local_executor_chooses(reference, tiny_csv, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (make install-ray)")
    from lossbench.cli import main

    out = tmp_path / "ray"
    assert main([*_tune_args(tiny_csv, out), "--executor", "ray"]) == 0
    exp = _experiment(out)
    assert _chosen(exp) == _chosen(reference)
    for method in ("ce", "focal"):
        pd.testing.assert_frame_equal(_trials(exp, method), _trials(reference, method))
    assert (exp / "runs" / "focal@tuned_seed1" / "DONE").exists()


def test_defaults_chosen_are_not_retrained_and_are_said_so(tmp_path, capsys, monkeypatch):
    """`--tune 2` where trial 0 (the defaults, lr 0.001) wins on well-separated classes: no
    `ce@tuned` run is trained; the terminal line and the report's Tuning section say "defaults
    chosen", and the report links the default run's results."""
    from lossbench.cli import main

    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.3).astype(int)
    frame = pd.DataFrame(rng.normal(size=(200, 4)) + y[:, None] * 12)
    frame.columns = [f"f{i}" for i in range(4)]
    frame["Label"] = np.where(y == 1, "attack", "benign")
    csv = tmp_path / "separable.csv"
    frame.to_csv(csv, index=False)
    monkeypatch.setenv("COLUMNS", "200")
    args = ["compare", "--data", csv, "--losses", "ce", "--seeds", "0", "--tune", "2"]
    args += ["--epochs", "2", "--batch-size", "16", "--model", "mlp", "--device", "cpu"]
    capsys.readouterr()
    assert main([str(a) for a in [*args, "--no-cache", "--out", tmp_path / "out"]]) == 0
    out = capsys.readouterr().out
    exp = _experiment(tmp_path / "out")
    trials = _trials(exp, "ce")
    assert trials.loc[0, "param_lr"] == 0.001  # trial 0 is the defaults ...
    assert trials["value"].idxmax() == 0 and trials["value"].nunique() == 2  # ... and wins
    assert _chosen(exp)["ce"]["defaults_chosen"] is True
    assert sorted(p.name for p in (exp / "runs").iterdir()) == ["ce_seed0"]  # no retrain
    assert pd.read_csv(exp / "summary" / "table_average.csv")["loss"].tolist() == ["ce"]
    assert "tuned ce: defaults chosen (trial 0 of 2" in out
    html = (exp / "summary" / "report.html").read_text()
    section = html[html.index("<h2>Tuning</h2>") :]
    assert "defaults chosen" in section and 'href="#run-ce_seed0"' in section
    assert 'id="run-ce_seed0"' in html
    assert "None: every run completed." in html  # no ce@tuned planned and missing
