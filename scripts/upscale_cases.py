"""Replay the kinds of input users give `srkit upscale` and `srkit run`, as users do.

Each case makes its inputs in a temporary folder, runs the command line in a fresh
process and checks the outcome. A case passes when the result is right (alpha kept,
16 bits kept, orientation and metadata carried, no seams, a whole folder done) or when
srkit refuses in one line naming the problem, with no traceback, and in every case no
file is lost and no partial file is left. One row per case, then a count; the exit
status is 1 if a case failed.

    python scripts/upscale_cases.py            # every case (about 3 minutes on 2 cores)
    python scripts/upscale_cases.py -k alpha   # the cases whose name contains 'alpha'

The shipped model does the upscaling (no run folder needed). Not replayed here, with
the tests that cover them: the container memory limit (tests/test_upscale_inputs.py)
and a failed run replacing another run's pages (tests/test_pipeline.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet backends, here and below
ROOT = Path(__file__).resolve().parents[1]
# Lines the backends write to stderr on start-up; the rest is srkit's.
NOISE = (
    "I0000",
    "W0000",
    "WARNING: All log",
    "E0000",
    "oneDNN",
    "cuda",
    "AVX",
    "rebuild",
)
TIMEOUT = 300


class Case:
    """One case: its name, what is expected, and a check returning (ok, outcome)."""

    def __init__(self, name: str, expected: str, check: Callable[[Path], tuple]):
        self.name, self.expected, self.check = name, expected, check


CASES: list[Case] = []


def case(name: str, expected: str):
    def register(check):
        CASES.append(Case(name, expected, check))
        return check

    return register


# --------------------------------------------------------------------- helpers


def srkit(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "srkit", *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def messages(stderr: str) -> list[str]:
    """srkit's own stderr lines (the backends' start-up noise left out)."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not any(mark in line for mark in NOISE)
    ]


def refused(result: subprocess.CompletedProcess, *words: str) -> tuple[bool, str]:
    """A one-line refusal: non-zero status, no traceback, the last line names
    every word."""
    lines = messages(result.stderr)
    last = lines[-1] if lines else "(nothing on stderr)"
    ok = (
        result.returncode != 0
        and "Traceback" not in result.stderr
        and all(word.lower() in last.lower() for word in words)
    )
    return ok, f"exit {result.returncode}: {last[:150]}"


def succeeded(result: subprocess.CompletedProcess) -> tuple[bool, str]:
    lines = messages(result.stderr)
    note = f" ({lines[-1][:100]})" if lines else ""
    return result.returncode == 0, f"exit {result.returncode}{note}"


