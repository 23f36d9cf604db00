"""Tests of the run: srkit.pipeline, srkit.steps and srkit.execute.

Parameters, profiles, the step cache, failures, the book. Tiny step notebooks
(percent-format .py files that only write their metrics.json and log their
execution) run through papermill in a temporary project, so the cache and failure
paths are exercised for real without TensorFlow. The srkit source hash, the
data key and the data preparation are monkeypatched.
"""

import fcntl
import json
import os
import signal
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from srkit import book, execute, layout, pipeline
from srkit import steps as srkit_steps

TOC = """\
format: jb-book
root: book/intro
parts:
  - caption: Steps
    chapters:
{chapters}
  - caption: About this run
    chapters:
      - file: book/about_run
"""

CONFIG = """\
title: pipeline test
only_build_toc_files: true
exclude_patterns: [notebooks/*, runs/*]
execute:
  execute_notebooks: "off"
sphinx:
  config:
    nb_merge_streams: true
"""

STEP = """\
# %% [markdown]
# # {number} · Step {stem}

# %% tags=["parameters"]
# srkit: data-sets n_images
profile: str = "smoke"  # set by the pipeline
run_dir: str = ""  # set by the pipeline
data_source: str = "sample"
n_images: int = 4
seed: int = 0
epochs: int = 1
learning_rate: float = 0.001
fail: bool = False
{extra_parameters}
# %%
{marker}import json
import pathlib

out = pathlib.Path(run_dir) / "steps" / "{stem}"
out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({{"epochs": epochs}}))
values = dict(profile=profile, epochs=epochs, learning_rate=learning_rate,
              fail=fail, n_images=n_images, data_source=data_source)
with open(pathlib.Path(run_dir) / "executions.log", "a") as log:
    log.write(json.dumps({{"stem": "{stem}", **values}}) + "\\n")

# %%
if fail:
    raise RuntimeError("boom in {stem}")
"""


MARKER = "# srkit: reads-earlier-steps\n"


def make_project(
    root: Path, stems=("01_a", "02_b"), readers=(), extra_parameters=""
) -> Path:
    """A minimal project: _toc.yml, _config.yml, an intro page, tiny steps.

    Steps named in ``readers`` carry the reads-earlier-steps marker; every step gets
    the ``extra_parameters`` lines in its parameters cell.
    """
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "book" / "intro.md").write_text("# Intro\n\nA test book.\n")
    chapters = "\n".join(f"      - file: book/steps/{stem}" for stem in stems)
    (root / "_toc.yml").write_text(TOC.format(chapters=chapters))
    (root / "_config.yml").write_text(CONFIG)
    for stem in stems:
        text = STEP.format(
            number=stem[:2],
            stem=stem,
            marker=MARKER if stem in readers else "",
            extra_parameters=extra_parameters,
        )
        (root / "notebooks" / f"{stem}.py").write_text(text)
    return root


class Fakes:
    """Monkeypatched srkit hash, data key and data preparation."""

    def __init__(self):
        self.srkit = "srkit-1"
        self.data = "data-1"
        self.prepared = []

    def data_key(self, source, n_images, seed, mode):
        return f"{self.data}-{source}-{n_images}-{seed}-{mode}"

    def prepare_data(self, source, n_images, seed, mode, cache_dir):
        self.prepared.append((source, n_images, seed, mode, Path(cache_dir)))
        key = self.data_key(source, n_images, seed, mode)
        return {"source": source, "n_images": n_images, "seed": seed, "key": key}


@pytest.fixture
def fakes(monkeypatch):
    fake = Fakes()
    monkeypatch.setattr(pipeline, "srkit_source_hash", lambda: fake.srkit)
    monkeypatch.setattr(pipeline, "data_key", fake.data_key)
    monkeypatch.setattr(pipeline, "prepare_data", fake.prepare_data)
    monkeypatch.setattr(
        pipeline, "collect_hardware", lambda: {"cpu": "test", "cores": 1}
    )
    return fake


@pytest.fixture
def project(tmp_path, fakes):
    return make_project(tmp_path / "project")


def executions(run_dir: Path) -> list[dict]:
    log = run_dir / "executions.log"
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def run_quiet(project, lines=None, **kwargs):
    """pipeline.run without a book, collecting the progress lines."""
    lines = [] if lines is None else lines
    kwargs.setdefault("book", False)
    return pipeline.run(project, echo=lines.append, heartbeat_s=0, **kwargs)


def executed_since(run_dir: Path, before: int) -> list[str]:
    return [entry["stem"] for entry in executions(run_dir)[before:]]


# ------------------------------------------------------------------ parameters


def test_parse_parameters_types_and_defaults():
    cell = textwrap.dedent(
        """
        profile: str = "smoke"  # comment
        epochs: int = 3
        learning_rate: float = 1e-3
        augment: bool = False
        name = "plain"
        """
    )
    parameters = srkit_steps.parse_parameters(cell)
    assert list(parameters) == ["profile", "epochs", "learning_rate", "augment", "name"]
    assert parameters["epochs"] == srkit_steps.Parameter("epochs", "int", 3)
    assert parameters["learning_rate"].type == "float"
    assert parameters["augment"].default is False
    assert parameters["name"].type == "str"


@pytest.mark.parametrize(
    "cell, message",
    [
        ("import os", "literal assignments"),
        ("epochs: int = 2 * 3", "literal value"),
        ("sizes: list = [1, 2]", "sizes has type 'list'"),
    ],
)
def test_parse_parameters_rejects_non_literals(cell, message):
    with pytest.raises(ValueError, match=message):
        srkit_steps.parse_parameters(cell, where="x.py")


