"""The trained ImageNet weights that `AlexNet(weights="imagenet")` names: every fact about them
in one object, `IMAGENET_WEIGHTS`, which `AlexNet`, the weights cache, `convert_weights.py`,
`export.py` and the model card read. (The release record: "pretrained" names nothing else.)

    >>> keras_alexnet.IMAGENET_WEIGHTS.meta["accuracy"][0]["top1"]
    0.571

They are Caffe's `bvlc_alexnet` (BVLC model zoo), the canonical trained AlexNet, and the ONNX
model zoo's conversions of the same numbers. Each source is pinned by its size and hash, which
are checked before a byte of a file is parsed.
"""

from __future__ import annotations

import dataclasses
import functools

from keras_alexnet.imagenet import (
    IMAGENET_MEAN_RGB,
    NUM_IMAGENET_CLASSES,
    imagenet_class_names,
    preprocess_input,
)

CAFFE = "caffemodel"
ONNX = "onnx"


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """One downloadable file of the weights: where it is, and what it must be."""

    url: str
    filename: str  # also the name a hand-downloaded copy has in the cache folder
    size: int  # bytes
    algorithm: str  # a hashlib name
    digest: str  # hex
    form: str  # CAFFE or ONNX
    published_by: str  # where the size and hash were published

    @property
    def needs(self) -> str | None:
        """The pip extra reading this form needs, or None."""
        return "onnx" if self.form == ONNX else None


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """Trained weights and what a user needs to know to use them (torchvision's `Weights`
    and KerasHub's presets carry the same facts)."""

    name: str
    description: str
    sources: tuple[WeightsSource, ...]
    variant: dict  # the AlexNet arguments the weights need
    input_size: int  # the crop the network sees
    resize_size: int  # the shorter side before the central crop (evaluation)
    mean_rgb: tuple[float, float, float]  # subtracted by `preprocess_input`
    preprocessing: str
    num_classes: int
    num_params: int
    accuracy: tuple[dict, ...]
    license: str
    cache_file: str  # the converted `.weights.h5` in the Keras cache's models folder

    @property
    def categories(self) -> list[str]:
        """The readable names of the classes, indexed by class id."""
        return imagenet_class_names()

    def preprocess(self, images):
        """RGB 0..255 images (227x227) to the network's input: `preprocess_input`."""
        return preprocess_input(images, mean=self.mean_rgb)

    def transforms(self):
        """The function from an image file (its path) or its encoded bytes to the network's
        input, as torchvision's `weights.transforms()`: the evaluation view (shorter side
        `resize_size`, central `input_size` crop, RGB, less `mean_rgb`), float32
        (227, 227, 3). It is `data.pipeline.evaluation_input`, the code `predict`, `evaluate`
        and the export's `serving_default` run; it needs TensorFlow (the full install).
        """
        # (Imported here: a model-only install, without TensorFlow, builds the model.)
        from keras_alexnet.data import pipeline

        return functools.partial(pipeline.evaluation_input, mean_rgb=self.mean_rgb)

    @property
    def meta(self) -> dict:
        """The facts as plain JSON-able values (the model card of an export holds them)."""
        facts = dataclasses.asdict(self)
        facts["sources"] = [dataclasses.asdict(s) for s in self.sources]
        facts["accuracy"] = [dict(a) for a in self.accuracy]
        return facts


# The ILSVRC-2012 figures published for these weights, each with how it was measured.
_ACCURACY = (
    {
        "top1": 0.571,
        "top5": 0.802,
        "protocol": "ILSVRC-2012 validation, centre 227x227 crop of the image warped to 256x256",
        "source": "BVLC Caffe, models/bvlc_alexnet/readme.md",
    },
    {
        "top1": 0.5480,
        "top5": 0.7823,
        "protocol": "ILSVRC-2012 validation, the ONNX model zoo's 224x224 preprocessing",
        "source": "ONNX model zoo, validated/vision/classification/alexnet/README.md",
    },
)

_ONNX_ZOO = "https://github.com/onnx/models/raw/main/validated/vision/classification/alexnet/model"

IMAGENET_WEIGHTS = PretrainedWeights(
    name="bvlc_alexnet",
    description=(
        "Caffe's bvlc_alexnet, trained by BVLC on ILSVRC-2012 with the paper's recipe except "
        "the PCA colour augmentation, and with the non-zero biases initialised to 0.1; the "
        "iteration 360,000 snapshot."
    ),
    sources=(
        WeightsSource(
            url="http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel",
            filename="bvlc_alexnet.caffemodel",
            size=243_862_414,
            algorithm="sha1",
            digest="9116a64c0fbe4459d18f4bb6b56d647b63920377",
            form=CAFFE,
            published_by="BVLC Caffe, models/bvlc_alexnet/readme.md",
        ),
        WeightsSource(
            url=f"{_ONNX_ZOO}/bvlcalexnet-12.onnx",
            filename="bvlcalexnet-12.onnx",
            size=243_863_787,
            algorithm="sha256",
            digest="6b0da9510f27f234ee96a85dc3809dd210150fdefad87f6850f9788513216945",
            form=ONNX,
            published_by="ONNX model zoo, its git LFS pointer",
        ),
        WeightsSource(
            url=f"{_ONNX_ZOO}/bvlcalexnet-9.onnx",
            filename="bvlcalexnet-9.onnx",
            size=243_863_542,
            algorithm="sha256",
            digest="ef3c82dad5c512f969dbf701fe35c0b3feb1585687d541f765eb68730c0a8af7",
            form=ONNX,
            published_by="ONNX model zoo, its git LFS pointer",
        ),
        WeightsSource(
            url=f"{_ONNX_ZOO}/bvlcalexnet-8.onnx",
            filename="bvlcalexnet-8.onnx",
            size=243_863_542,
            algorithm="sha256",
            digest="9a4dc22fd706a19462aaec3b08e027e0ef89daf63d123824f20b59b6de9a727b",
            form=ONNX,
            published_by="ONNX model zoo, its git LFS pointer",
        ),
    ),
    variant={"lrn": "caffe", "init": "paper"},
    input_size=227,
    resize_size=256,
    mean_rgb=IMAGENET_MEAN_RGB,
    preprocessing=(
        "RGB 0..255 through keras_alexnet.preprocess_input (ImageNet's per-channel mean "
        "subtracted; Caffe's BGR order and mean are folded into conv1); evaluation resizes the "
        "shorter side to 256 and takes the central 227x227 crop"
    ),
    num_classes=NUM_IMAGENET_CLASSES,
    # fc8 with 1000 classes: the paper network's parameter count (README, the paper's table).
    num_params=60_965_224,
    accuracy=_ACCURACY,
    license=(
        "BVLC released bvlc_alexnet for unrestricted use (models/bvlc_alexnet/readme.md); "
        "the ONNX model zoo's conversions are under its BSD-3-Clause licence"
    ),
    cache_file="bvlc_alexnet_imagenet.weights.h5",
)
