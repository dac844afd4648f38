"""The options the commands share, declared once, and `with_options`, which resolves them into
the settings (`settings.resolve_settings`)."""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from inspect import Parameter, Signature, signature
from typing import Annotated, Any

import typer

from lossbench import choices
from lossbench.config import build_settings
from lossbench.errors import InputError
from lossbench.settings import (
    DEFAULTS,
    resolve_settings,
)


def _option(kind: Any, *flags: str, **settings: Any) -> Any:
    """`Annotated[kind, typer.Option(*flags, **settings)]`: the type of one command-line option."""
    return Annotated[kind, typer.Option(*flags, **settings)]


def _option_name(option: Any) -> str:
    """The parameter name of an option type: its first flag without the dashes (`--batch-size`:
    batch_size, `--prune/--no-prune`: prune), `--json` as `as_json`."""
    flag = str(typing.get_args(option)[1].default).split("/")[0]
    name = flag.lstrip("-").replace("-", "_")
    return "as_json" if name == "json" else name


def _group(doc: str, names: str, **types: Any) -> Callable[..., None]:
    """A group of options shared by several commands (`with_options`): a function whose
    signature declares the options `names` (space-separated) with their types (the `...Opt`
    declared above, by `_option_name`; `types` where one name has two) and their defaults
    (`settings.DEFAULTS`)."""
    declared = {_option_name(v): v for k, v in globals().items() if k.endswith("Opt")}

    def group() -> None:
        pass

    group.__doc__ = doc
    group.__signature__ = Signature(  # type: ignore[attr-defined]
        [
            Parameter(
                n,
                Parameter.POSITIONAL_OR_KEYWORD,
                default=DEFAULTS[n],
                annotation=types.get(n, declared.get(n)),
            )
            for n in names.split()
        ]
    )
    return group


