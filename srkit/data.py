"""Training data: a source turned into a deterministic train/validation split, cached.

This module owns the way from a data source to the split a notebook trains on.
``prepare`` reads a source (``sample``, ``folder:PATH``, ``voc2007`` or ``bsds300``,
each one entry of :data:`SOURCES`) and splits it by photo into a ``Split``: a
training source (random 288 px windows drawn afresh, or fixed windows) and fixed
validation triplets, with no photo on both sides. It checks the memory a request
needs before allocating, and caches the split on disk, keyed by the arguments and
a fingerprint of the source. Image files and resizing are :mod:`srkit.images`,
downloads :mod:`srkit.downloads`, the training windows :mod:`srkit.windows`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from srkit import downloads, images, windows
from srkit.atomic import atomic_path
from srkit.layout import parse_folder
from srkit.vocab import HIGH_SIZE, LOW_SIZE, MID_SIZE

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
MODES = ("patch", "resize", "crop")
PROGRESS_MIN_IMAGES = 10  # show a progress bar only above this many images
CACHE_VERSION = 4  # bump when the cache layout or the preparation changes
VAL_MIN_WINDOWS = 8  # patch mode: at least this many fixed validation windows
# float32 bytes of one window with its x2 target and input (a quarter as uint8)
WINDOW_BYTES = 4 * 3 * (HIGH_SIZE**2 + MID_SIZE**2 + LOW_SIZE**2)
MEMORY_COPIES = 2  # the windows' list, then the stacked array


# ------------------------------------------------------------------------ splits


@dataclass
class Split:
    """Train and validation subsets plus a description of how they were made.

    Attributes:
        train: the training source: a :class:`srkit.windows.PatchSource` in patch
            mode, a :class:`srkit.windows.WindowSource` in crop and resize modes.
        val: the validation subset (no photo of it appears in ``train``).
        info: source, n_images, seed, mode, key, photo counts, n_train, n_val,
            cache_path, skipped files, from_cache.
    """

    train: windows.PatchSource | windows.WindowSource | windows.Subset
    val: windows.Subset
    info: dict


# ------------------------------------------------------------------------ memory


class NotEnoughMemory(ValueError):
    """A request whose estimated memory exceeds what the machine has available."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now, or None when unknown.

    The smaller of the host's (Linux's ``MemAvailable``: free memory plus
    reclaimable caches, else the free physical pages) and the container's: the
    cgroup v2 limit ``/sys/fs/cgroup/memory.max`` minus ``memory.current``, or
    cgroup v1's ``memory.limit_in_bytes`` minus ``memory.usage_in_bytes``. Tests
    replace this function to simulate a small machine.
    """
    host = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    host = int(line.split()[1]) * 1024
                    break
    if host is None:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            host = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    known = [value for value in (host, _cgroup_memory_left()) if value is not None]
    return min(known) if known else None


CGROUP_FILES = (  # (limit, usage): cgroup v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
    ),
)
# cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages).
_NO_CGROUP_LIMIT = 2**60


def _cgroup_memory_left() -> int | None:
    """Bytes the container's memory limit leaves, or None without a limit."""
    for limit_file, usage_file in CGROUP_FILES:
        with contextlib.suppress(OSError, ValueError):
            with open(limit_file, encoding="ascii") as stream:
                text = stream.read().strip()
            if text == "max":
                return None
            limit = int(text)
            if limit >= _NO_CGROUP_LIMIT:
                return None
            usage = 0
            with contextlib.suppress(OSError, ValueError):
                with open(usage_file, encoding="ascii") as stream:
                    usage = int(stream.read().strip())
            return max(limit - usage, 0)
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


