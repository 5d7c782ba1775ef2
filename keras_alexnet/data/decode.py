"""Decoding encoded images, keeping only the pixels the paper's preprocessing keeps.

Only JPEG and PNG are taken, and only up to `DEFAULT_MAX_PIXELS` pixels, both checked from
the first bytes before any decoder runs (`check_encoded`): what an exported model, the input
pipeline and `predict.py` accept is the same everywhere, and a small file that declares a
huge image (a decompression bomb) is refused in microseconds instead of being decoded.

The train and eval views both start from the central square of the image (see
`augment.central_square`). For JPEG, `tf.io.decode_and_crop_jpeg` decodes just that square;
other formats (PNG, GIF, BMP) are decoded whole and then cropped. Both give the same pixels,
except that libjpeg upsamples the chroma of the crop's first and last column without their
outer neighbours: those two columns can differ slightly from a full decode (measured on
noise images, the worst case; invisible on photographs).
"""

from __future__ import annotations

import os
import re
import stat

import tensorflow as tf

from keras_alexnet.data import augment

# Decoding costs memory in proportion to the pixels a header declares, not to the file's
# size: a 1 MB PNG can declare 20000x20000 pixels, 1.2 GB as uint8 RGB and 4.8 GB as the
# float32 the resize works in. 40 million pixels holds any photograph of a 36-megapixel
# camera or an 8K frame (33 MP), and costs at most about 0.6 GB while it is decoded, cropped
# and resized: what a TF Serving instance with 2 GB of memory survives.
DEFAULT_MAX_PIXELS = 40_000_000
# A progressive JPEG is decoded in one pass over the image per scan, so its cost is pixels
# times scans. libjpeg's standard progressive script writes 10 scans for a colour image (6 for
# grey); a 1.7 MB file repeating one scan 20,000 times at 39.6 megapixels took 109 s to
# decode. Counted from the bytes before decoding (every 0xFF 0xDA marker: entropy-coded data
# never holds that pair, so the count can only overstate, by markers inside metadata such as
# an EXIF thumbnail's), 100 leaves room for any encoder's script.
MAX_JPEG_SCANS = 100
# A Huffman-coded JPEG (baseline or progressive) spends at least one bit on each 8x8 block of
# its luminance (its DC coefficient): a whole file has at least pixels / 512 bytes. A file
# with fewer than pixels / 1024 (half that, for slack) is truncated or damaged: TensorFlow's
# decoder would fill what is missing with grey (an 811-byte file declaring 39.6 megapixels
# was classified), so it is refused from its header. (Arithmetic-coded JPEGs, which can
# spend less, are not written by common encoders.)
MAX_JPEG_PIXELS_PER_BYTE = 1024
JPEG_START = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"
PNG_START = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"
# The largest image file read whole: a 40-megapixel PNG of noise (the pixel limit) is about
# 120 MB; a larger file is refused from its size before a byte of it is read.
MAX_IMAGE_FILE_BYTES = 256 << 20


# The sentences `check_encoded` fails with, inside whatever TensorFlow wraps them in.
REFUSAL = re.compile(
    r"(image(?:_bytes\[\d+\])? (?:must be an encoded|declares) [^\n]*?\.)(?=[\]'\s]|$)"
)


def _sentence(what, template: str, *values) -> tf.Tensor:
    """`what` followed by `template` with `values` filled in (vectors in full, up to 8)."""
    return tf.strings.join([what, tf.strings.format(template, values, summarize=8)])


def _is_png(encoded: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.substr(encoded, 0, len(PNG_START)), PNG_START)


def _big_endian_u32(four_bytes: tf.Tensor) -> tf.Tensor:
    digits = tf.cast(tf.io.decode_raw(four_bytes, tf.uint8), tf.int64)
    return tf.reduce_sum(digits * tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64))


