"""The pipeline: profiles, parameters, notebook execution, the step cache, the book.

This module owns everything between ``srkit run`` and a built book (DESIGN, "Data
flow of one run"; STYLE sections 6-7). It finds the project (the folder holding
``_toc.yml`` and ``notebooks/``), lists the step notebooks ``notebooks/NN_name.py``,
reads each one's ``parameters`` cell, resolves the parameters once (profile YAML,
then ``--data``, then ``-p name=value`` overrides, typed from the cell's
annotations), prepares the data cache once, executes each step with papermill
(jupytext converts the percent-format source; the kernel is set explicitly) into
``book/steps/<stem>.ipynb``, skips steps whose source, parameters, srkit source and
input data are unchanged, records timings, versions and hardware in
``RUN/run.json``, writes the generated "About this run" page and runs
``jupyter-book build``. It is, with ``cli``, the only module that knows about
papermill, jupytext and jupyter-book; those are imported inside functions so the
command line starts fast. Nothing here imports TensorFlow except ``upscale``.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from srkit.environment import (
    backend_gpus_row,
    collect_hardware,
    collect_versions,
    git_commit,
)

PROFILES = ("smoke", "quick", "full")
DEFAULT_PROFILE = "smoke"
PIPELINE_OWNED = ("profile", "run_dir")  # set by the pipeline, never by -p
STEP_FILE = re.compile(r"^(\d\d)_\w+\.py$")
PARAMETER_TYPES = ("int", "float", "str", "bool")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
HEARTBEAT_S = 30.0  # seconds between "still running" lines of a long step
KERNEL_NAME = "python3"  # the native ipykernel of the running interpreter
FALLBACK_KERNEL_NAME = "srkit"  # installed when "python3" points elsewhere
KERNEL_START_TIMEOUT_S = 120  # TensorFlow-heavy environments start slowly
# the kernel's own log (e.g. "running over TCP without encryption" on the loopback)
# is noise in a batch run; cell errors and outputs still reach the notebook
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
BOOK_DIR = "book"
STEPS_PAGE_DIR = "book/steps"  # where _toc.yml expects the executed notebooks
ABOUT_PAGE = "book/about_run.md"
RUN_MARKER = ".srkit_run"  # in book/steps: the run folder the pages came from
RUN_RECORDS = "run.json"
PARAMS_FILE = "params.yaml"
METRICS_FILE = "metrics.json"
BOOK_LOG = "book_build.log"
# A step whose source has this comment line reads the records of every earlier step
# (the benchmark and summary pages), so their metrics.json are part of its cache key.
READS_EARLIER_STEPS = re.compile(r"^#\s*srkit:\s*reads-earlier-steps\b", re.MULTILINE)
# Parameters whose "folder:PATH" value names an input folder: its listing (names,
# sizes, modification times) is part of the step's cache key.
FOLDER_PARAMETERS = ("benchmarks",)
FOLDER_PREFIX = "folder:"
# pipeline and command-line code does not change what a notebook computes
HASH_EXCLUDED = ("pipeline.py", "cli.py", "__main__.py")

Echo = Callable[[str], None]


class PipelineError(RuntimeError):
    """A problem the user can fix (missing project, unknown step, failed build)."""


class StepFailed(PipelineError):
    """A step notebook raised; carries where and what.

    Attributes:
        step: the step's stem, e.g. ``05_dilated_blocks``.
        cell_index: index of the failing cell in the executed notebook (papermill
            adds one ``injected-parameters`` cell after the parameters cell), or None.
        exec_count: the cell's execution count ("In [n]"), or None.
        ename, evalue: the exception's name and message.
        notebook: path of the partially executed notebook.
    """

    def __init__(
        self, step, cell_index, exec_count, ename, evalue, notebook, source=""
    ):
        self.step = step
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.ename = ename
        self.evalue = evalue
        self.notebook = Path(notebook)
        self.source = source
        where = "cell unknown" if cell_index is None else f"cell {cell_index}"
        if exec_count is not None:
            where += f" (In [{exec_count}])"
        first_line = next((ln for ln in source.splitlines() if ln.strip()), "")
        lines = [
            f"step {step} failed at {where}: {ename}: {evalue}",
            f"  cell starts with: {first_line}" if first_line else "",
            f"  partially executed notebook: {self.notebook}",
        ]
        super().__init__("\n".join(line for line in lines if line))


# --------------------------------------------------------------------- project


def find_project(project: str | os.PathLike | None = None, start=None) -> Path:
    """Locate the project root: the folder holding ``_toc.yml`` and ``notebooks/``.

    Only the explicit folder, or the start folder and its parents, count: the
    installed srkit package's own checkout is never used as a fallback.

    Args:
        project: an explicit folder (``--project``); checked, not searched.
        start: where the upward search starts (default: the current directory).

    Returns:
        The absolute project folder.

    Raises:
        PipelineError: when no such folder is found.
    """

    def is_project(folder: Path) -> bool:
        return (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir()

    if project is not None:
        folder = Path(project).expanduser().resolve()
        if not is_project(folder):
            raise PipelineError(
                f"{folder} is not an srkit project: it needs _toc.yml and notebooks/"
            )
        return folder
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if is_project(folder):
            return folder
    # No fallback to srkit's own checkout: `clean` would delete, and `run` write,
    # in a folder the user never named.
    raise PipelineError(
        f"no srkit project in {here} or a folder above it (a project holds "
        "_toc.yml and notebooks/): run from the project folder or pass --project DIR"
    )


# ------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class Parameter:
    """One assignment of a step's parameters cell.

    Attributes:
        name: variable name.
        type: "int", "float", "str", "bool" (from the annotation, else the value).
        default: the literal default (the smoke profile's value).
    """

    name: str
    type: str
    default: Any


@dataclass
class Step:
    """A step notebook source.

    Attributes:
        number: the two-digit prefix, e.g. "05".
        stem: file name without ``.py``, e.g. "05_dilated_blocks".
        path: absolute path of ``notebooks/<stem>.py``.
        parameters: name -> Parameter, in the cell's order.
        reads_earlier_steps: whether the source declares, with the comment line
            ``# srkit: reads-earlier-steps``, that it reads the outputs of every
            earlier step; it then re-runs when their ``metrics.json`` change.
    """

    number: str
    stem: str
    path: Path
    parameters: dict[str, Parameter] = field(default_factory=dict)
    reads_earlier_steps: bool = False


def parse_parameters(cell_source: str, where: str = "parameters cell"):
    """Read a parameters cell: literal assignments, ideally annotated.

    Args:
        cell_source: the cell's Python source.
        where: name used in error messages (file).

    Returns:
        dict name -> Parameter, in source order.

    Raises:
        ValueError: on a statement that is not a literal assignment to a name, or
            an annotation other than int, float, str, bool.
    """
    try:
        tree = ast.parse(cell_source)
    except SyntaxError as error:
        raise ValueError(
            f"{where}: parameters cell is not valid Python: {error}"
        ) from None
    parameters: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, value_node = node.target.id, node.value
            annotation = ast.unparse(node.annotation)
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            name, value_node, annotation = node.targets[0].id, node.value, None
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring-like string
        else:
            raise ValueError(
                f"{where}, line {node.lineno}: the parameters cell holds only literal "
                f"assignments (name: type = value), found: {ast.unparse(node)}"
            )
        try:
            default = ast.literal_eval(value_node) if value_node is not None else None
        except ValueError:
            raise ValueError(
                f"{where}, line {node.lineno}: {name} must be a literal value, "
                f"found {ast.unparse(value_node)}"
            ) from None
        type_name = annotation or type(default).__name__
        if type_name not in PARAMETER_TYPES:
            raise ValueError(
                f"{where}, line {node.lineno}: {name} has type {type_name!r}; "
                f"parameters are one of {', '.join(PARAMETER_TYPES)}"
            )
        if default is not None:
            default = coerce(default, type_name, name)
        parameters[name] = Parameter(name, type_name, default)
    return parameters


def coerce(value: Any, type_name: str, name: str) -> Any:
    """Convert a profile or command-line value to a parameter's type.

    Args:
        value: a YAML value or a command-line string.
        type_name: "int", "float", "str" or "bool".
        name: the parameter's name, for the error message.

    Returns:
        The typed value (bool accepts true/false/yes/no/on/off/1/0).

    Raises:
        ValueError: naming the parameter, its type and the bad value.
    """
    problem = ValueError(
        f"parameter {name!r} expects {type_name}, got {value!r}"
        + (" (true/false/1/0)" if type_name == "bool" else "")
    )
    if type_name == "str":
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise problem
        return str(value)
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS:
            return True
        if isinstance(value, str) and value.strip().lower() in FALSE_WORDS:
            return False
        raise problem
    if isinstance(value, bool):
        raise problem
    if type_name == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return int(value.strip().replace("_", ""))
        raise problem
    if type_name == "float":
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return float(value.strip())
        raise problem
    raise ValueError(f"parameter {name!r} has unsupported type {type_name!r}")


def _read_source(path: Path):
    """The jupytext notebook of a percent-format step source."""
    import jupytext

    return jupytext.read(path, fmt="py:percent")


def read_step(path: Path) -> Step:
    """Read a step source and its parameters cell.

    Args:
        path: ``notebooks/NN_name.py`` (jupytext percent format).

    Returns:
        Step with the parameters of the first code cell tagged ``parameters``
        (none if the notebook has no such cell), and ``reads_earlier_steps`` set
        when a code cell holds the line ``# srkit: reads-earlier-steps``.

    Raises:
        ValueError: for a malformed parameters cell.
    """
    path = Path(path).resolve()
    notebook = _read_source(path)
    parameters: dict[str, Parameter] = {}
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            parameters = parse_parameters(cell.source, where=str(path))
            break
    reads_earlier = any(
        cell.cell_type == "code" and READS_EARLIER_STEPS.search(cell.source)
        for cell in notebook.cells
    )
    match = STEP_FILE.match(path.name)
    number = match.group(1) if match else path.stem[:2]
    return Step(
        number=number,
        stem=path.stem,
        path=path,
        parameters=parameters,
        reads_earlier_steps=reads_earlier,
    )


def discover_steps(project: Path) -> list[Step]:
    """List the step notebooks ``notebooks/NN_*.py`` of a project, in order.

    Raises:
        PipelineError: when there is none.
    """
    folder = Path(project) / "notebooks"
    paths = sorted(p for p in folder.glob("[0-9][0-9]_*.py") if STEP_FILE.match(p.name))
    if not paths:
        raise PipelineError(f"no step notebooks (NN_name.py) in {folder}")
    return [read_step(path) for path in paths]


def select_steps(steps: Sequence[Step], only: Iterable[str] | None) -> list[Step]:
    """The steps named by ``--only`` (number like "05" or "5", or stem), in order.

    Raises:
        ValueError: for a name matching no step, listing the steps.
    """
    only = list(only or [])
    if not only:
        return list(steps)
    chosen: set[str] = set()
    for word in only:
        word = word.strip().removesuffix(".py").removesuffix(".ipynb")
        word = Path(word).name
        matches = [
            s
            for s in steps
            if word in (s.stem, s.number, s.stem[3:])
            or (word.isdigit() and int(word) == int(s.number))
        ]
        if not matches:
            raise ValueError(
                f"--only {word!r} matches no step; steps: "
                + ", ".join(s.stem for s in steps)
            )
        chosen.update(s.stem for s in matches)
    return [s for s in steps if s.stem in chosen]


def profile_path(name: str) -> Path:
    """Path of a packaged profile YAML (``srkit/profiles/<name>.yaml``)."""
    return Path(__file__).resolve().parent / "profiles" / f"{name}.yaml"


def load_profile(name: str) -> dict:
    """Load a profile: ``{"defaults": {...}, "steps": {"08": {...}, ...}}``.

    Args:
        name: "smoke", "quick" or "full", or a path to a YAML file of that form.

    Raises:
        ValueError: for an unknown profile or a malformed file.
    """
    path = Path(name) if name.endswith((".yaml", ".yml")) else profile_path(name)
    if not path.is_file():
        raise ValueError(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
    data = yaml.safe_load(path.read_text()) or {}
    defaults = data.get("defaults") or {}
    steps = data.get("steps") or {}
    if not isinstance(defaults, dict) or not isinstance(steps, dict):
        raise ValueError(f"{path}: 'defaults' and 'steps' must be mappings")
    # YAML reads 08 as a string but 10 as an int: normalise to two digits
    steps = {f"{int(str(k)):02d}": dict(v or {}) for k, v in steps.items()}
    return {"name": path.stem, "path": str(path), "defaults": defaults, "steps": steps}


def parse_override(text: str) -> tuple[str | None, str, str]:
    """Split ``name=value`` or ``NN.name=value`` into (step or None, name, value).

    Raises:
        ValueError: without "=" or with an empty name.
    """
    if "=" not in text:
        raise ValueError(
            f"override {text!r} must look like name=value or NN.name=value"
        )
    key, value = text.split("=", 1)
    key = key.strip()
    step, _, name = key.rpartition(".")
    if not name:
        raise ValueError(f"override {text!r} has an empty name")
    return (step or None), name, value


def resolve_parameters(
    steps: Sequence[Step],
    profile: str = DEFAULT_PROFILE,
    overrides: Sequence[str] = (),
    data: str | None = None,
    run_dir: str | os.PathLike = "",
    warn: Echo | None = None,
) -> dict[str, dict[str, Any]]:
    """Resolve every step's parameters once.

    Order (later wins): the notebook's literal defaults, the profile's
    ``defaults``, the profile's per-step section, ``data`` (as ``data_source``),
    global ``-p name=value`` overrides, then per-step ``-p NN.name=value`` ones.
    Each step receives only the names its parameters cell declares; ``profile``
    and ``run_dir`` are set by the pipeline.

    Args:
        steps: every step of the project (validation uses all of them).
        profile: profile name or YAML path.
        overrides: ``name=value`` / ``NN.name=value`` strings.
        data: data source for every step declaring ``data_source``, or None.
        run_dir: the run folder (absolute), passed as ``run_dir``.
        warn: called with a note for profile keys no step declares.

    Returns:
        dict stem -> dict name -> typed value.

    Raises:
        ValueError: unknown name (listing the valid ones), bad value (naming the
            parameter and its type), unknown step, or a pipeline-owned name.
    """
    spec = load_profile(profile)
    declared = sorted({n for s in steps for n in s.parameters} - set(PIPELINE_OWNED))
    resolved: dict[str, dict[str, Any]] = {}
    for step in steps:
        values = {n: p.default for n, p in step.parameters.items()}
        for source in (spec["defaults"], spec["steps"].get(step.number, {})):
            for name, value in source.items():
                if name in values and name not in PIPELINE_OWNED:
                    values[name] = coerce(value, step.parameters[name].type, name)
        resolved[step.stem] = values
    if warn:
        unused = sorted(set(spec["defaults"]) - set(declared) - set(PIPELINE_OWNED))
        if unused:
            warn(f"note: profile {spec['name']} sets {', '.join(unused)}, not used")
    parsed = [parse_override(text) for text in overrides]
    if data is not None:
        if "data_source" not in declared:
            raise ValueError("--data given but no step declares data_source")
        parsed.insert(0, (None, "data_source", data))
    for step_word, name, raw in sorted(parsed, key=lambda item: item[0] is not None):
        if name in PIPELINE_OWNED:
            raise ValueError(
                f"{name} is set by the pipeline; use --{name.replace('_', '-')}"
            )
        if step_word is None:
            if name not in declared:
                raise ValueError(
                    f"unknown parameter {name!r}; valid names: {', '.join(declared)}"
                )
            targets = [s for s in steps if name in s.parameters]
        else:
            targets = select_steps(steps, [step_word])
            for step in targets:
                if name not in step.parameters:
                    valid = sorted(set(step.parameters) - set(PIPELINE_OWNED))
                    raise ValueError(
                        f"step {step.stem} has no parameter {name!r}; "
                        f"valid names: {', '.join(valid)}"
                    )
        for step in targets:
            resolved[step.stem][name] = coerce(raw, step.parameters[name].type, name)
    for step in steps:
        if "profile" in step.parameters:
            resolved[step.stem]["profile"] = spec["name"]
        if "run_dir" in step.parameters:
            resolved[step.stem]["run_dir"] = str(run_dir)
    return resolved


# ----------------------------------------------------------------- cache keys


def _sha256(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def srkit_source_hash() -> str:
    """Hash of the srkit package source (``srkit/**/*.py``).

    ``pipeline.py``, ``cli.py`` and ``__main__.py`` are left out: they decide
    which notebooks run, not what a notebook computes. Tests monkeypatch this.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative in HASH_EXCLUDED or "__pycache__" in path.parts:
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def data_inputs(params: dict[str, Any]) -> list[tuple[str, int, int, str | None]]:
    """The (source, n_images, seed, mode) data sets a step reads.

    A step needs data when it declares ``data_source`` and ``n_images``; step 11's
    ``retrain_n_images`` adds a second set.
    """
    if "data_source" not in params or "n_images" not in params:
        return []
    source = params["data_source"]
    seed = int(params.get("seed", 0))
    mode = params.get("data_mode") or None
    counts = [params["n_images"]]
    if params.get("retrain_n_images"):
        counts.append(params["retrain_n_images"])
    return [(source, int(n), seed, mode) for n in counts]


def data_key(source: str, n_images: int, seed: int, mode: str | None) -> str:
    """The cache key of one data set: ``srkit.data.data_key`` when importable.

    Raises:
        ValueError: for a bad source (e.g. a missing folder), from srkit.data.
    """
    try:
        from srkit import data as srkit_data
    except ImportError:  # srkit.data unavailable: key on the arguments only
        return _sha256(json.dumps([source, n_images, seed, mode]))[:16]
    return srkit_data.data_key(source, n_images, seed, mode)


def prepare_data(source, n_images, seed, mode, cache_dir) -> dict:
    """Prepare (or load) one data set into ``cache_dir``; returns its info dict."""
    from srkit import data as srkit_data

    split = srkit_data.prepare(
        source, n_images=n_images, seed=seed, mode=mode, cache_dir=cache_dir
    )
    return dict(split.info)


def metrics_path(run_dir: Path, stem: str) -> Path:
    """``RUN/steps/<stem>/metrics.json``, written by each step notebook."""
    return Path(run_dir) / "steps" / stem / METRICS_FILE


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

    For each parameter of :data:`FOLDER_PARAMETERS` set to ``folder:PATH`` (a
    relative PATH is taken from the project folder, as the notebooks do), a hash of
    every file below the folder: relative name, size and modification time. Adding,
    removing or replacing an image changes it; reading the images is not needed.

    Args:
        params: the step's resolved parameters.
        project: the project folder.

    Returns:
        One ``name=hash`` string per such parameter (``name=missing:PATH`` for a
        folder that does not exist; the step reports the error when it runs).
    """
    keys = []
    for name in FOLDER_PARAMETERS:
        value = str(params.get(name) or "").strip()
        if not value.startswith(FOLDER_PREFIX):
            continue
        folder = Path(value[len(FOLDER_PREFIX) :]).expanduser()
        folder = folder if folder.is_absolute() else Path(project) / folder
        if not folder.is_dir():
            keys.append(f"{name}=missing:{folder}")
            continue
        digest = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            stat = path.stat()
            relative = path.relative_to(folder).as_posix()
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        keys.append(f"{name}={digest.hexdigest()[:16]}")
    return keys


def _upstream_hashes(step: Step, steps: Sequence[Step], run_dir: Path) -> dict:
    """For a step that reads earlier steps: hashes of their metrics.json files."""
    if not step.reads_earlier_steps:
        return {}
    hashes = {}
    for other in steps:
        if other.stem >= step.stem:
            continue
        path = metrics_path(run_dir, other.stem)
        hashes[other.stem] = _sha256(path.read_bytes())[:16] if path.is_file() else ""
    return hashes


# ------------------------------------------------------------------- records


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through :func:`srkit.atomic.atomic_path` (no half-written file).

    Args:
        path: the file to write; its folder is created if missing.
        data: JSON-able value; other objects are written as their ``str``.

    Raises:
        OSError: the file cannot be written; an existing one is left as it was.
    """
    from srkit.atomic import atomic_path

    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def read_records(run_dir: Path) -> dict:
    """The run's ``run.json`` (empty dict when absent or unreadable)."""
    path = Path(run_dir) / RUN_RECORDS
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------- execution


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
def _kernel_environment():
    """Environment of the kernel: quiet TensorFlow, this srkit, inline figures."""
    package_parent = str(Path(__file__).resolve().parent.parent)
    saved = dict(os.environ)
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


def _format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@contextlib.contextmanager
def _heartbeat(label: str, notebook_path: Path, echo: Echo, every: float):
    """Print a 'still running' line every ``every`` seconds until the block ends."""
    stop = threading.Event()
    start = time.perf_counter()

    def beat():
        while not stop.wait(every):
            cell = _running_cell(notebook_path)
            elapsed = _format_seconds(time.perf_counter() - start)
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


def _failure_from_notebook(step: Step, notebook_path: Path, error: Exception):
    """StepFailed for an error papermill did not attribute to a cell (dead kernel)."""
    index = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        cells = json.loads(notebook_path.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
                index = i
    return StepFailed(
        step.stem, index, None, type(error).__name__, str(error).strip(), notebook_path
    )


def execute_step(
    step: Step,
    params: dict,
    notebook_path: Path,
    cwd: Path,
    kernel_name: str,
    echo: Echo = print,
    label: str = "",
    heartbeat_s: float = HEARTBEAT_S,
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

    Raises:
        StepFailed: when a cell raises or the kernel dies.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = _read_source(step.path)
    notebook.metadata.pop("jupytext", None)  # the executed copy is not paired
    notebook.metadata["kernelspec"] = {
        "name": kernel_name,
        "display_name": "Python 3 (srkit)",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    notebook_path = Path(notebook_path)
    notebook_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # papermill records its input in the output's metadata: a small .ipynb file
        # rather than the whole notebook object; then the .py source replaces it
        temporary = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        source_notebook = temporary / f"{step.stem}.ipynb"
        nbformat.write(notebook, source_notebook)
        stack.enter_context(_kernel_environment())
        stack.enter_context(_heartbeat(label, notebook_path, echo, heartbeat_s))
        stack.callback(_record_source, notebook_path, step.path)
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
                extra_arguments=KERNEL_ARGUMENTS,
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
            raise _failure_from_notebook(step, notebook_path, error) from error


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


def default_run_dir(project: Path, profile: str) -> Path:
    """``<project>/runs/<profile>``."""
    return Path(project) / "runs" / Path(profile).stem


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
) -> RunResult:
    """Run the pipeline: resolve, prepare data, execute steps, build the book.

    Args:
        project: project folder (default: found from the current directory).
        profile: "smoke", "quick", "full" (or a YAML path).
        overrides: ``name=value`` or ``NN.name=value`` strings.
        only: steps to run (numbers or stems); the others keep their records.
        data: data source for every step (``sample``, ``folder:PATH``, ``voc2007``).
        force: execute the selected steps even when cached.
        run_dir: run folder (default ``<project>/runs/<profile>``).
        book: build the book after the steps.
        strict: build the book with ``-W -n --keep-going``.
        dry_run: print the plan (status per step) without executing anything.
        echo: printer of progress lines.
        heartbeat_s: seconds between "still running" lines.

    Returns:
        RunResult.

    Raises:
        ValueError: bad parameters or step names.
        StepFailed: a step raised (records and summary are written first).
        PipelineError: no project, or a failed book build.
    """
    project = find_project(project)
    steps = discover_steps(project)
    selected = select_steps(steps, only)
    run_dir = Path(run_dir or default_run_dir(project, profile)).expanduser().resolve()
    params = resolve_parameters(steps, profile, overrides, data, run_dir, warn=echo)
    srkit_hash = srkit_source_hash()
    inputs = {s.stem: data_inputs(params[s.stem]) for s in steps}
    keys_of_data = {}
    for stem in (s.stem for s in selected):
        keys_of_data[stem] = [data_key(*item) for item in inputs[stem]]
        keys_of_data[stem] += folder_keys(params[stem], project)

    previous = read_records(run_dir)
    old_steps = previous.get("steps", {})
    pages = project / STEPS_PAGE_DIR

    def is_cached(step: Step, key: str) -> bool:
        record = old_steps.get(step.stem, {})
        return (
            not force
            and record.get("ok") is True
            and record.get("key") == key
            and (pages / f"{step.stem}.ipynb").is_file()
            and metrics_path(run_dir, step.stem).is_file()
        )

    planned = {}
    for step in selected:
        upstream = _upstream_hashes(step, steps, run_dir)
        key = step_key(
            step, params[step.stem], srkit_hash, keys_of_data[step.stem], upstream
        )
        planned[step.stem] = not is_cached(step, key)
    profile_name = Path(profile).stem
    echo(
        f"srkit run: profile {profile_name}, {len(selected)} of {len(steps)} steps, "
        f"run folder {run_dir}"
    )
    if dry_run:
        for k, step in enumerate(selected, 1):
            state = "would run" if planned[step.stem] else "cached (unchanged)"
            echo(f"[{k}/{len(selected)}] {step.stem} ... {state}")
        return RunResult(run_dir, {}, {}, records=previous)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "steps").mkdir(exist_ok=True)
    pages.mkdir(parents=True, exist_ok=True)
    (pages / RUN_MARKER).write_text(str(run_dir) + "\n")
    with open(run_dir / PARAMS_FILE, "w") as handle:
        yaml.safe_dump(
            {
                "profile": profile_name,
                "data": data,
                "overrides": list(overrides),
                "only": list(only or []),
                "run_dir": str(run_dir),
                "steps": params,
            },
            handle,
            sort_keys=False,
        )

    records = {
        "project": str(project),
        "run_dir": str(run_dir),
        "profile": profile_name,
        "overrides": list(overrides),
        "data_option": data,
        "only": list(only or []),
        "force": force,
        "status": "running",
        "started": _now(),
        "finished": None,
        "git_commit": git_commit(project),
        "srkit_hash": srkit_hash,
        "versions": collect_versions(),
        "hardware": collect_hardware(),
        "data": previous.get("data", []),
        "steps": {},
    }
    for step in steps:
        record = dict(old_steps.get(step.stem, {}))
        record["status"] = "untouched"
        record["params"] = params[step.stem]
        records["steps"][step.stem] = record
    save = lambda: write_json_atomic(run_dir / RUN_RECORDS, records)  # noqa: E731
    save()

    # data: prepared once, before the steps, for the steps that will execute
    needed = []
    for step in selected:
        if planned[step.stem]:
            needed.extend(item for item in inputs[step.stem] if item not in needed)
    data_records = {r.get("key"): r for r in records["data"]}
    for source, n_images, seed, mode in needed:
        echo(f"data: {source}, {n_images} images, seed {seed} ...")
        start = time.perf_counter()
        info = prepare_data(source, n_images, seed, mode, run_dir / "data")
        info = {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))}
        data_records[info.get("key", data_key(source, n_images, seed, mode))] = info
        echo(
            f"data: {info.get('n_train', '?')} train / {info.get('n_val', '?')} "
            f"validation images ({_format_seconds(time.perf_counter() - start)})"
        )
    records["data"] = list(data_records.values())
    save()

    kernel_name = ensure_kernel() if any(planned.values()) else KERNEL_NAME
    statuses = {s.stem: "untouched" for s in steps}
    seconds = {s.stem: 0.0 for s in steps}
    failure: StepFailed | None = None
    for k, step in enumerate(selected, 1):
        label = f"[{k}/{len(selected)}] {step.stem}"
        record = records["steps"][step.stem]
        if failure is not None:
            statuses[step.stem] = record["status"] = "not run"
            continue
        upstream = _upstream_hashes(step, steps, run_dir)
        key = step_key(
            step, params[step.stem], srkit_hash, keys_of_data[step.stem], upstream
        )
        if is_cached(step, key):
            statuses[step.stem] = record["status"] = "cached"
            echo(f"{label} ... cached (unchanged)")
            continue
        echo(f"{label} ... running")
        record.update(
            status="running", key=key, ok=False, started=_now(), finished=None
        )
        record.pop("error", None)
        save()
        notebook_path = pages / f"{step.stem}.ipynb"
        start = time.perf_counter()
        try:
            execute_step(
                step,
                params[step.stem],
                notebook_path,
                project / "notebooks",
                kernel_name,
                echo=echo,
                label=label,
                heartbeat_s=heartbeat_s,
            )
        except StepFailed as error:
            failure = error
        elapsed = round(time.perf_counter() - start, 2)
        seconds[step.stem] = elapsed
        record.update(seconds=elapsed, finished=_now(), notebook=str(notebook_path))
        if failure is not None:
            statuses[step.stem] = record["status"] = "failed"
            record["error"] = {
                "cell_index": failure.cell_index,
                "exec_count": failure.exec_count,
                "ename": failure.ename,
                "evalue": failure.evalue,
            }
            echo(f"{label} ... FAILED after {_format_seconds(elapsed)}")
        else:
            statuses[step.stem] = record["status"] = "ran"
            record["ok"] = True
            echo(f"{label} ... done in {_format_seconds(elapsed)}")
            if not metrics_path(run_dir, step.stem).is_file():
                echo(
                    f"{label} ... note: wrote no {metrics_path(run_dir, step.stem)}; "
                    "it will run again next time"
                )
        save()

    records["status"] = "failed" if failure else "ok"
    records["finished"] = _now()
    save()
    echo(summary_table(records, [s.stem for s in steps], seconds))
    result = RunResult(run_dir, statuses, seconds, records=records)
    if failure is not None:
        if book:
            echo(
                "the book was NOT rebuilt: "
                f"{project / '_build' / 'html'} (if any) is from an earlier build"
            )
        raise failure
    if book:
        result.book_index = build_book(
            project, run_dir=run_dir, strict=strict, echo=echo
        )
    return result


