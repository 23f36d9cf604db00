"""The ``srkit`` command line: argument parsing and printing only.

Subcommands ``run``, ``book``, ``clean``, ``models``, ``prepare``, ``upscale``
and ``export`` call ``srkit.pipeline`` (and ``srkit.data``/``srkit.models``, or
``srkit.upscale``/``srkit.export``) for the work. Heavy
packages are imported inside the handlers so ``srkit --help`` answers at once.
``main(argv)`` returns the exit status (0 ok, 1 failure, 2 usage error); a failure
is one line ``srkit: error: ...`` naming the file at fault, or with ``--debug``
the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import math
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import yaml

from srkit import __version__, book, data, pipeline
from srkit.book import BookError
from srkit.execute import StepFailed
from srkit.pipeline import RunInterrupted
from srkit.steps import PER_STEP_SECTION, PipelineError

DESCRIPTION = """\
Reproducible single-image super-resolution report.

`srkit run` executes the step notebooks (notebooks/NN_name.py) with papermill and
builds the book with jupyter-book; `srkit upscale` applies a trained model to an
image. Run from the project folder (the one holding _toc.yml and notebooks/) or
pass --project DIR.
"""

RUN_EPILOG = """\
examples:
  srkit run                                  default profile, every step, then the book
  srkit run --profile smoke                  the machinery only, in minutes
  srkit run --profile quick -p steps=2000 --only 05
  srkit run -p 05.steps=8 -p batch_size=4    one step's value, then every step's
  srkit run --data folder:~/photos --no-book
  srkit run --dry-run                        show each step's values, and which run

Parameters are those of the notebooks' `parameters` cells; values are typed from
their annotations (int, float, str, bool: true/false/1/0). A profile file holds
`defaults:` (every step that declares a name) and `per_step:` ("05": {name: value});
an unknown section, step or name, or a value of the wrong type, is an error. A step
is skipped (cached) when its source, parameters, srkit source and data are unchanged
and its outputs exist in the run folder. Outputs: RUN/params.yaml, RUN/run.json,
RUN/models/, RUN/steps/, RUN/pages/NN_name.ipynb (the executed notebooks, published
to book/steps/ when the run ends well; a failed run leaves book/steps/ as it was) and
_build/html/index.html.
"""


def _add_debug(parser: argparse.ArgumentParser, default=argparse.SUPPRESS) -> None:
    # SUPPRESS on subcommands: an absent flag there keeps the top-level value, so
    # `srkit --debug run` and `srkit run --debug` both work.
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="on an error, show the full traceback instead of one line",
    )


def _add_project(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project",
        metavar="DIR",
        help="project folder (default: searched upward from the current folder)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``srkit`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="srkit",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"srkit {__version__}")
    _add_debug(parser, default=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run_command(commands)
    _add_book_command(commands)
    _add_clean_command(commands)
    _add_models_command(commands)
    _add_prepare_command(commands)
    _add_upscale_command(commands)
    _add_export_command(commands)
    for command in commands.choices.values():
        _add_debug(command)
    return parser


def _heartbeat_seconds(text: str) -> float:
    """``--heartbeat``: finite seconds >= 0 (argparse reports anything else)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise argparse.ArgumentTypeError(
            f"expected seconds >= 0 (0: no 'still running' lines), got {text!r}"
        )
    return seconds


