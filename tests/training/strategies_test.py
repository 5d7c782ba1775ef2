"""`make_strategy`: its arguments checked, devices that do not exist named, and mirrored on
two logical CPUs making one device's update."""

import json

import pytest

from keras_alexnet.training.config import SettingsError
from keras_alexnet.training.strategies import make_strategy, replica_devices


def test_mirrored_over_the_only_device_is_the_default_strategy():
    """Nothing to mirror on one device: no per-device iterators (whose autotuning made each
    validation wait up to a minute), the same replica count and devices."""
    import tensorflow as tf

    strategy, towers = make_strategy("mirrored")  # this process has one CPU device
    assert strategy is tf.distribute.get_strategy() and towers is None
    assert strategy.num_replicas_in_sync == 1
    assert [tf.DeviceSpec.from_string(d).device_type for d in replica_devices(strategy)] == ["CPU"]
    named, _ = make_strategy("mirrored", devices=["/cpu:0"])  # named devices are honoured
    assert isinstance(named, tf.distribute.MirroredStrategy)
    assert len(replica_devices(named)) == 1


def test_strategy_arguments_are_checked():

    with pytest.raises(ValueError, match="strategy='pipeline'"):
        make_strategy("pipeline")
    with pytest.raises(ValueError, match="tower_devices only applies to strategy='towers'"):
        make_strategy("mirrored", tower_devices=["/cpu:0", "/cpu:0"])
    with pytest.raises(ValueError, match="towers' needs two devices"):
        make_strategy("towers")  # this process has one CPU device
    with pytest.raises(ValueError, match="must name two devices"):
        make_strategy("towers", tower_devices=["/cpu:0"])


def test_devices_that_do_not_exist_are_named_with_those_that_do():
    """On a CPU-only machine, towers on /GPU:7 and /GPU:8 used to train on the CPU, exit 0."""

    with pytest.raises(SettingsError, match=r"tower_devices names '/GPU:7', a device this .*CPU:0"):
        make_strategy("towers", tower_devices=["/GPU:7", "/GPU:8"])
    for bad in ("/cpu:3", "gpu0", ""):
        with pytest.raises(SettingsError, match="devices names"):
            make_strategy("mirrored", devices=[bad])
    strategy, _ = make_strategy(
        "one_device", devices=["/job:localhost/replica:0/task:0/device:CPU:0"]
    )
    assert strategy.num_replicas_in_sync == 1


def test_towers_with_several_workers_is_an_error(monkeypatch):

    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"index": 0}}))
    with pytest.raises(ValueError, match="TF_CONFIG describes 2 workers"):
        make_strategy("towers", tower_devices=["/cpu:0", "/cpu:0"])


MIRRORED_VS_ONE_DEVICE = """
import numpy as np, tensorflow as tf, keras
from keras_alexnet import AlexNet
from keras_alexnet.training.recipe import apply_weight_decay, paper_optimizer
from keras_alexnet.training.strategies import make_strategy, use_logical_cpus
use_logical_cpus(2)
rng = np.random.default_rng(0)
x = rng.uniform(-100, 100, (8, 227, 227, 3)).astype("float32")
y = rng.integers(0, 3, 8).astype("int32")
keras.utils.set_random_seed(0)
initial = AlexNet(classes=3, init="he", dropout_rate=0.0).get_weights()
results = []
for name, devices in (("one_device", ["/cpu:0"]), ("mirrored", ["/cpu:0", "/cpu:1"])):
    strategy, _ = make_strategy(name, devices=devices)
    assert strategy.num_replicas_in_sync == len(devices)
    with strategy.scope():
        model = AlexNet(classes=3, init="he", dropout_rate=0.0)
        model.set_weights(initial)
        apply_weight_decay(model)
        model.compile(paper_optimizer(0.01), "sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)  # one global batch
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    results.append([w - w0 for w, w0 in zip(model.get_weights(), initial)])
for one, mirrored in zip(*results):
    assert np.abs(one).max() > 0
    # Updates are differences of float32 weights: tolerance at the weights' rounding level.
    np.testing.assert_allclose(mirrored, one, rtol=2e-3, atol=1e-4 * np.abs(one).max())
print("same update")
"""


@pytest.mark.slow
def test_mirrored_on_two_cpus_makes_the_same_first_update_as_one_device():
    from tests.conftest import run_python

    result = run_python(["-c", MIRRORED_VS_ONE_DEVICE], env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same update" in result.stdout
