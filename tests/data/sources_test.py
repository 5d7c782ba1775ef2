"""Dataset sources: image folders with bad files, tfds by name, ImageNet from its tars,
and the embedded set."""

import io
import logging
import os
import tarfile
import time
import types

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.data import (
    eval_dataset,
    image_folder_source,
    imagenet_source,
    make_source,
    sources,
    tfds_source,
)
from keras_alexnet.data.shapes_dataset import CLASS_NAMES, draw_example
from tests.conftest import encode, random_image, write

GOOD_PER_CLASS = 6


def _labels(source, split):
    return [int(label) for _, label in source.encoded(split)]


def test_image_folder_skips_bad_files_with_named_warnings(image_folder, caplog):
    with caplog.at_level(logging.WARNING):
        source = image_folder_source(image_folder, validation_fraction=0.25, seed=3)
    assert source.class_names == ("cat", "dog", "fox")
    assert source.num_examples == {"train": 12, "validation": 6}
    messages = "\n".join(r.getMessage() for r in caplog.records)
    for bad in ("cat/truncated.jpg", "dog/notes.txt", "dog/empty.jpg"):
        assert f"{bad}: not a complete JPEG or PNG image" in messages
    # Intact ends, damaged data: found by the decoding pass of a small folder.
    assert "fox/garbled.jpg: its image data does not decode" in messages
    assert "Skipped 4 of 22 files" in messages
    assert ".DS_Store" not in messages
    # Nothing good is lost: every good image is in exactly one split, labels by folder.
    train, validation = _labels(source, "train"), _labels(source, "validation")
    assert sorted(train + validation) == [0] * 6 + [1] * 6 + [2] * 6
    assert sorted(validation) == [0, 0, 1, 1, 2, 2]  # stratified: 25% of each class


def test_pipeline_backstop_skips_undecodable_file_but_keeps_the_rest(image_folder):
    """Without the decoding pass (large folders), fox/garbled.jpg passes the quick check and
    fails to decode in the pipeline, which skips it (strict mode fails instead)."""
    source = image_folder_source(image_folder, validation_fraction=0.0, verify=False)
    assert source.num_examples["train"] == 19  # 18 good + the garbled one
    images = sum(int(x.shape[0]) for x, _ in eval_dataset(source, 4, split="train"))
    assert images == 18
    with pytest.raises(tf.errors.InvalidArgumentError):
        for _ in eval_dataset(source, 4, split="train", strict=True):
            pass


def test_image_folder_strict_fails_naming_the_file(image_folder):
    with pytest.raises(ValueError, match=r"truncated\.jpg.*not a complete JPEG or PNG"):
        image_folder_source(image_folder, strict=True)
    os.remove(os.path.join(image_folder, "cat", "truncated.jpg"))
    for name in ("notes.txt", "empty.jpg"):
        os.remove(os.path.join(image_folder, "dog", name))
    with pytest.raises(ValueError, match=r"garbled\.jpg.*does not decode"):
        image_folder_source(image_folder, strict=True)


def test_held_out_split_is_fixed_by_the_seed(image_folder):
    def validation_files(seed):
        source = image_folder_source(image_folder, validation_fraction=0.5, seed=seed)
        return sorted(bytes(e.numpy()) for e, _ in source.encoded("validation"))

    assert validation_files(1) == validation_files(1)
    assert validation_files(1) != validation_files(2)


def test_train_and_validation_folders(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("validation", 2)):
        for name in ("a", "b"):
            for i in range(count):
                write(f"{tmp_path}/{split}/{name}/{i}.png", encode(random_image(rng), "PNG"))
    source = image_folder_source(str(tmp_path))
    assert source.num_examples == {"train": 6, "validation": 4}
    assert sorted(_labels(source, "validation")) == [0, 0, 1, 1]
    write(f"{tmp_path}/validation/zebra/0.png", encode(random_image(rng), "PNG"))
    with pytest.raises(ValueError, match=r"class folders that train/ does not have: \['zebra'\]"):
        image_folder_source(str(tmp_path))


