"""Advisory locks that keep two `lossbench compare` processes out of one experiment folder.

Two locks, both `fcntl.flock` on a hidden file (released by the kernel when the process dies, so a
killed compare never leaves a stale lock):

- `out/.lossbench.lock`, held only while a compare finds or creates its experiment folder, so two
  identical commands started together agree on one folder;
- `<experiment>/.lock`, held for the whole compare: a second compare that resolves to the same
  folder is refused with `ExperimentBusy` (an `InputError`: exit code 2, one line) instead of
  training every run a second time.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from lossbench.errors import InputError

EXPERIMENT_LOCK = ".lock"
OUT_LOCK = ".lossbench.lock"


class ExperimentBusy(InputError):
    """Another process holds the experiment folder's lock."""


class FolderLock:
    """An exclusive `flock` on `folder/name`; `release()` may be called more than once."""

    def __init__(self, folder: Path, name: str = EXPERIMENT_LOCK) -> None:
        self.path = Path(folder) / name
        self._fd: int | None = None

    def acquire(self, *, wait: bool) -> FolderLock:
        """Take the lock, waiting for it when `wait`, else raising ExperimentBusy at once."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ExperimentBusy(
                f"{self.path.parent}: this experiment is in use by another lossbench process"
                f"{holder}; wait for it to finish (then re-run to resume) or start a new "
                "experiment (fresh)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (closing the file releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def lock_out(out: Path) -> FolderLock:
    """The short lock on `out` taken while an experiment folder is found or created."""
    out.mkdir(parents=True, exist_ok=True)
    return FolderLock(out, OUT_LOCK).acquire(wait=True)


def lock_experiment(exp_dir: Path) -> FolderLock:
    """The experiment folder's lock, or ExperimentBusy when another process holds it."""
    return FolderLock(exp_dir).acquire(wait=False)
