"""Users' own losses: `[ALIAS=]MODULE:ATTR` specs, plugins, provenance (issue 32)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from lossbench.errors import InputError

FAST = ("--device", "cpu", "--model", "mlp", "--quiet")

DOUBLE_CE = """
from keras import ops


def ce(y, z):
    return -ops.sum(y * ops.log_softmax(z, axis=-1), axis=-1)


def double_ce(y, z):
    return 2 * ce(y, z)
"""

POLY_CLASS = """
from keras import ops

from lossbench.losses import LossbenchLoss, Param


class Poly1(LossbenchLoss):
    NAME = "poly1"
    FORMULA = "CE + epsilon (1 - p_y)"
    PARAMS = {
        "epsilon": Param(1.0, "weight of the poly term", low=-1.0, high=5.0, search=(0.0, 2.0))
    }

    def __init__(self, class_counts, **kwargs):
        super().__init__(class_counts, **kwargs)
        self.epsilon = self.constant(self.params["epsilon"], "epsilon")

    def call(self, y_true, logits):
        labels, logits = self.prepare(y_true, logits)
        log_p = ops.take_along_axis(ops.log_softmax(logits, axis=-1), labels[:, None], axis=-1)
        log_p = ops.squeeze(log_p, axis=-1)
        return -log_p + self.read(self.epsilon, log_p) * (1 - ops.exp(log_p))
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _experiments(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/experiment.json"))


def test_function_loss_gets_the_protocol_of_a_builtin(cli, tmp_path):
    mod = _write(tmp_path, "my_losses.py", DOUBLE_CE)
    out = tmp_path / "out"
    args = ("compare", "--out", out, "--losses", f"ce,double={mod}:double_ce", "--seeds", "0")
    res = cli(*args, "--epochs", "3", *FAST)
    assert res.code == 0, res.err
    (exp,) = _experiments(out)
    cfg = {
        name: json.loads((exp / "runs" / f"{name}_seed0" / "config.json").read_text())
        for name in ("ce", "double")
    }
    assert cfg["ce"]["initial_weights_sha256"] == cfg["double"]["initial_weights_sha256"]
    assert cfg["ce"]["batch_order_sha256"] == cfg["double"]["batch_order_sha256"]
    assert cfg["double"]["user_code"]["sha256"] is not None
    assert cfg["double"]["user_code"]["path"] == str(mod.resolve())
    hist = {name: pd.read_csv(exp / "runs" / f"{name}_seed0" / "history.csv") for name in cfg}
    first_ce, first_double = hist["ce"]["loss"].iloc[0], hist["double"]["loss"].iloc[0]
    assert first_double == pytest.approx(2 * first_ce, rel=1e-3)
    summary = exp / "summary"
    tables = [*summary.glob("table_*.csv"), summary / "significance.csv"]
    assert len(tables) >= 4
    for table in tables:
        cells = set(pd.read_csv(table).astype(str).values.ravel())
        assert "double" in cells, table
    assert ">double<" in (summary / "report.html").read_text()
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["user_code"]["double"]["spec"] == f"double={mod}:double_ce"

    # the same command again resumes (trains nothing); an edited loss starts a new experiment
    done = {p: p.stat().st_mtime_ns for p in exp.glob("runs/*/DONE")}
    assert cli(*args, "--epochs", "3", *FAST).code == 0
    assert _experiments(out) == [exp]
    assert {p: p.stat().st_mtime_ns for p in exp.glob("runs/*/DONE")} == done
    mod.write_text(mod.read_text() + "\n# edited\n")
    assert cli(*args, "--epochs", "3", *FAST).code == 0
    assert len(_experiments(out)) == 2

    # the report reads stored predictions only: it works with the user's file gone
    mod.unlink()
    res = cli("report", exp, "--quiet")
    assert res.code == 0, res.err


def test_lossbench_subclass_is_tuned_over_its_declared_range(cli, tmp_path):
    mod = _write(tmp_path, "poly.py", POLY_CLASS)
    out = tmp_path / "out"
    res = cli(
        "compare", "--out", out, "--losses", f"{mod}:Poly1", "--seeds", "0", "--epochs", "1",
        "--tune", "2", *FAST,
    )  # fmt: skip
    assert res.code == 0, res.err
    (exp,) = _experiments(out)
    trials = pd.read_csv(exp / "tuning" / "poly1" / "trials.csv")
    assert len(trials) == 2
    assert any("epsilon" in c for c in trials.columns), trials.columns
    # the chosen trial is retrained as poly1@tuned, unless the defaults won (issue 34: then the
    # default run stands for it and nothing is retrained)
    chosen = json.loads((exp / "experiment.json").read_text())["tuning"]["chosen"]["poly1"]
    retrained = (exp / "runs" / "poly1@tuned_seed0" / "DONE").exists()
    assert retrained != bool(chosen.get("defaults_chosen")), chosen


def test_keras_loss_class_runs_with_its_parameters(cli, tmp_path):
    out = tmp_path / "out"
    res = cli(
        "run", "--out", out, "--loss", "keras.losses:CategoricalFocalCrossentropy",
        "--param", "gamma=2", "--epochs", "1", *FAST,
    )  # fmt: skip
    assert res.code == 0, res.err
    run_dir = Path(res.out.strip().splitlines()[-1])
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["params"] == {"gamma": 2}
    assert cfg["user_code"]["kind"] == "keras"


BAD_SPECS = {
    "import": ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
    "attribute": ("{mod}:nope", "has no attribute 'nope'"),
    "not_callable": ("{mod}:NUMBER", "neither a loss class nor a callable"),
    "raises": ("{mod}:raises", "raised on a probe batch: ZeroDivisionError"),
    "shape": ("{mod}:wrong_shape", "returned shape"),
    "builtin_name": ("ce={mod}:double_ce", "is a built-in loss"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_loss_spec_exits_2_with_one_line_and_no_folder(cli, tmp_path, case):
    mod = _write(
        tmp_path,
        "bad_losses.py",
        DOUBLE_CE
        + "\nNUMBER = 3\n\ndef raises(y, z):\n    return 1 / 0\n\n"
        + "def wrong_shape(y, z):\n    return z\n",
    )
    spec, needle = BAD_SPECS[case]
    out = tmp_path / "out"
    res = cli("compare", "--out", out, "--losses", spec.format(mod=mod), "--epochs", "1", *FAST)
    assert res.code == 2, res.err
    assert needle in res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert "Traceback" not in res.err
    assert not out.exists()


def test_two_specs_with_one_name_clash(cli, tmp_path):
    mod = _write(tmp_path, "my_losses.py", DOUBLE_CE)
    out = tmp_path / "out"
    specs = (f"a={mod}:ce", f"a={mod}:double_ce")
    res = cli("compare", "--out", out, "--losses", ",".join(specs), *FAST)
    assert res.code == 2
    assert all(s in res.err for s in specs), res.err
    assert not out.exists()


# ----------------------------------------------------------------------------------------------
# the Python API


def my_fn(y, z):
    from keras import ops

    return -ops.sum(y * ops.log_softmax(z, axis=-1), axis=-1)


def _frame(rows: int = 240) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.where(rng.random(rows) < 0.25, "attack", "benign")
    X = rng.normal(size=(rows, 6)) + (y == "attack")[:, None]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["y"] = y
    return frame


def test_python_compare_returns_the_tables_it_wrote(tmp_path, capsys):
    import lossbench

    out = tmp_path / "out"
    exp = lossbench.compare(
        data=_frame(), label_col="y", losses=["ce", my_fn], seeds=[0], epochs=2,
        out=out, model="mlp", device="cpu", quiet=True,
    )  # fmt: skip
    assert isinstance(exp, lossbench.Experiment)
    assert capsys.readouterr().out == ""  # quiet=True
    written = pd.read_csv(exp.path / "summary" / "table_average.csv")
    pd.testing.assert_frame_equal(exp.tables["average"], written)
    assert set(written.iloc[:, 0].astype(str)) >= {"ce", "my_fn"}
    again = lossbench.load(exp.path)
    for name, table in exp.tables.items():
        pd.testing.assert_frame_equal(again.tables[name], table)
    assert exp.significance is not None and exp.ranks is not None
    assert exp.report_path.is_file()
    runs = {r.name: r for r in exp.runs}
    assert set(runs) == {"ce_seed0", "my_fn_seed0"}
    assert runs["my_fn_seed0"].metrics["status"] == "ok"
    assert len(runs["my_fn_seed0"].history) == 2
    assert len(runs["ce_seed0"].predictions) > 0
    model = runs["ce_seed0"].model()
    assert model.output_shape == (None, 2)
    # the same call again resumes: the in-memory data is fingerprinted like a file
    same = lossbench.compare(
        data=_frame(), label_col="y", losses=["ce", my_fn], seeds=[0], epochs=2,
        out=out, model="mlp", device="cpu", quiet=True,
    )  # fmt: skip
    assert same.path == exp.path


def test_python_run_with_x_y_and_a_bad_setting(tmp_path):
    import lossbench

    frame = _frame()
    X, y = frame.drop(columns="y").to_numpy(), frame["y"].to_numpy()
    run = lossbench.run(
        data=(X, y), loss="focal", out=tmp_path / "out", epochs=1, model="mlp", device="cpu",
        quiet=True,
    )  # fmt: skip
    assert isinstance(run, lossbench.Run) and run.status == "ok"
    with pytest.raises(lossbench.InputError, match=r"--epochs -3: expected an integer >= 1"):
        lossbench.run(data=(X, y), epochs=-3, out=tmp_path / "bad", quiet=True)
    with pytest.raises(lossbench.InputError, match="unknown setting"):
        lossbench.compare(data=(X, y), epoch=3, out=tmp_path / "bad", quiet=True)
    with pytest.raises(lossbench.InputError, match="neither a loss class nor a callable"):
        lossbench.compare(data=(X, y), losses=[3], out=tmp_path / "bad", quiet=True)
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------------------------
# the user's network

MODELS = """
import keras


def build(n_features, n_classes, units=16):
    inputs = keras.Input(shape=(n_features,))
    x = keras.layers.Dense(units, activation="relu")(inputs)
    x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_classes)(x))


def wrong(n_features, n_classes):
    inputs = keras.Input(shape=(n_features,))
    return keras.Model(inputs, keras.layers.Dense(n_classes + 1)(inputs))
"""


def test_user_network_runs_for_every_loss_and_saves_plain_keras(cli, tmp_path):
    import keras

    mod = _write(tmp_path, "nets.py", MODELS)
    out = tmp_path / "out"
    res = cli(
        "compare", "--out", out, "--losses", "ce,focal", "--seeds", "0", "--epochs", "1",
        "--device", "cpu", "--quiet", "--model", f"{mod}:build", "--model-param", "units=8",
    )  # fmt: skip
    assert res.code == 0, res.err
    (exp,) = _experiments(out)
    cfgs = [
        json.loads((exp / "runs" / f"{m}_seed0" / "config.json").read_text())
        for m in ("ce", "focal")
    ]
    assert cfgs[0]["initial_weights_sha256"] == cfgs[1]["initial_weights_sha256"]
    assert cfgs[0]["user_model"]["sha256"] is not None
    assert cfgs[0]["train"]["model_params"] == {"units": 8}
    model = keras.saving.load_model(exp / "runs" / "ce_seed0" / "model.keras")
    assert [layer.units for layer in model.layers if hasattr(layer, "units")] == [8, 8, 10]
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["user_code"]["--model"]["spec"] == f"{mod}:build"


@pytest.mark.parametrize(
    ("attr", "needle"),
    [("wrong", "output shape (None, 11); expected (None, 10)"), ("nope", "has no attribute")],
)
def test_bad_user_network_exits_2_before_any_folder(cli, tmp_path, attr, needle):
    mod = _write(tmp_path, "nets.py", MODELS)
    out = tmp_path / "out"
    res = cli("run", "--out", out, "--epochs", "1", "--model", f"{mod}:{attr}", "--device", "cpu")
    assert res.code == 2, res.err
    assert needle in res.err and len(res.err.strip().splitlines()) == 1, res.err
    assert not out.exists()


def test_user_loss_that_turns_nan_is_a_failed_run(cli, tmp_path):
    # finite on the probe batch (20 rows), NaN on a training batch of 256
    mod = _write(
        tmp_path,
        "nan_loss.py",
        DOUBLE_CE + "\n\ndef nan_later(y, z):\n    return ce(y, z) + ops.log(50 - ops.sum(y))\n",
    )
    out = tmp_path / "out"
    res = cli("run", "--out", out, "--loss", f"{mod}:nan_later", "--epochs", "2", *FAST)
    assert res.code == 3, res.err


# ----------------------------------------------------------------------------------------------
# plugins


def test_plugin_is_listed_and_runs_by_its_name(cli, tmp_path, monkeypatch):
    import importlib.metadata

    (tmp_path / "lb_poly_plugin.py").write_text(textwrap.dedent(POLY_CLASS))
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = [
        importlib.metadata.EntryPoint(
            name="poly", value="lb_poly_plugin:Poly1", group="lossbench.losses"
        )
    ]
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        return fake if kw.get("group") == "lossbench.losses" else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    res = cli("losses", "--json")
    assert res.code == 0, res.err
    rows = json.loads(res.out)
    plugins = [r for r in rows if r["section"] == "plugins"]
    assert [r["name"] for r in plugins] == ["poly"]
    assert plugins[0]["search"] == {"epsilon": "uniform [0, 2]"}
    assert len([r for r in rows if r["section"] == "built-in"]) == 11
    assert "plugins" in cli("losses").out
    out = tmp_path / "out"
    res = cli(
        "compare", "--out", out, "--losses", "ce,poly", "--seeds", "0", "--epochs", "1", *FAST
    )
    assert res.code == 0, res.err
    (exp,) = _experiments(out)
    assert (exp / "runs" / "poly_seed0" / "DONE").exists()
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["user_code"]["poly"]["spec"] == "plugin poly = lb_poly_plugin:Poly1"
    # `--losses all` stays the eleven built-ins
    from lossbench.losses import names

    assert "poly" not in names() and len(names()) == 11


# ----------------------------------------------------------------------------------------------
# the examples


def test_compare_in_python_example_runs(tmp_path):
    import runpy

    examples = Path(__file__).resolve().parents[1] / "examples"
    module = runpy.run_path(str(examples / "compare_in_python.py"))
    exp = module["main"](tiny=True, out=str(tmp_path / "out"))
    names = set(exp.tables["average"].astype(str).values.ravel())
    assert {"ce", "focal", "double_ce", "poly1"} <= names
    assert all(run.status == "ok" for run in exp.runs)


# ----------------------------------------------------------------------------------------------
# Ray: the user's code travels with each task


def test_a_file_spec_is_shipped_to_a_worker_without_the_file(tmp_path):
    import pickle
    import sys

    import numpy as np

    from lossbench.losses import get, registry
    from lossbench.losses.user import UserCode, unpack

    mod = _write(tmp_path, "shipped_losses.py", DOUBLE_CE)
    name = registry.register(f"shipped={mod}:double_ce")
    before = registry.USER[name]
    payload = pickle.dumps(registry.shipments([f"{name}@tuned"]))
    # a worker: no registration, no module, no file
    registry.USER.pop(name)
    for key in [k for k in sys.modules if k.startswith("_lossbench_user_shipped_losses")]:
        del sys.modules[key]
    mod.unlink()
    registry.unpack_shipments(pickle.loads(payload))
    after = registry.USER[name]
    assert after.provenance() == before.provenance()
    loss = get(name, [3, 2])
    values = np.asarray(loss.call(np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 2.0]])))
    expected = 2 * -np.log(np.exp([1.0, 2.0]) / (np.exp([1.0, 2.0]) + 1.0))
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    # a module the worker cannot import: the message says how to make it importable
    missing = UserCode("gone", "no_such_module_xyz:fn", None, None, "function", None)
    with pytest.raises(InputError, match="every worker must be able to import it"):
        unpack(missing)


