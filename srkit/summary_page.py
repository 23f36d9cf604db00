"""Page helpers of the summary page (step 13): labels, headline, margins, rankings.

This module owns what compares the models of a whole run: each model's reader label
(``07``, ``R4``) and its link to the page that trains it (the page is named in the
model registry, ``srkit.models.MODEL_INFO[name]["page"]``), the headline that
answers the study's question from the run and the figure under it (the result
models and the best architecture model on one image, :func:`side_by_side`), the
margins over bicubic on the benchmark sets (tables and sentences, shown by the
benchmark page too), the
validation tables beside bicubic, the ranking of the models beside the study's,
the study's own numbers in tables apart from ours, why the two cannot be compared
and what can (the order of pairs of models), the legend of labels and the
conclusions. Built on ``srkit.report`` (Markdown).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from srkit import models, records, report
from srkit.vocab import OUTPUT_FACTORS, output_side

#: The data behind the original report's numbers (``srkit.report.STUDY_IMAGES``):
#: its own validation images; its text names no image collection (the ``voc2007``
#: source of our full profile is our choice, not the study's).
ORIGINAL_DATA = report.STUDY_IMAGES

#: What the original study found, in the words of its own table (checked
#: against ``srkit.records.load_original_results`` by the tests).
ORIGINAL_BEST = "dts_dilated_conv_ext_block_ssim_psnr_model"


def short_label(name: str) -> str:
    """A model's reader label: its step number (``07``) or result name (``R4``).

    The two models of step 02 are ``02 nearest`` and ``02 bilinear``; names outside
    the zoo (``bicubic``) are returned unchanged.
    """
    info = models.MODEL_INFO.get(name)
    if info is None:
        return name
    step = str(info["step"])
    if step == "02":
        return "02 " + name.removeprefix("simple_model_")
    return step


def model_pages(table: pd.DataFrame) -> dict[str, str]:
    """Model -> the stem of the step page that trains it, for the models of a run.

    The page is the one the registry names (``srkit.models.MODEL_INFO[name]
    ["page"]``); the run's table only says which models there are.

    Args:
        table: ``srkit.records.collect_metrics`` output (column ``model``).

    Returns:
        e.g. ``{"dts_model": "07_depth_to_space", ...}``, in zoo order; bicubic and
        names outside the zoo are left out.
    """
    in_run = set(table["model"].astype(str))
    return {
        name: models.MODEL_INFO[name]["page"]
        for name in models.MODEL_NAMES
        if name in in_run
    }


def linked_label(name: str, pages: dict[str, str] | None = None) -> str:
    """:func:`short_label` as a MyST link to the model's page when it is known."""
    label = short_label(name)
    if pages and name in pages:
        return f"{{doc}}`{label} <{pages[name]}>`"
    return label


def _name(name: str, pages: dict[str, str] | None) -> str:
    return linked_label(name, pages) if pages is not None else f"`{name}`"


def _best_by_scale(rows: pd.DataFrame, value: str) -> dict[int, tuple[str, float]]:
    """Scale -> (model, mean ``value`` over its rows), the largest mean per scale."""
    best = {}
    for scale in sorted(rows["scale"].unique()):
        mean = rows[rows["scale"] == scale].groupby("model", sort=False)[value].mean()
        mean = mean.sort_values(ascending=False, kind="stable")
        best[int(scale)] = (str(mean.index[0]), float(mean.iloc[0]))
    return best


def _margins_on_validation(table: pd.DataFrame) -> pd.DataFrame:
    """Validation rows with ``psnr_margin``: each model minus bicubic at its scale."""
    bicubic = table[table["model"] == "bicubic"].groupby("scale")["psnr"].mean()
    rows = table[(table["model"] != "bicubic") & table["scale"].isin(bicubic.index)]
    return rows.assign(psnr_margin=rows["psnr"] - rows["scale"].map(bicubic))


