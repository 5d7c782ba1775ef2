"""Classifies image files with an exported model and prints the top 5 per file.

    python scripts/predict.py --model=saved_models/alexnet examples/*.jpg
    python scripts/predict.py --model=saved_models/alexnet/3 photo.jpg
    python scripts/predict.py --model=runs/quickstart/best.keras --class_names=names.txt a.png
    python scripts/predict.py --server=localhost:8501 a.jpg                 # TF Serving, REST
    python scripts/predict.py --server=localhost:8500 --protocol=grpc a.jpg # TF Serving, gRPC

--model is a SavedModel from scripts/train.py (a version directory, or the base directory,
whose highest version is used), or a .keras file (then the class names come from
--class_names, one per line, or are ImageNet's for a 1000-class model). A file that is
missing or not an image is a one-line error; the other files are still classified, and the
exit status is 1.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "saved_models/alexnet", "SavedModel (version or base dir) or .keras.")
flags.DEFINE_string("class_names", None, "Text file of class names, for a .keras model.")
flags.DEFINE_string("stats", None, "Pixel statistics JSON the .keras model was trained with.")
flags.DEFINE_string("server", None, "host:port of a running TF Serving instead of --model.")
flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "How to talk to --server.")
flags.DEFINE_string("model_name", "alexnet", "The model's name on --server.")


def _not_a_file(path):
    """Why `path` cannot be an image file, or None."""
    if os.path.isdir(path):
        return "is a directory; give the image files in it (for example dir/*.jpg)"
    if not os.path.exists(path):
        return "no such file"
    if not os.path.isfile(path):
        return "not a regular file"
    return None


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError("Give one or more image files to classify.")
    unusable = {p: _not_a_file(p) for p in paths if _not_a_file(p)}
    for path, problem in unusable.items():
        print(f"ERROR: {path}: {problem}", file=sys.stderr)
    from keras_alexnet import prediction

    try:
        if FLAGS.server and FLAGS.protocol == "rest":
            classify = prediction.rest_classifier(FLAGS.server, FLAGS.model_name)
        elif FLAGS.server:
            classify = prediction.grpc_classifier(FLAGS.server, FLAGS.model_name)
        else:
            classify = prediction.load_classifier(
                FLAGS.model, class_names=FLAGS.class_names, stats=FLAGS.stats
            )
    except ValueError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    failed = bool(unusable)
    for path in paths:
        if path in unusable:
            continue
        try:
            encoded = prediction.read_image_file(path)
        except ValueError as error:
            print(f"ERROR: {path}: {error}", file=sys.stderr)
            failed = True
            continue
        try:
            top = classify(encoded)
        except ValueError as error:
            print(f"ERROR: {path}: {error}", file=sys.stderr)
            if str(error).startswith("cannot reach"):
                return 1  # the other files would fail the same way
            failed = True
            continue
        print(f"{path}: {prediction.format_top(top)}")
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
