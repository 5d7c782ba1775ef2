"""AlexNet(): the paper's architecture, the keras.applications contract, and its errors."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_alexnet
from keras_alexnet import AlexNet, decode_predictions, feature_extractor, preprocess_input
from keras_alexnet.weights import keras_file
from tests.conftest import run_python

POOLS = ("avg", "max")
TOWER_LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]


@pytest.fixture(scope="module")
def full_model():
    """The 1000-class model with the paper's initialisation, built once for this module."""
    keras.utils.set_random_seed(7)
    return AlexNet()


def test_parameter_count_is_the_papers(full_model):
    # docs/design.md: 60,965,224 parameters at 1000 classes.
    assert full_model.count_params() == 60_965_224


def test_layer_table(full_model):
    """Output shapes and kernel shapes of every tower layer, as in docs/design.md and README."""
    expected = {
        "conv1": ((None, 55, 55, 48), (11, 11, 3, 48)),
        "pool1": ((None, 27, 27, 48), None),
        "conv2": ((None, 27, 27, 128), (5, 5, 48, 128)),
        "pool2": ((None, 13, 13, 128), None),
        "conv3": ((None, 13, 13, 192), (3, 3, 256, 192)),
        "conv4": ((None, 13, 13, 192), (3, 3, 192, 192)),
        "conv5": ((None, 13, 13, 128), (3, 3, 192, 128)),
        "pool5": ((None, 6, 6, 128), None),
        "fc6": ((None, 2048), (9216, 2048)),
        "fc7": ((None, 2048), (4096, 2048)),
    }
    for name, (output_shape, kernel_shape) in expected.items():
        for tower in "ab":
            layer = full_model.get_layer(f"{name}_{tower}")
            assert layer.output.shape == output_shape, layer.name
            if kernel_shape:
                assert tuple(layer.kernel.shape) == kernel_shape, layer.name
                assert layer.activation is keras.activations.relu
    pool = full_model.get_layer("pool1_a")
    assert pool.pool_size == (3, 3) and pool.strides == (2, 2)
    assert full_model.get_layer("conv1_a").strides == (4, 4)
    assert full_model.get_layer("conv1_a").padding == "valid"
    assert full_model.get_layer("dropout6_a").rate == 0.5
    assert full_model.get_layer("predictions").output.shape == (None, 1000)
    norm = full_model.get_layer("norm1_b")
    assert (norm.depth_radius, norm.bias, norm.alpha, norm.beta) == (2, 2.0, 1e-4, 0.75)


