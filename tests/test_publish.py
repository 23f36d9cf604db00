"""Tests of what a reader and a host get: licence and citation files, the GitHub
workflow that builds and deploys the book, `make publish`, and the book settings
that keep pages clean and light (a download menu of small sources only, the part of
MathJax the pages load served with the site)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import browser_check
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
BIN = Path(sys.executable).parent


def pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# ------------------------------------------------------------------------ licence


def test_licence_is_mit_for_the_srkit_authors():
    text = (ROOT / "LICENSE").read_text()
    assert pyproject()["license"] == "MIT"
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the srkit authors" in text
    assert "WITHOUT WARRANTY OF ANY KIND" in text


def test_citation_agrees_with_pyproject():
    citation = load_yaml(ROOT / "CITATION.cff")
    project = pyproject()
    assert citation["cff-version"] == "1.2.0"
    # the keys CFF 1.2.0 requires
    assert {"cff-version", "message", "title", "authors"} <= set(citation)
    assert citation["authors"] == [{"name": "the srkit authors"}]  # an entity
    assert citation["version"] == project["version"]
    assert citation["license"] == project["license"]
    assert citation["repository-code"] == project["urls"]["Source"]
    assert citation["url"] == project["urls"]["Documentation"]
    config = load_yaml(ROOT / "_config.yml")
    assert config["repository"]["url"] == project["urls"]["Source"]
    assert config["author"] == "the srkit authors"


# ------------------------------------------------------------------------ workflow


def workflow() -> dict:
    data = load_yaml(WORKFLOW)
    data["on"] = data.pop(True)  # YAML 1.1 reads the bare key `on` as True
    return data


def steps_of(job: dict) -> list[dict]:
    return job["steps"]


def uses(job: dict, action: str) -> dict:
    found = [s for s in steps_of(job) if s.get("uses", "").startswith(action + "@")]
    assert found, f"no step uses {action}"
    return found[0]


def commands(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in steps_of(job))


def test_workflow_tests_pull_requests():
    data = workflow()
    assert {"pull_request", "workflow_dispatch"} <= set(data["on"])
    job = data["jobs"]["test"]
    assert job["if"] == "github.event_name == 'pull_request'"
    assert uses(job, "actions/setup-python")["with"]["python-version"] == "3.11"
    assert "make test" in commands(job)


def test_workflow_builds_and_deploys_tags_and_dispatches():
    data = workflow()
    assert data["on"]["push"] == {"tags": ["v*"]}
    assert data["permissions"] == {"contents": "read"}  # the default for all jobs
    build = data["jobs"]["build"]
    assert build["if"] == "github.event_name != 'pull_request'"
    assert build["timeout-minutes"] == 180
    assert data["env"]["PROFILE"] == "quick"
    run = commands(build)
    assert 'make report PROFILE="$PROFILE"' in run
    assert "jupyter-book build --all -W -n --keep-going ." in run
    restore = uses(build, "actions/cache/restore")["with"]
    assert restore["path"] == "runs/"
    for part in ("env.PROFILE", "srkit/profiles/", "notebooks/**", "srkit/**"):
        assert part in restore["key"]
    save = uses(build, "actions/cache/save")
    assert save["with"]["key"] == "${{ steps.runs.outputs.cache-primary-key }}"
    assert "always()" in save["if"]
    assert uses(build, "actions/upload-pages-artifact")["with"]["path"] == "_build/html"
    deploy = data["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert uses(deploy, "actions/deploy-pages")["id"] == "deployment"


def actionlint() -> str | None:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(BIN))
    return found


def test_workflow_passes_actionlint():
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [binary, "-no-color", str(WORKFLOW.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------ publish


def git_environment(home: Path) -> dict:
    """git with a fixed identity and no user or system configuration."""
    return {
        **os.environ,
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "srkit tests",
        "GIT_AUTHOR_EMAIL": "tests@example.invalid",
        "GIT_COMMITTER_NAME": "srkit tests",
        "GIT_COMMITTER_EMAIL": "tests@example.invalid",
    }


def make_publish(project: Path, remote: str, env: dict):
    """`make publish` of the project's Makefile, run in `project`.

    The virtual environment is the one running the tests; ``-o`` keeps make from
    reinstalling it, so only the publish recipe runs.
    """
    venv = BIN.parent
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(ROOT / "Makefile"),
            "-C",
            str(project),
            "publish",
            f"VENV={venv}",
            f"REMOTE={remote}",
            "-o",
            str(venv / "bin" / "srkit"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


needs_publish_tools = pytest.mark.skipif(
    shutil.which("make") is None
    or shutil.which("git") is None
    or not (BIN / "ghp-import").exists(),
    reason="make publish needs make, git and ghp-import (pip install -e '.[dev]')",
)


@needs_publish_tools
def test_publish_refuses_without_a_built_site(tmp_path):
    result = make_publish(tmp_path, "origin", git_environment(tmp_path))
    assert result.returncode != 0
    assert "_build/html/index.html does not exist" in result.stderr
    assert "build the book first" in result.stderr


@needs_publish_tools
def test_publish_pushes_the_site_to_gh_pages(tmp_path):
    env = git_environment(tmp_path)
    bare = tmp_path / "remote.git"
    project = tmp_path / "project"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, env=env)
    subprocess.run(["git", "init", "-q", str(project)], check=True, env=env)
    site = project / "_build" / "html"
    (site / "_static").mkdir(parents=True)
    page = "<html><body>the report</body></html>\n"
    (site / "index.html").write_text(page)
    (site / "_static" / "style.css").write_text("body {}\n")

    result = make_publish(project, str(bare), env)
    assert result.returncode == 0, result.stdout + result.stderr

    def show(path: str) -> str:
        return subprocess.run(
            ["git", f"--git-dir={bare}", "show", f"gh-pages:{path}"],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout

    assert show("index.html") == page
    assert show("_static/style.css") == "body {}\n"
    files = subprocess.run(
        ["git", f"--git-dir={bare}", "ls-tree", "-r", "--name-only", "gh-pages"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.split()
    # GitHub Pages skips Jekyll, which would drop the underscore folders (_static)
    assert ".nojekyll" in files
    # a second publish replaces the branch's content (-f) instead of failing
    (site / "index.html").write_text("<html>v2</html>\n")
    again = make_publish(project, str(bare), env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert show("index.html") == "<html>v2</html>\n"


# ------------------------------------------------------------------------ book


def test_book_config_offers_small_downloads_and_serves_mathjax():
    from jupyter_book.config import get_final_config

    config, _ = get_final_config(
        user_yaml=ROOT / "_config.yml",
        cli_config={"latex_individualpages": False},
        sourcedir=ROOT,
    )
    assert "sphinx-mathjax-offline" in config["extensions"]
    theme = config["html_theme_options"]
    # on, with srkit.book's small sources instead of the executed notebooks
    assert theme["use_download_button"] is True
    assert "srkit.book" in config["extensions"]
    # merged into jupyter-book's theme options, not replacing them
    assert "launch_buttons" in theme and "search_bar_text" in theme
    assert theme["repository_url"] == pyproject()["urls"]["Source"]
    assert config["html_copy_source"] is False
    assert config["nb_execution_mode"] == "off"  # untouched by recursive_update


def tiny_notebook(path: Path) -> None:
    """A step page as the pipeline writes it: parameters, then papermill's cell."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    parameters = nbformat.v4.new_code_cell('profile = "smoke"')
    parameters.metadata["tags"] = ["parameters", "hide-cell"]
    injected = nbformat.v4.new_code_cell('# Parameters\nprofile = "INJECTED_VALUE"\n')
    injected.metadata["tags"] = ["injected-parameters", "remove-cell"]
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# 01 · A step\n\nThe loss is $\\|x - y\\|^2$."),
        parameters,
        injected,
        nbformat.v4.new_code_cell("print(profile)"),
    ]
    nbformat.write(notebook, path)


