"""Shared test setup: quiet TensorFlow, deterministic seeds, small helpers."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

if os.environ.get("KERAS_ALEXNET_TEST_WITHOUT_TENSORFLOW"):  # tests/no_tensorflow.py's ENV
    from tests import no_tensorflow

    no_tensorflow.block()

# First: keras_alexnet sets TensorFlow's oneDNN switch, which TensorFlow reads at import.
import keras_alexnet  # noqa: E402, F401, I001
import io  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_collection_modifyitems(items):
    """Files with a slow test first, each file's tests kept in order: pytest-xdist hands the
    two workers whole files in this order (`--dist loadfile`), so the long files start early
    and the short ones even out the end, rather than one worker running a long file alone
    while the other has finished."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # (a stable sort)


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Every test starts from the same seed and the float32 policy, whatever ran before."""
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def images():
    """Two random RGB images on the 0..255 scale, 227x227."""
    return np.random.default_rng(0).uniform(0, 255, (2, 227, 227, 3)).astype("float32")


def run_python(args, timeout=600, env=None, **kwargs):
    """Runs `python args...` from the repository root and returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        **kwargs,
    )


def encode(array: np.ndarray, fmt: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def progressive_jpeg(repeats: int) -> bytes:
    """A progressive JPEG whose last scan is repeated `repeats` more times (libjpeg decodes
    such a file, slowly: one pass over the image per scan)."""
    buffer = io.BytesIO()
    Image.fromarray(random_image(np.random.default_rng(1), 64, 80)).save(
        buffer, "JPEG", progressive=True, quality=90
    )
    data = buffer.getvalue()
    last_scan = data[data.rindex(b"\xff\xda") : -2]  # its header and data, up to the EOI
    return data[:-2] + last_scan * repeats + data[-2:]


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
    # Intact header (the frame size is in the first 200 bytes) and ends, damaged data.
    write(f"{root}/fox/garbled.jpg", good_jpeg[:200] + b"\x00" * 400 + good_jpeg[-2:])
    write(f"{root}/fox/.DS_Store", b"\x00\x00")  # hidden files are not candidates
    return str(root)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x 12 small images, a class a colour (learnable in a few steps): 30 train /
    6 validation after the 10% hold-out. For the training runs' tests."""
    root = tmp_path_factory.mktemp("train_images")
    rng = np.random.default_rng(0)
    for k, name in enumerate(("red", "green", "blue")):
        for i in range(12):
            image = rng.integers(0, 60, (40, 48, 3), dtype=np.uint8)
            image[..., k] += 180
            write(f"{root}/{name}/{i:02d}.png", encode(image, "PNG"))
    return str(root)


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A tensorflow-datasets data dir for the whole test session."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def shapes_source(shapes_data_dir):
    """The embedded dataset, generated once per test session (about 20 s)."""
    from keras_alexnet.data import embedded_source

    return embedded_source(shapes_data_dir)
