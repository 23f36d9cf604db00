"""Tests of srkit.plots: every figure renders on tiny data; show_gif keeps the bytes."""

from __future__ import annotations

import base64
import io
import re

import matplotlib

matplotlib.use("Agg")

import imageio.v3 as iio  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from srkit import evaluate, plots, records, windows  # noqa: E402

RNG = np.random.default_rng(0)


def rendered(figure) -> Figure:
    """Draw the figure to PNG (catches layout and drawing errors) and return it."""
    assert isinstance(figure, Figure)
    assert figure.dpi == plots.DPI
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    return figure


def tiny_subset(count: int = 3) -> windows.Subset:
    return windows.Subset(
        x=RNG.random((count, 72, 72, 3), dtype=np.float32),
        y2=RNG.random((count, 144, 144, 3), dtype=np.float32),
        y4=RNG.random((count, 288, 288, 3), dtype=np.float32),
        names=[f"crop_{i}" for i in range(count)],
    )


def tiny_model():
    inputs = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    low = keras.layers.Conv2D(3, 1, name="low_upsample")(
        keras.layers.UpSampling2D(2)(features)
    )
    high = keras.layers.Conv2D(3, 1, name="high_upsample")(
        keras.layers.UpSampling2D(2)(low)
    )
    return keras.Model(inputs, [low, high], name="tiny")


def test_sample_grid():
    figure = rendered(plots.sample_grid(tiny_subset(), n=2))
    titles = [axes.get_title() for axes in figure.axes]
    assert titles[:3] == [
        "input, 72x72 px",
        "x2 target, 144x144 px",
        "x4 target, 288x288 px",
    ]
    assert len(figure.axes) == 6
    assert len(plots.sample_grid(tiny_subset(1), n=5).axes) == 3
    with pytest.raises(ValueError, match="n must be"):
        plots.sample_grid(tiny_subset(), n=0)


def test_best_worst_figure():
    subset = tiny_subset(4)
    model = tiny_model()
    result = evaluate.evaluate(model, subset)
    best, worst = evaluate.best_worst(result.per_image, "ssim", k=2, scale=4)
    figure = rendered(plots.best_worst_figure(model, subset, best, worst, 4))
    assert len(figure.axes) == 4 * 6  # 4 images x (4 views + 2 zooms)
    assert figure.axes[0].get_ylabel().startswith("best 1\ncrop_")
    assert figure.axes[2].get_xlabel().startswith("PSNR ")
    titles = [axes.get_title() for axes in figure.axes[:4]]
    assert titles == ["input\n72 px", "bicubic x4", "prediction x4", "target\n288 px"]
    zoomed = figure.axes[4].get_images()[0].get_array()
    assert zoomed.shape[:2] == (72, 72)  # a quarter of the 288 px side
    # notebooks pass the per-image table and let the figure choose
    figure = rendered(
        plots.best_worst_figure(model, subset, result.per_image, scale=2, k=1)
    )
    assert len(figure.axes) == 2 * 6
    plain = plots.best_worst_figure(model, subset, best, worst, 4, zoom=False)
    assert len(plain.axes) == 4 * 4
    with pytest.raises(ValueError, match="scale"):
        plots.best_worst_figure(model, subset, best, worst, 288)  # a side, not x4


def test_worst_window_finds_the_largest_error():
    prediction = np.zeros((40, 40, 3), np.float32)
    target = prediction.copy()
    target[25:35, 5:15] = 1.0
    assert plots._worst_window(prediction, target, 10) == (25, 5)


def two_output_history(epochs: int) -> pd.DataFrame:
    columns = {"epoch": np.arange(epochs), "loss": np.linspace(1, 0.5, epochs)}
    for output in ("low_upsample", "high_upsample"):
        for metric in ("loss", "mse", "mae", "psnr", "ssim"):
            columns[f"{output}_{metric}"] = RNG.random(epochs)
    columns |= {f"val_{key}": RNG.random(epochs) for key in list(columns)[1:]}
    columns["learning_rate"] = np.full(epochs, 1e-3)
    return pd.DataFrame(columns)


