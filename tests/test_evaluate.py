"""Tests of srkit.evaluate: tables, bicubic baseline, benchmark, JSON files.

Also the tiled prediction of srkit.tiles with this file's two-output model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from srkit import (
    evaluate,
    images,
    layout,
    metrics,
    models,
    records,
    tiles,
    train,
    windows,
)

N_IMAGES = 5
# Published bicubic PSNR (dB) on the Y channel, shave = scale (e.g. Kim et al. 2016).
PUBLISHED_BICUBIC = {("Set5", 2): 33.66, ("Set5", 4): 28.42}
PUBLISHED_BICUBIC |= {("Set14", 2): 30.24, ("Set14", 4): 26.00}
BENCHMARK_TOLERANCE_DB = 0.15


def shared_data_dir() -> Path:
    """The shared data folder: env SRKIT_SHARED_DATA or <repo>/../shared/data."""
    configured = os.environ.get("SRKIT_SHARED_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_model(name: str = "tiny", two_outputs: bool = True, seed: int = 0):
    """A small fully convolutional model (receptive field radius 2 input pixels)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    features = keras.layers.Conv2D(4, 3, padding="same")(features)
    upsampled = keras.layers.UpSampling2D(2)(features)
    low = keras.layers.Conv2D(3, 1, name="low_upsample", bias_initializer="ones")(
        upsampled
    )
    outputs = [low]
    if two_outputs:
        outputs.append(
            keras.layers.Conv2D(3, 1, name="high_upsample")(
                keras.layers.UpSampling2D(2)(low)
            )
        )
    return keras.Model(inputs, outputs, name=name)


def make_subset(count: int = N_IMAGES, seed: int = 0) -> windows.Subset:
    rng = np.random.default_rng(seed)
    high = rng.random((count, 288, 288, 3), dtype=np.float32)
    return windows.Subset(
        x=rng.random((count, 72, 72, 3), dtype=np.float32),
        y2=high[:, ::2, ::2].copy(),
        y4=high,
        names=[f"crop_{i}" for i in range(count)],
    )


@pytest.fixture(scope="module")
def subset():
    return make_subset()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def evaluation(model, subset):
    return evaluate.evaluate(model, subset, batch_size=2)


# ------------------------------------------------------------------------ evaluate


def test_table_has_model_and_bicubic_rows_per_scale(evaluation):
    table = evaluation.table
    assert list(table.columns) == ["model", "scale", "mse", "mae", "psnr", "ssim"]
    assert list(zip(table["model"], table["scale"], strict=True)) == [
        ("tiny", 2),
        ("bicubic", 2),
        ("tiny", 4),
        ("bicubic", 4),
    ]
    assert table["scale"].dtype == np.int64
    assert evaluation.model_name == "tiny"
    assert evaluation.n_images == N_IMAGES
    assert evaluation.outputs == ("low_upsample", "high_upsample")
    assert "tiny" in evaluation._repr_html_()


def test_values_equal_image_metrics_on_same_predictions(evaluation, model, subset):
    low, high = (np.asarray(o) for o in model(subset.x, training=False))
    for scale, prediction, target in ((2, low, subset.y2), (4, high, subset.y4)):
        expected = metrics.image_metrics(target, np.clip(prediction, 0, 1))
        rows = evaluation.per_image[evaluation.per_image["scale"] == scale]
        for column in evaluate.METRICS:
            np.testing.assert_allclose(rows[column], expected[column], rtol=1e-5)
        mean = evaluation.table.query("model == 'tiny' and scale == @scale")
        for column in evaluate.METRICS:
            assert mean[column].item() == pytest.approx(expected[column].mean(), 1e-5)


def test_bicubic_rows_are_independent_of_the_model(evaluation, subset):
    other = evaluate.evaluate(tiny_model("other", seed=7), subset, batch_size=3)
    ours = evaluation.table.query("model == 'bicubic'").reset_index(drop=True)
    theirs = other.table.query("model == 'bicubic'").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)
    model_rows = evaluation.table.query("model != 'bicubic'").reset_index(drop=True)
    assert not np.allclose(model_rows["psnr"], ours["psnr"])
    bicubic = np.clip(images.bicubic_upscale(subset.x, 2), 0, 1)
    expected = metrics.image_metrics(subset.y2, bicubic)
    assert ours.loc[0, "psnr"] == pytest.approx(expected["psnr"].mean(), 1e-6)


