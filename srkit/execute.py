"""Executing one step notebook: the kernel, papermill, the heartbeat, the failure.

This module owns everything between a step's resolved parameters and its executed
notebook (the pipeline names it: ``RUN/pages/<stem>.ipynb``): the choice (or
installation) of a Jupyter kernel that runs this interpreter, the kernel's
environment (quiet TensorFlow, this srkit on ``PYTHONPATH``, inline figures, its
connection file in the run folder), executing the percent-format source with
papermill (jupytext converts it), "still running" lines while a long step works, the
kernel process's own output in a log file, and :class:`StepFailed`, which says where
a step failed. It is the only module that knows about papermill and jupyter_client;
they are imported inside functions so the command line starts fast.
``srkit.pipeline`` decides which steps run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from srkit.book import format_seconds
from srkit.steps import PipelineError, Step, read_source

HEARTBEAT_S = 30.0  # seconds between "still running" lines of a long step
KERNEL_NAME = "python3"  # the native ipykernel of the running interpreter
FALLBACK_KERNEL_NAME = "srkit"  # installed when "python3" points elsewhere
KERNEL_START_TIMEOUT_S = 120  # TensorFlow-heavy environments start slowly
KERNEL_LOG_TAIL = 8  # lines of a dead kernel's own output quoted in the error
# the kernel's own log (e.g. "running over TCP without encryption" on the loopback,
# or "KeyboardInterrupt caught in kernel" when Ctrl-C stops a run) is noise in a
# batch run; cell errors and outputs still reach the notebook
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
QUIET_LOGGERS = ("papermill", "nbclient", "traitlets")

Echo = Callable[[str], None]


class StepFailed(PipelineError):
    """A step notebook raised; carries where and what.

    Attributes:
        step: the step's stem, e.g. ``05_dilated_blocks``.
        cell_index: index of the failing cell in the executed notebook (papermill
            adds one ``injected-parameters`` cell after the parameters cell), or None.
        exec_count: the cell's execution count ("In [n]"), or None.
        ename, evalue: the exception's name and message.
        notebook: path of the partially executed notebook.
        kernel_log: the kernel process's own output when the kernel died (its
            last lines are in the message), else None.
    """

    def __init__(
        self,
        step,
        cell_index,
        exec_count,
        ename,
        evalue,
        notebook,
        source="",
        kernel_log=None,
    ):
        self.step = step
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.ename = ename
        self.evalue = evalue
        self.notebook = Path(notebook)
        self.source = source
        self.kernel_log = None if kernel_log is None else Path(kernel_log)
        where = "cell unknown" if cell_index is None else f"cell {cell_index}"
        if exec_count is not None:
            where += f" (In [{exec_count}])"
        first_line = next((ln for ln in source.splitlines() if ln.strip()), "")
        lines = [
            f"step {step} failed at {where}: {ename}: {evalue}",
            f"  cell starts with: {first_line}" if first_line else "",
            f"  partially executed notebook: {self.notebook}",
        ]
        if self.kernel_log is not None:
            tail = _last_lines(self.kernel_log, KERNEL_LOG_TAIL)
            lines.append(f"  the kernel's own output: {self.kernel_log}")
            lines.extend(f"    | {line}" for line in tail)
        super().__init__("\n".join(line for line in lines if line))


def _last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` non-blank lines of a text file ([] when unreadable)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-count:]


def ensure_kernel() -> str:
    """The name of a kernel that runs this interpreter, installing one if needed.

    ``python3`` is used when it resolves to this interpreter (ipykernel's native
    spec, whose ``python`` jupyter_client replaces with ``sys.executable``). If a
    user-level ``python3`` spec points at another Python, a spec named ``srkit``
    for ``sys.executable`` is installed under ``sys.prefix`` (or the user folder).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    own = {
        "python",
        f"python{sys.version_info[0]}",
        "python{}.{}".format(*sys.version_info[:2]),
    }

    def runs_here(name: str) -> bool:
        try:
            command = manager.get_kernel_spec(name).argv[0]
        except (NoSuchKernel, IndexError):
            return False
        if command in own:
            return True
        with contextlib.suppress(OSError):
            return os.path.samefile(command, sys.executable)
        return False

    if runs_here(KERNEL_NAME):
        return KERNEL_NAME
    if runs_here(FALLBACK_KERNEL_NAME):
        return FALLBACK_KERNEL_NAME
    from ipykernel.kernelspec import install

    try:
        install(kernel_name=FALLBACK_KERNEL_NAME, prefix=sys.prefix)
    except OSError:
        install(kernel_name=FALLBACK_KERNEL_NAME, user=True)
    return FALLBACK_KERNEL_NAME


