"""Page helpers of the benchmark page (step 12): sets, models, tables, a figure.

This module owns what the benchmark page shows about scoring the trained models on
public benchmark sets: the ``benchmarks`` parameter resolved to a folder, the
trained models of a run, the page's banner and the sentence that says what is
scored (or why nothing is), the tables of measured rows beside the rows quoted
from the papers (each labelled so), the best model of a set and the figure of one
typical image. The margins over bicubic that the benchmark and summary pages share
are in ``srkit.summary_page``. Built on ``srkit.report`` (banner, Markdown).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

import srkit
from srkit import evaluate, layout, models, plots, records, report
from srkit.images import IMAGE_EXTENSIONS
from srkit.vocab import BICUBIC

#: How every typed-in published benchmark row is labelled.
PUBLISHED_LABEL = "quoted from the paper, not measured here"

#: How benchmark rows computed by this run are labelled.
MEASURED_LABEL = "measured here"


def benchmark_folder(benchmarks: str) -> Path | None:
    """Resolve a page's ``benchmarks`` parameter (``""`` or ``folder:PATH``).

    A relative PATH is taken from the project folder (found from the current
    directory, else from the srkit checkout), so ``folder:../shared/data/benchmarks``
    means the same folder whether the pipeline or plain papermill runs the page.

    Args:
        benchmarks: the parameter value.

    Returns:
        The absolute folder, or None for an empty value.

    Raises:
        ValueError: for another form or a missing folder
            (``srkit.evaluate.parse_benchmarks``).
    """
    base = report.project_root() or report.project_root(Path(srkit.__file__).parent)
    return evaluate.parse_benchmarks(benchmarks, base=base)


def trained_models(run_dir: str | os.PathLike) -> dict[str, Path]:
    """The trained model files of a run, in zoo order.

    Args:
        run_dir: the run folder.

    Returns:
        Registry name -> ``RUN/models/<name>/best.keras``, for every model of
        ``srkit.models.MODEL_NAMES`` whose file exists.
    """
    found = {}
    for name in models.MODEL_NAMES:
        path = layout.RunFolder(run_dir).best_model(name)
        if path.is_file():
            found[name] = path
    return found


def model_label(name: str) -> str:
    """A model's row label: its registry name and the step that trains it.

    Args:
        name: a registry name, or ``bicubic``.

    Returns:
        e.g. ``dts_model (step 07)``, ``dts_dilated_conv_block_model (R1)``;
        other names unchanged.
    """
    info = models.MODEL_INFO.get(name)
    if info is None:
        return name
    step = str(info["step"])
    return f"{name} ({step})" if step.startswith("R") else f"{name} (step {step})"


def _set_counts(sets) -> str:
    counts = []
    for name, folder in sets.items():
        images = [
            p
            for p in Path(folder).iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        ]
        counts.append(f"{name} ({len(images)} images)")
    return ", ".join(counts)


def benchmark_banner(profile: str, sets, model_names):
    """The run banner of the benchmark page: profile, sets, models, hardware.

    Args:
        profile: name of the parameter profile.
        sets: set name -> folder (``srkit.evaluate.benchmark_sets``).
        model_names: the trained models that are scored.

    Returns:
        An ``IPython.display.Markdown`` admonition (see :func:`srkit.report.banner`).
    """
    shown = _set_counts(sets) or "none"
    extra = (
        f"Benchmark sets: {shown}. Trained models found in the run folder: "
        f"{len(list(model_names))}."
    )
    return report.banner(profile, None, extra=extra)


def benchmark_status(benchmarks: str, folder, sets, model_names, profile: str = ""):
    """Say plainly what the benchmark page scores, or why it scores nothing.

    Args:
        benchmarks: the page's ``benchmarks`` parameter.
        folder: its resolved folder (:func:`benchmark_folder`), or None.
        sets: set name -> folder (``srkit.evaluate.benchmark_sets``).
        model_names: the trained models found in the run folder.
        profile: the run's parameter profile, named in the command that scores.

    Returns:
        An ``IPython.display.Markdown`` paragraph.
    """
    model_names = list(model_names)
    if folder is None:
        text = (
            "**No benchmark sets.** The `benchmarks` parameter is empty, so nothing "
            "is scored on this page: the tables below hold the rows quoted from the "
            "papers alone, and the summary relies on the validation images. "
            + how_to_score(profile)
        )
    elif not sets:
        text = (
            f"**No benchmark sets.** The folder `{folder}` (from `{benchmarks}`) has "
            "no subfolder holding images, so nothing is scored on this page: the "
            "tables below hold the rows quoted from the papers alone. "
            + how_to_score(profile)
        )
    else:
        scored = ", ".join(f"`{name}`" for name in model_names) or "no trained model"
        text = (
            f"We score bicubic interpolation and {len(model_names)} trained "
            f"model{'s' if len(model_names) != 1 else ''} ({scored}) on "
            f"{_set_counts(sets)}."
        )
        if not model_names:
            text += (
                " No `RUN/models/<name>/best.keras` was found in the run folder, so "
                "the tables hold bicubic and the published rows only."
            )
    return report.markdown(text)


def _plain(value, digits: int) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f}"


def benchmark_tables(summary: pd.DataFrame, published: pd.DataFrame | None = None):
    """One Markdown table per set and scale: bicubic, our models, published rows.

    Columns: method, source, PSNR (dB), SSIM, and the margins over bicubic. Our rows
    are labelled "measured here"; published rows "quoted from the paper, not
    measured here", and their margins are over the same paper's bicubic row. The
    sources of the quoted rows are listed below the tables. When nothing was
    scored, the tables hold the quoted rows alone, one per set and scale of
    ``published``.

    Args:
        summary: ``srkit.evaluate.benchmark_summary`` output (may be empty).
        published: ``srkit.records.load_published_benchmarks`` output; loaded when
            None.

    Returns:
        An ``IPython.display.Markdown`` object (a sentence when there is neither a
        measured nor a quoted row).
    """
    if published is None:
        published = records.load_published_benchmarks()
    if summary.empty and published.empty:
        return report.markdown("No benchmark results to show.")
    header = [
        "method",
        "source",
        "PSNR (dB)",
        "SSIM",
        "PSNR margin over bicubic (dB)",
        "SSIM margin over bicubic",
    ]
    source = published if summary.empty else summary
    places = list(
        dict.fromkeys(zip(source["set"], source["scale"].astype(int), strict=True))
    )
    lines, cited = [], {}
    for set_name, scale in places:
        rows = summary
        if not summary.empty:
            rows = summary[(summary["set"] == set_name) & (summary["scale"] == scale)]
        body = [
            [
                model_label(row.model),
                MEASURED_LABEL,
                _plain(row.psnr, 2),
                _plain(row.ssim, 4),
                report.signed(row.psnr_margin, 2),
                report.signed(row.ssim_margin, 4),
            ]
            for row in rows.itertuples(index=False)
        ]
        quoted = published[
            (published["set"] == set_name) & (published["scale"] == scale)
        ]
        baseline = quoted[quoted["method"] == BICUBIC]
        for row in quoted.itertuples(index=False):
            base = baseline.iloc[0] if len(baseline) else None
            psnr_margin = row.psnr - base["psnr"] if base is not None else np.nan
            ssim_margin = row.ssim - base["ssim"] if base is not None else np.nan
            cited.setdefault((row.method, row.citation), row.link)
            body.append(
                [
                    f"[{row.method}]({row.link}) (paper)",
                    PUBLISHED_LABEL,
                    _plain(row.psnr, 2),
                    _plain(row.ssim, 4),
                    report.signed(psnr_margin, 2),
                    report.signed(ssim_margin, 4),
                ]
            )
        if len(rows):
            count = int(rows["n_images"].iloc[0])
            lines.append(f"**{set_name}, x{scale}** (mean over {count} images)")
        else:
            lines.append(
                f"**{set_name}, x{scale}** (quoted rows only: not scored here)"
            )
        lines.append("")
        lines += report.table_lines(header, body)
        lines.append("")
    if cited:
        lines.append(
            f"Rows marked *{PUBLISHED_LABEL}* are typed in from the papers' tables "
            "(`srkit/reference/published_benchmarks.csv`); a dash is a value the "
            "paper does not report or that we did not check:"
        )
        lines.append("")
        lines += [f"- {method}: {text}" for method, text in cited]
    return report.markdown("\n".join(lines))


def how_to_score(profile: str = "") -> str:
    """The sentence that says how to score a run's models on benchmark sets.

    Args:
        profile: the run's parameter profile, named in the command; empty leaves
            the ``--profile`` option as a placeholder.

    Returns:
        Markdown text: the folder layout and the ``srkit run`` command.
    """
    option = f"--profile {profile}" if profile else "--profile PROFILE"
    return (
        "To score the models, put the high-resolution images of each set in a "
        "subfolder of one folder (`Set5/`, `Set14/`, ...) and run "
        f"`srkit run {option} -p benchmarks=folder:PATH` with that folder as PATH "
        "(a relative path is taken from the project folder)."
    )


def margin_figure_intro(summary: pd.DataFrame):
    """The sentence above the margin bars, or why there are none.

    Args:
        summary: ``srkit.evaluate.benchmark_summary`` output (may be empty).

    Returns:
        An ``IPython.display.Markdown`` paragraph: what the bars of
        ``srkit.plots.margin_bars`` show when a model was scored, else that no bar
        is drawn.
    """
    if summary.empty or (summary["model"] == BICUBIC).all():
        return report.markdown(
            "No model was scored on a benchmark set in this run, so there are no "
            "margins to draw."
        )
    return report.markdown(
        "One panel per set and scale. A green bar to the right of zero beats "
        "bicubic; a red bar to the left falls short of it."
    )


def best_benchmark_model(summary: pd.DataFrame, set_name: str, scale: int) -> str:
    """The model with the highest mean PSNR on one set at one scale.

    Args:
        summary: ``srkit.evaluate.benchmark_summary`` output.
        set_name: e.g. ``Set5``.
        scale: 2 or 4.

    Returns:
        The model's registry name.

    Raises:
        ValueError: when no model (other than bicubic) has a row there.
    """
    rows = summary[
        (summary["set"] == set_name)
        & (summary["scale"] == scale)
        & (summary["model"] != "bicubic")
    ]
    if rows.empty:
        raise ValueError(f"no model has benchmark results on {set_name} x{scale}")
    return str(rows.sort_values("psnr", ascending=False, kind="stable").iloc[0].model)


def benchmark_figure(
    models, per_image: pd.DataFrame, set_name: str, folder, scale=None
):
    """Original, bicubic and the best model on one typical image of a set, zoomed.

    The scale is the largest one any model was scored at on the set (x4 when a
    model has it). The image is the one on which the best model's PSNR gain over
    bicubic is the median of the set: a typical image, neither the best case nor
    the worst. The zoom box sits where bicubic's error is largest.

    Args:
        models: registry name -> Keras model (the ones scored).
        per_image: ``srkit.evaluate.benchmark_all`` output.
        set_name: the set to show.
        folder: the set's folder of high-resolution images.
        scale: the factor to show, or None for the largest scored.

    Returns:
        A ``srkit.plots.zoom_comparison`` figure.

    Raises:
        ValueError: when no model was scored on the set.
    """
    rows = per_image[per_image["set"] == set_name]
    scored = rows[rows["model"] != BICUBIC]
    if scored.empty:
        raise ValueError(f"no model was scored on {set_name}")
    scale = int(scale or scored["scale"].max())
    rows = rows[rows["scale"] == scale]
    best = best_benchmark_model(evaluate.benchmark_summary(rows), set_name, scale)
    by_image = rows.pivot_table(index="image", columns="model", values="psnr")
    gains = (by_image[best] - by_image[BICUBIC]).sort_values(kind="stable")
    image = str(gains.index[(len(gains) - 1) // 2])
    path = next(
        p
        for p in sorted(Path(folder).iterdir())
        if p.stem == image and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    high_res, low_res = evaluate.benchmark_pair(path, scale)
    scores = rows[rows["image"] == image].set_index("model")[["psnr", "ssim"]]
    panels = {
        "original (high resolution)": high_res,
        "bicubic": evaluate.super_resolve(BICUBIC, low_res, scale),
        model_label(best): evaluate.super_resolve(models[best], low_res, scale),
    }
    metrics = {
        "bicubic": scores.loc[BICUBIC].to_dict(),
        model_label(best): scores.loc[best].to_dict(),
    }
    title = f"{set_name} x{scale}, image {image!r}: Y-channel PSNR and SSIM"
    return plots.zoom_comparison(panels, metrics=metrics, title=title)
