"""Image quality metrics: one definition, three forms.

This module owns the definitions of MSE, MAE, PSNR (peak signal-to-noise ratio) and SSIM
(structural similarity) used everywhere in the report. Each metric exists in three forms
that share one definition:

- Keras forms ``mse``, ``mae``, ``psnr``, ``ssim``: written with ``keras.ops`` only,
  so they run on the TensorFlow and JAX backends. They take batches (n, h, w, c) and
  return one value per image, shape (n,), so they can be passed directly to
  ``model.compile(metrics=[...])`` (Keras then averages the per-image values) and
  are the building blocks of :mod:`srkit.losses`. They always compute in float32,
  also under mixed precision.
- The numpy evaluator :func:`image_metrics`: the same four metrics per image in
  float64, as a DataFrame. Every number the book reports comes from here.
- The benchmark protocol :func:`rgb_to_y`, :func:`y_psnr`, :func:`y_ssim`: PSNR and
  SSIM on the luma channel with a shaved border, the convention of published
  super-resolution tables.

Definitions (images in [0, 1], peak value 1):

- ``MSE`` and ``MAE``: mean of the squared / absolute difference over all pixels
  and channels of one image.
- ``PSNR = 10 log10(1 / max(MSE, 1e-10))``. The floor makes identical images score a
  finite :data:`PSNR_CAP_DB` = 100 dB instead of infinity, so averages, tables and
  losses stay finite. The gradient of PSNR is zero while MSE is below the floor.
- ``SSIM`` exactly as ``tf.image.ssim`` (Wang et al. 2004): 11x11 Gaussian window
  with sigma 1.5, K1 = 0.01, K2 = 0.03, peak value 1, "valid" filtering (no padding,
  so the SSIM map is (h - 10, w - 10)), computed per channel; the value of one image
  is the mean of the map over positions and channels. Images smaller than 11x11
  raise ``ValueError`` (``tf.image.ssim`` would silently shrink the window).
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
from keras import ops
from scipy import ndimage

__all__ = [
    "MSE_FLOOR",
    "PSNR_CAP_DB",
    "SSIM_FILTER_SIGMA",
    "SSIM_FILTER_SIZE",
    "SSIM_K1",
    "SSIM_K2",
    "image_metrics",
    "mae",
    "mse",
    "psnr",
    "rgb_to_y",
    "ssim",
    "y_psnr",
    "y_ssim",
]

#: Smallest MSE used in PSNR (relative to a peak value of 1): identical images
#: score ``10 * log10(1 / 1e-10)`` = 100 dB instead of infinity.
MSE_FLOOR = 1e-10
#: PSNR of identical images, in dB: the value implied by :data:`MSE_FLOOR`.
PSNR_CAP_DB = 100.0
#: SSIM window as in Wang et al. (2004) and ``tf.image.ssim``.
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
#: SSIM stabilising constants: C1 = (K1 L)^2, C2 = (K2 L)^2 with L the data range.
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# Images are RGB in [0, 1]: the peak value is 1.
_MAX_VAL = 1.0
# Benchmark protocol: Y is computed on the 8-bit scale, so its data range is 255.
_Y_DATA_RANGE = 255.0
# ITU-R BT.601 luma for RGB in [0, 1], giving Y in [16, 235] (studio swing), the
# coefficients of Matlab's rgb2ycbcr used by published super-resolution tables.
_BT601_OFFSET = 16.0
_BT601_WEIGHTS = (65.481, 128.553, 24.966)
# Images per chunk in the numpy SSIM, to bound float64 temporaries on big batches.
_CHUNK = 16


def _gaussian_window() -> np.ndarray:
    """Return the normalised 1-D Gaussian window of SSIM, float64 (11,).

    The 2-D window of ``tf.image.ssim`` (a softmax over ``-(i^2 + j^2) / (2 s^2)``)
    is exactly the outer product of this window with itself.
    """
    coords = np.arange(SSIM_FILTER_SIZE, dtype=np.float64)
    coords -= (SSIM_FILTER_SIZE - 1) / 2.0
    window = np.exp(-0.5 * coords**2 / SSIM_FILTER_SIGMA**2)
    return window / window.sum()


_WINDOW_1D = _gaussian_window()
_WINDOW_2D = np.outer(_WINDOW_1D, _WINDOW_1D)


# --------------------------------------------------------------------------- keras


def _static_shape(tensor) -> tuple:
    """Return the static shape as a tuple of int or None."""
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _prepare(y_true, y_pred, name: str, min_size: int = 1):
    """Convert both batches to float32 tensors and check their static shapes.

    Dimensions that are unknown while tracing (None) are not checked.
    """
    y_true = ops.cast(ops.convert_to_tensor(y_true), "float32")
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    shape_true, shape_pred = _static_shape(y_true), _static_shape(y_pred)
    for shape in (shape_true, shape_pred):
        if len(shape) != 4:
            raise ValueError(
                f"{name}: expected batches of shape (n, h, w, c), got y_true "
                f"{shape_true} and y_pred {shape_pred}; add a batch axis to "
                "single images"
            )
    for dim_true, dim_pred in zip(shape_true[1:], shape_pred[1:], strict=True):
        if dim_true is not None and dim_pred is not None and dim_true != dim_pred:
            raise ValueError(
                f"{name}: y_true shape {shape_true} does not match y_pred shape "
                f"{shape_pred}"
            )
    for shape in (shape_true, shape_pred):
        if any(d is not None and d < min_size for d in shape[1:3]):
            raise ValueError(
                f"{name}: images of shape {shape} are smaller than the "
                f"{min_size}x{min_size} SSIM window; use images of at least "
                f"{min_size}x{min_size} pixels"
            )
    return y_true, y_pred


@keras.saving.register_keras_serializable(package="srkit", name="mse")
def mse(y_true, y_pred):
    """Mean squared error of each image (Keras metric).

    Args:
        y_true: float (n, h, w, c), reference images in [0, 1].
        y_pred: float (n, h, w, c), predicted images, same shape.

    Returns:
        float32 tensor (n,): the mean of the squared difference of each image.

    Raises:
        ValueError: if a batch is not 4-D or the known shapes differ.
    """
    y_true, y_pred = _prepare(y_true, y_pred, "mse")
    return ops.mean(ops.square(y_pred - y_true), axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package="srkit", name="mae")
def mae(y_true, y_pred):
    """Mean absolute error of each image (Keras metric).

    Args:
        y_true: float (n, h, w, c), reference images in [0, 1].
        y_pred: float (n, h, w, c), predicted images, same shape.

    Returns:
        float32 tensor (n,): the mean of the absolute difference of each image.

    Raises:
        ValueError: if a batch is not 4-D or the known shapes differ.
    """
    y_true, y_pred = _prepare(y_true, y_pred, "mae")
    return ops.mean(ops.abs(y_pred - y_true), axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package="srkit", name="psnr")
def psnr(y_true, y_pred):
    """Peak signal-to-noise ratio of each image in dB, peak value 1 (Keras metric).

    ``PSNR = 10 log10(1 / max(MSE, 1e-10))``: identical images give the finite cap
    :data:`PSNR_CAP_DB` (100 dB). Below the floor the gradient is zero.

    Args:
        y_true: float (n, h, w, c), reference images in [0, 1].
        y_pred: float (n, h, w, c), predicted images, same shape.

    Returns:
        float32 tensor (n,): PSNR of each image in dB, at most 100.

    Raises:
        ValueError: if a batch is not 4-D or the known shapes differ.
    """
    y_true, y_pred = _prepare(y_true, y_pred, "psnr")
    error = ops.mean(ops.square(y_pred - y_true), axis=(1, 2, 3))
    error = ops.maximum(error, MSE_FLOOR)
    # -10 log10(MSE) is 10 log10(peak^2 / MSE) with peak 1; the minimum only
    # removes float32 rounding above the cap.
    return ops.minimum(-10.0 * ops.log10(error), PSNR_CAP_DB)


@keras.saving.register_keras_serializable(package="srkit", name="ssim")
def ssim(y_true, y_pred):
    """Structural similarity of each image, as ``tf.image.ssim`` (Keras metric).

    11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, peak value 1, valid
    filtering, per channel, averaged over the SSIM map and the channels. The
    filtering is a depthwise convolution in float32; inputs of any float dtype
    (float16 under mixed precision) are cast to float32 first. The (co)variances
    are taken from images centred on their mean (equal in exact arithmetic, less
    float32 cancellation), so values are within float32 rounding of
    ``tf.image.ssim`` (a few 1e-6 on images in [0, 1]) and closer to the float64
    :func:`image_metrics`.

    Args:
        y_true: float (n, h, w, c), reference images in [0, 1], h and w >= 11.
        y_pred: float (n, h, w, c), predicted images, same shape.

    Returns:
        float32 tensor (n,): SSIM of each image, in [-1, 1] (1 for identical).

    Raises:
        ValueError: if a batch is not 4-D, the known shapes differ, a known image
            side is below 11 pixels or the number of channels is unknown.
    """
    y_true, y_pred = _prepare(y_true, y_pred, "ssim", min_size=SSIM_FILTER_SIZE)
    channels = _static_shape(y_true)[-1] or _static_shape(y_pred)[-1]
    if channels is None:
        raise ValueError(
            "ssim: the number of channels of y_true and y_pred is unknown "
            f"({_static_shape(y_true)}, {_static_shape(y_pred)}); give the model "
            "a static channel dimension"
        )
    kernel = np.tile(_WINDOW_2D[:, :, None, None], (1, 1, channels, 1))
    kernel = ops.convert_to_tensor(kernel.astype(np.float32))

    def local_mean(images):
        return ops.depthwise_conv(
            images, kernel, strides=1, padding="valid", data_format="channels_last"
        )

    c1 = (SSIM_K1 * _MAX_VAL) ** 2
    c2 = (SSIM_K2 * _MAX_VAL) ** 2
    mean_true = local_mean(y_true)
    mean_pred = local_mean(y_pred)
    num0 = mean_true * mean_pred * 2.0
    den0 = ops.square(mean_true) + ops.square(mean_pred)
    luminance = (num0 + c1) / (den0 + c1)
    # (Co)variances do not change when an image is shifted by a constant; taking
    # them from images centred on their own mean avoids most of the float32
    # cancellation in E[x^2] - E[x]^2 on smooth regions. Otherwise the same
    # operations as tf.image.ssim's _ssim_helper (and identical images give 1).
    centred_true = y_true - ops.stop_gradient(
        ops.mean(y_true, axis=(1, 2), keepdims=True)
    )
    centred_pred = y_pred - ops.stop_gradient(
        ops.mean(y_pred, axis=(1, 2), keepdims=True)
    )
    local_true = local_mean(centred_true)
    local_pred = local_mean(centred_pred)
    num0 = local_true * local_pred * 2.0
    den0 = ops.square(local_true) + ops.square(local_pred)
    num1 = local_mean(centred_true * centred_pred) * 2.0
    den1 = local_mean(ops.square(centred_true) + ops.square(centred_pred))
    contrast_structure = (num1 - num0 + c2) / (den1 - den0 + c2)
    return ops.mean(luminance * contrast_structure, axis=(1, 2, 3))


# --------------------------------------------------------------------------- numpy


def _as_float_image(array, name: str, what: str) -> np.ndarray:
    """Return ``array`` as float64, refusing integer images (0-255 scale)."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{name}: {what} has dtype {array.dtype}; expected float images in "
            "[0, 1] (divide 8-bit images by 255)"
        )
    return array.astype(np.float64)


