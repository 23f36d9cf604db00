"""Tests of the training batch stream drawn ahead (srkit.train.Prefetch) and of the
callbacks fit runs: the same windows as without prefetching, errors of the stream
raised as they were, the thread stopped, callbacks that work at intervals only."""

import itertools
import threading

import keras
import numpy as np
import pandas as pd
import pytest
from test_train import make_subset, run_fit, settings_of

from srkit import checkpoints, train, windows
from srkit.data import Split


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "srkit-prefetch"]


@pytest.fixture(scope="module")
def patches():
    rng = np.random.default_rng(3)
    images = [
        (rng.random((300 + 10 * i, 320, 3)) * 255).astype(np.uint8) for i in range(3)
    ]
    return windows.PatchSource(images, ["a", "b", "c"])


class BrokenSource:
    """A training source whose ``draw`` fails at its ``fail_at``-th call."""

    def __init__(self, source, fail_at):
        self.source = source
        self.fail_at = fail_at
        self.calls = 0

    def __len__(self):
        return len(self.source)

    def draw(self, count, rng, window):
        self.calls += 1
        if self.calls == self.fail_at:
            raise ValueError(f"photo 7 of the source is unreadable (draw {self.calls})")
        return self.source.draw(count, rng, window)


@pytest.mark.parametrize("start", [0, 5])
def test_prefetched_windows_equal_the_stream_drawn_in_turn(patches, start):
    plain = train.batches(patches, 4, seed=11, start=start, window=24)
    expected = list(itertools.islice(plain, 6))
    with train.Prefetch(train.batches(patches, 4, 11, start, 24), depth=2) as ahead:
        drawn = list(itertools.islice(iter(ahead), 6))
    for (x, targets), (x_ahead, targets_ahead) in zip(expected, drawn, strict=True):
        np.testing.assert_array_equal(x_ahead, x)
        for name in ("y2", "y4"):
            np.testing.assert_array_equal(targets_ahead[name], targets[name])


def test_an_error_in_the_thread_is_raised_where_the_item_was_due(patches):
    source = BrokenSource(patches, fail_at=3)
    ahead = train.Prefetch(train.batches(source, 2, seed=0, window=16))
    items = iter(ahead)
    next(items), next(items)  # the first two draws succeeded
    with pytest.raises(ValueError, match="photo 7 of the source is unreadable"):
        next(items)
    assert isinstance(ahead.error, ValueError)
    ahead.close()
    assert not prefetch_threads()


def test_close_stops_the_thread_and_closes_the_stream():
    closed = threading.Event()

    def endless():
        try:
            yield from itertools.count()
        finally:
            closed.set()

    ahead = train.Prefetch(endless(), depth=2)
    items = iter(ahead)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    ahead.close()
    assert closed.is_set() and not prefetch_threads()
    assert list(items) == []  # a waiting iteration ends


def test_a_finite_stream_ends_and_depth_is_checked():
    assert list(train.Prefetch(iter(range(7)), depth=1)) == list(range(7))
    with pytest.raises(ValueError, match="depth must be an integer >= 1, got 0"):
        train.Prefetch(iter(()), depth=0)


def test_fit_raises_the_stream_error_itself_and_stops_the_thread(patches, tmp_path):
    rng = np.random.default_rng(4)
    split = Split(BrokenSource(patches, fail_at=6), make_subset(rng, 2), {"key": "b"})
    # TensorFlow's input pipeline would wrap the ValueError in an error of its own
    with pytest.raises(ValueError, match="photo 7 of the source is unreadable"):
        run_fit(split, tmp_path, intervals=3, batch_size=2, window=16, gif=False)
    assert not prefetch_threads()
    assert settings_of(tmp_path)["status"] == "interrupted"


def test_fit_trains_on_the_seeded_stream_and_leaves_no_thread(split, tmp_path):
    first = run_fit(split, tmp_path / "a", intervals=2, seed=3, gif=False)
    again = run_fit(split, tmp_path / "b", intervals=2, seed=3, gif=False)
    assert not prefetch_threads()
    columns = ["loss", "val_loss"]
    np.testing.assert_allclose(
        first.history[columns].to_numpy(), again.history[columns].to_numpy(), 1e-6
    )


class PoisonWeightsAtStep(keras.callbacks.Callback):
    """Set every weight to NaN before a given (0-based) step of an interval."""

    def __init__(self, epoch, step):
        super().__init__()
        self.epoch, self.step, self.current = epoch, step, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == self.epoch and batch == self.step:
            weights = self.model.get_weights()
            self.model.set_weights([np.full_like(w, np.nan) for w in weights])


def test_nan_in_the_middle_of_an_interval_stops_at_its_end(split, tmp_path):
    poison = PoisonWeightsAtStep(epoch=2, step=2)
    with pytest.raises(
        checkpoints.TrainingDiverged, match="interval 2: the training loss is nan"
    ) as caught:
        run_fit(split, tmp_path, intervals=4, eval_every=4, callbacks=[poison])
    assert caught.value.last_good_epoch == 1 and caught.value.batch is None
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [1]
    assert settings_of(tmp_path)["status"] == "diverged"
    model = keras.saving.load_model(tmp_path / "last.keras")
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize(
    "hook", ["on_batch_end", "on_train_batch_end", "on_train_batch_begin"]
)
def test_built_in_callbacks_have_no_batch_hooks(split, tmp_path, hook):
    # A batch hook makes Keras wait for every step and turns off its
    # asynchronous callbacks; the built-in ones work at intervals only.
    recorder = checkpoints.RunRecorder(tmp_path, [], "val_loss", 1e-3)
    built_in, _ = train._built_in_callbacks(
        recorder, split.val, tmp_path, 2, gif=True, gif_every=None, plot_every=1
    )
    assert len(built_in) == 3
    for callback in built_in:
        assert getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook)


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    return Split(make_subset(rng, 8), make_subset(rng, 4), {"key": "k0"})
