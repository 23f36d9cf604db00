"""Applying a model to images: one batch, or one image of any size tile by tile.

This module owns how srkit calls a trained model on images outside training.
:func:`predict_batch` runs one batch and returns numpy outputs by name, through
one compiled function per model (:func:`model_function`: a graph on TensorFlow,
``jax.jit`` on JAX), not layer by layer. A large image is cut into square cores
(:func:`choose_tile`), each predicted with enough context around it (the model's
:func:`receptive_radius`, read from its layers, or else measured by
:func:`measure_radius`) that no seam shows, and the cores are written into one
result (:func:`predict_full`) or streamed strip by strip (:func:`predict_strips`).
The automatic core is the largest whose activations fit :data:`TILE_BYTES` (the
model's :func:`activation_bytes`); every window of an image has one shape (windows
at the border shift inwards instead of shrinking), so the model compiles once and
the windows of a strip go in batches. Memory holds one call's activations.

``tile`` means the same everywhere in srkit (here, in :mod:`srkit.evaluate` and in
:mod:`srkit.upscale`): None chooses the core from the image size, :data:`WHOLE`
(0) predicts the whole image at once, and a positive number is the core side in
input pixels.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import weakref
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from srkit import images
from srkit.vocab import HIGH_OUTPUT

#: ``tile`` value that predicts the whole image at once (no tiling).
WHOLE = 0
#: Memory for the activations of one prediction call (one window, or a batch of
#: windows): the automatic tiling takes the largest core whose window fits by
#: :func:`activation_bytes`. dts_model at x4 needs about 4.4 kB per window pixel
#: (4.0 kB measured on TensorFlow), so its cores are about 330 px, and
#: ``srkit upscale`` of a 6000x4000 photo stays under 2 GB.
TILE_BYTES = 512 * 2**20
#: Largest core (input pixels per side) of the automatic tiling, whatever the
#: memory allows: beyond it the overlap costs under 2 % of the work.
MAX_TILE = 1024
#: Smallest automatic core (input pixels per side): below it the overlap would
#: cost more than the core, whatever the memory estimate says.
MIN_TILE = 16
#: Bytes per activation value of :func:`activation_bytes` (float32).
ACTIVATION_ITEM_BYTES = 4
#: Activation bytes per window pixel assumed for a model whose layers cannot be
#: read (a nested model, an unknown layer): about four times dts_model's x4.
UNREAD_PIXEL_BYTES = 16 * 2**10
#: Sides (input pixels) of the random images :func:`measure_radius` probes a model
#: with, smallest first; the largest bounds the radius it can measure (63 px, more
#: than the zoo's widest model, 59 px) and its cost (two 129 px predictions).
PROBE_SIDES = (33, 65, 129)
#: Extra context beyond a measured radius: the probe sees where one pixel's change
#: reaches on random images, and a ReLU may hide its faintest reach.
PROBE_MARGIN = 2
#: An output change above this (times the output's largest value, at least 1)
#: counts as reached by the probe; float32 rounding stays far below it.
PROBE_TOLERANCE = 1e-5
#: Largest image (input pixels) predicted whole when a model's receptive field can
#: neither be read nor measured (e.g. a normalization over the whole image, where
#: tiles would differ from the whole image): 512x512.
UNBOUNDED_MAX_PIXELS = 512 * 512
#: Extra context beyond the receptive field: the fractional pixel alignment of
#: upsampling layers, so tiled and whole-image predictions stay equal.
OVERLAP_SLACK = 1
_POINTWISE_LAYERS = {
    "InputLayer",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dropout",
    "Identity",
    "Rescaling",
    "VGGPreprocess",
}
# Normalizations that are per pixel in inference when they act on channels only.
_CHANNEL_NORMALIZATIONS = {"BatchNormalization", "LayerNormalization"}
_CONV_LAYERS = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D"}
_VGG_CONV_RADIUS = 2  # srkit.layers.VGGFeatures: two 3x3 convolutions
_BICUBIC_RADIUS = 2  # srkit.layers.BicubicUpSampling2D: the cubic kernel's support


def output_names(model) -> list[str]:
    """Names of a Keras model's outputs, in the order the model returns them.

    Args:
        model: a built ``keras.Model``.

    Returns:
        e.g. ``["low_upsample", "high_upsample"]``.
    """
    structure = None
    with contextlib.suppress(AttributeError, ValueError, TypeError):
        structure = model.output  # a dict for a model built with dict outputs
    if isinstance(structure, Mapping):
        return [str(name) for name in structure]
    names = getattr(model, "output_names", None)
    if names:
        return [str(name) for name in names]
    return [tensor._keras_history.operation.name for tensor in model.outputs]


_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_function(model) -> Callable[[np.ndarray], object]:
    """``model(batch, training=False)`` as one compiled function, made once per model.

    Calling a Keras model runs it layer by layer from Python, each operation on its
    own; on TensorFlow that took 1.7 times as long as the same model in a graph
    (104 ms against 61 ms for dts_model on a 138 px window, 2-core CPU). So the
    model is called through ``tf.function`` on TensorFlow (one graph for every
    input size after the second, ``reduce_retracing``; a graph per input size for
    a model that cannot be traced with unknown sizes, e.g. Keras' bilinear
    ``UpSampling2D``; layer by layer for one that cannot be traced at all; without
    XLA, which compiled for seconds per size and ran slower on a CPU) and
    ``jax.jit`` on JAX (compiled once per input shape, with the variables' current
    values passed at each call, so a model still training is called with its
    latest weights). Other backends, and callables that are not Keras models, are
    called as they are.

    Args:
        model: a Keras model, or any callable taking ``(batch, training=False)``.

    Returns:
        A function of a float32 (n, h, w, c) batch returning what the model
        returns (backend tensors: one, a list, or a dict by output name).
    """
    import keras  # deferred: plotting and metrics files need no Keras

    with contextlib.suppress(KeyError, TypeError):  # TypeError: not weakly referable
        return _FUNCTIONS[model]
    try:
        owner = weakref.ref(model)  # the cache must not keep the model alive
    except TypeError:
        return lambda batch: model(batch, training=False)
    backend = keras.backend.backend()
    if not isinstance(model, keras.Model) or backend not in ("tensorflow", "jax"):

        def function(batch):
            return owner()(batch, training=False)

    elif backend == "tensorflow":
        function = _graph_function(owner)
    else:
        import jax

        compiled = jax.jit(
            lambda trainable, other, batch: owner().stateless_call(
                trainable, other, batch, training=False
            )[0]
        )

        def function(batch):
            current = owner()
            return compiled(
                [variable.value for variable in current.trainable_variables],
                [variable.value for variable in current.non_trainable_variables],
                batch,
            )

    _FUNCTIONS[model] = function
    return function


def _graph_function(owner: weakref.ref) -> Callable[[np.ndarray], object]:
    """The TensorFlow graph of :func:`model_function`: traced for any input size,
    else for each input size, else none (the model called layer by layer)."""
    import tensorflow as tf

    def call(batch):
        return owner()(batch, training=False)

    tries = [
        tf.function(call, reduce_retracing=True, autograph=False),
        tf.function(call, reduce_retracing=False, autograph=False),
        call,
    ]

    def function(batch):
        while True:
            try:
                return tries[0](batch)
            except Exception:
                if len(tries) == 1:
                    raise
                del tries[0]  # this model cannot be traced so: the next way

    return function


def predict_batch(model, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Call a model on one batch, unclipped, through its :func:`model_function`.

    Args:
        model: a Keras model.
        batch: (n, h, w, 3) inputs, converted to float32.

    Returns:
        Output name -> float32 numpy array, in the model's output order.

    Raises:
        ValueError: when the model returns another number of outputs than it names.
    """
    import keras  # deferred: plotting and metrics files need no Keras

    names = output_names(model)
    outputs = model_function(model)(np.asarray(batch, dtype=np.float32))
    if isinstance(outputs, Mapping):
        items = {str(name): value for name, value in outputs.items()}
    else:
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        if len(outputs) != len(names):
            raise ValueError(
                f"model {model.name!r} returned {len(outputs)} outputs for "
                f"{len(names)} output names {names}"
            )
        items = dict(zip(names, outputs, strict=True))
    return {
        name: np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32)
        for name, value in items.items()
    }


_PARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _one_output(model, output: str):
    """The part of ``model`` that computes ``output`` alone, sharing its layers.

    Predicting x2 with a two-output model would otherwise also run its x4 branch,
    which works on the largest maps: for the result models that is more than half
    of the work (measured 4.0 s against 1.6 s on a 200 px input). A model that is
    not a graph of layers (subclassed) is returned as it is. The part is made once
    per model and output, so its :func:`model_function` compiles once.
    """
    import keras  # deferred: plotting and metrics files need no Keras

    names = output_names(model)
    if names == [output] or not getattr(model, "outputs", None):
        return model
    with contextlib.suppress(KeyError, TypeError):
        return _PARTS[model][output]
    tensor = model.outputs[names.index(output)]
    if isinstance(model.output, Mapping):  # keep the output's name
        tensor = {output: tensor}
    part = keras.Model(model.input, tensor, name=f"{model.name}_{output}")
    with contextlib.suppress(TypeError):  # not weakly referable: made every time
        _PARTS.setdefault(model, {})[output] = part
    return part


def _pair(value) -> tuple[int, int]:
    if isinstance(value, list | tuple):
        return int(value[0]), int(value[-1])
    return int(value), int(value)


def _layer_step(layer: dict) -> tuple[float, int] | None:
    """(radius in the layer's own input pixels, upscaling factor), None if unknown."""
    kind, config = layer.get("class_name"), layer.get("config") or {}
    if kind in _POINTWISE_LAYERS:
        return 0.0, 1
    if kind in _CHANNEL_NORMALIZATIONS:  # inference: a per-channel affine map
        axes = config.get("axis", -1)
        axes = axes if isinstance(axes, list | tuple) else [axes]
        return (0.0, 1) if all(axis in (-1, 3) for axis in axes) else None
    if kind in _CONV_LAYERS:
        if _pair(config.get("strides", 1)) != (1, 1):
            return None
        kernel = _pair(config.get("kernel_size", 1))
        dilation = _pair(config.get("dilation_rate", 1))
        return max(d * (k - 1) / 2 for d, k in zip(dilation, kernel, strict=True)), 1
    if kind == "VGGFeatures":
        return float(_VGG_CONV_RADIUS), 1
    if kind == "DepthToSpace":
        return 0.0, int(config.get("block_size", 2))
    if kind == "BicubicUpSampling2D":  # four taps: two neighbours on each side
        return float(_BICUBIC_RADIUS), int(config.get("size", 2))
    if kind in ("UpSampling2D", "BilinearUpSampling2D"):
        size = _pair(config.get("size", 2))
        if size[0] != size[1]:
            return None
        nearest = kind == "UpSampling2D" and config.get("interpolation") == "nearest"
        return (0.0 if nearest else 1.0), size[0]  # bilinear: one neighbour
    return None


