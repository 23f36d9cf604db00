"""The run: from ``srkit run``'s request to a finished run folder and book.

This module turns what the user asked for into a plan (the project's steps, their
resolved parameters, the data they read and each step's cache key), and carries it
out under the run folder's lock: it prepares the data once, executes each step whose
key changed (``srkit.execute``) into the run's own ``RUN/pages/``, skips the others,
keeps the run log ``RUN/run.json`` true on every way out (``ok``, ``failed`` or
``interrupted``), publishes the run's pages to ``book/steps/`` only when the run
ended well (so a failed or stopped run never replaces another run's pages) and
hands the book to ``srkit.book``. A step's cache key covers its source, its
parameters, the srkit source its notebook uses, its input data and folders and, for
a step that reads earlier steps, their records; a step is cached only while the run
folder holds its page and record. What a step is and which values it gets belong to
``srkit.steps``; how one step executes belongs to ``srkit.execute``. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from srkit import data as srkit_data
from srkit.atomic import atomic_path, write_json
from srkit.book import build_book, format_seconds, steps_table
from srkit.environment import collect_hardware, collect_versions, git_commit
from srkit.execute import (
    HEARTBEAT_S,
    KERNEL_NAME,
    StepFailed,
    ensure_kernel,
    execute_step,
)
from srkit.layout import (
    NOTEBOOK_DIR,
    RUN_MARKER,
    STEPS_PAGE_DIR,
    RunFolder,
    default_run_dir,
    find_project,
    parse_folder,
    published_run,
    read_records,
)
from srkit.speed_page import (
    LOAD_END,
    PROBE_KEY,
    load_average_now,
    needs_probe,
    probe_line,
    run_probe,
    step_start_facts,
)
from srkit.steps import (
    DEFAULT_PROFILE,
    FOLDER_PARAMETERS,
    PipelineError,
    RunSettings,
    Step,
    discover_steps,
    parameter_lines,
    select_steps,
)

# Code that does not change what a notebook computes: the run and its steps'
# parameters and execution, the book build, the command line, applying a model to
# files, the benchmarks and the speed section of the About page.
HASH_EXCLUDED = (
    "pipeline.py",
    "steps.py",
    "execute.py",
    "book.py",
    "cli.py",
    "__main__.py",
    "upscale.py",
    "bench.py",
    "bench_train.py",
    "speed_page.py",
)

Echo = Callable[[str], None]


class RunLocked(PipelineError):
    """Another ``srkit run`` holds the run folder's lock."""


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGTERM); ``str()`` names the signal."""


# ----------------------------------------------------------------- cache keys


def _sha256(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def srkit_source_hash() -> str:
    """Hash of the srkit package source (``srkit/**/*.py``).

    The modules of :data:`HASH_EXCLUDED` are left out: they decide which notebooks
    run and with which values, not what a notebook computes. Tests monkeypatch this.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative in HASH_EXCLUDED or "__pycache__" in path.parts:
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def data_inputs(
    step: Step, params: dict[str, Any]
) -> list[tuple[str, int, int, str | None]]:
    """The (source, n_images, seed, mode) data sets a step reads.

    One set per parameter of the step's ``data_sets`` declaration, from its
    ``data_source``; a count of 0 is every image of the source.
    """
    if not step.data_sets:
        return []
    source = params["data_source"]
    seed = int(params.get("seed", 0))
    mode = params.get("data_mode") or None
    return [(source, int(params[name]), seed, mode) for name in step.data_sets]


def data_key(source: str, n_images: int, seed: int, mode: str | None) -> str:
    """The cache key of one data set (``srkit.data.data_key``).

    Raises:
        ValueError: for a bad source (e.g. a missing folder), from srkit.data.
    """
    return srkit_data.data_key(source, n_images, seed, mode)


def prepare_data(source, n_images, seed, mode, cache_dir) -> dict:
    """Prepare (or load) one data set into ``cache_dir``; returns its info dict."""
    split = srkit_data.prepare(
        source, n_images=n_images, seed=seed, mode=mode, cache_dir=cache_dir
    )
    return dict(split.info)


