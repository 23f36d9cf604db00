"""A training run's checkpoints: what fit keeps in a model folder and finds again.

This module owns the files that :func:`srkit.train.fit` writes at the end of every
evaluation interval and reads back when it is called again on the same folder:

- :class:`RunRecorder`, the first callback of a run, guards against divergence
  (:class:`TrainingDiverged`) and writes ``history.csv``, ``last.keras`` (weights
  and optimizer state) and ``best.keras`` (the lowest monitored loss);
- :func:`plan` decides from the folder whether a call skips a finished run,
  resumes a stopped one (:func:`resume_state`, :func:`kept_rows`) or starts over,
  and refuses checkpoints whose history is missing (:func:`read_history`).

What ``settings.json`` holds, and so which runs match, is :mod:`srkit.train`'s;
the file names are :mod:`srkit.layout`'s.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from srkit.atomic import TMP_MARKER, atomic_path
from srkit.layout import (
    BEST_FILE,
    HISTORY_FILE,
    LAST_FILE,
    SETTINGS_FILE,
    gif_path,
    model_files,
)

# The original study had to lower the learning rate to this value on 5,000 images.
SAFE_LEARNING_RATE = 1e-4


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; training stopped at that interval.

    :class:`RunRecorder` checks the interval's logs at its end: a non-finite loss
    at any step makes the interval's mean loss non-finite too.

    Attributes:
        epoch: 1-based interval in which the loss stopped being finite.
        batch: 1-based step of that interval where known, else None (the check at
            the interval's end cannot tell the step).
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


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``history.csv`` written by :func:`srkit.train.fit`.

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


class RunRecorder(keras.callbacks.Callback):
    """Divergence guard, per-epoch checkpoints, history rows and epoch timing.

    It must run before any callback that may interrupt training at an epoch's end,
    so that a finished epoch is saved first. It does its work at an epoch's
    beginning and end only: a hook after every batch would make Keras wait for
    each step to finish (to hand it the step's loss as a number) and turn off its
    asynchronous dispatch, so the next batch could not be prepared while a step
    runs. The divergence check therefore reads the epoch's logs, whose mean loss
    is not finite when any step's was. Order of writes per epoch: history,
    then ``last.keras``, then ``best.keras``; :func:`resume_state` reconciles the
    history with the optimizer step count in ``last.keras`` when resuming.

    Args:
        run_dir: the model's run folder.
        rows: the history rows so far (appended to in place, one per epoch).
        monitor: the log key whose lowest value picks ``best.keras``.
        learning_rate: the initial rate, for the advice of a divergence.

    Raises:
        TrainingDiverged: at the end of the first epoch with a non-finite loss or
            log, before anything of that epoch is written.
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
            # On JAX the steps run asynchronously and may still be running: the
            # step counter, an output of the last step, is there when it is done.
            keras.ops.convert_to_numpy(self.model.optimizer.iterations)
            self._train_time = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        # The training loss first: it names the divergence, the other logs follow.
        for key in sorted(logs, key=lambda key: key != "loss"):
            if not _finite(logs[key]):
                name = "the training loss" if key == "loss" else key
                raise self._diverged(None, name, float(logs[key]))
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


def _differences(previous: dict | None, stored: dict, keys) -> list[str]:
    if previous is None:
        return ["no readable settings.json"]
    return [
        f"{key}: {previous.get(key)!r} -> {stored[key]!r}"
        for key in keys
        if previous.get(key) != stored[key]
    ]


def _clear(run_dir: Path) -> None:
    """Remove a previous run's artifacts (and stray temporary files)."""
    doomed = list(model_files(run_dir).values())
    doomed += list(run_dir.glob("gif_*.gif")) + list(run_dir.glob("strip_*.png"))
    doomed += list(run_dir.glob("plot_epoch_*.png"))
    for path in doomed:
        path.unlink(missing_ok=True)


def sweep_temporaries(run_dir: Path) -> None:
    """Delete the temporary files an interrupted atomic write left in ``run_dir``."""
    for path in run_dir.glob(f".*{TMP_MARKER}*"):
        path.unlink(missing_ok=True)


def artifact_paths(run_dir: Path, outputs: Sequence[str]) -> dict[str, Path]:
    """The files a run left in its folder, by name.

    Args:
        run_dir: the model's run folder.
        outputs: the model's output names (one GIF each).

    Returns:
        ``best_model``, ``last_model``, ``history``, ``settings``,
        ``gif_<output>`` and ``plot_epoch_NNN`` -> path, for the files that exist.
    """
    paths = model_files(run_dir)
    for name in outputs:
        gif = gif_path(run_dir, name)
        if gif.exists():
            paths[f"gif_{name}"] = gif
    paths.update({path.stem: path for path in sorted(run_dir.glob("plot_epoch_*.png"))})
    return {name: path for name, path in paths.items() if path.exists()}


def resume_state(train_model, run_dir: Path, rows: list[dict], steps_per_epoch: int):
    """Load ``last.keras`` into ``train_model``; return the epochs it holds or None.

    The optimizer's step counter tells how many epochs the checkpoint holds; history
    rows beyond it (an interruption between the two writes) are dropped from
    ``rows``. None means the checkpoint cannot be trusted (unreadable, partial
    epoch, rows missing); a warning then says why.

    Args:
        train_model: the compiled model about to be trained.
        run_dir: the model's run folder.
        rows: the history rows found there (shortened in place).
        steps_per_epoch: optimizer steps per evaluation interval.

    Returns:
        The number of completed epochs (intervals) to continue after, or None.
    """
    train_model.optimizer.build(train_model.trainable_variables)
    try:
        train_model.load_weights(run_dir / LAST_FILE)
    except Exception as error:  # noqa: BLE001  (any load failure means: start over)
        warnings.warn(
            f"cannot resume from {run_dir / LAST_FILE}: {error}", stacklevel=4
        )
        return None
    steps = int(keras.ops.convert_to_numpy(train_model.optimizer.iterations))
    epochs, remainder = divmod(steps, steps_per_epoch)
    if remainder or epochs == 0 or epochs > len(rows):
        warnings.warn(
            f"cannot resume from {run_dir}: last.keras holds {steps} optimizer steps "
            f"({steps_per_epoch} per epoch) but history.csv has {len(rows)} epochs",
            stacklevel=4,
        )
        return None
    del rows[epochs:]
    return epochs


@dataclass
class Plan:
    """What :func:`srkit.train.fit` does with a model folder, and what is there.

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


def plan(
    run_dir: Path, stored: dict, keys: Sequence[str], intervals: int, force: bool
) -> Plan:
    """Decide to skip, resume or start fresh from what the model folder holds.

    Args:
        run_dir: the model's run folder.
        stored: the ``settings.json`` content of the run about to start.
        keys: the ``settings.json`` keys that must equal the previous run's for
            it to be the same run (``srkit.train.MATCH_KEYS``).
        intervals: the evaluation intervals of the whole run.
        force: start fresh whatever the folder holds.

    Returns:
        The :class:`Plan`.

    Raises:
        ValueError: checkpoints beside a missing or unreadable history (unless
            ``force``): they could be neither resumed nor explained.
    """
    previous = _read_json(run_dir / SETTINGS_FILE)
    if not force:
        _check_history(run_dir)
    rows = read_history(run_dir / HISTORY_FILE).to_dict("records")
    done = len(rows)
    differences = _differences(previous, stored, keys)
    has_files = (run_dir / LAST_FILE).exists() and (run_dir / BEST_FILE).exists()
    same_run = not force and not differences and done > 0 and has_files
    finished = same_run and previous.get("status") == "complete" and done == intervals
    if finished and previous.get("epochs_completed") == done:
        return Plan("skip", rows, previous)
    if same_run:
        return Plan("resume", rows, previous)
    changed = differences if done and not force else []
    return Plan("fresh", rows, previous, changed)


def kept_rows(
    run_dir: Path, rows: list[dict], resumed_from: int, monitor: str
) -> list[dict]:
    """The history a run continues: a resumed run's rows, or none after clearing.

    Args:
        run_dir: the model's run folder.
        rows: the history rows found there.
        resumed_from: completed intervals resumed (0: a fresh start, which
            deletes the previous run's artifacts).
        monitor: the history column whose lowest value marks the best interval.

    Returns:
        ``rows`` when resuming, else a new empty list.
    """
    if not resumed_from:
        _clear(run_dir)
        return []
    if min(rows, key=lambda row: row[monitor])["epoch"] == rows[-1]["epoch"]:
        # The last interval is the best: best.keras may have missed it if training
        # was interrupted between the two writes, so copy it again (cheap).
        _copy_file(run_dir / LAST_FILE, run_dir / BEST_FILE)
    return rows
