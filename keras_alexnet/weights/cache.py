"""The Keras cache of the trained ImageNet weights: found, or downloaded, checked, converted once
and kept, for `AlexNet(weights="imagenet")`.

`imagenet_weights_file()` returns a converted `.weights.h5` in `$KERAS_HOME/models` (default
`~/.keras/models`), trying in order:

1. the converted file already there, trusted only if its record (`<name>.json`, written with
   it) names a known source and the file's size and sha256 match the record;
2. a copy of a source file put there by hand (`bvlc_alexnet.caffemodel`, `bvlcalexnet-12.onnx`
   ...), or one named to `install()`;
3. each known source's URL in turn, downloaded into a temporary file in the cache folder.

A source file is checked against its published size and hash *before* a byte of it is parsed. A
download that is cut short, too long, or of another hash never lands in the cache, and its
temporary file is removed (what a killed download or conversion left, the next fetch removes:
`files.remove_abandoned_saves`). Converting needs a full model of the release's variant and
classes, which the caller gives (`full_model`): this module builds no model. Fetching and
converting hold an exclusive lock on the cache entry (readers a shared one), and every file
lands by an atomic rename, so two processes fetching at once convert once and never leave a
half-written file. A converted file that does not match its record is refused, not loaded or
silently replaced: a changed file in the cache means something else wrote there.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import http.client
import json
import os
import stat
import sys
import urllib.error
from collections.abc import Callable

import keras

from keras_alexnet import files, http_deadline, untrusted
from keras_alexnet.version import __version__
from keras_alexnet.weights import caffe, keras_file
from keras_alexnet.weights.imagenet_release import (
    IMAGENET_WEIGHTS,
    PretrainedWeights,
    WeightsSource,
)

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent fetches rely on the atomic renames alone
    fcntl = None

# What the record and the converted file's layout mean; a record of another format is refused.
CACHE_FORMAT = 1
_CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 20  # per socket operation: a silent server is given up, not waited on
# The whole download, whatever the server does: 233 MB at 150 KB/s. (The message that ends it
# says how to download the file by hand and put it in the cache.)
DOWNLOAD_DEADLINE_S = 1800


class WeightsUnavailable(ValueError):
    """The trained weights could not be found, downloaded or trusted; the message says why for
    each place tried and what to do."""


def models_dir() -> str:
    """Where Keras caches model files: `$KERAS_HOME/models`, by default `~/.keras/models`."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def record_path(weights: PretrainedWeights = IMAGENET_WEIGHTS) -> str:
    return os.path.join(models_dir(), weights.cache_file.removesuffix(".weights.h5") + ".json")


def imagenet_weights_file(
    full_model: Callable[[], keras.Model],
    weights: PretrainedWeights = IMAGENET_WEIGHTS,
    progress: bool = True,
) -> str:
    """The path of the converted, checked `.weights.h5` of `weights` in the Keras cache,
    found, or made from a hand-placed copy, or downloaded (see the module's docstring).
    `full_model()` is called only to convert: an AlexNet of `weights.variant` and
    `weights.num_classes` classes, into which the source is loaded and saved.

    Raises:
        WeightsUnavailable: offline and not cached (naming the URLs, hashes and where to put
            a hand-downloaded file), or the cache does not match its record.
    """
    converted = os.path.join(models_dir(), weights.cache_file)
    _remove_leftovers()
    if os.path.lexists(converted) or os.path.lexists(record_path(weights)):
        with _cache_lock(weights, exclusive=False):
            if os.path.lexists(converted):
                _check_cached(converted, weights)
                return converted
    _check_writable_cache()
    with _cache_lock(weights, exclusive=True):
        _remove_leftovers()  # of downloads and conversions killed while this one waited
        if os.path.lexists(converted):  # another process made it while this one waited
            _check_cached(converted, weights)
            return converted
        for source in weights.sources:
            placed = os.path.join(models_dir(), source.filename)
            if os.path.exists(placed):
                _check_source(placed, source)
                _convert_into_cache(placed, source, weights, full_model)
                return converted
        failures = []
        for source in weights.sources:
            reason = _unusable(source)
            if reason is None:
                reason = _fetch_and_convert(source, weights, progress, full_model)
            if reason is None:
                return converted
            failures.append(f"{source.url}: {reason}")
    raise WeightsUnavailable(_offline_message(weights, failures))