def step_key(
    step: Step,
    params: dict,
    srkit_hash: str,
    data_keys: Sequence[str],
    upstream: dict[str, str] | None = None,
) -> str:
    """The cache key of a step: source, parameters, srkit source, data, upstream."""
    payload = {
        "source": _sha256(step.path.read_bytes()),
        "params": params,
        "srkit": srkit_hash,
        "data": list(data_keys),
        "upstream": upstream or {},
    }
    return _sha256(json.dumps(payload, sort_keys=True, default=str))[:24]


def folder_keys(params: dict[str, Any], project: Path) -> list[str]:
    """Fingerprints of the input folders named by a step's folder parameters.

    For each parameter of :data:`srkit.steps.FOLDER_PARAMETERS` set to
    ``folder:PATH`` (a relative PATH is taken from the project folder, as the
    notebooks do), a hash of every file below the folder: relative name, size and
    modification time. Adding, removing or replacing an image changes it; reading
    the images is not needed.

    Args:
        params: the step's resolved parameters.
        project: the project folder.

    Returns:
        One ``name=hash`` string per such parameter (``name=missing:PATH`` for a
        folder that does not exist; the step reports the error when it runs).
    """
    keys = []
    for name in FOLDER_PARAMETERS:
        path = parse_folder(str(params.get(name) or "").strip())
        if path is None:
            continue
        folder = Path(path).expanduser()
        folder = folder if folder.is_absolute() else Path(project) / folder
        if not folder.is_dir():
            keys.append(f"{name}=missing:{folder}")
            continue
        digest = hashlib.sha256()
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            stat = file.stat()
            relative = file.relative_to(folder).as_posix()
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        keys.append(f"{name}={digest.hexdigest()[:16]}")
    return keys


def _upstream_hashes(step: Step, steps: Sequence[Step], run_dir: Path) -> dict:
    """For a step that reads earlier steps: hashes of their metrics.json files.

    Every earlier step for a ``reads-earlier-steps`` step, the named ones for a
    ``reads-steps`` step (a page set against its control), none otherwise.
    """
    hashes = {}
    for other in steps:
        if other.stem >= step.stem:
            continue
        if not (step.reads_earlier_steps or other.stem in step.reads_steps):
            continue
        path = RunFolder(run_dir).step_metrics(other.stem)
        hashes[other.stem] = _sha256(path.read_bytes())[:16] if path.is_file() else ""
    return hashes


# ----------------------------------------------------------------------- plan


@dataclass(frozen=True)
class RunRequest:
    """What ``srkit run`` was asked for: the options that shape the plan.

    Attributes:
        project: project folder (None: found from the current directory).
        profile: "smoke", "default", "quick", "full" (or a YAML path).
        overrides: ``name=value`` or ``NN.name=value`` strings; a relative
            ``folder:PATH`` is taken from the current directory.
        only: steps to run (numbers or stems); empty: every step.
        data: data source for every step (``sample``, ``folder:PATH``,
            ``voc2007``), or None; a relative ``folder:PATH`` is taken from the
            current directory.
        force: execute the selected steps even when cached.
        run_dir: run folder (None: ``<project>/runs/<profile>``).
    """

    project: str | os.PathLike | None = None
    profile: str = DEFAULT_PROFILE
    overrides: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    data: str | None = None
    force: bool = False
    run_dir: str | os.PathLike | None = None


