"""Shared words of every floor: image sizes, the two outputs, metrics, the baseline.

A model takes a 72x72 input and returns ``low_upsample`` (x2, 144x144, compared
with the target ``y2``) and, from step 03 on, ``high_upsample`` (x4, 288x288,
target ``y4``). Four metrics score every prediction, and ``bicubic`` names the
interpolation baseline in every table. These names are defined here once; the
modules that use them import them. Nothing here imports srkit.
"""

from __future__ import annotations

#: Sides in pixels of the network input and of the x2 and x4 targets.
LOW_SIZE = 72
MID_SIZE = 144
HIGH_SIZE = 288

#: The two outputs, in the order the models return them.
LOW_OUTPUT = "low_upsample"
HIGH_OUTPUT = "high_upsample"
OUTPUT_NAMES = (LOW_OUTPUT, HIGH_OUTPUT)
#: Output -> upscaling factor, side of its target, and the target's field name.
OUTPUT_FACTORS = {LOW_OUTPUT: 2, HIGH_OUTPUT: 4}
OUTPUT_SIDES = {LOW_OUTPUT: MID_SIZE, HIGH_OUTPUT: HIGH_SIZE}
OUTPUT_TARGETS = {LOW_OUTPUT: "y2", HIGH_OUTPUT: "y4"}
#: Upscaling factor -> the output that produces it.
FACTOR_OUTPUTS = {factor: name for name, factor in OUTPUT_FACTORS.items()}
#: Target side -> upscaling factor from the input.
SIDE_FACTORS = {side: side // LOW_SIZE for side in (MID_SIZE, HIGH_SIZE)}

#: Metric columns of every table, in display order, and which way is better.
METRICS = ("mse", "mae", "psnr", "ssim")
HIGHER_IS_BETTER = {"mse": False, "mae": False, "psnr": True, "ssim": True}

#: Model name of the bicubic-interpolation baseline rows.
BICUBIC = "bicubic"
