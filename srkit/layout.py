"""Where things live: the project folder and every name inside a run folder.

A run folder (``runs/<profile>`` by default) holds everything one ``srkit run``
produces::

    RUN/
      params.yaml            resolved parameters of every step
      run.json               the run's records: steps, timings, versions, hardware
      book_build.log         output of the last book build
      run.lock               held by the running srkit run (its PID inside)
      .kernels/              kernel files of the running step (swept by the next run)
      pages/<stem>.ipynb     the executed step notebooks of this run; a run that ends
                             well publishes them to book/steps/
      data/<key>.npz         prepared data, shared by the steps
      steps/<stem>/metrics.json
      steps/<stem>/kernel.log  the step kernel's own output (TensorFlow's C++ log,
                             crash reports); the notebook holds the cells' output
      models/<name>/best.keras, last.keras, history.csv, settings.json,
                    gif_<output>.gif

Notebooks, callbacks, training, records, the report helpers and the pipeline ask
this module for these paths; no other module spells them. It also reads the
``folder:PATH`` form that names a folder of images (a data source, the benchmark
sets): :func:`parse_folder` is its one parser. It imports nothing from srkit, so
every floor may use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

#: Files of the project folder (relative to it).
TOC_FILE = "_toc.yml"
NOTEBOOK_DIR = "notebooks"
RUNS_DIR = "runs"
STEPS_PAGE_DIR = "book/steps"  # where _toc.yml expects the executed notebooks
ABOUT_PAGE = "book/about_run.md"
RUN_MARKER = ".srkit_run"  # in book/steps: the run folder the pages came from

#: The prefix of a value that names a folder: ``folder:PATH``.
FOLDER_PREFIX = "folder:"

#: Files of a run folder.
PARAMS_FILE = "params.yaml"
RUN_RECORDS = "run.json"
BOOK_LOG = "book_build.log"
METRICS_FILE = "metrics.json"
KERNEL_LOG = "kernel.log"  # in steps/<stem>: what the kernel process printed itself
LOCK_FILE = "run.lock"  # held (flock) by the running srkit run, with its PID
KERNEL_FILES_DIR = ".kernels"  # kernel connection files and temporary notebooks
PAGES_DIR = "pages"  # the run's executed step notebooks, before they are published

#: Files of a model folder (``RUN/models/<name>``).
BEST_FILE = "best.keras"
LAST_FILE = "last.keras"
HISTORY_FILE = "history.csv"
SETTINGS_FILE = "settings.json"


class ProjectNotFound(ValueError):
    """No srkit project where one was asked for or searched."""


def is_project(folder: Path) -> bool:
    """Whether ``folder`` holds ``_toc.yml`` and ``notebooks/``."""
    return (folder / TOC_FILE).is_file() and (folder / NOTEBOOK_DIR).is_dir()


def find_project(project: str | os.PathLike | None = None, start=None) -> Path:
    """Locate the project root: the folder holding ``_toc.yml`` and ``notebooks/``.

    Only the explicit folder, or the start folder and its parents, count: the
    installed srkit package's own checkout is never used as a fallback, because
    ``clean`` would delete, and ``run`` write, in a folder the user never named.

    Args:
        project: an explicit folder (``--project``); checked, not searched.
        start: where the upward search starts (default: the current directory).

    Returns:
        The absolute project folder.

    Raises:
        ProjectNotFound: when no such folder is found.
    """
    if project is not None:
        folder = Path(project).expanduser().resolve()
        if not is_project(folder):
            raise ProjectNotFound(
                f"{folder} is not an srkit project: it needs {TOC_FILE} and "
                f"{NOTEBOOK_DIR}/"
            )
        return folder
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if is_project(folder):
            return folder
    raise ProjectNotFound(
        f"no srkit project in {here} or a folder above it (a project holds "
        f"{TOC_FILE} and {NOTEBOOK_DIR}/): run from the project folder or pass "
        "--project DIR"
    )


def default_run_dir(project: str | os.PathLike, profile: str) -> Path:
    """``<project>/runs/<profile>``: where ``srkit run`` writes unless told."""
    return Path(project) / RUNS_DIR / Path(profile).stem


def parse_folder(value: object) -> str | None:
    """The PATH of a ``folder:PATH`` value, as written (``~`` not expanded).

    The one parser of the ``folder:`` prefix: data sources (``--data folder:PATH``),
    the ``benchmarks`` parameter, the paths the pages show and the absolute paths
    the pipeline hands the steps all read the prefix here.

    Args:
        value: any value; a string ``folder:`` followed by a PATH names a folder.

    Returns:
        PATH, or None when ``value`` names no folder: another string (``sample``),
        ``folder:`` with an empty PATH, or not a string.
    """
    if isinstance(value, str) and value.startswith(FOLDER_PREFIX):
        return value[len(FOLDER_PREFIX) :] or None
    return None


def shown_path(path: str | os.PathLike, project: str | os.PathLike | None) -> str:
    """A path as the pages show it: relative to the project, never absolute.

    Args:
        path: any path; a ``folder:PATH`` data source keeps its prefix.
        project: the project folder, or None when unknown.

    Returns:
        ``runs/quick`` for a folder inside the project; for one outside it, its last
        two parts after ``.../`` (``.../data/train``), which names it without
        exposing a machine's layout.
    """
    text = str(path)
    prefix = ""
    folder = parse_folder(text)
    if folder is not None:
        prefix, text = FOLDER_PREFIX, folder
    if not text or not os.path.isabs(text):
        return prefix + text
    target = Path(text)
    if project is not None:
        try:
            return prefix + (target.relative_to(Path(project)).as_posix() or ".")
        except ValueError:
            pass
    return prefix + ".../" + "/".join(target.parts[-2:])


class RunInUse(ValueError):
    """A run folder's lock is held by a running ``srkit run``."""