@dataclass
class RunPlan:
    """What one run works on: its steps, their parameters, data and cache keys.

    Attributes:
        project: the project folder.
        run_dir: the absolute run folder.
        settings: the profile, ``--data`` and ``-p`` choices, parsed.
        steps: every step of the project; ``selected``: those this run may execute.
        params: stem -> resolved parameters.
        data_sets: stem -> the (source, n_images, seed, mode) sets the step reads.
        data_keys: stem -> cache keys of its data sets and input folders (selected
            steps only).
        srkit_hash: hash of the srkit source that the notebooks use.
        only: the ``--only`` words as given, for the records.
        force: execute the selected steps even when cached.
    """

    project: Path
    run_dir: Path
    settings: RunSettings
    steps: list[Step]
    selected: list[Step]
    params: dict[str, dict]
    data_sets: dict[str, list[tuple]]
    data_keys: dict[str, list[str]]
    srkit_hash: str
    only: list[str] = field(default_factory=list)
    force: bool = False

    @property
    def profile(self) -> str:
        """The profile's name."""
        return self.settings.profile.name

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def published(self) -> Path:
        """Where the book's pages are published (``book/steps``)."""
        return self.project / STEPS_PAGE_DIR

    def own_page(self, step: Step) -> Path | None:
        """This run's executed notebook of a step, or None when it has none.

        ``RUN/pages/<stem>.ipynb``; for a run folder from before ``RUN/pages``
        (it has no such folder), the page in ``book/steps`` when the marker there
        names this run folder.
        """
        page = self.folder.page(step.stem)
        if page.is_file():
            return page
        legacy = self.published / f"{step.stem}.ipynb"
        if (
            not self.folder.pages.is_dir()
            and legacy.is_file()
            and published_run(self.project) == self.run_dir
        ):
            return legacy
        return None

    def key(self, step: Step) -> str:
        """The step's cache key now (its upstream records as they are on disk)."""
        upstream = _upstream_hashes(step, self.steps, self.run_dir)
        return step_key(
            step,
            self.params[step.stem],
            self.srkit_hash,
            self.data_keys[step.stem],
            upstream,
        )

    def is_cached(self, step: Step, key: str, old_steps: dict) -> bool:
        """Whether the step's last run succeeded with this key and left its files.

        The files are this run folder's own: its executed notebook
        (:meth:`own_page`) and its ``metrics.json``; what another run published to
        ``book/steps`` does not count.
        """
        record = old_steps.get(step.stem, {})
        return (
            not self.force
            and record.get("ok") is True
            and record.get("key") == key
            and self.own_page(step) is not None
            and self.folder.step_metrics(step.stem).is_file()
        )

    def to_run(self, old_steps: dict) -> dict[str, bool]:
        """Selected stem -> whether it needs executing (not cached)."""
        return {
            step.stem: not self.is_cached(step, self.key(step), old_steps)
            for step in self.selected
        }


def make_plan(request: RunRequest, echo: Echo = print) -> RunPlan:
    """Find the project and its steps, resolve every parameter, key the data.

    Relative ``folder:PATH`` values of ``--data`` and ``-p`` are made absolute
    here, from the current directory, before any step sees them.

    Args:
        request: what the run was asked for.
        echo: printer of notes about the profile.

    Returns:
        The RunPlan.

    Raises:
        ValueError: bad parameters or step names.
        ProjectNotFound: no project.
        PipelineError: a project without step notebooks.
    """
    project = find_project(request.project)
    steps = discover_steps(project)
    selected = select_steps(steps, request.only)
    run_dir = request.run_dir or default_run_dir(project, request.profile)
    run_dir = Path(run_dir).expanduser().resolve()
    settings = RunSettings.parse(
        request.profile, request.overrides, request.data, warn=echo
    )
    params = settings.resolve(steps, run_dir, warn=echo)
    data_sets = {s.stem: data_inputs(s, params[s.stem]) for s in steps}
    data_keys = {
        s.stem: [data_key(*item) for item in data_sets[s.stem]]
        + folder_keys(params[s.stem], project)
        for s in selected
    }
    return RunPlan(
        project=project,
        run_dir=run_dir,
        settings=settings,
        steps=steps,
        selected=selected,
        params=params,
        data_sets=data_sets,
        data_keys=data_keys,
        srkit_hash=srkit_source_hash(),
        only=list(request.only),
        force=request.force,
    )


