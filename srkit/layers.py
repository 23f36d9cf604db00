"""Custom Keras layers and the building blocks of the model zoo.

This module owns everything below the level of a whole model: the depth-to-space
(sub-pixel) rearrangement, bilinear upsampling by an integer factor, VGG16 input
preprocessing, the frozen VGG16 ``block1`` feature extractor, and the block builders
that ``srkit.models`` composes (residual, dilated, dilated residual and extended dilated
residual blocks). Layer code uses ``keras.ops`` only, so the TensorFlow and JAX backends
both run it; the custom layers are registered under the ``srkit`` package so that
``.keras`` files load once this module is imported.

Convention for every block: 3x3 convolutions use ``same`` padding and ReLU,
except the convolution that closes a residual branch (the one whose output is
added to the skip connection), which is linear, as in EDSR (Lim et al., 2017,
https://arxiv.org/abs/1707.02921): the branch can then push features up and down.
"""

from __future__ import annotations

import keras
from keras import layers, ops

__all__ = [
    "BicubicUpSampling2D",
    "BilinearUpSampling2D",
    "DepthToSpace",
    "VGGFeatures",
    "VGGPreprocess",
    "VGG_BLOCK1_PARAMS",
    "VGG_MEAN_BGR",
    "conv",
    "dilated_block",
    "dilated_ext_residual_block",
    "dilated_residual_block",
    "residual_block",
    "vgg_block1",
]

# ImageNet channel means in BGR order, on the 0..255 scale: the "caffe" mode of
# keras.applications.vgg16.preprocess_input, which the published weights expect.
VGG_MEAN_BGR = (103.939, 116.779, 123.68)
# block1_conv1 (3 -> 64, 3x3) + block1_conv2 (64 -> 64, 3x3), kernels and biases.
VGG_BLOCK1_PARAMS = (3 * 3 * 3 * 64 + 64) + (3 * 3 * 64 * 64 + 64)
# Dilation rates of the three parallel branches of a dilated block.
DILATION_RATES = (1, 2, 4)


def depth_to_space(inputs, block_size: int):
    """``DCR`` depth-to-space of a channels-last tensor (see :class:`DepthToSpace`).

    With every size known when traced (training windows, upscale tiles) it is a
    reshape and a transpose to constant sizes: on a CPU about 30 % less time than
    the backend op (44 instead of 60 ms for a 668 px, 64-channel map). Otherwise
    it is the backend op (``tf.nn.depth_to_space`` on TensorFlow), which takes the
    sizes from the tensor at run time: a reshape to sizes read with ``ops.shape``
    fails on TensorFlow after dilated convolutions when only one of h, w is known
    statically, because graph optimisation folds the unknown one to the known
    value (https://github.com/tensorflow/tensorflow/issues/26797).
    """
    b = block_size
    _, height, width, channels = inputs.shape
    if height is None or width is None or channels is None:
        return ops.depth_to_space(inputs, b, data_format="channels_last")
    c_out = channels // (b * b)
    # channel (i * b + j) * c_out + c of pixel (h, w) goes to (h * b + i, w * b + j)
    blocks = ops.reshape(inputs, (-1, height, width, b, b, c_out))
    blocks = ops.transpose(blocks, (0, 1, 3, 2, 4, 5))
    return ops.reshape(blocks, (-1, height * b, width * b, c_out))


