"""srkit.report, srkit.benchmark_page and srkit.summary_page: the page helpers."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from srkit import (
    benchmark_page,
    data,
    environment,
    evaluate,
    images,
    records,
    report,
    summary_page,
    windows,
)


def fake_evaluation(name: str, psnr: float, bicubic_psnr: float = 25.0):
    rows = []
    for scale, shift in ((2, 0.0), (4, -2.0)):
        rows.append(
            dict(
                model=name, scale=scale, mse=0.01, mae=0.05, psnr=psnr + shift, ssim=0.7
            )
        )
        rows.append(
            dict(
                model="bicubic",
                scale=scale,
                mse=0.005,
                mae=0.04,
                psnr=bicubic_psnr + shift,
                ssim=0.8,
            )
        )
    return SimpleNamespace(model_name=name, table=pd.DataFrame(rows))


def tiny_split():
    subset = windows.Subset(
        x=np.zeros((2, 72, 72, 3), np.float32),
        y2=np.zeros((2, 144, 144, 3), np.float32),
        y4=np.zeros((2, 288, 288, 3), np.float32),
        names=["a_000", "a_001"],
    )
    return data.Split(
        train=subset, val=subset, info={"source": "sample", "mode": "crop"}
    )


def test_run_folder_is_absolute_and_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = report.run_folder("relative/run").root
    assert folder.is_absolute() and folder.is_dir()
    assert folder == (tmp_path / "relative" / "run").resolve()
    default = report.run_folder("")
    assert default.root == tmp_path / "runs" / "notebook"
    assert default.model("x") == tmp_path / "runs" / "notebook" / "models" / "x"


def test_project_root_is_found_from_a_subfolder(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\n")
    (tmp_path / "notebooks" / "deep").mkdir(parents=True)
    assert report.project_root(tmp_path / "notebooks" / "deep") == tmp_path
    assert report.project_root(tmp_path.parent) is None


def test_banner_states_profile_data_and_hardware():
    text = report.banner("smoke", tiny_split(), steps=4, batch_size=8).data
    assert "**smoke**" in text and "`sample`" in text
    assert "2 training and 2 validation images" in text
    assert "4 optimizer steps" in text and "batch 8" in text
    assert environment.backend_name() in text
    assert "not results" in text  # the smoke warning
    quick = report.banner("quick", tiny_split()).data
    assert "not results" not in quick and ":class: note" in quick


def test_banner_is_one_paragraph_in_small_type():
    # compact: the page's answer follows it in the first screen
    for profile in ("smoke", "quick"):
        lines = report.banner(profile, tiny_split(), steps=4, batch_size=8).data
        lines = lines.split("\n")
        assert lines[1].endswith(" srkit-run"), lines[1]
        body = lines[3:-1]
        assert len(body) == 1 and lines[-1] == ":::", lines  # one paragraph
    smoke = report.banner("smoke", tiny_split(), steps=4).data
    assert smoke.startswith(":::{admonition} Smoke run: these numbers are noise")
    assert "handful of optimizer steps" in smoke and "profile **smoke**" in smoke


def test_check_params_accepts_the_spec_and_rejects_a_mismatch():
    from srkit import models

    model = models.build("simple_model_nearest")
    assert "38,915 parameters" in report.check_params(model)
    original = models.MODEL_INFO["simple_model_nearest"]["params"]
    models.MODEL_INFO["simple_model_nearest"]["params"] = original + 1
    try:
        with pytest.raises(ValueError, match="38,916"):
            report.check_params(model)
    finally:
        models.MODEL_INFO["simple_model_nearest"]["params"] = original


def test_results_table_has_ours_bicubic_and_original_rows():
    table = report.results_table(fake_evaluation("dts_model", 22.0))
    sources = table.reset_index()
    assert set(sources["source"]) == {"this run", "bicubic", "original report"}
    original = sources[sources["source"] == "original report"]
    reference = records.load_original_results()
    expected = reference[reference["model"] == "dts_model"].sort_values("scale")
    assert np.allclose(original["psnr"], expected["psnr"].round(2))
    assert list(original["output"]) == ["x2 (144 px)", "x4 (288 px)"]


def test_takeaways_say_above_or_below_bicubic_with_the_numbers():
    above = report.takeaways(fake_evaluation("dts_model", 27.0, 25.0)).data
    assert "2.00 dB above bicubic" in above and "27.00 dB" in above
    assert "At 144x144, `dts_model`" in above and "At 288x288, `dts_model`" in above
    below = report.takeaways(fake_evaluation("dts_model", 20.0, 25.0)).data
    assert "5.00 dB below bicubic" in below
    assert "original report gives 21.55 dB" in below  # dts_model at 144
    assert "not comparable" in below and "differs by" not in below


class FakeFit:
    """The attributes of srkit.train.FitResult that takeaways reads."""

    steps = 300
    train_images_per_s = 8.0
    settings = {"model": "dts_model", "batch_size": 16}


def test_takeaways_state_the_budget_of_a_model_below_bicubic():
    below = report.takeaways(
        fake_evaluation("dts_model", 20.0, 25.0), results=FakeFit()
    ).data
    # 300 steps x 16 windows at 8 windows/s: 10 minutes; ten times: 100 minutes
    assert "300 optimizer steps of 16 windows" in below
    assert "(10 min of training" in below and "about 100 min" in below
    assert "-p steps=3000" in below
    assert "this run does not show" in below and "needs a longer budget" not in below
    above = report.takeaways(
        fake_evaluation("dts_model", 27.0, 25.0), results={"dts_model": FakeFit()}
    ).data
    assert "optimizer steps" not in above


def test_the_nearest_variant_without_skip_gets_no_budget_advice():
    class Nearest(FakeFit):
        settings = {"model": "simple_model_nearest", "batch_size": 16}

    class NearestWithSkip(FakeFit):
        settings = {**Nearest.settings, "skip": "bicubic"}

    evaluation = fake_evaluation("simple_model_nearest", 20.0, 25.0)
    without = report.takeaways(evaluation, results=Nearest()).data
    assert "no training budget" in without and "-p steps=" not in without
    with_skip = report.takeaways(evaluation, results=NearestWithSkip()).data
    assert "no training budget" not in with_skip and "-p steps=3000" in with_skip
    assert "started as bicubic interpolation itself, so it can pass" in with_skip


def test_a_short_budget_is_stated_in_seconds():
    class Short(FakeFit):
        steps = 2
        train_images_per_s = 0.3
        settings = {"model": "dts_model", "batch_size": 2, "skip": "bicubic"}

    evaluation = fake_evaluation("dts_model", 20.0, 25.0)
    text = report.takeaways(evaluation, results=Short()).data
    # 2 steps x 2 windows at 0.3 windows/s: 13 s; ten times: 133 s
    assert "(13 s of training" in text and "about 2 min 13 s there" in text
    assert "0 min" not in text and "0.0 min" not in text


def test_duration_uses_seconds_below_a_minute():
    assert report.duration(0.04) == "0.0 s"
    assert report.duration(7.25) == "7.2 s"
    assert report.duration(13.3) == "13 s"
    assert report.duration(59.4) == "59 s"
    assert report.duration(59.6) == "1 min 00 s"
    assert report.duration(133.3) == "2 min 13 s"
    assert report.duration(600) == "10 min"
    assert report.duration(6000) == "100 min"
    assert report.duration(9000) == "2.5 h"
    with pytest.raises(ValueError, match="-1"):
        report.duration(-1)


def run_table():
    return pd.DataFrame(
        [
            dict(model="dts_model", scale=4, mse=0.01, mae=0.05, psnr=22.0, ssim=0.6),
            dict(
                model="residual_block_model",
                scale=4,
                mse=0.02,
                mae=0.06,
                psnr=23.0,
                ssim=0.5,
            ),
            dict(model="bicubic", scale=4, mse=0.005, mae=0.04, psnr=30.0, ssim=0.9),
        ]
    )


def test_best_model_ignores_bicubic_and_respects_direction():
    table = run_table()
    assert report.best_model(table, 4, "psnr") == "residual_block_model"
    assert report.best_model(table, 4, "mse") == "dts_model"
    with pytest.raises(ValueError, match="scale 2"):
        report.best_model(table, 2)
    with pytest.raises(ValueError, match="unknown metric"):
        report.best_model(table, 4, "lpips")


def test_conclusions_count_models_beating_bicubic():
    text = summary_page.conclusions(run_table()).data
    assert "0 of 2 models beat bicubic interpolation (30.00 dB)" in text
    assert text.startswith("- At 288x288, the highest PSNR is 23.00 dB")
    assert "(`dts_dilated_conv_ext_block_ssim_psnr_model` at 288x288)" in text
    assert "`residual_block_model`" in text and "23.00 dB" in text


def test_training_gifs_prefers_the_x4_gif(tmp_path):
    for name, outputs in (
        ("dts_model", ("low_upsample", "high_upsample")),
        ("simple_model_nearest", ("low_upsample",)),
    ):
        folder = tmp_path / "models" / name
        folder.mkdir(parents=True)
        for output in outputs:
            (folder / f"gif_{output}.gif").write_bytes(b"GIF89a")
    gifs = report.training_gifs(tmp_path)
    assert [(g.model, Path(g.path).name) for g in gifs] == [
        ("simple_model_nearest", "gif_low_upsample.gif"),
        ("dts_model", "gif_high_upsample.gif"),
    ]


def test_markdown_table_escapes_pipes_and_newlines():
    frame = pd.DataFrame({"name": ["a|b"], "formula": ["$x\n+ y$"]})
    text = report.markdown_table(frame).data
    assert text.splitlines() == [
        "| name | formula |",
        "|---|---|",
        "| a\\|b | $x + y$ |",
    ]


def test_summary_table_sorts_by_scale_and_keeps_model_order():
    comparison = records.comparison_table(
        pd.concat([run_table(), run_table().assign(scale=2)])
    )
    table = summary_page.summary_table(comparison, ("psnr",))
    assert list(table.columns) == [
        "PSNR this run",
        "PSNR original report (its own images)",
        "PSNR bicubic",
    ]
    scales = [scale for scale, _ in table.index]
    assert scales == sorted(scales)
    ours = table[table["PSNR this run"].notna()]
    assert list(ours.index) == [
        (2, "dts_model"),
        (2, "residual_block_model"),
        (4, "dts_model"),
        (4, "residual_block_model"),
    ]


def test_metric_agreement_is_tight_on_real_images(tmp_path):
    split = data.prepare(
        "sample", n_images=6, seed=0, cache_dir=tmp_path, progress=False
    )
    frame = report.metric_agreement(
        split.val.y2, images.bicubic_upscale(split.val.x, 2)
    )
    assert set(frame["reference"]) >= {"scikit-image"}
    assert (frame["max abs difference"] < 1e-4).all(), frame


# ------------------------------------------------------------------ benchmarks


def benchmark_summary_table() -> pd.DataFrame:
    """A benchmark_summary-shaped table: two sets, two scales, three models."""
    rows = []
    psnr = {
        ("Set5", 2): {"bicubic": 33.0, "dts_model": 34.0, "simple_model_nearest": 32.5},
        ("Set5", 4): {"bicubic": 28.0, "dts_model": 28.5},
        ("Set14", 2): {
            "bicubic": 30.0,
            "dts_model": 29.5,
            "simple_model_nearest": 29.0,
        },
        ("Set14", 4): {"bicubic": 26.0, "dts_model": 26.2},
    }
    for (set_name, scale), values in psnr.items():
        for model, value in values.items():
            rows.append(
                dict(
                    set=set_name,
                    scale=scale,
                    model=model,
                    n_images=5 if set_name == "Set5" else 14,
                    psnr=value,
                    ssim=0.8 + (value - values["bicubic"]) / 100,
                    psnr_margin=value - values["bicubic"],
                    ssim_margin=(value - values["bicubic"]) / 100,
                )
            )
    return pd.DataFrame(rows, columns=evaluate.BENCHMARK_COLUMNS)


def test_model_label_names_the_step():
    assert benchmark_page.model_label("dts_model") == "dts_model (step 07)"
    assert benchmark_page.model_label("dts_dilated_conv_block_model") == (
        "dts_dilated_conv_block_model (R1)"
    )
    assert benchmark_page.model_label("bicubic") == "bicubic"


def test_trained_models_in_zoo_order(tmp_path):
    for name in ("dts_model", "simple_model_nearest", "not_a_zoo_model"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "best.keras").write_bytes(b"")
    (tmp_path / "models" / "residual_block_model").mkdir()  # no best.keras
    found = benchmark_page.trained_models(tmp_path)
    assert list(found) == ["simple_model_nearest", "dts_model"]
    assert found["dts_model"] == tmp_path / "models" / "dts_model" / "best.keras"


def test_benchmark_folder_is_relative_to_the_project(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text("format: jb-book\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "sets").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where the pipeline runs a page
    assert benchmark_page.benchmark_folder("folder:sets") == tmp_path / "sets"
    assert benchmark_page.benchmark_folder("") is None
    with pytest.raises(ValueError, match="does not exist"):
        benchmark_page.benchmark_folder("folder:nowhere")


def test_benchmark_status_says_why_nothing_is_scored(tmp_path):
    empty = benchmark_page.benchmark_status("", None, {}, [], "smoke").data
    assert "No benchmark sets" in empty and "`benchmarks` parameter is empty" in empty
    assert "quoted from the papers alone" in empty
    assert "`srkit run --profile smoke -p benchmarks=folder:PATH`" in empty
    assert "`Set5/`, `Set14/`" in empty
    bare = benchmark_page.benchmark_status("folder:x", tmp_path, {}, ["dts_model"]).data
    assert "No benchmark sets" in bare and "no subfolder holding images" in bare
    (tmp_path / "Set5").mkdir()
    images.write_image(tmp_path / "Set5" / "a.png", np.zeros((8, 8, 3)))
    sets = {"Set5": tmp_path / "Set5"}
    scored = benchmark_page.benchmark_status(
        "folder:x", tmp_path, sets, ["dts_model"]
    ).data
    assert "`dts_model`" in scored and "Set5 (1 images)" in scored
    alone = benchmark_page.benchmark_status("folder:x", tmp_path, sets, []).data
    assert "bicubic and the published rows only" in alone


def test_benchmark_tables_label_measured_and_quoted_rows():
    text = benchmark_page.benchmark_tables(benchmark_summary_table()).data
    assert "**Set5, x2** (mean over 5 images)" in text
    assert "**Set14, x4** (mean over 14 images)" in text
    assert "| dts_model (step 07) | measured here | 34.00 | 0.8100 | +1.00 |" in text
    assert "| simple_model_nearest (step 02) | measured here | 29.00" in text
    quoted = [
        line for line in text.splitlines() if benchmark_page.PUBLISHED_LABEL in line
    ]
    assert any("[SRCNN](https://arxiv.org/abs/1501.00092)" in line for line in quoted)
    # SRCNN Set5 x2: 36.66 dB against the same paper's 33.66 dB bicubic
    assert any("36.66" in line and "+3.00" in line for line in quoted)
    assert "Dong" in text and "Shi" in text  # the sources are listed
    assert "- SRCNN: C. Dong" in text and "Table 3 (Set14)" in text


def test_benchmark_tables_show_the_published_rows_when_nothing_was_scored():
    published = records.load_published_benchmarks()
    for empty in (benchmark_summary_table().iloc[0:0], pd.DataFrame()):
        text = benchmark_page.benchmark_tables(empty, published).data
        assert "| measured here |" not in text
        for set_name, scale in {("Set5", 2), ("Set5", 4), ("Set14", 2), ("Set14", 4)}:
            assert f"**{set_name}, x{scale}** (quoted rows only" in text
        assert "[SRCNN](https://arxiv.org/abs/1501.00092)" in text
        assert "36.66" in text and "+3.00" in text  # SRCNN Set5 x2 over bicubic
        assert "- ESPCN: W. Shi" in text
    none = benchmark_page.benchmark_tables(pd.DataFrame(), published.iloc[0:0]).data
    assert none == "No benchmark results to show."


def test_margin_figure_intro_describes_only_drawn_bars():
    drawn = benchmark_page.margin_figure_intro(benchmark_summary_table()).data
    assert "green bar" in drawn
    for summary in (
        benchmark_summary_table().iloc[0:0],
        benchmark_summary_table().query("model == 'bicubic'"),
    ):
        text = benchmark_page.margin_figure_intro(summary).data
        assert "green" not in text and "no margins to draw" in text


def test_best_benchmark_model():
    table = benchmark_summary_table()
    assert benchmark_page.best_benchmark_model(table, "Set5", 2) == "dts_model"
    with pytest.raises(ValueError, match="Set9"):
        benchmark_page.best_benchmark_model(table, "Set9", 2)


def test_margin_table_has_models_in_zoo_order_and_both_margins():
    table = summary_page.margin_table(benchmark_summary_table())
    assert list(table.index) == ["simple_model_nearest", "dts_model"]
    assert list(table.columns)[:2] == [("Set5 x2", "PSNR (dB)"), ("Set5 x2", "SSIM")]
    assert len(table.columns) == 8
    assert table.loc["dts_model", ("Set14 x2", "PSNR (dB)")] == -0.5
    assert table.loc["dts_model", ("Set5 x2", "SSIM")] == 0.01
    assert np.isnan(table.loc["simple_model_nearest", ("Set5 x4", "PSNR (dB)")])


def test_margin_takeaways_name_the_best_and_the_models_below():
    text = summary_page.margin_takeaways(benchmark_summary_table()).data
    assert "At x2, `dts_model` has the largest PSNR margin over bicubic" in text
    assert "+0.25 dB on average over Set5, Set14" in text
    assert "+1.00 dB (SSIM +0.0100) on Set5" in text
    assert (
        "1 of 2 models stay below bicubic on every set: `simple_model_nearest`" in text
    )
    assert "below bicubic on some sets only: `dts_model`" in text
    assert "At x4, every model beats bicubic on every set." in text
    below = benchmark_summary_table()
    below["psnr_margin"] = -below["psnr_margin"].abs()
    below.loc[below["model"] == "bicubic", "psnr_margin"] = 0.0
    text = summary_page.margin_takeaways(below).data
    assert "comes closest to bicubic in PSNR without beating it" in text
    empty = summary_page.margin_takeaways(benchmark_summary_table().iloc[0:0]).data
    assert "No benchmark results" in empty and "no margin" in empty


def test_benchmark_figure_shows_original_bicubic_and_best(tmp_path):
    import keras
    from matplotlib.figure import Figure

    folder = tmp_path / "Set5"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        images.write_image(folder / f"{name}.png", rng.random((32, 32, 3)))
    inputs = keras.Input((None, None, 3))
    low = keras.layers.UpSampling2D(2, name="low_upsample")(inputs)
    high = keras.layers.UpSampling2D(2, name="high_upsample")(low)
    model = keras.Model(inputs, [low, high], name="dts_model")
    per_image = evaluate.benchmark_all({"dts_model": model}, {"Set5": folder})
    figure = benchmark_page.benchmark_figure(
        {"dts_model": model}, per_image, "Set5", folder
    )
    assert isinstance(figure, Figure)
    titles = [axes.get_title() for axes in figure.axes]
    assert titles[:3] == [
        "original (high resolution)",
        "bicubic",
        "dts_model (step 07)",
    ]
    assert "x4" in figure.get_suptitle()  # the largest scored scale
    with pytest.raises(ValueError, match="no model"):
        benchmark_page.benchmark_figure(
            {}, per_image[per_image.model == "bicubic"], "Set5", folder
        )


def test_conclusions_do_not_compare_with_the_original_data():
    text = summary_page.conclusions(run_table()).data
    assert "differs" not in text
    assert summary_page.ORIGINAL_DATA in text and "not a yardstick" in text


# ---------------------------------------------------------------- summary page


def test_short_and_linked_labels():
    assert summary_page.short_label("simple_model_bilinear") == "02 bilinear"
    assert summary_page.short_label("dts_model") == "07"
    assert summary_page.short_label(summary_page.ORIGINAL_BEST) == "R4"
    assert summary_page.short_label("bicubic") == "bicubic"
    pages = {"dts_model": "07_depth_to_space"}
    assert (
        summary_page.linked_label("dts_model", pages) == "{doc}`07 <07_depth_to_space>`"
    )
    assert summary_page.linked_label("residual_block_model", pages) == "04"


def test_model_pages_come_from_the_registry():
    table = pd.DataFrame(
        {
            "model": [
                "dts_model",
                "bicubic",
                "not_a_zoo_model",
                "dts_dilated_conv_block_model",
            ],
            "step": ["elsewhere", "07_depth_to_space", "x", None],
        }
    )
    assert summary_page.model_pages(table) == {
        "dts_model": "07_depth_to_space",
        "dts_dilated_conv_block_model": "08_result_dilated",
    }


def test_the_original_study_found_r4_best_at_both_scales():
    original = records.load_original_results()
    for scale in (2, 4):
        rows = original[original["scale"] == scale]
        assert rows.sort_values("psnr")["model"].iloc[-1] == summary_page.ORIGINAL_BEST


def summary_inputs():
    ours = run_table().assign(step="07_depth_to_space")
    ours.loc[ours["model"] == "residual_block_model", "step"] = "04_residual_blocks"
    return ours, records.load_original_results()


def test_headline_names_best_per_scale_from_the_benchmarks():
    ours, original = summary_inputs()
    pages = summary_page.model_pages(ours)
    text = summary_page.headline(benchmark_summary_table(), ours, "quick", pages)
    text = text.data
    assert text.startswith(":::{admonition} What this run found\n:class: important")
    assert "**Best at x2:** {doc}`07 <07_depth_to_space>`, +0.25 dB" in text
    assert "**Best at x4:** {doc}`07 <07_depth_to_space>`, +0.35 dB" in text
    assert "mean over the benchmark sets" in text
    assert "noise" not in text and "study" not in text
    # short: the figure under it must start on a phone's first screen
    assert len(text) < 500
    verdict = summary_page.study_verdict(
        benchmark_summary_table(), ours, original, "quick"
    ).data
    assert "found R4 best at both scales" in verdict
    assert summary_page.ORIGINAL_DATA in verdict
    assert "This run does not agree." in verdict


def test_headline_of_a_smoke_build_says_noise_first():
    ours, original = summary_inputs()
    text = summary_page.headline(benchmark_summary_table(), ours, "smoke").data
    title = text.splitlines()[0]
    assert ":class: warning" in text and "smoke build" in title and "noise" in title
    verdict = summary_page.study_verdict(
        benchmark_summary_table(), ours, original, "smoke"
    ).data
    assert "trains too little to test that" in verdict and "agree" not in verdict


def test_headline_falls_back_to_validation_and_can_agree():
    ours, original = summary_inputs()
    ours.loc[ours["model"] == "dts_model", "model"] = summary_page.ORIGINAL_BEST
    ours = pd.concat([ours, ours.assign(scale=2)])
    empty = benchmark_summary_table().iloc[0:0]
    text = summary_page.headline(empty, ours, "quick").data
    assert "validation images" in text
    assert "**Best at x4:** 04, -7.00 dB" in text
    assert "**Best loss:** `psnr_over_ssim`" in text and "-8.00 dB" in text
    verdict = summary_page.study_verdict(empty, ours, original, "quick").data
    assert "This run does not agree." in verdict
    ours.loc[ours["model"] == "residual_block_model", "psnr"] = 10.0
    verdict = summary_page.study_verdict(empty, ours, original, "full").data
    assert "This run agrees." in verdict


def test_margin_tables_are_narrow_with_flat_headers():
    text = summary_page.margin_tables(benchmark_summary_table()).data
    lines = text.splitlines()
    assert lines[0] == "**x2**: margin over bicubic (PSNR in dB, SSIM)"
    assert lines[2] == "| model | Set5 dB | Set5 SSIM | Set14 dB | Set14 SSIM |"
    assert "| 07 | +1.00 | +0.0100 | -0.50 | -0.0050 |" in lines
    x4 = text.split("**x4**")[1]
    assert "02 nearest" not in x4  # no x4 output: no empty row


def test_validation_tables_split_by_size_and_mark_the_study():
    comparison = records.comparison_table(
        pd.concat([run_table(), run_table().assign(scale=2)]),
        records.load_original_results(),
    )
    text = summary_page.validation_tables(comparison, ("psnr", "ssim")).data
    assert text.index("**144x144**") < text.index("**288x288**")
    header = "| model | PSNR | bicubic | SSIM | bicubic |"
    assert text.count(header) == 2
    assert "| 07 | 22.00 | 30.00 | 0.600 | 0.900 |" in text
    assert "study" not in text and "21.83" not in text  # the study's: a table apart
    for line in text.splitlines():
        assert len(line) < 200 and "dts_model" not in line


def test_study_tables_hold_the_study_alone():
    text = summary_page.study_tables().data
    assert text.index("**144x144**") < text.index("**288x288**")
    assert text.count("| model | PSNR | SSIM | MSE | MAE |") == 2
    x4 = text.split("**288x288**")[1]
    assert "| 07 | 21.83 | 0.587 | 0.00746 | 0.0540 |" in x4
    assert "| R4 | 24.42 | 0.745 | 0.00456 | 0.0363 |" in x4
    assert "02 nearest" not in x4 and "bicubic" not in text


def orderings_inputs(r4_margin: float):
    margins = {
        "dts_dilated_conv_block_model": 1.0,  # R1
        summary_page.ORIGINAL_BEST: r4_margin,  # R4
        "dts_model": 0.5,  # 07
        "vgg_feature_extract_model": 0.2,  # 06
    }
    rows = []
    for scale in (2, 4):
        for model, margin in margins.items():
            rows.append(dict(step="x", model=model, scale=scale, psnr=25.0 + margin))
        rows.append(dict(step="x", model="bicubic", scale=scale, psnr=25.0))
    return summary_page.model_ranking(pd.DataFrame(rows))


def test_study_orderings_compare_signs_for_trained_runs():
    # the study: R4 above R1 at both sizes; 07 below 06 at 144 px, below at 288 px
    text = summary_page.study_orderings(orderings_inputs(2.0), profile="quick").data
    assert text.index("**x2**") < text.index("**x4**")
    assert "| pair | study | this run | order |" in text
    assert "| R4 vs R1 | +0.49 | +1.00 | same (higher) |" in text
    assert "| R4 vs R1 | +0.60 | +1.00 | same (higher) |" in text
    assert "| 07 vs 06 | -0.31 | +0.30 | differs |" in text
    assert "in the same order in the study and in this run for 1 of 2 pairs" in text
    lower = summary_page.study_orderings(orderings_inputs(0.0), profile="quick").data
    assert "| R4 vs R1 | +0.49 | -1.00 | differs |" in lower
    level = summary_page.study_orderings(orderings_inputs(1.0), profile="quick").data
    assert "| R4 vs R1 | +0.49 | +0.00 | tie here |" in level
    smoke = summary_page.study_orderings(orderings_inputs(2.0), profile="smoke").data
    assert smoke == summary_page.SMOKE_NO_ORDER


def test_the_paragraph_on_comparability_names_the_four_reasons():
    text = summary_page.NOT_COMPARABLE
    for reason in ("*Data:*", "*Degradation:*", "*Budgets:*", "*Validation split:*"):
        assert reason in text
    assert "names no image collection" in text


def test_training_table_is_compact():
    class Fit:
        history = pd.DataFrame(
            {
                "epoch": range(1, 21),
                "step": range(8, 168, 8),
                "loss": np.linspace(1, 0.1, 20),
                "val_loss": np.linspace(1, 0.2, 20),
                "val_low_upsample_psnr": np.linspace(20, 25, 20),
                "val_low_upsample_mae": np.linspace(0.2, 0.1, 20),
                "learning_rate": 0.001,
                "epoch_time_s": 1.234,
            }
        )

    table = report.training_table(Fit(), max_rows=5)
    assert list(table.columns) == ["step", "loss", "val loss", "val PSNR x2", "lr", "s"]
    assert list(table.index) == [1, 6, 11, 15, 20]
    assert table["val PSNR x2"].iloc[-1] == 25.0
    assert len(report.training_table(Fit())) == 12


def test_model_table_is_narrow():
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.UpSampling2D(2, name="up")(x))
    table = report.model_table(model)
    assert list(table.columns) == ["layer", "type", "output", "params"]
    assert table.iloc[1].tolist() == ["conv", "Conv2D", "?x?x4", 112]
    assert table.iloc[-1].tolist() == ["total", "", "", 112]


def test_model_legend_lists_every_model_once():
    from srkit import models

    text = summary_page.model_legend({"dts_model": "07_depth_to_space"}).data
    rows = text.splitlines()[2:]
    assert len(rows) == len(models.MODEL_NAMES)
    assert "| {doc}`07 <07_depth_to_space>` | `dts_model` | `mse` |" in rows
    assert f"| R4 | `{summary_page.ORIGINAL_BEST}` | `psnr_over_ssim` |" in rows


# ---------------------------------------------------------------- model ranking


def ranking_inputs():
    """Per-step validation rows: x2 R4 +3.0, 07 +2.0, 02 nearest -1.0; x4 07 -1.0,
    R4 -1.5 (dB over the bicubic row of each model's own step)."""
    psnr = [
        ("02_initial_model", "simple_model_nearest", 2, 24.0),
        ("02_initial_model", "bicubic", 2, 25.0),
        ("07_depth_to_space", "dts_model", 2, 26.0),
        ("07_depth_to_space", "dts_model", 4, 22.0),
        ("07_depth_to_space", "bicubic", 2, 24.0),
        ("07_depth_to_space", "bicubic", 4, 23.0),
        ("11_result_psnr_over_ssim", summary_page.ORIGINAL_BEST, 2, 27.0),
        ("11_result_psnr_over_ssim", summary_page.ORIGINAL_BEST, 4, 21.5),
        ("11_result_psnr_over_ssim", "bicubic", 2, 24.0),
        ("11_result_psnr_over_ssim", "bicubic", 4, 23.0),
    ]
    rows = [dict(step=t, model=m, scale=s, psnr=p) for t, m, s, p in psnr]
    return pd.DataFrame(rows, columns=records.COLLECT_COLUMNS)


def test_model_ranking_carries_reader_labels():
    ranking = summary_page.model_ranking(ranking_inputs())
    assert list(ranking.columns[:5]) == ["ranking", "scale", "rank", "model", "label"]
    x2 = ranking[ranking["scale"] == 2]
    assert list(x2["label"]) == ["R4", "07", "02 nearest"]
    assert x2["psnr_margin"].tolist() == pytest.approx([3.0, 2.0, -1.0])
    assert list(ranking[ranking["scale"] == 4]["label"]) == ["07", "R4"]


def test_ranking_tables_one_per_factor_with_the_study_rank():
    ranking = summary_page.model_ranking(ranking_inputs())
    pages = summary_page.model_pages(ranking_inputs())
    text = summary_page.ranking_tables(ranking, pages).data
    assert text.index("**x2**") < text.index("**x4**")
    header = "| model | rank (val.) | dB (val.) | rank in the study |"
    assert text.count(header) == 2
    study = records.load_original_results()
    at = study[study["scale"] == 2].sort_values("psnr", ascending=False)
    dts_rank = list(at["model"]).index("dts_model") + 1
    assert f"| {{doc}}`07 <07_depth_to_space>` | 2 | +2.00 | {dts_rank} |" in text
    assert "02 nearest" not in text.split("**x4**")[1]


def test_ranking_sentences_place_r4_and_give_the_rank_correlation():
    ranking = summary_page.model_ranking(ranking_inputs())
    text = summary_page.ranking_sentences(ranking).data
    lines = text.splitlines()
    assert len(lines) == 2 and "our validation images" in lines[0]
    assert "R4 ranks first of 3, +3.00 dB" in lines[0]
    assert "R4 is the study's best model too" in lines[0]
    assert "the study's best model, R4, is 2nd here" in lines[1]
    # the study ranks R4 first, 07 and 02 nearest below in that order at 144 px,
    # and 07 below R4 at 288 px: the same order at x2, the reverse at x4
    assert "Over the 3 models both rank" in lines[0] and "is 1.00." in lines[0]
    assert "Over the 2 models both rank" in lines[1] and "is -1.00." in lines[1]
    assert "benchmark" not in text and "VOC" not in text


def test_ranking_sentences_with_benchmarks_and_without_r4():
    inputs = ranking_inputs()
    bench = benchmark_summary_table()
    ranking = summary_page.model_ranking(inputs, bench)
    text = summary_page.ranking_sentences(ranking).data
    assert "(mean over the benchmark sets): 07 ranks first of 2" in text
    assert "R4, has no x2 result on the benchmark sets in this run" in text
    assert "Too few models (1)" in text  # only 07 at x4 on the sets
    assert "on our validation images, over 3 models)" in text
    without = summary_page.model_ranking(
        inputs[inputs["model"] != summary_page.ORIGINAL_BEST]
    )
    text = summary_page.ranking_sentences(without).data
    assert "R4, has no x2 result on our validation images in this run" in text


def test_a_smoke_ranking_is_not_set_beside_the_study():
    ranking = summary_page.model_ranking(ranking_inputs())
    table = summary_page.ranking_tables(ranking, with_study=False).data
    assert "rank in the study" not in table
    assert "| 07 | 2 | +2.00 |" in table
    text = summary_page.ranking_sentences(ranking, with_study=False).data
    assert "R4 ranks first of 3, +3.00 dB against bicubic in PSNR." in text
    assert "Spearman" not in text and summary_page.SMOKE_NO_ORDER in text


def test_ranking_of_an_empty_run_says_so():
    inputs = ranking_inputs()
    empty = summary_page.model_ranking(inputs[inputs["model"] == "bicubic"])
    assert summary_page.ranking_sentences(empty).data == summary_page.NO_RANKING
    assert summary_page.ranking_tables(empty).data == summary_page.NO_RANKING


def test_ordinals():
    assert [summary_page._ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
    ]


# ---------------------------------------------------------------- the page's answer


def control_record(step, model, x2, x4=None, bicubic=(25.0, 23.0)):
    """A hand-made metrics.json document of a control step."""
    other = {"mse": 0.01, "mae": 0.05, "ssim": 0.7}
    metrics = [{"scale": 2, "psnr": x2, **other}]
    base = [{"scale": 2, "psnr": bicubic[0], **other}]
    if x4 is not None:
        metrics.append({"scale": 4, "psnr": x4, **other})
        base.append({"scale": 4, "psnr": bicubic[1], **other})
    return {
        "schema_version": 2,
        "step": step,
        "models": [{"model": model, "metrics": metrics, "bicubic": base}],
    }


def test_answer_gives_signed_margins_against_bicubic_and_the_control():
    control = control_record(
        "03_multi_upsampling", "multi_upsampling_model", 25.5, 23.4
    )
    text = report.answer(
        fake_evaluation("residual_block_model", 25.85), control, "quick"
    ).data
    assert text.startswith("On the validation images, `residual_block_model` reaches")
    assert "25.85 dB PSNR at x2 (144 px): **+0.85 dB** against bicubic" in text
    assert "**+0.35 dB** against step 03's `multi_upsampling_model`" in text
    assert "23.85 dB PSNR at x4 (288 px): **+0.85 dB** against bicubic" in text
    assert "**+0.45 dB** against step 03." in text
    assert "smoke" not in text and "other validation images" not in text


def test_answer_losing_to_the_control_is_negative_and_never_minus_zero():
    control = control_record(
        "10_result_mse_ssim", "dts_dilated_conv_ext_block_ssim_model", 26.0, 22.801
    )
    text = report.answer(
        fake_evaluation("dts_dilated_conv_ext_block_ssim_psnr_model", 24.8), control
    ).data
    assert "**-0.20 dB** against bicubic interpolation" in text
    assert "**-1.20 dB** against R3's `dts_dilated_conv_ext_block_ssim_model`" in text
    assert "**+0.00 dB** against R3." in text  # -0.200 - (-0.199) rounds to zero
    assert "-0.00" not in text


def test_answer_control_without_the_scale_and_best_variant():
    control = control_record("02_initial_model", "simple_model_nearest", 24.0)
    control["models"].append(
        control_record("02_initial_model", "simple_model_bilinear", 25.2)["models"][0]
    )
    text = report.answer(fake_evaluation("multi_upsampling_model", 25.3), control).data
    assert "**+0.10 dB** against step 02's `simple_model_bilinear`" in text
    assert "**+0.30 dB** against bicubic (step 02 has no x4 output)." in text


def test_answer_on_other_validation_images_compares_margins(tmp_path):
    control = control_record(
        "10_result_mse_ssim",
        "dts_dilated_conv_ext_block_ssim_model",
        26.5,
        24.4,
        bicubic=(26.0, 24.0),
    )
    path = tmp_path / "steps" / "10_result_mse_ssim" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(control))
    ours = fake_evaluation("dts_dilated_conv_ext_block_ssim_psnr_model", 25.3)
    text = report.answer(ours, path, "quick").data
    # margin +0.30 here against +0.50 / +0.40 there
    assert "**-0.20 dB** against R3's" in text and "**-0.10 dB** against R3." in text
    assert "R3 scored other validation images" in text


