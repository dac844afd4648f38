"""The command-line skeleton: help, version, exit codes of usage errors, the console script."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import lossbench

COMMANDS = ["inspect", "losses", "run", "compare", "report", "bench"]


def test_version_matches_the_package_metadata(cli):
    res = cli("--version")
    assert res.code == 0
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert res.out.strip() == f"lossbench {pyproject['project']['version']}"
    assert lossbench.__version__ == pyproject["project"]["version"]


def test_help_lists_every_command(cli):
    res = cli("--help")
    assert res.code == 0
    for name in COMMANDS:
        assert name in res.out


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_help(cli, name):
    res = cli(name, "--help")
    assert res.code == 0
    assert "--help" in res.out
    assert res.out.count("Usage") == 1


@pytest.mark.parametrize(
    "args, needle",
    [
        (("frobnicate",), "frobnicate"),
        (("run", "--epochs", "many"), "many"),
        (("run", "--no-such-flag"), "--no-such-flag"),
        (("compare", "--executor", "slurm"), "slurm"),
        (("run", "--loss", "ce", "--device", "tpu"), "tpu"),
        (("run", "--loss", "ce", "--split", "0.5,0.5"), "--split"),
    ],
)
def test_usage_errors_exit_2_naming_the_value(cli, tmp_path, args, needle):
    res = cli(*args, "--out", tmp_path) if args[0] in ("run", "compare") else cli(*args)
    assert res.code == 2
    assert needle in res.err
    assert "Traceback" not in res.err
    assert not [p for p in tmp_path.iterdir() if p.name != "cache"]


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "lossbench"
    if not script.exists():
        pytest.skip(f"{script} not installed (run make install)")
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"lossbench {lossbench.__version__}"
