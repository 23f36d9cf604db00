"""Evaluation: validation tables with a bicubic baseline, and benchmarks.

This module owns every number a step page reports about a trained model. It predicts
a validation subset batch by batch and scores each image with
:func:`srkit.metrics.image_metrics` (float64, per image, then averaged over images),
beside the bicubic-interpolation baseline computed from the same 72x72 inputs. It also
runs the published single-image super-resolution protocol on folders such as Set5 and
Set14 (:func:`benchmark`, every set and model of a run at once with
:func:`benchmark_all`, means and margins over bicubic with :func:`benchmark_summary`).
How a model is applied to an image of any size, tiled when it is large, is
:mod:`srkit.tiles`; what a step keeps of these numbers, and the numbers of others,
are :mod:`srkit.records`.

Predictions are clipped to [0, 1] before they are scored or returned: an image that is
saved or shown is clipped, so the scored image is the shown one. Clipping never
increases the error, so the figures can differ slightly from Keras' ``val_*`` logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from srkit import images, metrics
from srkit.layout import parse_folder
from srkit.tiles import WHOLE, output_names, predict_batch, predict_full
from srkit.vocab import (
    BICUBIC,
    FACTOR_OUTPUTS,
    HIGHER_IS_BETTER,
    METRICS,
    OUTPUT_FACTORS,
    OUTPUT_TARGETS,
)

#: Upscaling factors of the benchmark tables (the models' two outputs).
BENCHMARK_SCALES = (2, 4)
#: Usual order of the public benchmark sets; other folders follow by name.
BENCHMARK_ORDER = ("Set5", "Set14", "BSD100", "B100", "Urban100", "Manga109")
#: Columns of :func:`benchmark_all` (one row per image).
BENCHMARK_IMAGE_COLUMNS = ["set", "scale", "model", "image", "psnr", "ssim"]
#: Columns of :func:`benchmark_summary` (one row per set, scale and model).
BENCHMARK_COLUMNS = [
    "set",
    "scale",
    "model",
    "n_images",
    "psnr",
    "ssim",
    "psnr_margin",
    "ssim_margin",
]

#: Columns of :attr:`Evaluation.table`; ``scale`` is the upscaling factor (2 or 4).
TABLE_COLUMNS = ["model", "scale", *METRICS]
#: Columns of :attr:`Evaluation.per_image`.
PER_IMAGE_COLUMNS = ["model", "name", "index", "scale", *METRICS]


# ------------------------------------------------------------------------ predicting


def _as_image_batch(values, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"{what} must be float (n, h, w, 3), got shape {array.shape}")
    return array


def _inputs_of(subset_or_array) -> np.ndarray:
    inputs = getattr(subset_or_array, "x", subset_or_array)
    return _as_image_batch(inputs, "inputs")


def predict_images(
    model, subset_or_array, indices: Sequence[int] | int
) -> dict[str, np.ndarray]:
    """Predictions of a few images, for figures.

    Args:
        model: a Keras model with outputs such as ``low_upsample``/``high_upsample``.
        subset_or_array: a :class:`srkit.windows.Subset` (its ``x`` is used) or float
            (n, h, w, 3) inputs, RGB in [0, 1].
        indices: one index or a sequence of indices into the inputs.

    Returns:
        Output name -> float32 (len(indices), H, W, 3) predictions clipped to [0, 1].

    Raises:
        ValueError: on an empty selection or an index out of range.
    """
    inputs = _inputs_of(subset_or_array)
    selection = [int(indices)] if np.isscalar(indices) else [int(i) for i in indices]
    if not selection:
        raise ValueError("indices is empty: pass at least one image index")
    bad = [i for i in selection if not -len(inputs) <= i < len(inputs)]
    if bad:
        raise ValueError(f"indices {bad} out of range for {len(inputs)} images")
    predictions = predict_batch(model, inputs[selection])
    return {name: np.clip(value, 0.0, 1.0) for name, value in predictions.items()}


# ------------------------------------------------------------------------ evaluating


@dataclasses.dataclass
class Evaluation:
    """Validation metrics of one model beside the bicubic baseline.

    Notebooks display ``evaluation`` (its HTML form is :attr:`table`) or
    ``evaluation.table``.

    Attributes:
        model_name: the model's row name in every table.
        n_images: number of images scored.
        table: mean over images, columns ``model, scale, mse, mae, psnr, ssim``; for
            each output's upscaling factor (``scale`` 2 for ``low_upsample``, 4 for
            ``high_upsample``) a model row followed by a ``bicubic`` row.
        per_image: the model's per-image values, columns
            ``model, name, index, scale, mse, mae, psnr, ssim`` (model rows only, so
            it has n_images x outputs rows; ``index`` is the position in the subset).
        bicubic_per_image: the bicubic baseline's per-image values, same columns.
        outputs: the model's output names that were scored, in scale order.
    """

    model_name: str
    n_images: int
    table: pd.DataFrame
    per_image: pd.DataFrame
    bicubic_per_image: pd.DataFrame
    outputs: tuple[str, ...] = ()

    def _repr_html_(self) -> str:
        caption = f"{self.model_name}: mean over {self.n_images} validation images"
        styled = self.table.style.hide(axis="index").set_caption(caption)
        return styled.format(precision=4).to_html()

    def __repr__(self) -> str:
        return (
            f"Evaluation(model_name={self.model_name!r}, n_images={self.n_images})\n"
            f"{self.table.to_string(index=False)}"
        )


def _scored_outputs(model) -> list[str]:
    if model is None:  # bicubic only: both scales
        return list(OUTPUT_FACTORS)
    names = output_names(model)
    scored = [name for name in OUTPUT_FACTORS if name in names]
    if not scored:
        raise ValueError(
            f"model {model.name!r} has none of the outputs {list(OUTPUT_FACTORS)}; "
            f"its outputs are {names}"
        )
    return scored


def _check_subset(subset) -> int:
    for attribute in ("x", "y2", "y4"):
        if not hasattr(subset, attribute):
            raise ValueError(
                f"subset must be a srkit.windows.Subset with x, y2, y4; "
                f"{type(subset).__name__} has no {attribute!r}"
            )
    count = len(subset.x)
    if count == 0:
        raise ValueError("subset is empty: evaluate needs at least one image")
    if len(subset.y2) != count or len(subset.y4) != count:
        raise ValueError(
            f"subset arrays differ in length: x {len(subset.x)}, "
            f"y2 {len(subset.y2)}, y4 {len(subset.y4)}"
        )
    return count


def _frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        empty = {column: pd.Series(dtype=np.float64) for column in PER_IMAGE_COLUMNS}
        empty |= {"model": pd.Series(dtype=object), "name": pd.Series(dtype=object)}
        parts = [pd.DataFrame(empty)]
    frame = pd.concat(parts, ignore_index=True)
    frame["index"] = frame["index"].astype(np.int64)
    frame["scale"] = frame["scale"].astype(np.int64)
    return frame[PER_IMAGE_COLUMNS]


def _means(per_image: pd.DataFrame) -> pd.DataFrame:
    return per_image.groupby(["model", "scale"], sort=False, as_index=False)[
        list(METRICS)
    ].mean()


def evaluate(model, subset, batch_size: int = 8, name: str | None = None) -> Evaluation:
    """Score a model on a subset, per image and on average, beside bicubic.

    Predictions are made ``batch_size`` images at a time and scored at once, so only
    one batch of predictions is held in memory. Each output the model has is
    scored: ``low_upsample`` against ``subset.y2`` (scale 2) and ``high_upsample``
    against ``subset.y4`` (scale 4). The bicubic baseline upscales the same 72 px
    inputs by 2 or 4 (:func:`srkit.images.bicubic_upscale`) and is scored against
    the same targets. Predictions and bicubic images are clipped to [0, 1] first.

    With ``model=None`` only the bicubic baseline is scored, at both scales: its
    ``table`` holds the two ``bicubic`` rows, ``per_image`` is empty and
    ``model_name`` is ``"bicubic"``.

    Args:
        model: a Keras model whose outputs include ``low_upsample`` and/or
            ``high_upsample``, or None for the bicubic baseline alone.
        subset: a :class:`srkit.windows.Subset` (x (n, 72, 72, 3), y2, y4 float in
            [0, 1]); normally the validation subset.
        batch_size: images per prediction call (>= 1).
        name: row name of the model in the tables; ``model.name`` when None.

    Returns:
        An :class:`Evaluation`.

    Raises:
        ValueError: on an empty or inconsistent subset, a bad batch size, or a model
            without a known output.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    count = _check_subset(subset)
    outputs = _scored_outputs(model)
    model_name = str(name or (model.name if model is not None else BICUBIC))
    names = (
        list(subset.names)
        if len(subset.names) == count
        else [str(i) for i in range(count)]
    )
    model_parts, bicubic_parts = [], []
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        inputs = np.asarray(subset.x[start:stop], dtype=np.float32)
        predictions = {} if model is None else predict_batch(model, inputs)
        for output in outputs:
            scale = OUTPUT_FACTORS[output]
            target = getattr(subset, OUTPUT_TARGETS[output])[start:stop]
            target = np.asarray(target, np.float32)
            bicubic = images.bicubic_upscale(inputs, scale)
            scored = [(bicubic_parts, BICUBIC, bicubic)]
            if model is not None:
                scored.insert(0, (model_parts, model_name, predictions[output]))
            for parts, row_name, image in scored:
                scores = metrics.image_metrics(target, np.clip(image, 0.0, 1.0))
                scores.insert(0, "scale", scale)
                scores.insert(0, "index", np.arange(start, stop))
                scores.insert(0, "name", names[start:stop])
                scores.insert(0, "model", row_name)
                parts.append(scores)
    per_image = _frame(model_parts).sort_values(
        ["scale", "index"], kind="stable", ignore_index=True
    )
    bicubic_per_image = _frame(bicubic_parts).sort_values(
        ["scale", "index"], kind="stable", ignore_index=True
    )
    means = [_means(bicubic_per_image)]
    if model is not None:
        means.insert(0, _means(per_image))
    table = pd.concat(means)
    table["rank"] = (table["model"] == BICUBIC).astype(int)
    table = table.sort_values(["scale", "rank"], kind="stable", ignore_index=True)
    table = table[TABLE_COLUMNS]
    table["scale"] = table["scale"].astype(np.int64)
    return Evaluation(
        model_name=model_name,
        n_images=count,
        table=table,
        per_image=per_image,
        bicubic_per_image=bicubic_per_image,
        outputs=tuple(outputs),
    )