def summary_table(records: dict, stems: Sequence[str], seconds: dict) -> str:
    """The end-of-run table: step, status, seconds (this run; cached: last run)."""
    rows = [("step", "status", "seconds")]
    for stem in stems:
        record = records["steps"].get(stem, {})
        status = record.get("status", "untouched")
        value = seconds.get(stem) or record.get("seconds")
        shown = f"{value:.1f}" if isinstance(value, (int, float)) else "-"
        if status in ("cached", "untouched") and value is not None:
            shown = f"({value:.1f})"
        rows.append((stem, status, shown))
    width = max(len(row[0]) for row in rows)
    lines = [f"{a:<{width}}  {b:<9}  {c:>9}" for a, b, c in rows]
    total = sum(seconds.values())
    lines.append(f"total executed: {_format_seconds(total)} (cached: time of last run)")
    return "\n".join(lines)


# ----------------------------------------------------------------------- book


def _md_cell(value: Any) -> str:
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def about_page(records: dict) -> str:
    """Markdown of "About this run" from a run's ``run.json`` records."""
    if not records:
        return (
            "# About this run\n\nNo run records were found: the step pages were not "
            "produced by `srkit run` in this project. Run `srkit run` to execute the "
            "steps and record their parameters, versions, hardware and timings.\n"
        )
    lines = [
        "# About this run",
        "",
        "This page is generated by `srkit run` from the run's records "
        "(`run.json` in the run folder); every number in the book comes from this "
        "run.",
        "",
    ]
    overrides = " ".join(f"`-p {o}`" for o in records.get("overrides", [])) or "none"
    if records.get("data_option"):
        overrides = f"`--data {records['data_option']}` " + overrides
    lines += _table(
        ["", ""],
        [
            ("profile", records.get("profile", "")),
            ("overrides", overrides),
            ("run folder", f"`{records.get('run_dir', '')}`"),
            ("started", records.get("started", "")),
            ("finished", records.get("finished", "")),
            ("status", records.get("status", "")),
            ("project commit", records.get("git_commit") or "not a git checkout"),
            ("srkit source hash", records.get("srkit_hash", "")),
        ],
    )
    steps = records.get("steps", {})
    lines += ["## Steps", ""]
    lines += _table(
        ["step", "status", "wall time", "finished"],
        [
            (
                stem,
                r.get("status", ""),
                _format_seconds(r["seconds"]) if "seconds" in r else "-",
                r.get("finished") or "-",
            )
            for stem, r in steps.items()
        ],
    )
    lines += [
        "Status `cached`: the step's source, parameters, srkit source and data were "
        "unchanged, so its page and artifacts from an earlier execution were kept; "
        "the wall time is that execution's.",
        "",
    ]
    lines += _parameter_section(steps)
    data = records.get("data", [])
    if data:
        lines += ["## Data", ""]
        columns = ["source", "mode", "n_images", "seed", "n_train", "n_val", "key"]
        lines += _table(columns, [[d.get(c, "") for c in columns] for d in data])
    versions = records.get("versions", {})
    if versions:
        lines += ["## Software", ""]
        lines += _table(["package", "version"], versions.items())
    hardware = records.get("hardware", {})
    if hardware:
        lines += ["## Hardware", ""]
        rows = [
            ("platform", hardware.get("platform", "")),
            ("CPU", hardware.get("cpu", "")),
            ("cores", hardware.get("cores", "")),
            ("RAM", f"{hardware.get('ram_gib', '?')} GiB"),
            ("GPUs", "; ".join(hardware.get("gpus", [])) or "none"),
            backend_gpus_row(hardware),
        ]
        lines += _table(["", ""], rows)
    return "\n".join(lines).rstrip() + "\n"