def install(
    path: str | os.PathLike,
    full_model: Callable[[], keras.Model],
    weights: PretrainedWeights = IMAGENET_WEIGHTS,
) -> str:
    """Checks a copy of a source file the user has (size and hash of one of `weights`'
    sources), converts it into the cache (into `full_model()`, as `imagenet_weights_file`)
    and returns the converted file's path."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsUnavailable(f"{path} does not exist or is not a file.")
    described, source = known_release(path, weights)
    if source is None:
        raise WeightsUnavailable(
            f"{path} ({described}) is none of the known files of {weights.name}: "
            + "; ".join(
                f"{s.filename} {s.size:,} bytes {s.algorithm} {s.digest}" for s in weights.sources
            )
            + ". Load another file with AlexNet(weights=<its path>)."
        )
    reason = _unusable(source)
    if reason:
        raise WeightsUnavailable(f"{path} is {source.filename}, which {reason}.")
    _check_writable_cache()
    with _cache_lock(weights, exclusive=True):
        _remove_leftovers()
        _convert_into_cache(path, source, weights, full_model)
    return os.path.join(models_dir(), weights.cache_file)


def _unusable(source: WeightsSource) -> str | None:
    """Why this process cannot read `source`'s form, or None."""
    if source.needs == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            return 'needs the onnx package to be read (pip install -e ".[onnx]")'
    return None


def _remove_leftovers() -> None:
    """Removes what downloads and conversions killed midway left in the cache (their private
    folders, once their process is gone); on every call, where the cache can be written."""
    try:
        files.remove_abandoned_saves(models_dir())
    except OSError:  # a cache this process may only read
        pass


def _check_writable_cache() -> None:
    """Creates the cache folder, or raises `WeightsUnavailable` (one line) where it cannot
    be written: a read-only or another user's KERAS_HOME."""
    try:
        os.makedirs(models_dir(), exist_ok=True)
    except OSError as error:
        raise WeightsUnavailable(
            f"The Keras cache {models_dir()} cannot be created ({error.strerror}): set "
            "KERAS_HOME to a folder you can write to."
        ) from None
    if not os.access(models_dir(), os.W_OK | os.X_OK):
        raise WeightsUnavailable(
            f"The Keras cache {models_dir()} cannot be written (read-only, or another "
            "user's) and holds no converted ImageNet weights: set KERAS_HOME to a folder you "
            "can write to, or have the cache's owner load the weights once."
        )


@contextlib.contextmanager
def _cache_lock(weights: PretrainedWeights, exclusive: bool):
    """Holds a lock on the cache entry of `weights`: exclusive to write (the holder's pid is
    written in the lock file), shared to read. A process that must wait says whom for. A
    reader of a cache it cannot write (read-only, another user's) locks it read-only, or not
    at all where the lock file is missing: every file lands by an atomic rename, so a reader
    never sees half of one."""
    if fcntl is None or not os.path.isdir(models_dir()):
        yield
        return
    path = os.path.join(models_dir(), f".{weights.name}.lock")
    fd = _open_lock(path, exclusive)
    if fd is None:
        yield
        return
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"Waiting for {_lock_holder(fd)}, which is writing {weights.name} into the "
                f"Keras cache {models_dir()} (lock {path}).",
                file=sys.stderr,
            )
            fcntl.flock(fd, mode)
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _open_lock(path: str, exclusive: bool) -> int | None:
    """The lock file's fd (created to write; read-only where that is all a reader may do),
    or None for a reader that cannot open it at all."""
    nofollow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | nofollow, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise WeightsUnavailable(
                f"The lock of the Keras cache {path} is a symbolic link, which the package "
                "never makes: remove it and load the weights again."
            ) from None
        if exclusive:
            raise WeightsUnavailable(
                f"Cannot lock the Keras cache at {path} ({error.strerror}): set KERAS_HOME to "
                "a folder you can write to."
            ) from None
        try:
            fd = os.open(path, os.O_RDONLY | nofollow)
        except OSError:
            return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise WeightsUnavailable(
            f"The lock of the Keras cache {path} is not a regular file: remove it and load "
            "the weights again."
        )
    return fd


