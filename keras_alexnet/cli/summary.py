"""Builds AlexNet and prints its layers and parameter count.

alexnet-summary                      # the paper's 1000-class model
alexnet-summary --classes=10 --include_top=false --pooling=avg
alexnet-summary --lrn=caffe           # the variant Caffe's trained weights need
"""

from absl import app, flags

import keras_alexnet
from keras_alexnet import cli

FLAGS = flags.FLAGS
flags.DEFINE_integer("classes", 1000, "Number of classes of the classifier.", lower_bound=1)
flags.DEFINE_bool("include_top", True, "Include fc6, fc7 and the classifier.")
flags.DEFINE_enum("pooling", None, ["avg", "max"], "Global pooling when --include_top=false.")
flags.DEFINE_list("tower_devices", None, "Two devices for towers a and b, e.g. /GPU:0,/GPU:1.")
flags.DEFINE_enum("lrn", "paper", ["paper", "caffe"], "The paper's LRN or Caffe's bvlc_alexnet's.")
flags.DEFINE_enum("lrn_alpha_convention", None, ["paper", "caffe"], "With --lrn=paper: alpha.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    def build_and_print():
        model = keras_alexnet.AlexNet(
            include_top=FLAGS.include_top,
            pooling=FLAGS.pooling,
            classes=FLAGS.classes,
            tower_devices=FLAGS.tower_devices,
            lrn=FLAGS.lrn,
            lrn_alpha_convention=FLAGS.lrn_alpha_convention,
        )
        model.summary(line_length=110)
        print(f"Total parameters: {model.count_params():,}")

    return cli.report_errors(build_and_print)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
