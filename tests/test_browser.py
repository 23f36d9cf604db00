"""The browser checker catches each defect a reader would see, on purpose-made pages.

Each page of a tiny site carries one defect (a missing image, a script error, a
wide block, a hidden table column, raw math, no banner, a dead next link, an alt
text that is a path, a downsampled figure, a slider loaded from a CDN, a step page
that opens without a figure); the checker must name it, and must find nothing on the
good pages. Skipped where Debian's chromium is not installed (``.ci/run`` installs
it). The rules alone are tested without a browser in ``test_browser_rules.py``.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import browser_check
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(
    browser_check.find_chromium() is None, reason="chromium is not installed"
)

# a 1x1 PNG
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
BANNER = '<div class="bd-header-announcement">Smoke build: the numbers are noise</div>'
PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body {{ margin: 0 }} main {{ max-width: 700px; margin: 0 auto }}
img {{ max-width: 100% }}</style>
</head><body>{banner}
<main class="bd-article"><h1>A page</h1>{body}</main>
<div class="prev-next-area">{links}</div>
</body></html>
"""
BROKEN = {
    "image.html": ('<img src="missing.png" alt="gone">', "image"),
    "console.html": ('<script>throw new Error("boom")</script>', "console"),
    "redeclared.html": (
        "<script>const A = 1;</script><script>const A = 2;</script>",
        "console",
    ),
    "overflow.html": ('<div style="width: 2000px">a very wide block</div>', "overflow"),
    # fits the desktop column, not a phone: the phone's window grows to it
    "phone_overflow.html": (
        '<div style="display: flex; justify-content: center"><div><span style='
        '"display: block; white-space: nowrap">' + "build facts " * 6 + "</span>"
        "</div></div>",
        "overflow",
    ),
    "hidden.html": (
        '<div style="overflow-x: auto"><table style="width: 1200px">'
        "<tr><td>model</td><td>SSIM</td></tr></table></div>",
        "overflow",
    ),
    "math.html": (r"<p>a formula left raw: \(x^2\) and $$y$$</p>", "math"),
    "nobanner.html": ("<p>no announcement bar</p>", "banner"),
    "badlink.html": ("<p>a dead next link</p>", "link"),
    "alt.html": ('<img src="/pixel.png" alt="../_images/pixel.png">', "alt"),
    "narrow.html": ('<img src="/wide.png" alt="a wide chart" width="300">', "size"),
    # the browser is offline: a slider whose script comes from a CDN stays undefined
    "slider.html": (
        '<script type="module" src="https://cdn.jsdelivr.net/npm/'
        'img-comparison-slider@8/dist/index.js"></script>' + "{slider}",
        "slider",
    ),
    "book/steps/02_late.html": (
        '<div style="height: 1200px">a long question</div>'
        '<img src="/wide.png" alt="the answer, too far down">',
        "first-screen",
    ),
}
# a stand-in for the vendored component: defined by a script of the page itself
SLIDER = (
    '<img-comparison-slider><img slot="first" src="/wide.png" alt="bicubic">'
    '<img slot="second" src="/wide.png" alt="model"></img-comparison-slider>'
)
DEFINE_SLIDER = (
    "<script>customElements.define('img-comparison-slider', class extends "
    "HTMLElement { constructor() { super(); this.attachShadow({mode: 'open'})"
    ".innerHTML = '<slot name=first></slot>'; } });</script>"
)
#: the component the book vendors, served by the site as the book serves it
VENDORED = (
    Path(__file__).resolve().parents[1] / "book" / "_static" / "img-comparison-slider"
)
GOOD = {
    "good.html": '<p>Text and an image.</p><img src="/pixel.png" alt="pixel">',
    "book/steps/03_good.html": (
        '<img src="/wide.png" alt="the answer first"><p>The question.</p>'
        + DEFINE_SLIDER
        + SLIDER
    ),
}
if (VENDORED / "index.js").is_file():
    GOOD["vendored_slider.html"] = (
        '<script defer src="/vendored/index.js"></script>' + SLIDER
    )


def write_site(root: Path) -> Path:
    root.mkdir(parents=True)
    if (VENDORED / "index.js").is_file():
        shutil.copytree(VENDORED, root / "vendored")
    (root / "pixel.png").write_bytes(PIXEL)
    # 600 px: shown at its own size in the 700 px column, unless squeezed
    Image.fromarray(np.full((40, 600, 3), 128, np.uint8)).save(root / "wide.png")
    link = '<a class="right-next" href="/{}">next</a>'
    for name, body in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(
            PAGE.format(banner=BANNER, body=body, links=link.format("image.html"))
        )
    for name, (body, kind) in BROKEN.items():
        target = "nowhere.html" if kind == "link" else "good.html"
        banner = "" if kind == "banner" else BANNER
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(
            PAGE.format(
                banner=banner,
                body=body.replace("{slider}", SLIDER),
                links=link.format(target),
            )
        )
    return root