def _add_run_command(commands) -> None:
    """``srkit run``: execute the step notebooks, then build the book."""
    run = commands.add_parser(
        "run",
        help="execute the step notebooks, then build the book",
        description="Execute the step notebooks with papermill, then build the book.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_project(run)
    run.add_argument(
        "--profile",
        default="default",
        help="default (the first book: bundled photos, every network trained for a "
        "few minutes on a CPU), smoke (the machinery only, minutes; numbers are "
        "noise), quick (real training sets, under an hour on a CPU) or full (the "
        "original study's scale, GPU); or a YAML file (default: default)",
    )
    run.add_argument(
        "-p",
        "--param",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter in every step that declares it, or in one step "
        "with NN.NAME=VALUE; repeatable",
    )
    run.add_argument(
        "--only",
        nargs="+",
        metavar="STEP",
        help="run only these steps (number like 05 or stem); the others keep "
        "their pages and records",
    )
    run.add_argument(
        "--data",
        metavar="SOURCE",
        help="data source for every step: sample, folder:PATH, bsds300 or voc2007",
    )
    run.add_argument("--force", action="store_true", help="ignore the step cache")
    run.add_argument(
        "--run-dir",
        metavar="DIR",
        help="run folder for models, data cache and records "
        "(default: <project>/runs/<profile>)",
    )
    run.add_argument("--no-book", action="store_true", help="do not build the book")
    run.add_argument(
        "--strict",
        action="store_true",
        help="build the book with -W -n --keep-going (warnings fail)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved plan (which steps would run, each step's resolved "
        "parameters) and stop",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="when another srkit run holds the run folder, wait for it to finish "
        "(default: refuse at once, naming its PID)",
    )
    run.add_argument(
        "--heartbeat",
        type=_heartbeat_seconds,
        default=30.0,
        metavar="SECONDS",
        help="seconds between 'still running' lines of a long step (0: none)",
    )


def _add_book_command(commands) -> None:
    """``srkit book``: rebuild the book from the executed notebooks."""
    book = commands.add_parser(
        "book",
        help="build the book from the executed notebooks already there",
        description="Write the 'About this run' page from the latest run's records "
        "and run jupyter-book build on the project.",
    )
    _add_project(book)
    book.add_argument(
        "--run-dir", metavar="DIR", help="run whose records the about page shows"
    )
    book.add_argument(
        "--strict",
        action="store_true",
        help="pass -W -n --keep-going (warnings fail the build)",
    )


def _add_clean_command(commands) -> None:
    """``srkit clean``: remove generated pages and the built book."""
    clean = commands.add_parser(
        "clean",
        help="remove generated pages and the built book",
        description="Remove book/steps/, book/about_run.md and _build/ "
        "(with --all also runs/: trained models, data caches, records).",
    )
    _add_project(clean)
    clean.add_argument("--all", action="store_true", help="also remove runs/")


def _add_models_command(commands) -> None:
    """``srkit models``: list the model zoo."""
    commands.add_parser(
        "models",
        help="list the model zoo",
        description="Print every model of the zoo: name, step, total and trainable "
        "parameters, outputs.",
    )


def _add_prepare_command(commands) -> None:
    """``srkit prepare``: prepare and cache a data set."""
    prepare = commands.add_parser(
        "prepare",
        help="prepare and cache a data set",
        description="Prepare (or load from the cache) a train/validation split and "
        "print its counts. `srkit run` does this itself into RUN/data.",
    )
    prepare.add_argument(
        "--data",
        default="sample",
        metavar="SOURCE",
        help="sample, folder:PATH, bsds300 or voc2007",
    )
    prepare.add_argument("-n", "--n-images", type=int, default=100, metavar="N")
    prepare.add_argument("--seed", type=int, default=0)
    prepare.add_argument(
        "--mode",
        choices=("patch", "crop", "resize"),
        help="default: resize for voc2007, else patch",
    )
    prepare.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache folder (default: $SRKIT_CACHE or ~/.cache/srkit/data)",
    )


UPSCALE_DESCRIPTION = """\
Apply a trained model to an image file, to several files or to the images of
folders, and write the x2 or x4 results. The model is --model-file PATH, else
--model NAME of a run (RUN/models/NAME/best.keras of --run-dir or of the
project's latest run), else the model shipped inside srkit (below). It names the
model file and its run (profile, training steps, validation PSNR) and warns
about a model of a smoke run. Every output is written atomically and never
replaces an input.

One IN file: OUT is the file to write (or an existing folder), and an existing
OUT is replaced only with --overwrite. Several IN or a folder: OUT is a folder,
as with cp; a bad image is reported and the others are done, hidden files (._*,
.*) are left alone, outputs that exist already are skipped (so a rerun resumes
an interrupted batch), and a summary ends the run (exit status 1 if an image
failed).

Ctrl-C exits 130 and SIGTERM 143, with no partial file left; a batch first
counts what it wrote, skipped and failed, and what was not started.
"""

