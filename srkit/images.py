"""Image files and MATLAB-style bicubic resizing.

This module owns the way between an image file and a float32 RGB array and back,
and is the only place where OpenCV's BGR/uint8 convention exists. Reading decodes
unchanged (8- and 16-bit samples, grayscale, alpha, palettes) and applies the EXIF
orientation; writing makes 8-bit (or 16-bit, RGBA) files atomically, whole or as
an 8-bit PNG streamed in strips for results too large to hold. Resizing follows
MATLAB's ``imresize`` bicubic convention (cubic kernel with a = -0.5, antialiasing
by widening the kernel when downscaling, symmetric boundary), the degradation of the
published super-resolution tables. Arrays are float32 RGB in [0, 1], shape (h, w, 3) or
(n, h, w, 3), unless a function says otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import ThreadpoolController

from srkit.atomic import atomic_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
EIGHT_BIT = 255.0  # inputs are rounded to 8 bits, as a saved low-resolution file
CUBIC_A = -0.5  # MATLAB's cubic kernel parameter (Keys 1981)
# EXIF orientation (tag 274): how the stored pixels turn into the displayed image.
EXIF_ORIENTATION_TAG = 0x0112
_PIXEL_DIVISORS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# OpenCV's default CV_IO_MAX_IMAGE_PIXELS: larger images are not decoded.
OPENCV_MAX_PIXELS = 2**30
# Streamed PNG (write_png_strips): file signature, the "Up" row filter, the
# deflate level (1, OpenCV's default for PNG: fast, a little larger) and strategy:
# run-length matches only, which deflated an x4 result 1.25 times as fast as the
# default strategy at 1.04 times the size for a photo, and 2.7 times as fast and
# smaller for a noisy synthetic one (zlib, one core).
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_FILTER_UP = 2
PNG_STREAM_LEVEL = 1
_PNG_STREAM_STRATEGY = zlib.Z_RLE
# Rows filtered and deflated at a time: the filtered copy stays small (18 MB for
# a 24000 px wide result) however tall a strip is.
_PNG_CHUNK_ROWS = 256


# ------------------------------------------------------------------------- read


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
    """OpenCV's unchanged decode, without its own log lines nor libpng's (we raise
    instead)."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    quiet = _without_libpng_lines if data.startswith(_PNG_SIGNATURE) else _as_is
    try:
        with quiet():
            return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    finally:
        logging.setLogLevel(level)


# One redirection of file descriptor 2 at a time: a second thread's would save
# the first one's temporary file as "the terminal" and never put it back.
_STDERR_LOCK = threading.Lock()
_LIBPNG_PREFIX = b"libpng "  # "libpng error: ...", "libpng warning: ..."


@contextlib.contextmanager
def _without_libpng_lines():
    """Hide libpng's own lines for the block (``libpng error: PNG input buffer is
    incomplete`` beside srkit's message naming the file).

    libpng writes them to file descriptor 2 itself, past OpenCV's log level and
    Python's ``sys.stderr``, so the descriptor is sent to a temporary file for
    the block; whatever else reached it meanwhile is written back afterwards.
    """
    with _STDERR_LOCK:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()  # Python's pending text goes out first
            saved = os.dup(2)
        except (OSError, ValueError):  # no descriptor 2: nothing reaches a terminal
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                lines = sink.read().splitlines(keepends=True)
                others = [line for line in lines if not line.startswith(_LIBPNG_PREFIX)]
                if others:
                    os.write(2, b"".join(others))


@contextlib.contextmanager
def _as_is():
    yield


