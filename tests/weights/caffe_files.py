"""Writing .caffemodel files for the tests, from Caffe's caffe.proto field numbers, in both of
Caffe's forms: V1 (`NetParameter.layers`, enum types, num/channels/height/width blobs) and the
current one (`NetParameter.layer`, string types, `shape` blobs). No Caffe, no protobuf schema:
the bytes are written field by field.

Also the random bvlc_alexnet weights the tests load, in Caffe's layout.
"""

import struct

import numpy as np

# (name, type, params): bvlc_alexnet's deploy network, conv1 ... fc8.
CONV_LAYERS = [
    ("conv1", "Convolution", {"num_output": 96, "kernel_size": 11, "stride": 4}),
    ("relu1", "ReLU", {}),
    ("norm1", "LRN", {"local_size": 5, "alpha": 1e-4, "beta": 0.75}),
    ("pool1", "Pooling", {"kernel_size": 3, "stride": 2}),
    ("conv2", "Convolution", {"num_output": 256, "kernel_size": 5, "pad": 2, "group": 2}),
    ("relu2", "ReLU", {}),
    ("norm2", "LRN", {"local_size": 5, "alpha": 1e-4, "beta": 0.75}),
    ("pool2", "Pooling", {"kernel_size": 3, "stride": 2}),
    ("conv3", "Convolution", {"num_output": 384, "kernel_size": 3, "pad": 1}),
    ("relu3", "ReLU", {}),
    ("conv4", "Convolution", {"num_output": 384, "kernel_size": 3, "pad": 1, "group": 2}),
    ("relu4", "ReLU", {}),
    ("conv5", "Convolution", {"num_output": 256, "kernel_size": 3, "pad": 1, "group": 2}),
    ("relu5", "ReLU", {}),
    ("pool5", "Pooling", {"kernel_size": 3, "stride": 2}),
]
TOP_LAYERS = [
    ("fc6", "InnerProduct", {"num_output": 4096}),
    ("relu6", "ReLU", {}),
    ("drop6", "Dropout", {}),
    ("fc7", "InnerProduct", {"num_output": 4096}),
    ("relu7", "ReLU", {}),
    ("drop7", "Dropout", {}),
    ("fc8", "InnerProduct", {"num_output": None}),  # the classes
]
SHAPES = {
    "conv1": (96, 3, 11, 11),
    "conv2": (256, 48, 5, 5),
    "conv3": (384, 256, 3, 3),
    "conv4": (384, 192, 3, 3),
    "conv5": (256, 192, 3, 3),
    "fc6": (4096, 9216),
    "fc7": (4096, 4096),
}

V1_TYPES = {
    "Convolution": 4,
    "ReLU": 18,
    "LRN": 15,
    "Pooling": 17,
    "InnerProduct": 14,
    "Dropout": 6,
    "Data": 5,
    "SoftmaxWithLoss": 21,
    "Softmax": 20,
    "BatchNorm": 0,
}


def random_weights(seed=0, classes=10, include_top=True):
    """bvlc_alexnet-shaped weights in Caffe's layout, He-scaled so that activations stay of
    order 1-100 through the network and LRN changes them noticeably."""
    rng = np.random.default_rng(seed)
    names = [n for n in SHAPES if include_top or n.startswith("conv")]
    shapes = {n: SHAPES[n] for n in names}
    if include_top:
        shapes["fc8"] = (classes, 4096)
    weights = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:]))
        w = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        b = rng.uniform(-0.5, 0.5, shape[0]).astype(np.float32)
        weights[name] = (w, b)
    return weights


def varint(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number, wire_type):
    return varint(number << 3 | wire_type)


def int_field(number, value):
    return key(number, 0) + varint(value)


def float_field(number, value):
    return key(number, 5) + struct.pack("<f", value)


def bytes_field(number, payload):
    return key(number, 2) + varint(len(payload)) + payload


def string_field(number, text):
    return bytes_field(number, text.encode())


