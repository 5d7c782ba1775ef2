"""The TF Serving export: reloaded and compared with the in-memory model."""

import dataclasses
import errno
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import AlexNet, files
from keras_alexnet.data import ColorStats, pipeline
from keras_alexnet.serving import export, export_store, signatures
from keras_alexnet.serving.export import export_saved_model
from keras_alexnet.serving.export_store import next_version
from tests.conftest import encode, progressive_jpeg

CLASS_NAMES = ("cat", "dog", "fox")
STATS = ColorStats(
    mean_rgb=(120.0, 110.0, 100.0),
    eigenvalues=(0.2, 0.02, 0.005),
    eigenvectors=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = AlexNet(classes=3, init="he")
    export_dir = str(tmp_path_factory.mktemp("export") / "alexnet")
    path = export_saved_model(model, export_dir, CLASS_NAMES, STATS)
    return model, export_dir, path, tf.saved_model.load(path)


def test_export_writes_version_1_and_nothing_else(exported):
    _, export_dir, path, _ = exported
    assert path == os.path.join(export_dir, "1")
    assert os.listdir(export_dir) == ["1"]
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert next_version(export_dir) == 2


def test_serving_default_decodes_like_evaluation_and_matches_the_model(exported):
    model, _, _, served = exported
    rng = np.random.default_rng(0)
    encoded = [
        encode(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), "JPEG"),
        encode(rng.integers(0, 256, (260, 240, 3), dtype=np.uint8), "PNG"),
    ]
    out = served.signatures["serving_default"](image_bytes=tf.constant(encoded))
    views = np.stack([pipeline.eval_view(tf.constant(e), STATS).numpy() for e in encoded])
    want = model(views, training=False).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), want, atol=1e-5)
    order = np.argsort(-want, axis=1)
    np.testing.assert_array_equal(out["classes"].numpy(), order)
    assert out["classes"].dtype == tf.int32
    np.testing.assert_allclose(out["scores"].numpy(), np.take_along_axis(want, order, 1), atol=1e-5)
    labels = [[name.decode() for name in row] for row in out["labels"].numpy()]
    assert labels == [[CLASS_NAMES[i] for i in row] for row in order]


def test_predict_images_subtracts_the_training_mean(exported):
    model, _, _, served = exported
    images = np.random.default_rng(1).uniform(0, 255, (3, 227, 227, 3)).astype("float32")
    out = served.signatures["predict_images"](images=tf.constant(images))
    want = model(images - np.float32(STATS.mean_rgb), training=False).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), want, atol=1e-5)
    assert sorted(out) == ["classes", "labels", "probabilities", "scores"]


def _ten_views(image: np.ndarray) -> np.ndarray:
    """Paper 4.1's ten 227x227 views of a 256x256 image, cut by hand: the corners, the centre
    (offset (256 - 227) // 2 = 14), then the five mirrored left-right."""
    corners = [image[t : t + 227, s : s + 227] for t, s in ((0, 0), (0, 29), (29, 0), (29, 29))]
    crops = np.stack([*corners, image[14:241, 14:241]])
    return np.concatenate([crops, crops[:, :, ::-1]])


def test_ten_crop_averages_the_softmax_over_the_papers_ten_views(exported):
    model, _, _, served = exported
    rng = np.random.default_rng(4)
    # 256x256 PNGs: no resize, no JPEG loss, so the views are the pixels cut by hand.
    pixels = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    out = served.signatures["ten_crop"](image_bytes=tf.constant([encode(p, "PNG") for p in pixels]))
    want = np.stack(
        [
            model(_ten_views(p.astype(np.float32)) - np.float32(STATS.mean_rgb), training=False)
            .numpy()
            .mean(axis=0)
            for p in pixels
        ]
    )
    np.testing.assert_allclose(out["probabilities"].numpy(), want, atol=1e-5)
    order = np.argsort(-want, axis=1)
    np.testing.assert_array_equal(out["classes"].numpy(), order)
    labels = [[name.decode() for name in row] for row in out["labels"].numpy()]
    assert labels == [[CLASS_NAMES[i] for i in row] for row in order]
    centre = model(pixels[:, 14:241, 14:241] - np.float32(STATS.mean_rgb), training=False)
    assert not np.allclose(want, centre.numpy(), atol=1e-5)  # the test can tell them apart


