"""Exports a trained model for TF Serving as `<export_dir>/<next version>/`.

    python scripts/export.py --model_dir=runs/quickstart            # the run's best model
    python scripts/export.py --model=m.keras --class_names=names.txt --stats=stats.json
    python scripts/export.py --model_dir=runs/quickstart --also=onnx,litert  # and model.onnx ...

A training run already exports its best model at the end; use this to export again (for
example into another --export_dir) or to export a .keras file. The version is the next free
integer unless --version is given; an existing version is never overwritten.
"""

import importlib.util
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run: its best.keras, class names and stats.")
flags.DEFINE_string("model", None, "A .keras file (instead of --model_dir).")
flags.DEFINE_string("class_names", None, "Class names file, one per line (with --model).")
flags.DEFINE_string("stats", None, "Pixel statistics JSON the model was trained with.")
flags.DEFINE_string("export_dir", "saved_models/alexnet", "The model's base path for TF Serving.")
flags.DEFINE_integer("version", None, "Version number (default: the next free one).", lower_bound=1)
flags.DEFINE_list(
    "also",
    [],
    "Formats to write beside the SavedModel, in the same version directory: onnx "
    "(model.onnx, needs pip install -e '.[onnx]') and/or litert (model.tflite).",
)


def _error(message):
    print(f"ERROR: {message}", file=sys.stderr)
    return 1


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if bool(FLAGS.model_dir) == bool(FLAGS.model):
        return _error("give exactly one of --model_dir (a training run) and --model (.keras).")
    import keras_alexnet  # isort: skip  (before TensorFlow loads: see keras_alexnet.machine)
    from keras_alexnet import data, export, model_card, prediction, run_directory  # isort: skip
    from keras_alexnet import portable_export  # isort: skip

    try:
        also = portable_export.check_formats(FLAGS.also)
    except ValueError as error:
        return _error(f"--also: {error}")
    if "onnx" in also and importlib.util.find_spec("onnx") is None:
        return _error("--also=onnx needs the onnx package: pip install -e '.[onnx]'.")

    model_path, names_path, stats_path = FLAGS.model, FLAGS.class_names, FLAGS.stats
    if FLAGS.model_dir:
        run = os.path.expanduser(FLAGS.model_dir)
        model_path = os.path.join(run, run_directory.BEST_MODEL_FILE)
        names_path = names_path or os.path.join(run, run_directory.CLASS_NAMES_FILE)
        stats_path = stats_path or os.path.join(run, run_directory.STATS_FILE)
    if not os.path.isfile(model_path):
        return _error(f"{model_path} does not exist; train with scripts/train.py first.")
    try:
        model = prediction.load_trained_model(model_path)
        classes = model.output_shape[-1]
        if names_path:
            if not os.path.isfile(names_path):
                return _error(f"the class names file {names_path} does not exist.")
            class_names = prediction.read_class_names(names_path)
        elif classes == 1000:
            class_names = keras_alexnet.imagenet_class_names()
        else:
            return _error(f"the model has {classes} classes: give their names with --class_names.")
        stats = data.load_stats(stats_path) if stats_path else data.IMAGENET_STATS
        path = export.export_saved_model(
            model,
            os.path.expanduser(FLAGS.export_dir),
            class_names,
            stats,
            FLAGS.version,
            card=model_card.read_card(model_path),
            also=also,
        )
    except (ValueError, OSError) as error:  # (FileExistsError is an OSError)
        return _error(error)
    print(f"Exported to {path}")
    return 0


if __name__ == "__main__":
    app.run(main)
