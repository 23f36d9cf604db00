"""The pipeline: profiles, parameters, notebook execution, the step cache.

This module owns everything between ``srkit run`` and a built book. It finds the project
(the folder holding ``_toc.yml`` and ``notebooks/``), lists the step notebooks
``notebooks/NN_name.py``, reads each one's ``parameters`` cell, resolves the parameters
once (profile YAML, then ``--data``, then ``-p name=value`` overrides, typed from the
cell's annotations), prepares the data cache once, executes each step with papermill
(jupytext converts the percent-format source; the kernel is set explicitly) into
``book/steps/<stem>.ipynb``, skips steps whose source, parameters, srkit source and
input data are unchanged, records timings, versions and hardware in ``RUN/run.json`` and
hands the book to ``srkit.book`` (the About page and ``jupyter-book build``). It holds a
lock on the run folder while it runs, and the records end ``ok``, ``failed`` or
``interrupted`` on every way out. It is the only module that knows about papermill and
jupytext; those are imported inside functions so the command line starts fast. Nothing
here imports TensorFlow.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from srkit import data as srkit_data
from srkit.atomic import atomic_path, write_json
from srkit.book import build_book, steps_table
from srkit.book import format_seconds as _format_seconds
from srkit.environment import (
    collect_hardware,
    collect_versions,
    git_commit,
)
from srkit.layout import (
    RUN_MARKER,
    STEPS_PAGE_DIR,
    RunFolder,
    default_run_dir,
    find_project,
    read_records,
)

PROFILES = ("smoke", "default", "quick", "full")
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
KERNEL_LOG_TAIL = 8  # lines of a dead kernel's own output quoted in the error
# the kernel's own log (e.g. "running over TCP without encryption" on the loopback,
# or "KeyboardInterrupt caught in kernel" when Ctrl-C stops a run) is noise in a
# batch run; cell errors and outputs still reach the notebook
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
QUIET_LOGGERS = ("papermill", "nbclient", "traitlets")
NON_NEGATIVE = ("seed",)  # integer parameters that may not be negative
# A step whose source has this comment line reads the records of every earlier step
# (the benchmark and summary pages), so their metrics.json are part of its cache key.
READS_EARLIER_STEPS = re.compile(r"^#\s*srkit:\s*reads-earlier-steps\b", re.MULTILINE)
# A step that reads prepared data names, on this comment line, the parameters that
# each count the images of one data set of its ``data_source``, e.g.
# "# srkit: data-sets n_images retrain_n_images"; the pipeline prepares those sets.
DATA_SETS = re.compile(r"^#\s*srkit:\s*data-sets\b(?P<names>[ \w]*)", re.MULTILINE)
# Parameters whose "folder:PATH" value names an input folder: its listing (names,
# sizes, modification times) is part of the step's cache key.
FOLDER_PARAMETERS = ("benchmarks",)
FOLDER_PREFIX = "folder:"
# Code that does not change what a notebook computes: the pipeline, the book build,
# the command line, applying a model to files, and the benchmarks.
HASH_EXCLUDED = (
    "pipeline.py",
    "book.py",
    "cli.py",
    "__main__.py",
    "upscale.py",
    "bench.py",
    "bench_train.py",
)

Echo = Callable[[str], None]


class PipelineError(RuntimeError):
    """A problem the user can fix (missing project, unknown step, failed build)."""


class RunLocked(PipelineError):
    """Another ``srkit run`` holds the run folder's lock."""


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGTERM); ``str()`` names the signal."""


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


# --------------------------------------------------------------------- project


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
        data_sets: the parameters that each count the images of one data set the
            step reads (``# srkit: data-sets n_images ...``); empty for none.
    """

    number: str
    stem: str
    path: Path
    parameters: dict[str, Parameter] = field(default_factory=dict)
    reads_earlier_steps: bool = False
    data_sets: tuple[str, ...] = ()


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
        (none if the notebook has no such cell), ``reads_earlier_steps`` set
        when a code cell holds the line ``# srkit: reads-earlier-steps``, and the
        ``data_sets`` named by a ``# srkit: data-sets ...`` line.

    Raises:
        ValueError: for a malformed parameters cell, or a data-sets line naming
            something that is not one of its parameters.
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
    data_sets: tuple[str, ...] = ()
    for cell in notebook.cells:
        found = DATA_SETS.search(cell.source) if cell.cell_type == "code" else None
        if found:
            data_sets = tuple(found.group("names").split())
            break
    unknown = [n for n in (*data_sets, "data_source") if n not in parameters]
    if data_sets and unknown:
        raise ValueError(
            f"{path}: the line '# srkit: data-sets {' '.join(data_sets)}' names "
            f"{', '.join(unknown)}, which the parameters cell does not define"
        )
    match = STEP_FILE.match(path.name)
    number = match.group(1) if match else path.stem[:2]
    return Step(
        number=number,
        stem=path.stem,
        path=path,
        parameters=parameters,
        reads_earlier_steps=reads_earlier,
        data_sets=data_sets,
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
        name: "smoke", "default", "quick" or "full", or a path to a YAML file of
            that form.

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


def _check_range(name: str, value: Any, where: str) -> None:
    """Refuse a negative value for a parameter of :data:`NON_NEGATIVE`."""
    if name in NON_NEGATIVE and isinstance(value, int) and value < 0:
        raise ValueError(
            f"{where}: parameter {name!r} must be an integer >= 0, got {value}"
        )


def absolute_source(value: str, base: str | os.PathLike | None = None) -> str:
    """``folder:PATH`` with PATH made absolute from ``base`` (default: cwd).

    A relative path means the folder where the user typed it; the step notebooks
    run in another folder, so the pipeline hands them absolute paths only. Any
    other value (``sample``, ``voc2007``, ``""``) is returned unchanged.
    """
    if not isinstance(value, str) or not value.startswith(FOLDER_PREFIX):
        return value
    path = value[len(FOLDER_PREFIX) :]
    if not path:
        return value
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        folder = Path(base or Path.cwd()) / folder
    return FOLDER_PREFIX + os.path.normpath(folder)


def absolute_overrides(overrides: Sequence[str], base=None) -> list[str]:
    """Overrides whose ``folder:PATH`` values are made absolute from ``base``."""
    result = []
    for text in overrides:
        step, name, value = parse_override(text)
        if name in ("data_source", *FOLDER_PARAMETERS):
            value = absolute_source(value.strip(), base)
            text = f"{step + '.' if step else ''}{name}={value}"
        result.append(text)
    return result


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
                    _check_range(name, values[name], f"profile {spec['name']}")
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
            try:
                targets = select_steps(steps, [step_word])
            except ValueError:
                raise ValueError(
                    f"-p {step_word}.{name}={raw}: no step {step_word!r}; steps: "
                    + ", ".join(s.stem for s in steps)
                ) from None
            for step in targets:
                if name not in step.parameters:
                    valid = sorted(set(step.parameters) - set(PIPELINE_OWNED))
                    raise ValueError(
                        f"step {step.stem} has no parameter {name!r}; "
                        f"valid names: {', '.join(valid)}"
                    )
        for step in targets:
            value = coerce(raw, step.parameters[name].type, name)
            where = f"-p {step_word + '.' if step_word else ''}{name}={raw}"
            _check_range(name, value, where)
            resolved[step.stem][name] = value
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
        path = RunFolder(run_dir).step_metrics(other.stem)
        hashes[other.stem] = _sha256(path.read_bytes())[:16] if path.is_file() else ""
    return hashes


# ------------------------------------------------------------------- records


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


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
        client_options = {"extra_arguments": KERNEL_ARGUMENTS}
        if kernel_log is not None:
            kernel_log = Path(kernel_log)
            kernel_log.parent.mkdir(parents=True, exist_ok=True)
            kernel_log.write_bytes(b"")
            client_options["kernel_manager_class"] = _kernel_manager_writing_to(
                kernel_log
            )
            # ipykernel would relay that output through a thread, which loses the
            # last lines of a kernel that dies; written directly, they stay
            client_options["extra_arguments"] = [
                *KERNEL_ARGUMENTS,
                "--IPKernelApp.capture_fd_output=False",
            ]
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
    plan = make_plan(project, profile, overrides, only, data, force, run_dir, echo)
    echo(
        f"srkit run: profile {plan.profile}, {len(plan.selected)} of "
        f"{len(plan.steps)} steps, run folder {plan.run_dir}"
    )
    if dry_run:
        previous = read_records(plan.run_dir)
        to_run = plan.to_run(previous.get("steps", {}))
        for k, step in enumerate(plan.selected, 1):
            state = "would run" if to_run[step.stem] else "cached (unchanged)"
            echo(f"[{k}/{len(plan.selected)}] {step.stem} ... {state}")
        return RunResult(plan.run_dir, {}, {}, records=previous)

    with run_lock(plan.run_dir, wait=wait, echo=echo), _terminate_as_interrupt():
        _sweep_kernel_files(plan.run_dir)
        previous = read_records(plan.run_dir)  # under the lock: no run writes it now
        if previous.get("status") == "running":
            echo(
                f"note: the previous run in {plan.run_dir} ended without a word "
                "(killed); its finished steps are kept"
            )
        old_steps = previous.get("steps", {})
        to_run = plan.to_run(old_steps)
        _write_run_folder(plan)
        records = _new_records(plan, previous)
        save = lambda: write_json(plan.folder.records, records)  # noqa: E731
        save()
        statuses = {s.stem: "untouched" for s in plan.steps}
        seconds = {s.stem: 0.0 for s in plan.steps}
        try:
            _prepare_run_data(plan, to_run, records, save, echo)
            failure = _execute_steps(
                plan,
                old_steps,
                to_run,
                records,
                statuses,
                seconds,
                save,
                echo,
                heartbeat_s,
            )
        except BaseException as error:
            _record_stop(records, statuses, error)
            save()
            raise
        records["status"] = "failed" if failure else "ok"
        records["finished"] = _now()
        save()
    echo(steps_table(records, [s.stem for s in plan.steps], seconds))
    result = RunResult(plan.run_dir, statuses, seconds, records=records)
    if failure is not None:
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


@dataclass
class RunPlan:
    """What one run works on: its steps, their parameters, data and cache keys.

    Attributes:
        project: the project folder.
        run_dir: the absolute run folder.
        profile: the profile's name.
        steps: every step of the project; ``selected``: those this run may execute.
        params: stem -> resolved parameters.
        data_sets: stem -> the (source, n_images, seed, mode) sets the step reads.
        data_keys: stem -> cache keys of its data sets and input folders (selected
            steps only).
        srkit_hash: hash of the srkit source that the notebooks use.
        force: execute the selected steps even when cached.
        options: the run's own settings as given (data, overrides, only), for the
            records.
    """

    project: Path
    run_dir: Path
    profile: str
    steps: list[Step]
    selected: list[Step]
    params: dict[str, dict]
    data_sets: dict[str, list[tuple]]
    data_keys: dict[str, list[str]]
    srkit_hash: str
    force: bool = False
    options: dict = field(default_factory=dict)

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def pages(self) -> Path:
        """Where the executed notebooks go (``book/steps``)."""
        return self.project / STEPS_PAGE_DIR

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
        """Whether the step's last run succeeded with this key and left its files."""
        record = old_steps.get(step.stem, {})
        return (
            not self.force
            and record.get("ok") is True
            and record.get("key") == key
            and (self.pages / f"{step.stem}.ipynb").is_file()
            and self.folder.step_metrics(step.stem).is_file()
        )

    def to_run(self, old_steps: dict) -> dict[str, bool]:
        """Selected stem -> whether it needs executing (not cached)."""
        return {
            step.stem: not self.is_cached(step, self.key(step), old_steps)
            for step in self.selected
        }


def make_plan(
    project=None,
    profile: str = DEFAULT_PROFILE,
    overrides: Sequence[str] = (),
    only: Sequence[str] | None = None,
    data: str | None = None,
    force: bool = False,
    run_dir=None,
    echo: Echo = print,
) -> RunPlan:
    """Find the project and its steps, resolve every parameter, key the data.

    Relative ``folder:PATH`` values of ``data`` and ``overrides`` are made absolute
    here, from the current directory, before any step sees them. Arguments as in
    :func:`run`.

    Raises:
        ValueError: bad parameters or step names.
        ProjectNotFound: no project.
    """
    project = find_project(project)
    steps = discover_steps(project)
    selected = select_steps(steps, only)
    run_dir = Path(run_dir or default_run_dir(project, profile)).expanduser().resolve()
    if data is not None:
        data = absolute_source(data)
    overrides = absolute_overrides(overrides)
    params = resolve_parameters(steps, profile, overrides, data, run_dir, warn=echo)
    data_sets = {s.stem: data_inputs(s, params[s.stem]) for s in steps}
    data_keys = {
        s.stem: [data_key(*item) for item in data_sets[s.stem]]
        + folder_keys(params[s.stem], project)
        for s in selected
    }
    return RunPlan(
        project=project,
        run_dir=run_dir,
        profile=Path(profile).stem,
        steps=steps,
        selected=selected,
        params=params,
        data_sets=data_sets,
        data_keys=data_keys,
        srkit_hash=srkit_source_hash(),
        force=force,
        options={"data": data, "overrides": list(overrides), "only": list(only or [])},
    )


def _write_run_folder(plan: RunPlan) -> None:
    """Create the run's folders, mark the pages' run, write ``params.yaml``."""
    plan.folder.steps.mkdir(exist_ok=True)
    plan.pages.mkdir(parents=True, exist_ok=True)
    (plan.pages / RUN_MARKER).write_text(str(plan.run_dir) + "\n")
    with atomic_path(plan.folder.params) as temporary:
        temporary.write_text(
            yaml.safe_dump(
                {
                    "profile": plan.profile,
                    "data": plan.options["data"],
                    "overrides": plan.options["overrides"],
                    "only": plan.options["only"],
                    "run_dir": str(plan.run_dir),
                    "steps": plan.params,
                },
                sort_keys=False,
            ),
            encoding="utf-8",
        )


def _new_records(plan: RunPlan, previous: dict) -> dict:
    """The ``run.json`` of a starting run: this run's facts, earlier step records.

    Every step starts "untouched" with its resolved parameters; a step that a
    killed run left "running" is marked interrupted and not ok.
    """
    records = {
        "project": str(plan.project),
        "run_dir": str(plan.run_dir),
        "profile": plan.profile,
        "overrides": plan.options["overrides"],
        "data_option": plan.options["data"],
        "only": plan.options["only"],
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
    return records


def _record_stop(records: dict, statuses: dict, error: BaseException) -> None:
    """End the records of a run that an error or an interrupt stopped."""
    stopped = isinstance(error, KeyboardInterrupt)
    records["status"] = "interrupted" if stopped else "failed"
    records["error"] = f"{type(error).__name__}: {error}".strip()
    for stem, record in records["steps"].items():
        if record["status"] == "running":
            record.update(
                status=records["status"],
                ok=False,
                finished=_now(),
                error={"ename": type(error).__name__, "evalue": str(error)},
            )
            statuses[stem] = record["status"]
        elif record["status"] == "planned":
            record["status"] = statuses[stem] = "not run"
    records["finished"] = _now()


def _prepare_run_data(plan: RunPlan, to_run: dict, records: dict, save, echo) -> None:
    """Prepare, once and before any step, the data of the steps that will execute."""
    for step in plan.selected:
        records["steps"][step.stem]["status"] = "planned"
    needed = []
    for step in plan.selected:
        if to_run[step.stem]:
            needed.extend(i for i in plan.data_sets[step.stem] if i not in needed)
    data_records = {r.get("key"): r for r in records["data"]}
    for source, n_images, seed, mode in needed:
        echo(f"data: {source}, {n_images} images, seed {seed} ...")
        start = time.perf_counter()
        info = prepare_data(source, n_images, seed, mode, plan.folder.data)
        info = {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))}
        data_records[info.get("key", data_key(source, n_images, seed, mode))] = info
        echo(
            f"data: {info.get('n_train', '?')} train / {info.get('n_val', '?')} "
            f"validation images ({_format_seconds(time.perf_counter() - start)})"
        )
    records["data"] = list(data_records.values())
    save()


