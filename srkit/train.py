"""Training: one call that compiles, fits, checkpoints, resumes and records a model.

Budgets are optimizer steps. :func:`fit` trains for ``steps`` steps on batches drawn
afresh at every step (random windows of a :class:`srkit.windows.PatchSource`, or
random images of fixed arrays), and every ``eval_every`` steps (one *interval*,
which is one Keras epoch) it validates, writes a history row, checkpoints and
records a GIF frame. Batch ``k`` of a run depends only on the seed and ``k``, so a
resumed run sees the same batches as an uninterrupted one.

This module owns :class:`Settings` (the training settings a step page chooses),
:func:`fit`, the batch stream, the precision and compilation of a model for
training, and what ``settings.json`` records. A fit call leaves in the model's run
folder (``RUN/models/<model_name>/``), through :mod:`srkit.checkpoints` for the
first three:

- ``best.keras``: the weights of the interval with the lowest ``val_loss``;
- ``last.keras``: the weights and optimizer state after the last completed
  interval (what a resumed run continues from);
- ``history.csv``: one row per completed interval: ``epoch`` (the 1-based interval
  number), ``step`` (optimizer steps done), ``learning_rate``, Keras' log keys
  and the seconds spent training (``train_time_s``) and in the whole interval
  including validation (``epoch_time_s``);
- ``settings.json``: the recorded :class:`Settings` (loss, steps, interval, batch
  size, learning rate and schedule, warm-up, window, precision, seed), the model's
  name, size and skip, image counts, data key, backend, devices and versions, plus
  the run's ``status`` ("running", "complete", "interrupted", "diverged") and
  ``epochs_completed`` (intervals);
- ``gif_<output>.gif``: predictions of the first validation image along training
  beside its bicubic and target tiles, and ``strip_<output>.png``, its frames as
  one still.

Every file is written to a temporary name in the same folder and renamed into place
(:func:`srkit.atomic.atomic_path`). The ``.keras`` files carry no compile
configuration, so ``keras.saving.load_model(path)`` works with or without
``compile=`` once :mod:`srkit.layers` is imported; ``last.keras`` still holds the
optimizer variables, which :func:`fit` restores with ``load_weights`` to resume.

Calling :func:`fit` again on the same folder with the same settings resumes after
the last completed interval (weights, Adam state and step counter, history, and
the batch stream at the same position), or returns the finished run without
training (``skipped=True``). Different settings (any recorded :class:`Settings`
field, the model or the data: :data:`MATCH_KEYS`) start the run over, with a
warning naming the differences: the folder then holds what the new settings
produce, which is what a parameterized rerun of the pipeline expects.
``force=True`` always starts over.
"""

from __future__ import annotations

import functools
import math
import os
import queue
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from srkit import callbacks as srkit_callbacks
from srkit import (
    checkpoints,
    distribute,
    layers,  # the custom layers (also registers them for loading)
    losses,
    metrics,
)
from srkit import models as srkit_models
from srkit.atomic import write_json
from srkit.environment import collect_versions
from srkit.environment import cpu_has_bf16 as _cpu_bf16_flags
from srkit.environment import on_accelerator as _on_accelerator
from srkit.layout import BEST_FILE, SETTINGS_FILE
from srkit.vocab import LOW_SIZE, OUTPUT_TARGETS
from srkit.windows import check_window, crop_triplets

__all__ = [
    "FitResult",
    "LR_SCHEDULES",
    "PRECISIONS",
    "PrecisionChoice",
    "Prefetch",
    "Settings",
    "batches",
    "choose_precision",
    "fit",
    "prepare_model",
]

PRECISIONS = ("float32", "mixed_bfloat16")
LR_SCHEDULES = ("cosine", "constant")
COSINE_FLOOR = 0.1  # cosine decay ends at a tenth of the initial learning rate
# precision "auto" takes bfloat16 only when a convolution runs this much faster
BF16_MIN_SPEEDUP = 1.3
# Compiled metrics run on every training batch too; SSIM (an 11x11 Gaussian filter
# per channel) tripled the step time of the small models, so it is left to the
# evaluation of the trained model (srkit.evaluate).
METRICS = (metrics.mse, metrics.mae, metrics.psnr)
GIF_IMAGES = 1  # the first validation image, a fixed and deterministic choice
# Batches fit draws ahead in a background thread while the model trains on
# the current one (a few: enough to ride out a slow draw, little memory).
PREFETCH_BATCHES = 3


