"""The speed section of "About this run": how fast each model trained, from records.

Three records feed it, each written while the run happened, so nothing on the
section is typed:

- a step's ``metrics.json`` (one record per trained model: ``steps``,
  ``batch_size``, ``window``, ``train_images_per_s``, ``precision``) and the
  model's ``history.csv`` (seconds spent training per evaluation interval);
- the step's record in ``run.json``: the 1, 5 and 15 minute load averages when the
  step started and ended (:data:`LOAD_START`, :data:`LOAD_END`) and the float32
  matmul rate measured before it (:data:`STEP_PEAK`);
- the run's speed probe (``run.json`` key :data:`PROBE_KEY`), which ``srkit run``
  takes once before it executes a training step (:func:`run_probe`): a short timing
  of ``keras.ops.matmul`` in float32 on the backend and device the steps use
  (``srkit.bench.matmul_gflops``) and, from the zoo's specification, each model's
  forward FLOP per input pixel (``srkit.bench.conv_flops``).

The share of the peak is an estimate: a training step is counted as
``srkit.bench.TRAIN_FLOP_FACTOR`` times the forward convolutions of its batch, and
compared with a large float32 matrix multiply, the machine's practical peak. A
record without one of these facts (a run made before they were recorded) shows
"not recorded", never a number from elsewhere.

The probe runs in a child Python process, so that this module, the pipeline and the
book never import Keras or a backend (the child imports ``srkit.bench``).
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from srkit.environment import BACKEND_LABELS
from srkit.layout import HISTORY_FILE, RunFolder

#: ``run.json`` key of the speed probe (:func:`run_probe`).
PROBE_KEY = "speed_probe"
#: Keys of a step record in ``run.json``: load averages (1, 5, 15 min) when the
#: step started and ended, and the probe's float32 matmul GFLOP/s it ran after.
LOAD_START = "load_average_start"
LOAD_END = "load_average_end"
STEP_PEAK = "matmul_float32_gflops"
#: The parameter that marks a training step (its budget in optimizer steps).
TRAINING_PARAMETER = "steps"
#: Timings of the matmul after one warm-up (the fastest is kept): about a second
#: on a 2-core CPU with 2048 x 2048 matrices.
PROBE_REPEATS = 3
#: Input side at which the zoo's FLOP are counted. Every zoo convolution has
#: stride 1 and "same" padding, so FLOP per input pixel do not depend on the side.
FLOP_SIDE = 24
#: A first TensorFlow or CUDA start, and building the zoo, can be slow.
PROBE_TIMEOUT_S = 600
NOT_RECORDED = "not recorded"

# What the child process runs: prints one line "=<probe as JSON>".
_PROBE_CODE = """
import json, time
from srkit import bench, environment, models
devices = environment.accelerators()
size, calls = (
    (bench.ACCELERATOR_MATMUL_SIZE, bench.ACCELERATOR_CALLS)
    if environment.on_accelerator() else (bench.MATMUL_SIZE, 1)
)
start = time.perf_counter()
rates = bench.matmul_gflops(size, {repeats}, calls=calls)
seconds = time.perf_counter() - start
flop = {{}}
for name in models.MODEL_NAMES:
    count = bench.conv_flops(models.build(name), {side}, {side})
    flop[name] = count / {side} ** 2
print("=" + json.dumps({{
    "backend": environment.backend_name(),
    "devices": devices,
    "matmul_size": size,
    "matmul_calls": calls,
    "matmul_repeats": {repeats},
    "matmul_float32_gflops": rates["keras"],
    "matmul_numpy_gflops": rates.get("numpy"),
    "matmul_seconds": seconds,
    "train_flop_factor": bench.TRAIN_FLOP_FACTOR,
    "flop_side": {side},
    "flop_per_input_pixel": flop,
}}))
"""


def load_average_now() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the system has none."""
    if not hasattr(os, "getloadavg"):  # not on Windows
        return None
    return [round(value, 2) for value in os.getloadavg()]


