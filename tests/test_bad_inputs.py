"""A corpus of awkward inputs for the command line: nothing lost, nothing silent.

Every case is built at test time in an empty folder (no binary blobs in the
repository) and run in-process through ``srkit.cli.main``. Each one checks the exit
status, that a failure prints exactly one line ``srkit: error: ...`` naming the
culprit (a success prints nothing on stderr), and that no file in the folder was
lost or changed except the output the case is meant to write. Output on the file
descriptors is captured too, so a C library's log line would count as a second line.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import functools
import hashlib
import io
import json
import os
import re
import socket
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from srkit import atomic, cli, data, downloads, images, layout, models

STEP = """\
# %% [markdown]
# # 01 · Step

# %% tags=["parameters"]
# srkit: data-sets n_images
run_dir: str = ""
data_source: str = "sample"
n_images: int = 2
seed: int = 0
epochs: int = 1

# %%
import json
import pathlib

out = pathlib.Path(run_dir) / "steps" / "01_a"
out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"epochs": epochs}))
"""


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """An untrained x2 model (``low_upsample`` only) saved as .keras, warmed up."""
    model = models.build("simple_model_bilinear", seed=0)
    model(np.zeros((1, 4, 4, 3), np.float32))  # first-call backend logs happen here
    path = tmp_path_factory.mktemp("model") / "simple.keras"
    model.save(path)
    return path


# ------------------------------------------------------------------ file makers


def rgb(height: int = 6, width: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def pillow_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_bytes(pixels: np.ndarray | None = None) -> bytes:
    pixels = rgb() if pixels is None else pixels
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def tiff_bytes(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".tif", pixels)
    assert ok
    return encoded.tobytes()


def cut(content: bytes, kept: float) -> bytes:
    """The first ``kept`` fraction of a file's bytes: a copy that was cut short."""
    return content[: int(len(content) * kept)]


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def make_project(folder: Path) -> Path:
    project = folder / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    (project / "notebooks" / "01_a.py").write_text(STEP)
    return project


def upscale(source: str, target: str = "out.png", *options: str):
    """argv of `srkit upscale`; {model} is filled in with the fixture's file."""
    return ["upscale", source, target, "--model", "simple_model_bilinear", *options]


# ------------------------------------------------------------------------ cases


@dataclass
class Case:
    """One input: how to make it, what to run, what must come out.

    Attributes:
        name: the case id.
        make: writes the case's files into the folder (the current directory).
        argv: arguments of ``srkit`` (``--model-file`` is added to ``upscale``).
        code: expected exit status.
        culprit: text the error line must contain (the file at fault); None for a
            success, which must print nothing on stderr.
        written: files the case may create or replace, as glob patterns (all
            others stay as they were, byte for byte).
        check: optional extra check of the folder after the run.
        warns: text of the one-line ``srkit: warning:`` expected before the
            result (None: no warning may appear).
        stdout: text a success prints.
        patch: simulates the machine (little memory, a read-only disk).
        model_file: add the fixture's ``--model-file`` to an upscale command.
        step_failure: a step of ``srkit run`` fails inside its notebook: the run's
            report is expected instead of one line (``srkit run: FAILED``, then
            ``step NN failed at cell ...: Error: ...`` holding the culprit, then
            the cell and the notebook), and the kernel's own log lines (TensorFlow
            and absl, written by the kernel process) are ignored.
    """

    name: str
    make: Callable[[Path], object]
    argv: list[str]
    code: int = 1
    culprit: str | None = None
    written: set[str] = field(default_factory=set)
    check: Callable[[Path], None] | None = None
    warns: str | tuple[str, ...] | None = None
    stdout: str = "wrote "
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    model_file: bool = True
    step_failure: bool = False


def output_shape(
    expected: tuple[int, int, int], name: str = "out.png"
) -> Callable[[Path], None]:
    def check(folder: Path) -> None:
        assert images.read_image(folder / name).shape == expected

    return check


def exif_rotated(folder: Path) -> None:
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION_TAG] = 6  # stored landscape, shown portrait
    image = Image.fromarray(rgb(6, 8))
    write(folder, "rotated.jpg", pillow_bytes(image, "JPEG", exif=exif.tobytes()))


