"""The one settings object of `run` and `compare`: every setting from the flags, the `--config`
TOML file, the Python API's keywords and the defaults, validated once (`resolve_settings`) into
typed values (lists are lists, `split` and `far` tuples of floats, `param` a dict, seeds integers)
and packed into a `CommandSettings` (`build_settings`), which the layers below trust.

Only this module and the CLI name a setting's flag in a message (`--epochs -3`, or `exp.toml:
epochs = -3` for a key of a config file).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
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
# one validation path for every source of a setting (flags, the TOML file, API keywords, defaults)

#: Seeds are NumPy/TensorFlow seeds: non-negative 32-bit integers.
SEED_MAX = 2**32 - 1


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
    "seeds": Rule("seeds", f"integers from 0 to {SEED_MAX} (a list, or a string like 0,1,2)"),
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
    "far": Rule("far", "false-alarm-rate targets in (0, 1), e.g. 0.01,0.001 or [0.01, 0.001]"),
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


class _Bad(Exception):
    """A value its rule does not allow (`check_setting` words the message)."""


def _number(value: Any, rule: Rule, key: str = "") -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad
    if rule.kind == "int" and not isinstance(value, int):
        raise _Bad
    if value != value or not rule.check(value):  # NaN fails every range
        raise _Bad
    return float(value) if rule.kind == "float" else value


def _bool(value: Any, rule: Rule, key: str = "") -> bool:
    if not isinstance(value, bool):
        raise _Bad
    return value


def _text(value: Any, rule: Rule, key: str = "") -> str:
    if not isinstance(value, str) or (rule.choices and value not in rule.choices):
        raise _Bad
    return value


def _model(value: Any, rule: Rule, key: str = "") -> str:
    if not isinstance(value, str):
        raise _Bad
    if ":" in value:
        from lossbench.models import user_model  # lazy: Keras

        user_model(value)  # imported and checked here
    elif value not in get_args(ModelName):
        raise _Bad
    return value


def _data(value: Any, rule: Rule, key: str = "") -> Any:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v for v in items):
        raise _Bad
    return value


def _split(value: Any, rule: Rule, key: str = "") -> tuple[float, float, float]:
    if isinstance(value, list | tuple):
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise _Bad
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        raise _Bad
    try:
        return parse_split(value)
    except InputError:
        raise _Bad from None


def _out(value: Any, rule: Rule, key: str = "") -> str:
    if not isinstance(value, str) or not value:
        raise _Bad
    return value


def _params(value: Any, rule: Rule, key: str = "param") -> dict[str, Any]:
    if isinstance(value, Mapping):
        return flatten_params(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return parse_params(value, flag=f"--{key.replace('_', '-')}")
    raise _Bad


def _items(value: Any, rule: Rule, key: str = "") -> list[str]:
    """A comma-separated string or a list of strings or numbers, as a list of strings."""
    if isinstance(value, str):
        return parse_list(value)
    if isinstance(value, list | tuple) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        return [str(v).strip() for v in value]
    raise _Bad


def _seeds(value: Any, rule: Rule, key: str = "") -> list[int]:
    try:
        seeds = [int(s) for s in _items(value, rule)]
    except ValueError:
        raise _Bad from None
    if not seeds or not all(0 <= s <= SEED_MAX for s in seeds):
        raise _Bad
    return seeds


def _far(value: Any, rule: Rule, key: str = "") -> tuple[float, ...]:
    try:
        far = tuple(float(x) for x in _items(value, rule))
    except ValueError:
        raise _Bad from None
    if not far or not all(0 < f < 1 for f in far):
        raise _Bad
    return far


_CHECKS = {
    "int": _number,
    "float": _number,
    "bool": _bool,
    "str": _text,
    "choice": _text,
    "model": _model,
    "data": _data,
    "split": _split,
    "out": _out,
    "params": _params,
    "list": _items,
    "seeds": _seeds,
    "far": _far,
}


def check_setting(key: str, value: Any, origin: str | None = None) -> Any:
    """Validate one setting against `RULES` and return it typed: lists as lists of strings
    (`merge` and `label_map` as given: one item, or a list), seeds as integers, `split` and `far`
    as tuples of floats, a `[param]` table or `--param` items as a dict.

    `origin` is the config file the value came from (None: a flag, an API keyword or the default).

    Raises:
        InputError: naming the flag (or the file and key), the value and what is allowed.
    """
    rule = RULES.get(key)
    if rule is None or value is None:
        return value
    try:
        checked = _CHECKS[rule.kind](value, rule, key)
    except _Bad:
        raise InputError(f"{_where(key, value, origin)}: expected {rule.allowed}") from None
    if key == "out" and (problem := out_problem(Path(checked))):
        raise InputError(f"{_where(key, value, origin)}: {problem}")
    if key == "losses" and not checked:
        raise InputError(f"{_where(key, value, origin)}: give at least one loss")
    if key in ("losses", "baselines", "seeds"):
        repeated = [str(v) for v, n in Counter(checked).items() if n > 1]
        if repeated:
            where = _where(key, value, origin)
            raise InputError(f"{where}: {', '.join(repeated)} repeated; give each value once")
    if key in ("loss", "losses", "baselines"):
        _check_names(key, value, [checked] if key == "loss" else checked, origin)
    if key in ("merge", "label_map") and not isinstance(value, list):
        return [value]
    return checked


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
    """Every item of --loss/--losses names a registered loss (the part before any `+sampler`,
    which the methods layer checks), or "all", and none is a tuned row (`<method>@tuned`, which
    only --tune makes); every --baselines item a baseline."""
    if key != "baselines" and any("@" in i for i in items):
        from lossbench.store import TUNED

        if tuned := [i for i in items if i.endswith(TUNED)]:
            raise InputError(
                f"{_where(key, value, origin)}: {', '.join(map(repr, tuned))}: tuned rows come "
                f"from --tune N, not from --{key}"
            )
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