def _scored_rows(bench: pd.DataFrame, ours: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The margins the headline ranks, and where they were measured.

    The benchmark sets' margins when the run scored any; otherwise each model's
    margin on our validation images.
    """
    scored = bench[bench["model"] != "bicubic"] if len(bench) else bench
    if len(scored):
        sets = ", ".join(dict.fromkeys(scored["set"]))
        return scored, f"mean over the benchmark sets {sets}"
    where = "on our validation images; this run has no benchmark result"
    return _margins_on_validation(ours), where


def headline(
    bench: pd.DataFrame,
    ours: pd.DataFrame,
    profile: str,
    pages: dict[str, str] | None = None,
):
    """The summary page's answer, computed from the run, as a short admonition.

    The best model per scale is the one with the largest mean PSNR margin over
    bicubic on the benchmark sets (on the validation images when the run has no
    benchmark result); the best loss is that of the best result model (R1-R4,
    which differ mainly in their training loss). Short enough that the figure
    under it starts on a phone's first screen; what the original study found
    follows the figure (:func:`study_verdict`). A smoke build's title says that
    the ranking is noise.

    Args:
        bench: ``srkit.records.read_benchmarks`` output (may be empty).
        ours: ``srkit.records.collect_metrics`` output.
        profile: the run's parameter profile.
        pages: model -> step page stem (:func:`model_pages`), for links.

    Returns:
        An ``IPython.display.Markdown`` admonition.
    """
    rows, where = _scored_rows(bench, ours)
    bullets = []
    for scale, (name, margin) in _best_by_scale(rows, "psnr_margin").items():
        bullets.append(
            f"- **Best at x{scale}:** {linked_label(name, pages)}, "
            f"{report.margin_text(margin)} dB"
        )
    in_run = rows[rows["model"].isin(result_names())]
    if len(in_run):
        mean = in_run.groupby("model", sort=False)["psnr_margin"].mean()
        winner = str(mean.sort_values(ascending=False, kind="stable").index[0])
        bullets.append(
            f"- **Best loss:** `{models.MODEL_INFO[winner]['loss']}` "
            f"({linked_label(winner, pages)}, the best result model: "
            f"{report.margin_text(mean[winner])} dB)"
        )
    note = f"PSNR over bicubic interpolation, {where}."
    if profile == "smoke":  # the title says it first
        title, kind = (
            "What this smoke build found: noise (a few training steps)",
            "warning",
        )
    else:
        title, kind = "What this run found", "important"
    head = f":::{{admonition}} {title}\n:class: {kind} srkit-headline\n"
    return report.markdown(f"{head}\n" + "\n".join(bullets) + f"\n\n{note}\n:::")


def study_verdict(
    bench: pd.DataFrame, ours: pd.DataFrame, original: pd.DataFrame, profile: str
):
    """What the original study found best, and whether this run agrees.

    Args:
        bench, ours, profile: as for :func:`headline`.
        original: ``srkit.records.load_original_results`` output.

    Returns:
        An ``IPython.display.Markdown`` paragraph.
    """
    rows, _ = _scored_rows(bench, ours)
    best = _best_by_scale(rows, "psnr_margin")
    study = _best_by_scale(original, "psnr")
    study_names = {name for name, _ in study.values()}
    if len(study_names) == 1:
        study_text = f"{short_label(next(iter(study_names)))} best at both scales"
    else:
        study_text = ", ".join(
            f"{short_label(n)} best at {output_side(s)}x{output_side(s)}"
            for s, (n, _) in study.items()
        )
    shared = [s for s in study if s in best]
    agree = [s for s in shared if best[s][0] == study[s][0]]
    if profile == "smoke":
        verdict = "A smoke build trains too little to test that."
    elif shared and len(agree) == len(shared):
        verdict = "This run agrees."
    elif agree:
        verdict = "This run agrees at " + ", ".join(f"x{s}" for s in agree) + " only."
    else:
        verdict = "This run does not agree."
    return report.markdown(
        f"**The original study** found {study_text}, measured in PSNR on "
        f"{ORIGINAL_DATA}. {verdict}"
    )


def result_names() -> list[str]:
    """The registry names of the four result models, R1 to R4, in order."""
    return [
        n for n in models.MODEL_NAMES if str(models.MODEL_INFO[n]["step"])[0] == "R"
    ]


def best_architecture(table: pd.DataFrame, scale: int = 4) -> str | None:
    """The architecture model (steps 02-07) with the highest mean PSNR at ``scale``.

    Args:
        table: ``srkit.records.collect_metrics`` output.
        scale: the upscaling factor compared.

    Returns:
        Its registry name, or None when no model of 02-07 has a row at ``scale``.
    """
    results = set(result_names())
    rows = table[
        (table["model"] != "bicubic")
        & ~table["model"].isin(results)
        & (table["scale"] == scale)
    ]
    if rows.empty:
        return None
    return report.best_model(rows, scale=scale)


def panel_title(name: str) -> str:
    """A model's panel title in the side-by-side figure: label, then its loss."""
    return f"{short_label(name)}\nloss: {models.MODEL_INFO[name]['loss']}"


def side_by_side(run, subset, table: pd.DataFrame, scale: int = 4):
    """The summary's figure: R1-R4 and the best architecture model on one image.

    Loads each model's ``best.keras`` from the run, predicts one image and
    draws :func:`srkit.plots.models_figure`: the same crop of the same validation
    image (the one of median bicubic PSNR, chosen before any model) through input,
    bicubic, the best model of steps 02-07, R1 to R4 and the target, each titled
    with its label and training loss, PSNR and SSIM of the crop under each.

    Args:
        run: the ``srkit.layout.RunFolder`` (``best_model(name)`` paths).
        subset: the validation :class:`srkit.windows.Subset` to draw from.
        table: ``srkit.records.collect_metrics`` output (which models the run has).
        scale: the upscaling factor shown.

    Returns:
        The figure, with ``caption`` (Markdown, its numbered caption), or None when
        the run has none of these models.
    """
    from srkit import evaluate, plots  # deferred: Keras and matplotlib

    in_run = set(table["model"].astype(str))
    names = [n for n in [best_architecture(table, scale)] if n]
    names += [n for n in result_names() if n in in_run]
    names = [n for n in names if run.best_model(n).exists()]
    if not names:
        return None
    # The image: the one of median bicubic PSNR (typical difficulty, chosen before
    # any model is seen); the region: its busiest square.
    bicubic = evaluate.evaluate(None, subset)
    bicubic.per_image = bicubic.bicubic_per_image
    choice = plots.choose_crop(bicubic, subset, scale)
    shown = {panel_title(n): models.load(run.best_model(n)) for n in names}
    # Each model traces its own function: TensorFlow's "retracing" warning about
    # it would print into the page.
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        figure = plots.models_figure(shown, subset, choice)
    finally:
        logger.setLevel(level)
    labels = [short_label(n) for n in names]
    architecture = (
        f"{labels[0]}, the architecture model (steps 02 to 07) with the highest "
        f"validation PSNR at x{scale} in this run, and "
        if names[0] not in result_names()
        else ""
    )
    results = [short_label(n) for n in names if n in result_names()]
    figure.caption = (
        f"**The models side by side.** {architecture}the result models "
        f"{', '.join(results)} (which differ mainly in their training loss, named "
        f"under each label) on `{choice.name}`, the validation image of median "
        f"bicubic PSNR among {choice.n_images}, at x{scale}: the {choice.size} px "
        "square of its target where brightness varies most, magnified "
        f"{plots.CROP_ZOOM}x, from the input (pixels repeated) and bicubic "
        "interpolation to the target. PSNR and SSIM under the panels are of the crop."
    )
    return figure


def gif_caption(name: str, gif) -> str:
    """The short caption of a model's training GIF on the summary page.

    Args:
        name: the model's registry name.
        gif: the GIF's path (``gif_<output>.gif``), which names the output.

    Returns:
        Markdown, e.g. "the x4 output of `dts_model`, trained on the mse loss."
    """
    output = Path(gif).stem.removeprefix("gif_")
    scale = OUTPUT_FACTORS.get(output)
    shown = f"the x{scale} output" if scale else f"the output `{output}`"
    loss = models.MODEL_INFO.get(name, {}).get("loss")
    trained = f", trained on the {loss} loss" if loss else ""
    return f"{shown.capitalize()} of `{name}`{trained}."


def summary_table(
    comparison: pd.DataFrame, metrics: tuple[str, ...] = ("psnr", "ssim")
) -> pd.DataFrame:
    """A compact view of ``srkit.records.comparison_table`` for a book page.

    Args:
        comparison: the output of ``comparison_table`` (columns ``<metric>_ours``,
            ``<metric>_original``, ``<metric>_bicubic``).
        metrics: which metrics to show, each as three columns (this run, original
            report, bicubic).

    Returns:
        A DataFrame indexed by (scale, model), models in zoo order within a scale.
    """
    labels = {
        "ours": "this run",
        "original": "original report (its own images)",
        "bicubic": "bicubic",
    }
    decimals = {"mse": 5, "mae": 4, "psnr": 2, "ssim": 3}
    columns = {
        f"{metric}_{source}": f"{metric.upper()} {label}"
        for metric in metrics
        for source, label in labels.items()
    }
    table = comparison.sort_values("scale", kind="stable")
    table = table.set_index(["scale", "model"])[list(columns)]
    table = table.round({key: decimals[key.split("_")[0]] for key in columns})
    return table.rename(columns=columns)


def validation_tables(
    comparison: pd.DataFrame,
    metrics: tuple[str, ...] = ("psnr", "ssim"),
    pages: dict[str, str] | None = None,
):
    """:func:`summary_table` as one narrow Markdown table per output size.

    Each metric has two columns, this run and bicubic on the same validation
    images. The original study's values (other data) are not set beside them:
    :func:`study_tables` shows them in tables of their own.

    Args:
        comparison: ``srkit.records.comparison_table`` output.
        metrics: metrics to show.
        pages: model -> step page stem, for linked labels.

    Returns:
        An ``IPython.display.Markdown`` with a bold title and a table per size.
    """
    blocks = []
    for scale in sorted(comparison["scale"].unique()):
        rows = comparison[comparison["scale"] == scale]
        side = output_side(scale)
        header = ["model"]
        for metric in metrics:
            header += [metric.upper(), "bicubic"]
        lines = [
            f"**{side}x{side}** (x{scale}), validation images",
            "",
            "| " + " | ".join(header) + " |",
            "|---|" + "---:|" * (len(header) - 1),
        ]
        for row in rows.itertuples(index=False):
            cells = [linked_label(str(row.model), pages)]
            for metric in metrics:
                for source in ("ours", "bicubic"):
                    value = getattr(row, f"{metric}_{source}")
                    cells.append(_decimal(value, metric))
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return report.markdown("\n\n".join(blocks))


#: Decimals of each metric in the summary's tables.
DECIMALS = {"mse": 5, "mae": 4, "psnr": 2, "ssim": 3}


def _decimal(value, metric: str) -> str:
    return "" if pd.isna(value) else f"{value:.{DECIMALS[metric]}f}"


def study_tables(
    original: pd.DataFrame | None = None, pages: dict[str, str] | None = None
):
    """The original report's own numbers, one Markdown table per output size.

    A record of that study, kept apart from this run's tables: its numbers were
    measured on other images (:data:`ORIGINAL_DATA`) after another degradation and
    budget, so no column of ours sits beside them.

    Args:
        original: ``srkit.records.load_original_results`` output; loaded when None.
        pages: model -> step page stem, for linked labels.

    Returns:
        An ``IPython.display.Markdown``: per size a bold title and a table with the
        columns ``model``, ``PSNR``, ``SSIM``, ``MSE``, ``MAE``, models in zoo
        order.
    """
    if original is None:
        original = records.load_original_results()
    rows = original[original["model"] != "bicubic"]
    order = {name: i for i, name in enumerate(models.MODEL_NAMES)}
    blocks = []
    for scale in sorted(rows["scale"].unique()):
        side = output_side(scale)
        at = rows[rows["scale"] == scale]
        at = at.sort_values("model", key=lambda c: c.map(order), kind="stable")
        lines = [
            f"**{side}x{side}** (x{scale}), the study's own images",
            "",
            "| model | PSNR | SSIM | MSE | MAE |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in at.itertuples(index=False):
            cells = [linked_label(str(row.model), pages)]
            cells += [
                _decimal(getattr(row, m), m) for m in ("psnr", "ssim", "mse", "mae")
            ]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return report.markdown("\n\n".join(blocks))


#: Why this run's numbers and the study's cannot be compared, in one paragraph. Each
#: fact about the study is stated in its text (``../shared/reference``).
NOT_COMPARABLE = (
    "**Why the numbers cannot be compared.** "
    "*Data:* the study's text names no image collection; ours are named in the "
    "banner of each page (the `voc2007` source of the full profile is our choice, "
    "not the study's). "
    "*Degradation:* the study resized each image to 72, 144 and 288 px squares and "
    "does not say with which interpolation; we cut windows and shrink them by bicubic "
    "interpolation with antialiasing, then clip and round the input to 8 bits. "
    "*Budgets:* the study trained steps 2 to 7 on 100 images and the result models on "
    "2,500, retraining R4 for 10 more epochs on 5,000, and counted epochs; we count "
    "optimizer steps, set by the profile, and may add the bicubic skip, which its "
    "networks do not have. "
    "*Validation split:* the study validated on 20 % of the images it loaded, so its "
    "own rows come from different validation sets (small ones for steps 2 to 7); "
    "ours are split by photograph with a fixed seed and scored on fixed windows. "
    "What can be compared is the order of the models: whether one model beats "
    "another in both."
)

#: Pairs of models whose order the summary compares with the study's: each
#: architecture or result model against the model it changes (its control), and
#: the last result model against the first.
STUDY_PAIRS = (
    ("multi_upsampling_model", "simple_model_bilinear"),
    ("residual_block_model", "multi_upsampling_model"),
    ("dilated_conv_block_model", "residual_block_model"),
    ("vgg_feature_extract_model", "multi_upsampling_model"),
    ("dts_model", "vgg_feature_extract_model"),
    ("dts_dilated_conv_ext_block_model", "dts_dilated_conv_block_model"),
    ("dts_dilated_conv_ext_block_ssim_model", "dts_dilated_conv_ext_block_model"),
    (ORIGINAL_BEST, "dts_dilated_conv_ext_block_ssim_model"),
    (ORIGINAL_BEST, "dts_dilated_conv_block_model"),
)

#: What the orderings section says for a smoke build.
SMOKE_NO_ORDER = (
    "A smoke build trains every model for a handful of steps, so its order is "
    "noise; the orders are compared with the study's only for runs that trained."
)


def _order_word(difference: float) -> str:
    rounded = round(difference, 2) + 0.0  # no "-0.00"
    return "tie" if rounded == 0 else ("higher" if rounded > 0 else "lower")


def study_orderings(
    ranking: pd.DataFrame,
    original: pd.DataFrame | None = None,
    profile: str = "",
    pages: dict[str, str] | None = None,
):
    """Does a model beat its control in the study and in this run? One table per size.

    For each pair of :data:`STUDY_PAIRS` that both have at a size: the study's PSNR
    difference (its rows, its images) and ours, the difference of the two models'
    PSNR margins over bicubic (the benchmark ranking when there is one, else the
    validation ranking, each model against bicubic on its own step's images); and
    whether the first model is higher in both, lower in both, level (a difference
    below 0.005 dB) in one of them, or the orders differ. Only the signs are
    compared: the decibels come from other images.

    Args:
        ranking: :func:`model_ranking` (or ``records.margin_ranking``) output.
        original: the original report's table; loaded when None.
        profile: the run's parameter profile; a smoke build gets a sentence only.
        pages: model -> step page stem, for linked labels.

    Returns:
        An ``IPython.display.Markdown``: tables and a sentence counting the pairs in
        the same order, or a sentence when there is nothing to compare.
    """
    if profile == "smoke":
        return report.markdown(SMOKE_NO_ORDER)
    if original is None:
        original = records.load_original_results()
    if ranking.empty:
        return report.markdown(NO_RANKING)
    names = list(dict.fromkeys(ranking["ranking"]))
    blocks, counts = [], []
    for scale in sorted(ranking["scale"].unique()):
        at = ranking[ranking["scale"] == scale]
        main = next(n for n in names if (at["ranking"] == n).any())
        ours = at[at["ranking"] == main].set_index("model")["psnr_margin"]
        study = original[original["scale"] == scale].set_index("model")["psnr"]
        lines = [
            f"**x{scale}**: PSNR of the first model minus the second (dB); ours from "
            f"the margins over bicubic ({RANKING_WORDS.get(main, main)})",
            "",
            "| pair | study | this run | order |",
            "|---|---:|---:|---|",
        ]
        same = total = 0
        for first, second in STUDY_PAIRS:
            if not {first, second} <= set(ours.index) & set(study.index):
                continue
            theirs = float(study[first] - study[second])
            here = float(ours[first] - ours[second])
            words = (_order_word(theirs), _order_word(here))
            agree = words[0] == words[1]
            same += agree
            total += 1
            if agree:
                verdict = f"same ({words[0]})"
            elif "tie" in words:
                verdict = "tie " + ("in the study" if words[0] == "tie" else "here")
            else:
                verdict = "differs"
            pair = f"{linked_label(first, pages)} vs {linked_label(second, pages)}"
            shown = [report.margin_text(v) for v in (theirs, here)]
            lines.append(f"| {pair} | {shown[0]} | {shown[1]} | {verdict} |")
        if total:
            blocks.append("\n".join(lines))
            counts.append(f"{same} of {total} pairs at x{scale}")
    if not blocks:
        return report.markdown(
            "No pair of models has a result both here and in the study, so there is "
            "no order to compare."
        )
    blocks.append(
        "The first model of a pair is higher or lower in the same order in the "
        "study and in this run for " + " and ".join(counts) + "."
    )
    return report.markdown("\n\n".join(blocks))


def margin_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Each model's margin over bicubic, by set and scale, for the summary page.

    Args:
        summary: ``srkit.evaluate.benchmark_summary`` or
            ``srkit.records.read_benchmarks`` output.

    Returns:
        A DataFrame indexed by model (zoo order), with two columns per set and
        scale, ``(<set> x<scale>, "PSNR (dB)")`` and ``(<set> x<scale>, "SSIM")``:
        the model's mean minus bicubic's, rounded (2 and 4 decimals); NaN where the
        model has no output for the scale.
    """
    rows = summary[summary["model"] != "bicubic"]
    where = rows["set"].astype(str) + " x" + rows["scale"].astype(str)
    columns = list(dict.fromkeys(where))
    table = rows.assign(where=where)
    table = table.pivot_table(
        index="model", columns="where", values=["psnr_margin", "ssim_margin"]
    )
    order = [n for n in models.MODEL_NAMES if n in table.index]
    order += [n for n in table.index if n not in order]
    result = pd.DataFrame(index=pd.Index(order, name="model"))
    for where in columns:
        result[(where, "PSNR (dB)")] = table[("psnr_margin", where)].round(2)
        result[(where, "SSIM")] = table[("ssim_margin", where)].round(4)
    result.columns = pd.MultiIndex.from_tuples(result.columns, names=["set", "margin"])
    return result


def margin_tables(summary: pd.DataFrame, pages: dict[str, str] | None = None):
    """:func:`margin_table` as one narrow Markdown table per scale, flat headers.

    Args:
        summary: ``srkit.records.read_benchmarks`` output.
        pages: model -> step page stem, for linked labels.

    Returns:
        An ``IPython.display.Markdown``: for each scale a bold title and a table
        with the columns ``model``, then ``<set> dB`` and ``<set> SSIM`` per set.
    """
    table = margin_table(summary)
    blocks = []
    for scale in sorted(summary["scale"].unique()):
        columns = [c for c in table.columns if c[0].endswith(f" x{scale}")]
        part = table[columns].dropna(how="all")
        header = ["model"] + [
            f"{where.rsplit(' ', 1)[0]} {'dB' if 'PSNR' in kind else 'SSIM'}"
            for where, kind in columns
        ]
        lines = [
            f"**x{scale}**: margin over bicubic (PSNR in dB, SSIM)",
            "",
            "| " + " | ".join(header) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for name, row in part.iterrows():
            cells = [
                "" if pd.isna(v) else (f"{v:+.2f}" if "PSNR" in c[1] else f"{v:+.4f}")
                for c, v in row.items()
            ]
            lines.append(
                f"| {linked_label(str(name), pages)} | " + " | ".join(cells) + " |"
            )
        blocks.append("\n".join(lines))
    return report.markdown("\n\n".join(blocks))


def margin_takeaways(summary: pd.DataFrame, pages: dict[str, str] | None = None):
    """Sentences drawn from the margin table: best model per scale, models below.

    For each scale, the best model is the one with the largest PSNR margin over
    bicubic averaged over the sets; its margin on each set follows. Then the models
    whose PSNR stays below bicubic on every set, and those below on some sets.

    Args:
        summary: ``srkit.evaluate.benchmark_summary`` or
            ``srkit.records.read_benchmarks`` output.
        pages: model -> step page stem; when given, models are named by their
            linked reader labels (:func:`linked_label`) instead of registry names.

    Returns:
        An ``IPython.display.Markdown`` bullet list; when there is no model row, a
        sentence saying so.
    """
    rows = summary[summary["model"] != "bicubic"]
    if rows.empty:
        return report.markdown(
            "**No benchmark results.** This run scored no model on a benchmark set "
            "(the benchmark step ran without sets, or found no trained model), so "
            "there is no margin over bicubic to report."
        )
    bullets = []
    for scale in sorted(rows["scale"].unique()):
        at_scale = rows[rows["scale"] == scale]
        sets = list(dict.fromkeys(at_scale["set"]))
        mean = at_scale.groupby("model", sort=False)["psnr_margin"].mean()
        best = str(mean.sort_values(ascending=False, kind="stable").index[0])
        detail = ", ".join(
            f"{r.psnr_margin:+.2f} dB (SSIM {r.ssim_margin:+.4f}) on {r.set}"
            for r in at_scale[at_scale["model"] == best].itertuples(index=False)
        )
        verb = (
            "has the largest PSNR margin over bicubic"
            if mean[best] > 0
            else "comes closest to bicubic in PSNR without beating it"
        )
        bullets.append(
            f"- At x{scale}, {_name(best, pages)} {verb}, {mean[best]:+.2f} dB on "
            "average over "
            f"{', '.join(sets)}: {detail}."
        )
        below = at_scale["psnr_margin"] < 0
        counts = below.groupby(at_scale["model"], sort=False).agg(["sum", "size"])
        always = [m for m, r in counts.iterrows() if r["sum"] == r["size"]]
        sometimes = [m for m, r in counts.iterrows() if 0 < r["sum"] < r["size"]]
        if not always and not sometimes:
            bullets.append(f"- At x{scale}, every model beats bicubic on every set.")
        if always:
            names = ", ".join(_name(m, pages) for m in always)
            bullets.append(
                f"- At x{scale}, {len(always)} of {len(counts)} models stay below "
                f"bicubic on every set: {names}."
            )
        if sometimes:
            names = ", ".join(_name(m, pages) for m in sometimes)
            bullets.append(f"- At x{scale}, below bicubic on some sets only: {names}.")
    return report.markdown("\n".join(bullets))


def model_legend(pages: dict[str, str] | None = None):
    """The reader labels beside the registry names and training losses.

    Args:
        pages: model -> step page stem, for linked labels.

    Returns:
        An ``IPython.display.Markdown`` table with the columns ``label``,
        ``registry name`` and ``loss``, one row per zoo model, in zoo order.
    """
    lines = ["| label | registry name | loss |", "|---|---|---|"]
    for name in models.MODEL_NAMES:
        loss = models.MODEL_INFO[name]["loss"]
        lines.append(f"| {linked_label(name, pages)} | `{name}` | `{loss}` |")
    return report.markdown("\n".join(lines))


#: How the two rankings of ``srkit.records.margin_ranking`` are named on the page.
RANKING_WORDS = {
    records.BENCHMARK_RANKING: "mean over the benchmark sets",
    records.VALIDATION_RANKING: "our validation images",
}

#: Where each ranking's margins were measured, as a phrase.
RANKING_PLACES = {
    records.BENCHMARK_RANKING: "on the benchmark sets",
    records.VALIDATION_RANKING: "on our validation images",
}


def model_ranking(
    per_step: pd.DataFrame,
    bench: pd.DataFrame | None = None,
    original: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``srkit.records.margin_ranking`` with each model's reader label.

    Args:
        per_step: ``records.collect_metrics(RUN, bicubic="per_step")`` output.
        bench: ``records.read_benchmarks`` output; None or empty when none.
        original: the original report's table; loaded when None.

    Returns:
        DataFrame with columns ``ranking, scale, rank, model, label, psnr_margin,
        study_rank`` (``label`` from :func:`short_label`).
    """
    table = records.margin_ranking(per_step, bench, original)
    table.insert(4, "label", [short_label(str(m)) for m in table["model"]])
    return table


def _ordinal(number: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{'th' if 10 <= number % 100 <= 20 else suffix}"


NO_RANKING = (
    "No model of this run has a PSNR margin over bicubic to rank, so there is no "
    "order to set beside the study's."
)


def ranking_tables(
    ranking: pd.DataFrame,
    pages: dict[str, str] | None = None,
    with_study: bool = True,
):
    """The ranking as one Markdown table per upscaling factor.

    Rows follow the benchmark ranking when there is one, else the validation
    ranking; models ranked only by the other follow. Each ranking has a rank and
    a margin column (dB, signed); the study's rank of the same model comes last.

    Args:
        ranking: :func:`model_ranking` (or ``records.margin_ranking``) output.
        pages: model -> step page stem, for linked labels.
        with_study: whether to add the study's rank (False for a smoke build,
            whose order is noise).

    Returns:
        An ``IPython.display.Markdown``; a sentence when nothing is ranked.
    """
    if ranking.empty:
        return report.markdown(NO_RANKING)
    names = list(dict.fromkeys(ranking["ranking"]))
    short = {records.BENCHMARK_RANKING: "sets", records.VALIDATION_RANKING: "val."}
    blocks = []
    for scale in sorted(ranking["scale"].unique()):
        at = ranking[ranking["scale"] == scale]
        order = list(dict.fromkeys(at["model"]))  # first ranking first, by rank
        header = ["model"]
        for name in names:
            header += [
                f"rank ({short.get(name, name)})",
                f"dB ({short.get(name, name)})",
            ]
        if with_study:
            header.append("rank in the study")
        sources = "; ".join(
            f"{short.get(n, n)}: {RANKING_WORDS.get(n, n)}" for n in names
        )
        lines = [
            f"**x{scale}**: rank by PSNR margin over bicubic ({sources})",
            "",
            "| " + " | ".join(header) + " |",
            "|---|" + "---:|" * (len(header) - 1),
        ]
        for model in order:
            rows = at[at["model"] == model].set_index("ranking")
            cells = [linked_label(model, pages)]
            for name in names:
                if name in rows.index:
                    row = rows.loc[name]
                    cells += [str(int(row["rank"])), f"{row['psnr_margin']:+.2f}"]
                else:
                    cells += ["", ""]
            if with_study:
                study = rows["study_rank"].dropna()
                cells.append(str(int(study.iloc[0])) if len(study) else "")
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return report.markdown("\n\n".join(blocks))


def ranking_sentences(
    ranking: pd.DataFrame,
    pages: dict[str, str] | None = None,
    with_study: bool = True,
):
    """Sentences on the ranking: best model, the study's best, rank correlation.

    Per upscaling factor, from the benchmark ranking when there is one (else the
    validation ranking): the model ranked first here, where the study's best model
    (:data:`ORIGINAL_BEST`, R4) lands in our order, and Spearman's rank correlation
    between our order and the study's over the models both rank
    (``records.ranking_agreement``), with the validation correlation beside it when
    both rankings exist. Every number comes from ``ranking``.

    Args:
        ranking: :func:`model_ranking` (or ``records.margin_ranking``) output.
        pages: model -> step page stem, for linked labels.
        with_study: whether to set the order beside the study's; False (a smoke
            build) names the model ranked first and says why there is no more.

    Returns:
        An ``IPython.display.Markdown`` bullet list (one bullet per factor); a
        sentence when nothing is ranked.
    """
    if ranking.empty:
        return report.markdown(NO_RANKING)
    agreement = records.ranking_agreement(ranking).set_index(["ranking", "scale"])
    names = list(dict.fromkeys(ranking["ranking"]))
    study_best = linked_label(ORIGINAL_BEST, pages)
    bullets = []
    for scale in sorted(ranking["scale"].unique()):
        at = ranking[ranking["scale"] == scale]
        main = next(n for n in names if (at["ranking"] == n).any())
        rows = at[at["ranking"] == main]
        first = rows.iloc[0]
        place = (
            f"ranks first of {len(rows)}"
            if len(rows) > 1
            else "is the only model ranked"
        )
        text = (
            f"- **x{scale}** ({RANKING_WORDS.get(main, main)}): "
            f"{linked_label(str(first['model']), pages)} {place}, "
            f"{first['psnr_margin']:+.2f} dB against bicubic in PSNR"
        )
        if not with_study:
            bullets.append(text + ".")
            continue
        best_rows = rows[rows["model"] == ORIGINAL_BEST]
        if str(first["model"]) == ORIGINAL_BEST:
            text += f"; {study_best} is the study's best model too."
        elif len(best_rows):
            place = _ordinal(int(best_rows["rank"].iloc[0]))
            text += f"; the study's best model, {study_best}, is {place} here."
        else:
            text += (
                f"; the study's best model, {study_best}, has no x{scale} result "
                f"{RANKING_PLACES.get(main, 'here')} in this run."
            )
        rho = agreement.loc[(main, scale)]
        if pd.isna(rho["spearman"]):
            text += (
                f" Too few models ({int(rho['n_models'])}) are ranked by both, in "
                "distinct places, to compare the two orders."
            )
        else:
            text += (
                f" Over the {int(rho['n_models'])} models both rank, Spearman's rank "
                f"correlation between our order and the study's is "
                f"{rho['spearman']:.2f}"
            )
            other = [n for n in names if n != main and (n, scale) in agreement.index]
            for name in other:
                extra = agreement.loc[(name, scale)]
                if pd.notna(extra["spearman"]):
                    text += (
                        f" ({extra['spearman']:.2f} {RANKING_PLACES.get(name, name)}"
                        f", over {int(extra['n_models'])} models)"
                    )
            text += "."
        bullets.append(text)
    if not with_study:
        bullets.append("- " + SMOKE_NO_ORDER)
    return report.markdown("\n".join(bullets))


def conclusions(
    table: pd.DataFrame,
    original: pd.DataFrame | None = None,
    pages: dict[str, str] | None = None,
):
    """Sentences on a whole run: best models, bicubic, and the original report.

    The original report's numbers were measured on other images (the study's own,
    which its text does not name), so no sentence compares them with this run's as
    if the data were the same.

    Args:
        table: ``srkit.records.collect_metrics`` output.
        original: the original report's table; loaded when None.
        pages: model -> step page stem; when given, models are named by their
            linked reader labels (:func:`linked_label`).

    Returns:
        An ``IPython.display.Markdown`` bullet list whose numbers all come from
        ``table`` and ``original``.
    """
    if original is None:
        original = records.load_original_results()
    bullets = []
    models_only = table[table["model"] != "bicubic"]
    for scale in sorted(models_only["scale"].unique()):
        rows = models_only[models_only["scale"] == scale]
        bicubic = table[(table["model"] == "bicubic") & (table["scale"] == scale)]
        best = rows.sort_values("psnr", ascending=False).iloc[0]
        best_ssim = rows.sort_values("ssim", ascending=False).iloc[0]
        side = output_side(scale)
        text = (
            f"At {side}x{side}, the highest PSNR is {best['psnr']:.2f} dB "
            f"({_name(best['model'], pages)}) and the highest SSIM "
            f"{best_ssim['ssim']:.3f} ({_name(best_ssim['model'], pages)})."
        )
        if len(bicubic):
            reference = float(bicubic["psnr"].iloc[0])
            beaten = int((rows["psnr"] > reference).sum())
            text += (
                f" {beaten} of {len(rows)} models beat bicubic interpolation "
                f"({reference:.2f} dB) on PSNR."
            )
        bullets.append("- " + text)
    if len(original):
        best = original.sort_values("psnr", ascending=False).iloc[0]
        bullets.append(
            f"- The original study measured its models on {ORIGINAL_DATA}; its "
            f"best PSNR there was {best['psnr']:.2f} dB "
            f"({_name(best['model'], pages)} at "
            f"{output_side(best['scale'])}x{output_side(best['scale'])}). Those "
            "numbers are a record "
            "of that study, not a yardstick for the rows above, which come from "
            "other images."
        )
    return report.markdown("\n".join(bullets))