@contextlib.contextmanager
def idle_runs(project: Path, also: Path | None = None, doing: str = "this"):
    """Hold the lock (``RUN/run.lock``) of every run folder of ``project`` for the
    block, so that no ``srkit run`` starts or goes on writing under it meanwhile.

    Args:
        project: the project whose ``runs/*`` folders are locked.
        also: one more run folder (e.g. a ``--run-dir`` outside the project).
        doing: what the caller does, for the message (``"srkit clean"``).

    Raises:
        RunInUse: a run holds a lock; the message names the folder, the holder's
            PID and the way out. Nothing is locked then.
    """
    folders = sorted(path for path in (project / RUNS_DIR).glob("*") if path.is_dir())
    if also is not None and Path(also).absolute() not in map(Path.absolute, folders):
        folders.append(Path(also))
    with contextlib.ExitStack() as stack:
        for folder in folders:
            path = RunFolder(folder).lock
            if not path.is_file():
                continue  # never run (a run takes the lock before it writes)
            handle = stack.enter_context(open(path, encoding="utf-8"))  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = handle.read().strip() or "unknown"
                raise RunInUse(
                    f"run folder {folder} is in use by a running srkit run (PID "
                    f"{holder}, lock {path}): {doing} would change what it writes; "
                    "wait for it to finish (or stop it), then try again"
                ) from None
            stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)
        yield


def published_run(project: str | os.PathLike) -> Path | None:
    """The run folder whose pages ``book/steps`` holds: what its marker names.

    ``srkit run`` writes the marker when it publishes a run's pages (only a run
    that ended well does); None when there is no marker.
    """
    try:
        text = (Path(project) / STEPS_PAGE_DIR / RUN_MARKER).read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


def latest_run_dir(project: Path) -> Path | None:
    """The run folder of the pages in ``book/steps`` (else the newest run.json)."""
    folder = published_run(project)
    if folder is not None and (folder / RUN_RECORDS).is_file():
        return folder
    candidates = sorted(
        (Path(project) / RUNS_DIR).glob(f"*/{RUN_RECORDS}"),
        key=lambda p: p.stat().st_mtime,
    )
    return candidates[-1].parent if candidates else None


def read_records(run_dir: str | os.PathLike) -> dict:
    """The run's ``run.json`` (empty dict when absent or unreadable)."""
    path = Path(run_dir) / RUN_RECORDS
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def model_files(model_dir: str | os.PathLike) -> dict[str, Path]:
    """The files that training writes into one model folder, by role."""
    folder = Path(model_dir)
    return {
        "best_model": folder / BEST_FILE,
        "last_model": folder / LAST_FILE,
        "history": folder / HISTORY_FILE,
        "settings": folder / SETTINGS_FILE,
    }


def gif_path(model_dir: str | os.PathLike, output: str) -> Path:
    """``<model_dir>/gif_<output>.gif``: predictions of one output along training."""
    return Path(model_dir) / f"gif_{output}.gif"


class RunFolder:
    """The names inside one run folder.

    ``RunFolder(run_dir).model("dts_model")`` is where that model trains;
    ``.step_metrics("07_depth_to_space")`` is where its step writes its record.
    It is a path-like object (``Path(RunFolder(x)) == Path(x)``), so functions that
    take a run folder accept either. Nothing is created: callers make the folders
    they write into.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    def __fspath__(self) -> str:
        return str(self.root)

    @property
    def params(self) -> Path:
        return self.root / PARAMS_FILE

    @property
    def records(self) -> Path:
        return self.root / RUN_RECORDS

    @property
    def book_log(self) -> Path:
        return self.root / BOOK_LOG

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def kernels(self) -> Path:
        """Where a running step keeps its kernel files and temporary notebook."""
        return self.root / KERNEL_FILES_DIR

    @property
    def data(self) -> Path:
        """The prepared-data cache shared by the steps."""
        return self.root / "data"

    @property
    def steps(self) -> Path:
        return self.root / "steps"

    @property
    def pages(self) -> Path:
        """``pages/``: the executed step notebooks of this run."""
        return self.root / PAGES_DIR

    def page(self, stem: str) -> Path:
        """``pages/<stem>.ipynb``: one step's executed notebook in this run."""
        return self.pages / f"{stem}.ipynb"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def step(self, stem: str) -> Path:
        return self.steps / str(stem)

    def step_metrics(self, stem: str) -> Path:
        """``steps/<stem>/metrics.json``: the record one step writes."""
        return self.step(stem) / METRICS_FILE

    def step_kernel_log(self, stem: str) -> Path:
        """``steps/<stem>/kernel.log``: the output of the step's kernel process."""
        return self.step(stem) / KERNEL_LOG

    def all_step_metrics(self) -> list[Path]:
        """Every step record present, in step order."""
        return sorted(self.steps.glob(f"*/{METRICS_FILE}"))

    def model(self, name: str) -> Path:
        """``models/<name>``: the folder one model trains into."""
        return self.models / str(name)

    def best_model(self, name: str) -> Path:
        return self.model(name) / BEST_FILE

    def gif(self, name: str, output: str) -> Path:
        return gif_path(self.model(name), output)