# -------------------------------------------------------------------- run log


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class RunLog:
    """The run log: ``run.json`` as it is written, and this invocation's outcomes.

    Attributes:
        path: the ``run.json`` file that :meth:`save` writes.
        records: its content: the run's facts and one record per step.
        statuses: stem -> this invocation's outcome: "ran", "cached", "failed",
            "not run", "interrupted" or "untouched".
        seconds: stem -> wall time in this invocation (0 for a step not executed).
    """

    path: Path
    records: dict
    statuses: dict[str, str]
    seconds: dict[str, float]

    @classmethod
    def start(cls, plan: RunPlan, previous: dict) -> RunLog:
        """The log of a starting run (not yet saved): this run's facts, earlier steps.

        Every step starts "untouched" with its resolved parameters; a step that a
        killed run left "running" is marked interrupted and not ok.
        """
        records = {
            "project": str(plan.project),
            "run_dir": str(plan.run_dir),
            "profile": plan.profile,
            "overrides": plan.settings.override_texts,
            "data_option": plan.settings.data,
            "only": plan.only,
            "force": plan.force,
            "status": "running",
            "pid": os.getpid(),
            "started": _now(),
            "finished": None,
            "git_commit": git_commit(plan.project),
            "srkit_hash": plan.srkit_hash,
            "versions": collect_versions(),
            "hardware": collect_hardware(),
            "data": previous.get("data", []),
            "steps": {},
        }
        old_steps = previous.get("steps", {})
        for step in plan.steps:
            record = dict(old_steps.get(step.stem, {}))
            if record.get("status") == "running":  # a killed run's step: not done
                record.update(status="interrupted", ok=False)
            record["status"] = "untouched"
            record["params"] = plan.params[step.stem]
            records["steps"][step.stem] = record
        stems = [step.stem for step in plan.steps]
        return cls(
            path=plan.folder.records,
            records=records,
            statuses=dict.fromkeys(stems, "untouched"),
            seconds=dict.fromkeys(stems, 0.0),
        )

    def save(self) -> None:
        """Write ``run.json`` (atomically)."""
        write_json(self.path, self.records)

    def step(self, stem: str) -> dict:
        """The record of one step (changed in place, saved by :meth:`save`)."""
        return self.records["steps"][stem]

    def mark(self, stem: str, status: str) -> None:
        """Set a step's status in its record and its outcome in ``statuses``."""
        self.statuses[stem] = self.records["steps"][stem]["status"] = status

    def finish(self, failed: bool) -> None:
        """End the run as "failed" or "ok" and save."""
        self.records["status"] = "failed" if failed else "ok"
        self.records["finished"] = _now()
        self.save()

    def stop(self, error: BaseException) -> None:
        """End a run that an error or an interrupt stopped, and save.

        The running step ends "interrupted" (Ctrl-C, SIGTERM) or "failed", with
        the error; the planned ones end "not run".
        """
        stopped = isinstance(error, KeyboardInterrupt)
        status = "interrupted" if stopped else "failed"
        self.records["status"] = status
        self.records["error"] = f"{type(error).__name__}: {error}".strip()
        for stem, record in self.records["steps"].items():
            if record["status"] == "running":
                record.update(
                    ok=False,
                    finished=_now(),
                    error={"ename": type(error).__name__, "evalue": str(error)},
                )
                self.mark(stem, status)
            elif record["status"] == "planned":
                self.mark(stem, "not run")
        self.records["finished"] = _now()
        self.save()


# ------------------------------------------------------------ lock and signals


