"""Page helpers for the step notebooks: run folder, run banner, tables, sentences.

Every step page of the book shows the same run banner, the same results table layout
(our model, the bicubic baseline and the original report's numbers) and sentences whose
numbers come from the run. Those pieces live here so that a notebook stays a sequence
of short calls: the run folder, the banner (with the machine facts of
``srkit.environment``), the parameter check, the answer that opens a step page
(:func:`answer`), the results, training and model tables, the takeaways and budget
sentences of a training step, the before/after slider of a page's answer crop
(:func:`before_after`), the metric agreement of the data page, the best
model and the training GIFs of a run, and the Markdown helpers (:func:`markdown`,
:func:`markdown_table`) that the benchmark and summary pages
(``srkit.benchmark_page``, ``srkit.summary_page``) build on. It may use every srkit
module below it, and it knows nothing about papermill or jupyter-book.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

import srkit
from srkit import environment, evaluate, images, layout, metrics, models, plots, records
from srkit.vocab import (
    BICUBIC,
    FACTOR_OUTPUTS,
    METRICS,
    OUTPUT_NAMES,
    output_side,
    scale_label,
)


def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """Find the project folder (the one holding ``_toc.yml`` and ``notebooks/``).

    Args:
        start: folder to search upwards from; the current directory by default.

    Returns:
        The project folder, or None when no parent folder holds the book files.
    """
    try:
        return layout.find_project(start=start)
    except layout.ProjectNotFound:
        return None


def run_folder(run_dir: str | os.PathLike = "") -> layout.RunFolder:
    """Resolve a notebook's ``run_dir`` parameter to an absolute folder.

    Args:
        run_dir: the parameter value; empty means ``<project>/runs/notebook`` (or
            ``./runs/notebook`` outside a project), the folder used when a notebook
            runs on its own.

    Returns:
        The absolute run folder (a path-like :class:`srkit.layout.RunFolder`
        that names the files inside it); it is created if missing.
    """
    if str(run_dir):
        folder = Path(run_dir).expanduser().resolve()
    else:
        folder = layout.default_run_dir(project_root() or Path.cwd(), "notebook")
    folder.mkdir(parents=True, exist_ok=True)
    return layout.RunFolder(folder)


@functools.cache
def _machine_facts() -> tuple[str, str, str]:
    """The banner's software, hardware and srkit parts, measured once per process.

    The versions, the processor, the accelerators the backend sees and the git
    commit come from ``srkit.environment``; the core count from ``os.cpu_count``.
    """
    versions = environment.collect_versions()
    backend = versions["keras backend"]
    software = (
        f"Keras {versions.get('keras', 'unknown')} on {backend} "
        f"{versions.get(backend, 'unknown')}"
    )
    gpus = ", ".join(environment.accelerators(backend)) or "no GPU"
    hardware = f"{environment.cpu_model()} ({os.cpu_count()} cores), {gpus}"
    root = project_root(Path(srkit.__file__).parent) or project_root()
    commit = environment.git_commit(root) if root is not None else None
    version = f"srkit {versions['srkit']}" + (f", commit {commit}" if commit else "")
    return software, hardware, version


def markdown(text: str):
    """Wrap Markdown text for display (MyST parses it in the book).

    Args:
        text: Markdown source.

    Returns:
        An ``IPython.display.Markdown`` object.
    """
    from IPython.display import Markdown

    return Markdown(text)


#: What the original report's numbers were measured on, as its text states it: its
#: own validation images, resized to 72, 144 and 288 px. The text names no image
#: collection (the ``voc2007`` source of our full profile is our choice).
STUDY_IMAGES = (
    "its own validation images (resized to 72, 144 and 288 px; the report does not "
    "name the image collection)"
)


# How a page's banner names the training regime of models.build(skip=...).
SKIP_WORDS = {
    "none": "the study's networks as they are (no bicubic skip)",
    "bicubic": "bicubic skip: each output adds the bicubic upscaling of the input "
    "and the network learns the residual",
}


def banner(
    profile: str,
    split=None,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    window: int | None = None,
    skip: str | None = None,
    warmup_steps: int | None = None,
    vgg_weights: str | None = None,
    precision: str | None = None,
    extra: str = "",
):
    """The run banner shown at the top of every step page.

    Args:
        profile: name of the parameter profile (``smoke``, ``quick``, ``full``...).
        split: the ``srkit.data.Split`` the step trains and validates on, or None
            for a page that reads no prepared data (its ``extra`` says what it reads).
        steps, batch_size, learning_rate, vgg_weights: training settings to state;
            None leaves a setting out (e.g. on the data page).
        window, skip, warmup_steps: the training regime (training window input
            side in pixels, ``"none"`` or ``"bicubic"`` skip, warm-up steps);
            None leaves it out.
        precision: a precision name, or the ``srkit.train.PrecisionChoice`` of the
            step, whose reason is stated too.
        extra: one more sentence appended to the banner.

    Returns:
        An ``IPython.display.Markdown`` object holding a MyST admonition.
    """
    parts = [f"profile **{profile}**"]
    if split is not None:
        source = layout.shown_path(split.info.get("source", "?"), project_root())
        mode = split.info.get("mode", "?")
        parts.append(
            f"data `{source}` ({mode}; {len(split.train)} training and "
            f"{len(split.val)} validation images)"
        )
    if steps is not None:
        parts.append(f"{steps} optimizer step{'s' if steps != 1 else ''}")
    if batch_size is not None:
        parts.append(f"batch {batch_size}")
    if learning_rate is not None:
        parts.append(f"learning rate {learning_rate:g}")
    if window is not None:
        parts.append(f"training windows {window} px ({window * 4} px targets)")
    if warmup_steps:
        parts.append(f"{warmup_steps} warm-up steps")
    if skip is not None:
        parts.append(SKIP_WORDS.get(skip, f"skip {skip}"))
    if vgg_weights is not None:
        untrained = (
            " (untrained: the offline default)" if vgg_weights == "random" else ""
        )
        parts.append(f"VGG16 weights: {vgg_weights}{untrained}")
    if precision is not None:
        reason = getattr(precision, "reason", "")
        auto = getattr(precision, "requested", "") == "auto"
        parts.append(f"{precision} (auto: {reason})" if auto else str(precision))
    parts += _machine_facts()
    kind = "warning" if profile == "smoke" else "note"
    title = "Smoke run: these numbers are noise" if profile == "smoke" else "This run"
    # one paragraph in small type (book/_static/first-screen.css: srkit-run)
    lines = [f":::{{admonition}} {title}", f":class: {kind} srkit-run", ""]
    facts = " · ".join(parts) + "."
    if profile == "smoke":
        facts = (
            "Every model trains for a handful of optimizer steps: the numbers show "
            "that the code runs, they are not results about the architectures. " + facts
        )
    lines.append(facts)
    if extra:
        lines.append("\n" + extra)
    lines.append(":::")
    return markdown("\n".join(lines))


def check_params(model) -> str:
    """Compare a model's parameter counts with the zoo's specification.

    Args:
        model: a model built by ``srkit.models.build``.

    Returns:
        A sentence stating both counts.

    Raises:
        ValueError: if either count differs from ``srkit.models.MODEL_INFO``.
    """
    spec = models.MODEL_INFO[model.name]
    total, trainable = models.count_params(model)
    if (total, trainable) != (spec["params"], spec["trainable"]):
        raise ValueError(
            f"{model.name}: {total:,} parameters ({trainable:,} trainable), but the "
            f"specification says {spec['params']:,} ({spec['trainable']:,} trainable)"
        )
    return f"{model.name}: {total:,} parameters, {trainable:,} trainable, as specified."


def results_table(evaluations, original: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean validation metrics beside the bicubic baseline and the original report.

    The page's long view of :func:`srkit.records.comparison_table` (the one place
    that sets ours beside bicubic and the original): one row per scale, source and
    model.

    Args:
        evaluations: one ``srkit.evaluate.Evaluation`` or a list of them.
        original: the original report's table
            (``srkit.records.load_original_results``); loaded when None.

    Returns:
        A DataFrame indexed by (output, source, model) with the four metric columns.
        ``output`` names the factor and side (``"x2 (144 px)"``, in that order);
        ``source`` is ``this run``, ``bicubic`` or ``original report``.
    """
    if not isinstance(evaluations, list | tuple):
        evaluations = [evaluations]
    ours = pd.concat([evaluation.table for evaluation in evaluations])
    wide = records.comparison_table(ours, original)
    wide = wide[wide["model"].isin(set(ours["model"]) - {BICUBIC})]
    rows = []
    for record in wide.to_dict("records"):
        scale = int(record["scale"])
        for source, side, model in (
            ("this run", "ours", record["model"]),
            ("bicubic", "bicubic", BICUBIC),
            ("original report", "original", record["model"]),
        ):
            values = {m: record[f"{m}_{side}"] for m in METRICS}
            if not all(pd.isna(value) for value in values.values()):
                rows.append(
                    {"scale": scale, "source": source, "model": model, **values}
                )
    frame = pd.DataFrame(rows).drop_duplicates(subset=["scale", "source", "model"])
    order = {"this run": 0, "bicubic": 1, "original report": 2}
    frame = frame.sort_values(
        ["scale", "source", "model"],
        key=lambda c: c.map(order) if c.name == "source" else c,
    )
    frame.insert(0, "output", frame.pop("scale").map(scale_label))
    return frame.set_index(["output", "source", "model"]).round(
        {"mse": 5, "mae": 4, "psnr": 2, "ssim": 4}
    )


