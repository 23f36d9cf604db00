"""Figures of the report: samples, predictions, learning curves, bar charts, GIFs.

This module owns how results look. Every function returns a matplotlib ``Figure``
(a :class:`BookFigure`, which notebooks display as PNG) at a fixed resolution
(:data:`DPI`) sized for a book page about :data:`WIDTH_INCHES` wide, with titles,
axis labels and units (PSNR in dB); nothing is saved or closed here. The one
exception is :func:`learning_curves`, which returns a small table when a history is
too short to draw. Only the object-oriented matplotlib API is used (no ``pyplot``
state), so the functions run under any backend, Agg included, and leave no open
figures behind. :func:`show_gif` is the single place that decides how an animated
GIF reaches the HTML book (with its caption above it, :func:`gif_caption`), and
:func:`show_strip` shows its still strip for print. The benchmark page uses
:func:`margin_bars` (margins over bicubic) and :func:`zoom_comparison` (one image,
zoomed, beside its reconstructions); :func:`regime_curves` sets the validation
curves of one model trained with and without the bicubic skip beside bicubic's
line. A step page opens with :func:`answer_figure`: one region of a typical
validation image (median PSNR, busiest region, :func:`choose_crop`) magnified,
input | bicubic | model | target | error change (:func:`compare_crops`), drawn at
its own pixel size; the summary sets several models on one such crop
(:func:`models_figure`, :func:`models_crops`).

Images follow the package convention: float RGB in [0, 1], shape (h, w, 3). Small
images are drawn with nearest-neighbour interpolation so their pixels stay visible.
:func:`best_worst_figure` predicts with :func:`srkit.evaluate.predict_images`,
imported when called, so the rest of the module needs no Keras.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from srkit import evaluate, metrics
from srkit.images import bicubic_upscale
from srkit.vocab import (
    BICUBIC,
    FACTOR_OUTPUTS,
    OUTPUT_FACTORS,
    OUTPUT_TARGETS,
    output_side,
    scale_label,
)

if TYPE_CHECKING:
    from IPython.display import Image as IPythonImage
    from pandas.io.formats.style import Styler

#: Resolution of every figure (dots per inch); PNG output at a fixed size.
DPI = 100
#: Width of a full-width figure in inches (a book page): 750 px at :data:`DPI`, so
#: the book's column (784 px at a 1400 px window) shows it at its own pixels.
WIDTH_INCHES = 7.5
#: Metric name -> axis label, with units.
METRIC_LABELS = {
    "loss": "loss",
    "mse": "MSE",
    "mae": "MAE",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
}
#: Colour of the zoom rectangles.
ZOOM_COLOR = "#ffcc00"
_GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
_SERIES_COLORS = {"this run": "#1f77b4", "original report": "#ff7f0e"}
#: Number format of bar labels per metric.
_VALUE_FORMATS = {"mse": "{:.4f}", "mae": "{:.4f}", "psnr": "{:.2f}", "ssim": "{:.3f}"}


class BookFigure(Figure):
    """A matplotlib ``Figure`` that shows itself as a PNG in notebooks.

    The figures here are made without ``pyplot`` (so nothing is shown twice and no
    global figure list grows), and IPython only knows how to draw a bare ``Figure``
    once ``%matplotlib inline`` has run. ``_repr_png_`` makes the display independent
    of that: the last expression of a cell always becomes an ``image/png`` output at
    :data:`DPI`, which jupyter-book renders as an image.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()


def _figure(width: float, height: float) -> BookFigure:
    return BookFigure(figsize=(width, height), dpi=DPI, layout="constrained")


def _as_image(image, what: str) -> np.ndarray:
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{what} must be float (h, w, 3), got shape {array.shape}")
    return np.clip(array, 0.0, 1.0)


def _show(axes, image: np.ndarray, title: str | None = None) -> None:
    axes.imshow(image, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title, fontsize=9)


# ------------------------------------------------------------------------ data


