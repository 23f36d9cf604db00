"""Tests of ``srkit upscale`` on folders, several inputs, interrupts and NaN."""

import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from srkit import cli, images, upscale


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A one-output x2 model (nearest-neighbour upsampling)."""
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    inputs = keras.Input((None, None, 3))
    low = keras.layers.UpSampling2D(2, name="low_upsample")(inputs)
    keras.Model(inputs, low, name="tiny").save(path)
    return path


def photo(path, height=4, width=5, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3))
    images.write_image(path, pixels.astype(np.uint8))
    return path


def run(argv, model_file, capsys):
    argv = ["upscale", *map(str, argv), "--model", "m"]
    code = cli.main([*argv, "--model-file", str(model_file)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bad_file_is_named_the_rest_done_and_a_rerun_resumes(
    tmp_path, model_file, capsys
):
    source = tmp_path / "in"
    photo(source / "a.png")
    photo(source / "c.jpg", seed=1)
    (source / "b.png").write_bytes(b"not a picture")
    (source / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (source / ".a.png.tmp-0123456789ab.png").write_bytes(b"\x89PNG truncated")
    (source / "notes.txt").write_text("hello")
    out = tmp_path / "out"

    code, stdout, err = run([source, out], model_file, capsys)

    assert code == 1
    errors = err.splitlines()
    assert len(errors) == 1 and "'" + str(source / "b.png") + "'" in errors[0]
    assert errors[0].startswith("srkit: error: cannot read image")
    assert f"wrote {out / 'a.png'} (10x8)" in stdout
    assert f"wrote {out / 'c.jpg'} (10x8)" in stdout
    assert "2 written, 0 skipped (exist), 1 failed" in stdout
    assert "3 other or hidden files left alone" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.jpg"]
    stamp = (out / "a.png").stat().st_mtime_ns

    code, stdout, err = run([source, out], model_file, capsys)

    assert code == 1 and len(err.splitlines()) == 1
    assert f"skipped (exists) {out / 'a.png'}" in stdout
    assert "0 written, 2 skipped (exist), 1 failed" in stdout
    assert (out / "a.png").stat().st_mtime_ns == stamp


def test_several_inputs_go_into_a_folder_like_cp(tmp_path, model_file, capsys):
    first, second = photo(tmp_path / "a.jpg"), photo(tmp_path / "b.jpg", seed=1)
    before = second.read_bytes()
    # `dir/*.jpg OUT` with a forgotten OUT: the second photo is never replaced
    code, _, err = run([first, second, "--overwrite"], model_file, capsys)
    assert code == 1 and second.read_bytes() == before
    assert "is not an upscaled 'a.jpg'" in err and "--overwrite" not in err
    code, stdout, err = run([first, second, tmp_path / "out"], model_file, capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "b.jpg"]
    assert "2 written, 0 skipped (exist), 0 failed" in stdout


def test_an_earlier_result_may_be_overwritten(tmp_path, model_file, capsys):
    source = photo(tmp_path / "a.png")
    code, _, err = run([source, tmp_path / "big.png"], model_file, capsys)
    assert code == 0, err
    code, _, err = run([source, tmp_path / "big.png"], model_file, capsys)
    assert code == 1 and "pass --overwrite" in err
    code, _, err = run(
        [source, tmp_path / "big.png", "--overwrite"], model_file, capsys
    )
    assert code == 0, err


def test_two_inputs_with_one_output_are_refused_before_any_work(tmp_path, model_file):
    photo(tmp_path / "x" / "p.png")
    photo(tmp_path / "y" / "p.png")
    with pytest.raises(ValueError, match="would both be written to"):
        upscale.plan_jobs([tmp_path / "x", tmp_path / "y"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_holding_the_inputs_is_refused(tmp_path):
    a = photo(tmp_path / "a.png")
    with pytest.raises(ValueError, match="is the input image"):
        upscale.plan_jobs([a, photo(tmp_path / "b.png")], tmp_path)


def test_recursive_mirrors_the_tree_and_skips_hidden_folders(tmp_path, model_file):
    photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "sub" / "deeper" / "b.png")
    photo(tmp_path / "in" / ".git" / "c.png")
    flat = upscale.plan_jobs(tmp_path / "in", tmp_path / "out")
    assert [job.target for job in flat.jobs] == [tmp_path / "out" / "a.png"]
    plan = upscale.plan_jobs(tmp_path / "in", tmp_path / "out", recursive=True)
    assert [job.target.relative_to(tmp_path / "out") for job in plan.jobs] == [
        upscale.Path("a.png"),
        upscale.Path("sub/deeper/b.png"),
    ]
    with pytest.raises(ValueError, match="inside the input folder"):
        upscale.plan_jobs(tmp_path / "in", tmp_path / "in" / "out", recursive=True)


def test_gif_is_read_in_a_folder_and_alone_and_avif_refused(tmp_path):
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("RGB", (4, 3), "red").save(tmp_path / "in" / "g.gif")
    plan = upscale.plan_jobs(tmp_path / "in", tmp_path / "out")
    assert [job.target.name for job in plan.jobs] == ["g.png"]
    alone = upscale.plan_jobs(tmp_path / "in" / "g.gif", tmp_path / "g.png")
    assert alone.jobs[0].source.name == "g.gif"
    (tmp_path / "p.avif").write_bytes(b"\x00")
    with pytest.raises(ValueError, match="'.avif' is not an image format srkit"):
        upscale.plan_jobs(tmp_path / "p.avif", tmp_path / "p.png")


def test_quoted_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    photo(tmp_path / "a.png")
    plan = upscale.plan_jobs("~/a.png", "~/b.png")
    assert plan.jobs[0].source == tmp_path / "a.png"
    assert plan.jobs[0].target == tmp_path / "b.png"


def test_format_limits_are_checked_before_inference(tmp_path, monkeypatch):
    source = photo(tmp_path / "a.png")
    monkeypatch.setattr(upscale.images, "image_size", lambda path: (9000, 100))
    with pytest.raises(ValueError, match="exceeds the 16383 px .webp limit"):
        upscale.plan_jobs(source, tmp_path / "b.webp")
    long = "x" * 230 + ".png"
    with pytest.raises(ValueError, match="choose a shorter OUT name"):
        upscale.plan_jobs(source, tmp_path / long)


def test_a_nan_prediction_is_an_error_naming_the_model(tmp_path):
    path = tmp_path / "nan.keras"
    inputs = keras.Input((None, None, 3))
    low = keras.layers.UpSampling2D(2)(inputs)
    huge = keras.layers.Rescaling(1e30)(low)  # 1e60 is infinite in float32
    keras.Model(inputs, keras.layers.Rescaling(1e30, name="low_upsample")(huge)).save(
        path
    )
    photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "b.png")
    with pytest.raises(upscale.BadPrediction, match="nan.keras.*NaN or infinite"):
        upscale.upscale(tmp_path / "in", tmp_path / "out", "m", model_file=path)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_scale_advice_names_the_scale_the_model_has(tmp_path):
    path = tmp_path / "x4.keras"
    inputs = keras.Input((None, None, 3))
    keras.Model(
        inputs, keras.layers.UpSampling2D(4, name="high_upsample")(inputs)
    ).save(path)
    photo(tmp_path / "a.png")
    with pytest.raises(ValueError, match="use --scale 4"):
        upscale.upscale(tmp_path / "a.png", tmp_path / "b.png", "m", model_file=path)


SLOW_MODEL = """
import sys, time, keras, numpy as np
from srkit import cli, tiles
real = tiles.predict_batch
def slow(model, batch):
    print("predicting", flush=True)
    time.sleep(30)
    return real(model, batch)