UPSCALE_EPILOG = """\
examples:
  srkit upscale photo.jpg big.png                     the shipped model
  srkit upscale photo.jpg big.png --model dts_model   dts_model of your latest run
  srkit upscale a.jpg b.jpg c.png out/ --model dts_model --scale 4
  srkit upscale photos/ out/ --model dts_model -r    subfolders too; rerun to resume
"""


def _add_model_source(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--project`` and ``--run-dir`` | ``--model-file``: where
    ``upscale`` and ``export`` find their model (``upscale.load_model``)."""
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="zoo name of a model trained in a run, or 'shipped' (default: the "
        "shipped model)",
    )
    _add_project(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--run-dir", metavar="DIR", help="run folder (default: the latest run)"
    )
    source.add_argument("--model-file", metavar="PATH", help="a .keras file instead")


def _add_upscale_command(commands) -> None:
    """``srkit upscale``: apply a trained model to images or folders."""
    from srkit import shipped  # standard library only: its record's scores for help

    upscale = commands.add_parser(
        "upscale",
        help="upscale images with a trained model",
        description=f"{UPSCALE_DESCRIPTION}\n{shipped.help_text()}",
        epilog=UPSCALE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upscale.add_argument(
        "input",
        nargs="+",
        metavar="IN",
        help="image file (.png .jpg .jpeg .bmp .tif .tiff .webp .gif), or a folder "
        "of images",
    )
    upscale.add_argument(
        "output",
        metavar="OUT",
        help="image file to write (its extension picks the format), or the output "
        "folder: for a folder IN or several IN, where each image keeps its name",
    )
    _add_model_source(upscale)
    upscale.add_argument("--scale", type=int, choices=(2, 4), default=2)
    upscale.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="tile size in input pixels (default: chosen from the image size, the "
        "largest whose activations fit 512 MiB, so memory stays bounded; 0: the "
        "whole image at once)",
    )
    upscale.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="also the images of subfolders, mirrored under OUT (hidden folders "
        "are left alone)",
    )
    upscale.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (a single OUT is refused without it, a "
        "folder's existing outputs are skipped); an input is never replaced, nor "
        "a single OUT that is not an upscaled IN",
    )


EXPORT_DESCRIPTION = """\
Write a trained model for another runtime, through Keras' own export:
savedmodel (a TensorFlow SavedModel folder; load it with tf.saved_model.load and
call its `serve`) or onnx (one .onnx file for ONNX Runtime; needs the extra
srkit[onnx]: tf2onnx and onnx). The model is found as `srkit upscale` finds it:
--model-file PATH, else --model NAME in --run-dir (default: the latest run),
else the model shipped inside srkit (srkit/pretrained/dts_model.keras, see
`srkit upscale --help`).

The exported model takes float32 RGB in [0, 1] of any size, shape (batch,
height, width, 3), and returns the model's outputs by name (low_upsample x2,
high_upsample x4), unclipped; srkit's layers become plain operations, so it needs
neither srkit nor Keras. Runs on the TensorFlow backend.
"""

EXPORT_EPILOG = """\
examples:
  srkit export shipped.onnx --format onnx             the shipped model
  srkit export dts_model_saved --model dts_model --format savedmodel
  srkit export dts.onnx --model-file RUN/models/dts_model/best.keras --format onnx