def best_worst(
    per_image: pd.DataFrame, metric: str = "psnr", k: int = 3, scale: int = 2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The k best and k worst images at one scale by one metric.

    Higher is better for ``psnr`` and ``ssim``, lower for ``mse`` and ``mae``. Ties
    keep the subset order.

    Args:
        per_image: per-image table such as :attr:`Evaluation.per_image` (columns
            ``scale``, the metric, and usually ``model, name, index``) holding one
            model's rows.
        metric: one of ``mse, mae, psnr, ssim``.
        k: how many images on each side (1 <= k <= images at that scale).
        scale: the upscaling factor, 2 (``low_upsample``) or 4 (``high_upsample``).

    Returns:
        (best, worst): DataFrames of k rows each, best first and worst first
        respectively, with the columns of ``per_image``.

    Raises:
        ValueError: on an unknown metric, a scale without rows, several models mixed
            in the table, or k out of range.
    """
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(
            f"unknown metric {metric!r}: choose one of {list(HIGHER_IS_BETTER)}"
        )
    missing = {"scale", metric} - set(per_image.columns)
    if missing:
        raise ValueError(f"per_image lacks the columns {sorted(missing)}")
    rows = per_image[per_image["scale"] == scale]
    if rows.empty:
        scales = sorted(int(s) for s in per_image["scale"].unique())
        raise ValueError(f"no rows at scale {scale}; the table has scales {scales}")
    if "model" in rows.columns and rows["model"].nunique() > 1:
        raise ValueError(
            f"per_image mixes models {sorted(rows['model'].unique())}: "
            "select one model's rows first"
        )
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= len(rows):
        raise ValueError(
            f"k must be an integer from 1 to {len(rows)} (images at scale {scale}), "
            f"got {k!r}"
        )
    k = int(k)
    ascending = not HIGHER_IS_BETTER[metric]
    ranked = rows.sort_values(metric, ascending=ascending, kind="stable")
    worst = rows.sort_values(metric, ascending=not ascending, kind="stable")
    return ranked.head(k).reset_index(drop=True), worst.head(k).reset_index(drop=True)


# ------------------------------------------------------------------------ benchmark


def _image_files(hr_dir) -> list[Path]:
    folder = Path(hr_dir)
    if not folder.is_dir():
        raise ValueError(
            f"benchmark folder {str(folder)!r} does not exist or is not a folder: "
            "pass a folder of high-resolution images (e.g. Set5)"
        )
    files = sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in images.IMAGE_EXTENSIONS
    )
    if not files:
        raise ValueError(
            f"benchmark folder {str(folder)!r} holds no images with the extensions "
            f"{list(images.IMAGE_EXTENSIONS)}"
        )
    return files


def benchmark_pair(path, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The high-resolution image and its low-resolution input, benchmark protocol.

    The image is read as RGB (:func:`srkit.images.read_image`; grayscale becomes RGB),
    cropped to a multiple of ``scale``, downscaled by MATLAB bicubic with
    antialiasing (:func:`srkit.images.downscale`), then clipped to [0, 1] and rounded
    to 1/255 steps (:func:`srkit.images.to_8bit`). The rounding makes the input what
    a saved 8-bit low-resolution file holds, which is what the published tables use
    and what the networks are trained on (their 72 px inputs are rounded the same
    way); without it a network would meet inputs unlike its training inputs.

    Args:
        path: an image file.
        scale: integer factor >= 2.

    Returns:
        ``(high_res, low_res)``: float32 (H, W, 3) with H, W multiples of ``scale``,
        and float32 (H / scale, W / scale, 3) holding multiples of 1/255.

    Raises:
        ValueError: for a bad scale or an unreadable image.
    """
    if isinstance(scale, bool) or int(scale) != scale or scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
    scale = int(scale)
    high_res = images.read_image(path)
    height, width = high_res.shape[:2]
    high_res = high_res[: height - height % scale, : width - width % scale]
    low_res = images.to_8bit(images.downscale(high_res, scale))
    return high_res, low_res


def super_resolve(
    model, low_res: np.ndarray, scale: int, tile: int | None = WHOLE, output=None
):
    """Upscale one low-resolution image with a model or bicubic interpolation.

    Args:
        model: a Keras model, or the string ``"bicubic"``.
        low_res: float (h, w, 3), RGB in [0, 1].
        scale: upscaling factor; a model uses its output for it (``low_upsample``
            for 2, ``high_upsample`` for 4) unless ``output`` names one.
        tile: as :func:`srkit.tiles.predict_full`: :data:`srkit.tiles.WHOLE`
            (default) applies the model to the whole image at once, None or a
            pixel count tiles it to bound memory on large images.
        output: model output to use, or None for the one of ``scale``.

    Returns:
        float32 (h * scale, w * scale, 3) clipped to [0, 1].

    Raises:
        ValueError: for a bad model argument or a model without that output.
    """
    if isinstance(model, str):
        if model != BICUBIC:
            raise ValueError(f"model must be a Keras model or 'bicubic', got {model!r}")
        return np.clip(images.bicubic_upscale(low_res, scale), 0.0, 1.0)
    output = output or _benchmark_output(model, scale)
    return predict_full(model, low_res, output=output, tile=tile)


def _benchmark_output(model, scale: int) -> str:
    if scale not in FACTOR_OUTPUTS:
        raise ValueError(
            f"no default output for scale {scale}: models produce x2 "
            f"({FACTOR_OUTPUTS[2]}) and x4 ({FACTOR_OUTPUTS[4]})"
        )
    return FACTOR_OUTPUTS[scale]


def has_scale(model, scale: int) -> bool:
    """Whether a model has the output for an upscaling factor (2 or 4).

    Args:
        model: a Keras model, or ``"bicubic"`` (which has every scale).
        scale: the factor.

    Returns:
        True when :func:`benchmark` can score the model at that factor.
    """
    if isinstance(model, str):
        return model == BICUBIC
    return FACTOR_OUTPUTS.get(scale) in output_names(model)


def benchmark(
    model,
    hr_dir,
    scale: int,
    tile: int | None = WHOLE,
    output: str | None = None,
) -> pd.DataFrame:
    """Score a model or bicubic interpolation with the published benchmark protocol.

    For each image of the folder (sorted by file name): make the high-resolution
    image and its 8-bit low-resolution input with :func:`benchmark_pair` (crop to a
    multiple of ``scale``, MATLAB bicubic downscale, clip to [0, 1], round to 1/255
    steps; the same input for models and for bicubic), upscale with
    :func:`srkit.images.bicubic_upscale` (``"bicubic"``) or the model applied to the
    whole input (:func:`srkit.tiles.predict_full`), clip to [0, 1], and compute PSNR
    and SSIM on the Y channel with ``scale`` border pixels shaved
    (:func:`srkit.metrics.y_psnr`, :func:`srkit.metrics.y_ssim`). This is the
    convention of the published tables (Set5 x2 bicubic: 33.66 dB).

    Args:
        model: a Keras model, or the string ``"bicubic"``.
        hr_dir: folder of high-resolution images (Set5, Set14, ...).
        scale: upscaling factor, 2 or 4 for a model (any integer >= 2 for bicubic).
        tile: as :func:`super_resolve` (default: the whole image at once).
        output: model output to use; by default ``low_upsample`` for x2 and
            ``high_upsample`` for x4.

    Returns:
        DataFrame with columns ``image`` (file stem), ``psnr`` (dB) and ``ssim``: one
        row per image, then a row ``mean`` with the averages over images.

    Raises:
        ValueError: for a missing or empty folder, a bad scale, a model without the
            output for that scale, or an output of another scale.
    """
    if isinstance(scale, bool) or int(scale) != scale or scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
    scale = int(scale)
    is_bicubic = isinstance(model, str)
    if is_bicubic and model != BICUBIC:
        raise ValueError(f"model must be a Keras model or 'bicubic', got {model!r}")
    if not is_bicubic:
        output = output or _benchmark_output(model, scale)
        names = output_names(model)
        if output not in names:
            raise ValueError(
                f"model {model.name!r} has no output {output!r} for x{scale}; "
                f"its outputs are {names}"
            )
    rows = []
    for path in _image_files(hr_dir):
        high_res, low_res = benchmark_pair(path, scale)
        super_res = super_resolve(model, low_res, scale, tile=tile, output=output)
        if super_res.shape != high_res.shape:
            raise ValueError(
                f"{path.name}: output {output!r} gave shape {super_res.shape} for a "
                f"x{scale} target of shape {high_res.shape}"
            )
        rows.append(
            {
                "image": path.stem,
                "psnr": float(metrics.y_psnr(high_res, super_res, scale)),
                "ssim": float(metrics.y_ssim(high_res, super_res, scale)),
            }
        )
    table = pd.DataFrame(rows, columns=["image", "psnr", "ssim"])
    mean = {"image": "mean", "psnr": table["psnr"].mean(), "ssim": table["ssim"].mean()}
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def parse_benchmarks(value: str, base=None) -> Path | None:
    """The folder named by a ``benchmarks`` parameter (``folder:PATH``).

    Args:
        value: ``""`` (no benchmark sets) or ``folder:PATH``; ``~`` is expanded.
        base: folder a relative PATH is resolved against (the project folder in the
            book); the current directory when None.

    Returns:
        The absolute folder, or None for an empty value.

    Raises:
        ValueError: for another form, or a PATH that is not a folder.
    """
    value = str(value or "").strip()
    if not value:
        return None
    path = parse_folder(value)
    if path is None:
        raise ValueError(
            f"benchmarks must be empty or folder:PATH (a folder whose subfolders such "
            f"as Set5/ and Set14/ hold high-resolution images), got {value!r}"
        )
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        folder = Path(base or Path.cwd()) / folder
    folder = folder.resolve()
    if not folder.is_dir():
        raise ValueError(f"benchmarks folder {str(folder)!r} does not exist")
    return folder


def _has_images(folder: Path) -> bool:
    return any(
        path.is_file() and path.suffix.lower() in images.IMAGE_EXTENSIONS
        for path in folder.iterdir()
    )


def benchmark_sets(folder) -> dict[str, Path]:
    """The benchmark sets of a folder: its subfolders that hold images.

    Args:
        folder: e.g. ``shared/data/benchmarks`` holding ``Set5/``, ``Set14/``; None
            gives no sets.

    Returns:
        Set name (subfolder name) -> folder, the usual sets first
        (:data:`BENCHMARK_ORDER`), then the others by name; empty when no subfolder
        holds an image.

    Raises:
        ValueError: for a path that is not a folder.
    """
    if folder is None:
        return {}
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"benchmarks folder {str(folder)!r} does not exist")
    found = [p for p in folder.iterdir() if p.is_dir() and _has_images(p)]
    rank = {name: number for number, name in enumerate(BENCHMARK_ORDER)}
    found.sort(key=lambda p: (rank.get(p.name, len(rank)), p.name))
    return {path.name: path for path in found}


