"""Training and serving throughput of AlexNet, as fractions of the machine's own matmul rate.

    python benchmarks/train_throughput.py [--batch_size=128] [--steps=4] [--repeats=4]

First it names the machine: the CPU's model, cores and instruction sets (AVX2, AVX-512,
AVX512_BF16, AMX), whether TensorFlow's oneDNN kernels are on, the GPUs. Then, in one process,
for float32 and mixed_bfloat16 (and mixed_float16 when a GPU is present):
1. a large matmul of the same dtype: the machine's reachable FLOP/s;
2. training: `model.fit` with the paper's optimizer and weight decay, batch 128, 227x227,
   from in-memory data, `--steps` steps per measurement after a warm-up (all but the first
   step timed); images/s, FLOP/s at 4.34 GFLOP per image (see `TRAIN_FLOP_PER_IMAGE`),
   ratio to (1);
3. end to end: the same training from JPEG files (500x375, like ImageNet's) through the real
   input pipeline, as a ratio to (2);
4. serving: the exported SavedModel's `predict_images` at batch 64 (images/s), and
   `serving_default` and `ten_crop` (the paper's ten views, `predict.py`'s default) with one
   JPEG (latency, ms).

The machines are shared and noisy: on the 2-core VMs seen so far the same step runs at two or
three distinct speeds (about 1 : 0.75 : 0.55) that change from one minute to the next. So a
round measures a matmul, (2), (3) and a matmul again, `--repeats` rounds. The headline ratio
is the median over rounds of the ratio within a round (training against the mean of the two
matmuls around it; end to end against the in-memory figure just before it): both sides of
each ratio saw the machine in (nearly) the same state. The spread and the best-of-each ratio
are printed too.

A policy the hardware only emulates (mixed_bfloat16 on a CPU without AMX-BF16 or AVX512_BF16,
mixed_float16 on a CPU) is not a figure to compare: by default it is skipped with a line that
says so and how much slower a probe measured it; named in `--policies` it is measured and
every line of it is marked EMULATED.
"""

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_alexnet  # noqa: E402, F401, I001  (first: it sets TensorFlow's oneDNN switch)
import keras  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 128, "Training batch size (paper: 128).", lower_bound=1)
flags.DEFINE_integer(
    "steps", 4, "Training steps per measurement (the first is not timed).", lower_bound=2
)
flags.DEFINE_integer(
    "repeats", 4, "Rounds of measurements (matmul, train, end to end, matmul).", lower_bound=1
)
flags.DEFINE_integer("matmul_size", 4096, "Side of the square matmul.", lower_bound=256)
flags.DEFINE_list("policies", None, "Policies to measure (default: all this machine supports).")
flags.DEFINE_bool("end_to_end", True, "Also train from JPEG files through the pipeline.")
flags.DEFINE_bool("serving", True, "Also measure the exported SavedModel.")

# A training step of this network per image: the forward pass is about 0.72 G multiply-adds
# (1.45 GFLOP) and the backward pass twice that (gradients of activations and of weights).
TRAIN_FLOP_PER_IMAGE = 4.34e9


