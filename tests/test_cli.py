"""The command-line skeleton: help, version, exit codes of usage errors, the console script."""

from __future__ import annotations

import json
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
    from lossbench.experiment import split_params
    from lossbench.settings import resolve_settings

    example = Path(__file__).parents[1] / "examples" / "per_loss_params.toml"
    keys = ("param", "losses", "seeds", "epochs", "model")
    settings = resolve_settings(dict.fromkeys(keys), config=str(example))
    per_loss = split_params(["ce", "focal", "dwb"], settings["param"])
    assert per_loss == {
        "ce": {},
        "focal": {"gamma": 2, "alpha": 0.25},
        "dwb": {"reg_weight": 0.5},
    }
    toml = tmp_path / "exp.toml"
    toml.write_text("[param]\ndwb.reg_weight = 0.25\n[param.focal]\ngamma = 1.5\n")
    settings = resolve_settings({"param": None}, config=str(toml))
    assert split_params(["focal", "dwb"], settings["param"]) == {
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


def test_losses_answers_without_importing_tensorflow_or_keras():
    """`lossbench losses` reads the catalogue (lossbench/loss_catalog.json), not the classes."""
    code = (
        "import sys; from lossbench.cli import main; rc = main(['losses']); "
        "assert rc == 0; heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "dwb" in res.stdout and "Fernando and Tsokos" in res.stdout


def test_loss_catalogue_is_what_the_loss_classes_say():
    """The catalogue equals `describe()` (regenerate: python -m lossbench.loss_catalog)."""
    from lossbench.loss_catalog import build_catalog, read_catalog

    assert read_catalog() == json.loads(json.dumps(build_catalog()))


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


@pytest.mark.parametrize("columns", [100, 200])
def test_losses_and_inspect_fit_the_terminal(cli, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    for args in (("losses",), ("inspect",)):
        res = cli(*args)
        assert res.code == 0, res.err
        assert _widest(res.out) <= columns and _widest(res.err) <= columns, args


def test_compare_output_fits_the_terminal_in_losses_order_and_says_it_continues(
    cli, monkeypatch, tmp_path
):
    """compare at 100 columns, the same experiment's `report` at 200: no line wider than the
    terminal, tables as rich tables (no Markdown pipes) in --losses order, a note when a compare
    grows an existing experiment."""
    monkeypatch.chdir(tmp_path)  # paths are printed whole: keep them short
    common = ["--epochs", "1", "--model", "mlp", "--seeds", "0", "--out", "out"]
    monkeypatch.setenv("COLUMNS", "100")
    res = cli("compare", "--losses", "wce,ce", *common)
    assert res.code == 0, res.err
    assert _widest(res.out) <= 100 and _widest(res.err) <= 100
    assert "|" not in res.out  # no raw Markdown table
    lines = res.out.splitlines()
    first = next(i for i, ln in enumerate(lines) if "wce_seed0" in ln)
    assert first < next(i for i, ln in enumerate(lines) if "ce_seed0" in ln and "wce" not in ln)
    assert "continuing" not in res.err
    (exp,) = [p.relative_to(tmp_path) for p in (tmp_path / "out").glob("*/experiment.json")]
    exp = exp.parent
    monkeypatch.setenv("COLUMNS", "200")
    res = cli("report", exp)
    assert res.code == 0 and _widest(res.out) <= 200
    monkeypatch.setenv("COLUMNS", "100")
    res = cli("compare", "--losses", "wce,ce,focal", *common)
    assert res.code == 0, res.err
    assert f"note: continuing {exp}: 2 of 3 runs done" in " ".join(res.err.split())
    assert _widest(res.err) <= 100


def test_run_prints_the_presets_drops_and_keeps_warnings_under_quiet(cli, tmp_path):
    """The CICIDS2017 preset's drops as note: lines; --quiet keeps warnings on stderr and the
    notes off; no blank line before an error."""
    from conftest import CICIDS_SAMPLE, need_shared

    data = need_shared(CICIDS_SAMPLE)
    args = ["run", "--data", data, "--epochs", "1", "--model", "mlp", "--out", tmp_path]
    res = cli(*args, "--lr", "1e-7")
    assert res.code == 0, res.err
    err = " ".join(res.err.split())
    assert "note: cicids2017_sample: dropped class Infiltration (36 rows)" in err
    assert "note: cicids2017_sample: dropped 14 rows with a missing or infinite feature" in err
    (metrics,) = tmp_path.glob("*/runs/*/metrics.json")
    warnings = json.loads(metrics.read_text()).get("warnings")
    assert warnings  # a network trained at lr 1e-7 for one epoch predicts few classes
    res = cli(*args, "--lr", "1e-7", "--quiet")
    assert res.code == 0
    assert "predicts only" in res.err and "note:" not in res.err
    res = cli(*args, "--loss", "nope")
    assert res.code == 2 and res.err.startswith("error:"), repr(res.err)


@pytest.mark.parametrize("name", ["run", "compare", "inspect"])
def test_help_shows_no_type_after_flags(cli, name):
    """Options that take no value (--quiet, --json, --help) show no `<bool>`; others their type."""
    res = cli(name, "--help")
    assert res.code == 0
    assert "<bool>" not in res.out
    assert "--quiet" in res.out or name == "inspect"
    assert "<int>" in res.out or name == "inspect"
