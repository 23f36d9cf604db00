"""Tests for srkit.losses: names, known values, finiteness and saving."""

import keras
import numpy as np
import pytest

from srkit import losses, metrics


def make_pair(kind):
    rng = np.random.default_rng(0)
    shape = (2, 16, 16, 3)
    if kind == "identical":
        target = rng.random(shape, dtype=np.float32)
        return target, target.copy()
    if kind == "black":
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    if kind == "white":
        return np.ones(shape, np.float32), np.ones(shape, np.float32)
    if kind == "black_white":
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    return rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)


PAIRS = ("identical", "black", "white", "black_white", "random")


def test_names_and_get():
    assert losses.NAMES == (
        "mse",
        "mae",
        "psnr",
        "ssim",
        "psnr_ssim",
        "mse_ssim",
        "psnr_over_ssim",
    )
    for name in losses.NAMES:
        assert losses.get(name).__name__ == name
        assert losses.describe(name).strip()
    frame = losses.table()
    assert list(frame["name"]) == list(losses.NAMES)
    assert frame["formula"].str.startswith("$").all()


def value_and_gradient(loss, target, prediction):
    """Per-image loss values and the gradient of their mean, on the active backend.

    Returns numpy arrays; the gradient is None when the backend gives none.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(prediction)
        with tf.GradientTape() as tape:
            values = loss(target, variable)
            total = tf.reduce_mean(values)
        gradient = tape.gradient(total, variable)
        return values.numpy(), None if gradient is None else gradient.numpy()
    if backend == "jax":
        import jax

        values = loss(target, prediction)
        gradient = jax.grad(lambda p: keras.ops.mean(loss(target, p)))(prediction)
        return np.asarray(values), np.asarray(gradient)
    pytest.skip(f"no gradient helper for backend {backend}")


@pytest.mark.parametrize("bad", ["psnr-ssim", "", None])
def test_unknown_name_lists_names(bad):
    with pytest.raises(ValueError, match="psnr_over_ssim"):
        losses.get(bad)
    with pytest.raises(ValueError, match="mse_ssim"):
        losses.describe(bad)


@pytest.mark.parametrize("name", losses.NAMES)
@pytest.mark.parametrize("kind", PAIRS)
def test_value_and_gradient_are_finite(name, kind):
    target, prediction = make_pair(kind)
    values, gradient = value_and_gradient(losses.get(name), target, prediction)
    assert values.shape == (2,)
    assert np.all(np.isfinite(values)), (name, kind, values)
    assert gradient is not None
    assert gradient.shape == prediction.shape
    assert np.all(np.isfinite(gradient)), (name, kind)


def test_known_values_for_identical_images():
    target, prediction = make_pair("identical")

    def value(name):
        return keras.ops.convert_to_numpy(losses.get(name)(target, prediction))

    np.testing.assert_allclose(value("ssim"), 0.0, atol=1e-6)
    np.testing.assert_allclose(value("psnr"), -metrics.PSNR_CAP_DB, rtol=1e-6)
    np.testing.assert_allclose(value("mse_ssim"), -1.0, atol=1e-6)
    np.testing.assert_allclose(value("psnr_ssim"), -metrics.PSNR_CAP_DB - 1, rtol=1e-6)
    np.testing.assert_allclose(value("mse"), 0.0)
    np.testing.assert_allclose(value("mae"), 0.0)
    expected = -metrics.PSNR_CAP_DB / losses.SSIM_GAP_FLOOR
    np.testing.assert_allclose(value("psnr_over_ssim"), expected, rtol=1e-6)


def test_losses_follow_their_formulas():
    target, prediction = make_pair("random")
    table = metrics.image_metrics(target, prediction)
    psnr, ssim, mse = table["psnr"], table["ssim"], table["mse"]
    expected = {
        "mse": mse,
        "mae": table["mae"],
        "psnr": -psnr,
        "ssim": 1 - ssim,
        "psnr_ssim": -psnr - ssim,
        "mse_ssim": mse - ssim,
        "psnr_over_ssim": -psnr / (1 - ssim),
    }
    for name, reference in expected.items():
        values = keras.ops.convert_to_numpy(losses.get(name)(target, prediction))
        np.testing.assert_allclose(values, reference, rtol=1e-4, err_msg=name)


def test_model_compiled_with_a_loss_saves_and_reloads(tmp_path):
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(3, 1)], name="tiny"
    )
    model.compile(
        optimizer="adam",
        loss=losses.get("psnr_over_ssim"),
        metrics=[metrics.psnr, metrics.ssim],
    )
    target, prediction = make_pair("random")
    model.fit(prediction, target, epochs=1, batch_size=2, verbose=0)
    path = tmp_path / "tiny.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(
        reloaded.predict(prediction, verbose=0), model.predict(prediction, verbose=0)
    )
