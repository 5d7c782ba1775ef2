"""Top-1 and top-5 error of one model or an ensemble on a dataset split, with the centre
crop and with the paper's ten-crop averaging (section 4.1).

    python scripts/evaluate.py --model=runs/quickstart/best.keras
    python scripts/evaluate.py --model=saved_models/alexnet --dataset=image_folder \\
        --image_dir=~/photos --stats=stats.json --output=eval.json
    python scripts/evaluate.py --model=a.keras --model=b.keras   # the average of their softmax

--model takes a .keras file or an exported SavedModel (a version or the base directory);
give it several times for the paper's ensemble.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, ".keras file or SavedModel; repeat for an ensemble.")
flags.DEFINE_string(
    "dataset", "alexnet_shapes", "alexnet_shapes, imagenet2012, image_folder, tfds."
)
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data dir.")
flags.DEFINE_string("manual_dir", None, "Folder with the ILSVRC2012 tars (imagenet2012).")
flags.DEFINE_string("image_dir", None, "The image folder (dataset=image_folder).")
flags.DEFINE_string("stats", None, "Pixel statistics JSON the models were trained with.")
flags.DEFINE_enum("split", "validation", ["train", "validation"], "Split to evaluate.")
flags.DEFINE_enum("crops", "both", ["center", "ten", "both"], "Centre crop, ten-crop, or both.")
flags.DEFINE_integer("batch_size", 32, "Images per batch.", lower_bound=1)
flags.DEFINE_integer("max_examples", None, "Evaluate only the first N images.", lower_bound=1)
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")
flags.mark_flag_as_required("model")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from keras_alexnet import data, evaluation

    path = lambda value: os.path.expanduser(value) if value else value  # noqa: E731
    if FLAGS.output:
        folder = os.path.dirname(os.path.abspath(path(FLAGS.output)))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
            print(f"ERROR: cannot write --output={FLAGS.output} in {folder}.", file=sys.stderr)
            return 1
    try:
        source = data.make_source(
            FLAGS.dataset,
            data_dir=path(FLAGS.data_dir),
            manual_dir=path(FLAGS.manual_dir),
            image_dir=path(FLAGS.image_dir),
        )
        stats = data.load_stats(path(FLAGS.stats)) if FLAGS.stats else source.default_stats
        predictors = [evaluation.load_predictor(m, stats, source.class_names) for m in FLAGS.model]
    except ValueError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    results = {"dataset": source.name, "split": FLAGS.split, "models": FLAGS.model}
    for crops in ("center", "ten") if FLAGS.crops == "both" else (FLAGS.crops,):
        result = evaluation.evaluate(
            predictors,
            source,
            stats,
            split=FLAGS.split,
            batch_size=FLAGS.batch_size,
            ten_crop=crops == "ten",
            max_examples=FLAGS.max_examples,
        )
        results[crops] = result
        print(
            f"{crops:>6} crop: top-1 error {result['top1_error']:.4f}, top-5 error "
            f"{result['top5_error']:.4f} ({result['examples']} images, {len(predictors)} "
            f"model{'s' if len(predictors) > 1 else ''})"
        )
    if FLAGS.output:
        try:
            with open(path(FLAGS.output), "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1)
        except OSError as error:
            print(f"ERROR: cannot write {FLAGS.output} ({error.strerror}).", file=sys.stderr)
            return 1
        print(f"Wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main)
