"""Named training losses built on the metrics of :mod:`srkit.metrics`.

This module owns the loss functions the steps train with, by name: ``mse``, ``mae``,
``psnr`` (-PSNR), ``ssim`` (1 - SSIM), ``psnr_ssim`` (-PSNR - SSIM), ``mse_ssim`` (MSE -
SSIM) and ``psnr_over_ssim`` (-PSNR / (1 - SSIM)). Each loss takes batches (n, h, w, c)
in [0, 1] and returns one value per image, shape (n,), which Keras averages over the
batch. They use ``keras.ops`` only (through :mod:`srkit.metrics`), compute in float32,
and are finite with finite gradients for identical, all-black, all-white and random
pairs:

- PSNR uses the MSE floor of :data:`srkit.metrics.MSE_FLOOR`, so identical images
  give -100 dB (``-PSNR_CAP_DB``) instead of -infinity; below the floor the
  gradient of the PSNR term is zero (the floor is a constant there), which is
  harmless because the images already agree to 1e-5 per pixel (RMS).
- SSIM has no square root or logarithm; its denominators contain C1 = 1e-4 and
  C2 = 9e-4, so constant images (zero variance) keep finite gradients.
- ``psnr_over_ssim`` divides by ``max(1 - SSIM, 0.05)`` (:data:`SSIM_GAP_FLOOR`).
  It assumes PSNR > 0 dB (MSE < 1), true for predictions near [0, 1]; for wildly
  out-of-range outputs the quotient rewards a lower SSIM, so prefer another loss
  for training from scratch on unnormalised data.

The functions are registered with Keras (``srkit>loss_NAME``) so that a model
compiled with them can be saved; reload it with ``compile=False`` and compile again.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import pandas as pd
from keras import ops

from srkit import metrics

__all__ = ["NAMES", "SSIM_GAP_FLOOR", "describe", "get", "table"]

#: name -> (loss function, LaTeX formula), in the order the report introduces them;
#: filled by :func:`_register` below.
_REGISTRY: dict[str, tuple[Callable, str]] = {}

#: Smallest value of ``1 - SSIM`` in ``psnr_over_ssim``. Without a floor the loss
#: is -100/0 for identical images. It is also what keeps one nearly flat window
#: from steering a whole batch: the loss is averaged over images, and an image's
#: weight grows as 1 / (1 - SSIM), its SSIM gradient as 1 / (1 - SSIM)^2. On 24 px
#: training windows of real photos at bicubic quality, 1 - SSIM at x2 was 0.03-0.29
#: on textured windows and 0.005-0.016 on flat ones (sky, walls), whose loss was up
#: to 65 times that of a textured window (-10,620 against -162 to -967). With a floor
#: of 1e-3 the R4 model, started at bicubic, learned nothing in 300 steps (Set5 at
#: bicubic's PSNR to 0.01 dB); with 0.05 it gained about 1 dB. Below the floor an
#: image trains on its PSNR alone, scaled by 1 / 0.05; the study's own 288 px
#: targets hold far fewer wholly flat images.
SSIM_GAP_FLOOR = 0.05


def _register(name: str, formula: str):
    """Register a loss under NAME: with Keras (``srkit>loss_NAME``) and here."""

    def decorate(function):
        function.__name__ = name
        function.__qualname__ = name
        registered = keras.saving.register_keras_serializable(
            package="srkit", name=f"loss_{name}"
        )(function)
        _REGISTRY[name] = (registered, formula)
        return registered

    return decorate


@_register(
    "mse",
    r"\mathcal{L}_{\mathrm{mse}} = \mathrm{MSE}(y, \hat{y}) = "
    r"\frac{1}{N} \sum_{i=1}^{N} (\hat{y}_i - y_i)^2",
)
def _mse(y_true, y_pred):
    return metrics.mse(y_true, y_pred)


@_register(
    "mae",
    r"\mathcal{L}_{\mathrm{mae}} = \mathrm{MAE}(y, \hat{y}) = "
    r"\frac{1}{N} \sum_{i=1}^{N} \lvert \hat{y}_i - y_i \rvert",
)
def _mae(y_true, y_pred):
    return metrics.mae(y_true, y_pred)


@_register(
    "psnr",
    r"\mathcal{L}_{\mathrm{psnr}} = -\mathrm{PSNR}(y, \hat{y}) = "
    r"10 \log_{10} \max\left(\mathrm{MSE}(y, \hat{y}), "
    r"10^{-10}\right)",
)
def _psnr(y_true, y_pred):
    return -metrics.psnr(y_true, y_pred)


@_register(
    "ssim",
    r"\mathcal{L}_{\mathrm{ssim}} = 1 - \mathrm{SSIM}(y, \hat{y})",
)
def _ssim(y_true, y_pred):
    return 1.0 - metrics.ssim(y_true, y_pred)


@_register(
    "psnr_ssim",
    r"\mathcal{L}_{\mathrm{psnr\_ssim}} = -\mathrm{PSNR}(y, "
    r"\hat{y}) - \mathrm{SSIM}(y, \hat{y})",
)
def _psnr_ssim(y_true, y_pred):
    return -metrics.psnr(y_true, y_pred) - metrics.ssim(y_true, y_pred)


@_register(
    "mse_ssim",
    r"\mathcal{L}_{\mathrm{mse\_ssim}} = \mathrm{MSE}(y, \hat{y}) "
    r"- \mathrm{SSIM}(y, \hat{y})",
)
def _mse_ssim(y_true, y_pred):
    return metrics.mse(y_true, y_pred) - metrics.ssim(y_true, y_pred)


@_register(
    "psnr_over_ssim",
    r"\mathcal{L}_{\mathrm{psnr\_over\_ssim}} = "
    r"-\frac{\mathrm{PSNR}(y, \hat{y})}{\max\left(1 - "
    r"\mathrm{SSIM}(y, \hat{y}), 0.05\right)}",
)
def _psnr_over_ssim(y_true, y_pred):
    gap = ops.maximum(1.0 - metrics.ssim(y_true, y_pred), SSIM_GAP_FLOOR)
    return -metrics.psnr(y_true, y_pred) / gap


#: Loss names, in the order the report introduces them.
NAMES: tuple[str, ...] = tuple(_REGISTRY)


def _check_name(name) -> str:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(NAMES)}")
    return name


def get(name: str) -> Callable:
    """Return the loss function called ``name``.

    Args:
        name: one of :data:`NAMES`.

    Returns:
        A function ``loss(y_true, y_pred)`` taking float batches (n, h, w, c) in
        [0, 1] and returning a float32 tensor (n,) of per-image losses; its
        ``__name__`` is ``name``. It can be passed to ``model.compile(loss=...)``.

    Raises:
        ValueError: if ``name`` is not in :data:`NAMES` (the message lists them).
    """
    return _REGISTRY[_check_name(name)][0]


def describe(name: str) -> str:
    """Return the formula of a loss as LaTeX, for the book.

    The string has no math delimiters: wrap it in ``$$ ... $$`` in Markdown or
    pass it to ``IPython.display.Math``. ``y`` is the target, ``\\hat{y}`` the
    prediction, ``N`` the number of values (pixels times channels) of one image;
    PSNR and SSIM are those of :mod:`srkit.metrics`.

    Args:
        name: one of :data:`NAMES`.

    Returns:
        The LaTeX formula of the per-image loss.

    Raises:
        ValueError: if ``name`` is not in :data:`NAMES` (the message lists them).
    """
    return _REGISTRY[_check_name(name)][1]


def table() -> pd.DataFrame:
    """Return every loss with its formula, one row per name in :data:`NAMES` order.

    Returns:
        DataFrame with string columns ``name`` and ``formula``; the formula is the
        LaTeX of :func:`describe` wrapped in ``$ ... $`` so that notebooks and the
        book render it as inline math.
    """
    return pd.DataFrame(
        {"name": list(NAMES), "formula": [f"${describe(name)}$" for name in NAMES]}
    )
