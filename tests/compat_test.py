"""Every private TensorFlow and Keras API keras_alexnet uses still exists and does what the
package relies on. These run in seconds: an upgrade that moves one fails here first."""

import h5py
import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import compat


def test_onednn_enabled_answers_a_bool():
    assert isinstance(compat.onednn_enabled(), bool)


def test_print_msg_prints(capsys):
    compat.print_msg("learning_rate changed")
    assert "learning_rate changed" in capsys.readouterr().out


def test_weights_file_key_is_the_key_keras_saves_under(tmp_path):
    assert compat.weights_file_key("CrossTowerLocalResponseNormalization") == (
        "cross_tower_local_response_normalization"
    )
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    key = compat.weights_file_key("Dense")
    with h5py.File(path) as f:
        assert {key, f"{key}_1"} <= set(f["layers"])


def _small_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(
        optimizer="sgd",
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1_accuracy")],
    )
    return model


def test_build_metrics_from_shapes_builds_them_once():
    model = _small_model()
    before = len(model.metrics_variables)  # the loss tracker only
    compat.build_metrics_from_shapes(model, (tf.zeros((1, 4)), tf.zeros((1,), tf.int32)))
    assert len(model.metrics_variables) > before  # top1_accuracy's total and count
    history = model.fit(np.ones((4, 4)), np.zeros(4), epochs=1, verbose=0)
    assert "top1_accuracy" in history.history


def test_scalar_logs_patch_is_installed_once_and_passes_other_strategies_through():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    compat.average_scalar_logs_over_workers()
    patched = tf_trainer.reduce_per_replica
    assert patched.keras_alexnet_patch
    compat.average_scalar_logs_over_workers()
    assert tf_trainer.reduce_per_replica is patched
    value = tf.constant(2.0)
    assert patched(value, tf.distribute.get_strategy(), "auto").numpy() == 2.0
