"""Tests for srkit.metrics: edge cases, references and one value per image."""

import keras
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srkit import metrics

KERAS_FORMS = {
    "mse": metrics.mse,
    "mae": metrics.mae,
    "psnr": metrics.psnr,
    "ssim": metrics.ssim,
}
C1 = (metrics.SSIM_K1 * 1.0) ** 2
# skimage settings that select the SSIM of Wang et al. / tf.image.ssim.
SKIMAGE_SSIM = dict(
    data_range=1.0,
    gaussian_weights=True,
    sigma=1.5,
    use_sample_covariance=False,
    win_size=11,
)


def to_numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def smooth_images(rng, shape):
    """Low-frequency images in [0, 1]: where float32 SSIM loses most precision."""
    noise = rng.random(shape)
    blurred = ndimage.gaussian_filter(noise, sigma=(0, 3, 3, 0))
    blurred = (blurred - blurred.min()) / (blurred.max() - blurred.min())
    return blurred.astype(np.float32)


@pytest.fixture(scope="module")
def random_pair():
    rng = np.random.default_rng(0)
    target = rng.random((3, 24, 24, 3), dtype=np.float32)
    noisy = np.clip(target + rng.normal(0, 0.1, target.shape), 0, 1)
    return target, noisy.astype(np.float32)


@pytest.fixture(scope="module")
def smooth_pair():
    rng = np.random.default_rng(1)
    target = smooth_images(rng, (3, 32, 32, 3))
    return target, np.roll(target, 1, axis=2)


@pytest.fixture(scope="module", params=["random", "smooth"])
def pair(request, random_pair, smooth_pair):
    return random_pair if request.param == "random" else smooth_pair


def test_keras_forms_are_named_for_compile():
    for name, function in KERAS_FORMS.items():
        assert function.__name__ == name


@pytest.mark.parametrize("fill", ["random", 0.0, 1.0])
def test_identical_images_score_cap_and_one(fill):
    rng = np.random.default_rng(2)
    if fill == "random":
        images = rng.random((2, 16, 16, 3), dtype=np.float32)
    else:
        images = np.full((2, 16, 16, 3), fill, dtype=np.float32)
    table = metrics.image_metrics(images, images.copy())
    np.testing.assert_array_equal(table["mse"], 0.0)
    np.testing.assert_array_equal(table["mae"], 0.0)
    np.testing.assert_array_equal(table["psnr"], metrics.PSNR_CAP_DB)
    np.testing.assert_allclose(table["ssim"], 1.0, rtol=0, atol=1e-12)
    values = {
        name: to_numpy(f(images, images.copy())) for name, f in KERAS_FORMS.items()
    }
    np.testing.assert_array_equal(values["mse"], 0.0)
    np.testing.assert_array_equal(values["mae"], 0.0)
    np.testing.assert_allclose(values["psnr"], metrics.PSNR_CAP_DB, rtol=1e-6)
    assert np.all(np.isfinite(values["psnr"]))
    np.testing.assert_allclose(values["ssim"], 1.0, rtol=0, atol=1e-6)


def test_black_versus_white():
    black = np.zeros((1, 16, 16, 3), np.float32)
    white = np.ones((1, 16, 16, 3), np.float32)
    # Zero variance: the structure term is C2 / C2 = 1, luminance C1 / (1 + C1).
    expected_ssim = C1 / (1.0 + C1)
    table = metrics.image_metrics(black, white)
    assert table.loc[0, "mse"] == 1.0 and table.loc[0, "mae"] == 1.0
    assert table.loc[0, "psnr"] == 0.0
    assert table.loc[0, "ssim"] == pytest.approx(expected_ssim, rel=1e-12)
    assert to_numpy(metrics.psnr(black, white))[0] == pytest.approx(0.0, abs=1e-6)
    assert to_numpy(metrics.ssim(black, white))[0] == pytest.approx(
        expected_ssim, rel=1e-5
    )


