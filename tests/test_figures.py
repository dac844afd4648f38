"""The paper's figures 1-3 (issue 36): `losses --plot`, `inspect --plot`, compare's loss_shape.png.

The CSV of `losses --plot` is checked against the loss objects called independently (integer
labels, Keras' own `__call__` without reduction, not the one-hot `call` path the figure uses) and
against the closed forms of CE, weighted CE, focal and DWB written here in NumPy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_architecture import _loaded_after

PNG = b"\x89PNG\r\n\x1a\n"
PAPER_COUNTS = (271_828, 100_000)  # imbalance ratio e: the minority's DWB weight is 2


@pytest.fixture(scope="module")
def all_losses(tmp_path_factory) -> pd.DataFrame:
    """`lossbench losses --plot --losses all` on the default illustration, once."""
    from lossbench.cli import main

    png = tmp_path_factory.mktemp("shape") / "shape.png"
    assert main(["losses", "--plot", "--losses", "all", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == PNG
    return pd.read_csv(png.with_suffix(".csv"))


def _evaluate(name: str, counts: tuple[int, ...], rows: pd.DataFrame, **params) -> np.ndarray:
    """The registry's loss `name`, called per sample on the CSV's logits and class."""
    from lossbench.losses import get

    loss = get(name, counts, **params)
    loss.reduction = "none"
    z = rows[[c for c in rows.columns if c.startswith("z_")]].to_numpy()
    y = rows["y"].to_numpy().astype("int32")
    return np.asarray(loss(y, z), dtype=np.float64)


LOSS_NAMES = (
    "ce",
    "wce",
    "focal",
    "cb",
    "dwb",
    "amrl",
    "pgfl",
    "la",
    "ldam",
    "vs",
    "autobalance",
)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_csv_values_equal_the_loss_objects(all_losses, name) -> None:
    rows = all_losses[all_losses["loss"] == name]
    assert set(rows["panel"]) == {"minority", "majority"}
    for _, panel in rows.groupby("panel"):
        assert len(panel) == 199
        assert np.allclose(panel["value"], _evaluate(name, PAPER_COUNTS, panel), atol=1e-6, rtol=0)


def test_every_loss_is_drawn(all_losses) -> None:
    assert list(dict.fromkeys(all_losses["loss"])) == list(LOSS_NAMES)


def test_logits_give_p_and_panels_are_the_rarest_and_commonest_class(all_losses) -> None:
    z = all_losses[["z_0", "z_1"]].to_numpy()
    proba = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = all_losses["y"].to_numpy()
    assert np.allclose(proba[np.arange(len(y)), y], all_losses["p"], atol=1e-12)
    assert np.allclose(z.sum(axis=1), 0.0)  # centred: z_y = -z_other = logit(p) / 2
    first = all_losses.groupby("panel").first()
    assert first.loc["minority", ["class", "y", "n_y"]].tolist() == ["minority", 1, 100_000]
    assert first.loc["majority", ["class", "y", "n_y"]].tolist() == ["majority", 0, 271_828]


def test_closed_forms_of_the_papers_four_losses(all_losses) -> None:
    n = np.array(PAPER_COUNTS, dtype=np.float64)
    for (panel, name), rows in all_losses.groupby(["panel", "loss"]):
        p, y = rows["p"].to_numpy(), int(rows["y"].iloc[0])
        w_dwb = np.log(n.max() / n[y]) + 1.0
        expected = {
            "ce": -np.log(p),
            "wce": -(n.sum() / (2 * n[y])) * np.log(p),
            "focal": -((1 - p) ** 2) * np.log(p),
            "dwb": -(w_dwb ** (1 - p)) * np.log(p) - p * (1 - p),
        }.get(name)
        if expected is not None:
            assert np.allclose(rows["value"], expected, rtol=1e-5, atol=1e-6), (panel, name)


def test_papers_stated_properties(all_losses) -> None:
    """Focal < CE for every p in (0, 1); DWB > CE for p < 0.5 on the minority panel."""
    t = all_losses.pivot_table(index=["panel", "p"], columns="loss", values="value")
    assert (t["focal"] < t["ce"]).all()
    minority = t.loc["minority"]
    below = minority[minority.index < 0.5]
    assert len(below) == 99 and (below["dwb"] > below["ce"]).all()
    # and DWB's weight is 2 there: at p -> 0 DWB approaches twice CE
    assert minority["dwb"].iloc[0] / minority["ce"].iloc[0] == pytest.approx(2.0, rel=0.01)


def test_dependence_on_the_logits_is_flagged(all_losses) -> None:
    flags = all_losses.groupby("loss")["depends_on_logits"].all()
    # VS scales each class's logit by its own Delta: shifting all logits changes it
    assert flags["vs"] and flags["autobalance"]
    # functions of p alone (for K = 2 LA and LDAM's margins are shift invariant too)
    for name in ("ce", "wce", "focal", "cb", "dwb", "amrl", "pgfl", "la", "ldam"):
        assert not flags[name], name


def test_params_reach_the_plotted_losses(cli, tmp_path) -> None:
    png = tmp_path / "fig.png"
    res = cli(
        "losses", "--plot", "--losses", "ce,wce,focal", "--param", "wce.weights=[1, 2]",
        "--param", "gamma=3", "--out", png,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert str(png) in res.out and str(png.with_suffix(".csv")) in res.out
    t = pd.read_csv(png.with_suffix(".csv")).pivot_table(
        index=["panel", "p"], columns="loss", values="value"
    )
    assert np.allclose(t.loc["minority", "wce"], 2 * t.loc["minority", "ce"], rtol=1e-6)
    assert np.allclose(t.loc["majority", "wce"], t.loc["majority", "ce"], rtol=1e-6)
    p = t.loc["minority"].index.to_numpy()
    assert np.allclose(t.loc["minority", "focal"], -((1 - p) ** 3) * np.log(p), rtol=1e-5)


def test_data_gives_the_class_counts(cli, tmp_path) -> None:
    """digits-lt: the rarest class is 8 (18 rows), the commonest 3 (180 rows); the losses are
    built from the training split's counts (60%)."""
    png = tmp_path / "digits.png"
    res = cli("losses", "--plot", "--data", "digits-lt", "--losses", "dwb", "--out", png)
    assert res.code == 0, res.err
    t = pd.read_csv(png.with_suffix(".csv"))
    assert sorted(c for c in t.columns if c.startswith("z_")) == sorted(f"z_{k}" for k in range(10))
    first = t.groupby("panel").first()
    assert first.loc["minority", "class"] == 8 and first.loc["majority", "class"] == 3
    assert first.loc["minority", "n_y"] == pytest.approx(0.6 * 18, abs=1)
    assert first.loc["majority", "n_y"] == pytest.approx(0.6 * 180, abs=1)
    z = t[[f"z_{k}" for k in range(10)]].to_numpy()
    proba = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert np.allclose(proba[np.arange(len(t)), t["y"]], t["p"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--out", "{tmp}/missing/fig.png"], "does not exist"),
        (["--out", "{tmp}"], "is a folder"),
        (["--out", "{tmp}/fig.txt"], "expected a .png"),
        (["--losses", "ce,nope", "--out", "{tmp}/fig.png"], "nope"),
        (["--param", "gamma=-1", "--losses", "focal", "--out", "{tmp}/fig.png"], "gamma"),
    ],
)
def test_bad_plot_input_exits_2_and_writes_nothing(cli, tmp_path, args, needle) -> None:
    res = cli("losses", "--plot", *[a.format(tmp=tmp_path) for a in args])
    assert res.code == 2, res.err
    assert needle in res.err and "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert list(tmp_path.glob("*.png")) == [] and list(tmp_path.glob("*.csv")) == []


