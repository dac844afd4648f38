"""`lossbench leaderboard` and the leaderboard of a compare over several datasets (issue 12).

Fake experiments are written in the results layout (experiment.json, runs/<kind>_seed<k>/ with
metrics.json and DONE); every expected number is recomputed from those metrics.json files with
scipy (rankdata, friedmanchisquare, norm) and statsmodels (Holm)."""

from __future__ import annotations

import base64
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from lossbench.report.leaderboard import build_leaderboard

METRICS = ("macro_f1", "macro_recall", "macro_auprc", "brier")
METHODS = ["ce", "wce", "focal", "dwb"]
SEEDS = [0, 1, 2]
FAST = ("--device", "cpu", "--epochs", "2", "--model", "mlp")


def _write_experiment(root: Path, dataset: str, methods: list[str], rng, skill=None) -> Path:
    exp = root / f"2026-01-01T00-00-00_{dataset}"
    (exp / "runs").mkdir(parents=True)
    meta = {"name": exp.name, "dataset": dataset, "losses": methods, "seeds": SEEDS}
    (exp / "experiment.json").write_text(json.dumps(meta))
    for kind in methods:
        for s in SEEDS:
            d = exp / "runs" / f"{kind}_seed{s}"
            d.mkdir()
            base = (skill or {}).get(kind, 0.5)
            summary = {m: float(np.clip(base + rng.normal(0, 0.08), 0, 1)) for m in METRICS}
            summary["brier"] = 1.0 - summary["macro_f1"] + float(rng.normal(0, 0.02))
            metrics = {"status": "ok", "name": d.name, "loss": kind, "kind": "loss", "seed": s}
            (d / "metrics.json").write_text(json.dumps({**metrics, "summary": summary}))
            # the test predictions every finished run has (the leaderboard reads metrics.json only)
            pd.DataFrame({"row_id": [0, 1], "y_true": [0, 1]}).to_parquet(d / "predictions.parquet")
            (d / "DONE").write_text("done\n")
    return exp


