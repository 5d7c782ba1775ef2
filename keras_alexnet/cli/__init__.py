"""The package's commands, one module each (`alexnet-train` is `cli/train.py`), and what they
share: the flags that say where the data is, and one mapping from the library's errors to an
`ERROR: ...` line and an exit status.

Each command module defines its absl flags, a `main(argv)` that turns them into plain
arguments and makes one library call, and `run(argv)`. They are started through the launcher
`keras_alexnet_cli` (the console scripts, `python -m keras_alexnet_cli`, `scripts/*.py`), which
prepares the quiet start before TensorFlow loads; the library never reads flags.

The data flags (`--dataset`, `--data_dir`, `--manual_dir`, `--image_dir`, `--stats`) are
`TrainConfig`'s fields, defined from them as `alexnet-train` defines all of its flags: the
same help and bounds in every command, and `~` expanded once (`data_location`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from keras_alexnet.training import config

# The errors the library raises for bad input, each with a one-line message that says what
# to do: ValueError (SettingsError, PathError, DiskFull, a file that is not a model or not an
# image), OSError (a file that cannot be read or written), FloatingPointError (NonFiniteLoss).
USER_ERRORS = (ValueError, OSError, FloatingPointError)


def define_data_flags(flag_values, names: tuple[str, ...] = config.DATA_LOCATION) -> None:
    """Defines the data-location flags `names` (default: all of them) in `flag_values`."""
    config.define_flags(flag_values, names)


def data_location(flag_values, names: tuple[str, ...] = config.DATA_LOCATION) -> dict:
    """The data flags' values as `data.open_dataset`'s arguments, `~` expanded."""
    values = config.flag_settings(flag_values, names)
    if "stats" in values:
        values["stats_file"] = values.pop("stats")
    return values


def report_errors(call: Callable[[], object]) -> int:
    """Runs `call` and returns the script's exit status: its own (0 unless it returns an int);
    for a stop that asked for one (an error with an `exit_status`: SIGTERM's 143), its
    message and that status; for the library's errors for bad input (`USER_ERRORS`),
    `ERROR: <message>` on stderr and 1. Anything else is a bug and keeps its traceback."""
    try:
        status = call()
    except Exception as error:
        status = getattr(error, "exit_status", None)
        if status is not None:
            print(error, file=sys.stderr)
            return status
        if isinstance(error, USER_ERRORS):
            print(f"ERROR: {error}", file=sys.stderr)
            return 1
        if _out_of_memory(error):
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            first = re.sub(r"\{\{[^}]*\}\}\s*", "", first).split(" on /job:")[0]  # TF's
            print(
                f"ERROR: not enough memory for what was asked ({first[:200]}). Ask for less "
                "(fewer classes, a smaller batch or image), or use a machine with more memory.",
                file=sys.stderr,
            )
            return 1
        raise
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def _out_of_memory(error: Exception) -> bool:
    """MemoryError, or TensorFlow's ResourceExhaustedError (an allocation that failed),
    known by name: this module does not load TensorFlow."""
    names = {kind.__name__ for kind in type(error).__mro__}
    return bool(names & {"MemoryError", "ResourceExhaustedError"})


def hide_info_lines() -> None:
    """Keeps the INFO lines of Python's side off the screen for the rest of the process:
    tensorflow-datasets' lines per stream ("Constructing tf.data.Dataset ..."), TensorFlow's
    "Using MirroredStrategy with devices ...", and the embedded set's generation bars.
    Warnings and errors still show."""
    import tensorflow as tf  # (the commands that call this have TensorFlow loaded already)
    import tensorflow_datasets as tfds
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("WARNING")
    tfds.disable_progress_bar()