@contextlib.contextmanager
def run_lock(run_dir: Path, wait: bool = False, echo: Echo = print):
    """Hold the run folder's lock (``RUN/run.lock``) for the block.

    The lock is an ``flock`` on the file, which records the holder's PID. The
    operating system releases it when the process ends, however it ends, so the
    lock of a killed run never blocks the next one.

    Args:
        run_dir: the run folder (created if missing).
        wait: wait for the holder to finish instead of refusing.
        echo: printer of the "waiting" line.

    Raises:
        RunLocked: another process holds the lock and ``wait`` is False.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = RunFolder(run_dir).lock
    with open(path, "a+", encoding="utf-8") as handle:  # not inherited by kernels
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            if not wait:
                raise RunLocked(
                    f"run folder {run_dir} is in use by another srkit run (PID "
                    f"{holder}, lock {path}): wait for it to finish, pass --wait, "
                    "or choose another --run-dir"
                ) from None
            echo(f"srkit run: waiting for PID {holder}, which holds {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sweep_kernel_files(run_dir: Path) -> None:
    """Remove kernel connection files and temporary notebooks of an earlier run.

    They live in ``RUN/.kernels`` and are the leftovers of a killed run; the
    caller holds the run lock, so no running step uses them.
    """
    shutil.rmtree(RunFolder(run_dir).kernels, ignore_errors=True)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Turn SIGTERM into :class:`RunInterrupted` for the block (main thread only).

    The run then ends through the same path as Ctrl-C: records saved as
    "interrupted", the kernel shut down, temporary files removed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------- pages


def _same_bytes(first: Path, second: Path) -> bool:
    """Whether two files exist and hold the same bytes."""
    try:
        return first.read_bytes() == second.read_bytes()
    except OSError:
        return False


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy a file so that readers of ``target`` see the old or the new one whole."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def _adopt_published_pages(plan: RunPlan) -> None:
    """Copy into ``RUN/pages`` the pages an older srkit published for this run.

    Before ``RUN/pages`` existed a step's page lived only in ``book/steps``; a run
    folder whose pages are still published there keeps its cached steps. Creates
    ``RUN/pages``.
    """
    if plan.folder.pages.is_dir():
        return
    legacy = {step.stem: plan.own_page(step) for step in plan.steps}
    plan.folder.pages.mkdir(parents=True)
    for stem, page in legacy.items():
        if page is not None:
            _copy_atomically(page, plan.folder.page(stem))


PUBLISH_LOCK = ".publish.lock"  # in book/steps: one run publishes at a time


@contextlib.contextmanager
def publish_lock(folder: Path):
    """Hold ``folder/.publish.lock`` (an ``flock``) for the block, waiting for it.

    Two runs in different run folders that end at the same moment publish one
    after the other, so ``book/steps`` never shows one run's 02 beside the other's
    03. Publishing takes a fraction of a second; the operating system releases
    the lock of a killed process.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / PUBLISH_LOCK, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish_pages(plan: RunPlan, records: dict, echo: Echo = print) -> list[str]:
    """Publish this run's pages to ``book/steps`` and mark them as this run's.

    Called only when a run ended well: a failed or stopped run leaves the published
    pages (and the marker that ``srkit upscale`` and ``srkit book`` read) as they
    were. Each step whose record is ok and whose ``RUN/pages/<stem>.ipynb`` exists
    is copied atomically, only when the published page differs (so a page that
    another run published is put back, and an unchanged one keeps its time stamp).
    The pages and the marker are published together under :func:`publish_lock`.

    Args:
        plan: the run's plan.
        records: the run's ``run.json`` content (the step records say which ended
            ok).
        echo: printer of the line naming the pages published and of a note naming
            published pages this run has no successful page for.

    Returns:
        The stems whose pages were copied.
    """
    with publish_lock(plan.published):
        copied, others = _publish_locked(plan, records)
    if copied:
        echo(f"pages: published to {STEPS_PAGE_DIR}/: {', '.join(copied)}")
    if others:
        echo(
            f"note: {STEPS_PAGE_DIR}/ still shows pages of an earlier or another run "
            f"for {', '.join(others)} (this run has no successful page of them)"
        )
    return copied


