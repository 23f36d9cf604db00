"""A corpus of awkward inputs for the command line: nothing lost, nothing silent.

Every case is built at test time in an empty folder (no binary blobs in the
repository) and run in-process through ``srkit.cli.main``. Each one checks the exit
status, that a failure prints exactly one line ``srkit: error: ...`` naming the
culprit (a success prints nothing on stderr), and that no file in the folder was
lost or changed except the output the case is meant to write. Output on the file
descriptors is captured too, so a C library's log line would count as a second line.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from srkit import cli, data, models

STEP = """\
# %% [markdown]
# # 01 · Step

# %% tags=["parameters"]
run_dir: str = ""
epochs: int = 1

# %%
print(epochs)
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
        written: files the case may create or replace (all others stay as they
            were, byte for byte).
        check: optional extra check of the folder after the run.
    """

    name: str
    make: Callable[[Path], object]
    argv: list[str]
    code: int = 1
    culprit: str | None = None
    written: set[str] = field(default_factory=set)
    check: Callable[[Path], None] | None = None


def output_shape(expected: tuple[int, int, int]) -> Callable[[Path], None]:
    def check(folder: Path) -> None:
        assert data.read_image(folder / "out.png").shape == expected

    return check


def exif_rotated(folder: Path) -> None:
    exif = Image.Exif()
    exif[data.EXIF_ORIENTATION_TAG] = 6  # stored landscape, shown portrait
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
        culprit="'out.png'",
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
]


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
    assert len(CASES) >= 20
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capfd, model_file):
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    case.make(folder)
    argv = list(case.argv)
    if argv[0] == "upscale" and "--model-file" not in argv:
        argv += ["--model-file", str(model_file)]
    before = snapshot(folder)
    capfd.readouterr()

    code = cli.main(argv)

    out, err = capfd.readouterr()
    assert code == case.code, (out, err)
    if case.culprit is None:
        assert err == "", err
        assert out.startswith("wrote ")
    else:
        lines = err.splitlines()
        assert len(lines) == 1 and err.endswith("\n"), err
        assert lines[0].startswith("srkit: error: "), err
        assert case.culprit in lines[0], err
    after = snapshot(folder)
    kept = {name: digest for name, digest in before.items() if name not in case.written}
    assert {name: after.get(name) for name in kept} == kept, (
        "a file was lost or changed"
    )
    assert set(after) - set(before) <= case.written, "unexpected new files"
    if case.check is not None:
        case.check(folder)
