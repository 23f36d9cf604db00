"""Image data: reading, writing, MATLAB-style bicubic resizing, sources, splits, cache.

This module owns everything between an image file and the arrays a notebook trains
on. It is the only place where OpenCV's BGR/uint8 convention exists: every array it
returns is float32 RGB in [0, 1], shape (h, w, 3) or (n, h, w, 3). Resizing follows
MATLAB's ``imresize`` bicubic convention (cubic kernel with a = -0.5, antialiasing
by widening the kernel when downscaling, symmetric boundary), the degradation of the
published super-resolution tables. ``prepare`` turns a source (``sample``,
``folder:PATH``, ``voc2007`` or ``bsds300``) into a deterministic train/validation
``Split``: a stream of random 288 px training windows (:class:`PatchSource`, the
default) or fixed 72/144/288-pixel triplets, and validation triplets. It caches the
split on disk, keyed by the arguments and a fingerprint of the source files.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import struct
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from srkit.atomic import atomic_path
from srkit.vocab import HIGH_SIZE, LOW_SIZE, MID_SIZE

FACTOR_X2 = MID_SIZE // LOW_SIZE
FACTOR_X4 = HIGH_SIZE // LOW_SIZE
# Smallest training window (input side in pixels): below it the 3x3 convolutions
# and the bicubic skip see mostly padding.
MIN_WINDOW = 8

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# The way out of a failed download that needs no network.
OWN_IMAGES = "train on images you have with --data folder:PATH"
VOC2007_URL = (
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar"
)
VOC2007_HASH = "md5:c52e279531787c972589f7e41ab4ae64"
VOC2007_ARCHIVE = "VOCtrainval_06-Nov-2007.tar"
VOC2007_IMAGES = "VOCdevkit/VOC2007/JPEGImages"

# scikit-image's bundled natural colour photos (plus matplotlib's grace_hopper.jpg).
# motorcycle_right.png is left out on purpose: it is the same scene as
# motorcycle_left.png and would leak validation pixels into training.
SAMPLE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "rocket.jpg",
    "retina.jpg",
)
VAL_FRACTION = 0.2  # 80/20 train/validation split, by image
SOURCE_FORMS = ("sample", "folder:PATH", "voc2007", "bsds300")
MODES = ("patch", "resize", "crop")
PROGRESS_MIN_IMAGES = 10  # show a progress bar only above this many images
CACHE_VERSION = 4  # bump when the cache layout or the preparation changes
VAL_MIN_WINDOWS = 8  # patch mode: at least this many fixed validation windows
EIGHT_BIT = 255.0  # inputs are rounded to 8 bits, as a saved low-resolution file
CUBIC_A = -0.5  # MATLAB's cubic kernel parameter (Keys 1981)
# Streamed PNG (write_png_strips): file signature, the "Up" row filter and the
# deflate level (1, OpenCV's default for PNG: fast, a little larger).
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_FILTER_UP = 2
PNG_STREAM_LEVEL = 1


# --------------------------------------------------------------------------- I/O


# EXIF orientation (tag 274): how the stored pixels turn into the displayed image.
# float32 bytes of one window with its x2 target and input (a quarter as uint8)
WINDOW_BYTES = 4 * 3 * (HIGH_SIZE**2 + MID_SIZE**2 + LOW_SIZE**2)
MEMORY_COPIES = 2  # the windows' list, then the stacked array
EXIF_ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PIXEL_DIVISORS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _has_exif_orientation_container(data: bytes) -> bool:
    """JPEG, PNG with an eXIf chunk, or WebP: where OpenCV's unchanged read ignores
    the orientation tag (its TIFF reader applies the tag itself)."""
    if data[:3] == b"\xff\xd8\xff":
        return True
    if data.startswith(_PNG_SIGNATURE):
        return b"eXIf" in data  # skips Pillow (and its full decode) for most PNGs
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def _exif_orientation(data: bytes, path: Path) -> int:
    """The EXIF orientation (1-8) of an encoded image; 1 when it has none."""
    if not _has_exif_orientation_container(data):
        return 1
    from PIL import Image  # Pillow comes with matplotlib and imageio

    try:
        with warnings.catch_warnings():
            # Pillow's size guard is about decoding, which OpenCV has done already.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                value = opened.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Image.DecompressionBombError:
        value = _exif_orientation_unguarded(data)
    except Exception as error:  # Pillow raises many kinds on odd metadata
        raise ValueError(
            f"cannot read image {str(path)!r}: its EXIF metadata is unreadable "
            f"({type(error).__name__}: {error})"
        ) from error
    return int(value) if value in range(1, 9) else 1


def _exif_orientation_unguarded(data: bytes):
    """The orientation of a very large image, past Pillow's decompression guard."""
    from PIL import Image

    guard = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return opened.getexif().get(EXIF_ORIENTATION_TAG, 1)
    finally:
        Image.MAX_IMAGE_PIXELS = guard


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels (h, w, ...) into the displayed image (a view, no copy)."""
    if orientation in (5, 6, 7, 8):  # the stored image lies on its side
        image = image.swapaxes(0, 1)
    # After the transpose (5-8): 5 is done, 6 mirrors columns, 7 both axes, 8 rows.
    rows, columns = {
        2: (False, True),
        3: (True, True),
        4: (True, False),
        6: (False, True),
        7: (True, True),
        8: (True, False),
    }.get(orientation, (False, False))
    return image[:: -1 if rows else 1, :: -1 if columns else 1]


def _decode(data: bytes) -> np.ndarray | None:
    """OpenCV's unchanged decode, without its own log lines (we raise instead)."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    finally:
        logging.setLogLevel(level)


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(height, width) of an image file from its header, without decoding it.

    Returns None when Pillow cannot read the header (the decode then reports it).
    """
    from PIL import Image

    if not Path(path).is_file():  # never open a pipe or a device
        return None
    guard = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the size is what we want to check ourselves
    try:
        with Image.open(path) as opened:
            width, height = opened.size
    except Exception:  # noqa: BLE001  (not an image Pillow knows: no estimate)
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = guard
    return int(height), int(width)


def _check_jpeg(data: bytes, path: Path) -> None:
    """Refuse a JPEG whose data is corrupt or truncated.

    OpenCV decodes such a file to a garbled picture and only logs a libjpeg
    warning; Pillow's decoder raises instead, so a JPEG is decoded by Pillow first
    (and the pixels thrown away).
    """
    if data[:3] != b"\xff\xd8\xff":
        return
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
    except Image.DecompressionBombError:
        return  # too large for Pillow's guard; OpenCV's decode still checks it
    except Exception as error:  # Pillow raises OSError, SyntaxError, ...
        raise ValueError(
            f"cannot read image {str(path)!r}: the JPEG data is corrupt or truncated "
            f"({error}); replace the file"
        ) from error


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """Read an image file's RGB samples as stored (uint8, uint16 or float).

    What :func:`read_image` reads, before the conversion to float32: OpenCV's
    unchanged decode, the EXIF orientation applied, BGR turned into RGB,
    grayscale repeated to three channels and alpha dropped, all as views of the
    decoded samples (no copy). A large image costs its 8-bit samples only; convert
    it, or a window of it, with :func:`pixels_to_float`.

    Args:
        path: an image file OpenCV can decode (png, jpg, bmp, tif, webp, ...).

    Returns:
        array (h, w, 3) of the file's sample type, RGB; (w, h, 3) for a file
        whose EXIF orientation turns it on its side.

    Raises:
        ValueError: naming the file and the reason when it is missing, a directory
            or another non-regular file, empty, not decodable as an image (a
            corrupt or truncated JPEG included), has unreadable EXIF metadata, or
            of an unsupported sample type.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"cannot read image {str(path)!r}: no such file")
    if path.is_dir():
        raise ValueError(f"cannot read image {str(path)!r}: it is a directory")
    if not path.is_file():
        raise ValueError(
            f"cannot read image {str(path)!r}: not a regular file (a pipe, socket "
            "or device); pass an image file"
        )
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(
            f"cannot read image {str(path)!r}: {error.strerror or error}"
        ) from error
    if not data:
        raise ValueError(
            f"cannot read image {str(path)!r}: the file is empty (0 bytes)"
        )
    _check_jpeg(data, path)
    # imdecode on the bytes (rather than imread) also copes with non-ASCII paths.
    image = _decode(data)
    if image is None or image.size == 0:
        raise ValueError(
            f"cannot read image {str(path)!r}: OpenCV cannot decode it "
            "(not an image, truncated, or an unsupported format)"
        )
    orientation = _exif_orientation(data, path)
    del data
    return _to_rgb(_orient(image, orientation), path)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 RGB in [0, 1], as an image viewer shows it.

    OpenCV decodes the file unchanged, so 16-bit samples, alpha, palettes and
    grayscale survive the decode; the EXIF orientation of JPEG, PNG and WebP files
    (which that decode ignores) is then applied, read with Pillow. BGR becomes RGB,
    grayscale is repeated to three channels, an alpha channel is dropped, 8-bit
    values are divided by 255 and 16-bit values by 65535 (see :func:`read_pixels`
    for the samples as stored, and :func:`pixels_to_float`).

    Args:
        path: an image file OpenCV can decode (png, jpg, bmp, tif, webp, ...).

    Returns:
        float32 array (h, w, 3), RGB in [0, 1]; (w, h, 3) for a file whose EXIF
        orientation turns it on its side.

    Raises:
        ValueError: as :func:`read_pixels`.
    """
    return pixels_to_float(read_pixels(path))


def pixels_to_float(pixels: np.ndarray) -> np.ndarray:
    """float32 RGB in [0, 1] of samples from :func:`read_pixels` (or a window of
    them): one float32 copy, divided in place by 255 (8-bit) or 65535 (16-bit), so
    a window converted alone equals the same window of the whole image converted.
    """
    result = np.empty(pixels.shape, np.float32)
    result[...] = pixels
    divisor = _PIXEL_DIVISORS.get(pixels.dtype)
    if divisor is not None:
        result /= divisor  # the same float32 division as astype(float32) / divisor
    return result


def _to_rgb(image: np.ndarray, path: Path) -> np.ndarray:
    """The RGB samples of an OpenCV image (any channel count and depth), as views.

    Channels are picked and reordered without a copy: a large image costs its
    decoded samples only, and :func:`pixels_to_float` converts it (or a window of
    it) to float32.
    """
    if image.dtype not in _PIXEL_DIVISORS and image.dtype not in (
        np.float32,
        np.float64,
    ):
        raise ValueError(
            f"cannot read image {str(path)!r}: unsupported sample type {image.dtype} "
            "(expected 8-bit, 16-bit or float)"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        rgb = np.broadcast_to(image, (*image.shape[:2], 3))
    elif channels == 3:
        rgb = image[:, :, ::-1]  # BGR -> RGB
    elif channels == 4:
        rgb = image[:, :, 2::-1]  # BGRA -> RGB, alpha dropped
    else:
        raise ValueError(
            f"cannot read image {str(path)!r}: {channels} channels (expected 1, 3 or 4)"
        )
    return rgb


def write_image(
    path: str | os.PathLike, image: np.ndarray, overwrite: bool = True
) -> Path:
    """Write one RGB image to an 8-bit file; the format follows the extension.

    The file is encoded by OpenCV straight into a temporary file of
    :func:`srkit.atomic.atomic_path`: a failure (bad image, encoder error, full
    disk, interruption) leaves an existing file at ``path`` untouched and no
    temporary file behind. A uint8 image is converted to OpenCV's BGR order in
    place while it is written and restored afterwards, so writing needs no
    full-size copy.

    Args:
        path: target file (.png, .jpg, .bmp, .tif, .webp); parent folders are made.
        image: float (h, w, 3), RGB in [0, 1] (values are clipped and rounded to
            1/255 steps), or uint8 (h, w, 3) RGB written as is.
        overwrite: replace an existing file; with False an existing ``path`` (even
            one created while encoding) raises ``FileExistsError``.

    Returns:
        The path written.

    Raises:
        ValueError: if the image is not (h, w, 3) or the extension is not supported,
            or OpenCV cannot encode it.
        FileExistsError: ``overwrite`` is False and ``path`` exists.
        OSError: the file cannot be written.
    """
    path = Path(path)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"write_image expects an (h, w, 3) image, got {image.shape}")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(
            f"cannot write {str(path)!r}: extension {path.suffix!r} is not one of "
            f"{IMAGE_EXTENSIONS}"
        )
    if image.dtype == np.uint8:
        pixels = image
    else:
        # One float copy, scaled and rounded in place (a large image has no spare
        # float copies to give).
        scaled = np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        scaled *= EIGHT_BIT
        pixels = np.rint(scaled, out=scaled).astype(np.uint8)
        del scaled
    borrowed = pixels is image  # the caller's array: swapped back afterwards
    if not (pixels.flags.c_contiguous and pixels.flags.writeable):
        pixels, borrowed = np.ascontiguousarray(pixels).copy(), False
    # RGB -> BGR in place and encoded straight into the file: no second full-size
    # copy and no encoded buffer in memory, so a large result fits.
    _swap_red_blue(pixels)
    try:
        with atomic_path(path, overwrite=overwrite) as temporary:
            try:
                ok = cv2.imwrite(str(temporary), pixels)
            except cv2.error:  # some encoders raise instead of returning False
                ok = False
            if not ok:
                raise ValueError(
                    f"cannot write {str(path)!r}: OpenCV failed to encode it as "
                    f"{path.suffix}"
                )
    finally:
        if borrowed:
            _swap_red_blue(pixels)
    return path


def write_png_strips(
    path: str | os.PathLike,
    height: int,
    strips: Iterable[np.ndarray],
    overwrite: bool = True,
) -> Path:
    """Write an 8-bit RGB PNG from horizontal strips, one strip in memory at a time.

    For a result too large to hold whole (``srkit upscale`` of a large photo): each
    uint8 RGB strip (rows, width, 3), top to bottom, is filtered (PNG's "Up"
    filter: each row minus the row above) and deflated into the file as it comes,
    so memory holds one strip and its filtered copy. The file decodes to exactly
    the pixels given. Like :func:`write_image` it is written atomically: a failure,
    too few or too many rows included, leaves an existing file untouched.

    Args:
        path: target ``.png`` file; parent folders are made.
        height: total rows the strips add up to (the PNG header comes first).
        strips: uint8 arrays (rows, width, 3), all of one width.
        overwrite: replace an existing file; with False an existing ``path``
            raises ``FileExistsError``.

    Returns:
        The path written.

    Raises:
        ValueError: a strip of the wrong type, shape or width, or rows that do not
            add up to ``height``.
        FileExistsError: ``overwrite`` is False and ``path`` exists.
        OSError: the file cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"cannot stream {str(path)!r}: only .png files stream")
    with atomic_path(path, overwrite=overwrite) as temporary:
        with open(temporary, "wb") as stream:
            written, width, above = 0, None, None
            packer = zlib.compressobj(PNG_STREAM_LEVEL)
            for strip in strips:
                if strip.dtype != np.uint8 or strip.ndim != 3 or strip.shape[2] != 3:
                    raise ValueError(
                        f"cannot write {str(path)!r}: strips must be uint8 (rows, "
                        f"width, 3), got {strip.dtype} {strip.shape}"
                    )
                if width is None:
                    width = strip.shape[1]
                    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
                    stream.write(_PNG_SIGNATURE + _png_chunk(b"IHDR", header))
                    above = np.zeros(width * 3, np.uint8)
                if strip.shape[1] != width or written + len(strip) > height:
                    raise ValueError(
                        f"cannot write {str(path)!r}: a strip of {strip.shape[:2]} "
                        f"does not continue {written} rows of width {width} towards "
                        f"{height} rows"
                    )
                rows = strip.reshape(len(strip), width * 3)
                filtered = np.empty((len(rows), 1 + width * 3), np.uint8)
                filtered[:, 0] = _PNG_FILTER_UP
                np.subtract(rows[0], above, out=filtered[0, 1:])
                np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
                above = rows[-1].copy()
                deflated = packer.compress(filtered)
                if deflated:
                    stream.write(_png_chunk(b"IDAT", deflated))
                written += len(strip)
                del filtered, rows, deflated
            if written != height or width is None:
                raise ValueError(
                    f"cannot write {str(path)!r}: got {written} rows of the "
                    f"{height} announced"
                )
            stream.write(_png_chunk(b"IDAT", packer.flush()))
            stream.write(_png_chunk(b"IEND", b""))
    return path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and the CRC of type and body."""
    crc = zlib.crc32(body, zlib.crc32(kind))
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _swap_red_blue(pixels: np.ndarray, rows: int = 256) -> None:
    """RGB <-> BGR in place, a band of rows at a time (OpenCV's cvtColor with
    ``dst=src`` makes a full-size temporary)."""
    for top in range(0, pixels.shape[0], rows):
        band = pixels[top : top + rows]
        red = band[..., 0].copy()
        band[..., 0] = band[..., 2]
        band[..., 2] = red


# ------------------------------------------------------------------------ resize


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's cubic convolution kernel (a = -0.5), support [-2, 2]."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (CUBIC_A + 2) * absx3 - (CUBIC_A + 3) * absx2 + 1
    outer = CUBIC_A * absx3 - 5 * CUBIC_A * absx2 + 8 * CUBIC_A * absx - 4 * CUBIC_A
    return np.where(absx <= 1, inner, np.where(absx <= 2, outer, 0.0))


@functools.lru_cache(maxsize=64)
def resize_weights(in_length: int, out_length: int, scale: float) -> np.ndarray:
    """Dense weight matrix of MATLAB ``imresize`` bicubic along one axis.

    Follows MATLAB's ``contributions``: output pixel ``x`` (1-based) maps to input
    coordinate ``u = x / scale + 0.5 * (1 - 1 / scale)``; when downscaling the kernel
    is widened by ``1 / scale`` (antialiasing); each row is normalised to sum 1 and
    taps outside the image are mirrored symmetrically (edge pixel repeated).

    Args:
        in_length: input pixels along the axis.
        out_length: output pixels along the axis.
        scale: output / input scale factor (> 0).

    Returns:
        float64 array (out_length, in_length); ``out = weights @ in`` along the axis.
    """
    kernel_width = 4.0
    if scale < 1:
        kernel_width /= scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based, may fall outside
    distance = u[:, None] - indices
    weights = scale * _cubic(scale * distance) if scale < 1 else _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding: aux = [1..n, n..1], indexed modulo 2n (MATLAB's rule).
    aux = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
    columns = aux[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.repeat(np.arange(out_length), taps)
    np.add.at(matrix, (rows, columns.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def imresize(
    images: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Bicubic resize with MATLAB's ``imresize`` convention, vectorised over images.

    Each axis is one matrix product with a precomputed weight matrix
    (``resize_weights``), so a batch of hundreds of images costs two BLAS calls
    (about 0.5 s for 100 images of 288x288 -> 144x144 on two CPU cores).
    Math is float32, without clipping (bicubic may overshoot [0, 1] slightly).

    Args:
        images: float (h, w, c) or (n, h, w, c), any range; typically RGB in [0, 1].
        scale: one factor for both axes; the output is ``ceil(scale * size)``.
        output_shape: (out_h, out_w); the scale per axis is then out / in, unless
            ``scale`` is also given, in which case ``scale`` sets the kernel and
            ``output_shape`` only the size (MATLAB's ``imresize(A, scale)`` followed
            by a crop, used by ``downscale`` on sizes that are not a multiple).

    Returns:
        float32 array of the same rank, (out_h, out_w) spatially.

    Raises:
        ValueError: on a bad rank, neither/invalid scale and shape.
    """
    array = np.asarray(images)
    if array.ndim not in (3, 4):
        raise ValueError(
            f"imresize expects (h, w, c) or (n, h, w, c) images, got {array.shape}"
        )
    batch = array if array.ndim == 4 else array[None]
    height, width = batch.shape[1:3]
    if scale is None and output_shape is None:
        raise ValueError("imresize needs scale or output_shape")
    if scale is not None and not scale > 0:
        raise ValueError(f"imresize scale must be > 0, got {scale!r}")
    if output_shape is None:
        output_shape = (int(np.ceil(scale * height)), int(np.ceil(scale * width)))
    out_h, out_w = (int(v) for v in output_shape)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"imresize output shape must be positive, got {output_shape}")
    scale_h = float(scale) if scale is not None else out_h / height
    scale_w = float(scale) if scale is not None else out_w / width
    weights_h = resize_weights(height, out_h, scale_h).astype(np.float32)
    weights_w = resize_weights(width, out_w, scale_w).astype(np.float32)
    batch = batch.astype(np.float32, copy=False)
    # Two contractions, each one BLAS matrix product (optimize=True picks tensordot).
    result = np.einsum("pw,nhwc->nhpc", weights_w, batch, optimize=True)
    result = np.einsum("oh,nhpc->nopc", weights_h, result, optimize=True)
    return result if array.ndim == 4 else result[0]