def test_ten_crop_refuses_what_serving_default_refuses_and_more_than_12_images(exported):
    served = exported[3]
    tiny = encode(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"image_bytes\[1\] must be an encoded"
    ):
        served.signatures["ten_crop"](image_bytes=tf.constant([tiny, b"<html>not an image"]))
    assert signatures.MAX_TEN_CROP_IMAGES == 12
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="image_bytes holds 13 images, more than the limit of 12 per request",
    ):
        served.signatures["ten_crop"](image_bytes=tf.constant([tiny] * 13))


def test_bytes_that_are_not_an_image_are_an_invalid_argument(exported):
    served = exported[3]
    with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG or PNG"):
        served.signatures["serving_default"](image_bytes=tf.constant([b"<html>not an image"]))


def test_a_request_of_too_many_images_is_refused_before_decoding(exported):
    served = exported[3]
    tiny = encode(np.zeros((2, 2, 3), np.uint8))
    requests = tf.constant([tiny] * (signatures.MAX_IMAGES_PER_REQUEST + 1))
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        served.signatures["serving_default"](image_bytes=requests)
    assert "image_bytes holds 129 images, more than the limit of 128 per request" in str(
        error.value
    )


def test_a_jpeg_of_thousands_of_scans_is_refused_by_index(exported):
    served = exported[3]
    requests = tf.constant([encode(np.zeros((8, 8, 3), np.uint8)), progressive_jpeg(2000)])
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"image_bytes\[1\] declares 2010 JPEG"
    ):
        served.signatures["serving_default"](image_bytes=requests)


def _archive_fails_midway(monkeypatch, error):
    """Makes the SavedModel write fail after it has started (a `variables/` folder made).
    (Patching `tf.saved_model.save` does not hold: importing `tensorflow.saved_model`'s
    submodules while the signatures are traced rebinds `tf.saved_model`.)"""

    def dies_midway(self, export_dir, *args, **kwargs):
        os.makedirs(os.path.join(export_dir, "variables"))
        raise error

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", dies_midway)


def test_a_failed_export_leaves_no_version_behind(tmp_path, monkeypatch):
    _archive_fails_midway(monkeypatch, OSError("disk full"))
    model = AlexNet(classes=3, init="he")
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(model, str(tmp_path), CLASS_NAMES)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        tf.errors.ResourceExhaustedError(
            None, None, "SaveV2: variables.data-00000-of-00001; No space left on device"
        ),
    ],
)
def test_a_disk_filling_up_mid_export_is_one_message_and_no_version(tmp_path, monkeypatch, error):
    _archive_fails_midway(monkeypatch, error)
    with pytest.raises(files.DiskFull, match="The disk filled up while writing"):
        export_saved_model(AlexNet(classes=3, init="he"), str(tmp_path), CLASS_NAMES)
    assert os.listdir(tmp_path) == []


def test_export_arguments_are_checked(tmp_path):
    model = AlexNet(classes=3, init="he")
    with pytest.raises(ValueError, match="model's 3 classes; received 2 names"):
        export_saved_model(model, str(tmp_path), ("a", "b"))
    (tmp_path / "4").mkdir()
    with pytest.raises(FileExistsError, match="never overwritten"):
        export_saved_model(model, str(tmp_path), CLASS_NAMES, version=4)
    with pytest.raises(ValueError, match="version=0"):
        export_saved_model(model, str(tmp_path), CLASS_NAMES, version=0)