def test_losses_without_plot_still_lists(cli) -> None:
    res = cli("losses", "--markdown")
    assert res.code == 0 and res.out.startswith("| name |")


def test_inspect_plot_writes_the_figure(cli, tmp_path) -> None:
    png = tmp_path / "classes.png"
    res = cli("inspect", "--plot", "--out", png)
    assert res.code == 0, res.err
    assert png.read_bytes()[:8] == PNG
    assert f"figure: {png}" in res.out


def test_inspect_plot_bad_out_exits_2(cli, tmp_path) -> None:
    res = cli("inspect", "--plot", "--out", tmp_path / "no" / "x.png")
    assert res.code == 2 and "does not exist" in res.err


def test_inspect_plot_loads_no_tensorflow(tmp_path) -> None:
    loaded = _loaded_after(
        "import contextlib, io\n"
        "from lossbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['inspect', '--plot', '--out', {str(tmp_path / 'c.png')!r}]) == 0"
    )
    assert (tmp_path / "c.png").is_file()
    assert not loaded["tensorflow"] and not loaded["keras"]


def test_inspect_dwb_weights_are_the_losses(tmp_path) -> None:
    from lossbench.losses import class_stats
    from lossbench.report.figures import dwb_class_weights

    counts = [2180, 1956, 948, 553, 397, 227]
    assert np.allclose(dwb_class_weights(counts), class_stats(counts).dwb_weights())
    assert np.allclose(dwb_class_weights(counts), np.log(2180 / np.array(counts)) + 1)