@contextlib.contextmanager
def _pillow_open(path):
    """Pillow's image of a file, past its decompression guard (we check sizes
    ourselves) and without its warnings (e.g. "Corrupt EXIF data" of a truncated
    TIFF, beside srkit's own message)."""
    from PIL import Image

    guard = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as opened:
                yield opened
    finally:
        Image.MAX_IMAGE_PIXELS = guard


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(height, width) of an image file from its header, without decoding it.

    Returns None when Pillow cannot read the header (the decode then reports it).
    """
    if not Path(path).is_file():  # never open a pipe or a device
        return None
    try:
        with _pillow_open(path) as opened:  # the size is what we check ourselves
            width, height = opened.size
    except Exception:  # noqa: BLE001  (not an image Pillow knows: no estimate)
        return _tiff_size(path)  # Pillow opens no RGB float TIFF; its header tells
    return int(height), int(width)


def _tiff_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(height, width) from a TIFF's first directory (tags 257 and 256), or None."""
    with contextlib.suppress(OSError, struct.error, ValueError):
        with open(path, "rb") as stream:
            head = stream.read(8)
            order = {b"II": "<", b"MM": ">"}.get(head[:2])
            if order is None or struct.unpack(order + "H", head[2:4])[0] != 42:
                return None
            stream.seek(struct.unpack(order + "I", head[4:8])[0])
            (count,) = struct.unpack(order + "H", stream.read(2))
            sizes = {}
            for _ in range(count):
                tag, kind, _, value = struct.unpack(order + "HHI4s", stream.read(12))
                if tag in (256, 257):
                    form = order + ("H" if kind == 3 else "I")
                    sizes[tag] = struct.unpack_from(form, value)[0]
            if 256 in sizes and 257 in sizes:
                return int(sizes[257]), int(sizes[256])
    return None


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


def read_pixels(path: str | os.PathLike, alpha: bool = False):
    """Read an image file's RGB samples as stored (uint8, uint16 or float).

    What :func:`read_image` reads, before the conversion to float32: OpenCV's
    unchanged decode, the EXIF orientation applied, BGR turned into RGB,
    grayscale repeated to three channels and alpha dropped, all as views of the
    decoded samples (no copy). A large image costs its 8-bit samples only; convert
    it, or a window of it, with :func:`pixels_to_float`.

    Args:
        path: an image file OpenCV can decode (png, jpg, bmp, tif, webp, ...).

        alpha: also return the alpha channel (transparency, palette
            transparency included) or None when the file has none.

    Returns:
        array (h, w, 3) of the file's sample type, RGB; (w, h, 3) for a file
        whose EXIF orientation turns it on its side. With ``alpha``, a pair
        (that array, alpha (h, w) of the same type or None).

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
        size = image_size(path)
        if size is not None and size[0] * size[1] > OPENCV_MAX_PIXELS:
            raise ValueError(
                f"cannot read image {str(path)!r}: {size[1]}x{size[0]} pixels is "
                f"more than OpenCV decodes ({OPENCV_MAX_PIXELS} pixels); cut it into "
                "parts"
            )
        raise ValueError(
            f"cannot read image {str(path)!r}: OpenCV cannot decode it "
            "(not an image, truncated, or an unsupported format)"
        )
    orientation = _exif_orientation(data, path)
    del data
    image = _orient(image, orientation)
    rgb = _to_rgb(image, path)
    if not alpha:
        return rgb
    has_alpha = image.ndim == 3 and image.shape[2] == 4
    return rgb, image[:, :, 3] if has_alpha else None


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


# ------------------------------------------------------------------------ write


def write_image(
    path: str | os.PathLike,
    image: np.ndarray,
    overwrite: bool = True,
    metadata: dict | None = None,
) -> Path:
    """Write one RGB (or RGBA) image to a file; the format follows the extension.

    The file is encoded by OpenCV straight into a temporary file of
    :func:`srkit.atomic.atomic_path`: a failure (bad image, encoder error, full
    disk, interruption) leaves an existing file at ``path`` untouched and no
    temporary file behind. A uint8 image is converted to OpenCV's BGR order in
    place while it is written and restored afterwards, so writing needs no
    full-size copy.

    Args:
        path: target file (.png, .jpg, .bmp, .tif, .webp); parent folders are made.
        image: float (h, w, 3), RGB in [0, 1] (values are clipped and rounded to
            1/255 steps), or uint8 (h, w, 3) RGB written as is; uint8 or uint16
            (h, w, 4) RGBA and uint16 RGB are written as they are too (alpha in
            PNG, WebP and TIFF; 16 bits in PNG and TIFF).
        overwrite: replace an existing file; with False an existing ``path`` (even
            one created while encoding) raises ``FileExistsError``.
        metadata: ICC profile and EXIF (see :func:`read_metadata`), copied into
            a PNG, JPEG, WebP or TIFF (:data:`METADATA_EXTENSIONS`; a BMP cannot
            hold them).

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
    if image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape:
        raise ValueError(f"write_image expects an (h, w, 3) image, got {image.shape}")
    if image.shape[2] == 4 and image.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"write_image expects RGBA as uint8 or uint16, got {image.dtype}"
        )
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(
            f"cannot write {str(path)!r}: extension {path.suffix!r} is not one of "
            f"{IMAGE_EXTENSIONS}"
        )
    if image.dtype in (np.uint8, np.uint16):
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
            _add_metadata(temporary, metadata)
    finally:
        if borrowed:
            _swap_red_blue(pixels)
    return path


