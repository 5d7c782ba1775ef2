"""`alexnet_shapes`: the embedded default dataset, a tensorflow-datasets builder that draws its
images locally, so that training, export and prediction run on a fresh machine with no
download.

Ten classes of shapes (circle, ellipse, triangle, square, pentagon, hexagon, star, cross,
ring, crescent) in random colours, sizes, positions and rotations, on textured backgrounds
(gradients, stripes, checkerboards, smooth noise) with pixel noise, 128x128 JPEG. Every image
is a pure function of (split, index): the dataset is the same on every machine.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, ImageDraw

CLASS_NAMES = (
    "circle",
    "ellipse",
    "triangle",
    "square",
    "pentagon",
    "hexagon",
    "star",
    "cross",
    "ring",
    "crescent",
)
IMAGE_SIZE = 128
SPLIT_SIZES = {"train": 3000, "validation": 600}
_SPLIT_SEEDS = {"train": 20120, "validation": 20121}
_DRAW_SCALE = 4  # shapes are drawn at 4x and box-filtered down: smooth edges


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured (size, size, 3) float background in 0..255."""
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    y, x = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, math.pi)
    along = x * math.cos(angle) + y * math.sin(angle)
    kind = rng.integers(4)
    if kind == 0:  # linear gradient
        t = (along - along.min()) / (np.ptp(along) + 1e-9)
    elif kind == 1:  # stripes
        t = (np.sin(along * 2 * math.pi * rng.uniform(3, 10)) > 0).astype(float)
    elif kind == 2:  # checkerboard
        cells = rng.integers(3, 10)
        t = ((np.floor(x * cells) + np.floor(y * cells)) % 2).astype(float)
    else:  # smooth noise: a coarse random grid, upsampled
        grid = rng.uniform(0, 1, (rng.integers(3, 7),) * 2)
        t = np.asarray(Image.fromarray(np.uint8(grid * 255)).resize((size, size), Image.BICUBIC))
        t = t / 255.0
    contrast = rng.uniform(0.1, 0.35)  # keep the texture weaker than the shape
    return a + (b - a) * (t * contrast)[..., None]


def _regular_polygon(cx, cy, radius, sides, rotation, inner=None):
    """Vertices of a regular polygon, or of a star when `inner` (radius ratio) is given."""
    points = []
    steps = sides * 2 if inner else sides
    for k in range(steps):
        r = radius * (inner if inner and k % 2 else 1.0)
        theta = rotation + 2 * math.pi * k / steps
        points.append((cx + r * math.cos(theta), cy + r * math.sin(theta)))
    return points


def _cross(cx, cy, radius, rotation, arm=0.35):
    w = radius * arm
    outline = [(w, radius), (w, w), (radius, w), (radius, -w), (w, -w), (w, -radius)]
    outline += [(-w, -radius), (-w, -w), (-radius, -w), (-radius, w), (-w, w), (-w, radius)]
    c, s = math.cos(rotation), math.sin(rotation)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in outline]


def shape_mask(name, rng, size):
    """An 'L' mask image with the shape drawn in 255."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    radius = rng.uniform(0.25, 0.42) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    rotation = rng.uniform(0, 2 * math.pi)

    def disc(x, y, r, fill):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    if name == "circle":
        disc(cx, cy, radius, 255)
    elif name == "ellipse":
        minor = radius * rng.uniform(0.35, 0.6)
        c, s = math.cos(rotation), math.sin(rotation)
        points = []
        for k in range(72):
            t = 2 * math.pi * k / 72
            x, y = radius * math.cos(t), minor * math.sin(t)
            points.append((cx + x * c - y * s, cy + x * s + y * c))
        draw.polygon(points, fill=255)
    elif name in ("triangle", "square", "pentagon", "hexagon"):
        sides = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[name]
        draw.polygon(_regular_polygon(cx, cy, radius, sides, rotation), fill=255)
    elif name == "star":
        draw.polygon(_regular_polygon(cx, cy, radius, 5, rotation, inner=0.42), fill=255)
    elif name == "cross":
        draw.polygon(_cross(cx, cy, radius, rotation), fill=255)
    elif name == "ring":
        disc(cx, cy, radius, 255)
        disc(cx, cy, radius * rng.uniform(0.45, 0.65), 0)
    elif name == "crescent":
        disc(cx, cy, radius, 255)
        offset = radius * rng.uniform(0.35, 0.55)
        disc(cx + offset * math.cos(rotation), cy + offset * math.sin(rotation), radius * 0.85, 0)
    else:
        raise ValueError(f"Unknown shape {name!r}; the shapes are {CLASS_NAMES}.")
    return mask


def draw_example(split: str, index: int) -> tuple[np.ndarray, int]:
    """The `index`-th example of `split`: a uint8 (128, 128, 3) image and its class id."""
    rng = np.random.default_rng([_SPLIT_SEEDS[split], index])
    label = index % len(CLASS_NAMES)
    size = IMAGE_SIZE
    background = _background(rng, size)
    # A shape colour clearly apart from the background's mean colour.
    for _ in range(100):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - background.mean(axis=(0, 1))) > 90:
            break
    mask = shape_mask(CLASS_NAMES[label], rng, size * _DRAW_SCALE).resize((size, size), Image.BOX)
    mask = np.asarray(mask, np.float32)[..., None] / 255
    shade = 1.0 + rng.uniform(-0.15, 0.15) * (np.mgrid[0:size, 0:size][0] / size - 0.5)[..., None]
    image = background * (1 - mask) + np.clip(colour * shade, 0, 255) * mask
    image += rng.normal(0, rng.uniform(2, 10), image.shape)
    return np.uint8(np.clip(image, 0, 255)), label


class AlexnetShapes(tfds.core.GeneratorBasedBuilder):
    """Procedurally drawn shapes in ten classes; generated locally, never downloaded."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: 3000 train and 600 validation images."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(IMAGE_SIZE, IMAGE_SIZE, 3), encoding_format="jpeg"
                    ),
                    "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split):
        for index in range(SPLIT_SIZES[split]):
            image, label = draw_example(split, index)
            yield index, {"image": image, "label": label}