def _check_factor(factor: int) -> int:
    if isinstance(factor, bool) or int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    return int(factor)


def downscale(images: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic downscale with antialiasing (MATLAB ``imresize(A, 1/factor)``).

    Args:
        images: float (h, w, 3) or (n, h, w, 3), RGB in [0, 1].
        factor: integer factor (2 for x2, 4 for x4).

    Returns:
        float32 (..., h // factor, w // factor, 3); sizes that are not a multiple of
        ``factor`` lose the trailing rows/columns, as with a crop to a multiple first.

    Raises:
        ValueError: for a non-positive or non-integer factor or a bad shape.
    """
    factor = _check_factor(factor)
    array = np.asarray(images)
    if array.ndim not in (3, 4):
        raise ValueError(
            f"downscale expects (h, w, 3) or (n, h, w, 3), got {array.shape}"
        )
    height, width = array.shape[-3:-1]
    if height < factor or width < factor:
        raise ValueError(
            f"image of {height}x{width} is too small to downscale by {factor}"
        )
    # Crop to a multiple of the factor first, as the benchmark protocol does.
    array = array[..., : height - height % factor, : width - width % factor, :]
    return imresize(
        array, scale=1.0 / factor, output_shape=(height // factor, width // factor)
    )


def bicubic_upscale(images: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic upscale (MATLAB ``imresize(A, factor)``): the "bicubic" baseline.

    Args:
        images: float (h, w, 3) or (n, h, w, 3), RGB in [0, 1].
        factor: integer factor (2 for x2, 4 for x4).

    Returns:
        float32 (..., h * factor, w * factor, 3), not clipped.

    Raises:
        ValueError: for a non-positive or non-integer factor or a bad shape.
    """
    factor = _check_factor(factor)
    return imresize(images, scale=float(factor))


# ------------------------------------------------------------------------ splits


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


def to_8bit(images: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to 1/255 steps, as saving an 8-bit file would.

    Args:
        images: float array, RGB in about [0, 1] (bicubic overshoots slightly).

    Returns:
        float32 array of the same shape, values k / 255 for integers k in [0, 255].
    """
    pixels = np.rint(np.clip(images, 0.0, 1.0) * EIGHT_BIT)
    return (pixels / EIGHT_BIT).astype(np.float32)


def triplets(high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 72 px input and 144 px x2 target of 288 px windows, as 8-bit values.

    Both come from the window by :func:`downscale` (MATLAB bicubic with
    antialiasing) and are rounded by :func:`to_8bit`.

    Args:
        high: float32 (n, 288, 288, 3), RGB in [0, 1].

    Returns:
        ``(x, y2)``: float32 (n, 72, 72, 3) and (n, 144, 144, 3).
    """
    x = to_8bit(downscale(high, HIGH_SIZE // LOW_SIZE))
    y2 = to_8bit(downscale(high, HIGH_SIZE // MID_SIZE))
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
        """One random ``size`` px uint8 window with a random flip and rotation."""
        image = self.images[int(rng.integers(len(self.images)))]
        height, width = image.shape[:2]
        top = int(rng.integers(0, height - size + 1))
        left = int(rng.integers(0, width - size + 1))
        window = image[top : top + size, left : left + size]
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
        y4 = high.astype(np.float32) / EIGHT_BIT
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
            x=self.x_u8[indices].astype(np.float32) / EIGHT_BIT,
            y2=self.y2_u8[indices].astype(np.float32) / EIGHT_BIT,
            y4=self.y4_u8[indices].astype(np.float32) / EIGHT_BIT,
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
        part = y4_u8[start : start + chunk].astype(np.float32) / EIGHT_BIT
        low, mid = triplets(part)
        x[start : start + chunk] = _as_uint8(low)
        y2[start : start + chunk] = _as_uint8(mid)
    return x, y2


@dataclass
class Split:
    """Train and validation subsets plus a description of how they were made.

    Attributes:
        train: the training source: a :class:`PatchSource` in patch mode, a
            :class:`WindowSource` in crop and resize modes.
        val: the validation subset (no photo of it appears in ``train``).
        info: source, n_images, seed, mode, key, photo counts, n_train, n_val,
            cache_path, skipped files, from_cache.
    """

    train: PatchSource | WindowSource | Subset
    val: Subset
    info: dict


class NotEnoughMemory(ValueError):
    """A request whose estimated memory exceeds what the machine has available."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now, or None when unknown.

    Linux's ``MemAvailable`` (free memory plus reclaimable caches), else the free
    physical pages. Tests replace this function to simulate a small machine.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def check_memory(needed: int, what: str, way_out: str) -> None:
    """Refuse a request before allocating when its estimate exceeds free memory.

    Args:
        needed: estimated peak bytes.
        what: the request, e.g. "prepare with n_images 100000".
        way_out: what the user can do instead.

    Raises:
        NotEnoughMemory: naming the request, both sizes and the way out.
    """
    available = available_memory()
    if available is not None and needed > available:
        raise NotEnoughMemory(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory, but "
            f"{available / 2**30:.1f} GiB is available: {way_out}"
        )


def _windows_estimate(kind: str, folder, n_images: int, mode: str) -> int:
    """How many 288 px float windows a preparation will hold (upper bound)."""
    if mode == "patch":
        return 0  # whole uint8 images, bounded by the source itself
    if kind == "folder":
        count = len(_folder_files(folder))
        return count if n_images == 0 else min(n_images, count)
    if kind == "sample" and mode == "resize":
        return min(n_images, len(sample_photos()))
    return n_images


def _default_cache_dir() -> Path:
    env = os.environ.get("SRKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "srkit" / "data"


def _parse_source(source: str) -> tuple[str, Path | None]:
    """Split a source string into its kind and, for folders, the path."""
    if not isinstance(source, str):
        raise ValueError(
            f"source must be a string, one of {SOURCE_FORMS}; got {source!r}"
        )
    if source == "sample":
        return "sample", None
    if source in ("voc2007", "bsds300"):
        return source, None
    if source.startswith("folder:") and len(source) > len("folder:"):
        return "folder", Path(source[len("folder:") :]).expanduser()
    raise ValueError(
        f"unknown data source {source!r}; valid forms are "
        + ", ".join(repr(form) for form in SOURCE_FORMS)
    )


def _resolve_mode(kind: str, mode: str | None) -> str:
    if mode is None:
        # VOC 2007 keeps the original study's whole-photo resize by default.
        return "resize" if kind == "voc2007" else "patch"
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES} or None")
    return mode


def sample_photos() -> list[Path]:
    """The bundled sample photos that are installed, in a fixed order.

    Returns:
        Paths of scikit-image's natural colour photos and matplotlib's
        grace_hopper.jpg; a missing one is skipped with a warning.
    """
    found: list[Path] = []
    missing: list[str] = []
    try:
        import skimage.data

        skimage_dir = Path(skimage.data.__file__).parent
        for name in SAMPLE_PHOTOS:
            path = skimage_dir / name
            if path.is_file():
                found.append(path)
            else:
                missing.append(name)
    except ImportError:
        missing.extend(SAMPLE_PHOTOS)
    try:
        import matplotlib

        hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if hopper.is_file():
            found.append(hopper)
        else:
            missing.append("grace_hopper.jpg")
    except ImportError:
        missing.append("grace_hopper.jpg")
    if missing:
        warnings.warn(
            f"sample photos not installed, skipped: {', '.join(map(str, missing))}",
            stacklevel=2,
        )
    return found


def _folder_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursive), sorted by relative path."""
    if not folder.exists():
        raise ValueError(
            f"data folder {str(folder)!r} does not exist; expected a folder of "
            f"images ({', '.join(IMAGE_EXTENSIONS)})"
        )
    if not folder.is_dir():
        raise ValueError(f"data source {str(folder)!r} is not a folder")
    files = sorted(
        (
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        ),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise ValueError(
            f"data folder {str(folder)!r} holds no image files; looked for "
            f"{', '.join(IMAGE_EXTENSIONS)} (recursively)"
        )
    return files


def _fingerprint(files: list[Path], root: Path | None) -> str:
    """Hash of names, sizes and modification times (cheap: no file is read)."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        name = path.relative_to(root).as_posix() if root else path.name
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _source_fingerprint(kind: str, folder: Path | None) -> str:
    if kind == "sample":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _fingerprint(sample_photos(), None)
    if kind == "voc2007":
        # The archive is verified against this checksum, so it identifies the data.
        return VOC2007_HASH
    if kind == "bsds300":
        return BSDS300_HASH
    assert folder is not None
    return _fingerprint(_folder_files(folder), folder)


def data_key(
    source: str = "sample", n_images: int = 100, seed: int = 0, mode: str | None = None
) -> str:
    """The cache key of ``prepare(source, n_images, seed, mode)``, computed cheaply.

    The key hashes the arguments, the image sizes, the cache version and a fingerprint
    of the source (file names, sizes and modification times; for ``voc2007`` the
    archive checksum), so a changed source gives a new key. It reads no image and
    downloads nothing. The folder's own location is not part of the key: a moved
    folder with the same files keeps its cache.

    Args:
        source: "sample", "folder:PATH", "voc2007" or "bsds300".
        n_images: number of images (crops) requested.
        seed: random seed of the selection, crops and split.
        mode: "resize", "crop" or None (the source's default).

    Returns:
        A 16-character hex string.

    Raises:
        ValueError: for an unknown source or mode, or a missing/empty folder.
    """
    kind, folder = _parse_source(source)
    mode = _resolve_mode(kind, mode)
    payload = {
        "version": CACHE_VERSION,
        "kind": kind,
        "n_images": int(n_images),
        "seed": int(seed),
        "mode": mode,
        "sizes": [LOW_SIZE, MID_SIZE, HIGH_SIZE],
        "fingerprint": _source_fingerprint(kind, folder),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _progress(iterable, total: int, enabled: bool, description: str):
    if not enabled or total <= PROGRESS_MIN_IMAGES:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=description, unit="img", file=sys.stderr)


def _random_crop(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random HIGH_SIZE square crop, flipped left-right with probability 1/2."""
    height, width = image.shape[:2]
    top = int(rng.integers(0, height - HIGH_SIZE + 1))
    left = int(rng.integers(0, width - HIGH_SIZE + 1))
    crop = image[top : top + HIGH_SIZE, left : left + HIGH_SIZE]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def _to_high(image: np.ndarray) -> np.ndarray:
    """Whole image resized to HIGH_SIZE x HIGH_SIZE (aspect not kept, as the study)."""
    return imresize(image, output_shape=(HIGH_SIZE, HIGH_SIZE))


def _make_subset(high: list[np.ndarray], names: list[str]) -> Subset:
    """Stack uint8 HIGH_SIZE windows; derive the input and x2 target by ``triplets``."""
    stacked = np.stack(high)
    if stacked.dtype != np.uint8:  # a float window here would be scaled twice
        raise TypeError(f"windows must be uint8, got {stacked.dtype}")
    y4 = stacked.astype(np.float32) / EIGHT_BIT
    x, y2 = triplets(y4)
    return Subset(x=x, y2=y2, y4=y4, names=list(names))


def _n_val(n: int) -> int:
    """Validation count for n items: about VAL_FRACTION, at least 1 on each side."""
    return min(max(1, int(round(VAL_FRACTION * n))), n - 1)


def _hash_sides(names: list[str], seed: int) -> list[str]:
    """Assign each image to "train" or "val" by a seeded hash of its name.

    The side of an image depends only on its name and the seed, never on how many
    images were drawn, so a larger split of the same folder (R4's second round)
    keeps every earlier validation image in validation and never validates on an
    image an earlier, smaller split trained on.
    """
    scores = [
        int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big")
        / 2**64
        for name in names
    ]
    sides = ["val" if score < VAL_FRACTION else "train" for score in scores]
    # Tiny draws: keep at least one image on each side.
    if "val" not in sides:
        sides[int(np.argmin(scores))] = "val"
    if "train" not in sides:
        sides[int(np.argmax(scores))] = "train"
    return sides


def _spread(count: int, bins: int, rng: np.random.Generator) -> list[int]:
    """Split ``count`` evenly over ``bins``; the remainder goes to random bins."""
    base, extra = divmod(count, bins)
    counts = [base] * bins
    for index in rng.permutation(bins)[:extra]:
        counts[int(index)] += 1
    return counts


def _prepare_sample(n_images: int, seed: int, mode: str, progress: bool) -> tuple:
    photos = sample_photos()
    if len(photos) < 2:
        raise ValueError(
            f"the sample source needs at least 2 installed photos, found "
            f"{len(photos)}; install scikit-image and matplotlib or use 'folder:PATH'"
        )
    rng = np.random.default_rng(seed)
    order = [photos[int(i)] for i in rng.permutation(len(photos))]
    n_val_photos = _n_val(len(photos))
    val_photos, train_photos = order[:n_val_photos], order[n_val_photos:]
    counts = {
        "n_photos": len(photos),
        "n_train_photos": len(train_photos),
        "n_val_photos": len(val_photos),
    }
    if mode == "patch":
        chosen = [(path, _as_uint8(read_image(path))) for path in order]
        sides = ["val"] * n_val_photos + ["train"] * len(train_photos)
        high, names = _patch_sides(chosen, [p.stem for p in order], sides, rng)
        photo_info = {
            path.stem: {"split": side, "images": 1}
            for path, side in zip(order, sides, strict=True)
        }
        return high, names, {**counts, "photos": photo_info}, []
    if mode == "resize":
        n_images = n_images or len(photos)
        if n_images > len(photos):
            warnings.warn(
                f"sample source in resize mode gives one image per photo: n_images "
                f"{n_images} capped at {len(photos)}",
                stacklevel=3,
            )
        n_images = min(n_images, len(photos))
    if n_images < 2:
        raise ValueError(f"n_images must be >= 2 (one train, one val), got {n_images}")
    n_val = _n_val(n_images)
    if mode == "resize":
        n_val = min(n_val, len(val_photos))
        n_train = min(n_images - n_val, len(train_photos))
        train_counts = [1] * n_train + [0] * (len(train_photos) - n_train)
        val_counts = [1] * n_val + [0] * (len(val_photos) - n_val)
    else:
        train_counts = _spread(n_images - n_val, len(train_photos), rng)
        val_counts = _spread(n_val, len(val_photos), rng)
    plan = [
        (p, c, "train") for p, c in zip(train_photos, train_counts, strict=True)
    ] + [(p, c, "val") for p, c in zip(val_photos, val_counts, strict=True)]
    high: dict[str, list] = {"train": [], "val": []}
    names: dict[str, list] = {"train": [], "val": []}
    photo_info = {}
    for path, count, side in _progress(plan, n_images, progress, "sample photos"):
        photo_info[path.stem] = {"split": side, "images": count}
        if count == 0:
            continue
        image = read_image(path)
        for index in range(count):
            crop = _to_high(image) if mode == "resize" else _random_crop(image, rng)
            high[side].append(_as_uint8(crop))
            names[side].append(f"{path.stem}_{index:03d}")
    return high, names, {**counts, "photos": photo_info}, []


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1] to uint8, the form a patch source keeps its images in."""
    return np.rint(np.clip(image, 0.0, 1.0) * EIGHT_BIT).astype(np.uint8)


def _patch_sides(chosen, names: list[str], sides: list[str], rng) -> tuple:
    """Patch mode: training images stay whole (uint8), validation gets windows.

    Each validation image gives at least one fixed random window, and together they
    give at least ``VAL_MIN_WINDOWS``, so a source with few validation photos still
    has enough validation images to rank.
    """
    high: dict[str, list] = {"train": [], "val": []}
    out_names: dict[str, list] = {"train": [], "val": []}
    val_items = [
        (image, name)
        for (_, image), name, side in zip(chosen, names, sides, strict=True)
        if side == "val"
    ]
    windows = _spread(max(VAL_MIN_WINDOWS, len(val_items)), len(val_items), rng)
    per_name = dict(zip((name for _, name in val_items), windows, strict=True))
    for (_, image), name, side in zip(chosen, names, sides, strict=True):
        if side == "train":
            high["train"].append(image)
            out_names["train"].append(name)
            continue
        for index in range(per_name[name]):
            high["val"].append(_random_crop(image, rng))
            out_names["val"].append(name if per_name[name] == 1 else f"{name}_{index}")
    return high, out_names


def _prepare_folder(folder: Path, n_images: int, seed: int, mode: str, progress: bool):
    files = _folder_files(folder)
    if n_images > len(files):
        warnings.warn(
            f"folder {str(folder)!r} has {len(files)} images, fewer than n_images "
            f"{n_images}: using all of them",
            stacklevel=3,
        )
    rng = np.random.default_rng(seed)
    # Walk a seeded permutation until n_images usable images are found, so that an
    # unreadable or too small file is replaced by the next one in the order.
    order = [files[int(i)] for i in rng.permutation(len(files))]
    target = len(files) if n_images == 0 else min(n_images, len(files))
    chosen: list[tuple[Path, np.ndarray]] = []
    unreadable: list[str] = []
    too_small: list[str] = []
    non_finite: list[str] = []
    iterator = _progress(iter(order), target, progress, f"reading {folder.name}")
    for path in iterator:
        if len(chosen) >= target:
            break
        relative = path.relative_to(folder).as_posix()
        try:
            image = read_image(path)
        except ValueError as error:
            unreadable.append(f"{relative} ({error})")
            continue
        if min(image.shape[:2]) < HIGH_SIZE:
            too_small.append(f"{relative} ({image.shape[1]}x{image.shape[0]})")
            continue
        if not np.isfinite(image).all():
            non_finite.append(relative)
            continue
        if mode == "crop":  # the window at once: no whole float image is kept
            image = _random_crop(image, rng)
        elif mode == "resize":
            image = _to_high(image)
        chosen.append((path, _as_uint8(image)))
    if hasattr(iterator, "close"):
        iterator.close()
    if unreadable:
        warnings.warn(
            f"skipped {len(unreadable)} unreadable file(s): " + "; ".join(unreadable),
            stacklevel=3,
        )
    if too_small:
        warnings.warn(
            f"skipped {len(too_small)} image(s) smaller than {HIGH_SIZE} px (the "
            "training window) on a side: "
            + ", ".join(too_small[:10])
            + (" ..." if len(too_small) > 10 else ""),
            stacklevel=3,
        )
    if non_finite:
        warnings.warn(
            f"skipped {len(non_finite)} image(s) holding NaN or infinite values: "
            + ", ".join(non_finite[:10])
            + (" ..." if len(non_finite) > 10 else ""),
            stacklevel=3,
        )
    if len(chosen) < 2:
        skipped = len(unreadable) + len(too_small) + len(non_finite)
        raise ValueError(
            f"folder {str(folder)!r} gave {len(chosen)} usable image(s); need at "
            f"least 2 (one train, one val); {skipped} skipped (unreadable, smaller "
            f"than {HIGH_SIZE} px, or with NaN/infinite values): add images of at "
            f"least {HIGH_SIZE}x{HIGH_SIZE} pixels"
        )
    relative = [path.relative_to(folder).as_posix() for path, _ in chosen]
    sides = _hash_sides(relative, seed)
    n_val = sides.count("val")
    stems = [path.relative_to(folder).with_suffix("").as_posix() for path, _ in chosen]
    if mode == "patch":
        high, names = _patch_sides(chosen, stems, sides, rng)
    else:
        high = {"train": [], "val": []}
        names = {"train": [], "val": []}
        for (_, window), stem, side in zip(chosen, stems, sides, strict=True):
            high[side].append(window)
            names[side].append(stem)
    counts = {
        "n_photos": len(chosen),
        "n_train_photos": len(chosen) - n_val,
        "n_val_photos": n_val,
    }
    return high, names, counts, unreadable + too_small + non_finite


def _build(kind, folder, n_images, seed, mode, progress) -> Split:
    """Read the source and make the split (the slow path, no cache)."""
    if kind == "sample":
        high, names, counts, skipped = _prepare_sample(n_images, seed, mode, progress)
    else:
        if kind == "voc2007":
            # One download for every run folder: the archive lives in the user-wide
            # cache (SRKIT_CACHE), not in the run's own cache_dir.
            folder = fetch_voc2007(_default_cache_dir())
        elif kind == "bsds300":
            # The 200 training images only: images/test is BSD100, a benchmark set.
            folder = bsds300_train_folder(
                fetch_bsds300(_default_cache_dir(), progress=progress)
            )
        high, names, counts, skipped = _prepare_folder(
            folder, n_images, seed, mode, progress
        )
    subsets = {}
    for side in ("train", "val"):
        if side == "train" and mode == "patch":
            subsets[side] = PatchSource(high[side], names[side])
            continue
        # Shuffle within a subset so that its first images come from several photos.
        order = np.random.default_rng([seed, side == "val"]).permutation(
            len(high[side])
        )
        windows = [high[side][int(i)] for i in order]
        ordered = [names[side][int(i)] for i in order]
        high[side] = None  # the stacked copy replaces the list
        if side == "train":
            subsets[side] = WindowSource(np.stack(windows), ordered)
        else:
            subsets[side] = _make_subset(windows, ordered)
    info = {**counts, "skipped": skipped}
    return Split(train=subsets["train"], val=subsets["val"], info=info)


def _save(path: Path, split: Split) -> None:
    """Write the split as .npz through :func:`srkit.atomic.atomic_path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"info": np.array(json.dumps(split.info))}
    for side in ("train", "val"):
        subset = getattr(split, side)
        if isinstance(subset, PatchSource):  # whole uint8 images of any size
            arrays[f"{side}_names"] = np.array(subset.names, str)
            arrays.update(
                {f"{side}_image_{i}": image for i, image in enumerate(subset.images)}
            )
            continue
        if isinstance(subset, WindowSource):
            arrays.update(
                {
                    f"{side}_x_u8": subset.x_u8,
                    f"{side}_y2_u8": subset.y2_u8,
                    f"{side}_y4_u8": subset.y4_u8,
                    f"{side}_names": np.array(subset.names, str),
                }
            )
            continue
        arrays.update(
            {
                f"{side}_x": subset.x,
                f"{side}_y2": subset.y2,
                f"{side}_y4": subset.y4,
                f"{side}_names": np.array(subset.names, str),
            }
        )
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, **arrays)


def _load(path: Path) -> Split:
    with np.load(path, allow_pickle=False) as archive:
        subsets = {}
        for side in ("train", "val"):
            names = [str(n) for n in archive[f"{side}_names"]]
            if f"{side}_y4_u8" in archive.files:
                subsets[side] = WindowSource(
                    archive[f"{side}_y4_u8"],
                    names,
                    x_u8=archive[f"{side}_x_u8"],
                    y2_u8=archive[f"{side}_y2_u8"],
                )
                continue
            if f"{side}_x" not in archive.files:
                images = [archive[f"{side}_image_{i}"] for i in range(len(names))]
                subsets[side] = PatchSource(images, names)
                continue
            subsets[side] = Subset(
                x=archive[f"{side}_x"],
                y2=archive[f"{side}_y2"],
                y4=archive[f"{side}_y4"],
                names=names,
            )
        info = json.loads(str(archive["info"]))
    return Split(train=subsets["train"], val=subsets["val"], info=info)


def prepare(
    source: str = "sample",
    n_images: int = 100,
    seed: int = 0,
    mode: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Split:
    """Make (or load from the cache) the train/validation split of a source.

    Modes say where the 288x288 targets come from:

    * ``patch`` (the default except for VOC 2007): training images are kept whole
      as uint8 in a :class:`PatchSource` that draws fresh random 288 px windows
      with flips and 90-degree rotations at every training step; each validation
      image gives fixed random windows (at least ``VAL_MIN_WINDOWS`` in all).
      Images smaller than 288 px on a side are skipped with one warning naming them.
    * ``crop``: fixed random 288x288 crops with random horizontal flips (small
      images skipped likewise).
    * ``resize``: the whole image resized to 288x288 with ``imresize``, as the
      original study did.

    The 144 px x2 target and the 72 px input are ``downscale`` of the 288 px
    window, clipped to [0, 1] and rounded to 8 bits (:func:`triplets`), as saved
    low-resolution files would be. Sources:

    * ``sample`` (offline default): scikit-image's bundled photos and matplotlib's
      grace_hopper.jpg. About 20% of the *photos* are validation photos, so no
      validation pixel is seen in training. Patch mode uses every photo; crop mode
      cuts ``n_images`` crops, about 20% of them from validation photos; resize
      mode gives one image per photo (n_images capped at the number of photos).
    * ``folder:PATH``: every jpg/jpeg/png/bmp/tif/tiff/webp under PATH, sorted;
      ``n_images`` of them chosen with the seed (0: all); unreadable files skipped
      with a warning; 80/20 split by image, decided by a hash of the file name.
    * ``voc2007``: PASCAL VOC 2007 trainval, downloaded once into the user-wide
      cache (``$SRKIT_CACHE/voc2007``, default ``~/.cache/srkit/data/voc2007``) and
      checksum-verified (``fetch_voc2007``); a user who already has the archive can
      put it there, or point ``folder:`` at an extracted ``JPEGImages`` folder.

    The same arguments give identical arrays. The result is cached in
    ``cache_dir/<data_key>.npz``; a changed source file changes the key.

    Args:
        source: "sample", "folder:PATH" or "voc2007".
        n_images: source images to use (crop mode: crops to make), >= 2; 0 means
            every image of the source (not in crop mode).
        seed: seed of the photo/image choice, the windows, flips and the split.
        mode: "patch", "crop", "resize" or None ("resize" for voc2007, "patch"
            otherwise).
        cache_dir: cache folder; default ``$SRKIT_CACHE`` or ``~/.cache/srkit/data``.
        progress: show a progress bar on stderr when loading more than 10 images.

    Returns:
        Split with ``train`` (a :class:`PatchSource` in patch mode, a
        :class:`WindowSource` of uint8 windows otherwise; both give float32
        batches through ``draw``), ``val`` (x: float32 (n, 72, 72, 3), y2: (n, 144,
        144, 3), y4: (n, 288, 288, 3), RGB in [0, 1]) and ``info``.

    Raises:
        ValueError: unknown source or mode, n_images < 2, a missing or empty folder,
            fewer than 2 usable images, a corrupt VOC download.
    """
    kind, folder = _parse_source(source)
    mode = _resolve_mode(kind, mode)
    if (
        isinstance(n_images, bool)
        or int(n_images) != n_images
        or n_images == 1
        or n_images < 0
        or (n_images == 0 and mode == "crop")
    ):
        raise ValueError(
            f"n_images must be an integer >= 2 (or 0 for every image of the source, "
            f"except in crop mode), got {n_images!r}"
        )
    n_images, seed = int(n_images), int(seed)
    if seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed}")
    cache_dir = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
    key = data_key(source, n_images, seed, mode)
    cache_path = cache_dir / f"{key}.npz"
    if cache_path.is_file():
        try:
            split = _load(cache_path)
            split.info.update(cache_path=str(cache_path), from_cache=True)
            return split
        except (OSError, ValueError, KeyError) as error:
            warnings.warn(
                f"rebuilding unreadable data cache {cache_path}: {error}", stacklevel=2
            )
    windows = _windows_estimate(kind, folder, n_images, mode)
    # Training windows are uint8 (held twice while stacked); validation is float32.
    per_window = WINDOW_BYTES // 4 * MEMORY_COPIES + VAL_FRACTION * WINDOW_BYTES
    check_memory(
        int(windows * per_window),
        f"preparing {windows} {mode} windows of {source!r}",
        "ask for fewer images (n_images)",
    )
    start = time.perf_counter()
    split = _build(kind, folder, n_images, seed, mode, progress)
    split.info = {
        "source": source,
        "n_images": n_images,
        "seed": seed,
        "mode": mode,
        "key": key,
        **split.info,
        "n_train": len(split.train),
        "n_val": len(split.val),
        "sizes": [LOW_SIZE, MID_SIZE, HIGH_SIZE],
        "prepare_time_s": round(time.perf_counter() - start, 3),
    }
    split.info["cache_path"] = str(cache_path)
    _save(cache_path, split)
    split.info["from_cache"] = False
    return split


# ----------------------------------------------------------------------- VOC2007


def _copy_local_file(url: str, output_file, pooch_obj=None, check_only: bool = False):
    """pooch downloader for ``file://`` URLs (pooch itself knows only network ones)."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if check_only:
        return source.is_file()
    if not source.is_file():
        raise OSError(f"no such file {str(source)!r} (from {url})")
    if hasattr(output_file, "write"):
        with open(source, "rb") as stream:
            shutil.copyfileobj(stream, output_file)
    else:
        shutil.copyfile(source, output_file)
    return None


def _safe_members(archive: tarfile.TarFile, prefix: str, root: Path):
    """Members under ``prefix`` that are plain files/folders staying inside ``root``."""
    root = root.resolve()
    for member in archive.getmembers():
        name = member.name[2:] if member.name.startswith("./") else member.name
        if not (name == prefix or name.startswith(prefix + "/")):
            continue
        if not (member.isfile() or member.isdir()):
            continue  # links and devices are never needed for images
        target = (root / name).resolve()
        if Path(name).is_absolute() or not target.is_relative_to(root):
            raise ValueError(f"unsafe path {member.name!r} in archive")
        yield member


@contextlib.contextmanager
def _quiet(logger: logging.Logger):
    """Hold back a library logger's info lines (pooch's "Downloading data from
    ..."), so that a failed download reads as one line; warnings still show."""
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def fetch_voc2007(
    cache_dir: str | os.PathLike | None = None,
    url: str = VOC2007_URL,
    known_hash: str = VOC2007_HASH,
    *,
    progressbar: bool = True,
) -> Path:
    """Download, verify and extract PASCAL VOC 2007 trainval; return its JPEG folder.

    The archive (about 440 MiB) goes to ``cache_dir/voc2007/`` through pooch, which
    checks ``known_hash``; only ``VOCdevkit/VOC2007/JPEGImages`` is extracted, with
    unsafe members (absolute paths, ``..``, links) refused. Once extracted (a marker
    file records it), later calls touch no network and no archive. A ``file://`` URL
    is copied from the local disk.

    Args:
        cache_dir: cache folder; default ``$SRKIT_CACHE`` or ``~/.cache/srkit/data``.
        url: archive URL (http, https, ftp or file).
        known_hash: ``"md5:..."`` or ``"sha256:..."`` checksum of the archive.
        progressbar: show pooch's download progress bar.

    Returns:
        Path of the ``JPEGImages`` folder.

    Raises:
        ValueError: the archive's checksum does not match (corrupt download), the
            download failed (no network: the message says where to put the
            archive by hand), or the archive holds no JPEGImages folder or an
            unsafe member.
    """
    import pooch

    cache_dir = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
    target = cache_dir / "voc2007"
    images = target / VOC2007_IMAGES
    marker = target / ".extracted"
    if marker.is_file() and images.is_dir():
        return images
    archive_path = target / VOC2007_ARCHIVE
    manual = (
        f"download {url} by hand and put it at {archive_path} (it must have checksum "
        f"{known_hash})"
    )
    downloader = _copy_local_file if url.startswith("file:") else None
    try:
        with _quiet(pooch.get_logger()):
            pooch.retrieve(
                url,
                known_hash=known_hash,
                fname=VOC2007_ARCHIVE,
                path=target,
                downloader=downloader,
                progressbar=progressbar,
            )
    except ValueError as error:
        reason = " ".join(str(error).split())  # one line: pooch's text wraps
        raise ValueError(
            f"the VOC2007 data set downloaded from {url} is corrupt (checksum "
            f"mismatch: {reason}); nothing was extracted: retry, or {manual}, or "
            f"{OWN_IMAGES}"
        ) from error
    except OSError as error:
        reason = " ".join(str(error).split())
        raise ValueError(
            f"could not download the VOC2007 data set from {url} ({reason}); to work "
            f"offline, {manual}, or {OWN_IMAGES}"
        ) from error
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".extract-"))
    try:
        with tarfile.open(archive_path) as archive:
            members = list(_safe_members(archive, VOC2007_IMAGES, staging))
            if not any(m.isfile() for m in members):
                raise ValueError(
                    f"archive {archive_path} holds no {VOC2007_IMAGES} files"
                )
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(staging, members=members, **kwargs)
        if (target / "VOCdevkit").exists():
            shutil.rmtree(target / "VOCdevkit")  # a partial earlier extraction
        os.replace(staging / "VOCdevkit", target / "VOCdevkit")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(f"{known_hash}\n")
    return images


# ----------------------------------------------------------------------- BSDS300

BSDS300_URL = (
    "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz"
)
BSDS300_HASH = "sha256:a5f7d0e49fe135c75518a3543ced24470156fd69305ae77845dff2a5138652b4"
BSDS300_ARCHIVE = "BSDS300-images.tgz"
BSDS300_ROOT = "BSDS300"  # top folder of the archive: images/train, images/test


class _HashingDownloader:
    """Wrap a pooch downloader and remember the hash of the file it wrote.

    pooch deletes a download whose checksum does not match before we see it; this
    keeps its digest so that the error can name the hash actually received.
    """

    def __init__(self, downloader, algorithm: str):
        self.downloader = downloader
        self.algorithm = algorithm
        self.digest: str | None = None

    def __call__(self, url, output_file, pooch_obj=None, check_only=False):
        if check_only:
            return self.downloader(url, output_file, pooch_obj, check_only=True)
        import pooch

        result = self.downloader(url, output_file, pooch_obj)
        self.digest = pooch.file_hash(str(output_file), alg=self.algorithm)
        return result


def _split_hash(known_hash: str) -> tuple[str, str]:
    """``"sha256:abc..."`` -> ("sha256", "abc..."); a bare digest is SHA-256 (pooch)."""
    if not isinstance(known_hash, str):
        raise ValueError(f"known_hash must be 'sha256:<hex>', got {known_hash!r}")
    algorithm, _, digest = known_hash.rpartition(":")
    algorithm = algorithm.lower() or "sha256"
    if algorithm not in hashlib.algorithms_available or not digest:
        raise ValueError(f"known_hash must be 'sha256:<hex>', got {known_hash!r}")
    return algorithm, digest.lower()


def _bsds300_split(root: str | os.PathLike, split: str) -> Path:
    folder = Path(root).expanduser() / "images" / split
    if not folder.is_dir():
        raise ValueError(
            f"no BSDS300 {split} folder at {str(folder)!r}: pass the folder returned "
            f"by fetch_bsds300 (it holds images/train and images/test)"
        )
    return folder


def bsds300_train_folder(root: str | os.PathLike) -> Path:
    """The BSDS300 training images (200 JPEGs, 481x321 or 321x481).

    Args:
        root: the folder returned by ``fetch_bsds300``.

    Returns:
        Path of ``root/images/train``.

    Raises:
        ValueError: ``root`` holds no ``images/train`` folder.
    """
    return _bsds300_split(root, "train")


def bsds300_test_folder(root: str | os.PathLike) -> Path:
    """The BSDS300 test images (100 JPEGs): the BSD100 super-resolution benchmark.

    Args:
        root: the folder returned by ``fetch_bsds300``.

    Returns:
        Path of ``root/images/test``, ready for ``srkit.evaluate.benchmark``.

    Raises:
        ValueError: ``root`` holds no ``images/test`` folder.
    """
    return _bsds300_split(root, "test")


def _check_member_paths(archive: tarfile.TarFile, root: Path, archive_path: Path):
    """Refuse an archive with any member outside ``root`` (absolute or ``..``)."""
    root = root.resolve()
    for member in archive.getmembers():
        target = (root / member.name).resolve()
        if Path(member.name).is_absolute() or not target.is_relative_to(root):
            raise ValueError(
                f"unsafe path {member.name!r} in archive {str(archive_path)!r}; "
                f"nothing was extracted: delete the file and download it again"
            )


def fetch_bsds300(
    cache_dir: str | os.PathLike | None = None,
    url: str = BSDS300_URL,
    known_hash: str = BSDS300_HASH,
    *,
    progress: bool = True,
) -> Path:
    """Download, verify and extract the Berkeley segmentation images (BSDS300).

    The archive (about 22 MiB) goes to ``cache_dir/bsds300/`` through pooch, which
    checks ``known_hash`` before keeping it (a download with another checksum is
    deleted). The ``BSDS300`` folder is extracted into a temporary folder beside it
    and renamed into place, so an interrupted extraction is never taken as complete;
    unsafe members (absolute paths, ``..``) refuse the whole archive and links are
    not extracted. Once extracted (a marker file records the checksum), later calls
    touch no network and no archive. A ``file://`` URL is copied from the local disk.
    Use ``bsds300_train_folder`` (200 training images) and ``bsds300_test_folder``
    (100 test images, the BSD100 benchmark) on the returned folder.

    Args:
        cache_dir: cache folder; default ``$SRKIT_CACHE`` or ``~/.cache/srkit/data``.
        url: archive URL (http, https, ftp or file).
        known_hash: ``"sha256:..."`` (or ``"md5:..."``) checksum of the archive.
        progress: show pooch's download progress bar.

    Returns:
        Path of the extracted ``BSDS300`` folder, holding ``images/train`` and
        ``images/test``.

    Raises:
        ValueError: a malformed ``known_hash``; the download's checksum does not match
            (file, expected and actual hash in the message); the download failed
            (no network: the message says where to put the archive by hand); the
            archive holds an unsafe member or no ``BSDS300/images/{train,test}``.
    """
    import pooch
    from pooch.downloaders import choose_downloader

    algorithm, _ = _split_hash(known_hash)
    cache_dir = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
    target = cache_dir / "bsds300"
    root = target / BSDS300_ROOT
    marker = target / ".extracted"
    if marker.is_file() and marker.read_text().strip() == known_hash and root.is_dir():
        return root
    archive_path = target / BSDS300_ARCHIVE
    manual = (
        f"download {url} by hand and put it at {archive_path} (checksum {known_hash})"
    )
    if url.startswith("file:"):
        inner = _copy_local_file
    else:
        inner = choose_downloader(url, progressbar=progress)
    downloader = _HashingDownloader(inner, algorithm)
    try:
        with _quiet(pooch.get_logger()):
            pooch.retrieve(
                url,
                known_hash=known_hash,
                fname=BSDS300_ARCHIVE,
                path=target,
                downloader=downloader,
            )
    except ValueError as error:
        if downloader.digest is None:
            raise
        raise ValueError(
            f"checksum mismatch for the BSDS300 data set ({BSDS300_ARCHIVE}) "
            f"downloaded from {url}: expected {known_hash}, got "
            f"{algorithm}:{downloader.digest}; the file was deleted and nothing was "
            "extracted: check the network (or a proxy that rewrites downloads) and "
            f"retry, or {manual}, or {OWN_IMAGES}"
        ) from error
    except OSError as error:
        reason = " ".join(str(error).split())  # one line: requests' text may wrap
        raise ValueError(
            f"could not download the BSDS300 data set ({BSDS300_ARCHIVE}) from {url} "
            f"({reason}); to work offline, {manual}, or {OWN_IMAGES}"
        ) from error
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".extract-"))
    try:
        with tarfile.open(archive_path) as archive:
            _check_member_paths(archive, staging, archive_path)
            members = list(_safe_members(archive, BSDS300_ROOT, staging))
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(staging, members=members, **kwargs)
        for split in ("train", "test"):
            if not any((staging / BSDS300_ROOT / "images" / split).glob("*.jpg")):
                raise ValueError(
                    f"archive {str(archive_path)!r} holds no "
                    f"{BSDS300_ROOT}/images/{split}/*.jpg; delete it and download "
                    f"it again"
                )
        marker.unlink(missing_ok=True)
        if root.exists():
            shutil.rmtree(root)  # unmarked (interrupted) or another checksum
        os.replace(staging / BSDS300_ROOT, root)
    except tarfile.TarError as error:
        raise ValueError(
            f"archive {str(archive_path)!r} is not a readable tar file ({error}); "
            f"delete it and download it again"
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(f"{known_hash}\n")
    return root


def describe(split: Split) -> pd.DataFrame:
    """Summarise a prepared split for a report page.

    Args:
        split: the result of ``prepare``.

    Returns:
        A two-column DataFrame (``property``, ``value``): source, mode, seed, image
        counts per side, photo counts when known, sizes and the cache key.
    """
    info = split.info
    rows = [
        ("source", info.get("source")),
        ("mode", info.get("mode")),
        ("seed", info.get("seed")),
        ("training images", len(split.train)),
        ("validation images", len(split.val)),
    ]
    if "n_train_photos" in info:
        rows.append(("training photos", info["n_train_photos"]))
        rows.append(("validation photos", info["n_val_photos"]))
    photos = info.get("photos") or {}
    for side in ("train", "val"):
        names = sorted(
            name for name, p in photos.items() if p["split"] == side and p["images"]
        )
        if names:
            rows.append((f"{side} photos", ", ".join(names)))
    sizes = " / ".join(f"{size}x{size}" for size in (LOW_SIZE, MID_SIZE, HIGH_SIZE))
    rows.append(("sizes (input / x2 / x4)", sizes))
    rows.append(("skipped files", len(info.get("skipped") or [])))
    rows.append(("cache key", info.get("key")))
    return pd.DataFrame(rows, columns=["property", "value"])
