"""Atomic file replacement: the one way srkit writes a file under its final name.

This module owns :func:`atomic_path`: the content goes to a temporary file in the
target's own folder, is flushed to disk and renamed over the target with
:func:`os.replace`, so a reader, a crash or an interruption sees either the
previous file or the complete new one, never a half-written file. Images
(``srkit.images.write_image``), metrics and run records (``srkit.records``,
``srkit.pipeline``), models and training artifacts (``srkit.checkpoints``,
``srkit.callbacks``) all go through it. It imports nothing from
srkit and nothing heavy, so every module may use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TMP_MARKER", "atomic_path", "write_json"]

# Marker in the names of temporary files, so a run folder can sweep up leftovers.
TMP_MARKER = ".tmp-"
_UNIQUE_HEX = 12  # characters of a random hex id in a temporary name


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where unsupported."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _publish_new(temporary: Path, path: Path) -> None:
    """Rename ``temporary`` to ``path`` only if ``path`` does not exist yet.

    A hard link fails atomically when the name is taken, so a file that appeared
    since the caller checked is never overwritten. File systems without hard links
    fall back to a check followed by the rename.
    """
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST, "exists already; not overwritten", str(path)
        ) from None
    except OSError:
        if path.exists() or path.is_symlink():
            raise FileExistsError(
                errno.EEXIST, "exists already; not overwritten", str(path)
            ) from None
        os.replace(temporary, path)
        return
    temporary.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    Write the file at the yielded path (with any library: ``model.save``, imageio,
    pandas...). When the ``with`` block ends without an exception the file is
    flushed to disk (``fsync``) and renamed over ``path`` with :func:`os.replace`,
    which is atomic on one file system: readers see either the old file or the
    complete new one. If the block or the rename raises (including
    ``KeyboardInterrupt``) the temporary file is deleted and ``path`` is left as it
    was.

    The temporary name is hidden (leading dot), contains :data:`TMP_MARKER` and ends
    with ``path``'s own suffix, so format detection by extension still works.

    Args:
        path: final file path; its folder is created if missing.
        overwrite: replace an existing ``path``; with False the rename fails with
            ``FileExistsError`` when ``path`` exists by then (checked atomically,
            so a file created while the block ran is kept too).

    Yields:
        ``pathlib.Path`` of the temporary file (not yet created).

    Raises:
        FileNotFoundError: the block wrote no file at the yielded path.
        FileExistsError: ``overwrite`` is False and ``path`` exists.
        OSError: the folder cannot be made, or the rename fails (e.g. ``path`` is a
            directory).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh unique name, not created here, so the writer creates the file with
    # the usual permissions (mkstemp's would be owner-only).
    temporary = path.with_name(
        f".{path.name}{TMP_MARKER}{uuid.uuid4().hex[:_UNIQUE_HEX]}{path.suffix}"
    )
    try:
        yield temporary
        if not temporary.is_file():
            raise FileNotFoundError(f"nothing was written to {temporary} for {path}")
        with open(temporary, "rb+") as written:
            written.flush()
            os.fsync(written.fileno())  # data on disk before the rename makes it live
        if overwrite:
            os.replace(temporary, path)
        else:
            _publish_new(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename is None or os.fsdecode(error.filename) != str(temporary):
            raise
        # Name the file the caller asked for, not our temporary one.
        try:
            renamed = type(error)(error.errno, error.strerror, str(path))
        except TypeError:  # an OSError subclass with its own constructor
            raise error from None
        raise renamed from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_json(path: str | os.PathLike, value, default=str) -> Path:
    """Write ``value`` as indented JSON through :func:`atomic_path`.

    Args:
        path: the file; its folder is created if missing.
        value: a JSON-able value.
        default: how other objects are written (``json.dumps``' ``default``).

    Returns:
        The path written.

    Raises:
        TypeError, ValueError: ``value`` cannot be written as JSON (nothing is
            written); OSError: the file cannot be written (an existing one is left
            as it was).
    """
    text = json.dumps(value, indent=2, default=default) + "\n"
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path
