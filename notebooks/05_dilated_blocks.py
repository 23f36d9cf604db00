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
# # 05 · Dilated convolution blocks
#
# Does a wider view of the image help?

# %% [markdown]
# ```{glue:md} answer
# :format: myst
# ```
#
# ```{glue:figure} answer_figure
# :alt: Input, bicubic, model, target and error change of one region, magnified
# :name: answer-05
#
# {glue:md}`answer_caption:myst`
# ```
#
# ```{glue} answer_slider
# ```
#
# ## Idea
#
# A dilated convolution spreads its 3x3 taps apart, so with dilation rates 1, 2 and 4
# three parallel convolutions see neighbourhoods of 3, 5 and 9 pixels for the price of a
# 3x3 kernel each. We replace each residual block of step 04 with such a dilated block,
# wrapped in a skip connection.

# %% tags=["parameters", "remove-cell"]
# srkit: data-sets n_images
profile: str = "smoke"  # parameter profile this page ran with
run_dir: str = ""  # run folder (absolute); empty means <project>/runs/notebook
data_source: str = "sample"  # sample | folder:PATH | bsds300 | voc2007
data_mode: str = ""  # patch | resize | crop; empty: the source's default
n_images: int = 0  # source images (0: all); 80 % train, 20 % validation
seed: int = 0  # seed for windows, split and weight initialisation
steps: int = 4  # optimizer steps, one fresh batch each
eval_every: int = 2  # steps between validations, checkpoints and GIF frames
lr_schedule: str = "cosine"  # cosine (decays to a tenth) | constant
warmup_steps: int = 1  # steps of linear learning-rate warm-up from 0
window: int = 24  # input side of the training windows in pixels (8-72)
skip: str = "bicubic"  # none: the study's network | bicubic: learn the residual
batch_size: int = 8  # images per gradient step
learning_rate: float = 0.001  # Adam step size
precision: str = "float32"  # auto | float32 | mixed_bfloat16
xla: bool = False  # compile training steps with XLA
devices: str = "1"  # devices to train on: 1, N or all (several: JAX backend)

# %% tags=["hide-input"]
from myst_nb import glue

from srkit import data, evaluate, models, plots, records, report, train

STEP = "05_dilated_blocks"
MODEL = "dilated_conv_block_model"
# srkit: reads-steps 04_residual_blocks
CONTROL = "04_residual_blocks"  # the step this one is set against
RUN = report.run_folder(run_dir)
split = data.prepare(
    data_source,
    n_images=n_images,
    seed=seed,
    mode=data_mode or None,
    cache_dir=RUN.data,
)
report.banner(
    profile,
    split,
    steps=steps,
    batch_size=batch_size,
    learning_rate=learning_rate,
    window=window,
    skip=skip,
    warmup_steps=warmup_steps,
    precision=train.choose_precision(precision),
)

# %% [markdown]
# ## Data
#
# The step reads the run's prepared images (the banner counts them). Every number and
# figure on this page is measured on the validation images, which come from
# photographs the network never sees during training. Page 01 shows samples of the
# 72 px inputs and of their 144 px and 288 px targets.
#
# The step writes the trained model, its history, the training GIFs and `metrics.json`
# into the run folder.

# %% [markdown]
# ## Model
#
# `Dil(32)` runs three 3x3 convolutions with dilation 1, 2 and 4 side by side,
# concatenates their 96 channels and merges them back to 32 with another 3x3
# convolution (55,424 parameters); the block used here is `x + Dil(32)`. The layout
# around the blocks is the one of step 04.

# %% tags=["scroll-output", "hide-input"]
model = models.build(MODEL, seed=seed, skip=skip)
print(report.check_params(model))
report.model_table(model)

# %% [markdown]
# ## Training
#
# MSE per output, summed, with Adam. The dilated blocks triple the parameter count of
# step 04, so each step takes longer.
#
# Validation PSNR during training is Keras' metric on the raw outputs of each interval;
# the results below score the weights of the best interval with each output clipped
# to [0, 1], so the two can differ ({ref}`why <two-validation-numbers>`).

# %% tags=["scroll-output", "hide-input"]
# papermill_description=train
# The full profile trains this model for longer on a GPU (srkit/profiles/full.yaml).
# The training settings are this page's parameters (steps, eval_every, batch_size,
# learning_rate, ...) with the model's loss (srkit.train.Settings).
settings = train.Settings.from_params(globals(), loss=models.MODEL_INFO[MODEL]["loss"])
result = train.fit(model, split, settings, run_dir=RUN.model(MODEL), verbose=0)
print(report.fit_summary(result))
report.training_table(result)

# %% [markdown]
# ## Results
#
# Mean metrics over the validation images at each output size, next to bicubic
# interpolation of the same inputs and to the numbers of the original report. Higher is
# better for PSNR (in dB) and SSIM, lower for MSE and MAE.

# %% tags=["hide-input"]
evaluation = evaluate.evaluate(result.model, split.val)
report.results_table(evaluation)

# %% tags=["remove-cell"]
# The page's answer, pasted at its top by myst-nb's glue.
figure = plots.answer_figure(result.model, split.val, evaluation, scale=4)
answer = report.answer(evaluation, RUN.step_metrics(CONTROL), profile)
glue("answer", answer, display=False)
glue("answer_figure", figure, display=False)
glue("answer_caption", report.markdown(figure.caption), display=False)
slider = report.before_after(result.model, split.val, figure.choice, profile)
glue("answer_slider", slider, display=False)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Learning curves of model 05: loss and metrics per evaluation interval on training and validation images"}, "figure": {"caption": "Learning curves: the loss and each metric per evaluation interval, on training and validation images.", "name": "learning-curves-05"}}
plots.learning_curves(result.history)

# %% tags=["hide-input"] mystnb={"image": {"alt": "The best and the worst reconstructed validation images of model 05 at 288 px, ranked by PSNR, each prediction beside its target with a magnified region"}, "figure": {"caption": "The validation images the model reconstructs best and worst at 288 px, ranked by PSNR, with a magnified crop of the same region in the prediction and in the target.", "name": "best-worst-05"}}
plots.best_worst_figure(result.model, split.val, evaluation.per_image, scale=4, k=2)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Animation of model 05's x4 prediction along training between bicubic interpolation and the high-resolution target, each frame labelled with the training steps and the PSNR", "classes": "srkit-screen-only"}}
plots.show_gif(
    result.paths["gif_high_upsample"],
    caption=plots.gif_caption("high_upsample", "05"),
)

# %% tags=["remove-input"] mystnb={"image": {"alt": "Still frames of model 05's x4 prediction at four moments of training, then bicubic interpolation and the high-resolution target, each labelled with the training steps and the PSNR", "classes": "srkit-print-only"}}
plots.show_strip(result.paths["gif_high_upsample"])

# %% [markdown]
# ## Takeaways
#
# A larger receptive field lets the network use context from further away when it fills
# in a pixel. The sentences below report how much that is worth in this run.

# %% tags=["hide-input"]
report.takeaways(evaluation, results=result)

# %% tags=["remove-cell"]
metrics_file = records.write_metrics(
    RUN.step_metrics(STEP), [(evaluation, result.record())], step=STEP
)
assert metrics_file.exists(), metrics_file
