"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012, as a Keras functional model with the keras.applications
contract.

The two towers of the paper's figure 2 are explicit branches (`conv1_a` ... `fc7_a` and
`conv1_b` ... `fc7_b`) that read each other only at conv3, fc6, fc7 and the classifier, and
that `tower_devices` can put on two devices.

Reference:
    https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np

from keras_alexnet.imagenet import (  # preprocess_input: re-exported, the model's input
    NUM_IMAGENET_CLASSES,
    imagenet_class_index,
    preprocess_input,  # noqa: F401
)
from keras_alexnet.layers import (
    CrossTowerLocalResponseNormalization,
    LocalResponseNormalization,
    PlacedConcatenate,
    PlacedConv2D,
    PlacedDense,
    PlacedDropout,
    PlacedFlatten,
    PlacedMaxPooling2D,
)
from keras_alexnet.layers.local_response_normalization import ALPHA_CONVENTIONS, CAFFE_BIAS
from keras_alexnet.weights import IMAGENET, Weights, resolve_weights
from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS

# Paper 3.5 / figure 2: the input is 227x227x3. The paper says 224, which does not fit an
# unpadded 11x11 stride-4 conv1 giving 55x55; Caffe and every faithful port use 227.
DEFAULT_SIZE = 227
# The smallest input for which pool5 is still at least 1x1 (include_top=False only).
MIN_SIZE = 67

# Paper 3.4: overlapping max-pooling with a 3x3 window and stride 2.
POOL_SIZE = 3
POOL_STRIDE = 2

# Paper 4.2: dropout with probability 0.5 on the outputs of fc6 and fc7.
DROPOUT_RATE = 0.5

# Paper 5: weights from N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6 and fc7 ("this
# initialization accelerates the early stages of learning by providing the ReLUs with
# positive inputs"), 0 in conv1, conv3 and fc8.
INIT_STDDEV = 0.01
INITIALIZATIONS = ("paper", "he")
# For init="he": the standard deviation of mean-subtracted RGB pixels on the 0..255 scale
# (ImageNet's per-channel values are about 58, 57 and 57). He-normal weights assume
# unit-variance inputs, and plain SGD on conv1 diverges at lr=0.01 when its inputs are 58
# times larger (measured: loss NaN within the first epoch), so the "he" model first divides
# its input by this fixed number (layer `input_scaling`, no weights).
PIXEL_STDDEV = 58.0

TOWERS = ("a", "b")
POOLINGS = (None, "avg", "max")
# "paper": section 3.3's LRN (k=2) within each tower. "caffe": Caffe's bvlc_alexnet, whose
# trained weights need its LRN (k=1, alpha divided by the window size) across both towers.
LRNS = ("paper", "caffe")


