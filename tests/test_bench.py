"""The benchmark's measuring tools, on tiny inputs. Timings are never asserted (SPEC 7): these tests
check that each figure is computed from what it claims to measure and reported faithfully."""

import json

import keras
import numpy as np
import pytest

from lossbench import bench
from lossbench.config import DataOptions
from lossbench.data import inspect_dataset, prepare
from lossbench.training.bilevel import carve_upper_split


def test_generated_csv_has_the_raw_cicids2017_format(tmp_path):
    path = bench.write_cicids_csv(tmp_path / "gen.csv", target_mb=1.0)
    raw = path.read_bytes()
    assert len(raw) >= 1_000_000
    header = raw.split(b"\n", 1)[0].decode().split(",")
    assert len(header) == 79
    assert header[0] == " Destination Port" and header[-1] == " Label"
    assert header.count(" Fwd Header Length") == 2
    assert b"Infinity" in raw
    assert b"Web Attack \x96 Brute Force" in raw  # the cp1252 dash of the real files
    # a strict UTF-8 read fails exactly as it does on the real files
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_generated_csv_goes_through_the_cicids2017_preset(tmp_path):
    path = bench.write_cicids_csv(tmp_path / "gen.csv", target_mb=0.5)
    info = inspect_dataset(DataOptions(data=str(path), cache=False))
    assert info["preset"] == "cicids2017"
    assert info["n_infinite"] > 0
    # 78 feature columns, the duplicated Fwd Header Length dropped, then the constant ones
    n_const = len(info["constant_columns"])
    assert info["n_features"] == 77 - n_const
    assert any("Web Attack" in name for name in info["raw_classes"])


def test_training_flops_count_dense_and_conv_layers():
    inputs = keras.Input((12, 1))
    x = keras.layers.Conv1D(4, 3, padding="same")(inputs)  # 12 positions x 3 taps x 1 x 4
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)  # 48 -> 5
    outputs = keras.layers.Dense(2)(x)  # 5 -> 2
    model = keras.Model(inputs, outputs)
    from lossbench.models import training_flops_per_sample

    forward = 2 * (12 * 3 * 1 * 4) + 2 * (48 * 5) + 2 * (5 * 2)
    assert training_flops_per_sample(model) == 3 * forward


def test_ingest_figures_are_consistent(tmp_path):
    path = bench.write_cicids_csv(tmp_path / "gen.csv", target_mb=0.5)
    res = bench.ingest_speed(path, reps=1, cache_dir=tmp_path / "cache", log=lambda m: None)
    mb = path.stat().st_size / 1e6
    assert res["file_mb"] == pytest.approx(mb)
    assert res["pandas_mb_per_s"] == pytest.approx(mb / res["pandas_read_csv_seconds"])
    assert res["lossbench_mb_per_s"] == pytest.approx(mb / res["lossbench_seconds"])
    assert res["ratio_to_pandas"] == pytest.approx(
        res["pandas_read_csv_seconds"] / res["lossbench_seconds"]
    )
    assert res["cached_speedup"] == pytest.approx(
        res["first_ingest_with_cache_write_seconds"] / res["cached_reload_seconds"]
    )
    assert list((tmp_path / "cache").iterdir())  # the cached reload really used the cache


def test_training_speed_times_every_loss_and_stock_keras():
    data = prepare(DataOptions(data="digits-lt"))
    logged = []
    res = bench.training_speed(data, ["ce", "dwb"], device="CPU", reps=1, log=logged.append)
    assert set(res["per_loss"]) == {"keras-stock-ce", "ce", "dwb"}
    assert res["n_train"] == len(data.y_train)
    # stock Keras, the reference, is timed twice a round: first and after the first half
    assert res["stock_epochs_per_round"] == 2
    timed = [m.split()[2].rstrip(":") for m in logged if m.startswith("  epoch 1 ")]
    assert timed == ["keras-stock-ce", "ce", "keras-stock-ce", "dwb"]
    stock = res["per_loss"]["keras-stock-ce"]
    assert len(stock["epoch_seconds"]) == 2
    for name, row in res["per_loss"].items():
        assert len(row["epoch_seconds"]) == (2 if name == "keras-stock-ce" else 1)
        assert min(row["epoch_seconds"]) > 0
        assert row["ratio_to_stock"] == pytest.approx(
            row["epoch_seconds_median"] / stock["epoch_seconds_median"]
        )
        assert row["rows_per_epoch"] == len(data.y_train)
        assert row["flops_per_epoch"] == pytest.approx(res["flops_per_epoch"])
        assert row["gflops"] == pytest.approx(
            res["flops_per_epoch"] / row["epoch_seconds_median"] / 1e9
        )
        assert "upper_level_flops_uncounted" not in row


