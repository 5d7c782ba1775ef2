"""For query images, finds the most similar images of a dataset by Euclidean distance between
their fc7 features, and draws them as a grid (paper section 6.1, figure 4).

    alexnet-similar --model=runs/quickstart/best.keras --output=similar.png
    alexnet-similar --model=m.keras --dataset=image_folder --image_dir=~/photos q.jpg

Without query files, the first --queries images of --split are the queries (each is then
its own nearest neighbour, at distance 0, and is left out).
"""

from absl import app, flags

from keras_alexnet import cli, data, visualize
from keras_alexnet.serving import trained_model

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A run directory or .keras file of an AlexNet.", required=True)
cli.define_data_flags(FLAGS)
flags.DEFINE_enum("split", "validation", ["train", "validation"], "Images to search.")
flags.DEFINE_integer("max_images", 600, "Search the first N images of the split.", lower_bound=1)
flags.DEFINE_integer(
    "queries", 4, "Queries taken from the split when no files are given.", lower_bound=1
)
flags.DEFINE_integer("neighbours", 6, "Neighbours per query.", lower_bound=1)
flags.DEFINE_string("output", "similar.png", "Where to write the PNG.")


def main(argv):
    def draw():
        visualize.check_png_path(FLAGS.output)
        trained = trained_model.load_trained_model(FLAGS.model)
        if trained.model is None:
            raise ValueError(f"--model={FLAGS.model}: give a .keras file or a run directory.")
        source, stats = data.open_dataset(**cli.data_location(FLAGS))
        picture = visualize.similar_images(
            trained.model,
            source,
            stats,
            split=FLAGS.split,
            max_images=FLAGS.max_images,
            query_files=argv[1:],
            queries=FLAGS.queries,
            neighbours=FLAGS.neighbours,
        )
        visualize.save_png(picture, FLAGS.output)
        print(f"Wrote {FLAGS.output}")

    return cli.report_errors(draw)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