def photo(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random RGB uint8 image (blurred noise), like a small photo."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    return np.asarray(image)


def save(array: np.ndarray, path: Path, **options) -> Path:
    Image.fromarray(array).save(path, **options)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files srkit would have left behind."""
    return [p.name for p in folder.rglob(".*") if "tmp" in p.name]


def read_back(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def icc_and_exif(tmp: Path) -> tuple[bytes, bytes]:
    """A small sRGB-like ICC profile and an EXIF block naming a camera make."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "srkit-case-camera"  # Make
    return icc, exif.tobytes()


# ----------------------------------------------------------------- input kinds


@case("rgba_png", "alpha kept, transparent pixels stay transparent")
def _(tmp):
    rgba = np.dstack([photo(), np.full((48, 64), 255, np.uint8)])
    rgba[:, :32, 3] = 0
    rgba[:, :32, :3] = (255, 0, 0)  # a colour hidden under the transparent half
    source = save(rgba, tmp / "in.png")
    result = srkit("upscale", source, tmp / "out.png", cwd=tmp)
    ok, outcome = succeeded(result)
    if not ok:
        return ok, outcome
    out = np.asarray(read_back(tmp / "out.png"))
    ok = out.shape == (96, 128, 4) and out[:, :56, 3].max() <= 8
    return ok, f"{out.shape}, left alpha max {out[:, :56, 3].max()}"


@case("la_png", "grey + alpha kept")
def _(tmp):
    grey = photo()[..., 0]
    la = Image.fromarray(np.dstack([grey, np.full_like(grey, 128)]), "LA")
    la.save(tmp / "in.png")
    ok, outcome = succeeded(srkit("upscale", tmp / "in.png", tmp / "out.png", cwd=tmp))
    if not ok:
        return ok, outcome
    out = read_back(tmp / "out.png")
    alpha = np.asarray(out.convert("RGBA"))[..., 3]
    ok = "A" in out.mode and abs(int(np.median(alpha)) - 128) <= 2
    return ok, f"mode {out.mode}, median alpha {int(np.median(alpha))}"


@case("palette_transparency", "the transparent palette entry stays transparent")
def _(tmp):
    image = Image.fromarray(photo()).quantize(15)  # entries 0-14; 15 is transparent
    pixels = np.asarray(image).copy()
    pixels[:, :32] = 15
    palette = image.getpalette()[: 15 * 3] + [255, 0, 0]  # red, hidden
    paletted = Image.fromarray(pixels, "P")
    paletted.putpalette(palette)
    paletted.save(tmp / "in.png", transparency=15)
    ok, outcome = succeeded(srkit("upscale", tmp / "in.png", tmp / "out.png", cwd=tmp))
    if not ok:
        return ok, outcome
    out = np.asarray(read_back(tmp / "out.png").convert("RGBA"))
    ok = out[:, :56, 3].max() <= 8 and out[:, 72:, 3].min() >= 247
    return (
        ok,
        f"left alpha max {out[:, :56, 3].max()}, right min {out[:, 72:, 3].min()}",
    )


@case("rgba_webp", "alpha kept in a WebP")
def _(tmp):
    rgba = np.dstack([photo(), np.full((48, 64), 255, np.uint8)])
    rgba[:, :32, 3] = 0
    save(rgba, tmp / "in.webp", lossless=True)
    result = srkit("upscale", tmp / "in.webp", tmp / "out.webp", cwd=tmp)
    ok, outcome = succeeded(result)
    if not ok:
        return ok, outcome
    out = np.asarray(read_back(tmp / "out.webp").convert("RGBA"))
    return out[:, :56, 3].max() <= 8, f"left alpha max {out[:, :56, 3].max()}"


@case("rgba_bmp", "alpha kept, or one line saying it cannot be")
def _(tmp):
    import cv2

    rgba = np.dstack([photo(), np.full((48, 64), 255, np.uint8)])
    rgba[:, :32, 3] = 0
    # OpenCV writes a BMP whose header declares the alpha channel (a BITFIELDS
    # mask); Pillow's 32-bit BMP leaves the fourth byte undefined, and readers
    # (Pillow's own included) take it for RGB.
    cv2.imwrite(str(tmp / "in.bmp"), rgba)
    result = srkit("upscale", tmp / "in.bmp", tmp / "out.png", cwd=tmp)
    if result.returncode != 0:
        return refused(result)
    out = np.asarray(read_back(tmp / "out.png").convert("RGBA"))
    return out[:, :56, 3].max() <= 8, f"left alpha max {out[:, :56, 3].max()}"


@case("dark_16bit_png", "written at 16 bits, its levels kept (not 5 of 256)")
def _(tmp):
    import cv2

    ramp = np.linspace(0, 1000, 64, dtype=np.float64)
    deep = np.broadcast_to(ramp[None, :, None], (48, 64, 3)).astype(np.uint16)
    cv2.imwrite(str(tmp / "in.png"), deep)
    ok, outcome = succeeded(srkit("upscale", tmp / "in.png", tmp / "out.png", cwd=tmp))
    if not ok:
        return ok, outcome
    out = cv2.imread(str(tmp / "out.png"), cv2.IMREAD_UNCHANGED)
    levels = len(np.unique(out))
    ok = out.dtype == np.uint16 and levels > 100 and out.max() < 4000
    return ok, f"{out.dtype}, {levels} levels, max {out.max()}"


@case("16bit_tiff", "16-bit TIFF in, 16-bit TIFF out")
def _(tmp):
    import cv2

    deep = (photo().astype(np.uint16) * 257).astype(np.uint16)
    cv2.imwrite(str(tmp / "in.tiff"), deep)
    result = srkit("upscale", tmp / "in.tiff", tmp / "out.tiff", cwd=tmp)
    ok, outcome = succeeded(result)
    if not ok:
        return ok, outcome
    out = cv2.imread(str(tmp / "out.tiff"), cv2.IMREAD_UNCHANGED)
    return out.dtype == np.uint16 and out.shape[:2] == (
        96,
        128,
    ), f"{out.dtype} {out.shape}"


@case("grey_png", "a greyscale photo upscaled")
def _(tmp):
    save(photo()[..., 0], tmp / "in.png")
    ok, outcome = succeeded(srkit("upscale", tmp / "in.png", tmp / "out.png", cwd=tmp))
    if not ok:
        return ok, outcome
    out = read_back(tmp / "out.png")
    return out.size == (128, 96), f"mode {out.mode}, size {out.size}"


@case("cmyk_jpeg", "colours right (within 12/255 of Pillow's RGB)")
def _(tmp):
    rgb = Image.fromarray(photo())
    rgb.convert("CMYK").save(tmp / "in.jpg", quality=95)
    reference = np.asarray(Image.open(tmp / "in.jpg").convert("RGB"), np.float64)
    ok, outcome = succeeded(srkit("upscale", tmp / "in.jpg", tmp / "out.png", cwd=tmp))
    if not ok:
        return ok, outcome
    out = np.asarray(read_back(tmp / "out.png").convert("RGB"), np.float64)
    shrunk = np.asarray(
        Image.fromarray(out.astype(np.uint8)).resize((64, 48), Image.BOX), np.float64
    )
    error = np.abs(shrunk.mean((0, 1)) - reference.mean((0, 1))).max()
    return error <= 12, f"mean colour off by {error:.1f}/255"


@case("exif_orientation_6", "the photo turned as a viewer shows it")
def _(tmp):
    exif = Image.Exif()
    exif[0x0112] = 6
    save(photo(), tmp / "in.jpg", exif=exif.tobytes(), quality=95)
    ok, outcome = succeeded(srkit("upscale", tmp / "in.jpg", tmp / "out.png", cwd=tmp))
    if not ok:
        return ok, outcome
    size = read_back(tmp / "out.png").size
    return size == (96, 128), f"output {size[0]}x{size[1]} (stored 64x48, shown 48x64)"


def _metadata_case(extension: str):
    def check(tmp):
        icc, exif = icc_and_exif(tmp)
        save(photo(), tmp / "in.jpg", icc_profile=icc, exif=exif, quality=95)
        out = tmp / f"out{extension}"
        ok, outcome = succeeded(srkit("upscale", tmp / "in.jpg", out, cwd=tmp))
        if not ok:
            return ok, outcome
        image = read_back(out)
        kept_icc = image.info.get("icc_profile") == icc
        kept_make = image.getexif().get(0x010F) == "srkit-case-camera"
        return (
            kept_icc and kept_make,
            f"ICC kept {kept_icc}, EXIF Make kept {kept_make}",
        )

    return check


for _extension in (".png", ".jpg", ".webp", ".tiff"):
    case(f"icc_exif_to{_extension}", "ICC profile and EXIF carried")(
        _metadata_case(_extension)
    )


@case("icc_exif_to.bmp", "written, with one note that BMP cannot hold them")
def _(tmp):
    icc, exif = icc_and_exif(tmp)
    save(photo(), tmp / "in.jpg", icc_profile=icc, exif=exif, quality=95)
    result = srkit("upscale", tmp / "in.jpg", tmp / "out.bmp", cwd=tmp)
    noted = any("bmp" in line.lower() for line in messages(result.stderr))
    ok = result.returncode == 0 and (tmp / "out.bmp").exists() and noted
    return ok, f"exit {result.returncode}, note {'given' if noted else 'missing'}"


def _animated(tmp, extension: str):
    frames = [Image.fromarray(photo(seed=seed)) for seed in range(2)]
    path = tmp / f"in{extension}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


for _extension in (".gif", ".webp", ".tiff"):

    def _check(tmp, extension=_extension):
        path = _animated(tmp, extension)
        result = srkit("upscale", path, tmp / "out.png", cwd=tmp)
        ok, outcome = refused(result, path.name)
        return ok and not (tmp / "out.png").exists(), outcome

    case(f"animated{_extension}", "refused in one line naming the file")(_check)


@case("single_frame_gif", "a still GIF is read alone and in a folder alike")
def _(tmp):
    (tmp / "in").mkdir()
    Image.fromarray(photo()).save(tmp / "in" / "still.gif")
    alone = srkit("upscale", tmp / "in" / "still.gif", tmp / "alone.png", cwd=tmp)
    folder = srkit("upscale", tmp / "in", tmp / "out", cwd=tmp)
    outputs = (
        sorted(p.name for p in (tmp / "out").glob("*"))
        if (tmp / "out").exists()
        else []
    )
    # srkit writes no GIF: a folder's GIF comes out as a PNG of the same name
    ok = alone.returncode == 0 and folder.returncode == 0 and outputs == ["still.png"]
    return (
        ok,
        f"alone exit {alone.returncode}, folder exit {folder.returncode}, {outputs}",
    )


@case("float_tiff", "a float32 TIFF upscaled or refused in one line")
def _(tmp):
    import cv2

    cv2.imwrite(str(tmp / "in.tiff"), photo().astype(np.float32) / 255)
    result = srkit("upscale", tmp / "in.tiff", tmp / "out.png", cwd=tmp)
    if result.returncode == 0:
        return (tmp / "out.png").exists(), "upscaled"
    return refused(result)


@case("not_an_image", "refused in one line naming the file")
def _(tmp):
    (tmp / "notes.png").write_text("not a picture")
    return refused(
        srkit("upscale", tmp / "notes.png", tmp / "out.png", cwd=tmp), "notes.png"
    )


# ---------------------------------------------------------------------- folders


def _folder(tmp: Path, count: int = 4, side: int = 48) -> Path:
    folder = tmp / "in"
    folder.mkdir()
    for index in range(count):
        save(photo(side, side, seed=index), folder / f"p{index}.jpg", quality=95)
    (folder / "._p0.jpg").write_bytes(b"\x00\x05\x16\x07 Mac resource fork")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    return folder


@case("folder_with_bad_and_mac_files", "photos done, ._ skipped, the bad one named")
def _(tmp):
    folder = _folder(tmp)
    result = srkit("upscale", folder, tmp / "out", cwd=tmp)
    outputs = sorted(p.name for p in (tmp / "out").iterdir())
    named = "broken.jpg" in result.stderr
    ok = result.returncode == 1 and outputs == [f"p{i}.jpg" for i in range(4)] and named
    summary = messages(result.stderr)[-1][:110] if messages(result.stderr) else ""
    return ok, f"exit {result.returncode}, {len(outputs)} outputs; {summary}"


@case("folder_rerun_resumes", "a rerun skips what exists and redoes nothing")
def _(tmp):
    folder = _folder(tmp)
    srkit("upscale", folder, tmp / "out", cwd=tmp)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp / "out").iterdir()}
    again = srkit("upscale", folder, tmp / "out", cwd=tmp)
    same = stamps == {p.name: p.stat().st_mtime_ns for p in (tmp / "out").iterdir()}
    return same and again.returncode == 1, f"untouched {same}, exit {again.returncode}"


