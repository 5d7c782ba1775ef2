"""ONNX graphs of bvlc_alexnet for the tests, built with onnx.helper in the form of the ONNX
model zoo's bvlcalexnet (NCHW BGR input, Conv with group 2, LRN, MaxPool, Flatten, Gemm with
transB=1, Dropout, Softmax), from weights in Caffe's layout."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
CONVS = [  # name, stride, pads, group, then the layers after it
    ("conv1", 4, 0, 1, ["relu", "norm", "pool"]),
    ("conv2", 1, 2, 2, ["relu", "norm", "pool"]),
    ("conv3", 1, 1, 1, ["relu"]),
    ("conv4", 1, 1, 2, ["relu"]),
    ("conv5", 1, 1, 2, ["relu", "pool"]),
]


def build(weights, include_top=True, pool_pads=(0, 0, 0, 0), lrn_bias=1.0, gemm=True):
    """An onnx.ModelProto of bvlc_alexnet with `weights` (name -> (W, b), Caffe layout).
    Outputs: "logits" (fc8, or pool5 without the top) and, with the top, "prob"."""
    nodes, inits = [], []
    previous = "data_0"

    def add(op, inputs, name, **attrs):
        nonlocal previous
        nodes.append(helper.make_node(op, [previous, *inputs], [name], name=name, **attrs))
        previous = name

    def constant(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    for name, stride, pad, group, after in CONVS:
        w, b = weights[name]
        add(
            "Conv",
            [constant(f"{name}_w", w), constant(f"{name}_b", b)],
            name,
            kernel_shape=list(w.shape[2:]),
            strides=[stride, stride],
            pads=[pad] * 4,
            group=group,
        )
        for step in after:
            number = name[-1]
            if step == "relu":
                add("Relu", [], f"relu{number}")
            elif step == "norm":
                add("LRN", [], f"norm{number}", size=5, alpha=1e-4, beta=0.75, bias=lrn_bias)
            else:
                add(
                    "MaxPool",
                    [],
                    f"pool{number}",
                    kernel_shape=[3, 3],
                    strides=[2, 2],
                    pads=list(pool_pads),
                )
    outputs = [previous]
    if include_top:
        add("Flatten", [], "flatten", axis=1)
        for name in ("fc6", "fc7", "fc8"):
            w, b = weights[name]
            if gemm:
                add("Gemm", [constant(f"{name}_w", w), constant(f"{name}_b", b)], name, transB=1)
            else:
                add("MatMul", [constant(f"{name}_w", np.ascontiguousarray(w.T))], f"{name}_mm")
                add("Add", [constant(f"{name}_b", b)], name)
            if name != "fc8":
                add("Relu", [], f"relu{name[-1]}")
                add("Dropout", [], f"drop{name[-1]}")
        outputs = [previous]
        add("Softmax", [], "prob", axis=1)
        outputs.append("prob")
    shape = [None, None] if include_top else [None, 256, 6, 6]
    graph = helper.make_graph(
        nodes,
        "bvlcalexnet",
        [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [None, 3, 227, 227])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shape) for o in outputs],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def run(model_path, images_rgb):
    """onnxruntime's output on RGB images: the model takes BGR minus Caffe's mean, NCHW."""
    import onnxruntime

    from tests.weights.caffe_reference import MEAN_BGR

    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    bgr = (np.asarray(images_rgb, np.float64)[..., ::-1] - MEAN_BGR).astype(np.float32)
    name = session.get_outputs()[0].name
    return session.run([name], {"data_0": bgr.transpose(0, 3, 1, 2)})[0]
