"""Keeps TensorFlow's start-up lines off a script's screen (see `keras_alexnet.native_logs`)
unless the user asks for logs: `--verbosity` (absl's flag; 0 shows INFO) or
`KERAS_ALEXNET_QUIET_START=0`. A script calls `unless_logs_asked()` before anything loads
TensorFlow. This module imports no TensorFlow."""

import os
import sys


def unless_logs_asked() -> None:
    asked = any(arg.startswith(("--verbosity", "-v")) for arg in sys.argv[1:])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if asked else "2")
    os.environ.setdefault("KERAS_ALEXNET_QUIET_START", "0" if asked else "1")
