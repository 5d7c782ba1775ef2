"""What machine this is: the CPU's model, cores and instruction sets, and whether TensorFlow's
oneDNN CPU kernels are on. Precision choice (`keras_alexnet.training.precision`) and the
benchmarks' reports read it.

This module imports no TensorFlow, so that `use_onednn_kernels` can run before TensorFlow
loads: TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported.

Why oneDNN matters here: on Linux, TensorFlow turns its oneDNN kernels on by default only on
CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX. On the others (AMD Zen 2 and Zen 3,
Intel before Cascade Lake: AVX2 CPUs) it falls back to Eigen's convolutions, and AlexNet's
float32 training step runs at about half the speed (docs/results.md has the figures).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
# oneDNN's own switch that caps the instruction sets its kernels use, e.g. "AVX2"; what each
# cap leaves out of the flags that matter here (bfloat16 in hardware and AVX-512).
ONEDNN_CAP_ENV = "ONEDNN_MAX_CPU_ISA"
_AVX512_AND_UP = frozenset({"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"})
_CAPPED_OUT = {
    **dict.fromkeys(("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"), _AVX512_AND_UP),
    **dict.fromkeys(
        ("AVX512_CORE", "AVX512_CORE_VNNI"), frozenset({"avx512_bf16", "amx_tile", "amx_bf16"})
    ),
    **dict.fromkeys(
        ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512"),
        frozenset({"amx_tile", "amx_bf16"}),
    ),
}
# The CPU flags (as /proc/cpuinfo names them) with which TensorFlow turns oneDNN on by itself.
ONEDNN_DEFAULT_FEATURES = frozenset(
    {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}
)
# The CPU flags that compute bfloat16 dot products in hardware.
BFLOAT16_FEATURES = frozenset({"amx_bf16", "avx512_bf16"})
# The instruction sets that decide precision and speed, with the names reports print.
REPORTED_FEATURES = (
    ("avx2", "AVX2"),
    ("avx512f", "AVX-512"),
    ("avx512_bf16", "AVX512_BF16"),
    ("amx_bf16", "AMX-BF16"),
)


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    """The CPU as far as training speed goes.

    Attributes:
        model: the model name, e.g. "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz".
        cores: the logical cores this process may run on.
        features: the lower-case instruction-set flags (/proc/cpuinfo names); empty where
            they cannot be read (not Linux), which counts as "no native bfloat16".
        machine: `platform.machine()`, e.g. "x86_64" or "aarch64".
        onednn_cap: `ONEDNN_MAX_CPU_ISA` when set (e.g. "AVX2"): oneDNN's kernels then use
            no instruction set above it, whatever the CPU has. It is how an AVX2-only CPU is
            approximated on a newer one.
    """

    model: str
    cores: int
    features: frozenset[str]
    machine: str
    onednn_cap: str | None = None

    @property
    def kernel_features(self) -> frozenset[str]:
        """The flags oneDNN's kernels may use: `features` less what `onednn_cap` leaves out."""
        return self.features - _CAPPED_OUT.get((self.onednn_cap or "").upper(), frozenset())

    @property
    def x86_64(self) -> bool:
        return self.machine.lower() in ("x86_64", "amd64")

    @property
    def native_bfloat16(self) -> bool:
        """Whether the CPU computes bfloat16 dot products in hardware (AMX-BF16 or
        AVX512_BF16); elsewhere TensorFlow emulates bfloat16 in float32, several times slower
        than float32 itself. A cap on oneDNN below those counts as not native."""
        return bool(BFLOAT16_FEATURES & self.kernel_features)

    @property
    def onednn_by_default(self) -> bool:
        """Whether TensorFlow turns its oneDNN kernels on by itself on this CPU (it reads the
        CPU's flags, not the cap)."""
        return bool(ONEDNN_DEFAULT_FEATURES & self.features)

    def isa_summary(self) -> str:
        """The instruction sets that matter, e.g. "AVX2 yes, AVX-512 no, AVX512_BF16 no,
        AMX-BF16 no"."""
        if not self.features:
            return "instruction sets unknown"
        summary = ", ".join(
            f"{name} {'yes' if flag in self.features else 'no'}" for flag, name in REPORTED_FEATURES
        )
        if self.onednn_cap:
            summary += f"; oneDNN capped at {self.onednn_cap} by {ONEDNN_CAP_ENV}"
        return summary

    def describe(self) -> str:
        """One line naming the CPU, e.g. for benchmark output."""
        return f"{self.model}, {self.cores} cores ({self.machine}); {self.isa_summary()}"


