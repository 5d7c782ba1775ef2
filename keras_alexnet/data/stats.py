"""Per-channel pixel statistics of a training set: the mean (paper 2) and the PCA of RGB
values (paper 4.1), computed in one streaming pass and kept in a small JSON file.

The JSON file:

    {"mean_rgb": [R, G, B],                      # on the 0..255 scale
     "eigenvalues": [l1, l2, l3],                # of the RGB covariance on the 0..1 scale
     "eigenvectors": [[...], [...], [...]],      # rows R, G, B; column i is p_i
     "num_images": N, "num_pixels": M}

The eigenvalues follow the convention of the well-known ImageNet values: computed on the 0..1
scale, multiplied by the pixel scale where they are used (`eigenvalues_for_scale`).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from keras_alexnet import imagenet, untrusted
from keras_alexnet.files import PathError, atomic_save


@dataclasses.dataclass(frozen=True)
class ColorStats:
    """Mean and RGB principal components of a training set's pixels."""

    mean_rgb: tuple[float, float, float]
    eigenvalues: tuple[float, float, float]
    eigenvectors: tuple[tuple[float, float, float], ...]
    num_images: int | None = None
    num_pixels: int | None = None

    def eigenvalues_for_scale(self, pixel_scale: float = 255.0) -> np.ndarray:
        """The eigenvalues for images whose pixels run over 0..pixel_scale."""
        return np.asarray(self.eigenvalues, np.float32) * np.float32(pixel_scale)

    def to_json(self) -> dict:
        return {
            "mean_rgb": list(self.mean_rgb),
            "eigenvalues": list(self.eigenvalues),
            "eigenvectors": [list(row) for row in self.eigenvectors],
            "num_images": self.num_images,
            "num_pixels": self.num_pixels,
        }


IMAGENET_STATS = ColorStats(
    mean_rgb=imagenet.IMAGENET_MEAN_RGB,
    eigenvalues=imagenet.IMAGENET_EIGENVALUES,
    eigenvectors=imagenet.IMAGENET_EIGENVECTORS,
)


# A statistics file holds 15 numbers and two counts: a few hundred bytes.
MAX_STATS_BYTES = 1 << 16


