"""The commands' quiet start: TensorFlow's native start-up lines kept off a newcomer's screen,
and nothing else.

When TensorFlow loads and first looks for devices, its C++ code writes to the process's
standard error directly (not through Python), before its own log level applies: absl's
"WARNING: All log messages before absl::InitializeLog() ...", "Could not find cuda drivers"
and "failed call to cuInit" on a machine without a GPU, oneDNN's notice, the CPU-feature
notice. `native_lines_filtered` sends file descriptor 2 through a pipe to a small filter
process while that happens; the filter drops those known lines and writes every other line
to the real stderr at once, as it arrives. The filter is a separate process so that a fatal
native message ("F... Check failed", "This binary was compiled to use AVX ...") reaches the
screen even when TensorFlow aborts the process right after writing it: the filter reads to
the end of the pipe, which comes when the last writer is gone, dead or alive.

CUDA's lines are noise only on a machine without an NVIDIA GPU (no /dev/nvidia*, no
/proc/driver/nvidia): on a machine that has one, an initialisation error is a problem and
shows. Standard library only: this runs before `import keras_alexnet` loads TensorFlow.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
from collections.abc import Iterator

QUIET_ENV = "KERAS_ALEXNET_QUIET_START"

# Lines TensorFlow and its libraries write while loading on any machine: information, not
# problems. Anything else is written through.
_NOISE = (
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} .*"  # native INFO lines (oneDNN notice, cuda stubs, cpu feature guard)
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate "
    r"compiler flags\."
)
# TensorFlow's CUDA probe on a machine with no GPU: noise there, a problem where a GPU is.
_NO_GPU_NOISE = r"|E\d{4} .*(cuInit|cuda_platform|cuda_diagnostics|cuda_executor|CUDA error).*"


def requested(argv: list[str]) -> bool:
    """Sets the environment TensorFlow reads when it loads, unless `argv` (`--verbosity`) or
    `KERAS_ALEXNET_QUIET_START=0` asks for logs; returns whether the start is quiet."""
    asked = any(arg.startswith(("--verbosity", "-v")) for arg in argv[1:])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if asked else "2")
    os.environ.setdefault(QUIET_ENV, "0" if asked else "1")
    return os.environ[QUIET_ENV] == "1"


def has_nvidia_gpu() -> bool:
    """Whether this machine shows an NVIDIA GPU to processes (its device nodes or driver)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.isdir("/proc/driver/nvidia/gpus")


def noise_pattern(gpu: bool) -> re.Pattern[bytes]:
    """The lines dropped: start-up information, and the CUDA probe's where no GPU is."""
    return re.compile((_NOISE if gpu else _NOISE + _NO_GPU_NOISE).encode())


@contextlib.contextmanager
def native_lines_filtered(enabled: bool = True) -> Iterator[None]:
    """Within the block, file descriptor 2 goes through the filter process (see the module's
    docstring); at its end stderr is the real one again and every line has been written."""
    if not enabled or not hasattr(os, "fork"):
        yield
        return
    sys.stderr.flush()
    noise = noise_pattern(has_nvidia_gpu())
    read_end, write_end = os.pipe()
    screen = os.dup(2)
    pid = os.fork()
    if pid == 0:  # the filter: it reads until every writer is gone, then exits
        try:
            os.close(write_end)
            _filter(read_end, screen, noise)
        finally:
            os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(screen, 2)  # the pipe's last write end here closes: the filter sees its end
        os.close(screen)
        os.waitpid(pid, 0)


def _filter(read_end: int, screen: int, noise: re.Pattern[bytes]) -> None:
    """Copies lines from `read_end` to `screen` as they come, less the `noise` lines; a last
    line without its newline (a process that died mid-line) is written too."""
    pending = b""
    while chunk := os.read(read_end, 1 << 16):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.strip() and not noise.fullmatch(line.strip()):
                os.write(screen, line + b"\n")
    if pending.strip() and not noise.fullmatch(pending.strip()):
        os.write(screen, pending + b"\n")
