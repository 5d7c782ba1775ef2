"""Trains AlexNet with the paper's recipe and exports the best model for TF Serving.

    python scripts/train.py --flagfile=configs/quickstart.flags
    python scripts/train.py --flagfile=configs/paper.flags --manual_dir=~/imagenet
    python scripts/train.py --dataset=image_folder --image_dir=~/photos --init=he

Flags after --flagfile override the file's. Running the same command again resumes a killed
run from its backup in --model_dir. SIGTERM saves and exits with status 143; a NaN loss
stops with status 1 and keeps the last backup.

The screen shows the run's own lines: the precision chosen, one line per epoch (with
--verbose=2), warnings, errors and a summary. TensorFlow's and tensorflow-datasets' start-up
and INFO lines are hidden unless --verbosity is given (0 shows INFO; absl's flag).
"""

import os
import sys

# Before TensorFlow loads (see keras_alexnet.native_logs): its start-up lines off the screen.
_LOGS_ASKED = any(arg.startswith(("--verbosity", "-v")) for arg in sys.argv[1:])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if _LOGS_ASKED else "2")
os.environ.setdefault("KERAS_ALEXNET_QUIET_START", "0" if _LOGS_ASKED else "1")

from absl import app, flags, logging  # noqa: E402

from keras_alexnet import callbacks, config, run_directory, strategies, training  # noqa: E402

FLAGS = flags.FLAGS
config.define_flags(FLAGS)
flags.DEFINE_integer(
    "logical_cpus",
    None,
    "Split the CPU into N logical devices (mirrored/towers without GPUs).",
    lower_bound=1,
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # tensorflow-datasets' per-stream INFO lines
        import tensorflow as tf

        tf.get_logger().setLevel("WARNING")  # "Using MirroredStrategy with devices ..."
        import tensorflow_datasets as tfds

        tfds.disable_progress_bar()  # the embedded set's generation bars
    if FLAGS.logical_cpus:
        strategies.use_logical_cpus(FLAGS.logical_cpus)
    try:
        training.run(config.config_from_flags(FLAGS))
    except (config.SettingsError, run_directory.RunDirectoryError) as error:
        # Library errors name the setting, which is the flag of the same name.
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    except callbacks.NonFiniteLoss as error:
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    except callbacks.TrainingInterrupted as error:
        print(error, file=sys.stderr)
        sys.exit(143)
    except KeyboardInterrupt:
        # Ctrl-C: the run stops where it is; its last complete backup is untouched.
        print(
            f"Interrupted. The last backup in {FLAGS.model_dir} is intact: run the same command "
            "to resume.",
            file=sys.stderr,
        )
        sys.exit(130)


if __name__ == "__main__":
    app.run(main)