def _publish_locked(plan: RunPlan, records: dict) -> tuple[list[str], list[str]]:
    """The copies of :func:`publish_pages`, under its lock: the stems copied, and
    those left showing another run's page."""
    copied, others = [], []
    for step in plan.steps:
        page = plan.folder.page(step.stem)
        target = plan.published / f"{step.stem}.ipynb"
        if records["steps"].get(step.stem, {}).get("ok") is not True or not (
            page.is_file()
        ):
            if target.is_file():
                others.append(step.stem)
            continue
        if not _same_bytes(page, target):
            _copy_atomically(page, target)
            copied.append(step.stem)
    if published_run(plan.project) != plan.run_dir:
        with atomic_path(plan.published / RUN_MARKER) as temporary:
            temporary.write_text(str(plan.run_dir) + "\n", encoding="utf-8")
    return copied, others


# ------------------------------------------------------------------------ run


@dataclass
class RunResult:
    """What ``run`` did.

    Attributes:
        run_dir: the run folder.
        statuses: stem -> "ran", "cached", "failed", "not run" or "untouched".
        seconds: stem -> wall time of this invocation (0 for cached/untouched).
        book_index: ``_build/html/index.html`` when the book was built.
        records: the saved ``run.json`` content.
    """

    run_dir: Path
    statuses: dict[str, str]
    seconds: dict[str, float]
    book_index: Path | None = None
    records: dict = field(default_factory=dict)


def run(
    project: str | os.PathLike | None = None,
    profile: str = DEFAULT_PROFILE,
    overrides: Sequence[str] = (),
    only: Sequence[str] | None = None,
    data: str | None = None,
    force: bool = False,
    run_dir: str | os.PathLike | None = None,
    book: bool = True,
    strict: bool = False,
    dry_run: bool = False,
    echo: Echo = print,
    heartbeat_s: float = HEARTBEAT_S,
    wait: bool = False,
) -> RunResult:
    """Run the pipeline: resolve, prepare data, execute steps, build the book.

    The run holds the run folder's lock (:func:`run_lock`) from the first write
    to the end, so two runs never write one ``run.json``. Whatever ends the run
    (a failed step, a data error, Ctrl-C, SIGTERM), ``run.json`` is saved with
    status "failed" or "interrupted" and each step's outcome before the error goes
    on to the caller.

    Args:
        project: project folder (default: found from the current directory).
        profile: "smoke", "default", "quick", "full" (or a YAML path).
        overrides: ``name=value`` or ``NN.name=value`` strings; a relative
            ``folder:PATH`` is taken from the current directory.
        only: steps to run (numbers or stems); the others keep their records.
        data: data source for every step (``sample``, ``folder:PATH``, ``voc2007``);
            a relative ``folder:PATH`` is taken from the current directory.
        force: execute the selected steps even when cached.
        run_dir: run folder (default ``<project>/runs/<profile>``).
        book: build the book after the steps.
        strict: build the book with ``-W -n --keep-going``.
        dry_run: print the plan (status per step) without executing anything.
        echo: printer of progress lines.
        heartbeat_s: seconds between "still running" lines.
        wait: when another run holds the run folder, wait for it instead of
            refusing.

    Returns:
        RunResult.

    Raises:
        ValueError: bad parameters or step names.
        StepFailed: a step raised (records and summary are written first).
        RunLocked: another run holds the run folder (without ``wait``).
        RunInterrupted: SIGTERM (KeyboardInterrupt for Ctrl-C) stopped the run.
        PipelineError: no project, or a failed book build.
    """
    request = RunRequest(
        project=project,
        profile=profile,
        overrides=tuple(overrides),
        only=tuple(only or ()),
        data=data,
        force=force,
        run_dir=run_dir,
    )
    plan = make_plan(request, echo)
    echo(
        f"srkit run: profile {plan.profile}, {len(plan.selected)} of "
        f"{len(plan.steps)} steps, run folder {plan.run_dir}"
    )
    if dry_run:
        return _dry_run(plan, echo)
    log, failure = _run_locked(plan, echo, heartbeat_s, wait)
    echo(steps_table(log.records, [s.stem for s in plan.steps], log.seconds))
    result = RunResult(plan.run_dir, log.statuses, log.seconds, records=log.records)
    if failure is not None:
        echo(
            f"the pages in {plan.published} were left as they were; this run's "
            f"pages are in {plan.folder.pages}"
        )
        if book:
            echo(
                "the book was NOT rebuilt: "
                f"{plan.project / '_build' / 'html'} (if any) is from an earlier build"
            )
        raise failure
    if book:
        result.book_index = build_book(
            plan.project, run_dir=plan.run_dir, strict=strict, echo=echo
        )
    return result