def sample_grid(subset, n: int = 3) -> Figure:
    """Input/target triplets of a subset: 72 px input, 144 px and 288 px targets.

    Args:
        subset: a :class:`srkit.windows.Subset` (x, y2, y4 float in [0, 1], names).
        n: number of rows (triplets); at most the subset's size is drawn.

    Returns:
        A Figure with n rows of three panels, each titled with its pixel size; each
        row is labelled with the image name.

    Raises:
        ValueError: for n < 1 or an empty subset.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    count = min(int(n), len(subset.x))
    if count == 0:
        raise ValueError("subset is empty: nothing to show")
    names = list(getattr(subset, "names", []) or [])
    figure = _figure(WIDTH_INCHES, 3.0 * count + 0.4)
    grid = figure.subplots(count, 3, squeeze=False)
    columns = (("input", subset.x), ("x2 target", subset.y2), ("x4 target", subset.y4))
    for row in range(count):
        for column, (label, images) in enumerate(columns):
            image = _as_image(images[row], label)
            side = f"{image.shape[0]}x{image.shape[1]} px"
            _show(grid[row, column], image, f"{label}, {side}")
        name = names[row] if row < len(names) else f"image {row}"
        grid[row, 0].set_ylabel(name, fontsize=9)
    figure.suptitle("Input and targets (same crop at three sizes)")
    return figure


# ------------------------------------------------------------------------ predictions


def _zoom_box(zoom, low_side: int) -> tuple[int, int, int]:
    if len(zoom) != 3:
        raise ValueError(f"zoom must be (y, x, size) in input pixels, got {zoom!r}")
    top, left, size = (int(value) for value in zoom)
    if (
        size < 1
        or top < 0
        or left < 0
        or top + size > low_side
        or left + size > low_side
    ):
        raise ValueError(
            f"zoom {zoom!r} (y, x, size in input pixels) must lie inside the "
            f"{low_side} px input"
        )
    return top, left, size


def _metric_text(values, separator: str = " / ") -> str:
    if values is None:
        return ""
    values = dict(values)
    parts = []
    if "psnr" in values and values["psnr"] is not None:
        parts.append(f"PSNR {float(values['psnr']):.2f} dB")
    if "ssim" in values and values["ssim"] is not None:
        parts.append(f"SSIM {float(values['ssim']):.3f}")
    return separator.join(parts)


def _worst_window(prediction: np.ndarray, target: np.ndarray, size: int):
    """(top, left) of the size x size square with the largest mean absolute error."""
    error = np.abs(prediction - target).mean(axis=-1, dtype=np.float64)
    summed = np.pad(error.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    windows = (
        summed[size:, size:]
        - summed[:-size, size:]
        - summed[size:, :-size]
        + summed[:-size, :-size]
    )
    top, left = np.unravel_index(int(np.argmax(windows)), windows.shape)
    return int(top), int(left)


def _outline(axes, top: float, left: float, size: float) -> None:
    axes.add_patch(
        Rectangle(
            (left - 0.5, top - 0.5),
            size,
            size,
            fill=False,
            edgecolor=ZOOM_COLOR,
            linewidth=1.5,
        )
    )


def capped_k(per_image: pd.DataFrame, k: int, scale: int | None = None) -> int:
    """``k`` for a best/worst figure, at most half the distinct images (at least 1).

    Args:
        per_image: a per-image table with an ``index`` column (and ``scale``).
        k: the images wanted on each side.
        scale: count only the rows of this scale when the table has a ``scale``.

    Returns:
        ``max(1, min(k, n_images // 2))``: with 3 validation images, 1.
    """
    rows = per_image
    if scale is not None and "scale" in rows.columns:
        rows = rows[rows["scale"] == scale]
    return max(1, min(int(k), rows["index"].nunique() // 2))


def _best_worst_rows(best, worst, scale, k, metric) -> list[tuple[str, dict]]:
    """The ``("best" | "worst", row)`` pairs of :func:`best_worst_figure`."""
    if worst is None:
        k = capped_k(best, k, scale)
        best, worst = evaluate.best_worst(best, metric=metric, k=k, scale=scale)
    shown = {int(i) for i in best["index"]}
    worst = worst[~worst["index"].astype(int).isin(shown)]  # an image appears once
    chosen = [("best", row) for row in best.to_dict("records")]
    chosen += [("worst", row) for row in worst.to_dict("records")]
    if not chosen:
        raise ValueError("best and worst are both empty: nothing to show")
    return chosen


def best_worst_figure(
    model,
    subset,
    best: pd.DataFrame,
    worst: pd.DataFrame | None = None,
    scale: int = 2,
    k: int = 3,
    metric: str = "psnr",
    zoom: bool = True,
) -> Figure:
    """Best and worst validation images of a model at one scale, with their metrics.

    One row per image (best first, then worst first). Columns: the 72 px input, the
    bicubic upscale, the model's prediction and the target, each upscaled image with
    its PSNR (dB) and SSIM below; with ``zoom``, magnified crops of prediction and
    target of the square (a quarter of the side) where the prediction's mean
    absolute error is largest, outlined on the full views.

    Call it with the two tables of :func:`srkit.evaluate.best_worst`, or with a
    per-image table (``Evaluation.per_image``) as ``best`` and ``worst=None``, in
    which case the k best and worst by ``metric`` are chosen here.

    Args:
        model: the Keras model that was evaluated.
        subset: the :class:`srkit.windows.Subset` the rows index (usually validation).
        best: best rows (columns ``index``, ``psnr``, ``ssim``, usually ``name``), or
            the whole per-image table when ``worst`` is None.
        worst: worst rows, or None.
        scale: the upscaling factor, 2 (``low_upsample``) or 4 (``high_upsample``).
        k: images on each side when choosing here, capped at half the images
            (:func:`capped_k`) so no image is both a best and a worst one.
        metric: ranking metric when choosing here (``psnr``, ``ssim``, ``mse``,
            ``mae``).
        zoom: add the two magnified columns.

    Returns:
        A Figure of len(best) + len(worst) rows and 4 (6 with zoom) columns.

    Raises:
        ValueError: on an unknown scale, a model without that output, or empty tables.
    """
    if scale not in FACTOR_OUTPUTS:
        raise ValueError(
            f"scale must be one of {sorted(FACTOR_OUTPUTS)}, got {scale!r}"
        )
    chosen = _best_worst_rows(best, worst, scale, k, metric)
    indices = [int(row["index"]) for _, row in chosen]
    predictions = evaluate.predict_images(model, subset, indices)
    output = FACTOR_OUTPUTS[scale]
    if output not in predictions:
        raise ValueError(
            f"model {model.name!r} has no output {output!r} for scale {scale}; "
            f"its outputs are {sorted(predictions)}"
        )
    inputs = np.asarray(subset.x, dtype=np.float32)[indices]
    targets = np.asarray(getattr(subset, OUTPUT_TARGETS[output]))[indices]
    bicubic = np.clip(bicubic_upscale(inputs, scale), 0.0, 1.0)
    bicubic_scores = metrics.image_metrics(targets, bicubic).to_dict("records")
    columns = [
        (f"input\n{inputs.shape[1]} px", inputs),
        (f"bicubic x{scale}", bicubic),
        (f"prediction x{scale}", predictions[output]),
        (f"target\n{targets.shape[1]} px", targets),
    ]
    if zoom:
        columns += [("prediction\nzoom", None), ("target\nzoom", None)]
    label_inches = 1.4  # room for the row labels on the left
    panel = min((WIDTH_INCHES - label_inches) / len(columns), 2.4)
    figure = _figure(WIDTH_INCHES, (panel + 0.45) * len(chosen) + 0.8)
    grid = figure.subplots(len(chosen), len(columns), squeeze=False)
    ranks = {"best": 0, "worst": 0}
    for line, (kind, row) in enumerate(chosen):
        ranks[kind] += 1
        prediction, target = predictions[output][line], targets[line]
        size = max(target.shape[0] // 4, 1)  # a quarter of the target's side
        top, left = _worst_window(prediction, target, size)
        crops = [
            image[top : top + size, left : left + size]
            for image in (prediction, target)
        ]
        texts = ["", _metric_text(bicubic_scores[line], "\n"), _metric_text(row, "\n")]
        for column, (title, images) in enumerate(columns):
            axes = grid[line, column]
            image = crops[column - 4] if images is None else images[line]
            _show(axes, _as_image(image, title))
            if line == 0:
                axes.set_title(title, fontsize=9)
            if column < len(texts) and texts[column]:
                axes.set_xlabel(texts[column], fontsize=8)
            if zoom and 1 <= column <= 3:
                _outline(axes, top, left, size)
            elif zoom and column == 0:
                _outline(axes, top / scale, left / scale, size / scale)
        name = row.get("name", row["index"])
        grid[line, 0].set_ylabel(
            f"{kind} {ranks[kind]}\n{name}",
            rotation=0,
            ha="right",
            va="center",
            fontsize=9,
        )
    figure.suptitle(f"{model.name}: best and worst validation images at x{scale}")
    return figure


def zoom_comparison(
    images: Mapping,
    box: tuple[int, int, int] | None = None,
    metrics: Mapping | None = None,
    title: str | None = None,
) -> Figure:
    """Images of the same scene side by side, each with a magnified crop below.

    Meant for a benchmark image: the high-resolution original first, then its
    reconstructions (bicubic, a model). The same square is outlined on every panel
    and magnified in the second row.

    Args:
        images: panel title -> float (h, w, 3) image in [0, 1], all of one shape;
            the first is the reference.
        box: (y, x, size) of the square in pixels; None puts a square of a quarter
            of the shorter side where the second image differs most from the
            first (largest mean absolute error).
        metrics: panel title -> mapping with ``psnr`` (dB) and/or ``ssim``, written
            under that panel; panels without an entry get no text.
        title: figure title.

    Returns:
        A Figure of two rows (full view, zoom) and one column per image.

    Raises:
        ValueError: on fewer than two images, differing shapes, or a box outside
            the images.
    """
    if len(images) < 2:
        raise ValueError(f"need at least two images to compare, got {len(images)}")
    panels = [(str(name), _as_image(image, name)) for name, image in images.items()]
    shape = panels[0][1].shape
    for name, image in panels:
        if image.shape != shape:
            raise ValueError(f"image {name!r} has shape {image.shape}, not {shape}")
    height, width = shape[:2]
    if box is None:
        size = max(min(height, width) // 4, 1)
        top, left = _worst_window(panels[1][1], panels[0][1], size)
    else:
        if len(box) != 3:
            raise ValueError(f"box must be (y, x, size) in pixels, got {box!r}")
        top, left, size = (int(value) for value in box)
        if (
            size < 1
            or top < 0
            or left < 0
            or top + size > height
            or left + size > width
        ):
            raise ValueError(f"box {box!r} must lie inside the {height}x{width} images")
    metrics = dict(metrics or {})
    panel = WIDTH_INCHES / len(panels)
    figure = _figure(WIDTH_INCHES, panel * (height / width) + panel + 1.2)
    grid = figure.subplots(2, len(panels), squeeze=False)
    for column, (name, image) in enumerate(panels):
        axes = grid[0, column]
        _show(axes, image, name)
        text = _metric_text(metrics.get(name))
        if text:
            axes.set_xlabel(text, fontsize=8)
        _outline(axes, top, left, size)
        zoomed = grid[1, column]
        _show(zoomed, image[top : top + size, left : left + size], "zoom")
        for spine in zoomed.spines.values():
            spine.set_edgecolor(ZOOM_COLOR)
            spine.set_linewidth(1.5)
    if title:
        figure.suptitle(title)
    return figure


# ------------------------------------------------------------------------ the answer

#: Side in target pixels of the crop of :func:`compare_crops` (a sixth of the x4
#: target, a third of the x2 one).
CROP_SIZE = 48
#: Magnification of that crop: each target pixel becomes CROP_ZOOM x CROP_ZOOM screen
#: pixels (the house style's 3-4x), so five panels fit the book's column (about
#: 780 px at a 1400 px window) at their own size.
CROP_ZOOM = 3
#: Margins of :func:`compare_crops` in figure pixels: around the figure, between
#: panels, above the panels (figure title and panel titles) and below them (metrics).
_CROP_MARGIN, _CROP_GAP, _CROP_TOP, _CROP_BOTTOM = 4, 6, 72, 44
#: Longest panel title line of :func:`compare_crops`, in characters (fits 144 px).
_CROP_TITLE_CHARS = 22
#: Error-change colours: blue where the model is closer to the target than bicubic.
_ERROR_CMAP = "RdBu"


@dataclasses.dataclass(frozen=True)
class CropChoice:
    """The validation image and region that :func:`answer_figure` shows, and why.

    Attributes:
        index: the image's position in the subset.
        name: the image's name.
        scale: the upscaling factor (2 or 4).
        top, left, size: the square region in target pixels.
        n_images: validation images the median was taken over.
        psnr, bicubic_psnr: the whole image's PSNR (dB) with the model and bicubic.
    """

    index: int
    name: str
    scale: int
    top: int
    left: int
    size: int
    n_images: int
    psnr: float
    bicubic_psnr: float


def busiest_window(image: np.ndarray, size: int, step: int = 1) -> tuple[int, int]:
    """(top, left) of the size x size square with the largest luminance variance.

    Flat regions look the same under every method; the busiest one (edges, texture)
    is where an upscaler can add or lose detail.

    Args:
        image: float (h, w, 3), RGB in [0, 1].
        size: side of the square in pixels, at most the image's shorter side.
        step: the square's corner is a multiple of ``step`` (the upscaling factor, so
            the region covers whole input pixels).

    Returns:
        The corner (top, left) in pixels; the first one on ties.

    Raises:
        ValueError: for a size or step below 1 or a size larger than the image.
    """
    image = _as_image(image, "image")
    height, width = image.shape[:2]
    if size < 1 or step < 1 or size > min(height, width):
        raise ValueError(
            f"size {size} and step {step} must be >= 1, size at most the "
            f"{height}x{width} image's shorter side"
        )
    luma = image.mean(axis=-1, dtype=np.float64)

    def window_sums(values: np.ndarray) -> np.ndarray:
        summed = np.pad(values.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        return (
            summed[size:, size:]
            - summed[:-size, size:]
            - summed[size:, :-size]
            + summed[:-size, :-size]
        )

    area = float(size * size)
    mean = window_sums(luma) / area
    variance = window_sums(luma * luma) / area - mean * mean
    variance = variance[::step, ::step]
    top, left = np.unravel_index(int(np.argmax(variance)), variance.shape)
    return int(top) * step, int(left) * step


def choose_crop(evaluation, subset, scale: int, size: int = CROP_SIZE) -> CropChoice:
    """The median-PSNR validation image of a model and its busiest region.

    The median image is typical of the model, neither its best nor its worst (with
    an even count the lower of the two middle ones). Its region is the square of the
    target where the luminance varies most (:func:`busiest_window`), its corner on
    a multiple of ``scale``: the region is chosen on the target alone, never on the
    model's output.

    Args:
        evaluation: the model's ``srkit.evaluate.Evaluation`` on ``subset``.
        subset: the :class:`srkit.windows.Subset` it scored.
        scale: the upscaling factor, 2 or 4.
        size: side of the region in target pixels (capped at the target's side,
            rounded down to a multiple of ``scale``).

    Returns:
        A :class:`CropChoice`.

    Raises:
        ValueError: for a scale the evaluation has no rows for.
    """
    if scale not in FACTOR_OUTPUTS:
        raise ValueError(
            f"scale must be one of {sorted(FACTOR_OUTPUTS)}, got {scale!r}"
        )
    rows = evaluation.per_image[evaluation.per_image["scale"] == scale]
    if rows.empty:
        raise ValueError(
            f"{evaluation.model_name} has no per-image rows at x{scale}: "
            f"its outputs are {list(evaluation.outputs)}"
        )
    ranked = rows.sort_values(["psnr", "index"], kind="stable")
    row = ranked.iloc[(len(ranked) - 1) // 2]
    index = int(row["index"])
    target = np.asarray(getattr(subset, OUTPUT_TARGETS[FACTOR_OUTPUTS[scale]]))[index]
    side = min(int(size), *target.shape[:2])
    side = max(side - side % scale, scale)
    top, left = busiest_window(target, side, step=scale)
    bicubic = evaluation.bicubic_per_image
    bicubic = bicubic[(bicubic["scale"] == scale) & (bicubic["index"] == index)]
    return CropChoice(
        index=index,
        name=str(row.get("name", index)),
        scale=int(scale),
        top=top,
        left=left,
        size=side,
        n_images=len(ranked),
        psnr=float(row["psnr"]),
        bicubic_psnr=float(bicubic["psnr"].iloc[0]) if len(bicubic) else np.nan,
    )


def _region(low_res, target, outputs: Mapping[str, np.ndarray], box, scale: int):
    """One square region of the target grid, cut from every image of a crop figure.

    Checks that ``target`` and each of ``outputs`` (name -> image) are ``low_res``
    enlarged ``scale`` times, and cuts ``box`` (top, left, size in target pixels)
    from the input enlarged by pixel repetition, from bicubic interpolation of the
    input, from the target and from each output.

    Returns:
        (size, nearest crop, bicubic crop, target crop, name -> output crop).

    Raises:
        ValueError: on mismatched shapes or a box outside the target.
    """
    low_res = _as_image(low_res, "low_res")
    expected = (low_res.shape[0] * scale, low_res.shape[1] * scale, 3)
    target = _as_image(target, "target")
    images = {name: _as_image(image, name) for name, image in outputs.items()}
    for what, image in (("target", target), *images.items()):
        if image.shape != expected:
            raise ValueError(
                f"{what} has shape {image.shape}; a {low_res.shape[:2]} input at "
                f"x{scale} gives {expected}"
            )
    top, left, size = _zoom_box(box, min(expected[:2]))
    nearest = np.repeat(np.repeat(low_res, scale, axis=0), scale, axis=1)
    bicubic = np.clip(bicubic_upscale(low_res, scale), 0.0, 1.0)

    def crop(image: np.ndarray) -> np.ndarray:
        return image[top : top + size, left : left + size]

    crops = {name: crop(image) for name, image in images.items()}
    return size, crop(nearest), crop(bicubic), crop(target), crops


def compare_crops(
    low_res,
    prediction,
    target,
    box: tuple[int, int, int],
    scale: int,
    model_name: str = "model",
    zoom: int = CROP_ZOOM,
    title: str | None = None,
) -> Figure:
    """One region of one image, magnified: input, bicubic, model, target, error change.

    Five panels in a row, each the same square region of the target grid drawn with
    nearest-neighbour interpolation at ``zoom`` screen pixels per target pixel: the
    input enlarged by pixel repetition (what the network sees), bicubic
    interpolation of the input, the model's output, the target, and the change of
    the absolute error from bicubic to the model (per pixel, mean over the colour
    channels: blue where the model is closer to the target, red where bicubic is).
    Under the three reconstructions: PSNR and SSIM of the crop against the target's
    crop (SSIM only for crops of at least 11 pixels). The figure's size follows the
    pixels (at :data:`DPI`), so a page that shows the PNG at its own size shows each
    target pixel as ``zoom`` x ``zoom`` pixels.

    Args:
        low_res: float (h, w, 3) in [0, 1], the network input.
        prediction: float (h * scale, w * scale, 3), the model's output.
        target: float, same shape, the high-resolution target.
        box: (top, left, size) of the square in target pixels.
        scale: the upscaling factor (2 or 4).
        model_name: title of the model's panel.
        zoom: screen pixels per target pixel (3 or 4 in the book).
        title: the figure title; None for none.

    Returns:
        A Figure of five panels.

    Raises:
        ValueError: on mismatched shapes, a box outside the target or a zoom
            below 1.
    """
    size, nearest, bicubic, truth, crops = _region(
        low_res, target, {"prediction": prediction}, box, scale
    )
    if int(zoom) < 1:
        raise ValueError(f"zoom must be >= 1, got {zoom}")
    panels = [
        (f"input, nearest x{scale}", nearest),
        (f"bicubic x{scale}", bicubic),
        (_wrap_name(model_name, _CROP_TITLE_CHARS), crops["prediction"]),
        ("target (HR)", truth),
    ]
    texts = {}
    for number in (1, 2):
        texts[number] = _crop_metric_text(truth, panels[number][1])
    change = np.abs(panels[1][1] - truth).mean(-1) - np.abs(panels[2][1] - truth).mean(
        -1
    )
    reach = max(float(np.percentile(np.abs(change), 99)), 1.0 / 255.0)

    panel = size * int(zoom)
    width = 2 * _CROP_MARGIN + 5 * panel + 4 * _CROP_GAP
    height = _CROP_TOP + panel + _CROP_BOTTOM
    figure = BookFigure(figsize=(width / DPI, height / DPI), dpi=DPI)
    for number in range(5):
        x = _CROP_MARGIN + number * (panel + _CROP_GAP)
        axes = figure.add_axes(
            (x / width, _CROP_BOTTOM / height, panel / width, panel / height)
        )
        if number < 4:
            name, image = panels[number]
            _show(axes, image, name)
        else:
            axes.imshow(
                change,
                cmap=_ERROR_CMAP,
                vmin=-reach,
                vmax=reach,
                interpolation="nearest",
            )
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title("error change", fontsize=9)
            texts[4] = f"blue: model closer\n±{reach:.3f} at full colour"
        if number in texts:
            axes.set_xlabel(texts[number], fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 8 / height, va="top")
    return figure


def _wrap_name(name: str, width: int) -> str:
    """A registry name broken after underscores into lines of at most ``width``."""
    lines, current = [], ""
    for part in str(name).split("_"):
        joined = f"{current}_{part}" if current else part
        if len(joined) > width and current:
            lines.append(current + "_")
            current = part
        else:
            current = joined
    return "\n".join([*lines, current])


def _crop_metric_text(truth: np.ndarray, image: np.ndarray) -> str:
    """PSNR (and SSIM when the crop is large enough) of a crop, for a panel label."""
    if min(truth.shape[:2]) < 11:  # the SSIM window
        error = float(np.mean((image.astype(np.float64) - truth) ** 2))
        return f"PSNR {10 * np.log10(1.0 / max(error, 1e-10)):.2f} dB"
    return _metric_text(metrics.image_metrics(truth, image).iloc[0], "\n")


def answer_figure(
    model, subset, evaluation, scale: int, zoom: int = CROP_ZOOM
) -> BookFigure:
    """A step page's top figure: :func:`compare_crops` of a region chosen honestly.

    The image and region are chosen by :func:`choose_crop` (the median-PSNR
    validation image, its busiest region), so the figure shows a typical image,
    neither a best case nor a worst case.

    Args:
        model: the trained Keras model.
        subset: the validation :class:`srkit.windows.Subset` it was evaluated on.
        evaluation: its ``srkit.evaluate.Evaluation`` on ``subset``.
        scale: the upscaling factor shown (the largest the model outputs).
        zoom: screen pixels per target pixel.

    Returns:
        The figure, with two more attributes: ``choice`` (the :class:`CropChoice`)
        and ``caption`` (Markdown: which image and region, how they were chosen,
        what the numbers under the panels are).

    Raises:
        ValueError: for a scale the model does not output.
    """
    choice = choose_crop(evaluation, subset, scale)
    output = FACTOR_OUTPUTS[scale]
    predictions = evaluate.predict_images(model, subset, [choice.index])
    if output not in predictions:
        raise ValueError(
            f"model {model.name!r} has no output {output!r} for x{scale}; "
            f"its outputs are {sorted(predictions)}"
        )
    target = np.asarray(getattr(subset, OUTPUT_TARGETS[output]))[choice.index]
    figure = compare_crops(
        np.asarray(subset.x)[choice.index],
        predictions[output][0],
        target,
        (choice.top, choice.left, choice.size),
        scale,
        model_name=model.name,
        zoom=zoom,
        title=f"{choice.name}, x{scale}: a {choice.size} px region magnified {zoom}x",
    )
    figure.choice = choice
    figure.caption = crop_caption(choice, zoom)
    return figure


def crop_caption(choice: CropChoice, zoom: int = CROP_ZOOM) -> str:
    """The Markdown caption of :func:`answer_figure` for a :class:`CropChoice`.

    Short enough (three lines of the book's column) that the figure starts on a
    page's first screen.
    """
    median = (
        "the only validation image"
        if choice.n_images == 1
        else f"the validation image of median PSNR among {choice.n_images}"
    )
    return (
        f"`{choice.name}`, {median} at x{choice.scale}: the {choice.size} px "
        "square of its target where brightness varies most (row "
        f"{choice.top}, column {choice.left}), magnified {zoom}x. Left to right: "
        "input (pixels "
        "repeated), bicubic, model, target, and the change of error from bicubic to "
        "the model (blue: model closer). PSNR and SSIM under the panels are of the "
        f"crop; the whole image scores {choice.psnr:.2f} dB with the model and "
        f"{choice.bicubic_psnr:.2f} dB with bicubic."
    )


#: Row margins of :func:`models_crops` in figure pixels: above the panels (two
#: title lines) and below them (two metric lines), and above the whole figure.
_GRID_TOP, _GRID_BOTTOM, _GRID_TITLE = 40, 40, 28


def models_crops(
    low_res,
    target,
    predictions: Mapping[str, np.ndarray],
    box: tuple[int, int, int],
    scale: int,
    zoom: int = CROP_ZOOM,
    columns: int = 4,
    title: str | None = None,
) -> BookFigure:
    """One region of one image, magnified, as several models reconstruct it.

    Panels in reading order, ``columns`` per row: the input enlarged by pixel
    repetition, bicubic interpolation, each model's output (titled by its key in
    ``predictions``), then the target. Each panel is the same square region of
    the target grid drawn with nearest-neighbour interpolation at ``zoom`` screen
    pixels per target pixel, the figure sized to the pixels (at :data:`DPI`), as
    in :func:`compare_crops`. Under bicubic and every model: PSNR and SSIM of the
    crop against the target's crop.

    Args:
        low_res: float (h, w, 3) in [0, 1], the network input.
        target: float (h * scale, w * scale, 3), the high-resolution target.
        predictions: panel title (may hold a line break) -> float output of the
            target's shape, in the order to draw.
        box: (top, left, size) of the square in target pixels.
        scale: the upscaling factor (2 or 4).
        zoom: screen pixels per target pixel.
        columns: panels per row (>= 1).
        title: the figure title; None for none.

    Returns:
        A Figure of ``len(predictions) + 3`` panels.

    Raises:
        ValueError: on no predictions, mismatched shapes, a box outside the
            target, a zoom below 1 or fewer than one column.
    """
    if not predictions:
        raise ValueError("predictions is empty: pass at least one model's output")
    size, nearest, bicubic, truth, crops = _region(
        low_res, target, predictions, box, scale
    )
    if int(zoom) < 1 or int(columns) < 1:
        raise ValueError(f"zoom and columns must be >= 1, got {zoom} and {columns}")
    panels = [(f"input, nearest x{scale}", nearest, False)]
    panels.append((f"bicubic x{scale}", bicubic, True))
    panels += [(name, crop, True) for name, crop in crops.items()]
    panels.append(("target (HR)", truth, False))

    panel = size * int(zoom)
    columns = min(int(columns), len(panels))
    rows = -(-len(panels) // columns)
    row_height = _GRID_TOP + panel + _GRID_BOTTOM
    width = 2 * _CROP_MARGIN + columns * panel + (columns - 1) * _CROP_GAP
    height = (_GRID_TITLE if title else 0) + rows * row_height
    figure = BookFigure(figsize=(width / DPI, height / DPI), dpi=DPI)
    for number, (name, image, scored) in enumerate(panels):
        row, column = divmod(number, columns)
        x = _CROP_MARGIN + column * (panel + _CROP_GAP)
        y = height - (_GRID_TITLE if title else 0) - row * row_height
        bottom = y - _GRID_TOP - panel
        axes = figure.add_axes(
            (x / width, bottom / height, panel / width, panel / height)
        )
        _show(axes, image, name)
        if scored:
            axes.set_xlabel(_crop_metric_text(truth, image), fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 6 / height, va="top")
    figure.panel_titles = [name for name, _, _ in panels]
    return figure


def models_figure(
    shown: Mapping[str, object],
    subset,
    choice: CropChoice,
    zoom: int = CROP_ZOOM,
    columns: int = 4,
) -> BookFigure:
    """Several trained models on one validation image, side by side, same crop.

    Each model predicts the one image of ``choice`` (:func:`choose_crop`); see
    :func:`models_crops` for the panels.

    Args:
        shown: panel title -> Keras model, in the order to draw.
        subset: the validation :class:`srkit.windows.Subset`.
        choice: the image, region and scale to show.
        zoom: screen pixels per target pixel.
        columns: panels per row.

    Returns:
        The figure, with ``choice`` and ``panel_titles``.

    Raises:
        ValueError: for no models, or a model without the choice's scale.
    """
    if not shown:
        raise ValueError("shown is empty: pass at least one model")
    output = FACTOR_OUTPUTS[choice.scale]
    predictions = {}
    for title, model in shown.items():
        predicted = evaluate.predict_images(model, subset, [choice.index])
        if output not in predicted:
            raise ValueError(
                f"model {model.name!r} has no output {output!r} for "
                f"x{choice.scale}; its outputs are {sorted(predicted)}"
            )
        predictions[title] = predicted[output][0]
    target = np.asarray(getattr(subset, OUTPUT_TARGETS[output]))[choice.index]
    figure = models_crops(
        np.asarray(subset.x)[choice.index],
        target,
        predictions,
        (choice.top, choice.left, choice.size),
        choice.scale,
        zoom=zoom,
        columns=columns,
        title=(
            f"{choice.name}, x{choice.scale}: a {choice.size} px region magnified "
            f"{zoom}x"
        ),
    )
    figure.choice = choice
    return figure


# ------------------------------------------------------------------------ training


_METRIC_KEY = re.compile(r"^(?:(?P<output>.+)_)?(?P<metric>loss|mse|mae|psnr|ssim)$")


def _history_panels(columns) -> list[tuple[str | None, str, str, str | None]]:
    """(output, metric, train key, val key) for every plottable training series."""
    panels = []
    for key in columns:
        if key == "epoch" or str(key).startswith("val_"):
            continue
        match = _METRIC_KEY.match(str(key))
        if not match:
            continue  # e.g. learning_rate
        val_key = f"val_{key}"
        panels.append(
            (
                match["output"],
                match["metric"],
                key,
                val_key if val_key in columns else None,
            )
        )
    # validation-only series (rare) still get a panel
    for key in columns:
        if str(key).startswith("val_") and key[4:] not in columns:
            match = _METRIC_KEY.match(str(key)[4:])
            if match:
                panels.append((match["output"], match["metric"], None, key))
    order = list(METRIC_LABELS)
    outputs = list(OUTPUT_FACTORS)
    return sorted(
        panels,
        key=lambda p: (
            p[0] is not None,
            outputs.index(p[0]) if p[0] in outputs else len(outputs),
            str(p[0]),
            order.index(p[1]),
        ),
    )


#: Fewer evaluations than this make :func:`learning_curves` return a table: one or
#: two points per series draw no trend worth a panel.
MIN_CURVE_POINTS = 3
#: Series longer than this are drawn without point markers (they would merge).
_MARKER_POINTS = 30


def _epochs(history: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Where each history row sits on the x axis, and the axis label.

    Optimizer steps when the history has a complete ``step`` column (what
    :func:`srkit.train.fit` logs), otherwise epochs counted from 1.
    """
    if "step" in history.columns:
        steps = pd.to_numeric(history["step"], errors="coerce").to_numpy(np.float64)
        if len(steps) and np.all(np.isfinite(steps)):
            return steps.astype(np.int64), "optimizer step"
    if "epoch" in history.columns:
        epochs = history["epoch"].to_numpy(dtype=np.int64)
        # Keras' CSVLogger counts from 0; the book counts passes from 1.
        epochs = epochs + 1 if len(epochs) and epochs.min() == 0 else epochs
        return epochs, "epoch"
    return np.arange(1, len(history) + 1), "epoch"


def _panel_name(output: str | None, metric: str) -> str:
    name = METRIC_LABELS[metric]
    return f"{output}: {name}" if output else name


def _history_table(history, panels, positions, label, title) -> Styler:
    """The few evaluations of a short history as a table: one row per series."""
    columns = [f"{label} {int(value)}" for value in positions]
    if len(set(columns)) < len(columns):  # a repeated step (e.g. a resumed run)
        columns = [f"{name} (row {row + 1})" for row, name in enumerate(columns)]
    rows, index = [], []
    for output, metric, train_key, val_key in panels:
        for key, split in ((train_key, "training"), (val_key, "validation")):
            if key is not None:
                rows.append(history[key].to_numpy(dtype=np.float64))
                index.append((_panel_name(output, metric), split))
    frame = pd.DataFrame(
        rows,
        index=pd.MultiIndex.from_tuples(index, names=["series", "data"]),
        columns=columns,
    )
    count = len(history)
    caption = (
        f"{title or 'Learning curves'}: {count} evaluation{'s' if count > 1 else ''}, "
        "too few to draw curves"
    )
    return frame.style.format("{:.4g}").set_caption(caption)


def learning_curves(history: pd.DataFrame, title: str | None = None) -> Figure | Styler:
    """Training and validation curves of the loss and every metric, per output.

    Keys follow Keras' log names: ``loss``/``val_loss``, ``<output>_<metric>`` and
    ``val_<output>_<metric>`` for multi-output models (e.g. ``low_upsample_psnr``),
    or ``<metric>``/``val_<metric>`` for single-output ones; metrics are ``loss``,
    ``mse``, ``mae``, ``psnr`` and ``ssim``. Other columns (``learning_rate``) are
    ignored. The x axis counts optimizer steps when the history has a ``step``
    column, epochs otherwise, with integer ticks only.

    A history of fewer than :data:`MIN_CURVE_POINTS` rows (a smoke run's one or two
    evaluations) gives a small table instead of near-empty panels.

    Args:
        history: one row per evaluation (e.g. ``FitResult.history``), with an
            optional ``step`` column (optimizer steps done, an integer >= 0) and an
            optional ``epoch`` column (counted from 0 is shown from 1; without it
            rows are epochs 1, 2, ...).
        title: figure title or table caption (e.g. the model name).

    Returns:
        With at least :data:`MIN_CURVE_POINTS` rows, a Figure with one panel per
        output and metric, three panels a row. With fewer, a pandas ``Styler`` (it
        displays as an HTML table; its ``.data`` is the DataFrame) with one row per
        (series, training/validation) and one column per evaluation, values with
        four significant digits, captioned with the title.

    Raises:
        ValueError: for an empty history or one without any known series.
    """
    if len(history) == 0:
        raise ValueError("history is empty: train for at least one epoch")
    panels = _history_panels(list(history.columns))
    if not panels:
        raise ValueError(
            "history has no loss or metric columns; columns are "
            f"{list(history.columns)}"
        )
    positions, label = _epochs(history)
    if len(history) < MIN_CURVE_POINTS:
        return _history_table(history, panels, positions, label, title)
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure = _figure(WIDTH_INCHES, 2.5 * rows + 0.7)
    grid = figure.subplots(rows, columns, squeeze=False)
    marker = len(positions) <= _MARKER_POINTS
    gaps = np.diff(np.unique(positions))
    # half the smallest spacing as margin, so the end points sit inside the frame
    pad = float(gaps.min()) / 2 if len(gaps) else 0.5
    for number, (output, metric, train_key, val_key) in enumerate(panels):
        axes = grid[number // columns, number % columns]
        for key, split, style in (
            (train_key, "training", "-o" if marker else "-"),
            (val_key, "validation", "--s" if marker else "--"),
        ):
            if key is not None:
                values = history[key].to_numpy(dtype=np.float64)
                axes.plot(positions, values, style, markersize=4, label=split)
        name = METRIC_LABELS[metric]
        axes.set_title(_panel_name(output, metric), fontsize=10)
        axes.set_xlabel(label, fontsize=9)
        axes.set_ylabel(name, fontsize=9)
        # at most five integer ticks: step counts in the thousands stay apart
        axes.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        axes.yaxis.set_major_locator(MaxNLocator(nbins=5))
        axes.tick_params(labelsize=8)
        axes.set_xlim(float(np.min(positions)) - pad, float(np.max(positions)) + pad)
        axes.grid(alpha=0.3)
    for number in range(len(panels), rows * columns):
        grid[number // columns, number % columns].set_visible(False)
    # one legend for all panels, above them, so none hides a curve
    handles, labels = grid[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper right", ncols=2, fontsize=8)
    figure.suptitle(title or "Learning curves")
    return figure


# ------------------------------------------------------------------------ regimes

#: How figures and sentences name the two regimes of ``srkit.models.build(skip=...)``.
REGIME_LABELS = {
    "bicubic": "with bicubic skip",
    "none": "without skip (the study's network)",
}
_REGIME_COLORS = {"bicubic": "#2ca02c", "none": "#1f77b4"}
#: Columns of :func:`regime_finals`.
REGIME_COLUMNS = ["regime", "label", "scale", "step", "psnr", "bicubic", "margin"]


def _bicubic_psnr(bicubic) -> dict[int, float]:
    """Bicubic's validation PSNR (dB) by upscaling factor, from a table or a mapping."""
    if isinstance(bicubic, pd.DataFrame):
        missing = {"model", "scale", "psnr"} - set(bicubic.columns)
        if missing:
            raise ValueError(f"bicubic table lacks the columns {sorted(missing)}")
        rows = bicubic[bicubic["model"] == BICUBIC]
        pairs = zip(rows["scale"], rows["psnr"], strict=True)
        return {int(scale): float(value) for scale, value in pairs}
    return {int(scale): float(value) for scale, value in dict(bicubic).items()}


def _regime_outputs(histories: Mapping[str, pd.DataFrame]) -> list[str]:
    """The outputs (in OUTPUT_FACTORS order) whose validation PSNR some history logs."""
    if not histories:
        raise ValueError("histories is empty: pass one history per regime")
    for regime, history in histories.items():
        if len(history) == 0:
            raise ValueError(f"the history of {regime!r} is empty")
    outputs = [
        output
        for output in OUTPUT_FACTORS
        if any(f"val_{output}_psnr" in h.columns for h in histories.values())
    ]
    if not outputs:
        raise ValueError(
            "no history has a per-output validation PSNR column "
            f"({', '.join(f'val_{o}_psnr' for o in OUTPUT_FACTORS)})"
        )
    return outputs


def regime_finals(
    histories: Mapping[str, pd.DataFrame], bicubic: Mapping[int, float] | pd.DataFrame
) -> pd.DataFrame:
    """Each regime's last validation PSNR per output, beside bicubic's.

    Args:
        histories: regime (``"bicubic"``, ``"none"`` or any label) -> training
            history (``FitResult.history``) with ``val_<output>_psnr`` columns.
        bicubic: bicubic interpolation's validation PSNR in dB by upscaling factor
            (2, 4), or a table with ``model, scale, psnr`` columns whose
            ``bicubic`` rows give it (``Evaluation.table``).

    Returns:
        A DataFrame with the columns :data:`REGIME_COLUMNS`, one row per regime and
        output the history has: ``label`` (:data:`REGIME_LABELS`, else the
        regime), ``scale`` (the output's factor), ``step`` (of the history's last
        row), ``psnr`` (its validation PSNR), ``bicubic`` and ``margin`` (psnr -
        bicubic, dB).

    Raises:
        ValueError: for no or empty histories, none with a per-output validation
            PSNR, or no bicubic value for an output's factor.
    """
    outputs = _regime_outputs(histories)
    baseline = _bicubic_psnr(bicubic)
    rows = []
    for output in outputs:
        scale = OUTPUT_FACTORS[output]
        if scale not in baseline:
            raise ValueError(
                f"no bicubic PSNR for x{scale}; bicubic gives {sorted(baseline)}"
            )
        for regime, history in histories.items():
            key = f"val_{output}_psnr"
            if key not in history.columns:
                continue
            positions, _ = _epochs(history)
            value = float(history[key].iloc[-1])
            rows.append(
                {
                    "regime": regime,
                    "label": REGIME_LABELS.get(regime, str(regime)),
                    "scale": scale,
                    "step": int(positions[-1]),
                    "psnr": value,
                    "bicubic": baseline[scale],
                    "margin": value - baseline[scale],
                }
            )
    return pd.DataFrame(rows, columns=REGIME_COLUMNS)


def regime_curves(
    histories: Mapping[str, pd.DataFrame],
    bicubic: Mapping[int, float] | pd.DataFrame,
    title: str | None = None,
) -> Figure:
    """Validation PSNR along training of the same model in several regimes.

    One panel per output (x2, then x4): each regime's validation PSNR (dB) against
    the optimizer step (``step`` column; epochs without it), and bicubic
    interpolation's validation PSNR as a dashed horizontal line. Every series is
    drawn, however short: a smoke run's single evaluation is one marker.

    Keras' ``val_*`` values score unclipped predictions, while the bicubic values
    of ``Evaluation.table`` are scored clipped to [0, 1]; clipping only ever
    lowers the error, so the two can differ by a little in bicubic's favour.

    Args:
        histories: regime -> training history, in legend order; the keys
            ``"bicubic"`` and ``"none"`` (``srkit.models.build``'s ``skip``) are
            labelled with :data:`REGIME_LABELS`, other keys as they are.
        bicubic: bicubic's validation PSNR in dB by upscaling factor (2, 4), or
            ``Evaluation.table`` (its ``bicubic`` rows).
        title: the figure title; a default names the comparison.

    Returns:
        A Figure with one panel per output that some history logs.

    Raises:
        ValueError: as :func:`regime_finals`.
    """
    outputs = _regime_outputs(histories)
    baseline = _bicubic_psnr(bicubic)
    missing = [OUTPUT_FACTORS[o] for o in outputs if OUTPUT_FACTORS[o] not in baseline]
    if missing:
        raise ValueError(
            f"no bicubic PSNR for scales {missing}; bicubic gives {sorted(baseline)}"
        )
    figure = _figure(WIDTH_INCHES, 3.4)
    grid = figure.subplots(1, len(outputs), squeeze=False)
    for column, output in enumerate(outputs):
        axes = grid[0, column]
        scale = OUTPUT_FACTORS[output]
        label = "optimizer step"
        ends = []
        for regime, history in histories.items():
            key = f"val_{output}_psnr"
            if key not in history.columns:
                continue
            positions, label = _epochs(history)
            values = history[key].to_numpy(dtype=np.float64)
            style = "-o" if len(positions) <= _MARKER_POINTS else "-"
            axes.plot(
                positions,
                values,
                style,
                markersize=4,
                linewidth=2.0,
                color=_REGIME_COLORS.get(regime),
                label=REGIME_LABELS.get(regime, str(regime)),
            )
            ends += [float(np.min(positions)), float(np.max(positions))]
        # thinner than the curves, so one that sits on bicubic still shows
        axes.axhline(
            baseline[scale], color="k", linestyle="--", linewidth=1.2, label="bicubic"
        )
        low, high = min(ends), max(ends)
        pad = (high - low) * 0.05 if high > low else 0.5
        axes.set_xlim(low - pad, high + pad)
        axes.set_title(scale_label(scale), fontsize=10)
        axes.set_xlabel(label, fontsize=9)
        axes.set_ylabel("validation PSNR (dB)", fontsize=9)
        if high > low:
            axes.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        else:  # one evaluation (a smoke run): one tick, at its step
            axes.set_xticks([low])
        axes.yaxis.set_major_locator(MaxNLocator(nbins=5))
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
    handles, labels = grid[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    figure.suptitle(title or "Validation PSNR, same model and budget, two regimes")
    return figure


# ------------------------------------------------------------------------ tables


def metric_bars(
    table: pd.DataFrame,
    metric: str = "psnr",
    original: pd.DataFrame | None = None,
    labels=None,
    stacked: bool = False,
) -> Figure:
    """Horizontal bars of one metric per model, one panel per scale.

    Our value and, when given, the original report's value sit side by side for each
    model ("this run" and "original report"); the bicubic baseline (rows whose
    model is ``bicubic``) is a dashed vertical line.

    ``stacked`` sizes the figure for a phone as well as a page: the panels one
    above the other, each with only the models that have that scale, 480 px wide
    with large type, so a 390 px screen shows it at three quarters of its size.

    Args:
        table: columns ``model, scale`` and the metric (``Evaluation.table`` or
            ``srkit.records.collect_metrics``); a repeated (model, scale) keeps the
            last row.
        metric: ``mse``, ``mae``, ``psnr`` or ``ssim``.
        original: the original report's table (``load_original_results``) or None.
        labels: model name -> the label on the axis (a mapping or a function,
            e.g. ``srkit.summary_page.short_label``); None shows the names.
        stacked: one panel per row, narrow and in large type (see above).

    Returns:
        A Figure with one panel per scale.

    Raises:
        ValueError: on an unknown metric, missing columns, or no model rows.
    """
    if metric not in METRIC_LABELS or metric == "loss":
        raise ValueError(f"unknown metric {metric!r}: use mse, mae, psnr or ssim")
    missing = {"model", "scale", metric} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks the columns {sorted(missing)}")
    ours = table.drop_duplicates(["model", "scale"], keep="last")
    is_bicubic = ours["model"] == "bicubic"
    models = ours[~is_bicubic]
    if models.empty:
        raise ValueError("table has no model rows (only bicubic)")
    scales = sorted(int(s) for s in models["scale"].unique())
    names = list(dict.fromkeys(models["model"]))
    series = [("this run", models)]
    if original is not None:
        reference = original[original["model"].isin(names)]
        if not reference.empty:
            series.append(("original report", reference))
    if labels is None:
        label_of = str
    elif callable(labels):
        label_of = labels
    else:
        label_of = lambda name: labels.get(name, name)  # noqa: E731
    type_size = {"tick": 11, "value": 10, "title": 12} if stacked else {}
    panel_names = {
        scale: [
            n
            for n in names
            if ((models["model"] == n) & (models["scale"] == scale)).any()
        ]
        if stacked
        else names
        for scale in scales
    }
    if stacked:
        rows_per = [len(panel_names[s]) * len(series) for s in scales]
        figure = _figure(4.8, sum(0.3 * n + 1.1 for n in rows_per) + 0.9)
        grid = figure.subplots(
            len(scales), 1, squeeze=False, height_ratios=[n + 3 for n in rows_per]
        ).T
    else:
        height = 0.35 * len(names) * len(series) + 1.6
        figure = _figure(WIDTH_INCHES, max(height, 2.8))
        grid = figure.subplots(1, len(scales), squeeze=False, sharey=True)
    bar = 0.8 / len(series)
    label = METRIC_LABELS[metric]
    for column, scale in enumerate(scales):
        axes = grid[0, column]
        names = panel_names[scale]
        positions = np.arange(len(names))
        shown = []
        for number, (source, frame) in enumerate(series):
            rows = frame[frame["scale"] == scale].set_index("model")[metric]
            values = np.array([rows.get(name, np.nan) for name in names], float)
            offset = (number - (len(series) - 1) / 2) * bar
            axes.barh(
                positions + offset,
                values,
                height=bar,
                label=source,
                color=_SERIES_COLORS[source],
            )
            shown.append(values[np.isfinite(values)])
            for y, value in zip(positions + offset, values, strict=True):
                if np.isfinite(value):
                    text = " " + _VALUE_FORMATS[metric].format(value)
                    size = type_size.get("value", 7)
                    axes.text(value, y, text, va="center", fontsize=size)
        baseline = ours[is_bicubic & (ours["scale"] == scale)][metric]
        if len(baseline):
            axes.axvline(
                float(baseline.iloc[-1]), color="k", linestyle="--", label="bicubic"
            )
            shown.append(baseline.to_numpy(dtype=float))
        values = np.concatenate(shown) if shown else np.array([])
        if metric == "psnr" and values.size:
            # PSNR differences of a few dB matter: start the axis near the data.
            low, high = np.floor(values.min()) - 1.0, np.ceil(values.max()) + 1.0
            axes.set_xlim(low, high + (1.0 if stacked else 0.0))  # room for values
        elif values.size:
            axes.set_xlim(0, values.max() * (1.3 if stacked else 1.15))
        title = f"{output_side(scale)} px output (x{scale})"
        axes.set_title(title, fontsize=type_size.get("title", 10))
        axes.set_xlabel(label, fontsize=type_size.get("tick", 10))
        axes.grid(axis="x", alpha=0.3)
        if stacked or column == 0:
            shown_labels = [label_of(name) for name in names]
            axes.set_yticks(positions, shown_labels, fontsize=type_size.get("tick", 8))
            axes.tick_params(axis="x", labelsize=type_size.get("tick", 10))
        if stacked:  # few ticks: large numbers must not run into each other
            axes.xaxis.set_major_locator(MaxNLocator(nbins=4))
            axes.invert_yaxis()
    handles, legend = grid[0, 0].get_legend_handles_labels()
    size = type_size.get("tick", 8)
    figure.legend(handles, legend, loc="outside lower center", ncols=3, fontsize=size)
    figure.suptitle(
        f"{label} per model, validation mean", fontsize=type_size.get("title", 12)
    )
    return figure


def margin_bars(summary: pd.DataFrame, metric: str = "psnr") -> Figure:
    """Each model's margin over bicubic, one panel per benchmark set and scale.

    Bars start at zero (bicubic): right and green where the model beats bicubic,
    left and red where it falls short; each bar carries its signed value.

    Args:
        summary: ``srkit.evaluate.benchmark_summary`` output (columns ``set,
            scale, model`` and ``<metric>_margin``); bicubic rows are skipped.
        metric: ``psnr`` (margin in dB) or ``ssim``.

    Returns:
        A Figure with one row of panels per set and one column per scale.

    Raises:
        ValueError: on an unknown metric, missing columns, or no model rows.
    """
    if metric not in ("psnr", "ssim"):
        raise ValueError(f"metric must be 'psnr' or 'ssim', got {metric!r}")
    column = f"{metric}_margin"
    missing = {"set", "scale", "model", column} - set(summary.columns)
    if missing:
        raise ValueError(f"summary lacks the columns {sorted(missing)}")
    rows = summary[summary["model"] != "bicubic"]
    if rows.empty:
        raise ValueError("summary has no model rows (only bicubic)")
    sets = list(dict.fromkeys(rows["set"]))
    scales = sorted(int(k) for k in rows["scale"].unique())
    names = list(dict.fromkeys(rows["model"]))
    label = "PSNR margin (dB)" if metric == "psnr" else "SSIM margin"
    digits = 2 if metric == "psnr" else 4
    height = max(0.3 * len(names) + 1.0, 2.0) * len(sets) + 0.8
    figure = _figure(WIDTH_INCHES, height)
    grid = figure.subplots(len(sets), len(scales), squeeze=False, sharey=True)
    positions = np.arange(len(names))
    for line, set_name in enumerate(sets):
        for place, scale in enumerate(scales):
            axes = grid[line, place]
            here = rows[(rows["set"] == set_name) & (rows["scale"] == scale)]
            values = here.set_index("model")[column]
            values = np.array([values.get(name, np.nan) for name in names], float)
            colors = ["#2ca02c" if value >= 0 else "#d62728" for value in values]
            axes.barh(positions, np.nan_to_num(values), color=colors, height=0.7)
            axes.axvline(0.0, color="k", linewidth=1.0)
            for y, value in zip(positions, values, strict=True):
                text = "n/a" if np.isnan(value) else f" {value:+.{digits}f} "
                side = "left" if np.isnan(value) or value >= 0 else "right"
                axes.text(
                    0.0 if np.isnan(value) else value,
                    y,
                    text,
                    va="center",
                    ha=side,
                    fontsize=7,
                )
            finite = values[np.isfinite(values)]
            reach = float(np.max(np.abs(finite))) if finite.size else 1.0
            reach = reach * 1.4 if reach > 0 else 1.0
            axes.set_xlim(-reach, reach)
            axes.set_title(f"{set_name}, x{scale}", fontsize=10)
            axes.set_xlabel(label)
            axes.grid(axis="x", alpha=0.3)
    for line in range(len(sets)):
        grid[line, 0].set_yticks(positions, names, fontsize=8)
    grid[0, 0].invert_yaxis()
    figure.suptitle(f"{label} over bicubic per model, mean over each set (Y channel)")
    return figure


# ------------------------------------------------------------------------ GIFs


class GifDisplay:
    """An animated GIF for a notebook output, with its caption above it.

    Displayed as a Markdown caption (when there is a title or caption) followed by
    an ``image/gif`` output holding the file's bytes unchanged; see
    :func:`show_gif` for why.

    Attributes:
        image: the ``IPython.display.Image`` (``format="gif"``).
        title: the title (bold, first words of the caption), or None.
        caption: the caption's Markdown text, or None.
    """

    def __init__(
        self,
        content: bytes,
        width: int | None,
        title: str | None,
        caption: str | None = None,
    ):
        from IPython.display import Image  # deferred: only notebooks need IPython

        self.image = Image(data=content, format="gif", width=width)
        self.title = title
        self.caption = caption

    @property
    def caption_markdown(self) -> str | None:
        """``**title.** caption``, the bold title alone, the caption alone or None."""
        if self.title and self.caption:
            return f"**{self.title}.** {self.caption}"
        if self.title:
            return f"**{self.title}**"
        return self.caption

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.image._repr_mimebundle_(include, exclude)

    def _ipython_display_(self) -> None:
        from IPython.display import Markdown, display

        if self.caption_markdown:
            display(Markdown(self.caption_markdown))
        display(self.image)


def show_gif(
    path,
    width: int | None = None,
    title: str | None = None,
    caption: str | None = None,
) -> GifDisplay:
    """Display an animated GIF in a notebook so the HTML book keeps it animated.

    The output is the ``image/gif`` MIME type with the file's bytes (an
    ``IPython.display.Image(data=..., format="gif")``). Jupyter shows it natively,
    and myst-nb (jupyter-book 1.x) renders ``image/gif`` outputs by writing the bytes
    unchanged to a ``.gif`` file beside the page and linking it with ``<img>``
    (``myst_nb.core.render.NbElementRenderer.render_image``; ``image/gif`` ranks
    ahead of ``text/plain`` in its html render priority), so every frame survives.
    A PNG conversion or a matplotlib animation would lose frames or need JavaScript,
    and an inline ``text/html`` data URI would bloat the page's HTML.

    Args:
        path: a ``.gif`` file (e.g. ``gif_high_upsample.gif`` in a model folder).
        width: display width in pixels, or None for the file's own width.
        title: shown in bold above the GIF (a separate Markdown output), or None.
        caption: Markdown shown above the GIF after the title (the figure's
            caption, :func:`gif_caption`), or None.

    Returns:
        A :class:`GifDisplay`; the last expression of a cell or ``display(...)``
        shows it.

    Raises:
        ValueError: for a missing file or one that is not a GIF.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"GIF {str(path)!r} does not exist: train with gifs enabled")
    content = path.read_bytes()
    if not content.startswith(_GIF_SIGNATURES):
        raise ValueError(f"{str(path)!r} is not a GIF file (no GIF87a/GIF89a header)")
    return GifDisplay(content, width, title, caption)


def gif_caption(output: str, label: str | None = None) -> str:
    """The caption of a training GIF of ``srkit.callbacks.SavePredictionCallback``.

    Args:
        output: the output the GIF shows (``low_upsample`` or ``high_upsample``).
        label: the model's reader label (``R4``) or name, or None for "the model".

    Returns:
        Markdown: what each frame shows and how to read its numbers.
    """
    from srkit import callbacks  # deferred: Keras

    if output not in OUTPUT_FACTORS:
        raise ValueError(
            f"output must be one of {sorted(OUTPUT_FACTORS)}, got {output!r}"
        )
    scale = OUTPUT_FACTORS[output]
    who = f"{label}'s" if label else "The model's"
    return (
        f"{who} x{scale} output during training, on the first validation image. Each "
        "frame shows bicubic interpolation, the model's prediction after the number "
        "of training steps above it, and the high-resolution target, at their own "
        f"pixels (an output wider than {callbacks.TILE_SIZE} px is cropped to the "
        "square where brightness varies most). The PSNR under each label is of the "
        "whole image against the target. The first frame is the untrained network; "
        "the last is held for two seconds."
    )


def show_strip(gif) -> IPythonImage | None:
    """The still strip of a training GIF (``strip_<output>.png`` beside it), for print.

    Args:
        gif: the GIF's path (``gif_<output>.gif``); the strip is
            ``srkit.callbacks.strip_path(gif)``.

    Returns:
        An ``IPython.display.Image`` (``image/png``, the file's bytes), or None
        (nothing shown) when there is no strip: a model trained before strips
        were written keeps its GIF, and a run that skips it still builds.
    """
    from IPython.display import Image

    from srkit.callbacks import strip_path  # deferred: Keras

    strip = strip_path(gif)
    if not strip.is_file():
        return None
    return Image(data=strip.read_bytes(), format="png")
