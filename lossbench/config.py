"""The resolved configuration of a run: defaults, then a TOML config file, then the flags."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossbench.errors import InputError

SELECT_CRITERIA = ("macro_f1", "nll", "auprc", "balanced_accuracy")  # SPEC 5.1


@dataclass
class DataOptions:
    """How to load and prepare a dataset (SPEC section 2)."""

    data: str | None = None  # path (CSV, CSV.gz, Parquet, folder of CSVs) or built-in name
    label_col: str | None = None  # default: "Label", else the last column
    preset: str = "auto"  # cicids2017 | none | auto
    nan_policy: str = "drop"  # drop | median | error
    drop_classes: list[str] | None = None  # None: the preset's default (Heartbleed, Infiltration)
    merge: list[str] | None = None  # ["Web Attack=Web Attack*"]; None: the preset's default
    min_class_count: int | None = None  # drop (with a warning) classes with fewer rows than this
    sample_frac: float | None = None
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    scaler: str = "minmax"  # minmax | standard
    seed: int = 0  # seeds the subsample and the split
    cache: bool = True
    cache_dir: str | None = None  # default: ~/.cache/lossbench (or $LOSSBENCH_CACHE)
    max_onehot_levels: int = 20
    positive_label: str | None = None  # binary tasks: the positive class (default: the minority)
    dedupe: bool = False  # drop exact duplicate rows (features and label) before the split


@dataclass
class TrainOptions:
    """How to train one run (SPEC section 3)."""

    model: str = "cnn1d"  # cnn1d | mlp
    epochs: int = 200  # a budget: early stopping on the selection criterion ends most runs
    batch_size: int = 256
    lr: float = 1e-3
    clipnorm: float = 1.0
    patience: int = 20  # 0 disables early stopping
    select: str = (
        "macro_f1"  # selection criterion (SPEC 5.1): macro_f1 | nll | auprc | balanced_accuracy
    )
    far_targets: tuple[float, ...] = (0.01, 0.001)  # operating points: DR at these validation FARs
    device: str = "auto"  # auto | cpu | gpu
    seed: int = 0
    filters: int = 64
    units: int = 128
    dropout: float = 0.2
    jit_compile: bool | None = None  # None: XLA where it helps (auto)
    precision: str = "float32"  # float32 | mixed_bfloat16 | mixed_float16 (SPEC 7)
    tensorboard: bool = False


@dataclass
class RunConfig:
    """Everything that determines one run."""

    loss: str = "ce"
    params: dict[str, Any] = field(default_factory=dict)
    data: DataOptions = field(default_factory=DataOptions)
    train: TrainOptions = field(default_factory=TrainOptions)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """Parse `--param key=value` items; values are read as TOML scalars or lists when possible."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--param {item!r}: expected key=value, e.g. --param gamma=2")
        key, raw = (s.strip() for s in item.split("=", 1))
        if not key:
            raise InputError(f"--param {item!r}: empty parameter name")
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
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{p}: not valid TOML ({exc})") from None
    return {k.replace("-", "_"): v for k, v in raw.items()}
