"""``srkit upscale``: apply a trained model to image files or folders of images.

Finds the model (``RUN/models/NAME/best.keras`` of a run, an explicit ``.keras``
file, or, when no model is named, the one shipped inside the package, see
:mod:`srkit.shipped`), says where it comes from (its run's profile, training steps
and validation PSNR read from the run's records, or the shipped model's record),
and plans the work before doing any
(:func:`plan_jobs`): one file, or folders and several files written into an output
folder as ``cp`` does, where no output may be an input or the output of two
inputs. A batch goes on past a bad image, leaves hidden files and srkit's own
temporary files alone and skips outputs that exist already (every write is
atomic, so an existing output is complete and a rerun resumes). Each image is
checked against the available memory, then predicted in tiles from its samples,
each tile converted to float32 alone; a prediction with NaN or infinite values is
an error naming the model. An 8-bit PNG output without alpha is streamed: each
strip of tiles is written as it is predicted (``srkit.images.write_png_strips``,
in a thread that compresses one strip while the model predicts the next);
other outputs are predicted whole: 8-bit, or 16-bit for a 16-bit input written as
PNG or TIFF, with the input's alpha upscaled bicubically beside them. The input's
ICC profile and EXIF are copied into PNG, JPEG, WebP and TIFF outputs; a BMP
cannot hold them, which a note says once.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import queue
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srkit import data, images, models, shipped, tiles
from srkit.atomic import TMP_MARKER
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
# TensorFlow and Keras once imported (about 0.8 GB measured on a CPU machine),
# one prediction call's activations (srkit.tiles.TILE_BYTES) and the strips
# waiting for the PNG writer.
BASE_BYTES = 2**30 + tiles.TILE_BYTES
# Strips of a streamed PNG predicted ahead of the one being written: prediction
# and compression run at once, and memory holds at most this many more strips.
STRIPS_AHEAD = 1


def _step_of_model(name: str) -> str:
    """The number of the step that trains a zoo model (``08`` for R1), for messages.

    It is the number of the model's page in the registry
    (``MODEL_INFO[name]["page"]``), the form ``srkit run --only`` takes.
    """
    return models.MODEL_INFO[name]["page"].split("_", 1)[0]


def find_model_file(
    name: str | None,
    project: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    model_file: str | os.PathLike | None = None,
) -> Path:
    """Locate the model: ``model_file`` first, else ``RUN/models/<name>/best.keras``
    of ``run_dir`` or the project's latest run, else (no ``name``, or
    ``srkit.shipped.SHIPPED``) the model shipped inside the package.

    The shipped model is the default whenever no model is named, inside a
    project too: the same command gives the same picture everywhere, and a run's
    model is asked for by name (``--model NAME``).

    Args:
        name: the model's zoo name; None or ``"shipped"`` for the shipped model.
        project: project folder (searched for runs when run_dir is None).
        run_dir: the run folder (default: the latest run of the project).
        model_file: an explicit file, used as is (``name`` is then only a label).

    Raises:
        ValueError: ``name`` is not a zoo model (without ``model_file``), or a
            run folder without a model name.
        ModelNotFound: naming the folder searched and the command that trains it.
        srkit.shipped.NoShippedModel: no model named and none shipped.
    """
    if model_file is not None:
        path = Path(model_file).expanduser()
        if not path.is_file():
            raise ModelNotFound(
                f"model file {str(path)!r} does not exist: pass --model-file the "
                f"path of a .keras file, or --run-dir a run that trained {name}"
            )
        return path
    if name in (None, shipped.SHIPPED):
        if run_dir is not None:
            raise ValueError(
                f"--run-dir {run_dir} needs --model NAME, the model of that run to "
                "use (`srkit models` lists the zoo)"
            )
        return shipped.find()
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
            "no run folder found: pass --run-dir DIR or --model-file PATH, train "
            f"the model with `srkit run --only {step}`, or leave out --model to use "
            "the model shipped inside srkit"
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
    record = shipped.read_record(path)
    if record is not None:  # the shipped model (or a copy with its record)
        run = record.get("run") or {}
        return {
            "model_file": str(path),
            "run_dir": None,
            "profile": run.get("profile"),
            "training_steps": (record.get("training") or {}).get("steps"),
            "val_psnr": None,
            "shipped": record,
            "text": shipped.describe(record, path),
        }
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


def check_image_memory(
    path: Path, scale: int, streamed: bool = False, bytes_per_value: int = 1
) -> None:
    """Refuse an image whose upscaling would not fit in the available memory.

    The size is read from the file's header (no decoding); formats whose header
    Pillow cannot read are not checked here (a float TIFF's header is read by
    ``srkit.images.image_size``). The result (``bytes_per_value`` per sample: 1
    for 8 bits, more for a 16-bit result made from float32, or with alpha)
    counts unless it is ``streamed`` (a PNG output, written strip by strip).

    Raises:
        srkit.data.NotEnoughMemory: naming the file, its size and the estimate.
    """
    size = images.image_size(path)
    if size is None:
        return
    height, width = size
    pixels = height * width
    result = 0 if streamed else 3 * scale * scale * bytes_per_value
    needed = pixels * (BYTES_PER_INPUT_PIXEL + result) + BASE_BYTES
    data.check_memory(
        needed,
        f"upscaling {str(path)!r} ({width}x{height}) x{scale}",
        "use a smaller image (cut it into parts) or --scale 2",
    )


def _streamed(target) -> bool:
    """Whether an output file is written strip by strip (never whole in memory)."""
    return Path(target).suffix.lower() in STREAMED_EXTENSIONS


def load_model(path: Path):
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


# ------------------------------------------------------------------ the plan

# What srkit reads as an image, in a folder and given alone alike (OpenCV decodes
# GIF; its first frame is used). Outputs are written in srkit.images' formats.
READ_EXTENSIONS = (*images.IMAGE_EXTENSIONS, ".gif")
# The longest side each format can hold (WebP's 14-bit sizes, JPEG's 16-bit).
MAX_SIDE = {".webp": 16383, ".jpg": 65535, ".jpeg": 65535}
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
# atomic_path's temporary name adds ".", ".tmp-", 12 hex digits and the suffix.
TEMPORARY_EXTRA = 1 + len(TMP_MARKER) + 12


class BadPrediction(ValueError):
    """The model predicted NaN or infinite values: the model itself is broken."""


@dataclass
class Job:
    """One image to upscale: where it is read and where its result goes."""

    source: Path
    target: Path
    shown: str = ""  # the output as the user spelt it, for messages

    def __post_init__(self):
        self.shown = self.shown or str(self.target)


@dataclass
class Plan:
    """What ``srkit upscale`` will do, checked before any work.

    Attributes:
        jobs: the images, in order.
        batch: several inputs or a folder: a bad image is reported and skipped,
            an existing output is skipped (resumed), a summary ends the run.
        ignored: files of the input folders that are not images, hidden files
            (``._*`` of macOS, ``.*``) and srkit's own temporary leftovers.
    """

    jobs: list[Job]
    batch: bool
    ignored: int = 0


def _hidden(name: str) -> bool:
    """A hidden file or folder, macOS' ``._*`` and srkit's temporary files included."""
    return name.startswith(".") or TMP_MARKER in name


def _output_name(source: Path) -> str:
    """The output file name of an input in a folder: its own, or .png where srkit
    cannot write the input's format."""
    if source.suffix.lower() in images.IMAGE_EXTENSIONS:
        return source.name
    return source.stem + ".png"