def test_warmup_requests_parse_and_run_through_the_signature(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    _, _, path, served = exported
    records = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    requests = []
    for record in tf.data.TFRecordDataset(records):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        signature = request.model_spec.signature_name
        images = tf.make_ndarray(request.inputs["image_bytes"])
        out = served.signatures[signature](image_bytes=tf.constant(images))
        assert out["probabilities"].shape == (len(images), 3)
        requests.append((signature, len(images)))
    assert requests == [("serving_default", 1), ("serving_default", 8), ("ten_crop", 1)]


def test_saved_model_cli_lists_the_contract(exported):
    import subprocess
    import sys

    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run(
        [cli, "show", "--dir", exported[2], "--all"], capture_output=True, text=True, timeout=300
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    serving = text[text.index("signature_def['serving_default']") :]
    serving = serving[: serving.index("Method name")]
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in (
        serving
    )
    ten_crop = text[text.index("signature_def['ten_crop']") :]
    ten_crop = ten_crop[: ten_crop.index("Method name")]
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in (
        ten_crop
    )
    predict = text[text.index("signature_def['predict_images']") :]
    predict = predict[: predict.index("Method name")]
    assert "dtype: DT_FLOAT\n        shape: (-1, 227, 227, 3)" in predict
    for block in (serving, ten_crop, predict):
        for name, dtype, shape in (
            ("probabilities", "DT_FLOAT", "(-1, 3)"),
            ("classes", "DT_INT32", "(-1, 3)"),
            ("scores", "DT_FLOAT", "(-1, 3)"),
            ("labels", "DT_STRING", "(-1, 3)"),
        ):
            assert (
                f"outputs['{name}'] tensor_info:\n        dtype: {dtype}\n        shape: {shape}"
                in (block)
            ), (name, block)


@pytest.mark.slow
def test_export_script_from_a_training_runs_files(tmp_path):
    from keras_alexnet.data import save_stats
    from keras_alexnet.serving.trained_model import write_class_names
    from tests.conftest import run_python

    run = tmp_path / "run"
    run.mkdir()
    model = AlexNet(classes=3, init="he")
    model.save(run / "best.keras")
    write_class_names(CLASS_NAMES, str(run / "class_names.txt"))
    save_stats(STATS, run / "stats.json")
    export_dir = tmp_path / "export"
    args = ["scripts/export.py", f"--model_dir={run}", f"--export_dir={export_dir}"]
    result = run_python(args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Exported to {export_dir / '1'}" in result.stdout
    served = tf.saved_model.load(str(export_dir / "1")).signatures["predict_images"]
    images = np.random.default_rng(2).uniform(0, 255, (2, 227, 227, 3)).astype("float32")
    out = served(images=tf.constant(images))
    want = model(images - np.float32(STATS.mean_rgb), training=False).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), want, atol=1e-5)
    assert {v.decode() for v in out["labels"].numpy().ravel()} <= set(CLASS_NAMES)

    again = run_python([*args, "--version=1"])
    assert again.returncode == 1
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    neither = run_python(["scripts/export.py"])
    assert neither.returncode == 1 and "exactly one of --model_dir" in neither.stderr


def test_export_refuses_statistics_that_are_not_pixel_statistics():
    """A NaN mean would make every served score NaN: refused before anything is written."""
    from keras_alexnet.data.stats import IMAGENET_STATS

    bad = dataclasses.replace(IMAGENET_STATS, mean_rgb=(float("nan"), 116.78, 103.94))
    with pytest.raises(ValueError, match="stats given to the export .* mean_rgb must be"):
        signatures.serving_archive(None, ["a"], bad)  # checked first: no model needed


def test_two_exports_choosing_the_same_version_both_land(tmp_path, monkeypatch):
    """The other export takes version 1 while this one is being written: this one lands as 2."""
    export_dir = tmp_path / "alexnet"
    real = export.write_warmup_requests

    def another_export_lands_first(saved_model_dir, *args, **kwargs):
        (export_dir / "1").mkdir()
        (export_dir / "1" / "saved_model.pb").write_bytes(b"the other export")
        return real(saved_model_dir, *args, **kwargs)

    monkeypatch.setattr(export, "write_warmup_requests", another_export_lands_first)
    path = export_saved_model(AlexNet(classes=3, init="he"), str(export_dir), CLASS_NAMES)
    assert path == str(export_dir / "2")
    assert (export_dir / "1" / "saved_model.pb").read_bytes() == b"the other export"
    assert sorted(os.listdir(export_dir)) == ["1", "2"]


def test_the_export_holds_each_weight_once(exported):
    model, _, path, _ = exported
    weights = sum(np.asarray(v).nbytes for v in model.weights)
    variables = os.path.join(path, "variables")
    stored = sum(os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))
    assert weights <= stored < 1.1 * weights, (stored, weights)


def _keras_file_with(tmp_path, name, change):
    """A small saved model whose config.json is then changed by `change(config)`."""
    import json
    import zipfile

    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="predictions")])
    path = tmp_path / name
    small.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return str(path)


def _unknown_class(config):
    config["config"]["layers"][-1].update(class_name="Evil", module="evil", registered_name="Evil")


def _lambda_layer(config):
    config["config"]["layers"][-1] = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "sneaky",
            "function": {
                "class_name": "__lambda__",
                "config": {
                    "code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMEAAAAfABTACkBTqkAKQHa"
                    "AXhyAQAAAHIBAAAA",
                    "defaults": None,
                    "closure": None,
                },
            },
        },
        "registered_name": None,
    }


