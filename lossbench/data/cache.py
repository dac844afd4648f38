"""A cache of prepared arrays, keyed by a fingerprint of the sources and the options (SPEC 2.1).

Layout: `<cache dir>/prepared/<fingerprint>/` holds one NumPy `.npy` file per array and
`meta.json` (names, info). Nothing is pickled. An entry is written into a temporary folder that is
renamed into place when complete, so a reader sees a whole entry or none. A reload memory-maps the
arrays read-only.
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

from lossbench.config import DataOptions

#: Bumped whenever the preparation changes what it produces; old entries then miss.
CACHE_FORMAT = 1
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
#: DataOptions fields that change the prepared arrays (the others only say where or whether).
_KEY_FIELDS = (
    "label_col",
    "preset",
    "nan_policy",
    "drop_classes",
    "merge",
    "min_class_count",
    "sample_frac",
    "split",
    "scaler",
    "seed",
    "max_onehot_levels",
    "dedupe",
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


def fingerprint(sources: list[Any], opts: DataOptions) -> str:
    """SHA-256 hex digest of the sources' signatures and the options that shape the arrays."""
    options = {k: getattr(opts, k) for k in _KEY_FIELDS}
    options["split"] = [float(f) for f in opts.split]
    payload = {"format": CACHE_FORMAT, "sources": sources, "options": options}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def entry_dir(root: Path, key: str) -> Path:
    """The folder of the cache entry `key`."""
    return root / "prepared" / key


def load_entry(root: Path, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays (read-only memory maps) and metadata of entry `key`, or None if absent/broken."""
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
