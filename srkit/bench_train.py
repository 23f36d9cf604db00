"""Training throughput of the zoo (``python -m srkit.bench_train``).

This module owns one question: on this machine, how many training images per
second does each zoo model reach when compiled exactly as :func:`srkit.train.fit`
compiles it (its default loss on every output, Adam, the MSE/MAE/PSNR/SSIM metrics),
in ``float32`` and in ``mixed_bfloat16``? It trains each model for a short fixed
budget (one untimed warm-up batch that traces the graph, then ``--steps`` timed
batches) on the bundled sample data, and prints one table with both precisions side
by side, together with the CPU flags that decide whether bfloat16 is computed by
hardware (``avx512_bf16``, ``amx_bf16``) or emulated. The weights are random and the
budget tiny: the numbers describe speed only.

With ``--fit`` it answers a second question: how much does a step cost inside
:func:`srkit.train.fit` (the batch stream, callbacks, Keras' per-step work) beside
``train_on_batch`` on the same batches? Each model trains twice in float32 in the
profiles' regime (bicubic skip, ``--window`` px windows): once through ``fit`` for
``--rounds`` + 1 intervals of ``--steps`` steps (the first holds the tracing; the
figure is the fastest of the others), once by ``train_on_batch`` on the batches the
second interval drew, ``--rounds`` times over (the fastest round is the figure).
The fastest of a few rounds on each side resists the load of other work on the
machine, and the table gives the ratio of the two. ``srkit.bench`` measures raw
train/inference speed and FLOP rates on random data; this benchmark measures the
training step that ``fit`` runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from srkit import data, environment, models, train
from srkit.vocab import OUTPUT_TARGETS

__all__ = ["cpu_flags", "main", "measure", "measure_fit", "run", "run_fit"]

# CPU features relevant to bfloat16 and to the float32 kernels, as /proc/cpuinfo
# spells them (Linux); avx512_bf16 / amx_bf16 mean hardware bfloat16 arithmetic.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx512_vnni", "avx2")
# The program name that command-line error lines start with.
PROG = "srkit.bench_train"
DEFAULT_STEPS = 3
DEFAULT_BATCH = 8
DEFAULT_IMAGES = 24
DEFAULT_WINDOW = 24  # --fit: the profiles' training windows
DEFAULT_ROUNDS = 3  # --fit: timed intervals of fit, timed rounds of train_on_batch
PRECISIONS = ("float32", "mixed_bfloat16")


def cpu_flags() -> dict[str, object]:
    """The CPU model name, core count and the bfloat16-relevant feature flags.

    Returns:
        ``{"model": str, "cores": int, <flag>: bool for each of BF16_FLAGS}``; the
        flags are all False where ``/proc/cpuinfo`` cannot be read.
    """
    flags = environment.cpu_flags() or set()
    return {
        "model": environment.cpu_model(),
        "cores": os.cpu_count() or 0,
        **{flag: flag in flags for flag in BF16_FLAGS},
    }


def _targets(targets, outputs):
    arrays = {name: targets[OUTPUT_TARGETS[name]] for name in outputs}
    return arrays[outputs[0]] if len(outputs) == 1 else arrays


def measure(
    name: str, split, precision: str, steps: int, batch_size: int, warmup: int = 1
) -> float:
    """Training images per second of one zoo model at one precision.

    Args:
        name: a name from ``srkit.models.MODEL_NAMES``.
        split: a ``srkit.data.Split``; batches are drawn from ``split.train``
            (``srkit.train.batches``) before the clock starts.
        precision: "float32" or "mixed_bfloat16".
        steps: timed training batches (>= 1).
        batch_size: images per batch (>= 1).
        warmup: untimed batches first (graph tracing happens there).

    Returns:
        ``batch_size / median seconds`` of the timed ``train_on_batch`` calls.
    """
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = models.build(name, vgg_weights="random")
    loss = models.MODEL_INFO[name]["loss"]
    trained = train.prepare_model(model, loss, 1e-3, precision)
    outputs = list(trained.output_names)
    stream = train.batches(split.train, batch_size, seed=0)
    batches = [next(stream) for _ in range(warmup + steps)]
    for x, targets in batches[:warmup]:
        trained.train_on_batch(x, _targets(targets, outputs))
    seconds = []
    for x, targets in batches[warmup:]:
        started = time.perf_counter()
        # train_on_batch returns numbers, so the step has finished
        trained.train_on_batch(x, _targets(targets, outputs))
        seconds.append(time.perf_counter() - started)
    gc.collect()
    # The median step resists a stray slow step (another process, a GC pause).
    return batch_size / float(np.median(seconds))


def measure_fit(
    name: str,
    split,
    steps: int,
    batch_size: int,
    window: int,
    xla: bool,
    rounds: int = DEFAULT_ROUNDS,
) -> dict[str, float]:
    """Seconds per float32 training step inside ``fit`` and by ``train_on_batch``.

    Args:
        name: a name from ``srkit.models.MODEL_NAMES`` (built with the bicubic skip).
        split: a ``srkit.data.Split``.
        steps: steps per interval; ``fit`` runs ``rounds`` + 1 intervals and
            times all but the first (tracing), ``train_on_batch`` repeats the
            second interval's batches ``rounds`` times.
        batch_size: images per batch (>= 1).
        window: training window side in pixels.
        xla: compile the step with XLA, as the profiles' ``xla`` parameter does.
        rounds: timed intervals of ``fit`` and timed rounds of
            ``train_on_batch`` (>= 1); the fastest of each is the figure.

    Returns:
        ``{"fit s/step", "train_on_batch s/step", "fit/train_on_batch"}``.
    """
    import tempfile

    import keras

    loss = models.MODEL_INFO[name]["loss"]
    settings = train.Settings(
        loss=loss,
        steps=(rounds + 1) * steps,
        eval_every=steps,
        batch_size=batch_size,
        window=window,
        xla=xla,
        precision="float32",
        seed=0,
    )
    keras.backend.clear_session()
    model = models.build(name, vgg_weights="random", seed=0, skip="bicubic")
    with tempfile.TemporaryDirectory(prefix="srkit-bench-fit-") as folder:
        result = train.fit(model, split, settings, run_dir=folder, verbose=0, gif=False)
    fit_seconds = float(result.history["train_time_s"].iloc[1:].min()) / steps

    keras.backend.clear_session()
    model = models.build(name, vgg_weights="random", seed=0, skip="bicubic")
    trained = train.prepare_model(model, loss, 1e-3, "float32", xla=xla)
    outputs = list(trained.output_names)
    stream = train.batches(split.train, batch_size, 0, steps, window)
    batches = [next(stream) for _ in range(steps)]
    for x, targets in batches[:2]:  # tracing, untimed
        trained.train_on_batch(x, _targets(targets, outputs))
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        for x, targets in batches:
            trained.train_on_batch(x, _targets(targets, outputs))
        seconds.append(time.perf_counter() - started)
    batch_seconds = min(seconds) / steps
    gc.collect()
    return {
        "fit s/step": fit_seconds,
        "train_on_batch s/step": batch_seconds,
        "fit/train_on_batch": fit_seconds / batch_seconds,
    }


def run_fit(
    names: Sequence[str],
    split,
    steps: int,
    batch_size: int,
    window: int = DEFAULT_WINDOW,
    xla: bool = True,
    progress=None,
    rounds: int = DEFAULT_ROUNDS,
) -> pd.DataFrame:
    """:func:`measure_fit` for every model; a DataFrame indexed by model."""
    rows = []
    for name in names:
        row = measure_fit(name, split, steps, batch_size, window, xla, rounds)
        rows.append({"model": name, "params": models.MODEL_INFO[name]["params"], **row})
        if progress:
            progress(
                f"{name:<45} fit {row['fit s/step']:.4f} s/step, train_on_batch "
                f"{row['train_on_batch s/step']:.4f} s/step, ratio "
                f"{row['fit/train_on_batch']:.2f} (load average "
                f"{environment.load_average()})"
            )
    return pd.DataFrame(rows).set_index("model")


def run(
    names: Sequence[str],
    split,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH,
    precisions: Sequence[str] = PRECISIONS,
    progress=None,
) -> pd.DataFrame:
    """Measure every model at every precision.

    Args:
        names: zoo model names.
        split: the data (see :func:`measure`).
        steps: timed batches per measurement.
        batch_size: images per batch.
        precisions: precisions to compare.
        progress: optional callable receiving one line per measurement.

    Returns:
        DataFrame indexed by model: ``params``, one ``<precision> img/s`` column per
        precision and, with both precisions, ``bf16/fp32`` (the speed ratio).
    """
    rows = []
    for name in names:
        row = {"model": name, "params": models.MODEL_INFO[name]["params"]}
        for precision in precisions:
            rate = measure(name, split, precision, steps, batch_size)
            row[f"{precision} img/s"] = rate
            if progress:
                progress(f"{name:<45} {precision:<15} {rate:8.2f} img/s")
        rows.append(row)
    table = pd.DataFrame(rows).set_index("model")
    if set(PRECISIONS) <= set(precisions):
        table["bf16/fp32"] = table["mixed_bfloat16 img/s"] / table["float32 img/s"]
    return table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROG}",
        description=(
            "Training images/s of each zoo model as srkit.train.fit compiles it, "
            "float32 and mixed_bfloat16 side by side, on the bundled sample data "
            "(random VGG weights; speed only). Prints the CPU's bfloat16 flags."
        ),
    )
    parser.add_argument(
        "--models", default="all", help="comma-separated names or 'all'"
    )
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help="timed batches"
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument(
        "--n-images",
        type=int,
        default=DEFAULT_IMAGES,
        help="n_images of srkit.data.prepare (in patch mode the sample source uses "
        "every photo)",
    )
    parser.add_argument(
        "--precisions",
        default=",".join(PRECISIONS),
        help="comma-separated subset of float32,mixed_bfloat16",
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help="compare seconds per step inside srkit.train.fit with train_on_batch "
        "on the same batches (float32, bicubic skip; intervals of --steps)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help=f"--fit: training window side in pixels (default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--no-xla",
        action="store_true",
        help="--fit: compile without XLA (the result models' setting in the profiles)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"--fit: timed intervals of fit and rounds of train_on_batch over the "
        f"same batches; the fastest of each is reported (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument("--cache-dir", default=None, help="srkit.data cache folder")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    A bad setting (an unknown model or precision, steps or batch size below 1) is
    reported as one line, ``srkit.bench_train: error: ...``, on stderr with exit
    status 2, as argparse reports its own errors.
    """
    arguments = _parser().parse_args(argv)
    try:
        return _run(arguments)
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2