def write_png_strips(
    path: str | os.PathLike,
    height: int,
    strips: Iterable[np.ndarray],
    overwrite: bool = True,
    metadata: dict | None = None,
) -> Path:
    """Write an 8-bit RGB PNG from horizontal strips, one strip in memory at a time.

    For a result too large to hold whole (``srkit upscale`` of a large photo): each
    uint8 RGB strip (rows, width, 3), top to bottom, is filtered (PNG's "Up"
    filter: each row minus the row above) and deflated into the file as it comes,
    so memory holds one strip and a filtered copy of a few of its rows. The file
    decodes to exactly the pixels given. Like :func:`write_image` it is written
    atomically: a failure, too few or too many rows included, leaves an existing
    file untouched.

    Args:
        path: target ``.png`` file; parent folders are made.
        height: total rows the strips add up to (the PNG header comes first).
        strips: uint8 arrays (rows, width, 3), all of one width.
        overwrite: replace an existing file; with False an existing ``path``
            raises ``FileExistsError``.
        metadata: ICC profile and EXIF (see :func:`read_metadata`) to copy.

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
            packer = zlib.compressobj(
                PNG_STREAM_LEVEL, zlib.DEFLATED, strategy=_PNG_STREAM_STRATEGY
            )
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
                    stream.write(_png_metadata(metadata))
                    above = np.zeros(width * 3, np.uint8)
                if strip.shape[1] != width or written + len(strip) > height:
                    raise ValueError(
                        f"cannot write {str(path)!r}: a strip of {strip.shape[:2]} "
                        f"does not continue {written} rows of width {width} towards "
                        f"{height} rows"
                    )
                rows = strip.reshape(len(strip), width * 3)
                for first in range(0, len(rows), _PNG_CHUNK_ROWS):
                    chunk = rows[first : first + _PNG_CHUNK_ROWS]
                    filtered = np.empty((len(chunk), 1 + width * 3), np.uint8)
                    filtered[:, 0] = _PNG_FILTER_UP
                    np.subtract(chunk[0], above, out=filtered[0, 1:])
                    np.subtract(chunk[1:], chunk[:-1], out=filtered[1:, 1:])
                    above = chunk[-1].copy()
                    deflated = packer.compress(filtered)
                    if deflated:
                        stream.write(_png_chunk(b"IDAT", deflated))
                written += len(strip)
                del rows
            if written != height or width is None:
                raise ValueError(
                    f"cannot write {str(path)!r}: got {written} rows of the "
                    f"{height} announced"
                )
            stream.write(_png_chunk(b"IDAT", packer.flush()))
            stream.write(_png_chunk(b"IEND", b""))
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The ICC profile and EXIF block of an image file, to copy onto a result.

    Returns:
        dict with ``icc`` and ``exif`` (bytes, or None when absent); the EXIF
        orientation is set to 1, since :func:`read_pixels` applies it, and a
        TIFF's tags of its own layout (sizes, strips) are left out.
    """
    found = {"icc": None, "exif": None}
    if not Path(path).is_file():
        return found
    try:
        with _pillow_open(path) as opened:
            found["icc"] = opened.info.get("icc_profile") or None
            exif = opened.getexif()
            for tag in (_TIFF_STRUCTURE | {_TIFF_ICC_TAG}) & set(exif):
                del exif[tag]  # a TIFF's own layout (its IFD0 is its EXIF), its ICC
            if len(exif):
                if EXIF_ORIENTATION_TAG in exif:
                    exif[EXIF_ORIENTATION_TAG] = 1
                block = exif.tobytes()
                found["exif"] = block[6:] if block.startswith(b"Exif\0\0") else block
    except Exception:  # noqa: BLE001  (unreadable metadata is not copied)
        return {"icc": None, "exif": None}
    return found