def benchmark_all(
    models: Mapping,
    sets: Mapping,
    scales: Sequence[int] = BENCHMARK_SCALES,
    tile: int | None = WHOLE,
    progress=None,
) -> pd.DataFrame:
    """Score bicubic and several models on several sets and scales, per image.

    Bicubic interpolation is scored first, then each model in the order given, at
    each scale the model has an output for (a model with only ``low_upsample`` is
    scored at x2 alone). Each image is scored with :func:`benchmark`.

    Args:
        models: row name -> Keras model (e.g. the trained models of a run).
        sets: set name -> folder of high-resolution images (:func:`benchmark_sets`).
        scales: upscaling factors.
        tile: as :func:`super_resolve` (default: the whole image at once).
        progress: called with one line (set, scale, model) before each run, or None.

    Returns:
        DataFrame with columns ``set, scale, model, image, psnr, ssim`` (one row per
        image; no mean rows), empty with those columns when ``sets`` is empty.
    """
    parts = []
    candidates = [(BICUBIC, BICUBIC), *models.items()]
    for set_name, folder in sets.items():
        for scale in scales:
            for name, model in candidates:
                if not has_scale(model, scale):
                    continue
                if progress is not None:
                    progress(f"{set_name} x{scale}: {name}")
                table = benchmark(model, folder, scale, tile=tile)
                table = table[table["image"] != "mean"].copy()
                table.insert(0, "model", str(name))
                table.insert(0, "scale", int(scale))
                table.insert(0, "set", str(set_name))
                parts.append(table)
    if not parts:
        return pd.DataFrame(
            {
                column: pd.Series(dtype=np.float64 if column in METRICS else object)
                for column in BENCHMARK_IMAGE_COLUMNS
            }
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["scale"] = frame["scale"].astype(np.int64)
    return frame[BENCHMARK_IMAGE_COLUMNS]


def benchmark_summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR and SSIM per set, scale and model, with the margin over bicubic.

    Args:
        per_image: :func:`benchmark_all` output (must hold ``bicubic`` rows for a
            margin; without them the margins are NaN).

    Returns:
        DataFrame with columns ``set, scale, model, n_images, psnr, ssim,
        psnr_margin, ssim_margin``: one row per set, scale and model in the order
        of ``per_image`` (sets as given, scales ascending, bicubic first). The
        margins are the model's mean minus bicubic's on the same set and scale
        (bicubic's own margin is 0).

    Raises:
        ValueError: when columns are missing.
    """
    missing = set(BENCHMARK_IMAGE_COLUMNS) - set(per_image.columns)
    if missing:
        raise ValueError(f"per_image lacks the columns {sorted(missing)}")
    if per_image.empty:
        columns = {
            c: pd.Series(dtype=object if c in ("set", "model") else np.float64)
            for c in BENCHMARK_COLUMNS
        }
        return pd.DataFrame(columns)
    grouped = per_image.groupby(["set", "scale", "model"], sort=False)
    means = grouped[["psnr", "ssim"]].mean().reset_index()
    means.insert(3, "n_images", grouped.size().to_numpy())
    baseline = means[means["model"] == BICUBIC][["set", "scale", "psnr", "ssim"]]
    baseline = baseline.rename(columns={"psnr": "psnr_bicubic", "ssim": "ssim_bicubic"})
    table = means.merge(baseline, on=["set", "scale"], how="left")
    table["psnr_margin"] = table["psnr"] - table["psnr_bicubic"]
    table["ssim_margin"] = table["ssim"] - table["ssim_bicubic"]
    sets = list(dict.fromkeys(per_image["set"]))
    table["set_rank"] = table["set"].map({name: i for i, name in enumerate(sets)})
    table["is_model"] = (table["model"] != BICUBIC).astype(int)
    table = table.sort_values(["set_rank", "scale", "is_model"], kind="stable")
    table["scale"] = table["scale"].astype(np.int64)
    table["n_images"] = table["n_images"].astype(np.int64)
    return table[BENCHMARK_COLUMNS].reset_index(drop=True)