@contextlib.contextmanager
def _quiet_loggers():
    """Silence papermill's and nbclient's own log lines during a step.

    A failed step or a dead kernel is reported once, by :class:`StepFailed`; on
    Ctrl-C these loggers would add "Kernel died while waiting for execute reply"
    and asyncio's "Task exception was never retrieved" traceback.
    """
    saved = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _kernel_environment(runtime_dir: Path | None = None):
    """Environment of the kernel: quiet TensorFlow, this srkit, inline figures.

    With ``runtime_dir``, Jupyter's connection file goes there (see
    ``execute_step``) instead of the user's Jupyter runtime folder.
    """
    package_parent = str(Path(__file__).resolve().parent.parent)
    saved = dict(os.environ)
    if runtime_dir is not None:
        os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugger noise
    paths = [
        package_parent,
        *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
    ]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    if "inline" not in os.environ.get("MPLBACKEND", "inline"):
        del os.environ["MPLBACKEND"]  # Agg would hide every figure of the book
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _running_cell(notebook_path: Path) -> str:
    """'cell 7: train' for the cell papermill marks running in the saved notebook."""
    try:
        cells = json.loads(Path(notebook_path).read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return ""
    for index, cell in enumerate(cells):
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
            source = "".join(cell.get("source", ""))
            match = re.search(r"papermill_description=(\S+)", source)
            return f"cell {index}" + (f": {match.group(1)}" if match else "")
    return ""


@contextlib.contextmanager
def _heartbeat(label: str, notebook_path: Path, echo: Echo, every: float):
    """Print a 'still running' line every ``every`` seconds until the block ends."""
    stop = threading.Event()
    start = time.perf_counter()

    def beat():
        while not stop.wait(every):
            cell = _running_cell(notebook_path)
            elapsed = format_seconds(time.perf_counter() - start)
            echo(
                f"{label} ... still running, {elapsed}" + (f" ({cell})" if cell else "")
            )

    thread = threading.Thread(target=beat, daemon=True)
    if every and every > 0:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=5)