def needs_probe(params: Iterable[Mapping]) -> bool:
    """Whether any of these steps trains (declares the ``steps`` budget).

    Args:
        params: the resolved parameters of the steps about to execute.
    """
    return any(TRAINING_PARAMETER in values for values in params)


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def run_probe(timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """Time a float32 matmul and count the zoo's FLOP, in a child Python process.

    The child uses this process's environment (so the Keras backend and devices
    of the step notebooks) and this srkit: ``srkit.bench.matmul_gflops`` on
    2048 x 2048 matrices (8192 on an accelerator, several per timing), fastest
    of :data:`PROBE_REPEATS`, then ``srkit.bench.conv_flops`` of every zoo model.

    Args:
        timeout_s: seconds before the child is given up.

    Returns:
        The probe record: ``measured`` (time), ``load_average`` (at the start),
        ``seconds`` (the whole probe), then ``backend``, ``devices``,
        ``matmul_size``, ``matmul_calls``, ``matmul_repeats``,
        ``matmul_float32_gflops`` (``keras.ops.matmul``), ``matmul_numpy_gflops``,
        ``matmul_seconds``, ``train_flop_factor``, ``flop_side`` and
        ``flop_per_input_pixel`` (model -> forward FLOP per input pixel). When the
        child fails, ``error`` (its last line) replaces the measured keys: a
        failed probe never stops a run.
    """
    record = {"measured": _now(), "load_average": load_average_now()}
    code = _PROBE_CODE.format(repeats=PROBE_REPEATS, side=FLOP_SIDE)
    source_root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
    environment = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=environment,
        )
    except (OSError, subprocess.SubprocessError) as error:
        record["error"] = f"{type(error).__name__}: {error}"
    else:
        found = [ln[1:] for ln in result.stdout.splitlines() if ln.startswith("=")]
        if result.returncode == 0 and found:
            record.update(json.loads(found[-1]))
        else:
            lines = (result.stderr or result.stdout).strip().splitlines()
            record["error"] = lines[-1] if lines else f"exit {result.returncode}"
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def probe_line(probe: Mapping) -> str:
    """One progress line saying what the probe measured (or why it did not)."""
    if "error" in probe:
        return f"speed probe: failed ({probe['error']}); the speed table will say so"
    return (
        f"speed probe: float32 matmul {probe['matmul_float32_gflops']:.1f} GFLOP/s "
        f"({_device_words(probe, quote='')}), load average "
        f"{_load_words(probe.get('load_average'))} ({probe['seconds']:.0f} s)"
    )


def step_start_facts(records: Mapping, params: Mapping) -> dict:
    """What a step's ``run.json`` record gets when it starts executing.

    Args:
        records: the run's records so far (the probe under :data:`PROBE_KEY`).
        params: the step's resolved parameters.

    Returns:
        ``load_average_start`` (now), ``load_average_end`` (None until the step
        ends) and, for a training step, the probe's float32 matmul GFLOP/s (None
        when the probe failed).
    """
    facts = {LOAD_START: load_average_now(), LOAD_END: None}
    if TRAINING_PARAMETER in params:
        facts[STEP_PEAK] = (records.get(PROBE_KEY) or {}).get("matmul_float32_gflops")
    return facts


# ------------------------------------------------------------------ the table


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _steady_seconds(history: Path, steps) -> tuple[float | None, int | None]:
    """Seconds per step after the first interval (which holds the tracing).

    Returns:
        The seconds (None without ``history.csv``, with a single interval, or when
        the history does not end at the record's ``steps``: the folder holds
        another training) and the number of intervals (None when unknown).
    """
    try:
        with history.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
        points = [(int(float(r["step"])), float(r["train_time_s"])) for r in rows]
    except (OSError, KeyError, ValueError, TypeError):
        return None, None
    if not points or steps is None or points[-1][0] != steps:
        return None, None
    done = points[-1][0] - points[0][0]
    seconds = sum(second for _, second in points[1:])
    steady = seconds / done if done > 0 and seconds > 0 else None
    return steady, len(points)


def speed_rows(records: Mapping, run_dir) -> list[dict]:
    """One row per trained model of the run, from its records.

    Args:
        records: the run's ``run.json`` content.
        run_dir: the run folder (its ``steps/*/metrics.json`` and
            ``models/<name>/history.csv``).

    Returns:
        Dicts with ``stem``, ``model``, ``precision``, ``batch_size``, ``window``,
        ``steps``, ``images_per_s``, ``seconds_per_step`` (``batch_size /
        images_per_s``, the first interval included), ``steady_seconds_per_step``
        (after the first interval), ``intervals`` (of ``history.csv``),
        ``gflop_per_step`` (estimate),
        ``gflop_per_s`` (from the steady seconds when known), ``peak_gflops``,
        ``share`` (of that peak; None for a precision other than float32),
        ``load_start`` and ``load_end`` (1, 5, 15 min). A fact the records lack
        is None.
    """
    folder = RunFolder(run_dir)
    steps = records.get("steps") or {}
    probe = records.get(PROBE_KEY) or {}
    flop_per_pixel = probe.get("flop_per_input_pixel") or {}
    factor = _number(probe.get("train_flop_factor"))
    rows = []
    for path in folder.all_step_metrics():
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        stem = path.parent.name
        step = steps.get(stem) or {}
        for model in document.get("models") or []:
            if _number(model.get("train_images_per_s")) is None and not model.get(
                "steps"
            ):
                continue  # not trained here (bicubic, a loaded model)
            rows.append(_row(folder, stem, step, model, flop_per_pixel, factor))
    return rows


