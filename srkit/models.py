"""The model zoo: eleven fully convolutional super-resolution networks, by name.

This module owns the registry (``MODEL_NAMES``, ``MODEL_INFO``), the builders
that turn a name into a ``keras.Model`` (``build``), the resolution of the frozen
VGG16 ``block1`` weights (``"random"``, ``"imagenet"`` or a local file), and small
helpers to inspect a built model (``count_params``, ``vgg_weights_used``,
``zoo_table``). The exact parameter counts of the original study's networks are
stored in ``MODEL_INFO`` beside each builder; the tests build every model and
compare. ``MODEL_INFO[name]["page"]`` names the step page that trains each model
(``notebooks/<page>.py``): the book's links, the summary page and ``srkit upscale``
read it there.

Every model takes float32 RGB images in [0, 1] of any size, shape
(n, h, w, 3), and returns ``low_upsample`` (n, 2h, 2w, 3) and, from step 03 on,
``high_upsample`` (n, 4h, 4w, 3). Hidden convolutions use ``same`` padding and
ReLU; heads are linear 1x1 convolutions; the convolution closing a residual
branch is linear (see ``srkit.layers``). Interpolating models from step 03 on
use bilinear upsampling, the better variant of step 02 in the original study,
through ``srkit.layers.BilinearUpSampling2D`` (the values of Keras'
``UpSampling2D(interpolation="bilinear")``, which in Keras 3.15 fails on
TensorFlow once a model sees a second image size). Where an upsampling feeds
only a head, the head comes first (``<output>_head``, then the upsamplings):
the same function, on 3 channels instead of 64 or 128.

``build(name, skip="bicubic")`` gives the same network in a second training regime:
each output adds the bicubic upscaling of the input (a layer without weights) and
the heads start at zero, so the network learns only what bicubic interpolation
misses and starts from bicubic's quality (the residual learning of VDSR, Kim et al.,
2016, https://arxiv.org/abs/1511.04587).
"""

from __future__ import annotations

import socket
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras import layers

from srkit import layers as blocks
from srkit.vocab import HIGH_OUTPUT, LOW_OUTPUT, OUTPUT_NAMES

__all__ = [
    "MODEL_INFO",
    "MODEL_NAMES",
    "VGG_RANDOM_SEED",
    "SKIPS",
    "build",
    "count_params",
    "load_vgg_weights",
    "skip_used",
    "vgg_weights_used",
    "zoo_table",
]

LOW = (LOW_OUTPUT,)
BOTH = OUTPUT_NAMES


# Training regimes of build(): "none" is the study's networks as they are;
# "bicubic" adds the bicubic upscaling of the input to every output (no weights)
# and starts the heads at zero, so the network learns the residual over bicubic.
SKIPS = ("none", "bicubic")

# Seed of the "random" VGG weights, so that every build gives the same features.
VGG_RANDOM_SEED = 0
VGG_INPUT_RANGE = 255.0  # VGG preprocessing scales [0, 1] pixels to 0-255
# keras.applications.VGG16(include_top=False) weights: URL, cache name and MD5
# as in keras/src/applications/vgg16.py.
VGG16_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
VGG16_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG16_NOTOP_MD5 = "6d6bbae143d832006294945121d1f1fc"
# Give up on an unreachable download server after this many seconds.
DOWNLOAD_TIMEOUT_S = 60
# Array names of the .npz weights format (see load_vgg_weights).
NPZ_KEYS = (
    "block1_conv1_kernel",
    "block1_conv1_bias",
    "block1_conv2_kernel",
    "block1_conv2_bias",
)

_VGG_CACHE: dict[str, list[np.ndarray]] = {}
_HOW_TO = (
    'Pass vgg_weights="random" (frozen random features) or the path of a local '
    "file: a VGG16 notop weights file ('.h5' from keras.applications or "
    "'.weights.h5') or an '.npz' with the arrays " + ", ".join(NPZ_KEYS) + "."
)


