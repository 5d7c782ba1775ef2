"""keras_alexnet.training.precision: the policy for each kind of machine, from a table."""

import dataclasses

import pytest

from keras_alexnet import machine
from keras_alexnet.machine import CpuInfo
from keras_alexnet.training import precision

AVX2 = CpuInfo("AMD EPYC 7B13", 2, frozenset({"avx2", "fma"}), "x86_64")
AVX512_BF16 = CpuInfo("AMD EPYC 9B14", 2, frozenset({"avx2", "avx512f", "avx512_bf16"}), "x86_64")
AMX = CpuInfo("Intel Xeon 8481C", 2, frozenset({"avx2", "avx512f", "amx_bf16"}), "x86_64")
UNKNOWN = CpuInfo("unknown CPU", 8, frozenset(), "arm64")
CPU0 = ["/job:localhost/replica:0/task:0/device:CPU:0"]
GPUS = ["/job:localhost/replica:0/task:0/device:GPU:0", "/device:GPU:1"]


def _never():
    raise AssertionError("no probe is run for this choice")


@pytest.mark.parametrize(
    "requested, devices, cpu, capabilities, policy",
    [
        ("auto", CPU0, AVX2, [], "float32"),
        ("auto", CPU0, AVX512_BF16, [], "mixed_bfloat16"),
        ("auto", CPU0, AMX, [], "mixed_bfloat16"),
        ("auto", CPU0, UNKNOWN, [], "float32"),
        ("auto", GPUS, AVX2, [(8, 0), (9, 0)], "mixed_float16"),
        ("auto", GPUS, AMX, [(7, 0)], "mixed_float16"),
        ("auto", GPUS, AMX, [(6, 1), (8, 0)], "float32"),  # one GPU without tensor cores
        ("auto", CPU0, AMX, [(9, 0)], "mixed_bfloat16"),  # a GPU machine training on its CPU
        ("auto", None, AVX2, [(8, 6)], "mixed_float16"),  # default devices: the GPUs
        ("auto", None, AMX, [], "mixed_bfloat16"),
        ("none", CPU0, AMX, [], "float32"),
        ("none", GPUS, AMX, [(9, 0)], "float32"),
        ("mixed_bfloat16", CPU0, AMX, [], "mixed_bfloat16"),
        ("mixed_float16", GPUS, AMX, [(6, 0)], "mixed_float16"),  # as asked
    ],
)
def test_policy_table(requested, devices, cpu, capabilities, policy):
    choice = precision.choose_precision(
        requested, devices, cpu=cpu, gpu_capabilities=capabilities, measure_slowdown=_never
    )
    assert choice.policy == policy
    assert choice.requested == requested
    assert choice.warning is None
    assert choice.policy in choice.describe() and choice.reason in choice.describe()


@pytest.mark.parametrize("cpu", [AVX2, AVX512_BF16, AMX])
def test_on_jax_a_cpu_trains_in_float32_and_an_explicit_bfloat16_warns(cpu):
    auto = precision.choose_precision(
        "auto", ["CPU:0"], cpu=cpu, gpu_capabilities=[], measure_slowdown=_never, backend="jax"
    )
    assert (auto.policy, auto.warning) == ("float32", None)
    assert "XLA's CPU compiler (JAX)" in auto.reason and cpu.model in auto.reason
    asked = precision.choose_precision(
        "mixed_bfloat16", ["CPU:0"], cpu=cpu, gpu_capabilities=[], backend="jax"
    )
    assert asked.policy == "mixed_bfloat16" and "JAX's CPU backend" in asked.warning
    gpu = precision.choose_precision("auto", ["GPU:0"], gpu_capabilities=[(9, 0)], backend="jax")
    assert gpu.policy == "mixed_float16"  # GPUs: the same table on both backends


def test_reasons_name_the_hardware():
    avx2 = precision.choose_precision("auto", CPU0, cpu=AVX2, gpu_capabilities=[])
    assert "AMD EPYC 7B13" in avx2.reason and "no native bfloat16" in avx2.reason
    assert "AVX512_BF16 no" in avx2.reason
    amx = precision.choose_precision("auto", CPU0, cpu=AMX, gpu_capabilities=[])
    assert "computes bfloat16 in hardware" in amx.reason
    gpu = precision.choose_precision("auto", GPUS, cpu=AMX, gpu_capabilities=[(6, 1)])
    assert "compute capability 6.1" in gpu.reason and "7.0" in gpu.reason


def test_a_cap_below_bfloat16_chooses_float32_and_says_the_cap_not_the_cpu_is_why():
    capped = dataclasses.replace(AVX512_BF16, onednn_cap="AVX2")
    choice = precision.choose_precision("auto", CPU0, cpu=capped, gpu_capabilities=[])
    assert choice.policy == "float32"
    assert "AVX512_BF16 yes" in choice.reason and "no native bfloat16" not in choice.reason
    assert "bfloat16 instructions that oneDNN may not use (AVX2 cap)" in choice.reason
    asked = precision.choose_precision(
        "mixed_bfloat16", CPU0, cpu=capped, gpu_capabilities=[], measure_slowdown=lambda: 5.0
    )
    assert "may not use (AVX2 cap)" in asked.warning and "5.0x slower" in asked.warning


def test_explicit_bfloat16_on_an_emulating_cpu_warns_with_the_measured_slowdown():
    choice = precision.choose_precision(
        "mixed_bfloat16", CPU0, cpu=AVX2, gpu_capabilities=[], measure_slowdown=lambda: 6.25
    )
    assert choice.policy == "mixed_bfloat16"  # still works as asked
    assert "emulated" in choice.warning and "6.2x slower than float32" in choice.warning
    assert "--mixed_precision=auto" in choice.warning


def test_a_probe_that_cannot_run_bfloat16_still_gives_a_warning():
    choice = precision.choose_precision(
        "mixed_bfloat16", CPU0, cpu=AVX2, gpu_capabilities=[], measure_slowdown=lambda: float("nan")
    )
    assert "could not even run a bfloat16 convolution" in choice.warning


def test_explicit_float16_on_a_cpu_warns():
    choice = precision.choose_precision(
        "mixed_float16", CPU0, cpu=AMX, gpu_capabilities=[], measure_slowdown=_never
    )
    assert choice.policy == "mixed_float16" and "float16 is emulated" in choice.warning


@pytest.mark.parametrize("value", ["float32", "bf16", "", None])
def test_unknown_request_is_an_error_naming_it(value):
    with pytest.raises(ValueError, match=r"mixed_precision must be one of .*received"):
        precision.choose_precision(value, CPU0, cpu=AVX2, gpu_capabilities=[])


def test_this_machine():
    """The real machine, read for real: a policy comes out with no error."""
    choice = precision.choose_precision("auto")
    assert choice.policy in ("float32", "mixed_bfloat16", "mixed_float16")


def test_bfloat16_probe_measures_a_positive_ratio_or_says_it_cannot():
    ratio = precision.bfloat16_slowdown(repeats=1)
    assert ratio > 0 or (ratio != ratio and not machine.cpu_info().native_bfloat16)
