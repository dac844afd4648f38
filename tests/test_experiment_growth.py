"""An experiment grows (issue 18): more seeds or losses continue it and train only the new runs."""

from __future__ import annotations

import json
from pathlib import Path

FAST = ("--device", "cpu", "--epochs", "2", "--model", "mlp", "--quiet")


def _experiments(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/experiment.json"))


def _stamps(exp: Path) -> dict[str, int]:
    """Run name -> mtime of its metrics.json (rewritten whenever a run is trained)."""
    return {p.parent.name: p.stat().st_mtime_ns for p in exp.glob("runs/*/metrics.json")}


def test_more_seeds_then_more_losses_train_only_the_new_runs(cli, tmp_path):
    out = tmp_path / "results"
    assert cli("compare", "--out", out, *FAST, "--losses", "ce", "--seeds", "0").code == 0
    (exp,) = _experiments(out)
    first = _stamps(exp)
    assert set(first) == {"ce_seed0"}

    res = cli("compare", "--out", out, *FAST, "--losses", "ce", "--seeds", "0,1")
    assert res.code == 0, res.err
    assert _experiments(out) == [exp]
    second = _stamps(exp)
    assert set(second) == {"ce_seed0", "ce_seed1"}
    assert second["ce_seed0"] == first["ce_seed0"]  # seed 0 was not trained again
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["seeds"] == [0, 1]
    assert meta["losses"] == ["ce"]

    res = cli("compare", "--out", out, *FAST, "--losses", "ce,wce", "--seeds", "0,1")
    assert res.code == 0, res.err
    assert _experiments(out) == [exp]
    third = _stamps(exp)
    assert set(third) == {"ce_seed0", "ce_seed1", "wce_seed0", "wce_seed1"}
    assert {k: third[k] for k in second} == second  # only the wce runs were trained
    meta = json.loads((exp / "experiment.json").read_text())
    assert meta["losses"] == ["ce", "wce"]
    assert meta["seeds"] == [0, 1]
    table = (exp / "summary" / "table_average.md").read_text()
    assert "| wce |" in table and "| ce |" in table


def test_other_settings_or_fresh_start_a_new_experiment(cli, tmp_path):
    out = tmp_path / "results"
    assert cli("compare", "--out", out, *FAST, "--losses", "ce", "--seeds", "0").code == 0
    assert cli("compare", "--out", out, *FAST, "--losses", "ce", "--lr", "0.01").code == 0
    assert len(_experiments(out)) == 2
    assert cli("compare", "--out", out, *FAST, "--losses", "ce", "--fresh").code == 0
    assert len(_experiments(out)) == 3