def _folder_images(folder: Path, recursive: bool) -> tuple[list[Path], int]:
    """The image files of a folder (sorted; subfolders with ``recursive``), and the
    count of other files left alone (hidden, temporary, not an image)."""
    found, ignored = [], 0
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if not _hidden(name))
        if not recursive:
            folders[:] = []
        for name in sorted(names):
            path = Path(root) / name
            if _hidden(name) or path.suffix.lower() not in READ_EXTENSIONS:
                ignored += 1
            elif path.is_file():
                found.append(path)
    return found, ignored


def _check_readable_extension(source: Path) -> None:
    """Refuse a single input file in a format srkit does not read."""
    if source.suffix.lower() not in READ_EXTENSIONS:
        raise ValueError(
            f"cannot read {str(source)!r}: {source.suffix or 'no extension'!r} is "
            f"not an image format srkit reads ({', '.join(READ_EXTENSIONS)}); "
            "convert it to PNG first"
        )


def _check_target(job: Job, scale: int) -> None:
    """Refuse an output name or size its format or file system cannot hold."""
    target, suffix = job.target, job.target.suffix.lower()
    if suffix not in images.IMAGE_EXTENSIONS:
        raise ValueError(
            f"cannot write {str(target)!r}: extension {target.suffix!r} is not an "
            f"image format; end OUT with one of {', '.join(images.IMAGE_EXTENSIONS)}"
        )
    longest = NAME_MAX - TEMPORARY_EXTRA - len(os.fsencode(target.suffix))
    if len(os.fsencode(target.name)) > longest:
        raise ValueError(
            f"cannot write {str(target)!r}: its name has "
            f"{len(os.fsencode(target.name))} bytes, srkit can write at most "
            f"{longest} (with its temporary name); choose a shorter OUT name"
        )
    size = images.image_size(job.source) if suffix in MAX_SIDE else None
    if size is not None and max(size) * scale > MAX_SIDE[suffix]:
        raise ValueError(
            f"cannot write {str(target)!r}: the x{scale} result of "
            f"{str(job.source)!r} ({size[1] * scale}x{size[0] * scale}) exceeds "
            f"the {MAX_SIDE[suffix]} px {suffix} limit; write a .png or .tif"
        )


