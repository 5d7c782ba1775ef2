"""LocalResponseNormalization against a NumPy implementation of the paper's formula."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import AlexNet
from keras_alexnet.layers import LocalResponseNormalization


def numpy_lrn(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    """Paper 3.3, written out: b_i = a_i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)}
    a_j^2) ** beta, over the last axis, in float64."""
    a = np.asarray(a, dtype=np.float64)
    channels = a.shape[-1]
    out = np.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        total = np.sum(a[..., lo : hi + 1] ** 2, axis=-1)
        out[..., i] = a[..., i] / (k + alpha * total) ** beta
    return out


@pytest.fixture
def activations():
    # ReLU-like activations large enough that alpha * sum(a^2) is comparable to k=2.
    return np.random.default_rng(1).uniform(0, 120, (2, 5, 4, 12)).astype("float32")


def test_paper_convention_matches_numpy_formula(activations):
    layer = LocalResponseNormalization()
    expected = numpy_lrn(activations, k=2.0, n=5, alpha=1e-4, beta=0.75)
    np.testing.assert_allclose(layer(activations).numpy(), expected, rtol=1e-5)
    # Not the identity: the normalisation is strong on these inputs.
    assert np.max(np.abs(expected - activations)) > 10


def test_caffe_convention_divides_alpha_by_window(activations):
    layer = LocalResponseNormalization(alpha_convention="caffe")
    assert layer.effective_alpha == pytest.approx(2e-5)
    expected = numpy_lrn(activations, alpha=1e-4 / 5)
    np.testing.assert_allclose(layer(activations).numpy(), expected, rtol=1e-5)
    paper = numpy_lrn(activations, alpha=1e-4)
    assert np.max(np.abs(expected - paper)) > 1


def test_other_constants_are_used(activations):
    layer = LocalResponseNormalization(depth_radius=1, bias=1.0, alpha=3e-4, beta=0.5)
    expected = numpy_lrn(activations, k=1.0, n=3, alpha=3e-4, beta=0.5)
    np.testing.assert_allclose(layer(activations).numpy(), expected, rtol=1e-5)


def test_same_result_inside_tf_function_and_tf_data(activations):
    layer = LocalResponseNormalization()
    eager = layer(activations).numpy()
    traced = tf.function(layer)(tf.constant(activations)).numpy()
    mapped = next(iter(tf.data.Dataset.from_tensors(activations).map(layer))).numpy()
    np.testing.assert_allclose(traced, eager, rtol=1e-6)
    np.testing.assert_allclose(mapped, eager, rtol=1e-6)


def test_towers_normalise_only_within_their_own_channels():
    """norm1 of the model runs per tower: channel 47 of tower a never sees tower b."""
    model = AlexNet(include_top=False, input_shape=(67, 67, 3))
    for tower in "ab":  # large activations, so that neighbouring channels matter
        kernel = model.get_layer(f"conv1_{tower}").kernel
        kernel.assign(kernel * 10.0)
    probe = keras.Model(
        model.input,
        [model.get_layer(n).output for n in ("conv1_a", "conv1_b", "norm1_a", "norm1_b")],
    )
    image = np.random.default_rng(2).uniform(0, 255, (1, 67, 67, 3)).astype("float32")
    conv_a, conv_b, norm_a, norm_b = [t.numpy() for t in probe(image)]
    np.testing.assert_allclose(norm_a, numpy_lrn(conv_a), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm_b, numpy_lrn(conv_b), rtol=1e-4, atol=1e-5)
    # An LRN across all 96 channels would differ at the boundary (channels 46..49).
    joint = numpy_lrn(np.concatenate([conv_a, conv_b], axis=-1))
    boundary = np.concatenate([norm_a, norm_b], axis=-1)[..., 46:50]
    assert np.max(np.abs(joint[..., 46:50] - boundary)) > 1e-3
    np.testing.assert_allclose(joint[..., 10:40], norm_a[..., 10:40], rtol=1e-4, atol=1e-5)


def numpy_lrn_gradient(a, upstream, **constants):
    """d sum(upstream * numpy_lrn(a)) / da by central differences in float64: independent of
    any gradient formula."""
    a = np.asarray(a, dtype=np.float64)
    grad = np.empty_like(a)
    step = 1e-3
    for index in np.ndindex(a.shape):
        plus, minus = a.copy(), a.copy()
        plus[index] += step
        minus[index] -= step
        delta = numpy_lrn(plus, **constants) - numpy_lrn(minus, **constants)
        grad[index] = np.sum(upstream * delta) / (2 * step)
    return grad


def _layer_gradient(layer, a, upstream):
    x = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.cast(layer(x), tf.float32) * upstream)
    return tape.gradient(loss, x).numpy()


@pytest.mark.parametrize(
    "kwargs, constants",
    [
        ({}, {}),
        ({"alpha_convention": "caffe"}, {"alpha": 2e-5}),
        (
            {"depth_radius": 1, "bias": 1.0, "alpha": 3e-4, "beta": 0.5},
            {"k": 1.0, "n": 3, "alpha": 3e-4, "beta": 0.5},
        ),
        ({"depth_radius": 9, "alpha": 1e-3, "beta": 0.6}, {"n": 19, "alpha": 1e-3, "beta": 0.6}),
    ],
)
def test_gradient_matches_finite_differences_and_tensorflow(kwargs, constants):
    """The layer's own gradient (whole-tensor ops, not TensorFlow's LRNGrad) against central
    differences of the NumPy formula and against LRNGrad itself; the last case has a window
    wider than the 12 channels."""
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 120, (2, 3, 2, 12)).astype("float32")
    upstream = rng.standard_normal(a.shape).astype("float32")
    layer = LocalResponseNormalization(**kwargs)
    grad = _layer_gradient(layer, a, upstream)
    expected = numpy_lrn_gradient(a, upstream, **constants)
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())
    # Not the gradient of the identity, nor the first term alone: the cross term matters.
    assert np.max(np.abs(expected - upstream)) > 0.1
    native = tf.raw_ops.LRNGrad(
        input_grads=upstream,
        input_image=a,
        output_image=layer(a),
        depth_radius=layer.depth_radius,
        bias=layer.bias,
        alpha=layer.effective_alpha,
        beta=layer.beta,
    ).numpy()
    np.testing.assert_allclose(grad, native, rtol=1e-5, atol=1e-6 * np.abs(native).max())


def test_gradient_in_a_placed_layer_inside_tf_function():
    """The custom gradient also holds when the layer has a device (its own tape) and in a
    traced function with an unknown batch size."""
    rng = np.random.default_rng(4)
    a = rng.uniform(0, 120, (3, 4, 4, 48)).astype("float32")
    upstream = rng.standard_normal(a.shape).astype("float32")
    layer = LocalResponseNormalization(device="/CPU:0")

    @tf.function(input_signature=[tf.TensorSpec((None, 4, 4, 48), tf.float32)])
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * upstream)
        return tape.gradient(loss, x)

    native = tf.raw_ops.LRNGrad(
        input_grads=upstream,
        input_image=a,
        output_image=layer(a),
        depth_radius=2,
        bias=2.0,
        alpha=1e-4,
        beta=0.75,
    ).numpy()
    np.testing.assert_allclose(
        gradient(a).numpy(), native, rtol=1e-5, atol=1e-6 * np.abs(native).max()
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_computes_in_float32_under_mixed_precision(policy, activations, monkeypatch):
    seen = []
    real_lrn = tf.nn.local_response_normalization

    def spy(x, **kwargs):
        seen.append(x.dtype)
        return real_lrn(x, **kwargs)

    monkeypatch.setattr(tf.nn, "local_response_normalization", spy)
    keras.config.set_dtype_policy(policy)
    layer = LocalResponseNormalization()
    out = layer(activations)
    assert seen == [tf.float32]
    assert out.dtype == layer.compute_dtype
    assert layer.compute_dtype in ("float16", "bfloat16")
    low = tf.cast(activations, layer.compute_dtype)
    expected = numpy_lrn(tf.cast(low, tf.float32).numpy())
    tol = 1e-2 if policy == "mixed_bfloat16" else 2e-3
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), expected, rtol=tol)


def test_config_round_trip_and_serialization():
    layer = LocalResponseNormalization(
        depth_radius=3, bias=1.5, alpha=2e-4, beta=0.7, alpha_convention="caffe", name="n"
    )
    clone = LocalResponseNormalization.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, LocalResponseNormalization)
    assert restored.get_config() == layer.get_config()
    assert layer.compute_output_shape((None, 3, 3, 8)) == (None, 3, 3, 8)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha_convention": "cuda"}, "alpha_convention=.cuda."),
        ({"depth_radius": 2.5}, "depth_radius=2.5"),
        ({"depth_radius": -1}, "depth_radius=-1"),
        ({"alpha": "big"}, "alpha=.big."),
        ({"beta": None}, "beta=None"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalResponseNormalization(**kwargs)


@pytest.mark.parametrize("gpu", [False, True])
def test_tensorflows_own_gradient_is_kept_where_a_gpu_is_visible(gpu, monkeypatch):
    """CPU-only: the whole-tensor gradient (no LRNGrad op in the graph); with a GPU visible,
    TensorFlow's LRNGrad (cuDNN's fused kernel there)."""
    real = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: ["fake GPU"] if gpu and kind == "GPU" else real(kind),
    )
    layer = LocalResponseNormalization()

    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, x)

    graph = gradient.get_concrete_function(tf.TensorSpec((1, 3, 3, 8), tf.float32)).graph
    op_types = {op.type for op in graph.get_operations()}
    assert ("LRNGrad" in op_types) == gpu
    assert "LRN" in op_types


@pytest.mark.parametrize("devices", [None, ("/CPU:0", "/CPU:0")])
def test_cross_tower_lrn_is_one_lrn_over_both_towers(devices):
    """Caffe's LRN: the two towers' channels normalised as one stack (k=1, alpha/5), each
    tower's layer returning its own half; gradients too, also with the towers placed."""
    from keras_alexnet.layers import CrossTowerLocalResponseNormalization

    rng = np.random.default_rng(3)
    a = rng.uniform(0, 300, (2, 3, 3, 6)).astype("float32")
    b = rng.uniform(0, 300, (2, 3, 3, 6)).astype("float32")
    expected = numpy_lrn(np.concatenate([a, b], axis=-1), k=1.0, alpha=1e-4 / 5)
    layers = {
        position: CrossTowerLocalResponseNormalization(
            position, bias=1.0, alpha_convention="caffe", device=device
        )
        for position, device in zip(("first", "second"), devices or (None, None), strict=True)
    }
    np.testing.assert_allclose(layers["first"]([a, b]), expected[..., :6], rtol=1e-5)
    np.testing.assert_allclose(layers["second"]([b, a]), expected[..., 6:], rtol=1e-5)
    # The window crosses the boundary: channel 5 of tower a differs from a per-tower LRN.
    per_tower = numpy_lrn(a, k=1.0, alpha=1e-4 / 5)
    assert not np.allclose(expected[..., 5], per_tower[..., 5], rtol=1e-3)

    x = tf.constant(np.concatenate([a, b], axis=-1))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        first = layers["first"]([x[..., :6], x[..., 6:]])
        split = first, layers["second"]([x[..., 6:], x[..., :6]])
        whole = tf.nn.local_response_normalization(x, 2, bias=1.0, alpha=1e-4 / 5, beta=0.75)
        weights = tf.constant(rng.standard_normal(x.shape), tf.float32)
        loss_split = tf.reduce_sum(tf.concat(split, axis=-1) * weights)
        loss_whole = tf.reduce_sum(whole * weights)
    np.testing.assert_allclose(
        tape.gradient(loss_split, x), tape.gradient(loss_whole, x), rtol=1e-4, atol=1e-7
    )
    config = layers["second"].get_config()
    assert config["position"] == "second"
    assert type(layers["second"]).from_config(config).position == "second"
    with pytest.raises(ValueError, match=r"received position='third'"):
        CrossTowerLocalResponseNormalization("third")
