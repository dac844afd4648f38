"""Where a training epoch's time goes: TensorFlow's profiler over one epoch of the paper's 1D-CNN on
synthetic-cicids (lossbench's own trainer, as a run builds it; batch 256), summed by op group.

A developer's tool (not part of the package or its tests). It needs xprof's converter, installed
apart from the project's environment (its dependencies are large, and the converter needs none):

    .venv/bin/pip install --no-deps --target /tmp/xprof xprof
    .venv/bin/python scripts/profile_epoch.py --precision float32 --precision mixed_bfloat16

The figures are milliseconds per step summed over TensorFlow's executor threads (two on a 2-core
machine), so "busy" plus "idle" is about twice the step's wall-clock time. The op groups are
named for the layers of `build_model("cnn1d", ...)`.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import statistics
import sys
import tempfile
import time

BATCH = 256


def op_rows(logdir: str) -> list[dict]:
    """The rows of xprof's framework_op_stats table of the profile in `logdir`."""
    from xprof.convert import raw_to_tool_data

    paths = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
    data, _ = raw_to_tool_data.xspace_to_tool_data(paths, "framework_op_stats", {})
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    cols = [c["id"] for c in table["cols"]]
    return [{k: c.get("v") for k, c in zip(cols, r["c"], strict=False)} for r in table["rows"]]


def group(row: dict) -> str:
    """The op group of one framework op."""
    name, kind = row["operation"], row["type"]
    if kind == "IDLE":
        return "idle"
    if "Conv2D" in kind:
        return "conv2 kernels" if "conv2" in name else "conv1 kernels"
    if "MatMul" in kind:
        return "dense and logits matmuls"
    if re.search(r"conv[12]", name) and kind in ("BiasAdd", "Relu", "ReluGrad", "BiasAddGrad"):
        return "conv bias and ReLU (forward and backward)"
    if "pool" in name:
        return "max pool (forward and backward)"
    if kind == "Cast":
        return "casts"
    if "adam" in name or "clip_by_global_norm" in name:
        return "Adam and clipping"
    return "other (gather, loss, bookkeeping)"


def profile(data, precision: str, loss_name: str, logdir: str) -> tuple[dict[str, float], float]:
    """Op-group milliseconds per step of one profiled epoch on `data` (a prepared dataset), and
    the median of the 3 epochs before it; the trainer is built as a run's (`trainer_for_run`)."""
    import tensorflow as tf

    from lossbench.config import TrainOptions
    from lossbench.losses import get
    from lossbench.training import trainer_for_run

    loss = get(loss_name, data.class_counts("train"))
    arch = {
        "name": "cnn1d",
        "n_features": data.n_features,
        "n_classes": data.n_classes,
        "head": loss.head,
        "scale": loss.scale,
        "precision": precision,
    }
    opts = TrainOptions(batch_size=BATCH, seed=0, device="CPU", precision=precision)
    trainer, _ = trainer_for_run(arch, loss, opts, data.n_classes)
    trainer.set_training_data(data.X_train, data.y_train, data.X_val, data.y_val)
    trainer.loss.on_train_begin(5)
    trainer.train_epoch(0)  # tracing
    times = []
    for epoch in (1, 2, 3):
        start = time.perf_counter()
        trainer.train_epoch(epoch)
        times.append(time.perf_counter() - start)
    tf.profiler.experimental.start(logdir)
    trainer.train_epoch(4)
    tf.profiler.experimental.stop()
    steps = -(-len(data.y_train) // BATCH)
    groups: dict[str, float] = {}
    for row in op_rows(logdir):
        key = group(row)
        groups[key] = groups.get(key, 0.0) + row["total_self_time"] / steps / 1000
    return groups, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", action="append", help="float32, mixed_bfloat16, ...")
    parser.add_argument("--loss", default="ce")
    parser.add_argument("--sample-frac", type=float, default=1.0)
    parser.add_argument("--xprof-path", default="/tmp/xprof", help="where xprof is installed")
    args = parser.parse_args()
    sys.path.insert(0, args.xprof_path)
    precisions = args.precision or ["float32", "mixed_bfloat16"]
    from lossbench.config import DataOptions
    from lossbench.data import prepare

    with tempfile.TemporaryDirectory(prefix="lossbench-profile-") as tmp:
        data = prepare(
            DataOptions(data="synthetic-cicids", sample_frac=args.sample_frac, cache_dir=tmp)
        )
        results = {p: profile(data, p, args.loss, f"{tmp}/profile-{p}") for p in precisions}
    first = results[precisions[0]][0]
    keys = sorted(set().union(*(g for g, _ in results.values())), key=lambda k: -first.get(k, 0))
    ratio = len(precisions) > 1
    print(
        f"| op group (ms a step, executor threads) | {' | '.join(precisions)} |"
        + (" last / first |" if ratio else "")
    )
    print("| --- |" + " ---: |" * (len(precisions) + ratio))
    for key in [*keys, "busy"]:
        values = [
            sum(v for k, v in g.items() if k != "idle") if key == "busy" else g.get(key, 0.0)
            for g, _ in results.values()
        ]
        cells = " | ".join(f"{v:.2f}" for v in values)
        extra = ""
        if ratio:
            extra = f" {values[-1] / values[0]:.2f} |" if values[0] >= 0.005 else " |"  # > 0.00
        print(f"| {key} | {cells} |{extra}")
    epochs = ", ".join(f"{p} {t:.2f} s" for p, (_, t) in results.items())
    print(f"\nepoch (median of 3, before the profiled one): {epochs}")


if __name__ == "__main__":
    main()
