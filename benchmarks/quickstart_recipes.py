"""Validation accuracy of the quickstart's network under other training recipes, same budget.

    python benchmarks/quickstart_recipes.py --recipes=sgd:0.005,adam:0.0001,sgd:0.01:cosine

What chooses `configs/quickstart.flags`: `AlexNet(classes=10, init="he", dropout_rate=0)` on
the embedded alexnet_shapes set, through the quickstart's own input pipeline (the paper's
augmentation, its stats), `--epochs` epochs of `--steps_per_epoch` steps of `--batch_size`,
with the paper's weight decay; only the optimiser and the learning-rate schedule change.
A recipe is `optimizer:learning_rate[:schedule]`: `sgd` (momentum 0.9, the paper's),
`adam`, `lamb`, `sgd_gc` or `adam_gc` (below; Adam's with `--adam_beta_2`); `constant` (the
default) or `cosine` (a linear warm-up over the first epoch, or `--warmup_steps`, then
cosine decay to 0 at the last step). Each run prints its validation top-1 per epoch, its
last epoch's training top-1 (on the augmented stream, as the weights changed during it) and
its training time, on this machine (named first). `examples/` is never read.

    python benchmarks/quickstart_recipes.py --recipes=adam:0.001:cosine --probe_steps=25

`--probe_steps=N` trains only the first N steps of each recipe and prints, per layer of tower
a, the RMS of its activations and the share of its units that no image turns on (64
validation images), before and after: whether the early steps keep the network alive. A
`lamb` recipe is Keras' LAMB (Adam's step rescaled per layer to the weights' norm); `sgd_gc`
and `adam_gc` are SGD and Adam with gradient centralisation (`--gradient_centralization`).
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_alexnet  # noqa: E402, F401, I001  (first: it sets TensorFlow's oneDNN switch)
import keras  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_alexnet.training.config import KERAS_ADAM_BETA_2  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("recipes", ["sgd:0.005"], "optimizer:learning_rate[:schedule], comma separated.")
flags.DEFINE_list("seeds", ["0"], "Seeds to run each recipe with.")
flags.DEFINE_integer("epochs", 5, "Epochs (the quickstart's 5).", lower_bound=1)
flags.DEFINE_integer("steps_per_epoch", 50, "Steps per epoch (the quickstart's 50).")
flags.DEFINE_integer("batch_size", 32, "Batch size (the quickstart's 32).", lower_bound=1)
flags.DEFINE_float("label_smoothing", 0.0, "Label smoothing of the loss.")
flags.DEFINE_integer("probe_steps", 0, "Train only this many steps and print activations.")
flags.DEFINE_float("adam_beta_2", KERAS_ADAM_BETA_2, "Adam's beta_2 (as --adam_beta_2).")
flags.DEFINE_integer("warmup_steps", None, "Warm-up steps of `cosine` (default: one epoch).")

PROBED_LAYERS = ("conv1_a", "conv2_a", "conv3_a", "conv4_a", "conv5_a", "fc6_a", "fc7_a")


def _schedule(rate: float, name: str):
    from keras_alexnet.training.recipe import warmup_cosine

    if name == "constant":
        return rate
    if name == "cosine":  # the training's own (--lr_schedule=cosine)
        return warmup_cosine(rate, FLAGS.epochs, FLAGS.steps_per_epoch, FLAGS.warmup_steps)
    raise ValueError(f"unknown schedule {name!r}: constant or cosine")


def _optimizer(spec: str):
    from keras_alexnet.gradient_centralization import CentralizedAdam, CentralizedSGD

    name, rate, *schedule = spec.split(":")
    learning_rate = _schedule(float(rate), (schedule or ["constant"])[0])
    optimizers = {
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "sgd_gc": lambda: CentralizedSGD(learning_rate, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(learning_rate, beta_2=FLAGS.adam_beta_2),
        "adam_gc": lambda: CentralizedAdam(learning_rate, beta_2=FLAGS.adam_beta_2),
        "lamb": lambda: keras.optimizers.Lamb(learning_rate),
    }
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}: one of {', '.join(optimizers)}")
    return optimizers[name]()


def _one_hot(ds, source):
    """(images, labels) batches with one-hot labels, as the categorical loss needs."""
    return ds.map(lambda x, labels: (x, keras.ops.one_hot(labels, source.num_classes)))


def _compiled(spec: str, seed: int, source):
    from keras_alexnet import AlexNet
    from keras_alexnet.training.recipe import apply_weight_decay

    keras.utils.set_random_seed(seed)
    model = AlexNet(classes=source.num_classes, init="he", dropout_rate=0.0)
    apply_weight_decay(model)
    model.compile(
        optimizer=_optimizer(spec),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=FLAGS.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="top1")],
    )
    return model


def run_recipe(spec: str, seed: int, source, stats) -> tuple[list[float], float, float]:
    """Validation top-1 per epoch, the last epoch's training top-1 (on the augmented stream)
    and the training seconds of one recipe and seed."""
    from keras_alexnet import data
    from keras_alexnet.training.inputs import epoch_seed

    model = _compiled(spec, seed, source)
    train = [
        _one_hot(
            data.train_dataset(source, FLAGS.batch_size, stats, seed=epoch_seed(seed, e))
            .repeat()
            .take(FLAGS.steps_per_epoch),
            source,
        )
        for e in range(FLAGS.epochs)
    ]
    validation = _one_hot(data.eval_dataset(source, FLAGS.batch_size, stats), source)
    curve, seconds = [], 0.0
    for epoch in range(FLAGS.epochs):
        started = time.monotonic()
        fitted = model.fit(train[epoch], epochs=1, verbose=0)
        seconds += time.monotonic() - started
        curve.append(model.evaluate(validation, verbose=0, return_dict=True)["top1"])
    return curve, fitted.history["top1"][-1], seconds


def _activations(model, images) -> list[tuple[str, float, float]]:
    """(layer, RMS, share of units off for every image) for each probed layer."""
    import numpy as np

    probe = keras.Model(model.input, [model.get_layer(n).output for n in PROBED_LAYERS])
    rows = []
    for name, output in zip(PROBED_LAYERS, probe(images), strict=True):
        values = np.asarray(output).reshape(len(images), -1)
        rows.append((name, float(np.sqrt(np.mean(values**2))), float(np.mean(values.max(0) <= 0))))
    return rows


def probe_recipe(spec: str, seed: int, source, stats) -> None:
    """Prints each probed layer's activations before and after `--probe_steps` steps."""
    from keras_alexnet import data
    from keras_alexnet.training.inputs import epoch_seed

    model = _compiled(spec, seed, source)
    images, _ = next(iter(data.eval_dataset(source, 64, stats)))
    before = _activations(model, images)
    train = data.train_dataset(source, FLAGS.batch_size, stats, seed=epoch_seed(seed, 0))
    model.fit(_one_hot(train.repeat().take(FLAGS.probe_steps), source), epochs=1, verbose=0)
    print(f"{spec}, seed {seed}: after {FLAGS.probe_steps} steps (RMS, share of units off)")
    for (name, rms0, off0), (_, rms, off) in zip(before, _activations(model, images), strict=True):
        print(f"  {name:<8} {rms0:.3f} {off0:5.1%} -> {rms:.3f} {off:5.1%}", flush=True)


def main(argv):
    del argv
    from keras_alexnet import data
    from keras_alexnet.machine import describe_this_machine

    print(describe_this_machine())
    source = data.embedded_source()
    stats = source.default_stats
    if FLAGS.probe_steps:
        for spec in FLAGS.recipes:
            for seed in FLAGS.seeds:
                probe_recipe(spec, int(seed), source, stats)
        return
    print(
        f"{FLAGS.epochs} epochs of {FLAGS.steps_per_epoch} steps of {FLAGS.batch_size}, "
        f"label smoothing {FLAGS.label_smoothing}, float32"
    )
    print(
        f"{'recipe':<24} {'seed':>4}  {'validation top-1 per epoch':<36} "
        f"{'train top-1':>11} {'train min':>9}"
    )
    for spec in FLAGS.recipes:
        for seed in FLAGS.seeds:
            curve, train_top1, seconds = run_recipe(spec, int(seed), source, stats)
            shown = " ".join(f"{v:.3f}" for v in curve)
            print(
                f"{spec:<24} {seed:>4}  {shown:<36} {train_top1:>11.3f} {seconds / 60:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
