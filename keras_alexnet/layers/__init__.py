"""Custom layers of keras_alexnet, all registered for `.keras` round trips."""

from keras_alexnet.layers.device_placement import (
    DevicePlacement,
    PlacedConcatenate,
    PlacedConv2D,
    PlacedDense,
    PlacedDropout,
    PlacedFlatten,
    PlacedMaxPooling2D,
)
from keras_alexnet.layers.local_response_normalization import (
    CrossTowerLocalResponseNormalization,
    LocalResponseNormalization,
)

__all__ = [
    "CrossTowerLocalResponseNormalization",
    "DevicePlacement",
    "LocalResponseNormalization",
    "PlacedConcatenate",
    "PlacedConv2D",
    "PlacedDense",
    "PlacedDropout",
    "PlacedFlatten",
    "PlacedMaxPooling2D",
]
