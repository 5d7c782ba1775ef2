"""Top-1 and top-5 error on a dataset split: the centre crop, the paper's ten-crop averaging
(section 4.1: four corners and the centre, and their mirrors, softmax averaged), and the
average of several models' softmax outputs (the paper's ensembles, section 6).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from keras_alexnet import files
from keras_alexnet.data import augment, pipeline
from keras_alexnet.data.sources import Source
from keras_alexnet.data.stats import ColorStats
from keras_alexnet.serving.signatures import TOP_K
from keras_alexnet.serving.trained_model import (
    IMAGENET_MODEL,
    NAMES_FROM_IMAGENET,
    SAVED_MODEL,
    TrainedModel,
    load_trained_model,
)

# (B, 227, 227, 3) mean-subtracted views -> (B, classes) probabilities.
Predictor = Callable[[tf.Tensor], np.ndarray]


def load_predictor(
    path: str, stats: ColorStats, class_names: Sequence[str] | None = None
) -> Predictor:
    """`predictor_of` the model at `path` (see `trained_model.load_trained_model`), for views
    made with `stats`.

    With `class_names` (the dataset's), the model must have those classes: their count, and
    their names where the model carries them (its model card, or the export's).

    Raises:
        ValueError: one line: the file cannot be loaded, is not a keras_alexnet export, or
            its classes are not the dataset's.
    """
    trained = load_trained_model(path)
    # (ImageNet's readable names, assumed for any 1000-class model, are not compared.)
    own_names = trained.class_names if trained.names_from != NAMES_FROM_IMAGENET else None
    _check_classes(path, trained.classes, own_names, class_names)
    return predictor_of(trained, stats)


def predictor_of(trained: TrainedModel, stats: ColorStats) -> Predictor:
    """`trained` as a function of views made with `stats` (mean-subtracted) to probabilities.
    An export's `predict_images` takes 0..255 pixels and subtracts its own mean: the views'
    mean is added back."""
    if trained.kind == IMAGENET_MODEL:  # the views' mean swapped for the weights' own
        model, shift = trained.model, _mean_shift(stats, trained.stats)
        return lambda views: np.asarray(model(views + shift, training=False), np.float32)
    if trained.kind != SAVED_MODEL:
        model = trained.model
        return lambda views: np.asarray(model(views, training=False), np.float32)
    signature = trained.saved_model.signatures.get("predict_images")
    if signature is None:
        raise ValueError(
            f"{trained.path} is not a keras_alexnet export: it has no predict_images signature "
            f"(it has {sorted(trained.saved_model.signatures)}). Export the model with "
            "alexnet-export."
        )
    mean = tf.constant(stats.mean_rgb, tf.float32)
    return lambda views: signature(images=views + mean)["probabilities"].numpy()


def _mean_shift(views_stats: ColorStats, model_stats: ColorStats) -> np.ndarray:
    """What turns views less one mean into views less the other."""
    return np.subtract(views_stats.mean_rgb, model_stats.mean_rgb).astype(np.float32)


def _check_classes(path, classes, names, expected) -> None:
    """Raises `ValueError` when a model's classes are not the dataset's `expected` names."""
    if expected is None:
        return
    expected = list(expected)
    if classes != len(expected) or (names is not None and list(names) != expected):
        shown = list(names)[:10] if names is not None else f"{classes} unnamed classes"
        raise ValueError(
            f"{path} was not trained on this dataset: its classes are {shown}, the dataset's "
            f"{expected[:10]} ({len(expected)} in all; the first 10 shown). Evaluate it on "
            "the dataset it was trained on."
        )


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
                [
                    np.reshape(p(flat), (batch, augment.TEN_CROP_VIEWS, -1)).mean(axis=1)
                    for p in predictors
                ],
                axis=0,
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


CROPS = {"center": (False,), "ten": (True,), "both": (False, True)}


def evaluate_models(
    paths: Sequence[str],
    source: Source,
    stats: ColorStats,
    crops: str = "both",
    **options,
) -> dict:
    """`evaluate` of the models at `paths` (one, or an ensemble) on `source`, with the centre
    crop, the ten crops, or both (`crops`); `options` are `evaluate`'s `split`,
    `batch_size` and `max_examples`. Each model must have been trained on `source`'s classes.

    Returns:
        {"dataset", "split", "models": paths, "center": results, "ten": results}, each
        results as `evaluate` returns them (only the crops asked for).
    """
    predictors = [load_predictor(path, stats, source.class_names) for path in paths]
    split = options.get("split", "validation")
    results = {"dataset": source.name, "split": split, "models": list(paths)}
    for ten_crop in CROPS[crops]:
        name = "ten" if ten_crop else "center"
        results[name] = evaluate(predictors, source, stats, ten_crop=ten_crop, **options)
    return results


def results_lines(results: dict, models: int) -> list[str]:
    """One line per crop of `evaluate_models`' results: top-1 and top-5 error, images."""
    counted = f"{models} model{'s' if models > 1 else ''}"
    return [
        f"{crops:>6} crop: top-1 error {results[crops]['top1_error']:.4f}, top-5 error "
        f"{results[crops]['top5_error']:.4f} ({results[crops]['examples']} images, {counted})"
        for crops in ("center", "ten")
        if crops in results
    ]


def save_results(results: dict, path: str) -> None:
    """Writes the results as JSON (`files.atomic_save`).

    Raises:
        PathError: the file cannot be written, saying why.
    """

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)

    try:
        files.atomic_save(write, path)
    except OSError as error:
        raise files.PathError(
            f"could not write --output={path} ({error.strerror or error}): free space or "
            "choose another path."
        ) from None