def test_autobalance_gflops_count_the_rows_its_model_trains_on():
    """AutoBalance's model trains on the training split less its upper-level split: its FLOPs
    per epoch are those rows' (SPEC 4.3), flagged as leaving the upper-level steps out."""
    data = prepare(DataOptions(data="digits-lt"))
    res = bench.training_speed(data, ["autobalance"], device="CPU", reps=1, log=lambda m: None)
    row = res["per_loss"]["autobalance"]
    lower, upper = carve_upper_split(np.asarray(data.y_train), 0, data.n_classes)
    assert row["rows_per_epoch"] == len(lower) < len(data.y_train)
    assert row["flops_per_epoch"] == pytest.approx(
        res["flops_per_epoch"] * len(lower) / len(data.y_train)
    )
    assert row["upper_level_flops_uncounted"] is True


def test_precision_quality_reads_each_precisions_test_macro_f1(tmp_path):
    """What `make bench` runs on a machine with native bfloat16 (here emulated, on a tiny set)."""
    res = bench.precision_quality(
        DataOptions(data="digits-lt"), ["ce"], device="CPU", seeds=(0, 1), epochs=1,
        out=tmp_path, precision="mixed_bfloat16", log=lambda m: None,
    )  # fmt: skip
    row = res["per_loss"]["ce"]
    ref, low = row["float32_macro_f1"], row["mixed_bfloat16_macro_f1"]
    assert len(ref) == len(low) == 2 and all(0 < v <= 1 for v in ref + low)
    assert row["difference"] == pytest.approx(np.mean(low) - np.mean(ref))
    assert row["float32_seed_std"] == pytest.approx(np.std(ref, ddof=1))
    assert row["within_seed_std"] == (abs(row["difference"]) <= row["float32_seed_std"])


def test_peak_memory_reads_the_child_process(tmp_path):
    ok = bench.peak_memory_of_run(["losses", "--json"])
    assert ok["exit_code"] == 0 and ok["peak_rss_mb"] > 10
    bad = bench.peak_memory_of_run(["run", "--loss", "nope", "--out", str(tmp_path)])
    assert bad["exit_code"] == 2 and "nope" in bad["stderr_tail"]


def test_peak_memory_is_not_charged_with_the_parents_memory():
    ballast = np.ones(100_000_000)  # 800 MB resident in this (the parent) process
    res = bench.peak_memory_of_run(["--version"])
    assert ballast.sum() == 100_000_000
    assert res["exit_code"] == 0
    assert res["peak_rss_mb"] < 400, res


def _fake_result(**over):
    per_loss = {
        "keras-stock-ce": {"ratio_to_stock": 1.0, "fraction_of_peak": 0.35},
        "ce": {"ratio_to_stock": 0.9, "fraction_of_peak": 0.6},
        "dwb": {"ratio_to_stock": over.get("dwb_ratio", 1.05), "fraction_of_peak": 0.55},
    }
    return {
        "training": {"per_loss": per_loss},
        "ingest": {
            "ratio_to_pandas": over.get("ingest_ratio", 0.9),
            "lossbench_mb_per_s": 150.0,
            "cached_speedup": 40.0,
        },
        "peak_memory": {"peak_rss_mb": over.get("rss", 900.0), "exit_code": 0},
    }


def test_targets_report_the_worst_loss_and_each_threshold():
    met = bench.targets(_fake_result())
    assert all(row["met"] for row in met.values())
    assert met["epoch_time_vs_stock_max"]["loss"] == "dwb"
    assert met["training_fraction_of_peak_min"]["value"] == 0.55  # stock Keras is not counted
    assert met["training_fraction_of_peak_min"]["loss"] == "dwb"
    missed = bench.targets(_fake_result(dwb_ratio=1.2, ingest_ratio=0.7, rss=2100.0))
    assert not missed["epoch_time_vs_stock_max"]["met"]
    assert not missed["ingest_ratio_to_pandas"]["met"]
    assert not missed["peak_memory_mb"]["met"]
    assert missed["cached_reload_speedup"]["met"]


