"""No page says something about the original study that its text does not support.

The study's report (``../shared/reference/original-report.txt``, outside the
repository) names no image collection. Our full profile's PASCAL VOC 2007 is our
choice, so a sentence that ties a named collection to the study is wrong. The check
scans the step sources, the hand-written book pages and the sentences the page
helpers generate, clause by clause; a clause may name both when it says that the
study names none ("names no", "does not name", "our choice", ...).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from srkit import benchmark_page, records, report, summary_page

PROJECT = Path(__file__).resolve().parents[1]
REFERENCE = PROJECT.parent / "shared" / "reference" / "original-report.txt"

#: Image collections a page might wrongly attribute to the study (benchmark sets such
#: as Set5 are left out: pages name them beside the study's numbers, truthfully).
COLLECTIONS = (
    "VOC",
    "PASCAL",
    "ImageNet",
    "DIV2K",
    "BSDS",
    "BSD300",
    "Berkeley",
    "COCO",
    "Flickr",
    "T91",
)
STUDY = re.compile(r"\bstudy\b|\bstudy's\b|original report|\bthe report\b", re.I)
NAMED = re.compile("|".join(rf"\b{name}" for name in COLLECTIONS), re.I)
#: Words by which a clause says the collection is ours, not the study's.
DISCLAIMERS = re.compile(
    r"names no|does not name|not name|no image collection|our choice|"
    r"not the study's|unnamed",
    re.I,
)
#: The study is a student assignment with no place of publication.
PUBLISHED = re.compile(r"published (student )?study|study,? published", re.I)


def clauses(text: str) -> list[str]:
    """Split prose into clauses: at sentence ends, semicolons, cells and bullets."""
    text = re.sub(r"^[ \t]*#+[ \t]?", "", text, flags=re.M)  # comments, headings
    text = re.sub(r"[ \t]+\n", "\n", text)
    parts = re.split(r"(?<=[.!?;])\s+|\n\s*\n|\n\s*[-*] |\||·", text)
    return [" ".join(part.split()) for part in parts if part.strip()]


def unsupported(text: str) -> list[str]:
    """The clauses of ``text`` that say something about the study it never says."""
    bad = []
    for clause in clauses(text):
        names_data = STUDY.search(clause) and NAMED.search(clause)
        if names_data and not DISCLAIMERS.search(clause):
            bad.append(clause)
        elif PUBLISHED.search(clause):
            bad.append(clause)
    return bad


# --------------------------------------------------------------- the checker


def test_the_checker_catches_a_bad_sentence():
    bad = (
        "The original report gives 21.48 dB for this model, measured on whole "
        "PASCAL VOC 2007 photos resized to 288 px. The rest is fine."
    )
    assert unsupported(bad) == [
        "The original report gives 21.48 dB for this model, measured on whole "
        "PASCAL VOC 2007 photos resized to 288 px."
    ]
    assert unsupported("# The study trained on\n# ImageNet photographs.\n")
    assert unsupported("We retrace a published student study step by step.")
    assert unsupported("| `full` | the original study | VOC 2007 |") == []  # cells


def test_the_checker_lets_true_sentences_pass():
    good = (
        "The study's text names no image collection; VOC 2007 is our choice. "
        "The `voc2007` source downloads PASCAL VOC 2007. The study resized its "
        "images to 288 px; the default for VOC 2007 is `resize`."
    )
    assert unsupported(good) == []


def test_no_listed_collection_is_named_by_the_study():
    if not REFERENCE.is_file():
        pytest.skip(f"the study's text is not here ({REFERENCE})")
    text = REFERENCE.read_text(errors="replace")
    assert not NAMED.search(text), NAMED.search(text).group(0)


# ------------------------------------------------------------------ the pages


SOURCES = [
    *sorted((PROJECT / "notebooks").glob("[0-9][0-9]_*.py")),
    *sorted((PROJECT / "book").glob("*.md")),
    PROJECT / "README.md",
    *sorted((PROJECT / "srkit" / "profiles").glob("*.yaml")),
]


def _prose(path) -> str:
    """A file's prose: a profile's comments (its YAML keys are no sentences)."""
    text = path.read_text()
    if path.suffix != ".yaml":
        return text
    return "\n".join(line.partition("#")[2] for line in text.splitlines())


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_step_sources_and_book_pages(path):
    assert unsupported(_prose(path)) == [], path.name


def evaluation(name: str, psnr: float, bicubic_psnr: float):
    rows = []
    for scale, shift in ((2, 0.0), (4, -2.0)):
        for model, value in ((name, psnr), ("bicubic", bicubic_psnr)):
            rows.append(
                dict(
                    model=model,
                    scale=scale,
                    mse=0.01,
                    mae=0.05,
                    psnr=value + shift,
                    ssim=0.7,
                )
            )
    return SimpleNamespace(model_name=name, table=pd.DataFrame(rows))


def fit(model: str, skip: str):
    return SimpleNamespace(
        steps=2,
        train_images_per_s=0.3,
        settings={"model": model, "batch_size": 2, "skip": skip},
    )


def run_tables():
    original = records.load_original_results()
    ours = original[["model", "scale", "mse", "mae", "psnr", "ssim"]].copy()
    ours["psnr"] += 4.0
    bicubic = ours.drop_duplicates("scale").assign(model="bicubic", psnr=25.0)
    ours = pd.concat([ours, bicubic], ignore_index=True)
    per_step = ours.assign(step="x")
    return ours, per_step, original


def generated_texts():
    texts = []
    for model in ("simple_model_nearest", "dts_model"):
        for skip in ("none", "bicubic"):
            for psnr in (20.0, 30.0):
                texts.append(
                    report.takeaways(
                        evaluation(model, psnr, 25.0), results=fit(model, skip)
                    ).data
                )
    ours, per_step, original = run_tables()
    empty = pd.DataFrame(columns=["set", "scale", "model", "psnr_margin"])
    ranking = summary_page.model_ranking(per_step, empty, original)
    for profile in ("smoke", "quick"):
        texts.append(summary_page.headline(empty, ours, profile).data)
        texts.append(summary_page.study_verdict(empty, ours, original, profile).data)
        texts.append(summary_page.study_orderings(ranking, original, profile).data)
    for with_study in (True, False):
        texts.append(summary_page.ranking_sentences(ranking, None, with_study).data)
        texts.append(summary_page.ranking_tables(ranking, None, with_study).data)
    texts.append(summary_page.conclusions(ours, original).data)
    texts.append(summary_page.study_tables(original).data)
    texts.append(summary_page.NOT_COMPARABLE)
    texts.append(benchmark_page.benchmark_status("", None, {}, [], "smoke").data)
    texts.append(benchmark_page.benchmark_tables(pd.DataFrame()).data)
    texts += list(report.SKIP_WORDS.values())
    return texts


def test_generated_sentences():
    for text in generated_texts():
        assert unsupported(text) == [], text[:200]
