"""Issue 35: where a run's memory goes at the full release's size. A split memory-mapped from
the array cache is resident only while it is read, and TensorFlow (about 0.8 GB resident) is
loaded after the data is prepared and its leakage report computed, so their peaks never add up.
The figures themselves come from `make bench` (`lossbench.bench.size_scale`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from lossbench.data.memory import release_mapped


def _rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile in /proc/self/status")


def test_a_released_mapped_split_leaves_the_process_memory_and_reads_the_same(tmp_path):
    values = np.random.default_rng(0).normal(size=(4_000_000, 4)).astype(np.float32)  # 64 MB
    np.save(tmp_path / "X.npy", values)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    before = _rss_file_mb()
    total = float(mapped.sum(dtype=np.float64))  # every page read in
    read_in = _rss_file_mb()
    assert read_in - before > 48, (before, read_in)
    release_mapped(mapped)
    assert read_in - _rss_file_mb() > 48, (read_in, _rss_file_mb())
    assert float(mapped.sum(dtype=np.float64)) == total  # read back from the file
    np.testing.assert_array_equal(mapped, values)
    release_mapped(values)  # an array in the process's own memory: nothing happens
    assert values.sum() == np.float32(values.sum())


_ORDER_PROBE = r"""
import json, sys
import lossbench.runner as runner
from lossbench.data.prepared import PreparedData

seen = {}
real_load, real_leakage = runner.data_for_seed, PreparedData.leakage

def load(opts, seed):
    seen.setdefault("prepare", "tensorflow" in sys.modules)
    return real_load(opts, seed)

def leakage(self):
    seen.setdefault("leakage", "tensorflow" in sys.modules)
    return real_leakage(self)

runner.data_for_seed, PreparedData.leakage = load, leakage
from lossbench.cli import main
code = main(sys.argv[1:])
seen["trained"] = "tensorflow" in sys.modules
print(json.dumps({"code": code, **seen}))
"""


def test_a_run_prepares_its_data_and_leakage_report_before_tensorflow_is_loaded(tmp_path):
    env = {**os.environ, "LOSSBENCH_CACHE": str(tmp_path / "cache")}
    args = ["run", "--loss", "ce", "--data", "digits-lt", "--epochs", "1", "--model", "mlp"]
    proc = subprocess.run(
        [sys.executable, "-c", _ORDER_PROBE, *args, "--quiet", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"code": 0, "prepare": False, "leakage": False, "trained": True}, seen
    for noise in ("E0000", "W0000", "I0000", "oneDNN", "absl"):  # TensorFlow's start-up chatter
        assert noise not in proc.stderr, proc.stderr


def _mapping_rss_kb(path: Path) -> int:
    """Resident kB of the process's mapping of `path` (0 when it is not mapped)."""
    rss, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's first line: its range, its file
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
    return rss


def test_a_mapped_split_is_resident_only_while_training_or_validation_reads_it(
    tmp_path, monkeypatch
):
    # At 2.8 M rows the training split (0.5 GB) stayed resident while the validation split was
    # predicted and scored, and the validation split through the next epoch's training.
    import lossbench.training.trainer as trainer_module
    from lossbench.config import TrainOptions
    from lossbench.losses.ce import CrossEntropy
    from lossbench.models import build_model

    monkeypatch.setattr(trainer_module, "HOST_GATHER_BYTES", 0)  # batches gathered from the map
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48_000, 64)).astype(np.float32)  # 12 MB
    y = (x[:, 0] > 0).astype(np.int64)
    np.save(tmp_path / "train.npy", x[:40_000])
    np.save(tmp_path / "val.npy", x[40_000:])
    x_train = np.load(tmp_path / "train.npy", mmap_mode="r")
    x_val = np.load(tmp_path / "val.npy", mmap_mode="r")
    seen: list[tuple[str, int, int]] = []

    def probe(name, fn):
        def wrapped(self, epoch):
            seen.append((f"{name} starts", *_rss(), epoch))
            out = fn(self, epoch)
            seen.append((f"{name} ends", *_rss(), epoch))
            return out

        return wrapped

    def _rss():
        return _mapping_rss_kb(tmp_path / "train.npy"), _mapping_rss_kb(tmp_path / "val.npy")

    for name in ("train_epoch", "validate"):
        monkeypatch.setattr(
            trainer_module.Trainer, name, probe(name, getattr(trainer_module.Trainer, name))
        )
    opts = TrainOptions(epochs=2, batch_size=1024, patience=0)
    model = build_model("mlp", 64, 2)
    trainer = trainer_module.Trainer(model, CrossEntropy(np.bincount(y[:40_000])), opts, 2)
    assert trainer.fit(x_train, y[:40_000], x_val, y[40_000:]).status == "ok"
    by = {(name, epoch): (train, val) for name, train, val, epoch in seen}
    for epoch in (0, 1):
        assert by["train_epoch ends", epoch][0] > 8_000  # the whole training split read in
        assert by["validate starts", epoch][0] < 1_000  # ... and out again
        assert by["validate ends", epoch][1] > 1_000  # the validation split read in
    assert by["train_epoch starts", 1][1] < 1_000  # ... and out again before the next epoch