@pytest.mark.parametrize(
    "value, type_name, expected",
    [
        ("3", "int", 3),
        (3.0, "int", 3),
        ("1e-4", "float", 1e-4),
        (2, "float", 2.0),
        ("true", "bool", True),
        ("0", "bool", False),
        ("No", "bool", False),
        (1, "bool", True),
        (5, "str", "5"),
        (None, "str", ""),
    ],
)
def test_coerce(value, type_name, expected):
    result = srkit_steps.coerce(value, type_name, "x")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "value, type_name",
    [
        ("abc", "int"),
        (2.5, "int"),
        (True, "int"),
        ("x", "float"),
        ("maybe", "bool"),
        (2, "bool"),
    ],
)
def test_coerce_rejects_bad_values(value, type_name):
    with pytest.raises(ValueError, match=f"parameter 'epochs' expects {type_name}"):
        srkit_steps.coerce(value, type_name, "epochs")


def fake_steps(numbers=("01", "05", "08", "11")) -> list[srkit_steps.Step]:
    """Steps built in memory with the contract's shared parameters."""
    base = srkit_steps.parse_parameters(
        textwrap.dedent(
            """
            profile: str = "smoke"
            run_dir: str = ""
            data_source: str = "sample"
            data_mode: str = ""
            n_images: int = 4
            seed: int = 0
            steps: int = 1
            batch_size: int = 2
            learning_rate: float = 0.001
            vgg_weights: str = "random"
            precision: str = "float32"
            """
        )
    )
    retrain = srkit_steps.parse_parameters(
        "retrain_n_images: int = 4\nretrain_steps: int = 1\n"
        "retrain_learning_rate: float = 0.0001\n"
    )
    steps = []
    for number in numbers:
        parameters = dict(base, **(retrain if number == "11" else {}))
        path = Path(f"/nowhere/{number}_step.py")
        steps.append(srkit_steps.Step(number, f"{number}_step", path, parameters))
    return steps


@pytest.mark.parametrize("profile", srkit_steps.PROFILES)
def test_packaged_profiles_resolve(profile):
    resolved = srkit_steps.resolve_parameters(fake_steps(), profile, run_dir="/r")
    for values in resolved.values():
        assert values["profile"] == profile and values["run_dir"] == "/r"
        assert isinstance(values["learning_rate"], float)
        assert isinstance(values["steps"], int) and values["steps"] >= 1
    assert isinstance(resolved["11_step"]["retrain_learning_rate"], float)


def test_full_profile_follows_the_original_study():
    resolved = srkit_steps.resolve_parameters(fake_steps(), "full")
    assert resolved["05_step"]["n_images"] == 100
    assert resolved["05_step"]["data_source"] == "voc2007"
    assert resolved["08_step"]["n_images"] == 2500
    assert resolved["11_step"]["n_images"] == 2500
    assert resolved["11_step"]["retrain_n_images"] == 5000
    assert resolved["11_step"]["retrain_learning_rate"] == pytest.approx(1e-4)


def test_smoke_profile_is_small():
    resolved = srkit_steps.resolve_parameters(fake_steps(), "smoke")
    assert resolved["05_step"]["n_images"] == 0  # every bundled photo
    assert resolved["05_step"]["data_source"] == "sample"
    assert resolved["05_step"]["steps"] == 4
    assert resolved["08_step"]["steps"] == 2 and resolved["08_step"]["batch_size"] == 2


def test_overrides_order_and_typing(tmp_path):
    profile = tmp_path / "mine.yaml"
    profile.write_text('defaults: {steps: 2}\nper_step: {"05": {steps: 4}}\n')
    steps = fake_steps()
    resolved = srkit_steps.resolve_parameters(steps, str(profile))
    assert resolved["01_step"]["steps"] == 2 and resolved["05_step"]["steps"] == 4
    assert resolved["01_step"]["profile"] == "mine"
    resolved = srkit_steps.resolve_parameters(
        steps,
        str(profile),
        overrides=["05.steps=7", "steps=3", "learning_rate=1e-4", "batch_size=4"],
        data="folder:/photos",
    )
    assert resolved["01_step"]["steps"] == 3  # global override beats the profile
    assert resolved["05_step"]["steps"] == 7  # the per-step one beats the global
    assert resolved["08_step"]["learning_rate"] == 1e-4
    assert resolved["11_step"]["data_source"] == "folder:/photos"
    assert resolved["01_step"]["batch_size"] == 4
    assert "retrain_steps" not in resolved["05_step"]  # only declared names


def test_packaged_profiles_name_their_per_step_section_per_step():
    for name in srkit_steps.PROFILES:
        content = yaml.safe_load(srkit_steps.profile_path(name).read_text())
        assert "per_step" in content and "steps" not in content, name


