"""Throughput benchmark of the model zoo on this machine (``python -m srkit.bench``).

This module owns the speed numbers: for each zoo model it measures training and
inference images per second on random data, counts the forward floating-point
operations (FLOP) of one image analytically from the model's convolution layers,
and relates the achieved FLOP/s to the machine's measured fp32 matrix-multiply
rate, so a reader can tell whether a run is compute bound and what a full
profile would cost. The numbers describe speed only: the weights are random.

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
import sys
import time
from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

from srkit import layers as srkit_layers
from srkit import models

__all__ = ["conv_flops", "main", "matmul_gflops", "measure_model", "run_benchmark"]

# A training step costs about forward + backward-data + backward-weights.
TRAIN_FLOP_FACTOR = 3
# Matrix size of the fp32 peak estimate: big enough to be compute bound.
MATMUL_SIZE = 2048


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


def matmul_gflops(size: int = MATMUL_SIZE, repeats: int = 10) -> dict[str, float]:
    """Measure fp32 matrix-multiply speed, the machine's practical peak.

    Args:
        size: side of the square float32 matrices.
        repeats: timed multiplications (after one warm-up); the fastest is
            kept, which filters out time slices lost to other processes.

    Returns:
        ``{"numpy": GFLOP/s, "keras": GFLOP/s}``: numpy's BLAS and
        ``keras.ops.matmul`` on the active backend (the one the models use).
    """
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    flop = 2.0 * size**3
    results = {}
    tensors = (keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b))
    runners = {
        "numpy": lambda: a @ b,
        "keras": lambda: keras.ops.convert_to_numpy(keras.ops.matmul(*tensors)),
    }
    for name, run in runners.items():
        run()  # warm-up: thread pools, kernels
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        results[name] = flop / best / 1e9
    return results


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
    name: str, batch_size: int = 16, size: int = 72, steps: int = 1, warmup: int = 2
) -> dict:
    """Time one zoo model's training and inference on random data.

    Training: ``compile(loss="mse", optimizer=Adam)`` and ``train_on_batch``
    with random targets of each output's shape; inference: ``predict_on_batch``.
    ``warmup`` untimed steps (graph tracing, optimizer slots, thread pools)
    precede ``steps`` timed ones; on TensorFlow they run on 1 and 2 images,
    which leaves a batch-size-agnostic graph for the timed full batches.

    Args:
        name: a name from ``srkit.models.MODEL_NAMES``.
        batch_size: images per step.
        size: input side in pixels (square input, float32 in [0, 1]).
        steps: timed steps, >= 1.
        warmup: untimed steps before timing, >= 0.

    Returns:
        Dict with keys ``model``, ``step``, ``params``, ``gflop_per_image``,
        ``train_img_s``, ``train_gflop_s``, ``infer_img_s``, ``infer_gflop_s``.

    Raises:
        ValueError: unknown model name or non-positive sizes/steps.
    """
    if batch_size < 1 or size < 1 or steps < 1 or warmup < 0:
        raise ValueError(
            f"need batch_size, size, steps >= 1 and warmup >= 0, got "
            f"{batch_size}, {size}, {steps}, {warmup}"
        )
    model = models.build(name)
    gflop = conv_flops(model, size, size) / 1e9
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, size, size, 3), dtype=np.float32)
    scales = {"low_upsample": 2, "high_upsample": 4}
    targets = [
        rng.random((batch_size, size * scales[o], size * scales[o], 3), np.float32)
        for o in model.output_names
    ]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
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
        "params": models.count_params(model)[0],
        "gflop_per_image": gflop,
        "train_img_s": train_img_s,
        "train_gflop_s": train_img_s * gflop * TRAIN_FLOP_FACTOR,
        "infer_img_s": infer_img_s,
        "infer_gflop_s": infer_img_s * gflop,
    }
    return result


def run_benchmark(
    names: Sequence[str] = models.MODEL_NAMES,
    batch_size: int = 16,
    size: int = 72,
    steps: int = 1,
    warmup: int = 2,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Benchmark several zoo models and the machine's matmul peak.

    Args:
        names: model names, from ``srkit.models.MODEL_NAMES``.
        batch_size: images per step.
        size: input side in pixels.
        steps: timed steps per measurement.
        warmup: untimed steps before each measurement.
        progress: print one line per model to stderr while running.

    Returns:
        ``(table, peak)``: one row per model (columns of :func:`measure_model`
        plus ``train_pct_matmul`` and ``infer_pct_matmul``, achieved GFLOP/s as a
        percentage of the backend's matmul GFLOP/s; convolution kernels can
        beat a plain matmul, so values above 100 are possible) and the
        :func:`matmul_gflops` dict.

    Raises:
        ValueError: unknown model names (all are checked before any work).
    """
    unknown = [name for name in names if name not in models.MODEL_INFO]
    if unknown:
        raise ValueError(
            f"unknown model names {unknown}; "
            f"choose from {', '.join(models.MODEL_NAMES)}"
        )
    peak = matmul_gflops()
    rows = []
    for name in names:
        start = time.perf_counter()
        rows.append(measure_model(name, batch_size, size, steps, warmup))
        keras.backend.clear_session()  # free the model's graphs and buffers
        gc.collect()
        if progress:
            print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    table = pd.DataFrame(rows)
    table["train_pct_matmul"] = 100 * table["train_gflop_s"] / peak["keras"]
    table["infer_pct_matmul"] = 100 * table["infer_gflop_s"] / peak["keras"]
    return table, peak