@pytest.mark.parametrize("change", [_unknown_class, _lambda_layer], ids=["unknown-class", "lambda"])
def test_export_script_refuses_a_model_it_cannot_load_in_one_line(tmp_path, change):
    from tests.conftest import run_python

    path = _keras_file_with(tmp_path, "odd.keras", change)
    result = run_python(
        ["scripts/export.py", f"--model={path}", f"--export_dir={tmp_path / 'export'}"],
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "Cannot load the model" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "export").exists()


def test_version_directories_are_ascii_numbers_found_by_their_own_name(tmp_path):
    for name in ("²", "3a", "010", "2"):
        (tmp_path / name).mkdir()
    (tmp_path / "010" / "saved_model.pb").write_bytes(b"")
    assert export_store.existing_versions(str(tmp_path)) == [2, 10]
    assert next_version(str(tmp_path)) == 11
    assert export_store.find_saved_model(str(tmp_path)) == str(tmp_path / "010")


def test_abandoned_exports_are_removed(tmp_path):
    from keras_alexnet.files import remove_abandoned_saves

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(finished.stdout)
    time.sleep(0.1)
    (tmp_path / f".saving-{dead}-ab12").mkdir()
    (tmp_path / f".saving-{os.getpid()}-cd34").mkdir()
    (tmp_path / "2").mkdir()
    assert remove_abandoned_saves(str(tmp_path)) == [str(tmp_path / f".saving-{dead}-ab12")]
    assert sorted(os.listdir(tmp_path)) == [f".saving-{os.getpid()}-cd34", "2"]


@pytest.mark.parametrize("signature", ["serving_default", "ten_crop"])
def test_an_empty_request_returns_empty_outputs(exported, signature):
    served = exported[3]
    out = served.signatures[signature](image_bytes=tf.constant([], tf.string))
    assert out["probabilities"].shape == (0, 3) and out["labels"].shape == (0, 3)
    pixels = served.signatures["predict_images"](images=tf.zeros([0, 227, 227, 3]))
    assert pixels["scores"].shape == (0, 3)


def test_a_model_without_its_classifier_is_not_exported(tmp_path):
    base = AlexNet(include_top=False, pooling="avg")
    with pytest.raises(ValueError, match=r"convolutional base without its classifier.*256"):
        export_saved_model(base, str(tmp_path / "export"), [f"f{i}" for i in range(256)])
    assert not (tmp_path / "export").exists()


def test_export_into_a_folder_it_cannot_write_is_one_line(tmp_path, monkeypatch):
    real_access = os.access
    locked = str(tmp_path / "locked")
    os.makedirs(locked)
    monkeypatch.setattr(
        os, "access", lambda p, m: False if str(p) == locked else real_access(p, m)
    )  # (what a read-only folder answers; root passes permission bits)
    with pytest.raises(files.PathError, match=r"cannot write in .*locked \(permission denied\)"):
        export_saved_model(AlexNet(classes=3, init="he"), locked, CLASS_NAMES)


_PEAK_OF_A_REQUEST = """
import resource, sys
import numpy as np, tensorflow as tf
tf.config.threading.set_inter_op_parallelism_threads(16)
from PIL import Image
import io
served = tf.saved_model.load(sys.argv[1])
buffer = io.BytesIO()
Image.fromarray(np.full((3000, 3000, 3), 90, np.uint8)).save(buffer, "PNG")
small = served.signatures["serving_default"](image_bytes=tf.constant([buffer.getvalue()]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
served.signatures["serving_default"](image_bytes=tf.constant([buffer.getvalue()] * 12))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.slow
def test_a_request_decodes_one_image_at_a_time_whatever_the_threads(exported):
    """12 PNGs of 9 megapixels each (small on the wire), with 16 inter-op threads: decoded in
    turn, the request's peak grows by about one image's decoding (~150 MB), not twelve."""
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_A_REQUEST, exported[2]],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    grown_mb = int(result.stdout.split()[-1])
    assert grown_mb < 400, f"the request grew the peak by {grown_mb} MB"


def test_an_export_dir_that_is_a_dangling_link_is_one_line(tmp_path):
    """It was "[Errno 17] File exists"."""
    os.symlink(tmp_path / "nowhere", tmp_path / "export")
    with pytest.raises(files.PathError, match=r"is a symbolic link to nothing"):
        export_saved_model(AlexNet(classes=3, init="he"), str(tmp_path / "export"), CLASS_NAMES)
    assert not (tmp_path / "nowhere").exists()