@pytest.mark.parametrize("epochs", [3, 4])
def test_learning_curves_two_outputs(epochs):
    figure = rendered(plots.learning_curves(two_output_history(epochs), title="m"))
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert len(visible) == 11  # total loss + 2 outputs x (loss + 4 metrics)
    titles = [axes.get_title() for axes in visible]
    assert titles[0] == "loss" and "low_upsample: PSNR (dB)" in titles
    line = visible[0].get_lines()[0]
    assert list(line.get_xdata()) == list(range(1, epochs + 1))
    assert visible[0].get_xlabel() == "epoch"  # no step column
    assert line.get_marker() == "o"
    assert len(visible[0].get_lines()) == 2  # training and validation
    assert [text.get_text() for text in figure.legends[0].get_texts()] == [
        "training",
        "validation",
    ]


@pytest.mark.parametrize("epochs", [3, 5])
def test_learning_curves_single_output(epochs):
    history = pd.DataFrame(
        {
            key: RNG.random(epochs)
            for key in ("loss", "psnr", "ssim", "val_loss", "val_psnr", "val_ssim")
        }
    )
    figure = rendered(plots.learning_curves(history))
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert [axes.get_title() for axes in visible] == ["loss", "PSNR (dB)", "SSIM"]
    assert visible[1].get_ylabel() == "PSNR (dB)"
    assert list(visible[1].get_lines()[0].get_xdata()) == list(range(1, epochs + 1))
    with pytest.raises(ValueError, match="empty"):
        plots.learning_curves(history.iloc[:0])


def overlapping_labels(labels) -> list[tuple[str, str]]:
    """Pairs of drawn tick labels whose boxes intersect."""
    shown = [label for label in labels if label.get_visible() and label.get_text()]
    boxes = [label.get_window_extent() for label in shown]
    return [
        (shown[i].get_text(), shown[j].get_text())
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]


@pytest.mark.parametrize("evaluations", [3, 8, 40])
def test_learning_curves_count_optimizer_steps(evaluations):
    history = two_output_history(evaluations)
    history["epoch"] += 1  # as srkit.train.fit logs them: intervals from 1
    history["step"] = history["epoch"] * 2500  # large counts: the widest labels
    figure = rendered(plots.learning_curves(history))
    visible = [axes for axes in figure.axes if axes.get_visible()]
    for axes in visible:
        assert axes.get_xlabel() == "optimizer step"
        assert list(axes.get_lines()[0].get_xdata()) == list(history["step"])
        ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t]
        assert ticks and all(float(t).is_integer() for t in ticks)
        assert overlapping_labels(axes.get_xticklabels()) == []
        assert overlapping_labels(axes.get_yticklabels()) == []
    # every curve point stays inside the frame
    low, high = visible[0].get_xlim()
    assert low < history["step"].min() and history["step"].max() < high
    many = evaluations > 30
    assert (visible[0].get_lines()[0].get_marker() == "None") == many


def test_learning_curves_fall_back_to_epochs_without_complete_steps():
    history = two_output_history(4)
    history["step"] = [10.0, 20.0, np.nan, 40.0]  # an older log without steps
    figure = plots.learning_curves(history)
    assert figure.axes[0].get_xlabel() == "epoch"
    assert list(figure.axes[0].get_lines()[0].get_xdata()) == [1, 2, 3, 4]


@pytest.mark.parametrize("evaluations", [1, 2])
def test_learning_curves_of_a_short_history_are_a_table(evaluations):
    history = two_output_history(evaluations)
    history["step"] = (np.arange(evaluations) + 1) * 40
    table = plots.learning_curves(history, title="dts_model")
    from pandas.io.formats.style import Styler

    assert isinstance(table, Styler)
    frame = table.data
    assert list(frame.columns) == [
        f"optimizer step {40 * (i + 1)}" for i in range(evaluations)
    ]
    assert frame.index.names == ["series", "data"]
    assert len(frame) == 22  # 11 series, training and validation each
    assert frame.loc[("loss", "training")].tolist() == list(history["loss"])
    assert frame.loc[("low_upsample: PSNR (dB)", "validation")].tolist() == list(
        history["val_low_upsample_psnr"]
    )
    html = table.to_html()
    assert "dts_model" in html and "too few to draw" in html
    assert f"{history['loss'].iloc[0]:.4g}" in html  # four significant digits
    # without steps the columns count epochs; a repeated step keeps columns unique
    plain = plots.learning_curves(two_output_history(evaluations)).data
    assert list(plain.columns) == [f"epoch {i + 1}" for i in range(evaluations)]
    history["step"] = 40
    assert plots.learning_curves(history).data.columns.is_unique