@pytest.mark.slow
def test_a_file_spec_runs_under_the_ray_executor(cli, tmp_path):
    pytest.importorskip("ray")
    mod = _write(tmp_path, "my_losses.py", DOUBLE_CE)
    out = tmp_path / "out"
    res = cli(
        "compare", "--out", out, "--losses", f"ce,double={mod}:double_ce", "--seeds", "0",
        "--epochs", "1", "--executor", "ray", *FAST,
    )  # fmt: skip
    assert res.code == 0, res.err
    (exp,) = _experiments(out)
    assert (exp / "runs" / "double_seed0" / "DONE").exists()


def test_keys_of_experiments_without_user_code_are_unchanged():
    """No --model-param and no user code: the key holds exactly the fields it held before."""
    from lossbench.config import RunConfig, TrainOptions, run_defining
    from lossbench.provenance import config_key, resolve_key, user_code_hashes

    assert "model_params" not in run_defining(TrainOptions())
    assert user_code_hashes(["ce", "focal+ros@tuned"], "cnn1d") == {}
    from lossbench.data.pipeline import source_fingerprint

    cfg = RunConfig()
    payload = {
        "command": "compare",
        "data": {**run_defining(cfg.data), "data": source_fingerprint(cfg.data)},
        "train": run_defining(cfg.train),
        "params": {},
    }
    assert resolve_key("compare", cfg, {}) == config_key(payload)


