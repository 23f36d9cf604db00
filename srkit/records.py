"""Records: the ``metrics.json`` each step writes, and the numbers of others.

A step keeps what it measured in ``RUN/steps/<stem>/metrics.json``
(:func:`write_metrics` for trained models, :func:`write_benchmarks` for the
benchmark sets, :func:`write_summary` for the summary); :func:`read_metrics`
validates one file, :func:`collect_metrics` and :func:`read_benchmarks` gather a
run's files into tables. Numbers measured elsewhere live here too, always labelled
as such: the original report's results (:func:`load_original_results`) and the
published benchmark rows (:func:`load_published_benchmarks`).
:func:`comparison_table` sets ours beside bicubic and the original report;
:func:`margin_ranking` orders the models by their margin over bicubic beside the
original report's order, and :func:`ranking_agreement` compares the two orders.

Per-model facts (loss, steps, images per second...) arrive as a plain dict, for
example ``srkit.train.FitResult.record()``.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from srkit.atomic import write_json
from srkit.evaluate import (
    BENCHMARK_COLUMNS,
    BENCHMARK_IMAGE_COLUMNS,
    TABLE_COLUMNS,
    Evaluation,
    benchmark_summary,
)
from srkit.layout import METRICS_FILE, RunFolder
from srkit.vocab import BICUBIC, METRICS

#: Version of the ``metrics.json`` layout written by :func:`write_metrics`. In
#: version 2 every ``scale`` is the upscaling factor (2, 4). Version 1 stored the
#: output side in pixels (144, 288) as the ``scale`` of the validation scores and
#: summary rows; :func:`read_metrics` still reads it (:data:`V1_SIDE_SCALES`).
SCHEMA_VERSION = 2
#: Versions :func:`read_metrics` reads.
READ_VERSIONS = (1, SCHEMA_VERSION)
#: Version-1 records only: the output side stored as ``scale`` -> the factor.
V1_SIDE_SCALES = {144: 2, 288: 4}

#: Keys of the per-model information stored in ``metrics.json`` (None when unknown).
INFO_KEYS = (
    "loss",
    "steps",
    "batch_size",
    "n_train",
    "n_val",
    "train_images_per_s",
    "wall_time_s",
    "vgg_weights",
    "precision",
)

#: Key of the benchmark means in a ``metrics.json`` (see :func:`write_benchmarks`).
BENCHMARKS_KEY = "benchmarks"

#: Columns of :func:`load_published_benchmarks`.
PUBLISHED_COLUMNS = ["method", "set", "scale", "psnr", "ssim", "citation", "link"]

COLLECT_COLUMNS = ["step", "model", "scale", *METRICS, "loss", "steps", "n_train"]


def load_published_benchmarks() -> pd.DataFrame:
    """Published benchmark numbers (typed in from the papers, not measured here).

    Read from the package file ``srkit/reference/published_benchmarks.csv``: the
    bicubic baseline and SRCNN (Dong et al., TPAMI 2016) and ESPCN (Shi et al.,
    CVPR 2016) on Set5 and Set14, Y-channel PSNR (dB) and SSIM as printed in the
    papers' tables. A blank value is one the paper does not report (ESPCN reports
    PSNR only, and no x2) or one we could not check against a second source.

    Returns:
        DataFrame with columns ``method, set, scale, psnr, ssim, citation, link``
        (``link``: the paper's abstract page).
    """
    resource = (
        importlib.resources.files("srkit") / "reference" / "published_benchmarks.csv"
    )
    with resource.open("r", encoding="utf-8") as stream:
        table = pd.read_csv(stream)
    table["scale"] = table["scale"].astype(np.int64)
    for metric in ("psnr", "ssim"):
        table[metric] = table[metric].astype(np.float64)
    return table[PUBLISHED_COLUMNS]


def _json_value(value):
    """JSON form of numpy scalars, paths and other simple values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"value {value!r} of type {type(value).__name__} is not JSON")


def _score_records(table: pd.DataFrame) -> list[dict]:
    return [
        {"scale": int(row["scale"]), **{m: float(row[m]) for m in METRICS}}
        for row in table.to_dict("records")
    ]


def _info_dict(info) -> dict:
    """Per-model information: a plain dict (``FitResult.record()``) or None."""
    if info is None:
        return {}
    if not isinstance(info, Mapping):
        raise ValueError(
            f"info must be a dict (for a training result: result.record()), got "
            f"{type(info).__name__}"
        )
    return dict(info)


