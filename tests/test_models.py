"""Tests for srkit.layers and srkit.models: the zoo matches its registry's counts."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from srkit import layers, models

# The step notebooks, one per page that MODEL_INFO[name]["page"] names.
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# (batch, height, width): a square and a non-square input, batch 1 and 2.
INPUT_SHAPES = [(1, 8, 8), (2, 12, 16)]
# (height, width) of successive predict calls. Each new size retraces the predict
# function with the changed dimensions unknown: Keras 3.15's bilinear UpSampling2D
# failed on TensorFlow from the second size on, and a reshape after dilated
# convolutions failed when only one of height and width changed. The built model
# sees a new height at a known width, the loaded one a new width; both end with
# both unknown. Small, so the R models stay fast.
PREDICT_SIZES = [(12, 12), (20, 12), (8, 16)]
PREDICT_SIZES_LOADED = [(12, 12), (12, 20), (8, 16)]

_BUILT: dict[str, keras.Model] = {}


@pytest.fixture(scope="module")
def zoo():
    """Build each model at most once per module (the R models take seconds)."""

    def get(name):
        if name not in _BUILT:
            _BUILT[name] = models.build(name)
        return _BUILT[name]

    yield get
    _BUILT.clear()


@pytest.fixture
def npz_weights(tmp_path):
    """A small .npz VGG weights file with recognisable values."""
    rng = np.random.default_rng(1)
    arrays = {
        "block1_conv1_kernel": rng.normal(size=(3, 3, 3, 64)).astype("float32"),
        "block1_conv1_bias": rng.normal(size=64).astype("float32"),
        "block1_conv2_kernel": rng.normal(size=(3, 3, 64, 64)).astype("float32"),
        "block1_conv2_bias": rng.normal(size=64).astype("float32"),
    }
    path = tmp_path / "vgg_block1.npz"
    np.savez(path, **arrays)
    return path, [arrays[key] for key in models.NPZ_KEYS]


def _vgg_layer(model):
    return next(
        layer for layer in model.layers if isinstance(layer, layers.VGGFeatures)
    )


def test_registry_matches_design():
    assert len(models.MODEL_NAMES) == 11
    steps = [models.MODEL_INFO[name]["step"] for name in models.MODEL_NAMES]
    assert steps == ["02", "02", "03", "04", "05", "06", "07", "R1", "R2", "R3", "R4"]
    allowed_losses = {"mse", "mae", "psnr", "ssim", "psnr_ssim", "mse_ssim"}
    allowed_losses.add("psnr_over_ssim")
    for info in models.MODEL_INFO.values():
        assert set(info) == {
            "builder",
            "step",
            "page",
            "outputs",
            "loss",
            "params",
            "trainable",
            "summary",
        }
        assert info["loss"] in allowed_losses and callable(info["builder"])
        assert info["outputs"] in (("low_upsample",), ("low_upsample", "high_upsample"))
    losses = [models.MODEL_INFO[name]["loss"] for name in models.MODEL_NAMES[-4:]]
    assert losses == ["psnr", "psnr_ssim", "mse_ssim", "psnr_over_ssim"]


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_the_page_of_each_model_exists_and_names_it(name):
    """The registry's page is a step notebook that builds the model by name."""
    page = NOTEBOOKS / f"{models.MODEL_INFO[name]['page']}.py"
    assert page.is_file(), f"{name}: no notebook {page}"
    text = page.read_text()
    assert f'"{name}"' in text or f"'{name}'" in text, f"{page.name} omits {name}"


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_parameter_counts(zoo, name):
    model = zoo(name)
    info = models.MODEL_INFO[name]
    assert model.name == name
    assert models.count_params(model) == (info["params"], info["trainable"])


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_output_shapes_and_names(zoo, name):
    model = zoo(name)
    outputs = models.MODEL_INFO[name]["outputs"]
    assert tuple(model.output_names) == outputs
    for batch, height, width in INPUT_SHAPES:
        x = np.random.default_rng(0).random((batch, height, width, 3), "float32")
        result = model(x, training=False)
        result = result if isinstance(result, list | tuple) else [result]
        shapes = [tuple(r.shape) for r in result]
        expected = [
            (batch, height * 2, width * 2, 3),
            (batch, height * 4, width * 4, 3),
        ]
        assert shapes == expected[: len(outputs)]
        assert all(np.isfinite(keras.ops.convert_to_numpy(r)).all() for r in result)