def fit_summary(result) -> str:
    """One sentence on a finished ``srkit.train.fit`` call (steps, time, speed)."""
    steps = result.steps
    status = (
        "loaded from an earlier run" if getattr(result, "skipped", False) else "trained"
    )
    return (
        f"{status}: {steps} optimizer step{'s' if steps != 1 else ''} of "
        f"{result.settings.get('batch_size')} images, "
        f"{duration(result.wall_time_s)}, "
        f"{result.train_images_per_s:.1f} training images/s "
        f"({result.precision})."
    )


#: Short column names of :func:`training_table` for Keras' history keys.
TRAINING_COLUMNS = {
    "step": "step",
    "loss": "loss",
    "val_loss": "val loss",
    "val_psnr": "val PSNR",
    "val_low_upsample_psnr": "val PSNR x2",
    "val_high_upsample_psnr": "val PSNR x4",
    "learning_rate": "lr",
    "epoch_time_s": "s",
}


def training_table(result, max_rows: int = 12) -> pd.DataFrame:
    """A compact per-interval training log: a few columns, at most ``max_rows``.

    Replaces Keras' one-line-per-interval log (dozens of metrics on one line) on a
    page: the optimizer step, training and validation loss, validation PSNR per
    output, the learning rate and the interval's seconds. Long runs keep evenly
    spaced intervals, always the last one.

    Args:
        result: a ``srkit.train.FitResult`` (or anything with a ``history``
            DataFrame).
        max_rows: the most intervals shown.

    Returns:
        A DataFrame indexed by interval (1-based), rounded for reading.
    """
    history = result.history
    columns = [c for c in TRAINING_COLUMNS if c in history.columns]
    table = history[columns].rename(columns=TRAINING_COLUMNS)
    table.index = pd.Index(range(1, len(table) + 1), name="interval")
    if len(table) > max_rows:
        keep = np.unique(np.linspace(0, len(table) - 1, max_rows).round().astype(int))
        table = table.iloc[keep]
    rounding = {"loss": 4, "val loss": 4, "lr": 6, "s": 1}
    rounding.update({c: 2 for c in table.columns if "PSNR" in c})
    return table.round({c: d for c, d in rounding.items() if c in table.columns})


