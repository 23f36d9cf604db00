"""Training: one call that compiles, fits, checkpoints, resumes and records a model.

Budgets are optimizer steps. :func:`fit` trains for ``steps`` steps on batches drawn
afresh at every step (random windows of a :class:`srkit.data.PatchSource`, or
random images of fixed arrays), and every ``eval_every`` steps (one *interval*,
which is one Keras epoch) it validates, writes a history row, checkpoints and
records a GIF frame. Batch ``k`` of a run depends only on the seed and ``k``, so a
resumed run sees the same batches as an uninterrupted one.

This module owns :func:`fit` and everything it leaves in a model's run folder
(``RUN/models/<model_name>/``):

- ``best.keras``: the weights of the interval with the lowest ``val_loss``;
- ``last.keras``: the weights and optimizer state after the last completed
  interval (what a resumed run continues from);
- ``history.csv``: one row per completed interval: ``epoch`` (the 1-based interval
  number), ``step`` (optimizer steps done), ``learning_rate``, Keras' log keys
  and the seconds spent training (``train_time_s``) and in the whole interval
  including validation (``epoch_time_s``);
- ``settings.json``: loss, steps, interval, batch size, learning rate and schedule,
  precision, seed, model name and size, image counts, data key, backend and
  versions, plus the run's ``status`` ("running", "complete", "interrupted",
  "diverged") and ``epochs_completed`` (intervals);
- ``gif_<output>.gif``: predictions of three validation images along training.

Every file is written to a temporary name in the same folder and renamed into place
(:func:`srkit.callbacks.atomic_path`). The ``.keras`` files carry no compile
configuration, so ``keras.saving.load_model(path)`` works with or without
``compile=`` once :mod:`srkit.layers` is imported; ``last.keras`` still holds the
optimizer variables, which :func:`fit` restores with ``load_weights`` to resume.

Calling :func:`fit` again on the same folder with the same settings resumes after
the last completed interval (weights, Adam state and step counter, history, and
the batch stream at the same position), or returns the finished run without
training (``skipped=True``). Different settings (loss, steps, interval, learning
rate or schedule, batch size, precision, seed, model, data) start the run over,
with a warning naming the differences: the folder then holds what the new
settings produce, which is what a parameterized rerun of the pipeline expects.
``force=True`` always starts over.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from srkit import callbacks as srkit_callbacks
from srkit import (
    layers,  # the custom layers (also registers them for loading)
    losses,
    metrics,
)
from srkit import models as srkit_models
from srkit.atomic import write_json
from srkit.callbacks import TMP_MARKER, atomic_path
from srkit.data import check_window, crop_triplets
from srkit.environment import collect_versions
from srkit.environment import cpu_has_bf16 as _cpu_bf16_flags
from srkit.environment import on_accelerator as _on_accelerator
from srkit.layout import (
    BEST_FILE,
    HISTORY_FILE,
    LAST_FILE,
    SETTINGS_FILE,
    gif_path,
    model_files,
)
from srkit.vocab import LOW_SIZE, OUTPUT_TARGETS

__all__ = [
    "FitResult",
    "LR_SCHEDULES",
    "PRECISIONS",
    "PrecisionChoice",
    "TARGETS",
    "TrainingDiverged",
    "batches",
    "choose_precision",
    "fit",
    "prepare_model",
    "read_history",
]

PRECISIONS = ("float32", "mixed_bfloat16")
LR_SCHEDULES = ("cosine", "constant")
COSINE_FLOOR = 0.1  # cosine decay ends at a tenth of the initial learning rate
# precision "auto" takes bfloat16 only when a convolution runs this much faster
BF16_MIN_SPEEDUP = 1.3
# Which Subset array each named output learns from (x2 and x4 targets).
TARGETS = OUTPUT_TARGETS
# Compiled metrics run on every training batch too; SSIM (an 11x11 Gaussian filter
# per channel) tripled the step time of the small models, so it is left to the
# evaluation of the trained model (srkit.evaluate).
METRICS = (metrics.mse, metrics.mae, metrics.psnr)
GIF_IMAGES = 3  # the first three validation images, a fixed and deterministic choice
# Settings that must equal the previous run's for fit to resume it or skip it.
MATCH_KEYS = (
    "model",
    "params",
    "outputs",
    "loss",
    "steps",
    "eval_every",
    "batch_size",
    "learning_rate",
    "lr_schedule",
    "warmup_steps",
    "window",
    "skip",
    "precision",
    "seed",
    "n_train",
    "n_val",
    "data_key",
)
# The original study had to lower the learning rate to this value on 5,000 images.
SAFE_LEARNING_RATE = 1e-4


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; training stopped at that batch.

    Attributes:
        epoch: 1-based interval in which the loss stopped being finite.
        batch: 1-based step of that interval, or None when found at the interval's
            end (e.g. a non-finite validation loss).
        value: the offending value (NaN or +-inf).
        last_good_epoch: the last interval saved in ``last.keras`` (0: none).
    """

    def __init__(
        self, epoch, batch, key, value, learning_rate, last_good_epoch, run_dir
    ):
        self.epoch = epoch
        self.batch = batch
        self.value = value
        self.last_good_epoch = last_good_epoch
        where = f"interval {epoch}" + (f", step {batch}" if batch is not None else "")
        if last_good_epoch:
            kept = (
                f"best.keras and last.keras in {run_dir} keep the weights of "
                f"interval {last_good_epoch} and earlier"
            )
        else:
            kept = "no interval completed, so no model was saved"
        lower = min(learning_rate / 10, SAFE_LEARNING_RATE)
        super().__init__(
            f"training diverged in {where}: {key} is {value}; {kept}. Use a lower "
            f"learning rate than {learning_rate:g}, e.g. {lower:g} (the original "
            f"study had to drop to {SAFE_LEARNING_RATE:g} on its larger data set)."
        )


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one row per completed interval (all sessions of a resumed run):
            ``epoch`` (1-based interval), ``step``, ``learning_rate``, Keras' log
            keys (``loss``, ``val_loss``, ``<output>_psnr``... for two outputs,
            ``psnr``... for one), and ``train_time_s``, ``epoch_time_s``.
        wall_time_s: seconds this call took (training, saving, loading).
        train_images_per_s: training windows (steps x batch size) per second spent
            training, over the whole history (excludes validation and saving;
            includes the first interval's graph tracing).
        paths: name -> Path of every artifact: ``best_model``, ``last_model``,
            ``history``, ``settings`` and ``gif_<output>`` for each GIF present.
        model: the best model (lowest ``val_loss``, or ``loss`` without validation
            data), loaded from ``best.keras``, uncompiled.
        resumed_from: optimizer steps completed before this call (0 for a fresh
            run; equal to the run's steps when ``skipped``).
        precision: "float32" or "mixed_bfloat16".
        skipped: True when the run was already complete and nothing was trained.
        steps_run: optimizer steps trained by this call.
        settings: the content of ``settings.json``.
    """

    history: pd.DataFrame
    wall_time_s: float
    train_images_per_s: float
    paths: dict[str, Path]
    model: keras.Model
    resumed_from: int
    precision: str
    skipped: bool = False
    steps_run: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Optimizer steps completed, resumed sessions included."""
        history = self.history
        return int(history["step"].max()) if len(history) else 0

    def record(self) -> dict:
        """The facts a step's ``metrics.json`` keeps about this training run.

        Returns:
            A plain dict: loss, steps, batch size, image counts, speed, wall time,
            precision and the VGG16 weights (None for a model without VGG).
        """
        settings = self.settings
        return {
            "loss": settings.get("loss"),
            "steps": self.steps,
            "batch_size": settings.get("batch_size"),
            "window": settings.get("window", LOW_SIZE),
            "skip": settings.get("skip", "none"),
            "warmup_steps": settings.get("warmup_steps", 0),
            "n_train": settings.get("n_train"),
            "n_val": settings.get("n_val"),
            "train_images_per_s": self.train_images_per_s,
            "wall_time_s": self.wall_time_s,
            "precision": self.precision,
            "vgg_weights": settings.get("vgg_weights")
            or srkit_models.vgg_weights_used(self.model),
        }


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision :func:`choose_precision` settled on, and why.

    Attributes:
        name: "float32" or "mixed_bfloat16".
        requested: what was asked for ("auto", "float32" or "mixed_bfloat16").
        reason: one sentence for the run banner.
        speedup: measured bfloat16 / float32 convolution speed (None: not measured).
    """

    name: str
    requested: str
    reason: str
    speedup: float | None = None

    def __str__(self) -> str:
        return self.name


def _conv_seconds(dtype: str) -> float:
    """Time of one 64-channel 3x3 convolution on 8 72x72 images in ``dtype``."""
    images = keras.ops.ones((8, 72, 72, 64), dtype=dtype)
    kernel = keras.ops.ones((3, 3, 64, 64), dtype=dtype) * 0.01
    start = time.perf_counter()
    keras.ops.convert_to_numpy(keras.ops.conv(images, kernel, padding="same"))
    return time.perf_counter() - start


@functools.cache
def _measured_bf16_speedup(rounds: int = 5) -> float:
    """Best float32 time over best bfloat16 time, the two measured in turns.

    Alternating the two precisions (after one warm-up each) exposes both to the
    same background load, so a busy machine does not favour either.
    """
    try:
        best = {"float32": math.inf, "bfloat16": math.inf}
        for dtype in best:
            _conv_seconds(dtype)  # warm-up: kernels, allocation
        for _ in range(rounds):
            for dtype in best:
                best[dtype] = min(best[dtype], _conv_seconds(dtype))
        return best["float32"] / best["bfloat16"]
    except Exception:  # noqa: BLE001  (a backend without bfloat16 kernels)
        return 0.0


def choose_precision(precision: str = "auto") -> PrecisionChoice:
    """Resolve a precision setting, measuring the hardware for ``"auto"``.

    ``"auto"`` on a CPU without bfloat16 instructions (none of
    ``srkit.environment.BF16_CPU_FLAGS`` in ``/proc/cpuinfo``) is "float32" at
    once: bfloat16 is emulated there and slower. Otherwise it times a 64-channel
    3x3 convolution (the models' main work) in float32 and in bfloat16, in
    turns, on the current backend and device, once per process, and takes
    "mixed_bfloat16" when
    bfloat16 is at least ``BF16_MIN_SPEEDUP`` times faster (a CPU with AMX or
    AVX512-BF16, a recent GPU).

    Args:
        precision: "auto", "float32" or "mixed_bfloat16".

    Returns:
        :class:`PrecisionChoice`.

    Raises:
        ValueError: for another value.
    """
    if precision in PRECISIONS:
        return PrecisionChoice(precision, precision, "set explicitly")
    if precision != "auto":
        raise ValueError(
            f"precision must be 'auto' or one of {PRECISIONS}, got {precision!r}"
        )
    if not _on_accelerator() and _cpu_bf16_flags() is False:
        return PrecisionChoice(
            "float32",
            "auto",
            "this CPU lists no bfloat16 instructions (AMX or AVX512-BF16), so "
            "bfloat16 would be emulated and slower",
        )
    speedup = _measured_bf16_speedup()
    measured = (
        f"a 3x3 convolution ran {speedup:.1f}x as fast in bfloat16 as in float32 "
        "on this machine"
    )
    if speedup >= BF16_MIN_SPEEDUP:
        return PrecisionChoice("mixed_bfloat16", "auto", measured, speedup)
    if speedup <= 0:
        measured = "bfloat16 convolutions are not available on this backend"
    return PrecisionChoice("float32", "auto", measured, speedup)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``history.csv`` written by :func:`fit`.

    Args:
        path: the CSV file.

    Returns:
        DataFrame with an int ``epoch`` column and float columns; empty (with an
        ``epoch`` column) when the file is missing or unreadable.
    """
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return pd.DataFrame({"epoch": pd.Series(dtype=int)})
    if "epoch" not in frame.columns:
        return pd.DataFrame({"epoch": pd.Series(dtype=int)})
    return frame


def _check_history(run_dir: Path) -> None:
    """Refuse checkpoints whose history is missing or unreadable.

    ``best.keras`` / ``last.keras`` without a readable ``history.csv`` cannot be
    resumed or explained; training over them would delete them.

    Raises:
        ValueError: naming the history file and the two ways out.
    """
    checkpoints = [name for name in (BEST_FILE, LAST_FILE) if (run_dir / name).exists()]
    if not checkpoints:
        return
    path = run_dir / HISTORY_FILE
    problem = None
    if not path.is_file():
        problem = "is missing"
    else:
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as error:
            problem = f"is unreadable ({' '.join(str(error).split())})"
        else:
            if "epoch" not in frame.columns or not len(frame):
                problem = "holds no epoch rows"
            else:
                # Text in the column ("zz") would compare as strings: numbers only.
                epochs = pd.to_numeric(frame["epoch"], errors="coerce")
                if epochs.isna().any() or not epochs.is_monotonic_increasing:
                    problem = "has garbled epoch numbers"
    if problem is not None:
        raise ValueError(
            f"{path} {problem}, but {' and '.join(checkpoints)} exist in {run_dir}: "
            "they cannot be resumed and would be deleted by training from scratch. "
            f"Delete the folder {run_dir} (or pass force=True to srkit.train.fit) "
            "to train again, or restore history.csv"
        )


def _check_finite(subset, what: str) -> None:
    """Refuse arrays with NaN or infinite values: a data problem, not training."""
    for attribute in ("x", "y2", "y4"):
        values = getattr(subset, attribute, None)
        if isinstance(values, np.ndarray) and not np.isfinite(values).all():
            raise ValueError(
                f"{what}.{attribute} holds NaN or infinite values: the training data "
                "is broken (check the source images), not the training settings"
            )


def _check_subset(subset, what: str) -> int:
    for attribute in ("x", "y2", "y4"):
        if not hasattr(subset, attribute):
            raise ValueError(
                f"{what} has no {attribute!r} array; pass a srkit.data.Split"
            )
    x = subset.x
    if getattr(x, "ndim", None) != 4 or x.shape[-1] != 3:
        raise ValueError(f"{what}.x must be (n, h, w, 3), got {getattr(x, 'shape', x)}")
    return int(x.shape[0])


def _targets(subset, outputs: Sequence[str]):
    """Keras targets: the array itself for one output, a dict by name for two."""
    arrays = {name: getattr(subset, TARGETS[name]) for name in outputs}
    return arrays[outputs[0]] if len(outputs) == 1 else arrays


def _is_stream(source) -> bool:
    return callable(getattr(source, "draw", None))


def _check_train(source) -> int:
    """Image count of a training source: a PatchSource or a Subset of arrays."""
    if _is_stream(source):
        return len(source)
    return _check_subset(source, "split.train")


def batches(
    source, batch_size: int, seed: int, start: int = 0, window: int = LOW_SIZE
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Endless training batches; batch ``k`` depends only on ``seed`` and ``k``.

    Args:
        source: a :class:`srkit.data.PatchSource` (fresh random windows, flips and
            rotations) or a Subset of fixed arrays (random images, without
            replacement within a batch when there are enough).
        batch_size: images per batch (>= 1).
        seed: stream seed.
        start: index of the first batch (a resumed run starts after the steps it
            already took, so it sees the same batches as an uninterrupted run).
        window: input side of a training window in pixels (8 to 72); smaller
            windows give cheaper steps (see :meth:`srkit.data.PatchSource.draw`).

    Yields:
        ``(x, {"y2": ..., "y4": ...})``: float32 inputs (b, window, window, 3) and
        the x2 and x4 targets.
    """
    window = check_window(window)
    step = start
    while True:
        rng = np.random.default_rng([seed, step])
        if _is_stream(source):
            batch = source.draw(batch_size, rng, window)
            x, targets = batch.x, {"y2": batch.y2, "y4": batch.y4}
        else:
            count = len(source.x)
            chosen = rng.choice(count, batch_size, replace=batch_size > count)
            x = source.x[chosen]
            targets = {"y2": source.y2[chosen], "y4": source.y4[chosen]}
            if window < x.shape[1]:
                x, y2, y4 = crop_triplets(x, targets["y2"], targets["y4"], window, rng)
                targets = {"y2": y2, "y4": y4}
        yield x, targets
        step += 1


def _keras_batches(source, outputs, batch_size, seed, start, window):
    """:func:`batches` shaped for ``Model.fit``: targets by output name."""
    for x, targets in batches(source, batch_size, seed, start, window):
        arrays = {name: targets[TARGETS[name]] for name in outputs}
        yield x, (arrays[outputs[0]] if len(outputs) == 1 else arrays)


def _learning_rate(learning_rate: float, schedule: str, steps: int, warmup: int = 0):
    """The rate or schedule: ``warmup`` steps rising linearly from 0, then the
    schedule over the remaining steps (a constant rate is a cosine with floor 1)."""
    if schedule == "constant" and not warmup:
        return learning_rate
    floor = 1.0 if schedule == "constant" else COSINE_FLOOR
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=steps, alpha=floor
        )
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=steps - warmup,
        alpha=floor,
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )


def _check_outputs(model: keras.Model) -> list[str]:
    outputs = list(model.output_names)
    unknown = [name for name in outputs if name not in TARGETS]
    if unknown:
        raise ValueError(
            f"model {model.name!r} has outputs {unknown} without a target; "
            f"name outputs {tuple(TARGETS)}"
        )
    return outputs


def prepare_model(
    model: keras.Model,
    loss: str,
    learning_rate,
    precision: str = "float32",
    xla: bool = False,
) -> keras.Model:
    """Return ``model`` compiled for training, rebuilt under ``precision`` if needed.

    For "float32" a float32 model itself is compiled (and later trained in place).
    Otherwise a clone is built under the ``precision`` dtype policy (for
    "mixed_bfloat16": bfloat16 compute, float32 variables) with the model's weights
    copied in, except that the output layers stay float32 so losses and metrics see
    float32 predictions; the caller's model is left untouched. A model with
    bfloat16 layers asked to train in "float32" is cloned back to float32.

    Compilation: Adam(``learning_rate``), the named loss on every output (Keras sums
    the heads' losses), metrics MSE, MAE and PSNR on every output.

    Args:
        model: a built functional model whose outputs are named in ``TARGETS``.
        loss: a name from ``srkit.losses.NAMES``.
        learning_rate: Adam learning rate (> 0) or a Keras schedule.
        xla: compile the training step with XLA (``jit_compile=True``). False
            leaves Keras' own choice, which on TensorFlow skips XLA on a CPU; on a
            2-core CPU here XLA made the multi-output models about 1.7x faster.
        precision: one of ``PRECISIONS``.

    Returns:
        The compiled model to train.

    Raises:
        ValueError: unknown loss, precision or output name.
    """
    loss_function = losses.get(loss)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    outputs = _check_outputs(model)
    policies = {layer.dtype_policy.name for layer in model.layers}
    if precision != "float32" or policies - {"float32"}:
        # e.g. the bfloat16 best model of a first round retrained in float32
        model = _clone_with_policy(model, precision)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss={name: loss_function for name in outputs},
        metrics={name: list(METRICS) for name in outputs},
        jit_compile=True if xla else "auto",
    )
    return model


def _clone_with_policy(model: keras.Model, policy: str) -> keras.Model:
    output_layers = set(model.output_names)

    def clone_layer(layer):
        config = layer.get_config()
        # A layer's config pins its dtype policy; override it. Outputs stay float32,
        # and so does the bicubic skip: in bfloat16 (8 significant bits) it would
        # round the image it adds by up to half an 8-bit level.
        exact = isinstance(layer, layers.BicubicUpSampling2D)
        config["dtype"] = "float32" if layer.name in output_layers or exact else policy
        return layer.__class__.from_config(config)

    previous = keras.config.dtype_policy()
    # The global policy also reaches sublayers that a layer creates itself.
    keras.config.set_dtype_policy(policy)
    try:
        clone = keras.models.clone_model(model, clone_function=clone_layer)
    finally:
        keras.config.set_dtype_policy(previous)
    clone.set_weights(model.get_weights())
    return clone


def _save_model(model: keras.Model, path: Path) -> None:
    """Save weights + optimizer state atomically, without the compile config.

    Without the compile config the file loads with plain ``load_model`` (no need to
    resolve loss and metric functions); ``load_weights`` still restores the
    optimizer variables into a compiled model.
    """
    with atomic_path(path) as temporary:
        compiled = model.compiled
        model.compiled = False  # get_compile_config() then returns {}, not saved
        try:
            model.save(temporary)
        finally:
            model.compiled = compiled


def _copy_file(source: Path, target: Path) -> None:
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def _finite(value) -> bool:
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64))))
    except (TypeError, ValueError):
        return True  # not a number: nothing to check


class _RunRecorder(keras.callbacks.Callback):
    """Divergence guard, per-epoch checkpoints, history rows and epoch timing.

    It must run before any callback that may interrupt training at an epoch's end,
    so that a finished epoch is saved first. Order of writes per epoch: history,
    then ``last.keras``, then ``best.keras``; :func:`fit` reconciles the history
    with the optimizer step count in ``last.keras`` when resuming.
    """

    def __init__(self, run_dir: Path, rows: list[dict], monitor: str, learning_rate):
        super().__init__()
        self.run_dir = run_dir
        self.rows = rows
        self.monitor = monitor
        self.learning_rate = learning_rate
        values = [row.get(monitor, math.inf) for row in rows]
        self.best = min((v for v in values if _finite(v)), default=math.inf)
        self._epoch = 0
        self._start = 0.0
        self._train_time = None

    def _diverged(self, batch, key, value):
        last_good = self.rows[-1]["epoch"] if self.rows else 0
        return TrainingDiverged(
            self._epoch + 1,
            batch,
            key,
            value,
            self.learning_rate,
            last_good,
            self.run_dir,
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = time.perf_counter()
        self._train_time = None

    def on_test_begin(self, logs=None):
        if self._train_time is None:  # validation starts: the training part is over
            self._train_time = time.perf_counter() - self._start

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is not None and not _finite(value):
            raise self._diverged(batch + 1, "the training loss", float(value))

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        for key, value in logs.items():
            if not _finite(value):
                raise self._diverged(None, key, float(value))
        elapsed = time.perf_counter() - self._start
        steps = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        rate = self.model.optimizer.learning_rate
        row = {
            "epoch": epoch + 1,
            "step": steps,
            "learning_rate": float(keras.ops.convert_to_numpy(rate)),
            **{key: float(value) for key, value in logs.items()},
        }
        row["train_time_s"] = elapsed if self._train_time is None else self._train_time
        row["epoch_time_s"] = elapsed
        self.rows.append(row)
        with atomic_path(self.run_dir / HISTORY_FILE) as temporary:
            pd.DataFrame(self.rows).to_csv(temporary, index=False)
        _save_model(self.model, self.run_dir / LAST_FILE)
        value = row.get(self.monitor, math.inf)
        if value < self.best or not (self.run_dir / BEST_FILE).exists():
            self.best = value
            _copy_file(self.run_dir / LAST_FILE, self.run_dir / BEST_FILE)


def _settings(model, split, loss, budget: dict, precision, seed):
    info = getattr(split, "info", None) or {}
    return {
        "model": model.name,
        "params": int(model.count_params()),
        "outputs": list(model.output_names),
        "loss": loss,
        **budget,
        "precision": precision,
        "seed": seed,
        "n_train": int(len(split.train)),
        "n_val": int(len(split.val.x)),
        "data_key": info.get("key"),
        "data_source": info.get("source"),
        "backend": keras.backend.backend(),
        "versions": collect_versions(),
    }


def _differences(previous: dict | None, settings: dict) -> list[str]:
    if previous is None:
        return ["no readable settings.json"]
    return [
        f"{key}: {previous.get(key)!r} -> {settings[key]!r}"
        for key in MATCH_KEYS
        if previous.get(key) != settings[key]
    ]


def _clear(run_dir: Path) -> None:
    """Remove a previous run's artifacts (and stray temporary files)."""
    doomed = list(model_files(run_dir).values())
    doomed += list(run_dir.glob("gif_*.gif")) + list(run_dir.glob("plot_epoch_*.png"))
    for path in doomed:
        path.unlink(missing_ok=True)


def _sweep_temporaries(run_dir: Path) -> None:
    for path in run_dir.glob(f".*{TMP_MARKER}*"):
        path.unlink(missing_ok=True)


def _paths(run_dir: Path, outputs: Sequence[str]) -> dict[str, Path]:
    paths = model_files(run_dir)
    for name in outputs:
        gif = gif_path(run_dir, name)
        if gif.exists():
            paths[f"gif_{name}"] = gif
    paths.update({path.stem: path for path in sorted(run_dir.glob("plot_epoch_*.png"))})
    return {name: path for name, path in paths.items() if path.exists()}


def _images_per_s(history: pd.DataFrame, batch_size: int) -> float:
    if not len(history) or "train_time_s" not in history:
        return float("nan")
    seconds = float(history["train_time_s"].sum())
    images = batch_size * float(history["step"].max())
    return images / seconds if seconds > 0 else float("nan")


def _load_best(run_dir: Path) -> keras.Model:
    return srkit_models.load(run_dir / BEST_FILE)


def _resume_state(train_model, run_dir: Path, rows: list[dict], steps_per_epoch: int):
    """Load ``last.keras`` into ``train_model``; return the epochs it holds or None.

    The optimizer's step counter tells how many epochs the checkpoint holds; history
    rows beyond it (an interruption between the two writes) are dropped. None means
    the checkpoint cannot be trusted (unreadable, partial epoch, rows missing).
    """
    train_model.optimizer.build(train_model.trainable_variables)
    try:
        train_model.load_weights(run_dir / LAST_FILE)
    except Exception as error:  # noqa: BLE001  (any load failure means: start over)
        warnings.warn(
            f"cannot resume from {run_dir / LAST_FILE}: {error}", stacklevel=3
        )
        return None
    steps = int(keras.ops.convert_to_numpy(train_model.optimizer.iterations))
    epochs, remainder = divmod(steps, steps_per_epoch)
    if remainder or epochs == 0 or epochs > len(rows):
        warnings.warn(
            f"cannot resume from {run_dir}: last.keras holds {steps} optimizer steps "
            f"({steps_per_epoch} per epoch) but history.csv has {len(rows)} epochs",
            stacklevel=3,
        )
        return None
    del rows[epochs:]
    return epochs


def _result(rows, started, run_dir, outputs, precision, resumed_from, settings):
    """The FitResult of a finished (or skipped, when nothing was run) fit call.

    ``resumed_from`` counts intervals; the result reports optimizer steps.
    """
    history = pd.DataFrame(rows)
    every = settings["eval_every"]
    return FitResult(
        history=history,
        wall_time_s=time.perf_counter() - started,
        train_images_per_s=_images_per_s(history, settings["batch_size"]),
        paths=_paths(run_dir, outputs),
        model=_load_best(run_dir),
        resumed_from=resumed_from * every,
        precision=precision,
        skipped=len(rows) == resumed_from,
        steps_run=(len(rows) - resumed_from) * every,
        settings=settings,
    )


def _check_budget(steps, eval_every, batch_size, learning_rate, lr_schedule, warmup):
    """Validate the budget arguments; return ``(eval_every, learning_rate)``."""
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup!r}")
    if isinstance(steps, int) and not isinstance(steps, bool) and warmup >= steps:
        raise ValueError(
            f"warmup_steps ({warmup}) must be smaller than steps ({steps}); "
            f"e.g. warmup_steps={steps // 20}"
        )
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    eval_every = steps if eval_every is None else eval_every
    if isinstance(eval_every, bool) or not isinstance(eval_every, int):
        raise ValueError(f"eval_every must be an integer >= 1, got {eval_every!r}")
    if eval_every < 1 or steps % eval_every:
        raise ValueError(
            f"eval_every must be >= 1 and divide steps ({steps}), got {eval_every!r}; "
            f"e.g. eval_every={max(1, steps // 10)} with steps="
            f"{max(1, steps // 10) * 10}"
        )
    if not (isinstance(learning_rate, int | float) and 0 < learning_rate < math.inf):
        raise ValueError(
            f"learning_rate must be a positive number, got {learning_rate!r}"
        )
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(
            f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}"
        )
    return eval_every, float(learning_rate)


def _check_split(split) -> int:
    """Check the training and validation data; return the validation count."""
    n_train = _check_train(split.train)
    n_val = _check_subset(split.val, "split.val")
    _check_finite(split.train, "split.train")
    _check_finite(split.val, "split.val")
    if n_train == 0:
        raise ValueError("split.train is empty: nothing to train on")
    return n_val


@dataclass
class _Plan:
    """What :func:`fit` does with a model folder, and what it found there.

    Attributes:
        action: "skip" (the same run is complete), "resume" (the same run stopped
            part way, its checkpoints are present) or "fresh".
        rows: the history rows found (kept only on resume and skip).
        previous: the settings found.
        changed: the settings that differ from an earlier run in the folder (a fresh
            start that throws away finished intervals; the caller warns).
    """

    action: str
    rows: list[dict]
    previous: dict
    changed: list[str] = field(default_factory=list)


def _plan(run_dir: Path, settings: dict, intervals: int, force: bool) -> _Plan:
    """Decide to skip, resume or start fresh from what the model folder holds.

    Raises:
        ValueError: checkpoints beside a missing or unreadable history (unless
            ``force``): they could be neither resumed nor explained.
    """
    previous = _read_json(run_dir / SETTINGS_FILE)
    if not force:
        _check_history(run_dir)
    rows = read_history(run_dir / HISTORY_FILE).to_dict("records")
    done = len(rows)
    differences = _differences(previous, settings)
    has_files = (run_dir / LAST_FILE).exists() and (run_dir / BEST_FILE).exists()
    same_run = not force and not differences and done > 0 and has_files
    finished = same_run and previous.get("status") == "complete" and done == intervals
    if finished and previous.get("epochs_completed") == done:
        return _Plan("skip", rows, previous)
    if same_run:
        return _Plan("resume", rows, previous)
    changed = differences if done and not force else []
    return _Plan("fresh", rows, previous, changed)


def _built_in_callbacks(recorder, val, run_dir, eval_every, gif, gif_every, plot_every):
    """The recorder, then the training GIF and prediction plots when asked for.

    Returns:
        (callbacks in order, the GIF callback or None); no GIF or plot without
        validation images (``val`` None).
    """
    built_in: list[keras.callbacks.Callback] = [recorder]
    gif_callback = None
    if gif and val is not None:
        gif_callback = srkit_callbacks.SavePredictionCallback(
            val.x[:GIF_IMAGES], run_dir, every=gif_every, steps_per_epoch=eval_every
        )
        built_in.append(gif_callback)
    if plot_every and val is not None:
        built_in.append(
            srkit_callbacks.PlotPredictionCallback(
                val.x[0], val.y2[0], every=plot_every, output_dir=run_dir
            )
        )
    return built_in, gif_callback


def fit(
    model: keras.Model,
    split,
    loss: str,
    steps: int,
    eval_every: int | None = None,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    run_dir: str | os.PathLike | None = None,
    *,
    lr_schedule: str = "cosine",
    warmup_steps: int = 0,
    window: int = LOW_SIZE,
    precision: str = "float32",
    xla: bool = False,
    seed: int = 0,
    verbose: int = 2,
    gif: bool = True,
    gif_every: int | None = None,
    plot_every: int | None = None,
    force: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> FitResult:
    """Train ``model`` for ``steps`` optimizer steps, checkpointing into ``run_dir``.

    Targets: output ``low_upsample`` learns the x2 target and ``high_upsample`` the
    x4 target; only the outputs the model has are used. Every batch is drawn afresh
    (:func:`batches`). Every ``eval_every`` steps: validation on ``split.val``, a
    history row, ``last.keras`` and ``best.keras``, a GIF frame. See the module
    docstring for the files written, resuming, skipping and restarting.

    Args:
        model: built Keras model, input (None, None, 3), outputs named
            ``low_upsample`` and/or ``high_upsample``. With "float32" it is trained
            in place (it ends with the last interval's weights); with
            "mixed_bfloat16" (or a bfloat16 model in "float32") a clone is
            trained and ``model`` is unchanged.
        split: object with ``train`` (a :class:`srkit.data.PatchSource`, or a
            Subset with ``x`` float32 (n, h, w, 3) RGB in [0, 1], ``y2`` (n, 2h,
            2w, 3), ``y4`` (n, 4h, 4w, 3)) and ``val`` (a Subset); optional
            ``info`` dict whose ``key`` identifies the data.
        loss: loss name from ``srkit.losses.NAMES``, applied to every output (a
            two-output model minimises the sum of both heads' losses).
        steps: total optimizer steps of the run (>= 1), counting earlier calls.
        eval_every: steps per evaluation interval; must divide ``steps``. None:
            one interval, i.e. validation only at the end.
        batch_size: images per training step (>= 1).
        learning_rate: initial Adam learning rate (> 0).
        run_dir: the model's run folder (created if missing). Required.
        lr_schedule: "cosine" (cosine decay over ``steps`` down to a tenth of
            ``learning_rate``) or "constant".
        warmup_steps: steps over which the rate rises linearly from 0 to
            ``learning_rate`` before the schedule starts (0: none). The first
            Adam steps at full rate can throw a model off a good start, such as
            the bicubic start of ``srkit.models.build(..., skip="bicubic")``.
        window: input side in pixels of the training windows (8 to 72); the
            targets are 2 and 4 times as wide. Validation always uses the
            split's 72 px windows. Small windows give more, cheaper steps.
        precision: "float32", "mixed_bfloat16" (bfloat16 compute, float32 weights
            and outputs) or "auto" (:func:`choose_precision`).
        xla: compile the training step with XLA (see :func:`prepare_model`).
        seed: seeds Python, NumPy and the backend (``keras.utils.set_random_seed``)
            and the batch stream: the same seed on the same machine gives the same
            history. Build the model after seeding too (``srkit.models.build(...,
            seed=seed)``) so that its initial weights repeat.
        verbose: Keras' verbosity; 2 prints one line per interval.
        gif: record the first three validation images' predictions into
            ``gif_<output>.gif`` (:class:`srkit.callbacks.SavePredictionCallback`).
        gif_every: record a GIF frame every this many intervals (None: every
            interval, thinned to at most 30 frames).
        plot_every: if set, show (notebook) or save (``plot_epoch_NNN.png``) a
            bicubic / prediction / target figure of the first validation image every
            this many intervals (:class:`srkit.callbacks.PlotPredictionCallback`).
        force: delete the folder's previous artifacts and train from scratch.
            Without it, checkpoints beside a missing or unreadable
            ``history.csv`` are an error (``ValueError``), never deleted.
        callbacks: extra Keras callbacks, run after the built-in ones (so an
            interval is saved before a user callback can stop training).

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: bad arguments (unknown loss, schedule or precision, steps < 1,
            an interval that does not divide ``steps``, missing ``run_dir``, a model
            output without a target, bad array shapes).
        TrainingDiverged: the loss became NaN or infinite; raised at once (at the
            end of the step), with ``best.keras`` / ``last.keras`` left at the last
            good interval and ``settings.json`` status "diverged".
    """
    started = time.perf_counter()
    if run_dir is None:
        raise ValueError("run_dir is required: the folder for this model's artifacts")
    eval_every, learning_rate = _check_budget(
        steps, eval_every, batch_size, learning_rate, lr_schedule, warmup_steps
    )
    window = check_window(window)
    losses.get(loss)  # ValueError listing the names
    precision = choose_precision(precision).name
    n_val = _check_split(split)
    outputs = _check_outputs(model)
    run_dir = Path(run_dir).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    _sweep_temporaries(run_dir)
    intervals = steps // eval_every

    budget = {
        "steps": steps,
        "eval_every": eval_every,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "lr_schedule": lr_schedule,
        "warmup_steps": warmup_steps,
        "window": window,
        "skip": srkit_models.skip_used(model),
    }
    settings = _settings(model, split, loss, budget, precision, seed)
    plan = _plan(run_dir, settings, intervals, force)
    rows = plan.rows
    if plan.action == "skip":
        done = len(rows)
        return _result(rows, started, run_dir, outputs, precision, done, plan.previous)
    resume = plan.action == "resume"
    if plan.changed:
        warnings.warn(
            f"{run_dir} holds a run with other settings ({'; '.join(plan.changed)}); "
            "starting over",
            stacklevel=2,
        )
        if verbose:
            print(f"srkit.train: starting over in {run_dir}: {'; '.join(plan.changed)}")

    keras.utils.set_random_seed(seed)
    initial_weights = model.get_weights()
    rate = _learning_rate(learning_rate, lr_schedule, steps, warmup_steps)
    train_model = prepare_model(model, loss, rate, precision, xla)
    resumed_from = 0
    if resume:
        resumed_from = _resume_state(train_model, run_dir, rows, eval_every)
        if resumed_from is None:  # untrustworthy checkpoint: fresh model and optimizer
            model.set_weights(initial_weights)
            train_model = prepare_model(model, loss, rate, precision, xla)
            resume, resumed_from = False, 0
        elif verbose:
            print(
                f"srkit.train: resuming {run_dir} after step "
                f"{resumed_from * eval_every}"
            )
    monitor = "val_loss" if n_val else "loss"
    if not resume:
        rows = []
        _clear(run_dir)
    elif min(rows, key=lambda row: row[monitor])["epoch"] == rows[-1]["epoch"]:
        # The last interval is the best: best.keras may have missed it if training
        # was interrupted between the two writes, so copy it again (cheap).
        _copy_file(run_dir / LAST_FILE, run_dir / BEST_FILE)

    settings.update(status="running", epochs_completed=resumed_from)
    settings["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(run_dir / SETTINGS_FILE, settings)

    recorder = _RunRecorder(run_dir, rows, monitor, learning_rate)
    built_in, gif_callback = _built_in_callbacks(
        recorder,
        split.val if n_val else None,
        run_dir,
        eval_every,
        gif,
        gif_every,
        plot_every,
    )
    validation = (split.val.x, _targets(split.val, outputs)) if n_val else None
    stream = _keras_batches(
        split.train, outputs, batch_size, seed, resumed_from * eval_every, window
    )

    status = "interrupted"
    try:
        train_model.fit(
            stream,
            steps_per_epoch=eval_every,
            epochs=intervals,
            initial_epoch=resumed_from,
            validation_data=validation,
            shuffle=False,  # the batch stream is already random
            verbose=verbose,
            callbacks=[*built_in, *callbacks],
        )
        status = "complete"
    except TrainingDiverged:
        status = "diverged"
        raise
    finally:
        if gif_callback is not None:
            try:  # also after an interruption: show what was seen
                gif_callback.write()
            except Exception as error:  # noqa: BLE001  (never mask the real error)
                warnings.warn(
                    f"could not write the training GIFs: {error}", stacklevel=2
                )
        settings.update(status=status, epochs_completed=len(rows))
        settings["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json(run_dir / SETTINGS_FILE, settings)

    return _result(rows, started, run_dir, outputs, precision, resumed_from, settings)
