"""The book around the step pages: About page, build labels, paths, clean."""

from __future__ import annotations

import json
from pathlib import Path

from srkit import book

RECORDS = {
    "project": "/home/someone/srkit",
    "profile": "smoke",
    "run_dir": "/home/someone/srkit/runs/smoke",
    "overrides": ["epochs=3", "benchmarks=folder:/data/sets/benchmarks"],
    "status": "ok",
    "steps": {
        "01_a": {"status": "ran", "seconds": 75.0, "params": {"epochs": 3, "a": 1}},
        "02_b": {
            "status": "cached",
            "seconds": 2.0,
            "params": {"epochs": 5, "vgg_weights": "random"},
        },
    },
    "data": [
        {"source": "folder:/data/sets/train", "n_images": 24, "n_train": 19, "n_val": 5}
    ],
    "versions": {"python": "3.11", "keras": "3"},
    "hardware": {"cpu": "Test CPU", "cores": 2, "ram_gib": 8, "gpus": []},
}


def test_about_page_from_records():
    page = book.about_page(RECORDS)
    assert page.startswith("# About this run")
    assert "`-p epochs=3`" in page and "1 min 15 s" in page
    assert "| 01_a | epochs=3 |" in page and "| 02_b | epochs=5 |" in page
    assert "Test CPU" in page and "| keras | 3 |" in page
    assert "No run records" in book.about_page({})


def test_about_page_states_compute_time_of_cached_steps_and_the_total():
    page = book.about_page(RECORDS)
    assert "| 02_b | 02_b | cached | 2.0 s |" in page
    assert "| compute time of all steps | 1 min 17 s |" in page


def test_step_labels_come_from_page_titles():
    assert book.step_label("08_r", "08 · R1: dilated blocks, loss −PSNR") == (
        "R1",
        "dilated blocks, loss −PSNR",
    )
    assert book.step_label("02_a", "02 · A first model") == ("02", "A first model")
    assert book.step_label("02_a", "") == ("02_a", "")
    assert book.step_label("02_a", "Summary") == ("02_a", "")


def test_about_page_links_step_labels_to_existing_pages():
    page = book.about_page(RECORDS, {"02_b": "08 · R1: dilated blocks"})
    assert "| {doc}`R1 <steps/02_b>` | Dilated blocks | cached |" in page
    assert "| {doc}`R1 <steps/02_b>` | epochs=5 |" in page  # parameter table
    assert "| 01_a | 01_a | ran |" in page  # no page: no link


def test_write_about_page_links_the_pages_in_book_steps(tmp_path):
    run_dir = tmp_path / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(RECORDS))
    steps = tmp_path / "book" / "steps"
    steps.mkdir(parents=True)
    cells = [
        {"cell_type": "code", "source": ["# not a title\n"]},
        {"cell_type": "markdown", "source": ["# 02 · B, a page\n", "\n", "Text."]},
    ]
    (steps / "02_b.ipynb").write_text(json.dumps({"cells": cells}))
    (steps / "broken.ipynb").write_text("{not json")
    assert book.page_titles(tmp_path) == {"02_b": "02 · B, a page"}
    page = book.write_about_page(tmp_path, run_dir).read_text()
    assert "| {doc}`02 <steps/02_b>` | B, a page | cached |" in page


def test_about_page_has_no_empty_headers_nor_absolute_paths():
    page = book.about_page(RECORDS)
    assert "|  |  |" not in page and "| | |" not in page
    assert "/home/someone" not in page and "/data/sets" not in page
    assert "`runs/smoke`" in page and "folder:.../sets/train" in page


def test_smoke_warning_comes_first_in_every_label():
    bar = book.announcement(RECORDS)
    assert bar.startswith("<b>Smoke build") and "noise" in bar
    assert "random" in bar and "Test CPU, 2 cores, no GPU" in bar
    box = book.this_build_box(RECORDS)
    assert box.startswith(":::{admonition} This build\n:class: warning")
    assert "**Smoke build" in box
    assert "random (offline)" in box
    assert book.about_page(RECORDS).split("\n")[2].startswith(":::{warning}")
    quick = {**RECORDS, "profile": "quick"}
    assert "Smoke" not in book.announcement(quick)
    assert book.this_build_box(quick).startswith(
        ":::{admonition} This build\n:class: note"
    )
    assert "No run records" in book.this_build_box({})


def test_build_labels_are_compact_and_keep_every_fact():
    # small enough that a step page's answer figure is in its first screen
    bar = book.announcement(RECORDS)
    warning, facts = bar.split(' <span class="srkit-build-facts">')
    assert warning == f"<b>{book.build_facts(RECORDS)['warning']}</b>"
    assert facts.startswith("This build: profile <b>smoke</b> · data ")
    assert facts.endswith("Test CPU, 2 cores, no GPU</span>")
    assert "\n" not in bar and "<br" not in bar
    odd = {**RECORDS, "hardware": {"cpu": "A<B> CPU", "cores": 2, "gpus": []}}
    assert "A&lt;B&gt; CPU" in book.announcement(odd)  # text, never markup
    box = book.this_build_box(RECORDS).split("\n")
    assert box[:3] == [":::{admonition} This build", ":class: warning srkit-run", ""]
    assert len(box) == 6 and box[4:] == [":::", ""]  # one paragraph
    paragraph = box[3]
    assert paragraph.startswith("**Smoke build: every model trained")
    for fact in ("`smoke`", "train (19 train / 5 val)", "random (offline)", "Test CPU"):
        assert fact in paragraph
    assert paragraph.endswith(
        "{doc}`about_run` lists every parameter, version and step time."
    )