@dataclass(frozen=True)
class Settings:
    """The training settings of a :func:`fit` call, checked when they are made.

    A step page makes them from its parameters (:meth:`from_params`). Every field
    except ``xla`` and ``devices`` is written to ``settings.json`` and must equal
    the previous run's for :func:`fit` to resume or skip it (:data:`MATCH_KEYS`),
    so a new training setting is one field here and its value in the profiles
    (plus a parameter on the step pages that vary it).

    Attributes:
        loss: loss name from ``srkit.losses.NAMES``, applied to every output (a
            two-output model minimises the sum of both heads' losses).
        steps: total optimizer steps of the run (>= 1), counting earlier calls.
        eval_every: steps per evaluation interval; must divide ``steps``. None
            becomes ``steps``: one interval, i.e. validation only at the end.
        batch_size: images per training step (>= 1).
        learning_rate: initial Adam learning rate (> 0), kept as a float.
        lr_schedule: "cosine" (cosine decay over ``steps`` down to a tenth of
            ``learning_rate``) or "constant".
        warmup_steps: steps over which the rate rises linearly from 0 to
            ``learning_rate`` before the schedule starts (0: none; fewer than
            ``steps``). The first Adam steps at full rate can throw a model off a
            good start, such as the bicubic start of
            ``srkit.models.build(..., skip="bicubic")``.
        window: input side in pixels of the training windows (8 to 72); the
            targets are 2 and 4 times as wide. Validation always uses the split's
            72 px windows. Small windows give more, cheaper steps.
        precision: "float32", "mixed_bfloat16" (bfloat16 compute, float32 weights
            and outputs) or "auto" (:func:`choose_precision`); ``settings.json``
            keeps the precision it resolves to.
        xla: compile the training step with XLA (see :func:`prepare_model`). Not
            recorded, so switching it does not start a run over.
        devices: "all" or a number of devices to train on (1: one device, as
            without it); several train one model by data parallelism on the JAX
            backend, ``batch_size`` being the batch of all of them together
            (:mod:`srkit.distribute`). ``settings.json`` names the devices used;
            switching it does not start a run over.
        seed: seeds Python, NumPy and the backend (``keras.utils.set_random_seed``)
            and the batch stream: the same seed on the same machine gives the same
            history. Build the model after seeding too (``srkit.models.build(...,
            seed=seed)``) so that its initial weights repeat.

    Raises:
        ValueError: when made with an unknown loss, schedule or precision, steps or
            batch size below 1, an interval that does not divide ``steps``, a
            learning rate that is not positive, warm-up steps out of range, a
            window outside 8 to 72 or ``devices`` neither "all" nor a number >= 1.
    """

    loss: str
    steps: int
    eval_every: int | None = None
    batch_size: int = 16
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    window: int = LOW_SIZE
    precision: str = "float32"
    xla: bool = field(default=False, metadata={"recorded": False})
    devices: int | str = field(default=1, metadata={"recorded": False})
    seed: int = 0

    def __post_init__(self):
        eval_every, learning_rate = _check_budget(
            self.steps,
            self.eval_every,
            self.batch_size,
            self.learning_rate,
            self.lr_schedule,
            self.warmup_steps,
        )
        window = check_window(self.window)
        losses.get(self.loss)  # ValueError listing the names
        if self.precision != "auto" and self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be 'auto' or one of {PRECISIONS}, "
                f"got {self.precision!r}"
            )
        # A frozen dataclass sets its own normalised values this way.
        object.__setattr__(self, "eval_every", eval_every)
        object.__setattr__(self, "learning_rate", learning_rate)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "devices", distribute.check_devices(self.devices))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **values) -> Settings:
        """The settings named in a step's parameters, then ``values`` on top.

        A step page passes ``globals()``, where papermill puts its parameters, and
        what its parameters do not hold, such as the model's loss:
        ``train.Settings.from_params(globals(), loss="mse")``.

        Args:
            params: name -> value; names that are no field (``profile``,
                ``data_source``, ...) are ignored, and a field the mapping lacks
                keeps its default.
            values: fields to set whatever ``params`` holds.

        Returns:
            The checked :class:`Settings`.

        Raises:
            ValueError: as the constructor.
        """
        chosen = {f.name: params[f.name] for f in fields(cls) if f.name in params}
        return cls(**{**chosen, **values})

    def recorded(self) -> dict[str, Any]:
        """The fields ``settings.json`` keeps (:data:`RECORDED_SETTINGS`), by name."""
        return {name: getattr(self, name) for name in RECORDED_SETTINGS}


