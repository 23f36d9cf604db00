"""Training windows: the triplets a model trains on and the sources that draw them.

This module owns what one training or validation step sees: aligned triplets of a
72 px input, its 144 px x2 target and its 288 px x4 target (:class:`Subset`), made
from 288 px windows by MATLAB-style bicubic downscaling rounded to 8 bits
(:func:`triplets`), and the two training sources that draw batches of them:
:class:`PatchSource` (random windows of whole images, flipped and rotated, fresh at
every draw) and :class:`WindowSource` (fixed windows kept as uint8). Smaller
training windows are aligned crops of the same triplets (:func:`crop_triplets`).
Where the images come from, and how they are split and cached, is
:mod:`srkit.data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from srkit import images
from srkit.vocab import HIGH_SIZE, LOW_SIZE, MID_SIZE

FACTOR_X2 = MID_SIZE // LOW_SIZE
FACTOR_X4 = HIGH_SIZE // LOW_SIZE
# Smallest training window (input side in pixels): below it the 3x3 convolutions
# and the bicubic skip see mostly padding.
MIN_WINDOW = 8
# A drawn training window whose 8-bit pixels vary by less than this standard
# deviation (a flat colour, such as the black corners of a retina photograph) is drawn
# again, up to FLAT_TRIES times: bicubic interpolation reproduces it almost exactly,
# and a PSNR loss, unbounded as the error goes to 0, lets it outweigh its batch.
FLAT_STD = 2.0
FLAT_TRIES = 8


@dataclass
class Subset:
    """One side of a split: aligned input/target triplets and their names.

    Attributes:
        x: float32 (n, 72, 72, 3) network inputs, RGB in [0, 1].
        y2: float32 (n, 144, 144, 3) x2 targets.
        y4: float32 (n, 288, 288, 3) x4 targets (the high-resolution crops).
        names: n names, e.g. ``astronaut_003`` (photo and crop number) or a file stem.
    """

    x: np.ndarray
    y2: np.ndarray
    y4: np.ndarray
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def triplets(high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 72 px input and 144 px x2 target of 288 px windows, as 8-bit values.

    Both come from the window by :func:`srkit.images.downscale` (MATLAB bicubic with
    antialiasing) and are rounded by :func:`srkit.images.to_8bit`.

    Args:
        high: float32 (n, 288, 288, 3), RGB in [0, 1].

    Returns:
        ``(x, y2)``: float32 (n, 72, 72, 3) and (n, 144, 144, 3).
    """
    x = images.to_8bit(images.downscale(high, HIGH_SIZE // LOW_SIZE))
    y2 = images.to_8bit(images.downscale(high, HIGH_SIZE // MID_SIZE))
    return x, y2


def check_window(window) -> int:
    """Check a training window size (the input side in pixels); return it as int.

    Raises:
        ValueError: unless ``window`` is an integer from ``MIN_WINDOW`` to 72 (the
            validation windows' input side; the targets are 2 and 4 times as wide).
    """
    if (
        isinstance(window, bool)
        or not isinstance(window, int | np.integer)
        or not MIN_WINDOW <= window <= LOW_SIZE
    ):
        raise ValueError(
            f"window must be an integer from {MIN_WINDOW} to {LOW_SIZE} (input "
            f"pixels of a training window), got {window!r}"
        )
    return int(window)


def crop_triplets(x, y2, y4, window: int, rng: np.random.Generator) -> tuple:
    """Random aligned crops of triplets: ``window`` px of each input, the same
    region of its targets.

    Args:
        x: (n, h, w, 3) inputs; y2: (n, 2h, 2w, 3); y4: (n, 4h, 4w, 3).
        window: input side of the crops in pixels (at most h and w).
        rng: NumPy generator; the same state gives the same crops.

    Returns:
        ``(x, y2, y4)`` with sides ``window``, ``2 window`` and ``4 window``.
    """
    height, width = x.shape[1:3]
    tops = rng.integers(0, height - window + 1, size=len(x))
    lefts = rng.integers(0, width - window + 1, size=len(x))
    crops = []
    for array, factor in ((x, 1), (y2, FACTOR_X2), (y4, FACTOR_X4)):
        side = window * factor
        crops.append(
            np.stack(
                [
                    image[top * factor :][:side, left * factor :][:, :side]
                    for image, top, left in zip(array, tops, lefts, strict=True)
                ]
            )
        )
    return tuple(crops)


def _check_count(count) -> None:
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise ValueError(f"count must be an integer >= 1, got {count!r}")


class PatchSource:
    """A training source: whole images kept as uint8, drawn as random windows.

    Every call of :meth:`draw` picks, for each window, a random image, a random
    288 px window inside it, a random horizontal flip and a random rotation by a
    multiple of 90 degrees; the x2 target and the input follow by :func:`triplets`.
    Only the drawn batch exists as float32, so memory stays bounded by the uint8
    images. The same generator state gives the same batch.

    Attributes:
        images: uint8 (h, w, 3) RGB arrays, each at least 288 px on both sides.
        names: one name per image (file path relative to the source, or photo stem).
    """

    def __init__(self, images: list[np.ndarray], names: list[str]):
        if len(images) != len(names):
            raise ValueError(f"{len(images)} images but {len(names)} names")
        for image, name in zip(images, names, strict=True):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(
                    f"image {name!r} must be uint8 (h, w, 3), got {image.dtype} "
                    f"{image.shape}"
                )
            if min(image.shape[:2]) < HIGH_SIZE:
                raise ValueError(
                    f"image {name!r} of {image.shape[1]}x{image.shape[0]} is smaller "
                    f"than one {HIGH_SIZE} px window"
                )
        self.images = list(images)
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.names)

    def window(self, rng: np.random.Generator, size: int = HIGH_SIZE) -> np.ndarray:
        """One random ``size`` px uint8 window with a random flip and rotation.

        A flat window (8-bit standard deviation under :data:`FLAT_STD`) is drawn
        again, at most :data:`FLAT_TRIES` times in all.
        """
        for _ in range(FLAT_TRIES):
            image = self.images[int(rng.integers(len(self.images)))]
            height, width = image.shape[:2]
            top = int(rng.integers(0, height - size + 1))
            left = int(rng.integers(0, width - size + 1))
            window = image[top : top + size, left : left + size]
            if window.std() >= FLAT_STD:
                break
        if rng.random() < 0.5:
            window = window[:, ::-1]
        return np.rot90(window, k=int(rng.integers(4)))

    def draw(
        self, count: int, rng: np.random.Generator, window: int = LOW_SIZE
    ) -> Subset:
        """A fresh batch of ``count`` training triplets.

        Args:
            count: windows to draw (>= 1).
            rng: NumPy generator; the same state gives the same batch.
            window: side of the network's input in pixels (8 to 72); the
                high-resolution window is 4 times as wide.

        Returns:
            Subset with x (count, window, window, 3), y2 (count, 2 window, 2
            window, 3) and y4 (count, 4 window, 4 window, 3), float32; x and y2
            rounded to 8 bits.
        """
        _check_count(count)
        size = check_window(window) * FACTOR_X4
        high = np.stack([self.window(rng, size) for _ in range(int(count))])
        y4 = high.astype(np.float32) / images.EIGHT_BIT
        x, y2 = triplets(y4)
        return Subset(x=x, y2=y2, y4=y4, names=[f"window_{i}" for i in range(count)])


class WindowSource:
    """A training source of fixed 288 px windows kept as uint8 (crop and resize modes).

    The windows, their 72 px inputs and 144 px x2 targets are stored as 8-bit
    values, a quarter of the float32 size: 5,000 windows take 1.6 GB instead of
    6.5. Only a drawn batch becomes float32. The inputs and x2 targets are exact,
    since :func:`triplets` rounds them to 8 bits anyway; the 288 px targets are
    rounded to 8 bits too, as a saved image would be.

    Attributes:
        x_u8: uint8 (n, 72, 72, 3) inputs.
        y2_u8: uint8 (n, 144, 144, 3) x2 targets.
        y4_u8: uint8 (n, 288, 288, 3) windows (x4 targets).
        names: one name per window.
    """

    def __init__(self, y4_u8: np.ndarray, names: list[str], x_u8=None, y2_u8=None):
        expected = (len(names), HIGH_SIZE, HIGH_SIZE, 3)
        if y4_u8.dtype != np.uint8 or y4_u8.shape != expected:
            raise ValueError(
                f"windows must be uint8 {expected} (one per name), got "
                f"{y4_u8.dtype} {y4_u8.shape}"
            )
        if x_u8 is None or y2_u8 is None:
            x_u8, y2_u8 = _eight_bit_triplets(y4_u8)
        self.x_u8, self.y2_u8, self.y4_u8 = x_u8, y2_u8, y4_u8
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.names)

    def take(self, indices) -> Subset:
        """The windows at ``indices`` as a float32 :class:`Subset` in [0, 1]."""
        indices = np.asarray(indices, dtype=np.int64)
        return Subset(
            x=self.x_u8[indices].astype(np.float32) / images.EIGHT_BIT,
            y2=self.y2_u8[indices].astype(np.float32) / images.EIGHT_BIT,
            y4=self.y4_u8[indices].astype(np.float32) / images.EIGHT_BIT,
            names=[self.names[int(i)] for i in indices],
        )

    def draw(
        self, count: int, rng: np.random.Generator, window: int = LOW_SIZE
    ) -> Subset:
        """``count`` random windows, without replacement when there are enough.

        Args:
            count: windows to draw (>= 1).
            rng: NumPy generator; the same state gives the same batch.
            window: side of the network's input in pixels (8 to 72). Below 72,
                each stored triplet gives a random aligned crop: the input's
                ``window`` px, and the same region of both targets.

        Returns:
            Subset of float32 triplets in [0, 1], inputs ``window`` px wide.
        """
        _check_count(count)
        window = check_window(window)
        batch = self.take(rng.choice(len(self), int(count), replace=count > len(self)))
        if window == LOW_SIZE:
            return batch
        x, y2, y4 = crop_triplets(batch.x, batch.y2, batch.y4, window, rng)
        return Subset(x=x, y2=y2, y4=y4, names=batch.names)


def _eight_bit_triplets(y4_u8: np.ndarray, chunk: int = 64) -> tuple:
    """uint8 inputs and x2 targets of uint8 windows, a chunk at a time."""
    n = len(y4_u8)
    x = np.empty((n, LOW_SIZE, LOW_SIZE, 3), np.uint8)
    y2 = np.empty((n, MID_SIZE, MID_SIZE, 3), np.uint8)
    for start in range(0, n, chunk):
        part = y4_u8[start : start + chunk].astype(np.float32) / images.EIGHT_BIT
        low, mid = triplets(part)
        x[start : start + chunk] = images.to_uint8(low)
        y2[start : start + chunk] = images.to_uint8(mid)
    return x, y2
