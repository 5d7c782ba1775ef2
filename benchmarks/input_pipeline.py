"""Input pipeline throughput: decode-only vs the eval and train pipelines over the same JPEGs.

    python benchmarks/input_pipeline.py [--images=512] [--width=500 --height=375] [--repeats=3]

Writes JPEG files of ImageNet's typical size and weight (500x375, quality 90, about 100 KB
each with the default noise) drawn from the embedded shapes generator, then measures
images/s, best of `--repeats` runs each, all in the same process: decoding whole images
(tf.io.decode_jpeg after reading the file, parallel map), the eval pipeline and the train
pipeline (`keras_alexnet.data`). Figures are printed as ratios to decode-only, since these
machines are shared and noisy.
"""

import os
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("images", 512, "Number of JPEG files.", lower_bound=16)
flags.DEFINE_integer("width", 500, "Image width.", lower_bound=227)
flags.DEFINE_integer("height", 375, "Image height.", lower_bound=227)
flags.DEFINE_integer("repeats", 3, "Runs per pipeline; the best is kept.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Batch size of the pipelines.", lower_bound=1)
flags.DEFINE_float(
    "noise", 20.0, "Pixel noise added to the drawn images; 20 gives ImageNet-like ~110 KB JPEGs."
)


def _write_images(folder, count, width, height):
    import numpy as np
    from PIL import Image

    from keras_alexnet.data.shapes_dataset import draw_example

    for i in range(count):
        image, label = draw_example("train", i)
        path = os.path.join(folder, f"class{label}", f"{i:05d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        big = Image.fromarray(image).resize((width, height), Image.BICUBIC)
        noisy = np.asarray(big, np.float32) + np.random.default_rng(i).normal(
            0, FLAGS.noise, (height, width, 3)
        )
        Image.fromarray(np.uint8(np.clip(noisy, 0, 255))).save(path, quality=90)


def _rate(make_dataset, count, repeats):
    best = 0.0
    for _ in range(repeats):
        ds = make_dataset()
        start = time.perf_counter()
        seen = 0
        for batch in ds:
            seen += int(batch[0].shape[0]) if isinstance(batch, tuple) else int(batch.shape[0])
        best = max(best, seen / (time.perf_counter() - start))
    assert seen == count or seen >= count - FLAGS.batch_size, (seen, count)
    return best


def main(argv):
    del argv
    from keras_alexnet import data, machine  # isort: skip  (first: TensorFlow's oneDNN switch)

    import tensorflow as tf

    print(machine.describe_this_machine())

    with tempfile.TemporaryDirectory() as folder:
        _write_images(folder, FLAGS.images, FLAGS.width, FLAGS.height)
        source = data.image_folder_source(folder, validation_fraction=0.0)
        count = source.num_examples["train"]
        size_mb = (
            sum(
                os.path.getsize(os.path.join(root, f))
                for root, _, files in os.walk(folder)
                for f in files
            )
            / 2**20
        )
        print(f"{count} JPEG files, {FLAGS.width}x{FLAGS.height}, {size_mb:.1f} MiB")

        def decode_only():
            ds = source.encoded("train").map(
                lambda encoded, label: tf.io.decode_jpeg(encoded, channels=3),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            return ds.batch(FLAGS.batch_size, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
                tf.data.AUTOTUNE
            )

        rates = {
            "decode only": _rate(decode_only, count, FLAGS.repeats),
            "eval pipeline": _rate(
                lambda: data.eval_dataset(source, FLAGS.batch_size, split="train"),
                count,
                FLAGS.repeats,
            ),
            "train pipeline": _rate(
                lambda: data.train_dataset(source, FLAGS.batch_size, seed=0), count, FLAGS.repeats
            ),
        }
    reference = rates["decode only"]
    print(f"{'pipeline':<16}{'images/s':>10}{'ratio to decode-only':>24}")
    for name, rate in rates.items():
        print(f"{name:<16}{rate:>10.1f}{rate / reference:>24.2f}")


if __name__ == "__main__":
    app.run(main)