def _dry_run(plan: RunPlan, echo: Echo) -> RunResult:
    """Print each selected step's state and resolved values; change nothing."""
    previous = read_records(plan.run_dir)
    to_run = plan.to_run(previous.get("steps", {}))
    for k, step in enumerate(plan.selected, 1):
        state = "would run" if to_run[step.stem] else "cached (unchanged)"
        echo(f"[{k}/{len(plan.selected)}] {step.stem} ... {state}")
        for line in parameter_lines(plan.params[step.stem]):
            echo(line)
    return RunResult(plan.run_dir, {}, {}, records=previous)


def _run_locked(
    plan: RunPlan, echo: Echo, heartbeat_s: float, wait: bool
) -> tuple[RunLog, StepFailed | None]:
    """Prepare the data and execute the steps, holding the run folder's lock.

    Returns:
        The saved run log and the first step failure (None when none failed).

    Raises:
        RunLocked: another run holds the run folder (without ``wait``).
        BaseException: whatever stopped the run, after the log is saved.
    """
    with run_lock(plan.run_dir, wait=wait, echo=echo), _terminate_as_interrupt():
        _sweep_kernel_files(plan.run_dir)
        previous = read_records(plan.run_dir)  # under the lock: no run writes it now
        if previous.get("status") == "running":
            echo(
                f"note: the previous run in {plan.run_dir} ended without a word "
                "(killed); its finished steps are kept"
            )
        _adopt_published_pages(plan)
        old_steps = previous.get("steps", {})
        to_run = plan.to_run(old_steps)
        _write_run_folder(plan)
        log = RunLog.start(plan, previous)
        if PROBE_KEY in previous:  # the cached training steps ran after it
            log.records[PROBE_KEY] = previous[PROBE_KEY]
        log.save()
        try:
            _prepare_run_data(plan, to_run, log, echo)
            _probe_speed(plan, to_run, log, echo)
            failure = _execute_steps(plan, old_steps, to_run, log, echo, heartbeat_s)
        except BaseException as error:
            log.stop(error)
            raise
        log.finish(failed=failure is not None)
        if failure is None:
            publish_pages(plan, log.records, echo)
    return log, failure


def _write_run_folder(plan: RunPlan) -> None:
    """Create the run's folders and write ``params.yaml``."""
    plan.folder.steps.mkdir(exist_ok=True)
    plan.folder.pages.mkdir(exist_ok=True)
    with atomic_path(plan.folder.params) as temporary:
        temporary.write_text(
            yaml.safe_dump(
                {
                    "profile": plan.profile,
                    "data": plan.settings.data,
                    "overrides": plan.settings.override_texts,
                    "only": plan.only,
                    "run_dir": str(plan.run_dir),
                    "steps": plan.params,
                },
                sort_keys=False,
            ),
            encoding="utf-8",
        )


def _prepare_run_data(plan: RunPlan, to_run: dict, log: RunLog, echo: Echo) -> None:
    """Prepare, once and before any step, the data of the steps that will execute."""
    for step in plan.selected:
        log.step(step.stem)["status"] = "planned"
    needed = []
    for step in plan.selected:
        if to_run[step.stem]:
            needed.extend(i for i in plan.data_sets[step.stem] if i not in needed)
    data_records = {r.get("key"): r for r in log.records["data"]}
    for source, n_images, seed, mode in needed:
        echo(f"data: {source}, {n_images} images, seed {seed} ...")
        start = time.perf_counter()
        info = prepare_data(source, n_images, seed, mode, plan.folder.data)
        info = {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))}
        data_records[info.get("key", data_key(source, n_images, seed, mode))] = info
        echo(
            f"data: {info.get('n_train', '?')} train / {info.get('n_val', '?')} "
            f"validation images ({format_seconds(time.perf_counter() - start)})"
        )
    log.records["data"] = list(data_records.values())
    log.save()


