"""Top-1 and top-5 error of one model or an ensemble on a dataset split, with the centre
crop and with the paper's ten-crop averaging (section 4.1).

    alexnet-evaluate --model=runs/quickstart/best.keras
    alexnet-evaluate --model=saved_models/alexnet --dataset=image_folder \\
        --image_dir=~/photos --stats=stats.json --output=eval.json
    alexnet-evaluate --model=a.keras --model=b.keras   # the average of their softmax

--model: a run directory, a .keras file, a SavedModel or imagenet (docs/serving.md).
"""

import os

from absl import app, flags

from keras_alexnet import cli, data, files
from keras_alexnet.serving import evaluation

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, ".keras, SavedModel or imagenet; repeat for an ensemble.")
cli.define_data_flags(FLAGS)
flags.DEFINE_enum("split", "validation", ["train", "validation"], "Split to evaluate.")
flags.DEFINE_enum("crops", "both", ["center", "ten", "both"], "Centre crop, ten-crop, or both.")
flags.DEFINE_integer("batch_size", 32, "Images per batch.", lower_bound=1)
flags.DEFINE_integer("max_examples", None, "Evaluate only the first N images.", lower_bound=1)
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")
flags.mark_flag_as_required("model")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    def evaluate():
        output = FLAGS.output and os.path.expanduser(FLAGS.output)
        if output:  # before the evaluation, which takes hours on ImageNet
            files.check_writable_file(output, "--output")
        source, stats = data.open_dataset(**cli.data_location(FLAGS))
        results = evaluation.evaluate_models(
            FLAGS.model,
            source,
            stats,
            crops=FLAGS.crops,
            split=FLAGS.split,
            batch_size=FLAGS.batch_size,
            max_examples=FLAGS.max_examples,
        )
        print("\n".join(evaluation.results_lines(results, len(FLAGS.model))))
        if output:
            evaluation.save_results(results, output)
            print(f"Wrote {FLAGS.output}")

    return cli.report_errors(evaluate)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
