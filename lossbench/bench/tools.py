"""Small measuring tools of `lossbench bench`: the machine, a timed `lossbench` command in a
fresh process, the peak memory of one, and the CICIDS2017 header the generated files use."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lossbench.data.presets import CICIDS2017_FEATURES

# The 79 columns of a MachineLearningCVE day file as distributed: the preset's feature names with
# the leading space most of them carry and the duplicated " Fwd Header Length" spelled twice.
CICIDS_HEADER = ",".join(" " + name.removesuffix(".1") for name in CICIDS2017_FEATURES) + ", Label"

CICIDS_LABELS = (
    ["BENIGN"] * 40
    + ["DoS Hulk"] * 5
    + ["PortScan"] * 4
    + ["DDoS"] * 3
    + [
        "DoS GoldenEye",
        "FTP-Patator",
        "SSH-Patator",
        "DoS slowloris",
        "DoS Slowhttptest",
        "Bot",
        "Web Attack \u2013 Brute Force",
        "Infiltration",
    ]
)


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def _seconds_list(xs: list[float]) -> str:
    """'58.5, 55.1 s'."""
    return ", ".join(f"{x:.1f}" for x in xs) + " s"


# CPU features with which TensorFlow's oneDNN kernels compute a mixed precision natively (x86
# AVX512/AMX, Arm's BF16); on any other CPU the 16-bit values are widened to float32 and back, so
# SPEC 7's mixed-precision epoch target applies only on such a CPU and on a GPU.
NATIVE_CPU_FLAGS = {
    "mixed_bfloat16": ("avx512_bf16", "amx_bf16", "bf16"),
    "mixed_float16": ("avx512_fp16", "amx_fp16"),
}


def cpu_flags(cpuinfo: str) -> set[str]:
    """The CPU's feature flags: the `flags` (x86) or `Features` (Arm) lines of `cpuinfo` (the
    text of /proc/cpuinfo, which `machine_info` reads)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def epoch_target_applies(precision: str, native: list[str] | None) -> bool:
    """Whether SPEC 7's mixed-precision epoch target applies to `precision` on a machine whose
    `native_precisions` are `native` (None: not recorded, as in an older bench.json)."""
    return native is None or precision in native


def native_precisions(device: str, flags: set[str]) -> list[str]:
    """The mixed precisions `device` computes natively: both on a GPU, on a CPU those whose
    `NATIVE_CPU_FLAGS` it has."""
    return [
        prec
        for prec, needed in NATIVE_CPU_FLAGS.items()
        if device.startswith("GPU") or flags.intersection(needed)
    ]


def resolve_compare_precision(requested: str | None, native: list[str]) -> str | None:
    """The mixed precision the bench compares with float32: `auto` is mixed_bfloat16 where the
    device computes it natively and none elsewhere (timing an emulated precision measures the
    emulation, and SPEC 7's target does not apply there); None, "none" and "float32" are none."""
    if requested == "auto":
        return "mixed_bfloat16" if "mixed_bfloat16" in native else None
    return None if requested in (None, "none", "float32") else requested


def machine_info(device: str) -> dict[str, Any]:
    """CPU model, core count, memory, the training device and the mixed precisions it computes
    natively (`native_precisions`)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    models = [
        ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")
    ]
    cpu = models[0] if models else platform.processor() or ""
    mem_gb = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gb = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "device": device,
        "hostname": platform.node(),
        "native_precisions": native_precisions(device, cpu_flags(cpuinfo)),
    }


def matmul_peak(device: str, n: int = 2048, seconds: float = 2.0) -> dict[str, float]:
    """The device's float32 matmul throughput (GFLOP/s): the best of repeated n x n products."""
    from lossbench import training

    return {"n": n, "gflops": training.matmul_peak(device, n, seconds)}


def _timed_command(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds) of a `lossbench` command in a fresh process
    (TensorFlow's import included, as a user waits for it). CPU time (user + system of the
    child) is much less sensitive than wall time to other processes competing for the cores."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"lossbench {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def losses_command(repeats: int = 3) -> dict[str, Any]:
    """Wall and CPU seconds of `lossbench losses` in a fresh process (best of `repeats`): it
    reads the loss catalogue, without importing Keras or TensorFlow (target: under 2 s)."""
    samples = [_timed_command(["losses"], {"COLUMNS": "100"}) for _ in range(max(1, repeats))]
    return {
        "command": "lossbench losses",
        "seconds": min(wall for wall, _ in samples),
        "seconds_each": [wall for wall, _ in samples],
        "cpu_seconds": min(cpu for _, cpu in samples),
    }


_CHILD = """
import atexit, sys
from pathlib import Path
_out = Path(sys.argv.pop(1))
def _report():
    try:
        _out.write_text(Path("/proc/self/status").read_text())
    except OSError:
        pass
atexit.register(_report)
from lossbench.cli import run_main
sys.argv[0] = "lossbench"
run_main()
"""


def _vm_hwm_mb(status: str) -> float | None:
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return None


def peak_memory_of_run(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Peak resident memory (MB) of a `lossbench` child process.

    The child reports its own high-water mark (VmHWM of /proc/self/status) when it exits. The
    wait4 rusage figure is kept as a fallback only: Linux charges the child with the parent's
    resident memory at fork time, so a large parent (this benchmark, TensorFlow loaded) inflates
    it (measured: 1.96 GB for a run whose own peak is 1.16 GB).
    """
    with tempfile.TemporaryDirectory(prefix="lossbench-mem-") as tmp:
        status_file = Path(tmp) / "status"
        err_path = Path(tmp) / "stderr"
        with open(err_path, "wb") as err_file:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(status_file), *args],
                stdout=subprocess.DEVNULL,
                stderr=err_file,  # a file, not a pipe: a chatty child cannot block on a full pipe
                env={**os.environ, **(env or {})},
            )
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = err_path.read_text(errors="replace")
        hwm = _vm_hwm_mb(status_file.read_text()) if status_file.exists() else None
    return {
        "command": "lossbench " + " ".join(args),
        "exit_code": proc.returncode,
        "peak_rss_mb": hwm if hwm is not None else usage.ru_maxrss / 1024.0,
        "peak_rss_source": "VmHWM" if hwm is not None else "wait4 ru_maxrss",
        "stderr_tail": err[-500:],
    }