def _predict_sizes(model, name, sizes):
    """Predict each (height, width) in a row; check shapes, return predictions."""
    predictions = {}
    for height, width in sizes:
        x = np.random.default_rng(height).random((1, height, width, 3), "float32")
        result = model.predict(x, verbose=0)
        result = result if isinstance(result, list | tuple) else [result]
        expected = [(1, height * 2, width * 2, 3), (1, height * 4, width * 4, 3)]
        assert len(result) == len(models.MODEL_INFO[name]["outputs"])
        assert [r.shape for r in result] == expected[: len(result)]
        assert all(np.isfinite(r).all() for r in result)
        predictions[height, width] = result
    return predictions


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_predict_several_sizes_in_a_row(zoo, tmp_path, name):
    model = zoo(name)
    # No zoo model keeps Keras' bilinear UpSampling2D (it fails on a second size).
    assert not any(
        isinstance(layer, keras.layers.UpSampling2D)
        and layer.interpolation != "nearest"
        for layer in model.layers
    )
    built = _predict_sizes(model, name, PREDICT_SIZES)
    file = tmp_path / f"{name}.keras"
    model.save(file)
    loaded = _predict_sizes(models.load(file), name, PREDICT_SIZES_LOADED)
    for size in set(built) & set(loaded):
        for a, b in zip(built[size], loaded[size], strict=True):
            np.testing.assert_array_equal(a, b)


def test_bilinear_models_use_the_srkit_layer(zoo):
    for name in ("simple_model_bilinear", "multi_upsampling_model"):
        upsampling = zoo(name).get_layer("low_upsample")
        assert isinstance(upsampling, layers.BilinearUpSampling2D)
    nearest = zoo("simple_model_nearest").get_layer("low_upsample")
    assert isinstance(nearest, keras.layers.UpSampling2D)
    assert nearest.interpolation == "nearest"


# (model, output): the interpolation and the x2 upsamplings that follow the head.
HEAD_FIRST = {
    ("simple_model_nearest", "low_upsample"): ("nearest", 1),
    ("simple_model_bilinear", "low_upsample"): ("bilinear", 1),
    ("multi_upsampling_model", "low_upsample"): ("bilinear", 1),
    ("multi_upsampling_model", "high_upsample"): ("bilinear", 2),
    ("residual_block_model", "high_upsample"): ("bilinear", 1),
    ("dilated_conv_block_model", "high_upsample"): ("bilinear", 1),
    ("vgg_feature_extract_model", "low_upsample"): ("bilinear", 1),
    ("vgg_feature_extract_model", "high_upsample"): ("bilinear", 2),
}


@pytest.mark.parametrize(("name", "output"), sorted(HEAD_FIRST))
def test_heads_before_upsampling_give_the_studys_function(name, output):
    # A 1x1 head and a fixed interpolation commute (the interpolation weights of
    # each pixel sum to 1), so the zoo applies the head first, on 3 channels. The
    # study's order, rebuilt here with Keras' own UpSampling2D, must agree.
    interpolation, doublings = HEAD_FIRST[(name, output)]
    model = models.build(name)
    rng = np.random.default_rng(3)
    for weights in model.trainable_weights:  # non-zero biases, not only kernels
        weights.assign(rng.normal(0, 0.1, weights.shape).astype("float32"))
    x = rng.random((2, 10, 14, 3), "float32")
    head = model.get_layer(f"{output}_head")
    prediction = keras.Model(model.input, model.get_layer(output).output)(x)

    features = keras.Model(model.input, head.input)(x)
    upsampling = keras.layers.UpSampling2D(2, interpolation=interpolation)
    for _ in range(doublings):
        features = upsampling(features)
    kernel, bias = head.get_weights()
    expected = np.einsum(
        "nhwc,cd->nhwd", keras.ops.convert_to_numpy(features), kernel[0, 0]
    )
    expected += bias
    scale = 2 if output == "low_upsample" else 4
    assert prediction.shape == (2, 10 * scale, 14 * scale, 3)
    assert head.input.shape[-1] > 3  # the head did shrink the channels first
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(prediction), expected, rtol=0, atol=2e-5
    )