def test_metric_bars():
    ours = pd.DataFrame(
        {
            "model": ["dts_model", "bicubic", "dts_model", "bicubic", "new_model"],
            "scale": [2, 2, 4, 4, 2],
            "psnr": [22.0, 21.0, 22.5, 20.5, 23.0],
            "ssim": [0.7, 0.6, 0.65, 0.55, 0.72],
        }
    )
    original = records.load_original_results()
    figure = rendered(plots.metric_bars(ours, "psnr", original))
    assert len(figure.axes) == 2
    assert figure.axes[0].get_xlabel() == "PSNR (dB)"
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["144 px output (x2)", "288 px output (x4)"]
    rendered(plots.metric_bars(ours, "ssim"))
    with pytest.raises(ValueError, match="unknown metric"):
        plots.metric_bars(ours, "lpips")


def test_margin_bars_one_panel_per_set_and_scale():
    summary = pd.DataFrame(
        {
            "set": ["Set5"] * 5 + ["Set14"] * 3,
            "scale": [2, 2, 2, 4, 4, 2, 2, 2],
            "model": ["bicubic", "a", "b", "bicubic", "b"] + ["bicubic", "a", "b"],
            "psnr_margin": [0.0, 0.5, -0.3, 0.0, 0.2, 0.0, -0.1, 0.4],
            "ssim_margin": [0.0, 0.01, -0.02, 0.0, 0.005, 0.0, 0.0, 0.02],
        }
    )
    figure = rendered(plots.margin_bars(summary))
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["Set5, x2", "Set5, x4", "Set14, x2", "Set14, x4"]
    first = figure.axes[0]
    assert [patch.get_width() for patch in first.patches] == [0.5, -0.3]
    assert "+0.50" in [text.get_text().strip() for text in first.texts]
    missing = figure.axes[1]  # model "a" has no x4 output
    assert "n/a" in [text.get_text() for text in missing.texts]
    rendered(plots.margin_bars(summary, metric="ssim"))
    with pytest.raises(ValueError, match="metric"):
        plots.margin_bars(summary, metric="mse")
    with pytest.raises(ValueError, match="no model rows"):
        plots.margin_bars(summary[summary["model"] == "bicubic"])


def test_zoom_comparison_outlines_the_same_box_everywhere():
    reference = RNG.random((40, 60, 3), dtype=np.float32)
    blurred = reference.copy()
    blurred[20:30, 40:50] = 0.5  # the largest difference sits here
    images = {"original": reference, "bicubic": blurred, "model": reference}
    scores = {"bicubic": {"psnr": 25.0, "ssim": 0.8}}
    figure = rendered(plots.zoom_comparison(images, metrics=scores, title="t"))
    top = figure.axes[:3]
    assert [axes.get_title() for axes in top] == ["original", "bicubic", "model"]
    assert top[1].get_xlabel() == "PSNR 25.00 dB / SSIM 0.800"
    assert top[0].get_xlabel() == ""
    boxes = [axes.patches[0] for axes in top]
    assert {(box.get_x(), box.get_y(), box.get_width()) for box in boxes} == {
        (39.5, 19.5, 10)
    }
    zoomed = figure.axes[3].get_images()[0].get_array()
    assert zoomed.shape == (10, 10, 3)
    given = rendered(plots.zoom_comparison(images, box=(0, 0, 8)))
    assert given.axes[3].get_images()[0].get_array().shape == (8, 8, 3)
    with pytest.raises(ValueError, match="inside"):
        plots.zoom_comparison(images, box=(35, 0, 8))
    with pytest.raises(ValueError, match="at least two"):
        plots.zoom_comparison({"original": reference})
    with pytest.raises(ValueError, match="shape"):
        plots.zoom_comparison({"a": reference, "b": reference[:20]})


