"""The book around the step pages: the About page, the build labels, the build.

``srkit run`` executes the step notebooks; this module turns the run's records
(``run.json``) into the pages and labels that are not notebooks and runs
``jupyter-book build``:

- ``book/about_run.md``: parameters, versions, hardware and the compute time of
  every step, cached ones included, then the training speed of every model
  (``srkit.speed_page``);
- ``book/this_build.md``: the "This build" box that the landing page includes;
- the announcement bar on every page, set at build time by :func:`setup`, which
  makes this module a Sphinx extension (``_config.yml`` lists it); the same
  extension drops the unused live-code (thebe) scripts from every page and points
  the theme's download menu at small sources (a step's ``notebooks/*.py``, a
  page's ``.md``) instead of the executed notebooks; after the build it removes
  the files no page loads (most of MathJax, source maps: :func:`slim_static`).

Paths on these pages are shown relative to the project. It imports only
``srkit.layout``, ``srkit.environment`` and ``srkit.speed_page`` from srkit (none
imports Keras), so the pipeline can import it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from srkit.environment import backend_gpus_row
from srkit.layout import (
    ABOUT_PAGE,
    BOOK_LOG,
    NOTEBOOK_DIR,
    RUNS_DIR,
    STEPS_PAGE_DIR,
    find_project,
    idle_runs,
    is_project,
    latest_run_dir,
    read_records,
    shown_path,
)
from srkit.speed_page import speed_section

Echo = Callable[[str], None]
#: The landing page's "This build" box, included by ``book/intro.md``.
BUILD_BOX_PAGE = "book/this_build.md"
#: Which steps use frozen VGG16 features (the ``vgg_weights`` parameter).
VGG_PARAMETER = "vgg_weights"


class BookError(RuntimeError):
    """The book could not be built (its log says why)."""


def format_seconds(seconds: float) -> str:
    """``12.8 s``, ``16 min 45 s`` or ``2 h 01 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def steps_table(records: dict, stems: Sequence[str], seconds: dict) -> str:
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
    lines.append(f"total executed: {format_seconds(total)} (cached: time of last run)")
    return "\n".join(lines)


# ------------------------------------------------------------ build labels


def build_facts(records: dict) -> dict[str, str]:
    """What a reader must know about a build, in a few words each.

    Args:
        records: a run's ``run.json`` (empty when there is no run).

    Returns:
        ``profile``, ``data``, ``vgg`` and ``hardware`` as short phrases, and
        ``warning``: the smoke warning, or "" for other profiles.
    """
    project = records.get("project")
    profile = records.get("profile") or "unknown"
    sources = []
    for entry in records.get("data", []):
        source = shown_path(entry.get("source", "?"), project)
        counts = f"{entry.get('n_train', '?')} train / {entry.get('n_val', '?')} val"
        sources.append(f"{source} ({counts})")
    users = {
        stem: str(step["params"][VGG_PARAMETER])
        for stem, step in records.get("steps", {}).items()
        if VGG_PARAMETER in (step.get("params") or {})
    }
    vgg = sorted(set(users.values()))
    if vgg == ["random"]:
        numbers = ", ".join(stem[:2] for stem in users)
        vgg_text = f"random (offline): steps {numbers} use untrained VGG16 features"
    elif vgg:
        vgg_text = ", ".join(vgg)
    else:
        vgg_text = "not used"
    hardware = records.get("hardware", {})
    gpus = hardware.get("gpus") or []
    hardware_text = f"{hardware.get('cpu', '?')}, {hardware.get('cores', '?')} cores"
    hardware_text += f", {'; '.join(gpus)}" if gpus else ", no GPU"
    warning = ""
    if profile == "smoke":
        warning = (
            "Smoke build: every model trained for a handful of steps to test the "
            "machinery; its numbers and rankings are noise."
        )
    return {
        "profile": profile,
        "data": "; ".join(sources) or "unknown",
        "vgg": vgg_text,
        "hardware": hardware_text if hardware else "unknown",
        "warning": warning,
    }


def announcement(records: dict) -> str:
    """The HTML of the announcement bar on every page: one paragraph, small type.

    The smoke warning comes first, in bold; then the build's profile, data, VGG16
    weights and hardware, in a ``srkit-build-facts`` span. ``book/_static/
    first-screen.css`` sets the bar in small type with thin padding, so that it
    takes one or two lines on a desktop and a step page's answer stays in the first
    screen.
    """
    if not records:
        return "No run records: these pages were not built by <code>srkit run</code>."
    facts = build_facts(records)
    parts = [
        f"profile <b>{html.escape(facts['profile'], quote=False)}</b>",
        f"data {html.escape(facts['data'], quote=False)}",
        f"VGG16 weights {html.escape(facts['vgg'].split(':')[0], quote=False)}",
        html.escape(facts["hardware"], quote=False),
    ]
    text = f'<span class="srkit-build-facts">This build: {" · ".join(parts)}</span>'
    if facts["warning"]:
        text = f"<b>{html.escape(facts['warning'])}</b> " + text
    return text


