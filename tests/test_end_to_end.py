"""End to end: the smoke profile on a copy of the project, then a strict book build.

This is the README's promise in one test: `srkit run` executes every step notebook and
builds the book with `jupyter-book build -W -n --keep-going`; the output is then
checked the way a reader would notice problems (missing pages, error outputs, frozen
GIFs, a summary without all models). It takes several minutes on two CPU cores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import browser_check
import imageio.v3 as iio
import nbformat
import pytest
import yaml

from srkit import cli, models

PROJECT = Path(__file__).resolve().parents[1]
#: The smoke site's weight limit in MB: a reader on a phone loads what it links.
SITE_MB = 30

pytestmark = pytest.mark.slow


def copy_project(target: Path) -> Path:
    """Copy the book sources (not runs/, _build/ or executed notebooks)."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(PROJECT / name, target / name)
    shutil.copytree(PROJECT / "notebooks", target / "notebooks")
    (target / "book").mkdir()
    for page in (PROJECT / "book").glob("*.md"):
        if page.name not in ("about_run.md", "this_build.md"):  # generated
            shutil.copy2(page, target / "book" / page.name)
    shutil.copytree(PROJECT / "book" / "_static", target / "book" / "_static")
    return target


def toc_files(project: Path) -> list[str]:
    toc = yaml.safe_load((project / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def run_smoke(project: Path, run_dir: Path, *options: str) -> int:
    """`srkit run --profile smoke` on the copied project; returns the exit code."""
    command = ["run", "--project", str(project), "--profile", "smoke"]
    return cli.main([*command, "--run-dir", str(run_dir), *options])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    run_dir = project / "runs" / "smoke"
    code = run_smoke(project, run_dir, "--strict")
    assert code == 0, "srkit run --profile smoke --strict failed"
    return project, run_dir


def test_every_toc_page_is_built(smoke_run):
    project, _ = smoke_run
    html = project / "_build" / "html"
    missing = [f for f in toc_files(project) if not (html / f"{f}.html").is_file()]
    assert not missing, f"pages in _toc.yml without HTML: {missing}"


def test_no_executed_notebook_has_an_error(smoke_run):
    project, _ = smoke_run
    notebooks = sorted((project / "book" / "steps").glob("*.ipynb"))
    assert len(notebooks) == len(list((project / "notebooks").glob("[0-9][0-9]_*.py")))
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        errors = [
            output
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.get("outputs", [])
            if output.output_type == "error"
        ]
        assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"


def test_every_step_wrote_metrics(smoke_run):
    project, run_dir = smoke_run
    for source in sorted((project / "notebooks").glob("[0-9][0-9]_*.py")):
        path = run_dir / "steps" / source.stem / "metrics.json"
        assert path.is_file(), f"{source.stem} wrote no metrics.json"
        assert json.loads(path.read_text())["schema_version"] == 2


def test_gifs_in_the_site_are_animated(smoke_run):
    project, _ = smoke_run
    gifs = sorted((project / "_build" / "html").rglob("*.gif"))
    # every model has a training GIF on its step page, and the summary repeats them
    assert len(gifs) >= len(models.MODEL_NAMES)
    for gif in gifs:
        frames = iio.imread(gif, index=None)
        assert frames.shape[0] > 1, f"{gif.name} has a single frame"


def test_summary_lists_all_models(smoke_run):
    project, _ = smoke_run
    page = (
        project / "_build" / "html" / "book" / "steps" / "13_summary.html"
    ).read_text()
    missing = [name for name in models.MODEL_NAMES if name not in page]
    assert not missing, f"summary page lacks {missing}"


def test_about_page_states_the_run(smoke_run):
    project, _ = smoke_run
    page = (project / "_build" / "html" / "book" / "about_run.html").read_text()
    for needle in ("smoke", "01_data_and_metrics", "13_summary", "keras"):
        assert needle in page.lower() or needle in page, needle


def test_second_run_is_all_cached(smoke_run, capsys):
    project, run_dir = smoke_run
    capsys.readouterr()
    assert run_smoke(project, run_dir, "--no-book") == 0
    record = json.loads((run_dir / "run.json").read_text())
    statuses = {name: step["status"] for name, step in record["steps"].items()}
    assert set(statuses.values()) == {"cached"}, statuses


def test_the_book_reads_well_in_a_browser(smoke_run, tmp_path_factory):
    """Every page in headless Chromium at 1400 and 390 px (tests/browser_check.py)."""
    if browser_check.find_chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    project, _ = smoke_run
    shots = tmp_path_factory.mktemp("book-screenshots")
    defects = browser_check.check_site(
        project / "_build" / "html", banner="Smoke build", shots=shots
    )
    site = project / "_build" / "html"
    defects += browser_check.weight_defects(browser_check.site_bytes(site), SITE_MB)
    print(f"browser check: screenshots of every page in {shots}")
    assert not defects, "\n".join(str(d) for d in defects)
