"""BVLC's AlexNet as Caffe defines it, checked against a foreign network and converted to the
weights of `AlexNet(lrn="caffe")`.

What Caffe's `bvlc_alexnet` computes, and how each point maps onto keras_alexnet's model:

- Input: BGR on the 0..255 scale minus Caffe's ImageNet mean. Our model takes RGB minus
  `IMAGENET_MEAN_RGB` (`preprocess_input`): conv1's input channels are reversed, and since
  conv1 has no padding, the difference of the two means is a constant per output channel,
  folded exactly into conv1's bias.
- Grouped convolutions (conv2, conv4, conv5: group 2) are the two towers: weights
  `(out, in / 2, kh, kw)`, group 0 is tower a (the first half of the outputs, reading the first
  half of the inputs). conv1, conv3, fc6, fc7 and fc8 are not grouped: tower a takes the first
  half of the outputs.
- LRN: `x / (k + alpha / size * sum x^2) ** beta` with k=1, alpha=1e-4, size=5, beta=0.75,
  across all 96 (256) channels of both towers: `AlexNet(lrn="caffe")`.
- fc6 reads pool5 flattened as (channels, height, width); Keras flattens each tower's
  (height, width, channels): fc6's rows are permuted to match.
- Pooling rounds its output size up in Caffe and down in Keras; at 227x227 both give
  55 -> 27 -> 13 -> 6, and no window reads past the edge.

`bvlc_reference_caffenet` has the same shapes but pools before it normalises: a different
function, refused with a message that says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_alexnet.imagenet import IMAGENET_MEAN_RGB
from keras_alexnet.layers.local_response_normalization import (
    CAFFE_BIAS,
    PAPER_ALPHA,
    PAPER_BETA,
    PAPER_DEPTH_RADIUS,
)
from keras_alexnet.weights.caffe import net

# Caffe's ImageNet mean, BGR on the 0..255 scale: the per-channel average of the mean image
# shipped with Caffe (ilsvrc_2012_mean.binaryproto), as its classification examples subtract.
CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)

# The input size at which the network's geometry is checked (fc6 reads a 6x6x256 pool5).
INPUT_SIZE = 227

# Caffe's LRN in bvlc_alexnet: local_size 5, alpha 1e-4 (divided by the size when applied),
# beta 0.75 (the paper's n, alpha and beta), k unset (Caffe's default, 1), across channels.
CAFFE_LRN = {
    "size": 2 * PAPER_DEPTH_RADIUS + 1,
    "alpha": PAPER_ALPHA,
    "beta": PAPER_BETA,
    "k": CAFFE_BIAS,
    "region": "across_channels",
}


@dataclass(frozen=True)
class Step:
    """One computing layer of bvlc_alexnet: conv and fc give `outputs`, `inputs`, `group`,
    `kernel`, `stride`, `pad`; pool gives `kernel` and `stride`."""

    name: str
    kind: str
    outputs: int = 0
    inputs: int = 0
    kernel: int = 0
    stride: int = 1
    pad: int = 0
    group: int = 1


def _block(number, outputs, inputs, kernel, stride, pad, group, norm, pool):
    steps = [Step(f"conv{number}", net.CONV, outputs, inputs, kernel, stride, pad, group)]
    steps.append(Step(f"relu{number}", net.RELU))
    if norm:
        steps.append(Step(f"norm{number}", net.LRN))
    if pool:
        steps.append(Step(f"pool{number}", net.POOL, kernel=3, stride=2))
    return steps


CONV_STEPS = (
    *_block(1, 96, 3, 11, 4, 0, 1, norm=True, pool=True),
    *_block(2, 256, 96, 5, 1, 2, 2, norm=True, pool=True),
    *_block(3, 384, 256, 3, 1, 1, 1, norm=False, pool=False),
    *_block(4, 384, 384, 3, 1, 1, 2, norm=False, pool=False),
    *_block(5, 256, 384, 3, 1, 1, 2, norm=False, pool=True),
)
TOP_STEPS = (
    Step("fc6", net.FC, 4096, 256 * 6 * 6),
    Step("relu6", net.RELU),
    Step("fc7", net.FC, 4096, 4096),
    Step("relu7", net.RELU),
    Step("fc8", net.FC, 0, 4096),  # outputs: the classes, 1000 for ImageNet
)
POOL5_SIZE = 6


class Mismatch(ValueError):
    """The network in the file is not bvlc_alexnet."""


def check_network(layers: list[net.NetLayer], path: str) -> dict[str, net.NetLayer]:
    """Matches a foreign network to bvlc_alexnet, layer by layer.

    Returns:
        The matched layers by bvlc_alexnet's names (`conv1`, `norm1`, ..., `fc8`). A network
        that ends at pool5 gives the convolutional base only.

    Raises:
        Mismatch: naming the file, the layer and what differs.
    """
    computing = _computing_chain(layers, path)
    _refuse_caffenet(computing, path)
    expected = CONV_STEPS + TOP_STEPS
    if len(computing) not in (len(CONV_STEPS), len(expected)):
        _refuse_length(computing, path)
    matched = {}
    size = INPUT_SIZE
    for step, layer in zip(expected, computing, strict=False):
        if layer.kind != step.kind:
            raise Mismatch(
                f"{path}: layer {layer.name!r} is a {_describe(layer)} where bvlc_alexnet has "
                f"{step.name} ({step.kind}). This is another architecture; keras_alexnet "
                "loads bvlc_alexnet (see docs/weights.md)."
            )
        size = _check_step(step, layer, size, path)
        _check_finite(layer, path)
        matched[step.name] = layer
    return matched


def _check_finite(layer: net.NetLayer, path: str) -> None:
    """Refuses a layer whose weights or bias hold NaN or infinity: such a model computes NaN
    for every image, and a file that holds them is damaged or was saved from a diverged run."""
    for what, values in (("weights", layer.weights), ("bias", layer.bias)):
        if values is None:
            continue
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            raise Mismatch(
                f"{path}: layer {layer.name!r} holds {bad:,} NaN or infinite values in its "
                f"{what} (of {values.size:,}). The file is damaged or was saved from a run "
                "that diverged: use another copy."
            )


def _computing_chain(layers, path) -> list[net.NetLayer]:
    """The layers that compute, in order, after checking that each reads the one before."""
    alias: dict[str, str] = {}
    chain: list[net.NetLayer] = []
    previous_output = None
    last_read = {name: i for i, layer in enumerate(layers) for name in layer.inputs}
    for index, layer in enumerate(layers):
        if layer.kind in (net.DATA, net.LOSS) or _off_the_path(index, layer, last_read):
            continue
        if layer.kind == net.OTHER:
            raise Mismatch(
                f"{path}: layer {layer.name!r} is of type {layer.attrs.get('type')!r}, which "
                "bvlc_alexnet does not have. This is another architecture; keras_alexnet loads "
                "bvlc_alexnet (see docs/weights.md)."
            )
        source = alias.get(layer.inputs[0], layer.inputs[0]) if layer.inputs else None
        if layer.kind in net.PASS_THROUGH:
            for output in layer.outputs:
                alias[output] = source
            continue
        if previous_output is not None and source != previous_output:
            raise Mismatch(
                f"{path}: layer {layer.name!r} reads {layer.inputs[0]!r}, not the output of the "
                f"layer before it ({chain[-1].name!r}). bvlc_alexnet is one chain of layers; "
                "this network branches or is out of order."
            )
        if layer.kind == net.SOFTMAX:
            break
        chain.append(layer)
        previous_output = layer.outputs[0] if layer.outputs else None
        for output in layer.outputs:
            alias.pop(output, None)
    return chain


def _off_the_path(index: int, layer: net.NetLayer, last_read: dict[str, int]) -> bool:
    """A layer of a type bvlc_alexnet lacks that carries no weights and feeds nothing: a data
    source (it reads nothing) or a sink (no later layer reads its outputs), such as Caffe's
    DummyData, HDF5Data, Python or SigmoidCrossEntropyLoss layers of a training net. Caffe
    loads such files; so do we, whatever the type. A layer on the path still decides."""
    if layer.kind != net.OTHER or layer.weights is not None or layer.bias is not None:
        return False
    if not layer.inputs:
        return True
    return all(last_read.get(output, -1) <= index for output in layer.outputs)


def _refuse_caffenet(chain, path):
    kinds = [layer.kind for layer in chain[:4]]
    if kinds == [net.CONV, net.RELU, net.POOL, net.LRN]:
        raise Mismatch(
            f"{path} is CaffeNet (bvlc_reference_caffenet): it pools before it normalises "
            f"({chain[2].name!r} then {chain[3].name!r}), while bvlc_alexnet normalises first. "
            "The shapes are the same but the function is not; keras_alexnet builds "
            "bvlc_alexnet's order only, and does not load CaffeNet."
        )


def _refuse_length(chain, path):
    names = [layer.name for layer in chain]
    raise Mismatch(
        f"{path} has {len(chain)} computing layers ({', '.join(names[:30])}); bvlc_alexnet has "
        f"{len(CONV_STEPS) + len(TOP_STEPS)} (conv1 ... fc8), or {len(CONV_STEPS)} for the "
        "convolutional base alone. This is another architecture or a truncated network."
    )


def _describe(layer) -> str:
    return layer.attrs.get("type") or layer.kind


def _check_step(step: Step, layer: net.NetLayer, size: int, path: str) -> int:
    """Checks one layer against bvlc_alexnet; returns the spatial size after it."""
    where = f"{path}: layer {layer.name!r} (bvlc_alexnet's {step.name})"
    if step.kind == net.CONV:
        return _check_conv(step, layer, size, where)
    if step.kind == net.POOL:
        return _check_pool(step, layer, size, where)
    if step.kind == net.LRN:
        _check_lrn(layer, where)
    if step.kind == net.FC:
        _check_fc(step, layer, where)
    return size


def _check_conv(step, layer, size, where) -> int:
    attrs = layer.attrs
    weights_shape = (step.outputs, step.inputs // step.group, step.kernel, step.kernel)
    if layer.weights.shape != weights_shape:
        hint = ""
        if step.name == "conv1" and layer.weights.shape[0] == 64:
            hint = " (64 conv1 filters: torchvision's alexnet, a different network)"
        raise Mismatch(
            f"{where} has weights of shape {layer.weights.shape}; bvlc_alexnet's are "
            f"{weights_shape} ({step.outputs} filters of {step.kernel}x{step.kernel}, "
            f"{step.group} group{'s' if step.group > 1 else ''}){hint}."
        )
    expected = {
        "kernel": (step.kernel, step.kernel),
        "stride": (step.stride, step.stride),
        "dilation": (1, 1),
        "pads": (step.pad,) * 4,
        "group": step.group,
    }
    for key, value in expected.items():
        if attrs.get(key, value) != value:
            raise Mismatch(f"{where} has {key} {attrs[key]}; bvlc_alexnet's is {value}.")
    _check_bias(layer, step.outputs, where)
    return net.output_size(size, step.kernel, step.stride, step.pad, step.pad, ceil=False)


def _check_pool(step, layer, size, where) -> int:
    attrs = layer.attrs
    if attrs.get("method") != "max" or attrs.get("global"):
        raise Mismatch(f"{where} is {attrs.get('method')} pooling; bvlc_alexnet's is max.")
    if attrs["kernel"] != (step.kernel,) * 2 or attrs["stride"] != (step.stride,) * 2:
        raise Mismatch(
            f"{where} pools {attrs['kernel']} windows with stride {attrs['stride']}; "
            f"bvlc_alexnet's are {step.kernel}x{step.kernel} with stride {step.stride}."
        )
    top, left, bottom, right = attrs["pads"]
    keras_size = net.output_size(size, step.kernel, step.stride, 0, 0, ceil=False)
    file_size = net.output_size(size, step.kernel, step.stride, top, bottom, attrs["ceil"])
    if top or left or file_size != keras_size or (left, right) != (top, bottom):
        raise Mismatch(
            f"{where} pads {attrs['pads']} (ceil mode {attrs['ceil']}), giving {file_size}x"
            f"{file_size} from {size}x{size}; bvlc_alexnet's pooling gives {keras_size}x"
            f"{keras_size}."
        )
    return keras_size


def _check_lrn(layer, where):
    attrs = layer.attrs
    for key, value in CAFFE_LRN.items():
        found = attrs.get(key)
        close = np.isclose(found, value, rtol=1e-6) if isinstance(value, float) else found == value
        if not close:
            raise Mismatch(
                f"{where} has LRN {key}={found}; bvlc_alexnet's is {key}={value} (local_size "
                "5, alpha 1e-4, beta 0.75, k 1, across channels). A network with another LRN "
                "computes another function."
            )


def _check_fc(step, layer, where):
    outputs, inputs = layer.weights.shape
    if inputs != step.inputs or (step.outputs and outputs != step.outputs):
        raise Mismatch(
            f"{where} has weights of shape {layer.weights.shape}; bvlc_alexnet's are "
            f"({step.outputs or 'classes'}, {step.inputs})."
        )
    _check_bias(layer, outputs, where)


def _check_bias(layer, outputs, where):
    if layer.bias is not None and layer.bias.shape != (outputs,):
        raise Mismatch(f"{where} has a bias of shape {layer.bias.shape}; expected ({outputs},).")


def keras_weights(
    matched: dict[str, net.NetLayer], include_top: bool, mean_rgb=IMAGENET_MEAN_RGB
) -> dict[str, list[np.ndarray]]:
    """The weights of every layer of `AlexNet(lrn="caffe")`, by Keras layer name."""
    weights: dict[str, list[np.ndarray]] = {}
    conv1 = _conv1_for_rgb_input(matched["conv1"], mean_rgb)
    for name, (kernel, bias) in (("conv1", conv1),) + tuple(
        (n, _kernel_and_bias(matched[n])) for n in ("conv2", "conv3", "conv4", "conv5")
    ):
        half = kernel.shape[0] // 2
        weights[f"{name}_a"] = [_keras_conv(kernel[:half]), bias[:half]]
        weights[f"{name}_b"] = [_keras_conv(kernel[half:]), bias[half:]]
    if not include_top:
        return weights
    fc6, fc6_bias = _kernel_and_bias(matched["fc6"])
    fc6 = _fc6_for_tower_flatten(fc6)
    fc7, fc7_bias = _kernel_and_bias(matched["fc7"])
    for name, kernel, bias in (("fc6", fc6, fc6_bias), ("fc7", fc7.T, fc7_bias)):
        half = kernel.shape[1] // 2
        weights[f"{name}_a"] = [kernel[:, :half], bias[:half]]
        weights[f"{name}_b"] = [kernel[:, half:], bias[half:]]
    fc8, fc8_bias = _kernel_and_bias(matched["fc8"])
    weights["predictions"] = [fc8.T, fc8_bias]
    return {name: [np.ascontiguousarray(w, np.float32) for w in ws] for name, ws in weights.items()}


def _kernel_and_bias(layer):
    bias = layer.bias if layer.bias is not None else np.zeros(layer.weights.shape[0], np.float32)
    return layer.weights, bias


def _conv1_for_rgb_input(layer, mean_rgb):
    """conv1 for RGB input minus `mean_rgb`, computing what Caffe's conv1 computes on BGR input
    minus Caffe's mean: channels reversed, the means' difference folded into the bias."""
    kernel, bias = _kernel_and_bias(layer)
    kernel_bgr = kernel.astype(np.float64)
    shift_bgr = np.asarray(mean_rgb, np.float64)[::-1] - np.asarray(CAFFE_MEAN_BGR, np.float64)
    bias = bias.astype(np.float64) + np.einsum("ochw,c->o", kernel_bgr, shift_bgr)
    return kernel[:, ::-1], bias


def _keras_conv(kernel):
    """(out, in, kh, kw) -> Keras' (kh, kw, in, out)."""
    return kernel.transpose(2, 3, 1, 0)


def _fc6_for_tower_flatten(fc6):
    """fc6 (4096, 256*6*6) reading Caffe's (C, H, W) flatten -> a (9216, 4096) kernel reading
    [tower a's (H, W, C) flatten, tower b's (H, W, C) flatten], as concat6 gives them."""
    outputs = fc6.shape[0]
    by_position = fc6.reshape(outputs, 256, POOL5_SIZE, POOL5_SIZE)
    towers = []
    for tower in range(2):
        channels = by_position[:, tower * 128 : (tower + 1) * 128]  # (out, 128, 6, 6)
        towers.append(channels.transpose(2, 3, 1, 0).reshape(-1, outputs))
    return np.concatenate(towers, axis=0)
