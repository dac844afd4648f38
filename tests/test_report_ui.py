"""What a user sees, round two (issue 34): labels that match the tables, one rule for bold, CD
diagrams on 1..k, one colour per method, one number format, the command line in Settings.

The experiment folders are hand-written (`test_report_reader.make_experiment`): expected values are
computed here from the files, never with the code under test.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from test_report_reader import _Cells, make_experiment

from lossbench.report import build_summary


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    """ce, wce and dwb over 3 seeds, each run with its own ECE in metrics.json's calibration."""
    exp = make_experiment(tmp_path_factory.mktemp("ui"), ["ce", "wce", "dwb"], [0, 1, 2], 3)
    eces = {"ce": (0.02, 0.03, 0.04), "wce": (0.05, 0.06, 0.10), "dwb": (0.115, 0.106, 0.112)}
    for loss, values in eces.items():
        for seed, ece in enumerate(values):
            path = exp / "runs" / f"{loss}_seed{seed}" / "metrics.json"
            metrics = json.loads(path.read_text())
            metrics["calibration"] = {"raw": {"brier": 0.3, "ece": ece, "mce": 0.2, "nll": 1.0}}
            path.write_text(json.dumps(metrics))
    meta = json.loads((exp / "experiment.json").read_text())
    meta["invocation"] = {
        "command_line": "lossbench compare --losses ce,wce,dwb --config exp.toml",
        "config_file": "exp.toml",
        "config_text": "epochs = 4\n[param.dwb]\nreg_weight = 0.5\n",
    }
    (exp / "experiment.json").write_text(json.dumps(meta))
    build_summary(exp, n_boot=20)
    return exp, eces


def test_reliability_panel_ece_is_the_calibration_tables_mean(three_seeds):
    from lossbench.report.overlays import plot_reliability_overlay
    from lossbench.report.plots import kind_styles, method_color
    from lossbench.report.tables import load_experiment

    exp, eces = three_seeds
    results = load_experiment(exp)
    fig = plot_reliability_overlay(results, kind_styles(results.kinds))
    titles = {ax.get_title().split("\n")[0]: ax.get_title() for ax in fig.axes if ax.get_title()}
    for ax in fig.axes:  # each loss's curve in its one colour (as in the CD diagrams)
        loss = ax.get_title().split("\n")[0]
        if loss in eces:
            assert to_hex(ax.get_lines()[-1].get_color()) == method_color(loss)
    table = pd.read_csv(exp / "summary" / "table_calibration.csv").set_index("loss")
    for loss, values in eces.items():
        expected = f"{np.mean(values):.3f}"
        assert f"{table.loc[loss, 'ece_mean']:.3f}" == expected  # the table's definition
        assert f"ECE {expected}, mean over 3 seeds" in titles[loss]


def test_history_titles_validation_metrics_as_such():
    from lossbench.report.plots import plot_history

    epochs = np.arange(1, 5)
    history = pd.DataFrame(
        {
            "epoch": epochs,
            "loss": 1.0 / epochs,
            "val_loss": 1.1 / epochs,
            "val_macro_f1": 0.2 * epochs,
            "val_macro_recall": 0.2 * epochs,
            "val_nll": 1.0 / epochs,
            "val_auprc": 0.2 * epochs,
            "lambda_0": 0.1 * epochs,
        }
    )
    titles = [ax.get_title() for ax in plot_history(history, "run").axes if ax.get_visible()]
    assert not [t for t in titles if t.startswith("learned val")], titles
    assert "Validation NLL (metric)" in titles
    assert any("AUPRC" in t and t.startswith("Validation") for t in titles)
    assert "learned lambda per class" in titles


@pytest.mark.parametrize(
    "values, lower, expected",
    [
        ([0.9751, 0.9749, 0.960], False, {0, 1}),  # 0.975 and 0.975 at 3 decimals: both bold
        ([0.1, 0.1, 0.1], True, set()),  # all tied: none
        ([np.nan, 0.5, 0.4], False, {1}),  # undefined never
        ([np.nan, 0.5, np.nan], False, set()),  # one defined value: nothing to compare
        ([0.2, 0.1, 0.1], True, {1, 2}),
    ],
)
def test_best_positions_bolds_every_tie_or_none(values, lower, expected):
    from lossbench.report.tables import best_positions

    assert best_positions(values, lower=lower) == expected


