"""Where images come from: tensorflow-datasets (ImageNet from its manual download, any prepared
dataset), an image folder, or the embedded `alexnet_shapes` set.

Every source is a `Source`: class names, example counts per split, and `encoded(split)`, a
dataset of `(encoded JPEG/PNG bytes, int32 label)` that the pipeline decodes, keeping only
the pixels it needs. `images(split)` gives decoded `(uint8 (H, W, 3), int32)` pairs. Splits
are always called "train" and "validation", whatever the underlying dataset calls them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import io
import os
import stat
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from keras_alexnet.data import decode
from keras_alexnet.data.stats import IMAGENET_STATS, ColorStats, load_stats

SPLITS = ("train", "validation")
IMAGENET_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
DEFAULT_VALIDATION_FRACTION = 0.1
# Image folders up to this many files are decoded once when listed, so that every damaged
# file is named before training starts (about 600 files/s on 2 cores).
VERIFY_DECODE_LIMIT = 50_000


@dataclasses.dataclass(frozen=True)
class Source:
    """A labelled image dataset with a train and a validation split.

    Attributes:
        name: what the source is (a tfds name or a folder path).
        class_names: the class names, indexed by label.
        num_examples: examples per split, {"train": N, "validation": M}.
        default_stats: the pixel statistics to use when none are given: ImageNet's for
            `imagenet2012` (and, as a fallback, for every other source; compute a dataset's own
            with `alexnet-compute-stats`).
        load: `load(split, shuffle_seed)` -> dataset of (encoded bytes, int32 label); shuffled
            (files and examples) when `shuffle_seed` is not None.
        fully_shuffled: whether `load` with a seed already shuffles every example (not just
            files), so the pipeline needs no shuffle buffer of its own.
    """

    name: str
    class_names: tuple[str, ...]
    num_examples: dict[str, int]
    load: Callable[[str, int | None], tf.data.Dataset]
    default_stats: ColorStats = IMAGENET_STATS
    fully_shuffled: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def encoded(self, split: str, shuffle_seed: int | None = None) -> tf.data.Dataset:
        """(encoded image bytes, int32 label) pairs of `split`."""
        _check_split(split)
        return self.load(split, shuffle_seed)

    def images(self, split: str) -> tf.data.Dataset:
        """Decoded (uint8 (H, W, 3), int32 label) pairs of `split`, in a fixed order."""
        return self.encoded(split).map(
            lambda encoded, label: (decode.decode_image(encoded), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; received split={split!r}.")


# --- tensorflow-datasets -------------------------------------------------------------------


def _tfds_split_names(builder) -> dict[str, str]:
    """Maps "train"/"validation" to the builder's split names (or slices of train)."""
    available = set(builder.info.splits.keys())
    if "train" not in available:
        raise ValueError(
            f"The dataset {builder.name!r} has no 'train' split (it has {sorted(available)}); "
            "keras_alexnet trains on 'train' and validates on 'validation' or 'test'."
        )
    for validation in ("validation", "test"):
        if validation in available:
            return {"train": "train", "validation": validation}
    percent = round(100 * (1 - DEFAULT_VALIDATION_FRACTION))
    return {"train": f"train[:{percent}%]", "validation": f"train[{percent}%:]"}


