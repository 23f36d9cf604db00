"""Tests of srkit.callbacks: atomic writes, the GIF recorder, the prediction plot."""

import os

import imageio.v3 as iio
import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image

from srkit import callbacks
from srkit.atomic import atomic_path
from srkit.callbacks import (
    PlotPredictionCallback,
    SavePredictionCallback,
    select_frames,
)

LOW = 16


def tiny_model(two_outputs=True):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    low = layers.Conv2D(3, 1, name="low_upsample")(layers.UpSampling2D(2)(x))
    if not two_outputs:
        return keras.Model(inputs, low)
    high = layers.Conv2D(3, 1, name="high_upsample")(layers.UpSampling2D(2)(low))
    return keras.Model(inputs, [low, high])


def images(n=3, side=LOW, seed=0):
    return np.random.default_rng(seed).random((n, side, side, 3), dtype=np.float32)


def targets(inputs, seed=1):
    """Random x2 and x4 targets of ``inputs``, by output name."""
    n, side = inputs.shape[:2]
    return {
        "low_upsample": images(n, 2 * side, seed),
        "high_upsample": images(n, 4 * side, seed + 1),
    }


def recorder(inputs, folder, **kwargs):
    return SavePredictionCallback(inputs, folder, targets=targets(inputs), **kwargs)


def drive(callback, model, epochs, start=0):
    """Call the hooks the way model.fit does, nudging the weights each epoch."""
    callback.set_model(model)
    callback.set_params({"epochs": epochs, "verbose": 0, "steps": 1})
    callback.on_train_begin()
    for epoch in range(start, epochs):
        callback.on_epoch_begin(epoch)
        model.set_weights([w * 1.01 for w in model.get_weights()])
        callback.on_epoch_end(epoch, {"loss": 1.0})
    callback.on_train_end()


# --- atomic_path -------------------------------------------------------------------


