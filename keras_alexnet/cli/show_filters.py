"""Draws the 96 conv1 kernels of a trained model, tower a above tower b (paper figure 3).

alexnet-show-filters --model=runs/quickstart/best.keras --output=filters.png
"""

from absl import app, flags

from keras_alexnet import cli, visualize
from keras_alexnet.serving import trained_model

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A run directory or .keras file of an AlexNet.", required=True)
flags.DEFINE_string("output", "filters.png", "Where to write the PNG.")
flags.DEFINE_integer("scale", 4, "Pixels per kernel pixel.", lower_bound=1, upper_bound=64)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    def draw():
        visualize.check_png_path(FLAGS.output)
        trained = trained_model.load_trained_model(FLAGS.model)
        if trained.model is None:
            raise ValueError(f"--model={FLAGS.model}: give a .keras file or a run directory.")
        visualize.save_png(visualize.filters_image(trained.model, FLAGS.scale), FLAGS.output)
        print(f"Wrote {FLAGS.output}")

    return cli.report_errors(draw)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