def test_figures_display_as_png():
    figure = plots.sample_grid(tiny_subset(1), n=1)
    assert figure._repr_png_().startswith(b"\x89PNG")


def test_show_gif_keeps_the_bytes(tmp_path):
    frames = (RNG.random((3, 16, 16, 3)) * 255).astype(np.uint8)
    path = tmp_path / "training.gif"
    iio.imwrite(path, frames, extension=".gif", duration=200, loop=0)
    shown = plots.show_gif(path, width=120)
    bundle, metadata = shown._repr_mimebundle_()
    assert base64.b64decode(bundle["image/gif"]) == path.read_bytes()
    assert metadata["image/gif"]["width"] == 120
    assert shown.title is None
    assert plots.show_gif(path, title="dts_model").title == "dts_model"
    with pytest.raises(ValueError, match="does not exist"):
        plots.show_gif(tmp_path / "missing.gif")
    (tmp_path / "fake.gif").write_bytes(b"\x89PNG not a gif")
    with pytest.raises(ValueError, match="not a GIF"):
        plots.show_gif(tmp_path / "fake.gif")


def test_show_gif_displays_title_then_gif(tmp_path, monkeypatch):
    import IPython.display

    path = tmp_path / "training.gif"
    iio.imwrite(path, np.zeros((2, 8, 8, 3), np.uint8), extension=".gif")
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    plots.show_gif(path, title="dts_model")._ipython_display_()
    assert shown[0].data == "**dts_model**"
    assert shown[1].data == path.read_bytes()


def test_best_worst_k_is_capped_at_half_the_images():
    subset = tiny_subset(3)
    model = tiny_model()
    per_image = evaluate.evaluate(model, subset).per_image
    assert plots.capped_k(per_image, 2, scale=4) == 1
    assert plots.capped_k(per_image, 5) == 1
    figure = rendered(plots.best_worst_figure(model, subset, per_image, scale=4, k=2))
    labels = [axes.get_ylabel() for axes in figure.axes if axes.get_ylabel()]
    images = [label.split("\n")[1] for label in labels]
    assert len(images) == 2 and len(set(images)) == 2  # no image shown twice


def regime_history(x2: list[float], x4: list[float], every: int = 50) -> pd.DataFrame:
    """A history as srkit.train.fit logs it, reduced to what the regime figure reads."""
    count = len(x2)
    return pd.DataFrame(
        {
            "epoch": np.arange(1, count + 1),
            "step": every * np.arange(1, count + 1),
            "loss": np.linspace(1.0, 0.5, count),
            "val_loss": np.linspace(1.1, 0.6, count),
            "val_low_upsample_psnr": x2,
            "val_high_upsample_psnr": x4,
        }
    )


REGIMES = {
    "bicubic": regime_history([25.2, 25.6, 26.0], [21.9, 21.7, 21.5]),
    "none": regime_history([18.0, 22.0, 24.0], [17.0, 20.0, 23.0]),
}
BICUBIC_PSNR = {2: 25.0, 4: 22.0}


@pytest.mark.parametrize("as_table", [False, True])
def test_regime_curves_draw_both_regimes_and_bicubic_per_output(as_table):
    bicubic = BICUBIC_PSNR
    if as_table:  # Evaluation.table: model rows and bicubic rows
        bicubic = pd.DataFrame(
            {
                "model": ["dts_model", "bicubic", "dts_model", "bicubic"],
                "scale": [2, 2, 4, 4],
                "psnr": [30.0, 25.0, 27.0, 22.0],
            }
        )
    figure = rendered(plots.regime_curves(REGIMES, bicubic))
    assert len(figure.axes) == 2
    assert [axes.get_title() for axes in figure.axes] == [
        "x2 (144 px)",
        "x4 (288 px)",
    ]
    for axes, scale, key in zip(
        figure.axes,
        (2, 4),
        ("val_low_upsample_psnr", "val_high_upsample_psnr"),
        strict=True,
    ):
        assert axes.get_xlabel() == "optimizer step"
        assert "PSNR (dB)" in axes.get_ylabel()
        lines = {line.get_label(): line for line in axes.get_lines()}
        assert set(lines) == {
            "with bicubic skip",
            "without skip (the study's network)",
            "bicubic",
        }
        baseline = lines["bicubic"]
        assert baseline.get_linestyle() == "--"
        assert set(baseline.get_ydata()) == {BICUBIC_PSNR[scale]}
        ours = lines["with bicubic skip"]
        assert list(ours.get_xdata()) == [50, 100, 150]
        assert list(ours.get_ydata()) == list(REGIMES["bicubic"][key])
        low, high = axes.get_ylim()
        assert low < BICUBIC_PSNR[scale] < high
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == [
        "with bicubic skip",
        "without skip (the study's network)",
        "bicubic",
    ]