def _random_vgg_weights() -> list[np.ndarray]:
    # Glorot-uniform kernels (the Keras default) and zero biases, from a fixed
    # numpy generator: identical on every backend and every call. The first kernel
    # is divided by VGG_INPUT_RANGE: the block sees VGG-preprocessed pixels (about
    # -124 to 152), and unscaled random features of that size (up to ~50) start the
    # heads at predictions of +-30 and made a quick-profile run diverge at lr 1e-3.
    # Scaled, the random features have the size of features of [0, 1] images.
    rng = np.random.default_rng(VGG_RANDOM_SEED)
    weights = []
    for c_in, c_out in ((3, 64), (64, 64)):
        fan_in, fan_out = 9 * c_in, 9 * c_out
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        kernel = rng.uniform(-limit, limit, size=(3, 3, c_in, c_out))
        if c_in == 3:
            kernel /= VGG_INPUT_RANGE
        weights += [kernel.astype("float32"), np.zeros(c_out, "float32")]
    return weights


def _weights_from_vgg16_file(path: Path) -> list[np.ndarray]:
    vgg = keras.applications.VGG16(include_top=False, weights=None)
    try:
        vgg.load_weights(str(path))
    except Exception as error:  # Keras raises several types for bad files
        raise ValueError(
            f"cannot load VGG16 notop weights from {str(path)!r}: {error}. {_HOW_TO}"
        ) from error
    return [
        np.asarray(w)
        for name in ("block1_conv1", "block1_conv2")
        for w in vgg.get_layer(name).get_weights()
    ]


