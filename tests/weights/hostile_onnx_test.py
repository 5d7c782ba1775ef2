"""Crafted `.onnx` files: refused in one `ValueError` naming the file and the tensor, with
memory bounded by what the file declares, before anything large is read."""

import tracemalloc

import numpy as np
import pytest

from keras_alexnet.weights.caffe import read_network
from tests.weights import caffe_files

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, external_data_helper, helper  # noqa: E402

from tests.weights import onnx_files  # noqa: E402


@pytest.fixture(scope="module")
def base():
    return onnx_files.build(caffe_files.random_weights(seed=6, include_top=False), False)


def _save(model, tmp_path, name="model.onnx"):
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def _with_external_conv1(base, tmp_path, data_size, length=None):
    """conv1's weights kept in `big.bin`, a sparse file of `data_size` bytes."""
    model = onnx.ModelProto()
    model.CopyFrom(base)
    tensor = next(t for t in model.graph.initializer if t.name == "conv1_w")
    external_data_helper.set_external_data(tensor, location="big.bin", length=length)
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    with open(tmp_path / "big.bin", "wb") as file:
        file.truncate(data_size)
    return _save(model, tmp_path)


def _peak_mib(call):
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def test_a_huge_sparse_external_data_file_is_refused_without_reading_it(base, tmp_path):
    path = _with_external_conv1(base, tmp_path, 8 * 2**30)  # 8 GiB, no disk space used

    def read():
        with pytest.raises(ValueError, match=r"tensor 'conv1_w' keeps 8,589,934,592 bytes"):
            read_network(path)

    # The bound: the file's own tensors (the base's 2.3M floats, 9 MiB) and the parser's
    # copies; reading the external file would take 8 GiB.
    assert _peak_mib(read) < 100


def test_a_declared_length_that_does_not_fit_the_shape_is_refused(base, tmp_path):
    path = _with_external_conv1(base, tmp_path, 8 * 2**30, length=4 * 2**30)
    with pytest.raises(ValueError, match=r"keeps 4,294,967,296 bytes of data in 'big.bin'"):
        read_network(path)


def test_external_data_of_the_right_size_loads(base, tmp_path):
    weights = caffe_files.random_weights(seed=6, include_top=False)
    path = _with_external_conv1(base, tmp_path, 0)
    weights["conv1"][0].astype("<f4").tofile(tmp_path / "big.bin")
    matched = read_network(path)
    np.testing.assert_array_equal(matched["conv1"].weights, weights["conv1"][0])


def test_an_unknown_data_type_is_named(base, tmp_path):
    model = onnx.ModelProto()
    model.CopyFrom(base)
    model.graph.initializer[0].data_type = 1000
    with pytest.raises(ValueError, match=r"tensor 'conv1_w' has data type 1000"):
        read_network(_save(model, tmp_path))


def test_a_huge_declared_shape_is_refused(base, tmp_path):
    model = onnx.ModelProto()
    model.CopyFrom(base)
    model.graph.initializer[0].dims[:] = [2**16, 2**16, 1, 1]
    with pytest.raises(ValueError, match=r"declares shape \[65536, 65536, 1, 1\]"):
        read_network(_save(model, tmp_path))


@pytest.mark.parametrize(
    "node, message",
    [
        (
            helper.make_node("Constant", [], ["c"], name="empty"),
            "Constant node 'empty' has no value",
        ),
        (
            helper.make_node("Constant", [], [], name="mute", value_float=1.0),
            "Constant node 'mute' has no output",
        ),
    ],
)
def test_broken_constant_nodes_are_named(base, tmp_path, node, message):
    model = onnx.ModelProto()
    model.CopyFrom(base)
    model.graph.node.insert(0, node)
    with pytest.raises(ValueError, match=message):
        read_network(_save(model, tmp_path))