def this_build_box(records: dict) -> str:
    """Markdown of the landing page's "This build" box (smoke warning first).

    One paragraph in small type: the smoke warning, the profile, data, VGG16
    weights and hardware, and a link to the About page.
    """
    if not records:
        return (
            ":::{admonition} This build\n:class: note\n\nNo run records were found: "
            "run `srkit run` to "
            "execute the steps; the step pages below may be missing.\n:::\n"
        )
    facts = build_facts(records)
    kind = "warning" if facts["warning"] else "note"
    # one paragraph in small type (book/_static/first-screen.css: srkit-run)
    lines = [":::{admonition} This build", f":class: {kind} srkit-run", ""]
    warning = f"**{facts['warning']}** " if facts["warning"] else ""
    lines += [
        warning
        + " · ".join(
            [
                f"**Profile:** `{facts['profile']}`",
                f"**Data:** {facts['data']}",
                f"**VGG16 weights:** {facts['vgg']}",
                f"**Hardware:** {facts['hardware']}",
            ]
        )
        + ". The page {doc}`about_run` lists every parameter, version and step time.",
        ":::",
    ]
    return "\n".join(lines) + "\n"


def setup(app):
    """Sphinx extension: put :func:`announcement` of the book's run on every page.

    The run is the one whose pages are in ``book/steps`` (see
    :func:`latest_run_dir`); theme options are read after ``config-inited``, so
    setting the option there reaches every page.
    """

    def set_announcement(app, config):
        project = Path(app.srcdir)
        run_dir = latest_run_dir(project) if is_project(project) else None
        records = read_records(run_dir) if run_dir else {}
        options = dict(config.html_theme_options or {})
        options["announcement"] = announcement(records)
        config.html_theme_options = options

    app.connect("config-inited", set_announcement)
    app.connect("html-page-context", drop_thebe_scripts)
    # after sphinx-book-theme's header buttons (priority 501)
    app.connect("html-page-context", offer_small_sources, priority=600)
    # after sphinx-mathjax-offline copies MathJax (build-finished, priority 500)
    app.connect("build-finished", slim_site, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def _is_thebe_script(script) -> bool:
    body = (getattr(script, "attributes", None) or {}).get("body", "")
    return "thebe" in str(getattr(script, "filename", script) or "") or (
        "THEBE_JS_URL" in body
    )


def drop_thebe_scripts(app, pagename, templatename, context, doctree):
    """Remove sphinx-thebe's scripts from a page (``html-page-context`` hook).

    jupyter-book always loads sphinx-thebe, which adds its configuration script
    once per read phase, so a page declares ``const THEBE_JS_URL`` twice and the
    browser logs a SyntaxError. The book has no live-code buttons, so the pages
    need none of these scripts.
    """
    scripts = context.get("script_files")
    if scripts:
        context["script_files"] = [s for s in scripts if not _is_thebe_script(s)]


#: The theme's download entries that point at ``_sources/`` copies of a page.
_SOURCE_BUTTONS = ("download-source-button", "download-notebook-button")


def small_source(project: Path, pagename: str) -> Path | None:
    """The file a reader downloads as a page's source, or None.

    A step page's source is its jupytext file ``notebooks/<stem>.py`` (the
    executed ``.ipynb`` weighs megabytes and is regenerated by every run); a
    hand-written or generated page's source is its ``.md`` file.

    Args:
        project: the project (book) folder.
        pagename: Sphinx's page name, e.g. ``book/steps/02_initial_model``.
    """
    page = Path(pagename)
    if page.parent.as_posix() == STEPS_PAGE_DIR:
        source = Path(project) / NOTEBOOK_DIR / f"{page.name}.py"
    else:
        source = Path(project) / f"{pagename}.md"
    return source if source.is_file() else None


def offer_small_sources(app, pagename, templatename, context, doctree):
    """Point the download menu at a small source (``html-page-context`` hook).

    The book keeps no ``_sources/`` copies (``html_copy_source: false``), so the
    theme's source and notebook entries would be dead links. This hook replaces
    them with one entry for :func:`small_source`, copied into ``_sources/``, and
    keeps the print-to-PDF entry; a page without a small source keeps only that.
    Without the theme's download button it does nothing.
    """
    groups = [
        group
        for group in context.get("header_buttons") or []
        if group.get("label") == "download-buttons"
    ]
    if not groups:
        return
    source = small_source(Path(app.srcdir), pagename)
    entries = []
    if source is not None:
        name = f"{pagename}{source.suffix}"
        target = Path(app.outdir) / "_sources" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        step = source.suffix == ".py"
        entries.append(
            {
                "type": "link",
                "url": f"{context['pathto']('_sources', 1)}/{name}",
                "text": source.suffix,
                "tooltip": (
                    "Download the step's source (jupytext percent format)"
                    if step
                    else "Download the page's source"
                ),
                "icon": "fas fa-code" if step else "fas fa-file",
                "label": "download-source-button",
            }
        )
    for group in groups:
        kept = [b for b in group["buttons"] if b.get("label") not in _SOURCE_BUTTONS]
        group["buttons"] = entries + kept


# ------------------------------------------------------------- a lighter site

#: What a page needs of the MathJax 3 copy in ``_static/mathjax/`` (24 MB: every
#: component, output and locale, copied whole by sphinx-mathjax-offline), relative
#: to that folder. Besides the component the pages load (``mathjax_path``):
MATHJAX_NEEDS = (
    "output/chtml/fonts/woff-v2",  # the CHTML fonts, fetched per style used
    "input/tex/extensions",  # TeX packages loaded on first use (\boldsymbol ...)
    "ui",  # the right-click menu's lazy and safe options
    "a11y",  # the menu's accessibility options (explorer, speech, braille)
    "input/mml.js",  # ... whose semantic enrichment reads MathML
    # the speech rule engine's rules: shared, English, Nemeth braille (the book is
    # in English; the menu's other speech languages are left out, about 3 MB)
    "sre/mathmaps/base.json",
    "sre/mathmaps/en.json",
    "sre/mathmaps/nemeth.json",
)


def slim_static(site: str | os.PathLike, component: str | None = "tex-chtml.js") -> int:
    """Remove the files of a built site that no reader's browser loads.

    - ``_static/mathjax/``: all but ``component`` and :data:`MATHJAX_NEEDS`
      (the other combined components, SVG output, MathML and AsciiMath input,
      the Node.js build, other speech languages);
    - ``_static/**/*.map``: the theme's source maps, read only by a developer's
      browser tools.

    Args:
        site: the built site (``_build/html``).
        component: the MathJax file the pages load, relative to
            ``_static/mathjax/`` (None: the pages load MathJax from elsewhere and
            the folder is left as it is).

    Returns:
        The bytes removed (0 for a site without these files).

    Raises:
        ValueError: when ``_static/mathjax/`` exists but lacks ``component`` (the
            pages would render no formula).
    """
    static = Path(site) / "_static"
    removed = 0
    mathjax = static / "mathjax"
    if component is not None and mathjax.is_dir():
        if not (mathjax / component).is_file():
            raise ValueError(
                f"{mathjax} has no {component}, the MathJax file the pages load; "
                "check mathjax_path (sphinx-mathjax-offline sets it)"
            )
        keep = {mathjax / component, *(mathjax / need for need in MATHJAX_NEEDS)}
        # reversed: a folder's files come before the folder
        for path in sorted(mathjax.rglob("*"), reverse=True):
            if path in keep or any(k in path.parents for k in keep):
                continue
            if path.is_file():
                removed += path.stat().st_size
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):  # holds nothing kept
                path.rmdir()
    if static.is_dir():
        for path in static.rglob("*.map"):
            removed += path.stat().st_size
            path.unlink()
    return removed