@pytest.mark.parametrize("size", [1, 2, 4])
def test_bilinear_upsampling_matches_keras(size):
    x = np.random.default_rng(0).random((2, 7, 10, 5), "float32") * 4.0 - 1.0
    ours = keras.ops.convert_to_numpy(layers.BilinearUpSampling2D(size)(x))
    reference = keras.layers.UpSampling2D(size, interpolation="bilinear")(x)
    reference = keras.ops.convert_to_numpy(reference)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_bilinear_upsampling_in_a_model_takes_new_sizes():
    inputs = keras.Input((None, None, 4))
    upsample = layers.BilinearUpSampling2D(2, name="up")
    model = keras.Model(inputs, upsample(inputs))
    assert tuple(model.output.shape) == (None, None, None, 4)
    assert upsample.weights == []
    reference = keras.layers.UpSampling2D(2, interpolation="bilinear")
    for height, width in PREDICT_SIZES:
        x = np.random.default_rng(height).random((1, height, width, 4), "float32")
        expected = keras.ops.convert_to_numpy(reference(x))  # eager: known size
        np.testing.assert_allclose(
            model.predict(x, verbose=0), expected, rtol=0, atol=1e-6
        )


def test_bilinear_upsampling_config_and_bad_size():
    layer = layers.BilinearUpSampling2D(3, name="up")
    clone = layers.BilinearUpSampling2D.from_config(layer.get_config())
    assert clone.size == 3 and clone.name == "up"
    for size in (0, 1.5, True, (2, 2)):
        with pytest.raises(ValueError, match="size"):
            layers.BilinearUpSampling2D(size)


def test_unknown_name_lists_names():
    with pytest.raises(ValueError, match="dts_model") as error:
        models.build("no_such_model")
    assert "no_such_model" in str(error.value)


def test_zoo_table():
    table = models.zoo_table()
    assert list(table.columns) == ["name", "step", "params", "trainable", "outputs"]
    assert list(table["name"]) == list(models.MODEL_NAMES)
    assert table.loc[table["name"] == "dts_model", "params"].item() == 160_614


@pytest.mark.parametrize(("block_size", "channels"), [(2, 64), (2, 12), (3, 18)])
def test_depth_to_space_matches_tensorflow(block_size, channels):
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(0).random((2, 3, 5, channels), "float32")
    ours = keras.ops.convert_to_numpy(layers.DepthToSpace(block_size)(x))
    theirs = tf.nn.depth_to_space(x, block_size).numpy()
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.function")
@pytest.mark.parametrize("known", ["both", "width", "none"])
def test_depth_to_space_traced_with_unknown_sizes_matches_tensorflow(known):
    # Known sizes take the reshape path; unknown ones the backend op (a reshape to
    # run-time sizes folds wrongly on TensorFlow when only one size is known).
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(1).random((2, 3, 5, 16), "float32")
    spec = {"both": (None, 3, 5, 16), "width": (None, None, 5, 16)}
    shape = spec.get(known, (None, None, None, 16))
    layer = layers.DepthToSpace(2)
    traced = tf.function(layer, input_signature=[tf.TensorSpec(shape, tf.float32)])
    ours = traced(tf.constant(x)).numpy()
    np.testing.assert_array_equal(ours, tf.nn.depth_to_space(x, 2).numpy())


def test_depth_to_space_dynamic_shape_and_config():
    inputs = keras.Input((None, None, 8))
    model = keras.Model(inputs, layers.DepthToSpace(2, name="d2s")(inputs))
    assert tuple(model.output.shape) == (None, None, None, 2)
    assert model(np.zeros((1, 3, 4, 8), "float32")).shape == (1, 6, 8, 2)
    config = model.get_layer("d2s").get_config()
    assert layers.DepthToSpace.from_config(config).block_size == 2


