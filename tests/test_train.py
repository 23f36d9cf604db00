"""Tests of srkit.train and srkit.checkpoints: artifacts, resume, skip, restart,
divergence, precision, settings."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from keras import layers
from PIL import Image

from srkit import checkpoints, data, evaluate, models, train, windows
from srkit.data import Split
from srkit.windows import Subset

LOW = 24  # input side; fit does not care about the zoo's 72 px
BATCH = 4
N_TRAIN, N_VAL = 8, 4
EVERY = 2  # optimizer steps per evaluation interval
# fit's own keywords; every other keyword of run_fit is a train.Settings field
FIT_OPTIONS = ("verbose", "gif", "gif_every", "plot_every", "force", "callbacks")


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


def run_fit(split, run_dir, intervals=2, model=None, **kwargs):
    options = {"verbose": 0}
    options |= {name: kwargs.pop(name) for name in FIT_OPTIONS if name in kwargs}
    kwargs.setdefault("batch_size", BATCH)
    kwargs.setdefault("eval_every", EVERY)
    steps = intervals * kwargs["eval_every"]
    settings = train.Settings(loss="mse", steps=steps, **kwargs)
    return train.fit(model or tiny_model(), split, settings, run_dir, **options)


class InterruptAfter(keras.callbacks.Callback):
    """Simulate Ctrl-C at the end of a given (1-based) interval."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


class PoisonWeightsAt(keras.callbacks.Callback):
    """Set every weight to NaN when a given (1-based) interval begins."""

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
    assert history["step"].tolist() == [EVERY, 2 * EVERY]
    for column in ("loss", "val_loss", "low_upsample_psnr", "val_high_upsample_psnr"):
        assert column in history and np.isfinite(history[column]).all()
    for output in ("low_upsample", "high_upsample"):
        for metric in ("mse", "mae", "psnr"):
            assert f"val_{output}_{metric}" in history
    # cosine decay: the rate falls from 1e-3 towards a tenth of it
    rates = history["learning_rate"].tolist()
    assert 1e-4 <= rates[1] < rates[0] < 1e-3
    on_disk = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(on_disk, history, check_dtype=False)

    assert result.resumed_from == 0 and not result.skipped
    assert result.steps_run == result.steps == 2 * EVERY
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
        "steps": 2 * EVERY,
        "eval_every": EVERY,
        "lr_schedule": "cosine",
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
            assert gif.n_frames >= 3  # before training, after interval 1 and 2
            assert gif.info.get("loop") == 0


def test_finished_run_is_skipped_and_a_new_budget_starts_over(split, tmp_path):
    first = run_fit(split, tmp_path)
    stamp = (tmp_path / "last.keras").stat().st_mtime_ns

    again = run_fit(split, tmp_path)
    assert again.skipped and again.steps_run == 0 and again.resumed_from == 2 * EVERY
    pd.testing.assert_frame_equal(again.history, first.history, check_dtype=False)
    assert (tmp_path / "last.keras").stat().st_mtime_ns == stamp
    assert again.train_images_per_s == pytest.approx(first.train_images_per_s)
    assert set(again.paths) == set(first.paths)

    # The cosine schedule spans the whole budget: a new budget is a new run.
    with pytest.warns(UserWarning, match="steps: 4 -> 6"):
        longer = run_fit(split, tmp_path, intervals=3)
    assert not longer.skipped and longer.resumed_from == 0
    assert longer.history["epoch"].tolist() == [1, 2, 3]
    assert settings_of(tmp_path)["steps"] == 3 * EVERY


