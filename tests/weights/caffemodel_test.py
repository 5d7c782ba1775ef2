"""AlexNet(weights=<.caffemodel>): Caffe's bvlc_alexnet, loaded exactly.

The golden values come from `caffe_reference`, a NumPy forward pass written from Caffe's
layer definitions (and checked against onnxruntime in onnx_test.py). Files are written by
`caffe_files` in both of Caffe's forms, with random weights.
"""

import keras
import numpy as np
import pytest

from keras_alexnet import AlexNet, imagenet_class_index, preprocess_input
from keras_alexnet.weights.caffe import load_pretrained
from tests.weights import caffe_files, caffe_reference
from tests.weights.caffe_reference import TOLERANCE, relative_error

CLASSES = 10


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory, weights):
    path = str(tmp_path_factory.mktemp("caffe") / "bvlc_alexnet.caffemodel")
    caffe_files.write_caffemodel(path, weights, form="v1")
    return path


@pytest.fixture(scope="module")
def v1_logits(v1_file, images):
    model = AlexNet(weights=v1_file, classes=CLASSES, classifier_activation=None)
    return model(preprocess_input(images)).numpy()


@pytest.fixture(scope="module")
def reference_logits(weights, images):
    return caffe_reference.forward(weights, images)


def test_v1_file_computes_what_caffe_computes(v1_logits, reference_logits):
    assert relative_error(v1_logits, reference_logits) < TOLERANCE


@pytest.mark.parametrize(
    "detail",
    [
        {"bgr": False},
        {"lrn_k": 2.0},
        {"alpha_over_size": False},
        {"cross_tower_lrn": False},
        {"groups_in_order": False},
        {"chw_flatten": False},
        {"pool_before_norm": True},
    ],
    ids=lambda d: next(iter(d)),
)
def test_the_comparison_notices_each_detail(detail, weights, images, v1_logits):
    """With any one of Caffe's details changed, the reference is far from the model: the
    comparison above would fail (measured with two seeds: 0.007 and 0.02 for the cross-tower
    LRN, the smallest; 0.09 for BGR; 0.25 to 1.2 for the others)."""
    changed = caffe_reference.forward(weights, images, detail)
    assert relative_error(v1_logits, changed) > 10 * TOLERANCE


def test_current_form_loads_the_same_function(tmp_path, weights, images, reference_logits):
    path = str(tmp_path / "current.caffemodel")
    caffe_files.write_caffemodel(path, weights, form="current", training_net=False)
    model = AlexNet(weights=path, classes=CLASSES, classifier_activation="softmax")
    probabilities = model(preprocess_input(images)).numpy()
    expected = keras.ops.softmax(reference_logits).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


@pytest.fixture(scope="module")
def base_weights():
    return caffe_files.random_weights(seed=2, include_top=False)


@pytest.mark.parametrize("form", ["v1", "current"])
def test_convolutional_base_with_unpacked_floats(tmp_path, base_weights, images, form):
    """A file ending at pool5, its floats written one by one (not packed), loads into
    include_top=False; pool5 matches the reference (C, H, W) blob."""
    path = str(tmp_path / "base.caffemodel")
    caffe_files.write_caffemodel(path, base_weights, form=form, packed=False)
    pool5 = AlexNet(include_top=False, weights=path)(preprocess_input(images)).numpy()
    expected = caffe_reference.forward(base_weights, images, include_top=False)
    assert relative_error(pool5.transpose(0, 3, 1, 2), expected) < TOLERANCE
    with pytest.raises(ValueError, match=r"convolutional base only.*include_top=False"):
        AlexNet(weights=path)


def test_full_file_loads_into_the_convolutional_base(v1_file, weights, images):
    pool5 = AlexNet(include_top=False, weights=v1_file)(preprocess_input(images)).numpy()
    expected = caffe_reference.forward(weights, images, include_top=False)
    assert relative_error(pool5.transpose(0, 3, 1, 2), expected) < TOLERANCE


def test_class_count_and_channels_must_fit(v1_file):
    with pytest.raises(
        ValueError,
        match=r"has 10 classes \(fc8\) but the model has 1000.*"
        r"classes=10",
    ):
        AlexNet(weights=v1_file)
    with pytest.raises(ValueError, match=r"3 channels.*Received: input_shape=\(None, None, 1\)"):
        AlexNet(weights=v1_file, include_top=False, input_shape=(None, None, 1))
    with pytest.raises(ValueError, match=r"need lrn='caffe'.*Received: lrn='paper'"):
        AlexNet(weights=v1_file, classes=CLASSES, lrn="paper")
    with pytest.raises(ValueError, match=r"input_scaling.*Received: init='he'"):
        AlexNet(weights=v1_file, classes=CLASSES, init="he")