@pytest.fixture
def experiments(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    skill = {"ce": 0.45, "wce": 0.6, "focal": 0.5, "dwb": 0.7}
    root = tmp_path / "results"
    return [_write_experiment(root, f"ds{i}", METHODS, rng, skill) for i in range(6)]


def _seed_means(exp: Path, metric: str, methods: list[str]) -> np.ndarray:
    out = []
    for kind in methods:
        vals = [
            json.loads(p.read_text())["summary"][metric]
            for p in sorted((exp / "runs").glob(f"{kind}_seed*/metrics.json"))
        ]
        out.append(np.mean(vals))
    return np.array(out)


def test_average_ranks_friedman_and_posthoc_equal_scipy(experiments, tmp_path):
    out = tmp_path / "lb"
    build_leaderboard(experiments, out)
    avg = pd.read_csv(out / "average_ranks.csv")
    friedman = pd.read_csv(out / "friedman.csv").set_index("metric")
    posthoc = pd.read_csv(out / "posthoc.csv")
    for metric in METRICS:
        values = np.array([_seed_means(e, metric, METHODS) for e in experiments])  # N x k
        sign = 1 if metric == "brier" else -1
        ranks = stats.rankdata(sign * values, axis=1)
        got = avg[avg["metric"] == metric].set_index("method").loc[METHODS, "avg_rank"]
        np.testing.assert_allclose(got, ranks.mean(axis=0), atol=1e-12)
        ref = stats.friedmanchisquare(*values.T)
        assert friedman.loc[metric, "p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert friedman.loc[metric, "statistic"] == pytest.approx(ref.statistic, rel=1e-9)
        # Demsar's z-test for every pair, Holm-adjusted
        n, k = values.shape
        mean_ranks = ranks.mean(axis=0)
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        z = [
            abs(mean_ranks[i] - mean_ranks[j]) / math.sqrt(k * (k + 1) / (6 * n)) for i, j in pairs
        ]
        p_holm = multipletests([2 * stats.norm.sf(v) for v in z], method="holm")[1]
        sub = posthoc[posthoc["metric"] == metric]
        assert list(zip(sub["method_a"], sub["method_b"], strict=True)) == [
            (METHODS[i], METHODS[j]) for i, j in pairs
        ]
        np.testing.assert_allclose(sub["p_holm"], p_holm, atol=1e-12)
        rejects = ref.pvalue < 0.05
        assert list(sub["significant"]) == [bool(rejects and p < 0.05) for p in p_holm]
    assert friedman.loc["macro_f1", "p_value"] < 0.05  # dwb and wce are better on every dataset


def test_cd_diagrams_exist_and_are_embedded_in_the_html(experiments, tmp_path):
    out = tmp_path / "lb"
    written = build_leaderboard(experiments, out)
    pngs = {m: out / f"cd_{m}.png" for m in METRICS}
    for path in pngs.values():
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and path.stat().st_size > 3000
    for metric in METRICS:
        table = pd.read_csv(out / f"table_{metric}.csv")
        assert sorted(table["Loss"]) == sorted(METHODS)
        assert list(table.columns[1:-1]) == [f"ds{i}" for i in range(6)]
        assert (out / f"table_{metric}.md").is_file()

    class Images(HTMLParser):
        srcs: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.srcs.append(dict(attrs)["src"])

    parser = Images()
    parser.feed(written["leaderboard.html"].read_text())
    embedded = [base64.b64decode(s.split(",", 1)[1]) for s in parser.srcs]
    assert all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert embedded == [pngs[m].read_bytes() for m in METRICS]


def test_different_method_sets_compare_common_methods_with_a_note(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "results"
    a = _write_experiment(root, "a", ["ce", "focal", "rf"], rng)
    b = _write_experiment(root, "b", ["ce", "focal"], rng)
    c = _write_experiment(root, "c", ["focal", "ce", "dwb"], rng)
    written = build_leaderboard([a, b, c])  # default: leaderboard/ beside the experiments
    assert written["leaderboard.html"] == root / "leaderboard" / "leaderboard.html"
    avg = pd.read_csv(root / "leaderboard" / "average_ranks.csv")
    assert set(avg["method"]) == {"ce", "focal"}
    html = written["leaderboard.html"].read_text()
    assert "rf left out (not in every experiment)" in html
    assert "dwb left out (not in every experiment)" in html
    friedman = pd.read_csv(root / "leaderboard" / "friedman.csv")
    assert friedman["p_value"].isna().all() and friedman["note"].str.contains("at least 3").all()


def _one_line_exit_2(res, needle: str) -> None:
    assert res.code == 2, res.err
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.err
    assert "Traceback" not in res.err


def test_bad_input_exits_2_with_one_line_and_writes_nothing(cli, experiments, tmp_path):
    out = tmp_path / "lb"
    not_exp = tmp_path / "plain"
    not_exp.mkdir()
    before = sorted(p for p in tmp_path.rglob("*"))
    _one_line_exit_2(cli("leaderboard", experiments[0], not_exp, "--out", out), "plain")
    _one_line_exit_2(cli("leaderboard", experiments[0], "--out", out), "at least two")
    _one_line_exit_2(cli("leaderboard", experiments[0]), "at least two")  # default out
    _one_line_exit_2(cli("leaderboard", experiments[0], experiments[0]), "given twice")
    _one_line_exit_2(cli("leaderboard", tmp_path / "missing", experiments[1]), "missing")
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not out.exists() and not (experiments[0].parent / "leaderboard").exists()


def test_leaderboard_command_prints_ranks_and_writes_the_folder(cli, experiments, tmp_path):
    res = cli("leaderboard", *experiments, "--out", tmp_path / "lb")
    assert res.code == 0, res.err
    assert "Friedman p" in res.out and "leaderboard.html" in res.out
    res = cli("leaderboard", *experiments, "--json")
    assert res.code == 0, res.err
    payload = json.loads(res.out)
    assert payload["folder"] == str(experiments[0].parent / "leaderboard")
    assert {r["metric"] for r in payload["friedman"]} == set(METRICS)


def test_compare_over_several_datasets_writes_a_leaderboard(cli, tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        y = rng.integers(0, 3, 240)
        x = rng.normal(0, 1, (240, 4)) + y[:, None] * (0.8 + 0.3 * i)
        df = pd.DataFrame(x, columns=[f"f{j}" for j in range(4)]).assign(Label=y)
        paths.append(tmp_path / f"set{i}.csv")
        df.to_csv(paths[-1], index=False)
    out = tmp_path / "out"
    args = ("--data", paths[0], "--data", paths[1], "--losses", "ce,focal", "--seeds", "0")
    res = cli("compare", "--out", out, *FAST, *args, "--quiet")
    assert res.code == 0, res.err
    exps = sorted(p for p in out.iterdir() if (p / "experiment.json").is_file())
    (board,) = [p for p in out.iterdir() if p.name.startswith("leaderboard_")]
    assert board.name == f"leaderboard_{exps[0].name.split('_')[0]}"  # the time stamp
    assert str(board / "leaderboard.html") in res.out
    avg = pd.read_csv(board / "average_ranks.csv")
    f1 = avg[avg["metric"] == "macro_f1"].set_index("method")
    values = np.array([_seed_means(e, "macro_f1", ["ce", "focal"]) for e in exps])
    expected = stats.rankdata(-values, axis=1).mean(axis=0)
    np.testing.assert_allclose(f1.loc[["ce", "focal"], "avg_rank"], expected, atol=1e-12)
    assert (board / "cd_macro_f1.png").is_file()