def test_per_image_rows_count_images_times_outputs(evaluation, subset):
    per_image = evaluation.per_image
    assert list(per_image.columns) == evaluate.PER_IMAGE_COLUMNS
    assert len(per_image) == N_IMAGES * 2
    assert set(per_image["model"]) == {"tiny"}
    assert list(per_image.query("scale == 2")["name"]) == subset.names
    assert len(evaluation.bicubic_per_image) == N_IMAGES * 2

    single = evaluate.evaluate(tiny_model("one", two_outputs=False), subset, name="s")
    assert len(single.per_image) == N_IMAGES
    assert set(single.table["scale"]) == {2}
    assert list(single.table["model"]) == ["s", "bicubic"]


def test_bicubic_only_evaluation(evaluation, subset):
    baseline = evaluate.evaluate(None, subset)
    assert baseline.model_name == "bicubic"
    assert list(baseline.table["model"]) == ["bicubic", "bicubic"]
    assert list(baseline.table["scale"]) == [2, 4]
    assert baseline.per_image.empty
    assert list(baseline.per_image.columns) == evaluate.PER_IMAGE_COLUMNS
    expected = evaluation.table.query("model == 'bicubic'").reset_index(drop=True)
    pd.testing.assert_frame_equal(baseline.table, expected)


def test_evaluate_rejects_bad_input(model, subset):
    with pytest.raises(ValueError, match="batch_size"):
        evaluate.evaluate(model, subset, batch_size=0)
    empty = windows.Subset(subset.x[:0], subset.y2[:0], subset.y4[:0], [])
    with pytest.raises(ValueError, match="empty"):
        evaluate.evaluate(model, empty)


# ------------------------------------------------------------------------ best/worst


def constructed_per_image() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": "m",
            "name": list("abcde") * 2,
            "index": list(range(5)) * 2,
            "scale": [2] * 5 + [4] * 5,
            "psnr": [20.0, 25.0, 22.0, 30.0, 18.0, 1, 2, 3, 4, 5],
            "mse": [0.01, 0.003, 0.006, 0.001, 0.02, 1, 2, 3, 4, 5],
        }
    )


def test_best_worst_higher_is_better_for_psnr():
    best, worst = evaluate.best_worst(constructed_per_image(), "psnr", k=2)
    assert list(best["name"]) == ["d", "b"]
    assert list(worst["name"]) == ["e", "a"]
    best, worst = evaluate.best_worst(constructed_per_image(), "psnr", k=1, scale=4)
    assert list(best["psnr"]) == [5] and list(worst["psnr"]) == [1]


def test_best_worst_lower_is_better_for_mse():
    best, worst = evaluate.best_worst(constructed_per_image(), "mse", k=3)
    assert list(best["name"]) == ["d", "b", "c"]
    assert list(worst["name"]) == ["e", "a", "c"]


def test_best_worst_errors():
    frame = constructed_per_image()
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate.best_worst(frame, "lpips")
    with pytest.raises(ValueError, match="k must be"):
        evaluate.best_worst(frame, "psnr", k=6)
    with pytest.raises(ValueError, match="scale 3"):
        evaluate.best_worst(frame, "psnr", scale=3)
    mixed = pd.concat([frame, frame.assign(model="n")])
    with pytest.raises(ValueError, match="mixes models"):
        evaluate.best_worst(mixed)


# ------------------------------------------------------------------------ predicting


def test_predict_images_returns_clipped_outputs(model, subset):
    predictions = evaluate.predict_images(model, subset, [0, 3])
    assert predictions["low_upsample"].shape == (2, 144, 144, 3)
    assert predictions["high_upsample"].shape == (2, 288, 288, 3)
    assert all(p.min() >= 0 and p.max() <= 1 for p in predictions.values())
    assert evaluate.predict_images(model, subset.x, 1)["low_upsample"].shape[0] == 1
    with pytest.raises(ValueError, match="out of range"):
        evaluate.predict_images(model, subset, [N_IMAGES])


