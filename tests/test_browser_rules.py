"""The browser check's rules, on page descriptions instead of pages (no Chromium).

Each rule of ``browser_check`` is a pure function over what its page script
collects; here each one fails on a description of a page that breaks it and passes
on one that keeps it. ``test_browser.py`` runs the same rules in Chromium.
"""

from __future__ import annotations

import browser_check
from browser_check import (
    alt_defects,
    first_screen_defects,
    page_defects,
    size_defects,
    slider_defects,
)

STEP = "book/steps/02_initial_model.html"
HEIGHT = 900  # the desktop window, WIDTHS["desktop"]


def picture(**fields) -> dict:
    """A figure shown at its own size near the top of the page, with a real alt."""
    return {
        "src": "../../_images/abc.png",
        "alt": "Bicubic and model output of one crop, magnified 4x",
        "decorative": False,
        "naturalWidth": 752,
        "width": 752,
        "height": 300,
        "top": 200,
        **fields,
    }


def slider(**fields) -> dict:
    images = [
        {"src": "../../_images/bicubic.png", "loaded": True},
        {"src": "../../_images/model.png", "loaded": True},
    ]
    return {"defined": True, "width": 752, "images": images, **fields}


def measured(**fields) -> dict:
    """What MEASURE returns for a page without defects."""
    return {
        "images": [],
        "sticking": [],
        "hidden": [],
        "raw": [],
        "pageWidth": 1400,
        "viewport": 1400,
        "viewportHeight": HEIGHT,
        "banner": "Smoke build",
        "links": [],
        "pictures": [picture()],
        "sliders": [slider()],
        **fields,
    }


def test_alt_text_that_is_a_path_or_missing_fails():
    assert alt_defects([picture()]) == []
    sphinx_default = "../../_images/eba97e36453204ffce7420b8dd62d04bb03568bf.png"
    for alt in (sphinx_default, "_images/x.gif", "figure.png", "C:\\out\\x.jpg"):
        assert alt_defects([picture(alt=alt)]) == [f"alt text is a file path: {alt}"]
    for alt in ("", "   ", None):
        assert alt_defects([picture(alt=alt)]) == ["no alt text: abc.png"]
    # a decorative picture may have an empty alt; a sentence with a slash is fine
    assert alt_defects([picture(alt="", decorative=True)]) == []
    assert alt_defects([picture(alt="PSNR / SSIM of the x4 model by step")]) == []


def test_a_picture_shown_narrower_than_its_pixels_fails():
    assert size_defects([picture()]) == []
    assert size_defects([picture(naturalWidth=288, width=400)]) == []  # enlarged
    assert size_defects([picture(width=751.5)]) == []  # rounding
    (defect,) = size_defects([picture(naturalWidth=1200, width=752)])
    assert (
        defect == "abc.png shown 752 px wide, its image is 1200 px (downsampled 1.6x)"
    )
    # hidden (closed toggle) or not loaded: not a size defect
    assert size_defects([picture(width=0), picture(naturalWidth=0, width=10)]) == []


def test_a_slider_that_does_not_load_fails():
    assert slider_defects([slider()]) == []
    assert slider_defects([]) == []
    assert slider_defects([slider(defined=False)]) == [
        "slider 1: img-comparison-slider is not defined (no script)"
    ]
    missing = slider(images=[{"src": "a.png", "loaded": True}, {"src": "b.png"}])
    assert slider_defects([slider(), missing]) == ["slider 2: image not loaded: b.png"]
    assert slider_defects([slider(images=[])]) == [
        "slider 1: 0 image(s), a comparison needs 2"
    ]
    assert slider_defects([slider(width=0)]) == ["slider 1: shown 0 px wide"]


def test_a_step_page_without_a_figure_in_its_first_screen_fails():
    assert first_screen_defects(STEP, [picture()], HEIGHT) == []
    late = [picture(top=3600), picture(top=850, height=300)]  # 50 px of it shows
    assert first_screen_defects(STEP, late, HEIGHT) == [
        "no figure in the first 900 px (the first starts at 850 px)"
    ]
    assert first_screen_defects(STEP, [], HEIGHT) == [
        "no figure in the first 900 px (none)"
    ]
    # a small picture counts when all of it shows; hidden or decorative ones do not
    assert first_screen_defects(STEP, [picture(top=840, height=60)], HEIGHT) == []
    for ignored in (picture(width=0), picture(decorative=True)):
        assert first_screen_defects(STEP, [ignored], HEIGHT) != []


def test_first_screen_rule_covers_steps_02_to_11_and_the_summary():
    pages = {
        "book/steps/01_data_and_metrics.html": False,
        "book/steps/02_initial_model.html": True,
        "book/steps/07_depth_to_space.html": True,
        "book/steps/11_result_psnr_over_ssim.html": True,
        "book/steps/12_benchmarks.html": False,
        "book/steps/13_summary.html": True,
        "book/intro.html": False,
    }
    for page, checked in pages.items():
        assert bool(first_screen_defects(page, [], HEIGHT)) is checked, page


def test_page_defects_apply_every_rule_at_its_width():
    assert page_defects(STEP, "desktop", measured(), banner="Smoke build") == []
    assert page_defects(STEP, "phone", measured(), banner="Smoke build") == []
    bad = measured(
        pictures=[picture(alt="../../_images/abc.png", naturalWidth=1600, top=4000)],
        sliders=[slider(defined=False)],
    )
    kinds = {d.kind for d in page_defects(STEP, "desktop", bad)}
    assert kinds == {"alt", "size", "slider", "first-screen"}
    # a phone shrinks a wide figure to its column, but must show a figure too
    kinds = {d.kind for d in page_defects(STEP, "phone", bad)}
    assert kinds == {"alt", "slider", "first-screen"}
    (defect,) = page_defects(STEP, "desktop", measured(sliders=[slider(width=0)]))
    assert str(defect) == f"{STEP} [desktop] slider: slider 1: shown 0 px wide"


def test_the_existing_rules_are_kept():
    found = measured(
        images=["gone.png"],
        pageWidth=1500,
        sticking=["div. 2000 px"],
        hidden=["table 1200 px in 700 px"],
        raw=['"a $x$ left"'],
        banner=None,
    )
    kinds = [d.kind for d in page_defects("book/intro.html", "desktop", found, "Smoke")]
    assert sorted(kinds) == sorted(
        ["image", "overflow", "overflow", "overflow", "math", "banner"]
    )
    assert "EXCLUDE 127.0.0.1" in " ".join(browser_check.CHROMIUM_FLAGS)


def test_a_site_heavier_than_its_limit_fails(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "big.js").write_bytes(b"x" * 1_500_000)
    (tmp_path / "index.html").write_bytes(b"x" * 500_000)
    total = browser_check.site_bytes(tmp_path)
    assert total == 2_000_000
    assert browser_check.weight_defects(total, None) == []
    assert browser_check.weight_defects(total, 2) == []
    (defect,) = browser_check.weight_defects(total, 1.5)
    assert defect.kind == "weight"
    assert defect.detail == "the site weighs 2.0 MB, more than 1.5 MB"
