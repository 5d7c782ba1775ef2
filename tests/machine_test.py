"""keras_alexnet.machine: reading the CPU, and TensorFlow's oneDNN switch."""

import os
import subprocess
import sys

import pytest

from keras_alexnet import machine
from tests.conftest import REPO_ROOT

ZEN3 = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 1
model name	: AMD EPYC 7B13
flags		: fpu sse sse2 avx fma avx2 bmi2 sha_ni

processor	: 1
model name	: something else
flags		: avx512f amx_bf16
"""
SAPPHIRE_RAPIDS = """processor	: 0
cpu family	: 6
model		: 143
model name	: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags		: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ZEN4 = """model name	: AMD EPYC 9B14
flags		: avx2 avx512f avx512_vnni avx512_bf16
"""


def _cpu(tmp_path, text, machine_name="x86_64", monkeypatch=None):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    if monkeypatch is not None:
        monkeypatch.setattr(machine.platform, "machine", lambda: machine_name)
    return machine.cpu_info(str(path), environ={})


def test_reads_the_first_processor_only(tmp_path):
    cpu = _cpu(tmp_path, ZEN3)
    assert cpu.model == "AMD EPYC 7B13 (family 25, model 1)"
    assert {"avx2", "fma"} <= cpu.features
    assert "amx_bf16" not in cpu.features  # the second block is not read
    assert not cpu.native_bfloat16 and not cpu.onednn_by_default
    assert cpu.isa_summary() == "AVX2 yes, AVX-512 no, AVX512_BF16 no, AMX-BF16 no"
    assert cpu.cores == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("text", [SAPPHIRE_RAPIDS, ZEN4])
def test_bfloat16_in_hardware_with_amx_or_avx512_bf16(tmp_path, text):
    cpu = _cpu(tmp_path, text)
    assert cpu.native_bfloat16 and cpu.onednn_by_default
    assert "AVX512_BF16 yes" in cpu.describe()


def test_unreadable_cpuinfo_means_no_known_features(tmp_path):
    cpu = machine.cpu_info(str(tmp_path / "missing"))
    assert cpu.features == frozenset() and not cpu.native_bfloat16
    assert cpu.isa_summary() == "instruction sets unknown"
    assert cpu.model  # platform's name, or "unknown CPU"


def test_onednn_is_asked_for_on_x86_linux_cpus_where_tensorflow_leaves_it_off(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(machine.platform, "system", lambda: "Linux")
    zen3 = _cpu(tmp_path, ZEN3, monkeypatch=monkeypatch)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    environ = {}
    assert machine.use_onednn_kernels(environ, zen3) is None
    assert environ == {"TF_ENABLE_ONEDNN_OPTS": "1"}

    environ = {"TF_ENABLE_ONEDNN_OPTS": "0"}  # the user's choice wins
    assert machine.use_onednn_kernels(environ, zen3) is None
    assert environ == {"TF_ENABLE_ONEDNN_OPTS": "0"}

    environ = {}  # TensorFlow turns it on by itself: nothing to set
    assert machine.use_onednn_kernels(environ, _cpu(tmp_path, SAPPHIRE_RAPIDS)) is None
    assert environ == {}


def test_not_on_other_systems_or_architectures(tmp_path, monkeypatch):
    monkeypatch.setattr(machine.platform, "system", lambda: "Darwin")
    environ = {}
    assert machine.use_onednn_kernels(environ, _cpu(tmp_path, ZEN3)) is None
    assert environ == {}
    monkeypatch.setattr(machine.platform, "system", lambda: "Linux")
    arm = _cpu(tmp_path, "model name\t: Neoverse\nFeatures\t: fp asimd\n", "aarch64", monkeypatch)
    assert machine.use_onednn_kernels(environ, arm) is None
    assert environ == {}


def test_too_late_when_tensorflow_came_first_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(machine.platform, "system", lambda: "Linux")
    zen3 = _cpu(tmp_path, ZEN3, monkeypatch=monkeypatch)
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    environ = {}
    warning = machine.use_onednn_kernels(environ, zen3)
    assert "Import keras_alexnet before TensorFlow" in warning and "AMD EPYC 7B13" in warning
    assert environ == {}


def test_importing_the_package_first_turns_onednn_on_in_tensorflow():
    """The real switch, in a fresh process: TensorFlow reads it once, at import."""
    code = (
        "import keras_alexnet, os\n"
        "from keras_alexnet import compat\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), compat.onednn_enabled())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    cpu = machine.cpu_info()
    expected_var = "None" if cpu.onednn_by_default or not cpu.x86_64 else "1"
    assert out.stdout.split() == [expected_var, "True" if cpu.x86_64 else out.stdout.split()[1]]


def test_describe_this_machine_names_cpu_onednn_and_gpus():
    line = machine.describe_this_machine()
    cpu = machine.cpu_info()
    assert cpu.model in line and f"{cpu.cores} cores" in line and "AVX2" in line
    assert "oneDNN kernels o" in line and "GPUs: " in line


@pytest.mark.parametrize(
    "cap, native", [("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True)]
)
def test_a_cap_on_onednn_below_bfloat16_means_no_native_bfloat16(tmp_path, cap, native):
    path = tmp_path / "cpuinfo"
    path.write_text(SAPPHIRE_RAPIDS)
    cpu = machine.cpu_info(str(path), environ={"ONEDNN_MAX_CPU_ISA": cap})
    assert cpu.native_bfloat16 is native
    assert cpu.onednn_by_default  # TensorFlow reads the CPU's flags, not the cap
    assert f"oneDNN capped at {cap}" in cpu.describe()
    assert machine.cpu_info(str(path), environ={}).onednn_cap is None
