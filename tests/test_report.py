"""srkit.report: the page helpers every step notebook calls."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from srkit import data, evaluate, report


def fake_evaluation(name: str, psnr: float, bicubic_psnr: float = 25.0):
    rows = []
    for scale, shift in ((144, 0.0), (288, -2.0)):
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
    subset = data.Subset(
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
    folder = report.run_folder("relative/run")
    assert folder.is_absolute() and folder.is_dir()
    assert folder == (tmp_path / "relative" / "run").resolve()
    default = report.run_folder("")
    assert default == tmp_path / "runs" / "notebook"


def test_project_root_is_found_from_a_subfolder(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\n")
    (tmp_path / "notebooks" / "deep").mkdir(parents=True)
    assert report.project_root(tmp_path / "notebooks" / "deep") == tmp_path
    assert report.project_root(tmp_path.parent) is None


def test_banner_states_profile_data_and_hardware():
    text = report.banner("smoke", tiny_split(), epochs=1, batch_size=8).data
    assert "**smoke**" in text and "`sample`" in text
    assert "2 training and 2 validation images" in text
    assert "1 epoch" in text and "batch 8" in text
    assert report.environment_info()["backend"] in text
    assert "not results" in text  # the smoke warning
    quick = report.banner("quick", tiny_split()).data
    assert "not results" not in quick and ":class: note" in quick


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
    reference = evaluate.load_original_results()
    expected = reference[reference["model"] == "dts_model"].sort_values("scale")
    assert np.allclose(original["psnr"], expected["psnr"].round(2))


def test_takeaways_say_above_or_below_bicubic_with_the_numbers():
    above = report.takeaways(fake_evaluation("dts_model", 27.0, 25.0)).data
    assert "2.00 dB above bicubic" in above and "27.00 dB" in above
    below = report.takeaways(fake_evaluation("dts_model", 20.0, 25.0)).data
    assert "5.00 dB below bicubic" in below
    assert "original report gives 21.55 dB" in below  # dts_model at 144


def run_table():
    return pd.DataFrame(
        [
            dict(model="dts_model", scale=288, mse=0.01, mae=0.05, psnr=22.0, ssim=0.6),
            dict(
                model="residual_block_model",
                scale=288,
                mse=0.02,
                mae=0.06,
                psnr=23.0,
                ssim=0.5,
            ),
            dict(model="bicubic", scale=288, mse=0.005, mae=0.04, psnr=30.0, ssim=0.9),
        ]
    )


def test_best_model_ignores_bicubic_and_respects_direction():
    table = run_table()
    assert report.best_model(table, 288, "psnr") == "residual_block_model"
    assert report.best_model(table, 288, "mse") == "dts_model"
    with pytest.raises(ValueError, match="scale 144"):
        report.best_model(table, 144)
    with pytest.raises(ValueError, match="unknown metric"):
        report.best_model(table, 288, "lpips")


def test_conclusions_count_models_beating_bicubic():
    text = report.conclusions(run_table()).data
    assert "0 of 2 models beat bicubic interpolation (30.00 dB)" in text
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
    comparison = evaluate.comparison_table(
        pd.concat([run_table(), run_table().assign(scale=144)])
    )
    table = report.summary_table(comparison, ("psnr",))
    assert list(table.columns) == [
        "PSNR this run",
        "PSNR original report",
        "PSNR bicubic",
    ]
    scales = [scale for scale, _ in table.index]
    assert scales == sorted(scales)
    ours = table[table["PSNR this run"].notna()]
    assert list(ours.index) == [
        (144, "dts_model"),
        (144, "residual_block_model"),
        (288, "dts_model"),
        (288, "residual_block_model"),
    ]


def test_metric_agreement_is_tight_on_real_images(tmp_path):
    split = data.prepare(
        "sample", n_images=6, seed=0, cache_dir=tmp_path, progress=False
    )
    frame = report.metric_agreement(split.val.y2, data.upscale(split.val.x, 2))
    assert set(frame["reference"]) >= {"scikit-image"}
    assert (frame["max abs difference"] < 1e-4).all(), frame
