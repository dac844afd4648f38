"""The resolved configuration of a run: defaults, then a TOML config file, then the flags."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from lossbench.baselines import BASELINES  # the classical baselines of --baselines
from lossbench.choices import (
    Device,
    Executor,
    Jit,
    ModelName,
    NanPolicy,
    Plots,
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


def parse_params(items: list[str] | None, flag: str = "--param") -> dict[str, Any]:
    """Parse `--param key=value` items; values are read as TOML scalars or lists when possible."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"{flag} {item!r}: expected key=value, e.g. {flag} gamma=2")
        key, raw = (s.strip() for s in item.split("=", 1))
        if not key:
            raise InputError(f"{flag} {item!r}: empty parameter name")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key] = value
    return out


def parse_split(text: str) -> tuple[float, float, float]:
    """Parse `--split 0.6,0.2,0.2`."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--split {text!r}: expected three fractions like 0.6,0.2,0.2") from None
    if len(parts) != 3 or any(p <= 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6:
        raise InputError(f"--split {text!r}: expected three positive fractions summing to 1")
    return parts  # type: ignore[return-value]


def parse_list(text: str | None) -> list[str]:
    """Split a comma-separated option into its non-empty items."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a `--config exp.toml` file whose keys mirror the command-line flags."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: config file not found")
    try:
        text = p.read_bytes().decode("utf-8-sig")  # a UTF-8 byte-order mark is allowed
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{p}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); TOML "
            "files are UTF-8: save it as UTF-8"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{p}: not valid TOML ({exc})") from None
    return {k.replace("-", "_"): v for k, v in raw.items()}


# ----------------------------------------------------------------------------------------------
# one validation path for every source of a setting (flags, the TOML file, defaults)

#: Seeds are NumPy/TensorFlow seeds: non-negative 32-bit integers.
SEED_MAX = 2**32 - 1
#: The fewest features each model can take (cnn1d: two 3-wide convolutions, then a pool of 2).
MIN_FEATURES = {"cnn1d": 6, "mlp": 1}


@dataclass(frozen=True)
class Rule:
    """What one setting accepts: its type, a description of the allowed values, a range check."""

    kind: str  # int | float | str | bool | choice | list | split | params | data
    allowed: str
    check: Any = None  # callable(value) -> bool, for int/float
    choices: tuple[str, ...] = ()


def _int(allowed: str, check: Any) -> Rule:
    return Rule("int", allowed, check)


def _float(allowed: str, check: Any) -> Rule:
    return Rule("float", allowed, check)


def _choice(choices: Any) -> Rule:
    """The rule of a setting whose values are the `Literal` type `choices`."""
    values = get_args(choices)
    return Rule("choice", "one of " + ", ".join(values), choices=values)


_TEXT = Rule("str", "a string")
_FLAG = Rule("bool", "true or false")
_LIST = Rule("list", "a comma-separated string or a list of strings")


