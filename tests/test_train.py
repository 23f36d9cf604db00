"""Tests of srkit.train: artifacts, resume, skip, restart, divergence, precision."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from keras import layers
from PIL import Image

from srkit import train
from srkit.data import Split, Subset

LOW = 24  # input side; fit does not care about the zoo's 72 px
BATCH = 4
N_TRAIN, N_VAL = 8, 4
STEPS_PER_EPOCH = N_TRAIN // BATCH


def tiny_model(two_outputs=True, name="tiny"):
    """Two convs + UpSampling2D heads, outputs named like the zoo's."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.UpSampling2D(2)(x)
    low = layers.Conv2D(3, 1, name="low_upsample")(x)
    if not two_outputs:
        return keras.Model(inputs, low, name=name)
    high = layers.Conv2D(3, 1, name="high_upsample")(layers.UpSampling2D(2)(low))
    return keras.Model(inputs, [low, high], name=name)


def make_subset(rng, n):
    high = rng.random((n, 4 * LOW, 4 * LOW, 3), dtype=np.float32)
    return Subset(
        x=high[:, ::4, ::4].copy(),
        y2=high[:, ::2, ::2].copy(),
        y4=high,
        names=[f"image_{i}" for i in range(n)],
    )


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    return Split(make_subset(rng, N_TRAIN), make_subset(rng, N_VAL), {"key": "k0"})


def run_fit(split, run_dir, epochs=2, model=None, **kwargs):
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("batch_size", BATCH)
    return train.fit(
        model or tiny_model(), split, "mse", epochs, run_dir=run_dir, **kwargs
    )


class InterruptAfter(keras.callbacks.Callback):
    """Simulate Ctrl-C at the end of a given (1-based) epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


class PoisonWeightsAt(keras.callbacks.Callback):
    """Set every weight to NaN when a given (1-based) epoch begins."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.model.set_weights(
                [np.full_like(w, np.nan) for w in self.model.get_weights()]
            )


def load(path):
    return keras.saving.load_model(path)  # plain load: no compile config stored


def settings_of(run_dir):
    return json.loads((run_dir / "settings.json").read_text())


