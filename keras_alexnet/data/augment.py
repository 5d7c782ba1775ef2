"""The paper's image preprocessing and augmentation as pure tensor -> tensor functions.

Every function takes and returns tensors, has no state and no Python per-pixel work, and
behaves the same eagerly and inside `tf.data`. Random ones take an explicit stateless `seed`
(a shape [2] integer tensor), so a seeded pipeline gives the same stream every time. The
train and eval compositions live in `keras_alexnet.data.pipeline`, and only there.

Images are float32 on the 0..255 scale (or uint8) in HWC layout, RGB.
"""

from __future__ import annotations

import tensorflow as tf

# Paper 2: images are rescaled so the shorter side is 256, then the central 256x256 patch kept.
RESIZE_SIZE = 256
# Paper 4.1: random 227x227 patches of the 256x256 image (the paper's 224: see
# alexnet.DEFAULT_SIZE).
CROP_SIZE = 227
# Paper 4.1: PCA colour augmentation with a_i drawn from N(0, 0.1).
PCA_ALPHA_STDDEV = 0.1
# Paper 4.1, at test time: the four corner patches and the centre patch, and their
# reflections; the network's softmax outputs on the ten are averaged.
TEN_CROP_VIEWS = 10


def central_square(image: tf.Tensor) -> tf.Tensor:
    """The largest central square of `image`: (H, W, C) -> (S, S, C), S = min(H, W).

    Rescaling the shorter side to 256 and then keeping the central 256x256 patch (paper 2)
    keeps exactly this square; cropping first lets the JPEG decoder skip the rest.
    """
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    top = (shape[0] - side) // 2
    left = (shape[1] - side) // 2
    return image[top : top + side, left : left + side]


def resize_square(image: tf.Tensor, size: int = RESIZE_SIZE) -> tf.Tensor:
    """Resizes a square image to (size, size) with bilinear filtering; float32.

    Antialiasing (a wider filter) is used only when shrinking by 2x or more, where plain
    bilinear sampling would skip pixels. Between 1x and 2x, the common case (ImageNet's
    375-500 pixel images to 256), plain bilinear is close to it and about 2.5x faster
    (benchmarks/input_pipeline.py).
    """
    image = tf.cast(image, tf.float32)
    shrink_a_lot = tf.shape(image)[0] >= 2 * size
    resized = tf.cond(
        shrink_a_lot,
        lambda: tf.image.resize(image, (size, size), method="bilinear", antialias=True),
        lambda: tf.image.resize(image, (size, size), method="bilinear"),
    )
    return tf.ensure_shape(resized, (size, size, None))


def rescale_and_center(image: tf.Tensor, size: int = RESIZE_SIZE) -> tf.Tensor:
    """Paper 2: shorter side to `size`, then the central `size` x `size` patch.

    (H, W, C) -> float32 (size, size, C); the same as `resize_square(central_square(image))`.
    """
    return resize_square(central_square(image), size)


def random_crop(image: tf.Tensor, seed: tf.Tensor, size: int = CROP_SIZE) -> tf.Tensor:
    """A `size` x `size` patch at a uniformly random position, every position equally likely."""
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    limits = tf.stack([shape[0] - size + 1, shape[1] - size + 1])
    tf.debugging.assert_positive(limits, message=f"random_crop: image smaller than {size}")
    offsets = tf.random.stateless_uniform([2], seed, minval=0, maxval=2**30, dtype=tf.int32)
    offsets = offsets % limits
    return image[offsets[0] : offsets[0] + size, offsets[1] : offsets[1] + size]


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The image or its horizontal reflection, each with probability 1/2 (paper 4.1).

    A `tf.cond`: the unflipped half of the draws copies nothing.
    """
    image = tf.convert_to_tensor(image)
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)


def pca_offset(alpha: tf.Tensor, eigenvalues: tf.Tensor, eigenvectors: tf.Tensor) -> tf.Tensor:
    """Paper 4.1: the RGB offset `[p1 p2 p3] [a1 l1, a2 l2, a3 l3]^T`.

    Args:
        alpha: (3,) the a_i.
        eigenvalues: (3,) the l_i, on the pixel scale of the image the offset is added to.
        eigenvectors: (3, 3) with the eigenvectors p_i as columns.

    Returns:
        (3,) float32, to add to every pixel.
    """
    eigenvalues = tf.cast(eigenvalues, tf.float32)
    eigenvectors = tf.cast(eigenvectors, tf.float32)
    return tf.linalg.matvec(eigenvectors, tf.cast(alpha, tf.float32) * eigenvalues)


def add_pca_offset(image, alpha, eigenvalues, eigenvectors) -> tf.Tensor:
    """Adds `pca_offset(alpha, ...)` to every pixel of `image`; float32."""
    return tf.cast(image, tf.float32) + pca_offset(alpha, eigenvalues, eigenvectors)


def random_pca_offset(
    seed: tf.Tensor,
    eigenvalues: tf.Tensor,
    eigenvectors: tf.Tensor,
    alpha_stddev: float = PCA_ALPHA_STDDEV,
) -> tf.Tensor:
    """Paper 4.1: the (3,) RGB offset for one image, with a_i ~ N(0, alpha_stddev)."""
    alpha = tf.random.stateless_normal([3], seed, stddev=alpha_stddev)
    return pca_offset(alpha, eigenvalues, eigenvectors)


def random_pca_jitter(
    image: tf.Tensor,
    seed: tf.Tensor,
    eigenvalues: tf.Tensor,
    eigenvectors: tf.Tensor,
    alpha_stddev: float = PCA_ALPHA_STDDEV,
) -> tf.Tensor:
    """Paper 4.1 colour augmentation: adds `random_pca_offset` to every pixel; float32."""
    offset = random_pca_offset(seed, eigenvalues, eigenvectors, alpha_stddev)
    return tf.cast(image, tf.float32) + offset


def subtract_mean(image: tf.Tensor, mean: tf.Tensor) -> tf.Tensor:
    """Paper 2: subtracts the training set's per-channel mean; float32."""
    return tf.cast(image, tf.float32) - tf.cast(mean, tf.float32)


def center_crop(image: tf.Tensor, size: int = CROP_SIZE) -> tf.Tensor:
    """The central `size` x `size` patch (the eval view)."""
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    top = (shape[0] - size) // 2
    left = (shape[1] - size) // 2
    return image[top : top + size, left : left + size]


def ten_crop(image: tf.Tensor, size: int = CROP_SIZE) -> tf.Tensor:
    """Paper 4.1 test-time views: four corners, centre, and their reflections.

    Returns:
        (10, size, size, C): top-left, top-right, bottom-left, bottom-right, centre, then the
        same five mirrored left-right.
    """
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    bottom, right = shape[0] - size, shape[1] - size
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right)]
    crops = [image[t : t + size, s : s + size] for t, s in corners]
    crops.append(center_crop(image, size))
    crops = tf.stack(crops)
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)
