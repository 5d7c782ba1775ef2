"""The Keras cache of the ImageNet weights against hostile files and servers (round 4): a
record or converted file that is a device, a FIFO, huge, deeply nested or of the wrong types;
what killed writers left; a cache another user owns; servers that drip, redirect to ftp, or
hold the lock. Servers run on 127.0.0.1 only; no model is built (a record and a file of
bytes stand for a converted entry: the cache checks them before anything loads them)."""

import dataclasses
import hashlib
import http.server
import json
import os
import resource
import subprocess
import sys
import threading
import time

import pytest

from keras_alexnet.weights import cache as weights_cache
from keras_alexnet.weights.imagenet_release import IMAGENET_WEIGHTS, WeightsSource

_BODY = os.urandom(4096)  # what the "release" is, for the download tests


def _never_called():
    raise AssertionError("the cache converted where it had only to read")


def _weights(url="http://127.0.0.1:9/never-asked"):
    source = WeightsSource(
        url=url,
        filename="bvlc_alexnet.caffemodel",
        size=len(_BODY),
        algorithm="sha1",
        digest=hashlib.sha1(_BODY).hexdigest(),
        form="caffemodel",
        published_by="the test",
    )
    return dataclasses.replace(IMAGENET_WEIGHTS, sources=(source,))


