"""Losses the user brings: `[ALIAS=]MODULE:ATTR` specs, Python objects and plugins.

A spec names an attribute of an importable module (`mypkg.losses:poly1`) or of a `.py` file
(`./my_losses.py:poly1`, relative to the current directory). The attribute may be

* a `LossbenchLoss` subclass: built like a built-in (class counts, `Param` validation, hooks,
  posterior, search ranges for `--tune`);
* a `keras.losses.Loss` subclass: built with the parameters, plus `from_logits=True` when its
  constructor takes `from_logits`;
* a callable with a `class_counts` parameter: a factory, called with the training class counts
  and the parameters, returning one of these or a loss function;
* any other callable: the loss itself, `fn(y_true_onehot, logits)` returning per-sample values
  `(B,)` or a scalar, written in `keras.ops`.

Everything but the first is wrapped in `FunctionLoss`, a `LossbenchLoss` with the default hooks
and posterior (softmax), so a user's loss runs under the protocol of a built-in. `resolve`
records the spec, the file that defines the attribute and that file's SHA-256 (`UserCode`), the
provenance the experiment key and `experiment.json` carry.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from lossbench.errors import InputError
from lossbench.losses.base import LossbenchLoss

#: The entry-point group installed packages register losses under (`name = "pkg.mod:Attr"`).
PLUGIN_GROUP = "lossbench.losses"
#: What a run's name may be made of (it names the run's folder).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class UserCode:
    """A resolved user loss or network: where it comes from and what it is.

    `spec` is what the user wrote (or `module:qualname` for a Python object), `path` the file
    that defines the attribute and `sha256` the SHA-256 of that file's bytes (None when the
    object has no source file); `kind` is lossbench | keras | factory | function | model.
    """

    name: str
    spec: str
    path: str | None
    sha256: str | None
    kind: str
    obj: Any
    #: file (a `.py` path spec), module, object (given from Python) or plugin
    origin: str = "module"
    #: the bytes of a `.py` file spec, as hashed (what a Ray task ships to its worker)
    source: bytes | None = field(default=None, repr=False)

    def provenance(self) -> dict[str, Any]:
        """What experiment.json and config.json record of it (JSON-able)."""
        return {"spec": self.spec, "path": self.path, "sha256": self.sha256, "kind": self.kind}


def is_spec(text: str) -> bool:
    """Whether a `--losses` item (or `--model` value) is a `[ALIAS=]MODULE:ATTR` spec."""
    return ":" in text


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_spec(text: str, *, what: str = "loss") -> tuple[str | None, str, str]:
    """`[ALIAS=]MODULE:ATTR` -> (alias or None, module, attr); InputError when malformed."""
    alias = None
    head, colon, _ = text.partition(":")
    if "=" in head:
        alias, _, text = text.partition("=")
        alias = alias.strip()
    module, _, attr = text.strip().rpartition(":")
    if not module or not attr or not colon:
        raise InputError(f"{what} spec {text!r}: expected [ALIAS=]MODULE:ATTR, e.g. ./my.py:fn")
    return alias, module.strip(), attr.strip()


def is_file_module(module: str) -> bool:
    """Whether the MODULE of a spec is a path to a `.py` file (else a module name)."""
    return module.endswith(".py") or "/" in module or "\\" in module


def _import(module: str, spec: str, what: str) -> Any:
    """The module of a spec: a `.py` file (relative to the current directory) or a module name."""
    if is_file_module(module):
        path = Path(module).expanduser()
        if not path.is_file():
            raise InputError(f"{what} spec {spec!r}: file {str(path)!r} not found")
        digest = file_sha256(path)
        stem = re.sub(r"\W", "_", path.stem)
        mod_name = f"_lossbench_user_{stem}_{digest[:16]}"
        if mod_name in sys.modules:  # the same source imported before: the same objects
            return sys.modules[mod_name]
        loader_spec = importlib.util.spec_from_file_location(mod_name, path.resolve())
        if loader_spec is None or loader_spec.loader is None:
            raise InputError(f"{what} spec {spec!r}: cannot import {str(path)!r}")
        mod = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = mod
        try:
            loader_spec.loader.exec_module(mod)
        except Exception as exc:
            del sys.modules[mod_name]
            raise InputError(
                f"{what} spec {spec!r}: importing {str(path)!r} failed: {_cause(exc)}"
            ) from None
        return mod
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise InputError(
            f"{what} spec {spec!r}: cannot import module {module!r}: {_cause(exc)}"
        ) from None


def _attribute(module: str, attr: str, spec: str, what: str) -> tuple[Any, Any]:
    """(the module, its attribute `attr`, dotted for a class attribute) of a spec."""
    mod = _import(module, spec, what)
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{what} spec {spec!r}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return mod, obj


def resolve_model(text: str) -> UserCode:
    """Resolve a network spec `MODULE:ATTR`: ATTR is `build(n_features, n_classes, **params)`
    returning a `keras.Model` of logits (InputError naming the spec and the cause)."""
    _, module, attr = split_spec(text, what="model")
    mod, obj = _attribute(module, attr, text, "model")
    if not callable(obj):
        raise InputError(
            f"model spec {text!r}: {type(obj).__name__} object is not a callable "
            "build(n_features, n_classes, **params)"
        )
    path, digest = source_of(obj if inspect.isfunction(obj) else type(obj), mod)
    return _with_origin(UserCode(text, text, path, digest, "model", obj), module)


def build_model(
    code: UserCode, n_features: int, n_classes: int, params: dict[str, Any]
) -> keras.Model:
    """The user's network; InputError unless it is a `keras.Model` with output `(None, K)`."""
    try:
        model = code.obj(n_features, n_classes, **params)
    except Exception as exc:
        raise InputError(f"model spec {code.spec!r}: building it raised {_cause(exc)}") from None
    if not isinstance(model, keras.Model):
        raise InputError(
            f"model spec {code.spec!r}: returned a {type(model).__name__}, not a keras.Model"
        )
    try:
        shape = tuple(model.output_shape)
    except (AttributeError, ValueError):
        shape = None
    if shape != (None, n_classes):
        raise InputError(
            f"model spec {code.spec!r}: output shape {shape}; expected (None, {n_classes}) "
            f"logits for {n_features} features and {n_classes} classes"
        )
    return model


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def source_of(obj: Any, module: Any = None) -> tuple[str | None, str | None]:
    """(the file defining `obj`, its SHA-256): the object's source file, else its module's."""
    path = None
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        path = None
    if path is None and module is not None:
        path = getattr(module, "__file__", None)
    if path is None or not Path(path).is_file():
        return None, None
    return str(Path(path).resolve()), file_sha256(path)


