"""Shared by the pretrained-weights tests: the images and the random bvlc_alexnet weights
(Caffe's layout, 10 classes) that the loaded models and the references are run on."""

import numpy as np
import pytest

from tests.weights import caffe_files


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(5).uniform(0, 255, (2, 227, 227, 3)).astype("float32")


@pytest.fixture(scope="module")
def weights():
    return caffe_files.random_weights(seed=1, classes=10)
