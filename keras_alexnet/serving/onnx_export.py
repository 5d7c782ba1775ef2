"""AlexNet as an ONNX graph, written operator by operator from the model's layers.

Keras' own `model.export(format="onnx")` (through tf2onnx) gives the same graph but freezes,
optimises and copies the weights many times, holding about fifty times the model's size in
memory at its peak (docs/design.md has the figures). Here each weight is copied once, as the
graph's initializer.

The graph: `images` float32 [batch, 227, 227, 3] (RGB 0..255) -> `Sub` the mean (-> `Mul`
1/58 for init="he") -> `Transpose` to NCHW -> per tower: `Conv`+`Relu`, ONNX's own `LRN`,
`MaxPool`, ... (the two towers stay separate convolutions, reading each other through
`Concat` where the model does: conv3, fc6, fc7, the classifier) -> `Transpose` back to NHWC
and `Flatten` (fc6's rows are in Keras' (H, W, C) order) -> `Gemm`+`Relu` -> `Gemm` ->
`Softmax` -> `probabilities`. Dropout is the identity at inference and is left out.

ONNX's LRN divides alpha by the window size (Caffe's convention): alpha = the layer's
effective alpha times the size. Caffe's cross-tower LRN reads the other tower's edge channels:
`Slice` them, `Concat`, `LRN`, `Slice` the tower's own channels back.
"""

from __future__ import annotations

import numpy as np

from keras_alexnet.alexnet import DEFAULT_SIZE, TOWERS
from keras_alexnet.layers import CrossTowerLocalResponseNormalization

# ONNX opset: 17 is read by every onnxruntime since 1.13 and by TensorRT 8.6 and later.
OPSET = 17
ACTIVATIONS = ("softmax", "linear")


def onnx_model(model, mean_rgb, metadata: dict[str, str]):
    """The `onnx.ModelProto` of an AlexNet (include_top=True) behind the subtraction of
    `mean_rgb`; `metadata` goes to its `metadata_props`. Raises ValueError for a model this
    writer does not know (another architecture, int8 layers, another classifier activation)."""
    from onnx import TensorProto, helper

    check_model(model)
    graph = _GraphBuilder()
    x = graph.op("Sub", "images", graph.constant("mean_rgb", np.float32(mean_rgb)))
    if "input_scaling" in {layer.name for layer in model.layers}:
        scale = model.get_layer("input_scaling").scale
        x = graph.op("Mul", x, graph.constant("input_scale", np.float32([scale])))
    x = graph.op("Transpose", x, perm=[0, 3, 1, 2])
    towers = {t: x for t in TOWERS}
    for block in (1, 2, 3, 4, 5):
        if block == 3:
            towers = {t: graph.op("Concat", *towers.values(), axis=1) for t in TOWERS}
        towers = {t: _conv(graph, model.get_layer(f"conv{block}_{t}"), towers[t]) for t in TOWERS}
        if block in (1, 2):
            towers = _lrn(graph, model, block, towers)
        if block in (1, 2, 5):
            towers = {t: graph.op("MaxPool", towers[t], **_pool(model, block, t)) for t in TOWERS}
    towers = {
        t: graph.op("Flatten", graph.op("Transpose", towers[t], perm=[0, 2, 3, 1]), axis=1)
        for t in TOWERS
    }
    for block in (6, 7):
        joined = graph.op("Concat", *towers.values(), axis=1)
        towers = {t: _dense(graph, model.get_layer(f"fc{block}_{t}"), joined) for t in TOWERS}
    x = _dense(graph, model.get_layer("predictions"), graph.op("Concat", *towers.values(), axis=1))
    graph.nodes[-1].output[0] = "probabilities"

    classes = model.output_shape[-1]
    onnx_graph = helper.make_graph(
        graph.nodes,
        model.name,
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, ["batch", *[DEFAULT_SIZE] * 2, 3]
            )
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        graph.initializers,
    )
    proto = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="keras_alexnet",
    )
    proto.ir_version = 8  # what opset 17 needs; read by onnxruntime 1.13 and later
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def check_model(model) -> None:
    """Raises ValueError if `onnx_model` cannot write `model` (see there)."""
    names = {layer.name for layer in model.layers}
    needed = {f"{kind}{b}_{t}" for t in TOWERS for kind, b in _TOWER_LAYERS} | {"predictions"}
    missing = sorted(needed - names)
    if missing:
        raise ValueError(
            f"The ONNX export writes AlexNet with its top (include_top=True); model "
            f"{model.name!r} has no layer {', '.join(missing)}."
        )
    quantized = [layer.name for layer in model.layers if getattr(layer, "quantization_mode", None)]
    if quantized:
        raise ValueError(
            f"The ONNX export writes float32 weights; {', '.join(quantized)} are int8. Export "
            "the float32 model (onnxruntime.quantization.quantize_dynamic makes int8 of it)."
        )
    activation = model.get_layer("predictions").activation.__name__
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"The ONNX export knows the classifier activations {ACTIVATIONS}; model "
            f"{model.name!r} uses {activation!r}."
        )


