"""Datasets and the paper's input pipeline. See `pipeline` for how the pieces compose."""

from keras_alexnet.data.pipeline import dataset_stats, eval_dataset, stats_images, train_dataset
from keras_alexnet.data.sources import (
    Source,
    embedded_source,
    image_folder_source,
    imagenet_source,
    make_source,
    open_dataset,
    tfds_source,
)
from keras_alexnet.data.stats import (
    IMAGENET_STATS,
    ColorStats,
    compute_stats,
    load_stats,
    save_stats,
)

__all__ = [
    "IMAGENET_STATS",
    "ColorStats",
    "Source",
    "compute_stats",
    "dataset_stats",
    "embedded_source",
    "eval_dataset",
    "image_folder_source",
    "imagenet_source",
    "load_stats",
    "make_source",
    "open_dataset",
    "save_stats",
    "stats_images",
    "tfds_source",
    "train_dataset",
]
