"""Local response normalisation across channels (paper, section 3.3).

Under Keras' TensorFlow backend the layer is `tf.nn.local_response_normalization` (with the
faster CPU gradient of `tensorflow_lrn`); under JAX and PyTorch it is the same formula in
`keras.ops` (`lrn_in_keras_ops`), so the model builds, trains and loads the same weights on
every Keras 3 backend. The two agree to float32 rounding (tests/backends_test.py).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_alexnet.layers.device_placement import DevicePlacement

# Paper 3.3: k=2, n=5, alpha=1e-4, beta=0.75. In tf.nn.local_response_normalization terms
# n=5 is depth_radius=2 (two neighbours each side) and k is `bias`.
PAPER_DEPTH_RADIUS = 2
PAPER_BIAS = 2.0
PAPER_ALPHA = 1e-4
PAPER_BETA = 0.75
# Caffe's bvlc_alexnet (the trained weights users bring, see keras_alexnet.pretrained) leaves
# its LRN's k unset: Caffe's default, 1. Its size, alpha and beta are the paper's, with alpha
# divided by the window size (alpha_convention="caffe").
CAFFE_BIAS = 1.0

ALPHA_CONVENTIONS = ("paper", "caffe")


def lrn_in_keras_ops(x, depth_radius, bias, alpha, beta):
    """`tf.nn.local_response_normalization`'s formula in `keras.ops`, for any backend:

        y_i = x_i / (bias + alpha * sum_{j = i - depth_radius}^{i + depth_radius} x_j^2) ** beta

    over the last axis, the window clipped at the edges. The window sum adds `2 *
    depth_radius + 1` shifted copies of the zero-padded squares; it computes in `x`'s dtype
    and its gradient is the backend's own automatic one.
    """
    squares = ops.square(x)
    channels = x.shape[-1]
    padded = ops.pad(squares, [[0, 0]] * (len(x.shape) - 1) + [[depth_radius, depth_radius]])
    window = padded[..., 0:channels]
    for offset in range(1, 2 * depth_radius + 1):
        window = window + padded[..., offset : offset + channels]
    return x * ops.power(bias + alpha * window, -beta)


def _lrn_kernel():
    """The LRN function of the current backend: TensorFlow's op, or `lrn_in_keras_ops`."""
    if keras.backend.backend() == "tensorflow":
        from keras_alexnet.layers import tensorflow_lrn

        return tensorflow_lrn.local_response_normalization
    return lambda x, name=None, **kwargs: lrn_in_keras_ops(x, **kwargs)


