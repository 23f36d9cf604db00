"""Throughput benchmark of the model zoo on this machine (``python -m srkit.bench``).

This module owns the speed numbers: for each zoo model it measures training and
inference images per second on random data, counts the forward floating-point
operations (FLOP) of one image analytically from the model's convolution layers,
and relates the achieved FLOP/s to the machine's measured peak in the precision
the model ran in: the float32 and the bfloat16 matrix-multiply rate (beside a
64-channel 3x3 convolution in each), on the Keras backend in use (TensorFlow or
JAX). Each model runs in ``float32`` and ``mixed_bfloat16``, and with XLA
(``jit_compile``) on or off, so a reader can tell whether a run is compute bound,
which settings pay on this machine, and what a full profile would cost. The numbers
describe speed only: the weights are random. Every table is printed with the load
average, since other processes slow every figure.

``python -m srkit.bench --upscale 3000x2000`` times ``srkit upscale`` itself
instead (:func:`measure_upscale`): a synthetic photo upscaled by the command in a
child process under ``/usr/bin/time -v``, its convolution FLOP per second beside
a float32 matmul timed just before and after it in the same run, its peak RSS,
and the load average beside each figure.

FLOP conventions: a multiply-add counts 2 FLOP; only convolutions are counted
(bias, activations, additions, concatenation, upsampling and depth-to-space add
well under 1 %); a training step is approximated as 3x the forward FLOP (forward
pass, plus gradients with respect to activations and to weights, each about one
forward's worth).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from srkit import environment, models
from srkit import layers as srkit_layers
from srkit.atomic import write_json
from srkit.vocab import OUTPUT_FACTORS

__all__ = [
    "conv_flops",
    "conv_gflops",
    "main",
    "matmul_gflops",
    "measure_model",
    "measure_upscale",
    "peaks",
    "run_benchmark",
    "synthetic_photo",
]

# The program name that command-line error lines start with.
PROG = "srkit.bench"
# A training step costs about forward + backward-data + backward-weights.
TRAIN_FLOP_FACTOR = 3
# Matrix size of the peak estimate: big enough to be compute bound.
MATMUL_SIZE = 2048
# The convolution peak: batch, side and channels of a 3x3 "same" convolution.
CONV_SHAPE = (16, 72, 72, 64)
# On a GPU: bigger operations, several per timing (see peaks).
ACCELERATOR_MATMUL_SIZE = 8192
ACCELERATOR_CONV_SHAPE = (64, 144, 144, 64)
ACCELERATOR_CALLS = 10
# Model precision -> the arithmetic its convolutions run in (its peak's dtype).
PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bfloat16"}
# jit_compile settings: "auto" is Keras' choice (XLA on JAX and on a TF GPU).
JIT_CHOICES = {"auto": "auto", "on": True, "off": False}


def _conv_cost(layer, height, width, c_in):
    kernel_h, kernel_w = layer.kernel_size
    stride_h, stride_w = layer.strides
    if layer.padding == "same":
        out_h, out_w = -(-height // stride_h), -(-width // stride_w)
    else:  # "valid": the dilated kernel must fit inside the image
        span_h = (kernel_h - 1) * layer.dilation_rate[0] + 1
        span_w = (kernel_w - 1) * layer.dilation_rate[1] + 1
        out_h = (height - span_h) // stride_h + 1
        out_w = (width - span_w) // stride_w + 1
    c_in_per_group = c_in // layer.groups
    return 2 * kernel_h * kernel_w * c_in_per_group * layer.filters * out_h * out_w


def conv_flops(model: keras.Model, height: int = 72, width: int = 72) -> int:
    """Count the forward FLOP of one image from a model's convolution layers.

    The model is cloned onto a fixed-size input so that every layer has a
    concrete output shape; each ``Conv2D`` then costs
    ``2 * k_h * k_w * c_in * c_out * H_out * W_out`` (per group), and a
    :class:`srkit.layers.VGGFeatures` layer costs its two convolutions at its
    input size.

    Args:
        model: a functional Keras model with one image input (n, h, w, 3).
        height: input height in pixels.
        width: input width in pixels.

    Returns:
        FLOP for one image of ``height`` x ``width`` (int).

    Raises:
        ValueError: if ``height`` or ``width`` is not a positive integer.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    channels = model.inputs[0].shape[-1]
    fixed = keras.Input(shape=(height, width, channels), batch_size=1)
    clone = keras.models.clone_model(model, input_tensors=fixed)
    total = 0
    for layer in clone.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_in = layer.input.shape
            total += _conv_cost(layer, h, w, c_in)
        elif isinstance(layer, srkit_layers.VGGFeatures):
            _, h, w, c_in = layer.input.shape
            for conv in layer.conv_layers:
                total += _conv_cost(conv, h, w, c_in)
                c_in = conv.filters
    return int(total)


