"""Prediction with an exported SavedModel or a .keras file, and scripts/predict.py."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import AlexNet
from keras_alexnet.data import IMAGENET_STATS, pipeline
from keras_alexnet.export import export_saved_model
from keras_alexnet.prediction import load_classifier
from tests.conftest import REPO_ROOT, run_python

NAMES = ("circle", "ring", "star")
EXAMPLES = [os.path.join(REPO_ROOT, "examples", f"{n}.jpg") for n in ("circle", "ring", "star")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-class model saved both ways: an export base directory and a .keras file."""
    keras.utils.set_random_seed(5)
    model = AlexNet(classes=3, init="he")
    root = tmp_path_factory.mktemp("models")
    export_saved_model(model, str(root / "export"), NAMES)
    model.save(root / "model.keras")
    (root / "names.txt").write_text("\n".join(NAMES) + "\n")
    return model, root


def _expected(model, path):
    with open(path, "rb") as f:
        view = pipeline.eval_view(tf.constant(f.read()), IMAGENET_STATS)
    probabilities = model(view[None], training=False).numpy()[0]
    order = np.argsort(-probabilities)
    return [NAMES[i] for i in order], probabilities[order]


@pytest.mark.parametrize("kind", ["export base dir", "version dir", ".keras"])
def test_classifiers_agree_with_the_model(trained, kind):
    model, root = trained
    path = {
        "export base dir": root / "export",
        "version dir": root / "export" / "1",
        ".keras": root / "model.keras",
    }[kind]
    classify = load_classifier(str(path), class_names=str(root / "names.txt"))
    for example in EXAMPLES:
        labels, scores = zip(*classify(open(example, "rb").read()), strict=True)
        want_labels, want_scores = _expected(model, example)
        assert list(labels) == want_labels
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_not_an_image_is_a_value_error(trained):
    _, root = trained
    for path in (root / "export", root / "model.keras"):
        classify = load_classifier(str(path), class_names=str(root / "names.txt"))
        with pytest.raises(ValueError, match="not a JPEG or PNG image"):
            classify(b"GIF89a? no, plain text")


def test_a_path_that_is_no_model_says_how_to_make_one(tmp_path):
    with pytest.raises(ValueError, match="neither a SavedModel"):
        load_classifier(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        load_classifier(str(tmp_path / "missing.keras"))


def test_predict_script_prints_top_labels_and_one_line_errors(trained, tmp_path):
    _, root = trained
    garbage = tmp_path / "notes.jpg"
    garbage.write_bytes(b"these are not pixels")
    result = run_python(
        [
            "scripts/predict.py",
            f"--model={root / 'export'}",
            *EXAMPLES,
            str(tmp_path / "missing.jpg"),
            str(garbage),
        ]
    )
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == EXAMPLES
    for line in lines:
        assert sorted(label.split()[0] for label in line.split(": ")[1].split(", ")) == sorted(
            NAMES
        )
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == [
        f"ERROR: {tmp_path / 'missing.jpg'}: no such file",
        errors[1],
    ]
    assert errors[1].startswith(f"ERROR: {garbage}: not a JPEG or PNG image")
    assert "Traceback" not in result.stderr