def model_table(model) -> pd.DataFrame:
    """A narrow summary of a Keras model: one row per layer, four short columns.

    Keras' own ``summary`` needs about 110 characters per line, wider than the
    book's column; this table keeps the layer name, its type, its output shape
    and its parameter count, and a total row.

    Args:
        model: a built Keras model.

    Returns:
        A DataFrame with columns ``layer``, ``type``, ``output``, ``params``.
    """
    rows = []
    for layer in model.layers:
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", "")
        shown = "x".join("?" if d is None else str(d) for d in tuple(shape)[1:])
        rows.append((layer.name, type(layer).__name__, shown, layer.count_params()))
    rows.append(("total", "", "", model.count_params()))
    return pd.DataFrame(rows, columns=["layer", "type", "output", "params"])


def _gain_sentence(model: str, scale: int, ours: dict, bicubic: dict) -> str:
    """One model against bicubic at one upscaling factor (``scale`` 2 or 4)."""
    side = output_side(scale)
    gain = ours["psnr"] - bicubic["psnr"]
    ssim_gain = ours["ssim"] - bicubic["ssim"]
    if gain > 0:
        verdict = f"{gain:.2f} dB above"
    else:
        verdict = f"{-gain:.2f} dB below"
    return (
        f"At {side}x{side}, `{model}` reaches {ours['psnr']:.2f} dB PSNR and SSIM "
        f"{ours['ssim']:.3f}: {verdict} bicubic interpolation ({bicubic['psnr']:.2f} "
        f"dB), with an SSIM difference of {ssim_gain:+.3f}."
    )