def test_towers_are_explicit_branches_not_grouped_convolutions(full_model):
    for layer in full_model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert layer.groups == 1
    convs = [layer.name for layer in full_model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert sorted(convs) == sorted(f"{n}_{t}" for n in TOWER_LAYERS[:5] for t in "ab")


def test_paper_initialisation_statistics(full_model):
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for name in TOWER_LAYERS:
        for tower in "ab":
            layer = full_model.get_layer(f"{name}_{tower}")
            kernel = layer.kernel.numpy()
            # The standard error of the std estimate is tiny even for conv1 (17,424 weights).
            assert abs(kernel.std() - 0.01) < 0.0005, layer.name
            assert abs(kernel.mean()) < 0.0005, layer.name
            bias = layer.bias.numpy()
            np.testing.assert_array_equal(bias, 1.0 if name in ones else 0.0)
    predictions = full_model.get_layer("predictions")
    assert abs(predictions.kernel.numpy().std() - 0.01) < 0.0005
    np.testing.assert_array_equal(predictions.bias.numpy(), 0.0)
    # The two towers are initialised independently.
    assert not np.allclose(
        full_model.get_layer("conv1_a").kernel.numpy(),
        full_model.get_layer("conv1_b").kernel.numpy(),
    )


def test_he_initialisation_alternative(images):
    model = AlexNet(classes=10, init="he", classifier_activation=None)
    for name, fan_in in (("conv1_b", 11 * 11 * 3), ("conv2_a", 5 * 5 * 48)):
        layer = model.get_layer(name)
        expected = np.sqrt(2.0 / fan_in)
        assert abs(layer.kernel.numpy().std() - expected) < 0.1 * expected, name
        np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
    # The fixed input scaling: conv1 sees the mean-subtracted 0..255 pixels divided by 58.
    assert model.get_layer("input_scaling").scale == pytest.approx(1 / 58.0)
    assert "input_scaling" not in [layer.name for layer in AlexNet(classes=10).layers]
    # On mean-subtracted 0..255 pixels the logits start at a sane scale (no overflow).
    logits = model(preprocess_input(images)).numpy()
    assert 0.05 < logits.std() < 20


@pytest.mark.parametrize("init", ["paper", "he"])
def test_every_trainable_weight_receives_a_gradient(init, images):
    model = AlexNet(classes=5, init=init)
    x = preprocess_input(images)
    labels = np.array([1, 3])
    with tf.GradientTape() as tape:
        probs = model(x, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(labels, probs)
    grads = tape.gradient(loss, model.trainable_variables)
    assert len(grads) == 2 * 2 * len(TOWER_LAYERS) + 2  # kernel and bias per layer
    for variable, grad in zip(model.trainable_variables, grads, strict=True):
        assert grad is not None, variable.path
        assert np.any(grad.numpy() != 0), variable.path
        assert np.all(np.isfinite(grad.numpy())), variable.path


def _block_outputs(model, names, images):
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    return dict(zip(names, (t.numpy() for t in probe(images, training=False)), strict=True))


def test_restricted_connectivity(images):
    """conv2, conv4 and conv5 read their own tower only; conv3 and fc6 read both."""
    model = AlexNet(classes=3, init="he")
    names = ["conv2_a", "conv2_b", "conv3_a", "conv3_b", "conv4_a", "conv4_b"]
    names += ["conv5_a", "conv5_b", "fc6_a", "fc6_b"]
    before = _block_outputs(model, names, images)

    def changed(after):
        return {n for n in names if not np.array_equal(before[n], after[n])}

    # Changing tower a's conv2 input (via conv1_a) leaves tower b's conv2 unchanged.
    kernel = model.get_layer("conv1_a").kernel
    original = kernel.numpy()
    kernel.assign(original + np.random.default_rng(3).normal(0, 0.05, original.shape))
    assert changed(_block_outputs(model, names, images)) == set(names) - {"conv2_b"}
    kernel.assign(original)

    # Changing conv3_a changes conv4_a/conv5_a but not tower b until fc6, which reads both.
    kernel = model.get_layer("conv3_a").kernel
    kernel.assign(kernel.numpy() * 1.5)
    assert changed(_block_outputs(model, names, images)) == {
        "conv3_a",
        "conv4_a",
        "conv5_a",
        "fc6_a",
        "fc6_b",
    }


def test_tower_devices_do_not_change_values_or_gradients(images):
    """The placed backward pass (custom gradient) gives the same gradients as the plain one."""
    plain = AlexNet(classes=4, init="he")
    placed = AlexNet(classes=4, init="he", tower_devices=("/CPU:0", "/CPU:0"))
    placed.set_weights(plain.get_weights())
    x = preprocess_input(images)
    labels = np.array([0, 3])
    results = []
    for model in (plain, placed):
        with tf.GradientTape() as tape:
            probs = model(x, training=False)
            loss = keras.losses.sparse_categorical_crossentropy(labels, probs)
        results.append((probs.numpy(), tape.gradient(loss, model.trainable_variables)))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-7)
    for g_plain, g_placed in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(g_placed.numpy(), g_plain.numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, output_shape",
    [
        ({"classes": 10}, (None, 10)),
        ({"include_top": False}, (None, None, None, 256)),
        ({"include_top": False, "input_shape": (227, 227, 3)}, (None, 6, 6, 256)),
        ({"include_top": False, "input_shape": (99, 131, 3)}, (None, 2, 3, 256)),
        ({"include_top": False, "input_shape": (67, 67, 3)}, (None, 1, 1, 256)),
        ({"include_top": False, "pooling": "avg"}, (None, 256)),
        ({"include_top": False, "pooling": "max", "input_shape": (160, 160, 3)}, (None, 256)),
        ({"include_top": True, "input_shape": [227, 227, 3], "classes": 2}, (None, 2)),
    ],
)
def test_output_shapes(kwargs, output_shape):
    model = AlexNet(**kwargs)
    assert model.output_shape == output_shape


def test_pooling_is_computed_on_pool5():
    image = np.random.default_rng(4).uniform(0, 255, (1, 99, 131, 3)).astype("float32")
    base = AlexNet(include_top=False, input_shape=(99, 131, 3), init="he")
    pooled = {
        p: AlexNet(include_top=False, input_shape=(99, 131, 3), pooling=p, init="he") for p in POOLS
    }
    features = base(image).numpy()
    for pooling, model in pooled.items():
        model.set_weights(base.get_weights())
        reduce = np.mean if pooling == "avg" else np.max
        np.testing.assert_allclose(model(image).numpy(), reduce(features, axis=(1, 2)), rtol=1e-5)


def test_classifier_activation(images):
    x = preprocess_input(images)
    softmax = AlexNet(classes=6, init="he")
    logits = AlexNet(classes=6, init="he", classifier_activation=None)
    logits.set_weights(softmax.get_weights())
    probs, raw = softmax(x).numpy(), logits(x).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(tf.nn.softmax(raw).numpy(), probs, rtol=1e-4, atol=1e-7)
    assert not np.allclose(raw.sum(axis=1), 1.0)


def test_input_tensor_and_name():
    inputs = keras.Input((227, 227, 3), name="my_images")
    model = AlexNet(input_tensor=inputs, classes=3, name="my_alexnet")
    assert model.input is inputs
    assert model.name == "my_alexnet"
    # A layer's output works too: the model starts from the source input.
    scaled = keras.layers.Rescaling(1.0, name="scale")(keras.Input((227, 227, 3)))
    model = AlexNet(input_tensor=scaled, classes=3)
    assert model.layers[1].name == "scale"


def test_dropout_is_active_in_training_only(images):
    model = AlexNet(classes=5, init="he", dropout_rate=0.5)
    x = preprocess_input(images)
    a, b = model(x, training=False).numpy(), model(x, training=False).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(model(x, training=True).numpy(), a)
    no_dropout = AlexNet(classes=5, dropout_rate=0.0, init="he")
    no_dropout.set_weights(model.get_weights())
    np.testing.assert_allclose(no_dropout(x, training=True).numpy(), a, rtol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy, images):
    keras.config.set_dtype_policy(policy)
    model = AlexNet(classes=5)
    assert model.get_layer("conv1_a").compute_dtype == policy.split("_")[1]
    assert model.get_layer("conv1_a").kernel.dtype == "float32"
    assert model.output.dtype == "float32"
    probs = model(preprocess_input(images)).numpy()
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-3)


