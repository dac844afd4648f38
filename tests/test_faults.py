"""Bad input and faults (issue 17): never a traceback, never a false error, never a silent success.

Each numbered case of the issue has a test here. Bad input exits with code 2, one stderr line that
names the file, key or value, and leaves no experiment folder behind.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lossbench.config import DataOptions

FAST = ("--device", "cpu", "--epochs", "1", "--model", "mlp")


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def _is_run_warning(line: str) -> bool:
    """A run's own warning ("predicts only 3 of 10 classes"), printed under --quiet too."""
    return line.startswith("warning:") and "predicts only" in line


def _warned(err: str, *needles: str) -> bool:
    """Whether a `warning:` line of stderr holds every needle."""
    return any(ln.startswith("warning:") and all(n in ln for n in needles) for ln in _lines(err))


def _experiments(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/experiment.json")) if out.exists() else []


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _corrupt_gzip(path: Path) -> Path:
    raw = bytearray(gzip.compress(b"a,b,c,d,e,f,g,Label\n" + b"1,2,3,4,5,6,7,x\n" * 3000))
    for i in range(40, len(raw) - 20, 7):  # damage the deflate body; header and trailer intact
        raw[i] ^= 0x55
    path.write_bytes(bytes(raw))
    return path


def _narrow_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [
        f"{a:.3f},{b:.3f},{c:.3f},{d:.3f},{'xy'[i % 2]}"
        for i, (a, b, c, d) in enumerate(rng.random((120, 4)))
    ]
    return _write(path, "a,b,c,d,Label\n" + "\n".join(rows) + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (case, command, extra args, files to write: name -> builder, needles for the one stderr line)
BAD_INPUT = [
    # 2. wrong TOML types
    (
        "toml-epochs-text",
        "run",
        ["--config", "{t}"],
        ("t", 'epochs = "two"\n'),
        ["t.toml", "epochs", "two"],
    ),
    (
        "toml-split-pair",
        "run",
        ["--config", "{t}"],
        ("t", "split = [0.6, 0.4]\n"),
        ["t.toml", "split"],
    ),
    (
        "toml-split-text",
        "compare",
        ["--config", "{t}"],
        ("t", 'split = "a,b,c"\n'),
        ["t.toml", "split"],
    ),
    (
        "toml-unknown-key",
        "run",
        ["--config", "{t}"],
        ("t", "epoch = 2\n"),
        ["t.toml", "epoch", "allowed"],
    ),
    (
        "toml-unknown-model",
        "run",
        ["--config", "{t}"],
        ("t", 'model = "resnet"\n'),
        ["t.toml", "resnet", "mlp"],
    ),
    # 2. negative or too-large seeds
    ("seed-negative", "run", ["--seed", "-1"], None, ["--seed", "-1"]),
    ("seed-too-large", "run", ["--seed", str(2**32)], None, ["--seed", str(2**32)]),
    ("seeds-negative", "compare", ["--seeds", "0,-3"], None, ["--seeds", "-3"]),
    # 3. TOML values get the flags' checks
    (
        "toml-epochs-negative",
        "run",
        ["--config", "{t}"],
        ("t", "epochs = -3\n"),
        ["t.toml", "epochs", "-3"],
    ),
    (
        "toml-batch-zero",
        "compare",
        ["--config", "{t}"],
        ("t", "batch_size = 0\n"),
        ["t.toml", "batch_size"],
    ),
    (
        "toml-epochs-float",
        "run",
        ["--config", "{t}"],
        ("t", "epochs = 2.7\n"),
        ["t.toml", "epochs", "2.7"],
    ),
    ("toml-lr-negative", "run", ["--config", "{t}"], ("t", "lr = -0.1\n"), ["t.toml", "lr"]),
    ("flag-epochs-zero", "run", ["--epochs", "0"], None, ["--epochs", "0"]),
    # unknown names from a TOML file name the file and the key
    ("toml-unknown-loss", "run", ["--config", "{t}"], ("t", 'loss = "nope"\n'), ["t.toml", "nope"]),
    (
        "toml-unknown-losses",
        "compare",
        ["--config", "{t}"],
        ("t", 'losses = ["ce", "nope"]\n'),
        ["t.toml", "losses", "nope"],
    ),
    (
        "toml-unknown-baseline",
        "compare",
        ["--config", "{t}"],
        ("t", 'baselines = ["svm"]\n'),
        ["t.toml", "baselines", "svm"],
    ),
]


@pytest.mark.parametrize(
    ("command", "args", "toml", "needles"),
    [pytest.param(c, a, t, n, id=i) for i, c, a, t, n in BAD_INPUT],
)
def test_bad_settings_exit_2_with_one_line_and_no_folder(
    cli, tmp_path, command, args, toml, needles
):
    out = tmp_path / "out"
    if toml is not None:
        _write(tmp_path / "t.toml", toml[1])
    args = [a.replace("{t}", str(tmp_path / "t.toml")) for a in args]
    if command == "compare" and not (toml and toml[1].startswith("losses")):
        args += ["--losses", "ce"]
    # no other flag: a flag would win over the TOML value under test
    res = cli(command, "--out", out, "--device", "cpu", *args)
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1, res.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in res.err
    assert not out.exists() or not any(out.iterdir())


def test_corrupt_gzip_body_exits_2(cli, tmp_path):
    bad = _corrupt_gzip(tmp_path / "bad.csv.gz")
    out = tmp_path / "out"
    res = cli("run", "--out", out, *FAST, "--data", bad)
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and str(bad) in lines[0], res.err
    assert not out.exists() or not any(out.iterdir())


def test_too_few_features_for_cnn1d_is_found_before_any_folder(cli, tmp_path):
    data = _narrow_csv(tmp_path / "narrow.csv")
    out = tmp_path / "out"
    for command in ("run", "compare"):
        res = cli(command, "--out", out, "--device", "cpu", "--epochs", "1", "--data", data)
        assert res.code == 2, res.err
        lines = _lines(res.err)
        assert len(lines) == 1 and "cnn1d" in lines[0] and "6" in lines[0], res.err
        assert not out.exists() or not any(out.iterdir())


def test_out_under_a_file_exits_2(cli, tmp_path):
    blocker = _write(tmp_path / "file", "x")
    res = cli("run", "--out", blocker / "results", *FAST)
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and str(blocker) in lines[0], res.err


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_read_only_or_full_out_exits_2(cli, tmp_path, monkeypatch, code):
    # The suite runs as root, where chmod cannot make a folder read-only: the file system's
    # refusal is simulated where the experiment folder is created.
    out = tmp_path / "out"
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):
        if self == out or out in self.parents:
            raise OSError(code, os.strerror(code), str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    res = cli("compare", "--out", out, *FAST, "--losses", "ce")
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and str(out) in lines[0] and os.strerror(code) in lines[0], res.err
    assert not out.exists()


def test_unreachable_ray_address_exits_2_before_any_folder(cli, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    address = f"127.0.0.1:{_free_port()}"
    res = cli(
        "compare", "--out", out, *FAST, "--losses", "ce", "--executor", "ray", "--address", address
    )
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and address in lines[0], res.err
    assert not out.exists() or not _experiments(out)


def test_unreachable_address_times_out(monkeypatch):
    from lossbench import executors
    from lossbench.errors import InputError

    def hang(*a, timeout=None, **kw):
        assert timeout == executors.CONNECT_TIMEOUT_S
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    with pytest.raises(InputError, match="timed out"):
        executors.check_address("10.255.255.1:6379")


# ----------------------------------------------------------------------------------------------
# 1. wide files


def test_a_5000_column_csv_loads(tmp_path):
    from lossbench.data.load import read_table

    n_cols = 5000
    rng = np.random.default_rng(1)
    header = ",".join(f"feature_{j:05d}" for j in range(n_cols)) + ",Label"
    rows = [",".join(f"{v:.2f}" for v in rng.random(n_cols)) + f",c{i % 3}" for i in range(30)]
    path = _write(tmp_path / "wide.csv", header + "\n" + "\n".join(rows) + "\n")
    assert len(header) > 8192 * 8
    df, info = read_table(path)
    assert df.shape == (30, n_cols + 1)
    assert list(df.columns[:2]) == ["feature_00000", "feature_00001"]
    assert df.columns[-1] == "Label" and info.label_col == "Label"
    assert info.duplicate_columns == {}
    assert df["Label"].tolist() == [f"c{i % 3}" for i in range(30)]


def test_long_column_names_keep_the_true_last_column(tmp_path):
    from lossbench.data.load import read_table

    names = [("n" * 3000) + str(j) for j in range(4)] + ["target"]
    path = _write(tmp_path / "long.csv", ",".join(names) + "\n" + "1,2,3,4,a\n5,6,7,8,b\n")
    gz = tmp_path / "long.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    for p in (path, gz):
        df, info = read_table(p)
        assert list(df.columns) == names
        assert info.label_col == "target"


# ----------------------------------------------------------------------------------------------
# 4. silent success


def test_compare_with_a_failing_loss_exits_3_and_names_it(cli, tmp_path, monkeypatch):
    import dataclasses

    from lossbench import training

    original = training.Trainer.__init__

    def init(self, model, loss, opts, *a, **kw):  # focal diverges (--lr 1e36), the others do not
        if type(loss).__name__.lower().startswith("focal"):
            opts = dataclasses.replace(opts, lr=1e36)
        original(self, model, loss, opts, *a, **kw)

    monkeypatch.setattr(training.Trainer, "__init__", init)
    training.clear_step_cache()  # a trainer cached earlier would skip the patched __init__
    out = tmp_path / "out"
    res = cli("compare", "--out", out, *FAST, "--losses", "ce,focal", "--quiet")
    assert res.code == 3, res.err
    failed = [ln for ln in _lines(res.err) if "focal_seed0" in ln]
    assert failed and "nan" in failed[0].lower(), res.err
    # ce_seed0 may only have its warnings ("predicts only ..."), kept under --quiet
    assert not any("ce_seed0" in ln for ln in _lines(res.err) if not _is_run_warning(ln))
    (exp,) = _experiments(out)
    assert (exp / "runs" / "ce_seed0" / "DONE").exists()


def test_every_run_failing_is_not_a_success(cli, tmp_path):
    res = cli(
        "compare", "--out", tmp_path / "out", *FAST, "--losses", "ce", "--lr", "1e36", "--quiet"
    )
    assert res.code == 3, res.err
    assert any("ce_seed0" in ln for ln in _lines(res.err))


def test_data_warnings_are_printed_by_run_and_compare(cli, tmp_path):
    rng = np.random.default_rng(2)
    rows = [
        f"{a:.3f},{b:.3f},{c:.3f},{d:.3f},{e:.3f},{f:.3f},{'xy'[i % 2]}"
        for i, (a, b, c, d, e, f) in enumerate(rng.random((200, 6)))
    ]
    rows += ["0.1,0.2,0.3,0.4,0.5,0.6,"] * 3  # no label
    rows += ["0.1,0.2,0.3,0.4,0.5,0.6,rare"] * 2  # too small for a stratified split
    data = _write(tmp_path / "w.csv", "a,b,c,d,e,f,Label\n" + "\n".join(rows) + "\n")
    for command in ("run", "compare"):
        res = cli(
            command,
            "--out",
            tmp_path / command,
            *FAST,
            "--data",
            data,
            "--min-class-count",
            "5",
            "--quiet",
            *(["--losses", "ce"] if command == "compare" else []),
        )
        assert res.code == 0, res.err
        warnings = [ln for ln in _lines(res.err) if ln.startswith("warning:")]
        assert any("3 rows without a label" in ln for ln in warnings), res.err
        assert any("'rare'" in ln and "dropped" in ln for ln in warnings), res.err


def test_a_sample_frac_that_changes_the_balance_is_warned(cli, tmp_path):
    res = cli("run", "--out", tmp_path, *FAST, "--sample-frac", "0.1", "--quiet")
    assert res.code == 0, res.err
    assert _warned(res.err, "sample_frac 0.1", "class balance"), res.err


# ----------------------------------------------------------------------------------------------
# 5. stored files are verified


def test_same_size_corruption_of_a_cached_array_is_detected_and_rebuilt(tmp_path):
    from lossbench.data import prepare

    opts = DataOptions(data="digits-lt")
    first = prepare(opts)
    assert first.info["cache_hit"] is False
    expected = np.array(first.X_train)  # first's arrays are the entry's files, memory-mapped
    (entry,) = (tmp_path / "cache" / "prepared").iterdir()
    target = entry / "X_train.npy"
    size = target.stat().st_size
    raw = bytearray(target.read_bytes())
    raw[-64:] = bytes(64)  # zero the last 16 floats: same size, valid .npy header
    target.write_bytes(bytes(raw))
    assert target.stat().st_size == size
    assert not np.array_equal(np.load(target), expected)

    again = prepare(opts)
    assert again.info["cache_hit"] is False  # the damaged entry was not used
    np.testing.assert_array_equal(np.asarray(again.X_train), expected)
    np.testing.assert_array_equal(np.load(target), expected)  # rebuilt on disk
    third = prepare(opts)
    assert third.info["cache_hit"] is True


@pytest.fixture(scope="module")
def _trained(tmp_path_factory):
    """One tiny compare (ce, la), trained once for the tests that damage its files."""
    from lossbench.cli import main

    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOSSBENCH_CACHE", str(root / "cache"))
        code = main(["compare", "--out", str(root / "out"), *FAST, "--losses", "ce,la", "-q"])
    assert code == 0
    return root / "out"


@pytest.fixture
def done_experiment(_trained, tmp_path):
    """A private copy of the trained experiment: (out folder, experiment folder)."""
    import shutil

    out = shutil.copytree(_trained, tmp_path / "out")
    (exp,) = _experiments(out)
    return out, exp


def test_garbled_metrics_of_a_done_run_is_reported_then_retrained(cli, done_experiment):
    out, exp = done_experiment
    run = exp / "runs" / "ce_seed0"
    (run / "metrics.json").write_text('{"status": "ok", "summ')
    untouched = (exp / "runs" / "la_seed0" / "DONE").stat().st_mtime_ns

    rep = cli("report", exp, "--quiet")
    assert rep.code == 0, rep.err
    assert any("ce_seed0" in ln and "metrics.json" in ln for ln in _lines(rep.err)), rep.err
    html = (exp / "summary" / "report.html").read_text()
    assert "unreadable" in html and "metrics.json" in html

    again = cli("compare", "--out", out, *FAST, "--losses", "ce,la", "--quiet")
    assert again.code == 0, again.err
    assert _warned(again.err, "ce_seed0", "training it again"), again.err
    assert json.loads((run / "metrics.json").read_text())["status"] == "ok"
    assert (exp / "runs" / "la_seed0" / "DONE").stat().st_mtime_ns == untouched
    assert "unreadable" not in (exp / "summary" / "report.html").read_text()


def test_a_deleted_result_file_of_a_done_run_is_reported_then_retrained(cli, done_experiment):
    victim = "predictions.parquet"
    out, exp = done_experiment
    run = exp / "runs" / "ce_seed0"
    (run / victim).unlink()
    rep = cli("report", exp, "--quiet")
    assert rep.code == 0, rep.err
    assert any("ce_seed0" in ln and victim in ln for ln in _lines(rep.err)), rep.err

    again = cli("compare", "--out", out, *FAST, "--losses", "ce,la", "--quiet")
    assert again.code == 0, again.err
    assert _warned(again.err, "ce_seed0", victim, "training it again"), again.err
    assert (run / victim).is_file()


@pytest.mark.parametrize("victim", ["predictions.parquet", "per_class.csv"])
def test_report_on_a_garbled_run_file_goes_on_and_names_it(cli, done_experiment, victim):
    _, exp = done_experiment
    (exp / "runs" / "la_seed0" / victim).write_bytes(b"garbage\x00\x01")
    res = cli("report", exp, "--quiet")
    assert res.code == 0, res.err
    lines = [ln for ln in _lines(res.err) if not _is_run_warning(ln)]
    assert len(lines) == 1 and "la_seed0" in lines[0] and victim in lines[0], res.err
    assert "Traceback" not in res.err


def test_report_on_a_garbled_experiment_json_exits_2(cli, done_experiment):
    _, exp = done_experiment
    (exp / "experiment.json").write_text("{not json")
    res = cli("report", exp)
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and "experiment.json" in lines[0], res.err


def test_a_deleted_run_is_listed_as_missing(cli, done_experiment):
    import shutil

    _, exp = done_experiment
    shutil.rmtree(exp / "runs" / "la_seed0")
    res = cli("report", exp)
    assert res.code == 0, res.err
    row = [ln for ln in res.out.splitlines() if "la_seed0" in ln]
    assert row and "missing" in row[0], res.out
    # the tables count the deleted run as failed (not as if it had never been planned)
    import pandas as pd

    n = len(json.loads((exp / "experiment.json").read_text())["seeds"])
    table = pd.read_csv(exp / "summary" / "table_average.csv").set_index("loss")
    assert (table.loc["la", "n_seeds"], table.loc["la", "n_failed"]) == (n - 1, 1)
    md = (exp / "summary" / "table_average.md").read_text()
    (la_row,) = [ln for ln in md.splitlines() if ln.startswith("| la ")]
    assert la_row.rstrip(" |").endswith(f"| {n - 1} | 1"), la_row


# ----------------------------------------------------------------------------------------------
# 6. a lock per experiment folder


def test_a_second_compare_on_a_busy_experiment_is_refused(cli, done_experiment):
    from lossbench.lock import lock_experiment

    out, exp = done_experiment
    before = sorted(p.name for p in out.iterdir())
    with lock_experiment(exp):
        res = cli("compare", "--out", out, *FAST, "--losses", "ce,la", "--quiet")
    assert res.code == 2, res.err
    lines = _lines(res.err)
    assert len(lines) == 1 and str(exp) in lines[0] and "in use" in lines[0], res.err
    assert sorted(p.name for p in out.iterdir()) == before
    # released: the same command resumes
    assert cli("compare", "--out", out, *FAST, "--losses", "ce,la", "--quiet").code == 0


# ----------------------------------------------------------------------------------------------
# 7. model.keras in plain Keras


def test_saved_models_load_in_plain_keras(done_experiment, tmp_path):
    from lossbench.data import prepare
    from lossbench.models import build_model, portable

    _, exp = done_experiment
    data = prepare(DataOptions(data="digits-lt"))
    np.save(tmp_path / "x.npy", np.asarray(data.X_test[:5]))
    portable(build_model("cnn1d", data.n_features, data.n_classes)).save(tmp_path / "cnn1d.keras")
    cosine = build_model("mlp", data.n_features, data.n_classes, head="cosine", scale=30.0)
    portable(cosine).save(tmp_path / "cosine.keras")
    expected = cosine.predict(np.asarray(data.X_test[:5]), verbose=0)
    paths = [exp / "runs" / run / "model.keras" for run in ("ce_seed0", "la_seed0")]
    snippet = (  # the README's snippet, in a fresh interpreter that never imports lossbench
        "import sys, numpy as np, keras\n"
        "for path in sys.argv[2:]:\n"
        "    model = keras.saving.load_model(path)\n"
        "    logits = model.predict(np.load(sys.argv[1]), verbose=0)\n"
        "    print(logits.shape)\n"
        "np.save(sys.argv[1] + '.cosine.npy', logits)\n"
        "assert not any(m.startswith('lossbench') for m in sys.modules)\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            snippet,
            str(tmp_path / "x.npy"),
            *map(str, paths),
            str(tmp_path / "cnn1d.keras"),
            str(tmp_path / "cosine.keras"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:4] == [f"(5, {data.n_classes})"] * 4
    # LDAM's cosine head, saved in standard layers: the same logits as the trained model
    np.testing.assert_allclose(np.load(tmp_path / "x.npy.cosine.npy"), expected, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# 8. output for pipes and files


def test_compare_through_a_pipe_prints_unwrapped_tables_and_paths(tmp_path):
    out = tmp_path / ("a-rather-long-folder-name-so-that-paths-exceed-eighty-columns" * 2)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(
        LOSSBENCH_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(Path(__file__).resolve().parents[1])
    )
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lossbench.cli",
            "compare",
            "--out",
            str(out),
            *FAST,
            "--losses",
            "ce",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (exp,) = _experiments(out)
    lines = proc.stdout.splitlines()
    assert f"report:     {exp / 'summary' / 'report.html'}" in lines
    assert f"experiment: {exp}" in lines
    # the average and calibration tables as rich tables, every column (nothing dropped on a
    # pipe), one line per row: ce's row holds its 6 (average) and 9 (calibration) "mean ± std"
    assert "Not shown" not in proc.stdout and "|" not in proc.stdout
    ce_rows = [ln for ln in lines if ln.split()[:1] == ["ce"]]
    assert [r.count("±") for r in ce_rows] == [6, 9], proc.stdout
    assert any(ln.split()[:2] == ["ce_seed0", "ok"] for ln in lines), proc.stdout
    # a complete progress bar, and nothing from TensorFlow on stderr
    assert "…" not in proc.stderr, proc.stderr
    assert "0:00:" in proc.stderr
    for noise in ("tensorflow", "E0000", "W0000", "I0000", "oneDNN", "absl"):
        assert noise not in proc.stderr, proc.stderr