def test_predict_full_tiled_equals_untiled(model):
    image = np.random.default_rng(1).random((37, 29, 3), dtype=np.float32)
    whole = tiles.predict_full(model, image, "high_upsample")
    assert whole.shape == (148, 116, 3)
    tiled = tiles.predict_full(model, image, "high_upsample", tile=10, overlap=8)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    low = tiles.predict_full(model, image, "low_upsample", tile=16, overlap=4)
    np.testing.assert_allclose(
        low, tiles.predict_full(model, image, "low_upsample"), atol=1e-4
    )
    with pytest.raises(ValueError, match="no output"):
        tiles.predict_full(model, image, "middle")


def test_predict_full_of_one_output_skips_the_other_branch(model):
    # x2 of a two-output model runs only the layers its low output needs, with
    # the model's own weights: the same values as the whole model's low output.
    image = np.random.default_rng(2).random((21, 17, 3), dtype=np.float32)
    low = tiles.predict_full(model, image, "low_upsample")
    whole = model(image[None], training=False)[0]
    np.testing.assert_allclose(low, np.clip(np.asarray(whole[0]), 0, 1), atol=1e-5)
    part = tiles._one_output(model, "low_upsample")
    assert tiles.output_names(part) == ["low_upsample"]
    assert len(part.layers) < len(model.layers)
    assert {id(w) for w in part.weights} <= {id(w) for w in model.weights}


# ------------------------------------------------------------------------ benchmark


