"""The paper's update rule, computed by hand in NumPy, against one and two Keras steps."""

import keras
import numpy as np
import pytest

from keras_alexnet import AlexNet
from keras_alexnet.training import apply_weight_decay, paper_optimizer


def _linear_model(w0, b0):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.get_layer("dense").set_weights([w0, b0])
    return model


def test_two_steps_follow_the_papers_update_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    y = rng.normal(size=(4, 2)).astype(np.float32)
    w = rng.normal(size=(3, 2)).astype(np.float64)
    b = rng.normal(size=(2,)).astype(np.float64)
    lr, momentum, decay = 0.1, 0.9, 0.05  # large, so that every term shows

    model = _linear_model(w.astype(np.float32), b.astype(np.float32))
    apply_weight_decay(model, decay)
    model.compile(optimizer=paper_optimizer(lr, momentum), loss="mse")

    # By hand: L = mean over the batch and outputs of (x w + b - y)^2.
    v_w, v_b = np.zeros_like(w), np.zeros_like(b)
    for _ in range(2):
        residual = x @ w + b - y
        grad_w = 2 * x.T @ residual / residual.size
        grad_b = 2 * residual.sum(axis=0) / residual.size
        # Paper 5: v <- 0.9 v - 0.0005 lr w - lr dL/dw; w <- w + v (no decay on biases).
        v_w = momentum * v_w - decay * lr * w - lr * grad_w
        v_b = momentum * v_b - lr * grad_b
        w, b = w + v_w, b + v_b
        model.train_on_batch(x, y)
    kernel, bias = model.get_layer("dense").get_weights()
    np.testing.assert_allclose(kernel, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bias, b, rtol=1e-5, atol=1e-6)


def test_weight_decay_term_covers_every_alexnet_kernel():
    model = AlexNet(classes=3)
    apply_weight_decay(model)
    kernels = [layer.kernel for layer in model.layers if getattr(layer, "kernel", None) is not None]
    assert len(kernels) == 15  # 5 conv + 2 fc per tower, and the classifier
    expected = 0.5 * 0.0005 * sum(float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    apply_weight_decay(model, 0.0)
    assert model.losses == []


@pytest.mark.parametrize("value", [-0.1, "0.0005", True])
def test_bad_weight_decay_is_named(value):
    with pytest.raises(ValueError, match="weight_decay"):
        apply_weight_decay(_linear_model(np.zeros((3, 2)), np.zeros(2)), value)


def test_bad_optimizer_arguments_are_named():
    with pytest.raises(ValueError, match="learning_rate=-1"):
        paper_optimizer(-1)
    with pytest.raises(ValueError, match="momentum='high'"):
        paper_optimizer(0.01, "high")