def _failure_from_notebook(
    step: Step, notebook_path: Path, error: Exception, kernel_log: Path | None
):
    """StepFailed for an error papermill did not attribute to a cell (dead kernel)."""
    index = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        cells = json.loads(notebook_path.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
                index = i
    return StepFailed(
        step.stem,
        index,
        None,
        type(error).__name__,
        str(error).strip(),
        notebook_path,
        kernel_log=kernel_log,
    )


def _kernel_manager_writing_to(log_path: Path):
    """A jupyter_client kernel manager class whose kernel prints into a file.

    The kernel process's own output (TensorFlow's C++ log lines about CUDA, a
    crash report) would otherwise interleave with the run's progress lines. The
    cells' output is not affected: the notebook holds it.
    """
    import subprocess

    from jupyter_client.manager import AsyncKernelManager  # nbclient's default

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(log_path, "ab") as log:
                kw.update(stdout=log, stderr=subprocess.STDOUT)
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


def execute_step(
    step: Step,
    params: dict,
    notebook_path: Path,
    cwd: Path,
    kernel_name: str,
    echo: Echo = print,
    label: str = "",
    heartbeat_s: float = HEARTBEAT_S,
    scratch: Path | None = None,
    kernel_log: Path | None = None,
) -> None:
    """Execute one step notebook with papermill.

    Args:
        step: the step source.
        params: its resolved parameters (a mapping; papermill injects them after
            the parameters cell).
        notebook_path: the executed notebook to write (saved after every cell).
        cwd: working directory of the kernel.
        kernel_name: from ``ensure_kernel``.
        echo: progress printer; label: prefix of heartbeat lines.
        heartbeat_s: seconds between "still running" lines (0: none).
        scratch: folder for the temporary input notebook and the kernel's
            connection file (removed when the step ends; a killed run's leftovers
            are swept by the next run); default: the system's temporary folder.
        kernel_log: file that receives the kernel process's own output (written
            anew); None lets it print to this process's terminal.

    Raises:
        StepFailed: when a cell raises or the kernel dies.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = _input_notebook(step, kernel_name)
    notebook_path = Path(notebook_path)
    notebook_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # papermill records its input in the output's metadata: a small .ipynb file
        # rather than the whole notebook object; then the .py source replaces it
        if scratch is not None:
            Path(scratch).mkdir(parents=True, exist_ok=True)
        temporary = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="srkit-step-", dir=scratch)
            )
        )
        source_notebook = temporary / f"{step.stem}.ipynb"
        nbformat.write(notebook, source_notebook)
        stack.enter_context(_kernel_environment(runtime_dir=temporary))
        stack.enter_context(_quiet_loggers())
        stack.enter_context(_heartbeat(label, notebook_path, echo, heartbeat_s))
        stack.callback(_record_source, notebook_path, step.path)
        kernel_log = None if kernel_log is None else Path(kernel_log)
        client_options = _client_options(kernel_log)
        try:
            papermill.execute_notebook(
                str(source_notebook),
                str(notebook_path),
                parameters=dict(params),
                kernel_name=kernel_name,
                language="python",
                cwd=str(cwd),
                log_output=False,
                progress_bar=False,
                request_save_on_cell_execute=True,
                start_timeout=KERNEL_START_TIMEOUT_S,
                **client_options,
            )
        except PapermillExecutionError as error:
            raise StepFailed(
                step.stem,
                error.cell_index,
                error.exec_count,
                error.ename,
                error.evalue,
                notebook_path,
                error.source or "",
            ) from None
        except Exception as error:  # dead kernel, timeout, bad notebook
            raise _failure_from_notebook(
                step, notebook_path, error, kernel_log
            ) from error


def _input_notebook(step: Step, kernel_name: str):
    """The step's source as the notebook papermill executes, on ``kernel_name``."""
    notebook = read_source(step.path)
    notebook.metadata.pop("jupytext", None)  # the executed copy is not paired
    notebook.metadata["kernelspec"] = {
        "name": kernel_name,
        "display_name": "Python 3 (srkit)",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def _client_options(kernel_log: Path | None) -> dict:
    """papermill's options for the kernel client; ``kernel_log`` is written anew.

    Args:
        kernel_log: file for the kernel process's own output, or None to leave
            that output on this process's terminal.

    Returns:
        Keyword arguments of ``papermill.execute_notebook`` that nbclient takes.
    """
    if kernel_log is None:
        return {"extra_arguments": KERNEL_ARGUMENTS}
    kernel_log.parent.mkdir(parents=True, exist_ok=True)
    kernel_log.write_bytes(b"")
    return {
        "kernel_manager_class": _kernel_manager_writing_to(kernel_log),
        # ipykernel would relay that output through a thread, which loses the
        # last lines of a kernel that dies; written directly, they stay
        "extra_arguments": [*KERNEL_ARGUMENTS, "--IPKernelApp.capture_fd_output=False"],
    }


def _record_source(notebook_path: Path, source: Path) -> None:
    """Name the step's .py source as papermill's input in the executed notebook.

    Papermill's injected-parameters cell is also tagged ``remove-cell``: it repeats
    ``params.yaml`` with this machine's absolute paths, and the banner and the About
    page already state the parameters.
    """
    import nbformat

    with contextlib.suppress(OSError, ValueError, KeyError):
        notebook = nbformat.read(notebook_path, as_version=4)
        notebook.metadata.setdefault("papermill", {})["input_path"] = str(source)
        for cell in notebook.cells:
            tags = cell.metadata.get("tags", [])
            if "injected-parameters" in tags and "remove-cell" not in tags:
                cell.metadata["tags"] = [*tags, "remove-cell"]
        nbformat.write(notebook, notebook_path)
