"""Draws a training run's curves (loss, top-1 and top-5 error per epoch, train and
validation) from its training_log.csv.

    python scripts/plot_history.py --model_dir=runs/quickstart --output=curves.png
"""

import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "runs/alexnet", "The training run (its training_log.csv).")
flags.DEFINE_string("output", "curves.png", "Where to write the PNG.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from keras_alexnet import visualize

    path = os.path.join(os.path.expanduser(FLAGS.model_dir), "training_log.csv")
    if not os.path.isfile(path):
        print(f"ERROR: {path} does not exist; train with scripts/train.py first.", file=sys.stderr)
        return 1
    try:
        history = visualize.read_history(path)
    except ValueError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    visualize.curves_image(history).save(FLAGS.output)
    print(f"Wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main)