def _stat_key(path: Path):
    with contextlib.suppress(OSError):
        info = path.stat()
        return info.st_dev, info.st_ino
    return None


def _looks_like_a_result(source: Path, target: Path) -> bool:
    """Whether an existing image ``target`` is ``source`` upscaled x2 or x4 (an
    earlier result), rather than another photo (e.g. a glob's second file)."""
    size, before = images.image_size(target), images.image_size(source)
    if size is None or before is None:
        return True  # not an image: nothing of value is lost
    return any(
        size in ((before[0] * s, before[1] * s), (before[1] * s, before[0] * s))
        for s in FACTOR_OUTPUTS
    )


def _check_single(job: Job, overwrite: bool) -> None:
    """Refuse one output that would destroy its input or another photo."""
    source, target, shown = job.source, job.target, job.shown
    same = source.resolve() == target.resolve()
    if not same and target.exists():
        same = _stat_key(source) == _stat_key(target)
    if same:
        raise ValueError(
            f"output {shown!r} is the input image {str(source)!r}: writing it "
            "would destroy the input; choose another OUT file"
        )
    if not (target.exists() or target.is_symlink()):
        return
    if not _looks_like_a_result(source, target):
        raise ValueError(
            f"output {shown!r} exists and is not an upscaled "
            f"{source.name!r}: it may be another photo (did a pattern like *.jpg "
            "give several files? then end the command with an output folder: "
            "srkit upscale IN... OUTDIR); delete it first or choose another OUT"
        )
    if not overwrite:
        raise ValueError(
            f"output {shown!r} exists already: pass --overwrite to replace it, "
            "or choose another OUT file"
        )


def _batch_jobs(sources: list[Path], out: Path, recursive: bool) -> Plan:
    """The jobs of several inputs or folders written into the folder ``out``."""
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"{len(sources)} input(s) with folders or several files need an output "
            f"folder as the last argument, but {str(out)!r} is a file"
        )
    jobs, ignored = [], 0
    for source in sources:
        if not source.is_dir():
            _check_readable_extension(source)
            jobs.append(Job(source, out / _output_name(source)))
            continue
        if out.resolve() == source.resolve():
            raise ValueError(
                f"output folder {str(out)!r} is the input folder: its images would "
                "be replaced; choose another OUT folder"
            )
        if recursive and source.resolve() in out.resolve().parents:
            raise ValueError(
                f"output folder {str(out)!r} is inside the input folder "
                f"{str(source)!r}: with --recursive a later run would read the "
                "results as inputs; choose an OUT folder outside it"
            )
        files, skipped = _folder_images(source, recursive)
        ignored += skipped
        if not files and len(sources) == 1:
            raise ValueError(
                f"input folder {str(source)!r} holds no image files "
                f"({', '.join(READ_EXTENSIONS)})"
            )
        for path in files:
            relative = path.relative_to(source).parent / _output_name(path)
            jobs.append(Job(path, out / relative))
    return Plan(jobs, batch=True, ignored=ignored)


