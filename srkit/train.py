"""Training: one call that compiles, fits, checkpoints, resumes and records a model.

This module owns :func:`fit` and everything it leaves in a model's run folder
(``RUN/models/<model_name>/``, see the contract's run-folder layout):

- ``best.keras``: the weights of the epoch with the lowest ``val_loss``;
- ``last.keras``: the weights and optimizer state after the last completed epoch
  (what a resumed run continues from);
- ``history.csv``: one row per completed epoch, ``epoch`` (1-based), Keras' log keys
  and the seconds spent training (``train_time_s``) and in the whole epoch
  including validation (``epoch_time_s``);
- ``settings.json``: loss, epochs, batch size, learning rate, precision, seed, model
  name and size, image counts, data key, backend and versions, plus the run's
  ``status`` ("running", "complete", "interrupted", "diverged") and
  ``epochs_completed``;
- ``gif_<output>.gif``: predictions of three validation images along training.

Every file is written to a temporary name in the same folder and renamed into place
(:func:`srkit.callbacks.atomic_path`). The ``.keras`` files carry no compile
configuration, so ``keras.saving.load_model(path)`` works with or without
``compile=`` once :mod:`srkit.layers` is imported; ``last.keras`` still holds the
optimizer variables, which :func:`fit` restores with ``load_weights`` to resume.

Calling :func:`fit` again on the same folder with the same settings resumes after
the last completed epoch (weights, Adam state and step counter, epoch number and
history; the data order after resuming differs from an uninterrupted run's, so the
numbers are close but not bit-identical), extends a finished run when ``epochs``
grew, or returns the finished run without training (``skipped=True``). Different
settings (loss, learning rate, batch size, precision, seed, model, data, or fewer
epochs than already done) start the run over, with a warning naming the
differences: the folder then holds what the new settings produce, which is what a
parameterized rerun of the pipeline expects. ``force=True`` always starts over.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from srkit import callbacks as srkit_callbacks
from srkit import losses, metrics
from srkit.callbacks import TMP_MARKER, atomic_path

__all__ = [
    "FitResult",
    "PRECISIONS",
    "TARGETS",
    "TrainingDiverged",
    "fit",
    "prepare_model",
    "read_history",
]

PRECISIONS = ("float32", "mixed_bfloat16")
# Which Subset array each named output learns from (x2 and x4 targets).
TARGETS = {"low_upsample": "y2", "high_upsample": "y4"}
METRICS = (metrics.mse, metrics.mae, metrics.psnr, metrics.ssim)
GIF_IMAGES = 3  # the first three validation images, a fixed and deterministic choice
# Settings that must equal the previous run's for fit to resume it or skip it.
MATCH_KEYS = (
    "model",
    "params",
    "outputs",
    "loss",
    "batch_size",
    "learning_rate",
    "precision",
    "seed",
    "n_train",
    "n_val",
    "data_key",
)
BEST_FILE = "best.keras"
LAST_FILE = "last.keras"
HISTORY_FILE = "history.csv"
SETTINGS_FILE = "settings.json"
METRICS_FILE = "metrics.json"
TIME_COLUMNS = ("train_time_s", "epoch_time_s")
# The original study had to lower the learning rate to this value on 5,000 images.
SAFE_LEARNING_RATE = 1e-4


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; training stopped at that batch.

    Attributes:
        epoch: 1-based epoch in which the loss stopped being finite.
        batch: 1-based batch of that epoch, or None when found at the epoch's end
            (e.g. a non-finite validation loss).
        value: the offending value (NaN or +-inf).
        last_good_epoch: the last epoch saved in ``last.keras`` (0: none).
    """

    def __init__(
        self, epoch, batch, key, value, learning_rate, last_good_epoch, run_dir
    ):
        self.epoch = epoch
        self.batch = batch
        self.value = value
        self.last_good_epoch = last_good_epoch
        where = f"epoch {epoch}" + (f", batch {batch}" if batch is not None else "")
        if last_good_epoch:
            kept = (
                f"best.keras and last.keras in {run_dir} keep the weights of epoch "
                f"{last_good_epoch} and earlier"
            )
        else:
            kept = "no epoch completed, so no model was saved"
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
        history: one row per completed epoch (all sessions of a resumed run):
            ``epoch`` (1-based), Keras' log keys (``loss``, ``val_loss``,
            ``<output>_psnr``... for two outputs, ``psnr``... for one), and
            ``train_time_s``, ``epoch_time_s``.
        wall_time_s: seconds this call took (training, saving, loading).
        train_images_per_s: training images * epochs / seconds spent in training
            epochs, over the whole history (excludes validation and saving;
            includes the first epoch's graph tracing).
        paths: name -> Path of every artifact: ``best_model``, ``last_model``,
            ``history``, ``settings`` and ``gif_<output>`` for each GIF present.
        model: the best model (lowest ``val_loss``, or ``loss`` without validation
            data), loaded from ``best.keras``, uncompiled.
        resumed_from: epochs completed before this call (0 for a fresh run; equal
            to the run's epochs when ``skipped``).
        precision: "float32" or "mixed_bfloat16".
        skipped: True when the run was already complete and nothing was trained.
        epochs_run: epochs trained by this call.
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
    epochs_run: int = 0
    settings: dict = field(default_factory=dict)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("keras", "tensorflow", "jax", "numpy", "srkit"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def _write_json(path: Path, content: dict) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(content, indent=2, default=str) + "\n")


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
    model: keras.Model, loss: str, learning_rate: float, precision: str = "float32"
) -> keras.Model:
    """Return ``model`` compiled for training, rebuilt under ``precision`` if needed.

    For "float32" a float32 model itself is compiled (and later trained in place).
    Otherwise a clone is built under the ``precision`` dtype policy (for
    "mixed_bfloat16": bfloat16 compute, float32 variables) with the model's weights
    copied in, except that the output layers stay float32 so losses and metrics see
    float32 predictions; the caller's model is left untouched. A model with
    bfloat16 layers asked to train in "float32" is cloned back to float32.

    Compilation: Adam(``learning_rate``), the named loss on every output (Keras sums
    the heads' losses), metrics MSE, MAE, PSNR and SSIM on every output.

    Args:
        model: a built functional model whose outputs are named in ``TARGETS``.
        loss: a name from ``srkit.losses.NAMES``.
        learning_rate: Adam learning rate (> 0).
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
    )
    return model


def _clone_with_policy(model: keras.Model, policy: str) -> keras.Model:
    output_layers = set(model.output_names)

    def clone_layer(layer):
        config = layer.get_config()
        # A layer's config pins its dtype policy; override it (float32 heads).
        config["dtype"] = "float32" if layer.name in output_layers else policy
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
        row = {"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()}}
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


def _settings(model, split, loss, epochs, batch_size, learning_rate, precision, seed):
    info = getattr(split, "info", None) or {}
    return {
        "model": model.name,
        "params": int(model.count_params()),
        "outputs": list(model.output_names),
        "loss": loss,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "precision": precision,
        "seed": seed,
        "n_train": int(len(split.train.x)),
        "n_val": int(len(split.val.x)),
        "data_key": info.get("key"),
        "data_source": info.get("source"),
        "backend": keras.backend.backend(),
        "versions": _versions(),
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
    names = [BEST_FILE, LAST_FILE, HISTORY_FILE, SETTINGS_FILE, METRICS_FILE]
    doomed = [run_dir / name for name in names]
    doomed += list(run_dir.glob("gif_*.gif")) + list(run_dir.glob("plot_epoch_*.png"))
    for path in doomed:
        path.unlink(missing_ok=True)


def _sweep_temporaries(run_dir: Path) -> None:
    for path in run_dir.glob(f".*{TMP_MARKER}*"):
        path.unlink(missing_ok=True)


def _paths(run_dir: Path, outputs: Sequence[str]) -> dict[str, Path]:
    paths = {
        "best_model": run_dir / BEST_FILE,
        "last_model": run_dir / LAST_FILE,
        "history": run_dir / HISTORY_FILE,
        "settings": run_dir / SETTINGS_FILE,
    }
    for name in outputs:
        gif = srkit_callbacks.gif_path(run_dir, name)
        if gif.exists():
            paths[f"gif_{name}"] = gif
    paths.update({path.stem: path for path in sorted(run_dir.glob("plot_epoch_*.png"))})
    return {name: path for name, path in paths.items() if path.exists()}


def _images_per_s(history: pd.DataFrame, n_train: int) -> float:
    if not len(history) or "train_time_s" not in history:
        return float("nan")
    seconds = float(history["train_time_s"].sum())
    return n_train * len(history) / seconds if seconds > 0 else float("nan")


def _load_best(run_dir: Path) -> keras.Model:
    from srkit import layers  # noqa: F401  (registers the custom layers for loading)

    return keras.saving.load_model(run_dir / BEST_FILE, compile=False)


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


def _result(
    rows, started, n_train, run_dir, outputs, precision, resumed_from, settings
):
    """The FitResult of a finished (or skipped, when nothing was run) fit call."""
    history = pd.DataFrame(rows)
    return FitResult(
        history=history,
        wall_time_s=time.perf_counter() - started,
        train_images_per_s=_images_per_s(history, n_train),
        paths=_paths(run_dir, outputs),
        model=_load_best(run_dir),
        resumed_from=resumed_from,
        precision=precision,
        skipped=len(rows) == resumed_from,
        epochs_run=len(rows) - resumed_from,
        settings=settings,
    )


def fit(
    model: keras.Model,
    split,
    loss: str,
    epochs: int,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    run_dir: str | os.PathLike | None = None,
    *,
    precision: str = "float32",
    seed: int = 0,
    verbose: int = 2,
    gif: bool = True,
    gif_every: int | None = None,
    plot_every: int | None = None,
    force: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> FitResult:
    """Train ``model`` on ``split``, checkpointing every epoch into ``run_dir``.

    Targets: output ``low_upsample`` learns ``split.train.y2`` (x2) and
    ``high_upsample`` learns ``split.train.y4`` (x4); only the outputs the model has
    are used. Validation on ``split.val`` after every epoch. See the module
    docstring for the files written, resuming, skipping and restarting.

    Args:
        model: built Keras model, input (None, None, 3), outputs named
            ``low_upsample`` and/or ``high_upsample``. With "float32" it is trained
            in place (it ends with the last epoch's weights); with
            "mixed_bfloat16" (or a bfloat16 model in "float32") a clone is
            trained and ``model`` is unchanged.
        split: object with ``train`` and ``val`` subsets (``srkit.data.Split``):
            ``x`` float32 (n, h, w, 3) RGB in [0, 1], ``y2`` (n, 2h, 2w, 3), ``y4``
            (n, 4h, 4w, 3); optional ``info`` dict whose ``key`` identifies the data.
        loss: loss name from ``srkit.losses.NAMES``, applied to every output (a
            two-output model minimises the sum of both heads' losses).
        epochs: total epochs of the run (>= 1), counting those of earlier calls.
        batch_size: images per training step (>= 1).
        learning_rate: Adam learning rate (> 0).
        run_dir: the model's run folder (created if missing). Required.
        precision: "float32" or "mixed_bfloat16" (bfloat16 compute, float32
            weights and outputs).
        seed: seeds Python, NumPy and the backend (``keras.utils.set_random_seed``):
            the same seed on the same machine gives the same history.
        verbose: Keras' verbosity; 2 prints one line per epoch.
        gif: record the first three validation images' predictions into
            ``gif_<output>.gif`` (:class:`srkit.callbacks.SavePredictionCallback`).
        gif_every: record a GIF frame every this many epochs (None: every epoch,
            thinned to at most 30 frames).
        plot_every: if set, show (notebook) or save (``plot_epoch_NNN.png``) a
            bicubic / prediction / target figure of the first validation image every
            this many epochs (:class:`srkit.callbacks.PlotPredictionCallback`).
        force: delete the folder's previous artifacts and train from scratch.
        callbacks: extra Keras callbacks, run after the built-in ones (so an epoch
            is saved before a user callback can stop training).

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: bad arguments (unknown loss or precision, epochs < 1, missing
            ``run_dir``, a model output without a target, bad array shapes).
        TrainingDiverged: the loss became NaN or infinite; raised at once (at the
            end of the batch), with ``best.keras`` / ``last.keras`` left at the last
            good epoch and ``settings.json`` status "diverged".
    """
    started = time.perf_counter()
    if run_dir is None:
        raise ValueError("run_dir is required: the folder for this model's artifacts")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not (isinstance(learning_rate, int | float) and 0 < learning_rate < math.inf):
        raise ValueError(
            f"learning_rate must be a positive number, got {learning_rate!r}"
        )
    learning_rate = float(learning_rate)
    losses.get(loss)  # ValueError listing the names
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    n_train = _check_subset(split.train, "split.train")
    n_val = _check_subset(split.val, "split.val")
    if n_train == 0:
        raise ValueError("split.train is empty: nothing to train on")
    outputs = _check_outputs(model)
    run_dir = Path(run_dir).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    _sweep_temporaries(run_dir)

    settings = _settings(
        model, split, loss, epochs, batch_size, learning_rate, precision, seed
    )
    previous = _read_json(run_dir / SETTINGS_FILE)
    rows = read_history(run_dir / HISTORY_FILE).to_dict("records")
    done = len(rows)
    differences = _differences(previous, settings)
    if done > epochs:
        differences.append(f"epochs: {done} completed, {epochs} requested")
    has_files = (run_dir / LAST_FILE).exists() and (run_dir / BEST_FILE).exists()
    same_run = not force and not differences and done > 0 and has_files
    finished = same_run and previous.get("status") == "complete" and done == epochs
    if finished and previous.get("epochs_completed") == done:
        return _result(
            rows, started, n_train, run_dir, outputs, precision, done, previous
        )
    resume = same_run
    if done and not force and differences:
        warnings.warn(
            f"{run_dir} holds a run with other settings ({'; '.join(differences)}); "
            "starting over",
            stacklevel=2,
        )
        if verbose:
            print(f"srkit.train: starting over in {run_dir}: {'; '.join(differences)}")

    keras.utils.set_random_seed(seed)
    initial_weights = model.get_weights()
    train_model = prepare_model(model, loss, learning_rate, precision)
    steps_per_epoch = math.ceil(n_train / batch_size)
    resumed_from = 0
    if resume:
        resumed_from = _resume_state(train_model, run_dir, rows, steps_per_epoch)
        if resumed_from is None:  # untrustworthy checkpoint: fresh model and optimizer
            model.set_weights(initial_weights)
            train_model = prepare_model(model, loss, learning_rate, precision)
            resume, resumed_from = False, 0
        elif verbose:
            print(f"srkit.train: resuming {run_dir} after epoch {resumed_from}")
    monitor = "val_loss" if n_val else "loss"
    if not resume:
        rows = []
        _clear(run_dir)
    elif min(rows, key=lambda row: row[monitor])["epoch"] == rows[-1]["epoch"]:
        # The last epoch is the best: best.keras may have missed it if training
        # was interrupted between the two writes, so copy it again (cheap).
        _copy_file(run_dir / LAST_FILE, run_dir / BEST_FILE)

    settings.update(status="running", epochs_completed=resumed_from)
    settings["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_json(run_dir / SETTINGS_FILE, settings)

    recorder = _RunRecorder(run_dir, rows, monitor, learning_rate)
    built_in: list[keras.callbacks.Callback] = [recorder]
    gif_callback = None
    if gif and n_val:
        gif_callback = srkit_callbacks.SavePredictionCallback(
            split.val.x[:GIF_IMAGES], run_dir, every=gif_every
        )
        built_in.append(gif_callback)
    if plot_every and n_val:
        built_in.append(
            srkit_callbacks.PlotPredictionCallback(
                split.val.x[0], split.val.y2[0], every=plot_every, output_dir=run_dir
            )
        )
    validation = (split.val.x, _targets(split.val, outputs)) if n_val else None

    status = "interrupted"
    try:
        train_model.fit(
            split.train.x,
            _targets(split.train, outputs),
            batch_size=batch_size,
            epochs=epochs,
            initial_epoch=resumed_from,
            validation_data=validation,
            shuffle=True,
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
        _write_json(run_dir / SETTINGS_FILE, settings)

    return _result(
        rows, started, n_train, run_dir, outputs, precision, resumed_from, settings
    )
