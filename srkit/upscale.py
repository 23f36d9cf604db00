"""``srkit upscale``: apply a trained model to an image file or a folder of images.

Finds the model (``RUN/models/NAME/best.keras`` of a run, or an explicit
``.keras`` file), says where it comes from (its run's profile, training steps and
validation PSNR, read from the run's records), checks that nothing would be lost
(the output is never an input and replaces an existing file only when asked) and
that the image fits in memory, then predicts in tiles from the image's 8-bit (or
16-bit) samples, each tile converted to float32 alone. A PNG output is streamed:
each strip of tiles is written as it is predicted (``srkit.images.write_png_strips``),
so the result is never whole in memory; other formats are predicted into one
8-bit result that ``srkit.images.write_image`` writes. Both writes are atomic.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from srkit import data, images, models, tiles
from srkit.layout import (
    ProjectNotFound,
    RunFolder,
    find_project,
    latest_run_dir,
    model_files,
    read_records,
)
from srkit.vocab import FACTOR_OUTPUTS


class ModelNotFound(ValueError):
    """No trained model file where ``srkit upscale`` looked."""


SMOKE_PROFILE = "smoke"
# Bytes per input pixel besides the result: the decoded samples (RGBA at 16 bits
# at most) and some slack.
BYTES_PER_INPUT_PIXEL = 2 * 4 + 4
# Output formats written strip by strip, never whole in memory.
STREAMED_EXTENSIONS = (".png",)
# TensorFlow and Keras once imported (about 0.8 GB measured on a CPU machine) and
# one tile's activations.
BASE_BYTES = 1 * 2**30
# Largest tile core (input pixels) at x4: its activations are 16 times its area
# (0.5 GB measured for 256 px cores with dts_model, 0.2 GB for 128 px).
MAX_TILE_X4 = 128


def _step_of_model(name: str) -> str:
    """The number of the step that trains a zoo model (``08`` for R1), for messages.

    It is the number of the model's page in the registry
    (``MODEL_INFO[name]["page"]``), the form ``srkit run --only`` takes.
    """
    return models.MODEL_INFO[name]["page"].split("_", 1)[0]


def find_model_file(
    name: str,
    project: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    model_file: str | os.PathLike | None = None,
) -> Path:
    """Locate ``RUN/models/<name>/best.keras``.

    Args:
        name: the model's zoo name.
        project: project folder (searched for runs when run_dir is None).
        run_dir: the run folder (default: the latest run of the project).
        model_file: an explicit file, used as is (``name`` is then only a label).

    Raises:
        ValueError: ``name`` is not a zoo model (without ``model_file``).
        ModelNotFound: naming the folder searched and the command that trains it.
    """
    if model_file is not None:
        path = Path(model_file).expanduser()
        if not path.is_file():
            raise ModelNotFound(
                f"model file {str(path)!r} does not exist: pass --model-file the "
                f"path of a .keras file, or --run-dir a run that trained {name}"
            )
        return path
    if name not in models.MODEL_INFO:
        raise ValueError(
            f"unknown model {name!r}: the zoo has {', '.join(models.MODEL_INFO)} "
            "(`srkit models` lists them); for a model of your own pass "
            "--model-file PATH"
        )
    found_project = None
    with contextlib.suppress(ProjectNotFound):
        found_project = find_project(project)
    step = _step_of_model(name)
    if run_dir is None and found_project is not None:
        run_dir = latest_run_dir(found_project)
    if run_dir is None:
        raise ModelNotFound(
            "no run folder found: pass --run-dir DIR or --model-file PATH, or train "
            f"the model with `srkit run --only {step}`"
        )
    path = RunFolder(run_dir).best_model(name)
    if not path.is_file():
        raise ModelNotFound(
            f"no trained {name} in run folder {run_dir} (looked for {path}); train it "
            f"with `srkit run --only {step}` (with the same --profile/--run-dir) or "
            "pass --model-file PATH"
        )
    return path


def _best_validation_psnr(history: Path, output: str) -> float | None:
    """PSNR (dB) on validation of the kept (lowest val_loss) interval, or None."""
    with contextlib.suppress(OSError, ValueError, csv.Error):
        with open(history, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        rows = [row for row in rows if row.get("val_loss") not in (None, "")]
        if not rows:
            return None
        best = min(rows, key=lambda row: float(row["val_loss"]))
        for column in (f"val_{output}_psnr", "val_psnr"):
            if best.get(column) not in (None, ""):
                value = float(best[column])
                return value if math.isfinite(value) else None
    return None


def model_provenance(path: Path, output: str) -> dict:
    """Where a model file comes from, read from the records beside it.

    A model of a run sits at ``RUN/models/NAME/best.keras`` with ``settings.json``
    and ``history.csv``; ``RUN/run.json`` names the profile.

    Returns:
        dict with ``model_file``, ``run_dir``, ``profile``, ``training_steps`` and
        ``val_psnr`` (None where unknown), and ``text``: one line saying all that.
    """
    path = Path(path).absolute()
    folder = path.parent
    run_dir = folder.parent.parent if folder.parent.name == "models" else None
    files = model_files(folder)
    records = {}
    if run_dir is not None and RunFolder(run_dir).records.is_file():
        records = read_records(run_dir)
    else:
        run_dir = None
    settings = {}
    with contextlib.suppress(OSError, ValueError):
        settings = json.loads(files["settings"].read_text())
    info = {
        "model_file": str(path),
        "run_dir": None if run_dir is None else str(run_dir),
        "profile": records.get("profile"),
        "training_steps": settings.get("steps") if isinstance(settings, dict) else None,
        "val_psnr": _best_validation_psnr(files["history"], output),
    }
    facts = []
    if info["profile"]:
        facts.append(f"profile {info['profile']}")
    if info["training_steps"] is not None:
        facts.append(f"{info['training_steps']} training steps")
    if info["val_psnr"] is not None:
        facts.append(f"validation PSNR {info['val_psnr']:.2f} dB")
    if run_dir is None:
        text = f"model {path} (not in a run folder: its training is unknown)"
    else:
        text = f"model {path} from run {run_dir}" + (
            f" ({', '.join(facts)})" if facts else ""
        )
    info["text"] = text
    return info


def _check_upscale_paths(input_path, output_path, overwrite: bool) -> None:
    """Refuse an output that would destroy the input or an existing file."""
    source, target = Path(input_path).expanduser(), Path(output_path).expanduser()
    shown = repr(os.fspath(output_path))  # the user's own spelling
    if target.suffix.lower() not in images.IMAGE_EXTENSIONS:
        raise ValueError(
            f"cannot write {shown}: extension {target.suffix!r} is not an "
            f"image format; end OUT with one of {', '.join(images.IMAGE_EXTENSIONS)}"
        )
    # The same file through any spelling: ./a.png, a symlink, a hard link, or a
    # case-insensitive file system.
    same = source.resolve() == target.resolve()
    if not same and source.exists() and target.exists():
        with contextlib.suppress(OSError):
            same = os.path.samefile(source, target)
    if same:
        raise ValueError(
            f"output {shown} is the input image {os.fspath(input_path)!r}: writing it "
            "would destroy the input; choose another OUT file"
        )
    if target.is_dir():
        raise ValueError(
            f"output {shown} is a directory: give a file name, e.g. "
            f"{str(target / ('upscaled' + source.suffix))!r}"
        )
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise ValueError(
            f"output {shown} exists already: pass --overwrite to replace it, "
            "or choose another OUT file"
        )


def _pairs(input_path, output_path) -> list[tuple]:
    """(input, output) files: one pair, or one per image of an input folder."""
    source, target = Path(input_path).expanduser(), Path(output_path).expanduser()
    if not source.is_dir():
        return [(input_path, output_path)]  # the user's spelling, for messages
    if target.exists() and not target.is_dir():
        raise ValueError(
            f"input {os.fspath(input_path)!r} is a folder, so OUT must be a folder "
            f"too, but {os.fspath(output_path)!r} is a file"
        )
    files = sorted(
        path
        for path in source.iterdir()
        if path.suffix.lower() in images.IMAGE_EXTENSIONS and path.is_file()
    )
    if not files:
        raise ValueError(
            f"input folder {os.fspath(input_path)!r} holds no image files "
            f"({', '.join(images.IMAGE_EXTENSIONS)})"
        )
    if target.resolve() == source.resolve():
        raise ValueError(
            f"output folder {os.fspath(output_path)!r} is the input folder: its "
            "images would be replaced; choose another OUT folder"
        )
    return [(image, target / image.name) for image in files]


def check_image_memory(path: Path, scale: int, streamed: bool = False) -> None:
    """Refuse an image whose upscaling would not fit in the available memory.

    The size is read from the file's header (no decoding); formats whose header
    Pillow cannot read are not checked here. The 8-bit result counts unless it
    is ``streamed`` (a PNG output, written strip by strip).

    Raises:
        srkit.data.NotEnoughMemory: naming the file, its size and the estimate.
    """
    size = images.image_size(path)
    if size is None:
        return
    height, width = size
    pixels = height * width
    result = 0 if streamed else 3 * scale * scale
    needed = pixels * (BYTES_PER_INPUT_PIXEL + result) + BASE_BYTES
    data.check_memory(
        needed,
        f"upscaling {str(path)!r} ({width}x{height}) x{scale}",
        "use a smaller image (cut it into parts) or --scale 2",
    )


def _streamed(target) -> bool:
    """Whether an output file is written strip by strip (never whole in memory)."""
    return Path(target).suffix.lower() in STREAMED_EXTENSIONS


def _load(path: Path):
    """The Keras model in ``path``, or a ValueError naming the file and the fix."""
    if not zipfile.is_zipfile(path):  # Keras would call it "File not found"
        raise ValueError(
            f"cannot load model file {str(path)!r}: it is not a .keras file (not a "
            "zip archive); pass one written by srkit (RUN/models/NAME/best.keras)"
        )
    try:
        return models.load(path)
    except Exception as error:  # Keras raises many kinds for a file it cannot read
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(
            f"cannot load model file {str(path)!r}: {reason}; pass a .keras file "
            "written by srkit (RUN/models/NAME/best.keras)"
        ) from error


def upscale(
    input_path,
    output_path,
    model: str,
    project=None,
    run_dir=None,
    model_file=None,
    scale: int = 2,
    tile: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Upscale one image file, or every image of a folder, with a trained model.

    Nothing is lost: an output may not be an input (under any spelling, symlink
    or hard link), an existing output is replaced only with ``overwrite``, and
    each file is written atomically, so a failure leaves the old one intact. Every
    output is checked before the first is written. Each image is predicted in
    tiles from its stored samples (see ``srkit.tiles.predict_strips``): a PNG
    output is written strip by strip as it is predicted, other formats from one
    8-bit result. An image is refused beforehand when its estimated memory
    exceeds what is available.

    Args:
        input_path: an image file (read with ``srkit.images.read_pixels``), or a
            folder whose image files (not its subfolders) are all upscaled.
        output_path: the file to write (its extension picks the format), or for
            an input folder the output folder (created; files keep their names).
        model: zoo name of the model (its folder under ``RUN/models``).
        project, run_dir, model_file: where the model is (see ``find_model_file``).
        scale: 2 (output ``low_upsample``) or 4 (``high_upsample``).
        tile: tile core size in input pixels; None picks it from the image size
            (at most ``srkit.tiles.MAX_TILE`` at x2 and :data:`MAX_TILE_X4` at
            x4), 0 (``srkit.tiles.WHOLE``) predicts the whole image at once.
        overwrite: replace existing output files.

    Returns:
        dict with ``model`` (see :func:`model_provenance`), ``warnings`` (lines
        for the user, e.g. a model from a smoke run) and ``written``: one
        ``(output path, (height, width, 3))`` per image.

    Raises:
        ValueError: bad scale or tile, an output that is an input, an existing
            output without ``overwrite``, an unsupported output extension, an
            unreadable image, a model name outside the zoo, a model file Keras
            cannot load, or a model without the requested output.
        srkit.data.NotEnoughMemory: an image too large for the available memory.
        ModelNotFound: missing model file.
        OSError: an output cannot be written (the old file is kept).
    """
    if scale not in FACTOR_OUTPUTS:
        raise ValueError(f"scale must be 2 or 4, got {scale!r}")
    if tile is not None and (isinstance(tile, bool) or tile < 0):
        raise ValueError(f"tile must be a pixel count >= 0, got {tile!r}")
    pairs = _pairs(input_path, output_path)
    for source, target in pairs:
        _check_upscale_paths(source, target, overwrite)
    path = find_model_file(model, project, run_dir, model_file)
    output = FACTOR_OUTPUTS[scale]
    provenance = model_provenance(path, output)
    notes = []
    if provenance["profile"] == SMOKE_PROFILE:
        notes.append(
            f"the model comes from a smoke run ({provenance['run_dir']}): a few "
            "training steps to test the pipeline, so expect a poor picture; use a "
            "model of a quick or full run (--run-dir)"
        )
    # A bad first image fails before the model loads.
    check_image_memory(pairs[0][0], scale, _streamed(pairs[0][1]))
    first = images.read_pixels(pairs[0][0])
    network = _load(path)
    names = list(getattr(network, "output_names", None) or [])
    if names and output not in names:
        raise ValueError(
            f"model {model} ({path}) has no {output} output (x{scale}); it has "
            f"{', '.join(names)}: use --scale 2"
        )
    written = []
    for index, (source, target) in enumerate(pairs):
        if index:
            check_image_memory(source, scale, _streamed(target))
        image = first if index == 0 else images.read_pixels(source)
        first = None
        core = tile
        if tile is None:
            limit = MAX_TILE_X4 if scale == 4 else tiles.MAX_TILE
            core = tiles.choose_tile(*image.shape[:2], max_tile=limit)
        shape = (image.shape[0] * scale, image.shape[1] * scale, 3)
        if _streamed(target):
            strips = tiles.predict_strips(
                network, image, output=output, tile=core, dtype=np.uint8
            )
            images.write_png_strips(target, shape[0], strips, overwrite=overwrite)
        else:
            result = tiles.predict_full(
                network, image, output=output, tile=core, dtype=np.uint8
            )
            images.write_image(target, result, overwrite=overwrite)
            shape = result.shape
            del result
        del image
        written.append((target, tuple(shape)))
    return {"model": provenance, "warnings": notes, "written": written}