def test_the_fraction_of_peak_target_leaves_out_autobalance_whose_upper_steps_are_uncounted():
    r = _fake_result()
    r["training"]["per_loss"]["autobalance"] = {
        "ratio_to_stock": 0.8,
        "fraction_of_peak": 0.3,
        "upper_level_flops_uncounted": True,
    }
    met = bench.targets(r)["training_fraction_of_peak_min"]
    assert (met["value"], met["loss"], met["met"]) == (0.55, "dwb", True)
    r["training"]["per_loss"]["dwb"]["fraction_of_peak"] = 0.45
    assert not bench.targets(r)["training_fraction_of_peak_min"]["met"]


def test_bench_rejects_an_unknown_loss(cli, tmp_path):
    res = cli("bench", "--quick", "--losses", "ce,nope", "--out", tmp_path)
    assert res.code == 2
    assert "nope" in res.err and len(res.err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_quick_bench_writes_json_and_markdown(cli, tmp_path):
    res = cli(
        "bench", "--quick", "--losses", "ce", "--out", tmp_path, "--device", "cpu",
        "--compare-precision", "mixed_bfloat16",
    )  # fmt: skip
    assert res.code == 0, res.err
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    result = json.loads((folder / "bench.json").read_text())
    md = (folder / "bench.md").read_text()
    native = "mixed_bfloat16" in result["machine"]["native_precisions"]
    for name, row in result["targets"].items():
        assert name in md
        if name == "mixed_bfloat16_epoch_vs_float32_max" and not native:
            assert row["met"] is None  # emulated here: SPEC 7's target does not apply
        else:
            assert isinstance(row["met"], bool)
    assert set(result["training"]["per_loss"]) == {"keras-stock-ce", "ce"}
    assert set(result["training"]["per_precision"]["mixed_bfloat16"]) == {"ce"}
    assert len(result["precision_quality"]["per_loss"]["ce"]["float32_macro_f1"]) == 3
    assert result["fixed_cost"]["ratio"] > 0 and "--seeds 0,1,2" in md
    fc = result["fixed_cost"]  # the compare's training time, read back from its runs
    assert 0 < fc["compare_train_seconds"] < fc["compare_seconds"]
    assert 0 < fc["run_train_seconds"] < fc["run_seconds"]
    assert "of the compare, autobalance's 3 runs" in md
    assert result["peak_memory"]["exit_code"] == 0
    peak = result["matmul_peak"]  # measured before and after the epochs; the best is the peak
    assert len(peak["gflops_each"]) == 2 and peak["gflops"] == max(peak["gflops_each"])
    ce = result["training"]["per_loss"]["ce"]
    assert ce["fraction_of_peak"] == pytest.approx(ce["gflops"] / peak["gflops"])


def test_ingest_in_a_child_process_reports_the_same_figures(tmp_path):
    path = bench.write_cicids_csv(tmp_path / "gen.csv", target_mb=0.5)
    here = bench.ingest_speed(path, reps=1, cache_dir=tmp_path / "c1", log=lambda m: None)
    child = bench.ingest_speed_in_child(path, reps=1, cache_dir=tmp_path / "c2", log=lambda m: None)
    assert child["measured_in"] == "a fresh child process"
    assert set(child) == set(here) | {"measured_in"}
    assert child["file_mb"] == here["file_mb"]
    assert list((tmp_path / "c2").iterdir())  # the child used the cache folder it was given
    with pytest.raises(RuntimeError, match="ingest benchmark failed"):
        bench.ingest_speed_in_child(tmp_path / "missing.csv", reps=1, cache_dir=tmp_path / "c3")


def test_training_speed_times_each_precision_against_float32():
    data = prepare(DataOptions(data="digits-lt"))
    res = bench.training_speed(
        data,
        ["ce"],
        device="CPU",
        reps=1,
        compare_precision="mixed_bfloat16",
        log=lambda m: None,
    )
    assert set(res["per_loss"]) == {"keras-stock-ce", "ce"}
    assert res["precision"] == "float32"
    row = res["per_precision"]["mixed_bfloat16"]["ce"]
    stock = res["per_loss"]["keras-stock-ce"]["epoch_seconds_median"]
    own = res["per_loss"]["ce"]["epoch_seconds_median"]
    assert row["ratio_to_stock"] == pytest.approx(row["epoch_seconds_median"] / stock)
    assert row["ratio_to_own_float32"] == pytest.approx(row["epoch_seconds_median"] / own)
    # stock Keras under the same precision, the reference the target is read against
    ref = res["stock_per_precision"]["mixed_bfloat16"]
    assert ref["epoch_seconds_median"] > 0
    assert ref["ratio_to_stock"] == pytest.approx(ref["epoch_seconds_median"] / stock)
    assert "keras-stock-ce" not in res["per_precision"]["mixed_bfloat16"]  # not a target row


def test_precision_and_fixed_cost_targets():
    r = _fake_result()
    r["training"]["per_loss"]["autobalance"] = {"ratio_to_stock": 1.5, "fraction_of_peak": 0.5}
    r["training"]["per_precision"] = {
        "mixed_bfloat16": {
            "ce": {"ratio_to_stock": 0.6, "ratio_to_own_float32": 0.66},
            "autobalance": {"ratio_to_stock": 0.9, "ratio_to_own_float32": 0.7},
        }
    }
    r["precision_quality"] = {
        "precision": "mixed_bfloat16",
        "per_loss": {
            "ce": {"difference": 0.01, "float32_seed_std": 0.02, "within_seed_std": True},
            "dwb": {"difference": -0.03, "float32_seed_std": 0.02, "within_seed_std": False},
        },
    }
    r["fixed_cost"] = {"ratio": 5.0}
    t = bench.targets(r)
    assert t["epoch_time_vs_stock_max"]["loss"] == "dwb"  # autobalance has its own target
    assert t["autobalance_epoch_vs_stock"]["met"]
    bf16 = t["mixed_bfloat16_epoch_vs_float32_max"]
    assert bf16["loss"] == "autobalance" and bf16["value"] == 0.7 and bf16["met"]
    quality = t["mixed_bfloat16_macro_f1_difference_over_seed_std_max"]
    assert quality["loss"] == "dwb" and quality["value"] == pytest.approx(1.5)
    assert not quality["met"]
    assert t["fixed_cost_ratio_33_runs_over_one"]["met"]
    r["fixed_cost"]["ratio"] = 6.5
    assert not bench.targets(r)["fixed_cost_ratio_33_runs_over_one"]["met"]


def _full_result() -> dict:
    """A complete bench result (made-up figures) as `run_bench` assembles it."""
    r = _fake_result()
    timing = {"epoch_seconds_median": 1.0, "gflops": 10.0}
    for row in r["training"]["per_loss"].values():
        row.update(timing)
    bf16 = {"ce": {**timing, "ratio_to_stock": 0.6, "ratio_to_own_float32": 0.66}}
    r["training"].update(
        n_train=1000, batch_size=256, reps=3, jit_compile=False, precision="float32",
        per_precision={"mixed_bfloat16": bf16},
        stock_per_precision={"mixed_bfloat16": {
            "epoch_seconds_median": 0.8, "ratio_to_stock": 0.8, "ratio_to_own_float32": 0.8,
        }},
    )  # fmt: skip
    r["precision_quality"] = {
        "precision": "mixed_bfloat16", "dataset": "synthetic-cicids", "sample_frac": 0.25,
        "epochs": 5, "seeds": [0, 1, 2],
        "per_loss": {"ce": {
            "difference": 0.01, "float32_seed_std": 0.02, "within_seed_std": True,
            "float32_mean": 0.8, "mixed_bfloat16_mean": 0.81,
        }},
    }  # fmt: skip
    r["fixed_cost"] = {
        "ratio": 5.0, "compare_seconds": 50.0, "run_seconds": 10.0, "n_runs": 33,
        "compare_command": "lossbench compare --losses all --seeds 0,1,2",
        "run_command": "lossbench run --loss ce",
    }  # fmt: skip
    r["ingest"].update(
        file_mb=200.0, pandas_read_csv_seconds=1.0, pandas_mb_per_s=200.0,
        lossbench_seconds=1.2, cached_reload_seconds=0.05,
    )  # fmt: skip
    r["peak_memory"]["command"] = "lossbench run --loss dwb"
    r.update(
        date="2026-11-23", quick=False, matmul_peak={"gflops": 30.0, "n": 2048},
        machine={"cpu": "cpu", "cores": 2, "memory_gb": 8, "device": "CPU",
                 "native_precisions": ["mixed_bfloat16"]},
        versions={"tensorflow": "2.21", "keras": "3"},
        compare_precision="mixed_bfloat16", compare_precision_requested="auto",
    )  # fmt: skip
    r["targets"] = bench.targets(r)
    return r


def test_bench_md_states_each_target_beside_its_figure():
    md = bench.to_markdown(_full_result())
    sections = {part.split("\n", 1)[0]: part for part in md.split("\n## ")}

    def section(start: str) -> str:
        (text,) = [v for k, v in sections.items() if k.startswith(start)]
        return text

    assert "<= 1.10x stock Keras" in section("Training epoch, 1D-CNN")
    assert "autobalance <= 1.6x" in section("Training epoch, 1D-CNN")
    assert "<= 0.75x float32 stock Keras" in section("Training epoch under mixed_bfloat16")
    assert "autobalance <= 0.75x its own float32" in section("Training epoch under mixed_bfloat16")
    reference = "| keras-stock-ce under mixed_bfloat16 (reference) | 0.80 | 0.800 | 0.800 |"
    assert reference in section("Training epoch under mixed_bfloat16")
    assert "seed-to-seed standard deviation" in section("Test macro-F1")
    assert "ratio 5.00 (target <= 6)" in section("Fixed cost")
    assert ">= 0.8x" in section("CSV ingest") and ">= 10x" in section("CSV ingest")
    assert "target < 2048 MB" in section("Peak memory")
    targets = section("Targets")
    for name in ("mixed_bfloat16_epoch_vs_float32_max", "fixed_cost_ratio_33_runs_over_one",
                 "mixed_bfloat16_macro_f1_difference_over_seed_std_max"):  # fmt: skip
        (line,) = [ln for ln in targets.splitlines() if ln.startswith(f"| {name}")]
        assert "| yes |" in line


def test_bench_md_says_how_the_epochs_were_interleaved_and_what_autobalance_counts():
    r = _full_result()
    r["training"]["stock_epochs_per_round"] = 2
    r["training"]["per_loss"]["autobalance"] = {
        "epoch_seconds_median": 0.9, "ratio_to_stock": 0.9, "gflops": 8.0,
        "fraction_of_peak": 0.27, "rows_per_epoch": 800, "upper_level_flops_uncounted": True,
    }  # fmt: skip
    md = bench.to_markdown(r)
    assert "each of 3 rounds times every loss once; stock Keras" in md
    assert "its median is of 6 epochs" in md
    assert "| autobalance | 0.90 | 0.900 | 8.0 * | 27.0% * |" in md
    assert "\\* autobalance: the model's FLOPs on the 800 rows" in md
    older = _full_result()  # a bench.json from before stock Keras was timed twice a round
    assert "each of 3 rounds times every loss once." in bench.to_markdown(older)
    assert "Matmul peak: 30.0 GFLOP/s (float32, 2048x2048)." in bench.to_markdown(older)
    r["matmul_peak"] = {"n": 2048, "gflops": 30.0, "gflops_each": [27.5, 30.0]}
    assert "before the epochs and one after them: 27.5 and 30.0" in bench.to_markdown(r)


@pytest.mark.parametrize(
    ("args", "precision", "compared"),
    [
        ((), "float32", "auto"),
        (("--compare-precision", "none"), "float32", "none"),
        (("--precision", "mixed_bfloat16", "--compare-precision", "mixed_float16"),
         "mixed_bfloat16", "mixed_float16"),
    ],
)  # fmt: skip
def test_bench_precision_defaults_to_float32_and_the_compared_one_to_auto(
    cli, tmp_path, monkeypatch, args, precision, compared
):
    seen = {}

    def fake_run_bench(out, **kwargs):
        seen.update(kwargs)
        folder = out / "stamp"
        folder.mkdir(parents=True)
        (folder / "bench.md").write_text("# bench")
        return {"folder": str(folder)}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    res = cli("bench", "--quick", "--out", tmp_path, "--device", "cpu", *args)
    assert res.code == 0, res.err
    assert (seen["precision"], seen["compare_precision"]) == (precision, compared)


# /proc/cpuinfo excerpts: the AVX2-only EPYC of the development machine, an AVX512-BF16 one, a
# Sapphire Rapids (AMX) and an Arm Neoverse V1 (BF16)
AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2 sha_ni\nmodel name\t: AMD EPYC\n"
AVX512_BF16 = "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n"
AMX = "flags\t\t: avx512f avx512_fp16 amx_bf16 amx_tile amx_int8 amx_fp16\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize(
    ("cpuinfo", "device", "native"),
    [
        (AVX2_ONLY, "CPU", []),
        (AVX512_BF16, "CPU", ["mixed_bfloat16"]),
        (AMX, "CPU", ["mixed_bfloat16", "mixed_float16"]),
        (ARM_BF16, "CPU", ["mixed_bfloat16"]),
        (AVX2_ONLY, "GPU:0 (NVIDIA H100)", ["mixed_bfloat16", "mixed_float16"]),
        ("", "CPU", []),
    ],
)
def test_the_mixed_precisions_a_device_computes_natively(cpuinfo, device, native):
    flags = bench.cpu_flags(cpuinfo)
    assert ("avx2" in flags) == ("avx2" in cpuinfo)
    assert bench.native_precisions(device, flags) == native


