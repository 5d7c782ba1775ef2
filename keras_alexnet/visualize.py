"""Pictures: the conv1 kernels as in the paper's figure 3, nearest neighbours by fc7 features
as in figure 4, and training curves from a run's CSV log. Drawn with Pillow (no plotting
library needed).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

import keras
import numpy as np
from PIL import Image, ImageDraw

from keras_alexnet import files, untrusted
from keras_alexnet.alexnet import feature_extractor

BACKGROUND = (255, 255, 255)
# The largest filters picture: 96 kernels of 11x11 at 64 pixels each are 12 MB of RGB.
MAX_FILTER_SCALE = 64
# A run's CSV log has one short row per epoch: a few kilobytes.
MAX_HISTORY_BYTES = 64 << 20


def check_png_path(path: str, flag: str = "--output") -> str:
    """`path` (`~` expanded) once it ends in .png and can be written (its folder exists and is
    can be created and written, it is not a device or a folder): checked before the
    drawing's long work."""
    path = os.path.expanduser(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"{flag}={path}: the picture is written as PNG; give a path ending .png.")
    files.check_writable_file(path, flag, "a PNG image")
    return path


def save_png(picture: Image.Image, path: str, flag: str = "--output") -> str:
    """Writes `picture` to `path` as PNG (whole or not at all, `files.atomic_save`) after
    `check_png_path`, creating its folder; returns the path."""
    path = check_png_path(path, flag)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.atomic_save(lambda temporary: picture.save(temporary, format="PNG"), path)
    return path


def _normalise(kernel: np.ndarray) -> np.ndarray:
    """A kernel (h, w, 3) stretched to 0..255 (each kernel on its own range, as in fig. 3)."""
    low, high = kernel.min(), kernel.max()
    return np.uint8(255 * (kernel - low) / (high - low + 1e-12))