def test_regime_curves_draw_a_single_evaluation_and_check_their_input():
    # a smoke run validates once: one marker per regime, still a figure
    short = {key: history.tail(1) for key, history in REGIMES.items()}
    figure = rendered(plots.regime_curves(short, BICUBIC_PSNR))
    assert all(len(axes.get_lines()) == 3 for axes in figure.axes)
    assert all(list(axes.get_xticks()) == [150] for axes in figure.axes)
    with pytest.raises(ValueError, match="no bicubic PSNR"):
        plots.regime_curves(REGIMES, {2: 25.0})
    with pytest.raises(ValueError, match="validation PSNR"):
        plots.regime_curves({"none": pd.DataFrame({"step": [1], "loss": [0.1]})}, {})
    with pytest.raises(ValueError, match="empty"):
        plots.regime_curves({}, BICUBIC_PSNR)


def test_regime_sentences_give_signed_margins_over_bicubic():
    from srkit import report

    finals = plots.regime_finals(REGIMES, BICUBIC_PSNR).set_index(["regime", "scale"])
    assert finals.loc[("bicubic", 2), "margin"] == pytest.approx(1.0)
    assert finals.loc[("none", 2), "margin"] == pytest.approx(-1.0)
    assert finals.loc[("bicubic", 4), "margin"] == pytest.approx(-0.5)
    assert finals.loc[("none", 4), "margin"] == pytest.approx(1.0)
    assert set(finals["step"]) == {150}
    bullets = report.regime_takeaways(REGIMES, BICUBIC_PSNR).data.splitlines()
    assert len(bullets) == 2
    x2, x4 = bullets
    assert x2.startswith("- At x2 (144 px) after 150 optimizer steps")
    assert "bicubic interpolation gives 25.00 dB" in x2
    assert "with bicubic skip 26.00 dB (+1.00 dB against bicubic)" in x2
    assert "without skip (the study's network) 24.00 dB (-1.00 dB" in x2
    assert "by +2.00 dB" in x2
    assert "with bicubic skip 21.50 dB (-0.50 dB against bicubic)" in x4
    assert "without skip (the study's network) 23.00 dB (+1.00 dB" in x4
    assert "by -1.50 dB" in x4
    # one regime alone: no comparison between regimes
    alone = report.regime_takeaways({"none": REGIMES["none"]}, BICUBIC_PSNR).data
    assert "-1.00 dB against bicubic" in alone and "changes" not in alone
    # a margin that rounds to zero reads +0.00, never -0.00
    level = {"bicubic": regime_history([24.999], [22.0001])}
    assert "-0.00" not in report.regime_takeaways(level, BICUBIC_PSNR).data


# ------------------------------------------------------------------------ the answer


def test_busiest_window_finds_the_textured_square_on_the_grid():
    image = np.full((40, 40, 3), 0.5, np.float32)
    image[20:30, 8:18] = RNG.random((10, 10, 1), dtype=np.float32)
    assert plots.busiest_window(image, 10) == (20, 8)
    top, left = plots.busiest_window(image, 10, step=4)
    assert top % 4 == 0 and left % 4 == 0
    assert abs(top - 20) <= 2 and abs(left - 8) <= 2
    with pytest.raises(ValueError, match="size"):
        plots.busiest_window(image, 41)


