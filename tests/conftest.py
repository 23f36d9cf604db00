"""Shared pytest setup: the Keras backend under test is named in the report header.

The suite runs on whichever backend ``KERAS_BACKEND`` selects (TensorFlow when it is
unset): ``make unit`` on TensorFlow, ``make test-jax`` on JAX. Tests about
TensorFlow itself ask for it with ``pytest.importorskip("tensorflow")`` and skip
where it is not installed.
"""

from __future__ import annotations

import keras

from srkit import environment


def pytest_report_header(config):
    versions = environment.collect_versions()
    backend = keras.backend.backend()
    return [
        f"keras {keras.__version__}, backend {backend} "
        f"{versions.get('jax' if backend == 'jax' else backend, '')}".rstrip()
    ]
