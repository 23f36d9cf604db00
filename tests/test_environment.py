"""Tests for srkit.environment: backend naming, versions, the hardware record."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import pytest

from srkit import environment


def test_backend_name_is_keras_own_once_keras_is_imported(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "something-else")
    assert environment.backend_name() == keras.backend.backend()


def test_backend_name_before_keras_follows_keras_rules(tmp_path):
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    probe = "from srkit import environment; print(environment.backend_name())"

    def ask(**extra):
        env = {"KERAS_HOME": str(tmp_path), "PATH": "", **extra}
        env["PYTHONPATH"] = ":".join(sys.path)
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert ask() == "jax"  # the config file
    assert ask(KERAS_BACKEND="tensorflow") == "tensorflow"  # the variable wins
    (tmp_path / "keras.json").unlink()
    assert ask() == "tensorflow"  # Keras' default


def test_versions_name_the_backend_in_use():
    versions = environment.collect_versions()
    assert versions["keras backend"] == keras.backend.backend()
    assert versions["keras"] == keras.__version__
    assert "python" in versions and "srkit" in versions


def test_hardware_asks_the_backend_only_when_there_is_a_gpu(monkeypatch):
    asked = []
    monkeypatch.setattr(environment, "_probe_in_child", lambda b: asked.append(b))
    monkeypatch.setattr(environment, "_nvidia_smi", lambda: [])
    hardware = environment.collect_hardware()
    assert hardware["gpus"] == [] and hardware["backend_gpus"] == [] and not asked
    assert hardware["backend"] == keras.backend.backend()

    monkeypatch.setattr(environment, "_nvidia_smi", lambda: ["NVIDIA H100, 81559 MiB"])
    monkeypatch.setattr(environment, "_probe_in_child", lambda b: [f"{b}:0"])
    hardware = environment.collect_hardware()
    assert hardware["backend_gpus"] == [f"{keras.backend.backend()}:0"]


def test_the_gpu_row_names_the_recorded_backend():
    assert environment.backend_gpus_row({"backend": "jax", "backend_gpus": ["g"]}) == (
        "GPUs JAX sees",
        1,
    )
    # a run.json written before the backend was recorded
    assert environment.backend_gpus_row({"tensorflow_gpus": []}) == (
        "GPUs TensorFlow sees",
        0,
    )


def test_no_accelerator_is_reported_on_a_cpu_only_machine():
    if environment._nvidia_smi():
        pytest.skip("this machine has a GPU")
    assert environment.accelerators() == []
    assert environment.on_accelerator() is False


def test_cpu_facts_are_readable():
    assert environment.cpu_model()
    assert environment.cpu_has_bf16() in (True, False, None)
    assert environment.ram_gib() is None or environment.ram_gib() > 0
