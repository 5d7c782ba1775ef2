"""Draws the 96 conv1 kernels of a trained model, tower a above tower b (paper figure 3).

python scripts/show_filters.py --model=runs/quickstart/best.keras --output=filters.png
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A run directory or .keras file of an AlexNet.", required=True)
flags.DEFINE_string("output", "filters.png", "Where to write the PNG.")
flags.DEFINE_integer("scale", 4, "Pixels per kernel pixel.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import cli  # isort: skip  (it loads TensorFlow)
    from keras_alexnet import visualize  # isort: skip
    from keras_alexnet.serving import trained_model  # isort: skip

    def draw():
        trained = trained_model.load_trained_model(FLAGS.model)
        if trained.model is None:
            raise ValueError(f"--model={FLAGS.model}: give a .keras file or a run directory.")
        visualize.filters_image(trained.model, scale=FLAGS.scale).save(FLAGS.output)
        print(f"Wrote {FLAGS.output}")

    return cli.report_errors(draw)


if __name__ == "__main__":
    app.run(main)