def filters_image(model: keras.Model, scale: int = 4, per_row: int = 16) -> Image.Image:
    """The 96 conv1 kernels: tower a's 48 above tower b's 48, a gap between (paper fig. 3).

    After training on real images the towers specialise: tower a's kernels come out largely
    colour-agnostic, tower b's colour-specific.
    """
    if not 1 <= scale <= MAX_FILTER_SCALE:
        raise ValueError(f"scale must be 1 to {MAX_FILTER_SCALE} pixels; received {scale}.")
    names = {layer.name for layer in model.layers}
    if not {"conv1_a", "conv1_b"} <= names:
        raise ValueError(
            f"The model {model.name!r} has no conv1_a and conv1_b layers (the paper's two "
            "towers): it is not an AlexNet of this package, whose filters this draws."
        )
    towers = [np.asarray(model.get_layer(f"conv1_{t}").kernel, np.float32) for t in "ab"]
    size = towers[0].shape[0] * scale
    cell = size + 2
    rows = [-(-k.shape[-1] // per_row) for k in towers]
    gap = cell // 2
    image = Image.new("RGB", (per_row * cell + 2, sum(rows) * cell + gap + 2), BACKGROUND)
    top = 2
    for kernels, n_rows in zip(towers, rows, strict=True):
        for i in range(kernels.shape[-1]):
            tile = Image.fromarray(_normalise(kernels[..., i])).resize((size, size), Image.NEAREST)
            image.paste(tile, (2 + (i % per_row) * cell, top + (i // per_row) * cell))
        top += n_rows * cell + gap
    return image


def nearest_neighbours(
    query_features: np.ndarray, features: np.ndarray, count: int = 6
) -> np.ndarray:
    """Indices (Q, count) of the `features` rows closest to each query in Euclidean distance
    (paper 6.1: images whose fc7 features are close are similar)."""
    q = np.asarray(query_features, np.float64)
    f = np.asarray(features, np.float64)
    distances = (q**2).sum(1)[:, None] - 2 * q @ f.T + (f**2).sum(1)[None, :]
    return np.argsort(distances, axis=1, kind="stable")[:, :count]


def neighbours_image(
    queries: Sequence[np.ndarray], neighbours: Sequence[Sequence[np.ndarray]], size: int = 96
) -> Image.Image:
    """One row per query: the query, a gap, then its neighbours (paper fig. 4)."""
    columns = 1 + max(len(row) for row in neighbours)
    cell, gap = size + 4, size // 4
    image = Image.new("RGB", (columns * cell + gap, len(queries) * cell), BACKGROUND)
    for r, (query, row) in enumerate(zip(queries, neighbours, strict=True)):
        for c, picture in enumerate([query, *row]):
            tile = Image.fromarray(np.uint8(picture)).resize((size, size), Image.BILINEAR)
            image.paste(tile, (2 + c * cell + (gap if c else 0), 2 + r * cell))
    return image


def read_history(csv_path: str) -> dict[str, list[float]]:
    """The columns of a run's `training_log.csv` as lists of floats."""
    text = untrusted.read_bytes(csv_path, MAX_HISTORY_BYTES, "The training log")
    try:
        rows = list(csv.DictReader(text.decode("utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{csv_path} is not a CSV training log ({error}).") from None
    if not rows:
        raise ValueError(f"{csv_path} has no epochs yet.")
    missing = [key for key in ("epoch", "loss") if key not in rows[0]]
    if missing:
        raise ValueError(
            f"{csv_path} has no {' or '.join(missing)} column: it is not the training_log.csv "
            f"alexnet-train writes (its columns: {', '.join(list(rows[0])[:8])})."
        )
    history = {key: [] for key in rows[0]}
    for number, row in enumerate(rows, start=2):
        for key in history:
            try:
                history[key].append(float(row[key]))
            except (TypeError, ValueError):
                raise ValueError(
                    f"{csv_path}, line {number}: {key} is {row[key]!r}, not a number (a row "
                    "cut short or edited?)."
                ) from None
    return history


def curves_image(history: dict[str, list[float]], width: int = 900, height: int = 300):
    """Three panels: loss, top-1 error and top-5 error per epoch; train solid blue,
    validation orange."""
    panels = [("loss", "loss"), ("top-1 error", "top1_accuracy"), ("top-5 error", "top5_accuracy")]
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    epochs = history["epoch"]
    panel_width = width // len(panels)
    draw.text((45, 5), "train", fill=(31, 119, 180))
    draw.text((85, 5), "validation", fill=(255, 127, 14))
    for p, (title, key) in enumerate(panels):
        left, right = p * panel_width + 45, (p + 1) * panel_width - 10
        top, bottom = 40, height - 30
        series = []
        for prefix, colour in (("", (31, 119, 180)), ("val_", (255, 127, 14))):
            if prefix + key in history:
                values = history[prefix + key]
                values = values if key == "loss" else [1 - v for v in values]
                if any(math.isfinite(v) for v in values):  # (NaN or inf: not drawn)
                    series.append((values, colour))
        if not series:
            continue
        finite = [v for values, _ in series for v in values if math.isfinite(v)]
        low, high = min(finite), max(finite)
        low, high = (0.0, 1.0) if key != "loss" else (low, high + 1e-9)
        draw.rectangle((left, top, right, bottom), outline=(0, 0, 0))
        draw.text((left, top - 15), title, fill=(0, 0, 0))
        draw.text((left - 40, top), f"{high:.2f}", fill=(0, 0, 0))
        draw.text((left - 40, bottom - 10), f"{low:.2f}", fill=(0, 0, 0))
        draw.text((left, bottom + 5), f"epoch {epochs[0]:g}", fill=(0, 0, 0))
        draw.text((right - 60, bottom + 5), f"epoch {epochs[-1]:g}", fill=(0, 0, 0))
        span = max(epochs[-1] - epochs[0], 1)
        for values, colour in series:
            points = [
                (
                    left + (right - left) * (e - epochs[0]) / span,
                    bottom - (bottom - top) * (v - low) / (high - low),
                )
                for e, v in zip(epochs, values, strict=True)
                if math.isfinite(v) and math.isfinite(e)
            ]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    return image


def similar_images(
    model: keras.Model,
    source,
    stats,
    split: str = "validation",
    max_images: int = 600,
    query_files: Sequence[str] = (),
    queries: int = 4,
    neighbours: int = 6,
) -> Image.Image:
    """For each query, the `neighbours` images of `source`'s `split` (its first `max_images`)
    closest to it by the model's fc7 features, drawn as one row each (paper 6.1, fig. 4).

    The queries are the image files `query_files`, or without them the split's first
    `queries` images (each is then its own nearest neighbour, at distance 0, and is left out).
    `stats` are the pixel statistics the model was trained with.

    Raises:
        ValueError: a query file cannot be read or is not a JPEG or PNG image.
    """
    if queries < 1 and not query_files:
        raise ValueError(f"queries must be at least 1 without query files; received {queries}.")
    # deferred, heavy: TensorFlow's image side, for the search only (plots need none of it)
    import tensorflow as tf

    from keras_alexnet.data import pipeline
    from keras_alexnet.data.decode import read_image_file

    query_views = []
    for path in query_files:  # (first: a bad file is found before the dataset is read)
        try:
            encoded = tf.constant(read_image_file(path))
            query_views.append(pipeline.eval_view(encoded, stats).numpy())
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        except tf.errors.InvalidArgumentError:
            raise ValueError(f"{path}: not a JPEG or PNG image") from None
    features_of = feature_extractor(model)
    dataset = pipeline.eval_dataset(source, 32, stats, split=split)
    views = np.concatenate([v.numpy() for v, _ in dataset.unbatch().take(max_images).batch(32)])
    features = np.asarray(features_of.predict(views, batch_size=32, verbose=0))
    if query_views:
        query_views = np.stack(query_views)
        query_features = np.asarray(features_of.predict(query_views, verbose=0))
        nearest = nearest_neighbours(query_features, features, neighbours)
    else:
        query_views, query_features = views[:queries], features[:queries]
        nearest = nearest_neighbours(query_features, features, neighbours + 1)[:, 1:]
    mean = np.float32(stats.mean_rgb)
    pixels = lambda view: np.clip(view + mean, 0, 255)  # noqa: E731
    rows = [[pixels(views[j]) for j in row] for row in nearest]
    return neighbours_image([pixels(q) for q in query_views], rows)
