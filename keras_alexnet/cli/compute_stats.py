"""Streams once over a training set and writes its pixel mean and RGB PCA to a JSON file.

    alexnet-compute-stats --dataset=alexnet_shapes --output=stats/alexnet_shapes.json
    alexnet-compute-stats --dataset=image_folder --image_dir=~/photos --output=s.json

The statistics are taken over the 256x256 central patches the pipeline trains on (paper 2).
The training pipeline reads the file; ImageNet's well-known values are the default.
"""

import os

from absl import app, flags

from keras_alexnet import cli, data, files

FLAGS = flags.FLAGS
SOURCE_FLAGS = ("dataset", "data_dir", "manual_dir", "image_dir")  # (the stats are the output)
cli.define_data_flags(FLAGS, SOURCE_FLAGS)
flags.DEFINE_string("output", None, "Where to write the JSON file.", required=True)
flags.DEFINE_integer("max_images", None, "Use only the first N training images.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    def compute():
        output = os.path.expanduser(FLAGS.output)
        # Before reading the dataset (hours for ImageNet): a path that cannot be written.
        files.check_writable_file(output, "--output", "a .json file")
        source, _ = data.open_dataset(**cli.data_location(FLAGS, SOURCE_FLAGS))
        stats = data.dataset_stats(source, FLAGS.max_images)
        data.save_stats(stats, output)
        mean = [round(v, 2) for v in stats.mean_rgb]
        eigenvalues = [round(v, 5) for v in stats.eigenvalues]
        print(f"Wrote {output}: {stats.num_images} images, mean RGB {mean},", end=" ")
        print(f"eigenvalues {eigenvalues}")

    return cli.report_errors(compute)


def run(argv: list[str] | None = None):
    """The command: parses `argv` (default: `sys.argv`) and runs `main`; exits."""
    app.run(main, argv=argv)