def load_stats(path: str | os.PathLike) -> ColorStats:
    """Reads a statistics JSON file written by `save_stats` (or `alexnet-compute-stats`)."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(
            f"The statistics file {path!r} is not a regular file (a folder, a device or a "
            "pipe). Give the JSON file `alexnet-compute-stats --output=...` wrote."
        )
    try:
        if not os.path.lexists(path):
            raise FileNotFoundError(path)
        data = untrusted.read_json(path, MAX_STATS_BYTES, "The statistics file")
        stats = ColorStats(
            mean_rgb=tuple(float(v) for v in data["mean_rgb"]),
            eigenvalues=tuple(float(v) for v in data["eigenvalues"]),
            eigenvectors=tuple(tuple(float(v) for v in row) for row in data["eigenvectors"]),
            num_images=data.get("num_images"),
            num_pixels=data.get("num_pixels"),
        )
    except FileNotFoundError:
        raise ValueError(
            f"The statistics file {path!r} does not exist. Write it with "
            "`alexnet-compute-stats --output=...`."
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"The statistics file {path!r} is not a valid statistics JSON file ({error!r}); "
            "it needs mean_rgb (3), eigenvalues (3) and eigenvectors (3x3). Write it again "
            "with `alexnet-compute-stats`."
        ) from None
    if (
        len(stats.mean_rgb) != 3
        or len(stats.eigenvalues) != 3
        or np.shape(stats.eigenvectors) != (3, 3)
    ):
        raise ValueError(
            f"The statistics file {path!r} needs mean_rgb of 3 values, eigenvalues of 3 values "
            f"and a 3x3 eigenvectors matrix; received mean_rgb={list(stats.mean_rgb)}, "
            f"eigenvalues={list(stats.eigenvalues)}, eigenvectors={stats.eigenvectors}."
        )
    check_stats(stats, f"The statistics file {path!r}")
    return stats


# The variance of values in 0..1 is at most 1/4 per channel, so the covariance's eigenvalues
# (which sum to its trace) are at most 3/4.
MAX_EIGENVALUE = 0.75
# Columns of the eigenvector matrix must be orthonormal to this tolerance (the well-known
# ImageNet values, rounded to 4 digits, are within 2e-3).
ORTHONORMAL_TOLERANCE = 0.01


def check_stats(stats: ColorStats, what: str = "stats") -> None:
    """Raises ValueError, naming `what` and the field, if `stats` cannot be the statistics
    of pixels on the 0..255 scale (NaN, a mean outside 0..255, negative eigenvalues, ...)."""
    problem = _implausible(stats)
    if problem:
        raise ValueError(
            f"{what} does not hold pixel statistics: {problem}. Write it again with "
            "`alexnet-compute-stats`."
        )


def _implausible(stats: ColorStats) -> str | None:
    """What makes `stats` impossible for pixels on the 0..255 scale, naming the field, or
    None."""
    mean = np.asarray(stats.mean_rgb, np.float64)
    values = np.asarray(stats.eigenvalues, np.float64)
    vectors = np.asarray(stats.eigenvectors, np.float64)
    if not np.all(np.isfinite(mean)) or np.any(mean < 0) or np.any(mean > 255):
        return f"mean_rgb must be 3 finite values in 0..255; received {mean.tolist()}"
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > MAX_EIGENVALUE):
        return (
            f"eigenvalues (of the covariance of pixels on the 0..1 scale) must be 3 finite "
            f"values in 0..{MAX_EIGENVALUE}; received {values.tolist()}"
        )
    if not np.all(np.isfinite(vectors)) or not np.allclose(
        vectors.T @ vectors, np.eye(3), atol=ORTHONORMAL_TOLERANCE
    ):
        return (
            "eigenvectors must be a 3x3 matrix of finite values with orthonormal columns; "
            f"received {vectors.tolist()}"
        )
    for field in ("num_images", "num_pixels"):
        count = getattr(stats, field)
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 0
        ):
            return f"{field} must be a non-negative integer or null; received {count!r}"
    return None


def save_stats(stats: ColorStats, path: str | os.PathLike) -> None:
    """Writes `stats` as JSON, atomically (`files.atomic_save`: a FIFO, a device or a link to
    nothing at `path` is refused, never replaced).

    Raises:
        PathError: the file cannot be written (the message says why and what to do).
    """
    path = os.fspath(path)

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(stats.to_json(), f, indent=2)
            f.write("\n")

    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_save(write, path)
    except OSError as error:
        raise PathError(
            f"could not write {path} ({error.strerror or error}): free space or choose "
            "another path."
        ) from None


def _moments(image):
    pixels = tf.reshape(tf.cast(image, tf.float64), [-1, 3]) / 255.0
    return (
        tf.reduce_sum(pixels, axis=0),
        tf.matmul(pixels, pixels, transpose_a=True),
        tf.cast(tf.shape(pixels)[0], tf.float64),
    )


def compute_stats(images: tf.data.Dataset) -> ColorStats:
    """Streams once over uint8/float (H, W, 3) images on the 0..255 scale.

    Args:
        images: a dataset of single images (not batches), as the model will see them
            before augmentation (for the paper: the 256x256 central patches).

    Returns:
        The `ColorStats` of all their pixels.
    """
    zero = (
        tf.zeros([3], tf.float64),
        tf.zeros([3, 3], tf.float64),
        tf.constant(0.0, tf.float64),
        tf.constant(0, tf.int64),
    )

    def add(state, moments):
        return (
            state[0] + moments[0],
            state[1] + moments[1],
            state[2] + moments[2],
            state[3] + 1,
        )

    moments = images.map(_moments, num_parallel_calls=tf.data.AUTOTUNE)
    total, outer, count, num_images = (t.numpy() for t in moments.reduce(zero, add))
    if num_images == 0:
        raise ValueError("compute_stats received an empty dataset: there are no images to measure.")
    mean = total / count
    covariance = outer / count - np.outer(mean, mean)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    # Eigenvectors are defined up to sign; fix it so the first component is negative, as in
    # the well-known ImageNet values (whose first eigenvector is about -(1, 1, 1)/sqrt(3)).
    eigenvectors = eigenvectors * np.where(eigenvectors[0] > 0, -1.0, 1.0)
    return ColorStats(
        mean_rgb=tuple(float(v) for v in mean * 255.0),
        eigenvalues=tuple(float(v) for v in np.maximum(eigenvalues, 0.0)),
        eigenvectors=tuple(tuple(float(v) for v in row) for row in eigenvectors),
        num_images=int(num_images),
        num_pixels=int(count),
    )