def _best_seconds(operation, repeats: int, calls: int = 1, sync=None) -> float:
    """Fastest of ``repeats`` timings of ``calls`` back-to-back operations.

    Each timing ends when the last result is ready: ``sync`` (default: copy the
    sum of the last result to the host, one number, so that the copy does not
    dominate on a GPU) waits for it. Operations run in order on one device
    stream, so the last one's result means all are done.
    """

    def host_sum(out):
        total = keras.ops.cast(keras.ops.sum(out), "float32")
        return keras.ops.convert_to_numpy(total)

    sync = sync or host_sum

    def run():
        for _ in range(calls):
            out = operation()
        sync(out)

    run()  # warm-up: thread pools, kernels, compilation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / calls


def matmul_gflops(
    size: int = MATMUL_SIZE, repeats: int = 10, dtype: str = "float32", calls: int = 1
) -> dict[str, float]:
    """Measure matrix-multiply speed, the machine's practical peak in ``dtype``.

    Args:
        size: side of the square matrices.
        repeats: timings (after one warm-up); the fastest is kept, which filters
            out time slices lost to other processes.
        dtype: "float32" or "bfloat16" (the arithmetic of ``mixed_bfloat16``).
        calls: multiplications per timing (more on a GPU, where one is short).

    Returns:
        ``{"keras": GFLOP/s}`` for ``keras.ops.matmul`` on the active backend (the
        one the models use), plus ``"numpy"`` (numpy's BLAS) for float32.
    """
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    flop = 2.0 * size**3
    tensors = (
        keras.ops.convert_to_tensor(a, dtype=dtype),
        keras.ops.convert_to_tensor(b, dtype=dtype),
    )
    results = {
        "keras": flop
        / _best_seconds(lambda: keras.ops.matmul(*tensors), repeats, calls)
        / 1e9
    }
    if dtype == "float32":
        seconds = _best_seconds(lambda: a @ b, repeats, sync=lambda out: None)
        results["numpy"] = flop / seconds / 1e9
    return results


def conv_gflops(
    shape: tuple[int, int, int, int] = CONV_SHAPE,
    repeats: int = 10,
    dtype: str = "float32",
    calls: int = 1,
) -> float:
    """Measure a 3x3 "same" convolution (``keras.ops.conv``), the models' main work.

    Args:
        shape: (batch, height, width, channels); the kernel maps channels to
            channels.
        repeats: timings after one warm-up; the fastest is kept.
        dtype: "float32" or "bfloat16".
        calls: convolutions per timing.

    Returns:
        GFLOP/s (2 FLOP per multiply-add).
    """
    batch, height, width, channels = shape
    rng = np.random.default_rng(0)
    images = keras.ops.convert_to_tensor(rng.random(shape, np.float32), dtype=dtype)
    kernel = rng.random((3, 3, channels, channels), np.float32) * 0.01
    kernel = keras.ops.convert_to_tensor(kernel, dtype=dtype)
    flop = 2.0 * 9 * channels * channels * batch * height * width
    seconds = _best_seconds(
        lambda: keras.ops.conv(images, kernel, padding="same"), repeats, calls
    )
    return flop / seconds / 1e9