"""


def _add_export_command(commands) -> None:
    """``srkit export``: write a trained model as ONNX or a TF SavedModel."""
    export = commands.add_parser(
        "export",
        help="export a trained model as ONNX or a TensorFlow SavedModel",
        description=EXPORT_DESCRIPTION,
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "output",
        metavar="OUT",
        help="folder to write (savedmodel) or file ending in .onnx (onnx)",
    )
    export.add_argument(
        "--format",
        required=True,
        choices=("savedmodel", "onnx"),
        dest="fmt",
        help="savedmodel: a TensorFlow SavedModel folder; onnx: a .onnx file "
        "(needs srkit[onnx])",
    )
    _add_model_source(export)
    export.add_argument(
        "--overwrite", action="store_true", help="replace an existing OUT"
    )


def _export(args) -> int:
    from srkit import export, shipped  # on demand: Keras and its backend (seconds)

    done = export.export(
        args.output,
        args.fmt,
        model_file=args.model_file,
        name=args.model,
        project=args.project,
        run_dir=args.run_dir,
        overwrite=args.overwrite,
    )
    record = shipped.read_record(done["model_file"])
    origin = done["model_file"]
    if record is not None:
        origin = shipped.describe(record, done["model_file"])
    print(
        f"wrote {done['target']} ({done['format']}, outputs "
        f"{', '.join(done['outputs'])}) from {origin}"
    )
    return 0


def _check_profile_file(profile: str) -> None:
    """Parse a profile given as a YAML file, so a syntax error names the file."""
    path = Path(profile).expanduser()
    if not profile.endswith((".yaml", ".yml")) or not path.is_file():
        return  # a packaged profile name, or a missing file the pipeline reports
    with open(path, encoding="utf-8") as stream:  # the stream's name reaches marks
        content = yaml.safe_load(stream)
    if content is not None and not isinstance(content, dict):
        raise ValueError(
            f"profile {str(path)!r} holds a YAML {type(content).__name__}, not a "
            f"mapping with 'defaults' and '{PER_STEP_SECTION}'"
        )


def _run(args) -> int:
    # After Ctrl-C, asyncio reports nbclient's abandoned tasks when they are
    # collected ("Task exception was never retrieved"); the run says it once.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)

    _check_profile_file(args.profile)
    try:
        result = pipeline.run(
            project=args.project,
            profile=args.profile,
            overrides=args.overrides,
            only=args.only,
            data=args.data,
            force=args.force,
            run_dir=args.run_dir,
            book=not args.no_book,
            strict=args.strict,
            dry_run=args.dry_run,
            heartbeat_s=args.heartbeat,
            echo=_echo,
            wait=args.wait,
        )
    except StepFailed as error:
        print(f"srkit run: FAILED\n{error}", file=sys.stderr)
        return 1
    if result.book_index is not None:
        print(f"open {result.book_index}")
    return 0


def _book(args) -> int:
    index = book.build_book(args.project, args.run_dir, args.strict, echo=_echo)
    print(f"open {index}")
    return 0


def _clean(args) -> int:
    removed = book.clean(args.project, everything=args.all)
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print("nothing to remove")
    return 0


def _models(args) -> int:
    from srkit import models  # on demand: it loads Keras and its backend (seconds)

    table = models.zoo_table()
    print(table.to_string(index=False) if hasattr(table, "to_string") else table)
    return 0


def _prepare(args) -> int:
    split = data.prepare(
        args.data,
        n_images=args.n_images,
        seed=args.seed,
        mode=args.mode,
        cache_dir=args.cache_dir,
    )
    info = split.info
    print(
        f"{info.get('source', args.data)}: {len(split.train)} train / "
        f"{len(split.val)} validation images, mode {info.get('mode')}, "
        f"key {info.get('key')}"
    )
    print(f"cache: {info.get('cache_path')}")
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM ends the block like Ctrl-C (temporary files removed), as
    :class:`RunInterrupted` (exit status 143)."""

    def handler(signum, frame):
        raise RunInterrupted(signal.Signals(signum).name)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _upscale(args) -> int:
    from srkit import upscale  # on demand: it loads Keras and its backend (seconds)

    def report(status, path, text) -> None:
        if status == "failed":
            print(f"srkit: error: {describe_error(text)}", file=sys.stderr, flush=True)
        elif status == "note":
            print(f"srkit: warning: {text}", file=sys.stderr, flush=True)
        elif status == "skipped":
            _echo(f"skipped ({text}) {path}")
        else:
            _echo(f"wrote {path} ({text})")

    with _sigterm_as_interrupt():
        try:
            done = upscale.upscale(
                args.input if len(args.input) > 1 else args.input[0],
                args.output,
                args.model,
                project=args.project,
                run_dir=args.run_dir,
                model_file=args.model_file,
                scale=args.scale,
                tile=args.tile,
                overwrite=args.overwrite,
                recursive=args.recursive,
                report=report,
            )
        except KeyboardInterrupt as stop:  # main() prints the last line, the status
            done = getattr(stop, "done", None)
            if done is not None and done["batch"]:
                print(f"srkit upscale: {_batch_counts(done)}", file=sys.stderr)
            raise
    for note in done["warnings"]:
        print(f"srkit: warning: {note}", file=sys.stderr)
    if done["model"] is not None:
        print(f"with {done['model']['text']}")
    if done["batch"]:
        print(f"srkit upscale: {_batch_counts(done)}")
    return 1 if done["failed"] else 0


