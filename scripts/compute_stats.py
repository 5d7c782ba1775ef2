"""Streams once over a training set and writes its pixel mean and RGB PCA to a JSON file.

    python scripts/compute_stats.py --dataset=alexnet_shapes --output=stats/alexnet_shapes.json
    python scripts/compute_stats.py --dataset=image_folder --image_dir=~/photos --output=s.json

The statistics are taken over the 256x256 central patches the pipeline trains on (paper 2).
The training pipeline reads the file; ImageNet's well-known values are the default.
"""

import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "dataset",
    "alexnet_shapes",
    "alexnet_shapes, imagenet2012, image_folder or a prepared tfds name.",
)
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data dir.")
flags.DEFINE_string("manual_dir", None, "Folder with the ILSVRC2012 tars (imagenet2012 only).")
flags.DEFINE_string("image_dir", None, "The image folder (dataset=image_folder).")
flags.DEFINE_string("output", None, "Where to write the JSON file.", required=True)
flags.DEFINE_integer("max_images", None, "Use only the first N training images.", lower_bound=1)


def _error(message):
    print(f"ERROR: {message}", file=sys.stderr)
    return 1


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from keras_alexnet import data, run_directory

    output = os.path.expanduser(FLAGS.output)
    # Before reading the dataset (hours for ImageNet): a path that cannot be written.
    if os.path.isdir(output):
        return _error(f"--output={output} is a folder; give the path of a .json file.")
    try:
        folder = os.path.dirname(os.path.abspath(output))
        run_directory.check_writable(folder, "--output's folder", create=False)
    except run_directory.RunDirectoryError as error:
        return _error(error)
    try:
        source = data.make_source(
            FLAGS.dataset,
            data_dir=FLAGS.data_dir,
            manual_dir=FLAGS.manual_dir,
            image_dir=FLAGS.image_dir,
        )
        images = data.stats_images(source)
        if FLAGS.max_images:
            images = images.take(FLAGS.max_images)
        stats = data.compute_stats(images)
    except ValueError as error:
        return _error(error)
    try:
        data.save_stats(stats, output)
    except OSError as error:
        return _error(
            f"could not write {output} ({error.strerror or error}): free space or "
            "choose another --output."
        )
    mean = [round(v, 2) for v in stats.mean_rgb]
    eigenvalues = [round(v, 5) for v in stats.eigenvalues]
    print(f"Wrote {output}: {stats.num_images} images, mean RGB {mean},", end=" ")
    print(f"eigenvalues {eigenvalues}")
    return 0


if __name__ == "__main__":
    app.run(main)