#: Every setting of `run` and `compare`, keyed like the TOML file (and the flags, dashes as `_`).
RULES: dict[str, Rule] = {
    "loss": Rule("str", "a loss of `lossbench losses` or a spec [ALIAS=]MODULE:ATTR"),
    "losses": Rule(
        "list",
        "losses of `lossbench losses` or specs [ALIAS=]MODULE:ATTR (a list, or a string like "
        "ce,dwb), or all",
    ),
    "baselines": Rule("list", f"baselines among {', '.join(BASELINES)} (a list, or a string)"),
    "seeds": Rule("list", f"integers from 0 to {SEED_MAX} (a list, or a string like 0,1,2)"),
    "data": Rule("data", "a path or a built-in dataset name (in compare: also a list of them)"),
    "label_col": _TEXT,
    "preset": _choice(Preset),
    "nan_policy": _choice(NanPolicy),
    "drop_classes": _LIST,
    "merge": Rule("list", "a string like 'Web Attack=Web Attack*' or a list of them"),
    "min_class_count": _int("an integer >= 1", lambda v: v >= 1),
    "sample_frac": _float("a fraction in (0, 1]", lambda v: 0 < v <= 1),
    "split": Rule("split", "three positive fractions summing to 1, e.g. 0.6,0.2,0.2"),
    "scaler": _choice(Scaler),
    "no_cache": _FLAG,
    "positive_label": _TEXT,
    "model": Rule("model", f"one of {', '.join(get_args(ModelName))}, or your builder MODULE:ATTR"),
    "model_param": Rule("params", "a table of network parameters ([model_param] units = 64)"),
    "epochs": _int("an integer >= 1", lambda v: v >= 1),
    "batch_size": _int("an integer >= 1", lambda v: v >= 1),
    "lr": _float("a positive finite number", lambda v: 0 < v < float("inf")),
    "clipnorm": _float("a finite number >= 0 (0 disables clipping)", lambda v: 0 <= v < 1e308),
    "patience": _int("an integer >= 0 (0 disables early stopping)", lambda v: v >= 0),
    "seed": _int(f"an integer from 0 to {SEED_MAX}", lambda v: 0 <= v <= SEED_MAX),
    "device": _choice(Device),
    "jit": _choice(Jit),
    "precision": _choice(Precision),
    "param": Rule("params", "a table of loss parameters ([param] gamma = 2)"),
    "out": Rule("out", "a folder path that can be created or written"),
    "tensorboard": _FLAG,
    "mlflow": Rule("str", "an MLflow tracking URI, or default (a SQLite store in <out>/mlruns/)"),
    "fresh": _FLAG,
    "executor": _choice(Executor),
    "plots": _choice(Plots),
    "address": _TEXT,
    "gpus_per_run": _float("a number >= 0", lambda v: 0 <= v < float("inf")),
    "quiet": _FLAG,
    "as_json": _FLAG,
    "select": _choice(Select),
    "far": Rule("list", "false-alarm-rate targets in (0, 1), e.g. 0.01,0.001 or [0.01, 0.001]"),
    "dedupe": _FLAG,
    "task": _choice(Task),
    "negative": _TEXT,
    "split_by": _TEXT,
    "test_data": _TEXT,
    "label_map": Rule("list", "a string like 'DDOS attack-HOIC=DDoS' or a list of them"),
    "tune": _int("an integer >= 0 (trials per method; 0: no tuning)", lambda v: v >= 0),
    "prune": _FLAG,
}


#: The default of every setting of `run` and `compare`: the flags', the TOML file's and the
#: Python API's (`lossbench.api`).
DEFAULTS: dict[str, Any] = {
    # how to read a dataset (inspect, run, compare)
    "label_col": None,
    "preset": "auto",
    "nan_policy": "drop",
    "drop_classes": None,
    "merge": None,
    "min_class_count": None,
    "no_cache": False,
    "dedupe": False,
    "task": "multiclass",
    "negative": None,
    "split_by": "random",
    "test_data": None,
    "label_map": None,
    # what run and compare share besides
    "sample_frac": None,
    "split": "0.6,0.2,0.2",
    "scaler": "minmax",
    "positive_label": None,
    "model": "cnn1d",
    "model_param": None,
    "epochs": 200,
    "batch_size": 256,
    "lr": 1e-3,
    "clipnorm": 1.0,
    "patience": 20,
    "select": "macro_f1",
    "far": "0.01,0.001",
    "device": "auto",
    "jit": "auto",
    "precision": "float32",
    "param": None,
    "out": "results",
    "tensorboard": False,
    "mlflow": None,
    "config": None,
    "quiet": False,
    "as_json": False,
    # one command's own
    "data": None,
    "loss": "ce",
    "seed": 0,
    "losses": "ce,wce,focal,cb,dwb",
    "seeds": "0,1,2",
    "baselines": "",
    "fresh": False,
    "plots": "summary",
    "tune": 0,
    "prune": True,
    "executor": "local",
    "address": None,
    "gpus_per_run": 0,
}
#: The settings only one of the commands has (every other key of `DEFAULTS` both have).
OWN_SETTINGS: dict[str, tuple[str, ...]] = {
    "run": ("loss", "seed"),
    "compare": (
        "losses",
        "seeds",
        "baselines",
        "fresh",
        "plots",
        "tune",
        "prune",
        "executor",
        "address",
        "gpus_per_run",
    ),
}


def command_defaults(command: str) -> dict[str, Any]:
    """The settings of `run` or `compare` with their defaults."""
    others = {k for c, keys in OWN_SETTINGS.items() if c != command for k in keys}
    return {k: v for k, v in DEFAULTS.items() if k not in others}