def test_report_bolds_ties_and_no_column_where_all_tie(three_seeds):
    exp, _ = three_seeds
    page = _Cells()
    page.feed((exp / "summary" / "report.html").read_text())
    # every run's calibration has Brier 0.3: all tied, so no Brier cell is bold
    header = next(r for r in page.rows if "Brier" in [c[0] for c in r] and r[0][0] == "Loss")
    col = [c[0] for c in header].index("Brier")
    rows = [r for r in page.rows[page.rows.index(header) + 1 :][:3]]
    assert [r[col][0] for r in rows] == ["0.300 ± 0.000"] * 3
    assert all("best" not in r[col][1] for r in rows)


def test_cd_diagram_all_tied_spans_1_to_k_with_a_visible_bar_and_fixed_colours():
    from lossbench.report.leaderboard import MetricBoard, cd_figure
    from lossbench.report.plots import kind_styles, method_color

    methods = ["ce", "wce", "focal", "dwb"]
    ranks = pd.DataFrame(2.5, index=["a", "b"], columns=methods)
    posthoc = pd.DataFrame(1.0, index=methods, columns=methods)
    board = MetricBoard("macro_f1", ranks * 0 + 0.5, ranks * 0 + 3, ranks, 0.0, 1.0, posthoc, [])
    ax = cd_figure(board).axes[0]
    assert ax.get_xlim() == (1.0, 4.0)
    assert [float(t) for t in ax.get_xticks()] == [1.0, 2.0, 3.0, 4.0]
    bars = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2 and ln.get_color() == "k"]
    assert bars and max(np.ptp(ln.get_xdata()) for ln in bars) > 0.1  # visible, joins them
    # one colour per method in two diagrams (different orders) and the overlays' styles
    text_colors = {_label(t): to_hex(t.get_color()) for t in ax.texts}
    assert set(text_colors) >= set(methods)
    board2 = MetricBoard(
        "brier",
        ranks[methods[::-1]] * 0 + 0.5,
        ranks * 0 + 3,
        pd.DataFrame([[1.0, 2, 3, 4]] * 2, index=["a", "b"], columns=methods[::-1]),
        1.0,
        0.01,
        posthoc,
        [],
    )
    ax2 = cd_figure(board2).axes[0]
    for t in ax2.texts:
        if _label(t) in methods:
            assert to_hex(t.get_color()) == text_colors[_label(t)] == method_color(_label(t))
    styles = kind_styles(["dwb", "ce", "ce+ros"])  # another order, a variant added
    assert to_hex(styles["ce"]["color"]) == method_color("ce") == text_colors["ce"]
    assert styles["ce+ros"]["color"] == styles["ce"]["color"]
    assert styles["ce+ros"]["linestyle"] != styles["ce"]["linestyle"]
    assert method_color("ce") == to_hex("tab:blue")  # the report's ce, blue


def _label(text) -> str:
    """The method of a CD-diagram label, "ce (2.50)" or "(2.50) ce"."""
    return re.sub(r"\(.*?\)", "", text.get_text()).strip()


@pytest.mark.parametrize(
    "p, text", [(1.0, "1.00"), (0.145, "0.145"), (0.0123, "0.0123"), (0.0004, "< 0.001")]
)
def test_p_values_have_three_significant_digits(p, text):
    from lossbench.report.tables import format_p, p_phrase

    assert format_p(p) == text
    assert p_phrase(p) == ("p < 0.001" if p < 0.001 else f"p = {text}")


def test_report_settings_show_the_command_line_and_the_toml_and_cells_do_not_wrap(three_seeds):
    exp, _ = three_seeds
    html = (exp / "summary" / "report.html").read_text()
    assert "lossbench compare --losses ce,wce,dwb --config exp.toml" in html
    assert "[param.dwb]" in html and "reg_weight = 0.5" in html
    assert re.search(r"th, td \{[^}]*white-space: nowrap", html)
    # p-values in the significance tables: 3 significant digits or "< 0.001"
    page = _Cells()
    page.feed(html)
    header = next(r for r in page.rows if "p Holm" in [c[0] for c in r])
    col = [c[0] for c in header].index("p Holm")
    start = page.rows.index(header) + 1
    for row in page.rows[start : start + 3]:
        assert re.fullmatch(r"< 0\.001|1\.00|0\.\d*[1-9]\d{2}|–", row[col][0]), row[col]