def matmul_flops(dtype, size):
    """FLOP/s of four (size x size) @ (size x size) products in `dtype`, after a warm-up."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((size, size), dtype=tf.float32), dtype)
    matmul = tf.function(lambda x: tf.reduce_sum(tf.cast(tf.matmul(x, x), tf.float32)))
    matmul(a).numpy()
    start = time.perf_counter()
    for _ in range(4):
        matmul(a).numpy()
    return 4 * 2 * size**3 / (time.perf_counter() - start)


def build(policy, classes=1000):
    import keras

    from keras_alexnet import AlexNet
    from keras_alexnet.training.recipe import apply_weight_decay, paper_optimizer

    keras.mixed_precision.set_global_policy(policy)
    model = AlexNet(classes=classes)
    apply_weight_decay(model)
    model.compile(paper_optimizer(), "sparse_categorical_crossentropy", jit_compile=False)
    return model


class _StepTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def fit_images_per_second(model, dataset, steps):
    """Images/s of the steps after the first of one `model.fit` call.

    Timed from the end of the first step to the end of the last: neither the iterator's start
    (and the pipeline filling up) nor its teardown is counted. The teardown can take seconds:
    deleting an autotuned tf.data iterator sometimes waits for the autotuner thread's next
    wake-up, and its period doubles from 10 ms over the iterator's life (measured here: a
    4-step `fit` that trained for 12.5 s returned after 20.5 s, and with
    `options.autotune.enabled = False` it did not wait).
    """
    step_times = _StepTimes()
    model.fit(
        dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[step_times]
    )
    return (steps - 1) * FLAGS.batch_size / (step_times.times[-1] - step_times.times[0])


def measure_policy(policy, dtype, model, memory, files, mark=""):
    """Prints the matmul, in-memory and end-to-end figures of one policy, measured in turn;
    `mark` starts every line (EMULATED for a policy the hardware does not run natively)."""
    fit_images_per_second(model, memory, 2)  # warm-up: tracing, first allocations
    if files is not None:
        fit_images_per_second(model, files, 2)
    matmuls, trains, end_to_ends, paired, paired_files = [], [], [], [], []
    for _ in range(FLAGS.repeats):
        before = matmul_flops(dtype, FLAGS.matmul_size)
        trains.append(fit_images_per_second(model, memory, FLAGS.steps))
        if files is not None:
            end_to_ends.append(fit_images_per_second(model, files, FLAGS.steps))
            paired_files.append(end_to_ends[-1] / trains[-1])
        after = matmul_flops(dtype, FLAGS.matmul_size)
        matmuls += [before, after]
        paired.append(trains[-1] * TRAIN_FLOP_PER_IMAGE / ((before + after) / 2))
    matmul, train = max(matmuls), max(trains)
    print(
        f"{mark}{policy:>15}: train {train:5.1f} img/s = {train * TRAIN_FLOP_PER_IMAGE / 1e12:.3f} "
        f"TFLOP/s, matmul {matmul / 1e12:.3f} TFLOP/s (best of each); train/matmul within a "
        f"round: median {statistics.median(paired):.2f} ({_spread(paired)}), best/best "
        f"{train * TRAIN_FLOP_PER_IMAGE / matmul:.2f}"
    )
    print(
        f"{mark}{'':>15}  rounds: matmul {_spread(m / 1e12 for m in matmuls)} TFLOP/s, "
        f"train {_spread(trains)} img/s"
    )
    if files is not None:
        end_to_end = max(end_to_ends)
        print(
            f"{mark}{'':>15}  end to end from JPEG files {end_to_end:5.1f} img/s (best); end to "
            f"end / in-memory within a round: median {statistics.median(paired_files):.2f} "
            f"({_spread(paired_files)}), best/best {end_to_end / train:.2f}"
        )


def _spread(values):
    values = list(values)
    return f"{min(values):.3g}-{max(values):.3g}"


def in_memory(batch_size):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.uniform(-120, 120, (batch_size, 227, 227, 3)).astype("float32")
    y = rng.integers(0, 1000, batch_size).astype("int32")
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def jpeg_folder(folder, count):
    from PIL import Image

    from keras_alexnet.data.shapes_dataset import draw_example

    for i in range(count):
        image, label = draw_example("train", i)
        path = os.path.join(folder, f"class{label}", f"{i:05d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(image).resize((500, 375), Image.BICUBIC).save(path, quality=90)


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from keras_alexnet import data, machine

    gpu = bool(tf.config.list_physical_devices("GPU"))
    policies = FLAGS.policies or (
        ["float32", "mixed_float16", "mixed_bfloat16"] if gpu else ["float32", "mixed_bfloat16"]
    )
    print(machine.describe_this_machine())
    print(f"device: {'GPU' if gpu else 'CPU'}, batch {FLAGS.batch_size}, steps {FLAGS.steps}")
    with tempfile.TemporaryDirectory() as scratch:
        if FLAGS.end_to_end:
            images = FLAGS.batch_size * (FLAGS.steps + 1)
            jpeg_folder(os.path.join(scratch, "images"), images)
            source = data.image_folder_source(
                os.path.join(scratch, "images"), validation_fraction=0.0, verify=False
            )
        for policy in policies:
            emulated = emulation_warning(policy)
            if emulated and not FLAGS.policies:
                print(f"{policy:>15}: skipped, not a figure to compare: {emulated}")
                continue
            mark = "EMULATED " if emulated else ""
            dtype = {"float32": "float32", "mixed_float16": "float16"}.get(policy, "bfloat16")
            model = build(policy)
            memory = in_memory(FLAGS.batch_size)
            files = (
                data.train_dataset(source, FLAGS.batch_size).repeat() if FLAGS.end_to_end else None
            )
            measure_policy(policy, dtype, model, memory, files, mark)
            if FLAGS.serving:
                rate, centre, ten = serving_figures(model, os.path.join(scratch, policy))
                print(
                    f"{mark}{'':>15}  serving: predict_images batch 64 {rate:7.1f} img/s, "
                    f"1 JPEG: serving_default {centre * 1e3:6.1f} ms, ten_crop {ten * 1e3:6.1f} ms"
                )
            del model
            keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")


def emulation_warning(policy):
    """Why `policy` only runs emulated on the device it would train on, or None."""
    from keras_alexnet.training import precision

    requested = "none" if policy == "float32" else policy
    return precision.choose_precision(requested).warning


def serving_figures(model, export_dir):
    """(images/s of `predict_images` at batch 64, seconds of `serving_default` and of
    `ten_crop` on 1 JPEG)."""
    import numpy as np
    import tensorflow as tf

    from keras_alexnet.serving import export, signatures, warmup

    path = export.export_saved_model(model, export_dir, [str(i) for i in range(1000)])
    loaded = tf.saved_model.load(path)
    predict = loaded.signatures["predict_images"]
    batch = tf.constant(np.random.default_rng(1).uniform(0, 255, (64, 227, 227, 3)), tf.float32)
    jpeg = tf.constant(warmup.warmup_images(1))
    predict(images=batch)
    rate = max(64 / _timed(lambda: predict(images=batch)) for _ in range(FLAGS.repeats))

    def latency(name):
        serve = loaded.signatures[name]
        serve(image_bytes=jpeg)
        return min(_timed(lambda: serve(image_bytes=jpeg)) for _ in range(3 * FLAGS.repeats))

    return rate, latency(signatures.SERVING_DEFAULT), latency(signatures.TEN_CROP)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    np_value = next(iter(out.values())).numpy()  # wait for the result
    del np_value
    return time.perf_counter() - start


if __name__ == "__main__":
    app.run(main)