@pytest.fixture()
def models(tmp_path, monkeypatch):
    """A cache holding a converted entry (bytes standing for the weights) and its record."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    folder = tmp_path / "home" / "models"
    folder.mkdir(parents=True)
    converted = folder / IMAGENET_WEIGHTS.cache_file
    converted.write_bytes(b"h5" * 5000)
    source = _weights().sources[0]
    record = {
        "format": weights_cache.CACHE_FORMAT,
        "file": IMAGENET_WEIGHTS.cache_file,
        "bytes": 10000,
        "sha256": hashlib.sha256(converted.read_bytes()).hexdigest(),
        "made_from": {
            "filename": source.filename,
            "algorithm": source.algorithm,
            "digest": source.digest,
        },
    }
    (folder / "bvlc_alexnet_imagenet.json").write_text(json.dumps(record))
    return folder


def _load(weights=None):
    return weights_cache.imagenet_weights_file(_never_called, weights or _weights(), progress=False)


def _peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_the_prepared_entry_loads(models):
    assert _load() == str(models / IMAGENET_WEIGHTS.cache_file)


def _replace(path, how):
    path.unlink()
    if how == "dev-zero":
        path.symlink_to("/dev/zero")
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "sparse":
        with open(path, "wb") as file:
            file.truncate(40_000_000_000)
    elif how == "deep":
        path.write_text("[" * 20_000 + "]" * 20_000)  # within the size bound


@pytest.mark.parametrize(
    "which, how",
    [(which, how) for which in ("record", "converted") for how in ("dev-zero", "fifo", "sparse")]
    + [("record", "deep")],  # (the converted file is hashed, not parsed)
)
def test_a_record_or_converted_file_that_is_no_file_is_refused_at_once(models, which, how):
    name = "bvlc_alexnet_imagenet.json" if which == "record" else IMAGENET_WEIGHTS.cache_file
    _replace(models / name, how)
    before, started = _peak_kib(), time.monotonic()
    with pytest.raises(weights_cache.WeightsUnavailable) as raised:
        _load()
    assert time.monotonic() - started < 5
    assert _peak_kib() - before < 100 << 10  # 100 MiB
    message = str(raised.value)
    assert "\n" not in message and "Delete" in message
    if how in ("dev-zero", "fifo"):
        assert "not a regular file" in message
    elif how == "sparse":
        assert "40,000,000,000 bytes, more than" in message
    else:
        assert "nests deeper than" in message


@pytest.mark.parametrize(
    "field, value",
    [("bytes", "10000"), ("sha256", None), ("format", "1"), ("made_from", []), ("bytes", True)],
)
def test_a_record_of_the_wrong_types_is_one_line_naming_the_field(models, field, value):
    record = models / "bvlc_alexnet_imagenet.json"
    facts = json.loads(record.read_text())
    facts[field] = value
    record.write_text(json.dumps(facts))
    with pytest.raises(weights_cache.WeightsUnavailable, match=rf"its field '{field}' is"):
        _load()
    record.write_text("[1, 2]")
    with pytest.raises(weights_cache.WeightsUnavailable, match="it is not a JSON object"):
        _load()


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_what_killed_writers_left_is_removed_by_the_next_call(models):
    left = models / f".saving-{_dead_pid()}-abcd"
    left.mkdir()
    (left / "bvlc_alexnet.caffemodel").write_bytes(b"x" * 100_000)
    alive = models / f".saving-{os.getpid()}-efgh"
    alive.mkdir()
    _load()  # finds the entry made: still cleans
    assert not left.exists() and alive.exists()


def test_a_lock_that_is_a_symbolic_link_is_one_line(models, tmp_path):
    (models / ".bvlc_alexnet.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(weights_cache.WeightsUnavailable, match="is a symbolic link"):
        _load()
    assert not (tmp_path / "elsewhere").exists()


def _refuse_writes_in(folder, monkeypatch):
    """What the kernel does to a process in a folder it may only read: opening to write,
    creating and `access(W_OK)` fail with EACCES. (Root passes permission bits, so a root
    test process gets the refusals this way; another user gets them from the folder's mode.)"""
    import errno

    real_open, real_access, real_mkdir = os.open, os.access, os.mkdir
    inside = str(folder)

    def refused(path):
        return os.fspath(path).startswith(inside)

    def fake_open(path, flags, *args, **kwargs):
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if refused(path) and writing:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    def fake_access(path, mode, *args, **kwargs):
        if refused(path) and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if refused(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "access", fake_access)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def test_a_cache_the_process_may_only_read_loads_without_writing(models, monkeypatch):
    """A read-only or another user's cache: the entry loads, nothing is written, not even
    a lock; a missing entry there is one line saying the cache cannot be written."""
    os.chmod(models, 0o555)
    try:
        if os.geteuid() == 0:
            _refuse_writes_in(models, monkeypatch)
        before = sorted(os.listdir(models))
        assert _load() == str(models / IMAGENET_WEIGHTS.cache_file)
        assert sorted(os.listdir(models)) == before
        (models / IMAGENET_WEIGHTS.cache_file).rename(models.parent / "moved")
        with pytest.raises(weights_cache.WeightsUnavailable, match="cannot be written"):
            _load()
    finally:
        monkeypatch.undo()
        os.chmod(models, 0o755)


class _Hostile:
    """A loopback server misbehaving by path."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                try:
                    self._answer()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _answer(self):
                if self.path == "/status-drip":
                    for byte in b"HTTP/1.1 200 OK\r\n":
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.5)
                    return
                if self.path == "/to-ftp":
                    self.send_response(302)
                    self.send_header("Location", "ftp://127.0.0.1:9/bvlc_alexnet.caffemodel")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(_BODY)))
                self.end_headers()
                for index in range(len(_BODY)):  # "/drip": a byte every 0.5 s
                    self.wfile.write(_BODY[index : index + 1])
                    self.wfile.flush()
                    time.sleep(0.5)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture(scope="module")
def hostile():
    server = _Hostile()
    yield server
    server.httpd.shutdown()


@pytest.fixture()
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(weights_cache, "DOWNLOAD_DEADLINE_S", 3)
    return tmp_path / "home" / "models"


@pytest.mark.parametrize("path", ["/drip", "/status-drip"])
def test_a_dripping_server_is_given_up_at_the_deadline_with_a_stall_line(
    hostile, empty_cache, monkeypatch, capsys, path
):
    from keras_alexnet import http_deadline

    monkeypatch.setattr(http_deadline, "STALL_S", 1.0)
    started = time.monotonic()
    with pytest.raises(weights_cache.WeightsUnavailable, match="did not finish within 3 s"):
        weights_cache.imagenet_weights_file(_never_called, _weights(hostile.url(path)))
    assert time.monotonic() - started < 10
    if path == "/status-drip":  # (the body drip sends a byte each 0.5 s: no stall)
        assert "No data from" in capsys.readouterr().err
    assert [name for name in os.listdir(empty_cache) if name.startswith(".saving")] == []


def test_a_redirect_to_ftp_is_not_followed(hostile, empty_cache):
    with pytest.raises(weights_cache.WeightsUnavailable, match="only http and https redirects"):
        weights_cache.imagenet_weights_file(_never_called, _weights(hostile.url("/to-ftp")))


def test_a_process_waiting_on_another_download_names_it(empty_cache, capsys):
    import fcntl

    empty_cache.mkdir(parents=True)
    fd = os.open(empty_cache / ".bvlc_alexnet.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242")
    errors = []

    def fetch():
        try:
            weights_cache.imagenet_weights_file(_never_called, _weights(), progress=False)
        except weights_cache.WeightsUnavailable as error:
            errors.append(error)

    waiting = threading.Thread(target=fetch)
    waiting.start()
    time.sleep(1.0)
    assert waiting.is_alive()  # it waits for the holder
    os.close(fd)
    waiting.join(30)
    assert errors and "could not be downloaded" in str(errors[0])
    err = capsys.readouterr().err
    assert "Waiting for process 4242, which is writing bvlc_alexnet" in err