def test_compare_crops_draws_five_panels_at_the_zoomed_pixel_size():
    low_res = RNG.random((24, 24, 3), dtype=np.float32)
    target = RNG.random((96, 96, 3), dtype=np.float32)
    prediction = np.clip(target + 0.05, 0, 1)
    figure = rendered(
        plots.compare_crops(low_res, prediction, target, (8, 12, 32), 4, "m", zoom=3)
    )
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == [
        "input, nearest x4",
        "bicubic x4",
        "m",
        "target (HR)",
        "error change",
    ]
    for axes in figure.axes:  # every panel exactly 32 x 3 pixels on the PNG
        box = axes.get_window_extent()
        assert round(box.width) == 96 and round(box.height) == 96
    # the input panel repeats each input pixel 4x4 (nearest), the crop starts at 8, 12
    shown = figure.axes[0].get_images()[0].get_array()
    assert np.allclose(shown[0, 0], low_res[2, 3]) and np.allclose(
        shown[3, 3], shown[0, 0]
    )
    assert figure.axes[2].get_xlabel().startswith("PSNR ")
    assert "SSIM" in figure.axes[2].get_xlabel()
    change = figure.axes[4].get_images()[0].get_array()
    assert change.shape == (32, 32)
    with pytest.raises(ValueError, match="shape"):
        plots.compare_crops(low_res, target[:48], target, (0, 0, 8), 4)
    with pytest.raises(ValueError, match="inside"):
        plots.compare_crops(low_res, prediction, target, (80, 0, 32), 4)


def test_answer_figure_shows_the_median_image_and_says_how_it_was_chosen():
    subset = tiny_subset(3)
    model = tiny_model()
    evaluation = evaluate.evaluate(model, subset)
    figure = rendered(plots.answer_figure(model, subset, evaluation, scale=4))
    rows = evaluation.per_image[evaluation.per_image["scale"] == 4]
    median = rows.sort_values("psnr").iloc[1]
    choice = figure.choice
    assert choice.index == int(median["index"]) and choice.name == median["name"]
    assert choice.size == plots.CROP_SIZE and choice.top % 4 == 0
    assert figure.axes[2].get_title() == "tiny"
    caption = figure.caption
    assert f"`{choice.name}`" in caption and "median PSNR among 3" in caption
    assert f"{choice.psnr:.2f} dB with the model" in caption
    assert "of the crop" in caption


def test_choose_crop_at_x2_and_with_one_image():
    subset = tiny_subset(1)
    model = tiny_model()
    evaluation = evaluate.evaluate(model, subset)
    choice = plots.choose_crop(evaluation, subset, scale=2, size=47)
    assert choice.index == 0 and choice.n_images == 1
    assert choice.size == 46 and choice.top % 2 == 0 and choice.left % 2 == 0
    assert choice.top + choice.size <= 144 and choice.left + choice.size <= 144
    assert "the only validation image" in plots.crop_caption(choice)
    with pytest.raises(ValueError, match="scale must be"):
        plots.choose_crop(evaluation, subset, scale=3)


def test_compare_crops_fits_the_column_and_wraps_long_model_names():
    low_res = RNG.random((72, 72, 3), dtype=np.float32)
    target = RNG.random((288, 288, 3), dtype=np.float32)
    name = "dts_dilated_conv_ext_block_ssim_psnr_model"
    figure = rendered(
        plots.compare_crops(low_res, target, target, (0, 0, plots.CROP_SIZE), 4, name)
    )
    width = figure.get_size_inches()[0] * plots.DPI
    assert width <= 760  # the book's column is about 780 px wide at 1400 px
    title = figure.axes[2].get_title()
    assert title == "dts_dilated_conv_ext_\nblock_ssim_psnr_model"
    assert max(len(line) for line in title.splitlines()) <= 22
    # titles stay inside their panel: no overlap with the neighbours
    renderer = FigureCanvasAgg(figure).get_renderer()
    boxes = [axes.title.get_window_extent(renderer) for axes in figure.axes]
    for left, right in zip(boxes[:-1], boxes[1:], strict=True):
        assert left.x1 < right.x0


# --- issue 22: readable GIFs, the models side by side, short labels, alt text ---


