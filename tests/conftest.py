"""Shared fixtures: the CLI runner, paths to the shared CICIDS2017 files, tiny options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
CICIDS_SAMPLE = SHARED / "cicids2017_sample.csv"
RAW_MLCVE = SHARED / "cicids2017_raw_head_machinelearningcve.csv"
RAW_GLF = SHARED / "cicids2017_raw_head_generatedlabelledflows.csv"


def need_shared(path: Path) -> Path:
    """Skip the calling test, with a reason, when ../shared/datasets is absent."""
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/datasets is absent)")
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `lossbench ARGS...` in-process like the console script; returns code, stdout, stderr.

    The prepared-array cache goes to a per-test folder so tests never share state.
    """
    from lossbench.cli import main

    monkeypatch.setenv("LOSSBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LOSSBENCH_CACHE", str(tmp_path / "cache"))