def _png_metadata(metadata: dict | None) -> bytes:
    """iCCP and eXIf chunks for a PNG (before its IDAT chunks)."""
    chunks = b""
    if metadata and metadata.get("icc"):
        body = b"ICC Profile\0\0" + zlib.compress(metadata["icc"])
        chunks += _png_chunk(b"iCCP", body)
    if metadata and metadata.get("exif"):
        chunks += _png_chunk(b"eXIf", metadata["exif"])
    return chunks


def _jpeg_metadata(metadata: dict | None) -> bytes:
    """APP1 (EXIF) and APP2 (ICC, in chunks) segments for a JPEG."""
    segments = b""
    if metadata and metadata.get("exif"):
        body = b"Exif\0\0" + metadata["exif"]
        if len(body) <= 65533:
            segments += b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    icc = (metadata or {}).get("icc") or b""
    parts = [icc[i : i + 65519] for i in range(0, len(icc), 65519)]
    for number, part in enumerate(parts if len(parts) < 256 else [], 1):
        body = b"ICC_PROFILE\0" + bytes([number, len(parts)]) + part
        segments += b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body
    return segments


def _add_metadata(temporary: Path, metadata: dict | None) -> None:
    """Copy ICC and EXIF into a PNG, JPEG, WebP or TIFF just encoded (BMP: as is).

    A PNG, JPEG or WebP is copied once, with the chunks or segments after its
    header; a TIFF gets a new first directory appended.
    """
    suffix = temporary.suffix.lower()
    if not metadata or not (metadata.get("icc") or metadata.get("exif")):
        return
    if suffix == ".webp":
        _add_webp_metadata(temporary, metadata)
        return
    if suffix in (".tif", ".tiff"):
        _add_tiff_metadata(temporary, metadata)
        return
    if suffix == ".png":
        extra, header = _png_metadata(metadata), len(_PNG_SIGNATURE) + 25  # IHDR
    elif suffix in (".jpg", ".jpeg"):
        extra, header = _jpeg_metadata(metadata), 2  # SOI
    else:
        return
    if not extra:
        return
    staged = temporary.with_name(temporary.name + ".meta" + suffix)
    try:
        with open(temporary, "rb") as source, open(staged, "wb") as target:
            head = source.read(header)
            if suffix != ".png" and source.read(2) == b"\xff\xe0":  # JFIF first
                (length,) = struct.unpack(">H", source.read(2))
                head += b"\xff\xe0" + struct.pack(">H", length)
                head += source.read(length - 2)
            else:
                source.seek(header)
            target.write(head + extra)
            while block := source.read(2**22):
                target.write(block)
        os.replace(staged, temporary)
    finally:
        staged.unlink(missing_ok=True)


# Formats that hold an ICC profile and EXIF (a BMP holds neither).
METADATA_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
# WebP's extended header (VP8X) flags: ICC profile, alpha, EXIF.
_VP8X_ICC, _VP8X_ALPHA, _VP8X_EXIF = 0x20, 0x10, 0x08


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    """One RIFF chunk: type, little-endian length, body padded to an even length."""
    return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)


