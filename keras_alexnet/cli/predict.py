"""Classifies image files with an exported model and prints the top 5 per file.

    alexnet-predict --model=saved_models/alexnet examples/*.jpg
    alexnet-predict --model=imagenet photo.jpg        # the trained ImageNet weights
    alexnet-predict --model=saved_models/alexnet/3 photo.jpg
    alexnet-predict --model=runs/quickstart/best.keras --class_names=names.txt a.png
    alexnet-predict --server=localhost:8501 a.jpg                 # TF Serving, REST
    alexnet-predict --server=localhost:8500 --protocol=grpc a.jpg # TF Serving, gRPC

--model is a SavedModel from alexnet-train (a version directory, or the base directory,
whose highest version is used), a run directory, "imagenet" (the trained ImageNet weights, as
`AlexNet(weights="imagenet")` gets them: the Keras cache, or a download checked against its
hash; ImageNet's class names), or a .keras file (then the class names come
from --class_names, one per line, else from the class_names.txt beside it, else from the
model's card, else ImageNet's for a 1000-class model, else "class <i>").

Each picture is classified as the paper does at test time (section 4.1): the softmax averaged
over its four corner crops, its centre crop and their mirrors (the export's ten_crop
signature); --crops=center takes the centre crop alone (serving_default: one network pass).
A file that is missing or not an image is a one-line error; the other files are still
classified, and the exit status is 1. TensorFlow's start-up lines are hidden unless
--verbosity is given.
"""

import os
import sys

from absl import app, flags

from keras_alexnet import cli
from keras_alexnet.serving import prediction

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "model",
    "saved_models/alexnet",
    "SavedModel (version or base dir), run directory, .keras, or imagenet (the trained weights).",
)
flags.DEFINE_string("class_names", None, "Text file of class names, for a .keras model.")
flags.DEFINE_string("stats", None, "Pixel statistics JSON the .keras model was trained with.")
flags.DEFINE_string("server", None, "host:port of a running TF Serving instead of --model.")
flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "How to talk to --server.")
flags.DEFINE_string("model_name", "alexnet", "The model's name on --server.")
flags.DEFINE_enum(
    "crops",
    "ten",
    ["ten", "center"],
    "ten: the softmax averaged over the paper's ten views (section 4.1); center: the centre "
    "view alone (the export's serving_default).",
)


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError("Give one or more image files to classify.")

    def classify_files():
        unusable = prediction.unusable_image_files(paths)  # said first, before the model loads
        for path, problem in unusable.items():
            print(f"ERROR: {path}: {problem}", file=sys.stderr)
        classify = prediction.make_classifier(
            FLAGS.server,
            FLAGS.protocol,
            FLAGS.model_name,
            FLAGS.model,
            class_names_file=FLAGS.class_names and os.path.expanduser(FLAGS.class_names),
            stats_file=FLAGS.stats and os.path.expanduser(FLAGS.stats),
            crops=FLAGS.crops,
        )
        failed = bool(unusable)
        for path, top, problem in prediction.classify_files(classify, paths, skip=unusable):
            if problem:
                print(f"ERROR: {path}: {problem}", file=sys.stderr)
                failed = True
            else:
                print(f"{path}: {prediction.format_top(top)}")
        return 1 if failed else 0

    return cli.report_errors(classify_files)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
