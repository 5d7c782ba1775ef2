"""For query images, finds the most similar images of a dataset by Euclidean distance between
their fc7 features, and draws them as a grid (paper section 6.1, figure 4).

    python scripts/similar.py --model=runs/quickstart/best.keras --output=similar.png
    python scripts/similar.py --model=m.keras --dataset=image_folder --image_dir=~/photos q.jpg

Without query files, the first --queries images of --split are the queries (each is then
its own nearest neighbour, at distance 0, and is left out).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A .keras file of a keras_alexnet AlexNet.", required=True)
flags.DEFINE_string("dataset", "alexnet_shapes", "alexnet_shapes, image_folder or a tfds name.")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data dir.")
flags.DEFINE_string("image_dir", None, "The image folder (dataset=image_folder).")
flags.DEFINE_string("stats", None, "Pixel statistics JSON the model was trained with.")
flags.DEFINE_enum("split", "validation", ["train", "validation"], "Images to search.")
flags.DEFINE_integer("max_images", 600, "Search the first N images of the split.", lower_bound=1)
flags.DEFINE_integer("queries", 4, "Queries taken from the split when no files are given.")
flags.DEFINE_integer("neighbours", 6, "Neighbours per query.", lower_bound=1)
flags.DEFINE_string("output", "similar.png", "Where to write the PNG.")


def main(argv):
    files = argv[1:]
    import keras_alexnet  # isort: skip  (before TensorFlow loads: see keras_alexnet.machine)
    from keras_alexnet import data, visualize  # isort: skip
    from keras_alexnet.data import pipeline  # isort: skip

    import keras
    import numpy as np
    import tensorflow as tf

    for path in files:
        if not os.path.isfile(path):
            print(f"ERROR: {path}: no such file", file=sys.stderr)
            return 1
    if not os.path.isfile(FLAGS.model):
        print(f"ERROR: the model file {FLAGS.model!r} does not exist.", file=sys.stderr)
        return 1
    try:
        source = data.make_source(FLAGS.dataset, data_dir=FLAGS.data_dir, image_dir=FLAGS.image_dir)
        stats = data.load_stats(FLAGS.stats) if FLAGS.stats else source.default_stats
    except ValueError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    features_of = keras_alexnet.feature_extractor(keras.saving.load_model(FLAGS.model))
    mean = np.float32(stats.mean_rgb)
    views = np.concatenate(
        [
            v.numpy()
            for v, _ in data.eval_dataset(source, 32, stats, split=FLAGS.split)
            .unbatch()
            .take(FLAGS.max_images)
            .batch(32)
        ]
    )
    features = np.asarray(features_of.predict(views, batch_size=32, verbose=0))
    if files:
        query_views = []
        for path in files:
            with open(path, "rb") as f:
                try:
                    query_views.append(pipeline.eval_view(tf.constant(f.read()), stats).numpy())
                except tf.errors.InvalidArgumentError:
                    print(f"ERROR: {path}: not a JPEG or PNG image", file=sys.stderr)
                    return 1
        query_views = np.stack(query_views)
        query_features = np.asarray(features_of.predict(query_views, verbose=0))
        nearest = visualize.nearest_neighbours(query_features, features, FLAGS.neighbours)
    else:
        query_views = views[: FLAGS.queries]
        query_features = features[: FLAGS.queries]
        nearest = visualize.nearest_neighbours(query_features, features, FLAGS.neighbours + 1)
        nearest = nearest[:, 1:]  # each query is its own nearest neighbour
    pictures = lambda v: np.clip(v + mean, 0, 255)  # noqa: E731
    rows = [[pictures(views[j]) for j in row] for row in nearest]
    visualize.neighbours_image([pictures(q) for q in query_views], rows).save(FLAGS.output)
    print(f"Wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main)