def _row(folder, stem, step, model, flop_per_pixel, factor) -> dict:
    name = model.get("model")
    batch = _number(model.get("batch_size"))
    window = _number(model.get("window"))
    if window is None:  # an older metrics.json: the step's parameter, if any
        window = _number((step.get("params") or {}).get("window"))
    images_per_s = _number(model.get("train_images_per_s"))
    seconds = batch / images_per_s if batch and images_per_s else None
    history = folder.model(name) / HISTORY_FILE
    steady, intervals = _steady_seconds(history, model.get("steps"))
    per_pixel = _number(flop_per_pixel.get(name))
    gflop = None
    if per_pixel is not None and factor and batch and window:
        gflop = factor * per_pixel * window**2 * batch / 1e9
    used = steady or seconds
    rate = gflop / used if gflop is not None and used else None
    peak = _number(step.get(STEP_PEAK))
    precision = model.get("precision")
    share = (
        rate / peak if rate is not None and peak and precision == "float32" else None
    )
    return {
        "stem": stem,
        "model": name,
        "precision": precision,
        "batch_size": batch,
        "window": window,
        "steps": model.get("steps"),
        "images_per_s": images_per_s,
        "seconds_per_step": seconds,
        "steady_seconds_per_step": steady,
        "intervals": intervals,
        "gflop_per_step": gflop,
        "gflop_per_s": rate,
        "peak_gflops": peak,
        "share": share,
        "load_start": step.get(LOAD_START),
        "load_end": step.get(LOAD_END),
    }


def _load_words(load) -> str:
    """The 1, 5 and 15 minute load averages as "a/b/c"."""
    if not isinstance(load, list | tuple) or len(load) != 3:
        return NOT_RECORDED
    return "/".join(f"{value:.2f}" for value in load)


def _load_cell(start, end) -> str:
    """The 1 minute load average at a step's start and end: "1.94 → 2.74"."""
    shown = [
        f"{load[0]:.2f}" if isinstance(load, list | tuple) and load else None
        for load in (start, end)
    ]
    if shown == [None, None]:
        return NOT_RECORDED
    return " → ".join(value or NOT_RECORDED for value in shown)


def _device_words(probe: Mapping, quote: str = "`") -> str:
    backend = probe.get("backend") or "the backend"
    name = BACKEND_LABELS.get(backend, backend)
    devices = ", ".join(probe.get("devices") or []) or "CPU"
    size = probe.get("matmul_size")
    return f"{quote}keras.ops.matmul{quote}, {size} x {size}, {name} on {devices}"


def _shown(value, form: str) -> str:
    return NOT_RECORDED if value is None else format(value, form)


def _steady_cell(row: dict) -> str:
    if row["steady_seconds_per_step"] is not None:
        return f"{row['steady_seconds_per_step']:.3f}"
    return "one interval" if row["intervals"] == 1 else NOT_RECORDED


def _share_cell(row: dict) -> str:
    if row["share"] is not None:
        return f"{row['share']:.0%}"
    if row["gflop_per_s"] is not None and row["peak_gflops"] is not None:
        return f"not comparable ({row['precision']})"
    return NOT_RECORDED


def _machine_lines(records: Mapping, probe: Mapping) -> list[str]:
    hardware = records.get("hardware") or {}
    cpu = hardware.get("cpu") or NOT_RECORDED
    cores = hardware.get("cores")
    gpus = "; ".join(hardware.get("gpus") or []) or "none"
    backend = hardware.get("backend")
    backend = BACKEND_LABELS.get(backend, backend) or NOT_RECORDED
    threads = f", {cores} CPU threads" if cores else ""
    lines = [f"Machine: {cpu}{threads}; GPUs: {gpus}; Keras backend: {backend}.", ""]
    if not probe:
        lines += [
            "Peak: not recorded (this run was made before `srkit run` measured a "
            "matmul), so the FLOP and the share of the peak are not shown.",
            "",
        ]
    elif "error" in probe:
        lines += [
            f"Peak: not recorded: the speed probe of {probe.get('measured')} failed "
            f"({probe['error']}).",
            "",
        ]
    else:
        numpy_rate = _number(probe.get("matmul_numpy_gflops"))
        numpy_words = (
            f" (NumPy's own matmul on the CPU: {numpy_rate:.1f} GFLOP/s)"
            if numpy_rate is not None
            else ""
        )
        lines += [
            f"Peak: a float32 matrix multiply, {_device_words(probe)}, fastest of "
            f"{probe.get('matmul_repeats')} timings, ran at "
            f"{probe['matmul_float32_gflops']:.1f} GFLOP/s{numpy_words} when "
            f"`srkit run` started its training steps ({probe.get('measured')}, "
            f"load average {_load_words(probe.get('load_average'))}).",
            "",
        ]
    return lines


