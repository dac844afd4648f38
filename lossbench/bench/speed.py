"""Training speed against stock Keras, test metrics under mixed precision, and the fixed cost
of a run (SPEC 7)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lossbench.bench.tools import _median, _timed_command
from lossbench.config import DataOptions, TrainOptions

#: The reference of every epoch ratio: stock Keras `model.fit` (`_stock_keras`).
STOCK = "keras-stock-ce"


def _stock_keras(
    model_fn: Callable[[], Any], X: np.ndarray, y: np.ndarray, n_classes: int, batch: int
) -> Callable[[], float]:
    """Stock Keras: compile with the built-in CategoricalCrossentropy(from_logits=True) and fit.

    Returns a function that runs one epoch and returns the epoch's time measured by a callback
    (so the per-`fit`-call set-up cost is not charged to stock Keras).
    """
    import keras

    model = model_fn()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            times.append(time.perf_counter() - self.t0)

    def one_epoch() -> float:
        model.fit(
            X, onehot, batch_size=batch, epochs=1, shuffle=True, verbose=0, callbacks=[Timer()]
        )
        return times[-1]

    return one_epoch


def training_speed(
    data: Any,
    losses: list[str],
    *,
    device: str,
    reps: int,
    batch: int = 256,
    precision: str = "float32",
    compare_precision: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Per-loss training-epoch time against stock Keras (float32), interleaved, medians after one
    warm-up: every loss under `precision` in `per_loss`; with `compare_precision` (a mixed
    precision) every loss under it too, in `per_precision[compare_precision]`, with its ratio to
    stock Keras and to the loss's own float32 epoch (timed as well when `precision` is not
    float32).

    Stock Keras, the reference every ratio divides by, is timed twice a round (first, and
    halfway through the round), so that its median rests on twice as many epochs and lies
    closer in time to each loss's. A row's GFLOP/s counts the rows its epoch trains on:
    AutoBalance's model trains on the 80% of the training split outside its upper-level split,
    and the FLOPs of its upper-level steps are not counted (`upper_level_flops_uncounted`)."""
    compared = compare_precision if compare_precision not in (None, "float32") else None
    from lossbench.models import training_flops_per_sample
    from lossbench.training import on_device, resolve_jit

    jit = resolve_jit(None, device)
    with on_device(device):
        runners, model_fn, rows = _epoch_runners(
            data, losses, batch, precision, compared, jit, device=device, reps=reps
        )
        names = list(runners)
        half = 1 + (len(names) - 1) // 2  # stock Keras again after the first half of the round
        schedule = [*names[:half], STOCK, *names[half:]] if len(names) > 2 else names
        times: dict[str, list[float]] = {k: [] for k in runners}
        for rep in range(reps + 1):  # rep 0 is the warm-up (tracing, XLA compilation)
            for name in schedule:
                t = runners[name](rep)
                if rep > 0:
                    times[name].append(t)
                log(f"  epoch {rep} {name}: {t:.2f}s" + (" (warm-up)" if rep == 0 else ""))
        per_row = training_flops_per_sample(model_fn())
    return {
        "n_train": int(len(data.y_train)),
        "batch_size": batch,
        "reps": reps,
        "stock_epochs_per_round": schedule.count(STOCK),
        "jit_compile": jit,
        "precision": precision,
        "flops_per_epoch": per_row * len(data.y_train),
        **_speed_rows(times, per_row, rows, losses, precision, compared),
    }


def _label(name: str, prec: str, precision: str) -> str:
    """A timed variant's name: the loss, with `@precision` when not the main precision."""
    return name if prec == precision else f"{name}@{prec}"