def test_answer_without_the_control_record_says_so(tmp_path):
    missing = tmp_path / "steps" / "07_depth_to_space" / "metrics.json"
    ours = fake_evaluation("dts_dilated_conv_block_model", 25.3)
    text = report.answer(ours, missing, "smoke").data
    assert "**+0.30 dB** against bicubic interpolation;" in text
    assert "against step 07" not in text
    assert "Step 07 has no record in this run folder" in text
    assert "--only" in text
    assert text.endswith("noise, not results about the architecture.")


def test_answer_of_a_page_with_two_models_and_no_control():
    evaluations = [
        fake_evaluation("simple_model_nearest", 24.7),
        fake_evaluation("simple_model_bilinear", 25.1),
    ]
    for evaluation in evaluations:
        evaluation.table = evaluation.table[evaluation.table["scale"] == 2]
    text = report.answer(evaluations).data
    assert "`simple_model_bilinear` reaches 25.10 dB PSNR at x2 (144 px)" in text
    assert "**+0.10 dB** against bicubic interpolation" in text
    assert "**+0.40 dB** against `simple_model_nearest`." in text
    assert "x4" not in text and "control" not in text


def test_answer_rejects_bicubic_only_tables():
    only_bicubic = fake_evaluation("x", 25.0)
    only_bicubic.table = only_bicubic.table[only_bicubic.table["model"] == "bicubic"]
    with pytest.raises(ValueError, match="no model rows"):
        report.answer(only_bicubic)