def _model_record(evaluation: Evaluation, info) -> dict:
    info = _info_dict(info)
    reserved = {"model", "n_images", "metrics", "bicubic"} & set(info)
    if reserved:
        raise ValueError(
            f"info for {evaluation.model_name!r} may not set {sorted(reserved)}: "
            "they come from the evaluation"
        )
    record = {"model": evaluation.model_name, "n_images": int(evaluation.n_images)}
    record.update({key: info.pop(key, None) for key in INFO_KEYS})
    if record["n_val"] is None:
        record["n_val"] = int(evaluation.n_images)
    record.update(info)  # any further keys are kept as given
    table = evaluation.table
    is_bicubic = table["model"] == BICUBIC
    record["metrics"] = _score_records(table[~is_bicubic])
    record["bicubic"] = _score_records(table[is_bicubic])
    return record


def write_metrics(
    path,
    evaluations,
    step: str | int,
    params: Mapping | None = None,
    extra: Mapping | None = None,
) -> Path:
    """Write a step's ``metrics.json`` atomically (temporary file, then rename).

    Schema (``schema_version`` 2; ``scale`` is the upscaling factor, 2 or 4)::

        {
          "schema_version": 2,
          "step": "05",                       # step id or notebook stem
          "params": {...},                    # resolved parameters of the step
          "extra": {...},                     # free-form notes (may be empty)
          "models": [
            {
              "model": "dilated_conv_block_model",
              "n_images": 20,                 # images evaluated
              "loss": "mae", "steps": 400, "n_train": 80, "n_val": 20,
              "train_images_per_s": 12.3, "wall_time_s": 45.6,
              "vgg_weights": null, "precision": "float32",   # None when unknown
              "metrics": [{"scale": 2, "mse": ..., "mae": ..., "psnr": ...,
                           "ssim": ...}, ...],
              "bicubic": [{"scale": 2, ...}, ...]
            }
          ]
        }

    Args:
        path: file to write (usually ``RUN/steps/<stem>/metrics.json``); parent
            folders are created.
        evaluations: an :class:`Evaluation`, or a list of Evaluations or of
            ``(Evaluation, info)`` pairs. ``info`` is a dict with any of ``loss,
            steps, n_train, n_val, train_images_per_s, wall_time_s, vgg_weights,
            precision`` (further keys are stored as given), or the
            ``srkit.train.FitResult`` of the model, from which they are taken
            (``steps`` = the optimizer steps of its history). An empty list is
            allowed for steps without a model; a bicubic-only evaluation
            (``evaluate(None, ...)``) is stored as model ``bicubic`` with an empty
            ``metrics`` list.
        step: the step id, e.g. ``"05"`` or ``"R1"`` (an int becomes two digits).
        params: the step's parameters (JSON-serializable).
        extra: anything else worth keeping (JSON-serializable).

    The summary step writes the same schema through :func:`write_summary`, with no
    models and its table under an extra key ``summary``.

    Returns:
        The path written.

    Raises:
        ValueError: on an empty step, a bad evaluations entry, reserved info keys or
            values that JSON cannot hold.
    """
    if isinstance(step, int) and not isinstance(step, bool):
        step = f"{step:02d}"
    if not isinstance(step, str) or not step:
        raise ValueError(f"step must be a non-empty string such as '05', got {step!r}")
    if isinstance(evaluations, Evaluation | tuple):
        evaluations = [evaluations]
    models = []
    for entry in evaluations:
        if isinstance(entry, Evaluation):
            models.append(_model_record(entry, None))
        elif (
            isinstance(entry, tuple | list)
            and len(entry) == 2
            and isinstance(entry[0], Evaluation)
        ):
            models.append(_model_record(entry[0], entry[1]))
        else:
            raise ValueError(
                "evaluations must hold Evaluation objects or (Evaluation, info) "
                f"pairs, got {type(entry).__name__}"
            )
    document = {
        "schema_version": SCHEMA_VERSION,
        "step": step,
        "params": dict(params or {}),
        "extra": dict(extra or {}),
        "models": models,
    }
    return _write_json(path, document)


def _write_json(path, document: dict) -> Path:
    """Write a metrics document atomically; values JSON cannot hold name the step."""
    try:
        return write_json(path, document, default=_json_value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"metrics for step {document['step']!r} are not JSON: {error}"
        ) from error


