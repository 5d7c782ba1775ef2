"""The checks keras' own `applications_test.py` makes of every keras.applications model, made
of AlexNet, plus what a user of any backend needs (predict, the Caffe variant, mixed precision,
serialisation, tower placement refused off TensorFlow).

Backend-agnostic: it imports Keras, NumPy and keras_alexnet only. Not collected by the suite
itself (its name does not end in _test.py): `backends_test.py` runs it under TensorFlow, JAX
and PyTorch, each in its own process (TensorFlow unimportable for the other two), so that no
suite worker keeps the models it builds. By hand:

    KERAS_BACKEND=jax python -m pytest -n 0 tests/applications_contract.py
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_alexnet
from keras_alexnet import AlexNet

LAST_DIM = 256  # pool5's channels: 128 per tower (paper 3.5)


def numpy(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("channels", [1, 4])
def test_notop_variable_input_channels(channels):
    model = AlexNet(weights=None, include_top=False, input_shape=(None, None, channels))
    assert list(model.outputs[0].shape) == [None, None, None, LAST_DIM]


def test_notop_custom_input_shape():
    model = AlexNet(weights=None, include_top=False, input_shape=(123, 123, 3))
    assert list(model.outputs[0].shape)[-1] == LAST_DIM


def test_notop_custom_input_tensor():
    inputs = keras.Input(shape=(200, 200, 4), name="custom_input")
    inputs = keras.layers.Conv2D(3, (2, 2), padding="valid", strides=(2, 2))(inputs)
    model = AlexNet(weights=None, include_top=False, input_tensor=inputs)
    assert list(model.outputs[0].shape)[-1] == LAST_DIM


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_pooling(pooling):
    model = AlexNet(weights=None, include_top=False, pooling=pooling)
    assert list(model.outputs[0].shape) == [None, LAST_DIM]


def test_classifier_activation():
    model = AlexNet(weights=None, include_top=True, classifier_activation="softmax")
    assert model.layers[-1].activation.__name__ == "softmax"
    logits = AlexNet(weights=None, classes=7, classifier_activation=None)
    assert logits.layers[-1].activation.__name__ == "linear"


def test_serialization_round_trip():
    model = AlexNet(weights=None, classes=5)
    config = keras.saving.serialize_keras_object(model)
    reconstructed = keras.saving.deserialize_keras_object(config)
    assert len(model.weights) == len(reconstructed.weights)
    assert [w.shape for w in model.weights] == [w.shape for w in reconstructed.weights]


@pytest.mark.parametrize("lrn", ["paper", "caffe"])
def test_predict_and_keras_file_round_trip(lrn, tmp_path):
    keras.utils.set_random_seed(5)
    model = AlexNet(classes=4, lrn=lrn, init="he")
    images = np.random.default_rng(0).uniform(0, 255, (2, 227, 227, 3))
    x = keras_alexnet.preprocess_input(images)
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    path = tmp_path / "alexnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), probabilities, rtol=1e-6)


def test_preprocess_input_takes_backend_tensors():
    images = np.full((1, 4, 4, 3), 128.0, "float32")
    as_numpy = keras_alexnet.preprocess_input(images)
    as_tensor = keras_alexnet.preprocess_input(ops.convert_to_tensor(images))
    assert ops.is_tensor(as_tensor)
    np.testing.assert_allclose(numpy(as_tensor), as_numpy)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_lrn_and_predictions_in_float32(policy):
    keras.config.set_dtype_policy(policy)
    try:
        model = AlexNet(classes=5, init="he")
        norm = model.get_layer("norm1_a")
        assert norm.compute_dtype == policy.split("_")[1]
        x = keras_alexnet.preprocess_input(np.full((1, 227, 227, 3), 200.0))
        probabilities = numpy(model(x))
    finally:
        keras.config.set_dtype_policy("float32")
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-3)


def test_tower_devices_need_tensorflow():
    if keras.backend.backend() == "tensorflow":
        pytest.skip("placement works under TensorFlow (alexnet_test, device_placement_test)")
    with pytest.raises(ValueError, match="needs Keras' TensorFlow backend"):
        AlexNet(tower_devices=("/CPU:0", "/CPU:0"))
