"""Training callbacks: the animated prediction GIF and the periodic prediction figure.

This module owns what a reader sees of training besides the log lines:
:class:`SavePredictionCallback` predicts a fixed handful of validation images before
training and after every epoch and writes one animated GIF per model output, and
:class:`PlotPredictionCallback` shows (in a notebook) or saves (elsewhere) a
bicubic / prediction / target figure every few epochs. Both write through
:func:`srkit.atomic.atomic_path`, so an interruption never leaves a half-written
file under its final name. The callback that checkpoints a run is
:class:`srkit.checkpoints.RunRecorder`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import imageio.v3 as iio
import keras
import numpy as np

from srkit import images, metrics
from srkit.atomic import atomic_path
from srkit.layout import gif_path
from srkit.vocab import FACTOR_OUTPUTS, OUTPUT_NAMES

__all__ = [
    "PlotPredictionCallback",
    "SavePredictionCallback",
    "select_frames",
]

# GIF defaults. A 144 px tile is the x2 prediction at full size; the x4 prediction
# (288 px) is shrunk to it for the GIF only, which keeps a 30-frame GIF of three
# photo tiles at about 1-2 MB (LZW compresses photographic content poorly).
TILE_SIZE = 144
MAX_FRAMES = 30
FRAME_MS = 500  # display time of one frame
LAST_FRAME_MS = 2000  # the final state is held longer before the loop restarts
HEADER_PX = 18  # height of the text band carrying "epoch N"
GAP_PX = 2  # dark gap between tiles
PLOT_DPI = 100


def _check_images(images, what: str, ndim: int) -> np.ndarray:
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != ndim or array.shape[-1] != 3 or 0 in array.shape:
        shape = "(n, h, w, 3)" if ndim == 4 else "(h, w, 3)"
        raise ValueError(
            f"{what} must be a float array {shape}, got shape {array.shape}"
        )
    return array


def _outputs_by_name(model: keras.Model, predictions) -> dict[str, np.ndarray]:
    """Map a ``predict_on_batch`` result (array, list or dict) to output names."""
    if isinstance(predictions, dict):
        return {name: np.asarray(value) for name, value in predictions.items()}
    if isinstance(predictions, list | tuple):
        return {
            name: np.asarray(value)
            for name, value in zip(model.output_names, predictions, strict=True)
        }
    return {model.output_names[0]: np.asarray(predictions)}


def _to_uint8(images: np.ndarray) -> np.ndarray:
    # NaN (a diverged model) shows as black rather than crashing the GIF writer.
    clean = np.nan_to_num(np.asarray(images, dtype=np.float32), nan=0.0)
    return np.round(np.clip(clean, 0.0, 1.0) * 255.0).astype(np.uint8)


def _tile_row(images: np.ndarray, size: int) -> np.ndarray:
    """(n, h, w, 3) float -> one uint8 row of n tiles, each at most ``size`` px."""
    tiles = []
    for image in _to_uint8(images):
        height, width = image.shape[:2]
        scale = min(1.0, size / max(height, width))
        if scale < 1.0:
            shape = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, shape, interpolation=cv2.INTER_AREA)
        tiles.append(image)
    height = max(tile.shape[0] for tile in tiles)
    gap = np.zeros((height, GAP_PX, 3), np.uint8)
    parts = []
    for index, tile in enumerate(tiles):
        if index:
            parts.append(gap)
        pad = height - tile.shape[0]
        parts.append(np.pad(tile, ((0, pad), (0, 0), (0, 0))))
    return np.concatenate(parts, axis=1)


def _label(row: np.ndarray, text: str) -> np.ndarray:
    """Put a black band with white ``text`` above a uint8 image row."""
    band = np.zeros((HEADER_PX, row.shape[1], 3), np.uint8)
    cv2.putText(
        band,
        text,
        (4, HEADER_PX - 5),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return np.concatenate([band, row], axis=0)


def select_frames(count: int, max_frames: int) -> list[int]:
    """Indices of at most ``max_frames`` of ``count`` frames, evenly spaced.

    Args:
        count: number of frames available (>= 0).
        max_frames: the most frames to keep (>= 2).

    Returns:
        Increasing indices: all of them when ``count <= max_frames``, else exactly
        ``max_frames`` with the first (0) and the last (``count - 1``) always kept
        and the others every k-th or (k+1)-th in between.
    """
    if count <= max_frames:
        return list(range(count))
    return [int(i) for i in np.linspace(0, count - 1, max_frames).round()]


class SavePredictionCallback(keras.callbacks.Callback):
    """Record predictions of a few fixed images during training as animated GIFs.

    Before the first epoch of a ``fit`` call (the "epoch 0" frame of a fresh run)
    and after every ``every``-th epoch, the callback predicts ``images`` and keeps,
    for each model output named in ``names``, one small uint8 frame in memory: the
    predictions side by side under a band reading ``"<output>  epoch N"``. When
    training ends (``on_train_end``, or :meth:`write` called by
    :func:`srkit.train.fit` after an interruption or divergence) it writes one GIF
    per output, ``gif_<output>.gif``, that loops forever, shows each frame for
    ``FRAME_MS`` and holds the last one for ``LAST_FRAME_MS``.

    Frames stay small: each tile is shrunk to at most ``size`` px, and at most
    ``max_frames`` frames are written (the first, the last and evenly spaced ones
    in between); in memory at most ``3 * max_frames`` are kept per output. The
    frames live in memory only, so a resumed run's GIF starts at the epoch it
    resumed from (its first frame is labelled with that epoch).

    Args:
        images: float32 (n, h, w, 3) RGB in [0, 1], the inputs to predict
            (typically the first three 72x72 validation images).
        output_dir: folder of the GIFs (created when writing).
        names: output names to record; outputs the model lacks are ignored.
        every: record a frame after every ``every``-th epoch (and after the final
            one); None records every epoch and thins at the end.
        max_frames: the most frames in one GIF (>= 2).
        size: the largest side of one tile in px (the x4 prediction, 288 px for a
            72 px input, is shrunk to it).
        steps_per_epoch: when set, frames are labelled with optimizer steps
            (``"step N"``, N = epochs x this) instead of ``"epoch N"``; for
            :func:`srkit.train.fit`, whose Keras epochs are evaluation intervals.

    Attributes:
        paths: ``{output name: Path}`` of the GIFs written so far.
        frame_epochs: ``{output name: [epoch, ...]}`` of the frames held.

    Raises:
        ValueError: bad ``images`` shape, ``every`` < 1 or ``max_frames`` < 2.
    """

    def __init__(
        self,
        images,
        output_dir: str | os.PathLike,
        names: Sequence[str] = OUTPUT_NAMES,
        every: int | None = None,
        max_frames: int = MAX_FRAMES,
        size: int = TILE_SIZE,
        steps_per_epoch: int | None = None,
    ):
        super().__init__()
        self.images = _check_images(images, "images", 4)
        self.steps_per_epoch = steps_per_epoch
        self.output_dir = Path(output_dir)
        self.names = tuple(names)
        if every is not None and (not isinstance(every, int) or every < 1):
            raise ValueError(f"every must be None or an integer >= 1, got {every!r}")
        if not isinstance(max_frames, int) or max_frames < 2:
            raise ValueError(f"max_frames must be an integer >= 2, got {max_frames!r}")
        if not isinstance(size, int) or size < 8:
            raise ValueError(f"size must be an integer >= 8 (px), got {size!r}")
        self.every = every
        self.max_frames = max_frames
        self.size = size
        self.paths: dict[str, Path] = {}
        self._frames: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._written = True  # nothing to write before training starts

    @property
    def frame_epochs(self) -> dict[str, list[int]]:
        return {
            name: [epoch for epoch, _ in kept] for name, kept in self._frames.items()
        }

    def on_train_begin(self, logs=None):
        self._frames = {
            name: [] for name in self.model.output_names if name in self.names
        }
        self._written = False

    def on_epoch_begin(self, epoch, logs=None):
        # The "before training" frame. Taken here rather than in on_train_begin
        # because only epoch hooks know the epoch number a resumed fit starts at.
        if any(not kept for kept in self._frames.values()):
            self._record(epoch)

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        final = done == self.params.get("epochs") if self.params else False
        if self.every is None or done % self.every == 0 or final:
            self._record(done)

    def on_train_end(self, logs=None):
        self.write()

    def _record(self, epoch: int) -> None:
        if not self._frames:
            return
        predictions = _outputs_by_name(
            self.model, self.model.predict_on_batch(self.images)
        )
        for name, kept in self._frames.items():
            kept.append((epoch, _tile_row(predictions[name], self.size)))
            if len(kept) >= 3 * self.max_frames:  # bound memory on long runs
                held = select_frames(len(kept), 2 * self.max_frames)
                kept[:] = [kept[i] for i in held]

    def _when(self, epoch: int) -> str:
        if self.steps_per_epoch is None:
            return f"epoch {epoch}"
        return f"step {epoch * self.steps_per_epoch}"

    def write(self) -> dict[str, Path]:
        """Write the GIFs of the frames recorded so far (once per training run).

        Returns:
            ``{output name: Path}`` of the GIFs written (outputs with at least one
            frame); also stored in :attr:`paths`.
        """
        if self._written:
            return dict(self.paths)
        self._written = True
        for name, kept in self._frames.items():
            if not kept:
                continue
            chosen = [kept[i] for i in select_frames(len(kept), self.max_frames)]
            frames = [
                _label(row, f"{name}  {self._when(epoch)}") for epoch, row in chosen
            ]
            durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
            if len(frames) == 1:  # imageio wants a scalar duration for one frame
                durations = LAST_FRAME_MS
            path = gif_path(self.output_dir, name)
            with atomic_path(path) as temporary:
                iio.imwrite(
                    temporary,
                    np.stack(frames),
                    extension=".gif",
                    duration=durations,
                    loop=0,
                )
            self.paths[name] = path
        return dict(self.paths)


def _in_notebook() -> bool:
    """True inside a Jupyter/IPython kernel (where rich display works)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class PlotPredictionCallback(keras.callbacks.Callback):
    """Every ``every`` epochs, show bicubic upscaling, the prediction and the target.

    Inside a Jupyter kernel the figure is displayed inline through one display
    handle that each new figure replaces (``update``), so an executed notebook holds
    a single, final figure; elsewhere it is saved as ``plot_epoch_NNN.png`` in
    ``output_dir``. The final epoch is always shown. Figures are drawn with
    matplotlib's object interface (Agg), never registered with pyplot, and dropped
    after rendering.

    Args:
        image: float32 (h, w, 3) RGB in [0, 1], one network input.
        target: float32 (f*h, f*w, 3) its ground truth at factor f = 2 or 4; the
            output drawn is ``low_upsample`` for f = 2 and ``high_upsample`` for 4.
        every: show after every ``every``-th epoch (>= 1).
        output_dir: folder of the PNG files when not in a notebook.
        display: True/False forces inline display on/off; None detects a kernel.

    Attributes:
        paths: PNG files written.

    Raises:
        ValueError: bad shapes, a factor other than 2 or 4, ``every`` < 1, or no
            ``output_dir`` while not in a notebook; at train begin, a model
            without the needed output.
    """

    def __init__(
        self,
        image,
        target,
        every: int = 5,
        output_dir: str | os.PathLike | None = None,
        display: bool | None = None,
    ):
        super().__init__()
        self.image = _check_images(image, "image", 3)
        self.target = _check_images(target, "target", 3)
        factor = self.target.shape[0] // self.image.shape[0]
        expected = (self.image.shape[0] * factor, self.image.shape[1] * factor, 3)
        if factor not in FACTOR_OUTPUTS or self.target.shape != expected:
            raise ValueError(
                f"target shape {self.target.shape} must be image shape "
                f"{self.image.shape} times 2 or 4"
            )
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        self.every = every
        self.factor = factor
        self.output = FACTOR_OUTPUTS[factor]
        self.display = _in_notebook() if display is None else bool(display)
        if not self.display and output_dir is None:
            raise ValueError("output_dir is required when not running in a notebook")
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.paths: list[Path] = []
        self._handle = None
        self._bicubic = None
        self._last_epoch = None
        self._shown_epoch = None

    def on_train_begin(self, logs=None):
        if self.output not in self.model.output_names:
            raise ValueError(
                f"PlotPredictionCallback needs output {self.output!r} for a x"
                f"{self.factor} target; the model has {list(self.model.output_names)}"
            )
        if self._bicubic is None:
            self._bicubic = np.clip(
                images.bicubic_upscale(self.image, self.factor), 0.0, 1.0
            )

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch + 1
        if self._last_epoch % self.every == 0:
            self.show(self._last_epoch)

    def on_train_end(self, logs=None):
        if self._last_epoch is not None and self._shown_epoch != self._last_epoch:
            self.show(self._last_epoch)

    def _figure_png(self, epoch: int) -> bytes:
        from matplotlib.figure import Figure

        batch = self.image[np.newaxis]
        prediction = _outputs_by_name(self.model, self.model.predict_on_batch(batch))
        predicted = np.clip(np.nan_to_num(prediction[self.output][0]), 0.0, 1.0)
        scores = metrics.image_metrics(
            np.stack([self.target, self.target]), np.stack([self._bicubic, predicted])
        )["psnr"].to_numpy()
        panels = (
            (self._bicubic, f"bicubic ({scores[0]:.2f} dB)"),
            (predicted, f"{self.output}, epoch {epoch} ({scores[1]:.2f} dB)"),
            (self.target, "target"),
        )
        figure = Figure(figsize=(9.0, 3.4), dpi=PLOT_DPI)
        for axis, (picture, title) in zip(figure.subplots(1, 3), panels, strict=True):
            axis.imshow(picture, interpolation="nearest")
            axis.set_title(title, fontsize=9)
            axis.set_axis_off()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=PLOT_DPI)
        figure.clear()
        return buffer.getvalue()

    def show(self, epoch: int) -> None:
        """Draw the figure for ``epoch`` and display or save it.

        Args:
            epoch: completed epochs (1-based), used in the title and file name.
        """
        png = self._figure_png(epoch)
        self._shown_epoch = epoch
        if self.display:
            from IPython.display import Image, display

            if self._handle is None:
                self._handle = display(Image(data=png), display_id=True)
            else:
                self._handle.update(Image(data=png))
            return
        path = self.output_dir / f"plot_epoch_{epoch:03d}.png"
        with atomic_path(path) as temporary:
            temporary.write_bytes(png)
        self.paths.append(path)