def _load_average():
    if not hasattr(os, "getloadavg"):  # not on Windows
        return "load average unknown"
    loads = "/".join(f"{value:.1f}" for value in os.getloadavg())
    return f"load average {loads} (other processes slow every number below)"


# Short column titles for the printed table (the CSV keeps the long names).
_DISPLAY = {
    "gflop_per_image": "GFLOP/img",
    "train_img_s": "train img/s",
    "train_gflop_s": "train GFLOP/s",
    "train_pct_matmul": "train %mm",
    "infer_img_s": "infer img/s",
    "infer_gflop_s": "infer GFLOP/s",
    "infer_pct_matmul": "infer %mm",
}


def _header(args, peak):
    try:
        import tensorflow as tf

        tf_version = tf.__version__
    except ImportError:
        tf_version = "not installed"
    return "\n".join(
        [
            "srkit zoo benchmark (random weights; speed only)",
            f"keras {keras.__version__}, backend {keras.backend.backend()}, "
            f"TensorFlow {tf_version}, numpy {np.__version__}, "
            f"Python {platform.python_version()}",
            f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
            + f", {os.cpu_count()} CPU threads visible, {_load_average()}",
            f"batch {args.batch_size}, input {args.size}x{args.size}, "
            f"{args.warmup} warm-up + {args.steps} timed steps; "
            f"train FLOP = {TRAIN_FLOP_FACTOR} x forward (approximation)",
            f"fp32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}: "
            f"keras.ops {peak['keras']:.1f} GFLOP/s, numpy {peak['numpy']:.1f} GFLOP/s "
            "(%mm columns: achieved GFLOP/s as % of the keras.ops figure)",
        ]
    )


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m srkit.bench",
        description="Training and inference throughput of the srkit model zoo on "
        "random data, with analytic forward GFLOP per image and the achieved "
        "fraction of this machine's fp32 matmul speed.",
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
    parser.add_argument("--csv", help="also write the table to this CSV file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: parse arguments, run, print the table.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit status (0 on success).
    """
    args = _parser().parse_args(argv)
    table, peak = run_benchmark(
        args.models, args.batch_size, args.size, args.steps, args.warmup
    )
    print(_header(args, peak))
    print()
    shown = table[["model", "step", *_DISPLAY]].rename(columns=_DISPLAY)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