@keras.saving.register_keras_serializable(package="srkit")
class DepthToSpace(layers.Layer):
    """Rearrange channels into spatial blocks (sub-pixel shuffle, channels last).

    Same element order as ``tf.nn.depth_to_space`` (``DCR``): output pixel
    ``(h * b + i, w * b + j)``, channel ``c`` reads input pixel ``(h, w)``,
    channel ``(i * b + j) * c_out + c``. Height and width may be unknown
    (``None``) when the model is built; they are read at run time.

    Args:
        block_size: integer >= 2, the spatial upscaling factor ``b``.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ...).

    Input: float tensor (n, h, w, c) with c divisible by ``block_size**2``.
    Output: tensor (n, h * b, w * b, c / b**2), same dtype.

    Raises:
        ValueError: if ``block_size`` is not an integer >= 2, or the channel
            count is not divisible by ``block_size**2``.
    """

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(block_size, bool) or not isinstance(block_size, int):
            raise ValueError(f"block_size must be an integer >= 2, got {block_size!r}")
        if block_size < 2:
            raise ValueError(f"block_size must be an integer >= 2, got {block_size!r}")
        self.block_size = block_size

    def _out_channels(self, channels):
        if channels is None:
            return None
        if channels % (self.block_size**2):
            raise ValueError(
                f"DepthToSpace(block_size={self.block_size}) needs a channel count "
                f"divisible by {self.block_size**2}, got {channels}"
            )
        return channels // self.block_size**2

    def build(self, input_shape):
        self._out_channels(input_shape[-1])  # validate early, at model build time

    def call(self, inputs):
        return depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        b = self.block_size
        return (
            n,
            None if h is None else h * b,
            None if w is None else w * b,
            self._out_channels(c),
        )

    def get_config(self):
        config = super().get_config()
        config["block_size"] = self.block_size
        return config


def _interpolation_phases(x, factor, axis):
    # Output pixel f * i + r along `axis` samples the input at i + (r + 0.5) / f - 0.5
    # (half-pixel centres), between pixel i and its left or right neighbour; edge
    # pixels are repeated, as TensorFlow's ResizeBilinear kernel clamps positions.
    # Returns the f phases r = 0 .. f - 1, each shaped like x.
    head = (slice(None),) * axis  # index prefix selecting all earlier axes
    before = ops.concatenate(
        [x[head + (slice(0, 1),)], x[head + (slice(None, -1),)]], axis=axis
    )
    after = ops.concatenate(
        [x[head + (slice(1, None),)], x[head + (slice(-1, None),)]], axis=axis
    )
    phases = []
    for r in range(factor):
        offset = (r + 0.5) / factor - 0.5
        left, right, weight = (
            (before, x, 1.0 + offset) if offset < 0 else (x, after, offset)
        )
        # TensorFlow's operation order, left + (right - left) * weight, so that the
        # float32 rounding matches too.
        phases.append(left + (right - left) * weight)
    return phases


class _PhaseUpSampling2D(layers.Layer):
    """Upsampling by an integer factor from ``factor`` output phases per axis.

    A subclass names ``_phases(x, factor, axis)``, which returns the ``factor``
    phases of ``x`` along ``axis`` (phase r holds output pixels factor * i + r).
    Columns are interpolated first, then rows (TensorFlow's order, so that float32
    rounding matches its resize), and :func:`depth_to_space` places the
    ``factor**2`` phases, so the layer never needs the input's shape.
    """

    _phases = None  # set by each subclass

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an integer >= 1, got {size!r}")
        self.size = size

    def call(self, inputs):
        factor = self.size
        if factor == 1:
            return inputs
        columns = type(self)._phases(inputs, factor, axis=2)
        rows = [type(self)._phases(x, factor, axis=1) for x in columns]
        # Channel block r * factor + s holds output pixel (factor * i + r,
        # factor * j + s): the order depth_to_space reads (see DepthToSpace).
        blocks = [rows[s][r] for r in range(factor) for s in range(factor)]
        return depth_to_space(ops.concatenate(blocks, axis=-1), factor)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (
            n,
            None if h is None else h * self.size,
            None if w is None else w * self.size,
            c,
        )

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size
        return config