def test_metric_bars_short_labels_stacked_for_a_phone():
    ours = pd.DataFrame(
        {
            "model": ["simple_model_nearest", "dts_model", "bicubic"]
            + ["dts_model", "dts_dilated_conv_block_model", "bicubic"],
            "scale": [2, 2, 2, 4, 4, 4],
            "psnr": [21.0, 22.0, 20.0, 21.5, 22.5, 19.5],
        }
    )
    from srkit import summary_page

    figure = rendered(
        plots.metric_bars(ours, "psnr", labels=summary_page.short_label, stacked=True)
    )
    width, _ = figure.get_size_inches() * figure.dpi
    assert width <= 480  # a 390 px phone shows it at about three quarters
    low, high = figure.axes[:2]
    assert [t.get_text() for t in low.get_yticklabels()] == ["02 nearest", "07"]
    assert [t.get_text() for t in high.get_yticklabels()] == ["07", "R1"]
    assert min(t.get_fontsize() for t in high.get_yticklabels()) >= 11
    wide = rendered(plots.metric_bars(ours, "psnr", labels={"dts_model": "07"}))
    shown = [t.get_text() for t in wide.axes[0].get_yticklabels()]
    assert shown == ["simple_model_nearest", "07", "dts_dilated_conv_block_model"]


def test_models_crops_draws_every_model_at_native_size_in_rows():
    low = RNG.random((24, 24, 3), dtype=np.float32)
    target = RNG.random((96, 96, 3), dtype=np.float32)
    predictions = {
        f"R{i}\nloss: l{i}": RNG.random((96, 96, 3), dtype=np.float32)
        for i in range(1, 6)
    }
    figure = rendered(
        plots.models_crops(low, target, predictions, (8, 16, 48), 4, title="t")
    )
    titles = [axes.get_title() for axes in figure.axes]
    assert titles[:2] == ["input, nearest x4", "bicubic x4"]
    assert titles[2:7] == list(predictions) and titles[-1] == "target (HR)"
    assert figure.panel_titles == titles
    # each panel is 48 target px at 3 screen px per pixel; two rows of four
    for axes in figure.axes:
        box = axes.get_window_extent()
        assert round(box.width) == round(box.height) == 48 * plots.CROP_ZOOM
    width = figure.get_size_inches()[0] * figure.dpi
    assert width <= 750  # the book's column at a 1400 px window
    scored = [axes.get_xlabel() for axes in figure.axes]
    assert scored[0] == "" and scored[-1] == ""
    assert all(label.startswith("PSNR") and "SSIM" in label for label in scored[1:-1])
    with pytest.raises(ValueError, match="empty"):
        plots.models_crops(low, target, {}, (0, 0, 48), 4)
    with pytest.raises(ValueError, match="R9"):
        plots.models_crops(low, target, {"R9": target[:48]}, (0, 0, 48), 4)


def test_models_figure_predicts_the_chosen_image():
    subset = tiny_subset(3)
    model = tiny_model()
    bicubic = evaluate.evaluate(None, subset)
    bicubic.per_image = bicubic.bicubic_per_image
    choice = plots.choose_crop(bicubic, subset, 4)
    figure = rendered(plots.models_figure({"A": model, "B": model}, subset, choice))
    assert figure.choice == choice
    assert figure.panel_titles[2:4] == ["A", "B"]
    assert choice.name in figure.texts[0].get_text()


def test_gif_caption_and_show_gif_caption_above_the_gif(tmp_path, monkeypatch):
    import IPython.display

    caption = plots.gif_caption("high_upsample", "R4")
    assert caption.startswith("R4's x4 output during training")
    for words in ("bicubic", "target", "PSNR", "untrained", "training steps"):
        assert words in caption
    assert plots.gif_caption("low_upsample").startswith("The model's x2 output")
    with pytest.raises(ValueError, match="middle"):
        plots.gif_caption("middle")
    path = tmp_path / "gif_high_upsample.gif"
    iio.imwrite(path, np.zeros((2, 8, 8, 3), np.uint8), extension=".gif")
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    plots.show_gif(path, title="R4", caption=caption)._ipython_display_()
    assert shown[0].data == f"**R4.** {caption}"  # the caption first, then the GIF
    assert shown[1].data == path.read_bytes()