def test_mismatched_shapes_name_both_shapes():
    a = np.zeros((2, 16, 16, 3), np.float32)
    b = np.zeros((2, 16, 18, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 16, 16, 3\).*\(2, 16, 18, 3\)"):
        metrics.image_metrics(a, b)
    for function in KERAS_FORMS.values():
        with pytest.raises(ValueError, match=r"\(2, 16, 16, 3\).*\(2, 16, 18, 3\)"):
            function(a, b)


def test_images_smaller_than_the_window_are_refused():
    small = np.zeros((1, 10, 12, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(1, 10, 12, 3\)"):
        metrics.image_metrics(small, small)
    with pytest.raises(ValueError, match=r"\(1, 10, 12, 3\)"):
        metrics.ssim(small, small)


def test_bad_rank_and_integer_images_are_refused():
    image = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="batch"):
        metrics.psnr(image, image)
    with pytest.raises(ValueError, match="uint8"):
        metrics.image_metrics(image.astype(np.uint8), image.astype(np.uint8))
    with pytest.raises(ValueError, match=r"\(16, 16\)"):
        metrics.image_metrics(image[..., 0], image[..., 0])


def test_keras_ssim_matches_tf_image_ssim(pair):
    tf = pytest.importorskip("tensorflow")
    target, prediction = pair
    ours = to_numpy(metrics.ssim(target, prediction))
    reference = tf.image.ssim(target, prediction, max_val=1.0).numpy()
    # Measured: 4e-7 (random), 6e-6 (smooth); both are float32 rounding.
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)


def test_numpy_ssim_matches_keras_ssim(pair):
    target, prediction = pair
    table = metrics.image_metrics(target, prediction)
    keras_values = to_numpy(metrics.ssim(target, prediction))
    # Measured: about 1e-7 on both.
    np.testing.assert_allclose(table["ssim"], keras_values, rtol=0, atol=1e-5)


def test_numpy_ssim_matches_skimage(pair):
    target, prediction = pair
    table = metrics.image_metrics(target, prediction)
    # skimage filters with reflected borders, then averages the map after cropping
    # (win_size - 1) // 2 = 5 pixels per side: that leaves exactly our valid map,
    # so in float64 both agree to rounding (measured 4e-15).
    reference = [
        structural_similarity(
            t.astype(np.float64), p.astype(np.float64), channel_axis=-1, **SKIMAGE_SSIM
        )
        for t, p in zip(target, prediction, strict=True)
    ]
    np.testing.assert_allclose(table["ssim"], reference, rtol=0, atol=1e-10)
    # With float32 inputs skimage computes in float32 (measured up to 1e-6).
    reference32 = [
        structural_similarity(t, p, channel_axis=-1, **SKIMAGE_SSIM)
        for t, p in zip(target, prediction, strict=True)
    ]
    np.testing.assert_allclose(table["ssim"], reference32, rtol=0, atol=1e-5)


def test_psnr_matches_skimage(random_pair):
    target, prediction = random_pair
    reference = [
        peak_signal_noise_ratio(
            t.astype(np.float64), p.astype(np.float64), data_range=1
        )
        for t, p in zip(target, prediction, strict=True)
    ]
    table = metrics.image_metrics(target, prediction)
    np.testing.assert_allclose(table["psnr"], reference, rtol=1e-12)
    keras_values = to_numpy(metrics.psnr(target, prediction))
    np.testing.assert_allclose(keras_values, reference, rtol=0, atol=1e-4)


def test_batch_scores_each_image_not_the_first_or_the_batch_mse():
    rng = np.random.default_rng(3)
    target = rng.random((3, 16, 16, 3), dtype=np.float32)
    noise = rng.normal(0, 1, target.shape).astype(np.float32)
    scales = np.array([0.003, 0.03, 0.3], np.float32)[:, None, None, None]
    prediction = target + scales * noise
    for name, function in KERAS_FORMS.items():
        batch = to_numpy(function(target, prediction))
        singles = [
            to_numpy(function(target[i : i + 1], prediction[i : i + 1]))[0]
            for i in range(3)
        ]
        assert batch.shape == (3,), name
        np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.ptp(batch) > 0, name  # not the first image's value repeated
    per_image = metrics.image_metrics(target, prediction)["psnr"].to_numpy()
    batch_mse = np.mean((prediction.astype(np.float64) - target) ** 2)
    psnr_of_batch_mse = -10 * np.log10(batch_mse)
    mean_of_keras = to_numpy(metrics.psnr(target, prediction)).mean()
    assert mean_of_keras == pytest.approx(per_image.mean(), abs=1e-4)
    # Errors spanning two orders of magnitude: the two averages differ by > 10 dB.
    assert per_image.mean() - psnr_of_batch_mse > 10


def test_keras_forms_equal_numpy_forms(random_pair, smooth_pair):
    for target, prediction in (random_pair, smooth_pair):
        table = metrics.image_metrics(target, prediction)
        for name, function in KERAS_FORMS.items():
            keras_values = to_numpy(function(target, prediction))
            tolerance = 1e-4 if name == "psnr" else 1e-5
            np.testing.assert_allclose(
                keras_values, table[name], rtol=0, atol=tolerance, err_msg=name
            )


def test_image_metrics_frame_for_one_image(random_pair):
    target, prediction = random_pair
    table = metrics.image_metrics(target[0], prediction[0])
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["mse", "mae", "psnr", "ssim"]
    assert len(table) == 1
    assert all(dtype == np.float64 for dtype in table.dtypes)
    batch_table = metrics.image_metrics(target, prediction)
    pd.testing.assert_series_equal(table.iloc[0], batch_table.iloc[0])


def test_float16_inputs_compute_in_float32(random_pair):
    target, prediction = random_pair
    values = metrics.ssim(target.astype(np.float16), prediction.astype(np.float16))
    assert keras.backend.standardize_dtype(values.dtype) == "float32"
    reference = to_numpy(metrics.ssim(target, prediction))
    np.testing.assert_allclose(to_numpy(values), reference, atol=1e-3)


def test_metrics_work_in_model_compile():
    rng = np.random.default_rng(4)
    inputs = rng.random((6, 16, 16, 3), dtype=np.float32)
    targets = rng.random((6, 16, 16, 3), dtype=np.float32)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(3, 1)])
    model.compile(loss="mse", metrics=list(KERAS_FORMS.values()))
    logs = model.evaluate(inputs, targets, batch_size=4, verbose=0, return_dict=True)
    predictions = model.predict(inputs, verbose=0)
    expected = metrics.image_metrics(targets, predictions).mean()
    for name in KERAS_FORMS:
        # Keras averages per-image values over all images, across uneven batches.
        assert logs[name] == pytest.approx(expected[name], rel=1e-4), name