#: The :class:`Settings` fields written to ``settings.json``: all but ``xla`` and
#: ``devices`` (``settings.json`` names the devices themselves).
RECORDED_SETTINGS = tuple(
    f.name for f in fields(Settings) if f.metadata.get("recorded", True)
)
#: What ``settings.json`` must hold as before for :func:`fit` to resume a run or
#: skip it: the recorded settings, the model and the data.
MATCH_KEYS = (
    "model",
    "params",
    "outputs",
    *RECORDED_SETTINGS,
    "skip",
    "n_train",
    "n_val",
    "data_key",
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
        settings: the content of ``settings.json`` (a dict: the recorded
            :class:`Settings`, the model, the data and the run's status).
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
            precision, the VGG16 weights (None for a model without VGG) and the
            devices trained on (None in a run recorded before they were).
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
            "devices": settings.get("devices"),
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
    arrays = {name: getattr(subset, OUTPUT_TARGETS[name]) for name in outputs}
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
        source: a :class:`srkit.windows.PatchSource` (fresh random windows, flips and
            rotations) or a Subset of fixed arrays (random images, without
            replacement within a batch when there are enough).
        batch_size: images per batch (>= 1).
        seed: stream seed.
        start: index of the first batch (a resumed run starts after the steps it
            already took, so it sees the same batches as an uninterrupted run).
        window: input side of a training window in pixels (8 to 72); smaller
            windows give cheaper steps (see :meth:`srkit.windows.PatchSource.draw`).

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


def _keras_batches(source, outputs, settings: Settings, start: int):
    """:func:`batches` shaped for ``Model.fit``: targets by output name."""
    size, seed, window = settings.batch_size, settings.seed, settings.window
    for x, targets in batches(source, size, seed, start, window):
        arrays = {name: targets[OUTPUT_TARGETS[name]] for name in outputs}
        yield x, (arrays[outputs[0]] if len(outputs) == 1 else arrays)


class Prefetch:
    """The items of an iterator, drawn ahead in a background thread.

    A thread takes items from ``iterator`` in order and keeps at most ``depth`` of
    them waiting, so that drawing the next training batch (NumPy work that mostly
    releases the GIL) overlaps the training step instead of preceding it. The
    items come out in the iterator's own order: a stream that depends only on its
    seed (:func:`batches`) gives the same batches with or without prefetching.

    Iterate over ``iter(prefetch)``, a generator (what ``Model.fit`` accepts), in
    one thread at a time. An exception raised by ``iterator`` is raised again
    there, at the item where it happened, and kept in :attr:`error`. :meth:`close`
    (or leaving a ``with`` block) stops the thread and closes ``iterator``; an
    iteration still waiting then ends.

    Args:
        iterator: any iterator (e.g. a generator of batches).
        depth: items kept ready (>= 1).

    Attributes:
        error: the exception ``iterator`` raised, or None.

    Raises:
        ValueError: ``depth`` below 1.
    """

    _ITEM, _ERROR, _END = "item", "error", "end"

    def __init__(self, iterator, depth: int = PREFETCH_BATCHES):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
        self._iterator = iterator
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._fill, name="srkit-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, kind: str, value) -> bool:
        """Queue one entry unless stopped; False when stopped first."""
        while not self._stop.is_set():
            try:
                self._queue.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        """The thread: draw items until stopped, the iterator ends or fails."""
        try:
            for item in self._iterator:
                if not self._put(self._ITEM, item):
                    return
        except BaseException as error:  # noqa: BLE001  (raised in the consumer)
            self.error = error
            self._put(self._ERROR, error)
            return
        self._put(self._END, None)

    def _get(self) -> tuple[str, Any]:
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return self._END, None

    def __iter__(self) -> Iterator:
        while True:
            kind, value = self._get()
            if kind == self._END:
                return
            if kind == self._ERROR:
                raise value
            yield value

    def close(self) -> None:
        """Stop the thread (after the item it is drawing) and close ``iterator``."""
        self._stop.set()
        self._thread.join()
        while not self._queue.empty():  # free the batches nobody will take
            self._queue.get_nowait()
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


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
    unknown = [name for name in outputs if name not in OUTPUT_TARGETS]
    if unknown:
        raise ValueError(
            f"model {model.name!r} has outputs {unknown} without a target; "
            f"name outputs {tuple(OUTPUT_TARGETS)}"
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
        model: a built functional model whose outputs are keys of
            ``srkit.vocab.OUTPUT_TARGETS``.
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


def _settings_file(
    model, split, settings: Settings, precision: str, devices: Sequence[str]
) -> dict:
    """What ``settings.json`` holds before training: settings, model and data.

    ``precision`` is the resolved name, which replaces a requested "auto";
    ``devices`` the devices trained on (:class:`srkit.distribute.Placement`).
    """
    info = getattr(split, "info", None) or {}
    return {
        "model": model.name,
        "params": int(model.count_params()),
        "outputs": list(model.output_names),
        **settings.recorded(),
        "precision": precision,
        "devices": list(devices),
        "skip": srkit_models.skip_used(model),
        "n_train": int(len(split.train)),
        "n_val": int(len(split.val.x)),
        "data_key": info.get("key"),
        "data_source": info.get("source"),
        "backend": keras.backend.backend(),
        "versions": collect_versions(),
    }


def _images_per_s(history: pd.DataFrame, batch_size: int) -> float:
    if not len(history) or "train_time_s" not in history:
        return float("nan")
    seconds = float(history["train_time_s"].sum())
    images = batch_size * float(history["step"].max())
    return images / seconds if seconds > 0 else float("nan")


def _load_best(run_dir: Path) -> keras.Model:
    return srkit_models.load(run_dir / BEST_FILE)


@dataclass
class _Job:
    """One :func:`fit` call's checked inputs: where it writes and what it records.

    Attributes:
        run_dir: the model's run folder (absolute, created).
        outputs: the model's output names.
        n_val: validation images (0: Keras' ``loss`` picks the best interval).
        precision: the resolved precision name.
        stored: the content of ``settings.json`` (:func:`_settings_file`).
        placement: the devices to train on (:func:`srkit.distribute.place`).
    """

    run_dir: Path
    outputs: list[str]
    n_val: int
    precision: str
    stored: dict
    placement: distribute.Placement


def _job(model, split, settings: Settings, run_dir) -> _Job:
    """Check the call's inputs, make the folder and sweep stray temporary files.

    Raises:
        TypeError: ``settings`` is not a :class:`Settings`.
        ValueError: a missing ``run_dir``, bad data, a model output without a
            target, or devices this machine and backend cannot train on.
    """
    if not isinstance(settings, Settings):
        raise TypeError(
            "settings must be a srkit.train.Settings, e.g. "
            f"Settings(loss='mse', steps=100); got {type(settings).__name__}"
        )
    if run_dir is None:
        raise ValueError("run_dir is required: the folder for this model's artifacts")
    precision = choose_precision(settings.precision).name
    placement = distribute.place(settings.devices, settings.batch_size)
    n_val = _check_split(split)
    outputs = _check_outputs(model)
    run_dir = Path(run_dir).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoints.sweep_temporaries(run_dir)
    stored = _settings_file(model, split, settings, precision, placement.devices)
    return _Job(run_dir, outputs, n_val, precision, stored, placement)


def _result(rows, started, job: _Job, resumed_from: int, stored: dict) -> FitResult:
    """The FitResult of a finished (or skipped, when nothing was run) fit call.

    ``resumed_from`` counts intervals; the result reports optimizer steps.
    ``stored`` is the run's ``settings.json`` (the previous one when skipped).
    """
    history = pd.DataFrame(rows)
    every = stored["eval_every"]
    return FitResult(
        history=history,
        wall_time_s=time.perf_counter() - started,
        train_images_per_s=_images_per_s(history, stored["batch_size"]),
        paths=checkpoints.artifact_paths(job.run_dir, job.outputs),
        model=_load_best(job.run_dir),
        resumed_from=resumed_from * every,
        precision=job.precision,
        skipped=len(rows) == resumed_from,
        steps_run=(len(rows) - resumed_from) * every,
        settings=stored,
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


def _training_model(
    model, settings: Settings, job: _Job, plan: checkpoints.Plan, verbose
):
    """The compiled model to train and the intervals it resumes after (0: fresh).

    On a resume ``last.keras`` is loaded (history rows beyond it are dropped from
    ``plan.rows``); an untrustworthy checkpoint starts over with the model's
    weights as they were and a fresh optimizer. On several devices the model
    trained is a copy of ``model`` (:meth:`srkit.distribute.Placement.replicate`);
    call this inside the placement's scope, which places the optimizer and
    metric variables too.
    """
    initial_weights = model.get_weights()
    rate = _learning_rate(
        settings.learning_rate,
        settings.lr_schedule,
        settings.steps,
        settings.warmup_steps,
    )

    def compiled():  # the model on the run's devices (itself on one device)
        placed = job.placement.replicate(model)
        return prepare_model(placed, settings.loss, rate, job.precision, settings.xla)

    train_model = compiled()
    if plan.action != "resume":
        return train_model, 0
    resumed_from = checkpoints.resume_state(
        train_model, job.run_dir, plan.rows, settings.eval_every
    )
    if resumed_from is None:  # untrustworthy checkpoint: fresh model and optimizer
        model.set_weights(initial_weights)
        return compiled(), 0
    if verbose:
        step = resumed_from * settings.eval_every
        print(f"srkit.train: resuming {job.run_dir} after step {step}")
    return train_model, resumed_from


def _warn_starting_over(run_dir: Path, changed: list[str], verbose) -> None:
    """Warn (and print, when verbose) that a run with other settings is replaced."""
    text = "; ".join(changed)
    warnings.warn(
        f"{run_dir} holds a run with other settings ({text}); starting over",
        stacklevel=3,
    )
    if verbose:
        print(f"srkit.train: starting over in {run_dir}: {text}")


def _write_status(job: _Job, status: str, epochs: int, stamp: str) -> None:
    """Write ``settings.json`` with the run's status, epochs and a time ``stamp``."""
    job.stored.update(status=status, epochs_completed=epochs)
    job.stored[stamp] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(job.run_dir / SETTINGS_FILE, job.stored)


def _finish(job: _Job, gif_callback, status: str, epochs: int) -> None:
    """Write the GIFs (also after an interruption) and the run's final status."""
    if gif_callback is not None:
        try:  # also after an interruption: show what was seen
            gif_callback.write()
        except Exception as error:  # noqa: BLE001  (never mask the real error)
            warnings.warn(f"could not write the training GIFs: {error}", stacklevel=3)
    _write_status(job, status, epochs, "finished")


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
            val.x[:GIF_IMAGES],
            run_dir,
            targets={
                name: getattr(val, field)[:GIF_IMAGES]
                for name, field in OUTPUT_TARGETS.items()
            },
            every=gif_every,
            steps_per_epoch=eval_every,
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
    settings: Settings,
    run_dir: str | os.PathLike,
    *,
    verbose: int = 2,
    gif: bool = True,
    gif_every: int | None = None,
    plot_every: int | None = None,
    force: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> FitResult:
    """Train ``model`` as ``settings`` say, checkpointing into ``run_dir``.

    Targets: output ``low_upsample`` learns the x2 target and ``high_upsample`` the
    x4 target; only the outputs the model has are used. Every batch is drawn afresh
    (:func:`batches`), a few batches ahead in a background thread
    (:class:`Prefetch`), the same batches as without. The callbacks work only
    at an interval's end. Every ``settings.eval_every`` steps: validation on
    ``split.val``, a history row, ``last.keras`` and ``best.keras``, a GIF frame.
    See the module docstring for the files written, resuming, skipping and
    restarting.

    Args:
        model: built Keras model, input (None, None, 3), outputs named
            ``low_upsample`` and/or ``high_upsample``. With "float32" on one
            device it is trained in place (it ends with the last interval's
            weights); with "mixed_bfloat16" (or a bfloat16 model in "float32") or
            on several devices a clone is trained and ``model`` is unchanged.
        split: object with ``train`` (a :class:`srkit.windows.PatchSource`, or a
            Subset with ``x`` float32 (n, h, w, 3) RGB in [0, 1], ``y2`` (n, 2h,
            2w, 3), ``y4`` (n, 4h, 4w, 3)) and ``val`` (a Subset); optional
            ``info`` dict whose ``key`` identifies the data.
        settings: the :class:`Settings` (loss, steps, interval, batch size, ...).
        run_dir: the model's run folder (created if missing). Required.
        verbose: Keras' verbosity; 2 prints one line per interval.
        gif: record the first validation image's predictions into
            ``gif_<output>.gif`` and ``strip_<output>.png``
            (:class:`srkit.callbacks.SavePredictionCallback`).
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
        TypeError: ``settings`` is not a :class:`Settings`.
        ValueError: a missing ``run_dir``, a model output without a target, bad
            array shapes or values, or checkpoints without a readable history.
        srkit.checkpoints.TrainingDiverged: the loss became NaN or infinite;
            raised at the end of the interval where it happened, with
            ``best.keras`` and ``last.keras`` left at the last good interval and
            ``settings.json`` status "diverged".
        Exception: whatever the batch stream raised (e.g. a ``ValueError`` of
            the training source), as it was raised, even where Keras' input
            pipeline wrapped it in an error of its own.
    """
    started = time.perf_counter()
    job = _job(model, split, settings, run_dir)
    intervals = settings.steps // settings.eval_every
    plan = checkpoints.plan(job.run_dir, job.stored, MATCH_KEYS, intervals, force)
    if plan.action == "skip":
        return _result(plan.rows, started, job, len(plan.rows), plan.previous)
    if plan.changed:
        _warn_starting_over(job.run_dir, plan.changed, verbose)
    keras.utils.set_random_seed(settings.seed)
    with job.placement.scope():  # weights, optimizer and metrics on every device
        train_model, resumed_from = _training_model(model, settings, job, plan, verbose)
    monitor = "val_loss" if job.n_val else "loss"
    rows = checkpoints.kept_rows(job.run_dir, plan.rows, resumed_from, monitor)
    _write_status(job, "running", resumed_from, "started")

    recorder = checkpoints.RunRecorder(
        job.run_dir, rows, monitor, settings.learning_rate
    )
    val = split.val if job.n_val else None
    built_in, gif_callback = _built_in_callbacks(
        recorder, val, job.run_dir, settings.eval_every, gif, gif_every, plot_every
    )
    validation = (val.x, _targets(val, job.outputs)) if val is not None else None
    start = resumed_from * settings.eval_every  # the batch stream continues there
    # The next batches are drawn in a thread while the model trains on this one.
    ahead = Prefetch(_keras_batches(split.train, job.outputs, settings, start))
    status = "interrupted"
    try:
        job.placement.fit(  # train_model.fit, on every device of the run
            train_model,
            iter(ahead),
            steps_per_epoch=settings.eval_every,
            epochs=intervals,
            initial_epoch=resumed_from,
            validation_data=validation,
            shuffle=False,  # the batch stream is already random
            verbose=verbose,
            callbacks=[*built_in, *callbacks],
        )
        status = "complete"
    except checkpoints.TrainingDiverged:
        status = "diverged"
        raise
    except Exception as error:
        if ahead.error is not None and ahead.error is not error:
            # the batch stream failed; TensorFlow's input pipeline wraps its error
            raise ahead.error from error
        raise
    finally:
        ahead.close()
        _finish(job, gif_callback, status, len(rows))
    return _result(rows, started, job, resumed_from, job.stored)
