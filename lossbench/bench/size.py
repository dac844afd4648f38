"""CICIDS2017-format files generated for the benchmarks, CSV ingest speed, and the full
release's size (issue 35): peak memory of `inspect` and of a 1-epoch `run` on 2.8 million rows."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lossbench import layout
from lossbench.bench.tools import CICIDS_HEADER, CICIDS_LABELS, peak_memory_of_run
from lossbench.config import DataOptions
from lossbench.data.builtin import SYNTHETIC_FEATURES
from lossbench.data.presets import CICIDS2017_FEATURES

#: The columns `write_cicids_csv` writes as zeros unless told otherwise: three flag columns
#: constant in the real files.
FLAG_COLUMNS = ("Bwd PSH Flags", "Fwd URG Flags", "Bwd URG Flags")

#: The eleven columns constant in the real files (`../shared/datasets/cicids2017_sample.csv` has
#: these and RST Flag Count) that synthetic-cicids leaves out, as the paper's preprocessing does:
#: written as zeros in the full release's folder, the preset drops them, and its runs train the
#: same 66-feature network as the small set's.
SMALL_SET_CONSTANT = tuple(
    f for f in CICIDS2017_FEATURES if f not in SYNTHETIC_FEATURES and not f.endswith(".1")
)


def write_cicids_csv(
    path: Path,
    target_mb: float,
    seed: int = 0,
    *,
    n_rows: int | None = None,
    constant: tuple[str, ...] = FLAG_COLUMNS,
) -> Path:
    """Write a CICIDS2017-format CSV of at least `target_mb` MB (or of exactly `n_rows` data
    rows): the 79 raw columns with leading spaces, the duplicated Fwd Header Length, `Infinity`
    and `NaN` cells, a cp1252 web-attack dash; the features named in `constant` all zero."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = [c for c in CICIDS_HEADER.split(",")]
    n_feat = len(cols) - 1
    rows = 20_000
    ints = rng.integers(0, 65535, size=(rows, n_feat)).astype(np.float64)
    floats = rng.lognormal(3, 2, size=(rows, n_feat))
    values = np.where(rng.random((rows, n_feat)) < 0.5, ints, np.round(floats, 6))
    values[:, [CICIDS2017_FEATURES.index(name) for name in constant]] = 0
    frame = pd.DataFrame(values, columns=[f"c{i}" for i in range(n_feat)])
    frame = frame.astype(object)
    inf_rows = rng.choice(rows, size=rows // 500, replace=False)
    frame.iloc[inf_rows, 14] = "Infinity"
    frame.iloc[inf_rows[: len(inf_rows) // 2], 15] = "NaN"
    labels = np.array(CICIDS_LABELS, dtype=object)[rng.integers(0, len(CICIDS_LABELS), rows)]
    frame["Label"] = labels
    chunk = frame.to_csv(header=False, index=False, lineterminator="\n")
    chunk_bytes = chunk.encode("cp1252")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write((",".join(cols) + "\n").encode())
        if n_rows is not None:
            whole, rest = divmod(n_rows, rows)
            for _ in range(whole):
                fh.write(chunk_bytes)
            fh.write(b"".join(chunk_bytes.splitlines(keepends=True)[:rest]))
            return path
        written = 0
        while written < target_mb * 1e6:
            fh.write(chunk_bytes)
            written += len(chunk_bytes)
    return path


def write_cicids_folder(
    folder: Path, n_rows: int, n_files: int = 8, constant: tuple[str, ...] = SMALL_SET_CONSTANT
) -> Path:
    """A folder of `n_files` CICIDS2017-format day files holding `n_rows` data rows in all (the
    full release: 8 files, about 2.8 million flows), the features in `constant` all zero (by
    default those synthetic-cicids leaves out, so both train the same network)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_files):
        rows = n_rows // n_files + (1 if k < n_rows % n_files else 0)
        write_cicids_csv(folder / f"day{k}.csv", 0, seed=k, n_rows=rows, constant=constant)
    return folder


#: The full release's size: 8 files, about 2.8 million flows.
FULL_RELEASE_ROWS = 2_800_000

#: Feature columns of the float32 matrix the size figures are compared with (the 78 columns
#: less the duplicated Fwd Header Length), as in issue 35.
FULL_RELEASE_FEATURES = len(CICIDS2017_FEATURES) - 1


def _epoch_rows_per_second(out: Path) -> tuple[int, float, int]:
    """(training rows, rows per second, features) of the first epoch of the one run under
    `out`."""
    import pandas as pd

    (exp,) = [p for p in out.iterdir() if layout.experiment_file(p).exists()]
    (run_dir,) = [p for p in layout.runs_dir(exp).glob("*") if (p / layout.HISTORY).exists()]
    seconds = float(pd.read_csv(run_dir / layout.HISTORY)["seconds"].iloc[0])
    metrics = json.loads((run_dir / layout.METRICS).read_text())
    n_train = int(sum(metrics["train_class_counts"]))
    n_features = int(json.loads(layout.experiment_file(exp).read_text())["n_features"])
    return n_train, n_train / seconds, n_features


def size_scale(
    folder: Path,
    *,
    device: str = "CPU",
    n_rows: int = FULL_RELEASE_ROWS,
    small: str = "synthetic-cicids",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Peak RSS of `inspect` and of a 1-epoch `run` on a generated `n_rows`-row folder of 8
    CICIDS2017-format files, each as a ratio to the float32 feature matrix (rows x 77 x 4 B),
    and the epoch's training rows per second against the same 1-epoch run on `small`.

    The run is the default one, as a user's first run on the data goes: the array cache empty, so
    it parses the CSVs, writes the cache and trains from its memory-mapped arrays. The same run
    with `--no-cache` (every array in the process's own memory) is measured beside it."""
    data = write_cicids_folder(folder / "data", n_rows)
    size_mb = sum(f.stat().st_size for f in (folder / "data").iterdir()) / 1e6
    matrix_mb = n_rows * FULL_RELEASE_FEATURES * 4 / 2**20
    dev = "gpu" if device.startswith("GPU") else "cpu"
    cache = folder / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # a first run: nothing cached
    env = {"LOSSBENCH_CACHE": str(cache)}
    log(f"  {n_rows} rows in 8 files, {size_mb:.0f} MB of CSV; inspect ...")
    inspect = peak_memory_of_run(["inspect", "--data", str(data), "--json"], env=env)
    common = ["--loss", "ce", "--epochs", "1", "--device", dev, "--quiet"]

    def run(name: str, source: str, *extra: str) -> dict[str, Any]:
        shutil.rmtree(folder / name, ignore_errors=True)
        args = ["run", *common, *extra, "--data", source, "--out", str(folder / name)]
        return peak_memory_of_run(args, env=env)

    log(f"  inspect: {inspect['peak_rss_mb']:.0f} MB; 1-epoch run (array cache empty) ...")
    big = run("big", str(data))
    log(f"  run: {big['peak_rss_mb']:.0f} MB; the same run with --no-cache ...")
    uncached = run("big_no_cache", str(data), "--no-cache")
    log(f"  run --no-cache: {uncached['peak_rss_mb']:.0f} MB; the same run on {small} ...")
    failed = (0, 0.0, 0)
    rows_big = _epoch_rows_per_second(folder / "big") if big["exit_code"] == 0 else failed
    little = run("small", small)
    rows_small = _epoch_rows_per_second(folder / "small") if little["exit_code"] == 0 else failed
    for f in (folder / "data").iterdir():
        f.unlink()
    shutil.rmtree(cache, ignore_errors=True)
    return {
        "n_rows": n_rows,
        "n_files": 8,
        "csv_mb": size_mb,
        "float32_matrix_mb": matrix_mb,
        "inspect": inspect,
        "inspect_ratio": inspect["peak_rss_mb"] / matrix_mb,
        "run": big,
        "run_ratio": big["peak_rss_mb"] / matrix_mb,
        "run_no_cache": uncached,
        "run_no_cache_ratio": uncached["peak_rss_mb"] / matrix_mb,
        "run_train_rows": rows_big[0],
        "run_rows_per_second": rows_big[1],
        "run_features": rows_big[2],
        "small": small,
        "small_train_rows": rows_small[0],
        "small_rows_per_second": rows_small[1],
        "small_features": rows_small[2],
        "rows_per_second_ratio": rows_big[1] / rows_small[1] if rows_small[1] else float("nan"),
    }


def ingest_speed(
    path: Path, *, reps: int, cache_dir: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Bare `pandas.read_csv` against lossbench's prepare (load + preset + split + scale), then
    the cached reload. Interleaved; best of `reps` each."""
    import pandas as pd

    from lossbench.data import prepare

    size_mb = path.stat().st_size / 1e6
    opts = DataOptions(data=str(path), preset="cicids2017", cache=False)
    bare, ours = [], []
    for rep in range(reps):
        t0 = time.perf_counter()
        frame = pd.read_csv(path, encoding_errors="replace")
        bare.append(time.perf_counter() - t0)
        del frame
        t0 = time.perf_counter()
        prepared = prepare(opts)
        ours.append(time.perf_counter() - t0)
        del prepared
        log(f"  ingest rep {rep}: pandas.read_csv {bare[-1]:.2f}s, lossbench {ours[-1]:.2f}s")
    cached_opts = dataclasses.replace(opts, cache=True, cache_dir=str(cache_dir))
    t0 = time.perf_counter()
    prepare(cached_opts)
    first = time.perf_counter() - t0
    reloads = []
    for _ in range(max(reps, 3)):
        t0 = time.perf_counter()
        again = prepare(cached_opts)
        _ = float(np.asarray(again.X_train).sum())  # touch the memory-mapped arrays
        reloads.append(time.perf_counter() - t0)
    b, o, r = min(bare), min(ours), min(reloads)
    return {
        "file_mb": size_mb,
        "pandas_read_csv_seconds": b,
        "pandas_mb_per_s": size_mb / b,
        "lossbench_seconds": o,
        "lossbench_mb_per_s": size_mb / o,
        "ratio_to_pandas": b / o,
        "first_ingest_with_cache_write_seconds": first,
        "cached_reload_seconds": r,
        "cached_speedup": first / r,
    }


def ingest_speed_in_child(
    path: Path, *, reps: int, cache_dir: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """`ingest_speed` in a fresh Python process, as a `lossbench` command loads its data before
    any training. In this process, after the training benchmark, the same code measured 10-20%
    slower (TensorFlow's thread pools and heap left behind), while bare pandas did not change."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from lossbench.bench import ingest_speed\n"
        "r = ingest_speed(Path(sys.argv[1]), reps=int(sys.argv[2]), cache_dir=Path(sys.argv[3]),"
        " log=lambda m: print(m, file=sys.stderr, flush=True))\n"
        "print(json.dumps(r))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), str(reps), str(cache_dir)],
        capture_output=True,
        text=True,
    )
    for line in proc.stderr.splitlines():
        if line.startswith("  ingest"):
            log(line)
    if proc.returncode != 0:
        raise RuntimeError(f"ingest benchmark failed: {proc.stderr.strip()[-500:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["measured_in"] = "a fresh child process"
    return result