def test_keras_file_round_trip_without_custom_objects(tmp_path, images):
    model = AlexNet(
        classes=4, init="he", lrn_alpha_convention="caffe", tower_devices=("/CPU:0", "/CPU:0")
    )
    path = str(tmp_path / "alexnet.keras")
    model.save(path)
    x = preprocess_input(images)
    expected = model(x).numpy()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", expected)
    # A fresh interpreter: only `import keras_alexnet`, no custom_objects.
    script = (
        "import sys, numpy as np, keras, keras_alexnet\n"
        "d = sys.argv[1]\n"
        "m = keras.saving.load_model(d + '/alexnet.keras')\n"
        "np.testing.assert_allclose(m(np.load(d + '/x.npy')).numpy(), np.load(d + '/expected.npy'),"
        " rtol=1e-5, atol=1e-7)\n"
        "assert m.get_layer('norm2_b').alpha_convention == 'caffe'\n"
        "assert m.get_layer('conv3_b').device == '/CPU:0'\n"
        "print('LOADED', m.count_params())\n"
    )
    result = run_python(["-c", script, str(tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"LOADED {model.count_params()}" in result.stdout


def test_weights_file_round_trip(tmp_path, images):
    model = AlexNet(classes=4, init="he")
    path = str(tmp_path / "alexnet.weights.h5")
    model.save_weights(path)
    x = preprocess_input(images)
    reloaded = AlexNet(classes=4, init="he", weights=path)
    np.testing.assert_allclose(reloaded(x).numpy(), model(x).numpy(), rtol=1e-6)
    keras_path = str(tmp_path / "alexnet.keras")
    model.save(keras_path)
    from_keras = AlexNet(classes=4, init="he", weights=keras_path)
    np.testing.assert_allclose(from_keras(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_weights_of_the_other_init_are_refused(tmp_path):
    """init="he" adds a fixed input scaling without weights: a file must not cross over."""
    path = str(tmp_path / "he.weights.h5")
    AlexNet(classes=4, init="he").save_weights(path)
    with pytest.raises(ValueError, match=r"saved from a model with a fixed input_scal.*init='he'"):
        AlexNet(classes=4, weights=path)
    path = str(tmp_path / "paper.weights.h5")
    AlexNet(classes=4).save_weights(path)
    with pytest.raises(ValueError, match=r"the model has a fixed input_scaling layer"):
        AlexNet(classes=4, init="he", weights=path)


def test_convolutional_base_loads_from_full_model_weights(tmp_path):
    full = AlexNet(classes=4, init="he")
    path = str(tmp_path / "full.weights.h5")
    full.save_weights(path)
    base = AlexNet(include_top=False, init="he", weights=path)
    for name in TOWER_LAYERS[:5]:
        for tower in "ab":
            np.testing.assert_array_equal(
                base.get_layer(f"{name}_{tower}").kernel.numpy(),
                full.get_layer(f"{name}_{tower}").kernel.numpy(),
            )


def test_weights_for_other_class_count_name_layer_and_shapes(tmp_path):
    path = str(tmp_path / "ten.weights.h5")
    AlexNet(classes=10).save_weights(path)
    with pytest.raises(ValueError) as error:
        AlexNet(classes=1000, weights=path)
    message = str(error.value)
    assert "'predictions'" in message
    assert "(4096, 1000)" in message and "(4096, 10)" in message


def test_weights_of_another_architecture_are_refused(tmp_path):
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    path = str(tmp_path / "other.weights.h5")
    other.save_weights(path)
    with pytest.raises(ValueError, match=r"no weights for layer 'conv1_a'.*\(11, 11, 3, 48\)"):
        AlexNet(weights=path)
    # A file of the convolutional base does not fill the full model's fully connected layers.
    small = AlexNet(include_top=False, input_shape=(67, 67, 3))
    path = str(tmp_path / "base.weights.h5")
    small.save_weights(path)
    with pytest.raises(ValueError, match=r"no weights for layer 'fc6_a'"):
        AlexNet(weights=path)


def test_unused_weights_are_refused_unless_allowed(tmp_path):
    path = str(tmp_path / "full.weights.h5")
    AlexNet(classes=3).save_weights(path)
    base = AlexNet(include_top=False)
    with pytest.raises(ValueError, match="holds weights for layers the model does not have"):
        keras_file.check_weights_fit(base, path)
    keras_file.check_weights_fit(base, path, allow_unused=True)


def test_unreadable_weights_file(tmp_path):
    path = tmp_path / "broken.weights.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="could not be read as a Keras weights file"):
        AlexNet(weights=str(path))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weights": 3}, r"Received: weights=3"),
        ({"weights": "imagenet", "classes": 10}, r"`classes` should be 1000. Received: classes=10"),
        ({"weights": "model.h5"}, r"Received: weights='model.h5'"),
        ({"weights": "/nonexistent/a.weights.h5"}, r"does not exist.*/nonexistent/a.weights.h5"),
        ({"classes": 0}, r"Received: classes=0"),
        ({"classes": "10"}, r"Received: classes='10'"),
        ({"classes": True}, r"Received: classes=True"),
        ({"include_top": "yes"}, r"Received: include_top='yes'"),
        ({"pooling": "mean", "include_top": False}, r"Received: pooling='mean'"),
        ({"classifier_activation": "nope"}, r"Received: classifier_activation='nope'"),
        ({"input_shape": (224, 224, 3)}, r"\(227, 227, 3\).*Received: input_shape=\(224, 224, 3\)"),
        ({"input_shape": (227, 227)}, r"three integers.*Received: input_shape=\(227, 227\)"),
        ({"input_shape": "227"}, r"Received: input_shape='227'"),
        ({"input_shape": (99, 99, 0), "include_top": False}, r"channels.*\(99, 99, 0\)"),
        ({"input_shape": (99, 99, None), "include_top": False}, r"channels.*\(99, 99, None\)"),
        ({"input_shape": (64, 99, 3), "include_top": False}, r"at least 67x67.*\(64, 99, 3\)"),
        ({"input_tensor": np.zeros((1, 227, 227, 3))}, r"Keras tensor.*Received: input_tensor="),
        ({"name": ""}, r"Received: name=''"),
        ({"tower_devices": "/GPU:0"}, r"Received: tower_devices='/GPU:0'"),
        ({"tower_devices": ("/GPU:0",)}, r"Received: tower_devices=\('/GPU:0',\)"),
        ({"tower_devices": ("/GPU:0", 1)}, r"Received: tower_devices=\('/GPU:0', 1\)"),
        ({"dropout_rate": 1.0}, r"Received: dropout_rate=1.0"),
        ({"dropout_rate": -0.1}, r"Received: dropout_rate=-0.1"),
        ({"lrn_alpha_convention": "cuda"}, r"Received: lrn_alpha_convention='cuda'"),
        ({"lrn": "cuda"}, r"Received: lrn='cuda'"),
        ({"lrn": "caffe", "lrn_alpha_convention": "paper"}, r"applies to lrn='paper' only"),
        ({"weights": "bvlc_alexnet.npy"}, r"pickle.*convert the original bvlc_alexnet.caffemodel"),
        ({"weights": "alexnet-owt-7be5be79.pth"}, r"torchvision's alexnet is a different network"),
        ({"weights": "alexnet_v2.ckpt"}, r"TF-Slim's alexnet_v2 is a different network"),
        ({"weights": "model.ckpt-1000.index"}, r"TF-Slim's alexnet_v2"),
        ({"weights": "/nonexistent/bvlc_alexnet.caffemodel"}, r"does not exist"),
        ({"weights": "/nonexistent/run.ckpt/best.keras"}, r"does not exist"),
        ({"init": "xavier"}, r"Received: init='xavier'"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlexNet(**kwargs)


def test_input_tensor_of_wrong_size_is_named():
    with pytest.raises(ValueError, match=r"input_tensor.shape\[1:\]=\(224, 224, 3\)"):
        AlexNet(input_tensor=keras.Input((224, 224, 3)))


def test_unknown_keyword_is_refused():
    with pytest.raises(TypeError, match="tower_device"):
        AlexNet(tower_device=("/GPU:0", "/GPU:1"))


def test_preprocess_input_subtracts_imagenet_mean(images):
    out = preprocess_input(images)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, images - np.array([123.68, 116.78, 103.94]), atol=1e-4)
    assert images.max() > 200  # the input was not modified in place
    tensor_out = preprocess_input(tf.constant(images))
    assert tf.is_tensor(tensor_out)
    np.testing.assert_allclose(tensor_out.numpy(), out, rtol=1e-6)
    uint8 = preprocess_input(np.full((2, 2, 3), 255, np.uint8), mean=(10, 20, 30))
    np.testing.assert_array_equal(uint8[0, 0], [245, 235, 225])
    with pytest.raises(ValueError, match=r"Received shape \(2, 2, 4\)"):
        preprocess_input(np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="mean"):
        preprocess_input(images, mean=(1, 2))


def test_decode_predictions():
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [1, 0, 999]] = [0.7, 0.2, 0.1]
    preds[1, 134] = 1.0
    decoded = decode_predictions(preds, top=3)
    assert [(s, n) for s, n, _ in decoded[0]] == [
        ("n01443537", "goldfish"),
        ("n01440764", "tench"),
        ("n15075141", "toilet_tissue"),
    ]
    assert decoded[0][0][2] == pytest.approx(0.7)
    assert decoded[1][0][:2] == ("n02012849", "crane")
    assert len(decode_predictions(tf.constant(preds))[1]) == 5
    with pytest.raises(ValueError, match=r"Received shape \(2, 10\)"):
        decode_predictions(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="Received: top=0"):
        decode_predictions(preds, top=0)


def test_class_index_matches_tensorflow_datasets_labels():
    """The packaged synsets are ILSVRC-2012's, in the order tfds' imagenet2012 uses."""
    import tensorflow_datasets as tfds

    index = keras_alexnet.imagenet_class_index()
    assert len(index) == 1000 and len({synset for synset, _, _ in index}) == 1000
    path = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012", "labels.txt")
    with open(path) as f:
        assert [line.strip() for line in f if line.strip()] == [s for s, _, _ in index]
    assert keras_alexnet.imagenet_class_names()[0] == "tench"
    assert json.loads(json.dumps(index))[207][1] == "golden_retriever"


def test_feature_extractor_gives_fc7_features(images):
    model = AlexNet(classes=5, init="he")
    extractor = feature_extractor(model)
    x = preprocess_input(images)
    features = extractor(x).numpy()
    assert features.shape == (2, 4096)
    assert np.all(features >= 0)  # fc7 outputs after ReLU
    # The classifier applied to these features gives the model's predictions.
    predictions = model.get_layer("predictions")
    np.testing.assert_allclose(predictions(features).numpy(), model(x).numpy(), rtol=1e-5)
    # Same weights, not a copy.
    assert extractor.get_layer("fc7_a") is model.get_layer("fc7_a")
    with pytest.raises(ValueError, match="include_top=True"):
        feature_extractor(AlexNet(include_top=False))


def test_xla_gradients_equal_the_graph_ones():
    """`--jit_compile`: the whole train-step gradient (LRN's own gradient and the placed
    towers' custom gradients included) compiles with XLA and gives the same numbers."""
    model = AlexNet(
        include_top=False,
        input_shape=(67, 67, 3),
        pooling="avg",
        init="he",
        tower_devices=("/CPU:0", "/CPU:0"),
    )
    rng = np.random.default_rng(6)
    x = tf.constant(rng.uniform(-100, 100, (2, 67, 67, 3)).astype("float32"))
    w = tf.constant(rng.standard_normal((2, 256)).astype("float32"))

    def gradients(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=True) * w)
        return tape.gradient(loss, model.trainable_variables)

    graph = tf.function(gradients)(x)
    xla = tf.function(gradients, jit_compile=True)(x)
    assert len(graph) == 10 * 2  # kernel and bias of five convolutions per tower
    for variable, want, got in zip(model.trainable_variables, graph, xla, strict=True):
        scale = np.abs(want.numpy()).max()
        assert scale > 0, variable.path
        np.testing.assert_allclose(
            got.numpy(), want.numpy(), atol=1e-4 * scale, err_msg=variable.path
        )


@pytest.mark.parametrize("channels", [1, 4])
def test_any_channel_count_without_weights(channels, tmp_path):
    """keras' applications_test builds every model with weights=None, include_top=False and
    input_shape (None, None, 1) or (None, None, 4); a weights file of 3-channel images does
    not load into such a model, with an error naming conv1."""
    base = AlexNet(include_top=False, input_shape=(None, None, channels), pooling="avg")
    assert base.output_shape == (None, 256)
    assert base(np.zeros((1, 99, 120, channels), "float32")).shape == (1, 256)
    top = AlexNet(input_shape=(227, 227, channels), classes=3)
    assert top.get_layer("conv1_a").kernel.shape == (11, 11, channels, 48)
    path = str(tmp_path / "rgb.weights.h5")
    AlexNet(include_top=False).save_weights(path)
    with pytest.raises(ValueError, match=r"layer 'conv1_a' has weight shapes \[\(11, 11, 1"):
        AlexNet(include_top=False, input_shape=(None, None, 1), weights=path)