_TOWER_LAYERS = [("conv", b) for b in range(1, 6)] + [("norm", 1), ("norm", 2)]
_TOWER_LAYERS += [("pool", 1), ("pool", 2), ("pool", 5), ("fc", 6), ("fc", 7)]


class _GraphBuilder:
    """Nodes and initializers, each node's output named after the node."""

    def __init__(self):
        self.nodes, self.initializers = [], []

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        from onnx import helper

        name = f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=name, **attributes))
        return name


def _conv(graph, layer, x):
    kernel, bias = (v.numpy() for v in layer.weights)
    height, width = kernel.shape[:2]
    pads = [height // 2, width // 2] * 2 if layer.padding == "same" else [0, 0, 0, 0]
    y = graph.op(
        "Conv",
        x,
        graph.constant(f"{layer.name}/kernel", kernel.transpose(3, 2, 0, 1)),
        graph.constant(f"{layer.name}/bias", bias),
        kernel_shape=[height, width],
        strides=list(layer.strides),
        pads=pads,
    )
    return graph.op("Relu", y)


def _lrn(graph, model, block, towers):
    out = {}
    for t, other in zip(TOWERS, reversed(TOWERS), strict=True):
        layer = model.get_layer(f"norm{block}_{t}")
        radius, size = layer.depth_radius, 2 * layer.depth_radius + 1
        attributes = {
            "size": size,
            "alpha": layer.effective_alpha * size,
            "beta": layer.beta,
            "bias": layer.bias,
        }
        if not isinstance(layer, CrossTowerLocalResponseNormalization) or radius == 0:
            out[t] = graph.op("LRN", towers[t], **attributes)
            continue
        channels = model.get_layer(f"conv{block}_{t}").filters
        first = layer.position == "first"
        edge = _slice(graph, towers[other], *((0, radius) if first else (-radius, channels)))
        stack = graph.op("Concat", *((towers[t], edge) if first else (edge, towers[t])), axis=1)
        normalised = graph.op("LRN", stack, **attributes)
        out[t] = _slice(
            graph, normalised, *((0, channels) if first else (radius, radius + channels))
        )
    return out


def _slice(graph, x, start, end):
    n = len(graph.initializers)
    return graph.op(
        "Slice",
        x,
        graph.constant(f"slice_{n}_starts", np.int64([start])),
        graph.constant(f"slice_{n}_ends", np.int64([end])),
        graph.constant(f"slice_{n}_axes", np.int64([1])),
    )


def _pool(model, block, tower):
    layer = model.get_layer(f"pool{block}_{tower}")
    return {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides)}


def _dense(graph, layer, x):
    kernel, bias = (v.numpy() for v in layer.weights)
    y = graph.op(
        "Gemm",
        x,
        graph.constant(f"{layer.name}/kernel", kernel),
        graph.constant(f"{layer.name}/bias", bias),
    )
    activation = layer.activation.__name__
    if activation == "relu":
        return graph.op("Relu", y)
    if activation == "softmax":
        return graph.op("Softmax", y, axis=1)
    return graph.op("Identity", y)
