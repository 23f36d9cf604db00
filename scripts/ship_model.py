"""Ship a model of a run inside the package: ``srkit/pretrained/NAME.keras`` and
its record ``NAME.json`` (see ``srkit/shipped.py`` for the record's layout).

Usage (from the repository root, after ``srkit run`` has ended)::

    .venv/bin/python scripts/ship_model.py runs/quick dts_model
    .venv/bin/python scripts/ship_model.py RUN NAME --out /tmp/try --no-benchmarks

The model is ``RUN/models/NAME/best.keras``, loaded uncompiled and saved again, so
the shipped file holds no optimizer state; a file over
``srkit.shipped.MAX_BYTES`` is refused. The record holds the model, its parameters,
the run's git commit, profile, data and training settings, its validation scores
beside bicubic (``RUN/steps/<page>/metrics.json``), its benchmark scores beside
bicubic per set and scale (the benchmark step's record; refused when there are
none, unless ``--no-benchmarks``), the file's size and SHA-256 and the date.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

from srkit import shipped
from srkit.atomic import atomic_path, write_json
from srkit.layout import RunFolder, model_files, read_records, shown_path
from srkit.vocab import BICUBIC

# The run's facts kept in the record (from run.json).
RUN_KEYS = (
    "git_commit",
    "srkit_hash",
    "profile",
    "overrides",
    "data_option",
    "status",
    "started",
    "finished",
    "versions",
    "hardware",
)


class ShipError(ValueError):
    """The run cannot ship this model; the message says why and what to do."""


def _validation(run_dir: Path, name: str) -> dict:
    """The model's validation scores beside bicubic, from its step's record."""
    from srkit import models, records

    page = models.MODEL_INFO[name]["page"]
    path = RunFolder(run_dir).step_metrics(page)
    document = records.read_metrics(path)  # versions 1 and 2; scale is the factor
    for record in document["models"]:
        if record["model"] != name:
            continue
        bicubic = {score["scale"]: score for score in record["bicubic"]}
        scores = [
            {
                "scale": int(score["scale"]),
                "model": {k: v for k, v in score.items() if k != "scale"},
                "bicubic": {
                    k: v
                    for k, v in bicubic.get(score["scale"], {}).items()
                    if k != "scale"
                },
            }
            for score in record["metrics"]
        ]
        return {"step": page, "n_images": record.get("n_images"), "scores": scores}
    raise ShipError(f"{path} has no scores of {name}: rerun its step ({page})")


def _benchmarks(run_dir: Path, name: str) -> list[dict]:
    """The model's benchmark means beside bicubic, per set and scale."""
    from srkit import records

    table = records.read_benchmarks(run_dir)
    rows = []
    for row in table[table["model"] == name].to_dict("records"):
        same = table[
            (table["model"] == BICUBIC)
            & (table["set"] == row["set"])
            & (table["scale"] == row["scale"])
        ]
        entry = {
            "set": str(row["set"]),
            "scale": int(row["scale"]),
            "n_images": int(row["n_images"]),
        }
        for key in ("psnr", "ssim", "psnr_margin", "ssim_margin"):
            entry[key] = float(row[key])
        for key in ("psnr", "ssim"):
            margin = entry[f"{key}_margin"]
            entry[f"bicubic_{key}"] = (
                float(same[key].iloc[0]) if len(same) else entry[key] - margin
            )
        rows.append(entry)
    return rows


def _data(records: dict, settings: dict) -> dict:
    """The training data: the run's data entry of the model's cache key (folders
    shown as ``.../data/train``, never a machine's layout)."""
    found = {
        "source": settings.get("data_source"),
        "n_train": settings.get("n_train"),
        "n_val": settings.get("n_val"),
    }
    for entry in records.get("data") or []:
        if entry.get("key") == settings.get("data_key"):
            found = {k: v for k, v in entry.items() if k != "cache_path"}
    if isinstance(found.get("source"), str):
        found["source"] = shown_path(found["source"], None)
    return found


def _run(records: dict) -> dict:
    """The run's facts, its folders shown without a machine's layout."""
    run = {key: records.get(key) for key in RUN_KEYS}
    if isinstance(run["data_option"], str):
        run["data_option"] = shown_path(run["data_option"], None)
    run["overrides"] = [
        text.split("=", 1)[0] + "=" + shown_path(text.split("=", 1)[1], None)
        if isinstance(text, str) and "=" in text
        else text
        for text in run["overrides"] or []
    ]
    return run