def source_from_builder(builder, default_stats: ColorStats = IMAGENET_STATS) -> Source:
    """A `Source` over a prepared tensorflow-datasets builder with (image, label) examples."""
    keys = builder.info.supervised_keys
    features = builder.info.features
    if not keys or len(keys) != 2:
        raise ValueError(
            f"The dataset {builder.name!r} has no (image, label) supervised keys; "
            "keras_alexnet needs an image classification dataset."
        )
    image_key, label_key = keys
    if not isinstance(features[image_key], tfds.features.Image) or not isinstance(
        features[label_key], tfds.features.ClassLabel
    ):
        raise ValueError(
            f"The dataset {builder.name!r} is not an image classification dataset: its "
            f"supervised keys are {image_key!r} ({type(features[image_key]).__name__}) and "
            f"{label_key!r} ({type(features[label_key]).__name__})."
        )
    splits = _tfds_split_names(builder)

    def load(split, shuffle_seed):
        read_config = tfds.ReadConfig(
            shuffle_seed=shuffle_seed, interleave_cycle_length=16, add_tfds_id=False
        )
        ds = builder.as_dataset(
            split=splits[split],
            shuffle_files=shuffle_seed is not None,
            decoders={image_key: tfds.decode.SkipDecoding()},
            read_config=read_config,
        )
        return ds.map(
            lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    num_examples = {split: builder.info.splits[name].num_examples for split, name in splits.items()}
    return Source(
        name=builder.name,
        class_names=tuple(features[label_key].names),
        num_examples=num_examples,
        load=load,
        default_stats=default_stats,
    )


def tfds_source(name: str, data_dir: str | None = None) -> Source:
    """Any image classification dataset of tensorflow-datasets already prepared in `data_dir`.

    Nothing is downloaded: prepare the dataset beforehand (`tfds build NAME --data_dir=...`
    on a machine with network access), or use `imagenet_source` for ImageNet.
    """
    if name == "imagenet2012":
        return imagenet_source(data_dir=data_dir)
    if name == "alexnet_shapes":
        return embedded_source(data_dir)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        first_line = str(error).strip().splitlines()[0]
        raise ValueError(
            f"There is no tensorflow-datasets dataset named {name!r} ({first_line}). Use a name "
            "from `tfds.list_builders()`, 'alexnet_shapes' for the embedded dataset, or an "
            "image folder."
        ) from None
    if not builder.is_prepared():
        raise ValueError(
            f"The dataset {name!r} is not prepared in data_dir={builder.data_dir_root!r}. "
            f"Nothing is downloaded at run time: prepare it once with `tfds build {name} "
            f"--data_dir={builder.data_dir_root}` where the network is reachable, or pass the "
            "data_dir that holds it."
        )
    return source_from_builder(builder)


def imagenet_source(data_dir: str | None = None, manual_dir: str | None = None) -> Source:
    """ILSVRC-2012 through tensorflow-datasets, prepared once from your own download.

    Args:
        data_dir: where the prepared dataset lives (or will be written).
        manual_dir: the folder holding `ILSVRC2012_img_train.tar` and
            `ILSVRC2012_img_val.tar`, needed only the first time (default:
            `<data_dir>/downloads/manual`).
    """
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if not builder.is_prepared():
        manual_dir = manual_dir or os.path.join(builder.data_dir_root, "downloads", "manual")
        missing = [f for f in IMAGENET_FILES if not os.path.isfile(os.path.join(manual_dir, f))]
        if missing:
            raise ValueError(
                f"imagenet2012 is not prepared in data_dir={builder.data_dir_root!r} and the "
                f"manual download is incomplete: {', '.join(missing)} not found in "
                f"manual_dir={manual_dir!r}. Put ILSVRC2012_img_train.tar (138 GB) and "
                "ILSVRC2012_img_val.tar (6.3 GB) there; they are obtained, after registering, "
                "from https://image-net.org/download-images (ILSVRC2012). Preparation runs once."
            )
        logging.info("Preparing imagenet2012 from %s into %s", manual_dir, builder.data_dir_root)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    return source_from_builder(builder, default_stats=IMAGENET_STATS)


def embedded_source(data_dir: str | None = None) -> Source:
    """The embedded `alexnet_shapes` dataset, generated locally on first use (seconds)."""
    # deferred, heavy: registers a tensorflow-datasets builder, for the embedded set only
    from keras_alexnet.data.shapes_dataset import AlexnetShapes

    with _tfds_quiet():  # ("Variant folder ... has no dataset_info.json": not yet made)
        builder = AlexnetShapes(data_dir=data_dir)
        prepared = builder.is_prepared()
    if not prepared:
        # Printed, not logged: the first run waits here, and should say why.
        print(f"Generating the embedded dataset alexnet_shapes into {builder.data_dir} (once).")
        with _tfds_quiet():  # ("Downloading and preparing dataset Unknown size ...")
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(try_download_gcs=False)
            )
    return source_from_builder(builder)


