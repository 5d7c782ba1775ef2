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

import sys

import quiet_start

quiet_start.unless_logs_asked()  # before TensorFlow loads

import cli  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_alexnet import native_logs, training  # noqa: E402
from keras_alexnet.training import config, strategies  # noqa: E402

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
        native_logs.hide_info_lines()
    if FLAGS.logical_cpus:
        strategies.use_logical_cpus(FLAGS.logical_cpus)
    try:
        # Library errors name the setting, which is the flag of the same name.
        return cli.report_errors(lambda: training.train(config.config_from_flags(FLAGS)))
    except KeyboardInterrupt:
        # Ctrl-C: the run stops where it is; its last complete backup is untouched.
        print(
            f"Interrupted. The last backup in {FLAGS.model_dir} is intact: run the same command "
            "to resume.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    app.run(main)
