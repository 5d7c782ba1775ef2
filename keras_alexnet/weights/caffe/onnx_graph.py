"""Reading an ONNX AlexNet (the ONNX model zoo's `bvlcalexnet-*.onnx`) into `NetLayer`s.

Needs the optional `onnx` package (`pip install -e ".[onnx]"`). The graph's nodes are read in
their (topological) order; weights come from the graph's initializers (or Constant nodes).
ONNX's LRN is Caffe's (`alpha / size`, bias = Caffe's k), its Conv weights have Caffe's
layout, and its Gemm is an fc layer, so the same checker applies.
"""

from __future__ import annotations

import math
import os

import numpy as np

from keras_alexnet.weights.caffe import net

_KINDS = {
    "Conv": net.CONV,
    "Relu": net.RELU,
    "LRN": net.LRN,
    "MaxPool": net.POOL,
    "AveragePool": net.POOL,
    "Gemm": net.FC,
    "MatMul": net.FC,
    "Dropout": net.DROPOUT,
    "Flatten": net.FLATTEN,
    "Reshape": net.FLATTEN,
    "Identity": net.IDENTITY,
    "Softmax": net.SOFTMAX,
}

# The most elements a tensor of bvlc_alexnet holds (fc6's 4096 x 9216) and a margin: a tensor
# declaring more is refused before a byte of it is read.
MAX_ELEMENTS = 2 * 4096 * 9216


def read_onnx(path: str) -> list[net.NetLayer]:
    """The layers of the ONNX model at `path`, in the graph's order.

    Raises:
        ValueError: the `onnx` package is missing, or the file is not an ONNX model.
    """
    onnx, numpy_helper = _import_onnx()
    try:
        # External data is read tensor by tensor, each after its size is checked.
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, OSError, ValueError... by version
        raise ValueError(
            f"{path} could not be read as an ONNX model ({type(error).__name__}: {error}). "
            "Download the file again, or check that it is an .onnx file."
        ) from None
    graph = model.graph
    if not graph.node:
        raise ValueError(f"{path} is not an ONNX model with a graph (no nodes found).")
    folder = os.path.dirname(os.path.abspath(path))
    constants = {t.name: _tensor(t, folder, path) for t in graph.initializer}
    layers: list[net.NetLayer] = []
    for node in graph.node:
        if node.op_type == "Constant":
            if not node.output:
                raise ValueError(f"{path}: Constant node {node.name!r} has no output.")
            constants[node.output[0]] = _constant_value(node, folder, path)
            continue
        if node.op_type == "Add" and _is_bias_of_last_fc(node, layers, constants):
            layers[-1] = _with_bias(layers[-1], node, constants)
            continue
        layers.append(_net_layer(node, constants, path))
    return layers


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ValueError(
            "Loading an .onnx file needs the `onnx` package, an optional extra of "
            'keras_alexnet: pip install -e ".[onnx]" (or pip install onnx).'
        ) from None
    return onnx, numpy_helper


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _tensor(tensor, folder: str, path: str) -> np.ndarray:
    """An initializer's values, after checking its type and size against what it declares:
    its external data (if any) is read only when it holds exactly that many bytes."""
    from onnx import external_data_helper, helper, numpy_helper

    where = f"{path}: tensor {tensor.name!r}"
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
    except (KeyError, ValueError, TypeError):
        raise ValueError(
            f"{where} has data type {tensor.data_type}, which is no ONNX numeric type. The "
            "file is damaged or not an ONNX model of bvlc_alexnet."
        ) from None
    if any(d < 0 for d in tensor.dims) or math.prod(tensor.dims) > MAX_ELEMENTS:
        raise ValueError(
            f"{where} declares shape {list(tensor.dims)}; bvlc_alexnet's largest tensor has "
            f"{4096 * 9216:,} elements. The file is not bvlc_alexnet."
        )
    if external_data_helper.uses_external_data(tensor):
        info = external_data_helper.ExternalDataInfo(tensor)
        expected = math.prod(tensor.dims) * dtype.itemsize
        data_file = os.path.join(folder, info.location)
        if not os.path.isfile(data_file):
            raise ValueError(f"{where} keeps its data in {info.location!r}, which is missing.")
        declared = info.length or max(os.path.getsize(data_file) - (info.offset or 0), 0)
        if declared != expected:
            raise ValueError(
                f"{where} keeps {declared:,} bytes of data in {info.location!r} for a shape of "
                f"{list(tensor.dims)} ({expected:,} bytes). The file is damaged or crafted; "
                "nothing was read."
            )
        try:
            external_data_helper.load_external_data_for_tensor(tensor, folder)
        except Exception as error:  # onnx refuses paths outside the folder, by version
            raise ValueError(f"{where}: its external data was refused ({error}).") from None
    try:
        return numpy_helper.to_array(tensor)
    except Exception as error:  # onnx raises ValueError, TypeError... for a bad payload
        raise ValueError(f"{where} could not be read ({type(error).__name__}: {error}).") from None