# Every option, declared once (the groups below and the commands' own signatures use them),
# shortest declaration first.
NanPolicyOpt = _option(choices.NanPolicy, "--nan-policy", help="Rows with missing features.")
SampleFracOpt = _option(float | None, "--sample-frac", help="Stratified subsample fraction (0, 1].")
SplitOpt = _option(str, "--split", help="train,val,test fractions.")
ScalerOpt = _option(choices.Scaler, "--scaler", help="Feature scaling.")
NoCacheOpt = _option(bool, "--no-cache", help="Bypass the prepared-array cache.")
DedupeOpt = _option(bool, "--dedupe", help="Drop exact duplicate rows (features and label) first.")
NegativeOpt = _option(str | None, "--negative", help="--task binary: the negative class (BENIGN).")
SeedOpt = _option(int, "--seed", help="Seed for split, weights and batch order.")
JsonOpt = _option(bool, "--json", help="Print the result as JSON on stdout.")
ConfigOpt = _option(str | None, "--config", help="TOML file whose keys mirror the flags.")
PlotOpt = _option(bool, "--plot", help="Also draw the figure into --out (PNG).")
EpochsOpt = _option(int, "--epochs", help="Maximum epochs (>= 1).")
BatchOpt = _option(int, "--batch-size", help="Mini-batch size (>= 1).")
LrOpt = _option(float, "--lr", help="Adam learning rate.")
DeviceOpt = _option(choices.Device, "--device", help="Training device.")
OutOpt = _option(str, "--out", help="Results folder.")
QuietOpt = _option(bool, "--quiet", "-q", help="Print only the result paths.")
ClipOpt = _option(float, "--clipnorm", help="Global-norm gradient clip; 0 = off.")
PositiveOpt = _option(str | None, "--positive-label", help="Binary tasks: the positive class.")
JitOpt = _option(choices.Jit, "--jit", help="XLA compilation of the train step.")
SeedsOpt = _option(str, "--seeds", help="Comma-separated seeds (3 or more for a test).")
FreshOpt = _option(bool, "--fresh", help="Start a new experiment.")
ExecutorOpt = _option(choices.Executor, "--executor", help="Where the runs train.")
AddressOpt = _option(str | None, "--address", help="Ray cluster address (with --executor ray).")
GpusPerRunOpt = _option(float, "--gpus-per-run", help="GPUs per Ray task (>= 0).")
LabelColOpt = _option(
    str | None, "--label-col", help="Label column (default: Label, else the last)."
)
PresetOpt = _option(
    choices.Preset, "--preset", help="Dataset preset (auto: detect by column names)."
)
MergeOpt = _option(
    list[str] | None, "--merge", help="Merge labels, e.g. --merge 'Web Attack=Web Attack*'."
)
MinClassOpt = _option(
    int | None, "--min-class-count", help="Drop, with a warning, classes with fewer rows."
)
LabelMapOpt = _option(
    list[str] | None, "--label-map", help="Rename --test-data labels, e.g. 'DDOS attack-HOIC=DDoS'."
)
ModelParamOpt = _option(
    list[str] | None, "--model-param", help="Parameter KEY=VALUE of your --model MODULE:ATTR."
)
PatienceOpt = _option(
    int, "--patience", help="Early-stopping patience on the --select criterion; 0 disables."
)
FarOpt = _option(
    str, "--far", help="False-alarm-rate targets of the operating points, e.g. 0.01,0.001."
)
ParamOpt = _option(
    list[str] | None, "--param", help="Loss parameter KEY=VALUE (or LOSS.KEY=VALUE in compare)."
)
TensorboardOpt = _option(
    bool, "--tensorboard", help="Also write TensorBoard logs into the run folder."
)
TestDataOpt = _option(
    str | None,
    "--test-data",
    help="Cross-dataset test: train and validate on --data, test on this file or folder.",
)
PrecisionOpt = _option(
    choices.Precision,
    "--precision",
    help="Keras mixed precision for the network (losses and metrics stay float32).",
)
DataOpt = _option(
    str | None,
    "--data",
    help="CSV (.csv/.csv.gz), Parquet, folder of CSVs, or a built-in dataset "
    "(digits-lt, synthetic-cicids). Default: digits-lt.",
)
DropClassesOpt = _option(
    str | None,
    "--drop-classes",
    help="Comma-separated classes to drop (preset default: "
    "Heartbleed,Infiltration; pass '' to keep all).",
)
TaskOpt = _option(
    choices.Task,
    "--task",
    help="binary: the negative class (--negative, default BENIGN) against every other class "
    "merged into 'attack' (zero-day and cross-dataset detection).",
)
SplitByOpt = _option(
    str,
    "--split-by",
    help="random (stratified); order (row order); time[:COLUMN] (by timestamp); "
    "group:COL[,COL] (every group in one split); files:TRAIN;VAL;TEST (file-name globs).",
)
ModelOpt = _option(
    str,
    "--model",
    help="Network: cnn1d (paper Fig. 4), mlp, or your builder MODULE:ATTR "
    "(build(n_features, n_classes, **params) -> keras.Model of logits).",
)
SelectOpt = _option(
    choices.Select,
    "--select",
    help="Selection criterion on the validation split, the same for every loss (validation "
    "NLL breaks ties of macro_f1).",
)
LossOpt = _option(
    str,
    "--loss",
    help="Loss name (see `lossbench losses`) or your own: [ALIAS=]MODULE:ATTR "
    "(MODULE a module or a .py file).",
)
BaselinesOpt = _option(
    str,
    "--baselines",
    help="scikit-learn baselines: lr,rf,hgb; prior (the training class prior) and stump "
    "(a depth-1 tree on the best single feature) show how hard the task is.",
)
PlotsOpt = _option(
    choices.Plots,
    "--plots",
    help="summary: the summary's plots only (each run's: `lossbench report --plots "
    "runs`); runs: each run's plots too.",
)
PruneOpt = _option(
    bool,
    "--prune/--no-prune",
    help="With --tune: stop trials below the median of the completed ones at the same "
    "epoch (Optuna MedianPruner after --patience epochs, the same for every method).",
)
DataListOpt = _option(
    list[str] | None,
    "--data",
    help="As for `run`; repeat --data to compare on several datasets (one experiment "
    "each). Default: digits-lt.",
)
LossesOpt = _option(
    str,
    "--losses",
    help="Comma-separated losses or data-level baselines (ce+ros, ce+rus, ce+smote, "
    "ce+balanced-batches), your own losses as [ALIAS=]MODULE:ATTR, or 'all' (the "
    "eleven built-in losses).",
)
TuneOpt = _option(
    int,
    "--tune",
    help="Tune every method with N trials on seed 0's validation split (Optuna TPE, "
    "objective: the --select criterion), then add '<method>@tuned' rows beside the "
    "defaults; 0 = no tuning.",
)
MlflowOpt = _option(
    str | None,
    "--mlflow",
    metavar="[TRACKING_URI]",
    help="Also log the runs to MLflow: one run per lossbench run, nested under one per "
    "experiment (settings, per-epoch history, test metrics, tables and plots). Without a "
    "URI: a SQLite store in <out>/mlruns/. Needs the mlflow extra.",
)