def test_resume_after_interruption_continues_weights_optimizer_history(split, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_fit(split, tmp_path, intervals=4, callbacks=[InterruptAfter(2)])
    interrupted = pd.read_csv(tmp_path / "history.csv")
    assert interrupted["epoch"].tolist() == [1, 2]
    assert settings_of(tmp_path)["status"] == "interrupted"
    assert (tmp_path / "gif_low_upsample.gif").exists()  # written despite the stop

    model = tiny_model()  # a fresh model, as a rerun of the notebook would build
    result = run_fit(split, tmp_path, intervals=4, model=model)
    assert result.resumed_from == 2 * EVERY and result.steps_run == 2 * EVERY
    assert result.history["epoch"].tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(
        result.history.iloc[:2].reset_index(drop=True), interrupted, check_dtype=False
    )
    # The optimizer continued: 4 intervals' worth of steps, not 2 after a reset.
    assert int(model.optimizer.iterations.numpy()) == 4 * EVERY
    assert settings_of(tmp_path)["status"] == "complete"

    # The batch stream resumed at the same position: the resumed run matches an
    # uninterrupted one.
    straight = run_fit(split, tmp_path / "straight", intervals=4, gif=False)
    np.testing.assert_allclose(
        result.history["val_loss"], straight.history["val_loss"], rtol=1e-5
    )


def test_changed_settings_start_over_with_a_warning(split, tmp_path):
    run_fit(split, tmp_path, intervals=1)
    with pytest.warns(UserWarning, match="learning_rate: 0.001 -> 0.0005"):
        result = run_fit(split, tmp_path, intervals=1, learning_rate=5e-4)
    assert result.resumed_from == 0 and not result.skipped
    assert settings_of(tmp_path)["learning_rate"] == 5e-4
    forced = run_fit(split, tmp_path, intervals=1, learning_rate=5e-4, force=True)
    assert forced.resumed_from == 0 and not forced.skipped


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda path: path.unlink(), "is missing"),
        (lambda path: path.write_bytes(b"\x00\xff garbage\n\x01"), "history.csv"),
        (lambda path: path.write_text("epoch,loss\n"), "holds no epoch rows"),
        (lambda path: path.write_text("epoch,loss\n2,0.1\n1,0.2\n"), "garbled"),
        (lambda path: path.write_text("epoch,loss\n1,0.1\nzz,\n"), "garbled"),
    ],
    ids=["missing", "binary", "no_rows", "epochs_out_of_order", "text_epoch"],
)
def test_checkpoints_without_a_readable_history_are_kept(
    split, tmp_path, damage, problem
):
    run_fit(split, tmp_path, intervals=1)
    damage(tmp_path / "history.csv")
    kept = {
        name: (tmp_path / name).read_bytes() for name in ("best.keras", "last.keras")
    }
    with pytest.raises(ValueError, match=problem) as caught:
        run_fit(split, tmp_path, intervals=1)
    assert "force=True" in str(caught.value) and str(tmp_path) in str(caught.value)
    assert {name: (tmp_path / name).read_bytes() for name in kept} == kept
    forced = run_fit(split, tmp_path, intervals=1, force=True)
    assert forced.history["epoch"].tolist() == [1]


def test_non_finite_training_data_is_a_data_error(split, tmp_path):
    broken = Subset(
        x=split.train.x.copy(),
        y2=split.train.y2,
        y4=split.train.y4,
        names=split.train.names,
    )
    broken.x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"split.train.x holds NaN.*not the training"):
        run_fit(Split(broken, split.val, {"key": "nan"}), tmp_path, intervals=1)
    assert not (tmp_path / "best.keras").exists()


def test_huge_learning_rate_diverges_with_advice(split, tmp_path):
    with pytest.raises(
        checkpoints.TrainingDiverged, match="lower learning rate"
    ) as caught:
        run_fit(split, tmp_path, intervals=3, learning_rate=1e8)
    # checked at the interval's end, so the step is not known
    assert caught.value.epoch == 1 and caught.value.batch is None
    assert "interval 1: the training loss is" in str(caught.value)
    assert "0.0001" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    assert not (tmp_path / "best.keras").exists()  # nothing finite to keep
    assert settings_of(tmp_path)["status"] == "diverged"