@case("recursive_tree", "--recursive mirrors the tree")
def _(tmp):
    (tmp / "in" / "sub").mkdir(parents=True)
    save(photo(), tmp / "in" / "a.png")
    save(photo(seed=1), tmp / "in" / "sub" / "b.png")
    result = srkit("upscale", tmp / "in", tmp / "out", "--recursive", cwd=tmp)
    ok = result.returncode == 0 and (tmp / "out" / "sub" / "b.png").exists()
    return ok, f"exit {result.returncode}, sub/b.png {'written' if ok else 'missing'}"


def _photo_as_out(extension: str):
    """`srkit upscale a.EXT b.EXT --overwrite`, as a shell glob gives two photos:
    b is another photo, never replaced."""

    def check(tmp):
        source = save(photo(), tmp / f"a{extension}")
        other = save(photo(seed=1), tmp / f"b{extension}")
        before = digest(other)
        result = srkit("upscale", source, other, "--overwrite", cwd=tmp)
        ok, outcome = refused(result)
        return ok and digest(other) == before, outcome

    return check


case("two_jpegs_overwrite", "a photo as OUT is refused, nothing lost")(
    _photo_as_out(".jpg")
)
case("two_pngs_overwrite", "a photo as OUT is refused, nothing lost")(
    _photo_as_out(".png")
)