def _add_webp_metadata(temporary: Path, metadata: dict) -> None:
    """ICCP and EXIF chunks into a WebP (the extended format, VP8X, made from a
    simple VP8 or VP8L file), the image data copied as is."""
    staged = temporary.with_name(temporary.name + ".meta.webp")
    try:
        with open(temporary, "rb") as source, open(staged, "wb") as target:
            head = source.read(12)
            kind, length = struct.unpack("<4sI", source.read(8))
            first = source.read(length + length % 2)
            if kind == b"VP8X":
                flags, extended, image = first[0], first, b""
            else:  # a simple file: the canvas size is in the bitstream's header
                width, height, alpha = _webp_size(kind, first)
                flags = _VP8X_ALPHA if alpha else 0
                extended = bytes(4) + struct.pack("<I", width - 1)[:3]
                extended += struct.pack("<I", height - 1)[:3]
                image = kind + struct.pack("<I", length) + first
            if metadata.get("icc"):
                flags |= _VP8X_ICC
            if metadata.get("exif"):
                flags |= _VP8X_EXIF
            # Order: VP8X, ICCP, the image (ALPH, VP8/VP8L), EXIF (the WebP spec).
            target.write(head + _riff_chunk(b"VP8X", bytes([flags]) + extended[1:]))
            if metadata.get("icc"):
                target.write(_riff_chunk(b"ICCP", metadata["icc"]))
            target.write(image)
            while block := source.read(2**22):
                target.write(block)
            if metadata.get("exif"):
                target.write(_riff_chunk(b"EXIF", metadata["exif"]))
            size = target.tell() - 8
            target.seek(4)
            target.write(struct.pack("<I", size))
        os.replace(staged, temporary)
    finally:
        staged.unlink(missing_ok=True)


def _webp_size(kind: bytes, body: bytes) -> tuple[int, int, bool]:
    """(width, height, has alpha) from a VP8L or VP8 bitstream's header."""
    if kind == b"VP8L":  # signature 0x2f, then 14 + 14 bits of size, 1 of alpha
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)
    # VP8: a 3-byte frame tag, the start code 9d 01 2a, then 14-bit sizes
    width, height = struct.unpack("<HH", body[6:10])
    return width & 0x3FFF, height & 0x3FFF, False


# TIFF tags of the image's own structure (sizes, samples, strips, compression):
# an EXIF block's values for them describe another file and are not copied.
_TIFF_STRUCTURE = frozenset(
    (254, 256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 338, 339)
    + (513, 514, 530, 531)  # the thumbnail and YCbCr tags of a JPEG's EXIF
)
_TIFF_ICC_TAG = 34675
_EXIF_POINTERS = (0x8769, 0x8825)  # the Exif and GPS directories
_EXIF_INTEROPERABILITY = 0xA005  # a pointer inside the Exif directory


def _add_tiff_metadata(temporary: Path, metadata: dict) -> None:
    """ICC profile (tag 34675) and EXIF into a TIFF (the classic format).

    A new first directory is appended: the encoder's entries as they are (their
    values and strips stay where they are) and the metadata's, serialised by
    Pillow in the file's byte order. The old directory stays, unreferenced.
    """
    from PIL import Image, TiffImagePlugin, TiffTags

    with open(temporary, "r+b") as stream:
        header = stream.read(8)
        order = {b"II": "<", b"MM": ">"}.get(header[:2])
        if order is None or struct.unpack(order + "H", header[2:4])[0] != 42:
            return  # BigTIFF (over 4 GB): left as encoded
        first = struct.unpack(order + "I", header[4:8])[0]
        stream.seek(first)
        (count,) = struct.unpack(order + "H", stream.read(2))
        entries = [stream.read(12) for _ in range(count)]
        (following,) = struct.unpack(order + "I", stream.read(4))
        own = {struct.unpack(order + "H", entry[:2])[0] for entry in entries}
        added = TiffImagePlugin.ImageFileDirectory_v2(header)
        if metadata.get("icc"):
            added[_TIFF_ICC_TAG] = metadata["icc"]
            added.tagtype[_TIFF_ICC_TAG] = TiffTags.UNDEFINED
        if metadata.get("exif"):
            exif = Image.Exif()
            exif.load(metadata["exif"])
            for tag, value in exif.items():
                if tag not in _TIFF_STRUCTURE and tag not in _EXIF_POINTERS:
                    added[tag] = value
            for pointer in _EXIF_POINTERS:
                inner = dict(exif.get_ifd(pointer))
                inner.pop(_EXIF_INTEROPERABILITY, None)  # would point nowhere
                if inner:
                    added[pointer] = inner
        for tag in own:
            if tag in added:
                del added[tag]
        stream.seek(0, os.SEEK_END)
        if stream.tell() % 2:
            stream.write(b"\0")  # directories start on a word boundary
        place = stream.tell()
        # Pillow places the values after its own entries; ours come first.
        serialised = added.tobytes(place + 12 * count)
        number = len(added)
        new_entries = [serialised[2 + 12 * k : 14 + 12 * k] for k in range(number)]
        values = serialised[2 + 12 * number + 4 :]
        merged = sorted(
            entries + new_entries,
            key=lambda entry: struct.unpack(order + "H", entry[:2])[0],  # by tag
        )
        stream.write(struct.pack(order + "H", len(merged)) + b"".join(merged))
        stream.write(struct.pack(order + "I", following) + values)
        stream.seek(4)
        stream.write(struct.pack(order + "I", place))