def test_divergence_keeps_the_last_good_epoch(split, tmp_path):
    with pytest.raises(
        checkpoints.TrainingDiverged, match="interval 2: the training loss is nan"
    ) as caught:
        run_fit(split, tmp_path, intervals=3, callbacks=[PoisonWeightsAt(2)])
    assert caught.value.last_good_epoch == 1
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [1]
    for name in ("best.keras", "last.keras"):
        model = load(tmp_path / name)
        assert all(np.isfinite(w).all() for w in model.get_weights())
        low, _ = model.predict(split.val.x[:1], verbose=0)
        assert np.isfinite(low).all()
    with Image.open(tmp_path / "gif_low_upsample.gif") as gif:
        assert gif.n_frames == 2  # before training and after interval 1


def test_mixed_bfloat16_trains_a_clone_with_float32_outputs(split, tmp_path):
    model = tiny_model()
    before = model.get_weights()
    result = run_fit(
        split, tmp_path, intervals=1, model=model, precision="mixed_bfloat16"
    )
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
    again = run_fit(split, tmp_path / "f32", intervals=1, model=result.model)
    assert {layer.dtype_policy.name for layer in again.model.layers} == {"float32"}


def test_same_seed_gives_the_same_history(split, tmp_path):
    first = run_fit(split, tmp_path / "a", intervals=1, gif=False)
    second = run_fit(split, tmp_path / "b", intervals=1, gif=False)
    # Same machine, same seed: equal up to float32 round-off (measured: identical).
    assert second.history["val_loss"][0] == pytest.approx(
        first.history["val_loss"][0], abs=1e-6
    )
    assert not list((tmp_path / "a").glob("*.gif"))


def test_single_output_model_and_plot_callback(split, tmp_path):
    result = run_fit(
        split, tmp_path, intervals=2, model=tiny_model(two_outputs=False), plot_every=1
    )
    assert {"loss", "val_loss", "psnr", "val_psnr"} <= set(result.history.columns)
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
        ({"steps": 0}, "steps"),
        ({"eval_every": 3}, "divide steps"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"run_dir": None}, "run_dir"),
    ],
)
def test_bad_arguments_raise_value_error(split, tmp_path, overrides, message):
    arguments = {"loss": "mse", "steps": 4, "run_dir": tmp_path}
    arguments.update(overrides)
    run_dir = arguments.pop("run_dir")
    with pytest.raises(ValueError, match=message):
        settings = train.Settings(**arguments)
        train.fit(tiny_model(), split, settings, run_dir, verbose=0)


def test_settings_come_from_step_parameters_and_record_all_but_xla(split, tmp_path):
    params = {"profile": "smoke", "steps": 4, "eval_every": None, "xla": True}
    settings = train.Settings.from_params(params, loss="mse", learning_rate=1)
    assert settings.eval_every == 4 and settings.learning_rate == 1.0
    assert settings.xla and settings.batch_size == 16  # a default where not given
    assert "xla" not in settings.recorded() and "loss" in train.MATCH_KEYS
    assert set(settings.recorded()) <= set(train.MATCH_KEYS)
    with pytest.raises(TypeError, match="train.Settings"):
        train.fit(tiny_model(), split, "mse", tmp_path, verbose=0)


def test_unknown_output_name_is_rejected(split, tmp_path):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, layers.Conv2D(3, 1, name="mystery")(inputs))
    with pytest.raises(ValueError, match="mystery"):
        train.fit(model, split, train.Settings("mse", 1), tmp_path, verbose=0)


def test_batches_repeat_from_the_seed_and_resume_at_any_step(split):
    first = train.batches(split.train, 3, seed=5)
    batches = [next(first) for _ in range(4)]
    again = train.batches(split.train, 3, seed=5, start=2)
    x, targets = next(again)
    np.testing.assert_array_equal(x, batches[2][0])
    np.testing.assert_array_equal(targets["y4"], batches[2][1]["y4"])
    assert not np.array_equal(batches[0][0], batches[1][0])  # fresh batches
    other = next(train.batches(split.train, 3, seed=6))
    assert not np.array_equal(other[0], batches[0][0])