def write_summary(
    path, table: pd.DataFrame, step: str | None = None, params: Mapping | None = None
) -> Path:
    """Write the summary step's ``metrics.json``: no models, the combined table.

    The file follows the :func:`write_metrics` schema with an empty ``models`` list
    (so :func:`collect_metrics` adds nothing from it on a later run) and one more
    key, ``summary``: the rows of ``table`` as a list of objects (NaN becomes null).

    Args:
        path: file to write, e.g. ``RUN/steps/13_summary/metrics.json``.
        table: the combined table (:func:`collect_metrics` or
            :func:`comparison_table`).
        step: the step id; the name of the file's folder when None.
        params: the step's parameters (JSON-serializable).

    Returns:
        The path written.

    Raises:
        ValueError: on values that JSON cannot hold.
    """
    path = Path(path)
    records = json.loads(table.to_json(orient="records"))
    document = {
        "schema_version": SCHEMA_VERSION,
        "step": str(step or path.parent.name),
        "params": dict(params or {}),
        "extra": {},
        "models": [],
        "summary": records,
    }
    return _write_json(path, document)


def _records(table: pd.DataFrame) -> list[dict]:
    return json.loads(table.to_json(orient="records"))


def write_benchmarks(
    path,
    per_image: pd.DataFrame,
    step: str | None = None,
    params: Mapping | None = None,
    extra: Mapping | None = None,
) -> Path:
    """Write the benchmark step's ``metrics.json``: means, margins and per-image rows.

    The file follows the :func:`write_metrics` schema with an empty ``models`` list
    (so :func:`collect_metrics` adds nothing from it) and two more keys:
    ``benchmarks``, the rows of :func:`benchmark_summary` (set, scale, model,
    n_images, psnr, ssim, psnr_margin, ssim_margin), and ``benchmarks_per_image``,
    the rows of ``per_image``. With no sets both lists are empty, and the file is
    still written, so the step has a record.

    Args:
        path: file to write, e.g. ``RunFolder(RUN).step_metrics("12_benchmarks")``.
        per_image: :func:`benchmark_all` output (may be empty).
        step: the step id; the name of the file's folder when None.
        params: the step's parameters (JSON-serializable).
        extra: anything else worth keeping (JSON-serializable).

    Returns:
        The path written.

    Raises:
        ValueError: on missing columns or values that JSON cannot hold.
    """
    path = Path(path)
    summary = benchmark_summary(per_image)
    document = {
        "schema_version": SCHEMA_VERSION,
        "step": str(step or path.parent.name),
        "params": dict(params or {}),
        "extra": dict(extra or {}),
        "models": [],
        BENCHMARKS_KEY: _records(summary),
        f"{BENCHMARKS_KEY}_per_image": _records(per_image[BENCHMARK_IMAGE_COLUMNS]),
    }
    return _write_json(path, document)


def read_benchmarks(run_dir) -> pd.DataFrame:
    """The benchmark means and margins a run's benchmark step recorded.

    Every ``RUN/steps/*/metrics.json`` holding a ``benchmarks`` key (written by
    :func:`write_benchmarks`) is read in folder order; the last one wins.

    Args:
        run_dir: the run folder.

    Returns:
        :func:`benchmark_summary`-shaped DataFrame; empty when the run has no
        benchmark record or the record holds no sets.

    Raises:
        ValueError: for an invalid metrics file.
    """
    found = benchmark_summary(pd.DataFrame(columns=BENCHMARK_IMAGE_COLUMNS))
    for path in RunFolder(run_dir).all_step_metrics():
        document = read_metrics(path)
        if BENCHMARKS_KEY not in document:
            continue
        rows = document[BENCHMARKS_KEY]
        if not isinstance(rows, list):
            raise ValueError(
                f"metrics file {str(path)!r}: {BENCHMARKS_KEY!r} is not a list"
            )
        table = pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)
        if not table.empty:
            table["scale"] = table["scale"].astype(np.int64)
            table["n_images"] = table["n_images"].astype(np.int64)
            for column in ("psnr", "ssim", "psnr_margin", "ssim_margin"):
                table[column] = table[column].astype(np.float64)
        found = table
    return found