def peaks(repeats: int = 10) -> dict:
    """The float32 and bfloat16 matmul and convolution rates, in GFLOP/s.

    On a GPU the matrices and images are larger (``ACCELERATOR_MATMUL_SIZE``,
    ``ACCELERATOR_CONV_SHAPE``) and each timing covers ``ACCELERATOR_CALLS``
    operations, so that launch and copy times do not hide the arithmetic.

    Returns:
        ``{"matmul_float32", "matmul_numpy", "conv_float32", "matmul_bfloat16",
        "conv_bfloat16"}`` in GFLOP/s (a bfloat16 figure is NaN where the backend
        has no bfloat16 kernel for it), with ``matmul_size`` and ``conv_shape``.
    """
    if environment.on_accelerator():
        size, shape, calls = (
            ACCELERATOR_MATMUL_SIZE,
            ACCELERATOR_CONV_SHAPE,
            ACCELERATOR_CALLS,
        )
    else:
        size, shape, calls = MATMUL_SIZE, CONV_SHAPE, 1
    float32 = matmul_gflops(size, repeats, calls=calls)
    found = {"matmul_float32": float32["keras"], "matmul_numpy": float32["numpy"]}
    found["conv_float32"] = conv_gflops(shape, repeats, calls=calls)
    try:
        bf16 = matmul_gflops(size, repeats, dtype="bfloat16", calls=calls)
        found["matmul_bfloat16"] = bf16["keras"]
        found["conv_bfloat16"] = conv_gflops(shape, repeats, "bfloat16", calls)
    except Exception:  # noqa: BLE001  (a backend or device without bfloat16)
        found.setdefault("matmul_bfloat16", float("nan"))
        found["conv_bfloat16"] = float("nan")
    found["matmul_size"] = size
    found["conv_shape"] = list(shape)
    return found


def _warmup_batches(batch_size, warmup):
    # TensorFlow traces with reduce_retracing: after two batch sizes it keeps a
    # batch-agnostic graph, which the full batches then reuse without tracing.
    # Small warm-up batches therefore pay tracing, optimizer slots and thread
    # pools at a fraction of a full step's cost (R models: ~40 s per step on
    # 2 cores). Other backends compile per shape, so they warm up at full size.
    if keras.backend.backend() == "tensorflow" and batch_size > 2:
        return [1 + i % 2 for i in range(warmup)]
    return [batch_size] * warmup


def _timed(step, batch_size, warmup, steps):
    for size in _warmup_batches(batch_size, warmup):
        step(size)
    start = time.perf_counter()
    for _ in range(steps):
        step(batch_size)
    return time.perf_counter() - start


