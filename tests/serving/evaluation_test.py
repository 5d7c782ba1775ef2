"""Centre-crop, ten-crop and ensemble evaluation against NumPy bookkeeping."""

import json

import numpy as np
import pytest

from keras_alexnet import AlexNet
from keras_alexnet.data import IMAGENET_STATS, eval_dataset, image_folder_source
from keras_alexnet.serving.evaluation import evaluate, load_predictor
from tests.conftest import run_python


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def colour_model(views):
    """3 classes scored by the views' mean R, G, B: a cheap, deterministic 'model'."""
    return _softmax(np.asarray(views).mean(axis=(1, 2)) / 20.0)


def anti_colour_model(views):
    return _softmax(-np.asarray(views).mean(axis=(1, 2)) / 20.0)


@pytest.fixture
def source(image_folder):
    return image_folder_source(image_folder)


def _by_hand(source, models, ten_crop):
    """Probabilities per image averaged over views and models, then top-1/top-5 by hand."""
    hits1 = hits5 = n = 0
    for views, labels in eval_dataset(source, 4, IMAGENET_STATS, split="train", ten_crop=ten_crop):
        views = views.numpy()
        for image_views, label in zip(views, labels.numpy(), strict=True):
            image_views = image_views if ten_crop else image_views[None]
            p = np.mean([m(image_views).mean(axis=0) for m in models], axis=0)
            ranked = list(np.argsort(-p, kind="stable"))
            hits1 += ranked[0] == label
            hits5 += label in ranked[:5]
            n += 1
    return n, 1 - hits1 / n, 1 - hits5 / n


@pytest.mark.parametrize("ten_crop", [False, True])
@pytest.mark.parametrize("models", [[colour_model], [colour_model, anti_colour_model]])
def test_errors_match_numpy_bookkeeping(source, models, ten_crop):
    result = evaluate(
        models, source, IMAGENET_STATS, split="train", batch_size=4, ten_crop=ten_crop
    )
    n, top1, top5 = _by_hand(source, models, ten_crop)
    assert result["examples"] == n == source.num_examples["train"]
    assert result["top1_error"] == pytest.approx(top1)
    assert result["top5_error"] == pytest.approx(top5) == 0.0  # 3 classes: always in the top 5
    assert result["ten_crop"] is ten_crop and result["models"] == len(models)


def test_ten_crop_is_not_the_centre_crop(source):
    centre = evaluate([colour_model], source, split="train", batch_size=4)
    ten = evaluate([colour_model], source, split="train", batch_size=4, ten_crop=True)
    assert centre["examples"] == ten["examples"]
    assert 0.0 <= ten["top1_error"] <= 1.0
    assert evaluate([colour_model], source, split="train", max_examples=5)["examples"] == 5


def test_no_models_is_an_error(source):
    with pytest.raises(ValueError, match="at least one model"):
        evaluate([], source)


@pytest.mark.slow
def test_evaluate_script_writes_json_that_matches_the_library(image_folder, tmp_path):
    model = AlexNet(classes=3, init="he")
    model.save(tmp_path / "model.keras")
    output = tmp_path / "eval.json"
    result = run_python(
        [
            "scripts/evaluate.py",
            f"--model={tmp_path / 'model.keras'}",
            "--dataset=image_folder",
            f"--image_dir={image_folder}",
            "--split=train",
            f"--output={output}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "center crop: top-1 error" in result.stdout and "ten crop: top-1 error" in result.stdout
    written = json.loads(output.read_text())
    source = image_folder_source(image_folder)
    predictor = load_predictor(str(tmp_path / "model.keras"), IMAGENET_STATS)
    for crops in ("center", "ten"):
        want = evaluate([predictor], source, split="train", ten_crop=crops == "ten")
        assert written[crops]["top1_error"] == pytest.approx(want["top1_error"])
        assert written[crops]["examples"] == want["examples"]

    missing = run_python(["scripts/evaluate.py", f"--model={tmp_path / 'nope.keras'}"])
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_a_model_of_other_classes_is_refused_naming_both(tmp_path):
    from keras_alexnet import model_card

    path = str(tmp_path / "m.keras")
    AlexNet(classes=3, init="he").save(path)
    with pytest.raises(ValueError, match=r"3 unnamed classes, the dataset's \['a', 'b'\]"):
        load_predictor(path, IMAGENET_STATS, ["a", "b"])
    model_card.write_card(path, {"class_names": ["cat", "dog", "fox"]})
    with pytest.raises(ValueError, match=r"its classes are \['cat', 'dog', 'fox'\], the dataset"):
        load_predictor(path, IMAGENET_STATS, ["cat", "dog", "owl"])
    assert load_predictor(path, IMAGENET_STATS, ["cat", "dog", "fox"]) is not None


def test_a_saved_model_that_is_not_an_export_is_one_error(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(lambda x: x + 1, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "other"), signatures={"other": module.f})
    with pytest.raises(
        ValueError, match=r"is not a keras_alexnet export: it has no predict_images"
    ):
        load_predictor(str(tmp_path / "other"), IMAGENET_STATS)
