"""Provenance of an experiment: the library versions, the git commit, the configuration key that
`compare` resumes by, and the content of experiment.json (`experiment_meta`)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench._version import __version__
from lossbench.config import Settings, run_defining


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    import sklearn

    from lossbench.training import framework_versions  # lazy: TensorFlow

    return {
        "lossbench": __version__,
        "python": platform.python_version(),
        **framework_versions(),  # tensorflow, keras
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    """The lossbench source tree's git commit, when it is a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def config_key(payload: dict[str, Any]) -> str:
    """A stable hash of an experiment's resolved configuration (what `compare` resumes by)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def experiment_meta(
    *,
    command: str,
    cfg: Settings,
    data: Any,
    losses: Sequence[str],
    baselines: Sequence[str],
    seeds: Sequence[int],
    params: dict[str, Any],
    device: str,
    key: str,
    executor: str = "local",
) -> dict[str, Any]:
    """The content of experiment.json."""
    return {
        "name": None,  # filled by the caller with the folder name
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": command,
        "config_key": key,
        "dataset": data.name,
        "class_names": list(data.class_names),
        "class_counts_train": [int(c) for c in data.class_counts("train")],
        "n_features": int(data.n_features),
        "losses": list(losses),
        "baselines": list(baselines),
        "seeds": list(seeds),
        "params": params,
        "data": dataclasses.asdict(cfg.data),
        "train": dataclasses.asdict(cfg.train),
        "data_info": {**data.info, "leakage": data.leakage()},
        "data_fingerprint": data.info["source_fingerprint"],  # the one in `key`
        "device": device,
        "executor": executor,
        "user_code": _user_provenance(losses, cfg.train.model),
        "versions": versions(),
        "git_commit": git_commit(),
    }


def user_code_hashes(losses: Sequence[str], model: str = "") -> dict[str, str | None]:
    """The SHA-256 of the source of each user loss among `losses` (run name -> hash) and of the
    user's network (under "--model"); empty without user code: the experiment key's
    `user_code`, so that editing the code starts a new experiment."""
    return {name: rec["sha256"] for name, rec in _user_provenance(losses, model).items()}


def _user_provenance(losses: Sequence[str], model: str = "") -> dict[str, Any]:
    """experiment.json's `user_code`: spec, file and SHA-256 of each user loss (by run name)
    and of the user's network (under "--model")."""
    from lossbench.losses.registry import provenance

    out = provenance(losses)
    if ":" in model:
        from lossbench.models import user_model

        out["--model"] = user_model(model).provenance()
    return out


def resolve_key(
    command: str,
    cfg: Settings,
    params: dict[str, Any],
    tune: int = 0,
    *,
    data_fingerprint: str | None = None,
    user_code: dict[str, str | None] | None = None,
    pruner: dict[str, Any] | None = None,
) -> str:
    """Configuration key of an experiment: the same data and settings continue the same experiment.

    The key leaves out the seeds and the loss and baseline lists, so that a compare with more seeds
    or more losses grows the existing experiment (training only the new runs) instead of starting
    a new one; `--fresh` starts a new one. A tuned compare (`tune` trials) is its own experiment,
    and so is one with user code of other sources (`user_code`, `user_code_hashes`), and a pruned
    one (`pruner`).
    The data enter by their fingerprint (`data_fingerprint`, by default computed from `cfg.data`:
    `pipeline.source_fingerprint`), not by the spelling of their path: changed data under the
    same path start a new experiment, the same file under another spelling continues one."""
    if data_fingerprint is None:
        from lossbench.data.pipeline import source_fingerprint

        data_fingerprint = source_fingerprint(cfg.data)
    return config_key(
        {
            "command": command,
            "data": {**run_defining(cfg.data), "data": data_fingerprint},
            "train": run_defining(cfg.train),
            "params": params,
            **({"tune": tune} if tune else {}),
            **({"user_code": user_code} if user_code else {}),
            **({"pruner": pruner} if tune and pruner else {}),
        }
    )