def AlexNet(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor=None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = NUM_IMAGENET_CLASSES,
    classifier_activation="softmax",
    name: str = "alexnet",
    *,
    tower_devices: Sequence[str] | None = None,
    dropout_rate: float = DROPOUT_RATE,
    lrn: str | None = None,
    lrn_alpha_convention: str | None = None,
    init: str = "paper",
) -> keras.Model:
    """Builds the paper's AlexNet as a Keras functional model.

    The model starts from the paper's random initialisation, from the trained ImageNet weights
    (`weights="imagenet"`: Caffe's bvlc_alexnet, downloaded once into the Keras cache; see
    `keras_alexnet.IMAGENET_WEIGHTS`), from a weights file you trained, or from Caffe's
    `bvlc_alexnet.caffemodel` (or its ONNX form) that you bring (docs/weights.md).

    Args:
        include_top: whether to include fc6, fc7 and the classifier. Then the input must be
            227x227x3.
        weights: `None` (random initialisation); `"imagenet"`: the trained weights of
            `IMAGENET_WEIGHTS` (Caffe's bvlc_alexnet), which builds `lrn="caffe"` and takes
            them from the Keras cache (`$KERAS_HOME/models`), downloading, checking and
            converting them on first use; with `include_top=True`, `classes` must be 1000. Or
            the path to a `.weights.h5` or `.keras`
            file saved from an AlexNet with the same arguments; or the path to Caffe's
            `bvlc_alexnet.caffemodel` (either of Caffe's file forms) or its ONNX form
            (`.onnx`, needs `pip install onnx`), which builds `lrn="caffe"` and loads the
            trained weights exactly, for RGB input through `preprocess_input` like every
            model here. With `include_top=False`, a file from the full model also loads (its
            top is ignored).
        input_tensor: optional Keras tensor (from `keras.Input()` or a layer's output) to use
            as the model's input.
        input_shape: optional `(height, width, channels)`. Must be `(227, 227, channels)`
            with `include_top=True`; otherwise at least 67x67, or `None` for any size.
            Channels are 3 (RGB) for `preprocess_input` and for every weights file of
            3-channel images; with `weights=None` any number of channels builds. With
            Caffe's weights and `include_top=False`, sizes other than 227 may give other
            pool sizes than Caffe's (Caffe rounds pooling output sizes up, Keras down).
        pooling: with `include_top=False`: `None` for the 4D pool5 output (6x6x256 at
            227x227), `"avg"` or `"max"` for global pooling to a 256-vector.
        classes: number of classes of the classifier, with `include_top=True`.
        classifier_activation: activation of the `predictions` layer: `"softmax"` (default),
            any Keras activation, or `None` for logits. `predictions` always computes in
            float32, also under a mixed-precision policy.
        name: the model's name.
        tower_devices: `None`, or two device strings `(device_a, device_b)`: every layer of
            tower a (`conv1_a` ... `dropout7_a`, including the concatenations through which it
            reads tower b) runs on `device_a`, tower b on `device_b`, as the paper split the
            net over two GPUs. With `None`, both towers run wherever the model runs.
        dropout_rate: dropout after fc6 and fc7 (paper 4.2: 0.5); active in training only.
        lrn: `"paper"` (section 3.3: k=2, n=5, alpha=1e-4, beta=0.75, within each tower) or
            `"caffe"` (Caffe's bvlc_alexnet: k=1 and alpha/5, across the channels of both
            towers; layers `CrossTowerLocalResponseNormalization`, which read the two edge
            channels of the other tower, so placed towers exchange those channels at norm1
            and norm2). `None`: "caffe" for a `.caffemodel`/`.onnx` file, else "paper". Build
            `lrn="caffe"` with `weights=None` to fine-tune the Caffe variant from scratch.
        lrn_alpha_convention: with `lrn="paper"`: `"paper"` (alpha=1e-4 as the paper writes
            it, the default) or `"caffe"` (alpha divided by the window size 5, as Caffe and
            cuda-convnet define it). See `keras_alexnet.layers.LocalResponseNormalization`.
        init: `"paper"`: weights N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7 and 0
            elsewhere (paper 5). `"he"`: He-normal weights, zero biases, and a fixed
            `input_scaling` layer dividing the (mean-subtracted 0..255) input by 58, so that
            conv1 sees unit-variance inputs as He's scaling assumes. On small datasets and
            short runs the paper's initialisation can sit at chance: on the embedded
            alexnet_shapes set (SGD lr 0.01, momentum 0.9, batch 32) it stayed at 10%
            validation accuracy for 5 epochs, while "he" reached 27% after 5 and 56% after 7.
            Same inputs; a weights file only loads into a model with the same `init`.

    Returns:
        A `keras.Model`.

    Example:

    >>> model = keras_alexnet.AlexNet(classes=10)
    >>> model.output_shape
    (None, 10)
    """
    input_shape, resolved = _validate_arguments(
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
        tower_devices=tower_devices,
        dropout_rate=dropout_rate,
        lrn=lrn,
        lrn_alpha_convention=lrn_alpha_convention,
        init=init,
    )
    lrn = lrn or resolved.lrn or "paper"
    device = dict(zip(TOWERS, tower_devices or (None, None), strict=True))
    ones, zeros = ("zeros", "zeros") if init == "he" else ("ones", "zeros")

    def kernel_init():
        # A new initializer for every layer: one shared instance with a fixed seed would
        # draw the same values for both towers.
        if init == "he":
            return keras.initializers.HeNormal()
        return keras.initializers.RandomNormal(mean=0.0, stddev=INIT_STDDEV)

    img_input = (
        input_tensor if input_tensor is not None else keras.Input(input_shape, name="images")
    )

    def conv(filters, size, bias, block, tower, strides=1, padding="same"):
        return PlacedConv2D(
            filters,
            size,
            strides=strides,
            padding=padding,
            activation="relu",
            kernel_initializer=kernel_init(),
            bias_initializer=bias,
            name=f"conv{block}_{tower}",
            device=device[tower],
        )

    def pool(block, tower):
        return PlacedMaxPooling2D(
            POOL_SIZE, strides=POOL_STRIDE, name=f"pool{block}_{tower}", device=device[tower]
        )

    def norm(block, x):
        """Block `block`'s LRN for each tower, over its own channels or (Caffe) both towers'."""
        if lrn == "paper":
            return {
                t: LocalResponseNormalization(
                    alpha_convention=lrn_alpha_convention or "paper",
                    name=f"norm{block}_{t}",
                    device=device[t],
                )(x[t])
                for t in TOWERS
            }
        return {
            t: CrossTowerLocalResponseNormalization(
                position,
                bias=CAFFE_BIAS,
                alpha_convention="caffe",
                name=f"norm{block}_{t}",
                device=device[t],
            )([x[t], x[other]])
            for t, other, position in (("a", "b", "first"), ("b", "a", "second"))
        }

    def dense(block, tower):
        return PlacedDense(
            2048,  # Paper 3.5: 4096 neurons in fc6 and fc7, 2048 per tower.
            activation="relu",
            kernel_initializer=kernel_init(),
            bias_initializer=ones,
            name=f"fc{block}_{tower}",
            device=device[tower],
        )

    def dropout(block, tower):
        return PlacedDropout(dropout_rate, name=f"dropout{block}_{tower}", device=device[tower])

    def both(block, tower, tensors):
        # A tower reads the other tower's activations: concatenated on its own device.
        return PlacedConcatenate(name=f"concat{block}_{tower}", device=device[tower])(tensors)

    x = img_input
    if init == "he":
        x = keras.layers.Rescaling(1.0 / PIXEL_STDDEV, name="input_scaling")(x)

    # Block 1: 96 kernels of 11x11x3, stride 4, no padding, 48 per tower (paper 3.5).
    x = {t: conv(48, 11, zeros, 1, t, strides=4, padding="valid")(x) for t in TOWERS}
    x = norm(1, x)  # (B, 55, 55, 48) each
    x = {t: pool(1, t)(x[t]) for t in TOWERS}  # (B, 27, 27, 48)

    # Block 2: 256 kernels of 5x5x48, each tower reads only its own block 1.
    x = {t: conv(128, 5, ones, 2, t)(x[t]) for t in TOWERS}
    x = norm(2, x)  # (B, 27, 27, 128)
    x = {t: pool(2, t)(x[t]) for t in TOWERS}  # (B, 13, 13, 128)

    # Block 3: 384 kernels of 3x3x256, each reading both towers.
    x = {t: both(3, t, [x["a"], x["b"]]) for t in TOWERS}  # (B, 13, 13, 256)
    x = {t: conv(192, 3, zeros, 3, t)(x[t]) for t in TOWERS}  # (B, 13, 13, 192)

    # Block 4: 384 kernels of 3x3x192, own tower only.
    x = {t: conv(192, 3, ones, 4, t)(x[t]) for t in TOWERS}  # (B, 13, 13, 192)

    # Block 5: 256 kernels of 3x3x192, own tower only.
    x = {t: conv(128, 3, ones, 5, t)(x[t]) for t in TOWERS}
    x = {t: pool(5, t)(x[t]) for t in TOWERS}  # (B, 6, 6, 128)

    if include_top:
        # Block 6: each tower's 2048 neurons read both towers' pool5.
        x = {t: PlacedFlatten(name=f"flatten_{t}", device=device[t])(x[t]) for t in TOWERS}
        x = {t: both(6, t, [x["a"], x["b"]]) for t in TOWERS}  # (B, 9216)
        x = {t: dense(6, t)(x[t]) for t in TOWERS}
        x = {t: dropout(6, t)(x[t]) for t in TOWERS}

        # Block 7: each tower's 2048 neurons read both towers' fc6.
        x = {t: both(7, t, [x["a"], x["b"]]) for t in TOWERS}  # (B, 4096)
        x = {t: dense(7, t)(x[t]) for t in TOWERS}
        x = {t: dropout(7, t)(x[t]) for t in TOWERS}

        # Block 8: the classifier reads both towers' fc7, the 4096-d image features.
        x = keras.layers.Concatenate(name="concat8")([x["a"], x["b"]])  # (B, 4096)
        x = keras.layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=kernel_init(),
            bias_initializer=zeros,
            dtype="float32",
            name="predictions",
        )(x)
    else:
        x = keras.layers.Concatenate(name="concat5")([x["a"], x["b"]])  # (B, 6, 6, 256)
        if pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)

    inputs = img_input
    if input_tensor is not None:
        sources = keras.utils.get_source_inputs(input_tensor)
        inputs = sources[0] if len(sources) == 1 else sources
    model = keras.Model(inputs, x, name=name)

    resolved.load_into(
        model,
        include_top,
        full_model=lambda: AlexNet(
            classes=IMAGENET_WEIGHTS.num_classes, **IMAGENET_WEIGHTS.variant
        ),
    )
    return model


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _validate_input_shape(input_shape, include_top, source="input_shape", channels=None):
    """Returns the input shape to build with, after checking it as keras.applications does:
    any channel count without weights, `channels` with a weights file (3 unless known)."""
    if input_shape is None:
        return (DEFAULT_SIZE, DEFAULT_SIZE, 3) if include_top else (None, None, 3)
    try:
        shape = tuple(None if d is None else d for d in input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(d is None or _is_int(d) for d in shape):
        raise ValueError(
            f"`{source}` must be a tuple of three integers (height, width, channels). "
            f"Received: {source}={input_shape!r}"
        )
    shape = tuple(None if d is None else int(d) for d in shape)
    if shape[-1] is None or shape[-1] < 1:
        raise ValueError(
            "The number of channels (channels last) must be a positive integer, 3 for RGB. "
            f"Received: {source}={shape}"
        )
    if channels is not None and shape[-1] != channels:
        raise ValueError(
            f"The input must have {channels} channels (RGB, channels last) for the weights "
            f"file, which was trained on colour images. Received: {source}={shape}"
        )
    if include_top and shape[:2] != (DEFAULT_SIZE, DEFAULT_SIZE):
        raise ValueError(
            f"With `include_top=True` the input must be ({DEFAULT_SIZE}, {DEFAULT_SIZE}, "
            f"{shape[-1]}): fc6 reads a 6x6x256 pool5. Received: {source}={shape}. Resize or crop "
            f"the images to {DEFAULT_SIZE}x{DEFAULT_SIZE}, or use include_top=False."
        )
    if any(d is not None and d < MIN_SIZE for d in shape[:2]):
        raise ValueError(
            f"Input size must be at least {MIN_SIZE}x{MIN_SIZE} (smaller inputs vanish before "
            f"pool5). Received: {source}={shape}"
        )
    return shape


def _validate_arguments(
    *,
    include_top,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    name,
    tower_devices,
    dropout_rate,
    lrn,
    lrn_alpha_convention,
    init,
) -> tuple[tuple, Weights]:
    """Checks every argument before anything is built; returns the input shape to use and
    the resolved weights."""
    if not isinstance(include_top, bool):
        raise ValueError(
            f"`include_top` must be True or False. Received: include_top={include_top!r}"
        )
    resolved = resolve_weights(weights)
    _validate_lrn(lrn, lrn_alpha_convention, init)
    resolved.check_model(lrn, init)
    _validate_alpha_convention(lrn or resolved.lrn, lrn_alpha_convention)
    if not _is_int(classes) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if resolved.kind == IMAGENET and include_top and classes != IMAGENET_WEIGHTS.num_classes:
        raise ValueError(
            'If using `weights="imagenet"` with `include_top=True`, `classes` should be '
            f"{IMAGENET_WEIGHTS.num_classes}. Received: classes={classes}. For other classes, "
            "build with include_top=False and add a new top, or fine-tune with "
            "`alexnet-train --weights=imagenet` (docs/training.md, Fine-tuning)."
        )
    if pooling not in POOLINGS:
        raise ValueError(
            f"`pooling` must be one of None, 'avg' or 'max'. Received: pooling={pooling!r}"
        )
    if classifier_activation is not None:
        try:
            keras.activations.get(classifier_activation)
        except (ValueError, TypeError):
            raise ValueError(
                "`classifier_activation` must be None (logits), a Keras activation name such "
                "as 'softmax', or a callable. Received: "
                f"classifier_activation={classifier_activation!r}"
            ) from None
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    if tower_devices is not None:
        if (
            isinstance(tower_devices, str)
            or not isinstance(tower_devices, Sequence)
            or len(tower_devices) != 2
            or not all(isinstance(d, str) and d for d in tower_devices)
        ):
            raise ValueError(
                "`tower_devices` must be None or two device strings (device_a, device_b), for "
                f"example ('/GPU:0', '/GPU:1'). Received: tower_devices={tower_devices!r}"
            )
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "`tower_devices` places the towers with tf.device and needs Keras' TensorFlow "
                f"backend; the backend is {keras.backend.backend()!r}. Leave tower_devices=None "
                "(under JAX, keras.distribution spreads a model over devices), or set "
                f"KERAS_BACKEND=tensorflow. Received: tower_devices={tower_devices!r}"
            )
    if (
        isinstance(dropout_rate, bool)
        or not isinstance(dropout_rate, (int, float))
        or not 0 <= dropout_rate < 1
    ):
        raise ValueError(
            "`dropout_rate` must be a number in [0, 1) (the paper uses 0.5). Received: "
            f"dropout_rate={dropout_rate!r}"
        )

    source = "input_shape"
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                "`input_tensor` must be a Keras tensor (from `keras.Input()` or a layer's "
                f"output). Received: input_tensor={input_tensor!r}"
            )
        if input_shape is None:
            input_shape = tuple(input_tensor.shape)[1:]
            source = "input_tensor.shape[1:]"
    return _validate_input_shape(input_shape, include_top, source, resolved.channels), resolved