def test_patch_source_stream_trains_and_repeats(tmp_path):
    rng = np.random.default_rng(3)
    images = [
        (rng.random((300 + 10 * i, 320, 3)) * 255).astype(np.uint8) for i in range(3)
    ]
    source = windows.PatchSource(images, ["a", "b", "c"])
    val = make_subset(rng, 2)
    split = Split(source, val, {"key": "patches"})
    model = tiny_model()
    result = run_fit(split, tmp_path / "a", intervals=1, model=model, batch_size=2)
    assert result.settings["n_train"] == 3 and result.steps == EVERY
    x, targets = next(train.batches(source, 2, seed=0))
    assert x.shape == (2, 72, 72, 3) and targets["y2"].shape == (2, 144, 144, 3)
    # 8-bit inputs, as a saved low-resolution file
    np.testing.assert_allclose(x * 255, np.rint(x * 255), atol=1e-3)


def test_choose_precision_measures_auto_and_passes_names_through():
    assert train.choose_precision("float32").name == "float32"
    assert train.choose_precision("mixed_bfloat16").name == "mixed_bfloat16"
    auto = train.choose_precision("auto")
    assert auto.name in train.PRECISIONS and auto.requested == "auto"
    assert "bfloat16" in auto.reason
    if auto.speedup:  # the decision follows the measurement
        chosen = auto.speedup >= train.BF16_MIN_SPEEDUP
        assert (auto.name == "mixed_bfloat16") == chosen
    with pytest.raises(ValueError, match="precision"):
        train.choose_precision("float16")


def test_auto_precision_needs_bf16_hardware_on_a_cpu(monkeypatch):
    monkeypatch.setattr(train, "_on_accelerator", lambda: False)
    monkeypatch.setattr(train, "_cpu_bf16_flags", lambda: False)
    monkeypatch.setattr(train, "_measured_bf16_speedup", lambda: 9.0)  # never asked
    plain = train.choose_precision("auto")
    assert plain.name == "float32" and "no bfloat16 instructions" in plain.reason
    monkeypatch.setattr(train, "_cpu_bf16_flags", lambda: True)
    fast = train.choose_precision("auto")
    assert fast.name == "mixed_bfloat16" and fast.speedup == 9.0
    monkeypatch.setattr(train, "_measured_bf16_speedup", lambda: 1.1)
    assert train.choose_precision("auto").name == "float32"  # below the bar


@pytest.fixture(scope="module")
def sample_split(tmp_path_factory):
    return data.prepare(
        "sample", seed=0, cache_dir=tmp_path_factory.mktemp("data"), progress=False
    )


def train_bilinear(split, run_dir, steps, **kwargs):
    model = models.build("simple_model_bilinear", seed=0)
    settings = train.Settings(
        "mse", steps=steps, eval_every=steps, batch_size=4, **kwargs
    )
    return train.fit(model, split, settings, run_dir, verbose=0, gif=False)


@pytest.mark.slow
def test_simple_model_learns_on_the_bundled_photos(sample_split, tmp_path):
    """A learning check, not a timing: validation PSNR rises above the start."""
    untrained = models.build("simple_model_bilinear", seed=0)
    before = evaluate.evaluate(untrained, sample_split.val).table
    result = train_bilinear(sample_split, tmp_path, steps=300)
    after = evaluate.evaluate(result.model, sample_split.val).table
    start = before.query("model != 'bicubic'")["psnr"].iloc[0]
    end = after.query("model != 'bicubic'")["psnr"].iloc[0]
    assert end > start + 5.0, (start, end)


def test_same_seed_builds_and_trains_to_identical_metrics(sample_split, tmp_path):
    first = train_bilinear(sample_split, tmp_path / "a", steps=6)
    second = train_bilinear(sample_split, tmp_path / "b", steps=6)
    one = evaluate.evaluate(first.model, sample_split.val).per_image
    two = evaluate.evaluate(second.model, sample_split.val).per_image
    pd.testing.assert_frame_equal(one, two)