def _parameter_section(steps: dict) -> list[str]:
    """Parameters shared by every step that declares them, then per-step values."""
    by_name: dict[str, dict[str, Any]] = {}
    for stem, record in steps.items():
        for name, value in (record.get("params") or {}).items():
            by_name.setdefault(name, {})[stem] = value
    if not by_name:
        return []
    common = {
        n: next(iter(v.values()))
        for n, v in by_name.items()
        if len({json.dumps(x) for x in v.values()}) == 1
    }
    lines = ["## Parameters", "", "Values shared by every step that declares them:", ""]
    lines += _table(
        ["parameter", "value", "steps"],
        [
            (n, f"`{v}`" if v != "" else "(empty)", len(by_name[n]))
            for n, v in common.items()
        ],
    )
    varying = [n for n in by_name if n not in common]
    if varying:
        lines += ["Values that differ between steps:", ""]
        rows = []
        for stem, record in steps.items():
            values = record.get("params") or {}
            shown = [f"{n}={values[n]}" for n in varying if n in values]
            if shown:
                rows.append((stem, ", ".join(shown)))
        lines += _table(["step", "parameters"], rows)
    return lines


def latest_run_dir(project: Path) -> Path | None:
    """The run folder of the pages in ``book/steps`` (else the newest run.json)."""
    marker = Path(project) / STEPS_PAGE_DIR / RUN_MARKER
    if marker.is_file():
        folder = Path(marker.read_text().strip())
        if (folder / RUN_RECORDS).is_file():
            return folder
    candidates = sorted(
        (Path(project) / "runs").glob(f"*/{RUN_RECORDS}"),
        key=lambda p: p.stat().st_mtime,
    )
    return candidates[-1].parent if candidates else None


