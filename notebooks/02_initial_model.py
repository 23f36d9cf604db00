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
# # 02 · A first fully convolutional model
#
# How far does the simplest possible network get, with nearest-neighbour or with
# bilinear upsampling, against plain bicubic interpolation?

# %% [markdown]
# ```{glue:md} answer
# :format: myst
# ```
#
# ```{glue:figure} answer_figure
# :alt: Input, bicubic, model, target and error change of one region, magnified
# :name: answer-02
#
# {glue:md}`answer_caption:myst`
# ```
#
# ```{glue} answer_slider
# ```
#
# ## Idea
#
# Two 3x3 convolutions extract features from the 72 px input, an upsampling layer
# doubles their size, and a 1x1 convolution turns them into a 144 px colour image. We
# train it twice, once with nearest-neighbour and once with bilinear upsampling.

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
from IPython.display import Markdown, display
from myst_nb import glue

from srkit import data, evaluate, models, plots, records, report, train

STEP = "02_initial_model"
MODELS = ["simple_model_nearest", "simple_model_bilinear"]
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
# 72 px inputs and of their targets; this step predicts only the 144 px ones, the
# 288 px targets appear from step 03 on.
#
# The step writes both trained models, their histories, GIFs and `metrics.json` into the
# run folder.

# %% [markdown]
# ## Model
#
# Both variants have the same 38,915 weights: 1,792 and 36,928 in the two 3x3
# convolutions with 64 filters, 195 in the 1x1 output convolution. They differ only in
# how the upsampling layer fills the new pixels: nearest-neighbour copies each feature
# into a 2x2 block, bilinear interpolates between neighbours.
#
# The table lists the 1x1 convolution (`low_upsample_head`) before the upsampling
# layer. Both are linear maps, and the weights with which an upsampled pixel mixes
# its neighbours sum to one, so the two orders compute the same function, bias
# included. Run first, the head leaves 3 channels to upsample instead of 64; every
# interpolating model of steps 02 to 06 is built this way where only a head follows an
# upsampling, which made their training several times faster on a CPU.
#
# With the bicubic skip (the `skip` parameter; the banner names the regime of this
# run), the table ends with two layers without weights: the bicubic upscaling of the
# input (`low_upsample_bicubic`) and the sum of that and the network's image
# (`low_upsample`). The head starts at zero, so each untrained variant is then exactly
# bicubic interpolation.

# %% tags=["scroll-output", "hide-input"]
built = {name: models.build(name, seed=seed, skip=skip) for name in MODELS}
for model in built.values():
    print(report.check_params(model))
report.model_table(built["simple_model_nearest"])

# %% [markdown]
# ## Training
#
# Each variant minimises the mean squared error of its output with Adam, on the same
# images and with the same seed. The tables list each evaluation interval.
#
# Validation PSNR during training is Keras' metric on the raw outputs of each interval;
# the results below score the weights of the best interval with each output clipped
# to [0, 1], so the two can differ ({ref}`why <two-validation-numbers>`).

# %% tags=["scroll-output", "hide-input"]
# papermill_description=train
# The full profile trains these models longer on a GPU (srkit/profiles/full.yaml).
# The training settings are this page's parameters (steps, eval_every, batch_size,
# learning_rate, ...) with each model's loss (srkit.train.Settings).
results = {
    name: train.fit(
        model,
        split,
        train.Settings.from_params(globals(), loss=models.MODEL_INFO[name]["loss"]),
        run_dir=RUN.model(name),
        verbose=0,
    )
    for name, model in built.items()
}
for result in results.values():
    print(report.fit_summary(result))
    display(report.training_table(result))

# %% [markdown]
# ## Results
#
# Mean validation metrics of both variants next to bicubic interpolation and the
# original report. Higher is better for PSNR (dB) and SSIM, lower for MSE and MAE.

# %% tags=["hide-input"]
evaluations = [evaluate.evaluate(r.model, split.val) for r in results.values()]
report.results_table(evaluations)