def _weights_from_npz(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        missing = [key for key in NPZ_KEYS if key not in data]
        if missing:
            raise ValueError(
                f"{str(path)!r} lacks the arrays {missing}; an .npz VGG weights file "
                f"needs {list(NPZ_KEYS)}"
            )
        return [np.asarray(data[key], dtype="float32") for key in NPZ_KEYS]


def _download_imagenet() -> Path:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        # get_file returns the cached copy (~/.keras/models) without network.
        return Path(
            keras.utils.get_file(
                VGG16_NOTOP_FILE,
                VGG16_NOTOP_URL,
                cache_subdir="models",
                file_hash=VGG16_NOTOP_MD5,
            )
        )
    except Exception as error:  # offline: URLError, Exception from get_file, ...
        raise RuntimeError(
            "could not download the ImageNet VGG16 weights "
            f"({VGG16_NOTOP_URL}): {error}. Copy {VGG16_NOTOP_FILE} into "
            f"~/.keras/models/ on this machine, or {_HOW_TO}"
        ) from error
    finally:
        socket.setdefaulttimeout(previous)


def load_vgg_weights(source: str | Path = "random") -> list[np.ndarray]:
    """Return the four VGG16 ``block1`` arrays for a weights source.

    Sources:

    - ``"random"``: deterministic Glorot-uniform kernels (seed
      ``VGG_RANDOM_SEED``) and zero biases: frozen random features, offline.
    - ``"imagenet"``: the ``keras.applications.VGG16(include_top=False)``
      ImageNet weights, downloaded once by Keras into ``~/.keras/models``.
    - a path to a ``.h5`` / ``.weights.h5`` file holding full VGG16 notop
      weights (as written by ``keras.applications.VGG16(include_top=False)
      .save_weights`` or Keras' download), or to an ``.npz`` with the arrays
      ``block1_conv1_kernel`` (3, 3, 3, 64), ``block1_conv1_bias`` (64,),
      ``block1_conv2_kernel`` (3, 3, 64, 64), ``block1_conv2_bias`` (64,).

    Results are cached per source for the life of the process.

    Args:
        source: ``"random"``, ``"imagenet"`` or a file path.

    Returns:
        ``[conv1_kernel, conv1_bias, conv2_kernel, conv2_bias]``, float32
        arrays (copies: callers may modify them).

    Raises:
        ValueError: missing file, unsupported suffix, or a file without the
            expected weights.
        RuntimeError: ``"imagenet"`` while the weights cannot be downloaded.
    """
    key = str(source)
    if key not in _VGG_CACHE:
        if key == "random":
            weights = _random_vgg_weights()
        elif key == "imagenet":
            weights = _weights_from_vgg16_file(_download_imagenet())
        else:
            path = Path(key).expanduser()
            if not path.is_file():
                raise ValueError(f"VGG weights file {key!r} does not exist. {_HOW_TO}")
            if path.suffix == ".npz":
                weights = _weights_from_npz(path)
            elif path.suffix == ".h5":
                weights = _weights_from_vgg16_file(path)
            else:
                raise ValueError(
                    f"unsupported VGG weights file {key!r} (suffix "
                    f"{path.suffix!r}). {_HOW_TO}"
                )
        _VGG_CACHE[key] = [np.asarray(w, dtype="float32") for w in weights]
    return [w.copy() for w in _VGG_CACHE[key]]


def _vgg(inputs, vgg_weights):
    source = str(vgg_weights)
    return blocks.vgg_block1(load_vgg_weights(source), source)(inputs)


def _head(x, name, skip=None):
    # Linear 1x1 projection to RGB; no clipping so the loss sees the raw values.
    # With a skip (see _output) the head predicts a residual and starts at zero, so
    # that the untrained model is exactly bicubic interpolation.
    initializer = "zeros" if skip is not None else "glorot_uniform"
    return layers.Conv2D(
        3, 1, padding="same", kernel_initializer=initializer, name=name
    )(x)


def _output(x, output, skip):
    """The output tensor ``output``: ``x`` itself, or ``x`` + bicubic of the input.

    ``skip`` is None (the study's networks) or the model's input tensor: the
    ``skip="bicubic"`` regime adds its bicubic upscaling, a layer without weights,
    so the layers before learn only what bicubic interpolation misses.
    """
    if skip is None:
        return x
    factor = 2 if output == LOW_OUTPUT else 4
    bicubic = blocks.BicubicUpSampling2D(factor, name=f"{output}_bicubic")(skip)
    return layers.Add(name=output)([x, bicubic])


def _named(output, skip):
    # The last layer of an output carries its name; with a skip the Add does.
    return output if skip is None else f"{output}_residual"


def _upsample(x, name, interpolation="bilinear"):
    # x2; nearest-neighbour UpSampling2D repeats pixels and takes any size.
    if interpolation == "nearest":
        return layers.UpSampling2D(2, interpolation="nearest", name=name)(x)
    return blocks.BilinearUpSampling2D(2, name=name)(x)


def _upsampled_head(x, output, doublings, interpolation="bilinear", skip=None):
    """``output``: the 1x1 head of ``x``, then ``doublings`` x2 upsamplings.

    The same function as the head applied after the upsamplings: both are linear,
    and the interpolation weights of every output pixel sum to 1, so the head's
    bias passes through unchanged. Applied first, the head leaves 3 channels to
    interpolate instead of x's 64 or 128; for step 03 on a 2-core CPU a training
    step took 0.11 s instead of 0.66.
    """
    x = _head(x, f"{output}_head", skip)
    for doubling in range(1, doublings + 1):
        last = doubling == doublings
        name = _named(output, skip) if last else f"{output}_x{2**doubling}"
        x = _upsample(x, name, interpolation)
    return _output(x, output, skip)


def _final_head(x, output, skip):
    # A head that is the output's last weighted layer (steps 04-05's x2, 07, R1-R4).
    return _output(_head(x, _named(output, skip), skip), output, skip)


def _simple(inputs, interpolation, skip):
    x = blocks.conv(inputs, 64, name="conv1")
    x = blocks.conv(x, 64, name="conv2")
    return [_upsampled_head(x, LOW_OUTPUT, 1, interpolation, skip)]


def _multi_upsampling(inputs, _vgg_weights, skip):
    x = blocks.conv(inputs, 64, name="conv1")
    x = blocks.conv(x, 64, name="conv2")
    return [
        _upsampled_head(x, LOW_OUTPUT, 1, skip=skip),
        _upsampled_head(x, HIGH_OUTPUT, 2, skip=skip),
    ]


def _residual_like(inputs, block, skip):
    # Steps 04 and 05: 1x1 stem, two blocks, x2, one block, x4.
    x = blocks.conv(inputs, 32, 1, name="stem")
    x = block(x, "block1")
    x = block(x, "block2")
    up2 = _upsample(x, "up_x2")
    x = block(up2, "block3")
    return [
        _final_head(up2, LOW_OUTPUT, skip),
        _upsampled_head(x, HIGH_OUTPUT, 1, skip=skip),
    ]


def _residual(inputs, _vgg_weights, skip):
    return _residual_like(
        inputs, lambda x, name: blocks.residual_block(x, 32, name=name), skip
    )


def _dilated(inputs, _vgg_weights, skip):
    def block(x, name):
        # x + Dil(x): the merge convolution closes the residual, so it is linear.
        y = blocks.dilated_block(x, 32, name=name, activation=None)
        return layers.Add(name=f"{name}_add")([x, y])

    return _residual_like(inputs, block, skip)


def _vgg_feature_extract(inputs, vgg_weights, skip):
    x = blocks.conv(inputs, 64, 1, name="conv1")
    x = blocks.conv(x, 64, 1, name="conv2")
    x = layers.Concatenate(name="concat_vgg")([x, _vgg(inputs, vgg_weights)])
    return [
        _upsampled_head(x, LOW_OUTPUT, 1, skip=skip),
        _upsampled_head(x, HIGH_OUTPUT, 2, skip=skip),
    ]


def _d2s(x, name):
    return blocks.DepthToSpace(2, name=name)(x)


def _dts(inputs, vgg_weights, skip):
    x = blocks.conv(inputs, 64, name="conv1")
    x = blocks.conv(x, 64, name="conv2")
    x = layers.Concatenate(name="concat_vgg")([x, _vgg(inputs, vgg_weights)])
    x = blocks.conv(x, 64, name="pre_d2s_x2")
    low = _d2s(x, "d2s_x2")
    x = blocks.conv(low, 64, name="pre_d2s_x4")
    high = _d2s(x, "d2s_x4")
    return [_final_head(low, LOW_OUTPUT, skip), _final_head(high, HIGH_OUTPUT, skip)]


def _dts_parallel(inputs, vgg_weights, parallel_block, skip):
    # R1-R3: three parallel blocks on one stem, concatenated with VGG features.
    stem = blocks.conv(inputs, 64, name="stem")
    branches = [parallel_block(stem, 64, name=f"branch{i}") for i in (1, 2, 3)]
    x = layers.Concatenate(name="concat_vgg")(branches + [_vgg(inputs, vgg_weights)])
    x = blocks.conv(x, 64, name="pre_d2s_x2")
    low = _d2s(x, "d2s_x2")
    x = blocks.conv(low, 64, name="high_stem")
    x = blocks.dilated_residual_block(x, 64, name="high_block")
    high = _d2s(x, "d2s_x4")
    return [_final_head(low, LOW_OUTPUT, skip), _final_head(high, HIGH_OUTPUT, skip)]


def _dts_dilated(inputs, vgg_weights, skip):
    return _dts_parallel(inputs, vgg_weights, blocks.dilated_residual_block, skip)


def _dts_dilated_ext(inputs, vgg_weights, skip):
    return _dts_parallel(inputs, vgg_weights, blocks.dilated_ext_residual_block, skip)


def _dts_dilated_ext_chain(inputs, vgg_weights, skip):
    stem = blocks.conv(inputs, 64, name="stem")
    chain = [stem]
    for index in (1, 2, 3):
        chain.append(
            blocks.dilated_ext_residual_block(chain[-1], 64, name=f"chain{index}")
        )
    x = layers.Add(name="chain_sum")(chain)
    x = layers.Concatenate(name="concat_vgg")([x, _vgg(inputs, vgg_weights)])
    x = blocks.conv(x, 64, name="pre_d2s_x2")
    low = _d2s(x, "d2s_x2")
    d = blocks.conv(low, 64, name="high_stem")
    e = blocks.dilated_ext_residual_block(d, 64, name="high_block")
    # The original adds the stem once more around an already residual block.
    x = layers.Add(name="high_sum")([d, e])
    x = blocks.conv(x, 64, name="pre_d2s_x4")
    high = _d2s(x, "d2s_x4")
    return [_final_head(low, LOW_OUTPUT, skip), _final_head(high, HIGH_OUTPUT, skip)]


#: The zoo, one entry per model in step order: its builder (inputs, vgg_weights,
#: skip) -> outputs (skip: None or the input tensor, see _output), the step that
#: trains it (its label in the book: ``02``-``07``, ``R1``-``R4``), the page of that
#: step (the stem of ``notebooks/<page>.py``, the one place that links a model to
#: its page), its outputs, its training loss, its exact parameter counts and one
#: sentence for the book.
MODEL_INFO: dict[str, dict] = {
    "simple_model_nearest": {
        "builder": lambda inputs, _w, skip: _simple(inputs, "nearest", skip),
        "step": "02",
        "page": "02_initial_model",
        "outputs": LOW,
        "loss": "mse",
        "params": 38_915,
        "trainable": 38_915,
        "summary": "Two 3x3 convolutions, nearest-neighbour x2 upsampling and a "
        "1x1 head: the simplest fully convolutional upscaler.",
    },
    "simple_model_bilinear": {
        "builder": lambda inputs, _w, skip: _simple(inputs, "bilinear", skip),
        "step": "02",
        "page": "02_initial_model",
        "outputs": LOW,
        "loss": "mse",
        "params": 38_915,
        "trainable": 38_915,
        "summary": "The step-02 network with bilinear instead of nearest-neighbour "
        "upsampling.",
    },
    "multi_upsampling_model": {
        "builder": _multi_upsampling,
        "step": "03",
        "page": "03_multi_upsampling",
        "outputs": BOTH,
        "loss": "mse",
        "params": 39_110,
        "trainable": 39_110,
        "summary": "Two 3x3 convolutions, then upsampling twice with a 1x1 head "
        "after each, giving x2 and x4 outputs.",
    },
    "residual_block_model": {
        "builder": _residual,
        "step": "04",
        "page": "04_residual_blocks",
        "outputs": BOTH,
        "loss": "mse",
        "params": 55_814,
        "trainable": 55_814,
        "summary": "A 1x1 stem and residual blocks of two 3x3 convolutions "
        "before each upsampling.",
    },
    "dilated_conv_block_model": {
        "builder": _dilated,
        "step": "05",
        "page": "05_dilated_blocks",
        "outputs": BOTH,
        "loss": "mse",
        "params": 166_598,
        "trainable": 166_598,
        "summary": "Step 04 with each residual block replaced by a residual "
        "dilated block (parallel dilation 1, 2 and 4).",
    },
    "vgg_feature_extract_model": {
        "builder": _vgg_feature_extract,
        "step": "06",
        "page": "06_vgg_features",
        "outputs": BOTH,
        "loss": "mse",
        "params": 43_910,
        "trainable": 5_190,
        "summary": "Two 1x1 convolutions concatenated with frozen VGG16 block1 "
        "features, then upsampled twice.",
    },
    "dts_model": {
        "builder": _dts,
        "step": "07",
        "page": "07_depth_to_space",
        "outputs": BOTH,
        "loss": "mse",
        "params": 160_614,
        "trainable": 121_894,
        "summary": "Convolutions and VGG16 block1 features upscaled by learned "
        "depth-to-space (sub-pixel) layers instead of interpolation.",
    },
    "dts_dilated_conv_block_model": {
        "builder": _dts_dilated,
        "step": "R1",
        "page": "08_result_dilated",
        "outputs": BOTH,
        "loss": "psnr",
        "params": 2_116_646,
        "trainable": 2_077_926,
        "summary": "Three parallel dilated residual blocks concatenated with VGG16 "
        "features, depth-to-space upscaling, trained on -PSNR.",
    },
    "dts_dilated_conv_ext_block_model": {
        "builder": _dts_dilated_ext,
        "step": "R2",
        "page": "09_result_dilated_ext",
        "outputs": BOTH,
        "loss": "psnr_ssim",
        "params": 2_780_966,
        "trainable": 2_742_246,
        "summary": "R1 with extended (three dilated blocks deep) residual blocks "
        "in the parallel branches, trained on -PSNR-SSIM.",
    },
    "dts_dilated_conv_ext_block_ssim_model": {
        "builder": _dts_dilated_ext,
        "step": "R3",
        "page": "10_result_mse_ssim",
        "outputs": BOTH,
        "loss": "mse_ssim",
        "params": 2_780_966,
        "trainable": 2_742_246,
        "summary": "The R2 architecture trained on MSE-SSIM.",
    },
    "dts_dilated_conv_ext_block_ssim_psnr_model": {
        "builder": _dts_dilated_ext_chain,
        "step": "R4",
        "page": "11_result_psnr_over_ssim",
        "outputs": BOTH,
        "loss": "psnr_over_ssim",
        "params": 2_965_606,
        "trainable": 2_926_886,
        "summary": "Chained extended dilated residual blocks summed with their "
        "input, VGG16 features and depth-to-space, trained on -PSNR/(1-SSIM).",
    },
}

MODEL_NAMES: tuple[str, ...] = tuple(MODEL_INFO)


def build(
    name: str,
    vgg_weights: str | Path = "random",
    seed: int | None = None,
    skip: str = "none",
) -> keras.Model:
    """Build a zoo model by its registry name.

    Args:
        name: one of ``MODEL_NAMES``.
        vgg_weights: source of the frozen VGG16 block1 weights for the models
            that use them (steps 06, 07, R1-R4): ``"random"``, ``"imagenet"``
            or a local file path (see :func:`load_vgg_weights`). Ignored by the
            other models.
        seed: when set, seeds Python, NumPy and the backend
            (``keras.utils.set_random_seed``) just before building, so the same
            seed gives the same initial weights; None keeps the current state.
        skip: ``"none"``: the study's network as it is. ``"bicubic"``: every
            output adds the bicubic upscaling of the input
            (:class:`srkit.layers.BicubicUpSampling2D`, no weights, saved in the
            ``.keras`` file) to what the network predicts, and the heads start at
            zero, so the untrained model is bicubic interpolation and training
            learns the residual. Parameter counts are the same in both regimes.

    Returns:
        An uncompiled ``keras.Model`` named ``name``, input (None, None, 3)
        float32 RGB in [0, 1], outputs ``low_upsample`` (x2) and, except for
        step 02, ``high_upsample`` (x4), listed in ``MODEL_INFO[name]["outputs"]``.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid names), an
            unknown ``skip`` or a bad ``vgg_weights`` file.
        RuntimeError: ``vgg_weights="imagenet"`` while offline and not cached.
    """
    if name not in MODEL_INFO:
        raise ValueError(
            f"unknown model name {name!r}; choose one of: {', '.join(MODEL_NAMES)}"
        )
    if skip not in SKIPS:
        raise ValueError(f"skip must be one of {SKIPS}, got {skip!r}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(None, None, 3), name="low_res")
    skip_from = inputs if skip == "bicubic" else None
    outputs = MODEL_INFO[name]["builder"](inputs, vgg_weights, skip_from)
    return keras.Model(inputs, outputs, name=name)


def count_params(model: keras.Model) -> tuple[int, int]:
    """Count a model's parameters.

    Args:
        model: a built Keras model.

    Returns:
        ``(total, trainable)`` scalar weight counts.
    """
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return int(model.count_params()), trainable


def _vgg_layers(layer):
    if isinstance(layer, blocks.VGGFeatures):
        yield layer
    for sub in getattr(layer, "layers", ()):
        yield from _vgg_layers(sub)


def vgg_weights_used(model: keras.Model) -> str | None:
    """Tell which VGG16 weights a model was built with.

    Reads the ``weights_source`` of the model's :class:`srkit.layers.VGGFeatures`
    layer, which is saved in the model config and survives ``.keras`` files.

    Args:
        model: a zoo model (built or loaded).

    Returns:
        ``"random"``, ``"imagenet"``, the weights file path, or None when the
        model has no VGG features.
    """
    for layer in _vgg_layers(model):
        return layer.weights_source
    return None


def skip_used(model: keras.Model) -> str:
    """Tell the training regime a model was built in (see :func:`build`).

    Args:
        model: a zoo model (built or loaded from ``.keras``).

    Returns:
        ``"bicubic"`` when its outputs add the bicubic upscaling of the input,
        else ``"none"``.
    """
    bicubic = any(
        isinstance(layer, blocks.BicubicUpSampling2D) for layer in model.layers
    )
    return "bicubic" if bicubic else "none"


def zoo_table() -> pd.DataFrame:
    """Summarise the zoo: one row per model with its step, counts and outputs.

    Returns:
        DataFrame with one row per model in step order and columns ``name``,
        ``step``, ``params`` (total), ``trainable`` and ``outputs`` (output
        names joined by ", ").
    """
    rows = [
        {
            "name": name,
            "step": info["step"],
            "params": info["params"],
            "trainable": info["trainable"],
            "outputs": ", ".join(info["outputs"]),
        }
        for name, info in MODEL_INFO.items()
    ]
    return pd.DataFrame(
        rows, columns=["name", "step", "params", "trainable", "outputs"]
    )


def load(path: str | Path) -> keras.Model:
    """Load a model saved as ``.keras`` by ``srkit.train`` (or ``model.save``).

    Importing this module registers srkit's custom layers, which Keras needs to
    rebuild ``DepthToSpace``, ``BilinearUpSampling2D`` and the VGG16 block; the
    model is loaded uncompiled, ready for prediction.

    Args:
        path: a ``.keras`` file.

    Returns:
        The model, with its original name.

    Raises:
        ValueError: if the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"no model file at {str(path)!r}; train it first (e.g. `srkit run --only "
            "NN` for the step that trains it)"
        )
    return keras.saving.load_model(path, compile=False)