def frame_count(path: str | os.PathLike) -> int:
    """Frames (or pages) of an image file: above 1 for an animated GIF or WebP or a
    multi-page TIFF, of which OpenCV reads the first only; 1 when unknown."""
    if not Path(path).is_file():  # never open a pipe or a device
        return 1
    try:
        with _pillow_open(path) as opened:
            return int(getattr(opened, "n_frames", 1) or 1)
    except Exception:  # noqa: BLE001  (not an image Pillow knows: one frame)
        return 1


def upscale_alpha(alpha: np.ndarray, factor: int) -> np.ndarray:
    """An alpha channel (h, w) upscaled bicubically by ``factor``, same dtype.

    uint8 and uint16 values are clipped and rounded back to their type.
    """
    divisor = _PIXEL_DIVISORS.get(alpha.dtype, 1.0)
    wide = bicubic_upscale(pixels_to_float(alpha)[..., None], factor)[..., 0]
    np.clip(wide, 0.0, 1.0, out=wide)
    if alpha.dtype not in _PIXEL_DIVISORS:
        return wide.astype(alpha.dtype)
    wide *= divisor
    return np.rint(wide, out=wide).astype(alpha.dtype)


def to_uint16(images: np.ndarray) -> np.ndarray:
    """The 16-bit samples of float values in [0, 1]: clipped, rounded, uint16."""
    scaled = np.clip(images, 0.0, 1.0).astype(np.float32)
    scaled *= 65535.0
    return np.rint(scaled, out=scaled).astype(np.uint16)


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


@functools.cache
def _blas() -> ThreadpoolController:
    """The controller of NumPy's BLAS threads (made once, on first use)."""
    return ThreadpoolController()


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
    on one thread (about 0.1 s for 100 images of 288x288 -> 72x72).
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
    # Two contractions, each one BLAS matrix product (optimize=True picks tensordot),
    # on one BLAS thread: beside a training step's own threads, OpenBLAS' spinning
    # threads made a training batch's resize 20-30x slower (16 ms instead of 0.5).
    with _blas().limit(limits=1, user_api="blas"):
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


def to_8bit(images: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to 1/255 steps, as saving an 8-bit file would.

    Args:
        images: float array, RGB in about [0, 1] (bicubic overshoots slightly).

    Returns:
        float32 array of the same shape, values k / 255 for integers k in [0, 255].
    """
    pixels = np.rint(np.clip(images, 0.0, 1.0) * EIGHT_BIT)
    return (pixels / EIGHT_BIT).astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """The 8-bit samples of float RGB in [0, 1]: clipped, rounded, as uint8.

    Args:
        images: float array, RGB in about [0, 1].

    Returns:
        uint8 array of the same shape, the integers k that :func:`to_8bit` divides
        by 255.
    """
    return np.rint(np.clip(images, 0.0, 1.0) * EIGHT_BIT).astype(np.uint8)
