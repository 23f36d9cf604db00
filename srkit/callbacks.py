"""Training callbacks: the animated prediction GIF and the periodic prediction figure.

This module owns what a reader sees of training besides the log lines:
:class:`SavePredictionCallback` predicts fixed validation images before training and
after every epoch and writes, per model output, an animated GIF (bicubic |
prediction | target, each frame labelled with the training steps and the PSNR) and
the same frames as one still strip (:func:`strip_path`) for print, and
:class:`PlotPredictionCallback` shows (in a notebook) or saves (elsewhere) a
bicubic / prediction / target figure every few epochs. Both write through
:func:`srkit.atomic.atomic_path`, so an interruption never leaves a half-written
file under its final name. The callback that checkpoints a run is
:class:`srkit.checkpoints.RunRecorder`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import keras
import numpy as np

from srkit import images, metrics
from srkit.atomic import atomic_path
from srkit.layout import gif_path
from srkit.vocab import FACTOR_OUTPUTS, OUTPUT_FACTORS, OUTPUT_NAMES

__all__ = [
    "PlotPredictionCallback",
    "SavePredictionCallback",
    "select_frames",
    "strip_path",
]

# GIF defaults. A frame shows one validation image as three tiles at their own
# pixels: bicubic | prediction | target. A tile is at most TILE_SIZE px square: the
# x2 output (144 px for a 72 px input) is whole, the x4 output (288 px) is cropped
# to its busiest 240 px square, so the three tiles (about 730 px) fit the book's
# column (about 750 px at a 1400 px window) without being shrunk. Only the
# prediction's tile and its label change between frames, which keeps a 30-frame
# GIF at a few hundred kB (GIF stores the changed region of each frame).
TILE_SIZE = 240
MAX_FRAMES = 30
FRAME_MS = 500  # display time of one frame
LAST_FRAME_MS = 2000  # the final state is held longer before the loop restarts
HEADER_PX = 40  # height of the two text lines above each tile
GAP_PX = 4  # dark gap between tiles
#: Predictions in the static strip (the first, the last and evenly spaced ones).
STRIP_FRAMES = 4
#: Tiles per row of the strip (it fits the book's column like a GIF frame).
STRIP_COLUMNS = 3
PLOT_DPI = 100
_BAND = (24, 24, 24)  # colour of the text bands and gaps
_FONT = cv2.FONT_HERSHEY_SIMPLEX


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


def _clean(images: np.ndarray) -> np.ndarray:
    # NaN (a diverged model) shows as black rather than crashing the GIF writer;
    # values are clipped to [0, 1] as the results tables clip them.
    clean = np.nan_to_num(np.asarray(images, dtype=np.float32), nan=0.0)
    return np.clip(clean, 0.0, 1.0)


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return np.round(_clean(images) * 255.0).astype(np.uint8)


def _psnr(target: np.ndarray, prediction: np.ndarray) -> float:
    """PSNR (dB, at most 100) of one clipped prediction against its target."""
    error = float(np.mean((_clean(prediction) - target) ** 2, dtype=np.float64))
    return float(min(100.0, 10.0 * np.log10(1.0 / max(error, 1e-10))))


def _crop_box(target: np.ndarray, size: int, factor: int) -> tuple[int, int, int]:
    """(top, left, side) of the square tile: the whole image or its busiest square.

    The side is at most ``size`` and the image's shorter side, a multiple of
    ``factor``; the square's corner is on a multiple of ``factor``, where the
    target's brightness varies most (the rule of ``srkit.plots.busiest_window``,
    which this floor of the package cannot import), so the tile shows detail.
    """
    height, width = target.shape[:2]
    side = min(size, height, width)
    side = max(side - side % factor, min(factor, height, width))
    if side == height == width:
        return 0, 0, side
    luma = target.mean(axis=-1, dtype=np.float64)
    sums, squares = cv2.integral2(luma, sdepth=cv2.CV_64F)[:2]

    def windows(table: np.ndarray) -> np.ndarray:
        return (
            table[side:, side:]
            - table[:-side, side:]
            - table[side:, :-side]
            + table[:-side, :-side]
        )

    area = float(side * side)
    mean = windows(sums) / area
    variance = (windows(squares) / area - mean * mean)[::factor, ::factor]
    top, left = np.unravel_index(int(np.argmax(variance)), variance.shape)
    return int(top) * factor, int(left) * factor, side


def _crop(image: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    top, left, side = box
    return image[top : top + side, left : left + side]


def _write_line(band: np.ndarray, text: str, baseline: int, scale: float) -> None:
    """Draw ``text`` on ``band`` at ``baseline``, shrunk until it fits its width."""
    room = band.shape[1] - 8
    while scale > 0.3:
        (width, _), _ = cv2.getTextSize(text, _FONT, scale, 1)
        if width <= room:
            break
        scale -= 0.02
    cv2.putText(
        band, text, (4, baseline), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA
    )


def _headed(tile: np.ndarray, lines: tuple[str, str]) -> np.ndarray:
    """A uint8 tile under a dark band with two lines of text (title, value)."""
    band = np.empty((HEADER_PX, tile.shape[1], 3), np.uint8)
    band[:] = _BAND
    _write_line(band, lines[0], 16, 0.5)
    if lines[1]:
        _write_line(band, lines[1], 34, 0.45)
    return np.concatenate([band, tile], axis=0)


def _side_by_side(parts: Sequence[np.ndarray], axis: int) -> np.ndarray:
    """Concatenate uint8 images along ``axis`` (1: a row, 0: a column) with gaps."""
    pieces = []
    for index, part in enumerate(parts):
        if index:
            shape = list(part.shape)
            shape[axis] = GAP_PX
            gap = np.empty(shape, np.uint8)
            gap[:] = _BAND
            pieces.append(gap)
        pieces.append(part)
    return np.concatenate(pieces, axis=axis)


def _grid(tiles: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Equal-sized uint8 tiles in rows of ``columns`` (the last row padded)."""
    blank = np.empty_like(tiles[0])
    blank[:] = _BAND
    rows = []
    for start in range(0, len(tiles), columns):
        row = list(tiles[start : start + columns])
        row += [blank] * (columns - len(row))
        rows.append(_side_by_side(row, axis=1))
    return _side_by_side(rows, axis=0)


