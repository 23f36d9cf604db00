"""The step notebooks and their parameters: what each step is and which values it gets.

This module reads the project's step sources ``notebooks/NN_name.py`` (jupytext
percent format): each one's ``parameters`` cell (literal, annotated assignments, the
``smoke`` values) and its ``# srkit:`` declarations (the data sets it reads, whether
it reads earlier steps). It loads and checks the profiles
(``srkit/profiles/<name>.yaml`` or a YAML file: ``defaults`` for every step and a
``per_step`` section keyed by step number; an unknown section, step or name, or a
value of the wrong type, is a one-line error naming the file, the step and the key,
with the closest valid name), parses the ``--data`` and ``-p`` choices of a run once
(:class:`RunSettings`), resolves them into every step's typed values and spells
those values for ``--dry-run`` (:func:`parameter_lines`). It executes nothing and
writes nothing; ``srkit.pipeline`` plans and runs the steps. jupytext is imported
inside :func:`read_source` so the command line starts fast.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from srkit.layout import FOLDER_PREFIX, NOTEBOOK_DIR, parse_folder

PROFILES = ("smoke", "default", "quick", "full")
DEFAULT_PROFILE = "smoke"
PIPELINE_OWNED = ("profile", "run_dir")  # set by the pipeline, never by -p
STEP_FILE = re.compile(r"^(\d\d)_\w+\.py$")
PARAMETER_TYPES = ("int", "float", "str", "bool")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
NON_NEGATIVE = ("seed",)  # integer parameters that may not be negative
# A step whose source has this comment line reads the records of every earlier step
# (the benchmark and summary pages), so their metrics.json are part of its cache key.
READS_EARLIER_STEPS = re.compile(r"^#\s*srkit:\s*reads-earlier-steps\b", re.MULTILINE)
# A step that reads the records of some earlier steps names them on this comment line,
# e.g. "# srkit: reads-steps 02_initial_model" (a page set against its control step);
# their metrics.json are then part of its cache key.
READS_STEPS = re.compile(r"^#\s*srkit:\s*reads-steps\b(?P<stems>[ \w]*)", re.MULTILINE)
# A step that reads prepared data names, on this comment line, the parameters that
# each count the images of one data set of its ``data_source``, e.g.
# "# srkit: data-sets n_images retrain_n_images"; the pipeline prepares those sets.
DATA_SETS = re.compile(r"^#\s*srkit:\s*data-sets\b(?P<names>[ \w]*)", re.MULTILINE)
# Parameters whose "folder:PATH" value names an input folder: its listing (names,
# sizes, modification times) is part of the step's cache key.
FOLDER_PARAMETERS = ("benchmarks",)
# The per-step section of a profile; its old name ("steps") is still read,
# with a note, though "steps" is also a parameter (the training budget).
PER_STEP_SECTION = "per_step"
OLD_PER_STEP_SECTION = "steps"
PROFILE_SECTIONS = ("defaults", PER_STEP_SECTION)

Echo = Callable[[str], None]

#: Profile files whose old per-step section name was already noted in this process.
_noted_old_sections: set[str] = set()


class PipelineError(RuntimeError):
    """A problem the user can fix (missing project, unknown step, failed build).

    The base of the run's errors (``srkit.execute.StepFailed``,
    ``srkit.pipeline.RunLocked``); the command line prints it as one line.
    """


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
        reads_steps: the earlier steps (stems) whose records it reads, declared
            with ``# srkit: reads-steps STEM ...``; it re-runs when their
            ``metrics.json`` change.
        data_sets: the parameters that each count the images of one data set the
            step reads (``# srkit: data-sets n_images ...``); empty for none.
    """

    number: str
    stem: str
    path: Path
    parameters: dict[str, Parameter] = field(default_factory=dict)
    reads_earlier_steps: bool = False
    reads_steps: tuple[str, ...] = ()
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


def close_match(word: object, choices: Iterable[object]) -> str:
    """``"; did you mean 'steps'?"`` for the closest of ``choices``, else ``""``."""
    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"; did you mean {found[0]!r}?" if found else ""


def _check_range(name: str, value: Any, where: str) -> None:
    """Refuse a negative value for a parameter of :data:`NON_NEGATIVE`."""
    if name in NON_NEGATIVE and isinstance(value, int) and value < 0:
        raise ValueError(
            f"{where}: parameter {name!r} must be an integer >= 0, got {value}"
        )


# ----------------------------------------------------------------------- steps