def blob(array, legacy, packed=True):
    array = np.asarray(array, np.float32)
    if legacy:  # num, channels, height, width: leading 1s
        dims = (1,) * (4 - array.ndim) + array.shape
        header = b"".join(int_field(n, d) for n, d in zip((1, 2, 3, 4), dims, strict=True))
    else:
        header = bytes_field(7, bytes_field(1, b"".join(varint(d) for d in array.shape)))
    if packed:
        data = bytes_field(5, array.astype("<f4").tobytes())
    else:
        values = array.astype("<f4").reshape(-1)
        records = np.empty((values.size, 5), np.uint8)
        records[:, 0] = key(5, 5)[0]  # one key before every float
        records[:, 1:] = values.view(np.uint8).reshape(-1, 4)
        data = records.tobytes()
    return header + data


def param_message(type_name, params):
    if type_name == "Convolution":
        out = int_field(1, params["num_output"])
        out += int_field(3, params["pad"]) if params.get("pad") else b""
        out += int_field(4, params["kernel_size"])
        out += int_field(5, params["group"]) if params.get("group") else b""
        out += int_field(6, params["stride"]) if params.get("stride") else b""
        return out
    if type_name == "Pooling":
        out = int_field(1, params.get("pool", 0)) + int_field(2, params["kernel_size"])
        return out + int_field(3, params["stride"])
    if type_name == "LRN":
        out = int_field(1, params["local_size"]) + float_field(2, params["alpha"])
        out += float_field(3, params["beta"])
        out += float_field(5, params["k"]) if "k" in params else b""
        return out
    if type_name == "InnerProduct":
        return int_field(1, params["num_output"])
    return b""


# Field numbers: V1LayerParameter / LayerParameter.
V1_FIELDS = {"bottom": 2, "top": 3, "name": 4, "type": 5, "blobs": 6}
V1_PARAMS = {"Convolution": 10, "InnerProduct": 17, "LRN": 18, "Pooling": 19}
FIELDS = {"name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7}
PARAMS = {"Convolution": 106, "InnerProduct": 117, "LRN": 118, "Pooling": 121}


def layer_bytes(form, name, type_name, bottoms, tops, blobs=(), params=None, packed=True):
    v1 = form == "v1"
    fields = V1_FIELDS if v1 else FIELDS
    out = string_field(fields["name"], name)
    out += int_field(5, V1_TYPES[type_name]) if v1 else string_field(2, type_name)
    out += b"".join(string_field(fields["bottom"], b) for b in bottoms)
    out += b"".join(string_field(fields["top"], t) for t in tops)
    out += b"".join(bytes_field(fields["blobs"], blob(a, v1, packed)) for a in blobs)
    param_numbers = V1_PARAMS if v1 else PARAMS
    if type_name in param_numbers:
        out += bytes_field(param_numbers[type_name], param_message(type_name, params or {}))
    return bytes_field(2 if v1 else 100, out)


def write_caffemodel(
    path, weights, form="v1", layers=None, classes=None, training_net=True, packed=True
):
    """Writes `weights` (name -> (W, b), Caffe layout) as a bvlc_alexnet .caffemodel.

    `layers` overrides the layer list (name, type, params), in order; each reads the previous
    layer's output ("data" first), ReLU and Dropout in place as Caffe writes them.
    `training_net` adds the data and loss layers a trained model's file holds.
    """
    if layers is None:
        layers = CONV_LAYERS + (TOP_LAYERS if "fc6" in weights else [])
    with open(path, "wb") as file:
        file.write(string_field(1, "AlexNet"))
        if training_net:
            file.write(layer_bytes(form, "data", "Data", [], ["data", "label"]))
        previous = "data"
        for name, type_name, params in layers:
            params = dict(params)
            if type_name == "InnerProduct" and params.get("num_output") is None:
                params["num_output"] = classes or weights[name][0].shape[0]
            in_place = type_name in ("ReLU", "Dropout")
            top = previous if in_place else name
            blobs = weights[name] if name in weights else ()
            file.write(layer_bytes(form, name, type_name, [previous], [top], blobs, params, packed))
            previous = top
        if training_net:
            file.write(layer_bytes(form, "loss", "SoftmaxWithLoss", [previous, "label"], ["loss"]))


def caffenet_layers():
    """CaffeNet's order: each of blocks 1 and 2 pools before it normalises."""
    layers = list(CONV_LAYERS)
    for block in (0, 4):
        layers[block + 2], layers[block + 3] = layers[block + 3], layers[block + 2]
    return layers