def _execute_steps(
    plan: RunPlan,
    old_steps: dict,
    to_run: dict,
    records: dict,
    statuses: dict,
    seconds: dict,
    save,
    echo,
    heartbeat_s: float,
) -> StepFailed | None:
    """Execute the selected steps in order; the first failure stops the rest.

    Updates ``records`` (saved through ``save`` after each change), ``statuses``
    and ``seconds`` in place; returns the first step failure, or None.
    """
    kernel_name = ensure_kernel() if any(to_run.values()) else KERNEL_NAME
    failure: StepFailed | None = None
    for k, step in enumerate(plan.selected, 1):
        label = f"[{k}/{len(plan.selected)}] {step.stem}"
        record = records["steps"][step.stem]
        if failure is not None:
            statuses[step.stem] = record["status"] = "not run"
            continue
        key = plan.key(step)
        if plan.is_cached(step, key, old_steps):
            statuses[step.stem] = record["status"] = "cached"
            echo(f"{label} ... cached (unchanged)")
            continue
        echo(f"{label} ... running")
        record.update(
            status="running", key=key, ok=False, started=_now(), finished=None
        )
        record.pop("error", None)
        save()
        notebook_path = plan.pages / f"{step.stem}.ipynb"
        start = time.perf_counter()
        try:
            execute_step(
                step,
                plan.params[step.stem],
                notebook_path,
                plan.project / "notebooks",
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
            step_metrics = plan.folder.step_metrics(step.stem)
            if not step_metrics.is_file():
                echo(
                    f"{label} ... note: wrote no {step_metrics}; "
                    "it will run again next time"
                )
        save()
    return failure
