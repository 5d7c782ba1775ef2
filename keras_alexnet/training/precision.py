"""The precision a training run computes in, chosen for the machine it runs on.

`choose_precision("auto", devices)` decides from facts that do not change from one run to the
next, never from a timing:

| where the replicas run | policy |
|---|---|
| GPUs, all with tensor cores (compute capability 7.0 or newer) | `mixed_float16` |
| a CPU with bfloat16 in hardware (AMX-BF16 or AVX512_BF16 in its flags) | `mixed_bfloat16` |
| anywhere else (AVX2-only CPUs, older GPUs, CPUs whose flags cannot be read) | `float32` |
| any CPU, on the JAX backend (XLA's CPU compiler gains nothing from bfloat16) | `float32` |

A timing probe would be noisy on shared machines (the 2-core VMs measured here run the same
step at two or three speeds) and could flip a run's precision between resumes; the CPU flags
cannot. A probe is only used to say, in the warning for an explicit `mixed_bfloat16` on a CPU
that emulates bfloat16, how much slower it measured just now.

LRN and the classifier compute in float32 under every policy (see `AlexNet`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

from keras_alexnet import machine

PRECISIONS = ("auto", "none", "mixed_float16", "mixed_bfloat16")
# GPUs from Volta (compute capability 7.0) on have tensor cores, which make float16 faster.
TENSOR_CORES = (7, 0)


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """A precision decision and why.

    Attributes:
        requested: what was asked for, one of `PRECISIONS`.
        policy: the Keras dtype policy: "float32", "mixed_float16" or "mixed_bfloat16".
        reason: why, in words, naming the hardware.
        warning: set when the policy is much slower than float32 on this hardware.
    """

    requested: str
    policy: str
    reason: str
    warning: str | None = None

    def describe(self) -> str:
        return f"precision {self.policy} ({self.requested}: {self.reason})"


def choose_precision(
    requested: str = "auto",
    devices: Sequence[str] | None = None,
    *,
    cpu: machine.CpuInfo | None = None,
    gpu_capabilities: Sequence[tuple[int, int]] | None = None,
    measure_slowdown: Callable[[], float] | None = None,
    backend: str = "tensorflow",
) -> PrecisionChoice:
    """The precision policy for training on `devices`.

    Args:
        requested: "auto" (the table in this module's docstring), "none" (float32),
            "mixed_float16" or "mixed_bfloat16" (taken as given, with a warning where the
            hardware only emulates it).
        devices: the devices the replicas run on (names such as "/device:GPU:0"); default:
            the GPUs if there are any, else the CPU.
        cpu: the CPU (default: this machine's).
        gpu_capabilities: the GPUs' compute capabilities (default: read from TensorFlow).
        measure_slowdown: returns how many times slower bfloat16 runs than float32 here
            (default: `bfloat16_slowdown`); called only for the emulation warning.
        backend: the Keras backend that computes: "tensorflow" or "jax".

    Returns:
        A `PrecisionChoice`; `policy` is what `keras.mixed_precision.set_global_policy` takes.

    Example:
        >>> choice = choose_precision("auto")
        >>> print(choice.describe())  # doctest: +SKIP
        precision float32 (auto: this CPU has no native bfloat16 ...)
    """
    if requested not in PRECISIONS:
        raise ValueError(
            f"mixed_precision must be one of {PRECISIONS}; received mixed_precision={requested!r}."
        )
    if gpu_capabilities is None:
        gpu_capabilities = _gpu_capabilities()
    if devices is None:
        on_gpu = bool(gpu_capabilities)
    else:
        on_gpu = any("GPU" in name.upper() for name in devices)
    if on_gpu:
        return _gpu_choice(requested, gpu_capabilities)
    if backend == "jax" and requested in ("auto", "mixed_bfloat16"):
        return _xla_cpu_choice(requested, cpu or machine.cpu_info())
    return _cpu_choice(requested, cpu or machine.cpu_info(), measure_slowdown or bfloat16_slowdown)


def _gpu_choice(requested: str, capabilities: Sequence[tuple[int, int]]) -> PrecisionChoice:
    oldest = min(capabilities) if capabilities else None
    shown = "compute capability " + (f"{oldest[0]}.{oldest[1]}" if oldest else "unknown")
    if requested == "none":
        return PrecisionChoice(requested, "float32", "float32 as asked")
    if requested != "auto":
        return PrecisionChoice(requested, requested, f"as asked, on GPUs ({shown})")
    if oldest is not None and oldest >= TENSOR_CORES:
        return PrecisionChoice(
            requested, "mixed_float16", f"GPUs with tensor cores ({shown}; 7.0 or newer)"
        )
    return PrecisionChoice(
        requested, "float32", f"GPUs without tensor cores ({shown}; tensor cores need 7.0)"
    )


def _cpu_choice(
    requested: str, cpu: machine.CpuInfo, measure_slowdown: Callable[[], float]
) -> PrecisionChoice:
    native = cpu.native_bfloat16
    hardware = f"this CPU ({cpu.model}: {cpu.isa_summary()})"
    if requested == "none":
        return PrecisionChoice(requested, "float32", "float32 as asked")
    if requested == "auto":
        if native:
            return PrecisionChoice(
                requested, "mixed_bfloat16", f"{hardware} computes bfloat16 in hardware"
            )
        return PrecisionChoice(
            requested,
            "float32",
            f"{hardware} {_without_bfloat16(cpu)}, so bfloat16 would be emulated and slower "
            "than float32",
        )
    if requested == "mixed_bfloat16" and native:
        return PrecisionChoice(requested, requested, f"as asked; {hardware} computes bfloat16")
    dtype = requested.split("_")[1]
    if requested == "mixed_bfloat16":
        ratio = measure_slowdown()
        slowdown = (
            f"{ratio:.1f}x slower than float32 in a probe just now"
            if math.isfinite(ratio)
            else "and a probe could not even run a bfloat16 convolution here"
        )
        emulated = _without_bfloat16(cpu)
    else:
        slowdown = "usually several times slower than float32"
        emulated = "computes float16 in software"
    warning = (
        f"{requested} on a CPU that {emulated}: {dtype} is emulated here, {slowdown}. "
        "Use --mixed_precision=auto (float32 on this CPU) unless you are testing the policy."
    )
    return PrecisionChoice(requested, requested, f"as asked, on {hardware}", warning)


def _xla_cpu_choice(requested: str, cpu: machine.CpuInfo) -> PrecisionChoice:
    """On JAX's CPU backend bfloat16 is no faster whatever the CPU: XLA's CPU compiler does
    not use the bfloat16 instructions for convolutions (on Zen 4, with AVX512_BF16, a
    training step ran at 0.86x float32's speed: docs/results.md)."""
    hardware = f"{cpu.model}: {cpu.isa_summary()}"
    why = "XLA's CPU compiler (JAX) computes bfloat16 no faster than float32"
    if requested == "auto":
        return PrecisionChoice(requested, "float32", f"{why}, on any CPU ({hardware})")
    warning = (
        f"mixed_bfloat16 on JAX's CPU backend: {why} (0.86x of float32's speed measured on a "
        "CPU with AVX512_BF16). Use --mixed_precision=auto (float32) unless you are testing "
        "the policy."
    )
    return PrecisionChoice(requested, requested, f"as asked, on {hardware}", warning)


def _without_bfloat16(cpu: machine.CpuInfo) -> str:
    """Why `cpu` computes no bfloat16 in hardware: it lacks the instructions, or has them and
    oneDNN is capped below them."""
    if machine.BFLOAT16_FEATURES & cpu.features:
        return f"has bfloat16 instructions that oneDNN may not use ({cpu.onednn_cap} cap)"
    return "has no native bfloat16 (neither AMX-BF16 nor AVX512_BF16)"


def _gpu_capabilities() -> list[tuple[int, int]]:
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))
    return capabilities


def bfloat16_slowdown(repeats: int = 3) -> float:
    """How many times slower a conv2-sized convolution (8x27x27x96, 5x5x96x128 kernels) runs
    in bfloat16 than in float32 on this CPU: best of `repeats` each, about a second on an
    AVX2-only CPU. NaN when TensorFlow cannot run the bfloat16 convolution at all."""
    import tensorflow as tf

    def best_time(dtype):
        images = tf.cast(tf.random.stateless_normal((8, 27, 27, 96), (0, 1)), dtype)
        kernels = tf.cast(tf.random.stateless_normal((5, 5, 96, 128), (0, 2)), dtype)
        conv = tf.function(lambda x, k: tf.reduce_sum(tf.nn.conv2d(x, k, 1, "SAME")))
        conv(images, kernels).numpy()  # trace and warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            conv(images, kernels).numpy()
            times.append(time.perf_counter() - start)
        return min(times)

    try:
        return best_time(tf.bfloat16) / best_time(tf.float32)
    except tf.errors.OpError:  # e.g. oneDNN capped below AVX-512 has no bfloat16 kernel
        return math.nan