dataset_options = _group(
    """How to read a dataset: the options `inspect`, `run` and `compare` share.""",
    "label_col preset nan_policy drop_classes merge min_class_count no_cache dedupe task "
    "negative split_by test_data label_map",
)


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the option `name` was given (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is None or source.name != "DEFAULT"


def with_options(
    *groups: Callable[..., None], build: str | None = None
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the options of `groups` (functions whose signatures declare them, each
    declared once), after its own.

    The command is called with its own options and `settings`, the groups' options by name, all
    resolved once by `settings.resolve_settings`: a flag given, else the `--config` file's value
    (where the command has --config), else the default, each validated whatever its source. With
    `build` ("run" or "compare"), `settings` is that command's typed `config.CommandSettings`.
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [
            p for p in signature(command, eval_str=True).parameters.values() if p.name != "settings"
        ]
        shared = [p for g in groups for p in signature(g, eval_str=True).parameters.values()]
        params = [
            Parameter("ctx", Parameter.KEYWORD_ONLY, annotation=typer.Context),
            *(p.replace(kind=Parameter.KEYWORD_ONLY) for p in own + shared),
        ]

        @functools.wraps(command)
        def with_settings(ctx: typer.Context, **flags: Any) -> None:
            given = {name for name in flags if _on_command_line(ctx, name)}
            settings = resolve_settings(flags, given=given, config=flags.get("config"))
            mine = {p.name: settings.pop(p.name) for p in own}
            command(settings=build_settings(build, settings) if build else settings, **mine)

        with_settings.__signature__ = signature(command).replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=None
        )
        with_settings.__annotations__ = {p.name: p.annotation for p in params}
        return with_settings

    return decorate


#: `inspect` and `losses --plot --data` read the whole dataset, split as by default.
WHOLE_DATASET = {
    "sample_frac": None,
    "split": (0.6, 0.2, 0.2),
    "scaler": "minmax",
    "positive_label": None,
}


def plot_path(out: str) -> Any:
    """The PNG file of `--out`, checked before anything is computed: a .png name in a folder
    that exists, and not a folder itself."""
    from pathlib import Path

    path = Path(out)
    if path.is_dir():
        raise InputError(f"--out {out!r}: is a folder; expected a .png file name")
    if path.suffix.lower() != ".png":
        raise InputError(f"--out {out!r}: expected a .png file name")
    if not path.parent.is_dir():
        raise InputError(f"--out {out!r}: the folder {str(path.parent)!r} does not exist")
    return path


training_options = _group(
    """The other options `run` and `compare` share (after `dataset_options`).""",
    "sample_frac split scaler positive_label model model_param epochs batch_size lr clipnorm "
    "patience select far device jit precision param out tensorboard mlflow config quiet "
    "as_json",
)


run_options = _group(
    """The options only `run` has (before the shared ones).""",
    "loss data seed",
    data=DataOpt,
)


compare_options = _group(
    """The options only `compare` has (before the shared ones).""",
    "losses seeds baselines fresh plots tune prune executor address gpus_per_run data",
    data=DataListOpt,
)
