"""Which options define a run: the experiment key (equal keys continue one experiment) and the
prepared-array cache key, both read from one declaration in `lossbench.config`.

Every option field is listed here with a changed value and the keys it must change, so a new
field fails this test until its role is decided.
"""

from __future__ import annotations

import dataclasses

import pytest

from lossbench.config import DataOptions, RunConfig, TrainOptions
from lossbench.data.cache import fingerprint
from lossbench.provenance import resolve_key

SOURCES = [["/data/flows.csv", 1234, 5678]]

# field -> (a value other than the default, changes the experiment key, changes the cache key)
DATA_FIELDS = {
    "data": ("synthetic-cicids", True, False),  # the cache keys the files' signatures instead
    "label_col": ("y", True, True),
    "preset": ("none", True, True),
    "nan_policy": ("median", True, True),
    "drop_classes": (["a"], True, True),
    "merge": (["A=A*"], True, True),
    "min_class_count": (5, True, True),
    "sample_frac": (0.5, True, True),
    "split": ((0.5, 0.25, 0.25), True, True),
    "scaler": ("standard", True, True),
    "seed": (3, False, True),  # one experiment holds several seeds; the seed draws the split
    "cache": (False, False, False),
    "cache_dir": ("/tmp/elsewhere", False, False),
    "max_onehot_levels": (3, True, True),
    "positive_label": ("attack", True, False),  # read by the metrics only
    "dedupe": (True, True, True),
    "task": ("binary", True, True),
    "negative": ("normal", True, True),
    "split_by": ("time", True, True),
    "test_data": ("other2018.csv", True, True),
    "label_map": (["DDOS attack-HOIC=DDoS"], True, True),
}
TRAIN_FIELDS = {
    "model": ("mlp", True),
    "epochs": (7, True),
    "batch_size": (64, True),
    "lr": (0.1, True),
    "clipnorm": (0.0, True),
    "patience": (3, True),
    "select": ("nll", True),
    "far_targets": ((0.05,), True),
    "device": ("cpu", False),
    "seed": (9, False),
    "filters": (8, True),
    "units": (16, True),
    "dropout": (0.0, True),
    "jit_compile": (True, True),
    "precision": ("mixed_bfloat16", True),
    "tensorboard": (True, False),
    "model_params": ({"units": 8}, True),  # the user's network's --model-param
}


def _keys(data: DataOptions, train: TrainOptions) -> tuple[str, str]:
    cfg = RunConfig(loss="ce", data=data, train=train)
    return resolve_key("compare", cfg, {}), fingerprint(SOURCES, data)


def test_every_option_field_has_a_declared_role():
    assert set(DATA_FIELDS) == {f.name for f in dataclasses.fields(DataOptions)}
    assert set(TRAIN_FIELDS) == {f.name for f in dataclasses.fields(TrainOptions)}


@pytest.mark.parametrize("name", sorted(DATA_FIELDS))
def test_data_option_changes_the_keys_it_defines(name):
    value, experiment, cache = DATA_FIELDS[name]
    base = _keys(DataOptions(), TrainOptions())
    changed = _keys(DataOptions(**{name: value}), TrainOptions())
    assert (changed[0] != base[0], changed[1] != base[1]) == (experiment, cache)


@pytest.mark.parametrize("name", sorted(TRAIN_FIELDS))
def test_train_option_changes_the_experiment_key_only_if_it_defines_the_run(name):
    value, experiment = TRAIN_FIELDS[name]
    base = _keys(DataOptions(), TrainOptions())
    changed = _keys(DataOptions(), TrainOptions(**{name: value}))
    assert (changed[0] != base[0], changed[1] != base[1]) == (experiment, False)


def _key_of(data: str) -> str:
    return resolve_key("compare", RunConfig(loss="ce", data=DataOptions(data=data)), {})


def test_the_key_follows_the_data_not_the_spelling_of_its_path(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "x.csv"
    path.write_text("a,Label\n1,x\n2,y\n")
    monkeypatch.chdir(tmp_path)
    key = _key_of("data/x.csv")
    assert _key_of("./data/../data/x.csv") == key
    assert _key_of(str(path)) == key
    path.write_text("a,Label\n1,p\n2,q\n3,q\n")  # other data under the same path
    assert _key_of("data/x.csv") != key
