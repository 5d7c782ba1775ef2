"""Crafted and unusual `.caffemodel` files: training nets with data and loss layers of any type
load (as in Caffe); files of too many layers or blobs, blobs with overflowing or negative
dimensions, and an fc blob of one dimension are refused in one `ValueError` naming the file."""

import numpy as np
import pytest

from keras_alexnet import AlexNet, preprocess_input
from keras_alexnet.weights.caffe import read_network
from keras_alexnet.weights.caffe.caffemodel import MAX_LAYERS
from tests.weights import caffe_files
from tests.weights.caffe_files import bytes_field, int_field, layer_bytes, string_field


@pytest.fixture(scope="module")
def base_weights():
    return caffe_files.random_weights(seed=8, include_top=False)


def test_weightless_data_and_loss_layers_of_any_type_are_skipped(tmp_path, base_weights):
    plain = tmp_path / "plain.caffemodel"
    caffe_files.write_caffemodel(plain, base_weights, form="current", training_net=False)
    training = tmp_path / "training.caffemodel"
    training.write_bytes(
        layer_bytes("current", "feed", "HDF5Data", [], ["data", "label"])
        + layer_bytes("current", "noise", "DummyData", [], ["unused"])
        + plain.read_bytes()
        + layer_bytes("current", "loss", "SigmoidCrossEntropyLoss", ["pool5", "label"], ["loss"])
        + layer_bytes("current", "quiet", "Silence", ["unused"], [])
    )
    images = preprocess_input(np.random.default_rng(1).uniform(0, 255, (1, 227, 227, 3)))
    expected = AlexNet(include_top=False, weights=str(plain))(images)
    got = AlexNet(include_top=False, weights=str(training))(images)
    np.testing.assert_array_equal(got, expected)


def test_a_weightless_unknown_layer_on_the_path_still_decides(tmp_path, base_weights):
    plain = tmp_path / "plain.caffemodel"
    caffe_files.write_caffemodel(plain, base_weights, form="current", training_net=False)
    path = tmp_path / "tanh.caffemodel"
    path.write_bytes(
        plain.read_bytes()
        + layer_bytes("current", "squash", "TanH", ["pool5"], ["pool5"])
        + layer_bytes("current", "loss", "EuclideanLoss", ["pool5", "label"], ["loss"])
    )
    with pytest.raises(ValueError, match=r"layer 'squash' is of type 'TanH'"):
        AlexNet(include_top=False, weights=str(path))


def test_a_file_of_many_tiny_layers_is_refused_at_once(tmp_path):
    path = tmp_path / "many.caffemodel"
    path.write_bytes(bytes_field(2, b"") * (MAX_LAYERS + 1) * 50)
    with pytest.raises(ValueError, match=rf"holds more than {MAX_LAYERS} layers"):
        read_network(str(path))


def test_a_layer_of_many_blobs_is_refused(tmp_path):
    blobs = b"".join(bytes_field(7, b"") for _ in range(50_000))
    path = tmp_path / "blobs.caffemodel"
    path.write_bytes(bytes_field(100, string_field(1, "conv1") + blobs))
    with pytest.raises(ValueError, match=r"layer conv1 holds more than 8 weight blobs"):
        read_network(str(path))


def _conv1_with_blob_shape(tmp_path, dims):
    shape = bytes_field(7, b"".join(int_field(1, d) for d in dims))
    layer = string_field(1, "conv1") + string_field(2, "Convolution") + bytes_field(7, shape)
    path = tmp_path / "dims.caffemodel"
    path.write_bytes(bytes_field(100, layer))
    return str(path)


@pytest.mark.parametrize(
    "dims, message",
    [
        ((2**32, 2**32), r"shape \(4294967296, 4294967296\) holds 0 values instead of"),
        ((96, -3, 11, 11), r"negative dimensions \(96, -3, 11, 11\)"),
    ],
)
def test_blob_dimensions_that_overflow_or_are_negative_are_named(tmp_path, dims, message):
    with pytest.raises(
        ValueError, match=rf"dims.caffemodel is not a readable Caffe model.*{message}"
    ):
        read_network(_conv1_with_blob_shape(tmp_path, dims))


def test_an_fc_blob_of_one_dimension_is_named(tmp_path):
    weights = caffe_files.random_weights(seed=8, classes=3)
    weights["fc6"] = (weights["fc6"][0].reshape(-1), weights["fc6"][1])
    path = str(tmp_path / "flat_fc6.caffemodel")
    caffe_files.write_caffemodel(path, weights, form="current")
    with pytest.raises(ValueError, match=r"layer fc6 \(InnerProduct\) has weights of shape"):
        read_network(path)