def slim_site(app, exception):
    """Run :func:`slim_static` on a finished HTML build (``build-finished`` hook).

    Connected after sphinx-mathjax-offline's copy of MathJax (same event, a later
    priority), so the copy is there to trim.
    """
    if exception is not None or app.builder.format != "html":
        return
    path = getattr(app.config, "mathjax_path", "") or ""
    prefix = "mathjax/"
    if path.startswith(prefix):
        slim_static(app.outdir, path.removeprefix(prefix))
    else:  # MathJax from elsewhere: only the source maps go
        slim_static(app.outdir, component=None)


# ------------------------------------------------------------------ about page


def _md_cell(value: Any) -> str:
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _step_seconds(record: dict) -> float | None:
    value = record.get("seconds")
    return float(value) if isinstance(value, (int, float)) else None


#: A page title: the step number, an optional result label, the rest
#: (``08 · R1: dilated residual blocks, loss −PSNR``).
_TITLE = re.compile(r"^(\d+)\s*·\s*(?:(R\d+)\s*:\s*)?(.*)$")


def step_label(stem: str, title: str = "") -> tuple[str, str]:
    """A step's reader label and the rest of its page title.

    Args:
        stem: the step's stem, e.g. ``08_result_dilated``.
        title: its page title, e.g. ``08 · R1: dilated residual blocks, loss −PSNR``
            ("" when unknown).

    Returns:
        ``("R1", "dilated residual blocks, loss −PSNR")`` for a result model,
        ``("02", "A first fully convolutional model")`` for another step, and
        ``(stem, "")`` when the title does not have that form.
    """
    match = _TITLE.match(title.strip())
    if not match:
        return stem, ""
    number, result, rest = match.groups()
    return result or number, rest.strip()


