"""The report page's fixed text: its style sheet, the captions of the summary plots and the note
under the class-groups table (`lossbench.report.html` renders the page)."""

from __future__ import annotations

from lossbench import layout

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1em; color: #222; line-height: 1.4; }
div.wide { overflow-x: auto; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right;
         white-space: nowrap; }
td.text.wrap { white-space: normal; }
pre.config { background: #f6f6f6; padding: 0.5em; white-space: pre-wrap; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
td.best { font-weight: bold; background: #eaf4ea; }
td.sig, tr.sig td { font-weight: bold; }
tr.failed td, tr.incomplete td, tr.missing td { background: #fbecec; }
.note { color: #555; font-size: 0.9em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
.status-ok { color: #1a7f37; }
.status-failed, .status-incomplete, .status-missing { color: #b42318; }
"""

PLOT_CAPTIONS = {
    layout.HISTORY_OVERLAY_PLOT: (
        "Validation macro F1 per epoch, one panel per loss: mean over seeds, band ± 1 std, the "
        f"other losses in grey. Each run's {layout.PLOTS}/{layout.HISTORY_PLOT} has its training "
        "and validation loss, its validation metrics and its learned loss parameters, each panel "
        "titled by which it is."
    ),
    layout.PER_CLASS_PLOT: (
        "Test F1 per class and loss, mean over seeds: bars with ± std error bars for up to five "
        "losses, a heatmap with the values in its cells beyond that. A hatched stub marks an F1 "
        "of 0."
    ),
    layout.RELIABILITY_OVERLAY_PLOT: (
        "Reliability per loss (top-label confidence), one panel per loss: the curve's bins are "
        "pooled over seeds; the ECE in each title is the calibration table's (the mean over seeds "
        "of each run's ECE)."
    ),
    layout.PR_CURVES_PLOT: (
        "Precision-recall curves per class on the test predictions pooled over seeds (at most 12 "
        "classes, the rarest; beyond six losses, the reference and the best by macro F1)."
    ),
    layout.LOSS_SHAPES_PLOT: (
        "Each loss's value against p = softmax(z)_y, the predicted probability of the true class, "
        "for a sample of the rarest and of the most frequent class, as built from this "
        "experiment's training class counts (its first seed's split) and parameters, before "
        f"training (paper Fig. 1); the values are in {layout.PLOTS}/{layout.LOSS_SHAPES}."
    ),
}


GROUPS_NOTE = (
    "Classes grouped by their share of the training split: head >= 10%, tail < 1%, medium in "
    "between (the same groups for every method); macro-F1 and macro recall over each group's "
    "classes present in the test split."
)