def write_about_page(project: Path, run_dir: Path | None = None) -> Path:
    """Write ``book/about_run.md`` from a run's records (latest run by default)."""
    project = Path(project)
    run_dir = run_dir or latest_run_dir(project)
    records = read_records(run_dir) if run_dir else {}
    path = project / ABOUT_PAGE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(about_page(records))
    return path


def toc_files(project: Path) -> list[str]:
    """Every ``file:`` (and ``root:``) entry of ``_toc.yml``."""
    data = yaml.safe_load((Path(project) / "_toc.yml").read_text()) or {}
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return found


def missing_pages(project: Path) -> list[str]:
    """Table-of-contents entries without a page (.md, .ipynb, .rst) on disk."""
    missing = []
    for entry in toc_files(project):
        base = Path(project) / entry
        if base.is_file() or any(
            base.with_name(base.name + suffix).is_file()
            for suffix in (".md", ".ipynb", ".rst")
        ):
            continue
        missing.append(entry)
    return missing


def build_book(
    project: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    strict: bool = False,
    echo: Echo = print,
) -> Path:
    """Write the about page and run ``jupyter-book build`` on the project.

    Args:
        project: project folder (default: found from the current directory).
        run_dir: whose records go on the about page (default: the latest run).
        strict: pass ``-W -n --keep-going`` (warnings fail the build).
        echo: printer.

    Returns:
        Path of ``_build/html/index.html``.

    Raises:
        PipelineError: when the build fails (its log is printed and kept in
            ``RUN/book_build.log``, or ``_build/book_build.log`` without a run).
    """
    project = find_project(project)
    run_dir = Path(run_dir) if run_dir else latest_run_dir(project)
    write_about_page(project, run_dir)
    missing = missing_pages(project)
    if missing:
        echo(
            "book: pages missing (run `srkit run` to execute the steps): "
            + ", ".join(missing)
        )
    command = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; "
        "sys.exit(main(prog_name='jupyter-book'))",
        "build",
        str(project),
    ]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    log_path = (run_dir or project / "_build") / BOOK_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    echo("book: jupyter-book build" + (" (strict)" if strict else "") + " ...")
    start = time.perf_counter()
    with open(log_path, "w") as log:
        result = subprocess.run(
            command,
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
        )
    index = project / "_build" / "html" / "index.html"
    if result.returncode != 0 or not index.is_file():
        echo(log_path.read_text()[-20000:])
        raise PipelineError(
            f"jupyter-book build failed (exit {result.returncode}); log: {log_path}"
        )
    echo(f"book: built in {_format_seconds(time.perf_counter() - start)}: {index}")
    return index


