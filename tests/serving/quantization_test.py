"""int8 dense layers: which layers, how close to float32, and what survives saving and export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import AlexNet
from keras_alexnet.data import IMAGENET_STATS
from keras_alexnet.serving import quantization
from keras_alexnet.serving.export import export_saved_model

DENSE = ("fc6_a", "fc6_b", "fc7_a", "fc7_b", "predictions")


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(9)
    original = AlexNet(classes=10, init="he", classifier_activation=None)
    quantized = AlexNet(classes=10, init="he", classifier_activation=None)
    quantized.set_weights(original.get_weights())
    kernels = {name: original.get_layer(name).kernel.numpy() for name in DENSE}
    return original, quantization.quantize_dense_layers(quantized), kernels


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(2)
    return rng.uniform(0, 255, (2, 227, 227, 3)).astype("float32") - np.float32(
        IMAGENET_STATS.mean_rgb
    )


def test_only_the_dense_layers_hold_int8(models):
    _, quantized, _ = models
    int8 = {layer.name for layer in quantized.layers if layer.quantization_mode == "int8"}
    assert int8 == set(DENSE)
    assert quantized.get_layer("conv1_a").kernel.dtype == "float32"
    assert quantized.get_layer("fc6_a")._kernel.dtype == "int8"


def test_each_kernel_column_is_rounded_to_its_absmax_over_127(models):
    """An independent reading of the stored weights: int8 values over a per-unit scale give the
    float kernel to within half a step, step = the column's largest |weight| / 127."""
    _, quantized, kernels = models
    for name in DENSE:
        layer = quantized.get_layer(name)
        values = layer._kernel.numpy().astype(np.float64)
        scale = layer.kernel_scale.numpy().astype(np.float64)
        step = np.max(np.abs(kernels[name]), axis=0) / 127.0
        np.testing.assert_allclose(1.0 / scale, step, rtol=1e-5)
        assert np.max(np.abs(values / scale - kernels[name]) / step) <= 0.5 + 1e-3


def test_logits_stay_close_to_float32(models, images):
    original, quantized, _ = models
    expected = original(images).numpy()
    actual = quantized(images).numpy()
    assert np.max(np.abs(actual - expected)) < 0.02 * np.max(np.abs(expected))
    assert not np.array_equal(actual, expected)


def test_keras_file_and_saved_model_keep_int8(models, images, tmp_path):
    _, quantized, _ = models
    quantized.save(tmp_path / "int8.keras")
    loaded = keras.saving.load_model(tmp_path / "int8.keras")
    assert loaded.get_layer("fc7_b").quantization_mode == "int8"
    np.testing.assert_array_equal(loaded(images).numpy(), quantized(images).numpy())
    path = export_saved_model(quantized, str(tmp_path / "export"), [str(i) for i in range(10)])
    stored = tf.train.load_checkpoint(f"{path}/variables/variables").get_variable_to_dtype_map()
    assert sum(dtype == tf.int8 for dtype in stored.values()) == len(DENSE)
    served = tf.saved_model.load(path)
    outputs = served.signatures["predict_images"](
        images=tf.constant(images + np.float32(IMAGENET_STATS.mean_rgb))
    )["probabilities"].numpy()  # (this model's outputs are logits: classifier_activation=None)
    expected = quantized(images).numpy()
    assert np.max(np.abs(outputs - expected)) < 1e-5 * np.max(np.abs(expected))


def test_wrong_models_and_modes_are_named():
    with pytest.raises(ValueError, match="include_top=True"):
        quantization.quantize_dense_layers(AlexNet(include_top=False))
    model = quantization.quantize_dense_layers(AlexNet(classes=3))
    with pytest.raises(ValueError, match="already quantized"):
        quantization.quantize_dense_layers(model)
    with pytest.raises(ValueError, match=r"mode must be one of \('int8',\)"):
        quantization.quantize_dense_layers(AlexNet(classes=3), mode="int4")


def test_litert_is_refused_for_an_int8_model_before_anything_is_written(models, tmp_path):
    _, quantized, _ = models
    with pytest.raises(ValueError, match="LiteRT's converter cannot convert Keras' int8"):
        export_saved_model(quantized, str(tmp_path), [str(i) for i in range(10)], also=["litert"])
    assert list(tmp_path.iterdir()) == []
