"""Tests for srkit.bench: FLOP counts, the table's columns and the peaks (no timing)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from srkit import bench, bench_train
from srkit import layers as srkit_layers


def test_conv_flops_counts_a_known_convolution():
    inputs = keras.Input(shape=(None, None, 3))
    outputs = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    model = keras.Model(inputs, outputs)
    assert bench.conv_flops(model, 10, 12) == 2 * 3 * 3 * 3 * 8 * 10 * 12


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_peaks_are_positive_rates(dtype):
    matmul = bench.matmul_gflops(size=64, repeats=1, dtype=dtype)
    assert set(matmul) == ({"keras", "numpy"} if dtype == "float32" else {"keras"})
    assert all(value > 0 and math.isfinite(value) for value in matmul.values())
    assert bench.conv_gflops((1, 8, 8, 4), repeats=1, dtype=dtype) > 0


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_measure_model_runs_in_the_requested_precision(precision, monkeypatch):
    built = []
    build = bench.models.build
    monkeypatch.setattr(
        bench.models, "build", lambda name: built.append(build(name)) or built[-1]
    )
    row = bench.measure_model(
        "simple_model_nearest", batch_size=2, size=16, warmup=1, precision=precision
    )
    assert row["precision"] == precision and row["jit"] == "auto"
    assert row["gflop_per_image"] > 0 and row["train_img_s"] > 0
    assert keras.config.dtype_policy().name == "float32"  # restored
    compute = {layer.dtype_policy.compute_dtype for layer in built[0].layers[1:]}
    assert compute == {"float32" if precision == "float32" else "bfloat16"}


def test_run_benchmark_relates_each_row_to_its_own_precision(monkeypatch):
    fake_peaks = {
        "matmul_float32": 100.0,
        "matmul_numpy": 90.0,
        "conv_float32": 80.0,
        "matmul_bfloat16": 400.0,
        "conv_bfloat16": 300.0,
    }
    monkeypatch.setattr(bench, "peaks", lambda: fake_peaks)
    table, peak = bench.run_benchmark(
        ["simple_model_nearest"], 2, 16, 1, 1, progress=False, jits=["auto", "on"]
    )
    assert peak == fake_peaks
    assert list(table["precision"]) == ["float32", "float32"] + ["mixed_bfloat16"] * 2
    assert list(table["peak_gflop_s"]) == [100.0, 100.0, 400.0, 400.0]
    np.testing.assert_allclose(
        table["train_pct_peak"], 100 * table["train_gflop_s"] / table["peak_gflop_s"]
    )


def test_unknown_settings_are_refused_before_any_work():
    with pytest.raises(ValueError, match="fp16"):
        bench.run_benchmark(["simple_model_nearest"], precisions=["fp16"])
    with pytest.raises(ValueError, match="jit"):
        bench.measure_model("simple_model_nearest", jit="sometimes")


def test_synthetic_photo_is_a_seeded_8bit_image():
    photo = bench.synthetic_photo(30, 40, seed=1)
    assert photo.shape == (30, 40, 3) and photo.dtype == np.uint8
    assert photo.std() > 10  # shading, edges and noise, not a flat field
    np.testing.assert_array_equal(photo, bench.synthetic_photo(30, 40, seed=1))


def test_upscale_figures_relate_the_command_to_the_matmul(monkeypatch, tmp_path):
    model_file = tmp_path / "m.keras"
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(48, 3, padding="same")(inputs)
    high = srkit_layers.DepthToSpace(4, name="high_upsample")(outputs)
    keras.Model(inputs, high).save(model_file)
    runs = iter([{"seconds": 8.0, "user_s": 14.0, "system_s": 1.0}, {"seconds": 3.0}])
    monkeypatch.setattr(bench, "_run_upscale", lambda *args: next(runs))
    rates = iter([{"keras": 90.0}, {"keras": 110.0}])
    monkeypatch.setattr(bench, "matmul_gflops", lambda repeats: next(rates))
    found = bench.measure_upscale(20, 30, 4, model_file)
    assert found["gflop"] == 2 * 9 * 3 * 48 * 20 * 30 / 1e9
    assert found["matmul_mean"] == 100.0 and found["startup_s"] == 3.0
    assert found["share"] == pytest.approx(found["gflop"] / 8.0 / 100.0)
    assert found["predict_share"] == pytest.approx(found["gflop"] / 5.0 / 100.0)
    assert all(key in found for key in ("load_upscale", "load_matmul_after"))


@pytest.mark.parametrize(
    "module, argv, named",
    [
        (bench, ["--models", "no_such_model"], "'no_such_model'"),
        (bench, ["--models", "dts_model", "--steps", "0"], "--steps"),
        (bench, ["--upscale", "big"], "--upscale"),
        (bench_train, ["--models", "no_such_model"], "no_such_model"),
        (bench_train, ["--precisions", "fp16", "--batch-size", "0"], "fp16"),
        (bench_train, ["--fit", "--rounds", "0"], "--rounds must be at least 1"),
    ],
)
def test_a_bad_setting_is_one_line_with_exit_code_2(module, argv, named, capsys):
    assert module.main(argv) == 2
    out, err = capsys.readouterr()
    prog = module.__name__
    assert out == "" and err.startswith(f"{prog}: error: ") and named in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bench_train_runs_on_the_default_patch_source(tmp_path, capsys):
    # The default sample split streams windows (no x array): the tool must draw
    # its batches, as training does.
    argv = ["--models", "simple_model_nearest", "--precisions", "float32"]
    argv += ["--steps", "1", "--batch-size", "2", "--cache-dir", str(tmp_path)]
    assert bench_train.main(argv) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("simple_model"))
    assert row.split()[1] == "38915" and float(row.split()[2]) > 0


def test_bench_train_fit_compares_fit_with_train_on_batch(tmp_path, capsys):
    argv = ["--fit", "--models", "simple_model_nearest", "--steps", "2"]
    argv += ["--batch-size", "2", "--window", "16", "--cache-dir", str(tmp_path)]
    assert bench_train.main([*argv, "--rounds", "2"]) == 0
    out, err = capsys.readouterr()
    assert "16 px inputs" in out and "the fastest of 2 rounds" in out
    assert "3 intervals of 2 steps" in out
    progress = next(line for line in err.splitlines() if "simple_model" in line)
    assert "ratio" in progress and "load average" in progress
    header = next(line for line in out.splitlines() if "fit s/step" in line)
    assert "train_on_batch s/step" in header and "fit/train_on_batch" in header
    row = next(line for line in out.splitlines() if line.startswith("simple_model"))
    fit_seconds, batch_seconds, ratio = (float(v) for v in row.split()[2:5])
    assert fit_seconds > 0 and batch_seconds > 0
    assert abs(ratio - fit_seconds / batch_seconds) <= 0.01 * ratio