def _as_batches(y_true, y_pred, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return both inputs as float64 (n, h, w, c) batches, checking shapes."""
    y_true = _as_float_image(y_true, name, "y_true")
    y_pred = _as_float_image(y_pred, name, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: y_true shape {y_true.shape} does not match y_pred shape "
            f"{y_pred.shape}"
        )
    if y_true.ndim == 3:
        y_true, y_pred = y_true[None], y_pred[None]
    if y_true.ndim != 4:
        raise ValueError(
            f"{name}: expected images (h, w, c) or batches (n, h, w, c), got shape "
            f"{y_true.shape}"
        )
    if min(y_true.shape[1:3]) < SSIM_FILTER_SIZE:
        raise ValueError(
            f"{name}: images of shape {y_true.shape} are smaller than the "
            f"{SSIM_FILTER_SIZE}x{SSIM_FILTER_SIZE} SSIM window; use images of at "
            f"least {SSIM_FILTER_SIZE}x{SSIM_FILTER_SIZE} pixels"
        )
    return y_true, y_pred


def _local_mean(images: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean, valid part only, of float64 (n, h, w, c).

    A separable correlation along h then w; the border rows and columns whose
    window reaches past the image are cropped, which leaves exactly the valid
    convolution, shape (n, h - 10, w - 10, c).
    """
    radius = (SSIM_FILTER_SIZE - 1) // 2
    filtered = ndimage.correlate1d(images, _WINDOW_1D, axis=1, mode="constant")
    filtered = filtered[:, radius:-radius]
    filtered = ndimage.correlate1d(filtered, _WINDOW_1D, axis=2, mode="constant")
    return filtered[:, :, radius:-radius]


def _ssim_numpy(y_true: np.ndarray, y_pred: np.ndarray, data_range: float):
    """SSIM of each image of float64 (n, h, w, c) batches -> float64 (n,)."""
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    values = []
    for start in range(0, len(y_true), _CHUNK):
        a = y_true[start : start + _CHUNK]
        b = y_pred[start : start + _CHUNK]
        mean_a, mean_b = _local_mean(a), _local_mean(b)
        num0 = 2.0 * mean_a * mean_b
        den0 = mean_a**2 + mean_b**2
        luminance = (num0 + c1) / (den0 + c1)
        num1 = 2.0 * _local_mean(a * b)
        den1 = _local_mean(a**2 + b**2)
        contrast_structure = (num1 - num0 + c2) / (den1 - den0 + c2)
        values.append((luminance * contrast_structure).mean(axis=(1, 2, 3)))
    return np.concatenate(values)


def _psnr_from_mse(error, data_range: float):
    """PSNR in dB from MSE, with the floor of :data:`MSE_FLOOR` (relative)."""
    relative = np.maximum(
        np.asarray(error, dtype=np.float64) / data_range**2, MSE_FLOOR
    )
    return np.minimum(-10.0 * np.log10(relative), PSNR_CAP_DB)


def image_metrics(y_true, y_pred) -> pd.DataFrame:
    """MSE, MAE, PSNR and SSIM of each image, in float64 (the numpy evaluator).

    Same definitions as the Keras forms :func:`mse`, :func:`mae`, :func:`psnr` and
    :func:`ssim` (tested against each other), computed in float64 with a separable
    valid Gaussian filter. Non-finite pixels propagate as NaN.

    Args:
        y_true: float (n, h, w, c) or one image (h, w, c), references in [0, 1];
            h and w >= 11.
        y_pred: float, same shape, predictions.

    Returns:
        DataFrame with one row per image (index 0..n-1) and float64 columns
        ``mse``, ``mae``, ``psnr`` (dB, at most 100) and ``ssim``.

    Raises:
        ValueError: on integer dtypes, different shapes, a rank other than 3 or 4,
            or images smaller than 11x11.
    """
    y_true, y_pred = _as_batches(y_true, y_pred, "image_metrics")
    difference = y_pred - y_true
    errors = np.mean(difference**2, axis=(1, 2, 3))
    return pd.DataFrame(
        {
            "mse": errors,
            "mae": np.mean(np.abs(difference), axis=(1, 2, 3)),
            "psnr": _psnr_from_mse(errors, _MAX_VAL),
            "ssim": _ssim_numpy(y_true, y_pred, _MAX_VAL),
        }
    ).astype(np.float64)


# ---------------------------------------------------------------- benchmark protocol


def rgb_to_y(images) -> np.ndarray:
    """Luma Y of ITU-R BT.601 on the 8-bit scale, as Matlab's ``rgb2ycbcr``.

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1], so black
    maps to 16 and white to 235. No rounding to integers is applied.

    Args:
        images: float (..., 3), RGB in [0, 1], e.g. (h, w, 3) or (n, h, w, 3).

    Returns:
        float64 array (...) with the last axis removed, Y in [16, 235].

    Raises:
        ValueError: if the last axis is not 3 or the dtype is not floating.
    """
    images = _as_float_image(images, "rgb_to_y", "images")
    if images.ndim < 1 or images.shape[-1] != 3:
        raise ValueError(
            f"rgb_to_y: expected RGB images with a last axis of 3, got shape "
            f"{images.shape}"
        )
    return _BT601_OFFSET + images @ np.asarray(_BT601_WEIGHTS)


def _shaved_y(hr, sr, shave, name: str, min_size: int):
    """Check a benchmark pair, shave the border and return both Y planes."""
    hr = _as_float_image(hr, name, "hr")
    sr = _as_float_image(sr, name, "sr")
    if hr.shape != sr.shape:
        raise ValueError(
            f"{name}: hr shape {hr.shape} does not match sr shape {sr.shape}"
        )
    if hr.ndim != 3 or hr.shape[-1] != 3:
        raise ValueError(
            f"{name}: expected one RGB image (h, w, 3), got shape {hr.shape}; "
            "repeat a grayscale image over 3 channels first"
        )
    if isinstance(shave, bool) or not isinstance(shave, (int, np.integer)) or shave < 0:
        raise ValueError(f"{name}: shave must be a non-negative int, got {shave!r}")
    height, width = hr.shape[0] - 2 * shave, hr.shape[1] - 2 * shave
    if min(height, width) < min_size:
        raise ValueError(
            f"{name}: shaving {shave} pixels from an image of shape {hr.shape} "
            f"leaves {height}x{width} pixels; at least {min_size}x{min_size} needed"
        )
    crop = (slice(shave, shave + height), slice(shave, shave + width))
    return rgb_to_y(hr[crop]), rgb_to_y(sr[crop])


def y_psnr(hr, sr, shave: int) -> float:
    """PSNR on the Y channel with a shaved border (benchmark protocol).

    The convention of published super-resolution tables (Set5, Set14, ...; the
    Matlab-style evaluation): crop ``shave`` pixels (usually the scale factor)
    from every border, convert to BT.601 luma Y in [16, 235] (:func:`rgb_to_y`)
    and compute ``10 log10(255^2 / MSE)``. Y is not rounded to 8 bits (Matlab
    scripts that convert uint8 images do round, which can shift the value
    slightly). The MSE floor of :data:`MSE_FLOOR`, relative to 255^2, caps
    identical images at 100 dB.

    Args:
        hr: float (h, w, 3), the high-resolution reference, RGB in [0, 1].
        sr: float (h, w, 3), the super-resolved image, same shape.
        shave: pixels removed from each border, >= 0.

    Returns:
        PSNR in dB as a Python float.

    Raises:
        ValueError: if the images are not float RGB (h, w, 3) of one shape, or
            ``shave`` is negative or leaves no pixels.
    """
    y_hr, y_sr = _shaved_y(hr, sr, shave, "y_psnr", min_size=1)
    return float(_psnr_from_mse(np.mean((y_hr - y_sr) ** 2), _Y_DATA_RANGE))


def y_ssim(hr, sr, shave: int) -> float:
    """SSIM on the Y channel with a shaved border (benchmark protocol).

    As :func:`y_psnr` for cropping and luma, then the SSIM of :func:`ssim`
    (Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03, valid filtering) with a
    data range of 255, as the Matlab ``ssim_index`` of Wang et al. used by
    published super-resolution tables (without its optional downsampling of
    large images).

    Args:
        hr: float (h, w, 3), the high-resolution reference, RGB in [0, 1].
        sr: float (h, w, 3), the super-resolved image, same shape.
        shave: pixels removed from each border, >= 0; at least 11x11 must remain.

    Returns:
        SSIM as a Python float.

    Raises:
        ValueError: if the images are not float RGB (h, w, 3) of one shape, or
            less than 11x11 pixels remain after shaving.
    """
    y_hr, y_sr = _shaved_y(hr, sr, shave, "y_ssim", min_size=SSIM_FILTER_SIZE)
    value = _ssim_numpy(y_hr[None, :, :, None], y_sr[None, :, :, None], _Y_DATA_RANGE)
    return float(value[0])
