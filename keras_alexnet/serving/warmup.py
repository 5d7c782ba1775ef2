"""TF Serving's warm-up requests, written into an export's `assets.extra/`: TF Serving runs
them before it serves a version, so the first real request does not pay for tracing and
allocation.
"""

from __future__ import annotations

import os

import tensorflow as tf

from keras_alexnet.serving.signatures import SERVING_DEFAULT, TEN_CROP


def warmup_images(count: int) -> list[bytes]:
    """`count` synthetic JPEGs (smooth colour gradients, 320x256) for warmup requests."""
    y, x = tf.meshgrid(tf.linspace(0.0, 1.0, 256), tf.linspace(0.0, 1.0, 320), indexing="ij")
    images = []
    for i in range(count):
        rgb = tf.stack([x, y, tf.fill(tf.shape(x), (i % 8) / 8.0)], axis=-1)
        images.append(tf.io.encode_jpeg(tf.cast(rgb * 255, tf.uint8)).numpy())
    return images


# The warmup requests: (signature, images) of synthetic JPEGs.
WARMUP_REQUESTS = ((SERVING_DEFAULT, 1), (SERVING_DEFAULT, 8), (TEN_CROP, 1))


def write_warmup_requests(saved_model_dir: str) -> str:
    """Writes `assets.extra/tf_serving_warmup_requests`: a `PredictionLog` per request of
    `WARMUP_REQUESTS`, which TF Serving runs before it serves the version (so the first real
    request does not pay for tracing and allocation)."""
    # deferred, heavy: tensorflow_serving's protos, for the export only
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    directory = os.path.join(saved_model_dir, "assets.extra")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "tf_serving_warmup_requests")
    with tf.io.TFRecordWriter(path) as writer:
        for signature, batch_size in WARMUP_REQUESTS:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature)
            )
            request.inputs["image_bytes"].CopyFrom(
                tf.make_tensor_proto(warmup_images(batch_size), dtype=tf.string)
            )
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path
