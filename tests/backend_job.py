"""What `backends_test.py` computes under every backend, TensorFlow included, from the files
`prepare` made (`inputs.npy`, `paper.weights.h5`, `caffe.weights.h5`,
`bvlc_alexnet.caffemodel`, `tensorflow.keras`, a Keras cache `keras_home/` holding the
"imagenet" weights): the same code, so that the results compare key by key.

Imports no TensorFlow at module level: `backend_worker.py` runs it where TensorFlow is blocked.
"""

import contextlib
import os

import keras
import numpy as np

import keras_alexnet
from keras_alexnet.layers import (
    CrossTowerLocalResponseNormalization,
    LocalResponseNormalization,
)
from keras_alexnet.layers.local_response_normalization import TOWER_POSITIONS

BACKEND = keras.backend.backend()
TOP_LAYERS = ("fc6_a", "fc6_b", "fc7_a", "fc7_b", "predictions")
LRN_SEED = 6
FIT_LEARNING_RATE = 1e-4


def gradients(function, inputs, cotangent):
    """The gradients of sum(function(*inputs) * cotangent) with respect to each of `inputs`,
    by the backend's own automatic differentiation."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        values = [tf.constant(v) for v in inputs]
        with tf.GradientTape() as tape:
            tape.watch(values)
            objective = tf.reduce_sum(function(*values) * cotangent)
        return [g.numpy() for g in tape.gradient(objective, values)]
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def objective(*values):
            return jnp.sum(function(*values) * cotangent)

        values = [jnp.asarray(v) for v in inputs]
        return [np.asarray(g) for g in jax.grad(objective, range(len(values)))(*values)]
    import torch

    values = [torch.tensor(v, requires_grad=True) for v in inputs]
    (function(*values) * torch.tensor(cotangent)).sum().backward()
    return [v.grad.numpy() for v in values]


def weight_gradients(model, x, cotangent, layers):
    """The gradients of sum(model(x) * cotangent) with respect to the kernels and biases of
    `layers`, in their order."""
    variables = [v for name in layers for v in model.get_layer(name).trainable_variables]
    everything = model.trainable_variables
    others = [v.value for v in model.non_trainable_variables]

    def logits(*values):
        # The chosen variables take `values`; the others keep theirs.
        chosen = {id(v): value for v, value in zip(variables, values, strict=True)}
        trainable = [chosen.get(id(v), v.value) for v in everything]
        return model.stateless_call(trainable, others, x, training=False)[0]

    return gradients(logits, [np.asarray(v.numpy()) for v in variables], cotangent)


def lrn_gradients(rng):
    """Input gradients of the paper's LRN and of the Caffe variant's cross-tower LRN, on
    activations of the size LRN meets in AlexNet."""
    own, other, cotangent = (rng.normal(0.0, 30.0, (2, 7, 7, 48)).astype("float32") for _ in "abc")
    paper = LocalResponseNormalization()
    results = gradients(paper, [own], cotangent)
    for position in TOWER_POSITIONS:
        caffe = CrossTowerLocalResponseNormalization(position, bias=1.0, alpha_convention="caffe")
        results += gradients(lambda a, b, layer=caffe: layer([a, b]), [own, other], cotangent)
    return results


def fit_and_evaluate(job, x):
    """Two epochs of two plain SGD steps (no dropout, no shuffling) and an evaluation, from the
    paper variant's weights: the losses, which TensorFlow's run must reproduce."""
    model = keras_alexnet.AlexNet(
        classes=10, classifier_activation=None, dropout_rate=0.0, weights=None
    )
    model.load_weights(os.path.join(job, "paper.weights.h5"))
    model.compile(
        optimizer=keras.optimizers.SGD(FIT_LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    labels = np.arange(len(x)) % 10
    history = model.fit(x, labels, batch_size=2, epochs=2, shuffle=False, verbose=0)
    return np.array(history.history["loss"] + [model.evaluate(x, labels, verbose=0)])


@contextlib.contextmanager
def keras_home(path):
    """KERAS_HOME set to `path` for the block."""
    previous = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["KERAS_HOME"]
        else:
            os.environ["KERAS_HOME"] = previous


def prepare(job) -> None:
    """Writes the files every backend starts from into `job`: random bvlc_alexnet weights in
    Caffe's layout, He-scaled (activations of order 1-100, so LRN matters), as a .caffemodel
    and as the paper and Caffe variants' .weights.h5; the inputs; a Keras cache holding
    "imagenet" weights (random, not BVLC's) with a record naming the real source, as a
    download leaves it."""
    from keras_alexnet.weights import cache as weights_cache
    from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS
    from tests.weights import caffe_files

    images = np.random.default_rng(11).uniform(0, 255, (2, 227, 227, 3)).astype("float32")
    np.save(os.path.join(job, "inputs.npy"), images)
    caffemodel = os.path.join(job, "bvlc_alexnet.caffemodel")
    caffe_files.write_caffemodel(caffemodel, caffe_files.random_weights(seed=4, classes=10))
    caffe = keras_alexnet.AlexNet(weights=caffemodel, classes=10)
    for variant in ("paper", "caffe"):
        model = keras_alexnet.AlexNet(classes=10, lrn=variant, classifier_activation=None)
        model.set_weights(caffe.get_weights())
        model.save_weights(os.path.join(job, f"{variant}.weights.h5"))
    models = os.path.join(job, "keras_home", "models")
    os.makedirs(models)
    keras.utils.set_random_seed(2)
    model = keras_alexnet.AlexNet(classes=1000, **IMAGENET_WEIGHTS.variant)
    converted = os.path.join(models, IMAGENET_WEIGHTS.cache_file)
    model.save_weights(converted)
    with keras_home(os.path.join(job, "keras_home")):
        weights_cache._write_record(converted, IMAGENET_WEIGHTS.sources[0], IMAGENET_WEIGHTS)


def compute(job) -> dict:
    """Everything compared across backends, by name."""
    x = keras_alexnet.preprocess_input(np.load(os.path.join(job, "inputs.npy")))
    results = {}
    for variant in ("paper", "caffe"):
        model = keras_alexnet.AlexNet(
            classes=10, lrn=variant, classifier_activation=None, weights=None
        )
        model.load_weights(os.path.join(job, f"{variant}.weights.h5"))
        results[f"logits_{variant}"] = model.predict(x, verbose=0)
        cotangent = np.linspace(-1.0, 1.0, 10, dtype="float32")
        grads = weight_gradients(model, x, cotangent, TOP_LAYERS)
        results.update({f"top_gradient_{variant}_{i}": g for i, g in enumerate(grads)})
        if variant == "paper":
            model.save(os.path.join(job, f"{BACKEND}.keras"))
    results["logits_tensorflow_keras_file"] = keras.saving.load_model(
        os.path.join(job, "tensorflow.keras")
    ).predict(x, verbose=0)

    from_caffe = keras_alexnet.AlexNet(
        weights=os.path.join(job, "bvlc_alexnet.caffemodel"), classes=10
    )
    results["probabilities_caffemodel"] = from_caffe.predict(x, verbose=0)
    with keras_home(os.path.join(job, "keras_home")):
        imagenet = keras_alexnet.AlexNet(weights="imagenet")
    results["probabilities_imagenet"] = imagenet.predict(x, verbose=0)

    grads = lrn_gradients(np.random.default_rng(LRN_SEED))
    results.update({f"lrn_gradient_{i}": g for i, g in enumerate(grads)})
    results["fit"] = fit_and_evaluate(job, x)
    return results
