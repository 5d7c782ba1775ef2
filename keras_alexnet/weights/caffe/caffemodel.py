"""Reading a Caffe `.caffemodel` (a serialized `caffe.NetParameter`) without Caffe.

Both forms found in the wild are read:

- the legacy V1 form (`NetParameter.layers`, field 2, of `V1LayerParameter`: type an enum,
  blobs with `num`/`channels`/`height`/`width`), in which BVLC's `bvlc_alexnet.caffemodel`
  was released;
- the current form (`NetParameter.layer`, field 100, of `LayerParameter`: type a string,
  blobs with a `shape`).

Field numbers are those of Caffe's `caffe.proto`. The file is memory-mapped and the weights
are NumPy views of it until the checker copies them into the model's layout.
"""

from __future__ import annotations

import math
import mmap
import os

import numpy as np

from keras_alexnet.weights.caffe import net
from keras_alexnet.weights.caffe.protobuf_wire import (
    FIXED32,
    LENGTH_DELIMITED,
    Field,
    WireError,
    fields,
    float_array,
    packed_varints,
    signed,
    string,
    to_float,
)

# NetParameter.
_NET_NAME, _NET_V1_LAYERS, _NET_LAYERS = 1, 2, 100
# V1LayerParameter.
_V1 = {"bottom": 2, "top": 3, "name": 4, "type": 5, "blobs": 6, "v0_layer": 1}
_V1_PARAMS = {10: "convolution", 17: "inner_product", 18: "lrn", 19: "pooling"}
# V1LayerParameter.LayerType, the types an AlexNet file holds (anything else is `other`).
_V1_TYPES = {
    1: "Accuracy",
    4: "Convolution",
    5: "Data",
    6: "Dropout",
    8: "Flatten",
    12: "ImageData",
    14: "InnerProduct",
    15: "LRN",
    17: "Pooling",
    18: "ReLU",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    22: "Split",
    29: "MemoryData",
    36: "Silence",
}
# LayerParameter.
_LAYER = {"name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7}
_LAYER_PARAMS = {106: "convolution", 117: "inner_product", 118: "lrn", 121: "pooling"}
# BlobProto.
_BLOB_LEGACY_DIMS = (1, 2, 3, 4)  # num, channels, height, width
_BLOB_DATA, _BLOB_SHAPE, _BLOB_DOUBLE_DATA = 5, 7, 8

_KINDS = {
    "Convolution": net.CONV,
    "ReLU": net.RELU,
    "LRN": net.LRN,
    "Pooling": net.POOL,
    "InnerProduct": net.FC,
    "Dropout": net.DROPOUT,
    "Flatten": net.FLATTEN,
    "Split": net.IDENTITY,
    "Softmax": net.SOFTMAX,
    "Data": net.DATA,
    "ImageData": net.DATA,
    "MemoryData": net.DATA,
    "Input": net.DATA,
    "SoftmaxWithLoss": net.LOSS,
    "Accuracy": net.LOSS,
    "Silence": net.LOSS,
}
# Bounds on what a file may hold before it is refused, far above bvlc_alexnet's (its deploy
# and train_val nets have at most 30 layers; a layer at most 2 blobs): a crafted file of
# millions of tiny layers or blobs is refused at once instead of parsed for minutes.
MAX_LAYERS = 1000
MAX_BLOBS = 8
_POOL_METHODS = {0: "max", 1: "average", 2: "stochastic"}
_LRN_REGIONS = {0: "across_channels", 1: "within_channel"}


def read_caffemodel(path: str) -> list[net.NetLayer]:
    """The layers of the `.caffemodel` at `path`, in the file's order.

    Raises:
        ValueError: naming the file (and the layer, where there is one) when the bytes are
            not a Caffe NetParameter.
    """
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            raise ValueError(f"{path} is empty; it is not a Caffe model.")
        buffer = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _read_net(buffer, path)
    except WireError as error:
        raise ValueError(
            f"{path} is not a readable Caffe model: {error}. Download the file again, or check "
            "that it is a .caffemodel (binary NetParameter), not a .prototxt or another format."
        ) from None


def _read_net(buffer, path: str) -> list[net.NetLayer]:
    layers, forms = [], set()
    for field in fields(buffer):
        if field.number == _NET_V1_LAYERS and field.wire_type == LENGTH_DELIMITED:
            layers.append(_read_v1_layer(buffer, *field.value, path))
            forms.add("V1")
        elif field.number == _NET_LAYERS and field.wire_type == LENGTH_DELIMITED:
            layers.append(_read_layer(buffer, *field.value, path))
            forms.add("current")
        if len(layers) > MAX_LAYERS:
            raise ValueError(
                f"{path} holds more than {MAX_LAYERS} layers; bvlc_alexnet has about 25. It is "
                "another network, or a damaged or crafted file."
            )
    if not layers:
        raise ValueError(
            f"{path} holds no Caffe layers (neither `layers` nor `layer`): it is not a "
            ".caffemodel, or it is an empty network."
        )
    if len(forms) > 1:
        raise ValueError(
            f"{path} mixes V1 `layers` and current `layer` entries; Caffe itself refuses such "
            "a file. Upgrade it with Caffe's upgrade_net_proto_binary."
        )
    return layers


def _read_v1_layer(buffer, start, end, path) -> net.NetLayer:
    name, type_name, bottoms, tops, blobs, params = "", None, [], [], [], {}
    for field in fields(buffer, start, end):
        if field.number == _V1["name"]:
            name = string(buffer, field)
        elif field.number == _V1["type"]:
            type_name = _V1_TYPES.get(field.value, f"V1 layer type {field.value}")
        elif field.number == _V1["bottom"]:
            bottoms.append(string(buffer, field))
        elif field.number == _V1["top"]:
            tops.append(string(buffer, field))
        elif field.number == _V1["blobs"]:
            blobs.append(_read_blob(buffer, *field.value))
            _check_blob_count(blobs, name, path)
        elif field.number in _V1_PARAMS:
            params[_V1_PARAMS[field.number]] = _raw(buffer, *field.value)
        elif field.number == _V1["v0_layer"]:
            raise ValueError(
                f"{path}: layer {name or '?'} is in Caffe's V0 form (2014 and older). Upgrade "
                "the file with Caffe's upgrade_net_proto_binary, then load it again."
            )
    return _net_layer(name, type_name or "V1 layer type NONE", bottoms, tops, blobs, params, path)


def _read_layer(buffer, start, end, path) -> net.NetLayer:
    name, type_name, bottoms, tops, blobs, params = "", "", [], [], [], {}
    for field in fields(buffer, start, end):
        if field.number == _LAYER["name"]:
            name = string(buffer, field)
        elif field.number == _LAYER["type"]:
            type_name = string(buffer, field)
        elif field.number == _LAYER["bottom"]:
            bottoms.append(string(buffer, field))
        elif field.number == _LAYER["top"]:
            tops.append(string(buffer, field))
        elif field.number == _LAYER["blobs"]:
            blobs.append(_read_blob(buffer, *field.value))
            _check_blob_count(blobs, name, path)
        elif field.number in _LAYER_PARAMS:
            params[_LAYER_PARAMS[field.number]] = _raw(buffer, *field.value)
    return _net_layer(name, type_name, bottoms, tops, blobs, params, path)


def _check_blob_count(blobs, name, path) -> None:
    if len(blobs) > MAX_BLOBS:
        raise ValueError(
            f"{path}: layer {name or '?'} holds more than {MAX_BLOBS} weight blobs; Caffe's "
            "layers hold at most 3. It is a damaged or crafted file."
        )


def _raw(buffer, start, end) -> _Params:
    raw: dict[int, list[Field]] = {}
    for field in fields(buffer, start, end):
        raw.setdefault(field.number, []).append(field)
    return _Params(buffer, raw)


class _Params:
    """A layer's parameter message (ConvolutionParameter, ...): its fields by number."""

    def __init__(self, buffer=None, raw=None):
        self.buffer, self.raw = buffer, raw or {}

    def ints(self, number: int, default: list[int]) -> list[int]:
        values = []
        for field in self.raw.get(number, []):
            if field.wire_type == FIXED32:
                raise WireError(f"parameter field {number} at byte {field.offset} is a float")
            values.extend(signed(v) for v in packed_varints(self.buffer, field))
        return values or default

    def int(self, number: int, default: int) -> int:
        return self.ints(number, [default])[-1]

    def float(self, number: int, default: float) -> float:
        found = self.raw.get(number)
        if not found:
            return default
        field = found[-1]
        if field.wire_type != FIXED32:
            raise WireError(f"parameter field {number} at byte {field.offset} is not a float")
        return to_float(field.value, field.wire_type)

    def pair(self, both: int, height: int, width: int, default: int) -> tuple[int, int]:
        """A (height, width) geometry: the `*_h`/`*_w` fields, else the repeated field (one
        value for both axes, or one per axis)."""
        if height in self.raw or width in self.raw:
            return (self.int(height, default), self.int(width, default))
        values = self.ints(both, [default])
        return (values[0], values[0]) if len(values) == 1 else tuple(values[:2])


def _read_blob(buffer, start, end) -> np.ndarray:
    """A BlobProto's values, shaped by `shape` or by the legacy num/channels/height/width."""
    chunks, shape, legacy = [], None, {}
    position = start
    while position < end:
        resume = None
        for field in fields(buffer, position, end):
            if field.number in (_BLOB_DATA, _BLOB_DOUBLE_DATA):
                dtype = "<f4" if field.number == _BLOB_DATA else "<f8"
                values, after = float_array(buffer, field, end, dtype)
                chunks.append(values)
                if field.wire_type != LENGTH_DELIMITED:  # unpacked: read as a run
                    resume = after
                    break
            elif field.number == _BLOB_SHAPE and field.wire_type == LENGTH_DELIMITED:
                shape = []
                for dim in fields(buffer, *field.value):
                    shape.extend(signed(v) for v in packed_varints(buffer, dim))
            elif field.number in _BLOB_LEGACY_DIMS:
                legacy[field.number] = signed(field.value)
        if resume is None:
            break
        position = resume
    data = chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks else None
    if data is None:
        data = np.zeros(0, np.float32)
    if shape is None:
        shape = [legacy.get(i, 0) for i in _BLOB_LEGACY_DIMS] if legacy else [data.size]
    if any(d < 0 for d in shape):
        raise WireError(f"a weight blob has the negative dimensions {tuple(shape)}")
    count = math.prod(shape)  # Python integers: huge dimensions cannot wrap around
    if count != data.size:
        raise WireError(
            f"a weight blob of shape {tuple(shape)} holds {data.size} values instead of {count}"
        )
    return data.reshape(shape)


def _net_layer(name, type_name, bottoms, tops, blobs, params, path) -> net.NetLayer:
    kind = _KINDS.get(type_name, net.OTHER)
    weights = bias = None
    attrs = {"type": type_name}
    if kind in (net.CONV, net.FC):
        if not blobs:
            raise ValueError(f"{path}: layer {name} ({type_name}) has no weights in the file.")
        weights, bias = blobs[0], blobs[1] if len(blobs) > 1 else None
    if kind == net.CONV:
        attrs.update(_conv_attrs(params.get("convolution", _Params())))
    elif kind == net.FC:
        transpose = params.get("inner_product", _Params()).int(6, 0)
        weights = _squeeze_legacy(weights, 2)
        weights = weights.T if transpose else weights
    elif kind == net.POOL:
        attrs.update(_pool_attrs(params.get("pooling", _Params())))
    elif kind == net.LRN:
        attrs.update(_lrn_attrs(params.get("lrn", _Params())))
    if bias is not None:
        bias = _squeeze_legacy(bias, 1)
    if weights is not None and kind == net.CONV and weights.ndim != 4:
        raise ValueError(
            f"{path}: layer {name} ({type_name}) has weights of shape {weights.shape}; a 2D "
            "convolution's are (out, in, height, width)."
        )
    if weights is not None and kind == net.FC and weights.ndim != 2:
        raise ValueError(
            f"{path}: layer {name} ({type_name}) has weights of shape {weights.shape}; a fully "
            "connected layer's are (outputs, inputs)."
        )
    return net.NetLayer(name, kind, tuple(bottoms), tuple(tops), weights, bias, attrs)


def _squeeze_legacy(blob: np.ndarray, rank: int) -> np.ndarray:
    """Drops the leading 1s of V1's 4D blobs: an fc weight (1, 1, out, in) -> (out, in)."""
    while blob.ndim > rank and blob.shape[0] == 1:
        blob = blob[0]
    return blob


def _conv_attrs(params: _Params) -> dict:
    pad = params.pair(3, 9, 10, 0)
    return {
        "num_output": params.int(1, 0),
        "kernel": params.pair(4, 11, 12, 0),
        "stride": params.pair(6, 13, 14, 1),
        "dilation": params.pair(18, 18, 18, 1),
        "pads": (pad[0], pad[1], pad[0], pad[1]),
        "group": params.int(5, 1),
    }


def _pool_attrs(params: _Params) -> dict:
    pad = params.pair(4, 9, 10, 0)
    method = params.int(1, 0)
    return {
        "method": _POOL_METHODS.get(method, f"method {method}"),
        "kernel": params.pair(2, 5, 6, 0),
        "stride": params.pair(3, 7, 8, 1),
        "pads": (pad[0], pad[1], pad[0], pad[1]),
        "ceil": True,  # Caffe's pooling rounds its output size up
        "global": bool(params.int(12, 0)),
    }


def _lrn_attrs(params: _Params) -> dict:
    region = params.int(4, 0)
    return {
        "size": params.int(1, 5),
        "alpha": params.float(2, 1.0),
        "beta": params.float(3, 0.75),
        "k": params.float(5, 1.0),
        "region": _LRN_REGIONS.get(region, f"region {region}"),
    }
