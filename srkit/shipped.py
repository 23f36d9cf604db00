"""The model shipped inside the package, so ``srkit upscale`` works on a fresh install.

``srkit/pretrained/NAME.keras`` is a model trained by this repository's own
``srkit run`` and re-saved without its optimizer state (at most
:data:`MAX_BYTES`); ``NAME.json`` beside it is its record, written by
``scripts/ship_model.py RUN_DIR NAME``::

    {
      "kind": "srkit shipped model", "record_version": 1,
      "model": "dts_model", "parameters": 160614, "outputs": [...],
      "file": "dts_model.keras", "bytes": 651234, "sha256": "...",
      "shipped": "2026-12-05T07:00:00+00:00",
      "run": {"git_commit": "c7f5ed4620d0", "profile": "quick", "overrides": [...],
              "data_option": ..., "started": ..., "finished": ..., "versions": {}},
      "data": {"source": "folder:...", "n_photos": 216, "n_train": 179,
               "n_val": 37, ...},
      "training": {...},              # the model folder's settings.json
      "validation": {"step": "07_depth_to_space", "n_images": 37,
                     "scores": [{"scale": 2, "model": {"psnr": ...},
                                 "bicubic": {"psnr": ...}}, ...]},
      "benchmarks": [{"set": "Set5", "scale": 2, "n_images": 5, "psnr": ...,
                      "ssim": ..., "bicubic_psnr": ..., "bicubic_ssim": ...,
                      "psnr_margin": ..., "ssim_margin": ...}, ...]   # or null
    }

This module only finds and describes it (standard library only, so ``srkit
--help`` can quote the record's scores without loading Keras); the script writes it.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

#: Where the shipped model and its record live (package data).
SHIPPED_DIR = Path(__file__).parent / "pretrained"
#: The largest model file that ships (bytes).
MAX_BYTES = 10 * 2**20
#: What ``--model`` takes to ask for the shipped model by name.
SHIPPED = "shipped"
#: ``kind`` of a record, so a stray JSON file beside a model is not read as one.
KIND = "srkit shipped model"
RECORD_VERSION = 1


class NoShippedModel(ValueError):
    """This installation has no shipped model (a checkout without one, a test)."""


def record_path(model_file: str | os.PathLike) -> Path:
    """``NAME.json`` beside ``NAME.keras``: where a shipped model's record lives."""
    return Path(model_file).with_suffix(".json")


def read_record(model_file: str | os.PathLike) -> dict | None:
    """The record beside a model file, or None when there is none (or not one of
    ours): any ``.keras`` file with its record beside it is described by it."""
    try:
        record = json.loads(record_path(model_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("kind") != KIND:
        return None
    return record


def find(folder: str | os.PathLike | None = None) -> Path:
    """The shipped model file: the first ``*.keras`` with its record, by name.

    Args:
        folder: where to look (default: :data:`SHIPPED_DIR`, read at call time).

    Raises:
        NoShippedModel: none there, with the ways to get a model.
    """
    folder = Path(SHIPPED_DIR if folder is None else folder)
    found = sorted(folder.glob("*.keras")) if folder.is_dir() else []
    for path in found:
        if read_record(path) is not None:
            return path
    raise NoShippedModel(
        f"this srkit has no shipped model ({folder} holds no .keras file with its "
        "record): train one with `srkit run --profile quick` and pass --model NAME, "
        "or pass --model-file PATH (a maintainer ships one with "
        "scripts/ship_model.py RUN_DIR NAME)"
    )


def _signed(value: float) -> str:
    return f"{value:+.2f} dB"


def _margins(record: dict) -> str:
    """``Set5 x2 +2.47 dB, x4 +1.61 dB PSNR over bicubic`` (the first benchmark set,
    Set5 when present), else the validation margins."""
    rows = [row for row in record.get("benchmarks") or [] if "psnr_margin" in row]
    if rows:
        names = [row["set"] for row in rows]
        chosen = "Set5" if "Set5" in names else names[0]
        parts = [
            f"x{row['scale']} {_signed(row['psnr_margin'])}"
            for row in sorted(rows, key=lambda row: row["scale"])
            if row["set"] == chosen
        ]
        return f"{chosen} {', '.join(parts)} PSNR over bicubic"
    scores = (record.get("validation") or {}).get("scores") or []
    parts = [
        f"x{score['scale']} "
        + _signed(score["model"]["psnr"] - score["bicubic"]["psnr"])
        for score in scores
    ]
    if not parts:
        return "no scores recorded"
    return f"validation {', '.join(parts)} PSNR over bicubic"


def describe(
    record: dict, model_file: str | os.PathLike, prefix: str = "the shipped model "
) -> str:
    """One line: the shipped model, its run, its margins and where its record is.

    ``the shipped model dts_model (trained by srkit run --profile quick at commit
    c7f5ed4620d0; Set5 x2 +2.47 dB, x4 +1.61 dB PSNR over bicubic; see
    .../srkit/pretrained/dts_model.json)``
    """
    run = record.get("run") or {}
    origin = f"trained by srkit run --profile {run.get('profile') or '?'}"
    if run.get("git_commit"):
        origin += f" at commit {run['git_commit']}"
    return (
        f"{prefix}{record.get('model') or Path(model_file).stem} "
        f"({origin}; {_margins(record)}; see {record_path(model_file)})"
    )


def benchmark_table(record: dict) -> list[str]:
    """Lines ``Set5 x2: 35.12 dB (bicubic 33.66, +1.46)``, one per set and scale."""
    lines = []
    for row in record.get("benchmarks") or []:
        lines.append(
            f"{row['set']} x{row['scale']}: {row['psnr']:.2f} dB PSNR (bicubic "
            f"{row['bicubic_psnr']:.2f}, {_signed(row['psnr_margin'])})"
        )
    return lines


def _fill(text: str, width: int = 79) -> str:
    """Wrapped at spaces only: paths and options stay whole."""
    return textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False)


def help_text(width: int = 79) -> str:
    """The ``srkit upscale --help`` paragraph about the shipped model, its numbers
    read from its record now, wrapped to ``width``; never raises (help must print).
    """
    try:
        path = find()
        record = read_record(path) or {}
        line = describe(record, path, prefix="")
        text = _fill(
            "Without --model or --model-file (or with --model shipped), srkit "
            f"upscale uses the model shipped inside srkit: {line}.",
            width,
        )
        table = benchmark_table(record)
        if table:
            text += "\nIts benchmark scores (Y-channel PSNR):\n  " + "\n  ".join(table)
        return text
    except NoShippedModel:
        return _fill(
            "This srkit has no shipped model: pass --model NAME (a model of a run) "
            "or --model-file PATH.",
            width,
        )
    except Exception as error:  # a broken record must not break --help
        reason = " ".join(str(error).split()) or type(error).__name__
        return _fill(f"The shipped model's record is unreadable: {reason}.")
