"""Seeded fuzzing of every entry point that takes bytes or files from outside.

Each case must end in a valid result or the documented error (InvalidArgument from the
serving graph and the decoders, ValueError from the Python readers), never another exception
type, a hang or a memory blow-up. Seeds are fixed: a failure names its case and reproduces.

Cases (`fuzz_images`): valid JPEG/PNG of several kinds (RGB, grey, RGBA, 1x1), every other
format Pillow writes that TensorFlow or a user might send (GIF, BMP, TIFF, WebP, ICO), and
seeded mutations of the valid ones: truncations, bit flips, random bytes, a wrong magic number,
a header that declares a huge image (a decompression bomb), the empty string.
"""

import io
import json
import os
import resource
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_alexnet.data import decode
from tests.conftest import encode, progressive_jpeg, run_python

SEED = 20261123
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def _png_declaring(width, height) -> bytes:
    """A tiny, valid-looking PNG whose IHDR declares width x height (CRC correct)."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    raw = zlib.compress(b"\x00" + b"\x00" * 3)  # one row of one pixel: far too little data
    idat = b"IDAT" + raw
    return (
        decode.PNG_START
        + len(ihdr).to_bytes(4, "big")
        + chunk
        + zlib.crc32(chunk).to_bytes(4, "big")
        + len(raw).to_bytes(4, "big")
        + idat
        + zlib.crc32(idat).to_bytes(4, "big")
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def _jpeg_declaring(width, height) -> bytes:
    """A real JPEG whose frame header (SOF0) is patched to declare width x height."""
    data = bytearray(encode(np.zeros((8, 8, 3), np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def _other_format(array, fmt) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def valid_images(rng) -> dict[str, bytes]:
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    return {
        "jpeg": encode(rgb, "JPEG"),
        "jpeg grey": encode(rgb[..., 0], "JPEG"),
        "jpeg 1x1": encode(rgb[:1, :1], "JPEG"),
        "png": encode(rgb, "PNG"),
        "png rgba": encode(np.dstack([rgb, rgb[..., :1]]), "PNG"),
        "png grey": encode(rgb[..., 0], "PNG"),
        "png 1x1": encode(rgb[:1, :1], "PNG"),
    }


def fuzz_images(seed=SEED, mutations=24) -> list[tuple[str, bytes]]:
    """(name, bytes) cases: the valid images, other formats, and `mutations` seeded mutations
    of each kind per valid image."""
    rng = np.random.default_rng(seed)
    valid = valid_images(rng)
    rgb = rng.integers(0, 256, (21, 17, 3), dtype=np.uint8)
    cases = list(valid.items())
    cases += [(fmt.lower(), _other_format(rgb, fmt)) for fmt in ("GIF", "BMP", "TIFF", "WEBP")]
    cases += [("ico", _other_format(rgb[:16, :16], "ICO"))]
    cases += [
        ("empty", b""),
        ("png bomb 20000x20000", _png_declaring(20000, 20000)),
        ("png bomb 2^31x1", _png_declaring(2**31 - 1, 1)),
        ("jpeg bomb 65000x65000", _jpeg_declaring(65000, 65000)),
        ("jpeg scan bomb of 510 scans", progressive_jpeg(500)),
        ("png ends in its header", decode.PNG_START + b"\x00\x00\x00\rIHDR\x00\x00"),
        ("jpeg magic only", decode.JPEG_START),
    ]
    names = list(valid)
    for i in range(mutations):
        name = names[i % len(names)]
        data = bytearray(valid[name])
        cut = int(rng.integers(0, len(data)))
        cases.append((f"{name} truncated at {cut}", bytes(data[:cut])))
        flipped = bytearray(data)
        for position in rng.integers(0, len(data), int(rng.integers(1, 9))):
            flipped[position] ^= 1 << int(rng.integers(0, 8))
        cases.append((f"{name} bit flips #{i}", bytes(flipped)))
        cases.append((f"random #{i}", rng.bytes(int(rng.integers(1, 3000)))))
        wrong = bytearray(data)
        wrong[: int(rng.integers(1, 4))] = rng.bytes(3)[: int(rng.integers(1, 4))]
        cases.append((f"{name} wrong magic #{i}", bytes(wrong)))
    return cases


CASES = fuzz_images()
MAX_SECONDS_PER_CASE = 5.0  # a decompression bomb took 14.6 s before the header check
MAX_GROWTH_KB = 1_000_000  # peak memory may not grow by 1 GB (a bomb took 6.7 GB)


def _peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_fuzz_cases_cover_what_they_say():
    assert len(CASES) > 100
    kinds = " ".join(name for name, _ in CASES)
    for kind in ("truncated", "bit flips", "random", "wrong magic", "bomb", "empty", "gif"):
        assert kind in kinds


def test_decoders_accept_or_refuse_with_invalid_argument():
    """The pipeline's decoders (training, evaluation, `.keras` prediction), eagerly and
    inside tf.data."""
    peak = _peak_kb()
    outcomes = {}
    for name, data in CASES:
        start = time.perf_counter()
        try:
            image = decode.decode_central_square(tf.constant(data)).numpy()
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
            assert image.shape[0] == image.shape[1] >= 1, name
            outcomes[name] = "decoded"
        except tf.errors.InvalidArgumentError:
            outcomes[name] = "refused"
        assert time.perf_counter() - start < MAX_SECONDS_PER_CASE, name
    assert _peak_kb() - peak < MAX_GROWTH_KB
    for name in valid_images(np.random.default_rng(SEED)):
        assert outcomes[name] == "decoded", name
    for name in ("gif", "bmp", "tiff", "webp", "ico", "empty", "png bomb 20000x20000"):
        assert outcomes[name] == "refused", name
    assert outcomes["jpeg bomb 65000x65000"] == "refused"

    # The same inside tf.data, which the pipelines use: errors, not crashes or hangs.
    ds = tf.data.Dataset.from_tensor_slices([data for _, data in CASES])
    ds = ds.map(decode.decode_central_square).ignore_errors()
    decoded = sum(1 for _ in ds)
    assert decoded == sum(1 for outcome in outcomes.values() if outcome == "decoded")


def test_refusals_say_what_was_received():
    for data, words in (
        (
            _other_format(np.zeros((4, 4, 3), np.uint8), "GIF"),
            "starting with [71 73 70 56 55 97 4 0].",
        ),
        (bytes(range(256)) * 4, "received 1024 bytes starting with [0 1 2 3 4 5 6 7]"),
        (
            _png_declaring(20000, 20000),
            "declares 20000 x 20000 = 400000000 pixels, more than the limit of 40000000.",
        ),
        (progressive_jpeg(500), "declares 510 JPEG scans, more than the limit of 100."),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            decode.decode_central_square(tf.constant(data))
        message = raised.value.message
        assert "must be an encoded JPEG or PNG" in message or "more than the limit" in message
        assert words in message, message


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 3-class AlexNet exported for TF Serving (path, loaded), and saved as .keras."""
    from keras_alexnet import AlexNet
    from keras_alexnet.serving import export

    model = AlexNet(classes=3, init="he")
    root = tmp_path_factory.mktemp("export")
    path = export.export_saved_model(model, str(root), ["a", "b", "c"], max_pixels=1_000_000)
    model.save(str(root / "model.keras"))
    return path, tf.saved_model.load(path)