def test_the_old_per_step_section_is_read_with_one_note(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text('defaults: {steps: 2}\nsteps: {"05": {steps: 4}}\n')
    notes = []
    for _ in range(2):
        resolved = srkit_steps.resolve_parameters(
            fake_steps(), str(old), warn=notes.append
        )
        assert resolved["01_step"]["steps"] == 2 and resolved["05_step"]["steps"] == 4
    assert len(notes) == 1, "noted once per file"
    assert str(old) in notes[0] and "'per_step:'" in notes[0]
    assert "\n" not in notes[0]
    both = tmp_path / "both.yaml"
    both.write_text('per_step: {"05": {steps: 4}}\nsteps: {"05": {steps: 3}}\n')
    with pytest.raises(ValueError, match="both 'per_step' and 'steps'"):
        srkit_steps.resolve_parameters(fake_steps(), str(both))


def test_a_run_with_an_old_profile_prints_the_note(project, tmp_path):
    old = tmp_path / "old_run.yaml"
    old.write_text('steps: {"01": {epochs: 3}}\n')
    lines = []
    run_quiet(project, lines, profile=str(old), dry_run=True)
    notes = [line for line in lines if "per_step" in line]
    assert len(notes) == 1 and str(old) in notes[0]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "default:\n  steps: 3\n",
            "unknown section 'default'; did you mean 'defaults'?",
        ),
        (
            "defaults:\n  stepz: 3\n",
            "defaults, key 'stepz': no step declares parameter 'stepz'; "
            "did you mean 'steps'?",
        ),
        ('per_step:\n  "99":\n    steps: 3\n', "per_step 99: no such step"),
        (
            'per_step:\n  "5":\n    step: 3\n',
            "per_step 05, key 'step': step "
            "05_step has no parameter 'step'; did you mean 'steps'?",
        ),
        (
            'per_step:\n  "02": fast\n',
            "per_step 02: expects a mapping of parameter names to values, got 'fast'",
        ),
        (
            'per_step:\n  "08":\n    steps: many\n',
            "per_step 08, key 'steps': parameter 'steps' expects int, got 'many'",
        ),
        (
            "defaults:\n  learning_rate: fast\n",
            r"defaults \(for step 01_step\), key 'learning_rate': parameter "
            "'learning_rate' expects float",
        ),
        ("defaults:\n  seed: -1\n", "key 'seed': parameter 'seed' must be"),
        ("defaults:\n  run_dir: /x\n", "key 'run_dir': run_dir is set by the"),
        ("per_step:\n  two:\n    steps: 3\n", "per_step 'two': a step is named"),
        ('steps:\n  "01": [1]\n', "steps 01: expects a mapping"),
        ("defaults: [1]\n", "defaults: expects a mapping, got \\[1\\]"),
        ("- 1\n", "holds a YAML list, not a mapping"),
    ],
)
def test_each_profile_error_is_one_line_naming_file_step_and_key(
    tmp_path, text, message
):
    profile = tmp_path / "bad.yaml"
    profile.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        srkit_steps.resolve_parameters(
            fake_steps(("01", "02", "05", "08")), str(profile)
        )
    assert str(caught.value).startswith(f"profile {profile}")
    assert "\n" not in str(caught.value)


def test_packaged_profiles_are_valid_for_the_srkit_notebooks():
    # In another project a packaged profile passes over names and steps it lacks;
    # for srkit's own notebooks every section, step and name must be known.
    steps = srkit_steps.discover_steps(Path(srkit_steps.__file__).parents[1])
    for name in srkit_steps.PROFILES:
        path = srkit_steps.profile_path(name)
        resolved = srkit_steps.resolve_parameters(steps, str(path))  # a file: strict
        assert set(resolved) == {step.stem for step in steps}


def test_unknown_parameter_lists_valid_names():
    with pytest.raises(ValueError, match="unknown parameter 'step'") as error:
        srkit_steps.resolve_parameters(fake_steps(), "smoke", overrides=["step=3"])
    assert "steps" in str(error.value) and "retrain_steps" in str(error.value)
    assert "did you mean 'steps'?" in str(error.value)


