"""A stand-in for AlexNet in training tests: the same 227x227x3 input, two towers, dropout and
a float32 `predictions` layer, built from the same placed layers, at a tiny fraction of the
size (about 3,000 parameters instead of 57 million), so that a training run takes seconds
and its backups kilobytes."""

import keras

from keras_alexnet.layers import PlacedConcatenate, PlacedConv2D, PlacedDense, PlacedDropout


def small_alexnet(classes, init="paper", dropout_rate=0.5, tower_devices=None, lrn="paper"):
    del init, lrn  # one initialisation (Keras' defaults), no LRN
    devices = dict(zip("ab", tower_devices or (None, None), strict=True))
    images = keras.Input((227, 227, 3), name="images")
    x = keras.layers.Rescaling(1 / 58.0, name="input_scaling")(images)
    towers = {}
    for t in "ab":
        y = PlacedConv2D(4, 11, strides=8, activation="relu", name=f"conv1_{t}", device=devices[t])(
            x
        )
        y = keras.layers.GlobalAveragePooling2D(name=f"pool5_{t}")(y)
        towers[t] = y
    x = PlacedConcatenate(name="concat6_a", device=devices["a"])([towers["a"], towers["b"]])
    x = PlacedDense(16, activation="relu", name="fc7_a", device=devices["a"])(x)
    x = PlacedDropout(dropout_rate, name="dropout7_a", device=devices["a"])(x)
    outputs = keras.layers.Dense(
        classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(images, outputs, name="small_alexnet")
