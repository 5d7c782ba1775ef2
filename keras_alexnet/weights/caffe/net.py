"""The common form of a network read from a foreign file: a list of `NetLayer`s.

The Caffe and ONNX readers each translate their file into this form (weights in Caffe's
layout, geometry in one vocabulary), and one checker (`bvlc_alexnet`) decides whether the
network is the one `AlexNet` can hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The kinds of layer the checker knows. `other` is anything else; its `attrs["type"]` says
# what the file called it.
CONV, RELU, LRN, POOL, FC = "conv", "relu", "lrn", "pool", "fc"
# Layers that pass their input on unchanged at inference: the checker follows through them.
DROPOUT, FLATTEN, SOFTMAX, IDENTITY = "dropout", "flatten", "softmax", "identity"
PASS_THROUGH = (DROPOUT, FLATTEN, IDENTITY)
# Layers of a training net that play no part in inference: data input, loss, accuracy.
DATA, LOSS = "data", "loss"
OTHER = "other"


@dataclass(frozen=True)
class NetLayer:
    """One layer of a foreign network.

    Attributes:
        name: the name in the file (for messages).
        kind: one of the kinds above.
        inputs, outputs: the names of the blobs (Caffe) or values (ONNX) it reads and writes.
        weights: conv `(out, in / group, kh, kw)`, fc `(out, in)`; None for other kinds.
        bias: `(out,)`, or None.
        attrs: conv: `kernel`, `stride`, `dilation` (each (h, w)), `pads` (top, left, bottom,
            right), `group`. pool: `method` ("max", "average", ...), `kernel`, `stride`,
            `pads`, `ceil` (Caffe rounds the output size up). lrn: `size`, `alpha` (as Caffe
            and ONNX write it: divided by size when applied), `beta`, `k`, `region`. other:
            `type`.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)


def output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, ceil: bool):
    """The output length of a convolution or pooling window along one axis."""
    span = size + pad_begin + pad_end - kernel
    if span < 0:
        return 0
    steps = -(-span // stride) if ceil else span // stride
    return steps + 1