@case("folder_as_out", "an existing folder as OUT receives the file")
def _(tmp):
    source = save(photo(), tmp / "a.png")
    (tmp / "out").mkdir()
    result = srkit("upscale", source, tmp / "out", cwd=tmp)
    ok = result.returncode == 0 and (tmp / "out" / "a.png").exists()
    return ok, f"exit {result.returncode}"


@case("quoted_tilde", "'~/x.png' goes to the home folder, never ./~/")
def _(tmp):
    home = tmp / "home"
    home.mkdir()
    source = save(photo(), tmp / "a.png")
    result = srkit("upscale", source, "~/x.png", cwd=tmp, env={"HOME": str(home)})
    ok = (home / "x.png").exists() and not (tmp / "~").exists()
    return ok, f"exit {result.returncode}, home/x.png {(home / 'x.png').exists()}"


# ----------------------------------------------------------- limits and faults


@case("name_too_long", "refused before inference, naming the name")
def _(tmp):
    source = save(photo(), tmp / "a.png")
    name = "x" * 251 + ".png"
    result = srkit("upscale", source, tmp / name, cwd=tmp)
    ok, outcome = refused(result)
    return ok and not leftovers(tmp), outcome


@case("webp_too_wide", "refused before inference (WebP holds 16383 px)")
def _(tmp):
    source = save(photo(48, 4200), tmp / "wide.png")
    started = time.perf_counter()
    result = srkit("upscale", source, tmp / "out.webp", "--scale", "4", cwd=tmp)
    ok, outcome = refused(result, "16383")
    return ok and not (
        tmp / "out.webp"
    ).exists(), f"{outcome} ({time.perf_counter() - started:.0f} s)"


