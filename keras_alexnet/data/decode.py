"""Decoding encoded images, keeping only the pixels the paper's preprocessing keeps.

The train and eval views both start from the central square of the image (see
`augment.central_square`). For JPEG, `tf.io.decode_and_crop_jpeg` decodes just that square;
other formats (PNG, GIF, BMP) are decoded whole and then cropped. Both give the same pixels,
except that libjpeg upsamples the chroma of the crop's first and last column without their
outer neighbours: those two columns can differ slightly from a full decode (measured on
noise images, the worst case; invisible on photographs).
"""

from __future__ import annotations

import tensorflow as tf

from keras_alexnet.data import augment

JPEG_START = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"
PNG_START = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"


def decode_central_square(encoded: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG bytes -> uint8 (S, S, 3), the central square, RGB.

    Grey images become RGB; a PNG's alpha channel is dropped.
    """

    def jpeg():
        shape = tf.io.extract_jpeg_shape(encoded)
        side = tf.minimum(shape[0], shape[1])
        window = tf.stack([(shape[0] - side) // 2, (shape[1] - side) // 2, side, side])
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=3)

    def other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return augment.central_square(image)

    image = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    return tf.ensure_shape(image, (None, None, 3))


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG bytes -> the whole uint8 (H, W, 3) image, RGB."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.ensure_shape(image, (None, None, 3))


def looks_complete(head: bytes, tail: bytes) -> bool:
    """Whether a file's first and last bytes are those of a whole JPEG or PNG.

    Catches non-image files, empty files and truncated downloads without decoding. (A JPEG
    may carry a few bytes of padding after its end marker, so the marker is looked for in the
    last 32 bytes.)
    """
    if head.startswith(JPEG_START):
        return JPEG_END in tail[-32:]
    if head.startswith(PNG_START):
        return tail.endswith(PNG_END) or PNG_END in tail[-32:]
    return False