def plan_jobs(
    inputs, output, overwrite: bool = False, recursive: bool = False, scale: int = 2
) -> Plan:
    """Check the paths of ``srkit upscale IN... OUT`` before any work.

    One input file: OUT is the file to write (or an existing folder to write it
    into, under its own name). Folders or several inputs: OUT is a folder (made
    when missing), as with ``cp``; a folder's images keep their names (their
    relative paths with ``recursive``). Refused, naming the paths: an output that
    is an input (any spelling, link or hard link), two inputs with one output, a
    single OUT that is another photo (not an earlier result of this input), an
    existing single OUT without ``overwrite``, a name or size the output format
    cannot hold.
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    sources = [Path(path).expanduser() for path in inputs]
    out = Path(output).expanduser()
    if not sources:
        raise ValueError("no input given: srkit upscale IN... OUT")
    if len(sources) == 1 and not sources[0].is_dir():
        source = sources[0]
        if source.exists():
            _check_readable_extension(source)
        if out.is_dir():
            job = Job(source, out / _output_name(source))
        else:
            job = Job(source, out, os.fspath(output))
        _check_target(job, scale)
        _check_single(job, overwrite)
        return Plan([job], batch=False)
    plan = _batch_jobs(sources, out, recursive)
    inputs_by_key = {_stat_key(job.source): job.source for job in plan.jobs}
    inputs_by_path = {job.source.resolve(): job.source for job in plan.jobs}
    seen: dict[Path, Path] = {}
    for job in plan.jobs:
        resolved = job.target.resolve()
        other = inputs_by_path.get(resolved) or (
            inputs_by_key.get(_stat_key(job.target)) if job.target.exists() else None
        )
        if other is not None:
            raise ValueError(
                f"output {str(job.target)!r} is the input image {str(other)!r}: "
                "writing it would destroy the input; choose another OUT folder"
            )
        if resolved in seen:
            raise ValueError(
                f"inputs {str(seen[resolved])!r} and {str(job.source)!r} would both "
                f"be written to {str(job.target)!r}: rename one, or upscale them "
                "into different folders"
            )
        seen[resolved] = job.source
    return plan


# ------------------------------------------------------------------- the work


class _FiniteOutput:
    """A model of one output that refuses NaN or infinite predictions.

    Called as Keras models are (``srkit.tiles.predict_batch``), through the
    network's compiled ``srkit.tiles.model_function``; a non-finite value would
    otherwise be clipped to black and written as a picture. Other attributes are
    the network's, so ``srkit.tiles`` reads its layers (receptive field, memory).
    """

    def __init__(self, network, output: str, label: str):
        import keras

        names = tiles.output_names(network)
        if names != [output] and getattr(network, "outputs", None):
            tensor = network.outputs[names.index(output)]
            network = keras.Model(network.input, tensor, name=network.name)
        self.network, self.output_names, self.label = network, [output], label
        self.name = network.name
        self.source = None  # the image being predicted, for the message

    def __getattr__(self, name):
        if name == "network":  # not set yet: no network to ask
            raise AttributeError(name)
        return getattr(self.network, name)

    def __call__(self, batch, training=False):
        import keras

        outputs = tiles.model_function(self.network)(batch)
        if isinstance(outputs, list | tuple):
            outputs = outputs[0]
        if isinstance(outputs, dict):
            outputs = next(iter(outputs.values()))
        values = np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32)
        if not np.isfinite(values).all():
            raise BadPrediction(
                f"model {self.label} predicted NaN or infinite values for "
                f"{str(self.source)!r}: the model is broken (e.g. its training "
                "diverged); use another model (--run-dir or --model-file)"
            )
        return values


def _check_output(network, output: str, scale: int, model: str, path: Path) -> None:
    """Refuse a model without the output of the requested scale."""
    names = list(getattr(network, "output_names", None) or [])
    if names and output not in names:
        other = [s for s, name in FACTOR_OUTPUTS.items() if name in names]
        advice = f"use --scale {other[0]}" if other else "pass an srkit model"
        raise ValueError(
            f"model {model} ({path}) has no {output} output (x{scale}); it has "
            f"{', '.join(names)}: {advice}"
        )


# The metadata srkit copies, as a note names it.
METADATA_NAMES = {"icc": "the ICC profile", "exif": "the EXIF"}
# Formats that keep an alpha channel, and those that keep 16-bit samples.
ALPHA_EXTENSIONS = (".png", ".webp", ".tif", ".tiff")
DEEP_EXTENSIONS = (".png", ".tif", ".tiff")


def _read_single_frame(source: Path):
    """The RGB samples and alpha (or None) of an image of one frame."""
    frames = images.frame_count(source)
    if frames > 1:
        raise ValueError(
            f"cannot upscale {str(source)!r}: it has {frames} frames (an animation "
            "or a multi-page file) and srkit upscales single pictures; save the "
            "frame you want as a PNG first"
        )
    return images.read_pixels(source, alpha=True)


def _flatten_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGB composited over white (what a viewer shows), in place, band by band."""
    top_value = float(np.iinfo(rgb.dtype).max)
    for top in range(0, rgb.shape[0], 256):
        band = rgb[top : top + 256].astype(np.float32)
        weight = alpha[top : top + 256, :, None].astype(np.float32) / top_value
        band = band * weight + top_value * (1.0 - weight)
        rgb[top : top + 256] = np.rint(band)
    return rgb


