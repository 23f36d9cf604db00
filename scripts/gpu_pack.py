"""Prepare, size and collect the full-profile run on a lent GPU machine (JAX backend).

Three subcommands, used by ``scripts/gpu_full.sh``:

``pack`` (here, with network access to the package registry): fills the git-ignored
folder ``gpu_carry/`` with what the GPU machine lacks: ``wheels/`` (Keras,
papermill, jupytext, nbclient, nbformat, ipykernel and every dependency of theirs
that the machine's image does not hold, resolved by pip for the machine's Python
and platform) and ``train/`` and ``benchmarks/`` (training photographs and the Set5
and Set14 benchmark sets copied from ``../shared/data``), then prints the size of
everything that travels against the 64 MiB limit. srkit itself travels as the
checkout (the script puts the repository root on ``PYTHONPATH``).

``budgets`` (there): prints the ``-p NN.name=value`` overrides that fit the
training of all 11 models into a number of seconds. Images per second come from
a CSV of an earlier run on the same machine (``images_per_s.csv`` from
``collect``) when one is given, else from a FLOP estimate: each model's analytic
training FLOP per image (3x the forward convolutions) at an assumed sustained
rate per GPU times ``--devices`` (the run trains each model over every GPU with
one global batch), and at least a fixed time per optimizer step (batch drawing,
dispatch), which more devices do not shorten.
Budgets never exceed the full profile's own.

``collect`` (there): writes ``images_per_s.csv`` (one row per trained model, from
its ``history.csv`` and ``settings.json``) and packs the executed notebooks and the
run's records (``run.json``, metrics, histories, settings, GIFs; no model files)
into ``results.tar.gz``, split into parts of at most 15 MiB, since the machine
returns at most 8 files of 16 MiB each.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / "gpu_carry"
SHARED_DATA = ROOT.parent / "shared" / "data"
MIB = 2**20
CARRY_LIMIT_MIB = 64  # everything that travels: tracked files and carried folders
PART_BYTES = 15 * MIB  # one returned file holds at most 16 MiB
# What the notebooks need that the GPU machine's image lacks (plus their deps).
NEEDED = [
    "keras==3.15.1",
    "papermill",
    "jupytext",
    "nbclient",
    "nbformat",
    "ipykernel",
]
# Python packages of the GPU machines' image ('cuda'), from the device notes
# (KINDS.md, read 2026-11-17): these are not carried.
DEVICE_PACKAGES = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio
attrs botorch build certifi charset-normalizer chex click cloudpickle cmake colorama
contourpy coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x
cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax
fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax
jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint
packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests
rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server
tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug
wheel wrapt xarray xxhash yarl zipp
""".split()
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_26_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux_2_12_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
]
# Training photographs, in this order while they fit: the patch source draws 288 px
# windows, so photographs smaller than that on a side (most of T91) are left out.
TRAIN_SETS = ("BSDS200", "T91")
MIN_SIDE = 288
BENCHMARK_SETS = ("Set5", "Set14")
TRAIN_MIB = 30  # training photographs carried, at most

# Which zoo models each step notebook trains, with the full profile's budgets.
STEP_MODELS = {
    "02": ["simple_model_nearest", "simple_model_bilinear"],
    "03": ["multi_upsampling_model"],
    "04": ["residual_block_model"],
    "05": ["dilated_conv_block_model"],
    "06": ["vgg_feature_extract_model"],
    "07": ["dts_model"],
    "08": ["dts_dilated_conv_block_model"],
    "09": ["dts_dilated_conv_ext_block_model"],
    "10": ["dts_dilated_conv_ext_block_ssim_model"],
    "11": ["dts_dilated_conv_ext_block_ssim_psnr_model"],
}
FULL_STEPS = {"02": 5000, "03": 5000, "04": 5000, "05": 5000, "06": 5000, "07": 5000}
FULL_STEPS.update({"08": 20000, "09": 20000, "10": 20000, "11": 20000})
RETRAIN_SHARE = 0.2  # step 11: the second round's share of R4's time
BATCH_SIZE = 16  # the full profile's batch
# Shares of the training seconds: the seven small models together, each R model.
SMALL_SHARE = 0.25
# The FLOP estimate (used until a measured images_per_s.csv exists): sustained
# bfloat16 training rate of convolutions on an H100 (a fifth of the ~790 TFLOP/s
# matmul figure measured on these machines), and the least time of one optimizer
# step (batch drawn on the CPU, dispatch, history).
ASSUMED_GFLOP_S = 150_000.0
MIN_STEP_S = 0.008
TRAIN_FLOP_FACTOR = 3
EVALS_PER_RUN = 5  # validations, checkpoints and GIF frames per trained model


