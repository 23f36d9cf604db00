"""Models saved on one Keras backend load and predict the same on the other.

The test saves a zoo model on the backend under test, then a child Python process
with the other backend (``KERAS_BACKEND``) loads it, predicts the same inputs,
saves its own model, and this process loads that one back. It skips when the other
backend is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from srkit import environment, models

# The depth-to-space model: srkit's custom layers, frozen VGG features, two outputs.
MODEL = "dts_model"
OTHER = {"tensorflow": "jax", "jax": "tensorflow"}
CHILD = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    from srkit import layers, models  # noqa: F401  (registers the custom layers)

    folder = sys.argv[1]
    assert keras.backend.backend() == sys.argv[2], keras.backend.backend()
    x = np.load(f"{folder}/x.npy")
    loaded = keras.saving.load_model(f"{folder}/here.keras")
    np.savez(f"{folder}/there_predicts_here.npz", *loaded.predict(x, verbose=0))
    keras.utils.set_random_seed(1)
    own = models.build(sys.argv[3], vgg_weights="random")
    own.save(f"{folder}/there.keras")
    np.savez(f"{folder}/there_predicts_there.npz", *own.predict(x, verbose=0))
    """
)


def _arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


@pytest.fixture
def other_backend():
    other = OTHER.get(keras.backend.backend())
    if other is None or not environment.backend_installed(other):
        pytest.skip(f"the other backend ({other}) is not installed")
    return other


def test_saved_model_predicts_the_same_on_the_other_backend(tmp_path, other_backend):
    keras.utils.set_random_seed(0)
    model = models.build(MODEL, vgg_weights="random")
    x = np.random.default_rng(0).random((2, 16, 24, 3), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    model.save(tmp_path / "here.keras")
    here = [np.asarray(y) for y in model.predict(x, verbose=0)]

    source_root = str(Path(models.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "KERAS_BACKEND": other_backend, "PYTHONPATH": path}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), other_backend, MODEL],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]

    there_predicts_here = _arrays(tmp_path / "there_predicts_here.npz")
    assert [y.shape for y in there_predicts_here] == [y.shape for y in here]
    assert [y.shape[1:3] for y in here] == [(32, 48), (64, 96)]
    for ours, theirs in zip(here, there_predicts_here, strict=True):
        np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-4)

    loaded = keras.saving.load_model(tmp_path / "there.keras")
    back_here = [np.asarray(y) for y in loaded.predict(x, verbose=0)]
    there = _arrays(tmp_path / "there_predicts_there.npz")
    for ours, theirs in zip(back_here, there, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    # the two builds differ (other seed), so equal predictions mean the weights came
    # through the file, not from a default initialisation
    assert not np.allclose(there[0], here[0], atol=1e-3)
