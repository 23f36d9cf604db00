"""Tests of srkit.upscale: finding the model, naming its run, folders, memory."""

import json
import threading

import keras
import numpy as np
import pytest

from srkit import cli, images, tiles, upscale


def tiny_model(path):
    """A one-output x2 model (nearest-neighbour upsampling) saved at ``path``."""
    inputs = keras.Input((None, None, 3))
    low = keras.layers.UpSampling2D(2, name="low_upsample")(inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.Model(inputs, low, name="tiny").save(path)
    return path


def make_run(root, profile, psnr_rows=((0.02, 24.5), (0.01, 26.25), (0.03, 23.0))):
    """A run folder as ``srkit run`` leaves it, with one trained dts_model."""
    run_dir = root / "runs" / profile
    folder = run_dir / "models" / "dts_model"
    tiny_model(folder / "best.keras")
    (run_dir / "run.json").write_text(json.dumps({"profile": profile}))
    (folder / "settings.json").write_text(json.dumps({"steps": 40}))
    lines = ["epoch,val_loss,val_psnr"]
    lines += [f"{i + 1},{loss},{psnr}" for i, (loss, psnr) in enumerate(psnr_rows)]
    (folder / "history.csv").write_text("\n".join(lines) + "\n")
    return run_dir


def test_missing_model_file_names_run_and_step(tmp_path):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "_toc.yml").write_text("root: intro\n")
    (project / "notebooks" / "07_dts.py").write_text('model = build("dts_model")\n')
    run_dir = project / "runs" / "smoke"
    with pytest.raises(upscale.ModelNotFound) as caught:
        upscale.find_model_file("dts_model", project, run_dir)
    message = str(caught.value)
    assert str(run_dir) in message and "srkit run --only 07" in message
    with pytest.raises(upscale.ModelNotFound, match="does not exist"):
        upscale.find_model_file("dts_model", model_file=project / "none.keras")


