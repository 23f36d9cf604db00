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

#: Metric columns of every results table, in display order.
METRICS = ("mse", "mae", "psnr", "ssim")


def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """Find the project folder (the one holding ``_toc.yml`` and ``notebooks/``).

    Args:
        start: folder to search upwards from; the current directory by default.

    Returns:
        The project folder, or None when no parent folder holds the book files.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def run_folder(run_dir: str | os.PathLike = "") -> Path:
    """Resolve a notebook's ``run_dir`` parameter to an absolute folder.

    Args:
        run_dir: the parameter value; empty means ``<project>/runs/notebook`` (or
            ``./runs/notebook`` outside a project), the folder used when a notebook
            runs on its own.

    Returns:
        The absolute run folder; it is created if missing.
    """
    if str(run_dir):
        folder = Path(run_dir).expanduser().resolve()
    else:
        folder = (project_root() or Path.cwd()) / "runs" / "notebook"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _accelerators() -> list[str]:
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices() if d.platform != "cpu"]
        if backend == "torch":
            import torch

            count = torch.cuda.device_count()
            return [torch.cuda.get_device_name(i) for i in range(count)]
    except Exception:  # a broken driver must not break a page
        return []
    return []


def _git_commit() -> str | None:
    from srkit.pipeline import git_commit

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
    from srkit.pipeline import cpu_model, ram_gib

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
        "accelerators": _accelerators(),
    }


def hardware_line(info: dict | None = None) -> str:
    """One line naming the processor, core count and accelerators."""
    info = info or environment_info()
    gpus = ", ".join(info["accelerators"]) or "no GPU"
    return f"{info['cpu']} ({info['cores']} cores), {gpus}"


def _markdown(text: str):
    from IPython.display import Markdown

    return Markdown(text)


def banner(
    profile: str,
    split,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    vgg_weights: str | None = None,
    precision: str | None = None,
    extra: str = "",
):
    """The run banner shown at the top of every step page.

    Args:
        profile: name of the parameter profile (``smoke``, ``quick``, ``full``...).
        split: the ``srkit.data.Split`` the step trains and validates on.
        epochs, batch_size, learning_rate, vgg_weights, precision: training settings
            to state; None leaves a setting out (e.g. on the data page).
        extra: one more sentence appended to the banner.

    Returns:
        An ``IPython.display.Markdown`` object holding a MyST admonition.
    """
    info = environment_info()
    source = split.info.get("source", "?")
    mode = split.info.get("mode", "?")
    parts = [
        f"profile **{profile}**",
        f"data `{source}` ({mode}; {len(split.train)} training and "
        f"{len(split.val)} validation images)",
    ]
    if epochs is not None:
        parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}")
    if batch_size is not None:
        parts.append(f"batch {batch_size}")
    if learning_rate is not None:
        parts.append(f"learning rate {learning_rate:g}")
    if vgg_weights is not None:
        parts.append(f"VGG16 weights: {vgg_weights}")
    if precision is not None:
        parts.append(precision)
    parts.append(
        f"Keras {info['keras']} on {info['backend']} {info['backend_version']}"
    )
    parts.append(hardware_line(info))
    commit = f", commit {info['commit']}" if info["commit"] else ""
    parts.append(f"srkit {info['srkit']}{commit}")
    kind = "warning" if profile == "smoke" else "note"
    lines = [
        ":::{admonition} Run banner",
        f":class: {kind}",
        "",
        " · ".join(parts) + ".",
    ]
    if profile == "smoke":
        lines.append(
            "\nThis page ran with the **smoke** profile: every model sees a few dozen "
            "crops for a single epoch. The numbers show that the code runs; they are "
            "not results about the architectures."
        )
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
    from srkit import models

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

    Args:
        evaluations: one ``srkit.evaluate.Evaluation`` or a list of them.
        original: the original report's table
            (``srkit.evaluate.load_original_results``); loaded when None.

    Returns:
        A DataFrame indexed by (scale, source, model) with the four metric columns.
        ``source`` is ``this run``, ``bicubic`` or ``original report``.
    """
    from srkit import evaluate

    if not isinstance(evaluations, list | tuple):
        evaluations = [evaluations]
    if original is None:
        original = evaluate.load_original_results()
    rows = []
    for evaluation in evaluations:
        table = evaluation.table
        for record in table.to_dict("records"):
            is_bicubic = record["model"] == "bicubic"
            rows.append(
                {
                    "scale": int(record["scale"]),
                    "source": "bicubic" if is_bicubic else "this run",
                    "model": record["model"],
                    **{m: record[m] for m in METRICS},
                }
            )
        names = set(table["model"]) - {"bicubic"}
        for record in original[original["model"].isin(names)].to_dict("records"):
            rows.append(
                {
                    "scale": int(record["scale"]),
                    "source": "original report",
                    "model": record["model"],
                    **{m: record[m] for m in METRICS},
                }
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
    """One sentence on a finished ``srkit.train.fit`` call (epochs, time, speed)."""
    history = result.history
    epochs = int(history["epoch"].max()) if len(history) else 0
    status = (
        "loaded from an earlier run" if getattr(result, "skipped", False) else "trained"
    )
    return (
        f"{status}: {epochs} epoch{'s' if epochs != 1 else ''}, "
        f"{result.wall_time_s:.1f} s, "
        f"{result.train_images_per_s:.1f} training images/s "
        f"({result.precision})."
    )


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


def takeaways(evaluations, original: pd.DataFrame | None = None):
    """Sentences comparing each model with bicubic and with the original report.

    Every number comes from the evaluations passed in (and the original report's
    table), so the text is true of the run that produced the page.

    Args:
        evaluations: one ``srkit.evaluate.Evaluation`` or a list of them.
        original: the original report's table; loaded when None.

    Returns:
        An ``IPython.display.Markdown`` bullet list.
    """
    from srkit import evaluate

    if not isinstance(evaluations, list | tuple):
        evaluations = [evaluations]
    if original is None:
        original = evaluate.load_original_results()
    bullets = []
    for evaluation in evaluations:
        table = evaluation.table.set_index(["model", "scale"])
        for model, scale in table.index:
            if model == "bicubic":
                continue
            ours = table.loc[(model, scale)].to_dict()
            bicubic = table.loc[("bicubic", scale)].to_dict()
            sentence = _gain_sentence(model, int(scale), ours, bicubic)
            match = original[
                (original["model"] == model) & (original["scale"] == scale)
            ]
            if len(match):
                reported = float(match["psnr"].iloc[0])
                sentence += (
                    f" The original report gives {reported:.2f} dB for this model "
                    f"and scale; ours differs by {ours['psnr'] - reported:+.2f} dB."
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

    from srkit import metrics

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
        table: ``srkit.evaluate.collect_metrics`` output (bicubic rows are ignored).
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
    from srkit import models

    gifs = []
    for name in models.MODEL_NAMES:
        folder = Path(run_dir) / "models" / name
        for output in ("high_upsample", "low_upsample"):
            path = folder / f"gif_{output}.gif"
            if path.is_file():
                gifs.append(TrainingGif(name, path))
                break
    return gifs


def conclusions(table: pd.DataFrame, original: pd.DataFrame | None = None):
    """Sentences on a whole run: best models, bicubic, and the original report.

    Args:
        table: ``srkit.evaluate.collect_metrics`` output.
        original: the original report's table; loaded when None.

    Returns:
        An ``IPython.display.Markdown`` bullet list whose numbers all come from
        ``table`` and ``original``.
    """
    from srkit import evaluate

    if original is None:
        original = evaluate.load_original_results()
    bullets = []
    models_only = table[table["model"] != "bicubic"]
    for scale in sorted(models_only["scale"].unique()):
        rows = models_only[models_only["scale"] == scale]
        bicubic = table[(table["model"] == "bicubic") & (table["scale"] == scale)]
        best = rows.sort_values("psnr", ascending=False).iloc[0]
        best_ssim = rows.sort_values("ssim", ascending=False).iloc[0]
        text = (
            f"At {scale}x{scale}, the highest PSNR is {best['psnr']:.2f} dB "
            f"(`{best['model']}`) and the highest SSIM {best_ssim['ssim']:.3f} "
            f"(`{best_ssim['model']}`)."
        )
        if len(bicubic):
            reference = float(bicubic["psnr"].iloc[0])
            beaten = int((rows["psnr"] > reference).sum())
            text += (
                f" {beaten} of {len(rows)} models beat bicubic interpolation "
                f"({reference:.2f} dB) on PSNR."
            )
        reported = original[original["scale"] == scale]
        if len(reported):
            top = reported.sort_values("psnr", ascending=False).iloc[0]
            text += (
                f" In the original report the best was `{top['model']}` with "
                f"{top['psnr']:.2f} dB."
            )
        bullets.append("- " + text)
    merged = models_only.merge(original, on=["model", "scale"], suffixes=("", "_orig"))
    if len(merged):
        gap = (merged["psnr"] - merged["psnr_orig"]).mean()
        bullets.append(
            f"- Over the {len(merged)} model and scale pairs both tables share, our "
            f"PSNR differs from the original report's by {gap:+.2f} dB on average. "
            "The banner above states the data and epochs behind our numbers; the "
            "original study trained on PASCAL VOC 2007 images."
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
    """A compact view of ``srkit.evaluate.comparison_table`` for a book page.

    Args:
        comparison: the output of ``comparison_table`` (columns ``<metric>_ours``,
            ``<metric>_original``, ``<metric>_bicubic``).
        metrics: which metrics to show, each as three columns (this run, original
            report, bicubic).

    Returns:
        A DataFrame indexed by (scale, model), models in zoo order within a scale.
    """
    labels = {"ours": "this run", "original": "original report", "bicubic": "bicubic"}
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
