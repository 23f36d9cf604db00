"""Tests of srkit.distribute: the devices setting, and data-parallel training on two
host devices of the CPU giving the loss curve of one device."""

import json
import os
import subprocess
import sys

import keras
import pytest

from srkit import distribute, train

# A short fit of a small two-output zoo model on one device, then on two host
# devices, in a fresh interpreter: XLA_FLAGS must be set before JAX starts.
# Three validation images cannot be split over two devices (they are copied to
# both); batches of 4 are.
TWO_DEVICE_RUN = """
import json, sys
from pathlib import Path

import keras
import numpy as np

from srkit import distribute, models, train
from srkit.data import Split
from srkit.windows import Subset

MODEL = "multi_upsampling_model"
rng = np.random.default_rng(0)


def subset(n):
    high = rng.random((n, 96, 96, 3), dtype=np.float32)
    return Subset(high[:, ::4, ::4].copy(), high[:, ::2, ::2].copy(), high,
                  [f"image_{i}" for i in range(n)])


class Holders(keras.callbacks.Callback):  # the devices holding the first weight
    def on_train_end(self, logs=None):
        self.devices = sorted(str(d) for d in self.model.weights[0].value.devices())


split = Split(subset(8), subset(3), {"key": "two-devices"})
runs = {}
for devices in (1, 2):
    settings = train.Settings(
        loss="mse", steps=6, eval_every=2, batch_size=4, window=12,
        warmup_steps=1, devices=devices,
    )
    run_dir = Path(sys.argv[1]) / f"devices_{devices}"
    holders = Holders()
    result = train.fit(models.build(MODEL, seed=0), split, settings, run_dir,
                       verbose=0, callbacks=[holders])
    stored = json.loads((run_dir / "settings.json").read_text())
    history = result.history
    runs[devices] = {
        "columns": {name: history[name].tolist() for name in
                    ("step", "learning_rate", "loss", "val_loss")},
        "record": result.record()["devices"],
        "stored": stored["devices"],
        "holders": holders.devices,
    }
try:
    distribute.place(2, 3)
    odd_batch = ""
except ValueError as error:
    odd_batch = str(error)
print("RESULT " + json.dumps({"runs": runs, "odd_batch": odd_batch}))
"""


def test_devices_setting_is_all_or_a_whole_number():
    assert distribute.check_devices("all") == "all"
    assert distribute.check_devices(" ALL ") == "all"
    assert distribute.check_devices("2") == 2  # a step parameter is a string
    assert distribute.check_devices(3) == 3
    for bad in (0, -1, "two", "", True, 1.5, None):
        with pytest.raises(ValueError, match="devices must be 'all'"):
            distribute.check_devices(bad)


def test_settings_check_devices_and_do_not_match_on_them():
    settings = train.Settings(loss="mse", steps=2, devices="2")
    assert settings.devices == 2
    assert train.Settings(loss="mse", steps=2).devices == 1  # one device by default
    # the same run on another number of devices resumes: the steps are the same
    assert "devices" not in settings.recorded()
    assert "devices" not in train.MATCH_KEYS
    with pytest.raises(ValueError, match="got 0"):
        train.Settings(loss="mse", steps=2, devices=0)


def test_one_device_trains_without_a_distribution():
    for devices in (1, "all"):  # this process sees one device (no XLA_FLAGS)
        placement = distribute.place(devices, batch_size=3)
        assert placement.count == 1 and placement.distribution is None
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert placement.replicate(model) is model  # trained in place, as before


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the TensorFlow backend's answer"
)
def test_several_devices_on_tensorflow_say_to_use_jax():
    with pytest.raises(ValueError, match="KERAS_BACKEND=jax"):
        distribute.place(2, batch_size=4)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX lists devices")
def test_more_devices_than_there_are_is_an_error():
    with pytest.raises(ValueError, match="more devices than the 1 there are"):
        distribute.place(2, batch_size=4)


def test_two_host_devices_train_the_loss_curve_of_one(tmp_path):
    pytest.importorskip("jax", reason="data-parallel training runs on JAX")
    environment = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    environment["XLA_FLAGS"] = (
        environment.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    done = subprocess.run(
        [sys.executable, "-c", TWO_DEVICE_RUN, str(tmp_path)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard, not a speed check
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    one, two = result["runs"]["1"], result["runs"]["2"]
    assert one["stored"] == one["record"] == ["cpu:0"]
    assert two["stored"] == two["record"] == ["cpu:0", "cpu:1"]
    assert len(one["holders"]) == 1 and len(two["holders"]) == 2  # weights on both
    for name in ("step", "learning_rate"):  # the same steps and schedule
        assert two["columns"][name] == one["columns"][name]
    for name in ("loss", "val_loss"):
        assert two["columns"][name] == pytest.approx(one["columns"][name], rel=1e-5)
    losses = one["columns"]["loss"]
    assert len(losses) == 3 and losses[0] != losses[-1]  # it trained
    assert "batch_size 3" in result["odd_batch"]
    assert "2 devices" in result["odd_batch"]
