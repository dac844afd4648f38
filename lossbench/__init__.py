"""lossbench: benchmark training losses for imbalanced tabular classification.

The Python API (`lossbench.api`): `compare(...) -> Experiment`, `run(...) -> Run`,
`load(path) -> Experiment`; bad input raises `InputError` with the command line's message.
"""

from typing import Any

from lossbench._version import __version__
from lossbench.errors import InputError

_API = ("Experiment", "Run", "compare", "load", "run")


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (the command line starts without them)."""
    if name in _API:
        from lossbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'lossbench' has no attribute {name!r}")


__all__ = ["InputError", "__version__", *_API]