tiles.predict_batch = slow
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigterm_exits_143_with_one_line_and_no_temporary_file(tmp_path, model_file):
    source = photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    argv = ["upscale", str(source), str(out / "a.png"), "--model", "m"]
    argv += ["--model-file", str(model_file)]
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_MODEL, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert process.stdout.readline().strip() == "predicting"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert "srkit upscale: stopped by SIGTERM" in err.splitlines()[-1]
    assert list(out.iterdir()) == []


SLOW_SECOND_IMAGE = """
import signal, sys, time
from srkit import cli, tiles
signal.signal(signal.SIGINT, signal.default_int_handler)  # the parent may ignore it
real = tiles.predict_batch
def slow(model, batch):
    if str(getattr(model, "source", "")).endswith("c.png"):
        print("predicting c.png", flush=True)
        time.sleep(30)
    return real(model, batch)
tiles.predict_batch = slow
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("signum", "status", "last"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "stopped by SIGTERM")],
)
def test_an_interrupted_batch_counts_what_it_did_and_did_not(
    tmp_path, model_file, signum, status, last
):
    source = tmp_path / "in"
    for seed, name in enumerate(("a.png", "b.png", "c.png", "d.png")):
        photo(source / name, seed=seed)
    out = tmp_path / "out"
    photo(out / "a.png", height=8, width=10)  # an earlier result: skipped
    argv = ["upscale", str(source), str(out), "--model", "m"]
    argv += ["--model-file", str(model_file)]
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SECOND_IMAGE, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    lines = [process.stdout.readline().strip() for _ in range(3)]
    assert lines[0] == f"skipped (exists) {out / 'a.png'}"
    assert lines[1:] == [f"wrote {out / 'b.png'} (10x8)", "predicting c.png"]
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status
    *_, summary, end = err.splitlines()
    assert summary.startswith(
        "srkit upscale: 1 written, 1 skipped (exist), 0 failed, 1 stopped midway "
        f"({str(source / 'c.png')!r}, no file left), 1 not started;"
    )
    assert end == f"srkit upscale: {last}"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_alpha_is_upscaled_and_kept_or_flattened_with_a_note(
    tmp_path, model_file, capsys
):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[:, :2, 3] = 255  # left opaque, right transparent
    images.write_image(tmp_path / "a.png", rgba)
    code, _, err = run([tmp_path / "a.png", tmp_path / "big.png"], model_file, capsys)
    assert code == 0 and err == ""
    rgb, alpha = images.read_pixels(tmp_path / "big.png", alpha=True)
    assert rgb.shape == (8, 10, 3) and alpha.shape == (8, 10)
    assert alpha[:, 0].min() == 255 and alpha[:, -1].max() == 0
    code, _, err = run([tmp_path / "a.png", tmp_path / "big.jpg"], model_file, capsys)
    assert code == 0
    assert err.startswith("srkit: warning: ") and "written over white" in err
    flat = images.read_pixels(tmp_path / "big.jpg")
    assert flat[:, -1].min() > 230  # transparent: white


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path, model_file, capsys):
    pixels = np.random.default_rng(3).integers(0, 65536, (4, 5, 3)).astype(np.uint16)
    images.write_image(tmp_path / "deep.png", pixels)
    for name in ("big.png", "big.tif"):
        code, _, err = run([tmp_path / "deep.png", tmp_path / name], model_file, capsys)
        assert code == 0, err
        result = images.read_pixels(tmp_path / name)
        assert result.dtype == np.uint16
        np.testing.assert_array_equal(result[::2, ::2], pixels)  # nearest x2


def test_an_animation_is_refused_in_one_line(tmp_path, model_file, capsys):
    from PIL import Image

    frames = [Image.new("RGB", (4, 3), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    code, _, err = run([tmp_path / "anim.gif", tmp_path / "b.png"], model_file, capsys)
    assert code == 1 and len(err.splitlines()) == 1
    assert "anim.gif': it has 2 frames" in err
    assert not (tmp_path / "b.png").exists()


def test_a_png_past_opencvs_pixel_limit_is_called_too_large(tmp_path, monkeypatch):
    path = photo(tmp_path / "a.png")
    monkeypatch.setattr(images, "_decode", lambda data: None)
    monkeypatch.setattr(images, "image_size", lambda path: (40000, 30000))
    with pytest.raises(ValueError, match="30000x40000 pixels is more than OpenCV"):
        images.read_pixels(path)


def test_memory_reads_the_container_limit(tmp_path, monkeypatch):
    from srkit import data

    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text(f"{2 * 2**30}\n")
    usage.write_text(f"{2**29}\n")
    monkeypatch.setattr(data, "CGROUP_FILES", ((str(limit), str(usage)),))
    assert data.available_memory() == 3 * 2**29  # the host has more than 1.5 GiB
    limit.write_text("max\n")
    assert data._cgroup_memory_left() is None


def test_a_float_tiff_is_measured_for_the_memory_check(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "f.tiff"), np.zeros((30, 40, 3), np.float32))
    assert images.image_size(tmp_path / "f.tiff") == (30, 40)


def photo_with_metadata(path):
    """A 5x4 JPEG on its side (EXIF orientation 6) with an ICC profile and EXIF."""
    from PIL import Image, ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    exif[0x0112] = 6  # on its side: applied to the pixels, then reset to 1
    exif.get_ifd(0x8769)[0x9003] = "2020:01:02 03:04:05"  # DateTimeOriginal
    Image.new("RGB", (5, 4), "teal").save(path, icc_profile=icc, exif=exif.tobytes())
    return icc


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_and_exif_are_copied_where_the_format_holds_them(
    tmp_path, model_file, capsys, suffix
):
    from PIL import Image

    icc = photo_with_metadata(tmp_path / "a.jpg")
    out = tmp_path / f"big{suffix}"
    code, _, err = run([tmp_path / "a.jpg", out], model_file, capsys)
    assert code == 0 and err == "", err
    with Image.open(out) as written:
        assert written.size == (8, 10)
        assert written.info.get("icc_profile") == icc
        exif = written.getexif()
        assert exif.get(0x010F) == "Camera maker"
        assert exif.get(0x0112) == 1
        assert exif.get_ifd(0x8769).get(0x9003) == "2020:01:02 03:04:05"
    assert images.read_pixels(out).shape == (10, 8, 3)


def test_sixteen_bit_tiff_keeps_its_samples_beside_the_metadata(tmp_path):
    pixels = np.random.default_rng(5).integers(0, 65536, (6, 7, 4)).astype(np.uint16)
    photo_with_metadata(tmp_path / "a.jpg")
    metadata = images.read_metadata(tmp_path / "a.jpg")
    images.write_image(tmp_path / "b.tif", pixels, metadata=metadata)
    rgb, alpha = images.read_pixels(tmp_path / "b.tif", alpha=True)
    np.testing.assert_array_equal(rgb, pixels[..., :3])
    np.testing.assert_array_equal(alpha, pixels[..., 3])
    again = images.read_metadata(tmp_path / "b.tif")  # read back, layout tags left
    assert again["icc"] == metadata["icc"] and b"Camera maker" in again["exif"]
    assert images.read_metadata(write_jpeg(tmp_path / "c.jpg", again)) == again


def write_jpeg(path, metadata):
    images.write_image(path, np.zeros((2, 3, 3), np.uint8), metadata=metadata)
    return path


def test_a_bmp_output_says_once_that_it_drops_the_metadata(
    tmp_path, model_file, capsys
):
    photo_with_metadata(tmp_path / "a.jpg")
    code, _, err = run([tmp_path / "a.jpg", tmp_path / "big.bmp"], model_file, capsys)
    assert code == 0
    assert err.splitlines() == [
        "srkit: warning: a .bmp file cannot hold an ICC profile or EXIF: the ICC "
        f"profile and the EXIF of {str(tmp_path / 'a.jpg')!r} not copied into "
        f"{str(tmp_path / 'big.bmp')!r} (write .png, .jpg, .webp or .tif to keep "
        "them)"
    ]
    assert images.read_pixels(tmp_path / "big.bmp").shape == (10, 8, 3)
