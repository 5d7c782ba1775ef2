"""Exports a trained model for TF Serving as `<export_dir>/<next version>/`.

    alexnet-export --model_dir=runs/quickstart            # the run's best model
    alexnet-export --model=m.keras --class_names=names.txt --stats=stats.json
    alexnet-export --model=imagenet                       # the trained ImageNet weights
    alexnet-export --model_dir=runs/quickstart --also=onnx,litert  # and model.onnx ...

A training run already exports its best model at the end; use this to export again (for
example into another --export_dir) or to export a .keras file. The version is the next free
integer unless --version is given; an existing version is never overwritten.
"""

import os

from absl import app, flags

from keras_alexnet import cli
from keras_alexnet.serving import export

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run: its best.keras, class names and stats.")
flags.DEFINE_string("model", None, "A .keras file or imagenet (instead of --model_dir).")
flags.DEFINE_string("class_names", None, "Class names file, one per line (with --model).")
flags.DEFINE_string("stats", None, "Pixel statistics JSON the model was trained with.")
flags.DEFINE_string("export_dir", "saved_models/alexnet", "The model's base path for TF Serving.")
flags.DEFINE_integer(
    "version", None, "Version (default: the next free one).", lower_bound=1, upper_bound=2**63 - 1
)
flags.DEFINE_list(
    "also", [], "Also write into the version: onnx (model.onnx, needs .[onnx]), litert (.tflite)."
)
flags.register_multi_flags_validator(
    ["model_dir", "model"],
    lambda given: bool(given["model_dir"]) != bool(given["model"]),
    "give exactly one of --model_dir (a training run) and --model (.keras).",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    def export_model():
        path = export.export_trained_model(
            FLAGS.model_dir or FLAGS.model,
            FLAGS.export_dir,
            class_names_file=FLAGS.class_names and os.path.expanduser(FLAGS.class_names),
            stats_file=FLAGS.stats and os.path.expanduser(FLAGS.stats),
            version=FLAGS.version,
            also=FLAGS.also,
        )
        print(f"Exported to {path}")

    return cli.report_errors(export_model)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