def test_leading_is_the_evaluation_the_answer_puts_first():
    nearest = fake_evaluation("simple_model_nearest", 25.4)
    bilinear = fake_evaluation("simple_model_bilinear", 25.1)
    assert report.leading([nearest, bilinear]) is nearest
    assert report.leading(bilinear) is bilinear
    text = report.answer([nearest, bilinear]).data
    assert "`simple_model_nearest` reaches 25.40 dB" in text
    with pytest.raises(ValueError, match="no model rows"):
        report.leading(SimpleNamespace(table=nearest.table.iloc[1:2]))


# ---------------------------------------------------------- the before/after slider


class SliderParts(HTMLParser):
    """The tags and attributes of a slider's HTML, and its text."""

    def __init__(self, markup: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def images(self) -> dict[str, dict]:
        return {a["slot"]: a for tag, a in self.tags if tag == "img"}


def decoded(uri: str) -> np.ndarray:
    from PIL import Image

    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :]))))


def test_slider_html_holds_both_crops_as_data_uris_with_labels_and_alt():
    rng = np.random.default_rng(0)
    before = rng.random((48, 48, 3), dtype=np.float32)
    after = rng.random((48, 48, 3), dtype=np.float32)
    markup = report.slider_html(
        before,
        after,
        labels=("bicubic x4", "R4 <best>"),
        alts=("Bicubic of the crop", 'Output of "R4"'),
        caption="Drag the divider.",
    )
    parts = SliderParts(markup)
    assert [tag for tag, _ in parts.tags].count("img-comparison-slider") == 1
    assert markup.count("</img-comparison-slider>") == 1
    slider = dict(parts.tags)["img-comparison-slider"]
    assert slider["value"] == "50" and "bicubic x4 left" in slider["aria-label"]
    images = parts.images()
    assert sorted(images) == ["first", "second"]  # first: left of the divider
    for slot, image in (("first", before), ("second", after)):
        shown = images[slot]
        pixels = decoded(shown["src"])  # the crop at its own size, 8 bits
        assert pixels.shape == (48, 48, 3)
        assert np.array_equal(pixels, np.round(image * 255).astype(np.uint8))
        assert (shown["width"], shown["height"]) == ("288", "288")  # 6x
        assert "pixelated" in shown["style"]
    assert images["first"]["alt"] == "Bicubic of the crop"
    assert images["second"]["alt"] == 'Output of "R4"'
    text = "".join(parts.text)
    assert "bicubic x4" in text and "R4 <best>" in text  # labels, escaped
    assert "<best>" not in markup and "Drag the divider." in text
    assert len(markup) < 30_000  # two 48 px PNGs of noise, base64
    with pytest.raises(ValueError, match="one shape"):
        report.slider_html(before, after[:40], ("a", "b"), ("a", "b"))


