"""Loss names -> classes, and the `get` / `names` / `describe` entry points.

Besides the eleven built-ins (`LOSSES`, `names()`), a name may be a user's loss registered in
this process (`register`, from a `[ALIAS=]MODULE:ATTR` spec or a Python object) or an installed
plugin (entry-point group `lossbench.losses`, registered on first use). `resolve_methods` turns
the items of `--losses` into run names, registering the specs among them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from lossbench.errors import InputError
from lossbench.losses.amrl import AMRLLoss
from lossbench.losses.base import LossbenchLoss, Param, class_stats
from lossbench.losses.ce import CrossEntropy, WeightedCrossEntropy
from lossbench.losses.dwb import DWBLoss
from lossbench.losses.focal import ClassBalancedLoss, FocalLoss
from lossbench.losses.margin import AutoBalanceLoss, LDAMLoss, LogitAdjustedLoss, VSLoss
from lossbench.losses.pgfl import PGFLoss
from lossbench.losses.user import UserCode, from_object, is_spec, plugins, probe, resolve

LOSSES: dict[str, type[LossbenchLoss]] = {
    cls.NAME: cls
    for cls in (
        CrossEntropy,
        WeightedCrossEntropy,
        FocalLoss,
        ClassBalancedLoss,
        DWBLoss,
        AMRLLoss,
        PGFLoss,
        LogitAdjustedLoss,
        LDAMLoss,
        VSLoss,
        AutoBalanceLoss,
    )
}


#: The user losses and plugins registered in this process, by run name.
USER: dict[str, UserCode] = {}


def names() -> list[str]:
    """The built-in loss names, in the SPEC's order (what `--losses all` runs)."""
    return list(LOSSES)


def register(loss: Any, *, name: str | None = None) -> str:
    """Register a user loss, given as a spec `[ALIAS=]MODULE:ATTR` or a Python object (a class
    or a callable), under its run name (ALIAS, else ATTR in lower case); returns the name.
    Registering a name again replaces the earlier loss (a later command of the process)."""
    builtins = tuple(LOSSES)
    if isinstance(loss, str):
        code = resolve(loss if name is None else f"{name}={loss}", builtins=builtins)
    else:
        code = from_object(loss, name=name, builtins=builtins)
    USER[code.name] = code
    return code.name


def user_code(name: str) -> UserCode | None:
    """The user loss or plugin a name stands for (a plugin is registered on first use), or None
    for a built-in or an unknown name."""
    if name in LOSSES:
        return None
    if name not in USER:
        found = plugins().get(name)
        if found is None:
            return None
        code = resolve(f"{name}={found}", builtins=tuple(LOSSES))
        USER[name] = dataclasses.replace(code, spec=f"plugin {name} = {found}", origin="plugin")
    return USER[name]


def shipments(losses: Sequence[str]) -> list[UserCode]:
    """What Ray tasks carry of the user losses among these methods (`user.shipment`)."""
    from lossbench.losses.user import shipment

    codes = {re.split(r"[+@]", m, maxsplit=1)[0] for m in losses}
    return [shipment(c) for c in map(user_code, sorted(codes)) if c is not None]


def unpack_shipments(codes: Sequence[UserCode]) -> None:
    """Register, in a Ray worker, the user losses a task carries (`user.unpack`)."""
    from lossbench.losses.user import unpack

    def plugin(name: str) -> UserCode:
        USER.pop(name, None)
        found = user_code(name)
        if found is None:
            raise InputError(f"loss {name!r}: no plugin of that name on this Ray worker")
        return found

    for code in codes:
        USER[code.name] = unpack(code, plugin)


def known(name: str) -> bool:
    """Whether `name` is a built-in, a registered user loss or an installed plugin."""
    return name in LOSSES or user_code(name) is not None


def resolve_methods(items: Sequence[Any]) -> list[str]:
    """The run names of `--losses` items: a spec or a Python object is registered (its name
    must not clash with a built-in or another item's), any other item is kept as written."""
    out: list[str] = []
    origin: dict[str, Any] = {}
    for item in items:
        if isinstance(item, str) and not is_spec(item):
            out.append(item)
            continue
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name = register(item[1], name=item[0])
        else:
            name = register(item)
        if name in origin:
            raise InputError(
                f"loss specs {_label(origin[name])} and {_label(item)} both name the run "
                f"{name!r}; give one another name with ALIAS=MODULE:ATTR"
            )
        origin[name] = item
        out.append(name)
    return out


