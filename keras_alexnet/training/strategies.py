"""The `tf.distribute` strategies a run trains under, and the devices they use.

`make_strategy` turns `--strategy`, `--devices` and `--tower_devices` into a strategy (and the
two tower devices, for the paper's model parallelism), after checking that every device named
exists on this machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_alexnet.training.config import STRATEGIES, SettingsError


def use_logical_cpus(count: int) -> None:
    """Splits the CPU into `count` logical devices, so that `mirrored` and `towers` can run on
    a machine without GPUs (for trying and testing them). Call it before TensorFlow touches a
    device. On the JAX backend: JAX's CPU devices (`jax_distribution.use_logical_cpus`)."""
    if keras.backend.backend() == "jax":
        from keras_alexnet.training import jax_distribution  # (jax: optional, on its backend only)

        return jax_distribution.use_logical_cpus(count)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SettingsError(f"logical_cpus must be a positive integer; received {count!r}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError as error:
        raise RuntimeError(
            "logical_cpus must be set before TensorFlow initialises its devices; call "
            f"use_logical_cpus first ({error})."
        ) from None


def _local_devices() -> list[str]:
    """The local accelerators, or else every logical CPU device."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def cluster_size() -> int:
    """How many workers `TF_CONFIG` names (chief included); 0 without a cluster."""
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return sum(len(tasks) for kind, tasks in cluster.items() if kind in ("chief", "worker"))


def make_strategy(
    strategy: str = "mirrored",
    devices: Sequence[str] | None = None,
    tower_devices: Sequence[str] | None = None,
) -> tuple[tf.distribute.Strategy, tuple[str, str] | None]:
    """The `tf.distribute` strategy for a `--strategy` name, and the tower devices to build with.

    Args:
        strategy: `"mirrored"`: data parallel over `devices` (default: every local GPU, or the
            CPU's logical devices when there is no GPU); with no `devices` and one local
            device, TensorFlow's default strategy (one replica, no distribution). `"multi_worker"`:
            MultiWorkerMirroredStrategy from `TF_CONFIG`. `"one_device"`: the first of
            `devices`. `"towers"`: the paper's model parallelism in one replica, tower a on
            `tower_devices[0]` and tower b on `tower_devices[1]` (default: the first two
            local devices).
        devices: the devices of a single-machine strategy.
        tower_devices: two devices; only with `"towers"`.

    Returns:
        `(strategy, tower_devices)`; `tower_devices` is None unless `strategy == "towers"`.
    """
    if strategy not in STRATEGIES:
        raise SettingsError(
            f"strategy must be one of {STRATEGIES}; received strategy={strategy!r}."
        )
    if tower_devices is not None and strategy != "towers":
        raise SettingsError(
            f"tower_devices only applies to strategy='towers'; received strategy={strategy!r} "
            f"with tower_devices={list(tower_devices)}. Towers split one replica over two "
            "devices; with several replicas use 'mirrored' without tower_devices."
        )
    if devices is not None and strategy in ("multi_worker", "towers"):
        raise SettingsError(
            f"devices does not apply to strategy={strategy!r}; received devices={list(devices)}."
            + (" Use tower_devices." if strategy == "towers" else "")
        )
    if strategy == "multi_worker":
        # Before anything lists devices: collective ops must be configured at startup.
        return tf.distribute.MultiWorkerMirroredStrategy(), None
    _check_devices_exist("devices", devices)
    _check_devices_exist("tower_devices", tower_devices)
    if strategy == "mirrored" and devices is None and len(_local_devices()) == 1:
        # Nothing to mirror. A MirroredStrategy over one device would still feed it through
        # per-device iterators that autotune regardless of the pipeline's options, and
        # deleting one (Keras does at every validation) can wait up to a minute for their
        # tuning thread; TensorFlow's default strategy computes the same updates without.
        return tf.distribute.get_strategy(), None
    devices = list(devices) if devices else _local_devices()
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices), None
    if strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0]), None
    # towers: one replica, model parallel.
    if cluster_size() > 1:
        raise SettingsError(
            f"strategy='towers' is one replica split over two devices, but TF_CONFIG describes "
            f"{cluster_size()} workers. Use strategy='multi_worker' for several machines."
        )
    if tower_devices is None:
        if len(devices) < 2:
            raise SettingsError(
                "strategy='towers' needs two devices; this machine has only "
                f"{devices}. Pass tower_devices=(a, b) (for example the same GPU twice), or "
                "split the CPU with logical_cpus=2."
            )
        tower_devices = devices[:2]
    if len(tower_devices) != 2:
        raise SettingsError(
            f"tower_devices must name two devices; received tower_devices={list(tower_devices)}."
        )
    return tf.distribute.OneDeviceStrategy(tower_devices[0]), tuple(tower_devices)


def _check_devices_exist(argument: str, names: Sequence[str] | None) -> None:
    """Every device in `names` is one this process has (a placement on a missing device would
    otherwise fall back silently, with soft placement, to wherever TensorFlow likes)."""
    available = [d.name for d in tf.config.list_logical_devices()]
    have = set()
    for name in available:
        spec = tf.DeviceSpec.from_string(name)
        have.add((spec.device_type.upper(), spec.device_index))
    for name in names or ():
        try:
            spec = tf.DeviceSpec.from_string(name)
        except (ValueError, TypeError):
            spec = None
        if spec is None or not spec.device_type:
            key = None
        else:
            key = (spec.device_type.upper(), spec.device_index or 0)
        if key not in have:
            raise SettingsError(
                f"{argument} names {name!r}, a device this machine does not have; it has "
                f"{available}. Name one of those (e.g. /gpu:0 or /cpu:0), or split the CPU "
                "with logical_cpus."
            )


def replica_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices `strategy`'s replicas run on (for the default strategy: the local one)."""
    try:
        return list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no worker devices of its own
        return _local_devices()[:1]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run: the chief, or worker 0 of a cluster without one,
    or the only process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
