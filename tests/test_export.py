"""Tests of srkit.export: exported models give Keras' output (issue 23 item 5)."""

import importlib.util

import keras
import numpy as np
import pytest

from srkit import export, models, tiles

SIZES = [(13, 17), (24, 20)]  # two input sizes through one export: dynamic shape
BACKEND = keras.backend.backend()
on_tensorflow = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="srkit export runs on the TensorFlow backend"
)


def keras_outputs(model, image):
    return tiles.predict_batch(model, image[None])


def images():
    rng = np.random.default_rng(11)
    return [rng.random((h, w, 3), dtype=np.float32) for h, w in SIZES]


def dict_model():
    """Dict outputs whose sorted order is not theirs: the export keeps names."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((None, None, 3))
    low = keras.layers.Conv2D(3, 3, padding="same")(
        keras.layers.UpSampling2D(2)(inputs)  # bilinear fails on dynamic sizes
    )
    high = keras.layers.UpSampling2D(2)(low)
    return keras.Model(inputs, {"low_upsample": low, "high_upsample": high})


@pytest.fixture(
    scope="module", params=["dts_model", "simple_model_bilinear", "dict_outputs"]
)
def model(request):
    if request.param == "dict_outputs":
        return dict_model()
    if request.param == "dts_model":
        return models.build("dts_model", skip="bicubic", seed=3)
    return models.build(request.param, seed=3)


@on_tensorflow
def test_savedmodel_gives_keras_output(model, tmp_path):
    import tensorflow as tf

    target = export.export_model(model, tmp_path / "saved", "savedmodel")
    served = tf.saved_model.load(str(target))
    for image in images():
        expected = keras_outputs(model, image)
        got = served.serve(tf.constant(image[None]))
        got = got if isinstance(got, dict | list | tuple) else [got]
        if not isinstance(got, dict):
            got = dict(zip(tiles.output_names(model), got, strict=True))
        for name, value in expected.items():
            difference = float(np.abs(np.asarray(got[name]) - value).max())
            print(f"savedmodel {model.name} {image.shape} {name}: {difference:.2e}")
            assert difference <= 1e-4


@on_tensorflow
def test_onnx_gives_keras_output(model, tmp_path):
    if not all(importlib.util.find_spec(n) for n in ("onnxruntime", "tf2onnx")):
        pytest.skip("onnxruntime or tf2onnx is not installed (srkit[onnx])")
    import onnxruntime

    target = export.export_model(model, tmp_path / "model.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(target))
    (feed,) = session.get_inputs()
    assert list(feed.shape)[1:] != [] and feed.shape[-1] == 3
    assert not any(isinstance(side, int) for side in feed.shape[1:3])
    names = [output.name for output in session.get_outputs()]
    for image in images():
        expected = keras_outputs(model, image)
        got = dict(zip(names, session.run(None, {feed.name: image[None]}), strict=True))
        assert len(got) == len(expected)
        assert names == tiles.output_names(model)
        for name, value in expected.items():
            difference = float(np.abs(got[name] - value).max())
            print(f"onnx {model.name} {image.shape} {name}: {difference:.2e}")
            assert difference <= 1e-4


@on_tensorflow
def test_refusals(tmp_path):
    model = models.build("simple_model_bilinear")
    with pytest.raises(ValueError, match="unknown export format"):
        export.export_model(model, tmp_path / "x", "tflite")
    with pytest.raises(ValueError, match=r"\.onnx"):
        export.export_model(model, tmp_path / "x.pb", "onnx")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="--overwrite"):
        export.export_model(model, tmp_path / "taken", "savedmodel")


@pytest.mark.skipif(BACKEND == "tensorflow", reason="the refusal of other backends")
def test_other_backends_are_refused_in_one_line(tmp_path):
    model = models.build("simple_model_bilinear")
    with pytest.raises(ValueError, match="KERAS_BACKEND=tensorflow"):
        export.export_model(model, tmp_path / "saved", "savedmodel")


@on_tensorflow
def test_without_a_model_the_shipped_one_is_exported(tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    from srkit import cli, shipped, upscale

    monkeypatch.chdir(tmp_path)  # no project, no run folder: as on a fresh install
    code = cli.main(["export", "saved", "--format", "savedmodel"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "from the shipped model dts_model (trained by srkit run" in out
    keras_model = upscale.load_model(shipped.find())
    image = images()[0]
    expected = keras_outputs(keras_model, image)
    served = tf.saved_model.load(str(tmp_path / "saved"))  # kept: serve needs it
    got = served.serve(tf.constant(image[None]))
    got = dict(zip(tiles.output_names(keras_model), got, strict=True))
    for name, value in expected.items():
        assert float(np.abs(np.asarray(got[name]) - value).max()) <= 1e-4


def test_export_help_names_the_shipped_model_as_the_default(capsys):
    from srkit import cli

    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "else the model shipped inside srkit (srkit/pretrained/" in text
    assert "(default: the shipped model)" in text