def _check_scores(scores, where: str) -> None:
    if not isinstance(scores, list):
        raise ValueError(f"{where} must be a list, got {type(scores).__name__}")
    for score in scores:
        missing = {"scale", *METRICS} - set(score if isinstance(score, dict) else ())
        if missing:
            raise ValueError(f"{where}: an entry lacks the keys {sorted(missing)}")


def _upgrade_v1(document: dict, path: Path) -> dict:
    """A version-1 document in the version-2 layout, changed in place.

    Version 1 stored the output side in pixels (144, 288) as the ``scale`` of each
    model's ``metrics`` and ``bicubic`` scores and of the ``summary`` rows; those
    become the factor (2, 4) and ``schema_version`` becomes 2. The benchmark rows
    already held the factor, and nothing else differs.
    """
    rows = [
        score
        for record in document["models"]
        for key in ("metrics", "bicubic")
        for score in record[key]
    ]
    summary = document.get("summary")
    if isinstance(summary, list):
        rows += [row for row in summary if isinstance(row, dict) and "scale" in row]
    for row in rows:
        side = row["scale"]
        if side not in V1_SIDE_SCALES:
            raise ValueError(
                f"metrics file {str(path)!r} (schema_version 1) has scale {side!r}; "
                f"version 1 stores the output side, one of {list(V1_SIDE_SCALES)}"
            )
        row["scale"] = V1_SIDE_SCALES[side]
    document["schema_version"] = SCHEMA_VERSION
    return document