@keras.saving.register_keras_serializable(package="srkit")
class BilinearUpSampling2D(_PhaseUpSampling2D):
    """Bilinear upsampling by an integer factor, for inputs of any size.

    Gives the values of ``keras.layers.UpSampling2D(size,
    interpolation="bilinear")`` (channels last): half-pixel centres, no
    antialiasing, edge pixels repeated outside the image. On TensorFlow the values
    are equal bit for bit for power-of-two factors; for other factors TensorFlow
    rounds its float32 sample positions, which moves its values by about 1e-5
    relative to ours. The layer has no weights.

    Keras 3.15's bilinear ``UpSampling2D`` calls ``keras.ops.image.resize``, which
    compares the target size with 0 in Python and so fails on TensorFlow
    (``OperatorNotAllowedInGraphError``) once a model is retraced for a second
    image size and the size is a symbolic tensor. This layer computes the
    interpolation itself and places the ``size**2`` output phases with
    :func:`depth_to_space`, so it never needs the input's shape.

    Args:
        size: integer >= 1, the upsampling factor of rows and columns.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ...).

    Input: float tensor (n, h, w, c); h and w may be unknown when the model is
    built.
    Output: tensor (n, h * size, w * size, c), same dtype.

    Raises:
        ValueError: if ``size`` is not an integer >= 1.
    """

    _phases = staticmethod(_interpolation_phases)


def _shifted(x, shift, axis):
    # x moved by `shift` pixels (-2 .. 2) along `axis`: element i holds x[i + shift],
    # taps outside the image mirrored with the edge pixel repeated (MATLAB's
    # symmetric padding: index -1 reads 0, -2 reads 1, n reads n - 1, n + 1 reads
    # n - 2). Needs at least two pixels along the axis.
    head = (slice(None),) * axis

    def part(start, stop):
        return x[head + (slice(start, stop),)]

    if shift == 0:
        return x
    # (start, stop) of the pieces joined along the axis, mirrored taps first/last
    bounds = {
        -2: [(1, 2), (0, 1), (None, -2)],
        -1: [(0, 1), (None, -1)],
        1: [(1, None), (-1, None)],
        2: [(2, None), (-1, None), (-2, -1)],
    }[shift]
    return ops.concatenate([part(start, stop) for start, stop in bounds], axis=axis)


CUBIC_A = -0.5  # Keys' cubic convolution parameter, as MATLAB's imresize uses


def _cubic_weight(distance: float) -> float:
    # Keys (1981) cubic convolution kernel, support [-2, 2]: the kernel of
    # srkit.images.imresize (the tests check that the two agree).
    d = abs(distance)
    if d <= 1:
        return (CUBIC_A + 2) * d**3 - (CUBIC_A + 3) * d**2 + 1
    if d < 2:
        return CUBIC_A * (d**3 - 5 * d**2 + 8 * d - 4)
    return 0.0


def _cubic_phases(x, factor, axis):
    # MATLAB imresize(A, factor), bicubic: output pixel f * i + r samples the input
    # at u = i + (r + 0.5) / f - 0.5 with the cubic kernel (a = -0.5) on the four
    # pixels floor(u) - 1 .. floor(u) + 2. The taps' offsets and weights depend only
    # on r, so each phase is a fixed weighted sum of four shifted copies.
    shifted = {}
    phases = []
    for r in range(factor):
        offset = (r + 0.5) / factor - 0.5
        first = -2 if offset < 0 else -1
        taps = range(first, first + 4)
        weights = [_cubic_weight(offset - tap) for tap in taps]
        total = sum(weights)  # 1 up to rounding; normalised as MATLAB does
        phase = None
        for tap, weight in zip(taps, weights, strict=True):
            if tap not in shifted:
                shifted[tap] = _shifted(x, tap, axis)
            term = shifted[tap] * (weight / total)
            phase = term if phase is None else phase + term
        phases.append(phase)
    return phases


@keras.saving.register_keras_serializable(package="srkit")
class BicubicUpSampling2D(_PhaseUpSampling2D):
    """Bicubic upsampling by an integer factor: MATLAB's ``imresize(A, size)``.

    The interpolation of the bicubic baseline (:func:`srkit.images.bicubic_upscale`),
    as a layer without weights, so that a model can add the bicubic upscaling of its
    input to its output (the ``skip="bicubic"`` regime of :func:`srkit.models.build`)
    and carry it in its ``.keras`` file. Cubic convolution with a = -0.5,
    half-pixel centres, symmetric padding at the borders; values agree with
    ``bicubic_upscale`` to float32 rounding. Like :class:`BilinearUpSampling2D` it
    never reads the input's shape, so a model takes any image size on every backend.

    Args:
        size: integer >= 1, the upsampling factor of rows and columns.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ...).

    Input: float tensor (n, h, w, c) with h, w >= 2; h and w may be unknown when the
    model is built.
    Output: tensor (n, h * size, w * size, c), same dtype, not clipped.

    Raises:
        ValueError: if ``size`` is not an integer >= 1.
    """

    _phases = staticmethod(_cubic_phases)