def duration(seconds: float) -> str:
    """A time for a page: seconds below a minute, minutes below two hours, else hours.

    Args:
        seconds: the time in seconds (not negative).

    Returns:
        e.g. ``"0.4 s"``, ``"12 s"``, ``"2 min 13 s"``, ``"100 min"``, ``"2.5 h"``;
        never ``"0 min"``.

    Raises:
        ValueError: for a negative or non-finite time.
    """
    if not np.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and not negative, got {seconds}")
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    if seconds < 599.5:  # below ten minutes the seconds still matter
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _budget_sentence(result) -> str:
    """What a model below bicubic got, and what ten times that budget would cost.

    The sentence follows the regime. Step 02's nearest-neighbour variant without
    the bicubic skip gets no budget advice: no budget lifts it past bicubic, since
    its 1x1 head commutes with the upsampling and its output is a 72 px image in
    2x2 blocks. With the skip every model starts as bicubic interpolation itself
    (its heads start at zero), so it can pass bicubic; the training left it below.
    Whether a longer budget lifts a model past bicubic is not something one run
    shows, so the sentence states the cost and leaves the outcome open.
    """
    settings = result.settings
    skip = settings.get("skip", "none")
    if settings.get("model") == "simple_model_nearest" and skip == "none":
        return (
            " Without the bicubic skip, no training budget lifts this variant past "
            "bicubic: its output is a 72 px image whose pixels are each repeated "
            "into a 2x2 block."
        )
    steps = result.steps
    batch = settings.get("batch_size")
    speed = result.train_images_per_s
    sentence = ""
    if skip == "bicubic":
        sentence += (
            " With the bicubic skip it started as bicubic interpolation itself, so "
            "it can pass bicubic; its training left it below."
        )
    sentence += f" It got {steps} optimizer steps of {batch} windows"
    if speed and np.isfinite(speed) and speed > 0:
        seconds = steps * batch / speed
        sentence += (
            f" ({duration(seconds)} of training at {speed:.1f} windows/s on the "
            f"hardware of the banner); ten times that budget (`-p steps="
            f"{10 * steps}`) would take about {duration(10 * seconds)} there"
        )
    return sentence + (
        ". Whether a longer budget lifts it past bicubic, this run does not show."
    )


def _results_by_model(results) -> dict:
    if results is None:
        return {}
    if isinstance(results, dict):
        return dict(results)
    if not isinstance(results, list | tuple):
        results = [results]
    return {result.settings.get("model"): result for result in results}


def takeaways(evaluations, original: pd.DataFrame | None = None, results=None):
    """Sentences comparing each model with bicubic and with the original report.

    Every number comes from the evaluations passed in (and the original report's
    table), so the text is true of the run that produced the page. The original
    report's number is quoted as what it is, a measurement on other data (the
    study's own images, which its text does not name), not set against ours.

    Args:
        evaluations: one ``srkit.evaluate.Evaluation`` or a list of them.
        original: the original report's table; loaded when None.
        results: the ``srkit.train.FitResult`` of the models (one, a list, or a
            dict by model name); a model below bicubic then gets a sentence on
            the budget it had and what a longer one would cost.

    Returns:
        An ``IPython.display.Markdown`` bullet list.
    """
    if not isinstance(evaluations, list | tuple):
        evaluations = [evaluations]
    if original is None:
        original = records.load_original_results()
    fits = _results_by_model(results)
    bullets = []
    for evaluation in evaluations:
        table = evaluation.table.set_index(["model", "scale"])
        for model, scale in table.index:
            if model == "bicubic":
                continue
            ours = table.loc[(model, scale)].to_dict()
            bicubic = table.loc[("bicubic", scale)].to_dict()
            sentence = _gain_sentence(model, int(scale), ours, bicubic)
            if ours["psnr"] <= bicubic["psnr"] and model in fits:
                sentence += _budget_sentence(fits[model])
            match = original[
                (original["model"] == model) & (original["scale"] == scale)
            ]
            if len(match):
                reported = float(match["psnr"].iloc[0])
                sentence += (
                    f" The original report gives {reported:.2f} dB for this model "
                    f"and scale, measured on {STUDY_IMAGES}: other images, so not "
                    "comparable with the number above."
                )
            bullets.append("- " + sentence)
    return markdown("\n".join(bullets))


# ---------------------------------------------------------------- the page's answer

#: Bicubic PSNRs (dB) further apart than this mean two steps scored other
#: validation images (bicubic interpolation of the same images gives the same
#: number to rounding).
SAME_IMAGES_DB = 0.005


def _step_name(stem: str) -> str:
    """How a sentence names a step: ``step 04`` or ``R1`` (by the zoo's labels)."""
    labels = {
        str(info["step"])
        for info in models.MODEL_INFO.values()
        if info.get("page") == stem
    }
    label = labels.pop() if len(labels) == 1 else stem[:2]
    return label if label.startswith("R") else f"step {label}"


def _scores(table: pd.DataFrame) -> dict[str, dict[int, float]]:
    """Model -> scale -> mean PSNR (dB), bicubic included, in table order."""
    scores: dict[str, dict[int, float]] = {}
    for row in table.to_dict("records"):
        scores.setdefault(str(row["model"]), {})[int(row["scale"])] = float(row["psnr"])
    return scores


def _leader(scores: dict[str, dict[int, float]]) -> str | None:
    """The model with the highest PSNR at its largest scale (the first on ties)."""
    best, best_key = None, None
    for model, by_scale in scores.items():
        if model == BICUBIC or not by_scale:
            continue
        key = (max(by_scale), by_scale[max(by_scale)])
        if best_key is None or key > best_key:
            best, best_key = model, key
    return best