def test_shuffled_stream_is_seeded(image_folder):
    source = image_folder_source(image_folder, validation_fraction=0.0)

    def order(seed):
        return [int(label) for _, label in source.encoded("train", shuffle_seed=seed)]

    assert order(5) == order(5)
    assert order(5) != order(6)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match=r"nowhere' does not exist"):
        image_folder_source(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty' has no class subfolders"):
        image_folder_source(str(tmp_path / "empty"))
    write(f"{tmp_path}/one/cat/0.png", encode(random_image(np.random.default_rng(0)), "PNG"))
    write(f"{tmp_path}/one/dog/readme.txt", b"no images here")
    with pytest.raises(ValueError, match=r"class folder .*dog.* holds no JPEG or PNG images"):
        image_folder_source(str(tmp_path / "one"))
    with pytest.raises(ValueError, match="validation_fraction=1.5"):
        image_folder_source(str(tmp_path / "one"), validation_fraction=1.5)
    with pytest.raises(ValueError, match="needs image_dir"):
        make_source("image_folder")


def test_tfds_name_that_does_not_exist(tmp_path):
    with pytest.raises(ValueError, match=r"no tensorflow-datasets dataset named 'no_such_set'"):
        tfds_source("no_such_set", data_dir=str(tmp_path))


def test_tfds_dataset_that_is_not_prepared(tmp_path):
    with pytest.raises(ValueError, match=r"'mnist' is not prepared.*Nothing is downloaded"):
        tfds_source("mnist", data_dir=str(tmp_path))


def test_tfds_split_names():
    def fake(*splits):
        return types.SimpleNamespace(
            name="x", info=types.SimpleNamespace(splits=dict.fromkeys(splits))
        )

    assert sources._tfds_split_names(fake("train", "validation", "test")) == {
        "train": "train",
        "validation": "validation",
    }
    assert sources._tfds_split_names(fake("train", "test"))["validation"] == "test"
    assert sources._tfds_split_names(fake("train")) == {
        "train": "train[:90%]",
        "validation": "train[90%:]",
    }
    with pytest.raises(ValueError, match="no 'train' split"):
        sources._tfds_split_names(fake("test"))


def test_embedded_dataset_builds_with_the_promised_sizes(shapes_source):
    assert shapes_source.name == "alexnet_shapes"
    assert shapes_source.class_names == CLASS_NAMES and len(CLASS_NAMES) == 10
    assert shapes_source.num_examples == {"train": 3000, "validation": 600}
    images = list(shapes_source.images("validation").take(20))
    assert all(image.shape == (128, 128, 3) and image.dtype == tf.uint8 for image, _ in images)
    labels = [int(label) for _, label in shapes_source.encoded("validation")]
    assert np.bincount(labels).tolist() == [60] * 10


def test_embedded_dataset_by_name(shapes_source, shapes_data_dir):
    """tfds_source and make_source know the embedded set by name (and reuse the prepared data)."""
    for source in (
        tfds_source("alexnet_shapes", shapes_data_dir),
        make_source("alexnet_shapes", data_dir=shapes_data_dir),
    ):
        assert source.num_examples == shapes_source.num_examples


def test_embedded_dataset_is_deterministic():
    a, label_a = draw_example("train", 17)
    b, label_b = draw_example("train", 17)
    np.testing.assert_array_equal(a, b)
    assert label_a == label_b == 7
    assert not np.array_equal(draw_example("validation", 17)[0], a)


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.slow
def test_imagenet2012_from_fake_tars_through_the_manual_dir(tmp_path):
    """The real tfds imagenet2012 builder, fed tiny ILSVRC2012-shaped archives."""
    rng = np.random.default_rng(0)
    manual = tmp_path / "manual"
    manual.mkdir()
    jpeg = lambda: encode(random_image(rng, 40, 50), "JPEG")  # noqa: E731
    synsets = {"n01440764": 0, "n01443537": 1}  # tench, goldfish
    inner = {f"{s}.tar": _tar_bytes({f"{s}_{i}.JPEG": jpeg() for i in range(2)}) for s in synsets}
    (manual / "ILSVRC2012_img_train.tar").write_bytes(_tar_bytes(inner))
    val = {f"ILSVRC2012_val_{i:08d}.JPEG": jpeg() for i in (1, 2, 3)}
    (manual / "ILSVRC2012_img_val.tar").write_bytes(_tar_bytes(val))

    source = imagenet_source(data_dir=str(tmp_path / "data"), manual_dir=str(manual))
    assert source.num_examples == {"train": 4, "validation": 3}
    assert len(source.class_names) == 1000 and source.class_names[0] == "n01440764"
    assert sorted(_labels(source, "train")) == [0, 0, 1, 1]
    # Validation labels come from tfds' list, in file-name order.
    import tensorflow_datasets as tfds

    with open(
        os.path.join(
            os.path.dirname(tfds.__file__), "datasets", "imagenet2012", "validation_labels.txt"
        )
    ) as f:
        expected = [source.class_names.index(s) for s in f.read().split()[:3]]
    assert sorted(_labels(source, "validation")) == sorted(expected)
    batch, labels = next(iter(eval_dataset(source, 3)))
    assert batch.shape == (3, 227, 227, 3)
    # Prepared once: a second call needs no manual files.
    for name in os.listdir(manual):
        os.remove(manual / name)
    assert imagenet_source(data_dir=str(tmp_path / "data")).num_examples["train"] == 4


def test_imagenet2012_missing_files_say_which_and_where(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "ILSVRC2012_img_val.tar").write_bytes(b"")
    with pytest.raises(ValueError) as error:
        imagenet_source(data_dir=str(tmp_path / "data"), manual_dir=str(manual))
    message = str(error.value)
    assert "ILSVRC2012_img_train.tar not found" in message
    assert "ILSVRC2012_img_val.tar not found" not in message
    assert str(manual) in message and "image-net.org" in message


@pytest.mark.parametrize(
    "dataset, given, message",
    [
        (
            "alexnet_shapes",
            {"image_dir": "photos"},
            "image_dir is not used by dataset='alexnet_shapes'.*Add dataset='image_folder'",
        ),
        (
            "image_folder",
            {"image_dir": "photos", "data_dir": "tfds"},
            "data_dir is not used by dataset='image_folder'",
        ),
        ("cifar10", {"manual_dir": "tars"}, "manual_dir is not used by dataset='cifar10'"),
    ],
)
def test_a_location_the_dataset_does_not_use_is_an_error_naming_both(dataset, given, message):
    """`--image_dir` without `--dataset=image_folder` used to train on the embedded set."""
    from keras_alexnet.data import make_source

    with pytest.raises(ValueError, match=message):
        make_source(dataset, **given)


@pytest.mark.parametrize("name", ["two\nlines", " padded", "cr\r"])
def test_a_class_folder_name_that_cannot_round_trip_is_refused(tmp_path, name):
    """class_names.txt keeps one stripped name per line: 'two\\nlines' read back as 2 names."""
    from keras_alexnet.data import image_folder_source

    for folder in (name, "other"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.png").write_bytes(
            encode(random_image(np.random.default_rng(0)), "PNG")
        )
    with pytest.raises(ValueError, match="Rename the folder"):
        image_folder_source(str(tmp_path))


def test_pipes_devices_and_links_to_them_are_skipped_at_once(image_folder, caplog):
    """Opening a pipe would block and a device read without end: each is skipped, named,
    before anything opens it."""
    os.mkfifo(os.path.join(image_folder, "cat", "pipe.jpg"))
    os.symlink("/dev/zero", os.path.join(image_folder, "dog", "zero.jpg"))
    os.symlink("/dev/urandom", os.path.join(image_folder, "fox", "noise.png"))
    with caplog.at_level(logging.WARNING):
        source = image_folder_source(image_folder, validation_fraction=0.25, seed=3)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    for name in ("cat/pipe.jpg", "dog/zero.jpg", "fox/noise.png"):
        assert f"{name}: it is not a regular file" in messages
    assert source.num_examples == {"train": 12, "validation": 6}


def test_a_class_folder_linking_outside_the_image_folder_is_refused(image_folder, tmp_path):
    """A class folder that is a link to / was walked whole (436,236 files) and trained on."""
    os.symlink("/", os.path.join(image_folder, "everything"))
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"'.*everything' is a link to '/', outside the image"):
        image_folder_source(image_folder, validation_fraction=0.25, seed=3)
    assert time.monotonic() - started < 5
    os.remove(os.path.join(image_folder, "everything"))
    os.symlink(os.path.join(image_folder, "cat"), os.path.join(image_folder, "kitten"))
    source = image_folder_source(image_folder, validation_fraction=0.25, seed=3)
    assert "kitten" in source.class_names  # a link within the image folder is followed


def test_hidden_folders_are_skipped_with_a_word(image_folder, caplog):
    os.makedirs(os.path.join(image_folder, ".thumbnails"))
    with caplog.at_level(logging.WARNING):
        source = image_folder_source(image_folder, validation_fraction=0.25, seed=3)
    assert ".thumbnails" not in source.class_names
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "Skipping 1 folder(s) of" in messages and ".thumbnails" in messages


def test_a_truncated_jpeg_declaring_a_large_image_is_skipped_by_name(image_folder, caplog):
    small = encode(np.full((8, 8, 3), 90, np.uint8), "JPEG")
    at = small.index(b"\xff\xc0") + 5
    short = small[:at] + (5657).to_bytes(2, "big") + (7000).to_bytes(2, "big") + small[at + 4 :]
    with open(os.path.join(image_folder, "cat", "short.jpg"), "wb") as file:
        file.write(short)
    with caplog.at_level(logging.WARNING):
        image_folder_source(image_folder, validation_fraction=0.25, seed=3)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "cat/short.jpg: it declares 7000x5657 pixels in only" in messages
