"""A cache of prepared arrays, keyed by a fingerprint of the sources and the options (SPEC 2.1).

Layout: `<cache dir>/prepared/<fingerprint>/` holds one NumPy `.npy` file per array and
`meta.json` (names, info, the shape and a checksum of each array). Nothing is pickled. An entry is
written into a temporary folder that is renamed into place when complete, so a reader sees a whole
entry or none. A reload memory-maps the arrays read-only and verifies each one against its
checksum: an entry whose files were damaged (even at the same size) is a miss, and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lossbench.config import DataOptions, array_shaping
from lossbench.data.memory import release_mapped

#: Bumped whenever the preparation changes what it produces; old entries then miss.
CACHE_FORMAT = 2
ARRAY_NAMES = (
    "X_train",
    "X_val",
    "X_test",
    "y_train",
    "y_val",
    "y_test",
    "ids_train",
    "ids_val",
    "ids_test",
)


def cache_root(opts: DataOptions) -> Path:
    """`opts.cache_dir`, else `$LOSSBENCH_CACHE`, else `~/.cache/lossbench`."""
    if opts.cache_dir:
        return Path(opts.cache_dir).expanduser()
    env = os.environ.get("LOSSBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lossbench"


def file_signature(paths: list[Path]) -> list[list[Any]]:
    """(absolute path, size, mtime in ns) of each source file."""
    out = []
    for p in paths:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


def sources_digest(sources: list[Any]) -> str:
    """SHA-256 hex digest (first 16 digits) of the sources' signatures alone."""
    blob = json.dumps(sources, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def fingerprint(sources: list[Any], opts: DataOptions) -> str:
    """SHA-256 hex digest of the sources' signatures and the options that shape the arrays."""
    options = array_shaping(opts)
    options["split"] = [float(f) for f in opts.split]
    payload = {"format": CACHE_FORMAT, "sources": sources, "options": options}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


_BLOCK = 1024  # words per row of the checksum's 2-D view


def checksum(arr: np.ndarray) -> str:
    """A fast position-sensitive checksum of an array's bytes (Fletcher-style, in NumPy).

    The bytes are read as 64-bit words laid out in rows of 1024; the checksum holds the wrapping
    sums of all words, of the row sums weighted by row number and of the column sums weighted by
    column number, plus the byte count and the tail. Any change to one word, and any move of a
    word to another row or column, changes it. It guards against damaged files, not against
    tampering, and runs at memory speed (a SHA-256 would cost more than the cached reload itself).
    """
    raw = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    n_words = raw.size // 8
    words = raw[: n_words * 8].view(np.uint64)
    n_rows = n_words // _BLOCK
    grid = words[: n_rows * _BLOCK].reshape(n_rows, _BLOCK)
    rest = words[n_rows * _BLOCK :]
    with np.errstate(over="ignore"):
        rows = grid.sum(axis=1, dtype=np.uint64)
        cols = grid.sum(axis=0, dtype=np.uint64)
        total = rows.sum(dtype=np.uint64) + rest.sum(dtype=np.uint64)
        by_row = (rows * np.arange(1, n_rows + 1, dtype=np.uint64)).sum(dtype=np.uint64)
        by_col = (cols * np.arange(1, _BLOCK + 1, dtype=np.uint64)).sum(dtype=np.uint64)
        by_rest = (rest * np.arange(1, rest.size + 1, dtype=np.uint64)).sum(dtype=np.uint64)
    tail = raw[n_words * 8 :].tobytes().hex()
    parts = (int(total), int(by_row), int(by_col), int(by_rest))
    return f"{raw.size}:" + "".join(f"{p:016x}" for p in parts) + f":{tail}"


def entry_dir(root: Path, key: str) -> Path:
    """The folder of the cache entry `key`."""
    return root / "prepared" / key


def load_entry(
    root: Path, key: str, *, verify: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays (read-only memory maps) and metadata of entry `key`, or None if absent/broken.

    `verify`: each array checked against its checksum (then its pages are dropped from the
    process's memory again: a split is read in when it is used, the test split at the end).
    `prepare` reopens the entry it has just written without it."""
    folder = entry_dir(root, key)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT or meta.get("fingerprint") != key:
            return None
        arrays = {
            name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in ARRAY_NAMES
        }
    except (OSError, ValueError):
        return None
    for name, shape in meta.get("shapes", {}).items():
        if list(arrays[name].shape) != shape:
            return None
    if verify:
        sums = meta.get("checksums", {})
        for name, arr in arrays.items():
            if sums.get(name) != checksum(arr):
                return None  # damaged since it was written: rebuilt by the caller
            release_mapped(arr)
    return arrays, meta


def save_entry(
    root: Path, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> Path:
    """Write entry `key` atomically (temporary folder, then rename); returns its folder.

    Raises:
        OSError: the cache folder cannot be written.
    """
    final = entry_dir(root, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=final.parent))
    try:
        for name in ARRAY_NAMES:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name]), allow_pickle=False)
        full_meta = {
            **meta,
            "format": CACHE_FORMAT,
            "fingerprint": key,
            "shapes": {name: list(arrays[name].shape) for name in ARRAY_NAMES},
            "checksums": {name: checksum(arrays[name]) for name in ARRAY_NAMES},
        }
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1), encoding="utf-8")
        if final.exists():  # a stale or broken entry: replace it
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not a concurrent writer's complete entry
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