def loss_kind(obj: Any) -> str | None:
    """lossbench | keras | factory | function, or None when `obj` is neither a class nor a
    callable that can be a loss."""
    if inspect.isclass(obj):
        if issubclass(obj, LossbenchLoss):
            return "lossbench"
        if issubclass(obj, keras.losses.Loss):
            return "keras"
        return None
    if isinstance(obj, LossbenchLoss | keras.losses.Loss):
        return "keras"  # an instance: its `call` is the loss
    if callable(obj):
        return "factory" if "class_counts" in _parameters(obj) else "function"
    return None


def _parameters(fn: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def resolve(text: str, *, builtins: tuple[str, ...] = ()) -> UserCode:
    """Resolve a loss spec `[ALIAS=]MODULE:ATTR` (InputError naming the spec and the cause)."""
    alias, module, attr = split_spec(text)
    mod, obj = _attribute(module, attr, text, "loss")
    code = from_object(
        obj, name=alias or attr.split(".")[-1].lower(), spec=text, module=mod, builtins=builtins
    )
    return _with_origin(code, module)


def _with_origin(code: UserCode, module: str) -> UserCode:
    """A spec's `UserCode` with its origin; a `.py` file's path, hash and bytes are the file's."""
    if not is_file_module(module):
        return replace(code, origin="module")
    path = Path(module).expanduser().resolve()
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    return replace(code, path=str(path), sha256=digest, origin="file", source=source)


def from_object(
    obj: Any,
    *,
    name: str | None = None,
    spec: str | None = None,
    module: Any = None,
    builtins: tuple[str, ...] = (),
) -> UserCode:
    """A `UserCode` for a loss given as a Python object (a class or a callable)."""
    spec = spec or f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', obj)!s}"
    kind = loss_kind(obj)
    if kind is None:
        raise InputError(
            f"loss spec {spec!r}: {type(obj).__name__} object is neither a loss class nor a "
            "callable"
        )
    if name is None:
        name = (getattr(obj, "__name__", None) or type(obj).__name__).lower()
    if not NAME_PATTERN.match(name):
        raise InputError(
            f"loss spec {spec!r}: {name!r} cannot name a run (letters, digits, '_' and '-'); "
            "give one with ALIAS=MODULE:ATTR"
        )
    if name in builtins:
        raise InputError(
            f"loss spec {spec!r}: the name {name!r} is a built-in loss; give another with "
            "ALIAS=MODULE:ATTR"
        )
    path, digest = source_of(
        obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj), module
    )
    return UserCode(name, spec, path, digest, kind, obj, origin="object")