def test_fit_writes_history_models_gifs_and_settings(split, tmp_path):
    result = run_fit(split, tmp_path)

    history = result.history
    assert history["epoch"].tolist() == [1, 2]
    for column in ("loss", "val_loss", "low_upsample_psnr", "val_high_upsample_ssim"):
        assert column in history and np.isfinite(history[column]).all()
    for output in ("low_upsample", "high_upsample"):
        for metric in ("mse", "mae", "psnr", "ssim"):
            assert f"val_{output}_{metric}" in history
    on_disk = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(on_disk, history, check_dtype=False)

    assert result.resumed_from == 0 and not result.skipped and result.epochs_run == 2
    assert result.precision == "float32"
    assert result.train_images_per_s > 0 and result.wall_time_s > 0
    expected = {"best_model", "last_model", "history", "settings"}
    expected |= {"gif_low_upsample", "gif_high_upsample"}
    assert set(result.paths) == expected
    assert all(
        path.parent == tmp_path and path.exists() for path in result.paths.values()
    )
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind

    settings = settings_of(tmp_path)
    assert settings["status"] == "complete" and settings["epochs_completed"] == 2
    for key, value in {
        "loss": "mse",
        "epochs": 2,
        "batch_size": BATCH,
        "learning_rate": 1e-3,
        "precision": "float32",
        "seed": 0,
        "model": "tiny",
        "n_train": N_TRAIN,
        "n_val": N_VAL,
        "data_key": "k0",
        "backend": keras.backend.backend(),
    }.items():
        assert settings[key] == value, key
    assert "keras" in settings["versions"]

    for name in ("best_model", "last_model"):
        low, high = load(result.paths[name]).predict(split.val.x, verbose=0)
        assert low.shape == (N_VAL, 2 * LOW, 2 * LOW, 3)
        assert high.shape == (N_VAL, 4 * LOW, 4 * LOW, 3)
    best_epoch = int(history.loc[history["val_loss"].idxmin(), "epoch"])
    if best_epoch == 2:  # best.keras is then a copy of last.keras
        best, last = load(result.paths["best_model"]), load(result.paths["last_model"])
        for a, b in zip(best.get_weights(), last.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    low, _ = result.model.predict(split.val.x[:1], verbose=0)
    assert np.isfinite(low).all()

    for output in ("low_upsample", "high_upsample"):
        with Image.open(result.paths[f"gif_{output}"]) as gif:
            assert gif.n_frames >= 3  # before training, after epoch 1, after epoch 2
            assert gif.info.get("loop") == 0


def test_finished_run_is_skipped_and_can_be_extended(split, tmp_path):
    first = run_fit(split, tmp_path)
    stamp = (tmp_path / "last.keras").stat().st_mtime_ns

    again = run_fit(split, tmp_path)
    assert again.skipped and again.epochs_run == 0 and again.resumed_from == 2
    pd.testing.assert_frame_equal(again.history, first.history, check_dtype=False)
    assert (tmp_path / "last.keras").stat().st_mtime_ns == stamp
    assert again.train_images_per_s == pytest.approx(first.train_images_per_s)
    assert set(again.paths) == set(first.paths)

    longer = run_fit(split, tmp_path, epochs=3)
    assert not longer.skipped and longer.resumed_from == 2
    assert longer.history["epoch"].tolist() == [1, 2, 3]
    assert settings_of(tmp_path)["epochs"] == 3


def test_resume_after_interruption_continues_weights_optimizer_history(split, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_fit(split, tmp_path, epochs=4, callbacks=[InterruptAfter(2)])
    interrupted = pd.read_csv(tmp_path / "history.csv")
    assert interrupted["epoch"].tolist() == [1, 2]
    assert settings_of(tmp_path)["status"] == "interrupted"
    assert (tmp_path / "gif_low_upsample.gif").exists()  # written despite the stop

    model = tiny_model()  # a fresh model, as a rerun of the notebook would build
    result = run_fit(split, tmp_path, epochs=4, model=model)
    assert result.resumed_from == 2 and result.epochs_run == 2
    assert result.history["epoch"].tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(
        result.history.iloc[:2].reset_index(drop=True), interrupted, check_dtype=False
    )
    # The optimizer continued: 4 epochs' worth of steps, not 2 after a reset.
    assert int(model.optimizer.iterations.numpy()) == 4 * STEPS_PER_EPOCH
    assert settings_of(tmp_path)["status"] == "complete"


def test_changed_settings_start_over_with_a_warning(split, tmp_path):
    run_fit(split, tmp_path, epochs=1)
    with pytest.warns(UserWarning, match="learning_rate: 0.001 -> 0.0005"):
        result = run_fit(split, tmp_path, epochs=1, learning_rate=5e-4)
    assert result.resumed_from == 0 and not result.skipped
    assert settings_of(tmp_path)["learning_rate"] == 5e-4
    forced = run_fit(split, tmp_path, epochs=1, learning_rate=5e-4, force=True)
    assert forced.resumed_from == 0 and not forced.skipped


def test_huge_learning_rate_diverges_with_advice(split, tmp_path):
    with pytest.raises(train.TrainingDiverged, match="lower learning rate") as caught:
        run_fit(split, tmp_path, epochs=3, learning_rate=1e8)
    assert caught.value.epoch == 1 and caught.value.batch is not None
    assert "epoch 1" in str(caught.value) and "0.0001" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    assert not (tmp_path / "best.keras").exists()  # nothing finite to keep
    assert settings_of(tmp_path)["status"] == "diverged"


def test_divergence_keeps_the_last_good_epoch(split, tmp_path):
    with pytest.raises(train.TrainingDiverged, match="epoch 2, batch 1") as caught:
        run_fit(split, tmp_path, epochs=3, callbacks=[PoisonWeightsAt(2)])
    assert caught.value.last_good_epoch == 1
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [1]
    for name in ("best.keras", "last.keras"):
        model = load(tmp_path / name)
        assert all(np.isfinite(w).all() for w in model.get_weights())
        low, _ = model.predict(split.val.x[:1], verbose=0)
        assert np.isfinite(low).all()
    with Image.open(tmp_path / "gif_low_upsample.gif") as gif:
        assert gif.n_frames == 2  # before training and after epoch 1


def test_mixed_bfloat16_trains_a_clone_with_float32_outputs(split, tmp_path):
    model = tiny_model()
    before = model.get_weights()
    result = run_fit(split, tmp_path, epochs=1, model=model, precision="mixed_bfloat16")
    assert result.precision == "mixed_bfloat16"
    assert settings_of(tmp_path)["precision"] == "mixed_bfloat16"
    assert np.isfinite(result.history["val_loss"]).all()
    policies = {layer.name: layer.dtype_policy.name for layer in result.model.layers}
    assert policies["low_upsample"] == policies["high_upsample"] == "float32"
    assert "mixed_bfloat16" in policies.values()
    low, high = result.model.predict(split.val.x[:1], verbose=0)
    assert low.dtype == high.dtype == np.float32
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the caller's model is untouched
    assert keras.config.dtype_policy().name == "float32"  # global policy restored

    # Retraining the bfloat16 best model in float32 (step 11's second round)
    again = run_fit(split, tmp_path / "f32", epochs=1, model=result.model)
    assert {layer.dtype_policy.name for layer in again.model.layers} == {"float32"}


def test_same_seed_gives_the_same_history(split, tmp_path):
    first = run_fit(split, tmp_path / "a", epochs=1, gif=False)
    second = run_fit(split, tmp_path / "b", epochs=1, gif=False)
    # Same machine, same seed: equal up to float32 round-off (measured: identical).
    assert second.history["val_loss"][0] == pytest.approx(
        first.history["val_loss"][0], abs=1e-6
    )
    assert not list((tmp_path / "a").glob("*.gif"))


def test_single_output_model_and_plot_callback(split, tmp_path):
    result = run_fit(
        split, tmp_path, epochs=2, model=tiny_model(two_outputs=False), plot_every=1
    )
    assert {"loss", "val_loss", "psnr", "val_ssim"} <= set(result.history.columns)
    assert (
        "gif_low_upsample" in result.paths and "gif_high_upsample" not in result.paths
    )
    assert (tmp_path / "plot_epoch_001.png").exists()
    assert (tmp_path / "plot_epoch_002.png").exists()
    assert "plot_epoch_002" in result.paths
    assert result.model.predict(split.val.x[:1], verbose=0).shape == (
        1,
        2 * LOW,
        2 * LOW,
        3,
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"loss": "nope"}, "nope"),
        ({"precision": "float16"}, "precision"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"run_dir": None}, "run_dir"),
    ],
)
def test_bad_arguments_raise_value_error(split, tmp_path, overrides, message):
    arguments = {"loss": "mse", "epochs": 1, "run_dir": tmp_path, "verbose": 0}
    arguments.update(overrides)
    with pytest.raises(ValueError, match=message):
        train.fit(tiny_model(), split, **arguments)


def test_unknown_output_name_is_rejected(split, tmp_path):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, layers.Conv2D(3, 1, name="mystery")(inputs))
    with pytest.raises(ValueError, match="mystery"):
        train.fit(model, split, "mse", 1, run_dir=tmp_path, verbose=0)