def read_metrics(path) -> dict:
    """Read and validate a ``metrics.json`` written by :func:`write_metrics`.

    A version-1 file (written before ``scale`` was the factor everywhere) is read
    too: its ``scale`` values 144 and 288 come back as 2 and 4, and its
    ``schema_version`` as 2, so every reader sees one layout.

    Args:
        path: the file.

    Returns:
        The document as a dict in the current layout (see :func:`write_metrics`
        for the schema).

    Raises:
        ValueError: naming the file, when it is missing, not JSON, of a
            ``schema_version`` other than 1 or 2, or lacks required keys.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"metrics file {str(path)!r} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"metrics file {str(path)!r} is not valid JSON: {error}"
        ) from error
    if not isinstance(document, dict):
        raise ValueError(f"metrics file {str(path)!r} does not hold a JSON object")
    version = document.get("schema_version")
    if version not in READ_VERSIONS:
        raise ValueError(
            f"metrics file {str(path)!r} has schema_version {version!r}; this srkit "
            f"reads versions {list(READ_VERSIONS)}: rerun the step to rewrite it"
        )
    missing = {"step", "models"} - set(document)
    if missing:
        raise ValueError(f"metrics file {str(path)!r} lacks the keys {sorted(missing)}")
    if not isinstance(document["models"], list):
        raise ValueError(f"metrics file {str(path)!r}: 'models' must be a list")
    for number, record in enumerate(document["models"]):
        where = f"metrics file {str(path)!r}, models[{number}]"
        if not isinstance(record, dict):
            raise ValueError(f"{where} is not an object")
        missing = {"model", "metrics", "bicubic"} - set(record)
        if missing:
            raise ValueError(f"{where} lacks the keys {sorted(missing)}")
        _check_scores(record["metrics"], f"{where}.metrics")
        _check_scores(record["bicubic"], f"{where}.bicubic")
    if version == 1:
        return _upgrade_v1(document, path)
    return document


def collect_metrics(run_dir, bicubic: str = "last") -> pd.DataFrame:
    """Gather every ``RUN/steps/*/metrics.json`` into one long table.

    Files are read in the sorted order of their step folders (``01_...`` to
    ``13_...``). The bicubic baseline depends on the validation images a step used, so
    its rows are chosen by ``bicubic``:

    - ``"last"`` (default): one row per scale, from the last step (in folder order)
      that has one; its ``step`` column says which.
    - ``"per_step"``: one row per step and scale.
    - ``"none"``: no bicubic rows.

    Args:
        run_dir: the run folder (holding ``steps/``).
        bicubic: ``"last"``, ``"per_step"`` or ``"none"``.

    Returns:
        DataFrame with columns ``step, model, scale, mse, mae, psnr, ssim, loss,
        steps, n_train`` then ``n_val, n_images, train_images_per_s, wall_time_s,
        vgg_weights, precision``: one row per model and scale (the factor, 2 or 4,
        also for version-1 files), model rows in file order, then the bicubic
        rows.

    Raises:
        ValueError: for a missing run folder, no metrics files, an invalid file, or
            an unknown ``bicubic`` choice.
    """
    choices = ("last", "per_step", "none")
    if bicubic not in choices:
        raise ValueError(f"bicubic must be one of {choices}, got {bicubic!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run folder {str(run_dir)!r} does not exist")
    files = RunFolder(run_dir).all_step_metrics()
    if not files:
        raise ValueError(
            f"no {METRICS_FILE} under {str(RunFolder(run_dir).steps)!r}: run the step "
            "notebooks first (srkit run)"
        )
    extra_columns = [
        "n_val",
        "n_images",
        "train_images_per_s",
        "wall_time_s",
        "vgg_weights",
        "precision",
    ]
    model_rows, bicubic_rows = [], {}
    for path in files:
        document = read_metrics(path)
        step = str(document.get("step") or path.parent.name)
        for record in document["models"]:
            info = {
                key: record.get(key) for key in [*COLLECT_COLUMNS[7:], *extra_columns]
            }
            for score in record["metrics"]:
                model_rows.append(
                    {"step": step, "model": record["model"], **score, **info}
                )
            for score in record["bicubic"]:
                row = {"step": step, "model": BICUBIC, **score}
                row["n_val"] = record.get("n_val")
                row["n_images"] = record.get("n_images")
                key = (
                    (step, int(score["scale"]))
                    if bicubic == "per_step"
                    else (int(score["scale"]))
                )
                bicubic_rows[key] = row
    rows = model_rows
    if bicubic != "none":
        rows = rows + sorted(
            bicubic_rows.values(), key=lambda r: (r["scale"], r["step"])
        )
    table = pd.DataFrame(rows, columns=[*COLLECT_COLUMNS, *extra_columns])
    table["scale"] = table["scale"].astype(np.int64)
    for metric in METRICS:
        table[metric] = table[metric].astype(np.float64)
    return table


# ---------------------------------------------------------------- original report


def load_original_results() -> pd.DataFrame:
    """The original report's results table (the only typed-in numbers).

    Read from the package file ``srkit/reference/original_results.csv``, a copy of
    the report's table: mean validation metrics of each model and output. The
    report labels its rows by output side (144, 288 px); the file stores the
    upscaling factor (2, 4) as ``scale``, the numbers as the report gives them.

    Returns:
        DataFrame with columns ``model, scale, mse, mae, psnr, ssim, source``;
        ``source`` is ``"original report"``.
    """
    resource = importlib.resources.files("srkit") / "reference" / "original_results.csv"
    with resource.open("r", encoding="utf-8") as stream:
        table = pd.read_csv(stream)
    table["scale"] = table["scale"].astype(np.int64)
    table["source"] = "original report"
    return table[[*TABLE_COLUMNS, "source"]]


def _last_per_key(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return table.drop_duplicates(subset=keys, keep="last")


def comparison_table(ours: pd.DataFrame, original: pd.DataFrame | None = None):
    """Our metrics beside the original report's and the bicubic baseline.

    Args:
        ours: a table with columns ``model, scale, mse, mae, psnr, ssim`` (and maybe
            ``step``): :attr:`Evaluation.table` or :func:`collect_metrics`. Its
            ``bicubic`` rows give the baseline columns (matched by step and scale
            when both tables carry per-step bicubic rows, else the last per scale).
        original: the original report (:func:`load_original_results` when None).

    Returns:
        One row per model and scale of ``ours`` (in its order; when a model and scale
        appear twice the last row wins unless ``step`` tells them apart), then the
        original report's models that we did not run. Columns: ``model, scale``
        (``step`` when ``ours`` has it), then for each metric ``<m>_ours``,
        ``<m>_original``, ``<m>_bicubic``, and ``psnr_gain_db`` (ours minus bicubic).
    """
    if original is None:
        original = load_original_results()
    missing = set(TABLE_COLUMNS) - set(ours.columns)
    if missing:
        raise ValueError(f"ours lacks the columns {sorted(missing)}")
    has_step = "step" in ours.columns
    keys = ["step", "model", "scale"] if has_step else ["model", "scale"]
    is_bicubic = ours["model"] == BICUBIC
    models = _last_per_key(ours[~is_bicubic], keys)[[*keys, *METRICS]]
    models = models.rename(columns={m: f"{m}_ours" for m in METRICS})
    reference = _last_per_key(
        original[original["model"] != BICUBIC], ["model", "scale"]
    )
    reference = reference[TABLE_COLUMNS].rename(
        columns={m: f"{m}_original" for m in METRICS}
    )
    table = models.merge(reference, on=["model", "scale"], how="left")
    extra = reference[~reference["model"].isin(set(models["model"]))]
    table = pd.concat([table, extra], ignore_index=True)
    baseline = ours[is_bicubic]
    per_step = has_step and baseline["step"].nunique() > 1
    bicubic_keys = ["step", "scale"] if per_step else ["scale"]
    baseline = _last_per_key(baseline, bicubic_keys)[[*bicubic_keys, *METRICS]]
    baseline = baseline.rename(columns={m: f"{m}_bicubic" for m in METRICS})
    table = table.merge(baseline, on=bicubic_keys, how="left")
    table["psnr_gain_db"] = table["psnr_ours"] - table["psnr_bicubic"]
    table["scale"] = table["scale"].astype(np.int64)
    columns = [*keys] + [
        f"{m}_{side}" for m in METRICS for side in ("ours", "original", "bicubic")
    ]
    return table[[*columns, "psnr_gain_db"]]


# ---------------------------------------------------------------- ranking

#: Columns of :func:`margin_ranking`.
RANKING_COLUMNS = ["ranking", "scale", "rank", "model", "psnr_margin", "study_rank"]
#: Columns of :func:`ranking_agreement`.
AGREEMENT_COLUMNS = ["ranking", "scale", "n_models", "spearman"]
#: Names of the two rankings of :func:`margin_ranking`.
BENCHMARK_RANKING = "benchmarks"
VALIDATION_RANKING = "validation"


def _ranked(margins: pd.Series) -> pd.DataFrame:
    """Model -> margin as rows ordered by rank (1: largest margin; NaN left out)."""
    margins = margins.dropna().sort_values(ascending=False, kind="stable")
    ranks = margins.rank(ascending=False, method="min")
    return pd.DataFrame(
        {
            "rank": ranks.to_numpy(dtype=np.int64),
            "model": margins.index.astype(str),
            "psnr_margin": margins.to_numpy(dtype=np.float64),
        }
    )


def _validation_margins(per_step: pd.DataFrame) -> dict[int, pd.Series]:
    """Factor -> model -> PSNR margin over the bicubic row of the model's own step."""
    missing = {"step", "model", "scale", "psnr"} - set(per_step.columns)
    if missing:
        raise ValueError(f"per_step lacks the columns {sorted(missing)}")
    is_bicubic = per_step["model"] == BICUBIC
    baseline = per_step[is_bicubic].drop_duplicates(["step", "scale"], keep="last")
    baseline = baseline[["step", "scale", "psnr"]].rename(columns={"psnr": "base"})
    rows = per_step[~is_bicubic].drop_duplicates(["model", "scale"], keep="last")
    rows = rows.merge(baseline, on=["step", "scale"], how="left")
    rows = rows.assign(
        margin=rows["psnr"].astype(np.float64) - rows["base"].astype(np.float64)
    )
    margins = {}
    for scale in sorted(rows["scale"].dropna().unique()):
        at = rows[rows["scale"] == scale]
        margins[int(scale)] = pd.Series(
            at["margin"].to_numpy(), index=at["model"].astype(str)
        )
    return margins


def _benchmark_margins(bench: pd.DataFrame) -> dict[int, pd.Series]:
    """Factor -> model -> PSNR margin averaged over every set scored at it."""
    rows = bench[bench["model"] != BICUBIC].drop_duplicates(
        ["set", "scale", "model"], keep="last"
    )
    margins = {}
    for scale in sorted(rows["scale"].dropna().unique()):
        at = rows[rows["scale"] == scale]
        n_sets = at["set"].nunique()
        stats = at.groupby("model", sort=False)["psnr_margin"].agg(["mean", "count"])
        margins[int(scale)] = stats["mean"].where(stats["count"] == n_sets)
    return margins


def margin_ranking(
    per_step: pd.DataFrame,
    bench: pd.DataFrame | None = None,
    original: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Rank a run's models by their PSNR margin over bicubic, beside the study's rank.

    Two rankings, each per upscaling factor (x2 from the 144 px output, x4 from the
    288 px one; a model without an x4 output is ranked at x2 only):

    - ``"validation"``: each model's mean validation PSNR minus that of bicubic
      interpolation on the same step's validation images (the per-step bicubic rows
      of ``collect_metrics(RUN, bicubic="per_step")``).
    - ``"benchmarks"`` (only when ``bench`` holds model rows): the model's PSNR
      margin over bicubic averaged over the benchmark sets at that factor, each set
      counting once; a model missing from one of the sets is left out, so every
      ranked model is averaged over the same sets.

    A model whose margin is unknown (NaN PSNR, no bicubic row for its step) is left
    out. Rank 1 is the largest margin; ties share the smaller rank.

    ``study_rank`` is the same model's rank by mean PSNR among all the original
    report's models at the same output size (the report gives validation numbers
    only, on its own images, so every ranking is set against that one order). Only
    ranks are compared: the study's PSNR values were measured on other images.

    Args:
        per_step: ``collect_metrics(run, bicubic="per_step")`` output (columns
            ``step, model, scale, psnr``).
        bench: ``read_benchmarks`` output (columns ``set, scale, model,
            psnr_margin``); None or empty for a run without benchmark results.
        original: the original report (:func:`load_original_results` when None).

    Returns:
        DataFrame with columns ``ranking, scale, rank, model, psnr_margin,
        study_rank``: ``scale`` is the factor (2 or 4), ``psnr_margin`` in dB,
        ``study_rank`` a nullable integer (missing for a model the study lacks at
        that size). Rows by ranking (benchmarks first), factor, then rank.

    Raises:
        ValueError: when ``per_step`` lacks columns.
    """
    if original is None:
        original = load_original_results()
    rankings = {}
    if bench is not None and len(bench) and (bench["model"] != BICUBIC).any():
        rankings[BENCHMARK_RANKING] = _benchmark_margins(bench)
    rankings[VALIDATION_RANKING] = _validation_margins(per_step)
    study = original[original["model"] != BICUBIC].drop_duplicates(
        ["model", "scale"], keep="last"
    )
    study = study[study["psnr"].notna()]
    parts = []
    for name, by_scale in rankings.items():
        for scale, margins in by_scale.items():
            table = _ranked(margins)
            if table.empty:
                continue
            at = study[study["scale"] == scale]
            study_ranks = pd.Series(
                at["psnr"].rank(ascending=False, method="min").to_numpy(),
                index=at["model"].astype(str),
            )
            table["study_rank"] = table["model"].map(study_ranks).astype("Int64")
            table.insert(0, "scale", np.int64(scale))
            table.insert(0, "ranking", name)
            parts.append(table)
    if not parts:
        columns = {c: pd.Series(dtype=object) for c in RANKING_COLUMNS}
        columns.update(
            scale=pd.Series(dtype=np.int64),
            rank=pd.Series(dtype=np.int64),
            psnr_margin=pd.Series(dtype=np.float64),
            study_rank=pd.Series(dtype="Int64"),
        )
        return pd.DataFrame(columns)[RANKING_COLUMNS]
    return pd.concat(parts, ignore_index=True)[RANKING_COLUMNS]


def _spearman(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when undefined."""
    if len(ours) < 2:
        return float("nan")
    a = pd.Series(ours).rank().to_numpy(dtype=np.float64)
    b = pd.Series(theirs).rank().to_numpy(dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def ranking_agreement(ranking: pd.DataFrame) -> pd.DataFrame:
    """How alike our order and the study's are, per ranking and factor.

    Over the models that both rank (those with a ``study_rank``), Spearman's rank
    correlation between our margin order and the study's PSNR order, both ranked
    anew among those models: 1 is the same order, -1 the reverse.

    Args:
        ranking: :func:`margin_ranking` output.

    Returns:
        DataFrame with columns ``ranking, scale, n_models, spearman``, one row per
        ranking and factor of ``ranking``; ``spearman`` is NaN with fewer than two
        shared models or when either order is all ties.
    """
    rows = []
    groups = ranking.groupby(["ranking", "scale"], sort=False)
    for (name, scale), group in groups:
        shared = group[group["study_rank"].notna()]
        rows.append(
            {
                "ranking": name,
                "scale": int(scale),
                "n_models": len(shared),
                "spearman": _spearman(
                    -shared["psnr_margin"].to_numpy(dtype=np.float64),
                    shared["study_rank"].to_numpy(dtype=np.float64),
                ),
            }
        )
    table = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
    return table.astype({"scale": np.int64, "n_models": np.int64})
