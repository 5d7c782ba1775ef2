"""Where a run computes on the JAX backend: `keras.distribution`, in the shape the run uses.

`make_distribution` turns `--strategy` and `--devices` into a `DataParallel`, the JAX side of
what `strategies.make_strategy` is for TensorFlow:

- `mirrored`: `keras.distribution.DataParallel` over the local devices (or `--devices`);
  no distribution on one device;
- `one_device`: the first of `--devices` (default: the first local device);
- `multi_worker`: `keras.distribution.initialize` (jax.distributed) from Keras' environment
  variables (`ENVIRONMENT`), then `DataParallel` over every process's devices;
- `towers`: refused: the towers are placed with `tf.device`, which only TensorFlow honours.

The global batch means what it means under MirroredStrategy: `batch_size` images per step
over all devices. Each process reads its own shard of the data (`num_shards` = the process
count), a batch of `batch_size / processes`, which Keras splits over its local devices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import Callable, Sequence

import jax
import keras
import numpy as np
import tensorflow as tf
from jax.experimental import multihost_utils

from keras_alexnet.training.config import SettingsError

# The variables `keras.distribution.initialize` reads (Keras' names): the coordinator's
# host:port (process 0's), how many processes, and this process's index.
ADDRESSES, PROCESSES, PROCESS_ID = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)
ENVIRONMENT = (ADDRESSES, PROCESSES, PROCESS_ID)
# How long a process other than 0 waits for the coordinator to listen before giving up in one
# line: as long as JAX waits for its registration.
COORDINATOR_WAIT_S = 300


@dataclasses.dataclass(frozen=True)
class JaxDistribution:
    """A run's devices on JAX, with the part of `tf.distribute.Strategy`'s interface the run
    uses (`scope`, `num_replicas_in_sync`, `distribute_datasets_from_function`).

    Attributes:
        distribution: the `keras.distribution.DataParallel`, or None for one device.
        devices: the JAX devices of every replica (every process's).
        process_count, process_id: this process in the run (1 and 0 on one machine).
    """

    distribution: keras.distribution.Distribution | None
    devices: tuple
    process_count: int = 1
    process_id: int = 0

    @property
    def num_replicas_in_sync(self) -> int:
        return len(self.devices)

    @property
    def chief(self) -> bool:
        """Process 0 writes the run (the others train the same weights)."""
        return self.process_id == 0

    def device_names(self) -> list[str]:
        """The devices as the precision choice reads them ("GPU:0", "CPU:0")."""
        return [f"{d.platform.upper()}:{d.id}" for d in self.devices]

    def gpu_capabilities(self) -> list[tuple[int, int]]:
        """Each local GPU's compute capability ((0, 0) where JAX does not say)."""
        capabilities = []
        for device in jax.local_devices():
            if device.platform == "gpu":
                major, _, minor = str(getattr(device, "compute_capability", "0.0")).partition(".")
                capabilities.append((int(major or 0), int(minor or 0)))
        return capabilities

    def scope(self):
        if self.distribution is None:
            return contextlib.nullcontext()
        return self.distribution.scope()

    def any_process(self, flag: bool) -> bool:
        """Whether `flag` is set in any process of the run (every process must call it)."""
        if self.process_count == 1:
            return bool(flag)
        return bool(np.max(multihost_utils.process_allgather(np.int32(flag))))

    def wait_for_all(self, name: str) -> None:
        """Returns when every process of the run has called it with the same `name`."""
        if self.process_count > 1:
            multihost_utils.sync_global_devices(name)

    def distribute_datasets_from_function(
        self, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]
    ) -> tf.data.Dataset:
        """This process's dataset: `dataset_fn` given one input pipeline per process, each
        feeding one "replica" of `batch_size / processes` images (Keras splits it over the
        process's devices)."""
        count = self.process_count
        return dataset_fn(tf.distribute.InputContext(count, self.process_id, count))