@pytest.mark.slow
def test_bfloat16_run_stays_within_a_fifth_of_a_db_of_float32(sample_split, tmp_path):
    scores = {}
    for precision in train.PRECISIONS:
        result = train_bilinear(
            sample_split, tmp_path / precision, steps=120, precision=precision
        )
        table = evaluate.evaluate(result.model, sample_split.val).table
        scores[precision] = table.query("model != 'bicubic'")["psnr"].iloc[0]
    assert abs(scores["mixed_bfloat16"] - scores["float32"]) < 0.2, scores


def test_small_windows_crop_aligned_triplets(split):
    x, targets = next(train.batches(split.train, 3, seed=1, window=8))
    assert x.shape == (3, 8, 8, 3)
    assert targets["y2"].shape == (3, 16, 16, 3)
    assert targets["y4"].shape == (3, 32, 32, 3)
    # make_subset samples every 4th / 2nd pixel, so an aligned crop keeps that
    np.testing.assert_array_equal(x, targets["y4"][:, ::4, ::4])
    np.testing.assert_array_equal(targets["y2"], targets["y4"][:, ::2, ::2])
    with pytest.raises(ValueError, match="window"):
        next(train.batches(split.train, 3, seed=1, window=4))


def test_patch_source_draws_small_windows():
    rng = np.random.default_rng(4)
    images = [(rng.random((300, 310, 3)) * 255).astype(np.uint8) for _ in range(2)]
    source = windows.PatchSource(images, ["a", "b"])
    batch = source.draw(2, np.random.default_rng(0), window=24)
    assert batch.x.shape == (2, 24, 24, 3) and batch.y4.shape == (2, 96, 96, 3)
    again = source.draw(2, np.random.default_rng(0), window=24)
    np.testing.assert_array_equal(batch.y4, again.y4)


def test_warmup_rises_then_follows_the_schedule_and_is_recorded(split, tmp_path):
    result = run_fit(
        split, tmp_path, intervals=2, eval_every=2, warmup_steps=2, window=8
    )
    rates = list(result.history["learning_rate"])
    # after 2 steps the warm-up has reached the rate; after 4 the cosine has begun
    assert rates[0] == pytest.approx(1e-3, rel=1e-5)
    assert rates[1] < rates[0]
    assert result.settings["warmup_steps"] == 2 and result.settings["window"] == 8
    assert result.settings["skip"] == "none"
    record = result.record()
    assert record["window"] == 8 and record["warmup_steps"] == 2
    schedule = train._learning_rate(1e-3, "constant", 10, warmup=4)
    values = [float(keras.ops.convert_to_numpy(schedule(s))) for s in (0, 2, 4, 9)]
    assert values == pytest.approx([0.0, 5e-4, 1e-3, 1e-3], rel=1e-5)
    with pytest.raises(ValueError, match="warmup_steps"):
        run_fit(split, tmp_path / "b", intervals=1, eval_every=2, warmup_steps=2)


def test_window_source_draws_aligned_small_windows():
    rng = np.random.default_rng(5)
    stored = (rng.random((3, 288, 288, 3)) * 255).astype(np.uint8)
    source = windows.WindowSource(stored, ["a", "b", "c"])
    batch = source.draw(4, np.random.default_rng(1), window=16)
    assert batch.x.shape == (4, 16, 16, 3) and batch.y4.shape == (4, 64, 64, 3)
    whole = source.take(range(3))
    # every crop is a region of one stored window, at the same place in all three
    for x, y4 in zip(batch.x, batch.y4, strict=True):
        found = [
            (i, top, left)
            for i in range(3)
            for top in range(0, 288 - 64 + 1, 4)
            for left in range(0, 288 - 64 + 1, 4)
            if np.array_equal(whole.y4[i, top : top + 64, left : left + 64], y4)
        ]
        assert len(found) == 1
        i, top, left = found[0]
        np.testing.assert_array_equal(
            whole.x[i, top // 4 : top // 4 + 16, left // 4 : left // 4 + 16], x
        )
