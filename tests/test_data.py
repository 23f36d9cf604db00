"""Tests for srkit.images (image I/O, MATLAB bicubic resizing), srkit.windows and
srkit.data (sources, splits, cache), and the VOC 2007 download."""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import tarfile
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from srkit import data, downloads, images, layout, windows

FIXTURES = Path(__file__).resolve().parent / "data"


def shared_data_dir() -> Path:
    """The project's shared data: $SRKIT_SHARED_DATA or <repo>/../shared/data."""
    env = os.environ.get("SRKIT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def write_noise(path: Path, height: int, width: int, seed: int = 0) -> Path:
    """A random uint8 colour image file (any extension cv2 knows)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels)
    return path


def assert_splits_equal(first: data.Split, second: data.Split) -> None:
    for side in ("train", "val"):
        a, b = getattr(first, side), getattr(second, side)
        assert type(a) is type(b) and a.names == b.names
        arrays = ("x_u8", "y2_u8", "y4_u8") if side == "train" else ("x", "y2", "y4")
        for name in arrays:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# ------------------------------------------------------------------ read / write


def test_read_image_bgr_order_pure_red():
    image = images.read_image(FIXTURES / "red_8x6.png")
    assert image.shape == (6, 8, 3) and image.dtype == np.float32
    np.testing.assert_array_equal(image[..., 0], 1.0)
    np.testing.assert_array_equal(image[..., 1:], 0.0)


def test_read_image_gray_becomes_rgb():
    image = images.read_image(FIXTURES / "gray_8x6.png")
    assert image.shape == (6, 8, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    np.testing.assert_allclose(image[0, :, 1], np.arange(0, 256, 32) / 255.0, atol=1e-7)


def test_read_image_rgba_drops_alpha():
    image = images.read_image(FIXTURES / "bgra_blue_8x6.png")
    assert image.shape == (6, 8, 3)
    np.testing.assert_array_equal(image[..., 2], 1.0)  # blue, whatever the alpha
    np.testing.assert_array_equal(image[..., :2], 0.0)


def test_read_image_16_bit_scaled_by_65535():
    image = images.read_image(FIXTURES / "green16_8x6.png")
    assert image.dtype == np.float32 and image.max() <= 1.0
    np.testing.assert_array_equal(image[1:, :, 1], 1.0)
    assert image[0, 0, 1] == pytest.approx(32768 / 65535, abs=1e-7)
    np.testing.assert_array_equal(image[..., [0, 2]], 0.0)


def quadrants(height: int = 16, width: int = 24) -> np.ndarray:
    """uint8 RGB with four flat colours, one per quadrant (8x8 JPEG blocks)."""
    image = np.zeros((height, width, 3), np.uint8)
    top, left = height // 2, width // 2
    image[:top, :left] = (255, 0, 0)
    image[:top, left:] = (0, 255, 0)
    image[top:, :left] = (0, 0, 255)
    image[top:, left:] = (255, 255, 255)
    return image


def save_with_orientation(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    from PIL import Image

    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION_TAG] = orientation
    options = {".jpg": {"quality": 95}, ".webp": {"lossless": True}}
    Image.fromarray(pixels).save(
        path, exif=exif.tobytes(), **options.get(path.suffix, {})
    )
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_applies_the_exif_orientation(tmp_path, orientation):
    from PIL import Image, ImageOps

    path = save_with_orientation(tmp_path / "photo.jpg", quadrants(), orientation)
    image = images.read_image(path)
    with Image.open(path) as opened:
        shown = np.asarray(ImageOps.exif_transpose(opened), np.float32) / 255.0
    assert (
        image.shape == shown.shape == ((24, 16, 3) if orientation > 4 else (16, 24, 3))
    )
    np.testing.assert_allclose(image, shown, atol=0.05)  # two JPEG decoders


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_read_image_orientation_of_png_and_webp(tmp_path, suffix):
    path = save_with_orientation(tmp_path / f"photo{suffix}", quadrants(), 6)
    image = images.read_image(path)
    expected = np.rot90(quadrants(), -1).astype(np.float32) / 255.0
    np.testing.assert_array_equal(image, expected)


def test_read_image_keeps_16_bit_alpha_palette_and_gray_alpha(tmp_path):
    from PIL import Image

    image = images.read_image(FIXTURES / "green16_8x6.png")  # 16 bits, no rounding
    assert image[0, 0, 1] == pytest.approx(32768 / 65535, abs=1e-7)
    Image.fromarray(quadrants()).convert("P").save(tmp_path / "palette.png")
    np.testing.assert_array_equal(
        images.read_image(tmp_path / "palette.png"), quadrants() / 255.0
    )
    Image.fromarray(quadrants()).convert("LA").save(tmp_path / "gray_alpha.png")
    gray = images.read_image(tmp_path / "gray_alpha.png")
    assert gray.shape == (16, 24, 3)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    Image.fromarray(quadrants()).convert("CMYK").save(tmp_path / "cmyk.jpg")
    np.testing.assert_allclose(
        images.read_image(tmp_path / "cmyk.jpg"), quadrants() / 255.0, atol=0.05
    )


@pytest.mark.parametrize(
    "name, reason",
    [
        ("missing.png", "no such file"),
        ("empty.png", "empty"),
        ("not_an_image.png", "cannot decode"),
        ("a_folder.png", "directory"),
    ],
)
def test_read_image_errors_name_file_and_reason(tmp_path, name, reason):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "not_an_image.png").write_bytes(
        (FIXTURES / "not_an_image.png").read_bytes()
    )
    (tmp_path / "a_folder.png").mkdir()
    with pytest.raises(ValueError, match=reason) as info:
        images.read_image(tmp_path / name)
    assert name in str(info.value)


def test_write_then_read_roundtrip(tmp_path):
    image = np.random.default_rng(1).random((5, 7, 3)).astype(np.float32)
    path = images.write_image(tmp_path / "sub" / "out.png", image)
    back = images.read_image(path)
    np.testing.assert_allclose(back, np.rint(image * 255) / 255, atol=1e-6)
    # Out-of-range values are clipped, not wrapped.
    images.write_image(tmp_path / "clip.png", np.full((2, 2, 3), 1.7))
    np.testing.assert_array_equal(images.read_image(tmp_path / "clip.png"), 1.0)


def test_write_image_rejects_bad_shape_and_extension(tmp_path):
    with pytest.raises(ValueError, match=r"\(h, w, 3\)"):
        images.write_image(tmp_path / "a.png", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="extension"):
        images.write_image(tmp_path / "a.txt", np.zeros((4, 4, 3)))


def test_write_image_takes_uint8_as_pixels(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, (3, 5, 3), np.uint8)
    original = pixels.copy()
    path = images.write_image(tmp_path / "u8.png", pixels)
    np.testing.assert_array_equal(np.rint(images.read_image(path) * 255), pixels)
    np.testing.assert_array_equal(pixels, original)  # swapped to BGR and back
    read_only = original.copy()
    read_only.flags.writeable = False
    images.write_image(tmp_path / "ro.png", read_only)
    ro_back = images.read_image(tmp_path / "ro.png")
    np.testing.assert_array_equal(ro_back, images.read_image(path))


@pytest.mark.parametrize("failing", ["encode", "write", "rename"])
def test_write_image_failure_keeps_the_old_file(tmp_path, monkeypatch, failing):
    target = tmp_path / "out.png"
    images.write_image(target, np.zeros((4, 4, 3)))
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    def half_written(name, pixels):  # a full disk in the middle of the file
        Path(name).write_bytes(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    if failing == "encode":
        monkeypatch.setattr(images.cv2, "imwrite", lambda *a: False)
        expected = ValueError
    elif failing == "write":
        monkeypatch.setattr(images.cv2, "imwrite", half_written)
        expected = OSError
    else:
        monkeypatch.setattr(os, "replace", fail)
        expected = OSError
    with pytest.raises(expected):
        images.write_image(target, np.ones((4, 4, 3)))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_image_without_overwrite_keeps_an_existing_file(tmp_path):
    target = images.write_image(tmp_path / "out.png", np.zeros((2, 2, 3)))
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match="out.png"):
        images.write_image(target, np.ones((2, 2, 3)), overwrite=False)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


# ------------------------------------------------------------------------ resize


def matlab_resize_axis_loop(signal: np.ndarray, out_length: int, scale: float):
    """Direct, pixel-by-pixel port of MATLAB's imresize ``contributions`` (1-D)."""

    def cubic(x):
        x = abs(x)
        if x <= 1:
            return 1.5 * x**3 - 2.5 * x**2 + 1
        if x <= 2:
            return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
        return 0.0

    n = len(signal)
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros((out_length,) + signal.shape[1:])
    for x in range(1, out_length + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + k for k in range(math.ceil(width) + 2)]
        if scale < 1:
            weights = [scale * cubic(scale * (u - j)) for j in taps]
        else:
            weights = [cubic(u - j) for j in taps]
        total = sum(weights)
        for j, weight in zip(taps, weights, strict=True):
            # Symmetric boundary: mirror with the edge pixel repeated.
            while j < 1 or j > n:
                j = 1 - j if j < 1 else 2 * n + 1 - j
            out[x - 1] += weight / total * signal[j - 1]
    return out


def matlab_resize_loop(image: np.ndarray, out_shape, scale_h, scale_w):
    rows = matlab_resize_axis_loop(image, out_shape[0], scale_h)
    columns = matlab_resize_axis_loop(rows.transpose(1, 0, 2), out_shape[1], scale_w)
    return columns.transpose(1, 0, 2)


@pytest.mark.parametrize(
    "shape, scale, out_shape",
    [
        ((12, 16), 0.5, (6, 8)),
        ((12, 16), 0.25, (3, 4)),
        ((7, 9), 2.0, (14, 18)),
        ((5, 6), 3.0, (15, 18)),
        ((13, 11), 1 / 3, (5, 4)),  # ceil(13/3), ceil(11/3)
    ],
)
def test_imresize_matches_slow_loop_implementation(shape, scale, out_shape):
    image = np.random.default_rng(2).random(shape + (3,)).astype(np.float32)
    ours = images.imresize(image, scale=scale)
    assert ours.shape == out_shape + (3,) and ours.dtype == np.float32
    expected = matlab_resize_loop(image.astype(np.float64), out_shape, scale, scale)
    np.testing.assert_allclose(ours, expected, atol=2e-6)


def test_imresize_output_shape_uses_per_axis_scale():
    image = np.random.default_rng(3).random((10, 20, 3)).astype(np.float32)
    ours = images.imresize(image, output_shape=(4, 15))
    expected = matlab_resize_loop(image.astype(np.float64), (4, 15), 0.4, 0.75)
    np.testing.assert_allclose(ours, expected, atol=2e-6)


def test_bicubic_upscale_hand_computed_edge_value():
    # 1-D row [0, 1, 0, 0] upscaled x2: the first output samples u = 0.75 (1-based),
    # taps at 0 and -1 mirror to pixels 1 and 2, so pixel 2 (value 1) gets
    # k(1.75) + k(-1.25) = -0.0234375 - 0.0703125 = -0.09375 with a = -0.5.
    row = np.zeros((1, 4, 3), np.float32)
    row[0, 1] = 1.0
    out = images.bicubic_upscale(row, 2)
    assert out.shape == (2, 8, 3)
    assert out[0, 0, 0] == pytest.approx(-0.09375, abs=1e-6)
    # Second output, u = 1.25: pixel 2 sits at distance 0.75, k(0.75) = 0.2265625;
    # the other taps (pixels 1, 1 mirrored, 3) hold zeros.
    assert out[0, 1, 0] == pytest.approx(0.2265625, abs=1e-6)


def test_downscale_constant_stays_constant():
    stack = np.full((2, 24, 36, 3), 0.3, np.float32)
    for factor in (2, 3, 4):
        out = images.downscale(stack, factor)
        assert out.shape == (2, 24 // factor, 36 // factor, 3)
        np.testing.assert_allclose(out, 0.3, atol=1e-6)


def test_downscale_crops_to_multiple_and_single_image():
    image = np.random.default_rng(4).random((29, 30, 3)).astype(np.float32)
    out = images.downscale(image, 4)
    assert out.shape == (7, 7, 3)
    np.testing.assert_allclose(out, images.downscale(image[:28, :28], 4), atol=1e-6)


def test_bicubic_upscale_shape_batch_and_linear_ramp():
    stack = np.random.default_rng(5).random((3, 6, 5, 3)).astype(np.float32)
    assert images.bicubic_upscale(stack, 4).shape == (3, 24, 20, 3)
    # Bicubic reproduces a linear ramp away from the borders.
    ramp = np.tile(np.arange(10, dtype=np.float32)[None, :, None], (4, 1, 3))
    out = images.bicubic_upscale(ramp, 2)
    expected = (np.arange(20) + 0.5) / 2 - 0.5
    np.testing.assert_allclose(out[0, 4:-4, 0], expected[4:-4], atol=1e-5)


def test_batch_equals_single_images():
    stack = np.random.default_rng(6).random((3, 16, 12, 3)).astype(np.float32)
    batch = images.downscale(stack, 2)
    for index in range(3):
        np.testing.assert_allclose(
            batch[index], images.downscale(stack[index], 2), rtol=1e-6
        )


@pytest.mark.parametrize("factor", [0, -2, 1.5, True])
def test_bad_factor_raises(factor):
    with pytest.raises(ValueError, match="factor"):
        images.downscale(np.zeros((8, 8, 3)), factor)


def test_imresize_bad_rank_raises():
    with pytest.raises(ValueError, match="shape|got"):
        images.imresize(np.zeros((8, 8)), scale=0.5)


def _psnr_255(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


@pytest.mark.parametrize("benchmark", ["Set5", "Set14"])
def test_downscale_agrees_with_matlab_reference_lr(benchmark):
    root = shared_data_dir()
    hr_dir = root / "benchmarks" / benchmark
    if not (root / "reference_lr" / benchmark).is_dir() or not hr_dir.is_dir():
        pytest.skip(f"shared reference data not found under {root}")
    for scale in (2, 4):
        psnrs, identical = [], []
        for hr_path in sorted(hr_dir.glob("*.png")):
            hr = images.read_image(hr_path)
            height, width = hr.shape[:2]
            hr = hr[: height - height % scale, : width - width % scale]
            ref_path = (
                root
                / "reference_lr"
                / benchmark
                / f"X{scale}"
                / f"{hr_path.stem}x{scale}.png"
            )
            reference = np.rint(images.read_image(ref_path) * 255)
            ours = images.downscale(hr, scale)
            assert ours.shape == reference.shape, hr_path.name
            psnrs.append(_psnr_255(np.clip(np.rint(ours * 255), 0, 255), reference))
            # MATLAB's imresize on uint8 rounds after each axis (rows first; half away
            # from zero). Emulated with our weights, the result is almost bit-exact:
            # this pins the kernel, antialiasing, pixel centres and boundary rule.
            hr8 = np.rint(hr.astype(np.float64) * 255)
            weights_h = images.resize_weights(
                hr8.shape[0], hr8.shape[0] // scale, 1 / scale
            )
            weights_w = images.resize_weights(
                hr8.shape[1], hr8.shape[1] // scale, 1 / scale
            )
            rows = np.clip(
                np.floor(np.einsum("oh,hwc->owc", weights_h, hr8, optimize=True) + 0.5),
                0,
                255,
            )
            emulated = np.clip(
                np.floor(
                    np.einsum("pw,owc->opc", weights_w, rows, optimize=True) + 0.5
                ),
                0,
                255,
            )
            identical.append(np.mean(emulated == reference))
            assert np.abs(emulated - reference).max() <= 1, hr_path.name
        # Measured: mean 56.6-58.0 dB, worst image 55.1 dB (float math, one rounding).
        assert np.mean(psnrs) > 55.0, (benchmark, scale, psnrs)
        assert min(psnrs) > 52.0, (benchmark, scale, psnrs)
        assert min(identical) > 0.985, (benchmark, scale, identical)


# ------------------------------------------------------------------ prepare: args


def test_unknown_source_lists_valid_forms(tmp_path):
    with pytest.raises(ValueError, match="sample.*folder:PATH.*voc2007"):
        data.prepare("imagenet", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="valid forms"):
        data.data_key("folder:")


def test_bad_mode_and_count(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        data.prepare("sample", mode="tile", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="n_images"):
        data.prepare("sample", n_images=1, cache_dir=tmp_path)


def test_folder_missing_and_empty(tmp_path):
    with pytest.raises(ValueError, match="does not exist") as info:
        data.prepare(f"folder:{tmp_path / 'nowhere'}", cache_dir=tmp_path)
    assert "nowhere" in str(info.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"no image files.*\.png"):
        data.prepare(f"folder:{tmp_path / 'empty'}", cache_dir=tmp_path)


def test_folder_skips_unreadable_and_warns(tmp_path):
    folder = tmp_path / "images"
    for index in range(4):
        write_noise(folder / f"img{index}.png", 290, 300, seed=index)
    (folder / "broken.png").write_text("not an image")
    with pytest.warns(UserWarning, match="broken.png"):
        split = data.prepare(
            f"folder:{folder}",
            mode="resize",
            n_images=5,
            seed=0,
            cache_dir=tmp_path / "c",
            progress=False,
        )
    assert len(split.train) + len(split.val) == 4
    assert "broken" not in split.train.names + split.val.names
    assert split.info["mode"] == "resize"


def test_folder_crop_mode_skips_small_images_with_count(tmp_path):
    folder = tmp_path / "images"
    for index in range(3):
        write_noise(folder / "big" / f"b{index}.jpg", 300, 320, seed=index)
    write_noise(folder / "small.bmp", 100, 400)
    with pytest.warns(UserWarning, match=r"skipped 1 image\(s\) smaller than 288"):
        split = data.prepare(
            f"folder:{folder}", n_images=4, mode="crop", cache_dir=tmp_path / "c"
        )
    names = sorted(split.train.names + split.val.names)
    assert names == ["big/b0", "big/b1", "big/b2"]
    assert split.train.y4_u8.shape[1:] == (288, 288, 3)


def test_folder_split_shapes_ranges_and_determinism(tmp_path):
    folder = tmp_path / "images"
    for index in range(10):
        write_noise(folder / f"img{index:02d}.png", 288 + index, 300, seed=index)
    source = f"folder:{folder}"
    with pytest.warns(UserWarning, match="fewer than n_images"):
        split = data.prepare(
            source, mode="resize", n_images=12, seed=3, cache_dir=tmp_path / "a"
        )
    # Sides come from a seeded hash of each name: about 20 % validation, never empty.
    assert len(split.train) + len(split.val) == 10
    assert 1 <= len(split.val) <= 5
    assert split.info["n_train"] == len(split.train)
    assert split.info["n_val"] == len(split.val)
    assert isinstance(split.train, windows.WindowSource)
    for subset in (split.train.take(range(len(split.train))), split.val):
        assert subset.x.shape[1:] == (72, 72, 3) and subset.x.dtype == np.float32
        assert subset.y2.shape[1:] == (144, 144, 3)
        assert subset.y4.shape[1:] == (288, 288, 3)
        for array in (subset.x, subset.y2, subset.y4):
            # Bicubic may overshoot [0, 1] a little on noise, never by much.
            assert -0.3 < array.min() and array.max() < 1.3
    assert not set(split.train.names) & set(split.val.names)
    # The x2 target and the input are 8-bit roundings of the bicubic downscale.
    np.testing.assert_allclose(
        split.val.y2, images.to_8bit(images.downscale(split.val.y4, 2))
    )
    np.testing.assert_allclose(
        split.val.x, images.to_8bit(images.downscale(split.val.y4, 4))
    )
    assert split.val.x.min() >= 0 and split.val.x.max() <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = data.prepare(
            source, mode="resize", n_images=12, seed=3, cache_dir=tmp_path / "b"
        )
        other = data.prepare(
            source, mode="resize", n_images=12, seed=4, cache_dir=tmp_path / "b"
        )
    assert again.info["from_cache"] is False
    assert_splits_equal(split, again)
    assert other.val.names != split.val.names or other.train.names != split.train.names


def test_progress_bar_on_stderr_above_ten_images(tmp_path, capsys):
    folder = tmp_path / "images"
    for index in range(12):
        write_noise(folder / f"img{index:02d}.png", 288, 288, seed=index)
    data.prepare(
        f"folder:{folder}",
        mode="resize",
        n_images=12,
        cache_dir=tmp_path / "a",
        progress=True,
    )
    assert "reading images" in capsys.readouterr().err
    data.prepare(
        f"folder:{folder}",
        mode="resize",
        n_images=11,
        cache_dir=tmp_path / "b",
        progress=False,
    )
    assert "reading" not in capsys.readouterr().err


# ------------------------------------------------------------------ prepare: cache


def test_cache_hit_does_not_rebuild_and_change_invalidates(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    for index in range(5):
        write_noise(folder / f"img{index}.png", 288, 288, seed=index)
    source, cache = f"folder:{folder}", tmp_path / "cache"
    first = data.prepare(source, mode="resize", n_images=5, seed=0, cache_dir=cache)
    cache_file = Path(first.info["cache_path"])
    assert cache_file.parent == cache and cache_file.stem == first.info["key"]
    assert first.info["key"] == data.data_key(source, 5, 0, "resize")
    assert not list(cache.glob("*.tmp"))  # atomic write left no temporary file
    mtime = cache_file.stat().st_mtime_ns

    def must_not_build(*args, **kwargs):
        raise AssertionError("cache miss: the split was rebuilt")

    monkeypatch.setattr(data, "_build", must_not_build)
    second = data.prepare(source, mode="resize", n_images=5, seed=0, cache_dir=cache)
    assert second.info["from_cache"] is True
    assert_splits_equal(first, second)
    assert cache_file.stat().st_mtime_ns == mtime
    monkeypatch.undo()

    # Replace one source file: new fingerprint, new key, rebuilt split.
    changed = write_noise(folder / "img0.png", 289, 290, seed=99)
    os.utime(changed, ns=(mtime + 10**9, mtime + 10**9))
    assert data.data_key(source, 5, 0, "resize") != first.info["key"]
    third = data.prepare(source, mode="resize", n_images=5, seed=0, cache_dir=cache)
    assert third.info["from_cache"] is False
    assert third.info["key"] != first.info["key"]


def test_sources_are_one_table_and_folders_one_parser():
    assert data.SOURCE_FORMS == ("sample", "folder:PATH", "voc2007", "bsds300")
    assert layout.parse_folder("folder:~/photos") == "~/photos"  # as written
    for not_a_folder in ("folder:", "sample", "folder", None, 3):
        assert layout.parse_folder(not_a_folder) is None
    for bad in ("folder:", "folder", "Sample"):
        with pytest.raises(ValueError, match="unknown data source"):
            data.data_key(bad)


def test_data_key_depends_on_every_argument(tmp_path):
    keys = {
        data.data_key("sample", 10, 0, None),
        data.data_key("sample", 11, 0, None),
        data.data_key("sample", 10, 1, None),
        data.data_key("sample", 10, 0, "resize"),
        data.data_key("voc2007", 10, 0, None),
    }
    assert len(keys) == 5
    assert data.data_key("sample", 10, 0, None) == data.data_key(
        "sample", 10, 0, "patch"
    )
    assert all(len(key) == 16 and int(key, 16) >= 0 for key in keys)


def test_default_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SRKIT_CACHE", str(tmp_path / "env_cache"))
    split = data.prepare("sample", n_images=2, seed=0, progress=False)
    assert Path(split.info["cache_path"]).parent == tmp_path / "env_cache"


# ------------------------------------------------------------------ prepare: sample


def test_sample_split_by_photo_deterministic(tmp_path):
    split = data.prepare(
        "sample", n_images=20, seed=0, mode="crop", cache_dir=tmp_path / "a"
    )
    assert split.info["mode"] == "crop"
    assert (len(split.train), len(split.val)) == (16, 4)
    photo = lambda name: name.rsplit("_", 1)[0]  # noqa: E731
    train_photos = {photo(n) for n in split.train.names}
    val_photos = {photo(n) for n in split.val.names}
    assert train_photos and val_photos and not train_photos & val_photos
    assert "motorcycle_right" not in train_photos | val_photos
    assert split.info["n_val_photos"] == len(val_photos) >= 1
    assert all(len(n.rsplit("_", 1)[1]) == 3 for n in split.train.names)
    # Crops are real pixels, kept as 8-bit values.
    assert split.train.y4_u8.dtype == np.uint8 and split.train.y4_u8.max() > 200
    again = data.prepare(
        "sample", n_images=20, seed=0, mode="crop", cache_dir=tmp_path / "b"
    )
    assert_splits_equal(split, again)
    other = data.prepare(
        "sample", n_images=20, seed=1, mode="crop", cache_dir=tmp_path / "b"
    )
    assert not np.array_equal(other.train.y4_u8, split.train.y4_u8)


def test_sample_resize_mode_caps_at_photo_count(tmp_path):
    with pytest.warns(UserWarning, match="capped"):
        split = data.prepare("sample", n_images=50, mode="resize", cache_dir=tmp_path)
    n_photos = split.info["n_photos"]
    assert len(split.train) + len(split.val) == n_photos
    assert all(name.endswith("_000") for name in split.train.names + split.val.names)


def test_resize_mode_keeps_training_windows_as_uint8(tmp_path):
    folder = tmp_path / "images"
    for index in range(10):
        write_noise(folder / f"img{index:02d}.png", 300 + index, 320, seed=index)
    split = data.prepare(
        f"folder:{folder}", mode="resize", n_images=0, cache_dir=tmp_path / "c"
    )
    source, n = split.train, len(split.train)
    assert isinstance(source, windows.WindowSource)
    stored = (source.x_u8, source.y2_u8, source.y4_u8)
    assert [array.dtype for array in stored] == [np.uint8] * 3
    # The window is the resized photo rounded to 8 bits, as a saved file would be.
    photo = images.read_image(folder / f"{source.names[0]}.png")
    resized = images.imresize(photo, output_shape=(288, 288))
    np.testing.assert_array_equal(
        source.y4_u8[0], np.rint(np.clip(resized, 0, 1) * 255).astype(np.uint8)
    )
    # As float32 the same split takes four times the memory; the inputs and x2
    # targets are exactly the 8-bit bicubic downscales of the windows.
    floats = source.take(range(n))
    assert 4 * sum(a.nbytes for a in stored) == sum(
        a.nbytes for a in (floats.x, floats.y2, floats.y4)
    )
    np.testing.assert_array_equal(
        floats.y2, images.to_8bit(images.downscale(floats.y4, 2))
    )
    np.testing.assert_array_equal(
        floats.x, images.to_8bit(images.downscale(floats.y4, 4))
    )
    # A batch is float32, repeats from the generator, and has no repeated window
    # while there are enough.
    first = source.draw(n, np.random.default_rng(7))
    again = source.draw(n, np.random.default_rng(7))
    np.testing.assert_array_equal(first.y4, again.y4)
    assert sorted(first.names) == sorted(source.names)
    assert first.x.dtype == np.float32 and first.x.shape == (n, 72, 72, 3)
    assert len(source.draw(n + 3, np.random.default_rng(7)).names) == n + 3
    with pytest.raises(ValueError, match="count must be an integer >= 1, got 0"):
        source.draw(0, np.random.default_rng(7))
    # The cache keeps the uint8 form.
    cached = data.prepare(
        f"folder:{folder}", mode="resize", n_images=0, cache_dir=tmp_path / "c"
    )
    assert cached.info["from_cache"] is True
    assert_splits_equal(split, cached)


def test_window_source_rejects_float_windows():
    with pytest.raises(ValueError, match=r"windows must be uint8 \(1, 288, 288, 3\)"):
        windows.WindowSource(np.zeros((1, 288, 288, 3), np.float32), ["a"])


# ----------------------------------------------------------------------- voc2007


def build_voc_tar(tmp_path: Path, extra_members=()) -> tuple[Path, str]:
    """A tiny VOC-shaped tar (3 JPEGs and an annotation) and its md5 hash string."""
    archive = tmp_path / "voc_small.tar"
    with tarfile.open(archive, "w") as tar:
        for index in range(3):
            ok, encoded = cv2.imencode(
                ".jpg", np.full((288, 300, 3), 60 * index, np.uint8)
            )
            payload = encoded.tobytes()
            member = tarfile.TarInfo(f"VOCdevkit/VOC2007/JPEGImages/00000{index}.jpg")
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
        note = tarfile.TarInfo("VOCdevkit/VOC2007/Annotations/000000.xml")
        note.size = 6
        tar.addfile(note, io.BytesIO(b"<a></a>"[:6]))
        for name, payload in extra_members:
            member = tarfile.TarInfo(name)
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
    return archive, "md5:" + hashlib.md5(archive.read_bytes()).hexdigest()


def test_fetch_voc2007_extracts_and_then_stays_offline(tmp_path, monkeypatch):
    archive, known_hash = build_voc_tar(tmp_path)
    cache = tmp_path / "cache"
    # prepare() keeps the VOC download in the user-wide cache, shared by all runs
    monkeypatch.setenv("SRKIT_CACHE", str(cache))
    jpegs = downloads.fetch_voc2007(cache, url=archive.as_uri(), known_hash=known_hash)
    assert jpegs == cache / "voc2007" / "VOCdevkit" / "VOC2007" / "JPEGImages"
    assert sorted(p.name for p in jpegs.iterdir()) == [
        "000000.jpg",
        "000001.jpg",
        "000002.jpg",
    ]
    assert not (cache / "voc2007" / "VOCdevkit" / "VOC2007" / "Annotations").exists()
    # Already extracted: no download and no archive needed any more (the marker
    # records the checksum: the same checksum trusts the extraction).
    archive.unlink()
    (cache / "voc2007" / downloads.VOC2007_ARCHIVE).unlink()
    offline = functools.partial(
        downloads.fetch_voc2007,
        url="http://invalid.invalid/x.tar",
        known_hash=known_hash,
    )
    assert offline(cache) == jpegs
    # prepare("voc2007") uses the extracted folder (resize mode by default).
    monkeypatch.setattr(downloads, "fetch_voc2007", offline)
    run_cache = tmp_path / "run" / "data"
    split = data.prepare("voc2007", n_images=3, cache_dir=run_cache, progress=False)
    assert len(split.train) + len(split.val) == 3
    assert not (run_cache / "voc2007").exists()  # no second copy per run
    assert split.info["mode"] == "resize" and split.val.x.shape[1:] == (72, 72, 3)


def test_fetch_voc2007_wrong_hash_is_a_clear_error(tmp_path):
    archive, _ = build_voc_tar(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="corrupt") as info:
        downloads.fetch_voc2007(
            cache, url=archive.as_uri(), known_hash="md5:" + "0" * 32
        )
    message = str(info.value)
    assert downloads.VOC2007_ARCHIVE in message and "by hand" in message
    assert not (cache / "voc2007" / ".extracted").exists()


def test_fetch_voc2007_uses_a_manually_placed_archive(tmp_path):
    archive, known_hash = build_voc_tar(tmp_path)
    target = tmp_path / "cache" / "voc2007"
    target.mkdir(parents=True)
    (target / downloads.VOC2007_ARCHIVE).write_bytes(archive.read_bytes())
    # The URL is unreachable: pooch only verifies the hash of the placed file.
    jpegs = downloads.fetch_voc2007(
        tmp_path / "cache", url="http://invalid.invalid/x.tar", known_hash=known_hash
    )
    assert len(list(jpegs.glob("*.jpg"))) == 3


def test_fetch_voc2007_refuses_unsafe_members(tmp_path):
    archive, known_hash = build_voc_tar(
        tmp_path, [("VOCdevkit/VOC2007/JPEGImages/../../../../evil.jpg", b"x")]
    )
    with pytest.raises(ValueError, match="unsafe"):
        downloads.fetch_voc2007(
            tmp_path / "cache", url=archive.as_uri(), known_hash=known_hash
        )
    assert not (tmp_path / "evil.jpg").exists()


def test_folder_split_is_stable_when_more_images_are_drawn(tmp_path):
    # R4's second round draws more images from the same folder: no image the first
    # round trained on may become a validation image of the second round.
    folder = tmp_path / "images"
    for index in range(40):
        write_noise(folder / f"img{index:02d}.png", 288, 288, seed=index)
    source = f"folder:{folder}"
    small = data.prepare(
        source, mode="resize", n_images=10, seed=1, cache_dir=tmp_path / "c"
    )
    large = data.prepare(
        source, mode="resize", n_images=40, seed=1, cache_dir=tmp_path / "c"
    )
    assert not set(small.train.names) & set(large.val.names)
    assert set(small.val.names) <= set(large.val.names)
    assert 4 <= len(large.val) <= 14  # about 20 % of 40


def test_describe_states_counts_and_photos(tmp_path):
    split = data.prepare("sample", n_images=12, seed=0, cache_dir=tmp_path)
    table = data.describe(split).set_index("property")["value"]
    assert table["training images"] == len(split.train)
    assert table["validation images"] == len(split.val)
    val_photos = set(table["val photos"].split(", "))
    assert val_photos == {name.rsplit("_", 1)[0] for name in split.val.names}


def test_patch_source_draws_fresh_8bit_windows_and_repeats(tmp_path):
    folder = tmp_path / "photos"
    for index in range(6):
        write_noise(folder / f"big{index}.png", 300 + 20 * index, 320, seed=index)
    write_noise(folder / "small.png", 100, 400, seed=9)
    with pytest.warns(UserWarning, match="small.png"):  # named in one warning
        split = data.prepare(
            f"folder:{folder}", n_images=0, seed=0, cache_dir=tmp_path / "c"
        )
    assert split.info["mode"] == "patch"
    source = split.train
    assert isinstance(source, windows.PatchSource)
    assert all(image.dtype == np.uint8 for image in source.images)  # kept as uint8
    assert len(source) + split.info["n_val_photos"] == 6
    assert len(split.val) >= data.VAL_MIN_WINDOWS  # fixed validation windows
    # ... of the photos' own pixels: 8-bit values of uniform noise, mean about 0.5.
    val = split.val
    assert val.y4.dtype == np.float32 and abs(float(val.y4.mean()) - 0.5) < 0.05
    np.testing.assert_array_equal(val.y4, np.rint(val.y4 * 255) / np.float32(255))
    np.testing.assert_array_equal(val.x, images.to_8bit(images.downscale(val.y4, 4)))
    first = source.draw(4, np.random.default_rng(1))
    again = source.draw(4, np.random.default_rng(1))
    other = source.draw(4, np.random.default_rng(2))
    np.testing.assert_array_equal(first.x, again.x)
    assert not np.array_equal(first.y4, other.y4)
    assert first.x.shape == (4, 72, 72, 3) and first.y4.shape == (4, 288, 288, 3)
    for array in (first.x, first.y2):  # clipped and rounded to 8 bits
        assert array.min() >= 0 and array.max() <= 1
        np.testing.assert_allclose(array * 255, np.rint(array * 255), atol=1e-3)
    np.testing.assert_array_equal(
        first.x, images.to_8bit(images.downscale(first.y4, 4))
    )
    # The cache keeps the whole uint8 images; a reload draws the same windows.
    cached = data.prepare(f"folder:{folder}", n_images=0, cache_dir=tmp_path / "c")
    assert cached.info["from_cache"] and isinstance(cached.train, windows.PatchSource)
    redrawn = cached.train.draw(4, np.random.default_rng(1))
    np.testing.assert_array_equal(redrawn.y4, first.y4)


def test_patch_source_draws_flat_windows_again():
    # Three quarters of this photo are one black field: without the redraw about
    # half of the 96 px windows would be flat; with it, a flat window needs eight
    # flat draws in a row.
    rng = np.random.default_rng(0)
    photo = np.zeros((600, 600, 3), np.uint8)
    photo[:300, :300] = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    source = windows.PatchSource([photo], ["half_flat"])
    drawn = source.draw(200, np.random.default_rng(1), window=24)
    stds = (drawn.y4 * 255).std(axis=(1, 2, 3))
    assert np.mean(stds < windows.FLAT_STD) < 0.05
    # A photo of one colour still gives windows (the redraw gives up).
    flat = windows.PatchSource([np.full((300, 300, 3), 7, np.uint8)], ["flat"])
    assert flat.draw(4, np.random.default_rng(0), window=24).y4.shape[0] == 4


def test_patch_source_refuses_small_or_float_images():
    with pytest.raises(ValueError, match="smaller than one 288"):
        windows.PatchSource([np.zeros((100, 400, 3), np.uint8)], ["tiny"])
    with pytest.raises(ValueError, match="uint8"):
        windows.PatchSource([np.zeros((300, 300, 3), np.float32)], ["float"])