def _upscale_one(predictor, job: Job, scale: int, tile, overwrite: bool, read=None):
    """Predict one image and write it atomically.

    Returns:
        (the result's shape, notes for the user: (kind, text) pairs, kind
        ``alpha`` or ``metadata``).
    """
    check_image_memory(job.source, scale, _streamed(job.target))
    image, alpha = read if read is not None else _read_single_frame(job.source)
    suffix = job.target.suffix.lower()
    metadata = images.read_metadata(job.source)  # ICC and EXIF, copied as they fit
    notes = []
    held = [name for name in ("icc", "exif") if metadata.get(name)]
    if held and suffix not in images.METADATA_EXTENSIONS:  # a BMP
        what = " and ".join(METADATA_NAMES[name] for name in held)
        notes.append(
            (
                "metadata",
                f"a {suffix} file cannot hold an ICC profile or EXIF: {what} of "
                f"{str(job.source)!r} not copied into {str(job.target)!r} (write "
                ".png, .jpg, .webp or .tif to keep them)",
            )
        )
    deep = image.dtype == np.uint16 and suffix in DEEP_EXTENSIONS
    output = predictor.output_names[0]
    predictor.source = job.source
    shape = (image.shape[0] * scale, image.shape[1] * scale, 3)
    if _streamed(job.target) and alpha is None and not deep:
        strips = tiles.predict_strips(
            predictor, image, output=output, tile=tile, dtype=np.uint8
        )
        _write_while_predicting(
            lambda ahead: images.write_png_strips(
                job.target, shape[0], ahead, overwrite=overwrite, metadata=metadata
            ),
            strips,
        )
        return tuple(shape), notes
    if _streamed(job.target) or deep or alpha is not None:  # a larger result
        extra = (6 if deep else 1) + (0 if alpha is None else 2)
        check_image_memory(job.source, scale, bytes_per_value=extra)
    dtype = np.float32 if deep else np.uint8
    result = tiles.predict_full(predictor, image, output=output, tile=tile, dtype=dtype)
    if deep:
        result = images.to_uint16(result)
    if alpha is not None:
        wide = images.upscale_alpha(alpha, scale)
        if deep or wide.dtype != result.dtype:
            wide = images.to_uint16(images.pixels_to_float(wide))
            wide = wide if deep else (wide // 257).astype(np.uint8)
        if suffix in ALPHA_EXTENSIONS:
            result = np.concatenate([result, wide[..., None]], axis=2)
        else:
            result = _flatten_on_white(result, wide)
            notes.append(
                (
                    "alpha",
                    f"{str(job.source)!r} has transparency, which {suffix} cannot "
                    f"keep: written over white in {str(job.target)!r} (write a "
                    ".png, .webp or .tif to keep it)",
                )
            )
    images.write_image(job.target, result, overwrite=overwrite, metadata=metadata)
    return tuple(result.shape[:2]) + (3,), notes


class _WriterStopped(Exception):
    """Raised inside the PNG writer thread when the prediction stopped first."""


def _write_while_predicting(write: Callable, strips) -> None:
    """Run ``write(strips)`` in a thread while this thread predicts the strips.

    ``write`` (``srkit.images.write_png_strips``) filters and deflates each strip
    while the model predicts the next one: zlib and numpy release the GIL, so the
    two use the CPU cores at once. At most :data:`STRIPS_AHEAD` strips wait
    between them. Prediction stays in this (the main) thread, where Ctrl-C and
    SIGTERM arrive; when it stops (an error, an interruption) the writer is told,
    ends by raising inside its atomic write (which removes the temporary file) and
    is waited for, so no partial file is left. An error of the writer is raised
    here.
    """
    handoff: queue.Queue = queue.Queue(maxsize=STRIPS_AHEAD)
    done, failure = object(), []

    def received():
        while True:
            strip = handoff.get()
            if strip is done:
                return
            if strip is None:
                raise _WriterStopped
            yield strip

    def run():
        try:
            write(received())
        except BaseException as error:  # noqa: BLE001  (handed to the main thread)
            failure.append(error)

    writer = threading.Thread(target=run, name="srkit-png-writer", daemon=True)
    writer.start()

    def hand(item) -> bool:
        """Put ``item`` for the writer; False once the writer has ended."""
        while writer.is_alive():
            with contextlib.suppress(queue.Full):
                handoff.put(item, timeout=0.1)
                return True
        return False

    finished = False
    try:
        for strip in strips:
            if not hand(strip):
                break
            del strip
        finished = hand(done) or not failure
    finally:
        if not finished:
            hand(None)  # the writer raises _WriterStopped in its atomic write
        writer.join()
    if failure and not isinstance(failure[0], _WriterStopped):
        raise failure[0]


def upscale(
    input_path,
    output_path,
    model: str | None = None,
    project=None,
    run_dir=None,
    model_file=None,
    scale: int = 2,
    tile: int | None = None,
    overwrite: bool = False,
    recursive: bool = False,
    report: Callable[[str, Path, str], None] | None = None,
) -> dict:
    """Upscale image files, or the images of folders, with a trained model.

    Nothing is lost: the paths are checked before any work (see
    :func:`plan_jobs`), and each file is written atomically, so a failure or an
    interruption leaves no partial file. One input file fails as a whole on any
    error. A batch (folders or several files) goes on past a bad image (reported,
    counted as failed), skips an output that exists already (a complete result of
    an earlier run, since every write is atomic) unless ``overwrite``, and loads
    the model only when an image needs it, so a rerun resumes an interrupted
    batch. Each image is predicted in tiles (``srkit.tiles.predict_strips``): a
    PNG output strip by strip, other formats from one 8-bit result. An image is
    refused beforehand when its estimated memory exceeds what is available, and a
    prediction with NaN or infinite values stops everything (the model is
    broken).

    Args:
        input_path: an image file, a folder, or a list of both.
        output_path: the file to write, or the output folder (see plan_jobs).
        model: zoo name of the model (its folder under ``RUN/models``); None or
            ``"shipped"``: the model shipped inside srkit.
        project, run_dir, model_file: where the model is (see ``find_model_file``).
        scale: 2 (output ``low_upsample``) or 4 (``high_upsample``).
        tile: tile core size in input pixels; None picks it from the image size
            and the model's activation memory (``srkit.tiles.choose_tile``: the
            largest cores whose activations fit ``srkit.tiles.TILE_BYTES``), 0
            (``srkit.tiles.WHOLE``) predicts the whole image at once.
        overwrite: replace existing output files.
        recursive: folders' subfolders too, mirrored under the output folder.
        report: called as each image ends with ("wrote", target, "WxH"),
            ("skipped", target, "exists") or ("failed", source, error), and
            ("note", source, text) for something the user should know (alpha
            flattened for a format without it; an ICC profile or EXIF that a BMP
            cannot hold, said once).

    Returns:
        dict with ``model`` (see :func:`model_provenance`; None when no image
        needed it), ``warnings``, ``batch``, ``ignored`` (files left alone),
        ``written`` (``(output path, (height, width, 3))`` per image),
        ``skipped`` (existing outputs) and ``failed`` (``(input, message)``).

    An interruption (``KeyboardInterrupt``: Ctrl-C, or SIGTERM as
    ``srkit.pipeline.RunInterrupted``) propagates carrying this dict as its
    ``done`` attribute, with ``stopped`` (the input under way, whose partial
    output is removed, or None) and ``not_started`` (a count) added.

    Raises:
        ValueError: bad scale or tile, refused paths (see plan_jobs), and for one
            input file an unreadable image; a model name outside the zoo, a model
            file Keras cannot load, a model without the requested output, or one
            that predicts NaN (:class:`BadPrediction`).
        srkit.data.NotEnoughMemory: one input image too large for the memory.
        ModelNotFound: missing model file.
        OSError: one output cannot be written (the old file is kept).
    """
    if scale not in FACTOR_OUTPUTS:
        raise ValueError(f"scale must be 2 or 4, got {scale!r}")
    if tile is not None and (isinstance(tile, bool) or tile < 0):
        raise ValueError(f"tile must be a pixel count >= 0, got {tile!r}")
    plan = plan_jobs(input_path, output_path, overwrite, recursive, scale)
    path = find_model_file(model, project, run_dir, model_file)
    if model in (None, shipped.SHIPPED):
        model = path.stem
    done = {"model": None, "warnings": [], "batch": plan.batch}
    done.update(ignored=plan.ignored, written=[], skipped=[], failed=[])
    report = report or (lambda status, where, text: None)
    first = None
    if not plan.batch:  # a bad single image fails before the model loads
        check_image_memory(plan.jobs[0].source, scale, _streamed(plan.jobs[0].target))
        first = _read_single_frame(plan.jobs[0].source)
    try:
        _upscale_jobs(plan, path, model, scale, tile, overwrite, first, done, report)
    except KeyboardInterrupt as stop:  # Ctrl-C, and SIGTERM as RunInterrupted
        finished = len(done["written"]) + len(done["skipped"]) + len(done["failed"])
        done["stopped"] = done.pop("current", None)
        done["not_started"] = len(plan.jobs) - finished - (done["stopped"] is not None)
        stop.done = done  # what was done before it, for the summary
        raise
    done.pop("current", None)
    return done


def _upscale_jobs(plan, path, model, scale, tile, overwrite, first, done, report):
    """The loop of :func:`upscale`: each job in turn, recorded in ``done``
    (``done["current"]`` is the job under way)."""
    predictor, output = None, FACTOR_OUTPUTS[scale]
    said = set()  # a note on metadata is said once a run, one on alpha per image
    for job in plan.jobs:
        if (
            plan.batch
            and not overwrite
            and (job.target.exists() or job.target.is_symlink())
        ):
            done["skipped"].append(job.target)
            report("skipped", job.target, "exists")
            continue
        if predictor is None:  # a model error stops everything
            predictor = _predictor(path, model, output, scale, done)
        done["current"] = job.source
        try:
            if plan.batch:
                _check_target(job, scale)
            shape, notes = _upscale_one(predictor, job, scale, tile, overwrite, first)
        except BadPrediction:
            raise
        except (ValueError, OSError) as error:
            if not plan.batch:
                raise
            done["failed"].append((job.source, error))
            done["current"] = None
            report("failed", job.source, error)
            continue
        finally:
            first = None
        done["written"].append((job.target, shape))
        done["current"] = None
        for kind, text in notes:
            if kind not in said:
                report("note", job.source, text)
            if kind == "metadata":
                said.add(kind)
        report("wrote", job.target, f"{shape[1]}x{shape[0]}")


def _predictor(path: Path, model: str, output: str, scale: int, done: dict):
    """Load the model once, name its provenance and warn about a smoke run."""
    provenance = model_provenance(path, output)
    done["model"] = provenance
    if provenance["profile"] == SMOKE_PROFILE:
        done["warnings"].append(
            f"the model comes from a smoke run ({provenance['run_dir']}): a few "
            "training steps to test the pipeline, so expect a poor picture; use a "
            "model of a quick or full run (--run-dir)"
        )
    network = load_model(path)
    _check_output(network, output, scale, model, path)
    return _FiniteOutput(network, output, f"{model} ({path})")
