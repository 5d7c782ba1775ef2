"""The run's inputs: an epoch's stream resumed mid-way, and datasets a classifier cannot
use refused before anything is written."""

import os

import numpy as np
import pytest

from keras_alexnet.training import TrainConfig, train
from keras_alexnet.training.config import SettingsError
from keras_alexnet.training.inputs import epoch_batches
from tests.conftest import encode, write


@pytest.mark.parametrize("skip", [0, 3, 7, 12])
def test_resumed_epoch_sees_the_rest_of_the_same_stream(tmp_path, skip):
    """An epoch of 13 batches from a pass of 5 (10 images, batch 2) is one pass topped up by
    more: resuming after `skip` batches, also inside the second or third pass, gives exactly
    the batches an uninterrupted epoch would have gone on with."""
    from keras_alexnet import data

    rng = np.random.default_rng(5)
    for i in range(10):
        image = rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)
        write(f"{tmp_path}/c{i % 2}/{i:02d}.png", encode(image, "PNG"))
    source = data.image_folder_source(str(tmp_path), validation_fraction=0.0, verify=False)
    assert source.num_examples["train"] == 10

    def batches(skip):
        ds = epoch_batches(source, 2, batches=13, skip=skip, stats=None, seed=9)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    whole = batches(0)
    assert len(whole) == 13
    # A real top-up: passes 2 and 3 show the images again in other orders / other views.
    assert not np.array_equal(whole[0][0], whole[5][0])
    assert not np.array_equal(whole[5][0], whole[10][0])
    resumed = batches(skip)
    assert len(resumed) == 13 - skip
    for (x, y), (want_x, want_y) in zip(resumed, whole[skip:], strict=True):
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(x, want_x)


def test_an_epoch_of_one_pass_is_topped_up_when_an_image_does_not_decode(image_folder):
    """19 images counted, one of which does not decode (sources_test.py), so an epoch of one
    pass asks for 19 batches of 1 and the pass yields 18: the epoch still gets its 19, also
    when resumed (otherwise the next epoch's batches would slide into it)."""
    from keras_alexnet import data

    source = data.image_folder_source(image_folder, validation_fraction=0.0, verify=False)
    assert source.num_examples["train"] == 19

    def labels(skip):
        ds = epoch_batches(source, 1, batches=19, skip=skip, stats=None, seed=4)
        return [int(y.numpy()[0]) for _, y in ds]

    whole = labels(0)
    assert len(whole) == 19
    assert sorted(whole[:18]) == [0] * 6 + [1] * 6 + [2] * 6  # the pass: every good image
    assert len(labels(5)) == 14


def test_a_one_class_dataset_is_refused_before_anything_is_written(tmp_path):
    """With one class every prediction is right: the run reported '100% accuracy'."""

    write(f"{tmp_path}/images/only/a.png", encode(np.zeros((8, 8, 3), np.uint8), "PNG"))
    write(f"{tmp_path}/images/only/b.png", encode(np.ones((8, 8, 3), np.uint8), "PNG"))
    with pytest.raises(SettingsError, match=r"has 1 class \(\['only'\]\).*at least 2"):
        train(
            TrainConfig(
                dataset="image_folder", image_dir=f"{tmp_path}/images", model_dir=f"{tmp_path}/run"
            )
        )
    assert not os.path.exists(tmp_path / "run")
