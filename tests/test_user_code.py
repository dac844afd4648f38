"""Users' own losses: `[ALIAS=]MODULE:ATTR` specs, plugins, provenance (issue 32)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

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
    assert (exp / "runs" / "poly1@tuned_seed0" / "DONE").exists()


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