def _epoch_runners(
    data: Any,
    losses: list[str],
    batch: int,
    precision: str,
    compared: str | None,
    jit: bool,
    *,
    device: str,
    reps: int,
) -> tuple[dict[str, Callable[[int], float]], Callable[..., Any], dict[str, tuple[int, bool]]]:
    """One function per timed variant (stock Keras, each loss under each precision) that trains
    one epoch and returns its seconds; the function building the 1D-CNN; and the rows one epoch
    of each variant trains on, with whether it also takes upper-level (bi-level) steps."""
    from lossbench.losses import get
    from lossbench.models import build_model
    from lossbench.training import Trainer, seed_everything

    precisions = tuple(dict.fromkeys(p for p in (precision, compared and "float32", compared) if p))
    counts = data.class_counts("train")

    def model_fn(precision: str = "float32", head: str = "linear", scale: float = 1.0) -> Any:
        seed_everything(0)
        return build_model(
            "cnn1d", data.n_features, data.n_classes, head=head, scale=scale, precision=precision
        )

    runners: dict[str, Callable[[int], float]] = {}
    X_train, y_train = np.asarray(data.X_train), np.asarray(data.y_train)
    stock = _stock_keras(model_fn, X_train, y_train, data.n_classes, batch)
    runners[STOCK] = lambda epoch: stock()
    rows = {STOCK: (len(y_train), False)}
    if compared:  # the reference: what the precision gives stock Keras on this machine
        stock_mixed = _stock_keras(
            lambda: model_fn(compared), X_train, y_train, data.n_classes, batch
        )
        runners[_label(STOCK, compared, precision)] = lambda epoch: stock_mixed()
        rows[_label(STOCK, compared, precision)] = (len(y_train), False)
    for name in losses:
        for prec in precisions:
            topts = TrainOptions(batch_size=batch, seed=0, device=device, precision=prec)
            loss = get(name, counts)
            model = model_fn(prec, loss.head, loss.scale)
            trainer = Trainer(model, loss, topts, data.n_classes, jit_compile=jit)
            trainer.set_training_data(data.X_train, data.y_train, data.X_val, data.y_val)
            trainer.loss.on_train_begin(reps + 1)

            def run(epoch: int, trainer: Trainer = trainer) -> float:
                t0 = time.perf_counter()
                trainer.train_epoch(epoch)
                return time.perf_counter() - t0

            runners[_label(name, prec, precision)] = run
            rows[_label(name, prec, precision)] = (trainer.rows_per_epoch, bool(trainer.upper_vars))
    return runners, model_fn, rows


def _speed_rows(
    times: dict[str, list[float]],
    per_row: float,
    n_rows: dict[str, tuple[int, bool]],
    losses: list[str],
    precision: str,
    compared: str | None,
) -> dict[str, Any]:
    """`per_loss`, `per_precision` and `stock_per_precision` of `training_speed`; `per_row`:
    the training FLOPs of one row; `n_rows`: each timed variant's rows per epoch, with whether
    it takes upper-level steps (whose FLOPs are not counted)."""
    base = _median(times[STOCK])

    def row(name: str) -> dict[str, Any]:
        med = _median(times[name])
        n, bilevel = n_rows[name]
        return {
            "epoch_seconds_median": med,
            "epoch_seconds": times[name],
            "ratio_to_stock": med / base,
            "rows_per_epoch": n,
            "flops_per_epoch": per_row * n,
            "gflops": per_row * n / med / 1e9,
            **({"upper_level_flops_uncounted": True} if bilevel else {}),
        }

    rows = {name: row(name) for name in [STOCK, *losses]}
    per_precision: dict[str, dict[str, Any]] = {}
    stock_per_precision: dict[str, dict[str, Any]] = {}
    if compared:
        stock_row = row(_label(STOCK, compared, precision))
        stock_row["ratio_to_own_float32"] = stock_row["ratio_to_stock"]
        stock_per_precision[compared] = stock_row
        per_precision[compared] = {}
        for name in losses:
            r = row(_label(name, compared, precision))
            own = _median(times[_label(name, "float32", precision)])
            r["ratio_to_own_float32"] = r["epoch_seconds_median"] / own
            per_precision[compared][name] = r
    return {
        "per_loss": rows,
        "per_precision": per_precision,
        "stock_per_precision": stock_per_precision,
    }