def read_source(path: Path):
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
        when a code cell holds the line ``# srkit: reads-earlier-steps``, the
        ``reads_steps`` named by ``# srkit: reads-steps ...`` lines, and the
        ``data_sets`` named by a ``# srkit: data-sets ...`` line.

    Raises:
        ValueError: for a malformed parameters cell, or a data-sets line naming
            something that is not one of its parameters.
    """
    path = Path(path).resolve()
    notebook = read_source(path)
    parameters: dict[str, Parameter] = {}
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            parameters = parse_parameters(cell.source, where=str(path))
            break
    reads_earlier = any(
        cell.cell_type == "code" and READS_EARLIER_STEPS.search(cell.source)
        for cell in notebook.cells
    )
    reads_steps = tuple(
        stem
        for cell in notebook.cells
        if cell.cell_type == "code"
        for found in READS_STEPS.finditer(cell.source)
        for stem in found.group("stems").split()
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
        reads_steps=reads_steps,
        data_sets=data_sets,
    )


def discover_steps(project: Path) -> list[Step]:
    """List the step notebooks ``notebooks/NN_*.py`` of a project, in order.

    Raises:
        PipelineError: when there is none, or a ``reads-steps`` line names a step
            that is not an earlier one.
    """
    folder = Path(project) / NOTEBOOK_DIR
    paths = sorted(p for p in folder.glob("[0-9][0-9]_*.py") if STEP_FILE.match(p.name))
    if not paths:
        raise PipelineError(f"no step notebooks (NN_name.py) in {folder}")
    steps = [read_step(path) for path in paths]
    for k, step in enumerate(steps):
        earlier = {other.stem for other in steps[:k]}
        unknown = [stem for stem in step.reads_steps if stem not in earlier]
        if unknown:
            raise PipelineError(
                f"{step.path}: the line '# srkit: reads-steps' names "
                f"{', '.join(unknown)}, which is not an earlier step of {folder}; "
                "name earlier steps by their file stem, e.g. 02_initial_model"
            )
    return steps


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


# -------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    """A loaded profile.

    Attributes:
        name: the profile's name (the file's stem), e.g. "smoke".
        path: the YAML file.
        defaults: name -> value for every step that declares the name.
        per_step: two-digit step number ("08") -> name -> value for that step.
        section: the per-step section's name in the file (``per_step``, or the
            old ``steps``), for messages.
        packaged: a profile of ``srkit/profiles``. Its names are written for
            srkit's own steps, so in another project a name or step it has and the
            project lacks is passed over (a name with a note); in a profile file
            they are errors. Values of the wrong type are errors in both.
    """

    name: str
    path: Path
    defaults: dict[str, Any]
    per_step: dict[str, dict[str, Any]]
    section: str = PER_STEP_SECTION
    packaged: bool = False

    def where(self, section: str, step: str | None = None, key: str = "") -> str:
        """``profile FILE, per_step 02, key 'steps'``: where a message points."""
        text = f"profile {self.path}, {section}" + (f" {step}" if step else "")
        return text + (f", key {key!r}" if key else "")

    def check(self, steps: Sequence[Step]) -> None:
        """Check a profile file's steps and names against the project's steps.

        Args:
            steps: every step of the project.

        Raises:
            ValueError: one line naming the file, the section, the step and the
                key, with the closest valid name: a per-step section for no step,
                a name no step declares (``defaults``) or the step does not declare
                (per-step section), or a name the pipeline sets.
        """
        if self.packaged:
            return
        numbers = [step.number for step in steps]
        declared = {name for step in steps for name in step.parameters}
        for name in self.defaults:
            _check_profile_name(self.where("defaults", key=name), name, declared)
        for number, values in self.per_step.items():
            matching = [step for step in steps if step.number == number]
            if not matching:
                raise ValueError(
                    f"{self.where(self.section, number)}: no such step"
                    f"{close_match(number, numbers)} (steps: {', '.join(numbers)})"
                )
            for name in values:
                _check_profile_name(
                    self.where(self.section, number, name),
                    name,
                    set(matching[0].parameters),
                    matching[0].stem,
                )


def _check_profile_name(
    where: str, name: str, known: set[str], stem: str | None = None
) -> None:
    """Refuse a profile key that is pipeline-owned or not among ``known`` names.

    Args:
        where: the message's start (file, section, step, key).
        name: the key.
        known: the parameter names it may be.
        stem: the step of a per-step section (None: ``defaults``).

    Raises:
        ValueError: one line, with the closest valid name.
    """
    if name in PIPELINE_OWNED:
        raise ValueError(
            f"{where}: {name} is set by the pipeline; use --{name.replace('_', '-')}"
        )
    if name in known:
        return
    valid = sorted(known - set(PIPELINE_OWNED))
    whose = f"step {stem} has no parameter" if stem else "no step declares parameter"
    raise ValueError(
        f"{where}: {whose} {name!r}{close_match(name, valid)} "
        f"(valid names: {', '.join(valid)})"
    )


def profile_path(name: str) -> Path:
    """Path of a packaged profile YAML (``srkit/profiles/<name>.yaml``)."""
    return Path(__file__).resolve().parent / "profiles" / f"{name}.yaml"


def load_profile(name: str, warn: Echo | None = None) -> Profile:
    """Load a profile: ``{"defaults": {...}, "per_step": {"08": {...}, ...}}``.

    A file that still names its per-step section ``steps`` (the name before
    ``per_step``) is read the same; ``warn`` gets a one-line note naming the file
    and the new key, once per file in this process.

    Args:
        name: "smoke", "default", "quick" or "full", or a path to a YAML file of
            that form.
        warn: printer of the note about the old section name; None: no note.

    Returns:
        The Profile, per-step keys normalised to two digits.

    Raises:
        ValueError: one line naming the file (and the section and step) for an
            unknown profile or a malformed file: a section other than
            ``defaults`` and ``per_step`` (with the closest name), sections or
            per-step entries that are not mappings, a per-step key that is no step
            number, or both ``per_step`` and ``steps``.
    """
    packaged = not name.endswith((".yaml", ".yml"))
    path = profile_path(name) if packaged else Path(name)
    if not path.is_file():
        raise ValueError(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(
            f"profile {path}: holds a YAML {type(data).__name__}, not a mapping with "
            f"'defaults' and '{PER_STEP_SECTION}'"
        )
    for key in data:
        if key not in (*PROFILE_SECTIONS, OLD_PER_STEP_SECTION):
            raise ValueError(
                f"profile {path}: unknown section {key!r}"
                f"{close_match(key, PROFILE_SECTIONS)} (sections: "
                f"{', '.join(PROFILE_SECTIONS)})"
            )
    section = PER_STEP_SECTION
    if OLD_PER_STEP_SECTION in data:
        if PER_STEP_SECTION in data:
            raise ValueError(
                f"{path}: both '{PER_STEP_SECTION}' and '{OLD_PER_STEP_SECTION}' "
                f"sections; keep '{PER_STEP_SECTION}' only"
            )
        section = OLD_PER_STEP_SECTION
        if warn is not None and str(path.resolve()) not in _noted_old_sections:
            _noted_old_sections.add(str(path.resolve()))
            warn(
                f"note: profile {path}: the per-step section '{OLD_PER_STEP_SECTION}:' "
                f"is now called '{PER_STEP_SECTION}:'; rename it (the old name is "
                "still read)"
            )
    defaults = data.get("defaults") or {}
    per_step = data.get(section) or {}
    for key, content in (("defaults", defaults), (section, per_step)):
        if not isinstance(content, dict):
            raise ValueError(
                f"profile {path}, {key}: expects a mapping, got {content!r}"
            )
    return Profile(
        path.stem,
        path,
        defaults,
        _per_step_sections(path, section, per_step),
        section=section,
        packaged=packaged,
    )


def _per_step_sections(path: Path, section: str, per_step: dict) -> dict:
    """A profile's per-step section, its keys made two-digit step numbers.

    YAML reads ``08`` as a string but ``10`` as an int; both become "08", "10".

    Raises:
        ValueError: naming the file, the section and the step for a key that is
            no number, one step given twice, or an entry that is not a mapping of
            names to values (``"02": fast``).
    """
    sections: dict[str, dict[str, Any]] = {}
    for key, values in per_step.items():
        if not str(key).strip().isdigit():
            raise ValueError(
                f"profile {path}, {section} {key!r}: a step is named by its number "
                '(e.g. "05")'
            )
        number = f"{int(str(key)):02d}"
        if number in sections:
            raise ValueError(f"profile {path}, {section} {number}: given twice")
        if values is not None and not isinstance(values, dict):
            raise ValueError(
                f"profile {path}, {section} {number}: expects a mapping of parameter "
                f"names to values, got {values!r}"
            )
        sections[number] = dict(values or {})
    return sections


# ------------------------------------------------------------------- overrides


def absolute_source(value: str, base: str | os.PathLike | None = None) -> str:
    """``folder:PATH`` with PATH made absolute from ``base`` (default: cwd).

    A relative path means the folder where the user typed it; the step notebooks
    run in another folder, so the pipeline hands them absolute paths only. Any
    other value (``sample``, ``voc2007``, ``""``) is returned unchanged.
    """
    path = parse_folder(value)
    if path is None:
        return value
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        folder = Path(base or Path.cwd()) / folder
    return FOLDER_PREFIX + os.path.normpath(folder)


@dataclass(frozen=True)
class Override:
    """One ``-p`` choice, parsed once.

    Attributes:
        step: the step word before the dot ("05" of ``05.steps=8``), or None for
            every step that declares the name.
        name: the parameter's name.
        value: the value as typed; each step's cell types it (:func:`coerce`).
        text: the choice as the records show it.
    """

    step: str | None
    name: str
    value: str
    text: str

    @property
    def option(self) -> str:
        """The choice as error messages spell it: ``-p NN.name=value``."""
        return f"-p {self.step + '.' if self.step else ''}{self.name}={self.value}"


def parse_override(text: str, base: str | os.PathLike | None = None) -> Override:
    """Parse ``name=value`` or ``NN.name=value``.

    A ``folder:PATH`` value of ``data_source`` or of a :data:`FOLDER_PARAMETERS`
    name is made absolute from ``base`` (default: the current directory), and
    ``text`` then spells the absolute value.

    Raises:
        ValueError: without "=" or with an empty name.
    """
    if "=" not in text:
        raise ValueError(
            f"override {text!r} must look like name=value or NN.name=value"
        )
    key, value = text.split("=", 1)
    step, _, name = key.strip().rpartition(".")
    if not name:
        raise ValueError(f"override {text!r} has an empty name")
    if name in ("data_source", *FOLDER_PARAMETERS):
        value = absolute_source(value.strip(), base)
        text = f"{step + '.' if step else ''}{name}={value}"
    return Override(step or None, name, value, text)


@dataclass(frozen=True)
class RunSettings:
    """A run's parameter choices, parsed once: the profile, ``--data`` and ``-p``.

    Attributes:
        profile: the loaded profile.
        overrides: the ``-p`` choices in the order given.
        data: the ``--data`` source (a relative ``folder:PATH`` made absolute), or
            None.
    """

    profile: Profile
    overrides: tuple[Override, ...] = ()
    data: str | None = None

    @classmethod
    def parse(
        cls,
        profile: str = DEFAULT_PROFILE,
        overrides: Sequence[str] = (),
        data: str | None = None,
        warn: Echo | None = None,
    ) -> RunSettings:
        """Parse the choices; relative folders are taken from the current directory.

        Args:
            profile: profile name or YAML path.
            overrides: ``name=value`` / ``NN.name=value`` strings.
            data: data source for every step declaring ``data_source``, or None.
            warn: printer of notes about the profile file.

        Raises:
            ValueError: a malformed override, an unknown or malformed profile.
        """
        data = None if data is None else absolute_source(data)
        parsed = tuple(parse_override(text) for text in overrides)
        return cls(load_profile(profile, warn), parsed, data)

    @property
    def override_texts(self) -> list[str]:
        """The ``-p`` choices as the records show them."""
        return [override.text for override in self.overrides]

    def resolve(
        self,
        steps: Sequence[Step],
        run_dir: str | os.PathLike = "",
        warn: Echo | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Every step's typed values.

        Order (later wins): the notebook's literal defaults, the profile's
        ``defaults``, its ``per_step`` section, ``data`` (as ``data_source``),
        global ``-p name=value`` overrides, then per-step ``-p NN.name=value``
        ones. Each step receives only the names its parameters cell declares;
        ``profile`` and ``run_dir`` are set by the pipeline.

        Args:
            steps: every step of the project (validation uses all of them).
            run_dir: the run folder (absolute), passed as ``run_dir``.
            warn: called with a note for profile defaults no step declares.

        Returns:
            dict stem -> dict name -> typed value.

        Raises:
            ValueError: unknown name (listing the valid ones, with the closest),
                bad value (naming the parameter and its type), unknown step, or a
                pipeline-owned name, in ``-p`` or in a profile file (then naming
                the file, the section, the step and the key:
                :meth:`Profile.check`).
        """
        profile = self.profile
        profile.check(steps)
        declared = sorted(
            {n for s in steps for n in s.parameters} - set(PIPELINE_OWNED)
        )
        resolved = {step.stem: self._profile_values(step) for step in steps}
        if warn:
            unused = sorted(set(profile.defaults) - set(declared) - set(PIPELINE_OWNED))
            if unused:
                warn(f"note: profile {profile.name} sets {', '.join(unused)}, not used")
        if self.data is not None:
            if "data_source" not in declared:
                raise ValueError("--data given but no step declares data_source")
            for step in steps:
                if "data_source" in step.parameters:
                    kind = step.parameters["data_source"].type
                    resolved[step.stem]["data_source"] = coerce(
                        self.data, kind, "data_source"
                    )
        # global choices first, then the per-step ones (the order given within each)
        for override in sorted(self.overrides, key=lambda item: item.step is not None):
            name = override.name
            for step in _override_targets(override, steps, declared):
                value = coerce(override.value, step.parameters[name].type, name)
                _check_range(name, value, override.option)
                resolved[step.stem][name] = value
        for step in steps:
            if "profile" in step.parameters:
                resolved[step.stem]["profile"] = profile.name
            if "run_dir" in step.parameters:
                resolved[step.stem]["run_dir"] = str(run_dir)
        return resolved

    def _profile_values(self, step: Step) -> dict[str, Any]:
        """A step's literal defaults, then the profile's defaults and its section.

        Raises:
            ValueError: a value of the wrong type or range, naming the file, the
                section, the step and the key.
        """
        profile = self.profile
        values = {n: p.default for n, p in step.parameters.items()}
        sections = (
            (f"defaults (for step {step.stem})", None, profile.defaults),
            (profile.section, step.number, profile.per_step.get(step.number, {})),
        )
        for section, number, content in sections:
            for name, value in content.items():
                if name not in values or name in PIPELINE_OWNED:
                    continue
                where = profile.where(section, number, name)
                try:
                    values[name] = coerce(value, step.parameters[name].type, name)
                except ValueError as error:
                    raise ValueError(f"{where}: {error}") from None
                _check_range(name, values[name], where)
        return values


