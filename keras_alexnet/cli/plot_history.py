"""Draws a training run's curves (loss, top-1 and top-5 error per epoch, train and
validation) from its training_log.csv.

    alexnet-plot-history --model_dir=runs/quickstart --output=curves.png
"""

import os

from absl import app, flags

from keras_alexnet import cli, visualize
from keras_alexnet.training.directory import HISTORY_FILE

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "runs/alexnet", "The training run (its training_log.csv).")
flags.DEFINE_string("output", "curves.png", "Where to write the PNG.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    def draw():
        visualize.check_png_path(FLAGS.output)
        path = os.path.join(os.path.expanduser(FLAGS.model_dir), HISTORY_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"{path} does not exist; train with alexnet-train first.")
        visualize.save_png(visualize.curves_image(visualize.read_history(path)), FLAGS.output)
        print(f"Wrote {FLAGS.output}")

    return cli.report_errors(draw)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
