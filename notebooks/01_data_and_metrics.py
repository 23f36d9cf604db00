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
# # 01 · Data and metrics
#
# What does a training example look like, and how do we score a prediction? This page
# prepares the images every later step reads, shows a few of them at the three sizes,
# defines the four metrics and the seven losses, and checks our metric code against
# reference implementations on real images.
#
# It writes the prepared data to the run's cache and the bicubic baseline of the
# validation images to `metrics.json`.

# %% tags=["parameters", "remove-cell"]
# srkit: data-sets n_images
profile: str = "smoke"  # parameter profile this page ran with
run_dir: str = ""  # run folder (absolute); empty means <project>/runs/notebook
data_source: str = "sample"  # sample | folder:PATH | voc2007
data_mode: str = ""  # resize | crop; empty means the source's default
n_images: int = 24  # images prepared; about 80 % train, 20 % validation
seed: int = 0  # seed for crops and split

# %% tags=["hide-input"]
from srkit import data, evaluate, images, losses, plots, records, report

STEP = "01_data_and_metrics"
RUN = report.run_folder(run_dir)
split = data.prepare(
    data_source,
    n_images=n_images,
    seed=seed,
    mode=data_mode or None,
    cache_dir=RUN.data,
)
report.banner(profile, split)

# %% [markdown]
# ## Data
#
# Each example is one photograph at three sizes. The 288 px version is the x4 target;
# the 144 px target (x2) and the 72 px network input are computed from it by bicubic
# downscaling with antialiasing, the convention of MATLAB's `imresize` that published
# super-resolution results use. Pixels are RGB values scaled to [0, 1].
#
# - `sample` (the default) cuts random 288 px crops, some mirrored, out of the colour
#   photographs that ship inside scikit-image and Matplotlib, so a run needs no
#   download. Validation crops come from photographs that no training crop comes from.
# - `folder:PATH` uses every image under a folder; `voc2007` downloads PASCAL VOC 2007
#   and checks its checksum. With `resize` mode a whole image is resized to 288 px, as
#   the original study did.
#
# The prepared split of this run:

# %%
report.markdown_table(data.describe(split))

# %% tags=["hide-input"] mystnb={"image": {"alt": "Three validation images, each as the 72 px network input and its 144 px and 288 px targets, shown at the same display size"}, "figure": {"caption": "Three validation examples at the three sizes, each shown at the same display size so the loss of detail is visible.", "name": "sample-grid-01"}}
plots.sample_grid(split.val, n=3)

# %% [markdown]
# ## Metrics
#
# All metrics compare a prediction $\hat y$ with its target $y$, both with $N$ values
# in [0, 1] (pixels times channels). They are computed per image and then averaged over
# images.
#
# - **Mean squared error**: $\mathrm{MSE} = \frac{1}{N}\sum_i (y_i - \hat y_i)^2$.
#   Lower is better; it punishes large errors much more than small ones.
# - **Mean absolute error**: $\mathrm{MAE} = \frac{1}{N}\sum_i |y_i - \hat y_i|$.
#   Lower is better; every error counts in proportion to its size.
# - **Peak signal-to-noise ratio**, in decibels, with the peak value $1$:
#   $\mathrm{PSNR} = 10 \log_{10} \frac{1}{\mathrm{MSE}}$. Higher is better; each
#   halving of the MSE adds about 3 dB. Identical images would give an infinite value,
#   so the MSE is floored and PSNR is capped at a documented 100 dB.
# - **Structural similarity** compares local means $\mu$, variances $\sigma^2$ and the
#   covariance $\sigma_{y\hat y}$ in an 11x11 Gaussian window ($\sigma = 1.5$), per
#   colour channel, then averages the map:
#
#   $$
#   \mathrm{SSIM} = \frac{(2\mu_y\mu_{\hat y} + C_1)(2\sigma_{y\hat y} + C_2)}
#   {(\mu_y^2 + \mu_{\hat y}^2 + C_1)(\sigma_y^2 + \sigma_{\hat y}^2 + C_2)},\quad
#   C_1 = (0.01)^2,\ C_2 = (0.03)^2 .
#   $$
#
#   It is 1 for identical images and drops when contrast or structure differ, even if
#   the mean colour is right. This is the definition of `tf.image.ssim`.
#
# ## Losses
#
# The networks minimise one of seven losses, each built from the metrics above and
# summed over the outputs of a model:

# %%
report.markdown_table(losses.table())

# %% [markdown]
# ## Our metrics against reference implementations
#
# The same metric code scores the training (as Keras metrics) and the tables (in
# float64 per image). To check it, we compare it with scikit-image and TensorFlow on
# the bicubic upscaling of this run's validation images to 144 px. The last column is
# the largest difference on any single image; TensorFlow works in 32-bit floats, so its
# differences are larger than scikit-image's.

# %%
upscaled = images.bicubic_upscale(split.val.x, 2)
report.metric_agreement(split.val.y2, upscaled)

# %% [markdown]
# ## The baseline every model must beat
#
# Bicubic interpolation of the 72 px inputs, scored on the validation images. Every
# later table repeats this row.

# %%
baseline = evaluate.evaluate(None, split.val)
baseline.table

# %% [markdown]
# ## Takeaways
#
# PSNR and SSIM do not always agree: PSNR only sees the size of pixel errors, SSIM their
# structure. We report both, and the result models use losses that combine them.

# %% tags=["remove-cell"]
metrics_file = records.write_metrics(RUN.step_metrics(STEP), [baseline], step=STEP)
assert metrics_file.exists(), metrics_file
