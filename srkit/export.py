"""``srkit export``: a trained model for other runtimes (ONNX, TF SavedModel).

Through Keras' own export (``keras.Model.export``): ``savedmodel`` writes a
TensorFlow SavedModel folder (its ``serve`` endpoint), ``onnx`` one ``.onnx``
file (tf2onnx on TensorFlow, the optional extra ``srkit[onnx]``). The input keeps
a dynamic size, (batch, height, width, 3) with only the 3 fixed, so the exported
model upscales images of any size as the Keras model does; srkit's custom layers
become plain graph operations, so the result needs neither srkit nor Keras.
A model has one input, float32 RGB in [0, 1], and its outputs by name
(``low_upsample`` x2, ``high_upsample`` x4, unclipped).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

from srkit import tiles
from srkit.upscale import find_model_file, load_model

#: ``--format`` value -> Keras' ``export`` format.
FORMATS = {"savedmodel": "tf_saved_model", "onnx": "onnx"}
#: Packages the ONNX export needs beyond TensorFlow (the ``srkit[onnx]`` extra).
ONNX_PACKAGES = ("tf2onnx", "onnx")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}"
        )


def _check_runtime(fmt: str) -> None:
    import keras  # deferred: `srkit --help` needs no Keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"srkit export runs on the TensorFlow backend (KERAS_BACKEND is "
            f"{backend!r}): run it with KERAS_BACKEND=tensorflow"
        )
    if fmt == "onnx":
        missing = [name for name in ONNX_PACKAGES if not importlib.util.find_spec(name)]
        if missing:
            raise ValueError(
                f"ONNX export needs {', '.join(missing)}: install srkit[onnx] "
                "(pip install 'srkit[onnx]')"
            )


def _check_target(target: Path, fmt: str, overwrite: bool) -> None:
    if fmt == "onnx" and target.suffix.lower() != ".onnx":
        raise ValueError(
            f"cannot write {str(target)!r}: an ONNX model is one file ending in .onnx"
        )
    if fmt == "savedmodel" and target.exists() and not target.is_dir():
        raise ValueError(
            f"cannot write {str(target)!r}: a SavedModel is a folder, and a file "
            "of that name exists"
        )
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise ValueError(
            f"{str(target)!r} exists: pass --overwrite to replace it, or choose "
            "another OUT"
        )
    if not target.parent.is_dir():
        raise ValueError(
            f"cannot write {str(target)!r}: folder {str(target.parent)!r} does not "
            "exist"
        )


def dynamic_model(model):
    """``model`` on an input of any size, (None, None, None, 3), named ``image``.

    Rebuilt on a new input, sharing its layers (the zoo's models are fully
    convolutional, and a model built for fixed windows becomes dynamic), with its
    outputs as a list in :func:`srkit.tiles.output_names` order, each named so.
    """
    import keras

    names = tiles.output_names(model)
    inputs = keras.Input((None, None, 3), name="image")
    outputs = model(inputs)
    if isinstance(outputs, Mapping):
        outputs = [outputs[name] for name in names]
    elif not isinstance(outputs, list | tuple):
        outputs = [outputs]
    outputs = [
        keras.layers.Identity(name=name)(tensor)
        for name, tensor in zip(names, outputs, strict=True)
    ]
    return keras.Model(inputs, outputs, name=model.name)


def _name_onnx_outputs(path: Path, names: list[str]) -> None:
    """Give an ONNX file's outputs the model's output names (tf2onnx writes
    ``Identity:0``, ...), in the order of :func:`dynamic_model`."""
    import onnx

    proto = onnx.load(str(path))
    graph = proto.graph
    renames = {out.name: name for out, name in zip(graph.output, names, strict=True)}
    for node in graph.node:
        for ports in (node.output, node.input):
            for index, port in enumerate(ports):
                if port in renames:
                    ports[index] = renames[port]
    for out in graph.output:
        out.name = renames[out.name]
    onnx.save(proto, str(path))


def export_model(model, target, fmt: str, overwrite: bool = False) -> Path:
    """Write a Keras model for another runtime.

    Args:
        model: a fully convolutional Keras model (one image input).
        target: a folder for ``savedmodel``, a ``.onnx`` file for ``onnx``.
        fmt: one of :data:`FORMATS`.
        overwrite: replace an existing ``target``.

    Returns:
        The path written. The folder or file appears whole: Keras writes into a
        temporary name beside it, renamed when done.

    Raises:
        ValueError: an unknown format, a missing package (``srkit[onnx]``), another
            backend than TensorFlow, or a target that exists or cannot be written.
    """
    _check_format(fmt)
    target = Path(target).expanduser()
    _check_target(target, fmt, overwrite)
    _check_runtime(fmt)
    import tensorflow as tf

    model = dynamic_model(model)
    signature = [tf.TensorSpec((None, None, None, 3), tf.float32, name="image")]
    staging = target.with_name(f".{target.name}.srkit-export-{os.getpid()}")
    if staging.is_dir():
        shutil.rmtree(staging)
    try:
        with warnings.catch_warnings():  # Keras' tf2onnx patch for numpy 2
            warnings.filterwarnings("ignore", r".*np\.object", FutureWarning)
            model.export(
                str(staging),
                format=FORMATS[fmt],
                input_signature=signature,
                verbose=False,
            )
        if fmt == "onnx":
            _name_onnx_outputs(staging, tiles.output_names(model))
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        elif staging.exists():
            staging.unlink()
    return target


def export(
    target,
    fmt: str,
    model_file=None,
    name: str | None = None,
    project=None,
    run_dir=None,
    overwrite: bool = False,
) -> dict:
    """``srkit export``: find a model as ``srkit upscale`` does and export it.

    Args:
        target: output folder (savedmodel) or ``.onnx`` file.
        fmt: ``savedmodel`` or ``onnx``.
        model_file: a ``.keras`` file; else ``name`` in ``run_dir`` (default: the
            project's latest run); else, with neither, the model shipped inside
            srkit, as :func:`srkit.upscale.find_model_file` finds it for
            ``srkit upscale``.
        name, project, run_dir: where the model is found without ``model_file``.
        overwrite: replace an existing ``target``.

    Returns:
        dict with ``model_file``, ``target``, ``format`` and ``outputs``.
    """
    _check_format(fmt)
    _check_target(Path(target).expanduser(), fmt, overwrite)
    _check_runtime(fmt)
    path = find_model_file(
        name if name or model_file is None else "model",  # "model": only a label
        project=project,
        run_dir=run_dir,
        model_file=model_file,
    )
    model = load_model(path)
    written = export_model(model, target, fmt, overwrite=overwrite)
    return {
        "model_file": str(path),
        "target": str(written),
        "format": fmt,
        "outputs": tiles.output_names(model),
    }