def use_logical_cpus(count: int) -> None:
    """Splits the CPU into `count` JAX devices (`--logical_cpus`), before JAX starts."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SettingsError(f"logical_cpus must be a positive integer; received {count!r}.")
    jax.config.update("jax_num_cpu_devices", count)


def make_distribution(
    strategy: str = "mirrored",
    devices: Sequence[str] | None = None,
    tower_devices: Sequence[str] | None = None,
) -> JaxDistribution:
    """The run's `JaxDistribution` for a `--strategy` name (see the module's table).

    Raises:
        SettingsError: towers, tower devices, a device JAX does not have, or a multi-worker
            environment that is missing or malformed.
    """
    _keep_tensorflow_off_the_gpus()
    if strategy == "towers" or tower_devices is not None:
        raise SettingsError(
            f"strategy={strategy!r} with tower_devices={list(tower_devices or [])} places the "
            "paper's two towers with tf.device, which only the TensorFlow backend honours. On "
            "JAX use strategy=mirrored (data parallel over the local devices), or run with "
            "KERAS_BACKEND=tensorflow."
        )
    if strategy == "multi_worker":
        if devices is not None:
            raise SettingsError(
                f"devices does not apply to strategy='multi_worker'; received devices="
                f"{list(devices)}. Every process trains on all of its local devices."
            )
        process_count, process_id = _initialize_processes()
        return JaxDistribution(
            keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False),
            tuple(jax.devices()),
            process_count,
            process_id,
        )
    if os.environ.get(PROCESSES, "1").strip() not in ("", "1"):
        raise SettingsError(
            f"{PROCESSES}={os.environ[PROCESSES]} describes several processes, but "
            f"strategy={strategy!r} trains in this one. Use strategy=multi_worker."
        )
    chosen = _find_devices(devices) if devices is not None else list(jax.local_devices())
    if strategy == "one_device":
        chosen = chosen[:1]
    if chosen == jax.local_devices()[:1]:  # JAX's default device: nothing to distribute
        return JaxDistribution(None, (chosen[0],))
    # (auto_shard_dataset=False: the run's input shards itself, `inputs.TrainingInputs`.)
    return JaxDistribution(
        keras.distribution.DataParallel(devices=chosen, auto_shard_dataset=False), tuple(chosen)
    )


def _check_port_free(port: int, address: str) -> None:
    """Process 0 serves the coordinator on `port` of every interface: a port already taken
    crashes JAX's server natively (a segmentation fault, seen), so it is checked first."""
    try:
        with socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
            probe.bind(("::" if socket.has_ipv6 else "", port))
    except OSError as error:
        raise SettingsError(
            f"process 0 serves the coordinator at {address}, but port {port} cannot be taken "
            f"on this machine ({error.strerror or error}). Give {ADDRESSES} a free port."
        ) from None


def _wait_for_coordinator(host: str, port: int, address: str, index: int) -> None:
    """Returns once the coordinator accepts connections; after `COORDINATOR_WAIT_S` without
    it, one line (JAX itself aborts natively after 5 minutes, seen)."""
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    announced = False
    while True:
        try:
            socket.create_connection((host, port), timeout=5).close()
            return
        except OSError as error:
            reason = error.strerror or str(error)
        if time.monotonic() >= deadline:
            raise SettingsError(
                f"process {index} found no coordinator at {address} in {COORDINATOR_WAIT_S} s "
                f"({reason}): start process 0 of the run there ({PROCESS_ID}=0), or correct "
                f"{ADDRESSES}."
            )
        if not announced:
            print(f"Waiting for the coordinator at {address} (process 0 of the run) ...")
            announced = True
        time.sleep(1)


def _keep_tensorflow_off_the_gpus() -> None:
    """TensorFlow computes the input pipeline on the CPU: with a TensorFlow GPU build it would
    otherwise take GPU memory JAX has already reserved."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow has already started its devices: left as they are
        pass


def _find_devices(names: Sequence[str]) -> list:
    """The local JAX devices `names` ("gpu:0", "/gpu:1", "/device:CPU:0") stand for."""
    have = {f"{d.platform}:{d.id}": d for d in jax.local_devices()}
    found = []
    for name in names:
        key = str(name).lower().replace("/device:", "").lstrip("/")
        if key not in have:
            raise SettingsError(
                f"devices names {name!r}, a device JAX does not have here; it has "
                f"{sorted(have)}. Name those (e.g. gpu:0), or split the CPU with logical_cpus."
            )
        found.append(have[key])
    return found


def _initialize_processes() -> tuple[int, int]:
    """`keras.distribution.initialize` (jax.distributed) from `ENVIRONMENT`, checked first;
    returns (process count, this process's id)."""
    missing = [name for name in ENVIRONMENT if not os.environ.get(name, "").strip()]
    if missing:
        raise SettingsError(
            f"strategy='multi_worker' on JAX needs {', '.join(ENVIRONMENT)} in every process "
            f"(the coordinator's host:port, the process count, this process's index from 0); "
            f"missing: {', '.join(missing)}."
        )
    try:
        count, index = int(os.environ[PROCESSES]), int(os.environ[PROCESS_ID])
    except ValueError:
        count = index = -1
    if count < 1 or not 0 <= index < count:
        raise SettingsError(
            f"{PROCESSES} must be a positive integer and {PROCESS_ID} an index below it; "
            f"received {os.environ[PROCESSES]!r} and {os.environ[PROCESS_ID]!r}."
        )
    address = os.environ[ADDRESSES].split(",")[0].strip()
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SettingsError(
            f"{ADDRESSES} must start with the coordinator's host:port (process 0's); "
            f"received {os.environ[ADDRESSES]!r}."
        )
    if index == 0:
        _check_port_free(int(port), address)
    else:
        _wait_for_coordinator(host.strip("[]"), int(port), address, index)
    try:
        keras.distribution.initialize(address, count, index)
    except (RuntimeError, ValueError) as error:  # (JAX's XlaRuntimeError is a RuntimeError)
        reason = " ".join(str(error).split())[:300]
        raise SettingsError(
            f"process {index} of {count} could not join the run through the coordinator at "
            f"{address}: {reason}"
        ) from None
    return jax.process_count(), jax.process_index()
