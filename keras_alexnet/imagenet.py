"""ImageNet (ILSVRC-2012) facts that ship with the package: class names and pixel statistics.

Nothing here touches the network: the 1000 synset ids and their names are read from
`resources/imagenet_class_index.json`, inside the package.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

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