@contextlib.contextmanager
def _tfds_quiet():
    """tensorflow-datasets' own prints and warnings about a dataset this package generates."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.set_verbosity(verbosity)


# --- image folders ---------------------------------------------------------------------------


def _list_files(folder: str) -> list[str]:
    """Regular, non-hidden files under `folder`, recursively, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
    return found


def _read_ends(path: str) -> tuple[bytes, bytes]:
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64))
        return head, f.read()


def shown(path: str) -> str:
    """`path` printable: bytes of a name that are not UTF-8 as \\xNN escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # os.walk turns undecodable bytes into lone surrogates
        return False
    return True


def _file_problem(path: str, max_pixels: int) -> str | None:
    """What makes `path` unusable without decoding it (name, ends, declared size), or None."""
    if not _utf8(path):
        return "its file name is not valid UTF-8 (rename it)"
    try:
        # Before anything opens it: opening a pipe blocks, a device reads without end.
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            return "it is not a regular file (a device, a pipe, or a link to one)"
        if status.st_size == 0:  # (also every file of /proc, which may block when read)
            return "not a complete JPEG or PNG image (it is empty)"
        head, tail = _read_ends(path)
        if not decode.looks_complete(head, tail):
            return "not a complete JPEG or PNG image"
        width, height = decode.declared_size_of_file(path)
    except OSError as error:
        return f"cannot read it ({error.strerror or error})"
    except ValueError as error:
        return f"its image header does not parse ({error})"
    if width * height > max_pixels:
        return f"it declares {width}x{height} pixels, more than the limit of {max_pixels}"
    if decode.is_short_jpeg(head, status.st_size, width * height):
        return f"it declares {width}x{height} pixels in only {status.st_size:,} bytes (truncated)"
    return None


def _class_folders(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise ValueError(
            f"The image folder {folder!r} does not exist or is not a folder. It needs one "
            "subfolder per class (or train/ and validation/ folders holding them)."
        )
    folders = sorted(d for d in os.listdir(folder) if os.path.isdir(f"{folder}/{d}"))
    hidden = [d for d in folders if d.startswith(".")]
    if hidden:
        logging.warning(
            "Skipping %d folder(s) of %s whose names start with '.' (hidden, not classes): %s.",
            len(hidden),
            shown(folder),
            ", ".join(shown(d) for d in hidden[:5]) + (" ..." if len(hidden) > 5 else ""),
        )
    classes = [d for d in folders if not d.startswith(".")]
    inside = os.path.realpath(folder)
    for name in classes:
        path = os.path.join(folder, name)
        target = os.path.realpath(path)
        if os.path.islink(path) and os.path.commonpath([inside, target]) != inside:
            raise ValueError(
                f"The class folder {shown(path)!r} is a link to {shown(target)!r}, outside the "
                "image folder: links are followed only within it (a link to / would train on "
                "the whole machine). Move or copy that class's images into the image folder, "
                "or link the image files themselves."
            )
        if name != name.strip() or "\n" in name or "\r" in name:
            raise ValueError(
                f"The class folder {shown(os.path.join(folder, name))!r} has a name with a line "
                "break or spaces around it, which a one-name-per-line class_names.txt cannot "
                "keep. Rename the folder."
            )
        if not _utf8(name):
            raise ValueError(
                f"The class folder {shown(os.path.join(folder, name))!r} has a name that is not "
                "valid UTF-8; class names must be text. Rename the folder."
            )
    if not classes:
        raise ValueError(
            f"The image folder {folder!r} has no class subfolders. Put the images of each class "
            "in a subfolder named after the class, e.g. cats/001.jpg, dogs/002.png."
        )
    return classes


def _undecodable(paths: list[str], max_pixels: int) -> set[str]:
    """The files among `paths` that TensorFlow cannot decode: one parallel decoding pass."""
    if not paths:
        return set()
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string)).map(
        lambda path: (path, tf.shape(decode.decode_image(tf.io.read_file(path), max_pixels))[0]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    decoded = {path.decode() for path, _ in ds.ignore_errors().as_numpy_iterator()}
    return set(paths) - decoded


def _scan(folder, class_names, strict, verify, max_pixels, required=True):
    """(paths, labels) of the usable JPEG/PNG files in `folder/<class>/`; warns about each of
    the rest by name, or raises on the first one if `strict`.

    Every file gets quick checks without decoding: a UTF-8 name, a JPEG/PNG header and
    trailer (non-images, empty and truncated files), at most `max_pixels` declared pixels;
    with `verify` (None: when there are at most VERIFY_DECODE_LIMIT files) the rest are also
    decoded once, which finds files whose data is damaged between intact ends.
    """
    files = {name: _list_files(os.path.join(folder, name)) for name in class_names}
    every_file = [f for name in class_names for f in files[name]]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        found = pool.map(lambda f: _file_problem(f, max_pixels), every_file)
        problems = {f: problem for f, problem in zip(every_file, found, strict=True) if problem}
    candidates = [f for f in every_file if f not in problems]
    if verify is None:
        verify = len(candidates) <= VERIFY_DECODE_LIMIT
    if verify:
        undecodable = _undecodable(candidates, max_pixels)
        problems.update(dict.fromkeys(undecodable, "its image data does not decode"))
    for path in every_file:
        if path not in problems:
            continue
        if strict:
            raise ValueError(
                f"{shown(path)!r} is not a usable image: {problems[path]}. Remove or replace "
                "it, or run without strict mode to skip it."
            )
        logging.warning("Skipping %s: %s.", shown(path), problems[path])
    paths, labels = [], []
    for label, name in enumerate(class_names):
        good = [f for f in files[name] if f not in problems]
        if not good and required:
            raise ValueError(
                f"The class folder {os.path.join(folder, name)!r} holds no JPEG or PNG images "
                f"({len(files[name])} files, none usable). Add images or remove the folder."
            )
        paths += good
        labels += [label] * len(good)
    if problems:
        logging.warning(
            "Skipped %d of %d files under %s that are not usable JPEG or PNG images.",
            len(problems),
            len(every_file),
            folder,
        )
    return paths, labels


def _hold_out(paths, labels, fraction, seed):
    """Splits each class with a seeded permutation: (train paths/labels, validation ...)."""
    rng = np.random.default_rng(seed)
    paths, labels = np.asarray(paths), np.asarray(labels)
    train, validation = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        count = int(round(fraction * len(members)))
        if fraction > 0 and len(members) > 1:
            # Every class is seen in both splits, however small.
            count = min(max(count, 1), len(members) - 1)
        elif len(members) <= 1:
            count = 0
        validation += members[:count].tolist()
        train += members[count:].tolist()
    train, validation = sorted(train), sorted(validation)
    return (
        (paths[train].tolist(), labels[train].tolist()),
        (paths[validation].tolist(), labels[validation].tolist()),
    )


def image_folder_source(
    folder: str,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
    strict: bool = False,
    verify: bool | None = None,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
) -> Source:
    """Images in `folder/<class>/...` (JPEG or PNG), or in `folder/train/<class>/...` and
    `folder/validation/<class>/...`.

    Without a `validation/` folder, `validation_fraction` of each class is held out with a
    seeded permutation (the same split every time for the same `seed`). Files that are not
    usable JPEG or PNG images (corrupt, truncated, other formats) are skipped with a
    warning naming each, and a count; with `strict=True` the first one is an error instead.
    `verify` decodes every file once while listing (default: when there are at most
    50,000); without it, a file with intact ends but damaged data is only found, and
    skipped without its name, by the pipeline. Files whose names are not valid UTF-8, and
    images whose header declares more than `max_pixels` pixels, are skipped and named too.
    """
    folder = os.fspath(folder)
    if not 0 <= validation_fraction < 1:
        raise ValueError(
            "validation_fraction must be in [0, 1); received "
            f"validation_fraction={validation_fraction!r}."
        )
    train_dir = os.path.join(folder, "train")
    if os.path.isdir(train_dir):
        class_names = _class_folders(train_dir)
        train = _scan(train_dir, class_names, strict, verify, max_pixels)
        validation_dir = os.path.join(folder, "validation")
        if os.path.isdir(validation_dir):
            unknown = sorted(set(_class_folders(validation_dir)) - set(class_names))
            if unknown:
                raise ValueError(
                    f"{validation_dir!r} has class folders that train/ does not have: {unknown}."
                )
            validation = _scan(
                validation_dir, class_names, strict, verify, max_pixels, required=False
            )
        else:
            train, validation = _hold_out(*train, validation_fraction, seed)
    else:
        class_names = _class_folders(folder)
        train, validation = _hold_out(
            *_scan(folder, class_names, strict, verify, max_pixels), validation_fraction, seed
        )
    files = {"train": train, "validation": validation}

    def load(split, shuffle_seed):
        paths, labels = files[split]
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant(paths, tf.string), tf.constant(labels, tf.int32))
        )
        if shuffle_seed is not None:
            ds = ds.shuffle(max(len(paths), 1), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.map(
            lambda path, label: (tf.io.read_file(path), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return Source(
        name=folder,
        class_names=tuple(class_names),
        num_examples={split: len(files[split][0]) for split in SPLITS},
        load=load,
        fully_shuffled=True,  # the whole file list is shuffled
    )


def _check_locations_used(dataset: str, given: dict[str, str | None]) -> None:
    used = {
        "image_folder": {"image_dir"},
        "alexnet_shapes": {"data_dir"},
        "imagenet2012": {"data_dir", "manual_dir"},
    }.get(dataset, {"data_dir"})
    for name, value in given.items():
        if value and name not in used:
            hint = " Add dataset='image_folder' to train on it." if name == "image_dir" else ""
            raise ValueError(
                f"{name} is not used by dataset={dataset!r} (it uses {sorted(used)}); received "
                f"{name}={value!r}.{hint}"
            )


def make_source(
    dataset: str,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    image_dir: str | None = None,
    strict: bool = False,
    seed: int = 0,
) -> Source:
    """One entry point for the scripts: `dataset` is "image_folder", "alexnet_shapes",
    "imagenet2012" or the name of a prepared tensorflow-datasets dataset. A location the
    dataset does not use (say `image_dir` without "image_folder") is an error naming both:
    silently training on other data than the user pointed at is worse."""
    _check_locations_used(
        dataset, {"data_dir": data_dir, "manual_dir": manual_dir, "image_dir": image_dir}
    )
    if dataset == "image_folder":
        if not image_dir:
            raise ValueError("dataset='image_folder' needs image_dir, the folder of images.")
        return image_folder_source(image_dir, seed=seed, strict=strict)
    if dataset == "alexnet_shapes":
        return embedded_source(data_dir)
    if dataset == "imagenet2012":
        return imagenet_source(data_dir=data_dir, manual_dir=manual_dir)
    return tfds_source(dataset, data_dir=data_dir)


def open_dataset(
    dataset: str,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    image_dir: str | None = None,
    stats_file: str | None = None,
    seed: int = 0,
) -> tuple[Source, ColorStats]:
    """`make_source`'s dataset and the pixel statistics to use with it: those of `stats_file`
    (`alexnet-compute-stats`), else the dataset's default. What the scripts' data flags
    (`dataset`, `data_dir`, `manual_dir`, `image_dir`, `stats`) name.

    Raises:
        ValueError: one line naming what cannot be used.
    """
    source = make_source(
        dataset, data_dir=data_dir, manual_dir=manual_dir, image_dir=image_dir, seed=seed
    )
    return source, load_stats(stats_file) if stats_file else source.default_stats
