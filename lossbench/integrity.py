"""Verify a finished run's stored files before they are used (issue 17: trust no stored file).

`compare` retrains a run with DONE whose files fail this check, and the results reader
(`report.tables`) lists it as `unreadable` with the reason instead of crashing on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lossbench import layout

#: result files of a completed run -> columns (CSV/Parquet) or keys (JSON) they must have; each is
#: checked when present (older runs lack some, baselines have no history)
_CHECKED: dict[str, tuple[str, ...]] = {
    layout.PREDICTIONS: ("row_id", "y_true"),
    layout.PREDICTIONS_VAL: ("row_id", "y_true"),
    layout.PER_CLASS: ("class",),
    layout.CONFUSION: ("true",),
    layout.CALIBRATION: (),
    layout.HISTORY: (),
}


#: the file every completed run has written since the first version and that every number of the
#: report is recomputed from: when it is gone, the next compare trains the run again
_REQUIRED = (layout.PREDICTIONS,)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """A run's metrics.json as a dict with a `status`.

    Raises:
        ValueError: the file is missing, is not JSON, or is not a lossbench metrics object.
    """
    path = Path(run_dir) / layout.METRICS
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{layout.METRICS} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{layout.METRICS} is unreadable ({_one_line(exc)})") from None
    if not isinstance(m, dict) or m.get("status") not in ("ok", "failed"):
        raise ValueError(f"{layout.METRICS} is unreadable (not a lossbench metrics object)")
    return m


def _check_file(path: Path, needed: tuple[str, ...]) -> None:
    import pandas as pd

    if path.suffix == ".json":
        obj = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        have: Any = obj.keys()
    elif path.suffix == ".parquet":
        have = pd.read_parquet(path).columns
    else:
        have = pd.read_csv(path).columns
    missing = [c for c in needed if c not in have]
    if missing:
        raise ValueError(f"no {', '.join(missing)} column")


#: `run_problem`'s verdicts by run folder, each with the signature of the files it read. One
#: command reads an experiment's runs several times (compare's resume check, the summary, the
#: printed table, the exit code): each run's files are read once, and again only after one of
#: them has changed (replaced, rewritten, deleted or created)
_VERDICTS: dict[str, tuple[tuple[Any, ...], str | None]] = {}


def _signature(run_dir: Path) -> tuple[Any, ...]:
    """(name, size, mtime, ctime, inode) of metrics.json and every checked result file; a file
    that is absent has (name, None)."""
    out: list[Any] = []
    for name in (layout.METRICS, *_CHECKED):
        try:
            st = (run_dir / name).stat()
        except OSError:
            out.append((name, None))
            continue
        out.append((name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(out)


def run_problem(run_dir: Path) -> str | None:
    """Why a run folder with DONE cannot be used (metrics.json missing or unreadable, or a result
    file present but damaged), or None. A folder whose files have not changed since the last
    check in this process gets that check's verdict without being read again."""
    run_dir = Path(run_dir)
    key, signature = str(run_dir.absolute()), _signature(run_dir)
    known = _VERDICTS.get(key)
    if known is not None and known[0] == signature:
        return known[1]
    verdict = _run_problem(run_dir)
    _VERDICTS[key] = (signature, verdict)
    return verdict


def _run_problem(run_dir: Path) -> str | None:
    try:
        metrics = read_metrics(run_dir)
    except ValueError as exc:
        return str(exc)
    if metrics["status"] != "ok":
        return None  # a failed run: its reason is in metrics.json
    for name, needed in _CHECKED.items():
        if not (run_dir / name).exists():
            if name in _REQUIRED:
                return f"{name} is missing"
            continue
        try:
            _check_file(run_dir / name, needed)
        except Exception as exc:  # pandas/pyarrow/json raise many types for a damaged file
            return f"{name} is unreadable ({_one_line(exc)})"
    return None