def _histories(value):
    """Names of the layers whose outputs feed a node (from a functional config)."""
    if isinstance(value, dict):
        history = (value.get("config") or {}).get("keras_history")
        if value.get("class_name") == "__keras_tensor__" and history:
            yield str(history[0])
            return
        for item in value.values():
            yield from _histories(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _histories(item)


def receptive_radius(model) -> float | None:
    """How far (in input pixels) an output pixel of a model looks around itself.

    Read from the functional model's config: convolutions add their dilated kernel
    radius, divided by the upscaling reached so far; depth-to-space and upsampling
    layers multiply the scale; branches take the largest radius of their inputs.

    Args:
        model: a functional Keras model.

    Returns:
        The largest radius over the model's outputs, or None when a layer of an
        unknown kind (or a nested model) makes it unknowable.
    """
    read = _read_layers(model)
    if read is None:
        return None
    reached, outputs = read
    return max(reached[name][0] for name in outputs)


def activation_bytes(model) -> int | None:
    """Estimated memory of a model's activations per input pixel of a window.

    The sum over the model's layers of the values each one outputs per input
    pixel (its channels times the square of the upscaling reached there, read as
    :func:`receptive_radius` reads the radius), at :data:`ACTIVATION_ITEM_BYTES`
    each: as if every activation were alive at once. For dts_model's x4 output that
    is 4.4 kB; TensorFlow's peak was 4.0 kB per window pixel (measured with the
    process' peak RSS for 266 to 1034 px windows).

    Args:
        model: a functional Keras model (one output, e.g. a part of
            :func:`predict_strips`).

    Returns:
        Bytes per input pixel, or None when the layers cannot be read.
    """
    read = _read_layers(model)
    if read is None:
        return None
    values = 0
    try:
        for name, (_, scale) in read[0].items():
            channels = model.get_layer(name).output.shape[-1]
            values += int(channels) * scale * scale
    except (AttributeError, ValueError, TypeError):
        return None
    return ACTIVATION_ITEM_BYTES * values


def _read_layers(model) -> tuple[dict[str, tuple[float, int]], list[str]] | None:
    """(radius, scale) reached after each layer of a functional model, by layer
    name, and the names of its output layers; None when a layer of an unknown kind
    (or a nested model) makes them unknowable."""
    try:
        config = model.get_config()
        layers = config["layers"]
        entries = config["output_layers"]
        if isinstance(entries, dict):  # dict outputs: name -> [layer, node, index]
            entries = list(entries.values())
        if entries and isinstance(entries[0], str):  # one output: [name, node, index]
            entries = [entries]
        outputs = [str(entry[0]) for entry in entries]
    except (AttributeError, KeyError, TypeError, IndexError, NotImplementedError):
        return None
    reached: dict[str, tuple[float, int]] = {}  # layer -> (radius, scale) after it
    for layer in layers:
        step = _layer_step(layer)
        sources = list(_histories(layer.get("inbound_nodes") or []))
        if step is None or len(layer.get("inbound_nodes") or []) > 1:
            return None
        if any(source not in reached for source in sources):
            return None
        inputs = [reached[source] for source in sources] or [(0.0, 1)]
        radius = max(r for r, _ in inputs)
        scale = max(s for _, s in inputs)
        if any(s != scale for _, s in inputs):
            return None  # inputs of different resolutions cannot be merged here
        reached[layer["name"]] = (radius + step[0] / scale, scale * step[1])
    if any(name not in reached for name in outputs):
        return None
    return reached, outputs


def measure_radius(model, output: str | None = None) -> float | None:
    """Measure how far (in input pixels) one input pixel changes a model's output.

    For a model whose layers :func:`receptive_radius` cannot read (an unknown or
    custom layer, a nested model). Two random images of each side of
    :data:`PROBE_SIDES` are predicted as they are and with their centre pixel
    changed by 0.5; the radius is the farthest output pixel (in input pixels, the
    upscaling undone) that changed by more than :data:`PROBE_TOLERANCE`. A change
    that reaches the image's border means a wider field: the next side is tried.

    Args:
        model: a fully convolutional Keras model.
        output: the output to measure (default: every output, the largest radius).

    Returns:
        The radius, or None when the change reaches the border of the largest
        probe (an unbounded field, e.g. a normalization over the whole image) or an
        output is not an integer upscaling of its input.
    """
    part = model if output is None else _one_output(model, output)
    rng = np.random.default_rng(0)
    for side in PROBE_SIDES:
        centre = side // 2
        base = rng.random((2, side, side, 3), dtype=np.float32)
        changed = base.copy()
        changed[:, centre, centre] = (changed[:, centre, centre] + 0.5) % 1.0
        before, after = predict_batch(part, base), predict_batch(part, changed)
        radius = 0.0
        for name, values in before.items():
            if values.ndim != 4 or values.shape[1:3] != values.shape[1:3][::-1]:
                return None
            factor = values.shape[1] // side
            if factor < 1 or values.shape[1] != side * factor:
                return None
            limit = PROBE_TOLERANCE * max(1.0, float(np.abs(values).max()))
            moved = np.abs(after[name] - values).max(axis=(0, 3)) > limit
            rows, cols = np.nonzero(moved)
            if rows.size == 0:
                continue
            edge = values.shape[1] - 1
            if min(rows.min(), cols.min()) == 0 or max(rows.max(), cols.max()) == edge:
                radius = None  # reached the border: the field may be wider
                break
            reach = np.maximum(
                np.abs(rows + 0.5 - (centre + 0.5) * factor),
                np.abs(cols + 0.5 - (centre + 0.5) * factor),
            )
            radius = max(radius, float(reach.max()) / factor)
        if radius is not None:
            return radius
    return None


_MEASURED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def context_overlap(model, output: str) -> int | None:
    """The tile context (input pixels) that makes tiles equal the whole image.

    The :func:`receptive_radius` read from the layers plus :data:`OVERLAP_SLACK`;
    for a model whose layers cannot be read, the :func:`measure_radius` (measured
    once per model and output) plus :data:`PROBE_MARGIN` as well.

    Returns:
        The overlap, or None when the receptive field is unbounded or unknown.
    """
    radius = receptive_radius(model)
    if radius is not None:
        return math.ceil(radius) + OVERLAP_SLACK
    try:
        known = _MEASURED.setdefault(model, {})
    except TypeError:  # not weakly referable: measure every time
        known = {}
    if output not in known:
        known[output] = measure_radius(model, output)
    if known[output] is None:
        return None
    return math.ceil(known[output]) + OVERLAP_SLACK + PROBE_MARGIN


def memory_tile(pixel_bytes: int, overlap: int) -> int:
    """The largest core side whose window's activations fit :data:`TILE_BYTES`.

    Args:
        pixel_bytes: activation bytes per window pixel (:func:`activation_bytes`).
        overlap: context around the core in input pixels (>= 0).

    Returns:
        The side s with ``(s + 2 * overlap) ** 2 * pixel_bytes <= TILE_BYTES``, at
        least :data:`MIN_TILE` and at most :data:`MAX_TILE`.

    Raises:
        ValueError: for ``pixel_bytes`` below 1 or a negative overlap.
    """
    if pixel_bytes < 1 or overlap < 0:
        raise ValueError(
            f"need pixel_bytes >= 1 and overlap >= 0, got {pixel_bytes}, {overlap}"
        )
    window = math.isqrt(TILE_BYTES // int(pixel_bytes))
    return min(MAX_TILE, max(MIN_TILE, window - 2 * int(overlap)))


def choose_tile(height: int, width: int, max_tile: int | None = None) -> int:
    """The tile core size :func:`predict_full` uses by default for an image size.

    Args:
        height, width: image size in input pixels (>= 1).
        max_tile: largest core side in input pixels (default :data:`MAX_TILE`;
            :func:`predict_strips` passes :func:`memory_tile`).

    Returns:
        :data:`WHOLE` (the whole image at once) when both sides fit in
        ``max_tile``; else the side of equal square cores, at most ``max_tile``,
        that cover the longer side with as few tiles as possible.

    Raises:
        ValueError: for a ``max_tile`` below 1.
    """
    max_tile = MAX_TILE if max_tile is None else int(max_tile)
    if max_tile < 1:
        raise ValueError(
            f"max_tile must be a positive number of pixels, got {max_tile}"
        )
    side = max(int(height), int(width))
    if side <= max_tile:
        return WHOLE
    count = -(-side // max_tile)
    return -(-side // count)


def _tile_starts(length: int, tile: int) -> list[int]:
    return list(range(0, length, tile))


def _store(target: np.ndarray, prediction: np.ndarray) -> None:
    """Clip a float prediction into ``target`` (float32, or uint8 rounded)."""
    if not prediction.flags.writeable:
        prediction = np.array(prediction)
    np.clip(prediction, 0.0, 1.0, out=prediction)
    if target.dtype == np.uint8:
        prediction *= images.EIGHT_BIT
        np.rint(prediction, out=prediction)
    target[...] = prediction


def predict_full(
    model,
    image: np.ndarray,
    output: str = HIGH_OUTPUT,
    tile: int | None = None,
    overlap: int | None = None,
    dtype=np.float32,
) -> np.ndarray:
    """Apply a fully convolutional model to one image of any size, tile by tile.

    The low-resolution image is cut into ``tile`` x ``tile`` cores, each predicted
    in a window of ``tile + 2 * overlap`` input pixels per side around it (at the
    image border the window shifts inwards, where the model's own padding applies
    as in the untiled call, so every window has one shape), and each core's
    upscaled part is written into one preallocated result. The windows of one row
    of cores go to the model in batches of at most :data:`TILE_BYTES` of
    activations. The result equals the untiled prediction whenever the model's
    receptive field radius (in input pixels) is at most ``overlap``, which the
    default guarantees for the zoo's layer kinds, so no seam shows. Memory stays at
    one call's activations plus the result: use ``dtype=np.uint8`` to keep that at
    one byte per value, and :func:`predict_strips` to stream the result without
    holding it whole.

    Args:
        model: a fully convolutional Keras model.
        image: (h, w, 3) RGB, the low-resolution image: float in [0, 1], or the
            8- or 16-bit samples of :func:`srkit.images.read_pixels` (each window
            is converted with :func:`srkit.images.pixels_to_float`, so the image is
            never float32 whole).
        output: name of the model output to return.
        tile: core size of a tile in input pixels; None (default) picks it from
            the image size and the memory with :func:`choose_tile`: the whole
            image when its activations fit :data:`TILE_BYTES` and both sides
            :data:`MAX_TILE`, else equal cores of at most :func:`memory_tile`
            px; :data:`WHOLE` (0) predicts the whole image at once.
        overlap: context in input pixels added around each tile (>= 0); None
            (default) uses :func:`context_overlap`: the model's
            :func:`receptive_radius` plus :data:`OVERLAP_SLACK`, or else its
            measured radius (:func:`measure_radius`) plus :data:`PROBE_MARGIN`
            too; a model whose field is unbounded or unknown is predicted whole
            up to :data:`UNBOUNDED_MAX_PIXELS` and refused above.
        dtype: ``np.float32`` (values in [0, 1]) or ``np.uint8`` (values rounded to
            0..255, as an 8-bit file stores them).

    Returns:
        (h * s, w * s, 3) array of ``dtype``, clipped to [0, 1] (float32) or 0..255
        (uint8), where s is the output's factor.

    Raises:
        ValueError: on a bad image shape, unknown output, bad tile/overlap/dtype,
            or an output whose size is not an integer multiple of the input.
    """
    result, top = None, 0
    for strip in predict_strips(model, image, output, tile, overlap, dtype):
        if result is None:
            factor = strip.shape[1] // np.shape(image)[1]
            rows = np.shape(image)[0] * factor
            result = np.empty((rows, *strip.shape[1:]), strip.dtype)
        result[top : top + len(strip)] = strip
        top += len(strip)
        del strip
    return result


def predict_strips(
    model,
    image: np.ndarray,
    output: str = HIGH_OUTPUT,
    tile: int | None = None,
    overlap: int | None = None,
    dtype=np.float32,
) -> Iterator[np.ndarray]:
    """:func:`predict_full`'s result, one horizontal strip of tiles at a time.

    The arguments are checked at the call; the strips come, top to bottom, as the
    returned iterator is consumed. Each strip is the full result's rows
    ``[top * s, bottom * s)`` for one row of tile cores, so memory holds one strip
    and one call's activations, not the whole result (see
    :func:`srkit.images.write_png_strips`).

    Args:
        model, image, output, tile, overlap, dtype: as :func:`predict_full`.

    Returns:
        iterator of (rows, w * s, 3) arrays of ``dtype``.

    Raises:
        ValueError: as :func:`predict_full` (an output that is not an integer
            upscaling is raised while iterating).
    """
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
        raise ValueError(f"image must be (h, w, 3) RGB, got shape {image.shape}")
    names = output_names(model)
    if output not in names:
        raise ValueError(
            f"model {model.name!r} has no output {output!r}; its outputs are {names}"
        )
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.uint8):
        raise ValueError(f"dtype must be float32 or uint8, got {dtype}")
    height, width = image.shape[:2]
    if tile is not None and (
        isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or tile < 0
    ):
        raise ValueError(
            "tile must be None (chosen from the image size), 0 (the whole image) or "
            f"a positive number of pixels, got {tile!r}"
        )
    if overlap is not None and overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    pixel_bytes = activation_bytes(_one_output(model, output)) or UNREAD_PIXEL_BYTES
    if tile is None and (
        max(height, width) <= MAX_TILE and height * width * pixel_bytes <= TILE_BYTES
    ):
        tile = WHOLE  # the whole image fits: no overlap to compute
    if tile is not None and (tile == WHOLE or (tile >= height and tile >= width)):
        tile, overlap = max(height, width), 0  # one window: the whole image
    elif overlap is None:
        overlap = context_overlap(model, output)
        if overlap is None and height * width > UNBOUNDED_MAX_PIXELS:
            raise ValueError(
                f"model {model.name!r}: how far its output looks around each pixel "
                "could not be read from its layers nor measured (beyond "
                f"{(PROBE_SIDES[-1] - 1) // 2 - 1} px, e.g. a normalization over the "
                "whole image), so tiles would show seams, and the image "
                f"({width}x{height}) is too large to predict whole (at most "
                f"{UNBOUNDED_MAX_PIXELS} pixels); pass tile=0 (--tile 0) to "
                "predict it whole anyway, or a smaller image"
            )
        if overlap is None:
            tile, overlap = max(height, width), 0  # one window: the whole image
    if tile is None:
        tile = choose_tile(height, width, memory_tile(pixel_bytes, overlap))
        if tile == WHOLE:
            tile, overlap = max(height, width), 0
    return _strips(model, image, output, int(tile), overlap, dtype, pixel_bytes)


def _window_start(start: int, overlap: int, window: int, length: int) -> int:
    """Where a window of ``window`` pixels around the core at ``start`` begins:
    ``overlap`` before it, shifted inwards at the image border (the core keeps at
    least ``overlap`` pixels of context on each side, or reaches the border)."""
    return max(0, min(start - overlap, length - window))


def _batches(starts: list[int], count: int) -> list[list[int]]:
    """``starts`` in consecutive groups of at most ``count``, as even as can be (at
    most two batch sizes, so a backend that compiles per shape compiles twice)."""
    groups = -(-len(starts) // count)
    size, extra = divmod(len(starts), groups)
    bounds = [0]
    for index in range(groups):
        bounds.append(bounds[-1] + size + (index < extra))
    return [starts[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _strips(
    model, image, output, tile, overlap, dtype, pixel_bytes
) -> Iterator[np.ndarray]:
    """The strips of :func:`predict_strips`, its arguments checked."""
    height, width = image.shape[:2]
    model = _one_output(model, output)
    rows, cols = min(tile + 2 * overlap, height), min(tile + 2 * overlap, width)
    per_call = max(1, TILE_BYTES // (rows * cols * pixel_bytes))
    for top in _tile_starts(height, tile):
        bottom = min(top + tile, height)
        window_top = _window_start(top, overlap, rows, height)
        strip = None
        for lefts in _batches(_tile_starts(width, tile), per_call):
            batch = np.stack(
                [
                    image[window_top : window_top + rows, start : start + cols]
                    for start in (_window_start(x, overlap, cols, width) for x in lefts)
                ]
            )
            if batch.dtype != np.float32:
                batch = images.pixels_to_float(batch)
            predictions = predict_batch(model, batch)[output]
            del batch
            factor = _factor_of(predictions.shape[1:], (rows, cols), output)
            if strip is None:
                strip = np.empty(((bottom - top) * factor, width * factor, 3), dtype)
            row = (top - window_top) * factor
            for left, prediction in zip(lefts, predictions, strict=True):
                right = min(left + tile, width)
                col = (left - _window_start(left, overlap, cols, width)) * factor
                _store(
                    strip[:, left * factor : right * factor],
                    prediction[
                        row : row + (bottom - top) * factor,
                        col : col + (right - left) * factor,
                    ],
                )
            del predictions
        yield strip
        del strip


def _factor_of(out_shape, in_shape, output: str) -> int:
    factor = out_shape[0] // in_shape[0]
    if factor < 1 or out_shape[:2] != (in_shape[0] * factor, in_shape[1] * factor):
        raise ValueError(
            f"output {output!r} of shape {tuple(out_shape)} is not an integer "
            f"upscaling of the input {tuple(in_shape)}"
        )
    return int(factor)
