"""Trains AlexNet with the paper's recipe and exports the best model for TF Serving.

    alexnet-train --config=quickstart
    alexnet-train --config=paper --manual_dir=~/imagenet
    alexnet-train --dataset=image_folder --image_dir=~/photos --init=he
    python scripts/train.py --flagfile=configs/quickstart.flags     # from a clone, the same

--config names a packaged recipe; flags after it override it. The same command again resumes
a killed run from its backup (docs/training.md: the flags, resuming, the screen).
"""

import sys

from absl import app, flags

from keras_alexnet import cli, training
from keras_alexnet.cli import config_files
from keras_alexnet.training import config, strategies

FLAGS = flags.FLAGS
config.define_flags(FLAGS)
flags.DEFINE_integer("logical_cpus", None, "Split the CPU into N logical devices.", lower_bound=1)
# Expanded before absl parses the command line (`config_files.expand`); defined for --help.
flags.DEFINE_string(
    "config", None, f"A packaged recipe by name, one of {config_files.names()}, read in place."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        cli.hide_info_lines()
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


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`), its `--config` read in place, and
    runs `main`; exits."""
    try:
        argv = config_files.expand(list(sys.argv if argv is None else argv))
    except ValueError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)
    app.run(main, argv=argv)