@pytest.mark.parametrize(
    ("requested", "native", "compared"),
    [
        ("auto", [], None),  # emulated: not timed by default
        ("auto", ["mixed_bfloat16"], "mixed_bfloat16"),
        ("auto", ["mixed_bfloat16", "mixed_float16"], "mixed_bfloat16"),
        ("mixed_bfloat16", [], "mixed_bfloat16"),  # asked for: timed anyway
        ("mixed_float16", ["mixed_bfloat16"], "mixed_float16"),
        ("none", ["mixed_bfloat16"], None),
        ("float32", ["mixed_bfloat16"], None),
        (None, ["mixed_bfloat16"], None),
    ],
)
def test_compare_precision_auto_is_bfloat16_only_where_native(requested, native, compared):
    assert bench.resolve_compare_precision(requested, native) == compared


def test_the_mixed_precision_epoch_target_does_not_apply_where_the_precision_is_emulated():
    r = _full_result()  # bf16 epochs at 0.6x stock Keras: met where native
    assert r["targets"]["mixed_bfloat16_epoch_vs_float32_max"]["met"] is True
    r["machine"]["native_precisions"] = []
    r["compare_precision_requested"] = "mixed_bfloat16"
    r["targets"] = bench.targets(r)
    row = r["targets"]["mixed_bfloat16_epoch_vs_float32_max"]
    assert row["met"] is None and row["value"] == pytest.approx(0.6)
    # the quality target still applies: the values must hold under any precision
    assert r["targets"]["mixed_bfloat16_macro_f1_difference_over_seed_std_max"]["met"] is True
    md = bench.to_markdown(r)
    (line,) = [ln for ln in md.splitlines() if ln.startswith("| mixed_bfloat16_epoch_vs")]
    assert line.endswith("| n/a |") and "| 0.600 |" in line
    assert "emulated on this CPU" in md and "does not apply here" in md
    r["training"]["per_precision"]["mixed_bfloat16"]["ce"]["ratio_to_stock"] = 0.9
    assert bench.targets(r)["mixed_bfloat16_epoch_vs_float32_max"]["met"] is None


