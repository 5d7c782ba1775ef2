"""Top-1 and top-5 error on a dataset split: the centre crop, the paper's ten-crop averaging
(section 4.1: four corners and the centre, and their mirrors, softmax averaged), and the
average of several models' softmax outputs (the paper's ensembles, section 6).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from keras_alexnet.data import pipeline
from keras_alexnet.data.sources import Source
from keras_alexnet.data.stats import ColorStats

# (B, 227, 227, 3) mean-subtracted views -> (B, classes) probabilities.
Predictor = Callable[[tf.Tensor], np.ndarray]
TOP_K = 5


def load_predictor(path: str, stats: ColorStats) -> Predictor:
    """A predictor from a `.keras` file or an exported SavedModel (whose `predict_images`
    takes 0..255 pixels and subtracts its own mean: the pipeline's mean is added back)."""
    path = os.path.expanduser(path)
    if path.endswith(".keras"):
        import keras

        import keras_alexnet  # noqa: F401  (registers the custom layers)

        if not os.path.isfile(path):
            raise ValueError(f"The model file {path!r} does not exist.")
        model = keras.saving.load_model(path)
        return lambda views: np.asarray(model(views, training=False), np.float32)
    from keras_alexnet.export import find_saved_model

    signature = tf.saved_model.load(find_saved_model(path)).signatures["predict_images"]
    mean = tf.constant(stats.mean_rgb, tf.float32)
    return lambda views: signature(images=views + mean)["probabilities"].numpy()


def evaluate(
    predictors: Sequence[Predictor],
    source: Source,
    stats: ColorStats | None = None,
    split: str = "validation",
    batch_size: int = 32,
    ten_crop: bool = False,
    max_examples: int | None = None,
) -> dict:
    """Top-1/top-5 error of the average softmax of `predictors` on a split.

    Args:
        predictors: one model, or several (the paper's ensemble): each maps mean-subtracted
            views (B, 227, 227, 3) to probabilities (B, classes).
        source: the dataset.
        stats: the pixel statistics the models were trained with (`source.default_stats`).
        split: "train" or "validation".
        batch_size: images per batch (ten-crop runs 10 views per image).
        ten_crop: average over the paper's ten views instead of the centre crop.
        max_examples: evaluate only the first N images.

    Returns:
        {"examples", "top1_error", "top5_error", "top1_accuracy", "top5_accuracy",
        "ten_crop", "models"}.
    """
    if not predictors:
        raise ValueError("predictors must hold at least one model; received none.")
    stats = stats or source.default_stats
    ds = pipeline.eval_dataset(source, batch_size, stats, split=split, ten_crop=ten_crop)
    if max_examples:
        ds = ds.unbatch().take(max_examples).batch(batch_size)
    examples = top1 = topk = 0
    for views, labels in ds:
        if ten_crop:  # (B, 10, 227, 227, 3): one forward pass over all views
            batch = tf.shape(views)[0]
            flat = tf.reshape(views, (-1, *views.shape[2:]))
            probabilities = np.mean(
                [np.reshape(p(flat), (batch, 10, -1)).mean(axis=1) for p in predictors], axis=0
            )
        else:
            probabilities = np.mean([p(views) for p in predictors], axis=0)
        labels = labels.numpy()
        k = min(TOP_K, probabilities.shape[1])
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        top1 += int(np.sum(top[:, 0] == labels))
        topk += int(np.sum(np.any(top == labels[:, None], axis=1)))
        examples += len(labels)
    if not examples:
        raise ValueError(f"The {split} split of {source.name} yielded no images to evaluate.")
    return {
        "examples": examples,
        "top1_error": 1 - top1 / examples,
        "top5_error": 1 - topk / examples,
        "top1_accuracy": top1 / examples,
        "top5_accuracy": topk / examples,
        "ten_crop": ten_crop,
        "models": len(predictors),
    }
