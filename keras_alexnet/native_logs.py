"""TensorFlow's native start-up lines, kept off a newcomer's screen when a script asks.

When TensorFlow loads and first looks for devices, its C++ code writes to the process's
standard error directly (not through Python), before its own log level applies: absl's
"WARNING: All log messages before absl::InitializeLog() ...", "Could not find cuda drivers",
"failed call to cuInit" on a machine without a GPU, oneDNN's notice, the CPU-feature notice.
`startup_lines_hidden` catches file descriptor 2 while that happens and writes back every line
that is not one of those, so nothing else (our warnings, a real error) is lost.

The scripts set `QUIET_ENV=1` before importing the package, unless the user asks for logs
(`--verbosity`, or `KERAS_ALEXNET_QUIET_START=0`); the package then loads TensorFlow and probes
its devices inside `startup_lines_hidden`. This module imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

QUIET_ENV = "KERAS_ALEXNET_QUIET_START"

# Lines TensorFlow and its libraries write while loading on any machine: information, not
# problems. Anything else is written back.
_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} .*"  # native INFO lines (oneDNN notice, cuda stubs, cpu feature guard)
    r"|E\d{4} .*(cuInit|cuda_platform|cuda_diagnostics|cuda_executor|CUDA error).*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate "
    r"compiler flags\."
)


def quiet_requested(environ=None) -> bool:
    return (environ if environ is not None else os.environ).get(QUIET_ENV) == "1"


@contextlib.contextmanager
def startup_lines_hidden(enabled: bool = True):
    """Within the block, the process's stderr goes to a temporary file; at its end every line
    but TensorFlow's start-up noise is written back (all of them if the block raises)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = [
                line
                for line in text.splitlines()
                if failed or not _NOISE.fullmatch(line.strip()) and line.strip()
            ]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def hide_info_lines() -> None:
    """Keeps the INFO lines of Python's side off the screen for the rest of the process:
    tensorflow-datasets' lines per stream ("Constructing tf.data.Dataset ..."), TensorFlow's
    "Using MirroredStrategy with devices ...", and the embedded set's generation bars.
    Warnings and errors still show."""
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("WARNING")
    tfds.disable_progress_bar()
