"""The export store: `<export_dir>/<integer version>/` SavedModel directories, as TF Serving
reads them, and the one place that reads their numbering. The export writes into it
(`export.export_saved_model`), `trained_model` and `predict` read from it; a killed export's
temporary folder is `files.remove_abandoned_saves`' to remove.
"""

from __future__ import annotations

import os
import re

# TF Serving's versions are 64-bit signed integers (its `ModelSpec.version` is an int64).
MAX_VERSION = 2**63 - 1


def version_directories(export_dir: str) -> list[tuple[int, str]]:
    """The version directories in `export_dir` as (number, name), ascending: names of ASCII
    digits only, as TF Serving reads them (`010` is version 10; `²` is no version)."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        (int(name), name) for name in os.listdir(export_dir) if re.fullmatch(r"[0-9]+", name)
    )


def existing_versions(export_dir: str) -> list[int]:
    """The integer version directories in `export_dir`, ascending."""
    return [number for number, _ in version_directories(export_dir)]


def next_version(export_dir: str) -> int:
    """One more than the highest version in `export_dir`; 1 for a new one."""
    versions = existing_versions(export_dir)
    return versions[-1] + 1 if versions else 1


def find_saved_model(path: str) -> str:
    """`path` if it is a SavedModel directory, else the highest numbered version in it (an
    export base directory, as TF Serving reads it)."""
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "saved_model.pb")):
        versions = version_directories(path)
        if versions:
            path = os.path.join(path, versions[-1][1])
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise ValueError(
            f"{path!r} is neither a SavedModel (a directory with saved_model.pb), an export "
            "directory of numbered versions, nor a .keras file. Train and export one with "
            "`alexnet-train --config=quickstart`."
        )
    return path
