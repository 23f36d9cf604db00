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
# # 13 · Summary
#
# Which architecture and which loss work best? This run's answer (models by their step
# labels, 02 to 07 and R1 to R4), then its best models side by side:

# %% tags=["parameters", "remove-cell"]
# srkit: data-sets n_images
profile: str = "smoke"  # parameter profile this page ran with
run_dir: str = ""  # run folder (absolute); empty means <project>/runs/notebook
data_source: str = "sample"  # sample | folder:PATH | voc2007
data_mode: str = ""  # resize | crop; empty means the source's default
n_images: int = 24  # images of the split whose validation part shows the best image
seed: int = 0  # seed of that split

# %% tags=["hide-input"]
# srkit: reads-earlier-steps (re-run when an earlier step's metrics.json changes)
from IPython.display import display
from myst_nb import glue

from srkit import data, evaluate, models, plots, records, report, summary_page

STEP = "13_summary"
RUN = report.run_folder(run_dir)
ours = records.collect_metrics(RUN)
# bicubic per step: each row's baseline is scored on that step's validation images
per_step = records.collect_metrics(RUN, bicubic="per_step")
bench = records.read_benchmarks(RUN)
original = records.load_original_results()
pages = summary_page.model_pages(ours)
split = data.prepare(
    data_source,
    n_images=n_images,
    seed=seed,
    mode=data_mode or None,
    cache_dir=RUN.data,
)
display(summary_page.headline(bench, ours, profile, pages))
# The figure is pasted below as a numbered figure with its caption.
side = summary_page.side_by_side(RUN, split.val, ours)
if side is None:
    caption = "No model of this run has a saved `best.keras` to show."
    side = report.markdown("*This run has no saved model.*")
else:
    caption = side.caption
glue("side_by_side", side, display=False)
glue("side_by_side_caption", report.markdown(caption), display=False)

# %% [markdown]
# ```{glue:figure} side_by_side
# :alt: One magnified region of a validation image as input, bicubic, the best architecture model, R1, R2, R3, R4 and the high-resolution target, each model titled with its training loss, with the PSNR and SSIM of the region under each
# :name: side-by-side
#
# {glue:md}`side_by_side_caption:myst`
# ```

# %% tags=["remove-input"]
summary_page.study_verdict(bench, ours, original, profile)

# %% tags=["hide-input"]
report.banner(profile, split)

# %% [markdown]
# ## Ranking of the eleven models
#
# We order every model of this run by how far its PSNR lies above (or below) bicubic
# interpolation on the same inputs, separately at x2 and x4; the two models of step
# 02 have no x4 output and appear at x2 only. One order comes from our validation
# images, each model against bicubic on its own step's images; when step 12 scored
# the benchmark sets, a second order uses the margin averaged over those sets.
#
# For a run that trained, the last column gives the rank of the same model among all
# the original study's models at the same size, by the study's validation PSNR. The
# study measured on its own images, so we compare where the models land in the two
# orders, not our decibels with its decibels; the sentences below summarise the
# agreement with Spearman's rank correlation (1: the same order, -1: the reverse, near
# 0: no relation). A smoke build's order is noise, so it is not set beside the study's.

# %% tags=["hide-input"]
trained_run = profile != "smoke"
ranking = summary_page.model_ranking(per_step, bench, original)
display(summary_page.ranking_tables(ranking, pages, with_study=trained_run))
summary_page.ranking_sentences(ranking, pages, with_study=trained_run)

# %% [markdown]
# ## Margins over bicubic on the benchmark sets
#
# Each model's mean PSNR (dB) and SSIM minus those of bicubic interpolation on the same
# low-resolution inputs, per benchmark set and scale (step 12 states the protocol). A
# positive margin means the network recovers detail that interpolation cannot; an
# empty cell is a scale the model has no output for. The sentences below the table
# are computed from it. When the run has no benchmark results, they say so, and the
# validation table of the next section is the summary of the run.

# %%
if not bench.empty:
    display(summary_page.margin_tables(bench, pages))
summary_page.margin_takeaways(bench, pages)

# %% [markdown]
# ## All models at both scales
#
# Mean validation PSNR (dB) and SSIM of every model of this run, each beside bicubic
# interpolation on the same step's validation images. Steps 02 to 07 and the result
# models may have used different image sets (see each page's banner), so compare
# rows of the same group. The study's numbers are in a section of their own below.

# %%
comparison = records.comparison_table(per_step, original)
summary_page.validation_tables(comparison, ("psnr", "ssim"), pages)

# %% [markdown]
# The same rows for the two error measures, MSE and MAE (lower is better):

# %%
summary_page.validation_tables(comparison, ("mse", "mae"), pages)

