"""`lossbench.losses` entry points: names, get (validation), describe, and `lossbench losses`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lossbench import losses as L
from lossbench.errors import InputError

ALL = ["ce", "wce", "focal", "cb", "dwb", "amrl", "pgfl", "la", "ldam", "vs", "autobalance"]
COUNTS = [100, 20, 5]


def test_names_in_spec_order():
    assert L.names() == ALL


@pytest.mark.parametrize("name", ALL)
def test_get_builds_registered_loss_subclass(name):
    loss = L.get(name, np.array(COUNTS))
    assert isinstance(loss, L.LossbenchLoss)
    assert loss.name == name
    assert loss.reduction == "sum_over_batch_size"
    config = loss.get_config()
    assert config["class_counts"] == COUNTS
    assert all(isinstance(c, int) for c in config["class_counts"])
    json.dumps(config)  # JSON-able
    rebuilt = type(loss).from_config(config)
    assert rebuilt.get_config() == config
    doc = type(loss).__doc__
    assert "```" in doc and "Args:" in doc and "Source" in doc and "Example" in doc


def test_get_unknown_name_lists_the_losses():
    with pytest.raises(ValueError, match="unknown loss 'dbw'") as err:
        L.get("dbw", COUNTS)
    assert all(name in str(err.value) for name in ALL)


@pytest.mark.parametrize(
    "name,params,fragment",
    [
        ("focal", {"gama": 2}, "gamma"),  # unknown name: lists the allowed ones
        ("ce", {"gamma": 2}, "takes no parameters"),
        ("focal", {"gamma": -1}, ">= 0"),
        ("focal", {"alpha": [1, 2]}, "got 2 values for 3 classes"),
        ("cb", {"beta": 1.0}, "< 1"),
        ("cb", {"base": "mse"}, "ce | focal"),
        ("wce", {"weights": "bogus"}, "inverse | sqrt | effective | none"),
        ("wce", {"weights": [1, 0, 2]}, "> 0"),
        ("dwb", {"reg_weight": "lots"}, ">= 0"),
        ("amrl", {"lambda_max": 0}, "> 0"),
        ("amrl", {"beta": 0}, "> 0"),
        ("pgfl", {"eta": float("nan")}, ">= 0"),
        ("ldam", {"drw": "maybe"}, "true or false"),
        ("ldam", {"drw_active": True}, "unknown parameter"),
        ("vs", {"gamma": True}, ">= 0"),
        ("autobalance", {"interval": 2.5}, "integer >= 1"),
        ("autobalance", {"delta": [1.0, -1.0, 1.0]}, "> 0"),
    ],
)
def test_get_rejects_bad_params_listing_what_is_allowed(name, params, fragment):
    with pytest.raises(ValueError) as err:
        L.get(name, COUNTS, **params)
    msg = str(err.value)
    assert fragment in msg
    assert repr(name) in msg


def test_get_accepts_cli_style_values():
    # what `--param key=value` parses to with TOML: ints, floats, lists of ints, strings, bools
    assert L.get("focal", COUNTS, gamma=2, alpha=[1, 2, 3]).params == {
        "gamma": 2.0,
        "alpha": [1.0, 2.0, 3.0],
    }
    assert L.get("wce", COUNTS, weights="sqrt").params["weights"] == "sqrt"
    assert L.get("ldam", COUNTS, drw=False).params["drw"] is False
    assert L.get("ldam", COUNTS, drw="true").params["drw"] is True
    assert L.get("autobalance", COUNTS, interval=5).params["interval"] == 5
    assert L.get("la", COUNTS, tau="0.5").params["tau"] == 0.5


def test_focal_binary_scalar_alpha():
    loss = L.get("focal", [900, 100], alpha=0.25)  # class 1 is the minority (positive) class
    np.testing.assert_allclose(loss.alpha.numpy(), [0.75, 0.25])
    loss = L.get("focal", [10, 300], alpha=0.25)  # class 0 is the minority
    np.testing.assert_allclose(loss.alpha.numpy(), [0.25, 0.75])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.get("focal", [900, 100], alpha=1.5)


@pytest.mark.parametrize("counts", [5, [5], [3, 0, 2], [2.5, 3], [[1, 2], [3, 4]], ["a", "b"]])
def test_bad_class_counts(counts):
    with pytest.raises(ValueError, match="class_counts"):
        L.get("ce", counts)


def test_count_classes_and_stats():
    assert L.count_classes(np.array([0, 2, 2, 1, 2]), 4) == [1, 1, 3, 0]
    assert L.count_classes(np.eye(3)[[0, 0, 1]], 3) == [2, 1, 0]
    s = L.class_stats([60, 30, 10])
    np.testing.assert_allclose(s.inverse_weights(), [100 / 180, 100 / 90, 100 / 30])
    np.testing.assert_allclose(s.dwb_weights(), [1.0, np.log(2) + 1, np.log(6) + 1])
    np.testing.assert_array_equal(s.minority, [False, True, True])
    w = s.effective_weights(0.9)
    raw = 0.1 / (1 - 0.9 ** np.array([60, 30, 10]))
    np.testing.assert_allclose(w, 3 * raw / raw.sum())
    np.testing.assert_allclose(s.effective_weights(0.0), [1, 1, 1])


def test_describe_covers_every_loss():
    rows = L.describe()
    assert [r["name"] for r in rows] == ALL
    for row in rows:
        assert {"name", "formula", "defaults", "source"} <= set(row)
        assert row["formula"] and row["source"]
        json.dumps(row)
    by_name = {r["name"]: r for r in rows}
    assert by_name["focal"]["defaults"]["gamma"] == 2.0
    assert by_name["cb"]["defaults"]["beta"] == 0.999
    assert by_name["vs"]["defaults"] == {"gamma": 0.3, "tau": 1.0, "weights": "none"}
    assert "log(n_max / n_k) + 1" in by_name["dwb"]["formula"]
    assert by_name["la"]["posterior"] == "softmax(z + tau log pi)"
    assert by_name["ldam"]["head"].startswith("cosine, s = 30")
    assert "kaidic/LDAM-DRW" in by_name["ldam"]["source"]
    assert "orparask/VS-Loss" in by_name["vs"]["source"]
    assert "sigmoid" in by_name["cb"]["source"]
    assert "training split" in by_name["autobalance"]["formula"]


def test_cli_losses_table(cli):
    result = cli("losses")
    assert result.code == 0, result.err
    for name in ALL:
        assert name in result.out
    assert "Lin et al. 2017" in result.out


def test_cli_losses_json(cli):
    result = cli("losses", "--json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [r["name"] for r in rows] == ALL
    assert rows[4]["defaults"] == {"reg_weight": 1.0}


def test_given_forwards_declared_params_and_keras_args_only():
    """A subclass with an explicit signature forwards its `PARAMS` and `**keras_args` through
    `given(locals())`; an argument it does not declare (LDAM's drw_active) is not forwarded."""

    class Scaled(L.LossbenchLoss):
        NAME = "scaled_test"
        PARAMS = {"k": L.Param(2.0, "scale"), "weights": L.Param.weights("none", "w", ("none",))}

        def __init__(self, class_counts, k=2.0, weights="none", extra=None, **keras_args):
            super().__init__(class_counts, **self.given(locals()))
            self.extra = extra

    loss = Scaled([5, 1], k=3.0, weights=[1.0, 4.0], extra="x", name="mine", dtype="float32")
    assert loss.params == {"k": 3.0, "weights": [1.0, 4.0]}
    assert (loss.name, loss.extra) == ("mine", "x")
    config = loss.get_config()
    assert config == {
        "class_counts": [5, 1],
        "k": 3.0,
        "weights": [1.0, 4.0],
        "name": "mine",
        "reduction": "sum_over_batch_size",
        "dtype": "float32",
    }
    with pytest.raises(InputError, match="weights"):
        Scaled([5, 1], weights=[1.0, -1.0])