def page_titles(project: Path) -> dict[str, str]:
    """Stem -> title of every executed step page in ``book/steps`` (its first heading).

    Args:
        project: the project folder.

    Returns:
        e.g. ``{"02_initial_model": "02 · A first fully convolutional model"}``; a
        page without a level-1 heading in its first markdown cell maps to "".
    """
    titles = {}
    for path in sorted((Path(project) / STEPS_PAGE_DIR).glob("*.ipynb")):
        try:
            cells = json.loads(path.read_text()).get("cells", [])
        except (OSError, ValueError):
            continue
        text = next(
            (
                "".join(c.get("source", ""))
                for c in cells
                if c.get("cell_type") == "markdown"
            ),
            "",
        )
        heading = next(
            (line[2:].strip() for line in text.splitlines() if line.startswith("# ")),
            "",
        )
        titles[path.stem] = heading
    return titles


def _step_cell(stem: str, pages: dict[str, str] | None) -> str:
    """The step's label linked to its page when the page exists, else the stem."""
    if not pages or stem not in pages:
        return stem
    label, _ = step_label(stem, pages[stem])
    target = f"{Path(STEPS_PAGE_DIR).name}/{stem}"
    return f"{{doc}}`{label} <{target}>`"


def about_page(records: dict, pages: dict[str, str] | None = None) -> str:
    """Markdown of "About this run" from a run's ``run.json`` records.

    Args:
        records: the run's records ("" or empty: no run).
        pages: stem -> title of the step pages that exist (:func:`page_titles`);
            their step labels (``02``, ``R1``) link to them. Steps without a page
            are named by their stem.
    """
    if not records:
        return (
            "# About this run\n\nNo run records were found: the step pages were not "
            "produced by `srkit run` in this project. Run `srkit run` to execute the "
            "steps and record their parameters, versions, hardware and timings.\n"
        )
    project = records.get("project")
    facts = build_facts(records)
    lines = ["# About this run", ""]
    if facts["warning"]:
        lines += [f":::{{warning}}\n{facts['warning']}\n:::", ""]
    lines += [
        "This page is generated by `srkit run` from the run's records "
        "(`run.json` in the run folder); every number in the book comes from this "
        "run.",
        "",
    ]
    overrides = " ".join(
        f"`-p {shown_override(o, project)}`" for o in records.get("overrides", [])
    )
    if records.get("data_option"):
        data_option = shown_path(records["data_option"], project)
        overrides = f"`--data {data_option}` " + overrides
    steps = records.get("steps", {})
    timed = [s for s in map(_step_seconds, steps.values()) if s is not None]
    lines += _table(
        ["setting", "value"],
        [
            ("profile", records.get("profile", "")),
            ("overrides", overrides.strip() or "none"),
            ("run folder", f"`{shown_path(records.get('run_dir', ''), project)}`"),
            ("data", facts["data"]),
            ("VGG16 weights", facts["vgg"]),
            ("started", records.get("started", "")),
            ("finished", records.get("finished", "")),
            ("status", records.get("status", "")),
            ("compute time of all steps", format_seconds(sum(timed))),
            ("project commit", records.get("git_commit") or "not a git checkout"),
            ("srkit source hash", records.get("srkit_hash", "")),
        ],
    )
    lines += ["## Steps", ""]
    lines += [
        "The compute time is the wall time of the step's last execution. A `cached` "
        "step was not executed in this invocation: its source, parameters, srkit "
        "source and data were unchanged, so its page and artifacts were kept, and "
        "its compute time is that of the execution that made them.",
        "",
    ]
    rows = []
    for stem, record in steps.items():
        seconds = _step_seconds(record)
        _, rest = step_label(stem, (pages or {}).get(stem, ""))
        rows.append(
            (
                _step_cell(stem, pages),
                rest[:1].upper() + rest[1:] if rest else stem,
                record.get("status", ""),
                format_seconds(seconds) if seconds is not None else "-",
                record.get("finished") or "-",
            )
        )
    header = ["step", "page", "status", "compute time", "executed until"]
    lines += _table(header, rows)
    lines += _parameter_section(steps, project, pages)
    data = records.get("data", [])
    if data:
        lines += ["## Data", ""]
        columns = ["source", "mode", "n_images", "seed", "n_train", "n_val", "key"]
        rows = [[d.get(c, "") for c in columns] for d in data]
        for row in rows:
            row[0] = shown_path(row[0], project)
        lines += _table(columns, rows)
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
        lines += _table(["component", "value"], rows)
    return "\n".join(lines).rstrip() + "\n"


