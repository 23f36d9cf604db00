"""The shape of every step notebook (STYLE.md section 3) and its place in the book."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
STEPS = sorted((PROJECT / "notebooks").glob("[0-9][0-9]_*.py"))
SHARED_KNOBS = ("profile", "run_dir", "data_source", "seed")
TRAINING_KNOBS = ("epochs", "batch_size", "learning_rate")


def code_cells(path: Path):
    notebook = jupytext.read(path)
    return notebook, [cell for cell in notebook.cells if cell.cell_type == "code"]


def parameters(path: Path) -> dict[str, ast.AnnAssign]:
    _, cells = code_cells(path)
    tree = ast.parse(cells[0].source)
    return {node.target.id: node for node in tree.body}


def test_there_are_twelve_steps():
    assert [path.name[:2] for path in STEPS] == [f"{i:02d}" for i in range(1, 13)]


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
    assert "write_metrics" in last.source or "write_summary" in last.source
    assert "assert" in last.source


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