def _run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _tracked_bytes() -> int:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = [ROOT / name.decode() for name in listed if name]
    return sum(p.stat().st_size for p in paths if p.is_file())


def resolve_wheels(python_version: str, needed: list[str], carry: Path) -> list[str]:
    """``name==version`` of every wheel the needed packages pull in, minus the image's.

    pip resolves ``needed`` for CPython ``python_version`` on manylinux x86-64
    (binary wheels only, ignoring what is installed here).
    """
    report = carry / "resolve.json"
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            *platforms,
            "--target",
            str(carry / "unused-target"),
            "--report",
            str(report),
            *needed,
        ]
    )
    installs = json.loads(report.read_text())["install"]
    report.unlink()
    present = {_normal(name) for name in DEVICE_PACKAGES}
    pins = []
    for item in installs:
        name = item["metadata"]["name"]
        if _normal(name) not in present:
            pins.append(f"{name}=={item['metadata']['version']}")
    return sorted(pins, key=str.lower)


def pack(arguments) -> int:
    carry = Path(arguments.carry)
    wheels = carry / "wheels"
    if wheels.exists():
        shutil.rmtree(wheels)
    wheels.mkdir(parents=True)
    pins = resolve_wheels(arguments.python_version, NEEDED, carry)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            arguments.python_version,
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(wheels),
            *pins,
        ]
    )
    data = Path(arguments.data).expanduser()
    for name in ("train", "benchmarks"):
        if (carry / name).exists():
            shutil.rmtree(carry / name)
    budget = arguments.train_mib * MIB
    used = 0
    for subset in TRAIN_SETS:
        for photo in sorted((data / "train" / subset).iterdir()):
            size = photo.stat().st_size
            if used + size > budget:
                break
            with Image.open(photo) as image:
                if min(image.size) < MIN_SIDE:
                    continue
            target = carry / "train" / subset / photo.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(photo, target)
            used += size
    for subset in BENCHMARK_SETS:
        shutil.copytree(data / "benchmarks" / subset, carry / "benchmarks" / subset)
    sizes = {
        "wheels": _folder_bytes(wheels),
        "train": _folder_bytes(carry / "train"),
        "benchmarks": _folder_bytes(carry / "benchmarks"),
        "checkout (tracked and untracked files)": _tracked_bytes(),
    }
    counts = {
        subset: len(list((carry / "train" / subset).glob("*")))
        for subset in TRAIN_SETS
        if (carry / "train" / subset).is_dir()
    }
    print(f"{len(pins)} wheels: {' '.join(pins)}")
    print(f"training photographs: {counts}")
    for what, size in sizes.items():
        print(f"{what}: {size / MIB:.1f} MiB")
    total = sum(sizes.values()) / MIB
    print(f"travels in all: {total:.1f} MiB of {CARRY_LIMIT_MIB} MiB")
    if total > CARRY_LIMIT_MIB:
        print("too large: lower --train-mib", file=sys.stderr)
        return 1
    return 0


def _gflop_per_image() -> dict[str, float]:
    """Forward GFLOP of one 72x72 image per trained model (cached: builds take s)."""
    cache = Path(tempfile.gettempdir()) / "srkit_gflop_per_image.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    from srkit import bench, models

    found = {
        name: bench.conv_flops(models.build(name), 72, 72) / 1e9
        for names in STEP_MODELS.values()
        for name in names
    }
    cache.write_text(json.dumps(found))
    return found


def _read_images_per_s(path: Path) -> dict[str, float]:
    import pandas as pd

    table = pd.read_csv(path)
    return dict(zip(table["model"], table["images_per_s"], strict=True))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def budgets(arguments) -> int:
    """Print the overrides, one ``-p`` pair per line, and the plan on stderr."""
    gflop = _gflop_per_image()
    measured = {}
    if arguments.images_per_s and Path(arguments.images_per_s).is_file():
        measured = _read_images_per_s(Path(arguments.images_per_s))
    seconds = float(arguments.seconds)
    rate_gflop_s = ASSUMED_GFLOP_S * arguments.devices
    small_steps = [step for step in STEP_MODELS if step < "08"]
    small_models = sum(len(STEP_MODELS[step]) for step in small_steps)
    share = {
        step: SMALL_SHARE * len(STEP_MODELS[step]) / small_models
        for step in small_steps
    }
    share.update({step: (1 - SMALL_SHARE) / 4 for step in ("08", "09", "10", "11")})
    overrides, plan = [], []
    for step, models in STEP_MODELS.items():
        per_step_s = 0.0
        for name in models:
            rate = measured.get(name)
            if rate is None or not math.isfinite(rate) or rate <= 0:
                flop_s = BATCH_SIZE * TRAIN_FLOP_FACTOR * gflop[name] / rate_gflop_s
                per_step_s += max(MIN_STEP_S, flop_s)
            else:
                per_step_s += BATCH_SIZE / rate
        budget_s = seconds * share[step]
        if step == "11":
            retrain = int(budget_s * RETRAIN_SHARE / per_step_s)
            budget_s *= 1 - RETRAIN_SHARE
            retrain = max(EVALS_PER_RUN, min(5000, retrain))
            overrides += [
                f"11.retrain_steps={retrain}",
                f"11.retrain_eval_every={max(1, retrain // EVALS_PER_RUN)}",
            ]
        steps = max(EVALS_PER_RUN, min(FULL_STEPS[step], int(budget_s / per_step_s)))
        overrides += [
            f"{step}.steps={steps}",
            f"{step}.eval_every={max(1, steps // EVALS_PER_RUN)}",
        ]
        source = "measured" if all(n in measured for n in models) else "FLOP estimate"
        plan.append(
            f"{step}: {steps} steps x {per_step_s * 1000:.1f} ms ({source}) = "
            f"{steps * per_step_s:.0f} s"
        )
    print("\n".join(plan), file=sys.stderr)
    for item in overrides:
        print(f"-p {item}")
    return 0


def _history_rows(run_dir: Path, peak: dict) -> list[dict]:
    import pandas as pd

    from srkit.layout import HISTORY_FILE, RunFolder, model_files

    gflop = _gflop_per_image()
    rows = []
    for history_file in sorted(RunFolder(run_dir).models.glob(f"*/{HISTORY_FILE}")):
        folder = history_file.parent
        try:
            settings = json.loads(model_files(folder)["settings"].read_text())
            history = pd.read_csv(history_file)
        except (OSError, ValueError):
            continue
        if not len(history) or "train_time_s" not in history:
            continue
        batch = int(settings.get("batch_size", 0))
        seconds = float(history["train_time_s"].sum())
        steps = int(history["step"].max())
        rate = batch * steps / seconds if seconds > 0 else float("nan")
        name = settings.get("model", folder.name)
        tflop_s = rate * TRAIN_FLOP_FACTOR * gflop.get(name, float("nan")) / 1e3
        precision = settings.get("precision", "")
        key = "matmul_bfloat16" if "bfloat16" in str(precision) else "matmul_float32"
        peak_tflop_s = peak.get(key, float("nan")) / 1e3
        rows.append(
            {
                "model": name,
                "folder": folder.name,
                "backend": settings.get("backend"),
                "precision": precision,
                "batch_size": batch,
                "steps": steps,
                "train_s": round(seconds, 2),
                "images_per_s": round(rate, 1),
                "gflop_per_image": round(gflop.get(name, float("nan")), 3),
                "train_tflop_s": round(tflop_s, 2),
                "pct_of_peak": round(100 * tflop_s / peak_tflop_s, 1),
                "peak": key,
            }
        )
    return rows


def _result_files(run_dir: Path) -> list[Path]:
    """The records of a run that travel back: no model files, no data cache."""
    from srkit.layout import RunFolder, model_files

    run = RunFolder(run_dir)
    files = [run.records, run.params]
    # each step's record and its kernel's own output (XLA and CUDA messages)
    for folder in sorted(p for p in run.steps.glob("*") if p.is_dir()):
        files += [run.step_metrics(folder.name), run.step_kernel_log(folder.name)]
    for folder in sorted(p for p in run.models.glob("*") if p.is_dir()):
        model = model_files(folder)
        gifs = folder.glob(run.gif(folder.name, "*").name)
        files += [model["history"], model["settings"], *sorted(gifs)]
    return [path for path in files if path.is_file()]


def collect(arguments) -> int:
    import pandas as pd

    from srkit.layout import STEPS_PAGE_DIR

    run_dir, out = Path(arguments.run_dir), Path(arguments.out)
    out.mkdir(parents=True, exist_ok=True)
    peak = {}
    if arguments.peaks and Path(arguments.peaks).is_file():
        peak = json.loads(Path(arguments.peaks).read_text())
    rows = _history_rows(run_dir, peak)
    pd.DataFrame(rows).to_csv(out / "images_per_s.csv", index=False)
    print(pd.DataFrame(rows).to_string(index=False))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for notebook in sorted((ROOT / STEPS_PAGE_DIR).glob("*.ipynb")):
            archive.add(notebook, f"notebooks/{notebook.name}")
        for path in _result_files(run_dir):
            archive.add(path, f"run/{path.relative_to(run_dir)}")
    data = buffer.getvalue()
    parts = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    for number, part in enumerate(parts):
        (out / f"results.tar.gz.part{number}").write_bytes(part)
    print(
        f"results.tar.gz: {len(data) / MIB:.1f} MiB in {len(parts)} part(s) "
        "(cat results.tar.gz.part* | tar xz)"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/gpu_pack.py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    pack_parser = commands.add_parser("pack", help="fill gpu_carry/ (here)")
    pack_parser.add_argument(
        "--python-version",
        default="3.12",
        help="the GPU machine's Python (default: 3.12); the local one to test here",
    )
    pack_parser.add_argument("--data", default=str(SHARED_DATA))
    pack_parser.add_argument(
        "--carry", default=str(CARRY), help="folder to fill (default: gpu_carry/)"
    )
    pack_parser.add_argument("--train-mib", type=float, default=TRAIN_MIB)
    budget_parser = commands.add_parser("budgets", help="print the -p overrides")
    budget_parser.add_argument("--seconds", type=float, required=True)
    budget_parser.add_argument("--images-per-s", help="images_per_s.csv of a try")
    budget_parser.add_argument(
        "--devices",
        type=_positive_int,
        default=1,
        help="GPUs the run trains on (scales the FLOP estimate; default 1)",
    )
    collect_parser = commands.add_parser("collect", help="CSV and result archive")
    collect_parser.add_argument("run_dir")
    collect_parser.add_argument("out")
    collect_parser.add_argument("--peaks", help="peaks.json from srkit.bench")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    command = {"pack": pack, "budgets": budgets, "collect": collect}
    return command[arguments.command](arguments)


if __name__ == "__main__":
    raise SystemExit(main())