def test_depth_to_space_rejects_bad_input():
    with pytest.raises(ValueError, match="block_size"):
        layers.DepthToSpace(1)
    with pytest.raises(ValueError, match="divisible by 4"):
        layers.DepthToSpace(2)(keras.Input((None, None, 6)))


def test_vgg_preprocess_matches_keras_applications():
    x = np.random.default_rng(0).random((2, 4, 5, 3), "float32")
    ours = keras.ops.convert_to_numpy(layers.VGGPreprocess()(x))
    theirs = keras.applications.vgg16.preprocess_input(x * 255.0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-4)


def test_random_vgg_weights_are_deterministic_and_frozen(zoo):
    first = zoo("vgg_feature_extract_model")
    second = models.build("vgg_feature_extract_model", vgg_weights="random")
    for a, b in zip(_vgg_layer(first).weights, _vgg_layer(second).weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert _vgg_layer(first).trainable is False
    assert models.vgg_weights_used(first) == "random"
    assert models.vgg_weights_used(zoo("residual_block_model")) is None


def test_vgg_weights_from_npz(npz_weights):
    path, arrays = npz_weights
    model = models.build("vgg_feature_extract_model", vgg_weights=path)
    assert models.vgg_weights_used(model) == str(path)
    got = [np.asarray(w) for w in _vgg_layer(model).weights]
    for a, b in zip(got, arrays, strict=True):
        np.testing.assert_array_equal(a, b)
    assert models.count_params(model) == (43_910, 5_190)


def test_vgg_weights_from_full_vgg16_file(tmp_path):
    vgg = keras.applications.VGG16(include_top=False, weights=None)
    path = tmp_path / "vgg16_notop.weights.h5"
    vgg.save_weights(path)
    weights = models.load_vgg_weights(path)
    expected = vgg.get_layer("block1_conv2").get_weights()
    np.testing.assert_array_equal(weights[2], expected[0])
    np.testing.assert_array_equal(weights[3], expected[1])


def test_vgg_weights_bad_sources(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(ValueError, match="nope.npz"):
        models.build("dts_model", vgg_weights=missing)
    text = tmp_path / "weights.txt"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="weights.txt"):
        models.load_vgg_weights(text)
    incomplete = tmp_path / "incomplete.npz"
    np.savez(incomplete, block1_conv1_kernel=np.zeros((3, 3, 3, 64), "float32"))
    with pytest.raises(ValueError, match="block1_conv2_kernel"):
        models.load_vgg_weights(incomplete)
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez(wrong_shape, **{key: np.zeros(2, "float32") for key in models.NPZ_KEYS})
    with pytest.raises(ValueError, match="shapes"):
        models.build("dts_model", vgg_weights=wrong_shape)


def test_imagenet_offline_fails_fast(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr(models, "_VGG_CACHE", {})
    with pytest.raises(RuntimeError, match="random") as error:
        models.build("vgg_feature_extract_model", vgg_weights="imagenet")
    assert "network is unreachable" in str(error.value)


@pytest.mark.parametrize("name", ["residual_block_model", "dts_model"])
def test_keras_save_load_round_trip(tmp_path, npz_weights, name):
    path, _ = npz_weights
    model = models.build(name, vgg_weights=path)
    file = tmp_path / f"{name}.keras"
    model.save(file)
    loaded = keras.models.load_model(file)
    x = np.random.default_rng(0).random((1, 8, 12, 3), "float32")
    for a, b in zip(
        model.predict(x, verbose=0), loaded.predict(x, verbose=0), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert loaded.name == name
    assert tuple(loaded.output_names) == models.MODEL_INFO[name]["outputs"]
    assert models.count_params(loaded) == models.count_params(model)
    expected_source = str(path) if name == "dts_model" else None
    assert models.vgg_weights_used(loaded) == expected_source


def test_conv_flops_matches_hand_count(zoo):
    from srkit import bench

    pixels_low, pixels_mid, pixels_high = 72 * 72, 144 * 144, 288 * 288
    # conv1, conv2, VGG conv1, VGG conv2, 128->64 3x3 at 72x72 (per pixel FLOP)
    low = 2 * (27 * 64 + 576 * 64 + 27 * 64 + 576 * 64 + 9 * 128 * 64)
    expected = (
        low * pixels_low
        + 2 * (9 * 16 * 64 + 16 * 3) * pixels_mid  # 16->64 3x3, low head
        + 2 * 16 * 3 * pixels_high  # high head
    )
    assert bench.conv_flops(zoo("dts_model"), 72, 72) == expected


def test_bench_measures_a_small_model(capsys):
    from srkit import bench

    row = bench.measure_model("simple_model_nearest", batch_size=2, size=8, steps=1)
    assert row["train_img_s"] > 0 and row["infer_img_s"] > 0
    assert row["gflop_per_image"] > 0
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    assert "--batch-size" in capsys.readouterr().out


@pytest.mark.parametrize("size", [2, 3, 4])
def test_bicubic_upsampling_matches_the_bicubic_baseline(size):
    from srkit import images

    x = np.random.default_rng(size).random((2, 7, 10, 3), "float32")
    ours = keras.ops.convert_to_numpy(layers.BicubicUpSampling2D(size)(x))
    np.testing.assert_allclose(ours, images.bicubic_upscale(x, size), rtol=0, atol=1e-5)


def test_bicubic_upsampling_in_a_model_takes_new_sizes_and_has_no_weights():
    from srkit import images

    inputs = keras.Input((None, None, 3))
    upsample = layers.BicubicUpSampling2D(4, name="up")
    model = keras.Model(inputs, upsample(inputs))
    assert upsample.weights == []
    for height, width in PREDICT_SIZES:
        x = np.random.default_rng(height).random((1, height, width, 3), "float32")
        expected = images.bicubic_upscale(x, 4)
        np.testing.assert_allclose(
            model.predict(x, verbose=0), expected, rtol=0, atol=1e-5
        )
    clone = layers.BicubicUpSampling2D.from_config(upsample.get_config())
    assert clone.size == 4 and clone.name == "up"
    for size in (0, 1.5, True):
        with pytest.raises(ValueError, match="size"):
            layers.BicubicUpSampling2D(size)


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_bicubic_skip_starts_at_bicubic_with_the_studys_counts(name):
    from srkit import images

    model = models.build(name, skip="bicubic", seed=0)
    info = models.MODEL_INFO[name]
    assert models.count_params(model) == (info["params"], info["trainable"])
    assert list(model.output_names) == list(info["outputs"])
    assert models.skip_used(model) == "bicubic"
    x = np.random.default_rng(1).random((1, 10, 12, 3), "float32")
    predictions = model.predict(x, verbose=0)
    predictions = predictions if isinstance(predictions, list) else [predictions]
    for output, prediction in zip(info["outputs"], predictions, strict=True):
        scale = 2 if output == "low_upsample" else 4
        np.testing.assert_allclose(
            prediction, images.bicubic_upscale(x, scale), rtol=0, atol=1e-5
        )


def test_skip_survives_saving_and_unknown_skip_is_refused(tmp_path):
    model = models.build("multi_upsampling_model", skip="bicubic", seed=0)
    assert models.skip_used(models.build("multi_upsampling_model")) == "none"
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = models.load(path)
    assert models.skip_used(loaded) == "bicubic"
    x = np.random.default_rng(2).random((1, 9, 11, 3), "float32")
    for ours, theirs in zip(
        model.predict(x, verbose=0), loaded.predict(x, verbose=0), strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="skip"):
        models.build("dts_model", skip="nearest")


def test_receptive_radius_of_skip_models_is_known():
    from srkit import tiles

    for name in ("simple_model_nearest", "residual_block_model", "dts_model"):
        plain = tiles.receptive_radius(models.build(name))
        skipped = tiles.receptive_radius(models.build(name, skip="bicubic"))
        assert plain is not None and skipped is not None
        assert skipped >= min(plain, 2.0)
