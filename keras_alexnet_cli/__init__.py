"""The launcher of keras_alexnet's commands: `alexnet-train`, `alexnet-predict`, ... (the
console scripts), `python -m keras_alexnet_cli <command>`, and the `scripts/*.py` shims.

Each command's code is `keras_alexnet.cli.<command>`. This package stands outside
`keras_alexnet` on purpose: `import keras_alexnet` loads TensorFlow, and TensorFlow writes its
start-up lines the moment it loads. The quiet start (`quiet_start`: `TF_CPP_MIN_LOG_LEVEL`, and
TensorFlow's native start-up lines filtered out of stderr while the command's module loads
TensorFlow and probes its devices) happens here, in modules that import nothing but the
standard library. The library itself never touches the screen's file descriptors.

The quiet start applies unless the user asks for logs: `--verbosity` (absl's flag; 0 shows
INFO) or `KERAS_ALEXNET_QUIET_START=0`.
"""

from __future__ import annotations

import importlib
import sys

from keras_alexnet_cli import quiet_start

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
# What KERAS_BACKEND=jax needs beyond it (training on JAX: docs/training.md).
_JAX_INSTALL = 'pip install "keras_alexnet[tensorflow,jax]"'


def launch(command: str, argv: list[str] | None = None) -> int:
    """Runs `command` (one of COMMANDS) with `argv` (default: `sys.argv`); returns its exit
    status. A command that needs TensorFlow where it is not installed is one line."""
    argv = list(sys.argv if argv is None else argv)
    try:
        with quiet_start.native_lines_filtered(quiet_start.requested(argv)):
            module = importlib.import_module(f"keras_alexnet.cli.{command}")
            tensorflow = sys.modules.get("tensorflow")
            if tensorflow is not None:
                tensorflow.config.list_physical_devices()  # the CUDA probe and its lines, now
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in ("tensorflow", "tensorflow_datasets", "tensorflow_serving", "jax"):
            raise
        install = _JAX_INSTALL if missing == "jax" else _FULL_INSTALL
        print(
            f"ERROR: alexnet-{command.replace('_', '-')} needs {missing}, which is not "
            f"installed{'' if missing == 'jax' else ' (a model-only install)'}: {install}",
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
