"""The tuning benchmark (issue 35): `compare --tune 8`, pruned against `--no-prune`.

What is timed: the whole command (start-up, the tuning, the 18 default and `@tuned` runs of three
seeds, the summary) and its tuning phase, the sum of the trials' seconds (trials.csv; the trials
of the local executor run one after the other). Pruning acts on the tuning phase only, and the
target (pruned at most 0.5x unpruned) applies to it; the whole command's ratio is reported
beside it. The set is synthetic-cicids sampled to 20% (18,228 rows): on digits-lt (1,000
training rows) an epoch takes milliseconds, a trial's fixed cost (about 1 s) dominates it, and no
pruner can save half of the trials' time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lossbench import layout

#: The tuning benchmark: three methods, N = 8 trials each, on a small set.
TUNE_BENCH_ARGS = [
    "compare", "--data", "synthetic-cicids", "--sample-frac", "0.2", "--losses", "ce,focal,dwb",
    "--tune", "8", "--seeds", "0,1,2", "--model", "mlp", "--epochs", "60", "--patience", "5",
    "--quiet",
]  # fmt: skip


def tuning_speed(
    out: Path, *, device: str = "CPU", log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Wall time of `compare --tune 8` (three methods, `TUNE_BENCH_ARGS`) and of its tuning
    phase, pruned against `--no-prune`, and each method's chosen validation score under both,
    with the seed standard deviation of the unpruned choice's validation score (its `@tuned`
    runs over seeds 0, 1, 2; its default runs where the defaults were chosen)."""
    dev = "gpu" if device.startswith("GPU") else "cpu"
    env = {**os.environ, "LOSSBENCH_CACHE": str(out / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    modes: dict[str, Any] = {}
    for mode in ("pruned", "unpruned"):
        args = [*TUNE_BENCH_ARGS, "--device", dev, "--out", str(out / mode)]
        args += ["--no-prune"] if mode == "unpruned" else []
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "lossbench.cli", *args], env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"tuning benchmark failed: {proc.stderr.strip()[-500:]}")
        modes[mode] = {"command": "lossbench " + " ".join(args), "wall_seconds": wall}
        modes[mode].update(tuning_outcome(out / mode))
        log(f"  {mode}: {wall:.1f} s ({modes[mode]['trial_seconds']:.1f} s in trials)")
    pruned, unpruned = modes["pruned"], modes["unpruned"]
    within = {
        m: abs(pruned["methods"][m]["chosen_value"] - u["chosen_value"])
        <= u["tuned_val_macro_f1_seed_std"]
        for m, u in unpruned["methods"].items()
    }
    return {
        **modes,
        "wall_ratio": pruned["wall_seconds"] / unpruned["wall_seconds"],
        "trial_seconds_ratio": pruned["trial_seconds"] / unpruned["trial_seconds"],
        "chosen_within_seed_std": within,
    }


def tuning_outcome(out: Path) -> dict[str, Any]:
    """The pruner, the seconds in trials and, per method, the choice, its trials and its
    validation macro-F1 over seeds 0, 1, 2, of the one tuned experiment under `out`."""
    import pandas as pd

    (exp,) = [p for p in out.iterdir() if layout.experiment_file(p).exists()]
    meta = json.loads(layout.experiment_file(exp).read_text())["tuning"]
    methods = {}
    for method, chosen in meta["chosen"].items():
        trials = pd.read_csv(layout.trials_path(exp, method))
        name = method if chosen.get("defaults_chosen") else f"{method}@tuned"
        scores = []
        for seed in (0, 1, 2):
            run = layout.run_dir(exp, f"{name}_seed{seed}")
            history = pd.read_csv(run / layout.HISTORY)
            sel = json.loads((run / layout.METRICS).read_text())["selection"]
            scores.append(float(history["val_macro_f1"].iloc[sel["selected_epoch"] - 1]))
        methods[method] = {
            "chosen_value": chosen.get("value"),
            "chosen_params": chosen["params"],
            "chosen_lr": chosen["lr"],
            "n_pruned": int((trials["state"] == "PRUNED").sum()),
            "trial_seconds": float(trials["seconds"].sum()),
            "epochs_trained": int(trials["epochs_run"].sum()),
            "tuned_val_macro_f1_seeds": scores,
            "tuned_val_macro_f1_seed_std": statistics.stdev(scores),
        }
    return {
        "trial_seconds": sum(m["trial_seconds"] for m in methods.values()),
        "pruner": meta.get("pruner"),
        "methods": methods,
    }