def _label(item: Any) -> str:
    return repr(item) if isinstance(item, str) else repr(USER.get(str(item), item))


def provenance(losses: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The user code among these methods (names with any `+sampler` / `@tuned`): run name of the
    loss -> spec, file path and SHA-256 (experiment.json's `user_code`)."""
    out = {}
    for method in losses:
        base = re.split(r"[+@]", method, maxsplit=1)[0]
        code = user_code(base)
        if code is not None:
            out[base] = code.provenance()
    return out


def accepted_params(name: str) -> set[str] | None:
    """The parameter names the loss `name` takes (None: any keyword)."""
    from lossbench.losses.user import accepted_params as user_params

    code = user_code(name)
    if code is None:
        cls = LOSSES.get(name)
        return set(cls.PARAMS) if cls is not None else set()
    return user_params(code)


def declared_params(name: str) -> dict[str, Param]:
    """The `Param` declarations of a loss (none for a user loss that is not a `LossbenchLoss`):
    what `--tune` searches."""
    code = user_code(name)
    if code is None:
        return dict(LOSSES[name].PARAMS)
    return dict(code.obj.PARAMS) if code.kind == "lossbench" else {}


def probe_user_loss(name: str, loss: LossbenchLoss) -> None:
    """Check a user loss on a probe batch (`user.probe`); nothing for a built-in."""
    code = user_code(name)
    if code is not None:
        probe(loss, code.spec, loss.num_classes)


def get(name: str, class_counts: Sequence[int] | np.ndarray, **params: Any) -> LossbenchLoss:
    """Build the loss `name` from the training class counts and its parameters.

    Args:
        name: one of `names()`.
        class_counts: training samples per class (class-index order).
        **params: the loss's parameters (numbers, lists, strings or booleans as parsed from
            `--param key=value`); see `describe()` for what each loss accepts.

    Raises:
        ValueError (`lossbench.errors.InputError`): an unknown name, an unknown parameter or a
            value out of range; the message lists what is allowed.
    """
    from lossbench.losses.user import build

    code = user_code(name)
    if code is not None:
        class_stats(class_counts)
        return build(code, [int(c) for c in class_counts], params)
    cls = LOSSES.get(name)
    if cls is None:
        raise InputError(f"unknown loss {name!r}; expected one of: {', '.join(LOSSES)}")
    num_classes = class_stats(class_counts).num_classes
    return cls(class_counts, **cls.validate_params(params, num_classes))


def describe() -> list[dict[str, Any]]:
    """One dict per built-in loss: name, formula, defaults, source (with what differs from the
    authors' code and why), posterior (what calibration uses; decisions are argmax z), head,
    params (allowed values) and search (the ranges `compare --tune` searches; empty: the
    learning rate is tuned instead)."""
    return [_describe(name, cls) for name, cls in LOSSES.items()]


def describe_plugins() -> list[dict[str, Any]]:
    """`describe()`'s dict for each installed plugin, with its `entry_point`; a plugin that
    cannot be loaded gets its `error` instead of the description."""
    rows = []
    for name, value in plugins().items():
        try:
            code = user_code(name)
        except InputError as exc:
            rows.append({"name": name, "entry_point": value, "error": str(exc)})
            continue
        if code is None:  # a plugin named like a built-in: the built-in wins
            rows.append({"name": name, "entry_point": value, "error": "shadowed by a built-in"})
            continue
        if code.kind == "lossbench":
            row = _describe(name, code.obj)
        else:
            row = {
                "name": name,
                "formula": "",
                "defaults": {},
                "source": code.spec,
                "posterior": "softmax(z)",
                "head": "linear",
                "params": {},
                "search": {},
            }
        rows.append({**row, "entry_point": value, "source": row["source"] or code.spec})
    return rows


def _describe(name: str, cls: type[LossbenchLoss]) -> dict[str, Any]:
    return {
        "name": name,
        "formula": cls.FORMULA,
        "defaults": {k: p.default for k, p in cls.PARAMS.items()},
        "source": cls.SOURCE,
        "posterior": cls.POSTERIOR,
        "head": cls.HEAD,
        "params": {k: p.allowed() for k, p in cls.PARAMS.items()},
        "search": {
            k: p.search_space() for k, p in cls.PARAMS.items() if p.search_space() is not None
        },
    }
