"""The configuration types of a run and a compare (what the layers below the settings edge take);
`lossbench.settings` builds and validates them from flags, TOML files and API keywords."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lossbench.choices import (
    Device,
    Executor,
    ModelName,
    NanPolicy,
    Precision,
    Preset,
    Scaler,
    Select,
    Task,
)
from lossbench.errors import InputError


@dataclass
class DataOptions:
    """How to load and prepare a dataset (SPEC section 2)."""

    data: str | None = None  # path (CSV, CSV.gz, Parquet, folder of CSVs) or built-in name
    label_col: str | None = None  # default: "Label", else the last column
    preset: Preset = "auto"
    nan_policy: NanPolicy = "drop"
    drop_classes: list[str] | None = None  # None: the preset's default (Heartbleed, Infiltration)
    merge: list[str] | None = None  # ["Web Attack=Web Attack*"]; None: the preset's default
    min_class_count: int | None = None  # drop (with a warning) classes with fewer rows than this
    sample_frac: float | None = None
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    scaler: Scaler = "minmax"
    seed: int = 0  # seeds the subsample and the split
    cache: bool = True
    cache_dir: str | None = None  # default: ~/.cache/lossbench (or $LOSSBENCH_CACHE)
    max_onehot_levels: int = 20
    positive_label: str | None = None  # binary tasks: the positive class (default: the minority)
    dedupe: bool = False  # drop exact duplicate rows (features and label) before the split
    # issue 33 (honest IDS evaluation)
    task: Task = "multiclass"  # binary: the negative class against every other class merged
    negative: str | None = None  # the binary task's negative class (default: BENIGN)
    split_by: str = "random"  # random | order | time[:COL] | group:COL[,COL] | files:T;V;S
    test_data: str | None = None  # cross-dataset test: train/validate on `data`, test on this
    label_map: list[str] | None = None  # test-data label renames, "OLD=NEW"


@dataclass
class TrainOptions:
    """How to train one run (SPEC section 3)."""

    model: ModelName = "cnn1d"
    epochs: int = 200  # a budget: early stopping on the selection criterion ends most runs
    batch_size: int = 256
    lr: float = 1e-3
    clipnorm: float = 1.0
    patience: int = 20  # 0 disables early stopping
    select: Select = "macro_f1"  # the selection criterion (SPEC 5.1)
    far_targets: tuple[float, ...] = (0.01, 0.001)  # operating points: DR at these validation FARs
    device: Device = "auto"
    seed: int = 0
    filters: int = 64
    units: int = 128
    dropout: float = 0.2
    jit_compile: bool | None = None  # None: XLA where it helps (auto)
    precision: Precision = "float32"
    tensorboard: bool = False
    model_params: dict[str, Any] = field(default_factory=dict)  # --model-param, user networks


#: The option fields that do not define what an experiment runs: the seed (an experiment holds the
#: runs of several seeds) and where a run trains and keeps its files. Every other field of
#: `DataOptions` and `TrainOptions` defines it (`run_defining`).
NOT_RUN_DEFINING = ("seed", "device", "tensorboard", "cache", "cache_dir")
#: The run-defining data options that leave the prepared arrays unchanged: the source (the
#: array cache keys its files' signatures instead) and the positive class the metrics read.
NOT_ARRAY_SHAPING = ("data", "positive_label")


def run_defining(opts: DataOptions | TrainOptions) -> dict[str, Any]:
    """The fields of `opts` that define a run (the experiment key: equal values continue an
    experiment), by name; values as `dataclasses.asdict` gives them."""
    out = {k: v for k, v in dataclasses.asdict(opts).items() if k not in NOT_RUN_DEFINING}
    if not out.get("model_params", True):
        del out["model_params"]  # none: the key of every experiment from before the field
    return out


def array_shaping(opts: DataOptions) -> dict[str, Any]:
    """The data options that shape the prepared arrays of one seed (the array cache key): the
    run-defining ones but `NOT_ARRAY_SHAPING`, and the seed (it draws the split)."""
    out = {k: v for k, v in run_defining(opts).items() if k not in NOT_ARRAY_SHAPING}
    return {**out, "seed": opts.seed}


@dataclass
class Settings:
    """The data and training settings that every run of an experiment shares (a compare's runs
    differ only in their method, parameters and seed, which its `RunSpec`s carry)."""

    data: DataOptions = field(default_factory=DataOptions)
    train: TrainOptions = field(default_factory=TrainOptions)


@dataclass
class RunConfig(Settings):
    """Everything that determines one `lossbench run`: the shared settings, one loss and its
    parameters."""

    loss: str = "ce"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompareOptions:
    """What a compare runs besides the shared settings: the methods (losses as run names, after
    `losses.registry.resolve_methods`), baselines and seeds, the loss parameters, the results
    folder, and how the runs are planned and where they train."""

    losses: tuple[str, ...] = ("ce", "wce", "focal", "cb", "dwb")
    baselines: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    params: dict[str, Any] = field(default_factory=dict)
    out: Path = Path("results")
    fresh: bool = False
    run_plots: bool = False  # each run's own plots too (else on demand: report --plots runs)
    tune: int = 0  # trials per method; 0: no tuning
    prune: bool = True
    executor: Executor = "local"
    executor_options: dict[str, Any] | None = None  # Ray: address, gpus_per_run


# ----------------------------------------------------------------------------------------------
# the typed settings object


@dataclass(frozen=True)
class CommandSettings:
    """Every setting of one `run` or `compare`, validated (`resolve_settings`) and typed: what the
    layers below take and trust. `data` and `train` hold the first dataset and the first seed;
    `compare` the options of a compare (None for a run)."""

    data: DataOptions = field(default_factory=DataOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    datasets: tuple[str | None, ...] = (None,)
    loss: str = "ce"
    params: dict[str, Any] = field(default_factory=dict)
    out: Path = Path("results")
    compare: CompareOptions | None = None
    mlflow: str | None = None
    config: str | None = None
    quiet: bool = False
    as_json: bool = False

    def data_for(self, data: str | None, seed: int) -> DataOptions:
        """The data options of one dataset and seed."""
        return replace(self.data, data=data, seed=seed)


def _named_alike(cls: type, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings named as fields of the options class `cls`, as they are (validated and typed
    by `settings.resolve_settings`); the caller sets the fields named otherwise."""
    return {f.name: settings[f.name] for f in dataclasses.fields(cls) if f.name in settings}