def _model_file(tmp: Path, kind: str) -> Path:
    """A model file: 'nan' (NaN weights) or 'batchnorm' (a receptive field no
    layer list gives)."""
    import keras

    from srkit import layers as srkit_layers
    from srkit import models

    if kind == "nan":
        model = models.build("simple_model_bilinear", seed=0)
        weights = model.get_weights()
        weights[0][...] = np.nan
        model.set_weights(weights)
    else:
        inputs = keras.Input((None, None, 3))
        x = keras.layers.Conv2D(12, 3, padding="same")(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Conv2D(12, 5, padding="same", dilation_rate=3)(x)
        x = srkit_layers.DepthToSpace(2, name="low_upsample")(x)
        model = keras.Model(inputs, x)
        model(np.random.default_rng(0).random((1, 8, 8, 3)).astype("float32"))
    path = tmp / f"{kind}.keras"
    model.save(path)
    return path


@case("nan_model", "an error, not a black image")
def _(tmp):
    model = _model_file(tmp, "nan")
    source = save(photo(), tmp / "a.png")
    result = srkit("upscale", source, tmp / "out.png", "--model-file", model, cwd=tmp)
    ok, outcome = refused(result)
    return ok and not (tmp / "out.png").exists(), outcome


@case("batchnorm_model_tiles", "tiled = whole image within 1/255 (no seams)")
def _(tmp):
    model = _model_file(tmp, "batchnorm")
    source = save(photo(160, 200), tmp / "a.png")
    tiled = srkit(
        "upscale",
        source,
        tmp / "tiled.png",
        "--model-file",
        model,
        "--tile",
        "40",
        cwd=tmp,
    )
    whole = srkit(
        "upscale",
        source,
        tmp / "whole.png",
        "--model-file",
        model,
        "--tile",
        "0",
        cwd=tmp,
    )
    if tiled.returncode or whole.returncode:
        last = messages(tiled.stderr + whole.stderr)[-1:]
        return False, f"exit {tiled.returncode}/{whole.returncode}: {last}"
    a = np.asarray(read_back(tmp / "tiled.png"), np.int16)
    b = np.asarray(read_back(tmp / "whole.png"), np.int16)
    difference = int(np.abs(a - b).max())
    return difference <= 1, f"largest difference {difference}/255"


@case("sigterm_mid_batch", "exit 143, counts said, no partial file left")
def _(tmp):
    folder = tmp / "in"
    folder.mkdir()
    for index in range(12):
        save(photo(400, 400, seed=index), folder / f"p{index:02d}.png")
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "srkit", "upscale", str(folder), str(tmp / "out")],
        cwd=tmp,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while True:  # wait for the first written file, then stop it midway
        line = process.stdout.readline()
        if not line or "wrote" in line:
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=TIMEOUT)
    lines = messages(stderr)
    counted = any("written" in line and "not started" in line for line in lines)
    partial = leftovers(tmp / "out")
    ok = process.returncode == 143 and counted and not partial
    said = "said" if counted else "missing"
    return ok, f"exit {process.returncode}, counts {said}, leftovers {partial}"