# %% tags=["remove-cell"]
# The page's answer, pasted at its top by myst-nb's glue: the better variant.
lead = report.leading(evaluations)
figure = plots.answer_figure(results[lead.model_name].model, split.val, lead, scale=2)
glue("answer", report.answer(evaluations, profile=profile), display=False)
glue("answer_figure", figure, display=False)
glue("answer_caption", report.markdown(figure.caption), display=False)
slider = report.before_after(
    results[lead.model_name].model, split.val, figure.choice, profile
)
glue("answer_slider", slider, display=False)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Learning curves of model 02 nearest: loss and metrics per evaluation interval on training and validation images"}, "figure": {"caption": "Learning curves of the nearest-neighbour variant: the loss and each metric per evaluation interval, on training and validation images.", "name": "learning-curves-02-nearest"}}
plots.learning_curves(
    results["simple_model_nearest"].history, title="simple_model_nearest"
)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Learning curves of model 02 bilinear: loss and metrics per evaluation interval on training and validation images"}, "figure": {"caption": "Learning curves of the bilinear variant.", "name": "learning-curves-02-bilinear"}}
plots.learning_curves(
    results["simple_model_bilinear"].history, title="simple_model_bilinear"
)

# %% tags=["hide-input"] mystnb={"image": {"alt": "The best and the worst reconstructed validation images of model 02 bilinear at 144 px, ranked by PSNR, each prediction beside its target with a magnified region"}, "figure": {"caption": "The best and worst reconstructed validation images of the bilinear variant, ranked by PSNR, with a magnified crop of the same region in prediction and target.", "name": "best-worst-02"}}
plots.best_worst_figure(
    results["simple_model_bilinear"].model,
    split.val,
    evaluations[1].per_image,
    scale=2,
    k=2,
)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Animation of model 02 nearest's x2 prediction along training between bicubic interpolation and the high-resolution target, each frame labelled with the training steps and the PSNR", "classes": "srkit-screen-only"}}
plots.show_gif(
    results["simple_model_nearest"].paths["gif_low_upsample"],
    caption=plots.gif_caption("low_upsample", "02 nearest"),
)

# %% tags=["remove-input"] mystnb={"image": {"alt": "Still frames of model 02 nearest's x2 prediction at four moments of training, then bicubic interpolation and the high-resolution target, each labelled with the training steps and the PSNR", "classes": "srkit-print-only"}}
plots.show_strip(results["simple_model_nearest"].paths["gif_low_upsample"])

# %% tags=["hide-input"] mystnb={"image": {"alt": "Animation of model 02 bilinear's x2 prediction along training between bicubic interpolation and the high-resolution target, each frame labelled with the training steps and the PSNR", "classes": "srkit-screen-only"}}
plots.show_gif(
    results["simple_model_bilinear"].paths["gif_low_upsample"],
    caption=plots.gif_caption("low_upsample", "02 bilinear"),
)

# %% tags=["remove-input"] mystnb={"image": {"alt": "Still frames of model 02 bilinear's x2 prediction at four moments of training, then bicubic interpolation and the high-resolution target, each labelled with the training steps and the PSNR", "classes": "srkit-print-only"}}
plots.show_strip(results["simple_model_bilinear"].paths["gif_low_upsample"])

# %% [markdown]
# ## Takeaways
#
# Nearest-neighbour upsampling tends to leave blocky artefacts that the final 1x1
# convolution cannot smooth, since it sees one pixel at a time; bilinear upsampling
# avoids them by construction. The limit is structural. The 1x1 convolution is the
# same linear map at every pixel, so applying it after the upsampling gives the same
# result as applying it before. What the nearest variant learns is therefore a 72 px
# image whose pixels are each repeated into a 2x2 block, and what the bilinear variant
# learns is a 72 px image enlarged bilinearly.
#
# What that means against bicubic interpolation depends on the regime. Without the
# bicubic skip, the learned image is the whole output: the nearest variant stays blocky
# and no training budget lets it beat bicubic, whose output varies smoothly, and the
# bilinear variant can pass bicubic only by what sharpening that small image buys.
# With the skip, the learned image is a correction added to bicubic interpolation:
# both variants start at bicubic and either can pass it; the 2x2 blocks limit only how
# fine the nearest variant's correction can be.

# %% tags=["remove-input"]
regime = (
    "**without the bicubic skip**, so the nearest variant cannot pass bicubic"
    if skip == "none"
    else "**with the bicubic skip**, so either variant can pass bicubic"
)
Markdown(
    f"This page trains both variants {regime}. How the two compare here, and whether "
    "either beats bicubic interpolation, is stated below."
)

# %% tags=["hide-input"]
report.takeaways(evaluations, results=results)

# %% tags=["remove-cell"]
metrics_file = records.write_metrics(
    RUN.step_metrics(STEP),
    [(e, results[e.model_name].record()) for e in evaluations],
    step=STEP,
)
assert metrics_file.exists(), metrics_file