def declared_shape(encoded: tf.Tensor, what: str | tf.Tensor = "image") -> tf.Tensor:
    """(height, width) int64 as a JPEG's or PNG's header declares it, without decoding.

    JPEG: the frame header (`tf.io.extract_jpeg_shape`); PNG: the IHDR chunk, which the format
    requires first (width and height as big-endian 32-bit integers at bytes 16-23). Call it
    on bytes that `check_encoded`'s signature test has passed.
    """

    def jpeg():
        return tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64)

    def png():
        # IHDR: width, then height. From at most the end: a PNG of 8 to 15 bytes must reach
        # the message below, not an out-of-range error quoting its raw bytes.
        header = tf.strings.substr(encoded, tf.minimum(16, tf.strings.length(encoded)), 8)
        complete = tf.debugging.Assert(
            tf.equal(tf.strings.length(header), 8),
            [
                _sentence(
                    what,
                    " must be an encoded JPEG or PNG image; received a PNG of {} bytes, which "
                    "ends inside its header.",
                    tf.strings.length(encoded),
                )
            ],
        )
        with tf.control_dependencies([complete]):
            width = _big_endian_u32(tf.strings.substr(header, 0, 4))
            height = _big_endian_u32(tf.strings.substr(header, 4, 4))
        return tf.stack([height, width])

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, png)


def check_encoded(
    encoded: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS, what: str | tf.Tensor = "image"
) -> tf.Tensor:
    """`encoded`, once it is known to be a JPEG or PNG of at most `max_pixels` pixels.

    Fails with InvalidArgument otherwise, saying what was received: "<what> must be an encoded
    JPEG or PNG image; received N bytes starting with [b0 b1 ...]." (the first 8 bytes as
    numbers: raw bytes in an error message are not text), "<what> declares H x W = P pixels,
    more than the limit of M." or "<what> declares S JPEG scans, more than the limit of 100."
    (see `MAX_JPEG_SCANS`). `what` names the input, e.g. "image_bytes[3]"; `REFUSAL` finds
    these sentences in an error message.
    """
    signature_ok = tf.logical_or(tf.io.is_jpeg(encoded), _is_png(encoded))
    first = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 0, 8), tf.uint8), tf.int32)
    check = tf.debugging.Assert(
        signature_ok,
        [
            _sentence(
                what,
                " must be an encoded JPEG or PNG image; received {} bytes starting with {}.",
                tf.strings.length(encoded),
                first,
            )
        ],
    )
    with tf.control_dependencies([check]):
        shape = declared_shape(encoded, what)
    pixels = shape[0] * shape[1]
    size_check = tf.debugging.Assert(
        pixels <= max_pixels,
        [
            _sentence(
                what,
                " declares {} x {} = {} pixels, more than the limit of {}.",
                shape[0],
                shape[1],
                pixels,
                tf.constant(max_pixels, tf.int64),
            )
        ],
    )
    scans = tf.cond(
        tf.io.is_jpeg(encoded), lambda: jpeg_scans(encoded), lambda: tf.constant(0, tf.int64)
    )
    scan_check = tf.debugging.Assert(
        scans <= MAX_JPEG_SCANS,
        [
            _sentence(
                what,
                " declares {} JPEG scans, more than the limit of {}.",
                scans,
                tf.constant(MAX_JPEG_SCANS, tf.int64),
            )
        ],
    )
    length = tf.cast(tf.strings.length(encoded), tf.int64)
    short = tf.logical_and(tf.io.is_jpeg(encoded), pixels > length * MAX_JPEG_PIXELS_PER_BYTE)
    length_check = tf.debugging.Assert(
        tf.logical_not(short),
        [
            _sentence(
                what,
                " declares {} x {} = {} pixels in only {} bytes, too few for a whole JPEG of "
                "that size: it is truncated or damaged.",
                shape[0],
                shape[1],
                pixels,
                length,
            )
        ],
    )
    with tf.control_dependencies([size_check, scan_check, length_check]):
        return tf.identity(encoded)