def clean(project: str | os.PathLike | None = None, everything: bool = False):
    """Remove generated outputs: ``book/steps/``, ``book/about_run.md``, ``_build/``.

    Args:
        project: project folder (default: found from the current directory).
        everything: also remove ``runs/`` (models, data caches, records).

    Returns:
        The removed paths.
    """
    project = find_project(project)
    targets = [project / STEPS_PAGE_DIR, project / ABOUT_PAGE, project / "_build"]
    if everything:
        targets.append(project / "runs")
    removed = []
    for path in targets:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


# -------------------------------------------------------------------- models


def _step_of_model(project: Path | None, name: str) -> str:
    """The step notebook that trains a model (by its quoted name), for messages."""
    if project is not None:
        for path in sorted((project / "notebooks").glob("[0-9][0-9]_*.py")):
            with contextlib.suppress(OSError):
                if f'"{name}"' in path.read_text() or f"'{name}'" in path.read_text():
                    return path.name[:2]
    with contextlib.suppress(Exception):
        from srkit import models

        step = str(models.MODEL_INFO[name]["step"])
        return f"{7 + int(step[1:]):02d}" if step.startswith("R") else step
    return "NN"


def find_model_file(
    name: str,
    project: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    model_file: str | os.PathLike | None = None,
) -> Path:
    """Locate ``RUN/models/<name>/best.keras``.

    Args:
        name: the model's registry name.
        project: project folder (searched for runs when run_dir is None).
        run_dir: the run folder (default: the latest run of the project).
        model_file: an explicit file, used as is.

    Raises:
        PipelineError: naming the folder searched and the command that trains it.
    """
    if model_file is not None:
        path = Path(model_file).expanduser()
        if not path.is_file():
            raise PipelineError(
                f"model file {str(path)!r} does not exist: pass --model-file the "
                f"path of a .keras file, or --run-dir a run that trained {name}"
            )
        return path
    found_project = None
    with contextlib.suppress(PipelineError):
        found_project = find_project(project)
    if run_dir is None and found_project is not None:
        run_dir = latest_run_dir(found_project)
    if run_dir is None:
        raise PipelineError(
            "no run folder found: pass --run-dir DIR or --model-file PATH, or train "
            f"the model with `srkit run --only {_step_of_model(found_project, name)}`"
        )
    path = Path(run_dir) / "models" / name / "best.keras"
    if not path.is_file():
        raise PipelineError(
            f"no trained {name} in run folder {run_dir} (looked for {path}); train it "
            f"with `srkit run --only {_step_of_model(found_project, name)}` "
            "(with the same --profile/--run-dir) or pass --model-file PATH"
        )
    return path