# ----------------------------------------------------------------------------------------------
# building


def accepted_params(code: UserCode) -> set[str] | None:
    """The parameter names a user loss takes (None: any)."""
    if code.kind == "lossbench":
        return set(code.obj.PARAMS)
    if code.kind == "function" or (code.kind == "keras" and not inspect.isclass(code.obj)):
        return set()
    target = code.obj.__init__ if code.kind == "keras" else code.obj
    params = _parameters(target)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {k for k in params if k not in ("self", "class_counts", "from_logits")}


def build(code: UserCode, class_counts: list[int], params: dict[str, Any]) -> LossbenchLoss:
    """The loss of one run from the training class counts and its parameters."""
    if code.kind == "lossbench":
        cls = code.obj
        return cls(class_counts, **cls.validate_params(params, len(class_counts)))
    allowed = accepted_params(code)
    unknown = sorted(set(params) - allowed) if allowed is not None else []
    if unknown:
        raise InputError(
            f"loss {code.name!r}: unknown parameter(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(allowed or [])) or 'none'}"
        )
    target: Any = code.obj
    if code.kind == "factory":
        try:
            target = code.obj(class_counts=list(class_counts), **params)
        except Exception as exc:
            raise InputError(f"loss spec {code.spec!r}: the factory raised {_cause(exc)}") from None
        if isinstance(target, LossbenchLoss):
            return target
        if inspect.isclass(target) and issubclass(target, LossbenchLoss):
            return target(class_counts)
        params = {}
    fn = _loss_function(target, params, code.spec)
    cls = type(
        f"FunctionLoss_{code.name}",
        (FunctionLoss,),
        {
            "NAME": code.name,
            "__qualname__": f"FunctionLoss[{code.name}:{code.sha256}:{id(code.obj)}]",
        },
    )
    return cls(class_counts, fn=fn, **params)


def _loss_function(target: Any, params: dict[str, Any], spec: str) -> Any:
    """`fn(y_onehot, logits)` of a Keras loss class or instance, or a callable itself."""
    if inspect.isclass(target) and issubclass(target, keras.losses.Loss):
        kwargs = dict(params)
        if "from_logits" in _parameters(target.__init__):
            kwargs["from_logits"] = True
        try:
            target = target(**kwargs)
        except Exception as exc:
            raise InputError(f"loss spec {spec!r}: building it raised {_cause(exc)}") from None
    if isinstance(target, keras.losses.Loss):
        return target.call
    if callable(target):
        return target
    raise InputError(f"loss spec {spec!r}: the factory returned neither a loss nor a callable")