def _control_scores(control) -> tuple[str, dict | None]:
    """(the control step's stem, its record as model -> scale -> PSNR, or None)."""
    if isinstance(control, str | os.PathLike):
        path = Path(control)
        stem = path.parent.name
        if not path.is_file():
            return stem, None
        control = records.read_metrics(path)
    else:
        stem = str(control.get("step", "?"))
    scores: dict[str, dict[int, float]] = {}
    for record in control.get("models", []):
        for key, rows in (("metrics", record["model"]), ("bicubic", BICUBIC)):
            for score in record[key]:
                scores.setdefault(rows, {})[int(score["scale"])] = float(score["psnr"])
    has_model = any(model != BICUBIC for model in scores)
    return stem, scores if has_model else None


def leading(evaluations):
    """The evaluation whose model :func:`answer` puts first on a page.

    Args:
        evaluations: one ``srkit.evaluate.Evaluation`` or a list of them.

    Returns:
        The one whose model has the highest mean PSNR at its largest scale (the
        first on ties): the model of the page's top figure.

    Raises:
        ValueError: when none holds a model row.
    """
    if not isinstance(evaluations, list | tuple):
        evaluations = [evaluations]
    scores = {}
    for evaluation in evaluations:
        for model, by_scale in _scores(evaluation.table).items():
            if model != BICUBIC:
                scores.setdefault(model, (evaluation, {}))[1].update(by_scale)
    leader = _leader({model: by_scale for model, (_, by_scale) in scores.items()})
    if leader is None:
        raise ValueError("the evaluations hold no model rows, only bicubic")
    return scores[leader][0]


def margin_text(value: float) -> str:
    """A signed margin to two decimals (``+1.23``), never ``-0.00``."""
    return signed(round(value, 2) + 0.0, 2)


def _db(value: float) -> str:
    """A signed margin in dB, bold, never ``-0.00``."""
    return f"**{margin_text(value)} dB**"


def answer(evaluations, control=None, profile: str = ""):
    """The sentence that opens a step page: the measured margins of its model.

    The page's model (with several, the one with the highest PSNR at its largest
    output) is set against bicubic interpolation of the same validation images and
    against the page's control step (DESIGN: 03 against 02, 04 against 03, ...), in
    signed dB of mean validation PSNR, at each scale the model outputs. The other
    models of the page (step 02's two variants) are compared with it too. The
    control's model is the best of its step (highest PSNR at its largest output).
    When the control scored other validation images (its bicubic PSNR differs by
    more than :data:`SAME_IMAGES_DB`), the comparison is of margins over each one's
    own bicubic, and the sentence says so; on the same images the two are equal.

    Args:
        evaluations: the page's ``srkit.evaluate.Evaluation`` (or a list of them),
            or anything with a ``table`` of columns ``model, scale, psnr`` holding
            ``bicubic`` rows.
        control: the control step's ``metrics.json`` path (``RUN.step_metrics(
            stem)``; a missing file is a step this run did not record, e.g. one
            left out with ``--only``), its document as ``srkit.records.
            read_metrics`` returns it, or None for a page without a control.
        profile: the run's profile; ``smoke`` adds that the margins are noise.

    Returns:
        An ``IPython.display.Markdown`` paragraph (MyST).

    Raises:
        ValueError: when the evaluations hold no model rows, or a model scale has
            no bicubic row.
    """
    if not isinstance(evaluations, list | tuple):
        evaluations = [evaluations]
    scores: dict[str, dict[int, float]] = {}
    for evaluation in evaluations:
        for model, by_scale in _scores(evaluation.table).items():
            scores.setdefault(model, {}).update(by_scale)
    leader = _leader(scores)
    if leader is None:
        raise ValueError("the evaluations hold no model rows, only bicubic")
    bicubic = scores.get(BICUBIC, {})
    missing = sorted(set(scores[leader]) - set(bicubic))
    if missing:
        raise ValueError(f"no bicubic row at scales {missing}")
    others = [m for m in scores if m not in (leader, BICUBIC)]
    if control is not None:
        stem, theirs = _control_scores(control)
        name = _step_name(stem)
    else:
        stem, theirs, name = "", None, ""
    rival = _leader(theirs) if theirs else None
    other_images = False
    clauses = []
    for number, scale in enumerate(sorted(scores[leader])):
        ours = scores[leader][scale]
        margin = ours - bicubic[scale]
        against = "against bicubic interpolation" if number == 0 else "against bicubic"
        parts = [f"{_db(margin)} {against}"]
        for other in others:
            if scale in scores[other]:
                parts.append(f"{_db(ours - scores[other][scale])} against `{other}`")
        if rival is not None:
            if scale in theirs[rival] and scale in theirs.get(BICUBIC, {}):
                base = theirs[BICUBIC][scale]
                other_images |= abs(base - bicubic[scale]) > SAME_IMAGES_DB
                change = margin - (theirs[rival][scale] - base)
                who = f"{name}'s `{rival}`" if number == 0 else name
                parts.append(f"{_db(change)} against {who}")
            else:
                parts[-1] += f" ({name} has no x{scale} output)"
        clauses.append(
            f"{ours:.2f} dB PSNR at {scale_label(scale)}: " + ", ".join(parts)
        )
    text = f"On the validation images, `{leader}` reaches " + "; ".join(clauses) + "."
    if control is not None and rival is None:
        text += (
            f" {name.capitalize()} has no record in this run folder (this run left "
            "it out, e.g. with `--only`), so this page has no comparison with its "
            "control."
        )
    elif other_images:
        text += (
            f" {name.capitalize()} scored other validation images (its bicubic PSNR "
            "differs), so the comparison with it is of margins over each one's own "
            "bicubic."
        )
    if profile == "smoke":
        text += (
            # short: the banner and the announcement bar say why (a handful of
            # optimizer steps), and the page's figure should stay in its first screen
            " Smoke run: these margins are noise, not results about the architecture."
        )
    return markdown(text)