def _write_gif(path: Path, frames: Sequence[np.ndarray], durations) -> None:
    """Write uint8 RGB ``frames`` as a looping GIF with one shared palette.

    One palette (from all frames, without dithering) maps a pixel that does not
    change to the same index in every frame, so the GIF stores only the region
    that changes (the prediction and its label) after the first frame.
    """
    from PIL import Image

    pictures = [Image.fromarray(frame, "RGB") for frame in frames]
    mosaic = Image.fromarray(np.concatenate(list(frames), axis=0), "RGB")
    palette = mosaic.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    indexed = [
        picture.quantize(palette=palette, dither=Image.Dither.NONE)
        for picture in pictures
    ]
    indexed[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=indexed[1:],
        duration=durations,
        loop=0,
        disposal=1,
    )


def _write_png(path: Path, picture: np.ndarray) -> None:
    """Write a uint8 RGB picture as a 256-colour PNG (the GIF's colours, a third
    of the bytes of a full-colour PNG of photographs)."""
    from PIL import Image

    image = Image.fromarray(picture, "RGB")
    indexed = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    indexed.save(path, format="PNG", optimize=True)


def strip_path(gif: str | os.PathLike) -> Path:
    """``strip_<output>.png`` beside ``gif_<output>.gif``: its frames as one still."""
    gif = Path(gif)
    return gif.with_name("strip_" + gif.stem.removeprefix("gif_") + ".png")


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
    """Record predictions of fixed validation images along training as GIFs.

    Before the first epoch of a ``fit`` call (the first frame of a fresh run is the
    untrained network) and after every ``every``-th epoch, the callback predicts
    ``images`` and keeps, for each model output named in ``targets``, the
    prediction's tile and its PSNR against the target. When training ends
    (``on_train_end``, or :meth:`write` called by :func:`srkit.train.fit` after an
    interruption or divergence) it writes, per output:

    - ``gif_<output>.gif``: one frame per recorded prediction, each image a row of
      three tiles at their own pixels, bicubic | prediction | target, each under a
      plain label ("bicubic", "x4 after 1,200 steps", "HR target") and the PSNR of
      the whole image (clipped to [0, 1], as in the results tables) against the
      target. It loops forever, shows each frame for ``FRAME_MS`` and holds the last
      one for ``LAST_FRAME_MS``;
    - ``strip_<output>.png`` (:func:`strip_path`): the first image's predictions at
      ``STRIP_FRAMES`` moments (the first, the last and evenly spaced ones), then
      its bicubic and target tiles, in rows of ``STRIP_COLUMNS``: the GIF on paper.

    A tile is the whole output when it is at most ``size`` px square, else the
    ``size`` px square of the target where brightness varies most. At most
    ``max_frames`` frames are written (the first, the last and evenly spaced ones
    in between); in memory at most ``3 * max_frames`` are kept per output. The
    frames live in memory only, so a resumed run's GIF starts at the step it
    resumed from.

    Args:
        images: float32 (n, h, w, 3) RGB in [0, 1], the inputs to predict (one row
            of tiles each; :func:`srkit.train.fit` passes the first validation
            image).
        output_dir: folder of the GIFs (created when writing).
        targets: output name -> float32 (n, f*h, f*w, 3) targets of ``images`` at
            that output's factor f (``y2`` for ``low_upsample``, ``y4`` for
            ``high_upsample``).
        names: output names to record; outputs the model lacks are ignored.
        every: record a frame after every ``every``-th epoch (and after the final
            one); None records every epoch and thins at the end.
        max_frames: the most frames in one GIF (>= 2).
        size: the largest side of one tile in px (>= 8).
        steps_per_epoch: when set, frames are labelled with optimizer steps
            ("x4 after 1,200 steps", steps = epochs x this) instead of epochs; for
            :func:`srkit.train.fit`, whose Keras epochs are evaluation intervals.

    Attributes:
        paths: ``{output name: Path}`` of the GIFs written so far.
        strip_paths: ``{output name: Path}`` of the strips written so far.
        frame_epochs: ``{output name: [epoch, ...]}`` of the frames held.

    Raises:
        ValueError: bad ``images`` or ``targets`` shapes, an output of ``targets``
            that is not ``low_upsample`` or ``high_upsample``, ``every`` < 1,
            ``max_frames`` < 2 or ``size`` < 8.
    """

    def __init__(
        self,
        images,
        output_dir: str | os.PathLike,
        targets: Mapping[str, np.ndarray],
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
        self.targets = self._check_targets(targets)
        self.every = every
        self.max_frames = max_frames
        self.size = size
        self.paths: dict[str, Path] = {}
        self.strip_paths: dict[str, Path] = {}
        # per output: the crop boxes, and the (label, value, uint8 tile) of the
        # bicubic and target columns of each image
        self._fixed: dict[str, tuple[list, list, list]] = {}
        # per output: (epoch, uint8 tiles (n, side, side, 3), PSNR per image)
        self._frames: dict[str, list[tuple[int, np.ndarray, list[float]]]] = {}
        self._written = True  # nothing to write before training starts

    def _check_targets(self, targets) -> dict[str, np.ndarray]:
        if not isinstance(targets, Mapping) or not targets:
            raise ValueError(
                "targets must map output names (low_upsample, high_upsample) to "
                f"their target images, got {type(targets).__name__}"
            )
        checked = {}
        count, height, width = self.images.shape[:3]
        for name, value in targets.items():
            if name not in OUTPUT_FACTORS:
                raise ValueError(
                    f"targets has an output {name!r}; use {sorted(OUTPUT_FACTORS)}"
                )
            factor = OUTPUT_FACTORS[name]
            array = _check_images(value, f"targets[{name!r}]", 4)
            expected = (count, factor * height, factor * width, 3)
            if array.shape != expected:
                raise ValueError(
                    f"targets[{name!r}] has shape {array.shape}; {count} images of "
                    f"{height}x{width} at x{factor} need {expected}"
                )
            checked[name] = array
        return checked

    @property
    def frame_epochs(self) -> dict[str, list[int]]:
        return {
            name: [epoch for epoch, _, _ in kept] for name, kept in self._frames.items()
        }

    def on_train_begin(self, logs=None):
        recorded = [
            name
            for name in self.model.output_names
            if name in self.names and name in self.targets
        ]
        self._frames = {name: [] for name in recorded}
        for name in recorded:
            if name not in self._fixed:
                self._fixed[name] = self._fixed_columns(name)
        self._written = False

    def _fixed_columns(self, name: str) -> tuple[list, list, list]:
        """Crop boxes, bicubic and target tiles of output ``name``, per image."""
        factor = OUTPUT_FACTORS[name]
        boxes, bicubic_tiles, target_tiles = [], [], []
        for image, target in zip(self.images, self.targets[name], strict=True):
            box = _crop_box(target, self.size, factor)
            bicubic = _clean(images.bicubic_upscale(image, factor))
            boxes.append(box)
            bicubic_tiles.append(
                (
                    f"bicubic x{factor}",
                    f"PSNR {_psnr(target, bicubic):.2f} dB",
                    _to_uint8(_crop(bicubic, box)),
                )
            )
            target_tiles.append(
                ("HR target", "the truth", _to_uint8(_crop(target, box)))
            )
        return boxes, bicubic_tiles, target_tiles

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
            boxes = self._fixed[name][0]
            predicted = predictions[name]
            tiles = np.stack(
                [
                    _to_uint8(_crop(p, box))
                    for p, box in zip(predicted, boxes, strict=True)
                ]
            )
            scores = [
                _psnr(t, p) for t, p in zip(self.targets[name], predicted, strict=True)
            ]
            kept.append((epoch, tiles, scores))
            if len(kept) >= 3 * self.max_frames:  # bound memory on long runs
                held = select_frames(len(kept), 2 * self.max_frames)
                kept[:] = [kept[i] for i in held]

    def when(self, name: str, epoch: int) -> str:
        """A prediction's label: "x4 after 1,200 steps", "x2 before training"."""
        scale = f"x{OUTPUT_FACTORS[name]}"
        count = epoch if self.steps_per_epoch is None else epoch * self.steps_per_epoch
        if count == 0:
            return f"{scale} before training"
        unit = "epoch" if self.steps_per_epoch is None else "step"
        return f"{scale} after {count:,} {unit}{'' if count == 1 else 's'}"

    def _frame(self, name: str, epoch: int, tiles, scores) -> np.ndarray:
        _, bicubic, target = self._fixed[name]
        rows = []
        for index, (tile, score) in enumerate(zip(tiles, scores, strict=True)):
            columns = [
                _headed(bicubic[index][2], bicubic[index][:2]),
                _headed(tile, (self.when(name, epoch), f"PSNR {score:.2f} dB")),
                _headed(target[index][2], target[index][:2]),
            ]
            rows.append(_side_by_side(columns, axis=1))
        return _side_by_side(rows, axis=0)

    def _strip(self, name: str, chosen) -> np.ndarray:
        _, bicubic, target = self._fixed[name]
        shown = [chosen[i] for i in select_frames(len(chosen), STRIP_FRAMES)]
        tiles = [
            _headed(crops[0], (self.when(name, epoch), f"PSNR {scores[0]:.2f} dB"))
            for epoch, crops, scores in shown
        ]
        tiles += [_headed(bicubic[0][2], bicubic[0][:2])]
        tiles += [_headed(target[0][2], target[0][:2])]
        return _grid(tiles, min(STRIP_COLUMNS, len(tiles)))

    def write(self) -> dict[str, Path]:
        """Write the GIFs and strips of the frames recorded so far (once per run).

        Returns:
            ``{output name: Path}`` of the GIFs written (outputs with at least one
            frame); also stored in :attr:`paths` (the strips in
            :attr:`strip_paths`).
        """
        if self._written:
            return dict(self.paths)
        self._written = True
        for name, kept in self._frames.items():
            if not kept:
                continue
            chosen = [kept[i] for i in select_frames(len(kept), self.max_frames)]
            frames = [self._frame(name, *frame) for frame in chosen]
            durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
            if len(frames) == 1:  # imageio wants a scalar duration for one frame
                durations = LAST_FRAME_MS
            path = gif_path(self.output_dir, name)
            with atomic_path(path) as temporary:
                _write_gif(temporary, frames, durations)
            strip = strip_path(path)
            with atomic_path(strip) as temporary:
                _write_png(temporary, self._strip(name, chosen))
            self.paths[name] = path
            self.strip_paths[name] = strip
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
