"""AlexNet(weights=<.onnx>): the ONNX form of bvlc_alexnet, with onnxruntime as the reference.

The graphs are built with onnx.helper in the form of the ONNX model zoo's bvlcalexnet and run
by onnxruntime; the same weights also go through the NumPy reference of caffemodel_test, which
checks that reference against a second, independent implementation of Caffe's semantics.
"""

import sys

import numpy as np
import pytest

from keras_alexnet import AlexNet, preprocess_input
from tests.weights import caffe_files, caffe_reference
from tests.weights.caffe_reference import TOLERANCE, relative_error

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from tests.weights import onnx_files  # noqa: E402

CLASSES = 10


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory, weights):
    """The zoo's form; its pools pad the end by 1, emulating Caffe's rounding up."""
    path = str(tmp_path_factory.mktemp("onnx") / "bvlcalexnet-12.onnx")
    onnx.save(onnx_files.build(weights, pool_pads=(0, 0, 1, 1)), path)
    return path


@pytest.fixture(scope="module")
def runtime_logits(zoo_file, images):
    return onnx_files.run(zoo_file, images)


def test_numpy_reference_agrees_with_onnxruntime(weights, images, runtime_logits):
    assert relative_error(caffe_reference.forward(weights, images), runtime_logits) < TOLERANCE


def test_onnx_file_computes_what_onnxruntime_computes(zoo_file, images, runtime_logits):
    model = AlexNet(weights=zoo_file, classes=CLASSES, classifier_activation=None)
    assert relative_error(model(preprocess_input(images)).numpy(), runtime_logits) < TOLERANCE


def test_matmul_and_add_form(tmp_path, weights, images, runtime_logits):
    path = str(tmp_path / "matmul.onnx")
    onnx.save(onnx_files.build(weights, gemm=False), path)
    model = AlexNet(weights=path, classes=CLASSES, classifier_activation=None)
    assert relative_error(model(preprocess_input(images)).numpy(), runtime_logits) < TOLERANCE


def test_convolutional_base(tmp_path, images):
    weights = caffe_files.random_weights(seed=4, include_top=False)
    path = str(tmp_path / "base.onnx")
    onnx.save(onnx_files.build(weights, include_top=False), path)
    pool5 = AlexNet(include_top=False, weights=path)(preprocess_input(images)).numpy()
    expected = onnx_files.run(path, images)
    assert relative_error(pool5.transpose(0, 3, 1, 2), expected) < TOLERANCE


@pytest.mark.parametrize(
    "build_args, message",
    [
        ({"lrn_bias": 2.0}, r"'norm1'.*LRN k=2.0; bvlc_alexnet's is k=1"),
        ({"pool_pads": (1, 1, 1, 1)}, r"'pool1'.*pads \(1, 1, 1, 1\)"),
    ],
)
def test_another_onnx_network_is_refused(tmp_path, build_args, message):
    weights = caffe_files.random_weights(seed=4, include_top=False)
    path = str(tmp_path / "other.onnx")
    onnx.save(onnx_files.build(weights, include_top=False, **build_args), path)
    with pytest.raises(ValueError, match=message):
        AlexNet(include_top=False, weights=path)


def test_torchvision_shaped_conv1_is_named(tmp_path):
    weights = caffe_files.random_weights(seed=4, include_top=False)
    weights["conv1"] = (np.zeros((64, 3, 11, 11), np.float32), np.zeros(64, np.float32))
    path = str(tmp_path / "torchvision.onnx")
    onnx.save(onnx_files.build(weights, include_top=False), path)
    with pytest.raises(ValueError, match=r"torchvision's alexnet, a different network"):
        AlexNet(include_top=False, weights=path)


def test_garbage_is_refused(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x08\x07" + bytes(range(256)) * 8)
    with pytest.raises(ValueError, match=r"garbage.onnx"):
        AlexNet(include_top=False, weights=str(path))


def test_without_the_onnx_package_the_error_says_how_to_install(zoo_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ValueError, match=r'pip install -e "\.\[onnx\]"'):
        AlexNet(weights=zoo_file, classes=CLASSES)