def precision_quality(
    opts: DataOptions,
    losses: list[str],
    *,
    device: str,
    seeds: tuple[int, ...] = (0, 1, 2),
    epochs: int,
    out: Path,
    precision: str = "mixed_bfloat16",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Test macro-F1 of every loss under float32 and under `precision`, each over `seeds`, from
    two `compare` experiments (same split, weights and batches per seed): per loss the float32
    mean and seed-to-seed standard deviation (ddof 1), the other precision's mean, and whether the
    difference of the means lies within that standard deviation."""
    from lossbench.config import CompareOptions, Settings
    from lossbench.experiment import compare_datasets
    from lossbench.store import load_metrics

    f1: dict[str, dict[str, list[float]]] = {}
    for prec in ("float32", precision):
        train = TrainOptions(epochs=epochs, device=device, precision=prec)
        cfg = Settings(data=opts, train=train)
        t0 = time.perf_counter()
        options = CompareOptions(
            losses=tuple(losses), seeds=tuple(seeds), out=out / prec, fresh=True
        )
        (exp,) = compare_datasets([cfg], options, device=device)
        log(f"  {prec}: {len(losses) * len(seeds)} runs in {time.perf_counter() - t0:.1f}s")
        f1[prec] = {name: [] for name in losses}
        for m in load_metrics(exp):
            if m.get("status") == "ok":
                f1[prec][m["loss"]].append(float(m["summary"]["macro_f1"]))
    rows = {}
    for name in losses:
        ref, low = f1["float32"][name], f1[precision][name]
        std = float(np.std(ref, ddof=1)) if len(ref) > 1 else float("nan")
        diff = float(np.mean(low) - np.mean(ref)) if ref and low else float("nan")
        rows[name] = {
            "float32_macro_f1": ref,
            f"{precision}_macro_f1": low,
            "float32_mean": float(np.mean(ref)) if ref else float("nan"),
            f"{precision}_mean": float(np.mean(low)) if low else float("nan"),
            "difference": diff,
            "float32_seed_std": std,
            "within_seed_std": bool(abs(diff) <= std),
        }
    return {
        "dataset": opts.data,
        "sample_frac": opts.sample_frac,
        "epochs": epochs,
        "seeds": list(seeds),
        "precision": precision,
        "per_loss": rows,
    }


def fixed_cost(
    *,
    device: str,
    out: Path,
    epochs: int = 15,
    precision: str = "float32",
    losses: str = "all",
    repeats: int = 2,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """SPEC 7's fixed-cost ratio: `compare --losses all --seeds 0,1,2` on digits-lt over one
    `run --loss ce`, both with `epochs` and `precision`, each a fresh `lossbench` process on a
    warm data cache. `losses`: the compare's `--losses` (all: 11 losses, 33 runs).

    The compare is timed `repeats` times, each between two timings of the single run (run,
    compare, run, compare, run), and the ratio is the best compare over the best single run:
    as with `timeit`, the least-disturbed sample estimates a command's cost, since load from
    elsewhere on the machine only ever adds time. Every sample is kept in the result; the
    ratio of CPU times (best over best) is reported beside the wall-clock one."""
    from lossbench.losses import names

    dev = "gpu" if device.startswith("GPU") else "cpu"
    common = ["--data", "digits-lt", "--epochs", str(epochs), "--device", dev, "--quiet"]
    if precision != "float32":
        common += ["--precision", precision]
    env = {"LOSSBENCH_CACHE": str(out / "cache")}
    run_args = ["run", "--loss", "ce", *common, "--out", str(out / "run")]
    _timed_command(run_args, env)  # fills the data cache; not timed
    compare_args = ["compare", "--losses", losses, "--seeds", "0,1,2", *common, "--fresh"]
    n_runs = 3 * (len(names()) if losses == "all" else len(losses.split(",")))
    singles = [_timed_command(run_args, env)]
    log(f"  one run: {singles[-1][0]:.1f}s")
    compares = []
    for i in range(max(1, repeats)):
        compares.append(_timed_command([*compare_args, "--out", str(out / f"compare{i}")], env))
        log(f"  {n_runs}-run compare: {compares[-1][0]:.1f}s")
        singles.append(_timed_command(run_args, env))
        log(f"  one run: {singles[-1][0]:.1f}s")
    best = int(np.argmin([wall for wall, _ in compares]))
    many, single = compares[best][0], min(wall for wall, _ in singles)
    many_cpu, single_cpu = min(c for _, c in compares), min(c for _, c in singles)
    # what the best compare's runs spent in `Trainer.fit` (their train_seconds: steps,
    # validation, the first call's tracing), so that the rest is the fixed cost proper
    compare_train = _train_seconds(out / f"compare{best}")
    run_train = _train_seconds(out / "run")
    return {
        "run_command": "lossbench " + " ".join(run_args[:-2]),
        "compare_command": "lossbench " + " ".join(compare_args),
        "n_runs": n_runs,
        "run_seconds": single,
        "run_seconds_each": [wall for wall, _ in singles],
        "compare_seconds": many,
        "compare_seconds_each": [wall for wall, _ in compares],
        "ratio": many / single,
        "run_cpu_seconds": single_cpu,
        "compare_cpu_seconds": many_cpu,
        "cpu_ratio": many_cpu / single_cpu,
        "compare_train_seconds": sum(t for _, t in compare_train),
        "compare_autobalance_train_seconds": sum(
            t for loss, t in compare_train if loss == "autobalance"
        ),
        "run_train_seconds": float(np.mean([t for _, t in run_train])) if run_train else None,
    }


def _train_seconds(results_dir: Path) -> list[tuple[str, float]]:
    """(loss, train_seconds) of every finished run of every experiment under `results_dir`."""
    from lossbench.store import load_experiment

    if not Path(results_dir).is_dir():
        return []
    return [
        (run.loss, float(run.metrics["train_seconds"]))
        for exp_dir in sorted(p for p in Path(results_dir).iterdir() if p.is_dir())
        for run in load_experiment(exp_dir).runs
        if run.ok and run.metrics.get("train_seconds") is not None
    ]
