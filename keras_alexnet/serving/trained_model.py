"""A trained model as the package keeps it, and its one loader.

Training leaves in its run directory `best.keras` (the model, with its model card),
`class_names.txt` (one name per line, in label order) and `stats.json` (the pixel statistics
it trained with); an export is a SavedModel version directory (see `export`), which holds its
class names and mean. `load_trained_model` takes any of the three (a run directory, a
`.keras` file with or without those files beside it, a SavedModel or an export's base
directory), or "imagenet" (the trained ImageNet weights), and gives one `TrainedModel`, with
its class names found by one rule (`find_class_names`); `predict`, `evaluate`, `export` and
`similar` load through it. `write_class_names` and `read_class_names` are the class-names
file's format.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from keras_alexnet import model_card, untrusted
from keras_alexnet.alexnet import AlexNet
from keras_alexnet.files import PathError, atomic_save
from keras_alexnet.imagenet import NUM_IMAGENET_CLASSES, imagenet_class_names
from keras_alexnet.serving.export_store import find_saved_model
from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS

if TYPE_CHECKING:
    from keras_alexnet.data.stats import ColorStats

RUN_DIRECTORY, KERAS_FILE, SAVED_MODEL = "run directory", "keras file", "SavedModel"
# The trained ImageNet weights by name, as `AlexNet(weights="imagenet")` takes them.
IMAGENET_MODEL = "imagenet"
# Where a model's class names come from (`find_class_names`): a class names file, the model's
# own card (or an export's), or ImageNet's names, assumed for a 1000-class model.
NAMES_FROM_FILE, NAMES_FROM_CARD, NAMES_FROM_IMAGENET = "file", "card", "imagenet"

BEST_MODEL_FILE = "best.keras"
CLASS_NAMES_FILE = "class_names.txt"
STATS_FILE = "stats.json"


def write_class_names(class_names: Sequence[str], path: str) -> None:
    """One class name per line, in label order. A name that would not read back as itself
    (empty, a line break inside, spaces around it) is refused."""
    for name in class_names:
        if not name or name != name.strip() or "\n" in name or "\r" in name:
            raise PathError(
                f"The class name {name!r} cannot be kept one per line in {path}: rename the "
                "class (no line breaks, no spaces around it)."
            )

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in class_names))

    atomic_save(write, path)


def read_class_names(path: str) -> list[str]:
    """The class names of a `class_names.txt` (one per line, as training writes it)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except OSError as error:
        raise ValueError(f"Cannot read the class names file {path!r}: {error}.") from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The class names file {path!r} is not UTF-8 text (byte {error.start}): it needs "
            "one class name per line."
        ) from None


