"""keras_alexnet: the AlexNet of Krizhevsky, Sutskever & Hinton (2012) for TensorFlow/Keras 3."""

from keras_alexnet import layers
from keras_alexnet.alexnet import AlexNet, decode_predictions, feature_extractor, preprocess_input
from keras_alexnet.imagenet import imagenet_class_index, imagenet_class_names

__version__ = "0.1.0"

__all__ = [
    "AlexNet",
    "decode_predictions",
    "feature_extractor",
    "imagenet_class_index",
    "imagenet_class_names",
    "layers",
    "preprocess_input",
]