def _check_upscale_paths(input_path, output_path, overwrite: bool) -> None:
    """Refuse an output that would destroy the input or an existing file."""
    from srkit import data

    source, target = Path(input_path).expanduser(), Path(output_path).expanduser()
    shown = repr(os.fspath(output_path))  # the user's own spelling
    if target.suffix.lower() not in data.IMAGE_EXTENSIONS:
        raise ValueError(
            f"cannot write {shown}: extension {target.suffix!r} is not an "
            f"image format; end OUT with one of {', '.join(data.IMAGE_EXTENSIONS)}"
        )
    # The same file through any spelling: ./a.png, a symlink, a hard link, or a
    # case-insensitive file system.
    same = source.resolve() == target.resolve()
    if not same and source.exists() and target.exists():
        with contextlib.suppress(OSError):
            same = os.path.samefile(source, target)
    if same:
        raise ValueError(
            f"output {shown} is the input image {os.fspath(input_path)!r}: writing it "
            "would destroy the input; choose another OUT file"
        )
    if target.is_dir():
        raise ValueError(
            f"output {shown} is a directory: give a file name, e.g. "
            f"{str(target / ('upscaled' + source.suffix))!r}"
        )
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise ValueError(
            f"output {shown} exists already: pass --overwrite to replace it, "
            "or choose another OUT file"
        )