def cpu_info(cpuinfo_path: str = "/proc/cpuinfo", environ=None) -> CpuInfo:
    """Reads the CPU's model and flags (Linux: from `cpuinfo_path`; elsewhere the model from
    `platform` and no flags), and oneDNN's cap from `environ` (default: `os.environ`)."""
    model, features = "", frozenset()
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            fields = _first_processor(f)
    except OSError:
        fields = {}
    if fields:
        model = fields.get("model name") or fields.get("cpu model") or ""
        if fields.get("cpu family") and fields.get("model"):
            model += f" (family {fields['cpu family']}, model {fields['model']})"
        features = frozenset((fields.get("flags") or fields.get("features") or "").split())
    return CpuInfo(
        model=model.strip() or platform.processor() or "unknown CPU",
        cores=_usable_cores(),
        features=features,
        machine=platform.machine() or "unknown",
        onednn_cap=(os.environ if environ is None else environ).get(ONEDNN_CAP_ENV) or None,
    )


def _first_processor(lines) -> dict[str, str]:
    """The `key: value` fields of /proc/cpuinfo's first processor block."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    return fields


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_onednn_kernels(environ=None, cpu: CpuInfo | None = None) -> str | None:
    """Asks TensorFlow for its oneDNN CPU kernels on x86-64 Linux, where TensorFlow would
    leave them off (see the module docstring). Runs when `keras_alexnet` is imported.

    The user's own `TF_ENABLE_ONEDNN_OPTS` always wins (`=0` keeps Eigen's kernels). The
    variable only counts before TensorFlow is imported.

    Returns:
        None, or a warning to show when TensorFlow was imported before keras_alexnet with
        oneDNN off on a CPU where that costs speed.
    """
    environ = os.environ if environ is None else environ
    cpu = cpu or cpu_info()
    if ONEDNN_ENV in environ or platform.system() != "Linux" or not cpu.x86_64:
        return None
    if cpu.onednn_by_default:
        return None  # TensorFlow turns it on by itself
    if "tensorflow" in sys.modules:
        return (
            "TensorFlow was imported before keras_alexnet, with its oneDNN CPU kernels off "
            f"(TensorFlow's default on this CPU: {cpu.model}, without AVX512_VNNI, "
            "AVX512_BF16, AVX_VNNI or AMX). AlexNet trains about 2x slower in float32 so. "
            f"Import keras_alexnet before TensorFlow, or set {ONEDNN_ENV}=1 in the environment."
        )
    environ[ONEDNN_ENV] = "1"
    return None


def describe_this_machine() -> str:
    """Names this machine for benchmark output: the CPU (model, cores, instruction sets),
    whether TensorFlow runs its oneDNN kernels, and the GPUs. Imports TensorFlow."""
    import tensorflow as tf

    from keras_alexnet import compat  # (beside TensorFlow: its private API)

    gpus = tf.config.list_physical_devices("GPU")
    gpu_names = [
        tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus
    ]
    return (
        f"CPU: {cpu_info().describe()}; TensorFlow {tf.__version__}, oneDNN kernels "
        f"{'on' if compat.onednn_enabled() else 'off'}; GPUs: {', '.join(gpu_names) or 'none'}"
    )