def data_options(settings: Mapping[str, Any], *, data: str | None, seed: int) -> DataOptions:
    """The `DataOptions` of validated settings (`resolve_settings`) for one dataset and seed."""
    return DataOptions(
        **{
            **_named_alike(DataOptions, settings),
            "data": data,
            "seed": seed,
            "cache": not settings["no_cache"],
            "merge": settings["merge"] or None,
            "label_map": settings["label_map"] or None,
        }
    )


def _train_options(settings: Mapping[str, Any], *, seed: int) -> TrainOptions:
    """The `TrainOptions` of validated settings (`resolve_settings`) for one seed."""
    return TrainOptions(
        **{
            **_named_alike(TrainOptions, settings),
            "seed": seed,
            "jit_compile": {"auto": None, "on": True, "off": False}[settings["jit"]],
            "far_targets": settings["far"],
            "model_params": settings["model_param"] or {},
        }
    )


def _compare_options(settings: Mapping[str, Any]) -> CompareOptions:
    executor = settings["executor"]
    return CompareOptions(
        losses=tuple(settings["losses"]),
        baselines=tuple(settings["baselines"]),
        seeds=tuple(settings["seeds"]),
        params=settings["param"] or {},
        out=Path(settings["out"]),
        fresh=settings["fresh"],
        run_plots=settings["plots"] == "runs",
        tune=settings["tune"],
        prune=settings["prune"],
        executor=executor,
        executor_options={"address": settings["address"], "gpus_per_run": settings["gpus_per_run"]}
        if executor == "ray"
        else None,
    )


def build_settings(command: str, settings: Mapping[str, Any]) -> CommandSettings:
    """The `CommandSettings` of `run` or `compare` from its validated settings."""
    data = settings["data"]
    if command == "compare":
        datasets = tuple(data) if isinstance(data, list) else (data,)
        seed = settings["seeds"][0]
        compare = _compare_options(settings)
    else:
        if data is not None and not isinstance(data, str):
            raise InputError(f"data = {data!r}: expected one dataset (a path or a built-in name)")
        datasets, seed, compare = (data,), settings["seed"], None
    return CommandSettings(
        data=data_options(settings, data=(datasets or (None,))[0], seed=seed),
        train=_train_options(settings, seed=seed),
        datasets=datasets or (None,),
        loss=settings.get("loss", "ce"),
        params=settings["param"] or {},
        out=Path(settings["out"]),
        compare=compare,
        mlflow=settings["mlflow"],
        config=settings.get("config"),
        quiet=settings["quiet"],
        as_json=settings["as_json"],
    )


#: The fewest features each model can take (cnn1d: two 3-wide convolutions, then a pool of 2).
MIN_FEATURES = {"cnn1d": 6, "mlp": 1}


def check_model_fits(
    model: str,
    n_features: int,
    dataset: str,
    n_classes: int | None = None,
    params: dict[str, Any] | None = None,
) -> None:
    """Raise InputError when `dataset` has too few features for `model` (e.g. cnn1d needs 6), or
    when the user's network `MODULE:ATTR` does not build logits `(None, n_classes)` for it."""
    if ":" in model and n_classes is not None:
        from lossbench.models import build_model  # lazy: Keras

        build_model(model, n_features, n_classes, params=params)
        return
    need = MIN_FEATURES.get(model, 1)
    if n_features < need:
        raise InputError(
            f"{dataset}: model {model} needs at least {need} features, the data has "
            f"{n_features} after preprocessing; use model mlp"
        )
