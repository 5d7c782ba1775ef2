"""The launcher of keras_alexnet's commands: `alexnet-train`, `alexnet-predict`, ... (the
console scripts), `python -m keras_alexnet_cli <command>`, and the `scripts/*.py` shims.

Each command's code is `keras_alexnet.cli.<command>`. This module stands outside the package
on purpose: `import keras_alexnet` loads TensorFlow, and TensorFlow writes its start-up lines
the moment it loads. What must happen before that (the quiet start: `TF_CPP_MIN_LOG_LEVEL`
and `KERAS_ALEXNET_QUIET_START`, read by `keras_alexnet.native_logs`) happens here, in a
module that imports nothing but the standard library.

The quiet start applies unless the user asks for logs: `--verbosity` (absl's flag; 0 shows
INFO) or `KERAS_ALEXNET_QUIET_START=0`.
"""

from __future__ import annotations

import importlib
import os
import sys

# The commands, each a module of keras_alexnet.cli and a console script `alexnet-<name>`
# (underscores as dashes: alexnet-convert-weights).
COMMANDS = (
    "train",
    "predict",
    "evaluate",
    "export",
    "convert_weights",
    "compute_stats",
    "plot_history",
    "show_filters",
    "similar",
    "summary",
)
# What a command needs beyond the model-only install (README, "Install").
_FULL_INSTALL = 'pip install "keras_alexnet[tensorflow]"'


def quiet_start(argv: list[str]) -> None:
    """Sets the environment TensorFlow reads when it loads, unless `argv` asks for logs."""
    asked = any(arg.startswith(("--verbosity", "-v")) for arg in argv[1:])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if asked else "2")
    os.environ.setdefault("KERAS_ALEXNET_QUIET_START", "0" if asked else "1")


def launch(command: str, argv: list[str] | None = None) -> int:
    """Runs `command` (one of COMMANDS) with `argv` (default: `sys.argv`); returns its exit
    status. A command that needs TensorFlow where it is not installed is one line."""
    argv = list(sys.argv if argv is None else argv)
    quiet_start(argv)
    try:
        module = importlib.import_module(f"keras_alexnet.cli.{command}")
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in ("tensorflow", "tensorflow_datasets", "tensorflow_serving"):
            raise
        print(
            f"ERROR: alexnet-{command.replace('_', '-')} needs {missing}, which is not "
            f"installed (a model-only install): {_FULL_INSTALL}",
            file=sys.stderr,
        )
        return 1
    return module.run(argv)


def _command(name: str):
    def run() -> int:
        return launch(name)

    run.__name__ = name
    run.__doc__ = f"The alexnet-{name.replace('_', '-')} command (keras_alexnet.cli.{name})."
    return run


train = _command("train")
predict = _command("predict")
evaluate = _command("evaluate")
export = _command("export")
convert_weights = _command("convert_weights")
compute_stats = _command("compute_stats")
plot_history = _command("plot_history")
show_filters = _command("show_filters")
similar = _command("similar")
summary = _command("summary")


def main(argv: list[str] | None = None) -> int:
    """`python -m keras_alexnet_cli <command> [flags]`."""
    argv = list(sys.argv if argv is None else argv)
    names = [name.replace("_", "-") for name in COMMANDS]
    if len(argv) < 2 or argv[1].replace("_", "-") not in names:
        received = argv[1] if len(argv) > 1 else "nothing"
        print(
            f"ERROR: give a command, one of {', '.join(names)}; received {received}. "
            "Each has --help.",
            file=sys.stderr,
        )
        return 2
    command = argv[1].replace("-", "_")
    return launch(command, [f"alexnet-{argv[1]}", *argv[2:]])


if __name__ == "__main__":
    sys.exit(main())
