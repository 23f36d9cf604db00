# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12 · Benchmarks
#
# How do our networks fare on the images every super-resolution paper reports on? The
# validation crops of the earlier pages come from our own photographs; here we score
# each trained model of the run on public benchmark sets such as Set5 and Set14,
# with the protocol of the published tables, and put bicubic interpolation and a few
# published numbers beside them. The published rows are shown even when this run
# scored nothing; the box below says what was scored and how to score.
#
# The step reads the trained models of the run folder and a folder of benchmark
# images, and writes the means, the margins over bicubic and the per-image scores to
# its `metrics.json`, where the summary page finds them.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"  # parameter profile this page ran with
run_dir: str = ""  # run folder (absolute); empty means <project>/runs/notebook
seed: int = 0  # seed of the run (scoring draws no random numbers)
benchmarks: str = ""  # folder:PATH, subfolders Set5/, Set14/...; relative to project

# %% tags=["hide-input"]
# srkit: reads-earlier-steps (re-run when an earlier step's metrics.json changes)
import keras
from IPython.display import display

from srkit import benchmark_page, evaluate, models, plots, records, report, summary_page

STEP = "12_benchmarks"
RUN = report.run_folder(run_dir)
keras.utils.set_random_seed(seed)
FOLDER = benchmark_page.benchmark_folder(benchmarks)
SETS = evaluate.benchmark_sets(FOLDER)
trained = {
    name: models.load(path) for name, path in benchmark_page.trained_models(RUN).items()
}
benchmark_page.benchmark_banner(profile, SETS, trained)

# %% [markdown]
# ## The protocol
#
# Each high-resolution image is cropped to a multiple of the scale and shrunk by
# bicubic interpolation with antialiasing (MATLAB's `imresize`). The small image is
# then clipped to [0, 1] and rounded to 8 bits, exactly as our training inputs are and
# as a saved PNG file would be. Bicubic interpolation and every network enlarge that
# same input. We compare the result with the original on the luminance (Y) channel
# only, after shaving a border as wide as the scale: the convention of the published
# tables. A network with only an x2 output is scored at x2 alone.

# %%
benchmark_page.benchmark_status(benchmarks, FOLDER, SETS, trained, profile)

# %% tags=["scroll-output"]
# papermill_description=benchmark
per_image = evaluate.benchmark_all(trained, SETS, progress=print)
summary = evaluate.benchmark_summary(per_image)
published = records.load_published_benchmarks()

# %% [markdown]
# ## Results per set and scale
#
# Mean PSNR (in dB) and SSIM over the images of each set, and the margin over bicubic
# interpolation of the same inputs: positive means the network adds something that
# interpolation cannot. The rows marked as quoted come from the papers; they were not
# measured here, and their margins are over the same paper's bicubic row. A table
# without a row measured here holds the quoted rows alone.

# %%
benchmark_page.benchmark_tables(summary, published)

# %% [markdown]
# ## Margins at a glance
#
# Each scored model's PSNR margin over bicubic, drawn as bars when there is one.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Bar charts of each scored model's PSNR margin over bicubic interpolation per benchmark set and scale, green above bicubic and red below"}}
display(benchmark_page.margin_figure_intro(summary))
if not summary.empty and (summary["model"] != "bicubic").any():
    display(plots.margin_bars(summary, metric="psnr"))

# %% [markdown]
# ## A closer look
#
# For each set, the model with the highest PSNR at the largest scale it was scored at,
# beside bicubic and the original. We pick the image on which that model's gain over
# bicubic is the median of the set, so the picture is typical rather than flattering.
# The box marks where bicubic errs most; the second row magnifies it. Without a scored
# model there is no figure.

# %% tags=["hide-input"] mystnb={"image": {"alt": "One benchmark image with the region where bicubic errs most marked, then that region magnified in bicubic, each trained model and the target"}}
if trained and SETS:
    for name, folder in SETS.items():
        display(benchmark_page.benchmark_figure(trained, per_image, name, folder))
else:
    display(report.markdown("No model was scored, so there is no figure."))

# %% [markdown]
# ## Takeaways
#
# The sentences below are computed from the tables above. On the smoke profile the
# networks barely train, so there a network below bicubic tells us little about its
# architecture; the banner states the profile of this page.

# %%
summary_page.margin_takeaways(summary)

# %% tags=["remove-cell"]
metrics_file = records.write_benchmarks(
    RUN.step_metrics(STEP),
    per_image,
    step=STEP,
    params={"profile": profile, "benchmarks": benchmarks, "seed": seed},
)
assert metrics_file.exists(), metrics_file