# --------------------------------------------------------------- reading sources


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
            f"images ({', '.join(images.IMAGE_EXTENSIONS)})"
        )
    if not folder.is_dir():
        raise ValueError(f"data source {str(folder)!r} is not a folder")
    files = sorted(
        (
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in images.IMAGE_EXTENSIONS
        ),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise ValueError(
            f"data folder {str(folder)!r} holds no image files; looked for "
            f"{', '.join(images.IMAGE_EXTENSIONS)} (recursively)"
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
    return images.imresize(image, output_shape=(HIGH_SIZE, HIGH_SIZE))


def _make_subset(high: list[np.ndarray], names: list[str]) -> windows.Subset:
    """Stack uint8 HIGH_SIZE windows with their inputs and x2 targets (triplets)."""
    stacked = np.stack(high)
    if stacked.dtype != np.uint8:  # a float window here would be scaled twice
        raise TypeError(f"windows must be uint8, got {stacked.dtype}")
    y4 = stacked.astype(np.float32) / images.EIGHT_BIT
    x, y2 = windows.triplets(y4)
    return windows.Subset(x=x, y2=y2, y4=y4, names=list(names))


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


def _prepare_sample(
    folder: None, n_images: int, seed: int, mode: str, progress: bool
) -> tuple:
    """The sample photos' images of both sides (a :class:`Source` reader).

    Photos, not images, are split: about ``VAL_FRACTION`` of them are validation
    photos. ``folder`` is unused (the photos are found by :func:`sample_photos`);
    the rest as :func:`_prepare_folder`.
    """
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
        chosen = [(path, images.to_uint8(images.read_image(path))) for path in order]
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
        image = images.read_image(path)
        for index in range(count):
            crop = _to_high(image) if mode == "resize" else _random_crop(image, rng)
            high[side].append(images.to_uint8(crop))
            names[side].append(f"{path.stem}_{index:03d}")
    return high, names, {**counts, "photos": photo_info}, []


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
    counts = _spread(max(VAL_MIN_WINDOWS, len(val_items)), len(val_items), rng)
    per_name = dict(zip((name for _, name in val_items), counts, strict=True))
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
    """The images of a folder, on both sides (a :class:`Source` reader).

    Returns:
        ``(high, names, counts, skipped)``: uint8 images (whole in patch mode's
        training side, else 288 px windows) and their names per side
        (``"train"``, ``"val"``), the photo counts of ``info`` and the skipped
        files, each with its reason.
    """
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
            image = images.read_image(path)
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
        chosen.append((path, images.to_uint8(image)))
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


# -------------------------------------------------------------- the source table


@dataclass(frozen=True)
class Source:
    """One kind of data source: everything ``prepare`` and ``data_key`` ask of it.

    Attributes:
        form: how it is written (``"sample"``, ``"folder:PATH"``); a source whose
            form is its name (every one but ``folder``) is written by name.
        default_mode: the mode of ``prepare(mode=None)``.
        fingerprint: ``(folder) -> str`` that changes when the source's images do,
            computed cheaply (no image read, nothing downloaded): the cache key's.
        max_windows: ``(folder, n_images, mode) -> int``, at most how many 288 px
            windows a crop or resize preparation holds (the memory check).
        read: ``(folder, n_images, seed, mode, progress) -> (high, names, counts,
            skipped)``, the images of both sides (see :func:`_prepare_folder`).
        fetch: ``(progress) -> Path``, the folder of a downloaded source's images,
            downloaded once into the user-wide cache; None for a source that is
            read where it is.
    """

    form: str
    default_mode: str
    fingerprint: Callable[[Path | None], str]
    max_windows: Callable[[Path | None, int, str], int]
    read: Callable[..., tuple]
    fetch: Callable[[bool], Path] | None = None


def _sample_fingerprint(folder: None) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _fingerprint(sample_photos(), None)


def _sample_windows(folder: None, n_images: int, mode: str) -> int:
    """Resize mode: one window per photo; crop mode: ``n_images`` crops."""
    return min(n_images, len(sample_photos())) if mode == "resize" else n_images


def _folder_fingerprint(folder: Path) -> str:
    return _fingerprint(_folder_files(folder), folder)


def _folder_windows(folder: Path, n_images: int, mode: str) -> int:
    """One window per image: ``n_images`` of the folder's (0: all of them)."""
    count = len(_folder_files(folder))
    return count if n_images == 0 else min(n_images, count)


def _requested_windows(folder: None, n_images: int, mode: str) -> int:
    """A download's size is unknown before it is fetched: as many as asked."""
    return n_images


# A download is fingerprinted by the checksum its archive is verified against, and
# fetched once for every run folder: the archive lives in the user-wide cache
# (SRKIT_CACHE), not in the run's own cache_dir.


def _voc2007_folder(progress: bool) -> Path:
    return downloads.fetch_voc2007(downloads.default_cache_dir(), progress=progress)


def _bsds300_folder(progress: bool) -> Path:
    """The 200 training images only: images/test is BSD100, a benchmark set."""
    root = downloads.fetch_bsds300(downloads.default_cache_dir(), progress=progress)
    return downloads.bsds300_train_folder(root)


#: Every data source, by name; a new source is one entry here.
SOURCES = {
    "sample": Source(
        form="sample",
        default_mode="patch",
        fingerprint=_sample_fingerprint,
        max_windows=_sample_windows,
        read=_prepare_sample,
    ),
    "folder": Source(
        form="folder:PATH",
        default_mode="patch",
        fingerprint=_folder_fingerprint,
        max_windows=_folder_windows,
        read=_prepare_folder,
    ),
    "voc2007": Source(
        form="voc2007",
        # VOC 2007 keeps the original study's whole-photo resize by default.
        default_mode="resize",
        fingerprint=lambda folder: downloads.VOC2007_HASH,
        max_windows=_requested_windows,
        read=_prepare_folder,
        fetch=_voc2007_folder,
    ),
    "bsds300": Source(
        form="bsds300",
        default_mode="patch",
        fingerprint=lambda folder: downloads.BSDS300_HASH,
        max_windows=_requested_windows,
        read=_prepare_folder,
        fetch=_bsds300_folder,
    ),
}
SOURCE_FORMS = tuple(source.form for source in SOURCES.values())


def _parse_source(source: str) -> tuple[str, Path | None]:
    """Split a source string into its kind (a key of SOURCES) and, for folders,
    the path."""
    if not isinstance(source, str):
        raise ValueError(
            f"source must be a string, one of {SOURCE_FORMS}; got {source!r}"
        )
    path = parse_folder(source)
    if path is not None:
        return "folder", Path(path).expanduser()
    if source in SOURCES and SOURCES[source].form == source:
        return source, None
    raise ValueError(
        f"unknown data source {source!r}; valid forms are "
        + ", ".join(repr(form) for form in SOURCE_FORMS)
    )


def _resolve_mode(kind: str, mode: str | None) -> str:
    if mode is None:
        return SOURCES[kind].default_mode
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES} or None")
    return mode


def _windows_estimate(kind: str, folder, n_images: int, mode: str) -> int:
    """How many 288 px float windows a preparation will hold (upper bound)."""
    if mode == "patch":
        return 0  # whole uint8 images, bounded by the source itself
    return SOURCES[kind].max_windows(folder, n_images, mode)


def data_key(
    source: str = "sample", n_images: int = 100, seed: int = 0, mode: str | None = None
) -> str:
    """The cache key of ``prepare(source, n_images, seed, mode)``, computed cheaply.

    The key hashes the arguments, the image sizes, the cache version and a fingerprint
    of the source (file names, sizes and modification times; for a download the
    archive checksum), so a changed source gives a new key. It reads no image and
    downloads nothing. The folder's own location is not part of the key: a moved
    folder with the same files keeps its cache.

    Args:
        source: "sample", "folder:PATH", "voc2007" or "bsds300".
        n_images: number of images (crops) requested.
        seed: random seed of the selection, crops and split.
        mode: "patch", "resize", "crop" or None (the source's default).

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
        "fingerprint": SOURCES[kind].fingerprint(folder),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------- split and cache


def _build(kind, folder, n_images, seed, mode, progress) -> Split:
    """Read the source and make the split (the slow path, no cache)."""
    source = SOURCES[kind]
    if source.fetch is not None:
        folder = source.fetch(progress)
    high, names, counts, skipped = source.read(folder, n_images, seed, mode, progress)
    subsets = {}
    for side in ("train", "val"):
        if side == "train" and mode == "patch":
            subsets[side] = windows.PatchSource(high[side], names[side])
            continue
        # Shuffle within a subset so that its first images come from several photos.
        order = np.random.default_rng([seed, side == "val"]).permutation(
            len(high[side])
        )
        shuffled = [high[side][int(i)] for i in order]
        ordered = [names[side][int(i)] for i in order]
        high[side] = None  # the stacked copy replaces the list
        if side == "train":
            subsets[side] = windows.WindowSource(np.stack(shuffled), ordered)
        else:
            subsets[side] = _make_subset(shuffled, ordered)
    info = {**counts, "skipped": skipped}
    return Split(train=subsets["train"], val=subsets["val"], info=info)


def _save(path: Path, split: Split) -> None:
    """Write the split as .npz through :func:`srkit.atomic.atomic_path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"info": np.array(json.dumps(split.info))}
    for side in ("train", "val"):
        subset = getattr(split, side)
        if isinstance(subset, windows.PatchSource):  # whole uint8 images of any size
            arrays[f"{side}_names"] = np.array(subset.names, str)
            arrays.update(
                {f"{side}_image_{i}": image for i, image in enumerate(subset.images)}
            )
            continue
        if isinstance(subset, windows.WindowSource):
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
                subsets[side] = windows.WindowSource(
                    archive[f"{side}_y4_u8"],
                    names,
                    x_u8=archive[f"{side}_x_u8"],
                    y2_u8=archive[f"{side}_y2_u8"],
                )
                continue
            if f"{side}_x" not in archive.files:
                stored = [archive[f"{side}_image_{i}"] for i in range(len(names))]
                subsets[side] = windows.PatchSource(stored, names)
                continue
            subsets[side] = windows.Subset(
                x=archive[f"{side}_x"],
                y2=archive[f"{side}_y2"],
                y4=archive[f"{side}_y4"],
                names=names,
            )
        info = json.loads(str(archive["info"]))
    return Split(train=subsets["train"], val=subsets["val"], info=info)


def _check_arguments(n_images, seed, mode: str) -> tuple[int, int]:
    """``n_images`` and ``seed`` of ``prepare`` as ints, or a ValueError."""
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
    return n_images, seed


def _load_cached(cache_path: Path) -> Split | None:
    """The cached split at ``cache_path``; None (with a warning when the file is
    unreadable) when there is none to use."""
    if not cache_path.is_file():
        return None
    try:
        split = _load(cache_path)
    except (OSError, ValueError, KeyError) as error:
        warnings.warn(
            f"rebuilding unreadable data cache {cache_path}: {error}", stacklevel=3
        )
        return None
    split.info.update(cache_path=str(cache_path), from_cache=True)
    return split


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
      as uint8 in a :class:`srkit.windows.PatchSource` that draws fresh random
      288 px windows with flips and 90-degree rotations at every training step;
      each validation image gives fixed random windows (at least
      ``VAL_MIN_WINDOWS`` in all).
      Images smaller than 288 px on a side are skipped with one warning naming them.
    * ``crop``: fixed random 288x288 crops with random horizontal flips (small
      images skipped likewise).
    * ``resize``: the whole image resized to 288x288 with ``images.imresize``, as
      the original study did.

    The 144 px x2 target and the 72 px input are ``images.downscale`` of the 288
    px window, clipped to [0, 1] and rounded to 8 bits
    (:func:`srkit.windows.triplets`), as saved low-resolution files would be.
    Sources (:data:`SOURCES`):

    * ``sample`` (offline default): scikit-image's bundled photos and matplotlib's
      grace_hopper.jpg. About 20% of the *photos* are validation photos, so no
      validation pixel is seen in training. Patch mode uses every photo; crop mode
      cuts ``n_images`` crops, about 20% of them from validation photos; resize
      mode gives one image per photo (n_images capped at the number of photos).
    * ``folder:PATH``: every jpg/jpeg/png/bmp/tif/tiff/webp under PATH, sorted;
      ``n_images`` of them chosen with the seed (0: all); unreadable files skipped
      with a warning; 80/20 split by image, decided by a hash of the file name.
    * ``voc2007``: PASCAL VOC 2007 trainval, and ``bsds300``: the 200 BSDS300
      training images, each downloaded once into the user-wide cache
      (``$SRKIT_CACHE``, default ``~/.cache/srkit/data``) and checksum-verified
      (:mod:`srkit.downloads`), then read as a folder; a user who already has the
      archive can put it there, or point ``folder:`` at the extracted images.

    The same arguments give identical arrays. The result is cached in
    ``cache_dir/<data_key>.npz``; a changed source file changes the key.

    Args:
        source: "sample", "folder:PATH", "voc2007" or "bsds300".
        n_images: source images to use (crop mode: crops to make), >= 2; 0 means
            every image of the source (not in crop mode).
        seed: seed of the photo/image choice, the windows, flips and the split.
        mode: "patch", "crop", "resize" or None ("resize" for voc2007, "patch"
            otherwise).
        cache_dir: cache folder; default ``$SRKIT_CACHE`` or ``~/.cache/srkit/data``.
        progress: show a progress bar on stderr when loading more than 10 images
            (and while downloading).

    Returns:
        Split with ``train`` (a :class:`srkit.windows.PatchSource` in patch mode,
        a :class:`srkit.windows.WindowSource` of uint8 windows otherwise; both give
        float32 batches through ``draw``), ``val`` (a :class:`srkit.windows.Subset`,
        x: float32 (n, 72, 72, 3), y2: (n, 144, 144, 3), y4: (n, 288, 288, 3), RGB
        in [0, 1]) and ``info``.

    Raises:
        ValueError: unknown source or mode, n_images < 2, a missing or empty folder,
            fewer than 2 usable images, a failed or corrupt download.
        NotEnoughMemory: the windows asked for would not fit in memory.
    """
    kind, folder = _parse_source(source)
    mode = _resolve_mode(kind, mode)
    n_images, seed = _check_arguments(n_images, seed, mode)
    if cache_dir:
        cache_dir = Path(cache_dir).expanduser()
    else:
        cache_dir = downloads.default_cache_dir()
    key = data_key(source, n_images, seed, mode)
    cache_path = cache_dir / f"{key}.npz"
    cached = _load_cached(cache_path)
    if cached is not None:
        return cached
    n_windows = _windows_estimate(kind, folder, n_images, mode)
    # Training windows are uint8 (held twice while stacked); validation is float32.
    per_window = WINDOW_BYTES // 4 * MEMORY_COPIES + VAL_FRACTION * WINDOW_BYTES
    check_memory(
        int(n_windows * per_window),
        f"preparing {n_windows} {mode} windows of {source!r}",
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