def test_bad_value_names_parameter_and_type():
    with pytest.raises(ValueError, match="parameter 'steps' expects int, got 'abc'"):
        srkit_steps.resolve_parameters(fake_steps(), "smoke", overrides=["steps=abc"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("run_dir=/x", "set by the pipeline"),
        ("profile=full", "--profile"),
        ("05.retrain_epochs=2", "step 05_step has no parameter 'retrain_epochs'"),
        ("09.epochs=2", r"-p 09.epochs=2: no step .09."),
        ("seed=-1", r"-p seed=-1: parameter .seed. must be an integer >= 0"),
        ("epochs", "name=value"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ValueError, match=message):
        srkit_steps.resolve_parameters(fake_steps(), "smoke", overrides=[override])


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile 'huge'.*smoke"):
        srkit_steps.resolve_parameters(fake_steps(), "huge")


def test_select_steps(project):
    steps = srkit_steps.discover_steps(project)
    assert [s.stem for s in srkit_steps.select_steps(steps, ["2"])] == ["02_b"]
    assert [s.stem for s in srkit_steps.select_steps(steps, ["02_b", "01"])] == [
        "01_a",
        "02_b",
    ]
    assert [s.stem for s in srkit_steps.select_steps(steps, ["b"])] == ["02_b"]
    with pytest.raises(ValueError, match="matches no step; steps: 01_a, 02_b"):
        srkit_steps.select_steps(steps, ["07"])


def test_find_project(project, tmp_path, monkeypatch):
    (project / "notebooks" / "deep").mkdir()
    monkeypatch.chdir(project / "notebooks" / "deep")
    assert layout.find_project() == project.resolve()
    assert layout.find_project(project) == project.resolve()
    with pytest.raises(layout.ProjectNotFound, match="_toc.yml and notebooks"):
        layout.find_project(tmp_path)


def test_find_project_never_falls_back_to_the_srkit_checkout(tmp_path, monkeypatch):
    # The srkit checkout these tests run from is itself a project: it must not be
    # picked when the current folder is outside any project.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(layout.ProjectNotFound) as caught:
        layout.find_project()
    message = str(caught.value)
    assert str(tmp_path.resolve()) in message and "--project DIR" in message
    assert "\n" not in message
    for function in (book.clean, pipeline.run, book.build_book):
        with pytest.raises(layout.ProjectNotFound, match="no srkit project"):
            function()


# ------------------------------------------------------------- run and cache


def test_run_executes_records_and_then_caches(project, fakes):
    lines = []
    result = run_quiet(project, lines, overrides=["epochs=2", "02.fail=false"])
    run_dir = project / "runs" / "smoke"
    assert result.run_dir == run_dir
    assert result.statuses == {"01_a": "ran", "02_b": "ran"}
    logged = executions(run_dir)
    assert [entry["stem"] for entry in logged] == ["01_a", "02_b"]
    # typed values, profile values and pipeline-owned ones reach the notebook
    assert logged[0]["epochs"] == 2 and logged[0]["learning_rate"] == 0.001
    assert logged[0]["n_images"] == 0 and logged[0]["profile"] == "smoke"
    assert logged[1]["fail"] is False
    assert (project / "book" / "steps" / "01_a.ipynb").is_file()
    assert "[1/2] 01_a ... running" in lines
    assert any(line.startswith("[2/2] 02_b ... done in ") for line in lines)
    assert any(line.startswith("step ") and "status" in line for line in lines)
    # data prepared once for the one distinct data set, into RUN/data
    assert fakes.prepared == [("sample", 0, 0, None, run_dir / "data")]
    params = __import__("yaml").safe_load((run_dir / "params.yaml").read_text())
    assert params["profile"] == "smoke" and params["overrides"][0] == "epochs=2"
    assert params["steps"]["02_b"]["epochs"] == 2
    records = json.loads((run_dir / "run.json").read_text())
    assert records["status"] == "ok"
    assert records["steps"]["01_a"]["ok"] is True
    assert records["steps"]["01_a"]["seconds"] > 0
    assert {"python", "srkit", "papermill"} <= set(records["versions"])
    # second run: nothing executes, no data preparation
    lines.clear()
    result = run_quiet(project, lines, overrides=["epochs=2", "02.fail=false"])
    assert result.statuses == {"01_a": "cached", "02_b": "cached"}
    assert len(executions(run_dir)) == 2
    assert "[1/2] 01_a ... cached (unchanged)" in lines
    assert len(fakes.prepared) == 1


def test_cache_misses_on_each_kind_of_change(project, fakes):
    run_dir = project / "runs" / "smoke"
    run_quiet(project)
    count = len(executions(run_dir))

    def rerun(**kwargs) -> list[str]:
        nonlocal count
        run_quiet(project, **kwargs)
        stems = executed_since(run_dir, count)
        count = len(executions(run_dir))
        return stems

    assert rerun() == []
    source = project / "notebooks" / "02_b.py"
    source.write_text(source.read_text() + "\n# %%\nprint('edited')\n")
    assert rerun() == ["02_b"], "source edit"
    assert rerun(overrides=["01.epochs=3"]) == ["01_a"], "parameter override"
    assert rerun(overrides=["01.epochs=3"]) == []
    fakes.srkit = "srkit-2"
    assert rerun(overrides=["01.epochs=3"]) == ["01_a", "02_b"], "srkit changed"
    fakes.data = "data-2"
    assert rerun(overrides=["01.epochs=3"]) == ["01_a", "02_b"], "data changed"
    (run_dir / "steps" / "01_a" / "metrics.json").unlink()
    assert rerun(overrides=["01.epochs=3"]) == ["01_a"], "missing metrics"
    published = project / "book" / "steps" / "02_b.ipynb"
    published.unlink()
    assert rerun(overrides=["01.epochs=3"]) == [], "the run's own page is there"
    assert published.read_bytes() == (run_dir / "pages" / "02_b.ipynb").read_bytes()
    (run_dir / "pages" / "02_b.ipynb").unlink()
    assert rerun(overrides=["01.epochs=3"]) == ["02_b"], "missing notebook"
    assert rerun(overrides=["01.epochs=3"], force=True) == ["01_a", "02_b"]
    assert rerun(overrides=["01.epochs=3"], force=True, only=["02"]) == ["02_b"]
    records = json.loads((run_dir / "run.json").read_text())
    assert records["steps"]["01_a"]["status"] == "untouched"
    assert records["steps"]["01_a"]["ok"] is True  # its earlier record is kept


def test_only_runs_the_selected_steps(project):
    lines = []
    result = run_quiet(project, lines, only=["02"])
    run_dir = project / "runs" / "smoke"
    assert executed_since(run_dir, 0) == ["02_b"]
    assert result.statuses["01_a"] == "untouched"
    assert "[1/1] 02_b ... running" in lines


def test_read_step_finds_the_reads_earlier_steps_marker(tmp_path, fakes):
    project = make_project(tmp_path / "p", stems=("01_a", "02_b"), readers=("02_b",))
    steps = srkit_steps.discover_steps(project)
    assert [s.reads_earlier_steps for s in steps] == [False, True]
    # the marker counts in a code cell only, not as prose in a markdown cell
    prose = project / "notebooks" / "03_c.py"
    prose.write_text("# %% [markdown]\n" + MARKER + "\n# %%\nx = 1\n")
    assert srkit_steps.read_step(prose).reads_earlier_steps is False


def test_a_step_declares_the_data_sets_it_reads(tmp_path):
    cell = (
        '# %% tags=["parameters"]\n# srkit: data-sets n_images more\n'
        'data_source: str = "sample"\nn_images: int = 4\nmore: int = 0\nseed: int = 3\n'
        "# %%\nx = 1\n"
    )
    path = tmp_path / "05_x.py"
    path.write_text(cell)
    step = srkit_steps.read_step(path)
    assert step.data_sets == ("n_images", "more")
    params = {"data_source": "sample", "n_images": 4, "more": 0, "seed": 3}
    assert pipeline.data_inputs(step, params) == [
        ("sample", 4, 3, None),
        ("sample", 0, 3, None),
    ]
    path.write_text(cell.replace("# srkit: data-sets n_images more\n", ""))
    undeclared = srkit_steps.read_step(path)
    assert undeclared.data_sets == () and pipeline.data_inputs(undeclared, params) == []
    path.write_text(cell.replace("n_images more", "n_images typo"))
    with pytest.raises(ValueError, match="names typo, which the parameters cell"):
        srkit_steps.read_step(path)


def test_declared_reader_depends_on_earlier_metrics(tmp_path, fakes):
    project = make_project(
        tmp_path / "p", stems=("01_a", "02_b", "03_c"), readers=("03_c",)
    )
    run_dir = project / "runs" / "smoke"
    run_quiet(project)
    assert executed_since(run_dir, 0) == ["01_a", "02_b", "03_c"]
    run_quiet(project, only=["01"], force=True, overrides=["01.epochs=5"])
    run_quiet(project, overrides=["01.epochs=5"])  # 01 cached, its metrics changed
    # 03 declares that it reads earlier steps; 02 does not, so it stays cached
    assert executed_since(run_dir, 3) == ["01_a", "03_c"]


def test_a_step_reads_the_steps_it_names(tmp_path, fakes):
    project = make_project(tmp_path / "p", stems=("01_a", "02_b", "03_c"))
    page = project / "notebooks" / "03_c.py"
    page.write_text(
        page.read_text().replace(
            "import json\n", "# srkit: reads-steps 01_a\nimport json\n", 1
        )
    )
    run_dir = project / "runs" / "smoke"
    run_quiet(project)
    assert srkit_steps.discover_steps(project)[2].reads_steps == ("01_a",)
    run_quiet(project, only=["02"], force=True, overrides=["02.epochs=5"])
    run_quiet(project, overrides=["02.epochs=5"])  # 02's metrics changed: 03 cached
    assert executed_since(run_dir, 3) == ["02_b"]
    run_quiet(project, only=["01"], force=True, overrides=["01.epochs=5"])
    run_quiet(project, overrides=["01.epochs=5", "02.epochs=5"])  # 01's did: 03 runs
    assert executed_since(run_dir, 4) == ["01_a", "03_c"]


def test_a_step_may_read_earlier_steps_only(tmp_path):
    project = make_project(tmp_path / "p", stems=("01_a", "02_b"))
    page = project / "notebooks" / "01_a.py"
    page.write_text("# srkit: reads-steps 02_b\n" + page.read_text())
    with pytest.raises(
        srkit_steps.PipelineError, match="names 02_b, which is not an earlier"
    ):
        srkit_steps.discover_steps(project)


def test_a_step_named_summary_is_no_reader_without_the_marker(tmp_path, fakes):
    project = make_project(tmp_path / "p", stems=("01_a", "02_summary"))
    run_dir = project / "runs" / "smoke"
    run_quiet(project)
    run_quiet(project, only=["01"], force=True, overrides=["01.epochs=5"])
    run_quiet(project, overrides=["01.epochs=5"])
    assert executed_since(run_dir, 2) == ["01_a"]


def test_benchmark_folder_listing_is_part_of_the_key(tmp_path, fakes):
    images = tmp_path / "benchmarks" / "Set5"
    images.mkdir(parents=True)
    (images / "a.png").write_bytes(b"one")
    project = make_project(
        tmp_path / "p",
        stems=("01_a",),
        extra_parameters='benchmarks: str = ""  # folder:PATH\n',
    )
    run_dir = project / "runs" / "smoke"
    option = [f"benchmarks=folder:{tmp_path / 'benchmarks'}"]
    run_quiet(project, overrides=option)
    run_quiet(project, overrides=option)
    assert executed_since(run_dir, 0) == ["01_a"], "unchanged folder: cached"
    (images / "b.png").write_bytes(b"two")
    run_quiet(project, overrides=option)
    assert executed_since(run_dir, 1) == ["01_a"], "a new image re-runs the step"
    run_quiet(project, overrides=option)
    assert executed_since(run_dir, 2) == [], "and then it is cached again"


def test_folder_keys_resolve_relative_paths_from_the_project(tmp_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "sets" / "Set5").mkdir(parents=True)
    (tmp_path / "sets" / "Set5" / "a.png").write_bytes(b"x")
    project = tmp_path / "project"
    relative = pipeline.folder_keys({"benchmarks": "folder:../sets"}, project)
    absolute = pipeline.folder_keys(
        {"benchmarks": f"folder:{tmp_path / 'sets'}"}, project
    )
    assert relative == absolute and relative[0].startswith("benchmarks=")
    assert pipeline.folder_keys({"benchmarks": ""}, project) == []
    missing = pipeline.folder_keys({"benchmarks": "folder:nowhere"}, project)
    assert missing[0].startswith("benchmarks=missing:")
    os.utime(tmp_path / "sets" / "Set5" / "a.png", ns=(0, 0))
    assert pipeline.folder_keys({"benchmarks": "folder:../sets"}, project) != relative


def test_run_dir_option_and_dry_run(project):
    lines = []
    other = project / "elsewhere"
    result = run_quiet(project, lines, run_dir=other, dry_run=True)
    assert "[1/2] 01_a ... would run" in lines and not other.exists()
    assert result.statuses == {}


def test_dry_run_prints_each_steps_resolved_parameters(project):
    lines = []
    run_quiet(
        project,
        lines,
        dry_run=True,
        overrides=["02.epochs=5", "learning_rate=0.01"],
        data="folder:/photos",
    )
    first = lines.index("[1/2] 01_a ... would run")
    second = lines.index("[2/2] 02_b ... would run")
    assert lines[first + 1 : second] == [
        "    data_source=folder:/photos n_images=0 seed=0 epochs=1 "
        "learning_rate=0.01 fail=false"
    ]
    assert lines[second + 1] == (
        "    data_source=folder:/photos n_images=0 seed=0 epochs=5 "
        "learning_rate=0.01 fail=false"
    )
    assert srkit_steps.parameter_lines({"a": "", "b": "x y", "run_dir": "/r"}) == [
        "    a='' b='x y'"
    ]
    wrapped = srkit_steps.parameter_lines({f"name{i}": i for i in range(20)}, width=40)
    assert len(wrapped) > 1 and all(len(line) <= 40 for line in wrapped)


def test_a_failed_run_elsewhere_leaves_the_good_runs_pages(project):
    # A failed run in another run folder never replaces the published pages, so
    # the good run's pages, its cache status and `srkit upscale`'s run stay right.
    good = project / "runs" / "smoke"
    other = project / "other"
    published = project / "book" / "steps"
    run_quiet(project)
    pages = {p.name: p.read_bytes() for p in published.glob("*.ipynb")}
    assert sorted(pages) == ["01_a.ipynb", "02_b.ipynb"]
    assert pages["02_b.ipynb"] == (good / "pages" / "02_b.ipynb").read_bytes()
    with pytest.raises(execute.StepFailed) as caught:
        run_quiet(project, run_dir=other, overrides=["02.fail=true"])
    assert str(other / "pages" / "02_b.ipynb") in str(caught.value)
    assert {p.name: p.read_bytes() for p in published.glob("*.ipynb")} == pages
    assert layout.latest_run_dir(project) == good
    count = len(executions(good))
    lines = []
    result = run_quiet(project, lines)
    assert result.statuses == {"01_a": "cached", "02_b": "cached"}
    assert len(executions(good)) == count
    # a run elsewhere that ends well publishes its pages; the good run, cached,
    # then puts its own back instead of calling another run's pages its own
    run_quiet(project, run_dir=other)
    assert layout.latest_run_dir(project) == other.resolve()
    assert (published / "02_b.ipynb").read_bytes() != pages["02_b.ipynb"]
    lines.clear()
    result = run_quiet(project, lines)
    assert result.statuses == {"01_a": "cached", "02_b": "cached"}
    assert len(executions(good)) == count
    assert {p.name: p.read_bytes() for p in published.glob("*.ipynb")} == pages
    assert layout.latest_run_dir(project) == good
    assert "pages: published to book/steps/: 01_a, 02_b" in lines


def test_two_runs_publishing_at_once_never_mix_their_pages(project, monkeypatch):
    # Run A pauses between its pages (a slow disk); run B publishes meanwhile.
    # Without a lock book/steps ends with B's 01 beside A's 02.
    folders = {"A": project / "runs" / "smoke", "B": project / "other"}
    for run_dir in folders.values():
        run_quiet(project, run_dir=run_dir)
    request = pipeline.RunRequest
    plans = {
        name: pipeline.make_plan(request(project, run_dir=run_dir), lambda _: None)
        for name, run_dir in folders.items()
    }
    pages = {
        name: {p.name: p.read_bytes() for p in plan.folder.pages.glob("*.ipynb")}
        for name, plan in plans.items()
    }
    assert all(pages["A"][page] != pages["B"][page] for page in pages["A"])
    published = project / "book" / "steps"
    for page in published.glob("*.ipynb"):
        page.unlink()
    copy, first_copied = pipeline._copy_atomically, threading.Event()

    def copy_slowly_in_a(source, target):
        copy(source, target)
        if threading.current_thread().name == "A":
            first_copied.set()
            time.sleep(0.5)

    monkeypatch.setattr(pipeline, "_copy_atomically", copy_slowly_in_a)

    def publish(name):
        if name == "B":
            first_copied.wait(10)
        records = layout.read_records(folders[name])
        pipeline.publish_pages(plans[name], records, echo=lambda _: None)

    threads = [threading.Thread(target=publish, args=(n,), name=n) for n in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    shown = {p.name: p.read_bytes() for p in published.glob("*.ipynb")}
    assert shown == pages["B"]  # B waited for A, then published all of its own
    assert layout.published_run(project) == plans["B"].run_dir


def test_a_run_folder_from_before_pages_keeps_its_cache(project):
    good = project / "runs" / "smoke"
    run_quiet(project)
    count = len(executions(good))
    for page in (good / "pages").iterdir():
        page.unlink()
    (good / "pages").rmdir()  # as an older srkit left it: pages in book/steps only
    lines = []
    run_quiet(project, lines, dry_run=True)
    assert "[2/2] 02_b ... cached (unchanged)" in lines
    result = run_quiet(project)
    assert result.statuses == {"01_a": "cached", "02_b": "cached"}
    assert len(executions(good)) == count
    assert (good / "pages" / "02_b.ipynb").read_bytes() == (
        project / "book" / "steps" / "02_b.ipynb"
    ).read_bytes()


def test_failure_stops_the_run(tmp_path, fakes):
    project = make_project(tmp_path / "p", stems=("01_a", "02_b", "03_c"))
    run_dir = project / "runs" / "smoke"
    lines = []
    with pytest.raises(execute.StepFailed) as caught:
        pipeline.run(
            project,
            overrides=["02.fail=true"],
            echo=lines.append,
            heartbeat_s=0,
            book=True,
        )
    error = caught.value
    notebook = run_dir / "pages" / "02_b.ipynb"
    message = str(error)
    assert "02_b" in message and "RuntimeError" in message and "boom in 02_b" in message
    # cells: title, parameters, injected-parameters, work, the raising one
    assert error.cell_index == 4 and "cell 4" in message
    assert str(notebook) in message and notebook.is_file()
    # a failed run publishes nothing: book/steps is as it was (empty here)
    assert not list((project / "book" / "steps").glob("*"))
    assert any("were left as they were" in line for line in lines)
    assert executed_since(run_dir, 0) == ["01_a", "02_b"]  # 03_c never ran
    assert "[2/3] 02_b ... FAILED after" in " ".join(lines)
    assert any("NOT rebuilt" in line for line in lines)
    records = json.loads((run_dir / "run.json").read_text())
    assert records["status"] == "failed"
    assert records["steps"]["02_b"]["ok"] is False
    assert records["steps"]["02_b"]["error"]["ename"] == "RuntimeError"
    assert records["steps"]["03_c"]["status"] == "not run"
    # the failed step is not cached: the same command fails again
    with pytest.raises(execute.StepFailed):
        run_quiet(project, overrides=["02.fail=true"])
    assert executed_since(run_dir, 2) == ["02_b"]


def test_the_kernels_own_output_goes_to_its_log_not_the_terminal(
    tmp_path, fakes, capfd
):
    # What a kernel process writes itself (TensorFlow's C++ lines about CUDA) goes
    # to steps/<stem>/kernel.log; a kernel that dies is reported with its last lines.
    project = make_project(tmp_path / "p", extra_parameters="crash: bool = False\n")
    source = project / "notebooks" / "02_b.py"
    source.write_text(
        source.read_text() + "\n# %%\nimport os\n"
        'os.write(2, b"native noise of 02_b\\n")\n'
        "if crash:\n"
        '    os.write(2, b"native crash report\\n")\n'
        "    os._exit(3)\n"
    )
    run_dir = project / "runs" / "smoke"
    run_quiet(project)
    log = layout.RunFolder(run_dir).step_kernel_log("02_b")
    assert "native noise of 02_b" in log.read_text()
    assert "native noise" not in capfd.readouterr().err
    with pytest.raises(execute.StepFailed) as caught:
        run_quiet(project, overrides=["02.crash=true"])
    message = str(caught.value)
    assert caught.value.kernel_log == log and str(log) in message
    assert "| native crash report" in message
    assert "native crash report" not in capfd.readouterr().err


def test_heartbeat_prints_while_a_step_runs(project):
    source = project / "notebooks" / "01_a.py"
    source.write_text(
        source.read_text() + "\n# %%\n#papermill_description=nap\nimport time\n"
        "time.sleep(1.5)\n"
    )
    lines = []
    pipeline.run(project, only=["01"], book=False, echo=lines.append, heartbeat_s=0.5)
    beats = [line for line in lines if "still running" in line]
    assert beats and beats[0].startswith("[1/1] 01_a ... still running")
    assert any("nap" in line for line in beats)


# ------------------------------------------------------- lock and exit paths


def hold_lock(run_dir: Path, pid: int = 4242):
    """Take the run folder's lock as another srkit run would (a second open file)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / layout.LOCK_FILE, "w")  # noqa: SIM115
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write(f"{pid}\n")
    handle.flush()
    return handle


def test_a_second_run_on_a_locked_folder_refuses_naming_the_holder(project):
    run_dir = project / "runs" / "smoke"
    run_quiet(project)
    before = (run_dir / "run.json").read_bytes()
    handle = hold_lock(run_dir, pid=4242)
    try:
        with pytest.raises(pipeline.RunLocked, match=r"PID 4242.*--wait"):
            run_quiet(project, force=True)
    finally:
        handle.close()
    assert (run_dir / "run.json").read_bytes() == before  # not touched
    assert len(executions(run_dir)) == 2


def test_the_lock_of_a_dead_process_does_not_block(project):
    run_dir = project / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    (run_dir / layout.LOCK_FILE).write_text("999999\n")  # no process holds it
    result = run_quiet(project)
    assert result.statuses == {"01_a": "ran", "02_b": "ran"}
    assert (run_dir / layout.LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_wait_takes_the_lock_once_the_holder_is_done(project):
    run_dir = project / "runs" / "smoke"
    handle = hold_lock(run_dir, pid=777)
    lines = []
    releaser = threading.Thread(target=lambda: (time.sleep(0.5), handle.close()))
    releaser.start()
    try:
        result = run_quiet(project, lines, wait=True)
    finally:
        releaser.join()
    assert any("waiting for PID 777" in line for line in lines)
    assert result.statuses == {"01_a": "ran", "02_b": "ran"}


@pytest.mark.parametrize(
    "raised, status",
    [
        (KeyboardInterrupt(), "interrupted"),
        (pipeline.RunInterrupted("SIGTERM"), "interrupted"),
        (MemoryError("out of memory"), "failed"),
    ],
    ids=["ctrl_c", "sigterm", "unexpected_error"],
)
def test_run_json_ends_true_on_every_exit_path(project, monkeypatch, raised, status):
    run_dir = project / "runs" / "smoke"
    run_quiet(project, only=["01"])
    real = pipeline.execute_step

    def stop_in_02(step, *args, **kwargs):
        if step.stem == "02_b":
            raise raised
        return real(step, *args, **kwargs)

    monkeypatch.setattr(pipeline, "execute_step", stop_in_02)
    with pytest.raises(type(raised)):
        run_quiet(project, force=True)
    records = json.loads((run_dir / "run.json").read_text())
    assert records["status"] == status and records["finished"]
    assert records["steps"]["01_a"]["status"] == "ran"
    assert records["steps"]["01_a"]["ok"] is True
    assert records["steps"]["02_b"]["status"] == status
    assert records["steps"]["02_b"]["ok"] is False
    assert records["steps"]["02_b"]["error"]["ename"] == type(raised).__name__
    # the lock is free again and the next run resumes where this one stopped
    monkeypatch.setattr(pipeline, "execute_step", real)
    result = run_quiet(project)
    assert result.statuses == {"01_a": "cached", "02_b": "ran"}


def test_sigterm_during_a_step_ends_as_interrupted(project, monkeypatch):
    def terminated(step, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends

    monkeypatch.setattr(pipeline, "execute_step", terminated)
    with pytest.raises(pipeline.RunInterrupted, match="SIGTERM"):
        run_quiet(project)
    records = json.loads((project / "runs" / "smoke" / "run.json").read_text())
    assert records["status"] == "interrupted"
    assert records["steps"]["01_a"]["status"] == "interrupted"
    assert records["steps"]["02_b"]["status"] == "not run"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_a_data_error_ends_the_run_as_failed(project, fakes, monkeypatch):
    def broken(*args):
        raise ValueError("data folder '/nowhere' does not exist")

    monkeypatch.setattr(pipeline, "prepare_data", broken)
    with pytest.raises(ValueError, match="nowhere"):
        run_quiet(project)
    records = json.loads((project / "runs" / "smoke" / "run.json").read_text())
    assert records["status"] == "failed" and "nowhere" in records["error"]
    assert {r["status"] for r in records["steps"].values()} == {"not run"}


def test_a_killed_run_is_noted_and_its_running_step_runs_again(project):
    run_dir = project / "runs" / "smoke"
    run_quiet(project)
    records = json.loads((run_dir / "run.json").read_text())
    records["status"] = "running"  # as a kill -9 in step 02 leaves it
    records["steps"]["02_b"].update(status="running", ok=False)
    (run_dir / "run.json").write_text(json.dumps(records))
    (run_dir / layout.KERNEL_FILES_DIR / "srkit-step-x").mkdir(parents=True)
    lines = []
    result = run_quiet(project, lines)
    assert any("ended without a word" in line for line in lines)
    assert result.statuses == {"01_a": "cached", "02_b": "ran"}
    assert not (run_dir / layout.KERNEL_FILES_DIR / "srkit-step-x").exists()


def test_steps_leave_no_kernel_files_or_temporary_notebooks(project, monkeypatch):
    run_dir = project / "runs" / "smoke"
    runtime = project / "jupyter-runtime"
    before = set(Path(tempfile.gettempdir()).glob("srkit-step-*"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    run_quiet(project)
    assert list((run_dir / layout.KERNEL_FILES_DIR).iterdir()) == []
    assert not runtime.exists() or list(runtime.iterdir()) == []
    assert set(Path(tempfile.gettempdir()).glob("srkit-step-*")) == before


def test_relative_data_and_benchmark_folders_are_made_absolute(
    tmp_path, fakes, monkeypatch
):
    project = make_project(
        tmp_path / "p", extra_parameters='benchmarks: str = ""  # folder:PATH\n'
    )
    (tmp_path / "photos").mkdir()
    (tmp_path / "sets").mkdir()
    monkeypatch.chdir(project / "book")  # where the user typed the paths
    run_quiet(
        project,
        data="folder:../../photos",
        overrides=["benchmarks=folder:../../sets"],
    )
    photos, sets = f"folder:{tmp_path / 'photos'}", f"folder:{tmp_path / 'sets'}"
    assert {source for source, *_ in fakes.prepared} == {photos}
    seen = executions(project / "runs" / "smoke")
    assert {entry["data_source"] for entry in seen} == {photos}
    params = yaml.safe_load((project / "runs" / "smoke" / "params.yaml").read_text())
    assert params["steps"]["01_a"]["benchmarks"] == sets
    assert params["data"] == photos


def test_ensure_kernel_runs_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    name = execute.ensure_kernel()
    command = KernelSpecManager().get_kernel_spec(name).argv[0]
    assert command.startswith("python") or Path(command).samefile(
        execute.sys.executable
    )


@pytest.mark.slow
def test_run_builds_the_book_strictly(project):
    lines = []
    result = pipeline.run(
        project, book=True, strict=True, echo=lines.append, heartbeat_s=0
    )
    assert result.book_index == project / "_build" / "html" / "index.html"
    assert result.book_index.is_file()
    assert (project / "_build" / "html" / "book" / "steps" / "02_b.html").is_file()
    about = (project / "book" / "about_run.md").read_text()
    assert "02_b" in about and "smoke" in about
    assert (project / "runs" / "smoke" / "book_build.log").is_file()