def _checked_settings(arguments: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The model names and precisions asked for, or a ValueError naming each bad
    setting and the valid choices."""
    names = (
        list(models.MODEL_NAMES)
        if arguments.models == "all"
        else [name.strip() for name in arguments.models.split(",") if name.strip()]
    )
    precisions = [p.strip() for p in arguments.precisions.split(",") if p.strip()]
    problems = []
    unknown = [name for name in names if name not in models.MODEL_NAMES]
    if unknown or not names:
        problems.append(
            f"unknown models {', '.join(unknown) or '(none given)'} (--models takes "
            f"'all' or some of {', '.join(models.MODEL_NAMES)})"
        )
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        problems.append(
            f"unknown precisions {', '.join(bad) or '(none given)'} (--precisions "
            f"takes some of {', '.join(PRECISIONS)})"
        )
    for option, value in (
        ("--steps", arguments.steps),
        ("--batch-size", arguments.batch_size),
        ("--rounds", arguments.rounds),
    ):
        if value < 1:
            problems.append(f"{option} must be at least 1, got {value}")
    if problems:
        raise ValueError("; ".join(problems))
    return names, precisions


def _run(arguments: argparse.Namespace) -> int:
    """Measure what ``arguments`` ask for and print the table; the exit status."""
    names, precisions = _checked_settings(arguments)

    import keras

    flags = cpu_flags()
    print(f"CPU: {flags['model']} ({flags['cores']} cores)")
    print(
        "bf16-relevant flags: "
        + ", ".join(f"{f}={'yes' if flags[f] else 'no'}" for f in BF16_FLAGS)
    )
    hardware = flags["avx512_bf16"] or flags["amx_bf16"]
    print(
        "bfloat16 arithmetic: "
        + ("in hardware (oneDNN kernels)" if hardware else "emulated (expect slower)")
    )
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')}, "
        f"devices: {', '.join(environment.accelerators()) or 'CPU only'}, "
        f"load average {environment.load_average()}"
    )
    split = data.prepare(
        "sample",
        n_images=arguments.n_images,
        cache_dir=arguments.cache_dir,
        progress=False,
    )
    started = time.perf_counter()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if arguments.fit:
        print(
            f"data: sample, fresh random windows ({arguments.window} px inputs) of "
            f"{len(split.train)} training photos; batch {arguments.batch_size}, "
            f"float32, XLA {'off' if arguments.no_xla else 'on'}; fit: "
            f"{arguments.rounds + 1} intervals of {arguments.steps} steps, the "
            f"fastest of the last {arguments.rounds}; train_on_batch: the second "
            f"interval's batches after 2 untimed ones, the fastest of "
            f"{arguments.rounds} rounds"
        )
        table = run_fit(
            names,
            split,
            arguments.steps,
            arguments.batch_size,
            arguments.window,
            not arguments.no_xla,
            progress=progress,
            rounds=arguments.rounds,
        )
    else:
        print(
            f"data: sample, fresh random windows (72 px inputs) of "
            f"{len(split.train)} training photos; batch {arguments.batch_size}, "
            f"1 warm-up batch + {arguments.steps} timed batches (img/s from the "
            "median batch time)"
        )
        table = run(
            names, split, arguments.steps, arguments.batch_size, precisions, progress
        )
    print()
    print(table.to_string(float_format=lambda value: f"{value:.4g}"))
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s, "
        f"load average {environment.load_average()}"
    )
    if arguments.csv:
        table.to_csv(arguments.csv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
