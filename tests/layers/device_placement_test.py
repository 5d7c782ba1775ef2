"""Tower placement: every op of tower a runs on device a, of tower b on device b.

The probe runs in a subprocess because logical devices must be configured before TensorFlow
starts, and because the placer's decisions are only visible in TensorFlow's placement log.
"""

import re
import textwrap

import keras
import pytest

from keras_alexnet.layers import PlacedConv2D, PlacedDropout
from tests.conftest import run_python

PROBE = textwrap.dedent(
    """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    tf.debugging.set_log_device_placement(True)
    import keras
    import keras_alexnet

    model = keras_alexnet.AlexNet(classes=7, tower_devices=("/CPU:0", "/CPU:1"))
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    images = tf.random.uniform((2, 227, 227, 3), 0, 255)
    labels = tf.constant([1, 5])

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            probs = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probs))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    train_step()
    for v in model.weights:
        print("VARIABLE", v.path, v.value.device)
    """
)

TOWER_LAYER = re.compile(r"/((?:(?:conv|norm|pool|concat|fc|dropout)\d|flatten)_([ab]))(?:_\d+)?/")
PLACED = re.compile(r"^(\S+): \((\w+)\): (/job:\S+)$")


def test_tower_ops_and_variables_run_on_their_devices():
    result = run_python(["-c", PROBE], env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    expected_device = {"a": "device:CPU:0", "b": "device:CPU:1"}
    seen_layers = {}
    wrong = []
    for line in result.stdout.splitlines():
        placed = PLACED.match(line.strip())
        if not placed:
            continue
        node, op_type, device = placed.groups()
        tower_layer = TOWER_LAYER.search("/" + node)
        if not tower_layer:
            continue
        layer, tower = tower_layer.groups()
        seen_layers.setdefault(layer, set()).add(op_type)
        if not device.endswith(expected_device[tower]):
            wrong.append(f"{node} ({op_type}) ran on {device}")
    assert not wrong, "\n".join(wrong[:20])
    # Every tower layer of both towers was seen, forward and backward (gradient ops).
    names = ["conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "concat3", "conv3"]
    names += ["conv4", "conv5", "pool5", "flatten", "concat6", "fc6", "dropout6", "concat7"]
    names += ["fc7", "dropout7"]
    for name in names:
        for tower in "ab":
            assert f"{name}_{tower}" in seen_layers, f"no op of {name}_{tower} in the log"
    assert "Conv2DBackpropFilter" in seen_layers["conv2_b"]
    # LRN's gradient: whole-tensor ops on a CPU-only machine, TensorFlow's LRNGrad with a GPU.
    assert seen_layers["norm1_b"] & {"Rsqrt", "LRNGrad"}
    assert "MatMul" in seen_layers["fc6_a"]

    variables = [line.split() for line in result.stdout.splitlines() if line.startswith("VARIABLE")]
    assert variables
    for _, path, device in variables:
        tower = re.search(r"_([ab])/", path)
        if tower:
            assert device.endswith(expected_device[tower.group(1)]), (path, device)


def test_device_is_kept_in_config():
    layer = PlacedConv2D(4, 3, name="conv1_b", device="/CPU:1")
    config = layer.get_config()
    assert config["device"] == "/CPU:1"
    clone = PlacedConv2D.from_config(config)
    assert clone.device == "/CPU:1"
    assert isinstance(clone, keras.layers.Conv2D)
    assert PlacedDropout(0.5).get_config()["device"] is None


@pytest.mark.parametrize("device", [3, "", "/NOT:a:device:string"])
def test_bad_device_is_named(device):
    with pytest.raises(ValueError, match="device"):
        PlacedConv2D(4, 3, device=device)