def shown_override(override: str, project: str | os.PathLike | None) -> str:
    """``name=value`` with a path value shown as :func:`shown_path` shows it."""
    name, sep, value = str(override).partition("=")
    return f"{name}{sep}{shown_path(value, project)}" if sep else str(override)


def _parameter_section(steps: dict, project=None, pages=None) -> list[str]:
    """Parameters shared by every step that declares them, then per-step values."""
    by_name: dict[str, dict[str, Any]] = {}
    for stem, record in steps.items():
        for name, value in (record.get("params") or {}).items():
            by_name.setdefault(name, {})[stem] = (
                shown_path(value, project) if isinstance(value, str) else value
            )
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
        for stem in steps:
            shown = [f"{n}={by_name[n][stem]}" for n in varying if stem in by_name[n]]
            if shown:
                rows.append((_step_cell(stem, pages), ", ".join(shown)))
        lines += _table(["step", "parameters"], rows)
    return lines


# ------------------------------------------------------------------ build


def write_about_page(project: Path, run_dir: Path | None = None) -> Path:
    """Write ``book/about_run.md`` and ``book/this_build.md`` from a run's records.

    The About page ends with the run's training speed
    (:func:`srkit.speed_page.speed_section`).

    Args:
        project: the project folder.
        run_dir: whose records (default: the run of the pages in ``book/steps``).

    Returns:
        The About page's path.
    """
    project = Path(project)
    run_dir = run_dir or latest_run_dir(project)
    records = read_records(run_dir) if run_dir else {}
    path = project / ABOUT_PAGE
    path.parent.mkdir(parents=True, exist_ok=True)
    titles = page_titles(project)
    labels = {stem: step_label(stem, title)[0] for stem, title in titles.items()}
    speed = speed_section(records, run_dir, labels)
    path.write_text(about_page(records, titles) + (f"\n{speed}" if speed else ""))
    (project / BUILD_BOX_PAGE).write_text(this_build_box(records))
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
        BookError: when the build fails (its log is printed and kept in
            ``RUN/book_build.log``, or ``_build/book_build.log`` without a run).
        srkit.layout.RunInUse: a ``srkit run`` of the project is running: its
            step pages are half written and it builds the book itself when it
            ends, so nothing is built (the book is refused, not built stale).
    """
    project = find_project(project)
    run_dir = Path(run_dir) if run_dir else latest_run_dir(project)
    with idle_runs(project, run_dir, doing="building the book"):
        return _build_book(project, run_dir, strict, echo)


def _build_book(project: Path, run_dir: Path | None, strict: bool, echo) -> Path:
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
        raise BookError(
            f"jupyter-book build failed (exit {result.returncode}); log: {log_path}"
        )
    echo(f"book: built in {format_seconds(time.perf_counter() - start)}: {index}")
    return index


def clean(project: str | os.PathLike | None = None, everything: bool = False):
    """Remove generated outputs: ``book/steps/``, the generated pages, ``_build/``.

    Args:
        project: project folder (default: found from the current directory).
        everything: also remove ``runs/`` (models, data caches, records).

    Returns:
        The removed paths.

    Raises:
        srkit.layout.RunInUse: a ``srkit run`` of the project is running (it
            writes ``book/steps/`` and its run folder); nothing is removed.
    """
    project = find_project(project)
    with idle_runs(project, doing="srkit clean"):
        return _remove_outputs(project, everything)


def _remove_outputs(project: Path, everything: bool) -> list[Path]:
    targets = [
        project / STEPS_PAGE_DIR,
        project / ABOUT_PAGE,
        project / BUILD_BOX_PAGE,
        project / "_build",
    ]
    if everything:
        targets.append(project / RUNS_DIR)
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