def jpeg_scans(encoded: tf.Tensor) -> tf.Tensor:
    """How many start-of-scan markers (0xFF 0xDA) a JPEG's bytes hold, int64, without decoding
    (see `MAX_JPEG_SCANS`): the pieces between them, less one. One pass over the bytes (a
    splitting pass: five times faster than comparing them as a uint8 vector, measured)."""
    pieces = tf.size(tf.strings.split(encoded, sep=b"\xff\xda"), out_type=tf.int64)
    return tf.maximum(pieces - 1, 0)


def decode_central_square(
    encoded: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS, what: str | tf.Tensor = "image"
) -> tf.Tensor:
    """Encoded JPEG/PNG bytes -> uint8 (S, S, 3), the central square, RGB.

    Grey images become RGB; a PNG's alpha channel is dropped. Anything else, or an image of
    more than `max_pixels` pixels, is InvalidArgument naming it `what` (see `check_encoded`).
    """
    encoded = check_encoded(encoded, max_pixels, what)

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


def decode_image(encoded: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS) -> tf.Tensor:
    """Encoded JPEG/PNG bytes -> the whole uint8 (H, W, 3) image, RGB (checked as
    `decode_central_square` checks them)."""
    encoded = check_encoded(encoded, max_pixels)
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.ensure_shape(image, (None, None, 3))


def refusal_of(error: tf.errors.InvalidArgumentError) -> ValueError:
    """One line for an image that decoding refused: the check's own words where it was one of
    `check_encoded`'s (the same from a SavedModel and a .keras model), else the decoder's
    first line."""
    message = error.message or str(error)
    refusal = REFUSAL.search(message)
    if refusal:  # one image at a time: "image", whatever the index
        return ValueError(re.sub(r"^image_bytes\[\d+\]", "image", refusal.group(1))[:300])
    first_line = message.strip().splitlines()[0]
    return ValueError(f"not a JPEG or PNG image that can be decoded ({first_line[:200]})")


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


# JPEG markers that start a frame (SOF0-SOF15, less DHT, JPG and DAC): they carry the size.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def declared_size_of_file(path: str) -> tuple[int, int]:
    """(width, height) that a JPEG or PNG file's header declares, read without decoding (the
    same facts `declared_shape` reads in the graph). Raises ValueError for anything else."""
    with open(path, "rb") as f:
        head = f.read(24)
        if head.startswith(PNG_START) and len(head) == 24 and head[12:16] == b"IHDR":
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if not head.startswith(JPEG_START):
            raise ValueError("not a JPEG or PNG header")
        f.seek(2)
        while True:  # JPEG segments: 0xFF, marker, 2-byte length (which counts itself)
            segment = f.read(4)
            if len(segment) < 4 or segment[0] != 0xFF:
                raise ValueError("a JPEG whose header ends before its frame size")
            if segment[1] in _JPEG_FRAME_MARKERS:
                frame = f.read(5)  # precision, height, width
                if len(frame) < 5:
                    raise ValueError("a JPEG whose frame header is cut off")
                return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
            f.seek(int.from_bytes(segment[2:4], "big") - 2, 1)


def is_short_jpeg(head: bytes, size: int, pixels: int) -> bool:
    """Whether a file of `size` bytes starting with `head` is a JPEG too short for the
    `pixels` it declares (see MAX_JPEG_PIXELS_PER_BYTE), as `check_encoded` finds in the
    graph."""
    return head.startswith(JPEG_START) and pixels > size * MAX_JPEG_PIXELS_PER_BYTE


def read_image_file(path: str) -> bytes:
    """The bytes of an image file, once it is known to be a regular file of at most
    MAX_IMAGE_FILE_BYTES.

    Raises:
        ValueError: saying why (not a regular file, too large, unreadable).
    """
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file (a folder, a device or a pipe)")
        if status.st_size > MAX_IMAGE_FILE_BYTES:
            raise ValueError(
                f"{status.st_size:,} bytes, more than the {MAX_IMAGE_FILE_BYTES:,} any image "
                "within the pixel limit needs"
            )
        with open(path, "rb") as file:
            return file.read(MAX_IMAGE_FILE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read it ({error.strerror or error})") from None
