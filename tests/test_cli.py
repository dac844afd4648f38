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


def test_toml_per_loss_tables_and_dotted_keys_reach_their_loss(tmp_path):
    """`[param.dwb]` tables and `LOSS.KEY = value` under `[param]` (both nested tables in TOML)
    target one loss, as `--param dwb.reg_weight=0.5` does; the example file works as shipped."""
    from lossbench.config import parse_params, resolve_settings
    from lossbench.experiment import split_params

    example = Path(__file__).parents[1] / "examples" / "per_loss_params.toml"
    keys = ("param", "losses", "seeds", "epochs", "model")
    settings = resolve_settings(dict.fromkeys(keys), config=str(example))
    per_loss = split_params(["ce", "focal", "dwb"], parse_params(settings["param"]))
    assert per_loss == {
        "ce": {},
        "focal": {"gamma": 2, "alpha": 0.25},
        "dwb": {"reg_weight": 0.5},
    }
    toml = tmp_path / "exp.toml"
    toml.write_text("[param]\ndwb.reg_weight = 0.25\n[param.focal]\ngamma = 1.5\n")
    settings = resolve_settings({"param": None}, config=str(toml))
    assert split_params(["focal", "dwb"], parse_params(settings["param"])) == {
        "focal": {"gamma": 1.5},
        "dwb": {"reg_weight": 0.25},
    }


@pytest.mark.parametrize(
    "out, needle",
    [
        ("README.md", "exists and is not a folder"),
        ("README.md/sub", "is a file, not a folder"),
        ("/proc/lossbench", "special filesystem"),
    ],
)
def test_out_that_is_a_file_or_special_exits_2_in_one_line(cli, out, needle, monkeypatch):
    """`--out` naming a file, a path under a file, or a pseudo-filesystem: exit 2, one line
    naming the value, before any data is read or folder made (these used to end in exit 1,
    "internal error: FileExistsError / FileNotFoundError")."""
    monkeypatch.chdir(Path(__file__).parents[1])
    for command in ("run", "compare"):
        res = cli(
            command,
            "--out",
            out,
            "--epochs",
            "1",
            "--model",
            "mlp",
            "--seeds" if command == "compare" else "--seed",
            "0",
        )
        assert res.code == 2, res.err
        assert needle in res.err and out in res.err
        assert res.err.strip().count("\n") == 0 and "internal error" not in res.err


def test_out_in_a_read_only_folder_exits_2(cli, tmp_path):
    """A folder the user cannot write in: exit 2 naming it, nothing created."""
    import os

    if os.geteuid() == 0:
        pytest.skip("root can write in a read-only folder")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    res = cli("run", "--out", locked / "results", "--epochs", "1", "--model", "mlp")
    assert res.code == 2 and "permission denied" in res.err
    assert not (locked / "results").exists()