def test_write_about_page_writes_the_build_box(tmp_path):
    run_dir = tmp_path / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(RECORDS))
    path = book.write_about_page(tmp_path, run_dir)
    assert path == tmp_path / "book" / "about_run.md"
    assert "Smoke build" in (tmp_path / "book" / "this_build.md").read_text()


class FakeConfig:
    html_theme_options = {"use_download_button": False}


class FakeApp:
    def __init__(self, srcdir):
        self.srcdir = srcdir
        self.hooks = {}
        self.priorities = {}

    def connect(self, event, function, priority=500):
        self.hooks[event] = function
        self.priorities[function.__name__] = priority


def test_sphinx_extension_sets_the_announcement(tmp_path):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "_toc.yml").write_text("root: book/intro\n")
    run_dir = project / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(RECORDS))
    app, config = FakeApp(str(project)), FakeConfig()
    book.setup(app)
    app.hooks["config-inited"](app, config)
    assert config.html_theme_options["announcement"].startswith("<b>Smoke build")
    assert config.html_theme_options["use_download_button"] is False
    # the download menu is rewritten after the theme (priority 501) made it
    assert app.priorities["offer_small_sources"] > 501


def download_context(tmp_path):
    def pathto(name, resource=0):
        return f"../../{name}"

    menu = {
        "type": "group",
        "label": "download-buttons",
        "buttons": [
            {"label": "download-notebook-button", "url": "../../_sources/x.ipynb"},
            {"label": "download-source-button", "url": "../../_sources/x.ipynb"},
            {"label": "download-pdf-button", "type": "javascript"},
        ],
    }
    return {"pathto": pathto, "header_buttons": [menu, {"label": "fullscreen"}]}


def test_download_menu_offers_the_step_source_not_the_executed_notebook(tmp_path):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "notebooks" / "02_b.py").write_text("# %% [markdown]\n# # 02 · B\n")
    (project / "book").mkdir()
    (project / "book" / "intro.md").write_text("# Intro\n")
    app = FakeApp(str(project))
    app.outdir = str(tmp_path / "html")
    context = download_context(tmp_path)
    book.offer_small_sources(app, "book/steps/02_b", "page.html", context, None)
    menu = context["header_buttons"][0]["buttons"]
    assert [b["label"] for b in menu] == [
        "download-source-button",
        "download-pdf-button",
    ]
    assert menu[0]["url"] == "../../_sources/book/steps/02_b.py"
    assert menu[0]["text"] == ".py" and "jupytext" in menu[0]["tooltip"]
    copied = tmp_path / "html" / "_sources" / "book" / "steps" / "02_b.py"
    assert copied.read_text().startswith("# %% [markdown]")

    context = download_context(tmp_path)
    book.offer_small_sources(app, "book/intro", "page.html", context, None)
    assert context["header_buttons"][0]["buttons"][0]["text"] == ".md"
    assert (tmp_path / "html" / "_sources" / "book" / "intro.md").is_file()

    # no source on disk: only the print entry; no menu: nothing changes
    context = download_context(tmp_path)
    book.offer_small_sources(app, "book/steps/99_gone", "page.html", context, None)
    assert [b["label"] for b in context["header_buttons"][0]["buttons"]] == [
        "download-pdf-button"
    ]
    context = {"header_buttons": [{"label": "fullscreen"}]}
    book.offer_small_sources(app, "book/intro", "page.html", context, None)
    assert context == {"header_buttons": [{"label": "fullscreen"}]}


def test_clean_removes_generated_outputs(tmp_path):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "_toc.yml").write_text("root: book/intro\n")
    made = [
        project / "book" / "steps" / "01_a.ipynb",
        project / "book" / "about_run.md",
        project / "book" / "this_build.md",
        project / "_build" / "html" / "index.html",
        project / "runs" / "smoke" / "run.json",
    ]
    (project / "book").mkdir()
    (project / "book" / "intro.md").write_text("# Intro\n")
    for path in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    removed = book.clean(project)
    assert project / "_build" in removed and not (project / "book" / "steps").exists()
    assert not (project / "book" / "this_build.md").exists()
    assert (project / "runs").exists() and (project / "book" / "intro.md").exists()
    assert book.clean(project, everything=True) == [project / "runs"]
    assert book.clean(project) == []


def test_missing_pages(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "root: book/intro\nchapters:\n  - file: book/steps/01_a\n"
    )
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    assert book.missing_pages(Path(tmp_path)) == ["book/steps/01_a"]


class FakeScript(str):
    def __new__(cls, filename, body=""):
        script = super().__new__(cls, filename or "")
        script.filename, script.attributes = filename, {"body": body}
        return script


def test_thebe_scripts_are_dropped():
    kept = FakeScript("_static/togglebutton.js")
    context = {
        "script_files": [
            kept,
            FakeScript(None, 'const THEBE_JS_URL = "x"'),
            FakeScript("_static/sphinx-thebe.js"),
            FakeScript(None, 'const THEBE_JS_URL = "x"'),
        ]
    }
    book.drop_thebe_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] == [kept]
