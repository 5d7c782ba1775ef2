"""Small image data made by the tests themselves."""

import io
import os

import numpy as np
import pytest
from PIL import Image


def encode(array: np.ndarray, fmt: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def random_image(rng, height=48, width=64, channels=3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def image_folder(tmp_path):
    """3 classes x 6 good images (JPEG and PNG, varied sizes), plus 4 bad files."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for name in ("cat", "dog", "fox"):
        for i in range(6):
            image = random_image(rng, 40 + 8 * i, 90 - 6 * i)
            fmt, ext = ("PNG", "png") if i % 3 == 0 else ("JPEG", "jpg")
            write(f"{root}/{name}/{i:02d}.{ext}", encode(image, fmt))
    good_jpeg = encode(random_image(rng), "JPEG")
    write(f"{root}/cat/truncated.jpg", good_jpeg[: len(good_jpeg) // 2])
    write(f"{root}/dog/notes.txt", b"these are not pixels\n")
    write(f"{root}/dog/empty.jpg", b"")
    write(f"{root}/fox/garbled.jpg", good_jpeg[:4] + b"\x00" * 400 + good_jpeg[-2:])
    write(f"{root}/fox/.DS_Store", b"\x00\x00")  # hidden files are not candidates
    return str(root)


@pytest.fixture(scope="session")
def shapes_source(tmp_path_factory):
    """The embedded dataset, generated once per test session (about 20 s)."""
    from keras_alexnet.data import embedded_source

    return embedded_source(str(tmp_path_factory.mktemp("tfds")))