def test_benchmark_rows_and_errors(tmp_path, model):
    rng = np.random.default_rng(2)
    for name, shape in (("b", (30, 26, 3)), ("a", (24, 33, 3))):
        images.write_image(tmp_path / f"{name}.png", rng.random(shape))
    table = evaluate.benchmark("bicubic", tmp_path, 2)
    assert list(table.columns) == ["image", "psnr", "ssim"]
    assert list(table["image"]) == ["a", "b", "mean"]
    assert table["psnr"].iloc[-1] == pytest.approx(table["psnr"].iloc[:2].mean())
    scored = evaluate.benchmark(model, tmp_path, 4, tile=8)
    assert len(scored) == 3 and np.isfinite(scored["psnr"]).all()
    single = tiny_model("one", two_outputs=False)
    with pytest.raises(ValueError, match="high_upsample"):
        evaluate.benchmark(single, tmp_path, 4)
    with pytest.raises(ValueError, match="does not exist"):
        evaluate.benchmark("bicubic", tmp_path / "missing", 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        evaluate.benchmark("bicubic", tmp_path / "empty", 2)


@pytest.mark.parametrize(("name", "scale"), sorted(PUBLISHED_BICUBIC))
def test_benchmark_bicubic_reproduces_published_figures(name, scale):
    folder = shared_data_dir() / "benchmarks" / name
    if not folder.is_dir():
        pytest.skip(f"benchmark images not found at {folder}")
    table = evaluate.benchmark("bicubic", folder, scale)
    mean = table.set_index("image").loc["mean", "psnr"]
    assert mean == pytest.approx(
        PUBLISHED_BICUBIC[name, scale], abs=BENCHMARK_TOLERANCE_DB
    )


def nearest_model(name: str = "nearest", two_outputs: bool = True):
    """A model that repeats pixels: its output shows exactly the input it got."""
    inputs = keras.Input((None, None, 3))
    low = keras.layers.UpSampling2D(2, name="low_upsample")(inputs)
    outputs = [low]
    if two_outputs:
        outputs.append(keras.layers.UpSampling2D(2, name="high_upsample")(low))
    return keras.Model(inputs, outputs, name=name)


def write_set(folder: Path, shapes, seed: int = 0) -> Path:
    """A benchmark set of random images (png, 8-bit) in a new folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for number, shape in enumerate(shapes):
        images.write_image(folder / f"img{number}.png", rng.random(shape))
    return folder


def test_benchmark_pair_crops_and_rounds_the_input_to_8_bits(tmp_path):
    folder = write_set(tmp_path / "set", [(27, 34, 3)])
    high_res, low_res = evaluate.benchmark_pair(folder / "img0.png", 4)
    assert high_res.shape == (24, 32, 3) and low_res.shape == (6, 8, 3)
    levels = low_res * 255.0
    np.testing.assert_allclose(levels, np.rint(levels), atol=1e-4)
    assert low_res.min() >= 0.0 and low_res.max() <= 1.0
    unrounded = images.downscale(high_res, 4)
    assert not np.allclose(unrounded, low_res)  # rounding changed something
    np.testing.assert_allclose(low_res, images.to_8bit(unrounded))
    with pytest.raises(ValueError, match="scale"):
        evaluate.benchmark_pair(folder / "img0.png", 1)


def test_benchmark_feeds_the_8_bit_input_to_models_and_bicubic(tmp_path):
    folder = write_set(tmp_path / "set", [(32, 40, 3), (28, 24, 3)])
    model = nearest_model()
    for scale in (2, 4):
        scored = evaluate.benchmark(model, folder, scale).set_index("image")
        bicubic = evaluate.benchmark("bicubic", folder, scale).set_index("image")
        for path in sorted(folder.glob("*.png")):
            high_res, low_res = evaluate.benchmark_pair(path, scale)
            repeated = low_res.repeat(scale, axis=0).repeat(scale, axis=1)
            upscaled = np.clip(images.bicubic_upscale(low_res, scale), 0.0, 1.0)
            assert scored.loc[path.stem, "psnr"] == pytest.approx(
                metrics.y_psnr(high_res, repeated, scale), abs=1e-6
            )
            assert bicubic.loc[path.stem, "psnr"] == pytest.approx(
                metrics.y_psnr(high_res, upscaled, scale), abs=1e-6
            )


@pytest.mark.parametrize(("name", "scale", "low", "high"), [("Set5", 2, 33.6, 33.7)])
def test_benchmark_bicubic_on_8_bit_input_matches_the_published_set5(
    name, scale, low, high
):
    folder = shared_data_dir() / "benchmarks" / name
    if not folder.is_dir():
        pytest.skip(f"benchmark images not found at {folder}")
    table = evaluate.benchmark("bicubic", folder, scale)
    assert low <= table.set_index("image").loc["mean", "psnr"] <= high


def test_has_scale_and_super_resolve():
    single, double = nearest_model("one", False), nearest_model("two")
    assert evaluate.has_scale(single, 2) and not evaluate.has_scale(single, 4)
    assert evaluate.has_scale(double, 4) and evaluate.has_scale("bicubic", 3)
    assert not evaluate.has_scale("nearest", 2)
    image = np.random.default_rng(1).random((5, 6, 3)).astype(np.float32)
    assert evaluate.super_resolve(double, image, 4).shape == (20, 24, 3)
    assert evaluate.super_resolve("bicubic", image, 3).shape == (15, 18, 3)
    with pytest.raises(ValueError, match="bicubic"):
        evaluate.super_resolve("lanczos", image, 2)


def test_parse_benchmarks_forms(tmp_path):
    (tmp_path / "sets").mkdir()
    assert evaluate.parse_benchmarks("") is None
    assert evaluate.parse_benchmarks("folder:sets", base=tmp_path) == tmp_path / "sets"
    absolute = evaluate.parse_benchmarks(f"folder:{tmp_path / 'sets'}", base="/")
    assert absolute == tmp_path / "sets"
    with pytest.raises(ValueError, match="does not exist"):
        evaluate.parse_benchmarks("folder:missing", base=tmp_path)
    with pytest.raises(ValueError, match="folder:PATH"):
        evaluate.parse_benchmarks(str(tmp_path / "sets"))


def test_benchmark_sets_keeps_folders_with_images_in_the_usual_order(tmp_path):
    for name in ("zoo", "Set14", "Set5"):
        write_set(tmp_path / name, [(8, 8, 3)])
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images")
    images.write_image(tmp_path / "loose.png", np.zeros((8, 8, 3)))
    sets = evaluate.benchmark_sets(tmp_path)
    assert list(sets) == ["Set5", "Set14", "zoo"]
    assert sets["Set5"] == tmp_path / "Set5"
    assert evaluate.benchmark_sets(None) == {}
    assert evaluate.benchmark_sets(tmp_path / "empty") == {}
    with pytest.raises(ValueError, match="does not exist"):
        evaluate.benchmark_sets(tmp_path / "missing")


@pytest.fixture(scope="module")
def scored_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    sets = {
        "Set5": write_set(root / "Set5", [(32, 32, 3), (24, 40, 3)], seed=1),
        "Set14": write_set(root / "Set14", [(28, 36, 3)], seed=2),
    }
    models = {"one": nearest_model("one", False), "two": nearest_model("two")}
    lines = []
    per_image = evaluate.benchmark_all(models, sets, progress=lines.append)
    return sets, per_image, lines


def test_benchmark_all_scores_each_model_at_its_scales(scored_sets):
    sets, per_image, lines = scored_sets
    assert list(per_image.columns) == evaluate.BENCHMARK_IMAGE_COLUMNS
    runs = list(
        dict.fromkeys(
            zip(per_image["set"], per_image["scale"], per_image["model"], strict=True)
        )
    )
    assert runs == [
        ("Set5", 2, "bicubic"),
        ("Set5", 2, "one"),
        ("Set5", 2, "two"),
        ("Set5", 4, "bicubic"),
        ("Set5", 4, "two"),
        ("Set14", 2, "bicubic"),
        ("Set14", 2, "one"),
        ("Set14", 2, "two"),
        ("Set14", 4, "bicubic"),
        ("Set14", 4, "two"),
    ]
    assert len(lines) == len(runs) and lines[0] == "Set5 x2: bicubic"
    direct = evaluate.benchmark("bicubic", sets["Set5"], 4)
    rows = per_image.query("set == 'Set5' and scale == 4 and model == 'bicubic'")
    np.testing.assert_allclose(rows["psnr"], direct["psnr"].iloc[:-1])
    empty = evaluate.benchmark_all({"one": None}, {})
    assert empty.empty and list(empty.columns) == evaluate.BENCHMARK_IMAGE_COLUMNS


def test_benchmark_summary_means_and_margins(scored_sets):
    _, per_image, _ = scored_sets
    summary = evaluate.benchmark_summary(per_image)
    assert list(summary.columns) == evaluate.BENCHMARK_COLUMNS
    assert len(summary) == 10
    first = summary.iloc[0]
    assert (first["set"], first["scale"], first["model"]) == ("Set5", 2, "bicubic")
    assert first["psnr_margin"] == 0.0 and first["n_images"] == 2
    row = summary.query("set == 'Set5' and scale == 4 and model == 'two'").iloc[0]
    images = per_image.query("set == 'Set5' and scale == 4")
    mean = images.groupby("model")["psnr"].mean()
    assert row["psnr"] == pytest.approx(mean["two"])
    assert row["psnr_margin"] == pytest.approx(mean["two"] - mean["bicubic"])
    ssim = images.groupby("model")["ssim"].mean()
    assert row["ssim_margin"] == pytest.approx(ssim["two"] - ssim["bicubic"])
    assert evaluate.benchmark_summary(per_image.iloc[0:0]).empty
    with pytest.raises(ValueError, match="columns"):
        evaluate.benchmark_summary(per_image.drop(columns="image"))


def test_write_and_read_benchmarks(tmp_path, scored_sets, evaluation):
    _, per_image, _ = scored_sets
    path = layout.RunFolder(tmp_path).step_metrics("12_benchmarks")
    assert path == tmp_path / "steps" / "12_benchmarks" / "metrics.json"
    assert records.read_benchmarks(tmp_path).empty  # no record yet
    records.write_metrics(
        layout.RunFolder(tmp_path).step_metrics("03_x"), [evaluation], "03"
    )
    records.write_benchmarks(path, per_image, params={"benchmarks": "folder:x"})
    document = records.read_metrics(path)
    assert document["step"] == "12_benchmarks" and document["models"] == []
    assert len(document["benchmarks"]) == 10
    assert len(document["benchmarks_per_image"]) == len(per_image)
    table = records.read_benchmarks(tmp_path)
    expected = evaluate.benchmark_summary(per_image)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    collected = records.collect_metrics(tmp_path)  # the record adds no model rows
    assert set(collected["step"]) == {"03"}
    records.write_benchmarks(path, per_image.iloc[0:0])  # no sets: still a record
    assert records.read_metrics(path)["benchmarks"] == []
    assert records.read_benchmarks(tmp_path).empty


def test_published_benchmarks_load_with_their_sources():
    table = records.load_published_benchmarks()
    assert list(table.columns) == records.PUBLISHED_COLUMNS
    assert set(table["method"]) == {"bicubic", "SRCNN", "ESPCN"}
    assert set(table["set"]) <= {"Set5", "Set14"} and set(table["scale"]) <= {2, 4}
    assert table["psnr"].between(20, 40).all()
    assert table["ssim"].dropna().between(0, 1).all()
    assert table["citation"].str.len().gt(40).all()
    assert table["link"].str.startswith("https://arxiv.org/abs/").all()
    assert not table.duplicated(["method", "set", "scale"]).any()
    espcn = table[table["method"] == "ESPCN"]
    assert (espcn["scale"] == 4).all() and espcn["ssim"].isna().all()
    srcnn = table.set_index(["method", "set", "scale"])
    assert srcnn.loc[("SRCNN", "Set5", 2), "psnr"] == 36.66
    assert srcnn.loc[("bicubic", "Set5", 2), "psnr"] == PUBLISHED_BICUBIC["Set5", 2]


# ------------------------------------------------------------------------ metrics files


INFO = {"loss": "mae", "steps": 1, "n_train": 20, "precision": "float32"}


def test_write_read_collect_round_trip(tmp_path, evaluation, subset):
    single = evaluate.evaluate(tiny_model("one", two_outputs=False), subset)
    first = records.write_metrics(
        tmp_path / "steps" / "02_simple" / "metrics.json",
        [(single, INFO)],
        step="02",
        params={"steps": 1},
    )
    records.write_metrics(
        tmp_path / "steps" / "03_multi" / "metrics.json",
        [(evaluation, {**INFO, "steps": np.int64(2), "wall_time_s": 1.5})],
        step=3,
    )
    document = records.read_metrics(first)
    assert document["schema_version"] == records.SCHEMA_VERSION
    assert document["step"] == "02" and document["params"] == {"steps": 1}
    record = document["models"][0]
    assert record["model"] == "one" and record["loss"] == "mae"
    assert record["n_val"] == N_IMAGES and record["vgg_weights"] is None
    assert [m["scale"] for m in record["metrics"]] == [2]
    assert record["bicubic"][0]["psnr"] == pytest.approx(
        single.table.query("model == 'bicubic'")["psnr"].item()
    )
    assert not list(first.parent.glob("*.tmp"))  # temporary file renamed away

    table = records.collect_metrics(tmp_path)
    assert list(table.columns[:10]) == records.COLLECT_COLUMNS
    assert list(zip(table["step"], table["model"], table["scale"], strict=True)) == [
        ("02", "one", 2),
        ("03", "tiny", 2),
        ("03", "tiny", 4),
        ("03", "bicubic", 2),
        ("03", "bicubic", 4),
    ]
    assert table.query("model == 'tiny'")["steps"].tolist() == [2, 2]
    tiny = table.query("model == 'tiny' and scale == 4")["psnr"].item()
    assert tiny == pytest.approx(evaluation.table.loc[2, "psnr"])
    per_step = records.collect_metrics(tmp_path, bicubic="per_step")
    assert len(per_step.query("model == 'bicubic'")) == 3
    assert "bicubic" not in set(records.collect_metrics(tmp_path, "none")["model"])
    compared = records.comparison_table(table)
    assert list(compared.columns[:3]) == ["step", "model", "scale"]
    assert compared.loc[0, "psnr_bicubic"] == pytest.approx(
        table.query("model == 'bicubic' and scale == 2")["psnr"].item()
    )
    assert compared["psnr_original"].notna().sum() == 20  # every original row kept


def test_write_metrics_takes_fit_records_and_bicubic_only(tmp_path, evaluation, subset):
    result = train.FitResult(
        history=pd.DataFrame(
            {"epoch": [1, 2, 3], "step": [10, 20, 30], "loss": [3.0, 2.0, 1.0]}
        ),
        wall_time_s=12.5,
        train_images_per_s=np.float64(40.0),
        paths={},
        model=models.build("simple_model_bilinear"),
        resumed_from=0,
        precision="float32",
        settings={"loss": "psnr", "steps": 50, "n_train": 16, "n_val": 4},
    )
    baseline = evaluate.evaluate(None, subset)
    path = records.write_metrics(
        tmp_path / "metrics.json", [(evaluation, result.record()), baseline], step="04"
    )
    first, second = records.read_metrics(path)["models"]
    assert first["loss"] == "psnr" and first["steps"] == 30  # from the history
    assert first["n_train"] == 16 and first["n_val"] == 4
    assert first["train_images_per_s"] == 40.0 and first["wall_time_s"] == 12.5
    assert first["vgg_weights"] is None  # no VGG in this model
    assert second["model"] == "bicubic" and second["metrics"] == []
    assert [row["scale"] for row in second["bicubic"]] == [2, 4]
    with pytest.raises(ValueError, match=r"info must be a dict .*result\.record\(\)"):
        records.write_metrics(tmp_path / "m.json", [(evaluation, result)], step="04")


def test_write_summary_is_ignored_by_collect(tmp_path, evaluation):
    records.write_metrics(
        tmp_path / "steps" / "03_multi" / "metrics.json", evaluation, step="03"
    )
    table = records.collect_metrics(tmp_path)
    path = records.write_summary(
        tmp_path / "steps" / "12_summary" / "metrics.json",
        records.comparison_table(table),
    )
    document = records.read_metrics(path)
    assert document["step"] == "12_summary" and document["models"] == []
    assert len(document["summary"]) == len(records.comparison_table(table))
    pd.testing.assert_frame_equal(records.collect_metrics(tmp_path), table)


def test_read_metrics_rejects_wrong_schema(tmp_path, evaluation):
    path = records.write_metrics(tmp_path / "metrics.json", evaluation, step="05")
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "schema_version": 99}))
    with pytest.raises(ValueError, match="schema_version 99") as error:
        records.read_metrics(path)
    assert str(path) in str(error.value)
    del document["models"][0]["bicubic"]
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="bicubic"):
        records.read_metrics(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        records.read_metrics(path)
    with pytest.raises(ValueError, match="does not exist"):
        records.read_metrics(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="may not set"):
        records.write_metrics(path, [(evaluation, {"model": "x"})], step="05")
    with pytest.raises(ValueError, match="run folder"):
        records.collect_metrics(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no metrics.json"):
        records.collect_metrics(tmp_path)


# ---------------------------------------------------------------- original report


def test_load_original_results():
    original = records.load_original_results()
    assert list(original.columns) == [*evaluate.TABLE_COLUMNS, "source"]
    assert len(original) == 20
    assert set(original["source"]) == {"original report"}
    assert set(original["scale"]) == {2, 4}
    row = original.query("model == 'dts_model' and scale == 2")
    assert row["psnr"].item() == pytest.approx(21.548134)


def test_comparison_table(evaluation):
    original = records.load_original_results()
    ours = evaluation.table.replace({"model": {"tiny": "dts_model"}})
    table = records.comparison_table(ours, original)
    assert list(table.columns[:2]) == ["model", "scale"]
    assert {"psnr_ours", "psnr_original", "psnr_bicubic", "psnr_gain_db"} <= set(
        table.columns
    )
    first = table.iloc[0]
    assert (first["model"], first["scale"]) == ("dts_model", 2)
    assert first["psnr_original"] == pytest.approx(21.548134)
    assert first["psnr_gain_db"] == pytest.approx(
        first["psnr_ours"] - first["psnr_bicubic"]
    )
    others = table[table["model"] != "dts_model"]
    assert others["psnr_ours"].isna().all()
    assert len(table) == len(original)
