"""Where a model's weights came from, carried with the model: a small JSON "model card".

A `.keras` file carries it as an extra member `keras_alexnet_card.json` (Keras reads only its
own members and ignores it); a SavedModel export as `assets.extra/model_card.json` (TF Serving
ignores `assets.extra/` but its warm-up file). The card of a model made from the trained
ImageNet weights holds `IMAGENET_WEIGHTS.meta`: sources and hashes, preprocessing, accuracy,
licence.

    card = origin_of("imagenet")            # {"weights": "imagenet", "pretrained": {...}}
    write_card("m.keras", {"started_from": card, "classes": 10})
    read_card("m.keras")
"""

from __future__ import annotations

import json
import os
import zipfile

from keras_alexnet import files, untrusted
from keras_alexnet.weights import CAFFE_FILE, IMAGENET, NO_WEIGHTS, cache, weights_kind
from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS

CARD_MEMBER = "keras_alexnet_card.json"
EXPORT_CARD = "model_card.json"  # in a SavedModel's assets.extra/


def _pretrained_facts() -> dict:
    facts = IMAGENET_WEIGHTS.meta
    return {key: facts[key] for key in facts if key != "categories"}


def origin_of(weights: str | None) -> dict:
    """What a model that starts from `weights` (an `AlexNet`/`--weights` value) starts from."""
    kind = weights_kind(weights)
    if kind == NO_WEIGHTS:
        return {"weights": None, "initialisation": "random"}
    if kind == IMAGENET:
        return {"weights": "imagenet", "pretrained": _pretrained_facts()}
    if kind == CAFFE_FILE and os.path.exists(weights):
        return caffe_file_origin(weights, *cache.known_release(weights))
    card = {"weights": os.path.basename(weights)}
    if not os.path.exists(weights):  # (a resumed run's starting file, gone: the backup has it)
        return card
    inner = read_card(weights) if weights.endswith(".keras") else None
    if inner:
        card["card"] = inner
    return card


def caffe_file_origin(path: str, described: str, release) -> dict:
    """The origin of a `.caffemodel`/`.onnx` already identified by `known_release` (its size
    and hash as text, the known source it is or None): the file is not hashed again."""
    card = {"weights": os.path.basename(path), "file": described}
    if release:
        card["pretrained"] = _pretrained_facts()
    return card


def write_card(keras_path: str, card: dict) -> None:
    """Adds (or replaces) the card of a `.keras` file, in place."""
    text = json.dumps(card, indent=1, sort_keys=True)
    with zipfile.ZipFile(keras_path) as archive:
        present = CARD_MEMBER in archive.namelist()
    if not present:
        with zipfile.ZipFile(keras_path, "a") as archive:
            archive.writestr(CARD_MEMBER, text)
        return

    def rewrite(temporary: str) -> None:
        with zipfile.ZipFile(keras_path) as source, zipfile.ZipFile(temporary, "w") as target:
            for item in source.infolist():
                if item.filename != CARD_MEMBER:
                    target.writestr(item, source.read(item.filename))
            target.writestr(CARD_MEMBER, text)

    files.atomic_save(rewrite, keras_path)


# A card is a few kilobytes: the release's facts, the class count, the training settings.
MAX_CARD_BYTES = 1 << 20


def read_card(keras_path: str) -> dict | None:
    """The card of a `.keras` file, or None when it has none.

    Raises:
        untrusted.UntrustedInput: the file is not a regular file or not a zip, a member
            inflates past what a `.keras` holds, or the card is not JSON or nests too deep.
    """
    untrusted.check_keras_archive(keras_path)
    data = untrusted.read_zip_member(keras_path, CARD_MEMBER, MAX_CARD_BYTES)
    if data is None:
        return None
    card = untrusted.parse_json(data, f"The model card of {keras_path}")
    return card if isinstance(card, dict) else None


def read_export_card(saved_model_dir: str) -> dict:
    """The card of a SavedModel export, or {} when it has none (older exports).

    Raises:
        untrusted.UntrustedInput: the card is not a regular file, too large, or not JSON.
    """
    path = os.path.join(saved_model_dir, "assets.extra", EXPORT_CARD)
    if not os.path.lexists(path):
        return {}
    card = untrusted.read_json(path, MAX_CARD_BYTES, "The export's model card")
    return card if isinstance(card, dict) else {}


def write_export_card(saved_model_dir: str, card: dict) -> str:
    """Writes `assets.extra/model_card.json` into a SavedModel directory; returns its path."""
    directory = os.path.join(saved_model_dir, "assets.extra")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, EXPORT_CARD)

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(card, file, indent=1, sort_keys=True)

    return files.atomic_save(write, path)