def test_report_draws_the_stored_loss_shapes(tmp_path: Path) -> None:
    """A compare's loss_shape.csv (experiment level) becomes summary/plots/loss_shape.png + .csv
    and an image of the report, with no training (the fake experiment of test_report)."""
    from lossbench.report import build_summary
    from lossbench.store import write_loss_shapes
    from tests.test_report import _make_experiment

    exp, _ = _make_experiment(tmp_path)
    table = pd.DataFrame(
        {
            "panel": ["minority"] * 3 + ["majority"] * 3,
            "class": ["b"] * 3 + ["a"] * 3,
            "y": [1] * 3 + [0] * 3,
            "n_y": [10] * 3 + [100] * 3,
            "loss": ["ce"] * 6,
            "depends_on_logits": [False] * 6,
            "p": [0.25, 0.5, 0.75] * 2,
            "value": list(-np.log([0.25, 0.5, 0.75])) * 2,
            "z_0": 0.0,
            "z_1": 0.0,
        }
    )
    write_loss_shapes(exp, table)
    written = build_summary(exp, n_boot=10)
    assert written["plots/loss_shape.png"].read_bytes()[:8] == PNG
    assert pd.read_csv(written["plots/loss_shape.csv"]).equals(table)
    assert "loss_shape.csv" in (exp / "summary" / "report.html").read_text()


def test_loss_shapes_takes_any_keras_loss() -> None:
    """A loss not from the registry (here Keras' own categorical cross-entropy on logits, as a
    user would bring one) is evaluated the same way: its values are -log p on both panels."""
    import keras

    from lossbench.losses.shape import loss_shapes

    table = loss_shapes(
        {"keras_cce": keras.losses.CategoricalCrossentropy(from_logits=True)}, [30, 10, 5]
    )
    assert set(table["panel"]) == {"minority", "majority"}
    assert np.allclose(table["value"], -np.log(table["p"]), rtol=1e-5)
    assert not table["depends_on_logits"].any()
    first = table.groupby("panel").first()
    assert (first.loc["minority", "y"], first.loc["majority", "y"]) == (2, 0)


def test_shape_losses_draws_each_loss_once() -> None:
    """compare's methods: a data-level method draws its loss (once), a tuned row is left out."""
    from lossbench.experiment import shape_losses

    built = shape_losses(
        ["ce+ros", "ce", "focal@tuned", "focal"], {"focal": {"gamma": 1.0}}, [90, 10]
    )
    assert list(built) == ["ce", "focal"]
    assert built["focal"].params["gamma"] == 1.0


def test_plot_options_without_plot_are_an_error(cli) -> None:
    res = cli("losses", "--data", "digits-lt")
    assert res.code == 2 and "add --plot" in res.err


def test_a_damaged_loss_shape_csv_is_left_out_of_the_report(tmp_path: Path) -> None:
    from lossbench.layout import LOSS_SHAPES
    from lossbench.report import build_summary
    from lossbench.store import load_experiment
    from tests.test_report import _make_experiment

    exp, _ = _make_experiment(tmp_path)
    for junk in (b"", b"a,b\n1,2\n", b"panel,loss\n\x00\xff,1\n", b"\xff\xfe\x00junk"):
        (exp / LOSS_SHAPES).write_bytes(junk)
        assert load_experiment(exp).loss_shapes() is None, junk
    written = build_summary(exp, n_boot=10)
    assert "plots/loss_shape.png" not in written
    assert not (exp / "summary" / "plots" / "loss_shape.png").exists()


def test_a_user_loss_is_drawn_at_the_values_of_its_own_function(cli, tmp_path) -> None:
    """A user's loss (issue 32's MODULE:ATTR spec) goes through `losses --plot` like a built-in:
    the CSV's values are the user's function called on the CSV's logits (1e-6), here twice CE."""
    module = tmp_path / "my_loss.py"
    module.write_text(
        "import keras\n\n"
        "def double_ce(y, z):\n"
        "    return -2.0 * keras.ops.sum(y * keras.ops.log_softmax(z, axis=-1), axis=-1)\n"
    )
    png = tmp_path / "shape.png"
    res = cli("losses", "--plot", "--losses", f"ce,double={module}:double_ce", "--out", str(png))
    assert res.code == 0, res.err
    table = pd.read_csv(png.with_suffix(".csv"))
    assert list(dict.fromkeys(table["loss"])) == ["ce", "double"]
    rows = table[table["loss"] == "double"]
    assert len(rows) == 2 * 199
    z = rows[[c for c in rows.columns if c.startswith("z_")]].to_numpy()
    onehot = np.eye(z.shape[1])[rows["y"].to_numpy()]
    log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    expected = -2.0 * (onehot * log_softmax).sum(axis=1)
    assert np.allclose(rows["value"], expected, rtol=1e-6, atol=1e-6)
    ce = table[table["loss"] == "ce"]["value"].to_numpy()
    assert np.allclose(rows["value"].to_numpy(), 2 * ce, rtol=1e-6, atol=1e-6)
