"""scripts/convert_weights.py and scripts/export.py on a bvlc_alexnet file of the real size
(1000 classes, 244 MB, Caffe's V1 form), end to end in subprocesses."""

import json
import os
import re
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import imagenet_class_names
from tests.conftest import run_python
from tests.weights import caffe_files, caffe_reference


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.slow
def test_convert_then_export_serves_what_caffe_computes(tmp_path):
    weights = caffe_files.random_weights(seed=9, classes=1000)
    source = str(tmp_path / "bvlc_alexnet.caffemodel")
    caffe_files.write_caffemodel(source, weights, form="v1")
    converted = str(tmp_path / "bvlc_alexnet.keras")
    abandoned = tmp_path / f".saving-{_dead_pid()}-x1"
    live = tmp_path / f".saving-{os.getpid()}-x2"
    abandoned.mkdir()
    (abandoned / "bvlc_alexnet.keras").write_bytes(b"left by a killed conversion")
    live.mkdir()

    result = run_python(["scripts/convert_weights.py", source, f"--output={converted}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert not abandoned.exists() and live.exists()
    assert f"Removed {abandoned.name}, left by a save that was killed." in result.stdout
    assert "sha256 " in result.stdout and "none of the known releases" in result.stdout
    assert "1000 classes, 60,965,224 parameters" in result.stdout

    again = run_python(["scripts/convert_weights.py", source, f"--output={converted}"])
    assert again.returncode == 1 and "exists; pass --overwrite" in again.stderr

    export_dir = str(tmp_path / "saved_models" / "bvlc_alexnet")
    result = run_python(["scripts/export.py", f"--model={converted}", f"--export_dir={export_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]

    images = np.random.default_rng(2).uniform(0, 255, (2, 227, 227, 3)).astype("float32")
    served = tf.saved_model.load(f"{export_dir}/1").signatures["predict_images"](
        images=tf.constant(images)
    )
    logits = caffe_reference.forward(weights, images)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    names = imagenet_class_names()
    best = [names[i] for i in np.argmax(logits, axis=1)]
    assert [label.decode() for label in served["labels"].numpy()[:, 0]] == best

    # Where the weights came from travels with the .keras file into the export's model card.
    with open(f"{export_dir}/1/assets.extra/model_card.json") as file:
        card = json.load(file)
    assert card["weights"] == "bvlc_alexnet.caffemodel"
    assert "sha256" in card["file"] and "pretrained" not in card  # not a known release
    assert card["classes"] == 1000 and card["class_names"] == names


@pytest.mark.parametrize(
    "args, message",
    [
        (["/nonexistent.caffemodel", "--output=x.keras"], r"does not exist"),
        (["a.caffemodel", "--output=x.h5"], r"--output must end in .keras"),
        (["--output=x.keras"], r"exactly one weights file"),
        (["a.caffemodel", "--output=/nonexistent/x.keras"], r"/nonexistent, does not exist"),
    ],
)
def test_convert_bad_arguments_are_one_line(args, message):
    result = run_python(["scripts/convert_weights.py", *args])
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert re.search(message, result.stderr)


def test_convert_refuses_another_network_in_one_line(tmp_path):
    path = tmp_path / "caffenet.caffemodel"
    caffe_files.write_caffemodel(
        str(path),
        caffe_files.random_weights(include_top=False),
        layers=caffe_files.caffenet_layers(),
    )
    result = run_python(
        ["scripts/convert_weights.py", str(path), f"--output={tmp_path / 'x.keras'}"]
    )
    assert result.returncode == 1
    assert "ERROR:" in result.stderr and "is CaffeNet" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.keras").exists()


def test_install_refuses_a_file_that_is_no_known_release_in_one_line(tmp_path):
    source = tmp_path / "bvlc_alexnet.caffemodel"
    source.write_bytes(b"\x0a\x07AlexNet")
    result = run_python(
        ["scripts/convert_weights.py", str(source), "--install"],
        env={"KERAS_HOME": str(tmp_path / "keras_home"), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr  # one line, after TensorFlow's own start-up lines
    assert "is none of the known files of bvlc_alexnet" in errors[0]
    assert "9116a64c0fbe4459d18f4bb6b56d647b63920377" in errors[0]
    assert not (tmp_path / "keras_home" / "models" / "bvlc_alexnet_imagenet.weights.h5").exists()


def test_convert_onto_a_folder_is_one_line_before_reading_the_file(tmp_path):
    (tmp_path / "out.keras").mkdir()
    result = run_python(
        ["scripts/convert_weights.py", "a.caffemodel", f"--output={tmp_path}/out.keras"]
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "is a folder; give the path of a .keras file" in result.stderr
