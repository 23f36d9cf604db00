"""Tests of srkit.tiles: tile choice, context, 8-bit output."""

import keras
import numpy as np
import pytest

from srkit import images, models, tiles


@pytest.mark.parametrize(
    "height, width, tile",
    [(1, 1, tiles.WHOLE), (256, 200, tiles.WHOLE), (1000, 1500, 250), (257, 10, 129)],
)
def test_choose_tile_balances_cores_of_at_most_max_tile(height, width, tile):
    assert tiles.choose_tile(height, width, max_tile=256) == tile
    if tile != tiles.WHOLE:
        assert tile <= 256
        count = -(-max(height, width) // tile)
        assert count == -(-max(height, width) // 256)


# Hand-counted from the zoo (input pixels): 3x3 convolutions add 1 / scale, a
# dilated branch of rate 4 adds 4 / scale, bilinear upsampling 1 / scale.
@pytest.mark.parametrize(
    "name, radius",
    [
        ("simple_model_nearest", 2.0),
        ("simple_model_bilinear", 3.0),
        ("dts_model", 3.5),
        ("dts_dilated_conv_block_model", 19.0),
        ("dts_dilated_conv_ext_block_ssim_psnr_model", 59.0),
    ],
)
def test_receptive_radius_of_zoo_models(name, radius):
    assert tiles.receptive_radius(models.build(name)) == radius


def lambda_model():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Lambda(lambda t: t * 1.0)(inputs)
    low = keras.layers.UpSampling2D(2, name="low_upsample")(x)
    return keras.Model(inputs, low)


def test_unknown_layers_give_no_radius():
    assert tiles.receptive_radius(lambda_model()) is None
    assert tiles.receptive_radius(object()) is None


def wide_model():
    """Dilated convolutions and bilinear x2; a sigmoid head, so nothing is clipped."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, dilation_rate=4, padding="same", activation="relu")(
        inputs
    )
    x = keras.layers.Conv2D(8, 3, dilation_rate=4, padding="same")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = keras.layers.Conv2D(3, 3, padding="same")(x)
    low = keras.layers.Activation("sigmoid", name="low_upsample")(x)
    return keras.Model(inputs, low)


def test_default_tiles_are_seamless(monkeypatch):
    model = wide_model()
    assert tiles.receptive_radius(model) == 4 + 4 + 1 + 0.5
    image = np.random.default_rng(3).random((37, 45, 3), dtype=np.float32)
    whole = tiles.predict_full(model, image, "low_upsample", tile=tiles.WHOLE)
    monkeypatch.setattr(tiles, "MAX_TILE", 12)  # 4 x 4 tiles of 12 px or less
    tiled = tiles.predict_full(model, image, "low_upsample")
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    # Too little context shows seams: the default is what makes them vanish.
    narrow = tiles.predict_full(model, image, "low_upsample", overlap=2)
    assert np.abs(narrow - whole).max() > 1e-3


def test_uint8_output_is_the_rounded_float_output():
    model = models.build("dts_model", seed=2)
    image = np.random.default_rng(4).random((20, 26, 3), dtype=np.float32)
    floats = tiles.predict_full(model, image, "low_upsample", tile=8)
    pixels = tiles.predict_full(model, image, "low_upsample", tile=8, dtype=np.uint8)
    assert pixels.dtype == np.uint8 and pixels.shape == (40, 52, 3)
    np.testing.assert_array_equal(pixels, np.rint(floats * 255).astype(np.uint8))
    assert floats.dtype == np.float32 and 0 <= floats.min() <= floats.max() <= 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tile": -1}, "positive"),
        ({"tile": "big"}, "None"),
        ({"overlap": -1}, "overlap"),
        ({"dtype": np.float64}, "dtype"),
    ],
)
def test_bad_tiling_arguments(kwargs, match):
    image = np.zeros((6, 6, 3), np.float32)
    with pytest.raises(ValueError, match=match):
        tiles.predict_full(lambda_model(), image, "low_upsample", **kwargs)


def test_8bit_input_is_converted_window_by_window_to_the_same_prediction():
    model = models.build("dts_model", seed=2)
    pixels = np.random.default_rng(6).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    floats = images.pixels_to_float(pixels)
    whole = tiles.predict_full(model, floats, "high_upsample", tile=tiles.WHOLE)
    tiled = tiles.predict_full(model, pixels, "high_upsample", tile=8)
    np.testing.assert_array_equal(
        tiled, tiles.predict_full(model, floats, "high_upsample", tile=8)
    )
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    strips = list(
        tiles.predict_strips(model, pixels, "high_upsample", tile=8, dtype=np.uint8)
    )
    assert [len(strip) for strip in strips] == [32, 32, 20]
    np.testing.assert_array_equal(
        np.concatenate(strips),
        tiles.predict_full(model, floats, "high_upsample", tile=8, dtype=np.uint8),
    )


# ------------------------------------------------ context of unread or wide models
# Issue 23 item 3: models whose receptive field the layers did not tell were tiled
# with a fixed 16 px context, and showed seams. These reach 8 + 8 + 1 + 0.5 px.


def wider_body(inputs, normalize=False):
    x = keras.layers.Conv2D(8, 3, dilation_rate=8, padding="same", activation="relu")(
        inputs
    )
    if normalize:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(8, 3, dilation_rate=8, padding="same")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    return keras.layers.Conv2D(3, 3, padding="same")(x)


def batchnorm_model():
    keras.utils.set_random_seed(7)
    inputs = keras.Input((None, None, 3))
    x = wider_body(inputs, normalize=True)
    low = keras.layers.Activation("sigmoid", name="low_upsample")(x)
    model = keras.Model(inputs, low)
    norm = next(
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )  # statistics far from the initial ones, as after training
    norm.set_weights([np.full(8, 2.0), np.full(8, 0.1), np.full(8, 0.3), np.ones(8)])
    return model


def dict_model():
    keras.utils.set_random_seed(8)
    inputs = keras.Input((None, None, 3))
    low = keras.layers.Activation("sigmoid")(wider_body(inputs))
    high = keras.layers.UpSampling2D(2, interpolation="bilinear")(low)
    return keras.Model(inputs, {"low_upsample": low, "high_upsample": high})


def nested_model():
    """The wide model used as a layer: its layers cannot be read, only measured."""
    inputs = keras.Input((None, None, 3))
    inner = dict_model()
    outputs = inner(inputs)
    low = keras.layers.Identity(name="low_upsample")(outputs["low_upsample"])
    return keras.Model(inputs, low)


def seams(model, output, **kwargs):
    """Largest difference between the default tiles and the whole image."""
    image = np.random.default_rng(9).random((70, 83, 3), dtype=np.float32)
    whole = tiles.predict_full(model, image, output, tile=tiles.WHOLE)
    tiled = tiles.predict_full(model, image, output, tile=20, **kwargs)
    return float(np.abs(tiled - whole).max())


def test_batchnorm_and_dict_outputs_are_read():
    assert tiles.receptive_radius(batchnorm_model()) == 17.5
    model = dict_model()
    assert tiles.output_names(model) == ["low_upsample", "high_upsample"]
    assert tiles.receptive_radius(model) == 18.0
    part = tiles._one_output(model, "high_upsample")
    assert tiles.output_names(part) == ["high_upsample"]


@pytest.mark.parametrize(
    "build, output",
    [
        (batchnorm_model, "low_upsample"),
        (dict_model, "low_upsample"),
        (dict_model, "high_upsample"),
        (nested_model, "low_upsample"),
    ],
)
def test_tiles_equal_the_whole_image_within_one_level(build, output):
    model = build()
    difference = seams(model, output)
    narrow = seams(model, output, overlap=16)  # the old guess: too little context
    print(f"{build.__name__} {output}: {difference:.2e}, 16 px: {narrow:.2e}")
    assert difference <= 1 / 255
    assert narrow > difference


def test_a_measured_radius_bounds_the_read_one():
    for model in (batchnorm_model(), dict_model()):
        read = tiles.receptive_radius(model)
        measured = tiles.measure_radius(model)
        assert read - 2.5 <= measured <= read
    assert tiles.receptive_radius(nested_model()) is None
    assert 15 <= tiles.measure_radius(nested_model()) <= 17.5
    assert tiles.context_overlap(nested_model(), "low_upsample") >= 18


def global_model():
    """Subtracts the image's mean: every output pixel sees the whole image."""
    inputs = keras.Input((None, None, 3))
    centred = keras.layers.Lambda(
        lambda t: t - keras.ops.mean(t, axis=(1, 2), keepdims=True)
    )(inputs)
    low = keras.layers.UpSampling2D(2, name="low_upsample")(centred)
    return keras.Model(inputs, low)


def test_an_unbounded_field_is_predicted_whole_or_refused(monkeypatch):
    model = global_model()
    assert tiles.measure_radius(model) is None
    image = np.random.default_rng(10).random((40, 50, 3), dtype=np.float32)
    whole = tiles.predict_full(model, image, "low_upsample", tile=tiles.WHOLE)
    monkeypatch.setattr(tiles, "MAX_TILE", 16)  # would tile, but may not
    np.testing.assert_array_equal(
        tiles.predict_full(model, image, "low_upsample"), whole
    )
    monkeypatch.setattr(tiles, "UNBOUNDED_MAX_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"could not be read.*--tile 0"):
        tiles.predict_full(model, image, "low_upsample")
    assert tiles.predict_full(model, image, "low_upsample", tile=0).shape == (
        80,
        100,
        3,
    )


# ------------------------------------- issue 21: memory-sized, batched, one shape


def test_activation_bytes_of_dts_model_x4_by_hand():
    part = tiles._one_output(models.build("dts_model"), "high_upsample")
    # input 3, conv1 64, conv2 64, VGG 64, concat 128, pre_d2s_x2 64, then at x2
    # 16 * 4 and 64 * 4, at x4 16 * 16 and the 3-channel head * 16: float32 each
    assert tiles.activation_bytes(part) == 4 * (
        3 + 64 * 3 + 128 + 64 + 64 + 256 * 2 + 48
    )
    assert tiles.activation_bytes(lambda_model()) is None
    side = tiles.memory_tile(4044, 5)
    assert (side + 10) ** 2 * 4044 <= tiles.TILE_BYTES < (side + 11) ** 2 * 4044


def calls_of(monkeypatch):
    """The batches tiles.predict_batch is called with, recorded."""
    seen, real = [], tiles.predict_batch

    def spy(model, batch):
        seen.append(np.shape(batch))
        return real(model, batch)

    monkeypatch.setattr(tiles, "predict_batch", spy)
    return seen


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_batched_windows_of_one_shape_equal_the_whole_image(monkeypatch, dtype):
    model = models.build("dts_model", seed=3)
    image = np.random.default_rng(11).random((45, 61, 3), dtype=np.float32)
    whole = tiles.predict_full(model, image, "high_upsample", tile=0, dtype=dtype)
    unit = 255.0 if dtype == np.uint8 else 1.0

    def off(values):  # largest difference from the whole image, in [0, 1] units
        return float(np.abs(values.astype(np.float32) - whole).max()) / unit

    seen = calls_of(monkeypatch)
    monkeypatch.setattr(tiles, "MAX_TILE", 10)  # 5 x 7 cores of 9 px or less
    tiled = tiles.predict_full(model, image, "high_upsample", dtype=dtype)
    # one window shape (border windows shift inwards), a row of cores per call
    assert seen == [(7, 19, 19, 3)] * 5  # 9 px and 5 px of context
    assert off(tiled) <= (1 / 255 if dtype == np.uint8 else 1e-5)
    # context one pixel short of the radius (3.5 px) shows seams
    assert tiles.context_overlap(model, "high_upsample") == 5
    assert off(tiles.predict_full(model, image, "high_upsample", overlap=3)) > 2 / 255


def test_automatic_tiles_fit_the_memory_and_batch_within_it(monkeypatch):
    model = models.build("dts_model", seed=4)
    pixel_bytes = tiles.activation_bytes(tiles._one_output(model, "high_upsample"))
    image = np.random.default_rng(12).integers(0, 256, (60, 45, 3), dtype=np.uint8)
    whole = tiles.predict_full(model, image, "high_upsample", tile=0, dtype=np.uint8)
    seen = calls_of(monkeypatch)
    budget = 3 * 26 * 26 * pixel_bytes  # three windows of 16 px cores
    monkeypatch.setattr(tiles, "TILE_BYTES", budget)
    for max_tile, windows in ((tiles.MAX_TILE, [(1, 40, 40, 3)] * 4), (16, None)):
        seen.clear()
        monkeypatch.setattr(tiles, "MAX_TILE", max_tile)
        tiled = tiles.predict_full(model, image, "high_upsample", dtype=np.uint8)
        np.testing.assert_allclose(tiled, whole, atol=1)
        assert len({shape[1:] for shape in seen}) == 1
        assert all(np.prod(shape[:3]) * pixel_bytes <= budget for shape in seen)
        # the memory decides: 2 x 2 cores of 30 px (40 px windows, up to 35 px
        # fit), one per call; with 16 px at most, 4 x 3 cores of 15 px (25 px
        # windows), a row of three per call
        assert seen == (windows or [(3, 25, 25, 3)] * 4)