def _batch_counts(done: dict) -> str:
    """The summary of a batch: written, skipped, failed, and after an interruption
    what was not done (see :func:`srkit.upscale.upscale`)."""
    counts = [f"{len(done['written'])} written"]
    counts.append(f"{len(done['skipped'])} skipped (exist)")
    counts.append(f"{len(done['failed'])} failed")
    if "not_started" in done:
        if done["stopped"] is not None:
            counts.append(f"1 stopped midway ({str(done['stopped'])!r}, no file left)")
        counts.append(f"{done['not_started']} not started")
    if done["ignored"]:
        counts.append(f"{done['ignored']} other or hidden files left alone")
    text = ", ".join(counts)
    if "not_started" in done:
        text += "; the same command again resumes (written files are skipped)"
    return text


HANDLERS = {
    "run": _run,
    "book": _book,
    "clean": _clean,
    "models": _models,
    "prepare": _prepare,
    "upscale": _upscale,
    "export": _export,
}


OS_ADVICE = {
    errno.EACCES: "check the folder's permissions or choose another folder",
    errno.EPERM: "check the folder's permissions or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.ENOSPC: "the disk is full: free some space and run again",
    errno.EDQUOT: "the disk quota is used up: free some space and run again",
}


def describe_error(error: BaseException) -> str:
    """One line for a user's error: the file (and line) at fault and the reason.

    Args:
        error: an ``OSError`` (named by its file), a ``yaml.YAMLError`` (named by
            its file, line and column), or any exception with a message.

    Returns:
        The message on one line (line breaks in it become "; ").
    """
    if isinstance(error, OSError) and error.filename is not None:
        files = repr(os.fsdecode(error.filename))
        if error.filename2 is not None:
            files += f" -> {os.fsdecode(error.filename2)!r}"
        text = f"{files}: {error.strerror or error}"
        if error.errno in OS_ADVICE:
            text += f" ({OS_ADVICE[error.errno]})"
    elif hasattr(error, "problem_mark") or hasattr(error, "context_mark"):
        mark = getattr(error, "problem_mark", None) or error.context_mark
        problem = getattr(error, "problem", None) or getattr(error, "context", None)
        where = "YAML"
        if mark is not None:
            where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}"
        text = f"{where}: invalid YAML: {problem or error}"
    else:
        text = str(error) or type(error).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line ``srkit: warning: ...`` (the source line with --debug)."""
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"srkit: warning: {text}", file=sys.stderr, flush=True)


def _echo(line: str) -> None:
    print(line, flush=True)


# A Keras backend missing from the environment -> what to install (the extras of
# pyproject.toml; KERAS_BACKEND chooses among installed ones).
BACKEND_EXTRAS = {
    "tensorflow": "pip install 'srkit[tensorflow]' (the default backend), or "
    "pip install 'srkit[jax]' and set KERAS_BACKEND=jax",
    "jax": "pip install 'srkit[jax]', or unset KERAS_BACKEND to use TensorFlow",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``srkit`` and ``python -m srkit``.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Exit status: 0 ok, 1 a failure (one line ``srkit: error: ...`` on stderr,
        or the traceback with ``--debug``), 2 bad usage, 130 interrupted (Ctrl-C),
        143 stopped by SIGTERM.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _show_warning
            return HANDLERS[args.command](args)
    except (OSError, ValueError, yaml.YAMLError, PipelineError, BookError) as error:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"srkit: error: {describe_error(error)}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        if args.debug or error.name not in BACKEND_EXTRAS:
            raise
        print(
            f"srkit: error: Keras' backend {error.name!r} is not installed: "
            f"{BACKEND_EXTRAS[error.name]}",
            file=sys.stderr,
        )
        return 1
    except RunInterrupted as error:
        print(f"srkit {args.command}: stopped by {error}", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"srkit {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