def test_saved_model_and_keras_model_refuse_other_formats_with_the_same_message(exported):
    from keras_alexnet.serving import prediction

    path, _ = exported
    from_export = prediction.load_classifier(path)
    from_keras = prediction.load_classifier(os.path.join(os.path.dirname(path), "model.keras"))
    gif = _other_format(np.zeros((9, 9, 3), np.uint8), "GIF")
    messages = []
    for classify in (from_export, from_keras):
        with pytest.raises(ValueError) as raised:
            classify(gif)
        messages.append(str(raised.value))
    assert (
        messages[0]
        == messages[1]
        == (
            f"image must be an encoded JPEG or PNG image; received {len(gif)} bytes starting with "
            f"[{' '.join(str(b) for b in gif[:8])}]."
        )
    )


def test_predict_script_on_a_saved_model_of_another_kind_is_one_line(tmp_path):
    other = tf.Module()
    other.f = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None])])
    tf.saved_model.save(other, str(tmp_path / "other"), signatures={"serving_default": other.f})
    image = tmp_path / "a.png"
    image.write_bytes(valid_images(np.random.default_rng(0))["png"])
    result = run_python(
        ["scripts/predict.py", f"--model={tmp_path / 'other'}", str(image)], env=QUIET
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "not a keras_alexnet export" in errors[0], result.stderr[-2000:]
    assert "takes ['x']" in errors[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize("signature", ["serving_default", "ten_crop"])
def test_image_signatures_answer_or_refuse_with_invalid_argument(exported, signature):
    _, loaded = exported
    serve = loaded.signatures[signature]
    peak = _peak_kb()
    for name, data in CASES:
        start = time.perf_counter()
        try:
            out = serve(image_bytes=tf.constant([data]))
            probabilities = out["probabilities"].numpy()
            assert probabilities.shape == (1, 3) and np.all(np.isfinite(probabilities)), name
        except tf.errors.InvalidArgumentError as error:
            message = error.message
            assert (
                "image_bytes[0]" in message or "decode" in message.lower() or "JPEG" in (message)
            ), (name, message[:300])
        assert time.perf_counter() - start < MAX_SECONDS_PER_CASE, name
    assert _peak_kb() - peak < MAX_GROWTH_KB


@pytest.mark.parametrize("signature", ["serving_default", "ten_crop"])
def test_image_signatures_name_the_bad_image_of_a_batch(exported, signature):
    _, loaded = exported
    serve = loaded.signatures[signature]
    good = valid_images(np.random.default_rng(1))["jpeg"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[2\] must be"):
        serve(image_bytes=tf.constant([good, good, os.urandom(100), good]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[1\] declares"):
        serve(image_bytes=tf.constant([good, _png_declaring(2000, 1000)]))  # limit: 1 MP
    out = serve(image_bytes=tf.constant([good, good]))
    assert out["probabilities"].shape == (2, 3)


def test_predict_images_refuses_non_finite_pixels(exported):
    _, loaded = exported
    predict = loaded.signatures["predict_images"]
    images = np.full((2, 227, 227, 3), 100.0, np.float32)
    assert np.all(np.isfinite(predict(images=images)["probabilities"].numpy()))
    for bad in (np.nan, np.inf, -np.inf):
        images[1, 5, 7, 2] = bad
        with pytest.raises(tf.errors.InvalidArgumentError, match="images must be finite"):
            predict(images=images)


def test_image_folder_scan_skips_and_names_every_bad_file(tmp_path, caplog):
    from keras_alexnet import data

    root = tmp_path / "images"
    for i, (name, payload) in enumerate(CASES):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.{'png' if 'png' in name else 'jpg'}").write_bytes(payload)
    (root / "a" / os.fsdecode(b"bad-name-\xff.jpg")).write_bytes(CASES[0][1])
    start = time.perf_counter()
    source = data.image_folder_source(str(root), validation_fraction=0.0, verify=True)
    assert time.perf_counter() - start < 60
    # Everything the scan keeps decodes.
    images = list(source.images("train").as_numpy_iterator())
    assert len(images) == source.num_examples["train"] >= len(valid_images(np.random.default_rng()))
    log = caplog.text
    assert "bad-name-\\xff.jpg: its file name is not valid UTF-8" in log
    assert "declares 20000x20000 pixels, more than the limit of 40000000" in log


def test_predict_script_prints_one_line_per_file(exported, tmp_path):
    export_path, _ = exported
    paths = []
    for i, (_, payload) in enumerate(CASES[:40]):
        path = tmp_path / f"{i:02d}.img"
        path.write_bytes(payload)
        paths.append(str(path))
    paths.append(str(tmp_path))  # a directory
    result = run_python(["scripts/predict.py", f"--model={export_path}", *paths], env=QUIET)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    named = [line.split(": ")[0] for line in result.stdout.splitlines()]
    named += [
        line.removeprefix("ERROR: ").split(": ")[0]
        for line in result.stderr.splitlines()
        if line.startswith("ERROR: ")
    ]
    assert sorted(named) == sorted(paths)  # one line for each file, none for anything else
    assert f"ERROR: {tmp_path}: is a directory" in result.stderr


def test_statistics_reader_accepts_or_refuses_with_value_error(tmp_path):
    from keras_alexnet.data import IMAGENET_STATS, load_stats, save_stats

    good_path = tmp_path / "good.json"
    save_stats(IMAGENET_STATS, good_path)
    good = good_path.read_bytes()
    rng = np.random.default_rng(SEED)
    path = tmp_path / "stats.json"
    loaded = 0
    for i in range(300):
        data = bytearray(good)
        kind = i % 3
        if kind == 0:
            data = data[: int(rng.integers(0, len(data)))]
        elif kind == 1:
            for position in rng.integers(0, len(data), int(rng.integers(1, 6))):
                data[position] = int(rng.integers(0, 256))
        else:
            text = json.loads(good)
            field = ["mean_rgb", "eigenvalues", "eigenvectors"][int(rng.integers(0, 3))]
            values = [None, "x", [], [1e308] * 3, [-1] * 3, {}, 7, [[0] * 3] * 3]
            text[field] = values[int(rng.integers(0, len(values)))]
            data = json.dumps(text).encode()
        path.write_bytes(bytes(data))
        try:
            stats = load_stats(path)
            loaded += 1
            assert np.all(np.isfinite(stats.mean_rgb)), i
        except ValueError as error:
            assert str(path) in str(error), (i, str(error))
    assert 0 < loaded < 300


def test_class_names_reader_accepts_or_refuses_with_value_error(tmp_path):
    from keras_alexnet.serving.trained_model import read_class_names

    rng = np.random.default_rng(SEED)
    path = tmp_path / "class_names.txt"
    for i in range(200):
        path.write_bytes(rng.bytes(int(rng.integers(0, 300))))
        try:
            names = read_class_names(str(path))
            assert all(isinstance(n, str) and n and "\n" not in n for n in names), i
        except ValueError as error:
            assert str(path) in str(error), i


def test_weights_reader_accepts_or_refuses_with_value_error(tmp_path):
    """Truncated and bit-flipped weights files: loaded (the bits were data) or refused."""
    from keras_alexnet import AlexNet

    base = AlexNet(include_top=False, input_shape=(67, 67, 3))
    good = tmp_path / "base.weights.h5"
    base.save_weights(str(good))
    payload = good.read_bytes()
    rng = np.random.default_rng(SEED)
    for i in range(12):
        data = bytearray(payload)
        if i % 2:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            for position in rng.integers(0, min(len(data), 4096), 8):  # the h5 metadata
                data[position] ^= 0xFF
        path = tmp_path / f"fuzz{i}.weights.h5"
        path.write_bytes(bytes(data))
        try:
            AlexNet(include_top=False, input_shape=(67, 67, 3), weights=str(path))
        except ValueError as error:
            assert str(path) in str(error), (i, str(error)[:300])


def _mutated_json(rng, good: dict):
    """`good` with one seeded change: a field dropped, retyped or nested, or the whole
    replaced by a scalar, a list, or deep nesting."""
    kind = int(rng.integers(0, 5))
    values = [None, "x", [], {}, 7, -1, 1e308, float("nan"), True, [[1]], {"a": {"b": 1}}]
    text = json.loads(json.dumps(good))
    if kind == 0 and text:
        text.pop(list(text)[int(rng.integers(0, len(text)))])
    elif kind == 1 and text:
        text[list(text)[int(rng.integers(0, len(text)))]] = values[int(rng.integers(0, 11))]
    elif kind == 2:
        return values[int(rng.integers(0, 11))]
    elif kind == 3:
        depth = int(rng.integers(1, 3000))
        return json.loads("[" * depth + "]" * depth) if depth < 900 else "[" * depth
    return text


def test_rest_answers_are_accepted_or_refused_with_value_error():
    """Every shape a REST answer may take: top pairs of text and finite scores, or one
    ValueError naming the server."""
    from keras_alexnet.serving import clients

    good = {"predictions": [{"labels": ["a", "b"], "scores": [0.75, 0.25]}]}
    rng = np.random.default_rng(SEED)
    accepted = 0
    for i in range(400):
        answer = _mutated_json(rng, good)
        if i % 4 == 3:  # a mutation inside the prediction
            inner = _mutated_json(rng, good["predictions"][0])
            answer = {"predictions": [inner]}
        body = answer if isinstance(answer, str) else json.dumps(answer)
        try:
            reply = clients.untrusted.parse_json(body, "the answer")
            pairs = clients._top_of_reply(reply, "127.0.0.1:1")
            accepted += 1
            assert all(isinstance(label, str) and np.isfinite(score) for label, score in pairs)
        except ValueError as error:  # (UntrustedInput is one)
            assert "answer" in str(error) or "127.0.0.1:1" in str(error), (i, str(error))
    assert 0 < accepted < 400


def test_cache_records_are_accepted_or_refused_with_one_error(tmp_path, monkeypatch):
    """Every shape a cache record may take: the entry loads, or WeightsUnavailable names
    the record (never a TypeError, KeyError or RecursionError)."""
    import hashlib

    from keras_alexnet.weights import cache
    from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    os.makedirs(cache.models_dir())
    converted = os.path.join(cache.models_dir(), IMAGENET_WEIGHTS.cache_file)
    with open(converted, "wb") as file:
        file.write(b"weights")
    source = IMAGENET_WEIGHTS.sources[0]
    good = {
        "format": cache.CACHE_FORMAT,
        "file": IMAGENET_WEIGHTS.cache_file,
        "bytes": 7,
        "sha256": hashlib.sha256(b"weights").hexdigest(),
        "made_from": {
            "filename": source.filename,
            "algorithm": source.algorithm,
            "digest": source.digest,
        },
    }
    rng = np.random.default_rng(SEED)
    loaded = 0
    for i in range(300):
        record = good if i == 0 else _mutated_json(rng, good)
        with open(cache.record_path(), "w") as file:
            file.write(record if isinstance(record, str) else json.dumps(record))
        try:
            cache.imagenet_weights_file(lambda: None, progress=False)
            loaded += 1
        except cache.WeightsUnavailable as error:
            assert cache.record_path() in str(error), (i, str(error))
    assert 0 < loaded < 300