def _training(settings: dict) -> dict:
    """The model's settings.json, its data folder shown without a machine's layout."""
    training = {k: v for k, v in settings.items() if k != "versions"}
    if isinstance(training.get("data_source"), str):
        training["data_source"] = shown_path(training["data_source"], None)
    return training


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_run(run_dir: Path, name: str) -> tuple[dict, dict]:
    """The run's records and the model's settings; refusals name the fix."""
    from srkit import models

    if name not in models.MODEL_INFO:
        raise ShipError(
            f"unknown model {name!r}: the zoo has {', '.join(models.MODEL_INFO)}"
        )
    folder = RunFolder(run_dir)
    if not folder.records.is_file():
        raise ShipError(
            f"{run_dir} is not a run folder of srkit run (no {folder.records.name}): "
            "ship a model trained by `srkit run`"
        )
    if not folder.best_model(name).is_file():
        raise ShipError(f"{run_dir} has no trained {name} ({folder.best_model(name)})")
    records = read_records(run_dir)
    files = model_files(folder.model(name))
    try:
        settings = json.loads(files["settings"].read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ShipError(f"cannot read {files['settings']}: {error}") from error
    return records, settings


def ship(
    run_dir, name: str, out=None, benchmarks: bool = True, now=None
) -> tuple[Path, Path]:
    """Write ``OUT/NAME.keras`` (no optimizer state) and its record ``OUT/NAME.json``.

    Args:
        run_dir: the run folder that trained the model.
        name: the model's zoo name.
        out: the folder written (default: ``srkit.shipped.SHIPPED_DIR``).
        benchmarks: refuse a run without benchmark scores of the model.
        now: the date recorded (default: now, UTC).

    Returns:
        (the model file, its record).

    Raises:
        ShipError: not a run, no such model, no benchmark scores, a file over
            ``srkit.shipped.MAX_BYTES``.
        ValueError: an invalid metrics record.
    """
    from srkit import models

    run_dir = Path(run_dir)
    records, settings = _check_run(run_dir, name)
    validation = _validation(run_dir, name)
    scores = _benchmarks(run_dir, name)
    if benchmarks and not scores:
        raise ShipError(
            f"run {run_dir} has no benchmark scores of {name} (the benchmark step's "
            "record, RUN/steps/12_benchmarks/metrics.json, is missing or holds none): "
            "run `srkit run -p benchmarks=folder:PATH --only 12` with the same "
            "--profile/--run-dir, or pass --no-benchmarks"
        )
    out = Path(shipped.SHIPPED_DIR if out is None else out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.keras"
    network = models.load(RunFolder(run_dir).best_model(name))  # uncompiled
    with atomic_path(target) as temporary:
        network.save(temporary)
        size = temporary.stat().st_size
        if size > shipped.MAX_BYTES:
            raise ShipError(
                f"{name} takes {size / 2**20:.1f} MiB without its optimizer, over "
                f"the {shipped.MAX_BYTES / 2**20:.0f} MiB a shipped model may take: "
                "ship a smaller model"
            )
    record = {
        "kind": shipped.KIND,
        "record_version": shipped.RECORD_VERSION,
        "model": name,
        "parameters": int(network.count_params()),
        "outputs": settings.get("outputs"),
        "file": target.name,
        "bytes": target.stat().st_size,
        "sha256": _sha256(target),
        "shipped": (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(
            timespec="seconds"
        ),
        "run": _run(records),
        "data": _data(records, settings),
        "training": _training(settings),
        "validation": validation,
        "benchmarks": scores or None,
    }
    return target, write_json(shipped.record_path(target), record)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("model", metavar="MODEL", help="zoo name, e.g. dts_model")
    parser.add_argument(
        "--out", metavar="DIR", help="folder to write (default: srkit/pretrained)"
    )
    parser.add_argument(
        "--no-benchmarks",
        action="store_true",
        help="ship a model of a run without benchmark scores (validation only)",
    )
    args = parser.parse_args(argv)
    try:
        target, record = ship(
            args.run_dir, args.model, args.out, benchmarks=not args.no_benchmarks
        )
    except ValueError as error:
        print(f"ship_model: error: {error}", file=sys.stderr)
        return 1
    saved = shipped.read_record(target)
    if saved["run"]["status"] != "ok":
        print(
            f"ship_model: warning: the run's status is {saved['run']['status']!r}, "
            "not 'ok' (recorded as such)",
            file=sys.stderr,
        )
    print(f"wrote {target} ({target.stat().st_size / 2**20:.2f} MiB) and {record}")
    print(shipped.describe(saved, target))
    for line in shipped.benchmark_table(saved):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