def _lock_holder(fd: int) -> str:
    """Who holds the lock, as the lock file says ("process 1234"), for the waiting line."""
    try:
        pid = os.pread(fd, 24, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def known_release(
    path: str, weights: PretrainedWeights = IMAGENET_WEIGHTS
) -> tuple[str, WeightsSource | None]:
    """The file's size and hash as text, and which of `weights`' sources it is, or None."""
    size = os.path.getsize(path)
    digests = {}
    for source in weights.sources:
        if source.size == size and source.algorithm not in digests:
            digests[source.algorithm] = _digest(path, source.algorithm)
        if digests.get(source.algorithm) == source.digest:
            return f"{size:,} bytes, {source.algorithm} {source.digest}", source
    shown = digests or {"sha256": _digest(path, "sha256")}
    return f"{size:,} bytes, " + ", ".join(f"{a} {d}" for a, d in shown.items()), None


def _digest(path: str, algorithm: str) -> str:
    with open(path, "rb") as file:
        return _digest_of(file, algorithm)


def _digest_of(file, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    while block := file.read(_CHUNK):
        digest.update(block)
    return digest.hexdigest()


def _check_source(path: str, source: WeightsSource) -> None:
    """Raises unless `path` has `source`'s size and hash (read before anything parses it)."""
    try:  # (bounded: a FIFO or a device at its name is not read)
        fd, size = untrusted.open_regular(path, 1 << 40, "The placed weights file")
    except untrusted.UntrustedInput as error:
        raise WeightsUnavailable(f"{error} Put {source.filename} there.") from None
    with os.fdopen(fd, "rb") as file:
        if size != source.size:
            raise WeightsUnavailable(
                f"{path} has {size:,} bytes, not the {source.size:,} of {source.filename} "
                f"({source.published_by}). Delete it, or replace it with the file from "
                f"{source.url}."
            )
        digest = _digest_of(file, source.algorithm)
    if digest != source.digest:
        raise WeightsUnavailable(
            f"{path} has {source.algorithm} {digest}, not {source.digest} "
            f"({source.published_by}): it is not that file. Delete it, or replace it with the "
            f"file from {source.url}."
        )


# A record is a few hundred bytes. (The converted file is bounded by the size its record gives.)
_MAX_RECORD_BYTES = 1 << 16


def _check_cached(converted: str, weights: PretrainedWeights) -> None:
    """Raises unless the converted file matches its record and the record a known source;
    both are bounded before they are read (`untrusted`)."""
    record = record_path(weights)
    fix = f"Delete {converted} and {record}, and load the weights again to fetch them anew."
    try:
        facts = untrusted.read_json(record, _MAX_RECORD_BYTES, "The cache record")
        expected = _recorded_file(facts, weights)
    except (untrusted.UntrustedInput, ValueError) as error:
        raise WeightsUnavailable(
            f"The cached weights {converted} have no usable record {record} ({error}), so "
            f"nothing says what they were made from. {fix}"
        ) from None
    try:
        fd, size = untrusted.open_regular(converted, expected[0], "The cached weights")
    except untrusted.UntrustedInput as error:
        raise WeightsUnavailable(f"{error} Its record says {expected[0]:,} bytes. {fix}") from None
    with os.fdopen(fd, "rb") as file:
        actual = (size, _digest_of(file, "sha256") if size == expected[0] else "not computed")
    if actual != expected:
        raise WeightsUnavailable(
            f"The cached weights {converted} were changed after they were made: "
            f"{actual[0]:,} bytes, sha256 {actual[1]}, where the record {record} says "
            f"{expected[0]:,} bytes, sha256 {expected[1]}. {fix}"
        )


def _recorded_file(facts, weights: PretrainedWeights) -> tuple[int, str]:
    """The (bytes, sha256) a cache record gives its converted file, once each field has the
    type and value it must have; else `ValueError` naming the field."""
    if not isinstance(facts, dict):
        raise ValueError("it is not a JSON object")
    kinds = {"format": int, "file": str, "bytes": int, "sha256": str, "made_from": dict}
    for field, kind in kinds.items():
        value = facts.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"its field {field!r} is {value!r:.40}, not a {kind.__name__}")
    known = any(
        facts["made_from"] == {"filename": s.filename, "algorithm": s.algorithm, "digest": s.digest}
        for s in weights.sources
    )
    if facts["format"] != CACHE_FORMAT or facts["file"] != weights.cache_file or not known:
        raise ValueError("it names another file, source or format")
    if facts["bytes"] < 0 or len(facts["sha256"]) != 64:
        raise ValueError("its size or sha256 is not one of a file")
    return facts["bytes"], facts["sha256"]


def _fetch_and_convert(
    source: WeightsSource,
    weights: PretrainedWeights,
    progress: bool,
    full_model: Callable[[], keras.Model],
) -> str | None:
    """Downloads `source` into a private folder of the cache folder, checks and converts it;
    returns None, or why it failed (nothing of the attempt is left in the cache)."""
    # The download, and the converted file beside it until the download is removed.
    files.check_free_space(models_dir(), 2 * source.size, f"downloading {weights.name}")
    with files.private_folder(models_dir()) as private:
        temporary = os.path.join(private, source.filename)
        with open(temporary, "wb") as file:
            failure = _download(source, file, progress)
        if failure is None:
            _convert_into_cache(temporary, source, weights, full_model)
        return failure


def _download(source: WeightsSource, file, progress: bool) -> str | None:
    """Streams `source.url` into `file`, hashing as it goes; returns None when the body has
    the published size and hash, else why not. Reads at most `source.size` + 1 bytes, and
    gives up at `DOWNLOAD_DEADLINE_S` from the start (a watchdog shuts the connection, so a
    server that drips a byte at a time ends too); a stall is said on the progress line."""
    digest = hashlib.new(source.algorithm)
    received = 0
    bar = _ProgressBar(source, progress)
    with http_deadline.Deadline(DOWNLOAD_DEADLINE_S, on_stall=bar.stalled) as deadline:
        try:
            with http_deadline.open_url(source.url, deadline, DOWNLOAD_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                if length is not None and length.strip() != str(source.size):
                    return f"the server announced {length.strip()[:40]} bytes, not {source.size:,}"
                wanted = source.size + 1
                while block := http_deadline.read_some(response, min(_CHUNK, wanted - received)):
                    received += len(block)
                    if received > source.size:
                        return f"the server sent more than the {source.size:,} bytes expected"
                    deadline.progress()
                    digest.update(block)
                    file.write(block)
                    bar.update(received)
        except urllib.error.HTTPError as error:
            return f"the server answered HTTP {error.code} {str(error.reason)[:80]}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            if not deadline.expired:
                reason = getattr(error, "reason", None) or error
                return f"the download failed after {received:,} bytes ({str(reason)[:200]})"
        finally:
            bar.done()
        if deadline.expired:
            return (
                f"the download did not finish within {DOWNLOAD_DEADLINE_S:,} s ({received:,} "
                f"of {source.size:,} bytes received)"
            )
    if received != source.size:
        return f"the download ended after {received:,} of {source.size:,} bytes"
    if digest.hexdigest() != source.digest:
        return (
            f"the file's {source.algorithm} is {digest.hexdigest()}, not the published "
            f"{source.digest}"
        )
    file.flush()
    os.fsync(file.fileno())
    return None


class _ProgressBar:
    """One line on stderr, redrawn at most every 1%: MB received of MB expected."""

    def __init__(self, source: WeightsSource, shown: bool):
        self.source, self.shown, self.last = source, shown, -1
        if shown:
            print(f"Downloading {source.url} ({source.size / 1e6:.1f} MB)", file=sys.stderr)

    def update(self, received: int) -> None:
        percent = received * 100 // self.source.size
        if self.shown and percent != self.last:
            self.last = percent
            done = percent // 4
            sys.stderr.write(
                f"\r[{'=' * done}{' ' * (25 - done)}] {received / 1e6:6.1f} / "
                f"{self.source.size / 1e6:.1f} MB"
            )
            sys.stderr.flush()

    def stalled(self, seconds: float) -> None:
        if self.shown:
            sys.stderr.write(
                f"\nNo data from {self.source.url} for {seconds:.0f} s; waiting (the download "
                f"is given up {DOWNLOAD_DEADLINE_S:,} s after it started).\n"
            )
            sys.stderr.flush()

    def done(self) -> None:
        if self.shown and self.last >= 0:
            sys.stderr.write("\n")


def _convert_into_cache(
    path: str,
    source: WeightsSource,
    weights: PretrainedWeights,
    full_model: Callable[[], keras.Model],
) -> None:
    """Converts a checked source file into the cache: loaded into `full_model()`, saved, then
    the converted file and its record each land by `files.atomic_save` (the record first: a
    record without its file is an entry not yet made, a file without its record is
    refused)."""
    model = full_model()
    variant = keras_file.model_variant(model)
    if variant != weights.variant:
        raise ValueError(
            f"{weights.name} converts into an AlexNet of {weights.variant}; the model given is "
            f"one of {variant}."
        )
    caffe.load_matched(model, caffe.read_network(path), include_top=True, path=path)
    converted = os.path.join(models_dir(), weights.cache_file)

    def save(temporary: str) -> None:
        model.save_weights(temporary, overwrite=True)
        _write_record(temporary, source, weights)

    files.atomic_save(save, converted)


def _write_record(converted: str, source: WeightsSource, weights: PretrainedWeights) -> None:
    facts = {
        "format": CACHE_FORMAT,
        "file": weights.cache_file,
        "bytes": os.path.getsize(converted),
        "sha256": _digest(converted, "sha256"),
        "made_from": {
            "filename": source.filename,
            "algorithm": source.algorithm,
            "digest": source.digest,
        },
        "url": source.url,
        "made_by": f"keras_alexnet {__version__}, keras {keras.__version__}",
        "made_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(facts, file, indent=1)

    files.atomic_save(write, record_path(weights))


def _offline_message(weights: PretrainedWeights, failures: list[str]) -> str:
    lines = [
        f"The trained ImageNet weights ({weights.name}) are not in the Keras cache "
        f"{models_dir()} and could not be downloaded:",
        *(f"  {failure}" for failure in failures),
        "Download one of these files on a machine with internet access:",
        *(f"  {s.url} ({s.size:,} bytes, {s.algorithm} {s.digest})" for s in weights.sources),
        f"and put it at {os.path.join(models_dir(), weights.sources[0].filename)} (or the "
        "same folder under its own name), or run `alexnet-convert-weights FILE "
        "--install`; then load the weights again.",
    ]
    return "\n".join(lines)
