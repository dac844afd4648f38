"""`lossbench bench`: training speed against stock Keras, achieved FLOP/s, CSV ingest, peak memory,
the full release's size and pruned tuning.

Every figure is measured here, in one process (the peak-memory, size and tuning commands are child
processes), with the competing variants interleaved and summarised by medians, and written to
bench.json and bench.md. Targets (SPEC 7, issue 35) are reported beside the figures, never
asserted.

    tools     the machine, timed commands, peak memory of a child process
    speed     training epochs against stock Keras, mixed precision, the fixed cost of a run
    size      generated CICIDS2017-format files, CSV ingest, the full release's size
    tuning    compare --tune, pruned against --no-prune
    targets   each target with its figure; markdown: bench.md; run: all of it
"""

from lossbench.bench.markdown import to_markdown
from lossbench.bench.run import run_bench
from lossbench.bench.size import (
    FULL_RELEASE_FEATURES,
    FULL_RELEASE_ROWS,
    ingest_speed,
    ingest_speed_in_child,
    size_scale,
    write_cicids_csv,
    write_cicids_folder,
)
from lossbench.bench.speed import fixed_cost, precision_quality, training_speed
from lossbench.bench.targets import _issue35_targets, targets
from lossbench.bench.tools import (
    CICIDS_HEADER,
    CICIDS_LABELS,
    _timed_command,
    cpu_flags,
    losses_command,
    machine_info,
    matmul_peak,
    native_precisions,
    peak_memory_of_run,
    resolve_compare_precision,
)
from lossbench.bench.tuning import TUNE_BENCH_ARGS, tuning_speed

__all__ = [
    "CICIDS_HEADER",
    "CICIDS_LABELS",
    "FULL_RELEASE_FEATURES",
    "FULL_RELEASE_ROWS",
    "TUNE_BENCH_ARGS",
    "_issue35_targets",
    "_timed_command",
    "cpu_flags",
    "fixed_cost",
    "ingest_speed",
    "ingest_speed_in_child",
    "losses_command",
    "machine_info",
    "matmul_peak",
    "native_precisions",
    "peak_memory_of_run",
    "precision_quality",
    "resolve_compare_precision",
    "run_bench",
    "size_scale",
    "targets",
    "to_markdown",
    "training_speed",
    "tuning_speed",
    "write_cicids_csv",
    "write_cicids_folder",
]
