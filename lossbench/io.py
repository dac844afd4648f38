"""Atomic file writes: every result file is written to a temporary file in the same folder, then
renamed over the target with `os.replace`, so a reader never sees a half-written file and an
interrupted write leaves the previous version (or nothing) in place, plus no temporary file.

The parent folder is created when missing. Files get the usual permissions (0o666 minus the
umask), not the 0o600 that `tempfile` would leave.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lossbench.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "atomic_path",
    "atomic_savefig",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_parquet",
    "atomic_write_text",
    "jsonable",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on normal exit it replaces `path` atomically.

    Write the content to the yielded path (by name, e.g. with a library's `to_parquet`). If the
    body raises, the temporary file is removed and `path` is left untouched.

    Example:
        >>> with atomic_path("out/table.parquet") as tmp:  # doctest: +SKIP
        ...     df.to_parquet(tmp)
    """
    target = Path(path)
    _make_folder(target.parent)
    if target.is_dir():
        raise InputError(f"{target}: a folder is in the way of a results file; move it away")
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # flush the data to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno and str(exc.filename) == str(tmp):
            # name the file the user knows, not the temporary one that no longer exists
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise


def _make_folder(folder: Path) -> None:
    """Create `folder` and its parents.

    Raises:
        InputError: a file stands where the folder (or one of its parents) must be.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next(p for p in (folder, *folder.parents) if p.exists() and not p.is_dir())
        raise InputError(
            f"{blocker}: not a folder (a file is in its place); move it away"
        ) from None


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (UTF-8, newlines as given); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Write `obj` as JSON (NaN/inf become null, other values via `str`); returns the path."""
    text = json.dumps(jsonable(obj), indent=indent, default=str, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def atomic_write_csv(path: str | os.PathLike[str], df: pd.DataFrame, index: bool = False) -> Path:
    """Write a DataFrame as CSV atomically (without the index unless asked); returns the path."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index)
    return Path(path)


def atomic_write_parquet(
    path: str | os.PathLike[str], df: pd.DataFrame, index: bool = False
) -> Path:
    """Write a DataFrame as Parquet (pyarrow) atomically; returns the path."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=index, engine="pyarrow")
    return Path(path)


def atomic_savefig(
    fig: Figure, path: str | os.PathLike[str], dpi: int = 100, **kwargs: Any
) -> Path:
    """Save a Matplotlib figure atomically; the format comes from the suffix of `path`."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, **kwargs)
    return Path(path)


def jsonable(obj: Any) -> Any:
    """A JSON-able copy of `obj`: non-finite floats (at any depth) become None, NumPy scalars
    and arrays Python values, tuples lists and keys strings; anything else is left as it is."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()  # NumPy scalar
    elif hasattr(obj, "tolist") and hasattr(obj, "dtype"):
        return jsonable(obj.tolist())  # NumPy array
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj
