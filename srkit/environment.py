"""Facts about the machine and the software a run or a benchmark ran on.

This module owns every probe of the environment: package versions, the processor
(model name, feature flags, bfloat16 instructions), memory, the git commit, the
Keras backend in use and the accelerators that backend sees. The run records
(``run.json``), the page banners, a model's ``settings.json`` and the benchmarks
all read these facts from here, so each is measured one way.

Importing this module is cheap: it imports neither Keras nor a backend. The
functions that need the backend import it when called (:func:`accelerators`,
:func:`on_accelerator`), or ask a child process (:func:`collect_hardware`, so that
the command line never loads TensorFlow or JAX itself).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from srkit import __version__

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"  # what Keras uses with no setting
# How pages spell the Keras backends that records name in lower case.
BACKEND_LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
VERSION_PACKAGES = (
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "torch",
    "numpy",
    "pandas",
    "scipy",
    "scikit-image",
    "opencv-python-headless",
    "matplotlib",
    "papermill",
    "jupytext",
    "jupyter-book",
)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of bf16 units
PROBE_TIMEOUT_S = 180  # a first TensorFlow or CUDA start can be slow


def backend_name() -> str:
    """The Keras backend this process uses, or will use once Keras is imported.

    Once Keras is imported its own answer counts; before that, the rule Keras
    follows: ``KERAS_BACKEND``, then ``~/.keras/keras.json`` (``KERAS_HOME``),
    then TensorFlow.
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser()
    with contextlib.suppress(OSError, ValueError, AttributeError):
        configured = json.loads((Path(home) / "keras.json").read_text()).get("backend")
        if configured:
            return str(configured)
    return DEFAULT_BACKEND


def backend_installed(backend: str) -> bool:
    """Whether the package of a Keras backend is installed (without importing it)."""
    package = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    try:
        importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def collect_versions() -> dict[str, str]:
    """Versions of Python, srkit and the main packages (without importing them).

    Packages that are not installed are left out; ``"keras backend"`` names the
    backend in use (:func:`backend_name`).
    """
    versions = {"python": platform.python_version(), "srkit": __version__}
    for package in VERSION_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    versions["keras backend"] = backend_name()
    return versions


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    for line in _cpuinfo().splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str] | None:
    """The processor's feature flags (``/proc/cpuinfo``), or None where unreadable."""
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return None


def cpu_has_bf16() -> bool | None:
    """Whether the CPU lists bfloat16 instructions; None when it cannot be read."""
    flags = cpu_flags()
    if flags is None:
        return None
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def ram_gib() -> float | None:
    """Total memory in GiB, rounded to 0.1, or None when it cannot be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        )
    return None


def accelerators(backend: str | None = None) -> list[str]:
    """The GPUs (or other accelerators) that a Keras backend computes on.

    Imports the backend's package in this process: TensorFlow's
    ``tf.config.list_physical_devices("GPU")``, JAX's non-CPU ``jax.devices()``,
    PyTorch's CUDA devices.

    Args:
        backend: "tensorflow", "jax" or "torch"; default :func:`backend_name`.

    Returns:
        Device names; empty on a CPU-only machine, for a backend that is not
        installed, or when the driver fails (a broken driver must not break a
        page or a run).
    """
    backend = backend or backend_name()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if backend == "jax":
            import jax

            return [
                f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".rstrip()
                for d in jax.devices()
                if d.platform != "cpu"
            ]
        if backend == "torch":
            import torch

            count = torch.cuda.device_count()
            return [torch.cuda.get_device_name(i) for i in range(count)]
    except Exception:  # noqa: BLE001  (import errors, driver errors)
        return []
    return []


def on_accelerator(backend: str | None = None) -> bool:
    """Whether the backend in use computes on a GPU or another accelerator.

    For JAX this is its default device (``jax.default_backend()``), the one
    Keras places arrays on.
    """
    backend = backend or backend_name()
    if backend == "jax":
        try:
            import jax

            return jax.default_backend() != "cpu"
        except Exception:  # noqa: BLE001
            return False
    return bool(accelerators(backend))


def _nvidia_smi() -> list[str]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _probe_in_child(backend: str) -> list[str]:
    """:func:`accelerators` of ``backend``, asked of a child Python process."""
    probe = (
        "from srkit.environment import accelerators;"
        f"print('\\n'.join('=' + name for name in accelerators({backend!r})))"
    )
    source_root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
    environment = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": path,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env=environment,
        )
        return [ln[1:] for ln in result.stdout.splitlines() if ln.startswith("=")]
    return []


def collect_hardware() -> dict:
    """CPU model, cores, RAM, GPUs and the accelerators the Keras backend sees.

    Returns:
        ``platform``, ``cpu``, ``cores``, ``ram_gib``, ``gpus`` (nvidia-smi's
        name and memory of each GPU), ``backend`` (the Keras backend in use) and
        ``backend_gpus`` (what that backend sees). The backend is asked in a
        child process, and only when nvidia-smi lists a GPU, so a CPU machine
        pays no backend import.
    """
    backend = backend_name()
    gpus = _nvidia_smi()
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "gpus": gpus,
        "backend": backend,
        "backend_gpus": _probe_in_child(backend) if gpus else [],
    }


def backend_gpus_row(hardware: dict) -> tuple[str, int]:
    """The "GPUs <backend> sees" row of a hardware record, for a page table.

    Reads records written before the backend was recorded (``tensorflow_gpus``)
    as TensorFlow's.
    """
    if "backend_gpus" in hardware:
        backend = hardware.get("backend") or "the backend"
        name = BACKEND_LABELS.get(backend, backend)
        return f"GPUs {name} sees", len(hardware["backend_gpus"])
    return "GPUs TensorFlow sees", len(hardware.get("tensorflow_gpus", []))


def load_average() -> str:
    """The 1, 5 and 15 minute load averages as "a/b/c", or "unknown"."""
    if not hasattr(os, "getloadavg"):  # not on Windows
        return "unknown"
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def git_commit(project: Path) -> str | None:
    """The project's git commit (with ``+dirty`` for local changes), or None."""
    try:
        head = subprocess.run(
            ["git", "-C", str(project), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(project), "status", "--porcelain", "--untracked=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")
