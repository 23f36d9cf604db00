"""Data-parallel training over several devices, through Keras' distribution API.

A fit call trains on one device unless its ``devices`` setting asks for more:
``"all"`` (every device Keras lists: the GPUs, else the TPUs, else the CPU) or a
number N (the first N of them). Several devices train one model by data
parallelism (``keras.distribution.DataParallel``): each holds a copy of the
weights, every global batch of ``batch_size`` windows is split evenly over them,
and their gradients are averaged into one optimizer step. The steps, the
learning-rate schedule and the history are those of one device with the same
batch, within float rounding. Keras does this on the JAX backend only; on
TensorFlow a fit call trains on one device (:func:`place` says what to do).

This module owns :class:`Placement` (the devices a fit call uses, and the model
copy, compilation and ``Model.fit`` on them) and :func:`place` (a ``devices``
setting resolved on this machine and backend).

Several hosts (untested): each process calls ``keras.distribution.initialize`` (or
sets the ``KERAS_DISTRIBUTION_*`` variables it reads and calls it without
arguments) before any JAX computation; ``"all"`` then spans every host's devices,
and each process feeds its own slice of the global batch (the batch stream draws
the same batch in every process).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
from keras.distribution import DataParallel, TensorLayout

__all__ = ["ALL", "Placement", "check_devices", "place"]

ALL = "all"  # every device Keras lists (the GPUs, else the TPUs, else the CPU)
# How to get several devices where there is one: the setting, the backend, and a
# CPU split into host devices for a test.
_HOW_TO = (
    "data-parallel training needs Keras' JAX backend (KERAS_BACKEND=jax) and "
    "several devices (GPUs, TPUs, or on a CPU for a test "
    "XLA_FLAGS=--xla_force_host_platform_device_count=N set before JAX starts)"
)


def check_devices(devices: int | str) -> int | str:
    """Check a ``devices`` setting: ``"all"`` or a whole number >= 1.

    Args:
        devices: ``"all"``, an int, or the same as a string (a step parameter is
            a string, so that it can hold either).

    Returns:
        ``"all"`` or an int >= 1.

    Raises:
        ValueError: for anything else, naming the value.
    """
    if isinstance(devices, str):
        text = devices.strip().lower()
        if text == ALL:
            return ALL
        if text.isdigit():
            devices = int(text)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(
            f"devices must be 'all' or a whole number >= 1, got {devices!r}"
        )
    return devices


class _DataParallel(DataParallel):
    """Keras' DataParallel, except that a batch the devices cannot share evenly
    is copied to every device instead of split (each computes all of it).

    Training batches always split (:func:`place` checks ``batch_size``); this
    covers the validation images, whose count and last batch can be anything.
    """

    def get_data_layout(self, data_shape):
        if data_shape[0] is not None and data_shape[0] % self.num_model_replicas:
            return TensorLayout([None] * len(data_shape), self.device_mesh)
        return super().get_data_layout(data_shape)


@dataclass(frozen=True)
class Placement:
    """The devices a fit call trains on, and how it uses them.

    Attributes:
        devices: device names as Keras lists them, e.g. ``("cpu:0",)`` or
            ``("gpu:0", "gpu:1")``; the run records keep them.
        distribution: the Keras distribution over ``devices``; None on one device
            (training then runs as without this module).
    """

    devices: tuple[str, ...]
    distribution: Any = None

    @property
    def count(self) -> int:
        """Number of devices."""
        return len(self.devices)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Make the distribution current: variables created inside live on every
        device, and ``Model.fit`` splits its batches over them. Nothing on one
        device."""
        if self.distribution is None:
            yield
            return
        with self.distribution.scope():
            yield

    def replicate(self, model: keras.Model) -> keras.Model:
        """A copy of ``model`` whose weights live on every device (``model`` on one).

        Keras places a variable when it is created, and the caller built
        ``model`` outside :meth:`scope`, so several devices train a clone with
        the same layers and weights; ``model`` itself is left as it is.
        """
        if self.distribution is None:
            return model
        with self.scope():
            clone = keras.models.clone_model(model)
            clone.set_weights(model.get_weights())
        return clone

    def fit(self, model: keras.Model, x, **arguments):
        """``model.fit(x, **arguments)`` on the devices.

        ``model`` must have been compiled inside :meth:`scope`. With several
        processes (hosts), each keeps its own slice of every batch that ``x``
        yields.
        """
        with self.scope():
            return model.fit(self._local_batches(x), **arguments)

    def _local_batches(self, batches):
        processes = getattr(self.distribution, "num_processes", 1)
        if processes < 2:
            return batches
        import jax  # several processes: the JAX backend (untested path)

        index = jax.process_index()

        def local(array):
            rows = len(array) // processes
            return array[index * rows : (index + 1) * rows]

        return (keras.tree.map_structure(local, batch) for batch in batches)


def _available() -> list[str]:
    """Device names on the current backend (the default kind), at least one."""
    try:
        return list(keras.distribution.list_devices()) or ["cpu:0"]
    except Exception:  # noqa: BLE001  (a backend without device listing)
        return ["cpu:0"]


def _nearest_multiples(value: int, divisor: int) -> str:
    below = value // divisor * divisor
    above = below + divisor
    return f"{below} or {above}" if below else f"{above}"


def place(devices: int | str, batch_size: int) -> Placement:
    """Resolve a ``devices`` setting on this machine and backend.

    One device (``1``, or ``"all"`` where there is one, or on TensorFlow) gives
    a :class:`Placement` without distribution: training as before. Several
    devices on JAX give a data-parallel one; ``batch_size`` is the global batch,
    split evenly over them.

    Args:
        devices: ``"all"`` or a number >= 1 (:func:`check_devices`).
        batch_size: windows per optimizer step, over all devices together.

    Returns:
        :class:`Placement`. ``"all"`` on TensorFlow with several devices warns
        that it trains on the first one only.

    Raises:
        ValueError: a bad setting; a number above 1 on a backend other than JAX;
            more devices than there are; a batch that the devices cannot share
            evenly (naming the batch size and the device count).
    """
    devices = check_devices(devices)
    available = _available()
    backend = keras.backend.backend()
    if backend != "jax":
        if devices == ALL and len(available) > 1:
            warnings.warn(
                f"devices='all' trains on {available[0]} only of {len(available)} "
                f"devices on the {backend} backend: {_HOW_TO}",
                stacklevel=2,
            )
        elif devices not in (ALL, 1):
            raise ValueError(
                f"devices={devices} asks for data-parallel training, but this is "
                f"the {backend} backend: {_HOW_TO}; or devices=1"
            )
        return Placement(tuple(available[:1]))
    count = len(available) if devices == ALL else devices
    if count > len(available):
        raise ValueError(
            f"devices={devices} asks for more devices than the {len(available)} "
            f"there are ({', '.join(available)}): use devices=all or at most "
            f"{len(available)}; {_HOW_TO}"
        )
    chosen = tuple(available[:count])
    if count == 1:
        return Placement(chosen)
    if batch_size % count:
        raise ValueError(
            f"batch_size {batch_size} is the global batch and must split evenly "
            f"over the {count} devices ({', '.join(chosen)}): use batch_size "
            f"{_nearest_multiples(batch_size, count)}, or a number of devices that "
            f"divides {batch_size}"
        )
    return Placement(chosen, _DataParallel(devices=list(chosen)))
