"""The results layout: the one place that names every file and folder of an experiment and a run
(README "Results layout"). `lossbench.store` writes and reads them; every other module asks
here for a path and never spells a file name itself (`tests/test_architecture.py` checks it).

```
<out>/<timestamp>_<label>/            an experiment
  experiment.json                     what was planned, provenance, the configuration key
  runs/<method>_seed<k>/              one run (`run_dir`)
    config.json  metrics.json  predictions.parquet  predictions_val.parquet  per_class.csv
    confusion.csv  calibration.json  history.csv  log.txt  model.keras  tensorboard/
    plots/history.png  reliability.png  confusion.png  per_class_f1.png
    DONE                              written last: the run is complete
  tuning/<method>/trials.csv          compare --tune: every trial
  loss_shape.csv                      the losses' values against p
  summary/                            tables, significance.csv, ranks.csv, plots/, report.html
    plots/history_overlay.png  per_class_f1.png  reliability_overlay.png  pr_curves.png
    plots/loss_shape.png  loss_shape.csv
```

Names and paths only: nothing here touches the disk.
"""

from __future__ import annotations

from pathlib import Path

# the experiment folder
EXPERIMENT = "experiment.json"
RUNS = "runs"
TUNING = "tuning"
TRIALS = "trials.csv"
LOSS_SHAPES = "loss_shape.csv"  # the report copies it beside its plots/loss_shape.png
LOSS_SHAPES_PLOT = "loss_shape.png"  # summary/plots/: the figure of loss_shape.csv
SUMMARY = "summary"
REPORT = "report.html"
SIGNIFICANCE = "significance.csv"
RANKS = "ranks.csv"

# a run folder
CONFIG = "config.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.parquet"  # the test split
PREDICTIONS_VAL = "predictions_val.parquet"  # the validation split
PER_CLASS = "per_class.csv"
CONFUSION = "confusion.csv"
CALIBRATION = "calibration.json"
HISTORY = "history.csv"
LOG = "log.txt"
MODEL = "model.keras"
MODEL_TMP = ".model.tmp.keras"  # Keras saves by suffix: the model's own temporary name
DONE = "DONE"
TENSORBOARD = "tensorboard"
PLOTS = "plots"  # a run's plots/, and summary/plots/

# a run's plots/ (`report.plots.run_figures`)
HISTORY_PLOT = "history.png"
RELIABILITY_PLOT = "reliability.png"
CONFUSION_PLOT = "confusion.png"
PER_CLASS_PLOT = "per_class_f1.png"  # in summary/plots/ too: the losses side by side
RUN_PLOTS = (HISTORY_PLOT, RELIABILITY_PLOT, CONFUSION_PLOT, PER_CLASS_PLOT)
# summary/plots/ (`report.overlays.summary_figures`; and LOSS_SHAPES_PLOT)
HISTORY_OVERLAY_PLOT = "history_overlay.png"
RELIABILITY_OVERLAY_PLOT = "reliability_overlay.png"
PR_CURVES_PLOT = "pr_curves.png"
SUMMARY_PLOTS = (HISTORY_OVERLAY_PLOT, PER_CLASS_PLOT, RELIABILITY_OVERLAY_PLOT, PR_CURVES_PLOT)


def experiment_file(exp_dir: Path) -> Path:
    """`experiment.json` of an experiment folder."""
    return Path(exp_dir) / EXPERIMENT


def runs_dir(exp_dir: Path) -> Path:
    """`runs/` of an experiment folder."""
    return Path(exp_dir) / RUNS


def run_dir(exp_dir: Path, name: str) -> Path:
    """`runs/<name>/`: the folder of one run (`store.run_name`)."""
    return runs_dir(exp_dir) / name


def trials_path(exp_dir: Path, method: str) -> Path:
    """`tuning/<method>/trials.csv` of an experiment: every tuning trial of one method."""
    return Path(exp_dir) / TUNING / method / TRIALS


def loss_shapes_path(exp_dir: Path) -> Path:
    """`loss_shape.csv` of an experiment."""
    return Path(exp_dir) / LOSS_SHAPES


def summary_dir(exp_dir: Path) -> Path:
    """`summary/` of an experiment: the report's tables, plots and page."""
    return Path(exp_dir) / SUMMARY


def report_path(exp_dir: Path) -> Path:
    """`summary/report.html` of an experiment."""
    return summary_dir(exp_dir) / REPORT


def summary_table(which: str, suffix: str = ".csv") -> str:
    """The file name of one summary table (`table_<which>.csv`, `.md`, `.parquet`)."""
    return f"table_{which}{suffix}"


def plots_dir(folder: Path) -> Path:
    """`plots/` of a run folder or of an experiment's summary/."""
    return Path(folder) / PLOTS


def tensorboard_dir(run: Path) -> Path:
    """`tensorboard/` of a run folder (`--tensorboard`)."""
    return Path(run) / TENSORBOARD