def measure_model(
    name: str,
    batch_size: int = 16,
    size: int = 72,
    steps: int = 1,
    warmup: int = 2,
    precision: str = "float32",
    jit: str = "auto",
) -> dict:
    """Time one zoo model's training and inference on random data.

    Training: ``compile(loss="mse", optimizer=Adam, jit_compile=...)`` and
    ``train_on_batch`` with random targets of each output's shape; inference:
    ``predict_on_batch``. The model is built under the dtype policy
    ``precision`` (the global policy is restored afterwards).
    ``warmup`` untimed steps (graph tracing, optimizer slots, thread pools)
    precede ``steps`` timed ones; on TensorFlow they run on 1 and 2 images,
    which leaves a batch-size-agnostic graph for the timed full batches.

    Args:
        name: a name from ``srkit.models.MODEL_NAMES``.
        batch_size: images per step.
        size: input side in pixels (square input, float32 in [0, 1]).
        steps: timed steps, >= 1.
        warmup: untimed steps before timing, >= 0.
        precision: "float32" or "mixed_bfloat16".
        jit: "auto" (Keras' choice), "on" or "off": ``jit_compile`` (XLA).

    Returns:
        Dict with keys ``model``, ``step``, ``precision``, ``jit``, ``params``,
        ``gflop_per_image``, ``train_img_s``, ``train_gflop_s``, ``infer_img_s``,
        ``infer_gflop_s``, ``load1`` (the 1-minute load average after timing).

    Raises:
        ValueError: unknown model name, precision or jit setting, or
            non-positive sizes/steps.
    """
    if batch_size < 1 or size < 1 or steps < 1 or warmup < 0:
        raise ValueError(
            f"need batch_size, size, steps >= 1 and warmup >= 0, got "
            f"{batch_size}, {size}, {steps}, {warmup}"
        )
    if precision not in PRECISIONS or jit not in JIT_CHOICES:
        raise ValueError(
            f"precision must be one of {list(PRECISIONS)} and jit one of "
            f"{list(JIT_CHOICES)}, got {precision!r}, {jit!r}"
        )
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        model = models.build(name)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    gflop = conv_flops(model, size, size) / 1e9
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, size, size, 3), dtype=np.float32)
    targets = [
        rng.random(
            (batch_size, size * OUTPUT_FACTORS[o], size * OUTPUT_FACTORS[o], 3),
            np.float32,
        )
        for o in model.output_names
    ]
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="mse",
        jit_compile=JIT_CHOICES[jit],
    )
    train_s = _timed(
        lambda n: model.train_on_batch(x[:n], [t[:n] for t in targets]),
        batch_size,
        warmup,
        steps,
    )
    infer_s = _timed(lambda n: model.predict_on_batch(x[:n]), batch_size, warmup, steps)
    train_img_s = batch_size * steps / train_s
    infer_img_s = batch_size * steps / infer_s
    result = {
        "model": name,
        "step": models.MODEL_INFO[name]["step"],
        "precision": precision,
        "jit": jit,
        "params": models.count_params(model)[0],
        "gflop_per_image": gflop,
        "train_img_s": train_img_s,
        "train_gflop_s": train_img_s * gflop * TRAIN_FLOP_FACTOR,
        "infer_img_s": infer_img_s,
        "infer_gflop_s": infer_img_s * gflop,
        "load1": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    }
    return result


