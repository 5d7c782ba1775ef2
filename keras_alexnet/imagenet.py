"""ImageNet (ILSVRC-2012) facts that ship with the package: class names, pixel statistics and
the input they define (`preprocess_input`, re-exported by `keras_alexnet`).

Nothing here touches the network: the 1000 synset ids and their names are read from
`resources/imagenet_class_index.json`, inside the package.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from importlib import resources

import numpy as np
from keras import ops

# Paper 2: "subtracting the mean activity over the training set from each pixel". The
# per-channel RGB mean of the ILSVRC-2012 training set, on the 0..255 scale.
IMAGENET_MEAN_RGB = (123.68, 116.78, 103.94)

# Paper 4.1: PCA over the RGB pixel values of the ILSVRC-2012 training set, on the 0..1
# scale: eigenvalues, largest first, and the matching eigenvectors as the columns of the
# 3x3 matrix below (rows are R, G, B). Multiply eigenvalues by 255 for 0..255 pixels.
IMAGENET_EIGENVALUES = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

NUM_IMAGENET_CLASSES = 1000


@functools.lru_cache(maxsize=1)
def imagenet_class_index() -> tuple[tuple[str, str, str], ...]:
    """The 1000 ILSVRC-2012 classes in the standard label order.

    Returns:
        A tuple indexed by class id of `(synset_id, name, wordnet_lemmas)`, for example
        `("n01440764", "tench", "tench, Tinca tinca")`. `name` is the first WordNet lemma
        with spaces as underscores, as `keras.applications` names the classes.
    """
    text = resources.files("keras_alexnet").joinpath("resources/imagenet_class_index.json")
    rows = json.loads(text.read_text(encoding="utf-8"))
    if len(rows) != NUM_IMAGENET_CLASSES:
        raise RuntimeError(
            f"The packaged ImageNet class index holds {len(rows)} classes instead of "
            f"{NUM_IMAGENET_CLASSES}; the installation is damaged, reinstall keras_alexnet."
        )
    return tuple(tuple(row) for row in rows)


def imagenet_class_names() -> list[str]:
    """The 1000 readable class names, indexed by class id."""
    return [name for _, name, _ in imagenet_class_index()]


def preprocess_input(x, mean: Sequence[float] = IMAGENET_MEAN_RGB):
    """Subtracts the training set's per-channel mean from RGB images on the 0..255 scale.

    Paper 2: "subtracting the mean activity over the training set from each pixel". Unlike
    `keras.applications.vgg16.preprocess_input`, channels stay in RGB order.

    Args:
        x: images, `(..., 3)` RGB in 0..255: a NumPy array, a list, or a tensor.
        mean: the per-channel mean of the training set; ImageNet's by default.

    Returns:
        float32 images of the same shape, NumPy for NumPy input, a tensor for a tensor.

    Example:

    >>> preprocess_input(np.full((1, 227, 227, 3), 128.0))[0, 0, 0]
    array([ 4.32, 11.22, 24.06], dtype=float32)
    """
    mean = np.asarray(mean, dtype=np.float32)
    if mean.shape != (3,):
        raise ValueError(f"`mean` must hold 3 numbers (R, G, B). Received: mean={mean.tolist()}")
    tf = sys.modules.get("tensorflow")  # never imported here: only if something has
    if tf is not None and tf.is_tensor(x):  # in a tf.data pipeline, whatever Keras' backend
        if x.shape.rank is not None and x.shape[-1] != 3:
            raise ValueError(
                f"preprocess_input expects (..., 3) RGB images. Received shape {x.shape}"
            )
        return tf.cast(x, tf.float32) - mean
    if ops.is_tensor(x):  # a JAX array or torch tensor under those backends
        if x.shape[-1] != 3:
            raise ValueError(
                f"preprocess_input expects (..., 3) RGB images. Received shape {tuple(x.shape)}"
            )
        return ops.cast(x, "float32") - ops.convert_to_tensor(mean)
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[-1] != 3:
        raise ValueError(f"preprocess_input expects (..., 3) RGB images. Received shape {x.shape}")
    return x.astype(np.float32) - mean