#: Screen pixels per target pixel in :func:`before_after`: twice the answer figure's
#: magnification, so its 48 px crop is shown 288 px wide (a phone's column holds it).
SLIDER_ZOOM = 6
#: The custom element of the vendored slider (``book/_static/img-comparison-slider``,
#: loaded on every page by ``_config.yml``): slot ``first`` is shown left of the
#: divider, slot ``second`` right of it.
SLIDER_TAG = "img-comparison-slider"


def png_data_uri(image: np.ndarray) -> str:
    """An RGB image as a ``data:image/png;base64,...`` URI (for a page's HTML).

    Args:
        image: float (h, w, 3) in [0, 1] (values outside are clipped) or uint8.

    Returns:
        The URI of a PNG of the image at its own size.

    Raises:
        ValueError: for an array that is not (h, w, 3).
    """
    from PIL import Image  # Pillow comes with matplotlib

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
        raise ValueError(f"image must be (h, w, 3), got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)  # RGB: (h, w, 3)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def slider_html(
    before: np.ndarray,
    after: np.ndarray,
    labels: tuple[str, str],
    alts: tuple[str, str],
    zoom: int = SLIDER_ZOOM,
    caption: str = "",
) -> str:
    """The HTML of a before/after slider of two images of the same size.

    The images are embedded as PNG data URIs at their own size and drawn ``zoom``
    times larger with square pixels (``image-rendering: pixelated``); ``before``
    lies left of the divider, ``after`` right of it. Above them a row with the two
    labels, under them ``caption``. The element needs the vendored script; without
    it (or in print, ``book/_static/before-after.css``) the slider stays hidden.

    Args:
        before, after: float (h, w, 3) images in [0, 1], of one shape.
        labels: the (left, right) labels shown above the slider.
        alts: the (left, right) alt texts of the two images.
        zoom: screen pixels per image pixel (at least 1).
        caption: plain text under the slider ("" for none); it is escaped.

    Returns:
        One ``<figure>`` element as a string.

    Raises:
        ValueError: on images of different shapes or a zoom below 1.
    """
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(
            f"before {before.shape} and after {after.shape} must have one shape"
        )
    if int(zoom) < 1:
        raise ValueError(f"zoom must be >= 1, got {zoom}")
    height, width = (int(side) * int(zoom) for side in before.shape[:2])
    # long registry names may break after an underscore, never inside a word
    left, right = (html.escape(str(label)).replace("_", "_<wbr>") for label in labels)
    tags = []
    for slot, image, alt in (("first", before, alts[0]), ("second", after, alts[1])):
        tags.append(
            f'<img slot="{slot}" src="{png_data_uri(image)}" width="{width}" '
            f'height="{height}" alt="{html.escape(str(alt))}" '
            'style="image-rendering: pixelated">'
        )
    aria = html.escape(
        f"Before/after slider: {labels[0]} left of the divider, {labels[1]} right "
        "of it; drag the divider or press the arrow keys",
    )
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure class="srkit-before-after" style="width: {width}px">'
        '<div class="srkit-before-after-labels">'
        f"<span>◀&nbsp;{left}</span><span>{right}&nbsp;▶</span></div>"
        f'<{SLIDER_TAG} value="50" role="group" aria-label="{aria}">'
        + "".join(tags)
        + f"</{SLIDER_TAG}>{text}</figure>"
    )


