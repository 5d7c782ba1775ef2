"""Classifies image files with an exported model and prints the top 5 per file.

    alexnet-predict --model=saved_models/alexnet examples/*.jpg
    alexnet-predict --model=imagenet photo.jpg        # the trained ImageNet weights
    alexnet-predict --model=runs/quickstart/best.keras --class_names=names.txt a.png
    alexnet-predict --server=localhost:8500 --protocol=grpc a.jpg # TF Serving, gRPC

Each picture is classified from the paper's ten views (section 4.1) unless --crops=center; a
bad file is one ERROR line and exit status 1 (docs/serving.md).
"""

import os
import sys

from absl import app, flags

from keras_alexnet import cli
from keras_alexnet.serving import prediction

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "saved_models/alexnet", "SavedModel, run dir, .keras or imagenet.")
flags.DEFINE_string("class_names", None, "Text file of class names, for a .keras model.")
flags.DEFINE_string("stats", None, "Pixel statistics JSON the .keras model was trained with.")
flags.DEFINE_string("server", None, "host:port of a running TF Serving instead of --model.")
flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "How to talk to --server.")
flags.DEFINE_string("model_name", "alexnet", "The model's name on --server.")
flags.DEFINE_enum("crops", "ten", ["ten", "center"], "The paper's ten views, or the centre one.")


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError("Give one or more image files to classify.")

    def classify_files():
        failed = False
        for path, top, problem in prediction.classify_paths(
            paths,
            server=FLAGS.server,
            protocol=FLAGS.protocol,
            model_name=FLAGS.model_name,
            model=FLAGS.model,
            class_names_file=FLAGS.class_names and os.path.expanduser(FLAGS.class_names),
            stats_file=FLAGS.stats and os.path.expanduser(FLAGS.stats),
            crops=FLAGS.crops,
        ):
            failed = failed or bool(problem)
            if problem:
                print(f"ERROR: {path}: {problem}", file=sys.stderr)
            else:
                print(f"{path}: {', '.join(f'{label} {score:.3f}' for label, score in top)}")
        return 1 if failed else 0

    return cli.report_errors(classify_files)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