def _constant_value(node, folder: str, path: str):
    attrs = {a.name: a for a in node.attribute}
    if "value" in attrs:
        return _tensor(attrs["value"].t, folder, path)
    if not attrs:
        raise ValueError(f"{path}: Constant node {node.name!r} has no value.")
    return np.asarray(_attributes(node)[next(iter(attrs))])


def _net_layer(node, constants, path) -> net.NetLayer:
    kind = _KINDS.get(node.op_type, net.OTHER)
    name = node.name or (node.output[0] if node.output else node.op_type)
    attrs = _attributes(node)
    inputs = tuple(i for i in node.input if i and i not in constants)
    outputs = tuple(node.output[:1])
    base = {"type": node.op_type}
    if kind == net.CONV:
        weights = _constant(node, 1, constants, path)
        bias = constants.get(node.input[2]) if len(node.input) > 2 else None
        attrs = base | _conv(attrs, weights)
        return net.NetLayer(name, kind, inputs, outputs, weights, bias, attrs)
    if kind == net.FC:
        weights, bias = _fc(node, attrs, constants, path)
        return net.NetLayer(name, kind, inputs, outputs, weights, bias, base)
    if kind == net.POOL:
        method = "max" if node.op_type == "MaxPool" else "average"
        return net.NetLayer(name, kind, inputs, outputs, attrs=base | _pool(attrs, method))
    if kind == net.LRN:
        lrn = {
            "size": attrs.get("size"),
            "alpha": attrs.get("alpha", 1e-4),
            "beta": attrs.get("beta", 0.75),
            "k": attrs.get("bias", 1.0),
            "region": "across_channels",
        }
        return net.NetLayer(name, kind, inputs, outputs, attrs=base | lrn)
    if kind == net.FLATTEN and node.op_type == "Flatten" and attrs.get("axis", 1) != 1:
        kind = net.OTHER
    return net.NetLayer(name, kind, inputs, outputs, attrs=base)


def _constant(node, index, constants, path):
    if len(node.input) <= index or node.input[index] not in constants:
        raise ValueError(
            f"{path}: node {node.name or node.op_type!r} takes its weights from "
            f"{node.input[index] if len(node.input) > index else 'nowhere'!r}, which is not an "
            "initializer of the graph; only models with their weights inside can be loaded."
        )
    return constants[node.input[index]]


def _conv(attrs, weights) -> dict:
    pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
        pads = ("auto_pad", attrs["auto_pad"])
    return {
        "kernel": tuple(attrs.get("kernel_shape", weights.shape[2:])),
        "stride": tuple(attrs.get("strides", (1, 1))),
        "dilation": tuple(attrs.get("dilations", (1, 1))),
        "pads": (pads[0], pads[1], pads[2], pads[3]) if len(pads) == 4 else pads,
        "group": attrs.get("group", 1),
    }


def _pool(attrs, method) -> dict:
    pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
    return {
        "method": method,
        "kernel": tuple(attrs.get("kernel_shape", ())),
        "stride": tuple(attrs.get("strides", (1, 1))),
        "pads": pads if len(pads) == 4 else (pads,) * 4,
        "ceil": bool(attrs.get("ceil_mode", 0)),
        "global": False,
    }


def _fc(node, attrs, constants, path):
    """An fc layer's (out, in) weights and bias from a Gemm (or a MatMul)."""
    matrix = _constant(node, 1, constants, path)
    if node.op_type == "MatMul":
        return matrix.T, None
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise ValueError(
            f"{path}: Gemm node {node.name!r} has transA/alpha/beta "
            f"{attrs.get('transA', 0)}/{attrs.get('alpha', 1.0)}/{attrs.get('beta', 1.0)}; "
            "an fc layer of AlexNet is transA 0, alpha 1, beta 1."
        )
    weights = matrix if attrs.get("transB", 0) else matrix.T
    bias = constants.get(node.input[2]) if len(node.input) > 2 else None
    return weights, None if bias is None else bias.reshape(-1)


def _is_bias_of_last_fc(node, layers, constants) -> bool:
    if not layers or layers[-1].kind != net.FC or layers[-1].bias is not None:
        return False
    others = [i for i in node.input if i != layers[-1].outputs[0]]
    return len(others) == 1 and others[0] in constants


def _with_bias(layer, node, constants) -> net.NetLayer:
    bias = next(constants[i] for i in node.input if i in constants).reshape(-1)
    return net.NetLayer(
        layer.name,
        layer.kind,
        layer.inputs,
        tuple(node.output[:1]),
        layer.weights,
        bias,
        layer.attrs,
    )