def before_after(
    model,
    subset,
    choice,
    profile: str = "",
    label: str | None = None,
    zoom: int = SLIDER_ZOOM,
):
    """A before/after slider of a page's answer crop: bicubic against the model.

    The region is the one of the page's answer figure (``plots.answer_figure``'s
    ``choice``): the same image, square and scale, bicubic interpolation of the
    input left of the divider and the model's output right of it, magnified
    ``zoom`` times. The two crops travel inside the page as small PNGs (a 48 px
    crop is a few kB). A smoke run gets no slider, only an HTML comment that says
    why: a model trained for a handful of steps shows noise, and the page's static
    figure already shows it.

    Args:
        model: the trained Keras model.
        subset: the validation :class:`srkit.windows.Subset` of the choice.
        choice: the ``plots.CropChoice`` of the answer figure.
        profile: the run's profile; ``smoke`` gives no slider.
        label: how the slider's label and caption name the model (default: its
            registry name, which the alt text always gives).
        zoom: screen pixels per target pixel.

    Returns:
        An ``IPython.display.HTML`` object.

    Raises:
        ValueError: for a scale the model does not output.
    """
    from IPython.display import HTML

    if profile == "smoke":
        return HTML("<!-- no before/after slider: a smoke model's output is noise -->")
    output = FACTOR_OUTPUTS[choice.scale]
    predictions = evaluate.predict_images(model, subset, [choice.index])
    if output not in predictions:
        raise ValueError(
            f"model {model.name!r} has no output {output!r} for x{choice.scale}; "
            f"its outputs are {sorted(predictions)}"
        )
    low_res = np.asarray(subset.x)[choice.index]
    bicubic = np.clip(images.bicubic_upscale(low_res, choice.scale), 0.0, 1.0)
    rows = slice(choice.top, choice.top + choice.size)
    columns = slice(choice.left, choice.left + choice.size)
    name = label or model.name
    full = name if name == model.name else f"{name} ({model.name})"
    where = (
        f"the {choice.size} px region of validation image {choice.name} at "
        f"x{choice.scale} (row {choice.top}, column {choice.left})"
    )
    return HTML(
        slider_html(
            bicubic[rows, columns],
            predictions[output][0][rows, columns],
            labels=(f"bicubic x{choice.scale}", name),
            alts=(
                f"Bicubic interpolation of {where}, magnified {zoom}x",
                f"Output of {model.name} for {where}, magnified {zoom}x",
            ),
            zoom=zoom,
            caption=(
                f"{where[0].upper()}{where[1:]}, magnified {zoom}x: drag the divider "
                "(or focus the image and press the arrow keys) to compare bicubic "
                f"interpolation with {full}."
            ),
        )
    )


def regime_takeaways(histories, bicubic):
    """Where each training regime of one model ends against bicubic, per output.

    The numbers are the last validation PSNR of each history (what the curves of
    :func:`srkit.plots.regime_curves` end at) and bicubic's validation PSNR.

    Args:
        histories: regime (``"bicubic"``, ``"none"`` as in
            ``srkit.models.build(skip=...)``, or any label) -> ``FitResult.history``.
        bicubic: bicubic's validation PSNR in dB by upscaling factor (2, 4), or
            ``Evaluation.table`` (its ``bicubic`` rows).

    Returns:
        An ``IPython.display.Markdown`` bullet list, one bullet per output: each
        regime's PSNR and its margin over bicubic in signed dB and, when both the
        ``"bicubic"`` and ``"none"`` regimes are given, what the skip changes.

    Raises:
        ValueError: as :func:`srkit.plots.regime_finals`.
    """
    finals = plots.regime_finals(histories, bicubic)
    bullets = []
    for scale, rows in finals.groupby("scale", sort=True):
        scale = int(scale)
        steps = sorted(set(rows["step"]))
        each = len(steps) > 1
        parts = []
        for row in rows.itertuples():
            margin = round(row.margin, 2) + 0.0  # no "-0.00"
            part = (
                f"{row.label} {row.psnr:.2f} dB ({signed(margin, 2)} dB against bicubic"
            )
            parts.append(part + (f", after step {row.step})" if each else ")"))
        plural = "" if each or steps[0] == 1 else "s"
        after = "" if each else f" after {steps[0]} optimizer step{plural}"
        text = (
            f"- At {scale_label(scale)}{after}, bicubic "
            f"interpolation gives {rows['bicubic'].iloc[0]:.2f} dB validation PSNR; "
            + "; ".join(parts)
            + "."
        )
        by_regime = rows.set_index("regime")["psnr"]
        if {"bicubic", "none"} <= set(by_regime.index):
            change = round(by_regime["bicubic"] - by_regime["none"], 2) + 0.0
            text += (
                " Learning the residual over bicubic instead of the whole image "
                f"changes the validation PSNR by {signed(change, 2)} dB here."
            )
        bullets.append(text)
    return markdown("\n".join(bullets))


