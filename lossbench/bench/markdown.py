"""bench.md: the machine, the targets and every figure."""

from __future__ import annotations

from typing import Any

from lossbench import layout
from lossbench.bench.size import FULL_RELEASE_FEATURES
from lossbench.bench.tools import _seconds_list, epoch_target_applies


def to_markdown(r: dict[str, Any]) -> str:
    """bench.md: the machine, the targets and every figure."""
    m, t = r["machine"], r["training"]
    lines = [
        f"# lossbench bench, {r['date']}{' (quick)' if r['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; device {m['device']}; "
        f"TensorFlow {r['versions']['tensorflow']}, Keras {r['versions']['keras']}.",
        "",
        precision_note(r),
        "",
        "## Targets (SPEC 7)",
        "",
        "| target | measured | goal | met |",
        "| --- | ---: | --- | --- |",
    ]
    for name, row in r["targets"].items():
        extra = f" ({row['loss']})" if "loss" in row else ""
        lines.append(
            f"| {name}{extra} | {row['value']:.3f} | {row['target']} | {_met(row['met'])} |"
        )
    lines += [
        "",
        f"## Training epoch, 1D-CNN, synthetic-cicids ({t['n_train']:,} training rows, batch "
        f"{t['batch_size']}, {t.get('precision', 'float32')}, median of {t['reps']} epochs "
        f"after a warm-up, XLA {'on' if t['jit_compile'] else 'off'})",
        "",
        "Targets: every loss <= 1.10x stock Keras (float32 `model.fit`, built-in "
        "CategoricalCrossentropy), autobalance <= 1.6x (its upper-level step is extra work by "
        "design); training at >= 50% of the matmul peak.",
        "",
        _rounds_note(t),
        "",
        _peak_note(r["matmul_peak"]),
        "",
        "| loss | epoch s | x stock Keras | GFLOP/s | % of peak |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in t["per_loss"].items():
        mark = " *" if row.get("upper_level_flops_uncounted") else ""
        lines.append(
            f"| {name} | {row['epoch_seconds_median']:.2f} | "
            f"{row['ratio_to_stock']:.3f} | {row['gflops']:.1f}{mark} | "
            f"{100 * row['fraction_of_peak']:.1f}%{mark} |"
        )
    uncounted = [(k, v) for k, v in t["per_loss"].items() if v.get("upper_level_flops_uncounted")]
    for name, row in uncounted:
        lines += [
            "",
            f"\\* {name}: the model's FLOPs on the {row['rows_per_epoch']:,} rows its epoch "
            f"trains on (the training split less its upper-level split); its upper-level steps' "
            "FLOPs are not counted, so it is left out of the fraction-of-peak target.",
        ]
    lines += _precision_markdown(t, r["machine"].get("native_precisions"))
    lines += _quality_markdown(r)
    lines += _commands_markdown(r)
    lines += _ingest_markdown(r)
    return "\n".join(lines + _issue35_markdown(r))


def _peak_note(peak: dict[str, Any]) -> str:
    """The matmul peak, with its two windows (absent from older bench.json: one)."""
    each = peak.get("gflops_each")
    windows = (
        f"; the best of a 2-second window before the epochs and one after them: "
        f"{each[0]:.1f} and {each[1]:.1f}"
        if each
        else ""
    )
    return f"Matmul peak: {peak['gflops']:.1f} GFLOP/s (float32, {peak['n']}x{peak['n']}{windows})."


def _rounds_note(t: dict[str, Any]) -> str:
    """How the epochs were interleaved: one round times every loss once, stock Keras
    `stock_epochs_per_round` times (absent from older bench.json: once)."""
    per = t.get("stock_epochs_per_round", 1)
    twice = (
        f"; stock Keras, the reference of every ratio, {'twice' if per == 2 else f'{per} times'}"
        " a round (first and halfway), "
        f"so its median is of {per * t['reps']} epochs"
        if per > 1
        else ""
    )
    return f"Interleaved: each of {t['reps']} rounds times every loss once{twice}."


def _features(size: dict[str, Any], which: str) -> str:
    """The features the size figures' run `which` trained on, as ", N features" (nothing in a
    bench.json from before they were recorded)."""
    n = size.get(f"{which}_features")
    return f", {n} features" if n else ""


def _same_network(size: dict[str, Any]) -> str:
    """Why the size epoch's ratio compares sizes, where both runs' features were recorded and
    are as many (nothing otherwise: an older bench.json's generated files had 74 features)."""
    n = size.get("run_features")
    if not n or n != size.get("small_features"):
        return ""
    return (
        " The generated files' columns that synthetic-cicids leaves out as constant are all "
        "zero, so that the preset drops them and both train the same network: the ratio "
        "compares sizes, not widths."
    )


def _met(met: bool | None) -> str:
    return "n/a" if met is None else "yes" if met else "no"


def precision_note(r: dict[str, Any]) -> str:
    """Which mixed precision the bench compared with float32, and why (`--compare-precision`)."""
    prec, asked = r.get("compare_precision"), r.get("compare_precision_requested")
    native = r["machine"].get("native_precisions")
    if native is None:  # a bench.json from before the machine's precisions were recorded
        return f"Mixed precision compared with float32: {prec or 'none'}."
    what = "a GPU" if r["machine"]["device"].startswith("GPU") else "this CPU"
    if prec is None and asked == "auto":
        return (
            f"Mixed precision: not compared (`--compare-precision auto`): {what} has no native "
            "bfloat16 (AVX512-BF16, AMX or Arm BF16), where SPEC 7's bfloat16 target applies; "
            "`--compare-precision mixed_bfloat16` times it anyway."
        )
    if prec is None:
        return "Mixed precision: not compared (`--compare-precision none`)."
    if prec in native:
        return f"Mixed precision: {prec} compared with float32 ({what} computes it natively)."
    return (
        f"Mixed precision: {prec} compared with float32, emulated on {what} (no native "
        f"{prec.removeprefix('mixed_')}): its epoch target does not apply here."
    )


def _table_section(
    title: str, target: str, columns: list[str], text_last: bool = False
) -> list[str]:
    """A bench.md section's opening: its title, the target, and the header of its table (the
    first column text, the others numbers, the last text too with `text_last`)."""
    align = ["---"] + ["---:"] * (len(columns) - 1)
    if text_last:
        align[-1] = "---"
    return ["", f"## {title}", "", target, "", _row(columns), _row(align)]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _precision_markdown(t: dict[str, Any], native: list[str] | None) -> list[str]:
    """The epochs under the compared (mixed) precision (`native`: the precisions the device
    computes natively, where the target applies; None: not recorded)."""
    lines: list[str] = []
    for prec, rows in t.get("per_precision", {}).items():
        emulated = not epoch_target_applies(prec, native)
        lines += _table_section(
            f"Training epoch under {prec} (same model, data and batches; stock Keras float32)",
            "Target: every loss <= 0.75x float32 stock Keras; autobalance <= 0.75x its own "
            "float32 epoch"
            + (" (where the device computes it natively; not here)." if emulated else "."),
            ["loss", "epoch s", "x stock Keras float32", "x own float32"],
        )
        stock = t.get("stock_per_precision", {}).get(prec)
        if stock is not None:  # not a target: what the precision gives stock Keras here
            lines.append(
                f"| keras-stock-ce under {prec} (reference) | {stock['epoch_seconds_median']:.2f} "
                f"| {stock['ratio_to_stock']:.3f} | {stock['ratio_to_own_float32']:.3f} |"
            )
        lines += [
            _row(
                [
                    name,
                    f"{row['epoch_seconds_median']:.2f}",
                    f"{row['ratio_to_stock']:.3f}",
                    f"{row['ratio_to_own_float32']:.3f}",
                ]
            )
            for name, row in rows.items()
        ]
    return lines


def _quality_markdown(r: dict[str, Any]) -> list[str]:
    """Test macro-F1, float32 against the compared precision."""
    lines: list[str] = []
    q = r.get("precision_quality")
    if q:
        p = q["precision"]
        lines += _table_section(
            f"Test macro-F1, float32 against {p} ({q['dataset']}, sample {q['sample_frac']}, "
            f"{q['epochs']} epochs, seeds {','.join(map(str, q['seeds']))})",
            f"Target: for every loss, the {p} 3-seed mean within the float32 runs' seed-to-seed "
            "standard deviation (|difference| <= float32 seed std).",
            ["loss", "float32 mean", "float32 seed std", f"{p} mean", "difference", "within std"],
            text_last=True,
        )
        means = ("float32_mean", "float32_seed_std", f"{p}_mean")
        lines += [
            _row(
                [name, *(f"{row[k]:.4f}" for k in means), f"{row['difference']:+.4f}"]
                + ["yes" if row["within_seed_std"] else "no"]
            )
            for name, row in q["per_loss"].items()
        ]
    return lines


def _commands_markdown(r: dict[str, Any]) -> list[str]:
    """`lossbench losses` and the fixed cost per run."""
    lines: list[str] = []
    lc = r.get("losses_command")
    if lc:
        lines += [
            "",
            "## `lossbench losses` (a fresh process; no Keras, no TensorFlow)",
            "",
            f"{lc['seconds']:.2f} s (best of {_seconds_list(lc['seconds_each'])}; CPU "
            f"{lc['cpu_seconds']:.2f} s); target under 2 s.",
        ]
    fc = r.get("fixed_cost")
    if fc:
        lines += [
            "",
            "## Fixed cost per run (fresh processes, TensorFlow import included)",
            "",
            f"`{fc['compare_command']}` ({fc.get('n_runs', 33)} runs): "
            f"{fc['compare_seconds']:.1f} s; `{fc['run_command']}`: {fc['run_seconds']:.1f} s; "
            f"ratio {fc['ratio']:.2f} (target <= 6). Best of each: the compare timed "
            f"{_seconds_list(fc.get('compare_seconds_each', [fc['compare_seconds']]))}, the "
            f"run {_seconds_list(fc.get('run_seconds_each', [fc['run_seconds']]))} "
            "(in the order run, compare, run, ...).",
        ]
        if "cpu_ratio" in fc:
            lines.append(
                f"CPU time (user + system): {fc['compare_cpu_seconds']:.1f} s against "
                f"{fc['run_cpu_seconds']:.1f} s, ratio {fc['cpu_ratio']:.2f}."
            )
        if fc.get("compare_train_seconds") and fc.get("run_train_seconds"):
            rest = fc["compare_seconds"] - fc["compare_train_seconds"]
            lines.append(
                f"Training (the runs' `train_seconds`: steps, validation, first-call tracing): "
                f"{fc['compare_train_seconds']:.1f} s of the compare, autobalance's 3 runs "
                f"{fc['compare_autobalance_train_seconds']:.1f} s of it; the rest (start-up, "
                f"data, evaluation, saving, the summary) {rest:.1f} s, "
                f"{rest / fc['n_runs']:.2f} s a run. One run: {fc['run_train_seconds']:.1f} s "
                f"of training, {fc['run_seconds'] - fc['run_train_seconds']:.1f} s the rest."
            )
    return lines


def _ingest_markdown(r: dict[str, Any]) -> list[str]:
    """CSV ingest and the peak memory of a paper-scale run."""
    ing = r["ingest"]
    return [
        "",
        f"## CSV ingest ({ing['file_mb']:.0f} MB CICIDS2017-format file, "
        f"{ing.get('measured_in', 'this process')}, best of the repetitions)",
        "",
        "| reader | seconds | MB/s |",
        "| --- | ---: | ---: |",
        f"| bare pandas.read_csv | {ing['pandas_read_csv_seconds']:.2f} | "
        f"{ing['pandas_mb_per_s']:.0f} |",
        f"| lossbench (load + preset + split + scale) | {ing['lossbench_seconds']:.2f} | "
        f"{ing['lossbench_mb_per_s']:.0f} |",
        f"| lossbench cached reload | {ing['cached_reload_seconds']:.3f} | "
        f"{ing['file_mb'] / ing['cached_reload_seconds']:.0f} |",
        "",
        f"Cached reload speed-up: {ing['cached_speedup']:.1f}x.",
        "",
        "Targets: lossbench >= 0.8x the throughput of bare pandas.read_csv and >= 100 MB/s; "
        "cached reload >= 10x faster than the first ingest.",
        "",
        "## Peak memory",
        "",
        f"`{r['peak_memory']['command']}`: {r['peak_memory']['peak_rss_mb']:.0f} MB peak RSS "
        f"(exit code {r['peak_memory']['exit_code']}; target < 2048 MB).",
        "",
    ]


def _issue35_markdown(r: dict[str, Any]) -> list[str]:
    """bench.md's size and tuning sections (full bench only)."""
    lines: list[str] = []
    size = r.get("size")
    if size:
        lines += [
            f"## The full release's size ({size['n_rows']:,} rows, {size['n_files']} "
            f"CICIDS2017-format files, {size['csv_mb']:.0f} MB of CSV)",
            "",
            f"Float32 feature matrix: {size['n_rows']:,} x {FULL_RELEASE_FEATURES} x 4 B = "
            f"{size['float32_matrix_mb']:.0f} MiB.",
            "",
            "| command | peak RSS (MB) | / float32 matrix | target |",
            "| --- | ---: | ---: | --- |",
            f"| `lossbench inspect` | {size['inspect']['peak_rss_mb']:.0f} | "
            f"{size['inspect_ratio']:.2f} | <= 2 |",
            f"| `lossbench run --epochs 1` (first run: array cache empty) | "
            f"{size['run']['peak_rss_mb']:.0f} | {size['run_ratio']:.2f} | <= 2.5 |",
            *(
                [
                    f"| `lossbench run --epochs 1 --no-cache` (for reference) | "
                    f"{size['run_no_cache']['peak_rss_mb']:.0f} | "
                    f"{size['run_no_cache_ratio']:.2f} | |",
                ]
                if "run_no_cache" in size
                else []
            ),
            "",
            "The default run parses the CSVs, writes the array cache and trains from its "
            "memory-mapped arrays: a split is resident while it is read (the training split during "
            "training, the validation and test splits when they are predicted). With `--no-cache` "
            "every split stays in the process's own memory for the whole run.",
            "",
            f"Epoch: {size['run_rows_per_second']:,.0f} training rows/s on "
            f"{size['run_train_rows']:,} rows{_features(size, 'run')} against "
            f"{size['small_rows_per_second']:,.0f} on {size['small']} "
            f"({size['small_train_rows']:,} rows{_features(size, 'small')}), ratio "
            f"{size['rows_per_second_ratio']:.2f} (target >= 0.8). Both: `run --loss ce "
            f"--epochs 1` (array cache empty), the first epoch (tracing included) from "
            f"{layout.HISTORY}.{_same_network(size)}",
            "",
        ]
    tuning = r.get("tuning")
    if tuning:
        p, u = tuning["pruned"], tuning["unpruned"]
        pruner = p["pruner"] or {}
        lines += [
            "## Tuning: pruned against --no-prune",
            "",
            f"`{p['command']}` (and the same with `--no-prune`); pruner: "
            f"{pruner.get('name')} ({pruner.get('n_startup_trials')} completed trial(s) first, "
            f"warm-up {pruner.get('n_warmup_steps')} epochs).",
            "",
            "Timed: the whole command, and its tuning phase (the trials' seconds from "
            f"{layout.TRIALS}, run one after the other); pruning acts on the tuning phase, and the "
            "target applies to it.",
            "",
            "| | whole command (s) | tuning phase (s) |",
            "| --- | ---: | ---: |",
            f"| pruned | {p['wall_seconds']:.1f} | {p['trial_seconds']:.1f} |",
            f"| unpruned | {u['wall_seconds']:.1f} | {u['trial_seconds']:.1f} |",
            f"| ratio | {tuning['wall_ratio']:.2f} | "
            f"{tuning['trial_seconds_ratio']:.2f} (target <= 0.5) |",
            "",
            "| method | pruned trials | epochs trained (pruned / unpruned) | chosen val macro-F1 "
            "pruned | unpruned | seed std of unpruned @tuned | within |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for m, um in u["methods"].items():
            pm = p["methods"][m]
            lines.append(
                f"| {m} | {pm['n_pruned']} | {pm['epochs_trained']} / {um['epochs_trained']} | "
                f"{pm['chosen_value']:.4f} | {um['chosen_value']:.4f} | "
                f"{um['tuned_val_macro_f1_seed_std']:.4f} | "
                f"{'yes' if tuning['chosen_within_seed_std'][m] else 'no'} |"
            )
        lines.append("")
    return lines
