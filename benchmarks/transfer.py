"""Does fine-tuning transfer? A source model against training from scratch, same steps, on a
target task it was not trained on. Not a test: it prints its figures.

    python benchmarks/transfer.py [--source=runs/quickstart/best.keras] [--steps=40]

Source task: the quickstart's model (`alexnet_shapes`: ten filled shapes on textured
backgrounds); without `--source`, the quickstart (the packaged quickstart.flags) is trained first
into a temporary folder. Target task: an image folder of six classes of *outlined* shapes
(circle, triangle, square, pentagon, star, cross drawn as thin lines on flat noisy
backgrounds, another rendering that the source never saw), `--per_class` training and
`--per_class // 2` validation images each, drawn here.

Runs, each `scripts/train.py`'s `training.train` for `--steps` steps of batch 32 in 4 epochs,
float32 on every machine (the comparison, not the speed, is the point):

- `scratch`: the quickstart's recipe from random weights (init he, lr 0.005);
- `fc6+ lr X`: from the source, conv1-conv5 frozen, fc6 onwards trained, new classifier;
- `all lr X`: from the source, every layer trained, new classifier.

For each: the best validation top-1 and the curve, and, for the fine-tuned runs, whether every
frozen layer of the best model is bit-identical to the source's (and the trained ones not).
"""

import os
import sys
import tempfile

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_string("source", None, "The source .keras (default: train the quickstart first).")
flags.DEFINE_integer("steps", 40, "Training steps of every run.", lower_bound=4)
flags.DEFINE_integer("per_class", 60, "Training images per target class.", lower_bound=10)
flags.DEFINE_list(
    "runs", ["scratch", "fc6:0.01", "fc6:0.001", "conv1:0.001"], "scratch or BLOCK:LR each."
)

TARGET_SHAPES = ("circle", "triangle", "square", "pentagon", "star", "cross")
SIZE = 128


def _outlined(name, rng):
    """A shape drawn as a thin outline on a flat, noisy background: uint8 (128, 128, 3)."""
    import numpy as np
    from PIL import Image, ImageFilter

    from keras_alexnet.data.shapes_dataset import shape_mask

    mask = shape_mask(name, rng, SIZE * 4)
    inner = mask.filter(ImageFilter.MinFilter(9))  # 4 px at 4x: a 1 px line at 128
    line = np.asarray(mask, np.float32) - np.asarray(inner, np.float32)
    line = np.asarray(Image.fromarray(np.uint8(line)).resize((SIZE, SIZE), Image.BOX))
    line = (line.astype(np.float32) / 255)[..., None]
    background = rng.uniform(0, 255, 3)
    colour = 255 - background  # apart from the background
    image = background * (1 - line) + colour * line + rng.normal(0, 6, (SIZE, SIZE, 3))
    return np.uint8(np.clip(image, 0, 255))


def _target_folder(root, per_class):
    import numpy as np
    from PIL import Image

    for split, count, seed in (("train", per_class, 1), ("validation", per_class // 2, 2)):
        for label, name in enumerate(TARGET_SHAPES):
            folder = os.path.join(root, split, name)
            os.makedirs(folder)
            for i in range(count):
                rng = np.random.default_rng([seed, label, i])
                Image.fromarray(_outlined(name, rng)).save(os.path.join(folder, f"{i}.png"))
    return root


def _config(**settings):
    from keras_alexnet.training.config import TrainConfig

    base = dict(
        dataset="image_folder",
        epochs=4,
        steps_per_epoch=FLAGS.steps // 4,
        batch_size=32,
        momentum=0.9,
        weight_decay=0.0005,
        dropout_rate=0.0,
        init="he",
        mixed_precision="none",
        verbose=0,
    )
    return TrainConfig(**{**base, **settings})


def _quickstart_source(folder):
    from absl import flags as absl_flags

    from keras_alexnet import training
    from keras_alexnet.cli import config_files
    from keras_alexnet.training import config

    values = absl_flags.FlagValues()
    config.define_flags(values)
    values(
        [
            "quickstart",
            f"--flagfile={config_files.path_of('quickstart')}",
            f"--model_dir={folder}/quickstart",
            f"--export_dir={folder}/quickstart_export",
            "--verbose=2",
        ]
    )
    result = training.train(config.config_from_flags(values))
    print(f"Source: the quickstart, validation top-1 {result.best_logs['val_top1_accuracy']:.3f}")
    return f"{folder}/quickstart/best.keras"


def _frozen_check(best_path, source_path, train_from):
    """'yes' when every frozen layer of the best model equals the source's bit for bit and
    every trained layer below the new classifier differs; else what differs."""
    import keras
    import numpy as np

    from keras_alexnet.training.fine_tuning import BLOCKS, block_of

    best, source = keras.saving.load_model(best_path), keras.saving.load_model(source_path)
    first = BLOCKS.index(train_from)
    wrong = []
    for layer in best.layers:
        block = block_of(layer.name)
        if not layer.weights or block in (None, "predictions"):
            continue
        same = all(
            np.array_equal(a, b)
            for a, b in zip(
                layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True
            )
        )
        if same != (BLOCKS.index(block) < first):
            wrong.append(f"{layer.name} {'unchanged' if same else 'changed'}")
    return "yes" if not wrong else ", ".join(wrong)


def main(argv):
    del argv
    import keras_alexnet  # noqa: F401  (before TensorFlow: the oneDNN switch)
    from keras_alexnet import training
    from keras_alexnet.machine import describe_this_machine

    print(describe_this_machine())
    with tempfile.TemporaryDirectory() as folder:
        source = FLAGS.source or _quickstart_source(folder)
        target = _target_folder(os.path.join(folder, "target"), FLAGS.per_class)
        print(
            f"Target: {len(TARGET_SHAPES)} classes of outlined shapes, {FLAGS.per_class} train / "
            f"{FLAGS.per_class // 2} validation images each; {FLAGS.steps} steps of 32, float32."
        )
        print(
            f"{'run':<14} {'best top-1':>10}  {'validation top-1 per epoch':<30} frozen as loaded"
        )
        for spec in FLAGS.runs:
            block, _, rate = spec.partition(":")
            settings = {"learning_rate": float(rate or 0.005)}
            if block != "scratch":
                settings.update(weights=source, train_from=block)
            model_dir = os.path.join(folder, spec.replace(":", "_"))
            result = training.train(
                _config(
                    image_dir=target,
                    model_dir=model_dir,
                    export_dir=os.path.join(folder, "exports"),
                    **settings,
                )
            )
            curve = " ".join(f"{e['val_top1_accuracy']:.2f}" for e in result.history)
            frozen = "-"
            if block != "scratch":
                frozen = _frozen_check(os.path.join(model_dir, "best.keras"), source, block)
            name = "scratch lr 0.005" if block == "scratch" else f"{block}+ lr {rate}"
            best = result.best_logs["val_top1_accuracy"]
            print(f"{name:<18} {best:>6.3f}  {curve:<30} {frozen}")


if __name__ == "__main__":
    app.run(main)