def test_toml_takes_loss_specs_and_network_parameters(cli, tmp_path):
    losses = _write(tmp_path, "my_losses.py", DOUBLE_CE)
    nets = _write(tmp_path, "nets.py", MODELS)
    config = tmp_path / "exp.toml"
    config.write_text(
        f'losses = ["ce", "double={losses}:double_ce"]\nseeds = [0]\nepochs = 1\n'
        f'model = "{nets}:build"\ndevice = "cpu"\n\n[model_param]\nunits = 4\n'
    )
    out = tmp_path / "out"
    res = cli("compare", "--config", config, "--out", out, "--quiet")
    assert res.code == 0, res.err
    (exp,) = _experiments(out)
    cfg = json.loads((exp / "runs" / "double_seed0" / "config.json").read_text())
    assert cfg["train"]["model_params"] == {"units": 4}
    assert cfg["user_code"]["spec"] == f"double={losses}:double_ce"


def test_a_factory_gets_the_class_counts_and_a_scalar_loss_is_spread_over_the_batch():
    import numpy as np
    from keras import ops

    from lossbench.losses import FunctionLoss, get, registry

    seen = {}

    def weighted(class_counts, power=1.0):
        seen["counts"] = class_counts
        w = (max(class_counts) / np.asarray(class_counts, dtype="float32")) ** power

        def loss(y, z):  # a scalar: the batch mean of the weighted cross-entropy
            per = -ops.sum(y * ops.log_softmax(z, axis=-1), axis=-1)
            return ops.mean(per * ops.sum(y * w, axis=-1))

        return loss

    name = registry.register(weighted)
    assert name == "weighted"
    loss = get(name, [6, 2], power=2)
    assert isinstance(loss, FunctionLoss) and seen["counts"] == [6, 2]
    z = np.array([[2.0, 0.0], [0.0, 1.0]], dtype="float32")
    values = np.asarray(loss.call(np.array([0, 1]), z))
    ce = -np.log(np.exp(z[[0, 1], [0, 1]]) / np.exp(z).sum(axis=1))
    assert values.shape == (2,)
    np.testing.assert_allclose(values, np.mean(ce * np.array([1.0, 9.0])), rtol=1e-5)
    with pytest.raises(InputError, match=r"unknown parameter\(s\) gamma; allowed: power"):
        get(name, [6, 2], gamma=1)