def upscale(
    input_path,
    output_path,
    model: str,
    project=None,
    run_dir=None,
    model_file=None,
    scale: int = 2,
    tile: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Upscale one image file with a trained model.

    Nothing is lost: the output may not be the input (under any spelling, symlink
    or hard link), an existing output is replaced only with ``overwrite``, and the
    file is written atomically, so a failure leaves the old one intact. The image
    is predicted in tiles (see ``srkit.evaluate.predict_full``) straight into an
    8-bit result, so memory stays bounded for large images.

    Args:
        input_path: image file (read with ``srkit.data.read_image``).
        output_path: file to write (8-bit, by ``srkit.data.write_image``); its
            extension picks the format.
        model: registry name of the model (its folder under ``RUN/models``).
        project, run_dir, model_file: where the model is (see ``find_model_file``).
        scale: 2 (output ``low_upsample``) or 4 (``high_upsample``).
        tile: tile core size in input pixels; None picks it from the image size
            (at most ``srkit.evaluate.MAX_TILE``), 0 predicts the whole image at
            once.
        overwrite: replace an existing output file.

    Returns:
        dict with model_file, input and output shapes.

    Raises:
        ValueError: bad scale or tile, output that is the input, an existing output
            without ``overwrite``, an unsupported output extension, an unreadable
            image, a model file Keras cannot load, or a model without the
            requested output.
        PipelineError: missing model file.
        OSError: the output cannot be written (the old file is kept).
    """
    if scale not in (2, 4):
        raise ValueError(f"scale must be 2 or 4, got {scale!r}")
    if tile is not None and (isinstance(tile, bool) or tile < 0):
        raise ValueError(f"tile must be a pixel count >= 0, got {tile!r}")
    _check_upscale_paths(input_path, output_path, overwrite)
    path = find_model_file(model, project, run_dir, model_file)

    from srkit import data

    image = data.read_image(input_path)  # a bad input fails before the model loads
    if not zipfile.is_zipfile(path):  # Keras would call it "File not found"
        raise ValueError(
            f"cannot load model file {str(path)!r}: it is not a .keras file (not a "
            "zip archive); pass one written by srkit (RUN/models/NAME/best.keras)"
        )
    import keras
    import numpy as np

    from srkit import evaluate
    from srkit import layers as _layers  # noqa: F401  (registers custom layers)

    try:
        network = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a file it cannot read
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(
            f"cannot load model file {str(path)!r}: {reason}; pass a .keras file "
            "written by srkit (RUN/models/NAME/best.keras)"
        ) from error
    output = "low_upsample" if scale == 2 else "high_upsample"
    names = list(getattr(network, "output_names", None) or [])
    if names and output not in names:
        raise ValueError(
            f"model {model} ({path}) has no {output} output (x{scale}); it has "
            f"{', '.join(names)}: use --scale 2"
        )
    result = evaluate.predict_full(
        network,
        image,
        output=output,
        tile="auto" if tile is None else (tile or None),
        dtype=np.uint8,
    )
    input_shape = tuple(image.shape)
    del image
    data.write_image(output_path, result, overwrite=overwrite)
    return {
        "model_file": str(path),
        "input_shape": input_shape,
        "output_shape": tuple(result.shape),
    }
