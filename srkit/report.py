"""Page helpers for the step notebooks: run folder, run banner, tables, sentences.

Every step page of the book shows the same run banner, the same results table layout
(our model, the bicubic baseline and the original report's numbers) and sentences whose
numbers come from the run. Those pieces live here so that a notebook stays a sequence
of short calls. This module sits beside ``pipeline`` in the dependency order: it may use
every other srkit module, and it knows nothing about papermill or jupyter-book.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd

import srkit
from srkit import data, evaluate, layout, metrics, models, plots, records
from srkit.environment import accelerators, cpu_model, git_commit, ram_gib
from srkit.vocab import BICUBIC, METRICS, OUTPUT_NAMES

#: The data behind the original report's numbers: its own validation images, 288 px
#: photos that its text does not name (our full profile's VOC 2007 is our choice).
ORIGINAL_DATA = "288 px images that its text does not name"
#: How every typed-in published benchmark row is labelled.
PUBLISHED_LABEL = "quoted from the paper, not measured here"
#: How benchmark rows computed by this run are labelled.
MEASURED_LABEL = "measured here"


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


def _git_commit() -> str | None:
    root = project_root(Path(srkit.__file__).parent) or project_root()
    return git_commit(root) if root is not None else None


@functools.cache
def environment_info() -> dict:
    """Describe the software and hardware this process runs on.

    Returns:
        A dict with ``python``, ``keras``, ``backend``, ``backend_version``,
        ``numpy``, ``srkit``, ``commit``, ``cpu``, ``cores``, ``memory_gib`` and
        ``accelerators`` (a list, empty on a CPU-only machine).
    """
    import keras

    backend = keras.backend.backend()
    try:
        backend_version = __import__(backend).__version__
    except Exception:
        backend_version = "unknown"
    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": backend_version,
        "numpy": np.__version__,
        "srkit": srkit.__version__,
        "commit": _git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": ram_gib(),
        "accelerators": accelerators(backend),
    }


def hardware_line(info: dict | None = None) -> str:
    """One line naming the processor, core count and accelerators."""
    info = info or environment_info()
    gpus = ", ".join(info["accelerators"]) or "no GPU"
    return f"{info['cpu']} ({info['cores']} cores), {gpus}"


def _markdown(text: str):
    from IPython.display import Markdown

    return Markdown(text)


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
    info = environment_info()
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
    parts.append(
        f"Keras {info['keras']} on {info['backend']} {info['backend_version']}"
    )
    parts.append(hardware_line(info))
    commit = f", commit {info['commit']}" if info["commit"] else ""
    parts.append(f"srkit {info['srkit']}{commit}")
    kind = "warning" if profile == "smoke" else "note"
    title = "Smoke run: these numbers are noise" if profile == "smoke" else "This run"
    lines = [f":::{{admonition}} {title}", f":class: {kind}", ""]
    if profile == "smoke":
        lines.append(
            "This page ran with the **smoke** profile: every model trains for a "
            "handful of optimizer steps. The numbers show that the code runs; they "
            "are not results about the architectures.\n"
        )
    lines.append(" · ".join(parts) + ".")
    if extra:
        lines.append("\n" + extra)
    lines.append(":::")
    return _markdown("\n".join(lines))


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
        A DataFrame indexed by (scale, source, model) with the four metric columns.
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
    return frame.set_index(["scale", "source", "model"]).round(
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
        f"{result.wall_time_s:.1f} s, "
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
    gain = ours["psnr"] - bicubic["psnr"]
    ssim_gain = ours["ssim"] - bicubic["ssim"]
    if gain > 0:
        verdict = f"{gain:.2f} dB above"
    else:
        verdict = f"{-gain:.2f} dB below"
    return (
        f"At {scale}x{scale}, `{model}` reaches {ours['psnr']:.2f} dB PSNR and SSIM "
        f"{ours['ssim']:.3f}: {verdict} bicubic interpolation ({bicubic['psnr']:.2f} "
        f"dB), with an SSIM difference of {ssim_gain:+.3f}."
    )


def _budget_sentence(result) -> str:
    """What a model below bicubic got, and what ten times that budget would cost.

    Except for step 02's nearest-neighbour variant without the bicubic skip, which
    no budget lifts past bicubic: its 1x1 head commutes with the upsampling, so its
    output is a 72 px image in 2x2 blocks. With the skip that blocky image is only a
    correction added to bicubic, and the variant is an ordinary model.
    """
    settings = result.settings
    if (
        settings.get("model") == "simple_model_nearest"
        and settings.get("skip", "none") == "none"
    ):
        return (
            " Without the bicubic skip, no training budget lifts this variant past "
            "bicubic: its output is a 72 px image whose pixels are each repeated "
            "into a 2x2 block."
        )
    steps = result.steps
    batch = settings.get("batch_size")
    speed = result.train_images_per_s
    sentence = f" It got {steps} optimizer steps of {batch} windows"
    if speed and np.isfinite(speed) and speed > 0:
        minutes = steps * batch / speed / 60
        sentence += (
            f" ({minutes:.1f} min of training at {speed:.1f} windows/s on the "
            f"hardware of the banner); ten times that budget (`-p steps="
            f"{10 * steps}`) would take about {10 * minutes:.0f} min there"
        )
    return sentence + ". A network of this kind needs a longer budget to pass bicubic."


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
                    "and scale, measured on its own 288 px images, which its text "
                    "does not name: other images, so not comparable with the number "
                    "above."
                )
            bullets.append("- " + sentence)
    return _markdown("\n".join(bullets))


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


def best_model(table: pd.DataFrame, scale: int = 288, metric: str = "psnr") -> str:
    """Name of the model with the best mean ``metric`` at ``scale`` in a run.

    Args:
        table: ``srkit.records.collect_metrics`` output (bicubic rows are ignored).
        scale: output size, 144 or 288.
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
        text = (
            f"At {scale}x{scale}, the highest PSNR is {best['psnr']:.2f} dB "
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
            f"- The original study measured its models on other data ({ORIGINAL_DATA})"
            f"; its best PSNR there was {best['psnr']:.2f} dB "
            f"({_name(best['model'], pages)} at "
            f"{int(best['scale'])}x{int(best['scale'])}). Those numbers are a record "
            "of that study, not a yardstick for the rows above, which come from "
            "other images."
        )
    return _markdown("\n".join(bullets))


