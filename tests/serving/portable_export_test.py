"""ONNX and LiteRT exports beside the SavedModel: each run by its own runtime (onnxruntime,
TensorFlow's LiteRT interpreter) and compared with the Keras model on the same images."""

import collections
import json
import os

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf

from keras_alexnet import AlexNet
from keras_alexnet.data import ColorStats
from keras_alexnet.serving import portable_export
from keras_alexnet.serving.export import export_saved_model
from tests.weights import caffe_files

CLASS_NAMES = ("cat", "dog", "fox")
STATS = ColorStats(
    mean_rgb=(120.0, 110.0, 100.0),
    eigenvalues=(0.2, 0.02, 0.005),
    eigenvectors=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
)
# The bar: the runtime reproduces the model's outputs within 1e-4, relative.
RTOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The Caffe variant (the ImageNet model's graph: cross-tower LRN) with He-scaled random
    weights, so that LRN changes the activations, exported with both portable formats."""
    folder = tmp_path_factory.mktemp("portable")
    caffe_files.write_caffemodel(
        folder / "bvlc.caffemodel", caffe_files.random_weights(seed=8, classes=3)
    )
    model = AlexNet(weights=str(folder / "bvlc.caffemodel"), classes=3)
    path = export_saved_model(
        model,
        str(folder / "alexnet"),
        CLASS_NAMES,
        STATS,
        card={"weights": "test"},
        also=("onnx", "litert"),
    )
    images = np.random.default_rng(4).uniform(0, 255, (3, 227, 227, 3)).astype("float32")
    expected = model.predict(images - np.float32(STATS.mean_rgb), verbose=0)
    return path, images, expected


def relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def test_the_version_directory_holds_all_three(exported):
    path, _, _ = exported
    assert sorted(os.listdir(path)) == [
        "assets",
        "assets.extra",
        "fingerprint.pb",
        "model.onnx",
        "model.tflite",
        "saved_model.pb",
        "variables",
    ]


def test_onnxruntime_reproduces_the_model(exported):
    path, images, expected = exported
    session = onnxruntime.InferenceSession(os.path.join(path, "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    (probabilities,) = session.run(None, {"images": images})  # a batch of 3: any batch size
    assert probabilities.shape == (3, 3)
    assert relative_error(probabilities, expected) < RTOL
    assert np.max(np.abs(expected - expected.mean(axis=1, keepdims=True))) > 0.05  # not flat


def test_onnx_graph_keeps_lrn_and_both_towers(exported):
    path, _, _ = exported
    graph = onnx.load(os.path.join(path, "model.onnx"))
    operators = collections.Counter(node.op_type for node in graph.graph.node)
    assert operators["LRN"] == 4  # norm1 and norm2 of each tower
    assert operators["Conv"] == 10  # conv1 to conv5 of each tower
    metadata = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(metadata["class_names"]) == list(CLASS_NAMES)
    assert json.loads(metadata["mean_rgb"]) == list(STATS.mean_rgb)
    assert json.loads(metadata["model_card"]) == {"weights": "test"}


def test_litert_interpreter_reproduces_the_model(exported):
    path, images, expected = exported
    interpreter = tf.lite.Interpreter(model_path=os.path.join(path, "model.tflite"))
    (given,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(given["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], images)
    interpreter.invoke()
    operators = {op["op_name"] for op in interpreter._get_ops_details()}
    probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert relative_error(probabilities, expected) < RTOL
    assert "LOCAL_RESPONSE_NORMALIZATION" in operators


def test_unknown_formats_are_named_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"unknown export format\(s\) 'tflite'; the formats"):
        export_saved_model(AlexNet(classes=3), str(tmp_path), CLASS_NAMES, also=["tflite"])
    assert os.listdir(tmp_path) == []
    assert portable_export.check_formats(["onnx", "onnx", "litert"]) == ("onnx", "litert")


def test_export_script_writes_litert_beside_the_saved_model(tmp_path):
    from tests.conftest import run_python

    keras.utils.set_random_seed(1)
    model_path = tmp_path / "m.keras"
    AlexNet(classes=1000, init="he").save(model_path)
    args = ["scripts/export.py", f"--model={model_path}", f"--export_dir={tmp_path / 'out'}"]
    result = run_python([*args, "--also=litert"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(tmp_path / "out" / "1" / "model.tflite")
    wrong = run_python([*args, "--also=onnx,gguf"])
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "--also: unknown export format(s) 'gguf'" in wrong.stderr


def test_an_int8_model_is_refused_for_onnx_and_litert(tmp_path):
    from keras_alexnet.serving import quantization

    model = quantization.quantize_dense_layers(AlexNet(classes=3))
    for fmt, words in (("onnx", "writes float32 weights"), ("litert", "cannot convert")):
        with pytest.raises(ValueError, match=words):
            export_saved_model(model, str(tmp_path), CLASS_NAMES, also=[fmt])
    assert list(tmp_path.iterdir()) == []


def test_the_onnx_writer_refuses_what_it_does_not_know():
    with pytest.raises(ValueError, match="include_top=True"):
        portable_export.check_exportable(AlexNet(include_top=False), ["onnx"])
    with pytest.raises(ValueError, match="classifier activations"):
        portable_export.check_exportable(
            AlexNet(classes=3, classifier_activation="sigmoid"), ["onnx"]
        )


def test_onnx_of_the_paper_variant_with_he_init_and_logits(tmp_path):
    """The paper's LRN (alpha as written: ONNX's alpha is 5 times it), the "he" model's input
    scaling, and a classifier without softmax."""
    keras.utils.set_random_seed(4)
    model = AlexNet(classes=4, init="he", classifier_activation=None)
    path = portable_export.export_portable(model, str(tmp_path), "onnx", STATS, CLASS_NAMES[:1] * 4)
    images = np.random.default_rng(6).uniform(0, 255, (2, 227, 227, 3)).astype("float32")
    (logits,) = onnxruntime.InferenceSession(path).run(None, {"images": images})
    expected = model.predict(images - np.float32(STATS.mean_rgb), verbose=0)
    assert relative_error(logits, expected) < RTOL
    lrn = [n for n in onnx.load(path).graph.node if n.op_type == "LRN"][0]
    assert {a.name: round(a.f, 8) for a in lrn.attribute if a.name != "size"} == {
        "alpha": 5e-4,
        "beta": 0.75,
        "bias": 2.0,
    }
