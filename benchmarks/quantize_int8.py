"""int8 dense layers (`keras_alexnet.quantization`) against float32: size, speed, accuracy.

    python benchmarks/quantize_int8.py --model_dir=runs/quickstart [--repeats=5]

From a training run (its best.keras, class names and stats; by default the quickstart's, on
the embedded alexnet_shapes set), in one process:

1. accuracy: validation top-1 and top-5 (centre crop) of the float32 model and of the same
   model with fc6-fc8 in int8, and how often the two agree on the top class;
2. size: the model's weights (the bytes of its variables; a `.keras` or `.weights.h5` of a
   compiled model also holds the optimizer's), and the SavedModel export's `variables/` (does
   it keep int8?);
3. speed: `predict_on_batch` images/s at `--batch_size` and at 1, float32 and int8
   alternating, `--repeats` rounds; the headline is the median over rounds of the ratio
   within a round (both sides saw the machine in the same state), with a float32 matmul's
   FLOP/s measured in each round as the machine's reference;
4. the export: the SavedModel of the int8 model reproduces it (`predict_images`).

Names the CPU first. Figures go to docs/results.md ("int8") with the machine they came from.
"""

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_alexnet  # noqa: E402, F401, I001  (first: it sets TensorFlow's oneDNN switch)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "runs/quickstart", "A training run (best.keras, stats.json).")
flags.DEFINE_string("dataset", "alexnet_shapes", "The run's dataset, for its validation split.")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data_dir, if not the default.")
flags.DEFINE_string("image_dir", None, "With --dataset=image_folder: the folder.")
flags.DEFINE_integer("batch_size", 32, "Batch size of the throughput measurement.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Rounds of the speed measurement.", lower_bound=1)


def _matmul_flops(size=2048, runs=5):
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.linalg.matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(runs):
        tf.linalg.matmul(a, b).numpy()
    return 2 * size**3 * runs / (time.perf_counter() - start)


def _images_per_second(model, batch, seconds=3.0):
    model.predict_on_batch(batch)  # traced once
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.predict_on_batch(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def _accuracy(models, source, stats):
    """Top-1 and top-5 per model, and the fraction of images where both pick the same class."""
    from keras_alexnet.data import pipeline

    correct = {name: [0, 0] for name in models}
    agree = seen = 0
    for views, labels in pipeline.eval_dataset(source, 64, stats):
        labels = labels.numpy()
        tops = {}
        for name, model in models.items():
            top = np.argsort(-model.predict_on_batch(views), axis=1, kind="stable")[:, :5]
            correct[name][0] += int(np.sum(top[:, 0] == labels))
            correct[name][1] += int(np.sum(np.any(top == labels[:, None], axis=1)))
            tops[name] = top[:, 0]
        agree += int(np.sum(tops["float32"] == tops["int8"]))
        seen += len(labels)
    return {n: (c[0] / seen, c[1] / seen) for n, c in correct.items()}, agree / seen, seen


def _export_size(model, names, stats, folder):
    from keras_alexnet.serving import export

    path = export.export_saved_model(model, folder, names, stats)
    variables = os.path.join(path, "variables")
    size = sum(os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))
    return path, size


def main(argv):
    del argv
    from keras_alexnet import data, machine
    from keras_alexnet.serving import quantization, trained_model

    print(machine.describe_this_machine())
    run = os.path.expanduser(FLAGS.model_dir)
    model_path = os.path.join(run, trained_model.BEST_MODEL_FILE)
    stats = data.load_stats(os.path.join(run, trained_model.STATS_FILE))
    names = trained_model.read_class_names(os.path.join(run, trained_model.CLASS_NAMES_FILE))
    source = data.make_source(FLAGS.dataset, data_dir=FLAGS.data_dir, image_dir=FLAGS.image_dir)
    models = {
        "float32": trained_model.load_keras_model(model_path),
        "int8": quantization.quantize_dense_layers(trained_model.load_keras_model(model_path)),
    }

    accuracy, agreement, seen = _accuracy(models, source, stats)
    for name, (top1, top5) in accuracy.items():
        print(f"{name}: validation top-1 {top1:.4f}, top-5 {top5:.4f} ({seen} images)")
    print(f"same top class: {agreement:.4f}")

    with tempfile.TemporaryDirectory() as folder:
        sizes = {}
        for name, model in models.items():
            weights = sum(v.numpy().nbytes for v in model.weights)
            path, variables = _export_size(model, names, stats, os.path.join(folder, name))
            sizes[name] = (weights, variables)
            print(
                f"{name}: weights {sizes[name][0] / 1e6:.1f} MB, export variables/ "
                f"{variables / 1e6:.1f} MB"
            )
        served = tf.saved_model.load(path).signatures["predict_images"]  # the int8 export
        images = np.random.default_rng(0).uniform(0, 255, (4, 227, 227, 3)).astype("float32")
        exported = served(images=tf.constant(images))["probabilities"].numpy()
        direct = models["int8"].predict_on_batch(images - np.float32(stats.mean_rgb))
        print(
            f"int8 export against the int8 model: max |difference| "
            f"{np.max(np.abs(exported - direct)):.2e}"
        )
        print(
            f"size int8/float32: weights {sizes['int8'][0] / sizes['float32'][0]:.3f}, "
            f"export {sizes['int8'][1] / sizes['float32'][1]:.3f}"
        )

    for batch_size in (FLAGS.batch_size, 1):
        batch = np.random.default_rng(1).normal(0, 50, (batch_size, 227, 227, 3))
        batch = batch.astype("float32")
        ratios, rows = [], []
        for _ in range(FLAGS.repeats):
            flops = _matmul_flops()
            rates = {name: _images_per_second(m, batch) for name, m in models.items()}
            ratios.append(rates["int8"] / rates["float32"])
            rows.append((flops, rates))
        flops, rates = rows[len(rows) // 2]
        print(
            f"batch {batch_size}: float32 {rates['float32']:.1f} images/s, int8 "
            f"{rates['int8']:.1f} images/s (a round near the median; matmul "
            f"{flops / 1e9:.0f} GFLOP/s); int8/float32 median {statistics.median(ratios):.3f}, "
            f"range {min(ratios):.3f}-{max(ratios):.3f} over {len(ratios)} rounds"
        )


if __name__ == "__main__":
    app.run(main)