def test_caffenet_is_refused(tmp_path, base_weights):
    path = str(tmp_path / "caffenet.caffemodel")
    caffe_files.write_caffemodel(path, base_weights, layers=caffe_files.caffenet_layers())
    with pytest.raises(ValueError, match=r"caffenet.caffemodel is CaffeNet.*'pool1' then 'norm1'"):
        AlexNet(include_top=False, weights=path)


def _base_layers(**changes):
    """CONV_LAYERS with some layers' params replaced: name -> params."""
    return [
        (name, type_name, {**params, **changes.get(name, {})})
        for name, type_name, params in caffe_files.CONV_LAYERS
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"layers": _base_layers(norm1={"k": 2.0})}, r"'norm1'.*LRN k=2.0; bvlc_alexnet's is k=1"),
        ({"layers": _base_layers(norm2={"local_size": 3})}, r"'norm2'.*size=3"),
        ({"layers": _base_layers(pool2={"pool": 1})}, r"'pool2'.*average pooling"),
        ({"layers": _base_layers(conv3={"pad": 0})}, r"'conv3'.*pads \(0, 0, 0, 0\)"),
        ({"weights": {"conv2": (96, 5, 5)}}, r"'conv2'.*\(256, 96, 5, 5\).*2 groups"),
        ({"weights": {"conv1": (64, 3, 11, 11)}}, r"'conv1'.*torchvision's alexnet"),
    ],
)
def test_another_network_is_refused_naming_the_layer(tmp_path, base_weights, change, message):
    weights = dict(base_weights)
    for name, shape in change.get("weights", {}).items():
        if len(shape) == 3:  # conv2 without groups: every filter reads all 96 channels
            shape = (256, *shape)
        weights[name] = (np.zeros(shape, np.float32), np.zeros(shape[0], np.float32))
    path = str(tmp_path / "other.caffemodel")
    caffe_files.write_caffemodel(path, weights, layers=change.get("layers"))
    with pytest.raises(ValueError, match=message) as error:
        AlexNet(include_top=False, weights=path)
    assert "other.caffemodel" in str(error.value)


def test_an_unknown_layer_type_is_refused(tmp_path, base_weights):
    layers = list(caffe_files.CONV_LAYERS)
    layers.insert(1, ("bn1", "BatchNorm", {}))
    path = str(tmp_path / "bn.caffemodel")
    caffe_files.write_caffemodel(path, base_weights, form="current", layers=layers)
    with pytest.raises(ValueError, match=r"'bn1' is of type 'BatchNorm'.*another architecture"):
        AlexNet(include_top=False, weights=path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"is empty"),
        (b"\xff\xd8\xff\xe0" + bytes(200), r"not a readable Caffe model"),
        (b'name: "AlexNet"\nlayer {\n  name: "conv1"\n}\n', r"not a readable Caffe model|no Caffe"),
        (bytes(range(256)) * 40, r"not a readable Caffe model|no Caffe layers"),
    ],
    ids=["empty", "jpeg", "prototxt", "noise"],
)
def test_foreign_bytes_are_refused(tmp_path, content, message):
    path = tmp_path / "foreign.caffemodel"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        AlexNet(include_top=False, weights=str(path))
    assert str(path) in str(error.value)


def test_truncated_file_is_refused_and_nothing_is_loaded(tmp_path, base_weights):
    path = tmp_path / "cut.caffemodel"
    caffe_files.write_caffemodel(str(path), base_weights)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    model = AlexNet(lrn="caffe", include_top=False)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(
        ValueError,
        match=r"cut.caffemodel is not a readable Caffe model.*"
        r"truncated",
    ):
        load_pretrained(model, str(path), include_top=False)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_keras_weights_of_the_caffe_variant_do_not_cross_over(tmp_path):
    path = str(tmp_path / "caffe.weights.h5")
    AlexNet(include_top=False, lrn="caffe").save_weights(path)
    with pytest.raises(ValueError, match=r"saved from a model with Caffe's cross-tower LRN"):
        AlexNet(include_top=False, weights=path)
    assert AlexNet(include_top=False, lrn="caffe", weights=path) is not None


def test_imagenet_class_order_is_caffes():
    """Caffe's synset_words.txt lists the 1000 classes by WordNet id, sorted: its fc8 row i is
    the i-th sorted synset. keras_alexnet's class index is in that same order, so a converted
    model's class names are right with no reordering."""
    synsets = [synset for synset, _, _ in imagenet_class_index()]
    assert synsets == sorted(synsets) and len(set(synsets)) == 1000
    assert synsets[0] == "n01440764" and synsets[-1] == "n15075141"
