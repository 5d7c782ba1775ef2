"""Weights files that must not load: NaN or infinity in a `.caffemodel`, an `.onnx` or a Keras
`.weights.h5` (refused naming the layer: a model computing NaN for every image is never loaded
silently), a `.keras` whose weights would inflate past any AlexNet's size (refused before
inflating), an HDF5 file of another layout (one error)."""

import numpy as np
import pytest

from keras_alexnet import AlexNet
from tests.weights import caffe_files


@pytest.fixture(scope="module")
def poisoned(base_weights):
    """The convolutional base with one NaN in conv3's weights and one infinity in conv5's bias."""
    weights = {name: (w.copy(), b.copy()) for name, (w, b) in base_weights.items()}
    weights["conv3"][0][7, 3, 1, 1] = np.nan
    weights["conv5"][1][2] = np.inf
    return weights


@pytest.fixture(scope="module")
def base_weights():
    return caffe_files.random_weights(seed=4, include_top=False)


def test_a_caffemodel_with_nan_is_refused_naming_the_layer(tmp_path, poisoned):
    path = str(tmp_path / "nan.caffemodel")
    caffe_files.write_caffemodel(path, poisoned)
    with pytest.raises(ValueError, match=r"layer 'conv3' holds 1 NaN or infinite values in its"):
        AlexNet(include_top=False, weights=path)


def test_an_onnx_file_with_infinity_is_refused_naming_the_layer(tmp_path, poisoned):
    onnx = pytest.importorskip("onnx")
    from tests.weights import onnx_files

    poisoned = dict(poisoned)
    poisoned["conv3"] = (np.nan_to_num(poisoned["conv3"][0]), poisoned["conv3"][1])
    path = str(tmp_path / "inf.onnx")
    onnx.save(onnx_files.build(poisoned, include_top=False), path)
    with pytest.raises(ValueError, match=r"holds 1 NaN or infinite values in its bias"):
        AlexNet(include_top=False, weights=path)


def test_a_keras_weights_file_with_nan_is_refused_naming_the_layer(tmp_path):
    model = AlexNet(include_top=False)
    kernel = model.get_layer("conv4_b").kernel
    values = kernel.numpy()
    values[0, 0, 0, 0] = np.nan
    kernel.assign(values)
    path = str(tmp_path / "nan.weights.h5")
    model.save_weights(path)
    with pytest.raises(ValueError, match=r"1 NaN or infinite values in layer 'conv4_b'"):
        AlexNet(include_top=False, weights=path)


def test_a_keras_file_whose_weights_inflate_too_far_is_refused_before_inflating(tmp_path):
    import struct
    import zipfile

    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.weights.h5", bytes(1000))
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # the member's central directory entry
    data[central + 24 : central + 28] = struct.pack("<I", 0x50000000)  # declares 1.34 GB
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"inflates to 1,342,177,280 bytes, more than"):
        AlexNet(include_top=False, weights=str(path))


def test_a_weights_file_with_a_dataset_where_a_group_belongs_is_one_error(tmp_path):
    import h5py

    path = tmp_path / "odd.weights.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("layers/conv1_a", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"could not be read as a Keras weights file"):
        AlexNet(include_top=False, weights=str(path))