@pytest.mark.slow
def test_tiny_book_reads_offline_and_offers_small_downloads(tmp_path):
    """A two-page book built with the project's _config.yml (not the whole book)."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "book" / "_static", tmp_path / "book" / "_static")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: book/steps/01_step\n"
    )
    (tmp_path / "intro.md").write_text("# Intro\n\nPSNR is $10 \\log_{10}(1/m)$.\n")
    (tmp_path / "book" / "steps").mkdir(parents=True)
    tiny_notebook(tmp_path / "book" / "steps" / "01_step.ipynb")
    (tmp_path / "notebooks").mkdir()
    source = "# %% [markdown]\n# # 01 · A step\n"
    (tmp_path / "notebooks" / "01_step.py").write_text(source)
    result = subprocess.run(
        [str(BIN / "jupyter-book"), "build", "-W", "-n", "--keep-going", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    html = tmp_path / "_build" / "html"
    mathjax = html / "_static" / "mathjax"
    assert (mathjax / "tex-chtml.js").is_file()
    fonts = mathjax / "output" / "chtml" / "fonts" / "woff-v2"
    assert any(fonts.glob("*.woff"))
    # trimmed to what the pages load (the whole copy is 24 MB)
    assert not (mathjax / "tex-svg.js").exists()
    assert tree_bytes(mathjax) < MATHJAX_MAX_BYTES
    assert not list(html.rglob("*.map"))
    step_page = html / "book" / "steps" / "01_step.html"
    for page_path in (html / "intro.html", step_page):
        page = page_path.read_text()
        assert "_static/mathjax/tex-chtml.js" in page, page_path
        assert "cdn.jsdelivr.net" not in page, page_path
        assert "download-notebook-button" not in page, page_path
    # the download menu offers the small sources, copied into the site
    assert 'href="_sources/intro.md"' in (html / "intro.html").read_text()
    step = step_page.read_text()
    assert 'href="../../_sources/book/steps/01_step.py"' in step
    assert (html / "_sources" / "book" / "steps" / "01_step.py").read_text() == source
    assert (html / "_sources" / "intro.md").is_file()
    assert not list(html.rglob("*.ipynb"))
    assert "INJECTED_VALUE" not in step  # papermill's cell, tagged remove-cell
    if browser_check.find_chromium() is not None:  # formulas render offline
        pages = ["intro.html", "book/steps/01_step.html"]
        defects = browser_check.check_site(html, pages=pages)
        assert not [d for d in defects if d.kind != "first-screen"], defects


def tree_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


#: The MathJax a site keeps is about 3.7 MB (of 24 MB in sphinx-mathjax-offline).
MATHJAX_MAX_BYTES = 5_000_000


def mathjax_package() -> Path:
    from importlib.metadata import distribution

    files = distribution("sphinx-mathjax-offline").files
    component = next(f for f in files if f.as_posix().endswith("mathjax/tex-chtml.js"))
    return Path(component.locate()).parent


def test_slim_static_keeps_what_the_pages_load(tmp_path):
    from srkit.book import MATHJAX_NEEDS, slim_static

    package = mathjax_package()
    for need in MATHJAX_NEEDS:  # a newer package that moved a file fails here
        assert (package / need).exists(), need
    static = tmp_path / "_static"
    shutil.copytree(package, static / "mathjax")
    (static / "scripts").mkdir()
    (static / "scripts" / "theme.js").write_text("x\n//# sourceMappingURL=theme.js.map")
    (static / "scripts" / "theme.js.map").write_text("{}")
    before = tree_bytes(tmp_path)
    assert before > 20_000_000
    removed = slim_static(tmp_path)
    assert removed == before - tree_bytes(tmp_path)
    mathjax = static / "mathjax"
    assert tree_bytes(mathjax) < MATHJAX_MAX_BYTES
    # what a page loads, also when a reader turns on the menu's speech explorer
    for kept in (
        "tex-chtml.js",
        "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
        "input/tex/extensions/boldsymbol.js",
        "ui/menu.js",
        "a11y/explorer.js",
        "input/mml.js",
        "sre/mathmaps/en.json",
    ):
        assert (mathjax / kept).is_file(), kept
    for dropped in ("tex-svg.js", "output/svg", "sre/mathmaps/de.json", "mml-svg.js"):
        assert not (mathjax / dropped).exists(), dropped
    assert not (static / "scripts" / "theme.js.map").exists()
    assert (static / "scripts" / "theme.js").is_file()
    assert slim_static(tmp_path) == 0  # nothing left to trim
    with pytest.raises(ValueError, match="tex-svg.js"):
        slim_static(tmp_path, component="tex-svg.js")
