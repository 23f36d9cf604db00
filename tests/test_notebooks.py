"""Every step notebook: narrative, parameters, tags, and its place in the book."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from srkit import layout, records, steps
from srkit.execute import ensure_kernel

PROJECT = Path(__file__).resolve().parents[1]
STEPS = sorted((PROJECT / "notebooks").glob("[0-9][0-9]_*.py"))
SHARED_KNOBS = ("profile", "run_dir", "seed")
DATA_KNOBS = ("data_source",)  # every step that prepares data
TRAINING_KNOBS = (
    "steps",
    "eval_every",
    "batch_size",
    "learning_rate",
    "lr_schedule",
    "precision",
    "xla",
)
# steps whose cache key covers every earlier step's metrics.json
READERS_OF_EARLIER_STEPS = ("12_benchmarks", "13_summary")
RECORD_WRITERS = ("write_metrics", "write_summary", "write_benchmarks")


def code_cells(path: Path):
    notebook = jupytext.read(path)
    return notebook, [cell for cell in notebook.cells if cell.cell_type == "code"]


def parameters(path: Path) -> dict[str, ast.AnnAssign]:
    _, cells = code_cells(path)
    tree = ast.parse(cells[0].source)
    return {node.target.id: node for node in tree.body}


def test_there_are_thirteen_steps():
    assert [path.name[:2] for path in STEPS] == [f"{i:02d}" for i in range(1, 14)]
    assert [path.stem for path in STEPS][-2:] == ["12_benchmarks", "13_summary"]


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_first_code_cell_is_a_literal_parameters_cell(path):
    _, cells = code_cells(path)
    assert "parameters" in cells[0].metadata.get("tags", []), path.name
    tree = ast.parse(cells[0].source)
    for node in tree.body:
        assert isinstance(node, ast.AnnAssign), f"{path.name}: {ast.dump(node)[:60]}"
        assert isinstance(node.target, ast.Name)
        assert isinstance(node.annotation, ast.Name)
        assert node.annotation.id in ("int", "float", "str", "bool")
        assert isinstance(node.value, ast.Constant), f"{path.name}: {node.target.id}"
    lines = [line for line in cells[0].source.splitlines() if line.strip()]
    assert all("#" in line for line in lines), f"{path.name}: uncommented parameter"


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_shared_knobs_are_declared(path):
    names = parameters(path)
    missing = [knob for knob in SHARED_KNOBS if knob not in names]
    assert not missing, f"{path.name} lacks {missing}"
    if "data.prepare(" in path.read_text():
        missing = [knob for knob in DATA_KNOBS if knob not in names]
        assert not missing, f"{path.name} prepares data but lacks {missing}"
    trains = "train.fit(" in path.read_text()
    if trains:
        missing = [knob for knob in TRAINING_KNOBS if knob not in names]
        assert not missing, f"{path.name} trains but lacks {missing}"


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_title_carries_the_step_number(path):
    notebook, _ = code_cells(path)
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    assert re.match(rf"# {path.name[:2]} · \S", first.source), first.source[:40]


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_step_writes_its_metrics_last(path):
    _, cells = code_cells(path)
    last = cells[-1]
    assert "remove-cell" in last.metadata.get("tags", [])
    assert any(writer in last.source for writer in RECORD_WRITERS)
    assert "assert" in last.source


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_steps_that_read_earlier_steps_declare_it(path):
    step = steps.read_step(path)
    assert step.reads_earlier_steps == (path.stem in READERS_OF_EARLIER_STEPS)


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_a_page_set_against_a_control_declares_that_it_reads_it(path):
    # the opening sentence quotes the control's record: when the control reruns,
    # this page must rerun too, so the control is part of its cache key
    control = re.search(r'^CONTROL = "(\w+)"', path.read_text(), re.MULTILINE)
    step = steps.read_step(path)
    assert step.reads_steps == ((control.group(1),) if control else ())


#: Training steps 02-11: each opens with its answer (issue 22).
TRAINING_STEPS = [path for path in STEPS if "02" <= path.name[:2] <= "11"]
#: Each training step's control (DESIGN's order of questions); 02 has none.
CONTROLS = {
    "03": "02_initial_model",
    "04": "03_multi_upsampling",
    "05": "04_residual_blocks",
    "06": "03_multi_upsampling",
    "07": "06_vgg_features",
    "08": "07_depth_to_space",
    "09": "08_result_dilated",
    "10": "09_result_dilated_ext",
    "11": "10_result_mse_ssim",
}
GLUE_KEY = re.compile(r'glue\(\s*"(\w+)"')
#: A pasted glue key: a directive (```{glue:figure} key) or an inline role
#: ({glue:md}`key:myst`, as in a figure's caption).
GLUE_REFERENCE = re.compile(r"```\{glue(?::\w+)?\}\s+(\w+)|\{glue:md\}`(\w+)")


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


@pytest.mark.parametrize("path", TRAINING_STEPS, ids=lambda p: p.stem)
def test_step_opens_with_its_answer(path):
    notebook, cells = code_cells(path)
    # right after the question (the first cell), before the parameters and the
    # banner: the answer's figure is in the page's first screen
    top = notebook.cells[1]
    assert top.cell_type == "markdown", path.name
    assert notebook.cells[2] is cells[0] and "parameters" in tags(cells[0])
    references = [a or b for a, b in GLUE_REFERENCE.findall(top.source)]
    expected = ["answer", "answer_figure", "answer_caption", "answer_slider"]
    assert references == expected, path.name
    assert ":alt:" in top.source  # the figure has words for a reader without it
    # the caption is the figure's own, so Sphinx numbers it ("Fig. 3")
    figure = re.search(r"```\{glue:figure\}.*?\n```", top.source, re.DOTALL)
    assert "{glue:md}`answer_caption:myst`" in figure.group(0), path.name
    # the question alone comes before the answer (a phone's first screen holds
    # title, question, margin sentence and figure); the rest follows it
    question = notebook.cells[0].source.split("\n\n", 1)[1]
    assert len(question) < 200 and "\n\n" not in question, path.name
    assert "## Idea" in top.source.split("{glue} answer_slider")[1], path.name
    glued = [key for cell in cells for key in GLUE_KEY.findall(cell.source)]
    assert sorted(glued) == sorted(references), path.name  # each glued once
    text = path.read_text()
    assert text.index("{glue:figure}") < text.index("# ## Data")
    glue_cell = next(cell for cell in cells if "glue(" in cell.source)
    assert "remove-cell" in tags(glue_cell)
    assert "report.answer(" in glue_cell.source
    assert "plots.answer_figure(" in glue_cell.source
    assert "report.before_after(" in glue_cell.source


@pytest.mark.parametrize("path", TRAINING_STEPS, ids=lambda p: p.stem)
def test_step_is_set_against_its_control(path):
    text = path.read_text()
    control = CONTROLS.get(path.name[:2])
    if control is None:
        assert "CONTROL" not in text
        return
    assert f'CONTROL = "{control}"' in text
    assert (PROJECT / "notebooks" / f"{control}.py").is_file()
    assert "RUN.step_metrics(CONTROL)" in text


@pytest.mark.parametrize("path", TRAINING_STEPS, ids=lambda p: p.stem)
def test_step_hides_code_and_leaves_samples_to_page_01(path):
    _, cells = code_cells(path)
    for cell in cells:
        hidden = {"hide-input", "remove-input", "remove-cell"} & set(tags(cell))
        assert hidden, f"{path.name}: code shown in {cell.source[:60]!r}"
    assert "sample_grid" not in path.read_text()


def test_data_page_keeps_the_samples():
    data_page = PROJECT / "notebooks" / "01_data_and_metrics.py"
    assert "plots.sample_grid(" in data_page.read_text()


def test_benchmark_step_parameters_and_record():
    path = PROJECT / "notebooks" / "12_benchmarks.py"
    names = parameters(path)
    assert names["benchmarks"].annotation.id == "str"
    assert names["benchmarks"].value.value == ""  # no sets unless asked for
    text = path.read_text()
    assert "RUN.step_metrics(STEP)" in text  # no path spelled out
    assert "write_benchmarks" in text and "benchmark_all" in text


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.stem)
def test_sections_are_in_order(path):
    text = path.read_text()
    if "train.fit(" not in text:
        return
    positions = [
        text.find(f"# ## {name}")
        for name in ("Data", "Model", "Training", "Results", "Takeaways")
    ]
    assert -1 not in positions, f"{path.name}: missing a section"
    assert positions == sorted(positions), f"{path.name}: sections out of order"


def test_toc_lists_exactly_the_steps():
    toc = yaml.safe_load((PROJECT / "_toc.yml").read_text())
    files = [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]
    listed = [f.split("/")[-1] for f in files if f.startswith("book/steps/")]
    assert listed == [path.stem for path in STEPS]
    captions = [part["caption"] for part in toc["parts"]]
    assert captions == [
        "Introduction",
        "Data and metrics",
        "Architectures",
        "Result models",
        "Benchmarks",
        "Summary",
        "About this run",
    ]


def test_hand_written_pages_exist():
    toc = yaml.safe_load((PROJECT / "_toc.yml").read_text())
    files = [toc["root"]] + [
        chapter["file"] for part in toc["parts"] for chapter in part["chapters"]
    ]
    generated = {"book/about_run"}
    for name in files:
        if name.startswith("book/steps/") or name in generated:
            continue
        assert (PROJECT / f"{name}.md").is_file(), name


def test_book_config_leaves_execution_to_the_pipeline():
    config = yaml.safe_load((PROJECT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    assert config["sphinx"]["config"]["nb_merge_streams"] is True


def execute(path: Path, target: Path, **parameters) -> nbformat.NotebookNode:
    """Execute a step source with papermill; returns the executed notebook."""
    import papermill

    notebook = target / f"{path.stem}.ipynb"
    jupytext.write(jupytext.read(path), notebook)
    executed = target / f"{path.stem}_out.ipynb"
    papermill.execute_notebook(
        str(notebook),
        str(executed),
        parameters=parameters,
        kernel_name=ensure_kernel(),
        cwd=str(PROJECT / "notebooks"),
        progress_bar=False,
    )
    return nbformat.read(executed, as_version=4)


def markdown_outputs(notebook) -> str:
    return "\n".join(
        output.get("data", {}).get("text/markdown", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


@pytest.mark.slow
def test_benchmark_step_runs_without_sets_and_on_a_tiny_set(tmp_path):
    import numpy as np

    from srkit import images, models

    run_dir = tmp_path / "run"
    folder = run_dir / "models" / "simple_model_bilinear"
    folder.mkdir(parents=True)
    models.build("simple_model_bilinear").save(folder / "best.keras")
    path = PROJECT / "notebooks" / "12_benchmarks.py"
    notebook = execute(path, tmp_path, run_dir=str(run_dir), benchmarks="")
    assert "No benchmark sets" in markdown_outputs(notebook)
    record = records.read_metrics(layout.RunFolder(run_dir).step_metrics(path.stem))
    assert record["benchmarks"] == []
    (tmp_path / "sets" / "Set5").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        images.write_image(
            tmp_path / "sets" / "Set5" / f"{name}.png", rng.random((24, 32, 3))
        )
    benchmarks = f"folder:{tmp_path / 'sets'}"
    notebook = execute(path, tmp_path, run_dir=str(run_dir), benchmarks=benchmarks)
    text = markdown_outputs(notebook)
    assert "**Set5, x2** (mean over 2 images)" in text
    assert "simple_model_bilinear (step 02)" in text
    table = records.read_benchmarks(run_dir)
    assert set(table["model"]) == {"bicubic", "simple_model_bilinear"}
    assert set(table["scale"]) == {2, 4}  # bicubic at x4 too, the model at x2 only