def run_benchmark(
    names: Sequence[str] = models.MODEL_NAMES,
    batch_size: int = 16,
    size: int = 72,
    steps: int = 1,
    warmup: int = 2,
    progress: bool = True,
    precisions: Sequence[str] = tuple(PRECISIONS),
    jits: Sequence[str] = ("auto",),
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Benchmark zoo models in each precision and jit setting, and the peaks.

    Args:
        names: model names, from ``srkit.models.MODEL_NAMES``.
        batch_size: images per step.
        size: input side in pixels.
        steps: timed steps per measurement.
        warmup: untimed steps before each measurement.
        progress: print one line per measurement to stderr while running.
        precisions: "float32" and/or "mixed_bfloat16".
        jits: "auto", "on" and/or "off" (see :func:`measure_model`).

    Returns:
        ``(table, peak)``: one row per model, precision and jit setting (columns
        of :func:`measure_model` plus ``peak_gflop_s``, the matmul rate of the
        precision the model ran in, and ``train_pct_peak`` and
        ``infer_pct_peak``, achieved GFLOP/s as a percentage of it; convolution
        kernels can beat a plain matmul, so values above 100 are possible) and
        the :func:`peaks` dict.

    Raises:
        ValueError: unknown model names, precisions or jit settings, or sizes
            or step counts out of range (all are checked before any work).
    """
    unknown = [name for name in names if name not in models.MODEL_INFO]
    unknown += [p for p in precisions if p not in PRECISIONS]
    unknown += [j for j in jits if j not in JIT_CHOICES]
    if unknown:
        raise ValueError(
            f"unknown names {', '.join(map(repr, unknown))}: models are "
            f"{', '.join(models.MODEL_NAMES)} (`srkit models` lists them), "
            f"precisions {', '.join(PRECISIONS)}, jit {', '.join(JIT_CHOICES)}"
        )
    if batch_size < 1 or size < 1 or steps < 1 or warmup < 0:
        raise ValueError(
            "need --batch-size, --size, --steps >= 1 and --warmup >= 0, got "
            f"{batch_size}, {size}, {steps}, {warmup}"
        )
    peak = peaks()
    rows = []
    for name in names:
        for precision in precisions:
            for jit in jits:
                start = time.perf_counter()
                rows.append(
                    measure_model(name, batch_size, size, steps, warmup, precision, jit)
                )
                keras.backend.clear_session()  # free the model's graphs and buffers
                gc.collect()
                if progress:
                    print(
                        f"  {name} {precision} jit={jit}: "
                        f"{time.perf_counter() - start:.1f} s",
                        file=sys.stderr,
                    )
    table = pd.DataFrame(rows)
    table["peak_gflop_s"] = [
        peak[f"matmul_{PRECISIONS[precision]}"] for precision in table["precision"]
    ]
    table["train_pct_peak"] = 100 * table["train_gflop_s"] / table["peak_gflop_s"]
    table["infer_pct_peak"] = 100 * table["infer_gflop_s"] / table["peak_gflop_s"]
    return table, peak


# The side of the image whose upscaling times the command's start (imports,
# model loading) alone.
STARTUP_SIDE = 16
# /usr/bin/time -v lines read by measure_upscale -> result keys.
_TIME_FIELDS = {
    "Maximum resident set size (kbytes)": "peak_rss_kb",
    "User time (seconds)": "user_s",
    "System time (seconds)": "system_s",
}


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like 8-bit RGB test image: smooth shading, hard edges and noise.

    Args:
        height, width: size in pixels (>= 1).
        seed: seed of the noise and of the shapes.

    Returns:
        uint8 (height, width, 3).
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    image = np.empty((height, width, 3), np.float32)
    for channel in range(3):  # broad shading, a different phase per channel
        image[..., channel] = 0.5 + 0.35 * np.sin(cols / 97 + channel) * np.cos(
            rows / 61 - channel
        )
    for _ in range(12):  # discs with hard edges
        y, x = rng.random(2) * (height, width)
        radius = rng.uniform(0.03, 0.15) * min(height, width)
        inside = (rows - y) ** 2 + (cols - x) ** 2 < radius**2
        image[inside] = rng.random(3, dtype=np.float32)
    image += rng.normal(0.0, 0.03, image.shape).astype(np.float32)
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _run_upscale(source, target, scale, model_file, srkit_path) -> dict:
    """Run ``python -m srkit upscale`` once (under ``/usr/bin/time -v`` where it
    exists); wall seconds, CPU seconds and peak RSS of the child."""
    command = [sys.executable, "-m", "srkit", "upscale", str(source), str(target)]
    command += ["--scale", str(scale), "--overwrite"]
    if model_file is not None:
        command += ["--model-file", str(model_file)]
    timer = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if srkit_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(srkit_path), *filter(None, [env.get("PYTHONPATH")])]
        )
    start = time.perf_counter()
    done = subprocess.run(
        [timer, "-v", *command] if timer else command,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    found = {"seconds": time.perf_counter() - start}
    found.update(dict.fromkeys(_TIME_FIELDS.values(), float("nan")))  # no timer
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"srkit upscale failed ({done.returncode}): {tail}")
    for line in done.stderr.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key in _TIME_FIELDS:
            found[_TIME_FIELDS[key]] = float(value)
    return found


def measure_upscale(
    height: int = 2000,
    width: int = 3000,
    scale: int = 4,
    model_file: str | os.PathLike | None = None,
    srkit_path: str | os.PathLike | None = None,
    matmul_repeats: int = 5,
) -> dict:
    """Time ``srkit upscale`` of a synthetic photo against this machine's matmul.

    Writes :func:`synthetic_photo` as a PNG to a temporary folder, times a float32
    :func:`matmul_gflops`, runs ``python -m srkit upscale`` on the photo in a child
    process (under ``/usr/bin/time -v``: its wall time, CPU time and peak RSS),
    then on a tiny image (the command's start: imports and model loading), and
    times the matmul again. The photo's FLOP are :func:`conv_flops` of the model
    (every output's convolutions, as the zoo specifies it). Each figure comes with
    the 1-minute load average read just after it.

    Args:
        height, width: size of the photo in pixels.
        scale: 2 or 4.
        model_file: the ``.keras`` model (default: the model shipped inside srkit).
        srkit_path: a folder put first on the child's ``PYTHONPATH``, to time the
            srkit package in it (e.g. an older checkout) instead of this one.
        matmul_repeats: timings of each matmul measurement (the fastest is kept).

    Returns:
        dict with ``model_file``, ``height``, ``width``, ``scale``, ``gflop``,
        ``seconds``, ``user_s``, ``system_s``, ``peak_rss_mb``, ``gflop_s``,
        ``startup_s``, ``predict_gflop_s`` (FLOP over the seconds less the start),
        ``matmul_before``, ``matmul_after`` (GFLOP/s), ``matmul_mean``,
        ``share`` and ``predict_share`` (GFLOP/s over the mean matmul) and
        ``load_*`` (1-minute load average after each figure).
    """
    from srkit import shipped  # deferred: the zoo benchmark needs no shipped model

    if height < 1 or width < 1 or scale not in OUTPUT_FACTORS.values():
        raise ValueError(
            f"need a size of at least 1x1 and scale 2 or 4, got {width}x{height} "
            f"x{scale}"
        )
    model_path = Path(model_file) if model_file else shipped.find()
    model = models.load(model_path)
    gflop = conv_flops(model, height, width) / 1e9
    del model
    keras.backend.clear_session()
    found = {"model_file": str(model_path), "height": height, "width": width}
    found.update(scale=scale, gflop=gflop)
    found["srkit_path"] = None if srkit_path is None else str(srkit_path)

    def load():
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    with tempfile.TemporaryDirectory(prefix="srkit-bench-") as folder:
        from PIL import Image

        photo, tiny = Path(folder) / "photo.png", Path(folder) / "tiny.png"
        Image.fromarray(synthetic_photo(height, width)).save(photo)
        Image.fromarray(synthetic_photo(STARTUP_SIDE, STARTUP_SIDE)).save(tiny)
        found["matmul_before"] = matmul_gflops(repeats=matmul_repeats)["keras"]
        found["load_matmul_before"] = load()
        settings = (scale, model_file, srkit_path)
        run = _run_upscale(photo, Path(folder) / "out.png", *settings)
        found.update(run, load_upscale=load())
        start = _run_upscale(tiny, Path(folder) / "tiny_out.png", *settings)
        found["startup_s"], found["load_startup"] = start["seconds"], load()
        found["matmul_after"] = matmul_gflops(repeats=matmul_repeats)["keras"]
        found["load_matmul_after"] = load()
    found["peak_rss_mb"] = found.pop("peak_rss_kb", float("nan")) / 1024
    found["gflop_s"] = gflop / found["seconds"]
    found["predict_gflop_s"] = gflop / max(found["seconds"] - found["startup_s"], 1e-9)
    found["matmul_mean"] = (found["matmul_before"] + found["matmul_after"]) / 2
    found["share"] = found["gflop_s"] / found["matmul_mean"]
    found["predict_share"] = found["predict_gflop_s"] / found["matmul_mean"]
    return found


def _print_upscale(found: dict) -> None:
    """The figures of :func:`measure_upscale`, one per line with its load."""
    f = found
    print(
        f"srkit upscale x{f['scale']} of a synthetic {f['width']}x{f['height']} "
        f"photo with {f['model_file']}"
        + (f" (srkit from {f['srkit_path']})" if f["srkit_path"] else "")
    )
    print(f"machine: {environment.cpu_model()}, {os.cpu_count()} CPU threads")
    print(
        f"model convolutions: {f['gflop']:.1f} GFLOP "
        f"({f['gflop'] * 1e9 / (f['height'] * f['width']):,.0f} FLOP per input pixel)"
    )
    print(
        f"matmul float32 before: {f['matmul_before']:.1f} GFLOP/s "
        f"(load {f['load_matmul_before']:.2f})"
    )
    print(
        f"upscale: {f['seconds']:.1f} s wall, {f['user_s']:.1f} s user + "
        f"{f['system_s']:.1f} s system CPU, peak RSS {f['peak_rss_mb']:.0f} MB; "
        f"{f['gflop_s']:.1f} GFLOP/s (load {f['load_upscale']:.2f})"
    )
    print(
        f"command start ({STARTUP_SIDE}x{STARTUP_SIDE} image): {f['startup_s']:.1f} s "
        f"(load {f['load_startup']:.2f}); without it {f['predict_gflop_s']:.1f} GFLOP/s"
    )
    print(
        f"matmul float32 after: {f['matmul_after']:.1f} GFLOP/s "
        f"(load {f['load_matmul_after']:.2f})"
    )
    print(
        f"share of the mean matmul ({f['matmul_mean']:.1f} GFLOP/s): "
        f"{100 * f['share']:.0f} % for the whole command, "
        f"{100 * f['predict_share']:.0f} % without its start"
    )


# Short column titles for the printed table (the CSV keeps the long names).
_DISPLAY = {
    "precision": "precision",
    "jit": "jit",
    "gflop_per_image": "GFLOP/img",
    "train_img_s": "train img/s",
    "train_gflop_s": "train GFLOP/s",
    "train_pct_peak": "train %peak",
    "infer_img_s": "infer img/s",
    "infer_gflop_s": "infer GFLOP/s",
    "infer_pct_peak": "infer %peak",
    "load1": "load",
}


def _header(args, peak):
    versions = environment.collect_versions()
    backend = keras.backend.backend()
    backend_version = versions.get("jax" if backend == "jax" else backend, "?")
    devices = ", ".join(environment.accelerators(backend)) or "CPU only"
    flags = environment.cpu_flags() or set()
    bf16_units = [f for f in environment.BF16_CPU_FLAGS if f in flags] or ["none"]
    return "\n".join(
        [
            "srkit zoo benchmark (random weights; speed only)",
            f"keras {keras.__version__}, backend {backend} {backend_version}, "
            f"numpy {np.__version__}, Python {platform.python_version()}",
            f"machine: {environment.cpu_model()}, {os.cpu_count()} CPU threads "
            f"visible, CPU bf16 units: {', '.join(bf16_units)}; devices: {devices}",
            f"load average {environment.load_average()} at the end (other "
            "processes slow every number below; 'load' column: 1-minute load "
            "after each row)",
            f"batch {args.batch_size}, input {args.size}x{args.size}, "
            f"{args.warmup} warm-up + {args.steps} timed steps; "
            f"train FLOP = {TRAIN_FLOP_FACTOR} x forward (approximation)",
            f"peaks on {backend} (GFLOP/s): matmul "
            f"{peak.get('matmul_size', MATMUL_SIZE)}^2 "
            f"float32 {peak['matmul_float32']:.1f} (numpy "
            f"{peak['matmul_numpy']:.1f}), bfloat16 {peak['matmul_bfloat16']:.1f}; "
            f"3x3 conv {tuple(peak.get('conv_shape', CONV_SHAPE))} "
            f"float32 {peak['conv_float32']:.1f}, "
            f"bfloat16 {peak['conv_bfloat16']:.1f}",
            "%peak columns: achieved GFLOP/s as % of the matmul peak of the "
            "precision the model ran in (float32, or bfloat16 for mixed_bfloat16)",
        ]
    )


def _parser():
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROG}",
        description="Training and inference throughput of the srkit model zoo on "
        "random data in float32 and mixed_bfloat16, with analytic forward GFLOP "
        "per image and the achieved fraction of this machine's matmul peak in the "
        "precision each model ran in.",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(models.MODEL_NAMES),
        metavar="NAME",
        help="zoo models to time (default: all, in step order)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="default: 16")
    parser.add_argument(
        "--steps", type=int, default=1, help="timed steps per measurement (default: 1)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed warm-up steps first; on TensorFlow they use batches of 1 and 2 "
        "images (default: 2)",
    )
    parser.add_argument(
        "--size", type=int, default=72, help="input side in pixels (default: 72)"
    )
    parser.add_argument(
        "--precisions",
        default="float32,mixed_bfloat16",
        help="comma-separated model precisions (default: float32,mixed_bfloat16)",
    )
    parser.add_argument(
        "--jit",
        default="auto",
        help="comma-separated jit_compile settings: auto (Keras' choice), on, off "
        "(default: auto)",
    )
    parser.add_argument(
        "--peaks-only",
        action="store_true",
        help="measure only the matmul and convolution peaks",
    )
    parser.add_argument(
        "--upscale",
        metavar="WxH",
        help="time `srkit upscale` of a synthetic WxH photo instead (e.g. 3000x2000) "
        "beside a float32 matmul before and after it",
    )
    parser.add_argument(
        "--scale", type=int, default=4, help="with --upscale: 2 or 4 (default: 4)"
    )
    parser.add_argument(
        "--model-file",
        help="with --upscale: the .keras model (default: the shipped model)",
    )
    parser.add_argument(
        "--srkit-path",
        help="with --upscale: time the srkit package in this folder (put first on "
        "the command's PYTHONPATH), e.g. an older checkout",
    )
    parser.add_argument("--csv", help="also write the table to this CSV file")
    parser.add_argument(
        "--json", help="also write the peaks (GFLOP/s), backend and load to this file"
    )
    return parser


def _write_json(path: str | None, peak: dict[str, float]) -> None:
    if not path:
        return
    backend = keras.backend.backend()
    record = {
        **peak,
        "backend": backend,
        "devices": environment.accelerators(backend),
        "cpu": environment.cpu_model(),
        "load_average": environment.load_average(),
    }
    write_json(path, record)


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: parse arguments, run, print the table.

    A bad setting (an unknown model name, precision or jit setting, a size or
    step count below 1) is reported as one line, ``srkit.bench: error: ...``, on
    stderr, as argparse reports its own errors.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit status: 0 on success, 2 for a bad setting.
    """
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """Measure what ``args`` asks for and print it; returns the exit status."""
    if args.upscale:
        size = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", args.upscale)
        if size is None:
            raise ValueError(
                f"--upscale takes WIDTHxHEIGHT in pixels, e.g. 3000x2000, got "
                f"{args.upscale!r}"
            )
        width, height = int(size[1]), int(size[2])
        found = measure_upscale(
            height, width, args.scale, args.model_file, args.srkit_path
        )
        _print_upscale(found)
        if args.json:
            write_json(args.json, found)
        return 0
    if args.peaks_only:
        peak = peaks()
        print(_header(args, peak))
        _write_json(args.json, peak)
        return 0
    table, peak = run_benchmark(
        args.models,
        args.batch_size,
        args.size,
        args.steps,
        args.warmup,
        precisions=_split(args.precisions),
        jits=_split(args.jit),
    )
    print(_header(args, peak))
    print()
    shown = table[["model", "step", *_DISPLAY]].rename(columns=_DISPLAY)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    _write_json(args.json, peak)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
