"""A Keras cache holding the trained ImageNet weights as a download would leave them, made from
a generated model (the real weights are not reachable from the tests): the converted file and
the record naming Caffe's published bvlc_alexnet as its source."""

import hashlib
import json
import os

import keras

import keras_alexnet

WEIGHTS = keras_alexnet.IMAGENET_WEIGHTS


def prepare_imagenet_cache(keras_home, seed=5):
    """Writes `<keras_home>/models/` as `AlexNet(weights="imagenet")` reads it; returns the
    model (random, seeded) whose weights it holds."""
    models = os.path.join(keras_home, "models")
    os.makedirs(models, exist_ok=True)
    keras.utils.set_random_seed(seed)
    model = keras_alexnet.AlexNet(classes=WEIGHTS.num_classes, **WEIGHTS.variant)
    converted = os.path.join(models, WEIGHTS.cache_file)
    model.save_weights(converted)
    with open(converted, "rb") as file:
        sha256 = hashlib.sha256(file.read()).hexdigest()
    caffe = WEIGHTS.sources[0]
    record = {
        "format": 1,
        "file": WEIGHTS.cache_file,
        "bytes": os.path.getsize(converted),
        "sha256": sha256,
        "made_from": {
            "filename": caffe.filename,
            "algorithm": caffe.algorithm,
            "digest": caffe.digest,
        },
        "url": caffe.url,
        "made_by": "the tests",
        "made_at": "the tests",
    }
    with open(os.path.join(models, "bvlc_alexnet_imagenet.json"), "w") as file:
        json.dump(record, file)
    return model
