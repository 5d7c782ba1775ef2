"""Export for TF Serving: `<export_dir>/<integer version>/`, written atomically.

A version directory appears only complete: the SavedModel is written into a temporary
directory beside it and renamed into place, so TF Serving, which watches `export_dir`, never
loads a half-written version.
"""

from __future__ import annotations

import os
import shutil

import keras


def existing_versions(export_dir: str) -> list[int]:
    """The integer version directories in `export_dir`, ascending."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir) if name.isdigit())


def next_version(export_dir: str) -> int:
    """One more than the highest version in `export_dir`; 1 for a new one."""
    versions = existing_versions(export_dir)
    return versions[-1] + 1 if versions else 1


def export_saved_model(model: keras.Model, export_dir: str, version: int | None = None) -> str:
    """Exports `model` as a SavedModel into `<export_dir>/<version>/` and returns that path.

    Args:
        model: the model to export.
        export_dir: the model's base path, as TF Serving's `--model_base_path` takes it.
        version: the version number; the next free one when None. An existing version is
            never overwritten.
    """
    if version is None:
        version = next_version(export_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer; received version={version!r}.")
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"{final} already exists; TF Serving versions are never overwritten. Leave version "
            "unset to write the next one."
        )
    os.makedirs(export_dir, exist_ok=True)
    temporary = os.path.join(export_dir, f".tmp-{version}-{os.getpid()}")
    try:
        model.export(temporary, format="tf_saved_model", verbose=False)
        os.rename(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final