def test_atomic_path_renames_a_complete_file(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".json"
        assert not target.exists()
        temporary.write_text("{}")
    assert target.read_text() == "{}"
    assert os.listdir(target.parent) == ["out.json"]


def test_atomic_path_failure_mid_write_leaves_no_target(tmp_path):
    target = tmp_path / "model.keras"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half a fi")
            raise RuntimeError("disk full")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


def test_atomic_path_failure_keeps_the_previous_version(tmp_path):
    target = tmp_path / "history.csv"
    target.write_text("epoch\n1\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temporary:
            temporary.write_text("epo")
            raise KeyboardInterrupt
    assert target.read_text() == "epoch\n1\n"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_requires_a_written_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(tmp_path / "empty.txt"):
            pass
    assert list(tmp_path.iterdir()) == []


# --- frame selection ---------------------------------------------------------------


@pytest.mark.parametrize(
    "count, limit", [(0, 5), (3, 5), (5, 5), (6, 5), (41, 40), (301, 30)]
)
def test_select_frames_keeps_first_last_and_at_most_the_limit(count, limit):
    chosen = select_frames(count, limit)
    assert len(chosen) <= limit
    assert chosen == sorted(set(chosen))
    if count:
        assert chosen[0] == 0 and chosen[-1] == count - 1
    assert len(chosen) == min(count, limit)  # the whole budget is used
    if count <= limit:
        assert chosen == list(range(count))


# --- SavePredictionCallback --------------------------------------------------------


def test_gif_per_output_with_one_frame_per_epoch_plus_the_start(tmp_path):
    callback = recorder(images(), tmp_path)
    drive(callback, tiny_model(), epochs=3)
    assert set(callback.paths) == {"low_upsample", "high_upsample"}
    assert callback.frame_epochs["low_upsample"] == [0, 1, 2, 3]
    for name, path in callback.paths.items():
        assert path == tmp_path / f"gif_{name}.gif"
        frames = iio.imread(path, index=None)
        assert frames.shape[0] == 4 and frames.dtype == np.uint8
        with Image.open(path) as gif:
            assert gif.info["loop"] == 0
            durations = []
            for index in range(gif.n_frames):
                gif.seek(index)
                durations.append(gif.info["duration"])
        assert durations == [callbacks.FRAME_MS] * 3 + [callbacks.LAST_FRAME_MS]
    # Per image a row of three labelled tiles at their own pixels (bicubic,
    # prediction, target); an x4 output above TILE_SIZE is cropped, not shrunk.
    low = iio.imread(callback.paths["low_upsample"], index=0)
    high = iio.imread(callback.paths["high_upsample"], index=0)
    gaps, head = 2 * callbacks.GAP_PX, callbacks.HEADER_PX
    assert low.shape[:2] == (3 * (head + 2 * LOW) + gaps, 3 * 2 * LOW + gaps)
    assert high.shape[:2] == (3 * (head + 4 * LOW) + gaps, 3 * 4 * LOW + gaps)
    big = recorder(images(1, side=72), tmp_path / "big")
    drive(big, tiny_model(), epochs=1)
    frame = iio.imread(big.paths["high_upsample"], index=0)
    tile = callbacks.TILE_SIZE
    assert frame.shape[:2] == (head + tile, 3 * tile + gaps)
    assert 3 * tile + gaps <= 750  # the book's column at a 1400 px window


def test_gif_labels_are_plain_words_with_steps(tmp_path):
    callback = recorder(images(1), tmp_path, steps_per_epoch=400)
    assert callback.when("high_upsample", 0) == "x4 before training"
    assert callback.when("high_upsample", 3) == "x4 after 1,200 steps"
    assert callback.when("low_upsample", 1) == "x2 after 400 steps"
    by_epoch = recorder(images(1), tmp_path)
    assert by_epoch.when("low_upsample", 1) == "x2 after 1 epoch"
    assert by_epoch.when("low_upsample", 2) == "x2 after 2 epochs"


def test_gif_frames_store_only_the_prediction_and_strip_is_written(tmp_path):
    callback = recorder(images(1, side=24), tmp_path, steps_per_epoch=10)
    drive(callback, tiny_model(), epochs=4)
    gaps = callbacks.GAP_PX
    with Image.open(callback.paths["high_upsample"]) as gif:
        for index in range(1, gif.n_frames):
            gif.seek(index)
            left, _, right, _ = gif.tile[0][1]
            # after the first frame, only the middle (prediction) column changes
            assert left >= 96 + gaps and right <= 2 * 96 + gaps
    for name, factor in (("low_upsample", 2), ("high_upsample", 4)):
        strip = callback.strip_paths[name]
        assert strip == tmp_path / f"strip_{name}.png"
        assert callbacks.strip_path(callback.paths[name]) == strip
        picture = iio.imread(strip)
        side = 24 * factor
        head = callbacks.HEADER_PX
        # four predictions, bicubic and target in two rows of three
        assert picture.shape[:2] == (2 * (head + side) + gaps, 3 * side + 2 * gaps)


def test_gif_psnr_is_of_the_clipped_prediction(tmp_path):
    callback = recorder(images(1), tmp_path)
    truth = callback.targets["low_upsample"][0]
    assert callbacks._psnr(truth, truth) == 100.0
    assert callbacks._psnr(truth, truth + 5.0) == callbacks._psnr(
        truth, np.ones_like(truth)
    )


def test_gif_one_epoch_has_two_frames_and_resumed_run_is_labelled(tmp_path):
    callback = recorder(images(), tmp_path, names=("low_upsample",))
    drive(callback, tiny_model(), epochs=1)
    assert set(callback.paths) == {"low_upsample"}
    assert iio.imread(callback.paths["low_upsample"], index=None).shape[0] == 2
    resumed = recorder(images(), tmp_path / "resumed")
    drive(resumed, tiny_model(), epochs=5, start=3)
    assert resumed.frame_epochs["low_upsample"] == [3, 4, 5]


def test_gif_long_runs_are_thinned_and_every_is_honoured(tmp_path):
    thinned = recorder(images(1), tmp_path / "a", max_frames=6)
    drive(thinned, tiny_model(two_outputs=False), epochs=25)
    held = thinned.frame_epochs["low_upsample"]
    assert len(held) < 3 * 6 and held[0] == 0 and held[-1] == 25
    frames = iio.imread(thinned.paths["low_upsample"], index=None)
    assert frames.shape[0] == 6

    sparse = recorder(images(1), tmp_path / "b", every=2)
    drive(sparse, tiny_model(two_outputs=False), epochs=5)
    assert sparse.frame_epochs == {"low_upsample": [0, 2, 4, 5]}  # final always kept


def test_gif_of_a_diverged_model_still_writes(tmp_path):
    model = tiny_model(two_outputs=False)
    callback = recorder(images(1), tmp_path)
    callback.set_model(model)
    callback.set_params({"epochs": 2})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    callback.on_epoch_end(0)
    paths = callback.write()  # what fit does when training raises
    assert iio.imread(paths["low_upsample"], index=None).shape[0] == 2
    assert callback.write() == paths  # idempotent


def test_gif_stays_small_for_a_full_length_run(tmp_path):
    # Worst case for GIF compression: noise tiles at the 144 px limit, 30 frames.
    callback = recorder(images(1, side=72, seed=3), tmp_path)
    drive(callback, tiny_model(), epochs=60)
    for path in callback.paths.values():
        assert iio.imread(path, index=None).shape[0] == callbacks.MAX_FRAMES
        assert path.stat().st_size < 2_500_000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"images": np.zeros((3, 8, 8))}, "images"),
        ({"every": 0}, "every"),
        ({"max_frames": 1}, "max_frames"),
        ({"targets": {}}, "targets"),
        ({"targets": {"middle": images(3, 2 * LOW)}}, "middle"),
        ({"targets": {"low_upsample": images(3, 4 * LOW)}}, "x2 need"),
    ],
)
def test_save_prediction_rejects_bad_arguments(tmp_path, kwargs, message):
    arguments = {
        "images": images(),
        "output_dir": tmp_path,
        "targets": targets(images()),
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        SavePredictionCallback(**arguments)


# --- PlotPredictionCallback --------------------------------------------------------


def test_plot_saves_png_every_k_epochs_and_at_the_end(tmp_path):
    image = images(1)[0]
    target = images(1, side=2 * LOW)[0]
    callback = PlotPredictionCallback(image, target, every=2, output_dir=tmp_path)
    assert not callback.display  # pytest is not a Jupyter kernel
    drive(callback, tiny_model(), epochs=5)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["plot_epoch_002.png", "plot_epoch_004.png", "plot_epoch_005.png"]
    with Image.open(tmp_path / "plot_epoch_005.png") as png:
        assert png.format == "PNG" and png.size[0] > png.size[1]


def test_plot_in_a_notebook_updates_one_display(monkeypatch, tmp_path):
    import IPython.display

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=False):
        shown.append(("display", obj, display_id))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    image = images(1)[0]
    target = images(1, side=4 * LOW)[0]
    callback = PlotPredictionCallback(image, target, every=1, display=True)
    drive(callback, tiny_model(), epochs=3)
    assert [entry[0] for entry in shown] == ["display", "update", "update"]
    assert shown[0][2] is True
    assert shown[-1][1].data.startswith(b"\x89PNG")
    assert list(tmp_path.iterdir()) == []


def test_plot_rejects_bad_shapes_and_missing_outputs(tmp_path):
    image = images(1)[0]
    with pytest.raises(ValueError, match="times 2 or 4"):
        PlotPredictionCallback(image, images(1, side=3 * LOW)[0], output_dir=tmp_path)
    with pytest.raises(ValueError, match="output_dir"):
        PlotPredictionCallback(image, images(1, side=2 * LOW)[0], display=False)
    callback = PlotPredictionCallback(
        image, images(1, side=4 * LOW)[0], output_dir=tmp_path
    )
    callback.set_model(tiny_model(two_outputs=False))
    with pytest.raises(ValueError, match="high_upsample"):
        callback.on_train_begin()
