"""Draws the 96 conv1 kernels of a trained model, tower a above tower b (paper figure 3).

python scripts/show_filters.py --model=runs/quickstart/best.keras --output=filters.png
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A .keras file of a keras_alexnet AlexNet.", required=True)
flags.DEFINE_string("output", "filters.png", "Where to write the PNG.")
flags.DEFINE_integer("scale", 4, "Pixels per kernel pixel.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # First: it registers the custom layers and sets TensorFlow's oneDNN switch before
    # TensorFlow loads (see keras_alexnet.machine).
    import keras_alexnet  # noqa: F401  # isort: skip
    from keras_alexnet import visualize  # isort: skip

    import keras

    if not os.path.isfile(FLAGS.model):
        print(f"ERROR: the model file {FLAGS.model!r} does not exist.", file=sys.stderr)
        return 1
    model = keras.saving.load_model(FLAGS.model)
    visualize.filters_image(model, scale=FLAGS.scale).save(FLAGS.output)
    print(f"Wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main)
