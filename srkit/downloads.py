"""Downloaded data sets: one checksum-pinned archive fetcher and the sets it fetches.

This module owns getting a data set from the network into the user-wide cache
(``$SRKIT_CACHE``, default ``~/.cache/srkit/data``). :func:`fetch` is the one way
an archive comes in: pooch downloads it and checks its pinned checksum (a file with
another checksum is deleted, and the error names both digests), the wanted folder
is extracted into a temporary folder beside it and renamed into place (unsafe
members refuse the whole archive, links are skipped, a broken tar file is one
line), and a marker records the checksum, so that later calls with the same
checksum touch no network and no archive. A failed download, a checksum mismatch
and a broken archive are each one line that says what to do, including how to work
offline. ``fetch_voc2007`` and ``fetch_bsds300`` are the two data sets; a new one
is a :class:`DataSet` and a function that calls :func:`fetch` with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# The way out of a failed download that needs no network.
OWN_IMAGES = "train on images you have with --data folder:PATH"
MARKER_FILE = ".extracted"  # in the data set's cache folder: the extracted checksum

VOC2007_URL = (
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar"
)
VOC2007_HASH = "md5:c52e279531787c972589f7e41ab4ae64"
VOC2007_ARCHIVE = "VOCtrainval_06-Nov-2007.tar"
VOC2007_IMAGES = "VOCdevkit/VOC2007/JPEGImages"

BSDS300_URL = (
    "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz"
)
BSDS300_HASH = "sha256:a5f7d0e49fe135c75518a3543ced24470156fd69305ae77845dff2a5138652b4"
BSDS300_ARCHIVE = "BSDS300-images.tgz"
BSDS300_ROOT = "BSDS300"  # top folder of the archive: images/train, images/test


@dataclass(frozen=True)
class DataSet:
    """One downloadable data set: an archive and the folder extracted from it.

    Attributes:
        name: how messages name it (``"BSDS300"``).
        folder: its folder in the cache (``"bsds300"``).
        archive: the archive's file name, kept in that folder.
        extract: the archive path extracted (the rest of the archive is skipped);
            :func:`fetch` returns it inside the cache folder.
        required: archive folders that must hold ``*.jpg`` files, else the
            archive is refused.
    """

    name: str
    folder: str
    archive: str
    extract: str
    required: tuple[str, ...]


VOC2007 = DataSet(
    name="VOC2007",
    folder="voc2007",
    archive=VOC2007_ARCHIVE,
    extract=VOC2007_IMAGES,
    required=(VOC2007_IMAGES,),
)
BSDS300 = DataSet(
    name="BSDS300",
    folder="bsds300",
    archive=BSDS300_ARCHIVE,
    extract=BSDS300_ROOT,
    required=(f"{BSDS300_ROOT}/images/train", f"{BSDS300_ROOT}/images/test"),
)


def default_cache_dir() -> Path:
    """The user-wide data cache: ``$SRKIT_CACHE``, else ``~/.cache/srkit/data``."""
    env = os.environ.get("SRKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "srkit" / "data"


def fetch_voc2007(
    cache_dir: str | os.PathLike | None = None,
    url: str = VOC2007_URL,
    known_hash: str = VOC2007_HASH,
    *,
    progress: bool = True,
) -> Path:
    """Download, verify and extract PASCAL VOC 2007 trainval; return its JPEG folder.

    The archive (about 440 MiB) goes to ``cache_dir/voc2007/``; only
    ``VOCdevkit/VOC2007/JPEGImages`` is extracted (see :func:`fetch`).

    Args:
        cache_dir: cache folder; default ``$SRKIT_CACHE`` or ``~/.cache/srkit/data``.
        url: archive URL (http, https, ftp or file).
        known_hash: ``"md5:..."`` or ``"sha256:..."`` checksum of the archive.
        progress: show pooch's download progress bar.

    Returns:
        Path of the ``JPEGImages`` folder.

    Raises:
        ValueError: as :func:`fetch`.
    """
    return fetch(VOC2007, cache_dir, url, known_hash, progress=progress)


def fetch_bsds300(
    cache_dir: str | os.PathLike | None = None,
    url: str = BSDS300_URL,
    known_hash: str = BSDS300_HASH,
    *,
    progress: bool = True,
) -> Path:
    """Download, verify and extract the Berkeley segmentation images (BSDS300).

    The archive (about 22 MiB) goes to ``cache_dir/bsds300/``; its ``BSDS300``
    folder is extracted (see :func:`fetch`). Use :func:`bsds300_train_folder` (200
    training images) and :func:`bsds300_test_folder` (100 test images, the BSD100
    benchmark) on the returned folder.

    Args:
        cache_dir: cache folder; default ``$SRKIT_CACHE`` or ``~/.cache/srkit/data``.
        url: archive URL (http, https, ftp or file).
        known_hash: ``"sha256:..."`` (or ``"md5:..."``) checksum of the archive.
        progress: show pooch's download progress bar.

    Returns:
        Path of the extracted ``BSDS300`` folder, holding ``images/train`` and
        ``images/test``.

    Raises:
        ValueError: as :func:`fetch`.
    """
    return fetch(BSDS300, cache_dir, url, known_hash, progress=progress)


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


def _bsds300_split(root: str | os.PathLike, split: str) -> Path:
    folder = Path(root).expanduser() / "images" / split
    if not folder.is_dir():
        raise ValueError(
            f"no BSDS300 {split} folder at {str(folder)!r}: pass the folder returned "
            f"by fetch_bsds300 (it holds images/train and images/test)"
        )
    return folder


# ------------------------------------------------------------------ the fetcher


def fetch(
    data_set: DataSet,
    cache_dir: str | os.PathLike | None,
    url: str,
    known_hash: str,
    *,
    progress: bool = True,
) -> Path:
    """Download, verify and extract one data set's archive; return its folder.

    The archive goes to ``cache_dir/<data_set.folder>/`` through pooch, which
    checks ``known_hash`` before keeping it (a download with another checksum is
    deleted; the error names the expected and the received digest). A file already
    there with that checksum is used without a download, so a user can put the
    archive there by hand. ``data_set.extract`` is extracted into a temporary folder
    beside it and renamed into place, so an interrupted extraction is never taken
    as complete; unsafe members (absolute paths, ``..``) refuse the whole archive
    and links are not extracted. Once extracted, a marker file records the
    checksum: later calls with the same checksum touch no network and no archive,
    and a call with another checksum downloads and extracts again. A ``file://``
    URL is copied from the local disk.

    Args:
        data_set: what to fetch (:data:`VOC2007`, :data:`BSDS300`).
        cache_dir: cache folder; default ``$SRKIT_CACHE`` or ``~/.cache/srkit/data``.
        url: archive URL (http, https, ftp or file).
        known_hash: ``"sha256:..."`` (or ``"md5:..."``) checksum of the archive.
        progress: show pooch's download progress bar.

    Returns:
        Path of the extracted ``data_set.extract`` inside the cache folder.

    Raises:
        ValueError: a malformed ``known_hash``; the download's checksum does not
            match (file, expected and actual hash in the message); the download
            failed (no network: the message says where to put the archive by
            hand); the archive is not a readable tar file, holds an unsafe member
            or lacks a required folder of JPEGs.
    """
    algorithm, _ = _split_hash(known_hash)
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache_dir / data_set.folder
    extracted = target / data_set.extract
    marker = target / MARKER_FILE
    if (
        marker.is_file()
        and marker.read_text().strip() == known_hash
        and extracted.is_dir()
    ):
        return extracted
    _download(data_set, target, url, known_hash, algorithm, progress)
    _extract(data_set, target)
    marker.write_text(f"{known_hash}\n")
    return extracted


def _download(
    data_set: DataSet,
    target: Path,
    url: str,
    known_hash: str,
    algorithm: str,
    progress: bool,
) -> None:
    """Put the verified archive at ``target/<data_set.archive>`` (pooch)."""
    import pooch
    from pooch.downloaders import choose_downloader

    archive_path = target / data_set.archive
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
                fname=data_set.archive,
                path=target,
                downloader=downloader,
            )
    except ValueError as error:
        if downloader.digest is None:
            raise
        raise ValueError(
            f"checksum mismatch for the {data_set.name} data set downloaded from "
            f"{url} ({data_set.archive}): expected {known_hash}, got "
            f"{algorithm}:{downloader.digest}; the file is corrupt and was deleted, "
            "nothing was extracted: check the network (or a proxy that rewrites "
            f"downloads) and retry, or {manual}, or {OWN_IMAGES}"
        ) from error
    except OSError as error:
        reason = " ".join(str(error).split())  # one line: requests' text may wrap
        raise ValueError(
            f"could not download the {data_set.name} data set ({data_set.archive}) "
            f"from {url} ({reason}); to work offline, {manual}, or {OWN_IMAGES}"
        ) from error


def _extract(data_set: DataSet, target: Path) -> None:
    """Extract ``data_set.extract`` of the verified archive into ``target``.

    Staged in a temporary folder and renamed into place; the marker is removed
    first, so a crash in between leaves the data set unmarked (extracted again).
    """
    archive_path = target / data_set.archive
    top = data_set.extract.split("/")[0]
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".extract-"))
    try:
        with tarfile.open(archive_path) as archive:
            _check_member_paths(archive, staging, archive_path)
            members = list(_members_under(archive, data_set.extract))
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(staging, members=members, **kwargs)
        for folder in data_set.required:
            if not any((staging / folder).glob("*.jpg")):
                raise ValueError(
                    f"archive {str(archive_path)!r} holds no {folder}/*.jpg; delete "
                    "it and download it again"
                )
        (target / MARKER_FILE).unlink(missing_ok=True)
        if (target / top).exists():
            shutil.rmtree(target / top)  # unmarked (interrupted) or another checksum
        os.replace(staging / top, target / top)
    except tarfile.TarError as error:
        reason = " ".join(str(error).split())  # one line: tarfile lists each method
        raise ValueError(
            f"archive {str(archive_path)!r} is not a readable tar file ({reason}); "
            f"delete it and download it again"
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _split_hash(known_hash: str) -> tuple[str, str]:
    """``"sha256:abc..."`` -> ("sha256", "abc..."); a bare digest is SHA-256 (pooch)."""
    if not isinstance(known_hash, str):
        raise ValueError(f"known_hash must be 'sha256:<hex>', got {known_hash!r}")
    algorithm, _, digest = known_hash.rpartition(":")
    algorithm = algorithm.lower() or "sha256"
    if algorithm not in hashlib.algorithms_available or not digest:
        raise ValueError(f"known_hash must be 'sha256:<hex>', got {known_hash!r}")
    return algorithm, digest.lower()


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


def _members_under(archive: tarfile.TarFile, prefix: str):
    """The plain files and folders of ``archive`` at or under ``prefix``."""
    for member in archive.getmembers():
        name = member.name[2:] if member.name.startswith("./") else member.name
        if not (name == prefix or name.startswith(prefix + "/")):
            continue
        if member.isfile() or member.isdir():  # links and devices: never images
            yield member
