"""The settings edge (`lossbench.settings`): every source of a setting (flags, a TOML file, the
Python API's keywords, the defaults) is validated once into typed values, then packed into one
`config.CommandSettings` that the layers below take as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from lossbench.config import CommandSettings, CompareOptions, build_settings
from lossbench.errors import InputError
from lossbench.settings import command_defaults, resolve_settings


def _resolved(command: str, config: Path | None = None, **given):
    flags = {**command_defaults(command), **given}
    return resolve_settings(flags, given=set(given), config=str(config) if config else None)


def test_values_come_out_typed_whatever_their_source(tmp_path):
    flags = _resolved(
        "compare",
        out=str(tmp_path),
        losses="ce,focal",
        seeds="3,1",
        split="0.5,0.25,0.25",
        far="0.05",
        param=["gamma=2", "dwb.reg_weight=0.5"],
        drop_classes="a,b",
    )
    assert flags["losses"] == ["ce", "focal"] and flags["seeds"] == [3, 1]
    assert flags["split"] == (0.5, 0.25, 0.25) and flags["far"] == (0.05,)
    assert flags["param"] == {"gamma": 2, "dwb.reg_weight": 0.5}
    assert flags["drop_classes"] == ["a", "b"]
    toml = tmp_path / "exp.toml"
    toml.write_text(
        'losses = ["ce", "focal"]\nseeds = [3, 1]\nsplit = [0.5, 0.25, 0.25]\nfar = [0.05]\n'
        'drop_classes = ["a", "b"]\n[param]\ngamma = 2\n[param.dwb]\nreg_weight = 0.5\n'
    )
    from_toml = _resolved("compare", toml, out=str(tmp_path))
    assert build_settings("compare", from_toml) == build_settings("compare", flags)


def test_a_compare_is_one_typed_object(tmp_path):
    built = build_settings(
        "compare",
        _resolved(
            "compare",
            out=str(tmp_path),
            data=["a.csv", "b.csv"],
            losses="ce,dwb",
            baselines="lr",
            seeds="2,0",
            plots="runs",
            executor="ray",
            address="host:6379",
            epochs=3,
        ),
    )
    assert isinstance(built, CommandSettings)
    assert built.compare == CompareOptions(
        losses=("ce", "dwb"),
        baselines=("lr",),
        seeds=(2, 0),
        out=tmp_path,
        run_plots=True,
        executor="ray",
        executor_options={"address": "host:6379", "gpus_per_run": 0.0},
    )
    assert built.datasets == ("a.csv", "b.csv") and built.out == tmp_path
    assert (built.data.data, built.data.seed, built.train.seed) == ("a.csv", 2, 2)
    assert built.train.epochs == 3 and built.train.far_targets == (0.01, 0.001)
    assert built.data_for("b.csv", 0).data == "b.csv"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"seeds": "0,1,0"}, "--seeds '0,1,0': 0 repeated"),
        ({"losses": "ce,wce,ce"}, "--losses 'ce,wce,ce': ce repeated"),
        ({"baselines": ["lr", "lr"]}, "--baselines ['lr', 'lr']: lr repeated"),
        ({"losses": ""}, "--losses '': give at least one loss"),
        ({"losses": "ce,ce@tuned"}, "--losses 'ce,ce@tuned': 'ce@tuned': tuned rows come from"),
        ({"far": "0.5,1"}, "--far '0.5,1': expected false-alarm-rate targets in (0, 1)"),
        ({"seeds": ""}, "--seeds '': expected integers"),
        ({"param": ["gamma"]}, "--param 'gamma': expected key=value"),
    ],
)
def test_a_bad_value_is_refused_at_the_edge_naming_its_flag(tmp_path, given, message):
    with pytest.raises(InputError) as exc:
        _resolved("compare", out=str(tmp_path), **given)
    assert str(exc.value).startswith(message), str(exc.value)


def test_a_run_takes_one_dataset(tmp_path):
    resolved = _resolved("run", out=str(tmp_path), data=["a.csv", "b.csv"], seed=4)
    with pytest.raises(InputError, match="expected one dataset"):
        build_settings("run", resolved)
    built = build_settings("run", {**resolved, "data": "a.csv"})
    assert built.compare is None and (built.data.data, built.data.seed) == ("a.csv", 4)
