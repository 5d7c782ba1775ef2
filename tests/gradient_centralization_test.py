"""Gradient centralisation: the centring itself against NumPy for each kind of variable, and
the centralised optimizers through a saved model and back. (The optimizers' steps, by hand:
recipe_test.)"""

import keras
import numpy as np
import pytest

from keras_alexnet.gradient_centralization import CentralizedAdam, CentralizedSGD, centralize
from keras_alexnet.serving.trained_model import load_keras_model
from keras_alexnet.training.config import TrainConfig
from keras_alexnet.training.recipe import make_optimizer
from tests.conftest import run_python


@pytest.mark.parametrize(
    "shape, axes",
    [
        ((3, 3, 4, 5), (0, 1, 2)),  # Conv2D: per filter, over height, width and channels
        ((6, 4), (0,)),  # Dense: per unit, over its inputs
    ],
)
def test_each_output_units_gradient_loses_its_mean(shape, axes):
    gradient = np.random.default_rng(0).normal(1.0, 1.0, shape).astype(np.float32)
    got = keras.ops.convert_to_numpy(centralize(gradient, keras.Variable(np.zeros(shape))))
    np.testing.assert_allclose(got, gradient - gradient.mean(axis=axes, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(got.mean(axis=axes), 0.0, atol=1e-6)


def test_biases_keep_their_gradient():
    gradient = np.arange(5, dtype=np.float32) + 1
    got = centralize(gradient, keras.Variable(np.zeros(5)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), gradient)


@pytest.mark.parametrize(
    "optimizer, expected",
    [("sgd", CentralizedSGD), ("adam", CentralizedAdam)],
)
def test_a_saved_model_loads_back_with_its_centralised_optimizer(tmp_path, optimizer, expected):
    config = TrainConfig(optimizer=optimizer, learning_rate=0.003, gradient_centralization=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=make_optimizer(config), loss="mse")
    model.train_on_batch(np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32))
    path = str(tmp_path / "model.keras")
    model.save(path)

    loaded = load_keras_model(path)
    assert type(loaded.optimizer) is expected
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.003)
    for before, after in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def test_a_runs_model_loads_after_a_plain_import_keras_alexnet(tmp_path):
    """A quickstart's best.keras holds a CentralizedAdam: `import keras_alexnet` alone must
    register it, as it does the layers (no custom_objects, no training modules loaded)."""
    config = TrainConfig(optimizer="adam", learning_rate=0.003, gradient_centralization=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=make_optimizer(config), loss="mse")
    model.train_on_batch(np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32))
    model.save(tmp_path / "best.keras")
    script = (
        "import sys, keras, keras_alexnet\n"
        "m = keras.saving.load_model(sys.argv[1])\n"
        "assert 'keras_alexnet.training' not in sys.modules, 'loading needed the training'\n"
        "print('LOADED', type(m.optimizer).__name__, int(m.optimizer.iterations))\n"
    )
    result = run_python(["-c", script, str(tmp_path / "best.keras")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED CentralizedAdam 1" in result.stdout
