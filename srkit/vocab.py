"""Shared words of every floor: image sizes, the two outputs, metrics, the baseline.

A model takes a 72x72 input and returns ``low_upsample`` (x2, 144x144, compared
with the target ``y2``) and, from step 03 on, ``high_upsample`` (x4, 288x288,
target ``y4``). Four metrics score every prediction, and ``bicubic`` names the
interpolation baseline in every table. These names are defined here once; the
modules that use them import them. Nothing here imports srkit.

A ``scale`` is always an upscaling factor (2 or 4), in tables, records, plots and
arguments alike; a side in pixels is a ``side`` (:func:`output_side` gives the
side of the output at a factor).
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
#: Output -> upscaling factor (its ``scale``) and the field name of its target.
OUTPUT_FACTORS = {LOW_OUTPUT: 2, HIGH_OUTPUT: 4}
OUTPUT_TARGETS = {LOW_OUTPUT: "y2", HIGH_OUTPUT: "y4"}
#: Upscaling factor -> the output that produces it.
FACTOR_OUTPUTS = {factor: name for name, factor in OUTPUT_FACTORS.items()}


def output_side(scale: int) -> int:
    """Side in pixels of a model's output (and target) at an upscaling factor.

    Args:
        scale: the upscaling factor, e.g. 2 or 4.

    Returns:
        ``LOW_SIZE * scale``: 144 for x2, 288 for x4.
    """
    return LOW_SIZE * int(scale)


def scale_label(scale: int) -> str:
    """How figures and sentences name an upscaling factor: ``"x2 (144 px)"``."""
    return f"x{int(scale)} ({output_side(scale)} px)"


#: Metric columns of every table, in display order, and which way is better.
METRICS = ("mse", "mae", "psnr", "ssim")
HIGHER_IS_BETTER = {"mse": False, "mae": False, "psnr": True, "ssim": True}

#: Model name of the bicubic-interpolation baseline rows.
BICUBIC = "bicubic"