def same_file_link(kind: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        source = write(folder, "in.png", png_bytes())
        if kind == "symlink":
            (folder / "link.png").symlink_to(source)
        else:
            os.link(source, folder / "link.png")

    return make


def bad_profile(text: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        make_project(folder)
        (folder / "bad.yaml").write_text(text)

    return make


RUN_BAD_PROFILE = ["run", "--project", "project", "--profile", "bad.yaml", "--no-book"]


def garbled_jpeg(height: int = 300, width: int = 300, seed: int = 0) -> bytes:
    """A complete JPEG whose entropy-coded data is damaged (decodes to garbage)."""
    encoded = bytearray(
        pillow_bytes(Image.fromarray(rgb(height, width, seed)), "JPEG", quality=90)
    )
    for index in range(2000, len(encoded) - 100, 997):
        encoded[index] = 0 if encoded[index] == 0xFF else 0xFF
    return bytes(encoded)


def photos(folder: Path, count: int = 2, side: int = 288) -> Path:
    """``photos/`` with ``count`` good training images of ``side`` pixels."""
    for index in range(count):
        write(folder, f"photos/good{index}.png", png_bytes(rgb(side, side, index)))
    return folder / "photos"


def photos_and(name: str, content: bytes, count: int = 2) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        photos(folder, count)
        write(folder, f"photos/{name}", content)

    return make


def tiny_photos(folder: Path) -> None:
    for name, (height, width) in {"a.png": (1, 1), "b.png": (50, 50)}.items():
        write(folder, f"photos/{name}", png_bytes(rgb(height, width)))
    write(folder, "photos/c.png", png_bytes(rgb(1, 3000)))


def nan_tiff() -> bytes:
    pixels = np.full((290, 290, 3), 0.5, np.float32)
    pixels[10, 10, 1] = np.nan
    ok, encoded = cv2.imencode(".tif", pixels)
    assert ok
    return encoded.tobytes()


def little_memory(monkeypatch) -> None:
    monkeypatch.setattr(data, "available_memory", lambda: 64 * 2**20)


def read_only_disk(monkeypatch) -> None:
    def refuse(source, target, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", os.fspath(source))

    monkeypatch.setattr(atomic.os, "replace", refuse)
    monkeypatch.setattr(atomic.os, "link", refuse)


def keras_zip_without_model(folder: Path) -> None:
    write(folder, "in.png", png_bytes())
    with zipfile.ZipFile(folder / "broken.keras", "w") as archive:
        archive.writestr("config.json", "{not json")
        archive.writestr("metadata.json", json.dumps({"keras_version": "3"}))


def image_folder(folder: Path) -> None:
    write(folder, "in/a.png", png_bytes(rgb(6, 8, 1)))
    write(folder, "in/b.jpg", pillow_bytes(Image.fromarray(rgb(4, 5, 2)), "JPEG"))
    write(folder, "in/notes.txt", b"not an image")


def folder_output(folder: Path) -> None:
    assert images.read_image(folder / "out" / "a.png").shape == (12, 16, 3)
    assert images.read_image(folder / "out" / "b.jpg").shape == (8, 10, 3)
    assert not (folder / "out" / "notes.txt").exists()


def fifo_input(folder: Path) -> None:
    os.mkfifo(folder / "pipe.png")


def held_lock(folder: Path):
    """A project whose run folder is locked by a running srkit (PID 4242)."""
    make_project(folder)
    run_dir = folder / "project" / "runs" / "default"
    run_dir.mkdir(parents=True)
    handle = open(run_dir / layout.LOCK_FILE, "w")  # noqa: SIM115
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write("4242\n")
    handle.flush()
    write(run_dir, "run.json", b'{"status": "running", "pid": 4242}')
    return handle


def killed_run(folder: Path) -> None:
    """A run folder as ``kill -9`` leaves it: record "running", kernel leftovers."""
    make_project(folder)
    run_dir = folder / "project" / "runs" / "default"
    record = {"status": "running", "steps": {"01_a": {"status": "running"}}}
    write(run_dir, "run.json", json.dumps(record).encode())
    write(run_dir, layout.LOCK_FILE, b"999999\n")  # a dead process's lock
    write(run_dir, ".kernels/srkit-step-x/01_a.ipynb", b"{}")
    write(run_dir, ".kernels/srkit-step-x/kernel-1.json", b"{}")


def resumed(folder: Path) -> None:
    run_dir = folder / "project" / "runs" / "default"
    records = json.loads((run_dir / "run.json").read_text())
    assert records["status"] == "ok"
    assert records["steps"]["01_a"]["status"] == "ran"
    assert records["steps"]["01_a"]["ok"] is True
    assert list((run_dir / ".kernels").iterdir()) == []


RUN_FILES = {"project/runs*", "project/book*"}


def refused_url() -> str:
    """A loopback URL whose port was just free: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/archive.tar"


def download_from(name: str, url: Callable[[], str]):
    """Point ``srkit.downloads.fetch_<name>`` at another URL (no network needed)."""

    def patch(monkeypatch) -> None:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        fetch = getattr(downloads, f"fetch_{name}")
        monkeypatch.setattr(
            downloads, f"fetch_{name}", functools.partial(fetch, url=url())
        )

    return patch


def local_archive() -> str:
    """A file:// URL of a small file whose checksum is not the data set's."""
    return (Path.cwd() / "archive.tar").as_uri()


PREPARE = ["prepare", "-n", "2", "--cache-dir", "cache", "--data"]

FIT_STEP = STEP.replace("# # 01 · Step", "# # 01 · Fit").split("# %%\nimport json")[0]
FIT_STEP += """\
# %%
from srkit import data, models, report, train

RUN = report.run_folder(run_dir)
split = data.prepare(data_source, n_images=n_images, seed=seed, cache_dir=RUN.data)
model = models.build("simple_model_nearest", seed=seed)
settings = train.Settings("mse", steps=1)
train.fit(model, split, settings, RUN.model(model.name), verbose=0)
"""
# A model folder as a crash or a bad merge can leave it: checkpoints beside a
# history whose epoch column holds text.
CHECKPOINTS = {
    "best.keras": b"best checkpoint",
    "last.keras": b"last checkpoint",
    "history.csv": b"epoch,loss\n1,0.5\n<<<<<<< HEAD,\n",
}


def garbled_history(folder: Path) -> None:
    """A project whose one step trains simple_model_nearest, and that model's
    folder from an earlier run: checkpoints beside a garbled history."""
    make_project(folder)
    step = folder / "project" / "notebooks" / "01_a.py"
    step.write_text(FIT_STEP)
    models_dir = folder / "project" / "runs" / "default" / "models"
    for name, content in CHECKPOINTS.items():
        write(models_dir / "simple_model_nearest", name, content)


def checkpoints_kept(folder: Path) -> None:
    model_dir = (
        folder / "project" / "runs" / "default" / "models" / "simple_model_nearest"
    )
    assert {path.name: path.read_bytes() for path in model_dir.iterdir()} == CHECKPOINTS


CASES = [
    # ---- unreadable inputs
    Case(
        "corrupt_png",
        lambda f: write(f, "in.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
        upscale("in.png"),
        culprit="'in.png'",
    ),
    Case(
        "truncated_png",
        lambda f: write(f, "in.png", png_bytes(rgb(40, 40))[:300]),
        upscale("in.png"),
        culprit="'in.png'",
    ),
    Case(  # libpng writes "libpng error: ..." to fd 2 itself
        "png_cut_in_its_pixel_data",
        lambda f: write(f, "in.png", cut(png_bytes(rgb(60, 70)), 0.9)),
        upscale("in.png"),
        culprit="'in.png'",
    ),
    Case(  # Pillow warns "Corrupt EXIF data" while srkit measures the file
        "tiff_cut_short",
        lambda f: write(f, "in.tif", cut(tiff_bytes(rgb(60, 70)), 0.5)),
        upscale("in.tif"),
        culprit="'in.tif'",
    ),
    Case(
        "truncated_jpeg",
        lambda f: write(
            f, "in.jpg", pillow_bytes(Image.fromarray(rgb(40, 40)), "JPEG")[:400]
        ),
        upscale("in.jpg"),
        culprit="'in.jpg'",
    ),
    Case(
        "empty_file", lambda f: write(f, "in.png", b""), upscale("in.png"), 1, "in.png"
    ),
    Case(
        "text_with_image_extension",
        lambda f: write(f, "notes.png", b"these are notes, not pixels\n"),
        upscale("notes.png"),
        culprit="'notes.png'",
    ),
    Case("missing_input", lambda f: None, upscale("nowhere.png"), 1, "nowhere.png"),
    Case(
        "directory_as_image",
        lambda f: (f / "photos.png").mkdir(),
        upscale("photos.png"),
        culprit="'photos.png'",
    ),
    # ---- outputs that would lose data or cannot be written
    Case(
        "output_without_image_extension",
        lambda f: write(f, "in.png", png_bytes()),
        upscale("in.png", "out.txt"),
        culprit="'out.txt'",
    ),
    Case(
        "output_is_a_directory",
        lambda f: (write(f, "in.png", png_bytes()), (f / "out.png").mkdir()),
        upscale("in.png", "out.png"),
        code=0,
        written={"out.png/in.png"},
        check=output_shape((12, 16, 3), "out.png/in.png"),
    ),
    Case(
        "output_is_input",
        lambda f: write(f, "in.png", png_bytes()),
        upscale("in.png", "in.png", "--overwrite"),
        culprit="'in.png'",
    ),
    Case(
        "output_is_input_spelled_differently",
        lambda f: (write(f, "in.png", png_bytes()), (f / "sub").mkdir()),
        upscale("in.png", "./sub/../in.png", "--overwrite"),
        culprit="'./sub/../in.png'",
    ),
    Case(
        "output_is_a_symlink_to_input",
        same_file_link("symlink"),
        upscale("in.png", "link.png", "--overwrite"),
        culprit="'link.png'",
    ),
    Case(
        "output_is_a_hard_link_to_input",
        same_file_link("hardlink"),
        upscale("in.png", "link.png", "--overwrite"),
        culprit="'link.png'",
    ),
    Case(
        "existing_output_without_overwrite",
        lambda f: (write(f, "in.png", png_bytes()), write(f, "out.png", b"keep me")),
        upscale("in.png", "out.png"),
        culprit="'out.png'",
    ),
    Case(
        "output_folder_is_a_file",
        lambda f: (write(f, "in.png", png_bytes()), write(f, "blocker", b"a file")),
        upscale("in.png", "blocker/sub/out.png"),
        culprit="blocker/sub",
    ),
    # ---- models
    Case(
        "model_file_missing",
        lambda f: write(f, "in.png", png_bytes()),
        upscale("in.png", "out.png", "--model-file", "missing.keras"),
        culprit="missing.keras",
    ),
    Case(
        "model_file_not_a_model",
        lambda f: (write(f, "in.png", png_bytes()), write(f, "bad.keras", b"no zip")),
        upscale("in.png", "out.png", "--model-file", "bad.keras"),
        culprit="'bad.keras'",
    ),
    Case(
        "scale_the_model_lacks",
        lambda f: write(f, "in.png", png_bytes()),
        upscale("in.png", "out.png", "--scale", "4"),
        culprit="simple.keras",
    ),
    # ---- projects and profiles
    Case("clean_outside_a_project", lambda f: None, ["clean", "--all"], 1, "--project"),
    Case("run_outside_a_project", lambda f: None, ["run", "--no-book"], 1, "--project"),
    Case("book_outside_a_project", lambda f: None, ["book"], culprit="pass --project"),
    Case(
        "profile_with_a_yaml_syntax_error",
        bad_profile("defaults:\n  epochs: [1, 2\nsteps: {}\n"),
        RUN_BAD_PROFILE,
        culprit="bad.yaml, line 3",
    ),
    Case(
        "profile_that_is_a_list",
        bad_profile("- epochs\n- 2\n"),
        RUN_BAD_PROFILE,
        culprit="'bad.yaml' holds a YAML list",
    ),
    # ---- unusual but valid images: written, nothing else touched
    Case(
        "sixteen_bit_png",
        lambda f: write(f, "in.png", png_bytes(rgb().astype(np.uint16) * 257)),
        upscale("in.png"),
        code=0,
        written={"out.png"},
        check=output_shape((12, 16, 3)),
    ),
    Case(
        "alpha_png",
        lambda f: write(
            f, "in.png", pillow_bytes(Image.fromarray(rgb()).convert("RGBA"), "PNG")
        ),
        upscale("in.png"),
        code=0,
        written={"out.png"},
        check=output_shape((12, 16, 3)),
    ),
    Case(
        "palette_png",
        lambda f: write(
            f, "in.png", pillow_bytes(Image.fromarray(rgb()).convert("P"), "PNG")
        ),
        upscale("in.png"),
        code=0,
        written={"out.png"},
        check=output_shape((12, 16, 3)),
    ),
    Case(
        "grayscale_png",
        lambda f: write(
            f, "in.png", pillow_bytes(Image.fromarray(rgb()).convert("L"), "PNG")
        ),
        upscale("in.png"),
        code=0,
        written={"out.png"},
        check=output_shape((12, 16, 3)),
    ),
    Case(
        "cmyk_jpeg",
        lambda f: write(
            f, "in.jpg", pillow_bytes(Image.fromarray(rgb()).convert("CMYK"), "JPEG")
        ),
        upscale("in.jpg"),
        code=0,
        written={"out.png"},
        check=output_shape((12, 16, 3)),
    ),
    Case(
        "exif_rotated_jpeg",
        exif_rotated,
        upscale("rotated.jpg"),
        code=0,
        written={"out.png"},
        check=output_shape((16, 12, 3)),  # shown on its side: 8 x 6 -> 16 x 12
    ),
    Case(
        "one_pixel",
        lambda f: write(f, "in.png", png_bytes(rgb(1, 1))),
        upscale("in.png"),
        code=0,
        written={"out.png"},
        check=output_shape((2, 2, 3)),
    ),
    Case(
        "png_named_jpg",
        lambda f: write(f, "in.jpg", png_bytes()),
        upscale("in.jpg"),
        code=0,
        written={"out.png"},
        check=output_shape((12, 16, 3)),
    ),
    Case(
        "existing_output_with_overwrite",
        lambda f: (write(f, "in.png", png_bytes()), write(f, "out.png", b"old")),
        upscale("in.png", "out.png", "--overwrite"),
        code=0,
        written={"out.png"},
        check=output_shape((12, 16, 3)),
    ),
    Case(
        "jpeg_output",
        lambda f: write(f, "in.bmp", cv2.imencode(".bmp", rgb())[1].tobytes()),
        upscale("in.bmp", "out.jpg"),
        code=0,
        written={"out.jpg"},
    ),
    # ---- more images and folders
    Case(
        "garbled_jpeg",
        lambda f: write(f, "in.jpg", garbled_jpeg(40, 40)),
        upscale("in.jpg"),
        culprit="'in.jpg': the JPEG data is corrupt",
    ),
    Case(
        "fifo_as_image",
        fifo_input,
        upscale("pipe.png"),
        culprit="'pipe.png': not a regular file",
    ),
    Case(
        "folder_of_images",
        image_folder,
        upscale("in", "out"),
        code=0,
        written={"out", "out/a.png", "out/b.jpg"},
        check=folder_output,
    ),
    Case(
        "folder_with_a_bad_file_and_mac_leftovers",
        lambda f: (
            image_folder(f),
            write(f, "in/._a.png", b"\x00\x05\x16\x07AppleDouble"),
            write(f, "in/c.png", b"not a picture"),
        ),
        upscale("in", "out"),
        culprit="cannot read image 'in/c.png'",
        written={"out", "out/a.png", "out/b.jpg"},
        check=folder_output,
    ),
    Case(
        "glob_without_an_output_folder",
        lambda f: (
            write(f, "a.jpg", pillow_bytes(Image.fromarray(rgb(4, 5, 2)), "JPEG")),
            write(f, "b.jpg", pillow_bytes(Image.fromarray(rgb(6, 8, 1)), "JPEG")),
        ),
        upscale("a.jpg", "b.jpg", "--overwrite"),
        culprit="'b.jpg' exists and is not an upscaled 'a.jpg'",
    ),
    Case(
        "several_files_into_a_folder",
        lambda f: (write(f, "a.png", png_bytes()), write(f, "b.png", png_bytes())),
        ["upscale", "a.png", "b.png", "out", "--model", "simple_model_bilinear"],
        code=0,
        written={"out", "out/a.png", "out/b.png"},
        stdout="2 written, 0 skipped (exist), 0 failed",
    ),
    Case(
        "folder_into_a_file",
        lambda f: (image_folder(f), write(f, "out.png", b"keep me")),
        upscale("in", "out.png"),
        culprit="'out.png' is a file",
    ),
    Case(
        "folder_onto_itself",
        image_folder,
        upscale("in", "./in", "--overwrite"),
        culprit="is the input folder",
    ),
    Case(
        "huge_image_for_the_memory",
        lambda f: write(f, "in.png", png_bytes(rgb(400, 600))),
        upscale("in.png", "out.png", "--scale", "2"),
        culprit="upscaling 'in.png' (600x400) x2 needs about",
        patch=little_memory,
    ),
    Case(
        "read_only_output_folder",
        lambda f: write(f, "in.png", png_bytes()),
        upscale("in.png", "out.png"),
        culprit="'out.png': Read-only file system (the file system is read-only",
        patch=read_only_disk,
    ),
    # ---- models
    Case(
        "model_name_outside_the_zoo",
        lambda f: write(f, "in.png", png_bytes()),
        ["upscale", "in.png", "out.png", "--model", "my_net"],
        culprit="unknown model 'my_net': the zoo has",
        model_file=False,
    ),
    Case(
        "keras_zip_without_a_model",
        keras_zip_without_model,
        upscale("in.png", "out.png", "--model-file", "broken.keras"),
        culprit="cannot load model file 'broken.keras'",
    ),
    # ---- training images (srkit prepare)
    Case(
        "training_images_all_too_small",
        tiny_photos,
        ["prepare", "--data", "folder:photos", "-n", "3", "--cache-dir", "cache"],
        culprit="gave 0 usable image(s)",
        warns=("smaller than 288 px", "a.png (1x1)", "b.png (50x50)", "c.png (3000x1)"),
    ),
    Case(
        "training_image_with_nan",
        photos_and("nan.tif", nan_tiff()),
        ["prepare", "--data", "folder:photos", "-n", "3", "--cache-dir", "cache"],
        code=0,
        warns="NaN or infinite values: nan.tif",
        stdout="1 train / 8 validation images",
        written={"cache", "cache/*.npz"},
    ),
    Case(
        "training_jpeg_garbled",
        photos_and("bad.jpg", garbled_jpeg()),
        ["prepare", "--data", "folder:photos", "-n", "3", "--cache-dir", "cache"],
        code=0,
        warns="bad.jpg (cannot read image",
        stdout="1 train / 8 validation images",
        written={"cache", "cache/*.npz"},
    ),
    Case(
        "prepare_a_huge_n",
        lambda f: None,
        ["prepare", "-n", "100000", "--mode", "crop", "--cache-dir", "cache"],
        culprit="preparing 100000 crop windows of 'sample' needs about 85.",
        patch=lambda monkeypatch: monkeypatch.setattr(
            data, "available_memory", lambda: 8 * 2**30
        ),
    ),
    Case(
        "prepare_a_huge_n_on_a_small_machine",
        lambda f: None,
        ["prepare", "-n", "200", "--mode", "crop", "--cache-dir", "cache"],
        culprit="ask for fewer images (n_images)",
        patch=little_memory,
    ),
    Case(
        "prepare_a_negative_seed",
        lambda f: None,
        ["prepare", "--seed", "-1", "--cache-dir", "cache"],
        culprit="seed must be an integer >= 0, got -1",
    ),
    # ---- downloads: offline, or a file that is not the data set
    Case(
        "voc2007_offline",
        lambda f: None,
        [*PREPARE, "voc2007"],
        culprit="could not download the VOC2007 data set",
        written={"cache*"},
        patch=download_from("voc2007", refused_url),
    ),
    Case(
        "bsds300_offline",
        lambda f: None,
        [*PREPARE, "bsds300"],
        culprit="could not download the BSDS300 data set",
        written={"cache*"},
        patch=download_from("bsds300", refused_url),
    ),
    Case(
        "voc2007_wrong_checksum",
        lambda f: write(f, "archive.tar", b"not the VOC archive"),
        [*PREPARE, "voc2007"],
        culprit="VOC2007 data set downloaded from file://",
        written={"cache*"},
        patch=download_from("voc2007", local_archive),
    ),
    Case(
        "bsds300_wrong_checksum",
        lambda f: write(f, "archive.tar", b"not the BSDS archive"),
        [*PREPARE, "bsds300"],
        culprit="checksum mismatch for the BSDS300 data set",
        written={"cache*"},
        patch=download_from("bsds300", local_archive),
    ),
    # ---- run: parameters, paths, the lock, a killed run
    Case(
        "override_of_a_step_that_does_not_exist",
        make_project,
        ["run", "--project", "project", "--no-book", "-p", "77.epochs=2"],
        culprit="-p 77.epochs=2: no step '77'; steps: 01_a",
    ),
    Case(
        "negative_seed",
        make_project,
        ["run", "--project", "project", "--no-book", "-p", "seed=-1"],
        culprit="-p seed=-1: parameter 'seed' must be an integer >= 0",
    ),
    Case(
        "relative_data_folder_that_is_missing",
        make_project,
        ["run", "--project", "project", "--no-book", "--data", "folder:../nowhere"],
        culprit=f"{os.sep}nowhere' does not exist",
    ),
    Case(
        "unknown_profile",
        make_project,
        ["run", "--project", "project", "--no-book", "--profile", "fast"],
        culprit="unknown profile 'fast'",
    ),
    Case(
        "run_folder_under_a_file",
        lambda f: (make_project(f), write(f, "blocker", b"a file")),
        ["run", "--project", "project", "--no-book", "--run-dir", "blocker/run"],
        culprit="blocker",
    ),
    Case(
        "second_run_on_a_locked_folder",
        held_lock,
        ["run", "--project", "project", "--no-book"],
        culprit="in use by another srkit run (PID 4242",
    ),
    Case(
        "checkpoints_beside_a_garbled_history",
        garbled_history,
        ["run", "--project", "project", "--no-book"],
        culprit="history.csv has garbled epoch numbers, but best.keras and last.keras",
        written=RUN_FILES,
        check=checkpoints_kept,
        step_failure=True,
    ),
    Case(
        "clean_while_a_run_holds_the_lock",
        held_lock,
        ["clean", "--all", "--project", "project"],
        culprit="in use by a running srkit run (PID 4242",
    ),
    Case(
        "book_while_a_run_holds_the_lock",
        held_lock,
        ["book", "--project", "project"],
        culprit="in use by a running srkit run (PID 4242",
    ),
    Case(
        "rerun_after_a_kill",
        killed_run,
        ["run", "--project", "project", "--no-book"],
        code=0,
        stdout="ended without a word (killed)",
        written=RUN_FILES,
        check=resumed,
    ),
]


# Lines a notebook kernel writes itself when TensorFlow loads (absl's log format).
KERNEL_LOG = re.compile(r"[IWEF]\d{4} |WARNING: All log messages before absl")


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> content hash of every file and link under ``folder``."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[name] = "link -> " + os.readlink(path)
        elif path.is_file():
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            found[name] = "folder"
    return found


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


def allowed(name: str, patterns: set[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capfd, model_file):
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("SRKIT_CACHE", str(tmp_path / "cache"))
    made = case.make(folder)  # kept alive: a held lock lives as long as its file
    argv = list(case.argv)
    if argv[0] == "upscale" and case.model_file and "--model-file" not in argv:
        argv += ["--model-file", str(model_file)]
    if case.patch is not None:
        case.patch(monkeypatch)
    before = snapshot(folder)
    capfd.readouterr()

    code = cli.main(argv)

    out, err = capfd.readouterr()
    del made
    assert code == case.code, (out, err)
    lines = err.splitlines()
    warnings = [line for line in lines if line.startswith("srkit: warning: ")]
    if case.warns is None:
        assert warnings == [], err
    else:
        texts = (case.warns,) if isinstance(case.warns, str) else case.warns
        assert len(warnings) == 1, err
        assert all(text in warnings[0] for text in texts), err
    errors = [line for line in lines if line not in warnings]
    if case.step_failure:
        report = [line for line in errors if not KERNEL_LOG.match(line)]
        assert report[0] == "srkit run: FAILED", err
        assert report[1].startswith("step ") and case.culprit in report[1], err
        assert [line[:2] for line in report[2:]] == ["  ", "  "], err
    elif case.culprit is None:
        assert errors == [], err
        assert case.stdout in out, out
    else:
        assert len(errors) == 1 and err.endswith("\n"), err
        assert errors[0].startswith("srkit: error: "), err
        assert case.culprit in errors[0], err
    after = snapshot(folder)
    kept = {
        name: digest
        for name, digest in before.items()
        if not allowed(name, case.written)
    }
    assert {name: after.get(name) for name in kept} == kept, (
        "a file was lost or changed"
    )
    new = set(after) - set(before)
    assert all(allowed(name, case.written) for name in new), "unexpected new files"
    if case.check is not None:
        case.check(folder)


def test_only_libpngs_own_lines_are_hidden(capfd):
    # What else reaches file descriptor 2 during a PNG decode is written back.
    with images._without_libpng_lines():
        os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\n")
        os.write(2, b"another library's line\n")
    assert capfd.readouterr().err == "another library's line\n"