def test_rgb_to_y_bt601():
    colours = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    expected = [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966]
    np.testing.assert_allclose(metrics.rgb_to_y(colours), expected, rtol=1e-12)
    assert metrics.rgb_to_y(np.zeros((2, 5, 4, 3))).shape == (2, 5, 4)
    with pytest.raises(ValueError, match=r"\(5, 4\)"):
        metrics.rgb_to_y(np.zeros((5, 4)))


def direct_y(image):
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return 16 + 65.481 * r + 128.553 * g + 24.966 * b


def test_y_psnr_matches_the_direct_formula():
    rng = np.random.default_rng(5)
    hr = rng.random((20, 22, 3))
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1)
    for shave in (0, 2):
        crop = (slice(shave, 20 - shave), slice(shave, 22 - shave))
        error = np.mean((direct_y(hr[crop]) - direct_y(sr[crop])) ** 2)
        value = metrics.y_psnr(hr, sr, shave)
        assert isinstance(value, float)
        assert value == pytest.approx(10 * np.log10(255**2 / error), rel=1e-12)


def test_shave_removes_exactly_the_border():
    rng = np.random.default_rng(6)
    hr = rng.random((24, 24, 3))
    sr = hr.copy()
    border = 3
    sr[:border] = 0.0
    sr[-border:] = 1.0
    sr[:, :border] = 0.5
    sr[:, -border:] = 0.25
    assert metrics.y_psnr(hr, sr, border) == metrics.PSNR_CAP_DB
    assert metrics.y_ssim(hr, sr, border) == pytest.approx(1.0, abs=1e-12)
    assert metrics.y_psnr(hr, sr, border - 1) < 40
    assert metrics.y_ssim(hr, sr, border - 1) < 1 - 1e-4


def test_y_ssim_matches_skimage_on_y():
    rng = np.random.default_rng(7)
    hr = smooth_images(rng, (1, 30, 28, 3))[0].astype(np.float64)
    sr = np.clip(hr + rng.normal(0, 0.02, hr.shape), 0, 1)
    shave = 2
    crop = (slice(shave, -shave), slice(shave, -shave))
    settings = {**SKIMAGE_SSIM, "data_range": 255.0}
    reference = structural_similarity(
        direct_y(hr[crop]), direct_y(sr[crop]), **settings
    )
    value = metrics.y_ssim(hr, sr, shave)
    assert isinstance(value, float)
    assert value == pytest.approx(reference, abs=1e-10)


@pytest.mark.parametrize(
    ("hr_shape", "sr_shape", "shave", "message"),
    [
        ((16, 16), (16, 16), 0, "RGB"),
        ((16, 16, 1), (16, 16, 1), 0, "RGB"),
        ((16, 16, 3), (16, 17, 3), 0, r"\(16, 17, 3\)"),
        ((16, 16, 3), (16, 16, 3), -1, "shave"),
        ((16, 16, 3), (16, 16, 3), 3, "10x10"),
    ],
)
def test_benchmark_protocol_refuses_bad_input(hr_shape, sr_shape, shave, message):
    with pytest.raises(ValueError, match=message):
        metrics.y_ssim(np.zeros(hr_shape), np.zeros(sr_shape), shave)
    if message != "10x10":  # PSNR needs one pixel only
        with pytest.raises(ValueError, match=message):
            metrics.y_psnr(np.zeros(hr_shape), np.zeros(sr_shape), shave)
