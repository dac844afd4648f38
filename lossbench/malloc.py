"""glibc's allocator settings for a `lossbench` process (issue 35); nothing elsewhere.

TensorFlow's and Eigen's threads each allocate from their own glibc arena (up to 8 per core), and
memory freed in one arena is not reused by another, so the evaluation's large temporaries (the
1D-CNN's activations of each call) leave several arenas' worth of freed pages resident. Two
arenas on every machine: a 1-epoch `run` on synthetic-cicids peaked at 1156 MB with glibc's
default and 1085 MB with two (VmHWM, measured back to back). Setting `MALLOC_ARENA_MAX` in the
environment overrides this.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

_M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)
ARENAS = 2


def limit_arenas(n: int = ARENAS) -> bool:
    """Let glibc's malloc use at most `n` arenas from now on (unless `MALLOC_ARENA_MAX` is set);
    True when the setting took effect. Call it before threads start allocating."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    with contextlib.suppress(OSError, AttributeError, TypeError):
        return bool(ctypes.CDLL(ctypes.util.find_library("c")).mallopt(_M_ARENA_MAX, n))
    return False