def _probe_speed(plan: RunPlan, to_run: dict, log: RunLog, echo: Echo) -> None:
    """Before a training step executes, time a matmul and count the zoo's FLOP.

    The probe (``srkit.speed_page.run_probe``: 14 to 26 s on a 2-core CPU, most
    of it importing the backend and building the zoo) goes into the run log; the
    About page's speed section compares the training steps with it.
    """
    params = [plan.params[s.stem] for s in plan.selected if to_run[s.stem]]
    if not needs_probe(params):
        return
    log.records[PROBE_KEY] = run_probe()
    echo(probe_line(log.records[PROBE_KEY]))
    log.save()


def _execute_steps(
    plan: RunPlan,
    old_steps: dict,
    to_run: dict,
    log: RunLog,
    echo: Echo,
    heartbeat_s: float,
) -> StepFailed | None:
    """Execute the selected steps in order; the first failure stops the rest.

    Updates the run log (saved after each change); returns the first step
    failure, or None.
    """
    kernel_name = ensure_kernel() if any(to_run.values()) else KERNEL_NAME
    failure: StepFailed | None = None
    for k, step in enumerate(plan.selected, 1):
        label = f"[{k}/{len(plan.selected)}] {step.stem}"
        if failure is not None:
            log.mark(step.stem, "not run")
            continue
        key = plan.key(step)
        if plan.is_cached(step, key, old_steps):
            log.mark(step.stem, "cached")
            echo(f"{label} ... cached (unchanged)")
            continue
        failure = _execute_one(
            plan, step, key, log, kernel_name, label, echo, heartbeat_s
        )
    return failure


def _execute_one(
    plan: RunPlan,
    step: Step,
    key: str,
    log: RunLog,
    kernel_name: str,
    label: str,
    echo: Echo,
    heartbeat_s: float,
) -> StepFailed | None:
    """Execute one step, logging its start and its outcome.

    Returns:
        The step's failure, or None when it ran.
    """
    echo(f"{label} ... running")
    record = log.step(step.stem)
    record.update(status="running", key=key, ok=False, started=_now(), finished=None)
    record.update(step_start_facts(log.records, plan.params[step.stem]))
    record.pop("error", None)
    log.save()
    notebook_path = plan.folder.page(step.stem)
    failure: StepFailed | None = None
    start = time.perf_counter()
    try:
        execute_step(
            step,
            plan.params[step.stem],
            notebook_path,
            plan.project / NOTEBOOK_DIR,
            kernel_name,
            echo=echo,
            label=label,
            heartbeat_s=heartbeat_s,
            scratch=plan.folder.kernels,
            kernel_log=plan.folder.step_kernel_log(step.stem),
        )
    except StepFailed as error:
        failure = error
    elapsed = round(time.perf_counter() - start, 2)
    log.seconds[step.stem] = elapsed
    record.update(seconds=elapsed, finished=_now(), notebook=str(notebook_path))
    record[LOAD_END] = load_average_now()
    if failure is not None:
        log.mark(step.stem, "failed")
        record["error"] = {
            "cell_index": failure.cell_index,
            "exec_count": failure.exec_count,
            "ename": failure.ename,
            "evalue": failure.evalue,
        }
        echo(f"{label} ... FAILED after {format_seconds(elapsed)}")
    else:
        log.mark(step.stem, "ran")
        record["ok"] = True
        echo(f"{label} ... done in {format_seconds(elapsed)}")
        step_metrics = plan.folder.step_metrics(step.stem)
        if not step_metrics.is_file():
            echo(
                f"{label} ... note: wrote no {step_metrics}; "
                "it will run again next time"
            )
    log.save()
    return failure