@keras.saving.register_keras_serializable(package="keras_alexnet")
class LocalResponseNormalization(DevicePlacement, keras.layers.Layer):
    """Brightness normalisation across adjacent channels, as in AlexNet.

    Computes `b = a / (k + alpha * sum_{j in window} a_j^2) ** beta` over a window of
    `n = 2 * depth_radius + 1` channels centred on each channel (clipped at the edges), with
    `tf.nn.local_response_normalization` under TensorFlow and the same formula in `keras.ops`
    under JAX and PyTorch. The computation always runs in float32, so under a
    `mixed_float16`/`mixed_bfloat16` policy the squares and the power neither overflow nor lose
    precision; the result is cast back to the input's dtype.

    Args:
        depth_radius: half-width of the channel window; the paper's n=5 is `depth_radius=2`.
        bias: the paper's k.
        alpha: the scale of the sum of squares.
        beta: the exponent.
        alpha_convention: `"paper"` uses `alpha` as the paper writes it (and as TensorFlow
            does). `"caffe"` follows Caffe and cuda-convnet, whose `alpha` is divided by the
            window size n: their `alpha=1e-4` is `1e-4 / 5 = 2e-5` here.
        device: optional device string; when set, the layer's ops run on that device.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> norm = LocalResponseNormalization(name="norm1_a")
    >>> norm(np.ones((1, 55, 55, 48))).shape
    (1, 55, 55, 48)
    """

    def __init__(
        self,
        depth_radius: int = PAPER_DEPTH_RADIUS,
        bias: float = PAPER_BIAS,
        alpha: float = PAPER_ALPHA,
        beta: float = PAPER_BETA,
        alpha_convention: str = "paper",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(depth_radius, bool) or not isinstance(depth_radius, int) or depth_radius < 0:
            raise ValueError(
                f"depth_radius must be a non-negative integer (the paper's n=5 is "
                f"depth_radius=2); received depth_radius={depth_radius!r}."
            )
        if alpha_convention not in ALPHA_CONVENTIONS:
            raise ValueError(
                f"alpha_convention must be one of {ALPHA_CONVENTIONS}: 'paper' uses alpha as "
                f"written, 'caffe' divides it by the window size 2*depth_radius+1; received "
                f"alpha_convention={alpha_convention!r}."
            )
        for arg_name, value in (("bias", bias), ("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{arg_name} must be a number; received {arg_name}={value!r}.")
        self.depth_radius = depth_radius
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.alpha_convention = alpha_convention
        self.supports_masking = True

    @property
    def effective_alpha(self) -> float:
        """The alpha handed to TensorFlow, after the chosen convention."""
        if self.alpha_convention == "caffe":
            return self.alpha / (2 * self.depth_radius + 1)
        return self.alpha

    def call(self, inputs):
        return self._normalize(inputs)

    def _normalize(self, inputs):
        # LRN needs float32: squares of activations overflow float16 and the power loses
        # precision in bfloat16. Compute in float32 whatever the policy, hand back the input
        # dtype so the next layer sees what the policy promises.
        outputs = _lrn_kernel()(
            ops.cast(inputs, "float32"),
            depth_radius=self.depth_radius,
            bias=self.bias,
            alpha=self.effective_alpha,
            beta=self.beta,
            name=self.name,
        )
        return ops.cast(outputs, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth_radius": self.depth_radius,
                "bias": self.bias,
                "alpha": self.alpha,
                "beta": self.beta,
                "alpha_convention": self.alpha_convention,
            }
        )
        return config


TOWER_POSITIONS = ("first", "second")


@keras.saving.register_keras_serializable(package="keras_alexnet")
class CrossTowerLocalResponseNormalization(LocalResponseNormalization):
    """LRN across the channels of both towers, computed for one tower: Caffe's AlexNet.

    Caffe normalises conv1's 96 (conv2's 256) channels as one stack, so the window of a
    channel at a tower's edge reaches into the other tower (channels 46-49 of conv1). This
    layer takes `[own, other]` and returns the normalised `own` channels, exactly as if both
    towers had been concatenated (`own` first when `position="first"`), normalised, and split
    again. It reads only the `depth_radius` channels of `other` next to `own`: placed on two
    devices, each tower copies 2 channels of the other's activations here, where the paper's
    towers exchange nothing.

    Args:
        position: `"first"` (tower a: its channels come first in the stack) or `"second"`.
        **kwargs: as `LocalResponseNormalization`.

    Example:

    >>> norm = CrossTowerLocalResponseNormalization("first", bias=1.0, alpha_convention="caffe")
    >>> norm([np.ones((1, 55, 55, 48)), np.ones((1, 55, 55, 48))]).shape
    (1, 55, 55, 48)
    """

    def __init__(self, position: str = "first", **kwargs):
        super().__init__(**kwargs)
        if position not in TOWER_POSITIONS:
            raise ValueError(
                f"position must be one of {TOWER_POSITIONS}; received position={position!r}."
            )
        self.position = position

    def call(self, inputs):
        own, other = inputs
        radius = self.depth_radius
        if radius == 0:
            return self._normalize(own)
        channels = own.shape[-1]
        if self.position == "first":
            stack = ops.concatenate([own, other[..., :radius]], axis=-1)
            return self._normalize(stack)[..., :channels]
        stack = ops.concatenate([other[..., -radius:], own], axis=-1)
        return self._normalize(stack)[..., radius:]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config["position"] = self.position
        return config