@keras.saving.register_keras_serializable(package="srkit")
class VGGPreprocess(layers.Layer):
    """VGG16 input preprocessing inside the model: RGB [0, 1] -> BGR, mean-free.

    Computes ``x * 255``, reverses the channel order (RGB -> BGR) and subtracts
    the ImageNet means ``VGG_MEAN_BGR``: the ``caffe`` convention of
    ``keras.applications.vgg16.preprocess_input``, written with ``keras.ops``.

    Input: float tensor (n, h, w, 3), RGB in [0, 1].
    Output: float tensor (n, h, w, 3), BGR, roughly in [-124, 152].
    """

    def call(self, inputs):
        x = ops.flip(inputs * 255.0, axis=-1)
        mean = ops.convert_to_tensor(VGG_MEAN_BGR, dtype=x.dtype)
        return x - mean

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="srkit")
class VGGFeatures(layers.Layer):
    """Frozen VGG16 ``block1`` features: preprocessing, block1_conv1, block1_conv2.

    The layer owns its 38,720 weights (``VGG_BLOCK1_PARAMS``) and records where
    they came from in ``weights_source`` (part of the config, so it survives a
    ``.keras`` save/load). Constructing the layer never loads weights: the
    builder :func:`vgg_block1` does that; a loaded model gets its weights from
    the ``.keras`` file.

    Args:
        weights_source: description of the weights: ``"random"``,
            ``"imagenet"`` or the path of a local weights file.
        **kwargs: standard layer arguments; ``trainable`` defaults to False.

    Input: float tensor (n, h, w, 3), RGB in [0, 1].
    Output: float tensor (n, h, w, 64), ReLU features (unbounded, >= 0).
    """

    def __init__(self, weights_source="random", **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.weights_source = str(weights_source)
        self.preprocess = VGGPreprocess(name="vgg_preprocess")
        # Names follow keras.applications.VGG16 so weight files map by name.
        self.conv1 = layers.Conv2D(
            64, 3, padding="same", activation="relu", name="block1_conv1"
        )
        self.conv2 = layers.Conv2D(
            64, 3, padding="same", activation="relu", name="block1_conv2"
        )
        for layer in (self.preprocess, self.conv1, self.conv2):
            layer.trainable = self.trainable

    @property
    def conv_layers(self):
        """The two ``Conv2D`` layers, in order (used by FLOP counters)."""
        return (self.conv1, self.conv2)

    def build(self, input_shape):
        if input_shape[-1] != 3:
            raise ValueError(
                f"VGGFeatures expects 3 RGB channels, got input shape {input_shape}"
            )
        self.preprocess.build(input_shape)
        self.conv1.build(input_shape)
        self.conv2.build(tuple(input_shape[:-1]) + (64,))

    def call(self, inputs):
        return self.conv2(self.conv1(self.preprocess(inputs)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (64,)

    def get_config(self):
        config = super().get_config()
        config["weights_source"] = self.weights_source
        return config


def vgg_block1(weights, source, name="vgg16_block1"):
    """Build a frozen, built :class:`VGGFeatures` layer holding given weights.

    Args:
        weights: four numpy arrays ``[conv1_kernel (3, 3, 3, 64), conv1_bias
            (64,), conv2_kernel (3, 3, 64, 64), conv2_bias (64,)]``, float32.
        source: string recorded as the layer's ``weights_source``.
        name: layer name.

    Returns:
        A built, non-trainable ``VGGFeatures`` layer.

    Raises:
        ValueError: if the arrays do not have the shapes above.
    """
    layer = VGGFeatures(weights_source=source, name=name)
    layer.build((None, None, None, 3))
    expected = [tuple(w.shape) for w in layer.conv1.weights + layer.conv2.weights]
    got = [tuple(getattr(w, "shape", ())) for w in weights]
    if got != expected:
        raise ValueError(
            f"VGG16 block1 weights from {source!r} have shapes {got}, "
            f"expected {expected}"
        )
    layer.conv1.set_weights(list(weights[:2]))
    layer.conv2.set_weights(list(weights[2:]))
    return layer


def conv(x, filters, kernel_size=3, *, name, activation="relu", dilation_rate=1):
    """Apply a ``same``-padded 2-D convolution (ReLU unless told otherwise).

    Args:
        x: symbolic tensor (n, h, w, c_in).
        filters: output channels.
        kernel_size: square kernel size.
        name: layer name (unique within the model).
        activation: Keras activation name, or None for a linear convolution.
        dilation_rate: dilation (atrous) rate.

    Returns:
        Symbolic tensor (n, h, w, filters).
    """
    return layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        activation=activation,
        dilation_rate=dilation_rate,
        name=name,
    )(x)


def residual_block(x, channels, *, name):
    """Residual block ``Res(c) = x + Conv3x3(Conv3x3(x))``.

    The first convolution uses ReLU, the closing one is linear.
    Parameters: ``2 * (9 * c * c + c)`` (18,496 for c = 32).

    Args:
        x: symbolic tensor (n, h, w, channels).
        channels: channel count ``c`` of the input and output.
        name: prefix of the block's layer names.

    Returns:
        Symbolic tensor (n, h, w, channels).
    """
    y = conv(x, channels, name=f"{name}_conv1")
    y = conv(y, channels, name=f"{name}_conv2", activation=None)
    return layers.Add(name=f"{name}_add")([x, y])


def dilated_block(x, channels, *, name, activation="relu"):
    """Dilated block ``Dil(c)``: three parallel dilated 3x3 convs, merged by a 3x3.

    Branches with dilation 1, 2 and 4 (c -> c each, ReLU) see 3x3, 5x5 and 9x9
    neighbourhoods; their concatenation (3c channels) is merged by a 3x3
    convolution back to c channels. Parameters: ``3 * (9c^2 + c) + 27c^2 + c``
    (55,424 for c = 32, 221,440 for c = 64).

    Args:
        x: symbolic tensor (n, h, w, channels).
        channels: channel count ``c``.
        name: prefix of the block's layer names.
        activation: activation of the merging convolution; None (linear) when
            the block closes a residual branch.

    Returns:
        Symbolic tensor (n, h, w, channels).
    """
    branches = [
        conv(x, channels, name=f"{name}_d{rate}", dilation_rate=rate)
        for rate in DILATION_RATES
    ]
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    return conv(y, channels, name=f"{name}_merge", activation=activation)


def _dilated_chain_residual(x, channels, depth, name):
    y = x
    for index in range(1, depth + 1):
        y = dilated_block(y, channels, name=f"{name}_dil{index}")
    y = conv(y, channels, name=f"{name}_close", activation=None)
    return layers.Add(name=f"{name}_add")([x, y])


def dilated_residual_block(x, channels, *, name):
    """Dilated residual block ``DilRes(c) = x + Conv3x3(Dil(Dil(x)))``.

    Parameters: ``2 * Dil(c) + 9c^2 + c`` (479,808 for c = 64).

    Args:
        x: symbolic tensor (n, h, w, channels).
        channels: channel count ``c``.
        name: prefix of the block's layer names.

    Returns:
        Symbolic tensor (n, h, w, channels).
    """
    return _dilated_chain_residual(x, channels, 2, name)


def dilated_ext_residual_block(x, channels, *, name):
    """Extended dilated residual block ``DilExt(c) = x + Conv3x3(Dil(Dil(Dil(x))))``.

    Parameters: ``3 * Dil(c) + 9c^2 + c`` (701,248 for c = 64).

    Args:
        x: symbolic tensor (n, h, w, channels).
        channels: channel count ``c``.
        name: prefix of the block's layer names.

    Returns:
        Symbolic tensor (n, h, w, channels).
    """
    return _dilated_chain_residual(x, channels, 3, name)