def test_each_defect_is_caught_and_the_good_page_passes(tmp_path):
    site = write_site(tmp_path / "site")
    shots = tmp_path / "shots"
    pages = [*GOOD, *BROKEN]
    defects = browser_check.check_site(
        site, banner="Smoke build", shots=shots, pages=pages
    )
    found = {}
    for defect in defects:
        found.setdefault(defect.page, set()).add(defect.kind)
    for name in GOOD:
        assert name not in found, [str(d) for d in defects if d.page == name]
    for name, (_, kind) in BROKEN.items():
        assert kind in found.get(name, set()), f"{name}: {kind} not caught"
    details = {d.page: d.detail for d in defects}
    assert "boom" in details["console.html"]
    assert "already been declared" in details["redeclared.html"]
    hidden = [d for d in defects if d.page == "hidden.html"]
    assert {d.width for d in hidden} == {"desktop"}  # a phone may scroll a table
    slider = [d.detail for d in defects if d.page == "slider.html"]
    assert "slider 1: img-comparison-slider is not defined (no script)" in slider
    phone = {(d.width, d.detail) for d in defects if d.page == "phone_overflow.html"}
    assert {width for width, _ in phone} == {"phone"}, phone
    assert any("px window" in detail and "390" in detail for _, detail in phone)
    late = [(d.page, d.width) for d in defects if d.kind == "first-screen"]
    assert late == [
        ("book/steps/02_late.html", "desktop"),
        ("book/steps/02_late.html", "phone"),
    ]
    assert len(list(shots.glob("*.png"))) == 2 * len(pages)


def test_site_pages_skip_the_generated_indexes(tmp_path):
    for name in ("index.html", "genindex.html", "search.html", "_static/x.html"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.html").write_text("x")
    assert browser_check.site_pages(tmp_path) == ["book/intro.html", "index.html"]


def test_redirect_pages_are_followed_not_opened(tmp_path):
    refresh = '<meta http-equiv="Refresh" content="0; url={}" />'
    (tmp_path / "index.html").write_text(refresh.format("book/intro.html"))
    (tmp_path / "old.html").write_text(refresh.format("gone.html"))
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.html").write_text("x")
    assert browser_check.site_pages(tmp_path) == ["book/intro.html"]
    defects = browser_check.redirect_defects(tmp_path)
    assert [(d.page, d.kind) for d in defects] == [("old.html", "link")]


ZOOM_JS = VENDORED.parent / "zoom.js"
CLICK = """(async () => {
  const wait = () => new Promise((done) => setTimeout(done, 50));
  const shown = () => {
    const big = document.querySelector(".srkit-zoom img");
    return big ? Math.round(big.getBoundingClientRect().width) : 0;
  };
  const steps = {};
  document.querySelector(".cell_output img").click();
  await wait();
  steps.figure = shown();
  document.dispatchEvent(new KeyboardEvent("keydown", {key: "Escape"}));
  await wait();
  steps.afterEscape = shown();
  document.querySelector("img-comparison-slider img").click();
  await wait();
  steps.slider = shown();
  return steps;
})()"""


@pytest.mark.skipif(not ZOOM_JS.is_file(), reason="book/_static/zoom.js missing")
def test_a_click_magnifies_a_figure_offline_and_escape_closes_it(tmp_path):
    site = write_site(tmp_path / "site")
    shutil.copy(ZOOM_JS, site / "zoom.js")
    body = (
        '<script defer src="/zoom.js"></script>'
        '<div class="cell_output"><img src="/wide.png" alt="a figure"></div>'
        + DEFINE_SLIDER
        + SLIDER
    )
    (site / "zoom.html").write_text(PAGE.format(banner=BANNER, body=body, links=""))
    browser = browser_check.Browser(browser_check.find_chromium())
    try:
        with browser_check.Server(site) as server:
            browser.open(server.url + "zoom.html", 1400, 900)
            result = browser.send(
                "Runtime.evaluate",
                expression=CLICK,
                awaitPromise=True,
                returnByValue=True,
            )
            errors = browser.console_errors()
    finally:
        browser.close()
    steps = result["result"]["value"]
    # wide.png is 600 px: the overlay shows it at 1200 px, square pixels
    assert steps == {"figure": 1200, "afterEscape": 0, "slider": 0}
    assert errors == []