def test_bench_md_says_why_no_mixed_precision_was_compared():
    r = _full_result()
    assert "mixed_bfloat16 compared with float32 (this CPU computes it natively)" in (
        bench.to_markdown(r)
    )
    del r["training"]["per_precision"], r["training"]["stock_per_precision"]
    del r["precision_quality"]
    r["machine"]["native_precisions"] = []
    r["compare_precision"] = None
    r["targets"] = bench.targets(r)
    assert not any(name.startswith("mixed_") for name in r["targets"])
    md = bench.to_markdown(r)
    assert "Mixed precision: not compared (`--compare-precision auto`)" in md
    assert "no native bfloat16" in md and "--compare-precision mixed_bfloat16" in md
    assert "Training epoch under" not in md
    r["compare_precision_requested"] = "none"
    assert "not compared (`--compare-precision none`)" in bench.to_markdown(r)


def test_bench_rejects_an_unknown_compare_precision(cli, tmp_path):
    res = cli("bench", "--compare-precision", "float8", "--out", tmp_path / "b")
    assert res.code == 2
    assert "--compare-precision" in res.err and len(res.err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_fixed_cost_times_one_run_before_and_after_the_compare(monkeypatch, tmp_path):
    calls = []
    timings = iter([(99.0, 99.0), (10.0, 8.0), (66.0, 50.0), (12.0, 12.0)])

    def fake(args, env):
        calls.append(args[0])
        return next(timings)

    monkeypatch.setattr(bench.speed, "_timed_command", fake)
    res = bench.fixed_cost(device="CPU", out=tmp_path, repeats=1, log=lambda m: None)
    assert calls == ["run", "run", "compare", "run"]  # the first run only fills the cache
    assert res["run_seconds_each"] == [10.0, 12.0] and res["run_seconds"] == 10.0
    assert res["compare_seconds_each"] == [66.0]
    assert res["ratio"] == pytest.approx(66.0 / 10.0)
    assert res["cpu_ratio"] == pytest.approx(50.0 / 8.0)
    assert res["n_runs"] == 33 and "--seeds 0,1,2" in res["compare_command"]
    assert res["compare_train_seconds"] == 0 and res["run_train_seconds"] is None  # no runs


def test_fixed_cost_takes_the_best_of_repeated_compares_and_runs(monkeypatch, tmp_path):
    """run, compare, run, compare, run: each command's least-disturbed sample (timeit's rule);
    the training split comes from the best compare's own results folder."""
    calls = []
    timings = iter(
        [(99.0, 99.0), (10.0, 9.0), (70.0, 52.0), (9.0, 8.5), (60.0, 55.0), (11.0, 10.0)]
    )

    def fake(args, env):
        calls.append((args[0], args[-1]))
        return next(timings)

    monkeypatch.setattr(bench.speed, "_timed_command", fake)
    monkeypatch.setattr(
        bench.speed,
        "_train_seconds",
        lambda folder: [("ce", 40.0)] if folder.name == "compare1" else [],
    )
    res = bench.fixed_cost(device="CPU", out=tmp_path, repeats=2, log=lambda m: None)
    assert [c for c, _ in calls] == ["run", "run", "compare", "run", "compare", "run"]
    assert calls[2][1] != calls[4][1]  # each compare writes its own folder
    assert res["compare_seconds_each"] == [70.0, 60.0] and res["compare_seconds"] == 60.0
    assert res["run_seconds_each"] == [10.0, 9.0, 11.0] and res["run_seconds"] == 9.0
    assert res["ratio"] == pytest.approx(60.0 / 9.0)
    assert res["cpu_ratio"] == pytest.approx(52.0 / 8.5)
    assert res["compare_train_seconds"] == 40.0


def test_timed_command_reports_wall_and_cpu_seconds(tmp_path):
    wall, cpu = bench._timed_command(["losses", "--json"], {})
    assert wall > 0 and cpu > 0
    with pytest.raises(RuntimeError, match="nope"):
        bench._timed_command(["run", "--loss", "nope", "--out", str(tmp_path)], {})


# ----------------------------------------------------------------------------------------------
# issue 35: the full release's size, pruned tuning


def _size_and_tuning(run_mb: float, inspect_mb: float, rows_ratio: float) -> dict:
    matrix = 2_800_000 * 77 * 4 / 2**20
    size = {
        "n_rows": 2_800_000, "n_files": 8, "csv_mb": 1900.0, "float32_matrix_mb": matrix,
        "inspect": {"peak_rss_mb": inspect_mb, "exit_code": 0},
        "inspect_ratio": inspect_mb / matrix,
        "run": {"peak_rss_mb": run_mb, "exit_code": 0}, "run_ratio": run_mb / matrix,
        "run_train_rows": 1_680_000, "run_rows_per_second": 1000.0 * rows_ratio,
        "small": "synthetic-cicids", "small_train_rows": 54_688, "small_rows_per_second": 1000.0,
        "rows_per_second_ratio": rows_ratio,
    }  # fmt: skip

    def mode(wall: float, value: float) -> dict:
        method = {
            "chosen_value": value, "n_pruned": 3, "epochs_trained": 100, "trial_seconds": wall,
            "tuned_val_macro_f1_seed_std": 0.01,
        }  # fmt: skip
        return {
            "command": "lossbench compare --tune 8", "wall_seconds": wall, "trial_seconds": wall,
            "pruner": {"name": "MedianPruner", "n_warmup_steps": 5}, "methods": {"ce": method},
        }  # fmt: skip

    tuning = {"pruned": mode(40.0, 0.905), "unpruned": mode(100.0, 0.9)}
    tuning.update(wall_ratio=0.4, trial_seconds_ratio=0.4, chosen_within_seed_std={"ce": True})
    return {"size": size, "tuning": tuning}


def test_size_and_tuning_targets_follow_the_figures():
    met = bench._issue35_targets(_size_and_tuning(run_mb=2000, inspect_mb=1500, rows_ratio=0.9))
    assert all(t["met"] for t in met.values()) and len(met) == 5
    assert met["size_run_peak_over_float32_matrix"]["value"] == pytest.approx(2000 / 822.52, 1e-4)
    missed = bench._issue35_targets(_size_and_tuning(run_mb=2100, inspect_mb=1700, rows_ratio=0.7))
    assert not missed["size_run_peak_over_float32_matrix"]["met"]  # 2.55x the matrix
    assert not missed["size_inspect_peak_over_float32_matrix"]["met"]  # 2.07x
    assert not missed["size_epoch_rows_per_second_vs_small"]["met"]
    assert bench._issue35_targets({}) == {}  # a quick bench has neither


def test_bench_md_shows_the_size_and_tuning_figures_beside_their_targets():
    r = {**_full_result(), **_size_and_tuning(run_mb=2000, inspect_mb=1500, rows_ratio=0.9)}
    md = bench.to_markdown(r)
    row = "| `lossbench run --epochs 1` (first run: array cache empty) | 2000 | 2.43 | <= 2.5 |"
    assert row in md
    assert "--no-cache` (for reference)" not in md  # not measured: no row
    size = r["size"]
    size.update(run_no_cache={"peak_rss_mb": 2300.0, "exit_code": 0}, run_no_cache_ratio=2.8)
    md = bench.to_markdown(r)
    assert "| `lossbench run --epochs 1 --no-cache` (for reference) | 2300 | 2.80 | |" in md
    assert "| `lossbench inspect` | 1500 | 1.82 | <= 2 |" in md
    assert "ratio 0.90 (target >= 0.8)" in md
    assert "features" not in md.split("ratio 0.90")[0].split("Epoch:")[-1]  # not recorded then
    assert "both train the same network" not in md  # not shown unless recorded
    size.update(run_features=66, small_features=66)
    md = bench.to_markdown(r)
    assert "1,680,000 rows, 66 features against 1,000 on synthetic-cicids (54,688 rows, 66" in md
    assert "both train the same network: the ratio compares sizes" in md
    assert "| ratio | 0.40 | 0.40 (target <= 0.5) |" in md
    assert "| ce | 3 | 100 / 100 | 0.9050 | 0.9000 | 0.0100 | yes |" in md


def test_generated_files_hold_exactly_the_rows_asked_for(tmp_path):
    path = bench.write_cicids_csv(tmp_path / "d.csv", 0, n_rows=20_003)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1 + 20_003 and lines[1] == lines[20_001]  # the block repeats


def test_the_full_release_folder_trains_the_small_sets_network(tmp_path):
    """The size epoch's ratio compares sizes: the generated folder's columns that synthetic-cicids
    leaves out as constant are all zero there, so the preset drops them and the two sets train
    the same network on the same features (the 78 columns less 3 flag columns gave 74)."""
    import pandas as pd

    from lossbench.bench.size import SMALL_SET_CONSTANT
    from lossbench.data.builtin import SYNTHETIC_FEATURES

    folder = bench.write_cicids_folder(tmp_path / "release", n_rows=3_000, n_files=3)
    day = pd.read_csv(folder / "day1.csv", encoding="cp1252")
    day.columns = [c.strip() for c in day.columns]
    zero = sorted(c for c in day.columns[:-1] if (day[c] == 0).all())
    assert zero == sorted(SMALL_SET_CONSTANT) and len(zero) == 11
    opts = DataOptions(data=str(folder), cache=False)
    big, small = prepare(opts), prepare(DataOptions(data="synthetic-cicids", cache=False))
    assert big.n_features == small.n_features == len(SYNTHETIC_FEATURES) == 66
    assert list(big.feature_names) == list(small.feature_names)