def _row_names(rows: list[dict], labels: Mapping[str, str]) -> dict:
    """(stem, model) -> the row's name: the step's label (``07``, ``R1``; the stem
    without one), followed by what tells its models apart when the step trained
    several (``02 nearest``, ``02 bilinear``), so the table stays narrow."""
    models: dict[str, list[str]] = {}
    for row in rows:
        models.setdefault(row["stem"], []).append(str(row["model"]))
    names = {}
    for stem, own in models.items():
        label = labels.get(stem, stem)
        common = os.path.commonprefix(own)[: os.path.commonprefix(own).rfind("_") + 1]
        for model in own:
            part = model[len(common) :] if len(own) > 1 else ""
            names[stem, model] = f"{label} {part}" if part else label
    return names


def speed_section(
    records: Mapping, run_dir, labels: Mapping[str, str] | None = None
) -> str:
    """Markdown of the "Training speed" section, from a run's records.

    Args:
        records: the run's ``run.json`` content (empty: no section).
        run_dir: the run folder (None: no section).
        labels: stem -> the step's reader label (``02``, ``R1``); the stem when
            absent.

    Returns:
        The section (a level-2 heading, the machine and peak, a table with one
        row per trained model, how each column is computed), or "" when the run
        has no record of a trained model.
    """
    if not records or run_dir is None:
        return ""
    rows = speed_rows(records, run_dir)
    if not rows:
        return ""
    probe = records.get(PROBE_KEY) or {}
    lines = ["## Training speed", ""]
    lines += [
        "How fast each model trained in this run, from the run's own records: the "
        "step records (`metrics.json`), each model's `history.csv`, and `run.json`.",
        "",
    ]
    lines += _machine_lines(records, probe)
    header = [
        "model",
        "batch × window",
        "s per step",
        "after the 1st interval",
        "images/s",
        "GFLOP per step (est.)",
        "GFLOP/s",
        "share of the matmul (est.)",
        "load (1 min), start → end",
    ]
    names = _row_names(rows, labels or {})
    body = []
    for row in rows:
        batch, window = row["batch_size"], row["window"]
        shape = (
            f"{batch:.0f} × {window:.0f}²"
            if batch is not None and window is not None
            else NOT_RECORDED
        )
        body.append(
            [
                names[row["stem"], row["model"]],
                shape,
                _shown(row["seconds_per_step"], ".3f"),
                _steady_cell(row),
                _shown(row["images_per_s"], ".1f"),
                _shown(row["gflop_per_step"], ".2f"),
                _shown(row["gflop_per_s"], ".1f"),
                _share_cell(row),
                _load_cell(row["load_start"], row["load_end"]),
            ]
        )
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    lines += [
        "",
        "Models: "
        + "; ".join(f"{name} is `{model}`" for (_, model), name in names.items())
        + ".",
    ]
    factor = probe.get("train_flop_factor", "`srkit.bench.TRAIN_FLOP_FACTOR`")
    lines += [
        "",
        "*Seconds per step*: the seconds spent training (validation and saving "
        "left out) over the steps, the first evaluation interval included, which "
        "also traces and compiles the step; *images/s* is the batch over that. "
        "*After the first interval*: the same from the later intervals of "
        "`history.csv`. "
        f"*GFLOP per step*: {factor} times the forward convolutions of one batch "
        "(forward, gradients of activations and of weights), counted by "
        "`srkit.bench.conv_flops` from the zoo's specification at the training "
        "window's input side; bias, activations and upsampling are left out. "
        "*GFLOP/s* divides it by the seconds per step after the first interval "
        "(or with it, where that is all there is), and the *share* compares that "
        "with the float32 matmul measured before the step (float32 steps only): "
        "an estimate of how much of the machine's practical peak the step used. "
        "The *load average* over the last minute was read when the step started "
        "and ended; one above the machine's CPU threads means other work competed "
        "for them.",
        "",
    ]
    above = [row["model"] for row in rows if (row["share"] or 0) > 1]
    if above:
        lines += [
            f"{len(above)} of the {len(rows)} models ran above that matmul's "
            "counted rate: on this machine the matmul is no ceiling for them, and "
            "their share is a comparison, not a fraction of a limit.",
            "",
        ]
    return "\n".join(lines)
