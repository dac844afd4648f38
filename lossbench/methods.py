"""Methods: what a `--losses` item names (SPEC 9).

A method is a loss, optionally with a data-level treatment of the training split
(`ce+ros`, `ce+rus`, `ce+smote`, `ce+balanced-batches`: `<loss>+<sampler>`), and optionally with
the parameters `compare --tune` chose (`<method>@tuned`, a row beside the method's default row).
`prepare_method` builds the model, loss and trainer of one run of a method, the same way for an
experiment's runs and for a tuning trial.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossbench.config import TrainOptions
from lossbench.data.resample import SAMPLERS, balanced_epoch_order, resample_training
from lossbench.errors import InputError
from lossbench.store import TUNED

DATA_LEVEL = tuple(f"ce+{s}" for s in SAMPLERS)


@dataclass(frozen=True)
class Method:
    """A parsed method name."""

    name: str
    loss: str
    sampler: str | None = None
    tuned: bool = False

    @property
    def untuned(self) -> str:
        """The method's name without the `@tuned` suffix."""
        return self.name.removesuffix(TUNED)


def base_loss(name: str) -> str:
    """The loss of a method name, without checking it ("focal" for "focal+ros@tuned")."""
    return name.removesuffix(TUNED).split("+", 1)[0]


def parse_method(name: str, *, allow_tuned: bool = True) -> Method:
    """Parse `<loss>[+<sampler>][@tuned]`; raises InputError naming what is allowed."""
    from lossbench.losses import names
    from lossbench.losses.registry import known

    tuned = name.endswith(TUNED)
    if tuned and not allow_tuned:
        raise InputError(f"losses {name!r}: tuned rows come from tune N, not from losses")
    loss, _, sampler = name.removesuffix(TUNED).partition("+")
    if not known(loss):
        raise InputError(
            f"losses {name!r}: unknown loss {loss!r}; choose from {', '.join(names())} "
            f"or a data-level baseline {', '.join(DATA_LEVEL)}"
        )
    if sampler and sampler not in SAMPLERS:
        raise InputError(
            f"losses {name!r}: unknown sampler {sampler!r} after '+'; choose from "
            f"{', '.join(SAMPLERS)}"
        )
    return Method(name, loss, sampler or None, tuned)


@dataclass
class MethodSetup:
    """One run's model, loss and trainer, with the training rows the trainer sees."""

    model: Any
    loss: Any
    trainer: Any
    X_train: np.ndarray
    y_train: np.ndarray
    train_class_counts: list[int]
    initial_weights_sha256: str


def prepare_method(
    method: Method,
    params: dict[str, Any],
    topts: TrainOptions,
    X_train: np.ndarray,
    y_train: np.ndarray,
    n_features: int,
    n_classes: int,
    device: str,
    class_names: Sequence[str] | None = None,
) -> MethodSetup:
    """Resample the training rows when the method says so (seeded, its own generator), build the
    loss from the class counts the trainer sees, then get the seeded trainer of the run
    (`train.trainer_for_run`: initial weights depend on the seed and network only) with
    class-balanced batches for `+balanced-batches`. Call inside the device scope.
    `class_names` name the class a sampler cannot work on (`errors.RunError`)."""
    from lossbench.losses import get
    from lossbench.training import resolve_jit, trainer_for_run

    if method.sampler in ("ros", "rus", "smote"):
        X_train, y_train = resample_training(
            X_train, y_train, method.sampler, topts.seed, class_names
        )
    y_train = np.asarray(y_train, dtype=np.int64)
    counts = np.bincount(y_train, minlength=n_classes).astype(int).tolist()
    loss = get(method.loss, counts, **params)
    arch = {
        "name": topts.model,
        "n_features": n_features,
        "n_classes": n_classes,
        "filters": topts.filters,
        "units": topts.units,
        "dropout": topts.dropout,
        "head": loss.head,  # the head the loss declares (ldam: cosine, s = 30)
        "scale": loss.scale,
        "precision": topts.precision,
        **({"params": topts.model_params} if topts.model_params else {}),
    }
    jit = resolve_jit(topts.jit_compile, device)
    trainer, checksum = trainer_for_run(arch, loss, topts, n_classes, jit_compile=jit)
    # set on every run: a cached trainer may come from a run of another method
    balanced = method.sampler == "balanced-batches"
    trainer.epoch_order = functools.partial(balanced_epoch_order, topts.seed) if balanced else None
    model, loss = trainer.model, trainer.loss  # the cached instances, this run's state
    return MethodSetup(model, loss, trainer, X_train, y_train, counts, checksum)


def with_lr(topts: TrainOptions, lr: float | None) -> TrainOptions:
    """`topts` with a tuned learning rate (unchanged when `lr` is None)."""
    return topts if lr is None else dataclasses.replace(topts, lr=float(lr))


__all__ = [
    "DATA_LEVEL",
    "TUNED",
    "Method",
    "MethodSetup",
    "base_loss",
    "parse_method",
    "prepare_method",
    "with_lr",
]