def metric_agreement(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Compare srkit's metrics with reference implementations on the same images.

    References: scikit-image's ``peak_signal_noise_ratio`` and
    ``structural_similarity`` (Gaussian window 11, sigma 1.5, population
    covariance), and TensorFlow's ``tf.image.psnr``/``tf.image.ssim`` when TensorFlow
    is installed.

    Args:
        y_true: float32 (n, h, w, 3), RGB in [0, 1], the targets.
        y_pred: float32 (n, h, w, 3), RGB in [0, 1], the predictions.

    Returns:
        One row per metric and reference: mean value with srkit, with the
        reference, and the largest per-image absolute difference.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ours = metrics.image_metrics(y_true, y_pred)
    references = {
        ("psnr", "scikit-image"): [
            peak_signal_noise_ratio(t, p, data_range=1.0)
            for t, p in zip(y_true, y_pred, strict=True)
        ],
        ("ssim", "scikit-image"): [
            structural_similarity(
                t,
                p,
                channel_axis=-1,
                data_range=1.0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                win_size=11,
            )
            for t, p in zip(y_true, y_pred, strict=True)
        ],
    }
    try:
        import tensorflow as tf

        references[("psnr", "tf.image")] = tf.image.psnr(y_true, y_pred, 1.0).numpy()
        references[("ssim", "tf.image")] = tf.image.ssim(y_true, y_pred, 1.0).numpy()
    except ImportError:
        pass
    rows = []
    for (metric, reference), values in references.items():
        values = np.asarray(values, dtype=np.float64)
        rows.append(
            {
                "metric": metric,
                "reference": reference,
                "srkit mean": float(ours[metric].mean()),
                "reference mean": float(values.mean()),
                "max abs difference": float(np.max(np.abs(ours[metric] - values))),
            }
        )
    return pd.DataFrame(rows)


def best_model(table: pd.DataFrame, scale: int = 4, metric: str = "psnr") -> str:
    """Name of the model with the best mean ``metric`` at ``scale`` in a run.

    Args:
        table: ``srkit.records.collect_metrics`` output (bicubic rows are ignored).
        scale: the upscaling factor, 2 or 4.
        metric: one of ``METRICS``; lower wins for mse and mae.

    Returns:
        The model's registry name.

    Raises:
        ValueError: if no model has a row at that scale.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    rows = table[(table["model"] != "bicubic") & (table["scale"] == scale)]
    if rows.empty:
        raise ValueError(f"no model has results at scale {scale}")
    ranked = rows.sort_values(metric, ascending=metric in ("mse", "mae"))
    return str(ranked["model"].iloc[0])


class TrainingGif:
    """A model's training GIF: ``model`` (registry name) and ``path``."""

    def __init__(self, model: str, path: Path):
        self.model = model
        self.path = path

    def __repr__(self) -> str:
        return f"TrainingGif({self.model!r}, {str(self.path)!r})"


def training_gifs(run_dir: str | os.PathLike) -> list[TrainingGif]:
    """The training GIF of every model trained in a run, in zoo order.

    For each model the GIF of its largest output is taken (x4 when it has one).

    Args:
        run_dir: the run folder.

    Returns:
        A list of ``TrainingGif``; models without a GIF are left out.
    """
    gifs = []
    for name in models.MODEL_NAMES:
        for output in reversed(OUTPUT_NAMES):
            path = layout.RunFolder(run_dir).gif(name, output)
            if path.is_file():
                gifs.append(TrainingGif(name, path))
                break
    return gifs


def signed(value, digits: int) -> str:
    """A number with its sign (``+1.00``), or a dash for a missing value."""
    return "–" if pd.isna(value) else f"{value:+.{digits}f}"


def table_lines(header, rows) -> list[str]:
    """A Markdown table as lines: the header, the rule and one line per row.

    Args:
        header: the column names.
        rows: one sequence of cells per row; a cell is written with ``str`` on one
            line, with ``|`` escaped.

    Returns:
        The lines, to join with newlines.
    """
    lines = ["| " + " | ".join(str(c) for c in header) + " |"]
    lines.append("|" + "---|" * len(header))
    for row in rows:
        cells = (" ".join(str(v).split()).replace("|", "\\|") for v in row)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_table(frame: pd.DataFrame, index: bool = False):
    """Display a small DataFrame as a Markdown table.

    The book parses Markdown outputs with MyST, so ``$...$`` in a cell becomes math
    (an HTML table output would show the dollar signs).

    Args:
        frame: the table; values are written with ``str``.
        index: whether to include the index as the first column.

    Returns:
        An ``IPython.display.Markdown`` object.
    """
    if index:
        frame = frame.reset_index()
    lines = table_lines(list(frame.columns), frame.itertuples(index=False))
    return markdown("\n".join(lines))