def test_show_strip_shows_the_png_beside_the_gif(tmp_path):
    gif = tmp_path / "gif_high_upsample.gif"
    assert plots.show_strip(gif) is None  # a model trained before strips
    iio.imwrite(tmp_path / "strip_high_upsample.png", np.zeros((8, 8, 3), np.uint8))
    strip = plots.show_strip(gif)
    assert strip.data == (tmp_path / "strip_high_upsample.png").read_bytes()
    assert strip.format == "png"


ALT = re.compile(r"^# %%.*mystnb=(\{.*\})\s*$")
#: A figure glued for a ``{glue:figure}`` directive rather than shown by its cell.
GLUED = re.compile(r'glue\(\s*"(\w+)",\s*\w+,\s*display=False\)')
FIGURE_CALLS = re.compile(
    r"plots\.(sample_grid|learning_curves|best_worst_figure|show_gif|show_strip|"
    r"metric_bars|margin_bars|regime_curves)\(|benchmark_figure\(|side_by_side\("
)


def test_every_figure_cell_of_the_notebooks_has_alt_text():
    import json
    import pathlib

    import jupytext

    folder = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
    missing = []
    for path in sorted(folder.glob("*.py")):
        notebook = jupytext.read(path)
        for cell in notebook.cells:
            if cell.cell_type != "code" or not FIGURE_CALLS.search(cell.source):
                continue
            if "remove-cell" in cell.metadata.get("tags", []):
                continue
            # glued, not shown: the notebook's figure directive carries the alt
            text = "\n".join(c.source for c in notebook.cells)
            pasted = [
                key
                for key in GLUED.findall(cell.source)
                if "```{glue:figure} " + key + "\n" in text
            ]
            if pasted:
                for key in pasted:
                    directive = re.search(
                        r"```\{glue:figure\} " + key + r"\n:alt: (.+)", text
                    )
                    alt = directive.group(1) if directive else ""
                    if len(alt.split()) < 6:
                        missing.append(f"{path.name}: glued figure {key}")
                continue
            alt = cell.metadata.get("mystnb", {}).get("image", {}).get("alt", "")
            if len(alt.split()) < 6 or re.search(r"\.(png|gif|jpe?g)\b|/", alt):
                missing.append(f"{path.name}: {cell.source.splitlines()[0]}")
        for line in path.read_text().splitlines():  # the metadata is valid JSON
            match = ALT.match(line)
            if match:
                json.loads(match.group(1))
    assert not missing, "figure cells without a real alt text:\n" + "\n".join(missing)


def test_full_width_figures_fit_the_book_column_at_their_own_pixels():
    figure = plots.sample_grid(tiny_subset(1), n=1)
    assert figure.get_size_inches()[0] * figure.dpi <= 750


def test_summary_side_by_side_sets_the_best_architecture_beside_the_results(
    tmp_path,
):
    from srkit import layout, summary_page

    run = layout.RunFolder(tmp_path)
    table = pd.DataFrame(
        {
            "model": ["multi_upsampling_model", "dts_model", "bicubic"]
            + ["dts_dilated_conv_block_model", "dts_model"],
            "scale": [4, 4, 4, 4, 2],
            "psnr": [20.0, 21.0, 19.0, 22.0, 30.0],
        }
    )
    for name in ("multi_upsampling_model", "dts_model", "dts_dilated_conv_block_model"):
        run.best_model(name).parent.mkdir(parents=True)
        tiny_model().save(run.best_model(name))
    assert summary_page.best_architecture(table) == "dts_model"
    figure = rendered(summary_page.side_by_side(run, tiny_subset(3), table))
    assert figure.panel_titles[2:4] == ["07\nloss: mse", "R1\nloss: psnr"]
    assert "07, the architecture model" in figure.caption
    assert "result models R1 (" in figure.caption
    assert figure.choice.name in figure.caption
    empty = table[table["model"] == "bicubic"]
    assert summary_page.side_by_side(run, tiny_subset(3), empty) is None
    caption = summary_page.gif_caption("dts_model", tmp_path / "gif_high_upsample.gif")
    assert caption == "The x4 output of `dts_model`, trained on the mse loss."