def _cell(value) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


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
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = [
        "| " + " | ".join(_cell(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return _markdown("\n".join([header, rule, *body]))


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


# ------------------------------------------------------------------ benchmarks


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
    base = project_root() or project_root(Path(srkit.__file__).parent)
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
            if p.is_file() and p.suffix.lower() in data.IMAGE_EXTENSIONS
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
        An ``IPython.display.Markdown`` admonition (see :func:`banner`).
    """
    shown = _set_counts(sets) or "none"
    extra = (
        f"Benchmark sets: {shown}. Trained models found in the run folder: "
        f"{len(list(model_names))}."
    )
    return banner(profile, None, extra=extra)


def benchmark_status(benchmarks: str, folder, sets, model_names):
    """Say plainly what the benchmark page scores, or why it scores nothing.

    Args:
        benchmarks: the page's ``benchmarks`` parameter.
        folder: its resolved folder (:func:`benchmark_folder`), or None.
        sets: set name -> folder (``srkit.evaluate.benchmark_sets``).
        model_names: the trained models found in the run folder.

    Returns:
        An ``IPython.display.Markdown`` paragraph.
    """
    model_names = list(model_names)
    if folder is None:
        text = (
            "**No benchmark sets.** The `benchmarks` parameter is empty, so nothing "
            "is scored on this page. Set it to `folder:PATH`, a folder whose "
            "subfolders (`Set5/`, `Set14/`, ...) hold high-resolution images, to "
            "score the models. The step still writes its record, and the summary "
            "falls back to the validation table."
        )
    elif not sets:
        text = (
            f"**No benchmark sets.** The folder `{folder}` (from `{benchmarks}`) has "
            "no subfolder holding images, so nothing is scored on this page. The "
            "step still writes its record, and the summary falls back to the "
            "validation table."
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
    return _markdown(text)


def _signed(value, digits: int) -> str:
    return "–" if pd.isna(value) else f"{value:+.{digits}f}"


def _plain(value, digits: int) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f}"


def benchmark_tables(summary: pd.DataFrame, published: pd.DataFrame | None = None):
    """One Markdown table per set and scale: bicubic, our models, published rows.

    Columns: method, source, PSNR (dB), SSIM, and the margins over bicubic. Our rows
    are labelled "measured here"; published rows "quoted from the paper, not
    measured here", and their margins are over the same paper's bicubic row. The
    sources of the quoted rows are listed below the tables.

    Args:
        summary: ``srkit.evaluate.benchmark_summary`` output.
        published: ``srkit.records.load_published_benchmarks`` output; loaded when
            None.

    Returns:
        An ``IPython.display.Markdown`` object (a sentence when ``summary`` is
        empty).
    """

    if summary.empty:
        return _markdown("No benchmark results to show.")
    if published is None:
        published = records.load_published_benchmarks()
    header = [
        "method",
        "source",
        "PSNR (dB)",
        "SSIM",
        "PSNR margin over bicubic (dB)",
        "SSIM margin over bicubic",
    ]
    lines, cited = [], {}
    for (set_name, scale), rows in summary.groupby(["set", "scale"], sort=False):
        body = [
            [
                model_label(row.model),
                MEASURED_LABEL,
                _plain(row.psnr, 2),
                _plain(row.ssim, 4),
                _signed(row.psnr_margin, 2),
                _signed(row.ssim_margin, 4),
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
                    _signed(psnr_margin, 2),
                    _signed(ssim_margin, 4),
                ]
            )
        count = int(rows["n_images"].iloc[0])
        lines.append(f"**{set_name}, x{scale}** (mean over {count} images)")
        lines.append("")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in body]
        lines.append("")
    if cited:
        lines.append(
            f"Rows marked *{PUBLISHED_LABEL}* are typed in from the papers' tables "
            "(`srkit/reference/published_benchmarks.csv`); a dash is a value the "
            "paper does not report or that we did not check:"
        )
        lines.append("")
        lines += [f"- {method}: {text}" for method, text in cited]
    return _markdown("\n".join(lines))


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
        if p.stem == image and p.suffix.lower() in data.IMAGE_EXTENSIONS
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
        return _markdown(
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
    return _markdown("\n".join(bullets))


# ---------------------------------------------------------------- summary page

#: Benchmark scale factor -> the validation output size of the same factor.
SCALE_SIZES = {2: 144, 4: 288}
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
    """Model -> the stem of the step page that trains it, from a run's records.

    Args:
        table: ``srkit.records.collect_metrics`` output (columns ``model``, ``step``).

    Returns:
        e.g. ``{"dts_model": "07_depth_to_space", ...}``; bicubic is left out.
    """
    rows = table[(table["model"] != "bicubic") & table["step"].notna()]
    return dict(zip(rows["model"].astype(str), rows["step"].astype(str), strict=True))


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
    """Validation rows with ``psnr_margin``: each model minus bicubic at its size."""
    bicubic = table[table["model"] == "bicubic"].groupby("scale")["psnr"].mean()
    rows = table[(table["model"] != "bicubic") & table["scale"].isin(bicubic.index)]
    return rows.assign(psnr_margin=rows["psnr"] - rows["scale"].map(bicubic))


def headline(
    bench: pd.DataFrame,
    ours: pd.DataFrame,
    original: pd.DataFrame,
    profile: str,
    pages: dict[str, str] | None = None,
):
    """The summary page's answer, computed from the run, as an admonition.

    The best model per scale is the one with the largest mean PSNR margin over
    bicubic on the benchmark sets (on the validation images when the run has no
    benchmark result); the best loss is that of the best result model (R1-R4,
    which differ mainly in their training loss); then what the original study
    found and whether this run agrees. A smoke build says first that the ranking
    is noise.

    Args:
        bench: ``srkit.records.read_benchmarks`` output (may be empty).
        ours: ``srkit.records.collect_metrics`` output.
        original: ``srkit.records.load_original_results`` output.
        profile: the run's parameter profile.
        pages: model -> step page stem (:func:`model_pages`), for links.

    Returns:
        An ``IPython.display.Markdown`` admonition.
    """
    lines = []
    if profile == "smoke":
        lines.append(
            "**This is a smoke build: every model trained for a handful of steps, so "
            "the ranking below is noise.** It shows that the pipeline works, not "
            "which model is best."
        )
    scored = bench[bench["model"] != "bicubic"] if len(bench) else bench
    if len(scored):
        where = "over the benchmark sets " + ", ".join(dict.fromkeys(scored["set"]))
        rows, factor = scored, {int(s): int(s) for s in scored["scale"].unique()}
    else:
        where = "over our validation images; this run has no benchmark result"
        rows = _margins_on_validation(ours)
        sizes = {size: factor for factor, size in SCALE_SIZES.items()}
        factor = {int(s): sizes.get(int(s), int(s)) for s in rows["scale"].unique()}
    best = _best_by_scale(rows, "psnr_margin")
    bullets = []
    for scale, (name, margin) in best.items():
        side = "above" if margin > 0 else "below"
        bullets.append(
            f"- **Best at x{factor[scale]}:** {linked_label(name, pages)}, "
            f"{abs(margin):.2f} dB {side} bicubic interpolation in PSNR "
            f"(mean {where})."
        )
    results = [
        n for n in models.MODEL_NAMES if str(models.MODEL_INFO[n]["step"])[0] == "R"
    ]
    in_run = rows[rows["model"].isin(results)]
    if len(in_run):
        mean = in_run.groupby("model", sort=False)["psnr_margin"].mean()
        winner = str(mean.sort_values(ascending=False, kind="stable").index[0])
        side = "above" if mean[winner] > 0 else "below"
        bullets.append(
            f"- **Best loss:** `{models.MODEL_INFO[winner]['loss']}`, the loss of "
            f"{linked_label(winner, pages)}, the result model (R1-R4) with the "
            f"largest mean PSNR margin: {abs(mean[winner]):.2f} dB {side} bicubic."
        )
    study = _best_by_scale(original, "psnr")
    study_names = {name for name, _ in study.values()}
    if len(study_names) == 1:
        study_text = f"{short_label(next(iter(study_names)))} best at both scales"
    else:
        study_text = ", ".join(
            f"{short_label(n)} best at {s}x{s}" for s, (n, _) in study.items()
        )
    ours_by_factor = {factor[s]: n for s, (n, _) in best.items()}
    study_by_factor = {
        f: study[size][0] for f, size in SCALE_SIZES.items() if size in study
    }
    shared = [f for f in study_by_factor if f in ours_by_factor]
    agree = [f for f in shared if ours_by_factor[f] == study_by_factor[f]]
    if shared and len(agree) == len(shared):
        verdict = "This run agrees."
    elif agree:
        verdict = "This run agrees at " + ", ".join(f"x{f}" for f in agree) + " only."
    else:
        verdict = "This run does not agree."
    bullets.append(
        f"- **The original study** found {study_text}, measured in PSNR on its own "
        f"data ({ORIGINAL_DATA}). {verdict}"
    )
    kind = "warning" if profile == "smoke" else "important"
    body = "\n\n".join([*lines, "\n".join(bullets)])
    title = f":::{{admonition}} What this run found\n:class: {kind} srkit-headline\n"
    return _markdown(f"{title}\n{body}\n:::")


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
    return _markdown("\n\n".join(blocks))


def validation_tables(
    comparison: pd.DataFrame,
    metrics: tuple[str, ...] = ("psnr", "ssim"),
    pages: dict[str, str] | None = None,
):
    """:func:`summary_table` as one narrow Markdown table per output size.

    Each metric has two columns, this run and bicubic on the same validation
    images; the original study's values (other data) come last, marked "study".

    Args:
        comparison: ``srkit.records.comparison_table`` output.
        metrics: metrics to show.
        pages: model -> step page stem, for linked labels.

    Returns:
        An ``IPython.display.Markdown`` with a bold title and a table per size.
    """
    decimals = {"mse": 5, "mae": 4, "psnr": 2, "ssim": 3}
    blocks = []
    for scale in sorted(comparison["scale"].unique()):
        rows = comparison[comparison["scale"] == scale]
        header = ["model"]
        for metric in metrics:
            header += [metric.upper(), "bicubic"]
        header += [f"{metric.upper()} study" for metric in metrics]
        lines = [
            f"**{scale}x{scale}** (x{scale // 72}), validation images",
            "",
            "| " + " | ".join(header) + " |",
            "|---|" + "---:|" * (len(header) - 1),
        ]
        for row in rows.itertuples(index=False):
            cells = [linked_label(str(row.model), pages)]
            for metric in metrics:
                for source in ("ours", "bicubic"):
                    value = getattr(row, f"{metric}_{source}")
                    cells.append(
                        "" if pd.isna(value) else f"{value:.{decimals[metric]}f}"
                    )
            for metric in metrics:
                value = getattr(row, f"{metric}_original")
                cells.append("" if pd.isna(value) else f"{value:.{decimals[metric]}f}")
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return _markdown("\n\n".join(blocks))


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
    return _markdown("\n".join(lines))


# ------------------------------------------------------------- model ranking

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


def ranking_tables(ranking: pd.DataFrame, pages: dict[str, str] | None = None):
    """The ranking as one Markdown table per upscaling factor.

    Rows follow the benchmark ranking when there is one, else the validation
    ranking; models ranked only by the other follow. Each ranking has a rank and
    a margin column (dB, signed); the study's rank of the same model comes last.

    Args:
        ranking: :func:`model_ranking` (or ``records.margin_ranking``) output.
        pages: model -> step page stem, for linked labels.

    Returns:
        An ``IPython.display.Markdown``; a sentence when nothing is ranked.
    """
    if ranking.empty:
        return _markdown(NO_RANKING)
    names = list(dict.fromkeys(ranking["ranking"]))
    short = {records.BENCHMARK_RANKING: "sets", records.VALIDATION_RANKING: "val."}
    blocks = []
    for factor in sorted(ranking["scale"].unique()):
        at = ranking[ranking["scale"] == factor]
        order = list(dict.fromkeys(at["model"]))  # first ranking first, by rank
        header = ["model"]
        for name in names:
            header += [
                f"rank ({short.get(name, name)})",
                f"dB ({short.get(name, name)})",
            ]
        header.append("rank in the study")
        sources = "; ".join(
            f"{short.get(n, n)}: {RANKING_WORDS.get(n, n)}" for n in names
        )
        lines = [
            f"**x{factor}**: rank by PSNR margin over bicubic ({sources})",
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
            study = rows["study_rank"].dropna()
            cells.append(str(int(study.iloc[0])) if len(study) else "")
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return _markdown("\n\n".join(blocks))


def ranking_sentences(ranking: pd.DataFrame, pages: dict[str, str] | None = None):
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

    Returns:
        An ``IPython.display.Markdown`` bullet list (one bullet per factor); a
        sentence when nothing is ranked.
    """
    if ranking.empty:
        return _markdown(NO_RANKING)
    agreement = records.ranking_agreement(ranking).set_index(["ranking", "scale"])
    names = list(dict.fromkeys(ranking["ranking"]))
    study_best = linked_label(ORIGINAL_BEST, pages)
    bullets = []
    for factor in sorted(ranking["scale"].unique()):
        at = ranking[ranking["scale"] == factor]
        main = next(n for n in names if (at["ranking"] == n).any())
        rows = at[at["ranking"] == main]
        first = rows.iloc[0]
        place = (
            f"ranks first of {len(rows)}"
            if len(rows) > 1
            else "is the only model ranked"
        )
        text = (
            f"- **x{factor}** ({RANKING_WORDS.get(main, main)}): "
            f"{linked_label(str(first['model']), pages)} {place}, "
            f"{first['psnr_margin']:+.2f} dB against bicubic in PSNR"
        )
        best_rows = rows[rows["model"] == ORIGINAL_BEST]
        if str(first["model"]) == ORIGINAL_BEST:
            text += f"; {study_best} is the study's best model too."
        elif len(best_rows):
            place = _ordinal(int(best_rows["rank"].iloc[0]))
            text += f"; the study's best model, {study_best}, is {place} here."
        else:
            text += (
                f"; the study's best model, {study_best}, has no x{factor} result "
                f"{RANKING_PLACES.get(main, 'here')} in this run."
            )
        rho = agreement.loc[(main, factor)]
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
            other = [n for n in names if n != main and (n, factor) in agreement.index]
            for name in other:
                extra = agreement.loc[(name, factor)]
                if pd.notna(extra["spearman"]):
                    text += (
                        f" ({extra['spearman']:.2f} {RANKING_PLACES.get(name, name)}"
                        f", over {int(extra['n_models'])} models)"
                    )
            text += "."
        bullets.append(text)
    return _markdown("\n".join(bullets))


def regime_takeaways(histories, bicubic):
    """Where each training regime of one model ends against bicubic, per output.

    The numbers are the last validation PSNR of each history (what the curves of
    :func:`srkit.plots.regime_curves` end at) and bicubic's validation PSNR.

    Args:
        histories: regime (``"bicubic"``, ``"none"`` as in
            ``srkit.models.build(skip=...)``, or any label) -> ``FitResult.history``.
        bicubic: bicubic's validation PSNR in dB by target side (144, 288), or
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
                f"{row.label} {row.psnr:.2f} dB "
                f"({_signed(margin, 2)} dB against bicubic"
            )
            parts.append(part + (f", after step {row.step})" if each else ")"))
        plural = "" if each or steps[0] == 1 else "s"
        after = "" if each else f" after {steps[0]} optimizer step{plural}"
        text = (
            f"- At x{scale // data.LOW_SIZE} ({scale} px){after}, bicubic "
            f"interpolation gives {rows['bicubic'].iloc[0]:.2f} dB validation PSNR; "
            + "; ".join(parts)
            + "."
        )
        by_regime = rows.set_index("regime")["psnr"]
        if {"bicubic", "none"} <= set(by_regime.index):
            change = round(by_regime["bicubic"] - by_regime["none"], 2) + 0.0
            text += (
                " Learning the residual over bicubic instead of the whole image "
                f"changes the validation PSNR by {_signed(change, 2)} dB here."
            )
        bullets.append(text)
    return _markdown("\n".join(bullets))