def _shown_value(value: Any) -> str:
    """A resolved value as ``-p`` would spell it; an empty or spaced string quoted."""
    if isinstance(value, str) and (not value or value != value.strip() or " " in value):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def parameter_lines(params: dict[str, Any], width: int = 88) -> list[str]:
    """A step's resolved values as indented ``name=value`` lines for ``--dry-run``.

    ``profile`` and ``run_dir`` are left out: the run's first line names both.

    Args:
        params: the step's resolved parameters.
        width: the longest line (a single long value may exceed it).

    Returns:
        The lines, each starting with four spaces; none for a step without
        parameters of its own.
    """
    words = [
        f"{name}={_shown_value(value)}"
        for name, value in params.items()
        if name not in ("profile", "run_dir")
    ]
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append("    " + word)
    return lines


def _override_targets(
    override: Override, steps: Sequence[Step], declared: Sequence[str]
) -> list[Step]:
    """The steps an override sets, after checking that they declare its name.

    Raises:
        ValueError: a pipeline-owned or unknown name, or an unknown step.
    """
    name = override.name
    if name in PIPELINE_OWNED:
        raise ValueError(
            f"{name} is set by the pipeline; use --{name.replace('_', '-')}"
        )
    if override.step is None:
        if name not in declared:
            raise ValueError(
                f"unknown parameter {name!r}{close_match(name, declared)}; "
                f"valid names: {', '.join(declared)}"
            )
        return [s for s in steps if name in s.parameters]
    try:
        targets = select_steps(steps, [override.step])
    except ValueError:
        raise ValueError(
            f"{override.option}: no step {override.step!r}; steps: "
            + ", ".join(s.stem for s in steps)
        ) from None
    for step in targets:
        if name not in step.parameters:
            valid = sorted(set(step.parameters) - set(PIPELINE_OWNED))
            raise ValueError(
                f"step {step.stem} has no parameter {name!r}"
                f"{close_match(name, valid)}; valid names: {', '.join(valid)}"
            )
    return targets


def resolve_parameters(
    steps: Sequence[Step],
    profile: str = DEFAULT_PROFILE,
    overrides: Sequence[str] = (),
    data: str | None = None,
    run_dir: str | os.PathLike = "",
    warn: Echo | None = None,
) -> dict[str, dict[str, Any]]:
    """Resolve every step's parameters once (:meth:`RunSettings.resolve`).

    Args:
        steps: every step of the project (validation uses all of them).
        profile: profile name or YAML path.
        overrides: ``name=value`` / ``NN.name=value`` strings.
        data: data source for every step declaring ``data_source``, or None.
        run_dir: the run folder (absolute), passed as ``run_dir``.
        warn: printer of notes about the profile.

    Returns:
        dict stem -> dict name -> typed value.

    Raises:
        ValueError: as :meth:`RunSettings.parse` and :meth:`RunSettings.resolve`.
    """
    settings = RunSettings.parse(profile, overrides, data, warn=warn)
    return settings.resolve(steps, run_dir, warn=warn)
