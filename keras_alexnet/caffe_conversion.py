"""Caffe's trained bvlc_alexnet (a `.caffemodel`, or its ONNX form `.onnx`) as this package's
model: `convert_to_keras` writes a `.keras` file of `AlexNet(lrn="caffe")` with the file's
weights and a model card saying what it was made from; `install_in_cache` puts a known
release, converted, into the Keras cache, where `AlexNet(weights="imagenet")` finds it
without a download. `alexnet-convert-weights` is the command of both.

The file is identified first (`identify`: its size and hash, and which known release of
`IMAGENET_WEIGHTS` it is, if any), then read, checked and converted before anything is
written; the `.keras` file lands whole or not at all (`files.atomic_save`).
"""

from __future__ import annotations

import dataclasses
import os

from keras_alexnet import files, model_card
from keras_alexnet.alexnet import AlexNet
from keras_alexnet.imagenet import NUM_IMAGENET_CLASSES
from keras_alexnet.weights import CAFFE_FILE, cache, resolve_weights
from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS, WeightsSource


@dataclasses.dataclass(frozen=True)
class Identified:
    """A weights file's size and hash as text, and the known release it is (or None)."""

    path: str
    described: str
    release: WeightsSource | None

    def report(self) -> str:
        """Two lines: the size and hash, and which release it is."""
        if self.release:
            known = f"This is {self.release.filename}, published by {self.release.published_by}."
        else:
            known = (
                "This is none of the known releases of bvlc_alexnet (keras_alexnet."
                "IMAGENET_WEIGHTS.sources); it is loaded if its network is bvlc_alexnet's."
            )
        return f"{self.path}: {self.described}\n{known}"


@dataclasses.dataclass(frozen=True)
class Converted:
    """What `convert_to_keras` wrote: the file, its model's classes (None: the base only)
    and parameters, and what killed conversions had left beside it (removed)."""

    output: str
    classes: int | None
    parameters: int
    removed: tuple[str, ...]

    def report(self) -> str:
        """What was removed, what was written, and the next step."""
        lines = [
            f"Removed {os.path.basename(p)}, left by a save that was killed." for p in self.removed
        ]
        top = f"{self.classes} classes" if self.classes else "convolutional base"
        lines.append(
            f"Wrote {self.output}: AlexNet(lrn='caffe'), {top}, {self.parameters:,} parameters."
        )
        if self.classes:
            lines.append(f"Export it for TF Serving with: alexnet-export --model={self.output}")
        return "\n".join(lines)


def identify(path: str) -> Identified:
    """The size and hash of `path`, and which known release of bvlc_alexnet it is."""
    if not os.path.isfile(path):
        raise files.PathError(f"{path} does not exist or is not a file.")
    return Identified(path, *cache.known_release(path))


def convert_to_keras(
    source: Identified, output: str, include_top: bool = True, overwrite: bool = False
) -> Converted:
    """Converts the identified Caffe or ONNX file into the `.keras` file `output`.

    Raises:
        PathError: `output` is not a writable `.keras` path, or exists without `overwrite`.
        ValueError: the file is not Caffe's bvlc_alexnet (naming what differs).
    """
    check_output(output, overwrite)
    weights = resolve_weights(source.path)
    if weights.kind != CAFFE_FILE:
        raise ValueError(f"{source.path} is not a .caffemodel or .onnx file of bvlc_alexnet.")
    classes = weights.classes() or NUM_IMAGENET_CLASSES  # (the file is parsed once, here)
    model = AlexNet(include_top=include_top, classes=classes, lrn="caffe")
    weights.load_into(model, include_top)
    removed = files.remove_abandoned_saves(os.path.dirname(os.path.abspath(output)))
    card = model_card.caffe_file_origin(source.path, source.described, source.release)

    def save(temporary: str) -> None:
        model.save(temporary)
        model_card.write_card(temporary, card)

    try:
        files.atomic_save(save, output)
    except OSError as error:
        raise files.PathError(
            f"could not write {output} ({error.strerror or error}): free space or choose "
            "another folder; nothing was written there."
        ) from None
    return Converted(output, classes if include_top else None, model.count_params(), tuple(removed))


def install_in_cache(path: str) -> str:
    """Checks that `path` is a known release of the ImageNet weights and converts it into the
    Keras cache; returns the converted file's path (`cache.install`)."""
    return cache.install(
        path,
        lambda: AlexNet(classes=IMAGENET_WEIGHTS.num_classes, **IMAGENET_WEIGHTS.variant),
    )


def check_output(output: str, overwrite: bool) -> None:
    """Raises `PathError` unless `output` can take the converted `.keras` file."""
    if not output.endswith(".keras"):
        raise files.PathError(f"--output must end in .keras; received --output={output}")
    if os.path.isdir(output):
        raise files.PathError(f"--output={output} is a folder; give the path of a .keras file.")
    if os.path.exists(output) and not overwrite:
        raise files.PathError(f"{output} exists; pass --overwrite to replace it.")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise files.PathError(f"the folder of --output, {folder}, does not exist: create it first.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise files.PathError(
            f"cannot write in {folder} (--output's folder): choose another folder."
        )
    files.check_replaceable(output, "--output")
