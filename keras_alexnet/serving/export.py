"""Export for TF Serving: a trained model as `<export_dir>/<integer version>/`, written whole.

A version holds the SavedModel of `signatures.serving_archive` (its three signatures, the
contract docs/serving.md documents), TF Serving's warm-up requests (`warmup`), the model card
(`assets.extra/model_card.json`) and, if asked, portable forms beside it (`portable_export`).
A version directory appears only complete: it is written into a private folder beside it
(`files.atomic_save`) and renamed into place, so TF Serving, which watches `export_dir`, never
loads a half-written version; the numbering is `export_store`'s.
"""

from __future__ import annotations

import errno
import importlib.util
import os
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import files, model_card
from keras_alexnet.data import decode
from keras_alexnet.data.stats import IMAGENET_STATS, ColorStats
from keras_alexnet.serving import export_store, portable_export, trained_model
from keras_alexnet.serving.signatures import serving_archive
from keras_alexnet.serving.warmup import write_warmup_requests


def export_trained_model(
    path: str,
    export_dir: str,
    class_names_file: str | None = None,
    stats_file: str | None = None,
    version: int | None = None,
    also: Sequence[str] = (),
) -> str:
    """`export_saved_model` of the trained model at `path` (a run directory or a `.keras`
    file, with the class names, stats and card that go with it: see
    `trained_model.load_trained_model`); returns the version directory written.

    Raises:
        ValueError: one line: the model cannot be loaded, is already an export, or nothing
            names its classes (give a class names file); or a bad `also` or `version`.
    """
    _check_backend()
    try:
        also = portable_export.check_formats(also)
    except ValueError as error:
        raise ValueError(f"--also: {error}") from None
    if "onnx" in also and importlib.util.find_spec("onnx") is None:
        raise ValueError("--also=onnx needs the onnx package: pip install -e '.[onnx]'.")
    trained = trained_model.load_trained_model(path, class_names_file, stats_file)
    if trained.kind == trained_model.SAVED_MODEL:
        raise ValueError(
            f"{trained.path} is already a SavedModel export; give the run directory or the "
            ".keras file it was exported from."
        )
    if trained.class_names is None:
        raise ValueError(
            f"the model has {trained.classes} classes: give their names with --class_names."
        )
    return export_saved_model(
        trained.model,
        os.path.expanduser(export_dir),
        trained.class_names,
        trained.stats,
        version,
        card=trained.card or None,
        also=also,
    )


def export_saved_model(
    model: keras.Model,
    export_dir: str,
    class_names: Sequence[str],
    stats: ColorStats = IMAGENET_STATS,
    version: int | None = None,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
    card: dict | None = None,
    also: Sequence[str] = (),
    check: Callable[[str], None] | None = None,
) -> str:
    """Exports `model` for TF Serving into `<export_dir>/<version>/` and returns that path.

    Args:
        model: a trained AlexNet (any number of classes).
        export_dir: the model's base path, as TF Serving's `--model_base_path` takes it.
        class_names: the names of the model's classes, in label order.
        stats: the pixel statistics the model was trained with (its mean is subtracted).
        version: the version number; the next free one when None. An existing version is
            never overwritten.
        max_pixels: `serving_default` refuses larger images (from their header, before
            decoding them).
        card: where the model came from (`model_card`), written with the class names to
            `assets.extra/model_card.json`.
        also: formats of `portable_export` to write into the same version directory, beside
            the SavedModel: "onnx" (`model.onnx`), "litert" (`model.tflite`). TF Serving
            ignores them.
        check: called with the written version's folder before it is renamed into place;
            what it raises leaves no version (a JAX run checks its probabilities there).

    Example:
        export_saved_model(model, "saved_models/alexnet", source.class_names)
    """
    _check_backend()
    also = portable_export.check_exportable(model, also)
    trained_model.check_classifier(model, f"The model {model.name!r}")
    _check_export_dir(export_dir)
    chosen = version is None
    if chosen:
        version = export_store.next_version(export_dir)
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not 1 <= version <= export_store.MAX_VERSION
    ):
        raise ValueError(
            "version must be a positive integer of at most 2**63 - 1 (TF Serving's versions "
            f"are 64-bit); received version={version!r}."
        )
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"{final} already exists; TF Serving versions are never overwritten. Leave version "
            "unset to write the next one."
        )
    archive = serving_archive(model, class_names, stats, max_pixels)
    os.makedirs(export_dir, exist_ok=True)
    files.remove_abandoned_saves(export_dir)
    # From shapes and dtypes: copying the variables to count them would hold 244 MB more.
    weights_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    files.check_free_space(export_dir, weights_bytes * (1 + len(also)), "the export")

    def write(temporary: str) -> None:
        archive.write_out(temporary, verbose=False)
        write_warmup_requests(temporary)
        model_card.write_export_card(
            temporary,
            {**(card or {}), "classes": len(class_names), "class_names": list(class_names)},
        )
        for fmt in also:
            portable_export.export_portable(model, temporary, fmt, stats, class_names, card)
        if check is not None:
            check(temporary)

    def rename(temporary: str, path: str) -> str:
        return _rename_into_version(temporary, export_dir, version, chosen)

    try:
        return files.atomic_save(write, final, rename=rename)
    except tf.errors.ResourceExhaustedError as error:
        if not _disk_full(error):
            raise
        raise files.DiskFull(
            f"The disk filled up while writing the export into {export_dir}: free space and "
            "export again (no version was written; TF Serving saw nothing)."
        ) from None
    except files.DiskFull:
        raise files.DiskFull(
            f"The disk filled up while writing the export into {export_dir}: free space and "
            "export again (no version was written; TF Serving saw nothing)."
        ) from None


def _check_backend() -> None:
    """The signatures are TensorFlow graphs around the model: Keras must run on TensorFlow."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "The SavedModel export runs on Keras' TensorFlow backend; KERAS_BACKEND is "
            f"{keras.backend.backend()!r}. Run the export with KERAS_BACKEND=tensorflow (a model "
            "saved as .keras on any backend exports there)."
        )


def _check_export_dir(export_dir: str) -> None:
    """Raises `PathError` for an export directory that is a file or a dangling link."""
    if os.path.islink(export_dir) and not os.path.exists(export_dir):
        raise files.PathError(
            f"--export_dir {export_dir} is a symbolic link to nothing ({os.readlink(export_dir)}):"
            " remove the link, or create the folder it names."
        )
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise files.PathError(f"--export_dir {export_dir} is a file, not a directory.")
    files.check_writable(export_dir, "--export_dir", create=False)


def _disk_full(error: Exception) -> bool:
    """Whether TensorFlow's SaveV2 failed for want of space (ResourceExhaustedError, which
    also means out of memory: told apart by its message)."""
    return "No space left on device" in str(error)


def _rename_into_version(temporary: str, export_dir: str, version: int, chosen: bool) -> str:
    """Renames the finished export to `<export_dir>/<version>`. Another export that took the
    same free version first (two exports at once) wins it: a chosen version then moves on to
    the next free one, so both exports land; a version asked for is an error."""
    while True:
        final = os.path.join(export_dir, str(version))
        try:
            os.rename(temporary, final)  # fails onto an existing, non-empty version
            return final
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if not chosen:
                raise FileExistsError(
                    f"{final} already exists; TF Serving versions are never overwritten. "
                    "Leave version unset to write the next one."
                ) from None
            version = max(version + 1, export_store.next_version(export_dir))
