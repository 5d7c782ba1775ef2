"""Trains AlexNet with the paper's recipe and exports the best model for TF Serving.

    python scripts/train.py --flagfile=configs/quickstart.flags
    python scripts/train.py --flagfile=configs/paper.flags --manual_dir=~/imagenet
    python scripts/train.py --dataset=image_folder --image_dir=~/photos --init=he

Flags after --flagfile override the file's. Running the same command again resumes a killed
run from its backup in --model_dir. SIGTERM saves and exits with status 143; a NaN loss
stops with status 1 and keeps the last backup.
"""

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from absl import app, flags  # noqa: E402

from keras_alexnet import run_directory, training  # noqa: E402
from keras_alexnet.config import TrainConfig  # noqa: E402

FLAGS = flags.FLAGS
_DEFINE = {
    "string": flags.DEFINE_string,
    "integer": flags.DEFINE_integer,
    "float": flags.DEFINE_float,
    "bool": flags.DEFINE_bool,
    "list": flags.DEFINE_list,
}


def _define_flags():
    """One flag per `TrainConfig` field, with its default, help and bounds."""
    for field in dataclasses.fields(TrainConfig):
        meta = field.metadata
        if meta["kind"] == "enum":
            flags.DEFINE_enum(field.name, field.default, list(meta["choices"]), meta["help"])
            continue
        bounds = {}
        if meta["kind"] in ("integer", "float"):
            bounds = {"lower_bound": meta.get("minimum"), "upper_bound": meta.get("maximum")}
        _DEFINE[meta["kind"]](field.name, field.default, meta["help"], **bounds)


_define_flags()
flags.DEFINE_integer(
    "logical_cpus",
    None,
    "Split the CPU into N logical devices (mirrored/towers without GPUs).",
    lower_bound=1,
)


def config_from_flags() -> TrainConfig:
    """The run's config: every field from its flag, paths with ~ expanded."""
    values = {}
    for field in dataclasses.fields(TrainConfig):
        value = FLAGS[field.name].value
        if field.metadata["kind"] == "list" and value is not None:
            value = tuple(value)
        elif field.metadata["kind"] == "string" and value and field.name.endswith("_dir"):
            value = os.path.expanduser(value)
        values[field.name] = value
    if values["stats"]:
        values["stats"] = os.path.expanduser(values["stats"])
    return TrainConfig(**values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.logical_cpus:
        training.use_logical_cpus(FLAGS.logical_cpus)
    try:
        training.run(config_from_flags())
    except (training.SettingsError, run_directory.RunDirectoryError) as error:
        # Library errors name the setting, which is the flag of the same name.
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    except training.NonFiniteLoss as error:
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    except training.TrainingInterrupted as error:
        print(error, file=sys.stderr)
        sys.exit(143)


if __name__ == "__main__":
    app.run(main)