def _validate_lrn(lrn, lrn_alpha_convention, init):
    if lrn is not None and lrn not in LRNS:
        raise ValueError(f"`lrn` must be None or one of {LRNS}. Received: lrn={lrn!r}")
    if lrn_alpha_convention is not None and lrn_alpha_convention not in ALPHA_CONVENTIONS:
        raise ValueError(
            f"`lrn_alpha_convention` must be one of {ALPHA_CONVENTIONS}. Received: "
            f"lrn_alpha_convention={lrn_alpha_convention!r}"
        )
    if init not in INITIALIZATIONS:
        raise ValueError(f"`init` must be one of {INITIALIZATIONS}. Received: init={init!r}")


def _validate_alpha_convention(lrn, lrn_alpha_convention):
    """`lrn` is the LRN the model gets: the argument, or the one its weights need."""
    if lrn == "caffe" and lrn_alpha_convention == "paper":
        raise ValueError(
            "lrn='caffe' always divides alpha by the window size (Caffe's convention); "
            "lrn_alpha_convention applies to lrn='paper' only. Received: "
            "lrn_alpha_convention='paper'"
        )


def decode_predictions(preds, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Names the top ImageNet classes of a batch of predictions, offline.

    Args:
        preds: `(batch, 1000)` probabilities or logits, NumPy or tensor.
        top: how many classes to return per image.

    Returns:
        One list per image of `(synset_id, class_name, score)` tuples, best first.

    Example:

    >>> decode_predictions(np.eye(1000)[[1]], top=1)
    [[('n01443537', 'goldfish', 1.0)]]
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_IMAGENET_CLASSES:
        raise ValueError(
            "`decode_predictions` expects a batch of ImageNet predictions, shape (samples, "
            f"{NUM_IMAGENET_CLASSES}). Received shape {preds.shape}"
        )
    if not _is_int(top) or not 1 <= top <= NUM_IMAGENET_CLASSES:
        raise ValueError(f"`top` must be an integer in [1, 1000]. Received: top={top!r}")
    index = imagenet_class_index()
    results = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(index[i][0], index[i][1], float(row[i])) for i in best])
    return results


def feature_extractor(model: keras.Model) -> keras.Model:
    """A model that maps images to the 4096-d fc7 features of `model` (paper 6.1).

    The features are fc7's ReLU outputs of both towers, concatenated (layer `concat8`, the
    classifier's input). Paper 6.1: images whose feature vectors are close in Euclidean
    distance are similar. The new model shares `model`'s weights.

    Args:
        model: an AlexNet built with `include_top=True`.

    Returns:
        A `keras.Model` from the same inputs to `(batch, 4096)` features.

    Example:

    >>> features = feature_extractor(AlexNet(classes=10))(images)  # (batch, 4096)
    """
    try:
        features = model.get_layer("concat8").output
    except ValueError:
        raise ValueError(
            f"feature_extractor needs an AlexNet built with include_top=True (it reads the fc7 "
            f"features at layer 'concat8'); model {model.name!r} has no such layer."
        ) from None
    return keras.Model(model.input, features, name=f"{model.name}_fc7_features")