def test_a_name_outside_the_zoo_lists_the_zoo_not_a_step(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'resnet'.*dts_model") as caught:
        upscale.find_model_file("resnet", run_dir=tmp_path)
    assert "--only" not in str(caught.value)


def test_provenance_names_the_run_profile_steps_and_kept_psnr(tmp_path):
    run_dir = make_run(tmp_path, "quick")
    path = run_dir / "models" / "dts_model" / "best.keras"
    info = upscale.model_provenance(path, "low_upsample")
    assert info["run_dir"] == str(run_dir) and info["profile"] == "quick"
    assert info["training_steps"] == 40
    assert info["val_psnr"] == pytest.approx(26.25)  # the lowest val_loss row
    assert "profile quick, 40 training steps, validation PSNR 26.25 dB" in info["text"]
    loose = upscale.model_provenance(tiny_model(tmp_path / "mine.keras"), "x")
    assert "not in a run folder" in loose["text"] and loose["profile"] is None


@pytest.mark.parametrize("profile, warned", [("smoke", True), ("quick", False)])
def test_upscale_names_its_model_and_warns_about_smoke_runs(
    tmp_path, capsys, profile, warned
):
    run_dir = make_run(tmp_path, profile)
    images.write_image(tmp_path / "in.png", np.zeros((5, 6, 3), np.float32))
    argv = ["upscale", str(tmp_path / "in.png"), str(tmp_path / "out.png")]
    code = cli.main([*argv, "--model", "dts_model", "--run-dir", str(run_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"wrote {tmp_path / 'out.png'} (12x10)" in out
    assert f"with model {run_dir / 'models' / 'dts_model' / 'best.keras'}" in out
    assert f"profile {profile}, 40 training steps" in out
    assert ("srkit: warning: the model comes from a smoke run" in err) == warned


def test_a_folder_rerun_skips_existing_outputs_and_keeps_them(tmp_path):
    model_file = tiny_model(tmp_path / "tiny.keras")
    for name in ("a.png", "b.png", "c.png"):
        images.write_image(tmp_path / "in" / name, np.zeros((4, 4, 3), np.float32))
    images.write_image(tmp_path / "out" / "b.png", np.ones((2, 2, 3), np.float32))
    before = (tmp_path / "out" / "b.png").read_bytes()
    done = upscale.upscale(
        tmp_path / "in", tmp_path / "out", "tiny", model_file=model_file
    )
    assert done["skipped"] == [tmp_path / "out" / "b.png"]
    assert [path.name for path, _ in done["written"]] == ["a.png", "c.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.png",
        "b.png",
        "c.png",
    ]
    assert (tmp_path / "out" / "b.png").read_bytes() == before


def test_memory_estimate_counts_the_result_of_a_large_photo(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(upscale.images, "image_size", lambda path: (4000, 6000))
    monkeypatch.setattr(
        upscale.data, "check_memory", lambda needed, what, way: seen.update(n=needed)
    )
    upscale.check_image_memory(tmp_path / "photo.jpg", 4)
    # at least the x4 uint8 result (1.15 GB) and the 8-bit input (0.07 GB)
    assert seen["n"] >= 6000 * 4000 * 3 * (16 + 1)
    whole = seen["n"]
    upscale.check_image_memory(tmp_path / "photo.jpg", 4, streamed=True)
    assert seen["n"] == whole - 6000 * 4000 * 3 * 16  # a PNG is written in strips


def test_a_streamed_png_decodes_to_the_strips_and_fails_whole(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (37, 23, 3), dtype=np.uint8)
    path = images.write_png_strips(
        tmp_path / "s.png", 37, (pixels[top : top + 10] for top in range(0, 37, 10))
    )
    np.testing.assert_array_equal(images.read_pixels(path), pixels)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="30 rows of the 37 announced"):
        images.write_png_strips(path, 37, [pixels[:10], pixels[10:30]])
    with pytest.raises(ValueError, match="does not continue"):
        images.write_png_strips(path, 37, [pixels[:10], pixels[10:, :5]])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.png"]


@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_upscale_writes_the_tiled_8bit_prediction(tmp_path, suffix):
    model_file = tmp_path / "tiny.keras"
    inputs = keras.Input((None, None, 3))
    low = keras.layers.UpSampling2D(2, name="low_upsample")(inputs)
    keras.Model(
        inputs,
        keras.layers.Conv2D(3, 3, padding="same", name="high_upsample")(
            keras.layers.UpSampling2D(2)(low)
        ),
    ).save(model_file)
    pixels = np.random.default_rng(2).integers(0, 256, (19, 26, 3), dtype=np.uint8)
    images.write_image(tmp_path / "in.png", pixels)
    out = tmp_path / f"out{suffix}"
    upscale.upscale(
        tmp_path / "in.png", out, "x", model_file=model_file, scale=4, tile=8
    )
    network = upscale.load_model(model_file)
    expected = tiles.predict_full(
        network, pixels, "high_upsample", tile=8, dtype=np.uint8
    )
    np.testing.assert_array_equal(images.read_pixels(out), expected)


def x2_model_file(path):
    """A one-output x2 model with a 3x3 convolution, saved at ``path``."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    keras.Model(inputs, keras.layers.UpSampling2D(2, name="low_upsample")(x)).save(path)
    return path


def test_a_png_is_compressed_in_a_thread_while_the_next_strip_is_predicted(
    tmp_path, monkeypatch
):
    model_file = x2_model_file(tmp_path / "m.keras")
    pixels = np.random.default_rng(3).integers(0, 256, (30, 21, 3), dtype=np.uint8)
    images.write_image(tmp_path / "in.png", pixels)
    threads, write = [], images.write_png_strips

    def record(*args, **kwargs):
        threads.append(threading.current_thread())
        return write(*args, **kwargs)

    monkeypatch.setattr(upscale.images, "write_png_strips", record)
    out = tmp_path / "out.png"
    upscale.upscale(tmp_path / "in.png", out, "m", model_file=model_file, tile=8)
    assert [thread.name for thread in threads] == ["srkit-png-writer"]
    expected = tiles.predict_full(
        upscale.load_model(model_file), pixels, "low_upsample", tile=8, dtype=np.uint8
    )
    np.testing.assert_array_equal(images.read_pixels(out), expected)


@pytest.mark.parametrize("fails", ["prediction", "writer"])
def test_a_failure_on_either_side_of_the_writer_leaves_no_file(
    tmp_path, monkeypatch, fails
):
    model_file = x2_model_file(tmp_path / "m.keras")
    pixels = np.random.default_rng(4).integers(0, 256, (80, 21, 3), dtype=np.uint8)
    images.write_image(tmp_path / "in.png", pixels)
    calls, predict, write = [], tiles.predict_batch, images.write_png_strips

    def predict_twice(model, batch):
        calls.append(len(batch))
        if fails == "prediction" and len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C in the third strip
        return predict(model, batch)

    def write_one_strip(path, height, strips, **kwargs):
        def first():
            yield next(iter(strips))
            raise OSError("disk full")

        return write(path, height, first(), **kwargs)

    monkeypatch.setattr(tiles, "predict_batch", predict_twice)
    if fails == "writer":
        monkeypatch.setattr(upscale.images, "write_png_strips", write_one_strip)
    error = KeyboardInterrupt if fails == "prediction" else OSError
    with pytest.raises(error):
        upscale.upscale(
            tmp_path / "in.png",
            tmp_path / "out.png",
            "m",
            model_file=model_file,
            tile=8,
        )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.png", "m.keras"]
    assert "srkit-png-writer" not in [t.name for t in threading.enumerate()]
    assert len(calls) <= 4  # of 10 strips: the error stopped the prediction early