def load_keras_model(path: str):
    """A `.keras` model file, loaded safely (no Lambda code is run; classes this package does not
    register are refused).

    Raises:
        ValueError: one line naming the file and why it cannot be loaded.
    """
    try:  # (the custom layers are registered: this module is keras_alexnet's)
        untrusted.check_keras_archive(path)
        return keras.saving.load_model(path, safe_mode=True)
    except (
        OSError,
        ValueError,
        TypeError,  # a class Keras cannot locate (not one of this package's)
        KeyError,
        NotImplementedError,
        zipfile.BadZipFile,
    ) as error:
        reason = " ".join(str(error).split())[:500]
        raise ValueError(f"Cannot load the model {path!r}: {reason}") from None


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A trained model and what it needs to be used.

    `kind` is RUN_DIRECTORY, KERAS_FILE or IMAGENET_MODEL (then `model` is the Keras model
    and `stats` the pixel statistics it trained with: subtract their mean from its inputs) or
    SAVED_MODEL
    (then `saved_model` is the loaded export, which subtracts its own mean, and `stats` is
    None). `class_names` is None when nothing names the model's classes (`find_class_names`).
    """

    path: str  # what was loaded: a run's best.keras, a SavedModel's version, "imagenet"
    kind: str
    classes: int
    class_names: list[str] | None
    names_from: str | None  # where the names come from: NAMES_FROM_* (None: no names)
    stats: ColorStats | None
    card: dict
    model: Any = None  # keras.Model
    saved_model: Any = None  # what tf.saved_model.load returned

    def labels(self) -> list[str]:
        """The class names, or "class <i>" for classes nothing names."""
        return self.class_names or [f"class {i}" for i in range(self.classes)]


def load_trained_model(
    path: str, class_names_file: str | None = None, stats_file: str | None = None
) -> TrainedModel:
    """The trained model at `path`: a run directory (its `best.keras` and the files beside
    it), a `.keras` file, a SavedModel version directory, an export's base directory (its
    highest version), or "imagenet": the trained ImageNet weights as `AlexNet(weights=
    "imagenet")` gets them (the Keras cache, or a download checked against its hash), with
    ImageNet's class names and the weights' mean. `~` is expanded.

    Args:
        path: where the model is, or "imagenet".
        class_names_file: a class names file (one per line) that overrides the model's own.
        stats_file: a statistics JSON (`alexnet-compute-stats`) that overrides the one
            beside a `.keras` file; default ImageNet's.
        (A SavedModel holds its class names and mean in its graph: neither file is used.)

    Raises:
        ValueError: one line naming the path and why it cannot be used.
    """
    from keras_alexnet import data  # deferred: TensorFlow (tf.data), not needed for names

    if path == IMAGENET_MODEL and not os.path.exists(path):
        return _load_imagenet_model(class_names_file, stats_file)
    path = os.path.expanduser(path)
    if _is_run_directory(path):
        kind, path = RUN_DIRECTORY, os.path.join(path, BEST_MODEL_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"{path} does not exist; train with alexnet-train first.")
    elif path.endswith(".keras"):
        kind = KERAS_FILE
        if not os.path.isfile(path):
            raise ValueError(f"The model file {path!r} does not exist.")
    else:
        return _load_saved_model(path)
    model = load_keras_model(path)
    check_classifier(model, path)
    card = model_card.read_card(path) or {}
    classes = model.output_shape[-1]
    beside = os.path.dirname(path)
    side_names = os.path.join(beside, CLASS_NAMES_FILE)
    names, names_from = find_class_names(classes, class_names_file, side_names, card)
    stats_file = stats_file or _if_file(os.path.join(beside, STATS_FILE))
    stats = data.load_stats(stats_file) if stats_file else data.IMAGENET_STATS
    return TrainedModel(path, kind, classes, names, names_from, stats, card, model=model)


def check_classifier(model, path: str) -> None:
    """Raises `ValueError` for a model without its classifier (`AlexNet(include_top=False)`):
    its outputs are features, not class scores, and would be read as scores of classes."""
    names = {layer.name for layer in model.layers}
    if "conv1_a" in names and "predictions" not in names:
        raise ValueError(
            f"{path} is AlexNet's convolutional base without its classifier (include_top="
            f"False): its {model.output_shape[-1]} outputs are features, not class scores. "
            "Fine-tune it into a classifier with alexnet-train --weights=... first."
        )


def _load_imagenet_model(class_names_file: str | None, stats_file: str | None) -> TrainedModel:
    """The trained ImageNet weights as a TrainedModel (see `load_trained_model`)."""
    if stats_file:
        raise ValueError(
            f"The trained ImageNet weights subtract the mean they were trained with; a "
            f"statistics file ({stats_file}) is for a .keras model trained on other data. "
            "Leave out --stats."
        )
    from keras_alexnet import data  # deferred: TensorFlow (tf.data)

    model = AlexNet(weights=IMAGENET_MODEL)
    card = model_card.origin_of(IMAGENET_MODEL)
    names, names_from = find_class_names(IMAGENET_WEIGHTS.num_classes, class_names_file, None, card)
    stats = dataclasses.replace(data.IMAGENET_STATS, mean_rgb=IMAGENET_WEIGHTS.mean_rgb)
    return TrainedModel(
        IMAGENET_MODEL,
        IMAGENET_MODEL,
        IMAGENET_WEIGHTS.num_classes,
        names,
        names_from,
        stats,
        card,
        model=model,
    )


def find_class_names(
    classes: int, class_names_file: str | None, side_file: str | None, card: dict
) -> tuple[list[str] | None, str | None]:
    """The names of a model's `classes` classes and where they come from (`NAMES_FROM_*`),
    from the first of: the class names file given; the one beside the model (`side_file`, as
    a run directory holds it); the model's card; ImageNet's names for a 1000-class model.
    (None, None) when none of these names them.

    Raises:
        ValueError: a class names file cannot be read, or names another number of classes.
    """
    if class_names_file and not os.path.isfile(class_names_file):
        raise ValueError(f"The class names file {class_names_file} does not exist.")
    source = class_names_file or _if_file(side_file)
    if source:
        names, names_from = read_class_names(source), NAMES_FROM_FILE
    elif card.get("class_names"):
        names, names_from, source = card["class_names"], NAMES_FROM_CARD, "its card"
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ValueError(
                f"The model's card names its classes with {type(names).__name__} "
                f"{str(names)[:60]!r}, not a list of names: give --class_names=FILE."
            )
    elif classes == NUM_IMAGENET_CLASSES:
        return imagenet_class_names(), NAMES_FROM_IMAGENET
    else:
        return None, None
    if len(names) != classes:
        raise ValueError(
            f"The model has {classes} classes but {source} names {len(names)}; give the "
            "class names file of the dataset the model was trained on."
        )
    return names, names_from


def _is_run_directory(path: str) -> bool:
    """A training run's directory: its best model, or (before its first epoch ended) the
    class names it writes first."""
    return any(
        os.path.isfile(os.path.join(path, name)) for name in (BEST_MODEL_FILE, CLASS_NAMES_FILE)
    )


def _if_file(path: str | None) -> str | None:
    return path if path and os.path.isfile(path) else None


def _load_saved_model(path: str) -> TrainedModel:
    """An export (a SavedModel of `export.export_saved_model`), loaded."""
    import tensorflow as tf  # deferred: a .keras model loads on any Keras backend

    version = find_saved_model(path)
    try:
        loaded = tf.saved_model.load(version)
    except Exception as error:  # noqa: BLE001  (TensorFlow raises many kinds here)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"Cannot load the SavedModel {version!r}: {first_line[:200]}") from None
    card = model_card.read_export_card(version)
    predict = loaded.signatures.get("predict_images")
    classes = predict.structured_outputs["probabilities"].shape[-1] if predict else None
    # (Its labels are in its graph: a class names file given for it is not used.)
    names = card.get("class_names")
    names_from = NAMES_FROM_CARD if names else None
    return TrainedModel(
        version, SAVED_MODEL, classes, names, names_from, None, card, saved_model=loaded
    )
