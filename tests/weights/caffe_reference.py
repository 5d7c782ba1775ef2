"""An independent NumPy reference of Caffe's bvlc_alexnet forward pass, in float64.

Written from Caffe's layer definitions, not from keras_alexnet: input BGR minus Caffe's mean,
grouped convolutions on (C, H, W) blobs, ReLU, LRN across channels `x / (k + alpha/n * sum
x^2)^beta` with k=1 over all of a layer's channels, max pooling that rounds its output size up,
fc6 reading pool5 flattened as (C, H, W).

Each of those details can be changed through `details` (see `CAFFE`), so that the tests can
show that the comparison would notice it.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Caffe's ImageNet mean, BGR: the per-channel average of ilsvrc_2012_mean.binaryproto.
MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434])

# How the tests compare a loaded model with a reference: float32 against float64 through
# eight layers (measured: about 1e-6).
TOLERANCE = 1e-4


def relative_error(actual, expected):
    """The largest absolute difference over the largest absolute reference value."""
    return float(np.abs(np.asarray(actual) - expected).max() / np.abs(expected).max())


CAFFE = {
    "bgr": True,  # reverse RGB input to BGR
    "lrn_k": 1.0,
    "alpha_over_size": True,  # Caffe divides alpha by local_size
    "cross_tower_lrn": True,  # one window over all channels of both towers
    "groups_in_order": True,  # group 0 (first half of filters) reads the first half of inputs
    "chw_flatten": True,  # fc6 reads pool5 as (C, H, W)
    "pool_before_norm": False,  # CaffeNet's order
}


def conv(x, weights, bias, stride=1, pad=0, group=1, groups_in_order=True):
    """x (C, H, W); weights (out, in/group, kh, kw)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out_channels, in_per_group, kh, kw = weights.shape
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    _, oh, ow = windows.shape[:3]
    outputs = []
    per_group = out_channels // group
    for g in range(group):
        source = g if groups_in_order else group - 1 - g
        cols = windows[source * in_per_group : (source + 1) * in_per_group]
        cols = cols.transpose(1, 2, 0, 3, 4).reshape(oh * ow, -1)
        w = weights[g * per_group : (g + 1) * per_group].reshape(per_group, -1)
        outputs.append((cols @ w.T).T.reshape(per_group, oh, ow))
    return np.concatenate(outputs) + bias[:, None, None]


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0, alpha_over_size=True):
    squares = np.pad(x**2, ((size // 2, size // 2), (0, 0), (0, 0)))
    window = sum(squares[i : i + x.shape[0]] for i in range(size))
    scale = k + (alpha / size if alpha_over_size else alpha) * window
    return x * scale**-beta


def max_pool(x, size=3, stride=2):
    """Caffe's max pooling: output size rounded up, windows clipped at the edge."""
    _, h, w = x.shape
    oh = -(-(h - size) // stride) + 1
    ow = -(-(w - size) // stride) + 1
    padded = np.pad(
        x,
        ((0, 0), (0, (oh - 1) * stride + size - h), (0, (ow - 1) * stride + size - w)),
        constant_values=-np.inf,
    )
    return sliding_window_view(padded, (size, size), axis=(1, 2))[:, ::stride, ::stride].max(
        axis=(3, 4)
    )


def forward(weights, images_rgb, details=None, include_top=True):
    """Logits (N, classes) (or pool5 (N, 256, 6, 6) without the top) of bvlc_alexnet with
    `weights` (name -> (W, b), Caffe layout) on RGB images (N, H, W, 3) in 0..255."""
    d = dict(CAFFE, **(details or {}))
    return np.stack([_one(weights, image, d, include_top) for image in images_rgb])


def _one(weights, image, d, include_top):
    x = np.asarray(image, np.float64)
    x = (x[..., ::-1] if d["bgr"] else x) - MEAN_BGR
    x = x.transpose(2, 0, 1)

    def norm(x):
        def apply(part):
            return lrn(part, k=d["lrn_k"], alpha_over_size=d["alpha_over_size"])

        if d["cross_tower_lrn"]:
            return apply(x)
        half = x.shape[0] // 2
        return np.concatenate([apply(x[:half]), apply(x[half:])])

    def block(x, name, stride, pad, group, normalise):
        w, b = (np.asarray(a, np.float64) for a in weights[name])
        x = np.maximum(conv(x, w, b, stride, pad, group, d["groups_in_order"]), 0)
        if not normalise:
            return x
        if d["pool_before_norm"]:
            return norm(max_pool(x))
        return max_pool(norm(x))

    x = block(x, "conv1", 4, 0, 1, True)
    x = block(x, "conv2", 1, 2, 2, True)
    x = block(x, "conv3", 1, 1, 1, False)
    x = block(x, "conv4", 1, 1, 2, False)
    x = max_pool(block(x, "conv5", 1, 1, 2, False))
    if not include_top:
        return x
    x = x.reshape(-1) if d["chw_flatten"] else x.transpose(1, 2, 0).reshape(-1)
    for name in ("fc6", "fc7"):
        w, b = (np.asarray(a, np.float64) for a in weights[name])
        x = np.maximum(w @ x + b, 0)
    w, b = (np.asarray(a, np.float64) for a in weights["fc8"])
    return w @ x + b