# --------------------------------------------------------------------- profiles


def _profile_case(text: str, *words: str):
    def check(tmp):
        profile = tmp / "mine.yaml"
        profile.write_text(text)
        result = srkit(
            "run", "--project", ROOT, "--profile", profile, "--dry-run", cwd=tmp
        )
        return refused(result, "mine.yaml", *words)

    return check


case("profile_default_for_defaults", "one line naming the key and 'defaults'")(
    _profile_case("default:\n  steps: 4\n", "default", "defaults")
)
case("profile_misspelled_parameter", "one line naming it and 'steps'")(
    _profile_case("defaults:\n  stesp: 4\n", "stesp", "steps")
)
case("profile_unknown_step", "one line naming step 99")(
    _profile_case('per_step:\n  "99": {steps: 4}\n', "99")
)
case("profile_step_not_a_mapping", "one line naming step 02")(
    _profile_case('per_step:\n  "02": fast\n', "02")
)


@case("dry_run_shows_values", "--dry-run lists each step's resolved values")
def _(tmp):
    result = srkit(
        "run",
        "--project",
        ROOT,
        "--profile",
        "smoke",
        "-p",
        "05.steps=7",
        "--dry-run",
        cwd=tmp,
    )
    ok = result.returncode == 0 and "steps=7" in result.stdout
    return ok, f"exit {result.returncode}, 'steps=7' {'shown' if ok else 'missing'}"


@case("heartbeat_inf", "one line, no thread traceback")
def _(tmp):
    result = srkit("run", "--project", ROOT, "--heartbeat", "inf", "--dry-run", cwd=tmp)
    return refused(result, "heartbeat")


# ------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-k", default="", help="only the cases whose name contains this"
    )
    arguments = parser.parse_args(argv)
    chosen = [c for c in CASES if arguments.k in c.name]
    failed = 0
    print(f"{'case':32} {'ok':4} outcome  [expected]")
    for item in chosen:
        with tempfile.TemporaryDirectory(prefix="srkit-case-") as folder:
            try:
                ok, outcome = item.check(Path(folder))
            except Exception as error:  # the replay itself broke: report, go on
                ok, outcome = False, f"replay error {type(error).__name__}: {error}"
        failed += not ok
        print(
            f"{item.name:32} {'yes' if ok else 'NO':4} {outcome}  [{item.expected}]",
            flush=True,
        )
    print(
        f"\n{len(chosen) - failed} of {len(chosen)} cases right or refused in one line"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