# %% [markdown]
# ## Each metric across models
#
# Our value for every model, grouped by output size; the dashed line is bicubic
# interpolation on our validation images. Only this run's numbers are drawn.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Bar chart of the mean validation PSNR in dB of every model, labelled 02 to 07 and R1 to R4, at x2 and at x4, with bicubic interpolation as a dashed line"}, "figure": {"caption": "Mean validation PSNR (dB, higher is better) of every model at x2 and x4; the dashed line is bicubic interpolation.", "name": "bars-13-psnr"}}
plots.metric_bars(ours, metric="psnr", labels=summary_page.short_label, stacked=True)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Bar chart of the mean validation SSIM of every model, labelled 02 to 07 and R1 to R4, at x2 and at x4, with bicubic interpolation as a dashed line"}, "figure": {"caption": "Mean validation SSIM (higher is better) of every model at x2 and x4; the dashed line is bicubic interpolation.", "name": "bars-13-ssim"}}
plots.metric_bars(ours, metric="ssim", labels=summary_page.short_label, stacked=True)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Bar chart of the mean validation MAE of every model, labelled 02 to 07 and R1 to R4, at x2 and at x4, with bicubic interpolation as a dashed line (lower is better)"}, "figure": {"caption": "Mean validation MAE (lower is better) of every model at x2 and x4; the dashed line is bicubic interpolation.", "name": "bars-13-mae"}}
plots.metric_bars(ours, metric="mae", labels=summary_page.short_label, stacked=True)

# %% [markdown]
# ## The original study's numbers
#
# The mean metrics of the original report, as its final table gives them, for each
# model and output size. They are a record of that study, kept apart from ours.

# %% tags=["hide-input"]
display(summary_page.study_tables(original, pages))
report.markdown(summary_page.NOT_COMPARABLE)

# %% [markdown]
# ### Does one model beat another in both?
#
# For each model and the model it changes (its control), and for R4 against R1: the
# PSNR difference in the study and in this run, and whether the first model comes out
# higher in both, lower in both, or not. Only the signs are compared.

# %% tags=["hide-input"]
summary_page.study_orderings(ranking, original, profile, pages)

# %% [markdown]
# ## The best model's best reconstruction
#
# The model with the highest PSNR at 288 px in this run, on its best and its worst
# validation image, with a magnified region of prediction and target. In a run that
# trained, a slider below sets bicubic interpolation against it on the region a step
# page would magnify (its median-PSNR image, the busiest square).

# %% tags=["hide-input"] mystnb={"image": {"alt": "The best model's best and worst validation image at 288 px, each with a magnified region of the prediction and the target"}}
best_name = report.best_model(ours, scale=4)
best_model = models.load(RUN.best_model(best_name))
best_eval = evaluate.evaluate(best_model, split.val)
display(
    plots.best_worst_figure(best_model, split.val, best_eval.per_image, scale=4, k=1)
)
# the step pages' before/after slider (none in a smoke run), on the region chosen
# as their answer figure chooses it: the median-PSNR image, its busiest square
crop = plots.choose_crop(best_eval, split.val, scale=4)
label = summary_page.short_label(best_name)
report.before_after(best_model, split.val, crop, profile, label=label)

# %% [markdown]
# ## Training GIFs
#
# Each model's predictions of its first validation image along training, at the
# largest output the model has, each under its label. Each frame shows bicubic
# interpolation, the model's prediction after the number of training steps above it,
# and the high-resolution target at their own pixels (a large output is cropped to
# the square where brightness varies most); the PSNR under each label is of the whole
# image against the target. The first frame is the untrained network. A printed page
# shows the same frames as still strips instead.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Animation of one model's prediction along training, between bicubic interpolation and the high-resolution target, each frame labelled with the training steps and the PSNR; the model is named in the caption above", "classes": "srkit-screen-only"}}
for gif in report.training_gifs(RUN):
    label = summary_page.short_label(gif.model)
    caption = summary_page.gif_caption(gif.model, gif.path)
    display(plots.show_gif(gif.path, title=label, caption=caption))

# %% tags=["remove-input"] mystnb={"image": {"alt": "Still frames of one model's prediction along training, then bicubic interpolation and the high-resolution target, each labelled with the training steps and the PSNR", "classes": "srkit-print-only"}}
for gif in report.training_gifs(RUN):
    if (strip := plots.show_strip(gif.path)) is not None:
        display(strip)

# %% [markdown]
# ## The models by label
#
# The pages name each model by its step (02 to 07) or result label (R1 to R4), each
# linked to its page; this table gives the name the code and the run folder use, and
# the loss it trains on. The sections above show the numbers behind the answer: the
# ranking of all eleven models, the margins over bicubic per benchmark set, every
# model on our validation images beside bicubic, a chart per metric, the study's own
# numbers apart from ours with the orders that can be compared, the best
# reconstruction of the best model and the training GIFs. The page reads only the
# run folder and writes the combined table to `metrics.json`.

# %%
summary_page.model_legend(pages)

# %% [markdown]
# ## Conclusions
#
# The sentences below are computed from the table above.

# %%
summary_page.conclusions(ours, original, pages)

# %% tags=["remove-cell"]
metrics_file = records.write_summary(RUN.step_metrics(STEP), ours)
assert metrics_file.exists(), metrics_file
