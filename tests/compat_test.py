"""Every private TensorFlow API keras_alexnet uses still exists and answers as expected."""

from keras_alexnet import compat


def test_onednn_enabled_answers_a_bool():
    assert isinstance(compat.onednn_enabled(), bool)