def test_before_after_shows_bicubic_and_the_model_on_the_answer_crop():
    import keras

    from srkit import plots
    from srkit.images import bicubic_upscale

    inputs = keras.Input((None, None, 3))
    low = keras.layers.UpSampling2D(2, name="low_upsample")(inputs)
    high = keras.layers.UpSampling2D(2, name="high_upsample")(low)
    model = keras.Model(inputs, [low, high], name="nearest_model")
    rng = np.random.default_rng(1)
    subset = windows.Subset(
        x=rng.random((3, 72, 72, 3), dtype=np.float32),
        y2=rng.random((3, 144, 144, 3), dtype=np.float32),
        y4=rng.random((3, 288, 288, 3), dtype=np.float32),
        names=["a", "b", "c"],
    )
    evaluation = evaluate.evaluate(model, subset)
    choice = plots.choose_crop(evaluation, subset, scale=4)
    markup = report.before_after(model, subset, choice, "quick").data
    parts = SliderParts(markup)
    images = parts.images()
    box = np.s_[choice.top : choice.top + 48, choice.left : choice.left + 48]
    low_res = subset.x[choice.index]
    bicubic = np.clip(bicubic_upscale(low_res, 4), 0, 1)[box]
    nearest = np.repeat(np.repeat(low_res, 4, axis=0), 4, axis=1)[box]
    for slot, expected in (("first", bicubic), ("second", nearest)):
        error = np.abs(decoded(images[slot]["src"]) - expected * 255.0)
        assert error.max() <= 0.51, slot  # 8-bit rounding only
    assert f"validation image {choice.name} at x4" in images["second"]["alt"]
    assert images["second"]["alt"].startswith("Output of nearest_model")
    text = "".join(parts.text)
    assert "bicubic x4" in text and "nearest_model" in text
    assert "<span>nearest_<wbr>model&nbsp;▶</span>" in markup  # breaks after _
    labelled = report.before_after(model, subset, choice, "quick", label="R9").data
    assert "R9&nbsp;▶" in labelled
    assert "compare bicubic interpolation with R9 (nearest_model)." in labelled
    caption = f"The 48 px region of validation image {choice.name} at x4 (row "
    assert caption in text and "interpolation with nearest_model." in text
    assert 'alt="Output of nearest_model for' in labelled  # the registry name
    smoke = report.before_after(model, subset, choice, "smoke").data
    assert "img-comparison-slider" not in smoke and smoke.startswith("<!--")