class FunctionLoss(LossbenchLoss):
    """A user's loss function (or Keras loss) as a lossbench loss: `fn(y_onehot, logits)` per
    sample (a scalar is spread over the batch), with the default hooks and posterior softmax(z).
    Its parameters went to the Keras loss or the factory that made `fn`; they are kept for the
    record and the trace key."""

    SOURCE: ClassVar[str] = "user code"

    def __init__(self, class_counts: Any, *, fn: Any, **kwargs: Any) -> None:
        keras_args = {k: kwargs.pop(k) for k in ("name", "reduction", "dtype") if k in kwargs}
        self._fn = fn
        self._user_params = kwargs
        super().__init__(class_counts, **keras_args)
        self.params = dict(kwargs)

    @classmethod
    def validate_params(cls, params: dict[str, Any], num_classes: int) -> dict[str, Any]:
        return dict(params)  # checked by `build` against the user's signature

    def call(self, y_true: Any, logits: Any) -> Any:
        labels, logits = self.prepare(y_true, logits)
        onehot = ops.one_hot(labels, self.num_classes, dtype=logits.dtype)
        out = ops.cast(ops.convert_to_tensor(self._fn(onehot, logits)), logits.dtype)
        if len(out.shape) == 0:
            return out * ops.ones_like(logits[:, 0])
        if len(out.shape) != 1:
            raise ValueError(
                f"returned shape {tuple(out.shape)}; expected per-sample values (batch,) or a "
                "scalar"
            )
        return out


def probe(loss: LossbenchLoss, spec: str, num_classes: int) -> None:
    """Call a user loss on a small batch (every class twice, seeded logits); InputError naming
    the spec when it raises, returns a shape other than `(batch,)` or a non-finite value."""
    batch = 2 * num_classes
    labels = np.arange(batch, dtype=np.int64) % num_classes
    logits = np.random.default_rng(0).normal(size=(batch, num_classes)).astype(np.float32)
    try:
        values = np.asarray(ops.convert_to_numpy(loss.call(labels, logits)))
    except Exception as exc:
        raise InputError(f"loss spec {spec!r}: it raised on a probe batch: {_cause(exc)}") from None
    if values.shape != (batch,):
        raise InputError(
            f"loss spec {spec!r}: returned shape {values.shape} on a probe batch of {batch} "
            "rows; expected per-sample values (batch,) or a scalar"
        )
    if not np.all(np.isfinite(values)):
        raise InputError(f"loss spec {spec!r}: returned non-finite values on a probe batch")


def plugins() -> dict[str, str]:
    """The installed plugins: entry-point name -> "pkg.mod:Attr" (group `lossbench.losses`)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}


# ----------------------------------------------------------------------------------------------
# Ray: the user's code travels with each task


def shipment(code: UserCode) -> UserCode:
    """What a Ray task carries of a user loss or network: a `.py` file's bytes (not its module,
    which the worker cannot import by name), an object itself (Ray pickles it by value where it
    must), a module's or a plugin's name only (the worker imports it)."""
    return replace(code, obj=None) if code.origin != "object" else code


HINT = (
    "on a Ray cluster every worker must be able to import it: install the module there, or "
    "name a .py file (MODULE a path), which lossbench ships with each task"
)


def unpack(code: UserCode, plugin: Any = None) -> UserCode:
    """The `UserCode` a worker runs from a `shipment`: the shipped file written to a temporary
    folder and imported, the module imported (InputError with how to make it importable), the
    plugin loaded by `plugin(name)`; its provenance stays the sender's."""
    if code.origin == "object":
        return code
    if code.origin == "plugin":
        return plugin(code.name)
    _, module, attr = split_spec(code.spec, what="model" if code.kind == "model" else "loss")
    if code.origin == "file":
        import tempfile

        folder = Path(tempfile.gettempdir()) / "lossbench-user" / str(code.sha256)
        folder.mkdir(parents=True, exist_ok=True)
        module = str(folder / Path(module).name)
        Path(module).write_bytes(code.source or b"")
    what = "model" if code.kind == "model" else "loss"
    try:
        _, obj = _attribute(module, attr, code.spec, what)
    except InputError as exc:
        raise InputError(f"{exc}; {HINT}") from None
    return replace(code, obj=obj)
