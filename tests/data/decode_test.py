"""Decoding only the central square gives the same pixels as decoding all and cropping."""

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.data import augment, decode
from tests.conftest import encode, progressive_jpeg, random_image


def test_jpeg_central_square_equals_full_decode_then_crop():
    """Portrait and square images are cropped in rows only: exactly the same pixels."""
    rng = np.random.default_rng(0)
    for height, width in [(48, 80), (90, 40), (64, 64), (33, 47)]:
        encoded = encode(random_image(rng, height, width), "JPEG", quality=90)
        fast = decode.decode_central_square(tf.constant(encoded)).numpy()
        full = augment.central_square(decode.decode_image(tf.constant(encoded))).numpy()
        assert fast.shape == (min(height, width), min(height, width), 3)
        # Identical but for the chroma upsampling of the crop's outer columns (see decode.py).
        np.testing.assert_array_equal(fast[:, 1:-1], full[:, 1:-1])
        if height >= width:
            np.testing.assert_array_equal(fast, full)


def test_png_grey_and_alpha_become_rgb():
    rng = np.random.default_rng(1)
    rgb = random_image(rng, 30, 50)
    out = decode.decode_central_square(tf.constant(encode(rgb, "PNG"))).numpy()
    np.testing.assert_array_equal(out, rgb[:, 10:40])
    grey = random_image(rng, 20, 20, channels=1)
    out = decode.decode_central_square(tf.constant(encode(grey, "PNG"))).numpy()
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=-1))
    rgba = np.concatenate([rgb, np.full((30, 50, 1), 128, np.uint8)], axis=-1)
    out = decode.decode_central_square(tf.constant(encode(rgba, "PNG"))).numpy()
    np.testing.assert_array_equal(out, rgb[:, 10:40])


def test_decode_inside_tf_data():
    encoded = encode(random_image(np.random.default_rng(2), 40, 60), "JPEG")
    eager = decode.decode_central_square(tf.constant(encoded)).numpy()
    mapped = next(iter(tf.data.Dataset.from_tensors(encoded).map(decode.decode_central_square)))
    np.testing.assert_array_equal(mapped.numpy(), eager)


def test_looks_complete():
    jpeg = encode(random_image(np.random.default_rng(3)), "JPEG")
    png = encode(random_image(np.random.default_rng(3)), "PNG")
    assert decode.looks_complete(jpeg[:16], jpeg[-64:])
    assert decode.looks_complete(png[:16], png[-64:])
    assert decode.looks_complete(jpeg[:16], jpeg[-64:] + b"\x00" * 8)  # trailing padding
    assert not decode.looks_complete(jpeg[:16], jpeg[: len(jpeg) // 2][-64:])  # truncated
    assert not decode.looks_complete(png[:16], png[:-20][-64:])
    assert not decode.looks_complete(b"", b"")
    assert not decode.looks_complete(b"hello world", b"hello world")
    assert not decode.looks_complete(b"GIF89a", b"\x3b")


def test_declared_size_of_file_matches_the_decoded_size(tmp_path):
    rng = np.random.default_rng(3)
    for i, (height, width) in enumerate([(1, 1), (37, 53), (300, 20)]):
        for fmt, extra in (("JPEG", {"exif": b"Exif\x00\x00" + b"\x00" * 3000}), ("PNG", {})):
            path = tmp_path / f"{i}.{fmt.lower()}"
            path.write_bytes(
                encode(rng.integers(0, 256, (height, width, 3), np.uint8), fmt, **extra)
            )
            assert decode.declared_size_of_file(str(path)) == (width, height), (fmt, i)
    for data in (b"", b"GIF89a" + b"\x00" * 30, decode.JPEG_START + b"\x00" * 10):
        (tmp_path / "bad").write_bytes(data)
        with pytest.raises(ValueError):
            decode.declared_size_of_file(str(tmp_path / "bad"))


@pytest.mark.parametrize("length", range(8, 24))
def test_a_png_that_ends_inside_its_header_is_named_not_quoted(length):
    """8 to 23 bytes of a PNG: the signature, then the header cut short. The error is the
    sentence, never TensorFlow's out-of-range message with the raw bytes in it."""
    encoded = encode(np.zeros((4, 4, 3), np.uint8), "PNG")[:length]
    check = tf.function(lambda x: decode.check_encoded(x, what="image"))
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        check(tf.constant(encoded))
    assert f"received a PNG of {length} bytes, which ends inside its header" in raised.value.message


def test_a_jpeg_of_too_many_scans_is_refused_before_decoding():
    normal = progressive_jpeg(0)
    assert decode.jpeg_scans(tf.constant(normal)).numpy() == 10  # libjpeg's colour script
    assert decode.decode_image(tf.constant(normal)).shape == (64, 80, 3)
    limit = progressive_jpeg(decode.MAX_JPEG_SCANS - 10)
    assert decode.decode_image(tf.constant(limit)).shape == (64, 80, 3)
    bomb = progressive_jpeg(5000)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        decode.decode_central_square(tf.constant(bomb), what="image_bytes[4]")
    refusal = decode.REFUSAL.search(str(error.value)).group(1)
    assert refusal == "image_bytes[4] declares 5010 JPEG scans, more than the limit of 100."
    assert decode.jpeg_scans(tf.constant(encode(random_image(np.random.default_rng(2))))) == 1


def _declaring(encoded: bytes, height: int, width: int) -> bytes:
    """`encoded` (a baseline JPEG) with its frame header declaring height x width."""
    at = encoded.index(b"\xff\xc0") + 5  # marker, length (2), precision
    return encoded[:at] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + encoded[at + 4 :]


def test_a_jpeg_too_short_for_the_pixels_it_declares_is_refused():
    """An 8x8 JPEG whose header declares 5657x7000 (39.6 megapixels, within the pixel limit):
    TensorFlow would decode it, the missing data grey. Refused from its header, in the graph
    and in a folder scan; solid colour at a size near the bound still passes."""
    small = encode(np.full((8, 8, 3), 90, np.uint8), "JPEG")
    truncated = _declaring(small, 5657, 7000)
    assert len(truncated) < 1000 and decode.looks_complete(truncated[:32], truncated[-32:])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        decode.decode_image(tf.constant(truncated))
    refusal = decode.REFUSAL.search(str(error.value)).group(1)
    assert refusal.startswith("image declares 5657 x 7000 = 39599000 pixels in only ")
    assert refusal.endswith("too few for a whole JPEG of that size: it is truncated or damaged.")
    flat = encode(np.full((2000, 3000, 3), 90, np.uint8), "JPEG", quality=10)
    assert 3000 * 2000 / len(flat) < decode.MAX_JPEG_PIXELS_PER_BYTE  # the bound's slack
    assert decode.decode_image(tf.constant(flat)).shape == (2000, 3000, 3)
    assert decode.is_short_jpeg(truncated[:16], len(truncated), 5657 * 7000)