def _where(key: str, value: Any, origin: str | None) -> str:
    """'--epochs -3' for a flag, 'exp.toml: epochs = -3' for a key of a config file."""
    if origin is None:
        return f"--{key.replace('_', '-')} {value!r}"
    return f"{origin}: {key} = {value!r}"


def check_setting(key: str, value: Any, origin: str | None = None) -> Any:
    """Validate one setting against `RULES` and return it in the form the commands use.

    `origin` is the config file the value came from (None: a flag or the default). Lists become
    comma-separated strings, `split` a string `a,b,c`, a `[param]` table a list of `k=v` items.

    Raises:
        InputError: naming the flag (or the file and key), the value and what is allowed.
    """
    rule = RULES.get(key)
    if rule is None or value is None:
        return value

    def bad() -> InputError:
        return InputError(f"{_where(key, value, origin)}: expected {rule.allowed}")

    kind = rule.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not rule.check(value):
            raise bad()
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        if value != value or not rule.check(value):  # NaN fails every range
            raise bad()
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if kind in ("str", "choice"):
        if not isinstance(value, str) or (rule.choices and value not in rule.choices):
            raise bad()
        if key == "loss":
            _check_names(key, value, [value], origin)
        return value
    if kind == "model":
        if not isinstance(value, str):
            raise bad()
        if ":" in value:
            from lossbench.models import user_model  # lazy: Keras

            user_model(value)  # imported and checked here
        elif value not in get_args(ModelName):
            raise bad()
        return value
    if kind == "data":
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) and v for v in items):
            raise bad()
        return value
    if kind == "split":
        if isinstance(value, list):
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                raise bad()
            value = ",".join(str(v) for v in value)
        if not isinstance(value, str):
            raise bad()
        try:
            parse_split(value)
        except InputError:
            raise bad() from None
        return value
    if kind == "out":
        if not isinstance(value, str) or not value:
            raise bad()
        problem = out_problem(Path(value))
        if problem:
            raise InputError(f"{_where(key, value, origin)}: {problem}")
        return value
    if kind == "params":
        if isinstance(value, dict):
            return [f"{k}={_toml_value(v)}" for k, v in flatten_params(value).items()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise bad()
    # list
    if isinstance(value, str):
        items = parse_list(value)
    elif isinstance(value, list) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        items = [str(v).strip() for v in value]
    else:
        raise bad()
    if key == "seeds":
        try:
            seeds = [int(s) for s in items]
        except ValueError:
            raise bad() from None
        if not all(0 <= s <= SEED_MAX for s in seeds):
            raise bad()
    if key in ("losses", "baselines"):
        _check_names(key, value, items, origin)
    if key in ("merge", "label_map"):
        return items if isinstance(value, list) else [value]
    return ",".join(items)


def flatten_params(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A TOML `[param]` table as `--param` keys: `[param.dwb]` with `reg_weight = 0.5`, and
    `dwb.reg_weight = 0.5` under `[param]` (both a nested table in TOML) become `dwb.reg_weight`;
    `gamma = 2` stays `gamma`."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if isinstance(v, Mapping):
            out.update(flatten_params(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


#: Pseudo-filesystems where no results folder can be written.
_SPECIAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def out_problem(path: Path) -> str | None:
    """Why the results folder `path` cannot be used (None when it can): it is a file, a file
    stands where one of its parent folders should be, it lies in a pseudo-filesystem (/proc,
    /sys, /dev) or its nearest existing folder is not writable. Nothing is created."""
    if path.exists() and not path.is_dir():
        return "exists and is not a folder"
    absolute = Path(os.path.abspath(path))
    if any(absolute == r or r in absolute.parents for r in _SPECIAL_ROOTS):
        return f"/{absolute.parts[1]} is a special filesystem, not a place for results"
    parent = absolute
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write in {parent} (permission denied)"
    return None


def _check_names(key: str, value: Any, items: list[str], origin: str | None) -> None:
    """Every item of --loss/--losses names a registered loss (the part before any `+sampler` or
    `@suffix`, which the methods layer checks), or "all"; every --baselines item a baseline."""
    if key == "baselines":
        known: tuple[str, ...] = BASELINES
        unknown = [i for i in items if i not in known]
    else:
        from lossbench.loss_catalog import read_catalog  # the built-ins' names, without Keras

        builtin = {row["name"] for row in read_catalog()["losses"]}
        if all(i == "all" or re.split(r"[+@]", i, maxsplit=1)[0] in builtin for i in items):
            return  # no user spec or plugin to import: `lossbench losses` needs no TensorFlow
        from lossbench.losses import names  # lazy: the losses import Keras
        from lossbench.losses.registry import known as is_known
        from lossbench.losses.registry import resolve_methods

        known = tuple(names())
        specs = [i for i in items if ":" in i]
        resolve_methods(specs)  # a user's MODULE:ATTR: imported and checked here
        bases = {i: re.split(r"[+@]", i, maxsplit=1)[0] for i in items if i not in specs}
        unknown = [i for i, b in bases.items() if not is_known(b) and i != "all"]
    if unknown:
        what = "baseline" if key == "baselines" else "loss"
        raise InputError(
            f"{_where(key, value, origin)}: unknown {what} {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(known)}"
        )


def resolve_settings(
    flags: Mapping[str, Any], *, given: Collection[str] = (), config: str | None = None
) -> dict[str, Any]:
    """Every setting of a command, each validated once by `check_setting`, whatever its source:
    the flags' values (`given` names the ones set on the command line, the others hold their
    defaults), with the TOML file `config`'s value for each setting not given.

    Raises:
        InputError: a key of the file that is no setting of the command, or a value not allowed
            (naming the flag, or the file and key).
    """
    values = dict(flags)
    origins: dict[str, str] = {}
    if config:
        for key, value in load_toml(config).items():
            if key == "config":
                continue
            if key not in values:
                allowed = ", ".join(k for k in values if k != "config")
                raise InputError(f"{config}: unknown key {key!r}; allowed keys: {allowed}")
            if key in given:
                continue  # the command line wins
            values[key] = value
            origins[key] = str(config)
    return {key: check_setting(key, value, origins.get(key)) for key, value in values.items()}


def data_options(settings: Mapping[str, Any], *, data: Any, seed: int) -> DataOptions:
    """The `DataOptions` of validated settings (`resolve_settings`) for one dataset and seed."""
    if data is not None and not isinstance(data, str):
        raise InputError(f"data = {data!r}: expected one dataset (a path or a built-in name)")
    drop = settings["drop_classes"]
    return DataOptions(
        data=data,
        label_col=settings["label_col"],
        preset=settings["preset"],
        nan_policy=settings["nan_policy"],
        drop_classes=None if drop is None else parse_list(drop),
        merge=settings["merge"] or None,
        min_class_count=settings["min_class_count"],
        sample_frac=settings["sample_frac"],
        split=parse_split(settings["split"]),
        scaler=settings["scaler"],
        seed=seed,
        cache=not settings["no_cache"],
        dedupe=bool(settings["dedupe"]),
        positive_label=settings["positive_label"],
        task=settings.get("task") or "multiclass",
        negative=settings.get("negative"),
        split_by=settings.get("split_by") or "random",
        test_data=settings.get("test_data"),
        label_map=settings.get("label_map") or None,
    )


def train_options(settings: Mapping[str, Any], *, seed: int) -> TrainOptions:
    """The `TrainOptions` of validated settings (`resolve_settings`) for one seed."""
    far = settings["far"]
    try:
        far_targets = tuple(float(x) for x in parse_list(str(far)))
    except ValueError:
        far_targets = ()
    if not far_targets or not all(0 < f < 1 for f in far_targets):
        raise InputError(f"--far {far!r}: expected rates in (0, 1) like 0.01,0.001")
    return TrainOptions(
        precision=settings["precision"],
        model=settings["model"],
        epochs=int(settings["epochs"]),
        batch_size=int(settings["batch_size"]),
        lr=float(settings["lr"]),
        clipnorm=float(settings["clipnorm"]),
        patience=int(settings["patience"]),
        device=settings["device"],
        seed=seed,
        tensorboard=bool(settings["tensorboard"]),
        jit_compile={"auto": None, "on": True, "off": False}[settings["jit"]],
        select=settings["select"],
        far_targets=far_targets,
        model_params=parse_params(settings.get("model_param"), flag="--model-param"),
    )


def _toml_value(value: Any) -> str:
    """A TOML table value written back as the text of `--param key=VALUE`."""
    import json

    return json.dumps(value)


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
            f"{dataset}: --model {model} needs at least {need} features, the data has "
            f"{n_features} after preprocessing; use --model mlp"
        )
