"""`lossbench bench`: every figure measured in one call, written to bench.json and bench.md."""

from __future__ import annotations

import datetime as _dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lossbench.bench.markdown import precision_note, to_markdown
from lossbench.bench.size import (
    FULL_RELEASE_ROWS,
    ingest_speed_in_child,
    size_scale,
    write_cicids_csv,
)
from lossbench.bench.speed import fixed_cost, precision_quality, training_speed
from lossbench.bench.targets import targets
from lossbench.bench.tools import (
    losses_command,
    machine_info,
    matmul_peak,
    peak_memory_of_run,
    resolve_compare_precision,
)
from lossbench.bench.tuning import tuning_speed
from lossbench.config import DataOptions
from lossbench.io import atomic_write_json, atomic_write_text


def run_bench(
    out: Path,
    *,
    quick: bool = False,
    device: str = "CPU",
    losses: list[str] | None = None,
    precision: str = "float32",
    compare_precision: str | None = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure everything and write `out/<date>/bench.{json,md}`; returns the figures.

    `precision`: that of the runs timed against stock Keras, of the fixed-cost runs and of the
    peak-memory run. `compare_precision`: the mixed precision measured against float32 (epoch
    time of every loss, test macro-F1 over 3 seeds); "auto" is mixed_bfloat16 where the device
    computes it natively (`resolve_compare_precision`), None (or float32) leaves it out."""
    from lossbench.losses import names
    from lossbench.provenance import versions

    losses = losses or names()
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    folder = out / stamp
    folder.mkdir(parents=True, exist_ok=False)
    machine = machine_info(device)
    result: dict[str, Any] = {
        "date": stamp,
        "quick": quick,
        "machine": machine,
        "versions": versions(),
        "precision": precision,
        "compare_precision_requested": compare_precision or "none",
        "compare_precision": resolve_compare_precision(
            compare_precision, machine["native_precisions"]
        ),
    }
    log(precision_note(result))
    log("matmul peak ...")
    result["matmul_peak"] = matmul_peak(device, n=1024 if quick else 2048)
    log(f"  {result['matmul_peak']['gflops']:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory(prefix="lossbench-bench-") as tmp:
        result.update(_training_figures(Path(tmp), losses, quick, device, result, log))
        result.update(_command_figures(Path(tmp), quick, device, precision, log))
        if not quick:  # issue 35: tuning cost and the full release's size
            log("tuning, pruned against --no-prune (compare --tune 8) ...")
            result["tuning"] = tuning_speed(Path(tmp) / "tune", device=device, log=log)
            log(f"size: {FULL_RELEASE_ROWS} rows in 8 CICIDS2017-format files ...")
            result["size"] = size_scale(Path(tmp) / "size", device=device, log=log)
    result["targets"] = targets(result)
    atomic_write_json(folder / "bench.json", result)
    atomic_write_text(folder / "bench.md", to_markdown(result))
    result["folder"] = str(folder)
    return result


def _training_figures(
    tmp: Path,
    losses: list[str],
    quick: bool,
    device: str,
    result: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """`training` (epochs against stock Keras, as a fraction of the matmul peak) and
    `precision_quality` (test macro-F1 under the compared precision)."""
    from lossbench.data import prepare

    log("training speed (synthetic-cicids) ...")
    precision, compare_precision = result["precision"], result["compare_precision"]
    frac = 0.2 if quick else 1.0
    data = prepare(DataOptions(data="synthetic-cicids", sample_frac=frac, cache_dir=str(tmp)))
    out: dict[str, Any] = {}
    out["training"] = training_speed(
        data,
        losses,
        device=device,
        # the 1.10x target sits within this 2-core machine's epoch-to-epoch spread (about 8%):
        # seven rounds (stock Keras fourteen epochs); --quick's short epochs (43 steps) five
        reps=5 if quick else 7,
        precision=precision,
        compare_precision=compare_precision,
        log=log,
    )
    # the peak once more: a single 2-second window read 107-135 GFLOP/s on one 2-core machine,
    # and a low reading would flatter every fraction; the best of the two is the peak
    first = result["matmul_peak"]
    again = matmul_peak(device, n=first["n"])["gflops"]
    log(f"  matmul peak after the epochs: {again:.1f} GFLOP/s")
    peak = max(first["gflops"], again)
    result["matmul_peak"] = {
        "n": first["n"],
        "gflops": peak,
        "gflops_each": [first["gflops"], again],
    }
    for row in out["training"]["per_loss"].values():
        row["fraction_of_peak"] = row["gflops"] / peak
    if compare_precision:
        log(f"test macro-F1, float32 against {compare_precision} (synthetic-cicids, 3 seeds)")
        out["precision_quality"] = precision_quality(
            DataOptions(
                data="synthetic-cicids", sample_frac=0.05 if quick else 0.25, cache_dir=str(tmp)
            ),
            losses,
            device=device,
            epochs=2 if quick else 5,
            out=tmp / "quality",
            precision=compare_precision,
            log=log,
        )
    return out


def _command_figures(
    tmp: Path, quick: bool, device: str, precision: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """`losses_command`, `fixed_cost`, `ingest` and `peak_memory`: commands in fresh processes."""
    out: dict[str, Any] = {}
    log("lossbench losses ...")
    out["losses_command"] = losses_command(2 if quick else 3)
    log(f"  {out['losses_command']['seconds']:.2f}s")
    log("fixed cost per run (digits-lt) ...")
    out["fixed_cost"] = fixed_cost(
        device=device, out=tmp / "fixed", precision=precision, repeats=1 if quick else 2, log=log
    )
    log("CSV ingest ...")
    csv_path = write_cicids_csv(tmp / "cicids_bench.csv", 40 if quick else 210)
    out["ingest"] = ingest_speed_in_child(
        csv_path, reps=2 if quick else 5, cache_dir=tmp / "cache", log=log
    )
    csv_path.unlink()
    log("peak memory of a paper-scale run ...")
    dev = "gpu" if device.startswith("GPU") else "cpu"
    args = ["run", "--loss", "dwb", "--data", "synthetic-cicids", "--epochs", "1" if quick else "2"]
    args += ["--out", str(tmp / "paper-scale"), "--quiet", "--device", dev]
    if quick:
        args += ["--sample-frac", "0.2"]
    if precision != "float32":
        args += ["--precision", precision]
    out["peak_memory"] = peak_memory_of_run(args, env={"LOSSBENCH_CACHE": str(tmp)})
    return out
